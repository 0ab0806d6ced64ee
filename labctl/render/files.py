"""Safe writes for every file labctl produces: atomic, and never over a file the user edited.

    with Manifest.open(out_dir) as manifest:            # <out_dir>/.labctl/manifest.json, saved on exit
        status = write_atomic(out_dir / "esx1" / "esx1.vmx", text, manifest=manifest)
        # WriteStatus.CREATED / UPDATED / UNCHANGED, or RefusedError (file and reason in the message)

A write goes to a temporary file in the target's directory, is fsync'ed, then `os.replace`d over the target,
so a crash leaves either the old file or the new one, never half of one. An existing file keeps its mode.

The manifest records the sha256 of each file labctl wrote. Without `force`, `write_atomic` refuses:
- a file that exists but is not in the manifest (labctl did not write it);
- a file whose content no longer matches the recorded hash (edited since labctl wrote it);
- a `.vmx` whose VM is running (a `<name>.vmx.lck` or any other `*.lck` next to it).
Writing content identical to what is on disk changes nothing and returns UNCHANGED (the file is then recorded
as labctl's, since it holds exactly what labctl would write).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Self

from labctl.errors import ExitStatus, LabctlError, RefusedError

__all__ = [
    "MANIFEST_DIR",
    "Manifest",
    "WriteError",
    "WriteStatus",
    "check_write",
    "sha256_hex",
    "write_atomic",
]

MANIFEST_DIR = ".labctl"
MANIFEST_NAME = "manifest.json"
_FORCE_HINT = "use --force to overwrite, or move your edits into the topology"


class WriteStatus(str, Enum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"

    def __str__(self) -> str:
        return self.value


class WriteError(LabctlError):
    """The file system refused a write (permissions, full disk, read-only mount)."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _umask() -> int:
    try:  # Linux >= 4.7: read it without the racy set-and-restore dance
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _stage(path: Path, data: bytes, mode: int | None) -> Path:
    """`data` in a temporary file next to `path`, fsync'ed, with its final mode; removed again on any failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".labctl-tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            final_mode = mode if mode is not None else 0o666 & ~_umask()  # mkstemp made it 0600
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), final_mode)
            os.fsync(f.fileno())
        if not hasattr(os, "fchmod"):
            os.chmod(tmp, final_mode)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return tmp


def _replace_atomic(path: Path, data: bytes, mode: int | None) -> None:
    """Temp file in the same directory + fsync + os.replace. On any failure the old file is untouched."""
    tmp = _stage(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


class Manifest:
    """`<root>/.labctl/manifest.json`: which files under `root` labctl wrote, with their sha256.

    `Manifest(root)` saves after every `record`/`forget` (simple, one fsync'ed rewrite per file). For a batch of
    writes use `Manifest.open(root)` (or `autosave=False`) and call `save()` once at the end, or use it as a
    context manager, which saves once on exit (also when the block fails, so files already written stay
    recorded). Saving re-reads the file under a lock and merges, so two labctl processes writing different
    files of the same tree do not lose each other's entries.
    """

    def __init__(self, root: str | os.PathLike[str], *, autosave: bool = True):
        self.root = Path(root)
        self.path = self.root / MANIFEST_DIR / MANIFEST_NAME
        self.autosave = autosave
        self._files: dict[str, dict] = self._load()
        self._changed: dict[str, dict | None] = {}
        self._depth = 0

    @classmethod
    def open(cls, root: str | os.PathLike[str]) -> Manifest:
        """A manifest for a batch of writes: nothing is saved until `save()` (or the end of a `with` block)."""
        return cls(root, autosave=False)

    @property
    def dirty(self) -> bool:
        return bool(self._changed)

    @classmethod
    def find(cls, path: str | os.PathLike[str]) -> Manifest:
        """The manifest of the nearest ancestor directory that has one, else one rooted at the file's directory."""
        start = Path(os.path.abspath(path)).parent
        for d in (start, *start.parents):
            if (d / MANIFEST_DIR / MANIFEST_NAME).is_file():
                return cls(d)
        return cls(start)

    def __enter__(self) -> Self:
        self._depth += 1
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth == 0:
            self.save()

    def _load(self) -> dict[str, dict]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except NotADirectoryError as e:
            where = next((p for p in (self.root, *self.root.parents) if p.exists() and not p.is_dir()), self.root)
            raise WriteError(f"{where} is not a directory, so nothing can be written under {self.root}",
                             hint="choose a directory (-o DIR, or workstation.vm_dir in the topology)",
                             status=ExitStatus.USAGE) from e
        except (OSError, ValueError) as e:
            raise WriteError(
                f"{self.path}: labctl's manifest is unreadable ({e})",
                hint="delete it to start over; every existing file will then need --force once",
            ) from e
        files = raw.get("files") if isinstance(raw, dict) else None
        return {str(k): v for k, v in files.items() if isinstance(v, dict)} if isinstance(files, dict) else {}

    def key(self, path: str | os.PathLike[str]) -> str:
        p = Path(os.path.abspath(path))
        try:
            return p.relative_to(os.path.abspath(self.root)).as_posix()
        except ValueError:
            return p.as_posix()

    def entry(self, path: str | os.PathLike[str]) -> dict | None:
        return self._files.get(self.key(path))

    def __contains__(self, path: object) -> bool:
        return isinstance(path, (str, os.PathLike)) and self.key(path) in self._files

    def files(self) -> dict[str, str]:
        """relative path -> sha256 of every recorded file."""
        return {k: v.get("sha256", "") for k, v in sorted(self._files.items())}

    def record(self, path: str | os.PathLike[str], data: bytes) -> None:
        entry = {"sha256": sha256_hex(data), "size": len(data), "written": _now()}
        old = self._files.get(self.key(path))
        if old and old.get("sha256") == entry["sha256"]:
            return
        self._files[self.key(path)] = entry
        self._changed[self.key(path)] = entry
        if self.autosave and self._depth == 0:
            self.save()

    def forget(self, path: str | os.PathLike[str]) -> None:
        """Drop a file (e.g. after `destroy` deleted it)."""
        k = self.key(path)
        if self._files.pop(k, None) is not None:
            self._changed[k] = None
            if self.autosave and self._depth == 0:
                self.save()

    def save(self) -> None:
        if not self._changed:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            merged = self._load()
            for k, v in self._changed.items():
                if v is None:
                    merged.pop(k, None)
                else:
                    merged[k] = v
            doc = {"tool": "labctl", "version": 1, "files": dict(sorted(merged.items()))}
            data = (json.dumps(doc, indent=2, sort_keys=False) + "\n").encode("utf-8")
            try:
                _replace_atomic(self.path, data, None)
            except OSError as e:
                raise WriteError(f"cannot write {self.path}: {e.strerror or e}") from e
            self._files = merged
            self._changed = {}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory lock; the atomic replace still keeps the file whole
            yield
            return
        with open(self.path.parent / "manifest.lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _running_vm_lock(path: Path) -> Path | None:
    """For a .vmx: the `*.lck` (file or directory) that says the VM is running, else None."""
    if path.suffix.lower() != ".vmx":
        return None
    own = path.with_name(path.name + ".lck")
    if own.exists():
        return own
    try:
        return next((p for p in sorted(path.parent.iterdir()) if p.name.lower().endswith(".lck")), None)
    except OSError:
        return None


class _Auto:
    def __repr__(self) -> str:
        return "AUTO"


AUTO = _Auto()


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


def check_write(
    path: str | os.PathLike[str],
    data: bytes | str,
    *,
    force: bool = False,
    manifest: Manifest | _Auto = AUTO,
) -> WriteStatus:
    """What `write_atomic` would do, without writing: the status, or RefusedError. For `plan`."""
    path = Path(path)
    blob = _as_bytes(data)
    m = Manifest.find(path) if isinstance(manifest, _Auto) else manifest
    return _decide(path, blob, force, m)[0]


def _decide(path: Path, blob: bytes, force: bool, manifest: Manifest) -> tuple[WriteStatus, bytes | None]:
    try:
        current: bytes | None = path.read_bytes()
    except FileNotFoundError:
        current = None
    except IsADirectoryError as e:
        raise RefusedError(
            f"{path}: is a directory, not a file", hint="move it away or choose another output"
        ) from e
    except OSError as e:
        raise WriteError(f"cannot read {path}: {e.strerror or e}") from e
    if current is None:
        return WriteStatus.CREATED, None
    if current == blob:
        return WriteStatus.UNCHANGED, current
    if force:
        return WriteStatus.UPDATED, current
    lock = _running_vm_lock(path)
    if lock is not None:
        raise RefusedError(
            f"{path}: VM is running: stop it first or use --force ({lock.name} present)",
            hint="labctl down <topology> stops the lab's VMs",
        )
    entry = manifest.entry(path)
    if entry is None:
        raise RefusedError(
            f"{path}: exists but labctl did not write it (not in {manifest.path}); "
            f"use --force to overwrite, or move it away",
            hint="re-run with --force to let labctl take it over",
        )
    if entry.get("sha256") != sha256_hex(current):
        raise RefusedError(
            f"{path}: edited since labctl wrote it on {entry.get('written', 'an unknown date')}; {_FORCE_HINT}",
            hint="diff it against `labctl render` into an empty directory to see your edits",
        )
    return WriteStatus.UPDATED, current


def write_atomic(
    path: str | os.PathLike[str],
    data: bytes | str,
    *,
    force: bool = False,
    manifest: Manifest | _Auto = AUTO,
    mode: int | None = None,
) -> WriteStatus:
    """Write `data` (str is UTF-8) to `path` atomically and record it in the manifest.

    `manifest`: a `Manifest` (usually rooted at the output directory); by default the nearest ancestor's
    `.labctl/manifest.json`, else one in the file's own directory. `mode`: for a new file (default 0666 & ~umask);
    an existing file keeps its mode. Raises RefusedError (see the module docstring) or WriteError.
    """
    path = Path(path)
    blob = _as_bytes(data)
    m = Manifest.find(path) if isinstance(manifest, _Auto) else manifest
    status, _current = _decide(path, blob, force, m)
    if status is not WriteStatus.UNCHANGED:
        keep_mode = None
        if status is WriteStatus.UPDATED:
            with contextlib.suppress(OSError):
                keep_mode = path.stat().st_mode & 0o7777
        try:
            _replace_atomic(path, blob, keep_mode if keep_mode is not None else mode)
        except OSError as e:
            raise WriteError(
                f"cannot write {path}: {e.strerror or e}", hint="check the directory's permissions"
            ) from e
    m.record(path, blob)
    return status


def check_inside(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """RefusedError when `path`, symlinks resolved, is not inside `root` (symlinks resolved): a VM directory that
    is a symlink to elsewhere would otherwise be written through."""
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(real_root):
        raise RefusedError(
            f"{path}: resolves to {real}, outside {root} (a symlinked directory?); use --force to write there",
            hint=f"remove the symlink or point the output elsewhere; labctl writes only inside {root}",
        )


class PlannedWrite:
    """One file of a batch: where, what, its manifest, and what writing it would do (or why it is refused)."""

    def __init__(self, path: Path, data: bytes, manifest: Manifest, status: WriteStatus | None,
                 refused: RefusedError | None = None, mode: int | None = None):
        self.path, self.data, self.manifest, self.status, self.refused, self.mode = (
            path, data, manifest, status, refused, mode)


def plan_writes(items: list[tuple[Path, bytes | str, Manifest, Path]], *, force: bool = False) -> list[PlannedWrite]:
    """Decide every write of a batch first: (path, data, manifest, root) -> a PlannedWrite each, with `refused`
    set for a file outside its root (unless `force`), user-edited, not labctl's, or a running VM's .vmx."""
    out = []
    for path, data, manifest, root in items:
        path, blob = Path(path), _as_bytes(data)
        try:
            if not force:
                check_inside(root, path)
            status, _ = _decide(path, blob, force, manifest)
            keep = None
            if status is WriteStatus.UPDATED:
                with contextlib.suppress(OSError):
                    keep = path.stat().st_mode & 0o7777
            out.append(PlannedWrite(path, blob, manifest, status, mode=keep))
        except RefusedError as e:
            out.append(PlannedWrite(path, blob, manifest, None, refused=e))
    return out


def commit_writes(planned: list[PlannedWrite]) -> None:
    """Write a batch all or nothing. Every changed file is first staged to a temporary next to its target (a
    failure here — ENOSPC, a read-only directory — removes them all and changes nothing); then each is renamed
    over its target, and if a rename fails the files already renamed are put back. Raises RefusedError when any
    file of the batch was refused (nothing is written), WriteError when the file system refused."""
    refused = [p.refused for p in planned if p.refused is not None]
    if refused:
        raise RefusedError("refused to overwrite (nothing was written):\n  " + "\n  ".join(e.message for e in refused),
                           hint="re-run with --force to overwrite anyway")
    todo = [p for p in planned if p.status is not WriteStatus.UNCHANGED]
    created_dirs: list[Path] = []
    staged: list[tuple[PlannedWrite, Path]] = []
    try:
        for p in todo:
            created_dirs += reversed([d for d in (p.path.parent, *p.path.parent.parents) if not d.exists()])
            staged.append((p, _stage(p.path, p.data, p.mode)))
    except OSError as e:
        _discard(staged, created_dirs)
        raise WriteError(f"cannot write {p.path}: {e.strerror or e}; nothing was written",
                         hint="check the directory's permissions and free space") from e
    except BaseException:
        _discard(staged, created_dirs)
        raise
    done: list[tuple[Path, Path | None]] = []  # (target, hard-linked backup of the old file)
    backup: Path | None = None
    try:
        for p, tmp in staged:
            backup = None
            if p.path.exists():
                backup = p.path.with_name(f".{p.path.name}.{os.getpid()}.labctl-old")
                with contextlib.suppress(FileNotFoundError):
                    backup.unlink()
                os.link(p.path, backup)
            os.replace(tmp, p.path)
            done.append((p.path, backup))
            backup = None
    except BaseException as e:
        if backup is not None:  # the file whose rename failed is still the old one
            with contextlib.suppress(OSError):
                backup.unlink()
        for target, backup in reversed(done):
            with contextlib.suppress(OSError):
                if backup is not None:
                    os.replace(backup, target)
                else:
                    target.unlink()
        _discard([(p, t) for p, t in staged if t.exists()], created_dirs)
        if isinstance(e, OSError):
            raise WriteError(f"cannot write {p.path}: {e.strerror or e}; nothing was changed") from e
        raise
    for _target, backup in done:
        if backup is not None:
            with contextlib.suppress(OSError):
                backup.unlink()
    for d in {p.path.parent for p, _ in staged}:
        _fsync_dir(d)
    for p in planned:
        p.manifest.record(p.path, p.data)


def _discard(staged: list[tuple[PlannedWrite, Path]], created_dirs: list[Path]) -> None:
    for _, tmp in staged:
        with contextlib.suppress(OSError):
            tmp.unlink()
    for d in reversed(created_dirs):
        with contextlib.suppress(OSError):
            d.rmdir()
