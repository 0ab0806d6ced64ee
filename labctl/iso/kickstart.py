"""The small second CD that carries a host's kickstart: `KS.CFG` at the root, volume id `LABCTL-KS`.

The installer's `ks=cdrom:/KS.CFG` finds it on whichever CD-ROM holds it, so the large patched installer image is
made once per ESX build and a host's address or password hash changes only this image. The kickstart carries the
root password's crypt hash: the image is written mode 0600, atomically, and left alone when it already holds the
same KS.CFG (a second run changes nothing).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

from labctl.iso.image import IsoError, find_file, open_iso, read_small

KS_VOLUME_ID = "LABCTL-KS"
_MAX_KS = 1 << 20


def read_kickstart_iso(path: str | os.PathLike[str]) -> bytes | None:
    """KS.CFG of an image written by `write_kickstart_iso`, or None when there is none."""
    iso = open_iso(path)
    try:
        ref = find_file(iso, "/KS.CFG")
        if ref is None:
            return None
        with open(path, "rb") as fp:
            return read_small(fp, ref, _MAX_KS)
    finally:
        iso.close()


def write_kickstart_iso(path: str | os.PathLike[str], kickstart: bytes | str,
                        volume_id: str = KS_VOLUME_ID) -> bool:
    """Write an ISO with `kickstart` as /KS.CFG (ISO 9660, Rock Ridge and Joliet names alike). Returns False when
    `path` already is such an image with the same KS.CFG and volume id (nothing written)."""
    import pycdlib

    data = kickstart.encode() if isinstance(kickstart, str) else bytes(kickstart)
    if len(data) > _MAX_KS:
        raise IsoError(f"kickstart is {len(data)} bytes; the limit is {_MAX_KS}")
    p = Path(path)
    if p.is_file():
        with contextlib.suppress(IsoError):
            iso = open_iso(p)
            same_vol = iso.pvd.volume_identifier.decode("latin-1").strip() == volume_id
            iso.close()
            if same_vol and read_kickstart_iso(p) == data:
                os.chmod(p, 0o600)
                return False
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident=volume_id, joliet=3, rock_ridge="1.09")
    iso.add_fp(io.BytesIO(data), len(data), iso_path="/KS.CFG;1", rr_name="KS.CFG", joliet_path="/KS.CFG")
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".labctl-tmp")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as out:
            iso.write_fp(out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp_name, 0o600)
        os.replace(tmp_name, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    finally:
        iso.close()
    return True
