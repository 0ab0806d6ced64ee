"""Editing files that belong to the system or the user, not to the lab (`/etc/vmware/networking`,
`~/.vmware/preferences`, a systemd unit).

`labctl.render.files.write_atomic` is for files labctl generates into a lab directory (manifest, refusal of
user-edited files). These files are shared with VMware and the user instead, so they are edited in place:
a timestamped backup first, then temp file + fsync + rename, keeping the file's mode **and owner** (labctl runs
as root for /etc but may edit the invoking user's `~/.vmware/preferences`, which must stay theirs).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path


def backup_path(path: Path, stamp: str | None = None) -> Path:
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    candidate = path.with_name(f"{path.name}.labctl-backup-{stamp}")
    n = 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.labctl-backup-{stamp}-{n}")
    return candidate


def replace_file(
    path: Path,
    text: str | bytes,
    *,
    backup: bool = True,
    mode: int = 0o644,
    owner: tuple[int, int] | None = None,
) -> Path | None:
    """Write `text` (str: UTF-8) to `path` atomically; returns the backup's path (None when there was no old file or no backup).

    An existing file keeps its mode and owner; a new one gets `mode` and, when given, `owner` (uid, gid).
    """
    path = Path(path)
    saved: Path | None = None
    st = None
    with contextlib.suppress(FileNotFoundError):
        st = path.stat()
    if st is not None and backup:
        saved = backup_path(path)
        shutil.copy2(path, saved)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".labctl-tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8") if isinstance(text, str) else text)
            f.flush()
            os.fchmod(f.fileno(), (st.st_mode & 0o7777) if st else mode)
            want = (st.st_uid, st.st_gid) if st else owner
            if want is not None and hasattr(os, "fchown") and os.geteuid() == 0:
                os.fchown(f.fileno(), *want)
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    return saved
