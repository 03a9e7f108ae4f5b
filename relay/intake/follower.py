"""Following Postfix's log as it grows: a file across logrotate, or the systemd journal.

A file is followed by polling (no inotify dependency; a poll every half second costs nothing):

- rename rotation (logrotate's default, `postfix logrotate` for maillog_file): the path names a new
  file. What the writer still appends to the old one for a few seconds (syslog daemons and postlogd
  reopen only when told) is read from the old file descriptor until it has been quiet for
  `drain_seconds`, then the new file is read from its start.
- copytruncate: the same file shrinks below the position read so far; reading starts again at 0.
  (Lines written between logrotate's copy and its truncate are lost: that is copytruncate's own
  weakness, documented by logrotate.)

Where it stopped is kept in the state directory (`postfix-log.cursor`, JSON, replaced atomically):
the file's device and inode, the offset after the last complete line read, and a hash of the
file's first bytes (an inode number can be reused by a new file). After a restart:

- same file, head unchanged: continue at the offset;
- the file was rotated meanwhile: finish the old one if it is still in the directory (same inode),
  then read the new one from its start;
- the file was truncated or replaced: read it from its start;
- no cursor yet: start at the end (only new deliveries; `relay postfix-log import` back-fills).

The journal is followed with `journalctl -o json -f` limited to the mail facility, resuming with
`--after-cursor` from the journal's own cursor, kept in the same state file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .postfix_log import LogLine

log = logging.getLogger("relay.intake.follower")

CURSOR_FILE = "postfix-log.cursor"
HEAD_BYTES = 256  # enough to tell two files apart: the first lines carry timestamps and queue ids
READ_BYTES = 1 << 20


@dataclass(frozen=True)
class FilePosition:
    """Where reading stopped in one file: after the last complete line."""

    path: str
    dev: int
    inode: int
    offset: int
    head_len: int
    head: str  # sha256 of the file's first head_len bytes

    def as_dict(self) -> dict:
        return {"kind": "file", **asdict(self)}


class CursorFile:
    """The follower's position in the state directory, replaced atomically (write, fsync, rename)."""

    def __init__(self, directory: Path, name: str = CURSOR_FILE):
        self.path = Path(directory) / name

    def load(self) -> dict | None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.error("cannot read the Postfix log cursor %s (%s): starting afresh", self.path, exc)
            return None
        return data if isinstance(data, dict) else None

    def save(self, data: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


def _head(fd, length: int) -> str:
    data = os.pread(fd, length, 0) if length else b""
    return hashlib.sha256(data).hexdigest()


class _OpenFile:
    def __init__(self, path: Path, fd: int, offset: int):
        self.path = path
        self.fd = fd
        st = os.fstat(fd)
        self.dev, self.inode = st.st_dev, st.st_ino
        self.offset = offset
        self.pending = b""  # an incomplete last line, waiting for its newline
        self.quiet_since: float | None = None
        self.head_len = min(HEAD_BYTES, offset)
        self.head = _head(fd, self.head_len)

    def read_lines(self) -> list[tuple[str, int]]:
        """Complete lines appended since the last call, each with the offset after it."""
        out: list[tuple[str, int]] = []
        while True:
            chunk = os.pread(self.fd, READ_BYTES, self.offset + len(self.pending))
            if not chunk:
                return out
            data = self.pending + chunk
            end = data.rfind(b"\n")
            if end < 0:
                self.pending = data
                continue
            pos = self.offset
            for raw in data[:end + 1].split(b"\n")[:-1]:
                pos += len(raw) + 1
                out.append((raw.decode("utf-8", "replace"), pos))
            self.pending = data[end + 1:]
            self.offset = pos
            if self.head_len < HEAD_BYTES and self.offset > self.head_len:
                self.head_len = min(HEAD_BYTES, self.offset)
                self.head = _head(self.fd, self.head_len)

    def position(self, offset: int) -> FilePosition:
        head_len = min(HEAD_BYTES, offset)
        head = self.head if head_len == self.head_len else _head(self.fd, head_len)
        return FilePosition(str(self.path), self.dev, self.inode, offset, head_len, head)

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


class FileFollower:
    """Complete lines of a log file as it grows and rotates (synchronous: run `poll` in a thread)."""

    def __init__(self, path: Path, cursor: dict | None = None, drain_seconds: float = 5.0):
        self.path = Path(path)
        self.drain_seconds = drain_seconds
        self.current: _OpenFile | None = None
        self.draining: list[_OpenFile] = []  # rotated files the writer may still append to
        self.rotations = 0
        self._start(cursor)

    # -- where to begin -------------------------------------------------------------------------

    def _start(self, cursor: dict | None) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return  # opened when it appears, from its start
        saved = cursor if cursor and cursor.get("kind") == "file" else None
        if saved is None:
            self.current = self._open(self.path, offset=None)  # the end: only what comes next
            log.info("following %s from its end (no cursor yet)", self.path)
            return
        if (st.st_dev, st.st_ino) == (saved["dev"], saved["inode"]):
            f = self._open(self.path, offset=0)
            if st.st_size >= saved["offset"] and _head(f.fd, saved["head_len"]) == saved["head"]:
                self._seek(f, saved["offset"])
                log.info("following %s from offset %d (resumed)", self.path, saved["offset"])
            else:
                log.warning("%s was truncated or replaced while relay was stopped: reading it from the start",
                            self.path)
            self.current = f
            return
        old = self._find_rotated(saved)
        if old is not None:
            log.info("%s was rotated while relay was stopped: finishing %s first", self.path, old.path)
            self.draining.append(old)
        else:
            log.warning("%s was rotated while relay was stopped and the old file is gone: lines after "
                        "offset %d of it were not read", self.path, saved["offset"])
        self.current = self._open(self.path, offset=0)

    def _find_rotated(self, saved: dict) -> _OpenFile | None:
        """The old file by its inode among the rotated files beside the log (mail.log.1, ...)."""
        try:
            entries = list(os.scandir(self.path.parent))
        except OSError:
            return None
        for entry in entries:
            if not entry.name.startswith(self.path.name) or entry.name == self.path.name:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) != (saved["dev"], saved["inode"]) or st.st_size < saved["offset"]:
                continue
            f = self._open(Path(entry.path), offset=0)
            if _head(f.fd, saved["head_len"]) == saved["head"]:
                self._seek(f, saved["offset"])
                return f
            f.close()
        return None

    @staticmethod
    def _open(path: Path, offset: int | None) -> _OpenFile:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        if offset is None:
            offset = os.fstat(fd).st_size
            # Start after the last complete line: a half-written line would be read as a whole one.
            if offset:
                tail = os.pread(fd, min(offset, 65536), offset - min(offset, 65536))
                offset -= len(tail) - (tail.rfind(b"\n") + 1)
        return _OpenFile(path, fd, offset)

    @staticmethod
    def _seek(f: _OpenFile, offset: int) -> None:
        f.offset = offset
        f.pending = b""
        f.head_len = min(HEAD_BYTES, offset)
        f.head = _head(f.fd, f.head_len)

    # -- reading ------------------------------------------------------------------------------

    def poll(self) -> list[tuple[str, FilePosition | None]]:
        """Every complete line available now, in order, each with the position to save after it
        (None for lines of a rotated file being drained: the cursor follows the current file)."""
        out: list[tuple[str, FilePosition | None]] = []
        now = time.monotonic()
        for old in list(self.draining):
            lines = old.read_lines()
            out.extend((text, None) for text, _ in lines)
            if lines:
                old.quiet_since = now
            elif old.quiet_since is None:
                old.quiet_since = now
            elif now - old.quiet_since >= self.drain_seconds:
                old.close()
                self.draining.remove(old)
        if self.current is None:
            try:
                self.current = self._open(self.path, offset=0)
            except FileNotFoundError:
                return out
        cur = self.current
        out.extend((text, cur.position(off)) for text, off in cur.read_lines())
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return out  # renamed away, the new one not created yet: keep reading the old one
        if (st.st_dev, st.st_ino) != (cur.dev, cur.inode):
            # Rotated by rename: the old file is drained, the new one read from its start.
            self.rotations += 1
            cur.quiet_since = now
            self.draining.append(cur)
            self.current = self._open(self.path, offset=0)
            out.extend((text, self.current.position(off)) for text, off in self.current.read_lines())
        elif st.st_size < cur.offset:
            # copytruncate: the same file, emptied under us.
            self.rotations += 1
            log.info("%s was truncated (copytruncate): reading it from the start", self.path)
            self._seek(cur, 0)
            out.extend((text, cur.position(off)) for text, off in cur.read_lines())
        return out

    def close(self) -> None:
        for f in self.draining:
            f.close()
        self.draining.clear()
        if self.current is not None:
            self.current.close()
            self.current = None


