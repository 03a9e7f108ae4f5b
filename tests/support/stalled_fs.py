"""A filesystem that stalls, as a network filesystem whose server stopped answering does: a FUSE mount
(the kernel's /dev/fuse protocol, spoken here without a library) whose server answers what mounting and a
look at the mount point itself need, and nothing under it. Looking up, opening or reading any path under
the mount point then blocks in the kernel (a stat, an open with O_NONBLOCK alike) until the mount goes:
the open is refused then (ENOTCONN). Needs root (CAP_SYS_ADMIN) and /dev/fuse.

    with StalledFilesystem(tmp_path / "nfs") as mount:
        ... a process reading mount.path / "key.pem" hangs until the block ends ...
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import select
import struct
import threading
from pathlib import Path

FUSE_GETATTR = 3
FUSE_INIT = 26
NO_REPLY = {2, 36, 42}  # FORGET, INTERRUPT, BATCH_FORGET: the kernel expects no answer to these

IN_HEADER = struct.Struct("<IIQQIIII")  # len, opcode, unique, nodeid, uid, gid, pid, padding
OUT_HEADER = struct.Struct("<IiQ")  # len, error, unique
INIT_IN = struct.Struct("<IIII")  # major, minor, max_readahead, flags
INIT_OUT = struct.Struct("<IIIIHHI")  # major, minor, max_readahead, flags, max_background, congestion, max_write
# ino, size, blocks, atime, mtime, ctime, atimensec, mtimensec, ctimensec, mode, nlink, uid, gid, rdev,
# blksize, padding
ATTR = struct.Struct("<QQQQQQIIIIIIIIII")
ATTR_OUT = struct.Struct("<QII")  # attr_valid, attr_valid_nsec, dummy; then ATTR

MS_NOSUID, MS_NODEV = 2, 4
MNT_DETACH = 2


def available() -> str | None:
    """None when a FUSE mount can be made here, else why not."""
    if os.geteuid() != 0:
        return "needs root to mount"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    return _probe()


def _probe() -> str | None:
    """Root and /dev/fuse are not enough in a container without CAP_SYS_ADMIN (mount: EPERM), or where
    the fuse module is missing (open: ENODEV): a mount is tried once, on a directory of its own."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="stalled-probe-") as where:
        try:
            with StalledFilesystem(Path(where) / "mnt"):
                pass
        except OSError as exc:
            return f"cannot mount FUSE here: {exc}"
    return None


class StalledFilesystem:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._fd: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._pending: list[int] = []  # requests left unanswered: something under the mount point waits

    def __enter__(self) -> "StalledFilesystem":
        self.path.mkdir(parents=True, exist_ok=True)
        self._fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
        options = f"fd={self._fd},rootmode=40000,user_id=0,group_id=0".encode()
        if self._libc.mount(b"stalled", str(self.path).encode(), b"fuse", MS_NOSUID | MS_NODEV, options) != 0:
            err = ctypes.get_errno()
            os.close(self._fd)
            raise OSError(err, f"mount fuse on {self.path}: {os.strerror(err)}")
        self._thread = threading.Thread(target=self._serve, name="stalled-fs", daemon=True)
        self._thread.start()
        return self

    @property
    def pending(self) -> int:
        return len(self._pending)

    def __exit__(self, *exc) -> None:
        # The requests left waiting are refused (ENOTCONN, as a mount whose server went away), then the
        # mount is detached and the connection closed.
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        try:
            for unique in self._pending:
                self._reply(unique, error=-errno.ENOTCONN)
        except OSError:
            pass
        self._pending.clear()
        self._libc.umount2(str(self.path).encode(), MNT_DETACH)
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _reply(self, unique: int, payload: bytes = b"", error: int = 0) -> None:
        os.write(self._fd, OUT_HEADER.pack(OUT_HEADER.size + len(payload), error, unique) + payload)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                if not select.select([self._fd], [], [], 0.05)[0]:
                    continue
                request = os.read(self._fd, (1 << 17) + 4096)
            except OSError:
                return  # unmounted (ENODEV), or the descriptor closed
            if not request:
                return
            length, opcode, unique, nodeid, *_ = IN_HEADER.unpack_from(request)
            body = request[IN_HEADER.size:length]
            try:
                if opcode == FUSE_INIT:
                    major, minor, readahead, _flags = INIT_IN.unpack_from(body)
                    self._reply(unique, INIT_OUT.pack(7, 19, readahead, 0, 16, 12, 4096))
                elif opcode == FUSE_GETATTR and nodeid == 1:  # the mount point itself: a directory
                    attr = ATTR.pack(1, 0, 0, 0, 0, 0, 0, 0, 0, 0o040755, 2, 0, 0, 0, 4096, 0)
                    self._reply(unique, ATTR_OUT.pack(1, 0, 0) + attr)
                elif opcode not in NO_REPLY:
                    self._pending.append(unique)  # never answered: the caller waits in the kernel
            except OSError:
                return
