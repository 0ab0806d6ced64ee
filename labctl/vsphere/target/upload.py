"""Install media onto a datastore once: named by content hash, reused by every later lab, streamed, never read whole.

A file goes to `[datastore] labctl-media/<sha256 first 16 hex>-<file name>` through the datastore HTTP file interface
(`PUT /folder/<path>?dcPath=<datacenter>&dsName=<datastore>`, authenticated with the session's cookie; vSphere Web
Services SDK, "Datastore HTTP access"; govmomi's `soap.Client.Upload`, which vcsim serves). Before uploading, the
datastore browser is asked whether that name is there with that size (`SearchDatastore_Task`): then it is reused
(a second lab, a second run). An interrupted upload leaves a shorter file, which the size check replaces.

`labctl-media/` is shared by the labs on that datastore and lies outside every lab's folder: `destroy` leaves it.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from labctl.errors import LabctlError
from labctl.vsphere.target.session import Session, VsphereTaskError

MEDIA_DIR = "labctl-media"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Media:
    local: Path
    sha256: str
    size: int

    @property
    def file_name(self) -> str:
        return f"{self.sha256[:16]}-{self.local.name}"


def hash_file(path: Path, chunk: int = CHUNK) -> Media:
    """SHA-256 of the file, read in 1 MiB pieces."""
    h = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
                size += len(block)
    except FileNotFoundError:
        raise LabctlError(f"{path}: the install medium does not exist",
                          hint="check the topology's iso: (or the install stage's patched ISO)") from None
    return Media(Path(path), h.hexdigest(), size)


def datastore_path(datastore: str, rel: str) -> str:
    return f"[{datastore}] {rel}"


def existing_size(session: Session, browser: Any, datastore: str, directory: str, name: str) -> int | None:
    """The size of `[datastore] directory/name`, None when absent (the directory may be missing too)."""
    from pyVmomi import vim

    spec = vim.host.DatastoreBrowser.SearchSpec(
        matchPattern=[name], details=vim.host.DatastoreBrowser.FileInfo.Details(fileSize=True, fileType=True))
    try:
        task = browser.SearchDatastore_Task(datastorePath=datastore_path(datastore, directory), searchSpec=spec)
        result = session.wait(task, f"looking for {name} on datastore {datastore}")
    except VsphereTaskError as e:
        if "FileNotFound" in e.message:
            return None
        raise
    for f in getattr(result, "file", None) or []:
        if f.path == name:
            return int(f.fileSize) if f.fileSize is not None else -1
    return None


def put_file(session: Session, media: Media, *, datacenter: str, datastore: str, rel: str,
             progress: Callable[[int, int], None] | None = None) -> None:
    """Stream the local file to `[datastore] rel` with one HTTP PUT on the session's own connection settings."""
    stub = session.stub
    query = urllib.parse.urlencode({"dcPath": datacenter, "dsName": datastore})
    url = "/folder/" + urllib.parse.quote(rel) + "?" + query
    conn = stub.GetConnection()  # the stub's scheme, TLS context and pinned thumbprint
    session.count("HTTP PUT")
    sent = 0
    try:
        conn.putrequest("PUT", url, skip_accept_encoding=True)
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", str(media.size))
        if session.cookie:
            conn.putheader("Cookie", session.cookie)
        conn.endheaders()
        with open(media.local, "rb") as f:
            while block := f.read(CHUNK):
                conn.send(block)
                sent += len(block)
                if progress:
                    progress(sent, media.size)
        resp = conn.getresponse()
        body = resp.read(2000)
    except OSError as e:
        raise VsphereTaskError(f"uploading {media.local} to [{datastore}] {rel} failed: {e}") from None
    finally:
        conn.close()
    if resp.status not in (200, 201, 204):
        raise VsphereTaskError(
            f"uploading {media.local} to [{datastore}] {rel} failed: HTTP {resp.status} {resp.reason}",
            hint=body.decode("utf-8", "replace").strip()[:300] or None)


def ensure_uploaded(session: Session, browser: Any, media: Media, *, datacenter: str, datastore: str,
                    progress: Callable[[int, int], None] | None = None) -> tuple[str, bool]:
    """`[datastore] labctl-media/<hash>-<name>`, uploading it first unless there with the same size; (path, uploaded)."""
    rel = f"{MEDIA_DIR}/{media.file_name}"
    size = existing_size(session, browser, datastore, MEDIA_DIR, media.file_name)
    if size == media.size:
        return datastore_path(datastore, rel), False
    put_file(session, media, datacenter=datacenter, datastore=datastore, rel=rel, progress=progress)
    size = existing_size(session, browser, datastore, MEDIA_DIR, media.file_name)
    if size != media.size:
        raise VsphereTaskError(f"uploading {media.local} to [{datastore}] {rel}: the datastore has "
                               f"{size if size is not None else 'no'} bytes of {media.size}")
    return datastore_path(datastore, rel), True


def is_datastore_path(value: str) -> bool:
    return value.startswith("[") and "]" in value