# -- the journal ----------------------------------------------------------------------------

MAIL_FACILITY = 2  # RFC 5424 6.2.1: facility 2 is the mail system; Postfix logs there by default


def journalctl() -> str | None:
    return shutil.which("journalctl")


def journal_command(cursor: str | None, binary: str = "journalctl", follow: bool = True,
                    extra: tuple[str, ...] = ()) -> list[str]:
    cmd = [binary, "-o", "json", "--no-pager", "--all", f"SYSLOG_FACILITY={MAIL_FACILITY}", *extra]
    if follow:
        cmd.append("-f")
    cmd += ["--after-cursor", cursor] if cursor else (["-n", "0"] if follow else [])
    return cmd


def journal_line(record: dict[str, Any]) -> LogLine | None:
    """A journal entry (journalctl -o json) as the log line syslog would have written."""
    message = record.get("MESSAGE")
    if isinstance(message, list):  # journalctl writes non-UTF-8 messages as arrays of bytes
        try:
            message = bytes(message).decode("utf-8", "replace")
        except (TypeError, ValueError):
            return None
    if not isinstance(message, str):
        return None
    program = record.get("SYSLOG_IDENTIFIER") or record.get("_COMM") or ""
    pid = record.get("SYSLOG_PID") or record.get("_PID")
    when = None
    ts = record.get("__REALTIME_TIMESTAMP")
    if ts and str(ts).isdigit():
        when = datetime.fromtimestamp(int(ts) / 1e6, timezone.utc)
    return LogLine(when, record.get("_HOSTNAME", ""), program, int(pid) if str(pid or "").isdigit() else None,
                   message)
