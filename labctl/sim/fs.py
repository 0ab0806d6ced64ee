"""The simulated host's filesystem: small text files live in the state JSON, big or binary ones as blob files.

Paths are absolute and normalised (`/etc/../tmp/x` -> `/tmp/x`). Directories are the explicit `state.dirs` plus
every parent of a file. Callers hold the host lock.
"""

from __future__ import annotations

import os
import posixpath
import secrets
from pathlib import Path

from labctl.sim.state import HostState

SMALL_FILE = 1 << 20  # files up to 1 MiB that are valid UTF-8 stay in the JSON state


class FsError(Exception):
    """errno-style failure: `message` is what BusyBox would print after the command name."""


def norm(path: str, cwd: str = "/") -> str:
    p = posixpath.normpath(posixpath.join(cwd, path))
    return "/" + p.lstrip("/") if p != "/" else "/"


class SimFS:
    def __init__(self, state: HostState, blob_dir: Path | None):
        self.state = state
        self.blob_dir = blob_dir

    # ---- queries
    def is_file(self, path: str) -> bool:
        p = norm(path)
        return p in self.state.files or p in self.state.blobs

    def is_dir(self, path: str) -> bool:
        p = norm(path)
        if p == "/" or p in self.state.dirs:
            return True
        pre = p + "/"
        return any(f.startswith(pre) for f in (*self.state.files, *self.state.blobs))

    def exists(self, path: str) -> bool:
        return self.is_file(path) or self.is_dir(path)

    def size(self, path: str) -> int:
        p = norm(path)
        if p in self.state.files:
            return len(self.state.files[p].encode("utf-8", "surrogateescape"))
        if p in self.state.blobs:
            return self.blob_path(p).stat().st_size
        raise FsError(f"can't open '{path}': No such file or directory")

    def listdir(self, path: str) -> list[str]:
        p = norm(path)
        if not self.is_dir(p):
            raise FsError(f"can't open '{path}': No such file or directory")
        pre = p.rstrip("/") + "/"
        names = set()
        for f in (*self.state.files, *self.state.blobs, *self.state.dirs):
            if f.startswith(pre) and f != pre:
                names.add(f[len(pre):].split("/", 1)[0])
        return sorted(names)

    # ---- content
    def read(self, path: str) -> bytes:
        p = norm(path)
        if p in self.state.files:
            return self.state.files[p].encode("utf-8", "surrogateescape")
        if p in self.state.blobs:
            return self.blob_path(p).read_bytes()
        if self.is_dir(p):
            raise FsError("read error: Is a directory")
        raise FsError(f"can't open '{path}': No such file or directory")

    def read_text(self, path: str) -> str:
        return self.read(path).decode("utf-8", "surrogateescape")

    def _check_parent(self, p: str) -> None:
        parent = posixpath.dirname(p)
        if not self.is_dir(parent):
            raise FsError(f"can't create '{p}': No such file or directory")
        if self.is_dir(p):
            raise FsError(f"can't create '{p}': Is a directory")

    def write(self, path: str, data: bytes | str, *, append: bool = False) -> None:
        p = norm(path)
        if p == "/dev/null":
            return
        self._check_parent(p)
        raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else bytes(data)
        if append and self.is_file(p):
            if p in self.state.blobs:
                with open(self.blob_path(p), "ab") as f:
                    f.write(raw)
                return
            raw = self.read(p) + raw
        self._store(p, raw)

    def _store(self, p: str, raw: bytes) -> None:
        small = len(raw) <= SMALL_FILE
        text = None
        if small:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        if text is not None or self.blob_dir is None:
            self._drop_blob(p)
            self.state.files[p] = text if text is not None else raw.decode("utf-8", "surrogateescape")
            return
        self.state.files.pop(p, None)
        bp = self.blob_path(p, create=True)
        bp.write_bytes(raw)

    def commit_blob(self, path: str, tmp: Path) -> None:
        """Adopt a file written outside (SFTP upload) as the content of `path`."""
        p = norm(path)
        self._check_parent(p)
        if tmp.stat().st_size <= SMALL_FILE:
            raw = tmp.read_bytes()
            tmp.unlink()
            self._store(p, raw)
            return
        self.state.files.pop(p, None)
        bp = self.blob_path(p, create=True)
        os.replace(tmp, bp)

    def new_tmp(self) -> Path:
        if self.blob_dir is None:
            raise FsError("no blob storage for this host")
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        return self.blob_dir / f".upload-{secrets.token_hex(8)}"

    def remove(self, path: str) -> None:
        p = norm(path)
        if p in self.state.files:
            del self.state.files[p]
        elif p in self.state.blobs:
            self._drop_blob(p)
        elif self.is_dir(p):
            raise FsError(f"can't remove '{path}': Is a directory")
        else:
            raise FsError(f"can't remove '{path}': No such file or directory")

    def mkdir(self, path: str, *, parents: bool = False) -> None:
        p = norm(path)
        if self.is_file(p):
            raise FsError(f"can't create directory '{path}': File exists")
        if self.is_dir(p):
            if parents:
                return
            raise FsError(f"can't create directory '{path}': File exists")
        parent = posixpath.dirname(p)
        if not self.is_dir(parent):
            if not parents:
                raise FsError(f"can't create directory '{path}': No such file or directory")
            self.mkdir(parent, parents=True)
        self.state.dirs.append(p)

    def rmdir(self, path: str) -> None:
        p = norm(path)
        if self.listdir(p):
            raise FsError(f"'{path}': Directory not empty")
        if p in self.state.dirs:
            self.state.dirs.remove(p)

    def rename(self, src: str, dst: str) -> None:
        s, d = norm(src), norm(dst)
        if not self.is_file(s):
            raise FsError(f"can't rename '{src}': No such file or directory")
        self._check_parent(d)
        if s in self.state.files:
            text = self.state.files.pop(s)
            self._drop_blob(d)
            self.state.files[d] = text
        else:
            self.state.files.pop(d, None)
            self._drop_blob(d)
            self.state.blobs[d] = self.state.blobs.pop(s)

    # ---- blobs
    def blob_path(self, p: str, *, create: bool = False) -> Path:
        if self.blob_dir is None:
            raise FsError("no blob storage for this host")
        name = self.state.blobs.get(p)
        if name is None:
            if not create:
                raise FsError(f"can't open '{p}': No such file or directory")
            name = secrets.token_hex(12)
            self.state.blobs[p] = name
            self.blob_dir.mkdir(parents=True, exist_ok=True)
        return self.blob_dir / name

    def _drop_blob(self, p: str) -> None:
        name = self.state.blobs.pop(p, None)
        if name and self.blob_dir is not None:
            (self.blob_dir / name).unlink(missing_ok=True)
