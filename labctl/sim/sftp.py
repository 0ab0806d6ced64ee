"""SFTP over the simulated filesystem (ESXi 5+ only). Uploads stream into a file under the host's sim dir, so
a 256 MB VIB never sits in memory; small text files end up in the JSON state like any other file."""

from __future__ import annotations

import io
import os
import stat as statmod
import time
from typing import Any

from labctl.sim.fs import FsError, norm


def sftp_server_class():
    import paramiko
    from paramiko.sftp import SFTP_FAILURE, SFTP_NO_SUCH_FILE, SFTP_OK

    def attrs(host: Any, path: str, name: str | None = None) -> Any:
        a = paramiko.SFTPAttributes()
        fs = host.fs
        if fs.is_file(path):
            a.st_size = fs.size(path)
            a.st_mode = statmod.S_IFREG | 0o644
        elif fs.is_dir(path):
            a.st_size = 512
            a.st_mode = statmod.S_IFDIR | 0o755
        else:
            return None
        a.st_uid = a.st_gid = 0
        a.st_mtime = a.st_atime = int(time.time())
        if name is not None:
            a.filename = name
        return a

    class Handle(paramiko.SFTPHandle):
        def __init__(self, host: Any, path: str, flags: int, drop_after: Any = None):
            super().__init__(flags)
            self.host = host
            self.path = path
            self.tmp = None
            self.drop_after = drop_after  # a connection to drop once the file is complete (fault injection)
            writing = flags & (os.O_WRONLY | os.O_RDWR)
            if writing:
                with host.lock:
                    self.tmp = host.fs.new_tmp()
                    existing = b""
                    if host.fs.is_file(path) and not flags & os.O_TRUNC:
                        existing = host.fs.read(path)
                self.tmp.write_bytes(existing)
                mode = "r+b"
                self.writefile = open(self.tmp, mode)
                if flags & os.O_APPEND:
                    self.writefile.seek(0, 2)
                self.readfile = self.writefile
            else:
                with host.lock:
                    if path in host.state.blobs:
                        self.readfile = open(host.fs.blob_path(path), "rb")
                    else:
                        self.readfile = io.BytesIO(host.fs.read(path))

        def stat(self) -> Any:
            if self.tmp is not None:
                a = paramiko.SFTPAttributes.from_stat(os.fstat(self.writefile.fileno()))
                a.st_mode = statmod.S_IFREG | 0o644
                return a
            with self.host.lock:
                return attrs(self.host, self.path)

        def chattr(self, attr: Any) -> int:
            return SFTP_OK

        def close(self) -> None:
            super().close()
            if self.tmp is not None and self.tmp.exists():
                with self.host.lock:
                    try:
                        self.host.fs.commit_blob(self.path, self.tmp)
                    except FsError:
                        self.tmp.unlink(missing_ok=True)
                    self.host.save()
                self.tmp = None
            if self.drop_after is not None:
                self.host.drop_conn(self.drop_after, "fault: drop after SFTP transfer")

    class SimSFTPServer(paramiko.SFTPServerInterface):
        def __init__(self, server: Any, host: Any, *args: Any, **kw: Any):
            super().__init__(server, *args, **kw)
            self.host = host
            box = getattr(server, "conn_box", None)
            self.conn = box[0] if box else None

        def canonicalize(self, path: str) -> str:
            return norm(path or ".", "/")

        def list_folder(self, path: str) -> Any:
            p = norm(path)
            with self.host.lock:
                if not self.host.fs.is_dir(p):
                    return SFTP_NO_SUCH_FILE
                out = []
                for name in self.host.fs.listdir(p):
                    a = attrs(self.host, p.rstrip("/") + "/" + name, name)
                    if a is not None:
                        out.append(a)
                return out

        def stat(self, path: str) -> Any:
            with self.host.lock:
                a = attrs(self.host, norm(path))
            return a if a is not None else SFTP_NO_SUCH_FILE

        lstat = stat

        def open(self, path: str, flags: int, attr: Any) -> Any:
            p = norm(path)
            with self.host.lock:
                exists = self.host.fs.is_file(p)
                if self.host.fs.is_dir(p):
                    return SFTP_FAILURE
                if not exists and not flags & os.O_CREAT:
                    return SFTP_NO_SUCH_FILE
                parent = p.rsplit("/", 1)[0] or "/"
                if not self.host.fs.is_dir(parent):
                    return SFTP_NO_SUCH_FILE
            # faults: a drop rule whose pattern matches "sftp put PATH" / "sftp get PATH" (see labctl.sim.faults)
            self.host.reload_control()
            rule = self.host.faults.take("drop", f"sftp {'put' if flags & (os.O_WRONLY | os.O_RDWR) else 'get'} {p}")
            if rule is not None and self.conn is not None and rule.phase == "before":
                self.host.drop_conn(self.conn, "fault: drop before SFTP transfer")
                return SFTP_FAILURE
            try:
                return Handle(self.host, p, flags, self.conn if rule is not None else None)
            except FsError:
                return SFTP_FAILURE

        def remove(self, path: str) -> int:
            with self.host.lock:
                try:
                    self.host.fs.remove(norm(path))
                except FsError:
                    return SFTP_NO_SUCH_FILE
                self.host.save()
            return SFTP_OK

        def rename(self, oldpath: str, newpath: str) -> int:
            with self.host.lock:
                try:
                    self.host.fs.rename(norm(oldpath), norm(newpath))
                except FsError:
                    return SFTP_FAILURE
                self.host.save()
            return SFTP_OK

        posix_rename = rename

        def mkdir(self, path: str, attr: Any) -> int:
            with self.host.lock:
                try:
                    self.host.fs.mkdir(norm(path))
                except FsError:
                    return SFTP_FAILURE
                self.host.save()
            return SFTP_OK

        def rmdir(self, path: str) -> int:
            with self.host.lock:
                try:
                    self.host.fs.rmdir(norm(path))
                except FsError:
                    return SFTP_FAILURE
                self.host.save()
            return SFTP_OK

        def chattr(self, path: str, attr: Any) -> int:
            with self.host.lock:
                return SFTP_OK if self.host.fs.exists(norm(path)) else SFTP_NO_SUCH_FILE

    return SimSFTPServer


def sftp_subsystem_class():
    """paramiko's SFTPServer, plus the exit status OpenSSH's sftp-server leaves (scp in SFTP mode checks it)."""
    import paramiko

    class SimSFTPSubsystem(paramiko.SFTPServer):
        def finish_subsystem(self) -> None:
            try:
                self.sock.send_exit_status(0)
            except Exception:  # the client is gone already
                pass
            super().finish_subsystem()

    return SimSFTPSubsystem
