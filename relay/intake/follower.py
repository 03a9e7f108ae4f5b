"""Following Postfix's log as it grows: a file across logrotate, or the systemd journal.

A file is followed by polling (no inotify dependency; a poll every half second costs nothing):

- rename rotation (logrotate's default, `postfix logrotate` for maillog_file): the path names a new
  file. What the writer still appends to the old one for a few seconds (syslog daemons and postlogd
  reopen only when told) is read from the old file descriptor until it has been quiet for
  `drain_seconds`, then the new file is read from its start.
- copytruncate: the same file shrinks below the position read so far; reading starts again at 0.
  (Lines written between logrotate's copy and its truncate are lost: that is copytruncate's own
  weakness, documented by logrotate.)
- replaced by a copy of itself (`sed -i` on the log, a copy moved or copied back): the new file is
  read from the first byte where it differs from what was read of the old one (_ReadBefore); a new
  log differs in its first line and is read from its start as above, a copy is read on where the old
  file was left (before, its lines were read again and their events written twice).

Where it stopped is kept in the state directory (`postfix-log.cursor`, JSON, replaced atomically):
the file's device and inode, the offset after the last complete line read, and hashes of the
file's first bytes (an inode number can be reused by a new file) and of the bytes before the offset.
After a restart:

- same file, head unchanged: continue at the offset;
- the file was rotated meanwhile: finish the old one if it is still in the directory (same inode),
  then read the new one from its start;
- the file was replaced by a copy of itself (same first bytes, same bytes before the offset): continue
  at the offset;
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
import signal
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..logsample import SampledLog
from .postfix_log import LogLine

log = logging.getLogger("relay.intake.follower")
_cut_log = SampledLog(log)  # a log full of garbage: every cut counted, logged once a minute

CURSOR_FILE = "postfix-log.cursor"
HEAD_BYTES = 256  # enough to tell two files apart: the first lines carry timestamps and queue ids
READ_BYTES = 1 << 20
# The longest line handed on. A syslog message is a few KiB at most (RFC 5424 6.1: 2,048 octets should
# be accepted; rsyslog's default maxMessageSize is 8 KiB), Postfix's own lines far less. A longer run
# without a newline (NULs a crash or a filesystem's recovery leaves in a log) was kept in memory whole and
# copied again at every read, quadratic (review26 F4: 256 MiB held 1 GB and 42 s): past this it is
# skipped up to its newline, counted, and logged.
MAX_LINE = 64 * 1024


@dataclass(frozen=True)
class FilePosition:
    """Where reading stopped in one file: after the last complete line."""

    path: str
    dev: int
    inode: int
    offset: int
    head_len: int
    head: str  # sha256 of the file's first head_len bytes
    # sha256 of the tail_len bytes before offset (the last line(s) read): with the head, what tells a
    # copy of the file put back in its place (sed -i) from a new log (absent from older cursors)
    tail_len: int = 0
    tail: str = ""

    def as_dict(self) -> dict:
        return {"kind": "file", **asdict(self)}


class CursorFile:
    """The follower's position in the state directory, replaced atomically (write, fsync, rename)."""

    def __init__(self, directory: Path, name: str = CURSOR_FILE):
        self.path = Path(directory) / name
        # Saves run in worker threads, and a follower stopped during one (its task cancelled while
        # the thread goes on) saves again from stop(): two writers of the one .tmp file, and the
        # second rename found it gone (FileNotFoundError at stop). One save at a time.
        self._lock = threading.Lock()

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
        with self._lock:
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


def _tail(fd, offset: int, length: int) -> str:
    data = os.pread(fd, length, offset - length) if length else b""
    return hashlib.sha256(data).hexdigest()


def _first_difference(a: bytes, b: bytes) -> int:
    """The index of the first byte where a and b differ (the shorter one's length when one is the
    other's start)."""
    n = min(len(a), len(b))
    at = 0
    while at < n and a[at:at + 4096] == b[at:at + 4096]:
        at += 4096
    for i in range(at, min(at + 4096, n)):
        if a[i] != b[i]:
            return i
    return n


class _ReadBefore:
    """What was read of the file the log's path named before it was replaced or truncated, to tell a
    copy of that file put back in its place (`sed -i` on the log, a copy moved or copied back) from a
    new log. Its lines were read already: reading them again wrote every event a second time.

    The rule: the new file is read from the first byte where it differs from what was read of the old
    one (from the start of that line). A new log (rename rotation, copytruncate) differs at once, in
    its first line's time stamp, and is read from its start as before; a copy is read on from where
    the old file was left. With the old file still open (a new inode: rename, sed -i) its bytes are
    compared, as the new file grows (a copy being written is waited for; lines the writer appended
    to the old file after the copy was taken are read from the old file, and what it then writes to
    the new one differs from them). When the same file was emptied and written again (its old bytes
    are gone), only the first and the last HEAD_BYTES read are known: a file that starts with the
    same bytes is waited for until it is as long as what was read, then resumed there when the bytes
    before that point are the last ones read too, else read from its start; one that stops growing
    shorter than that (for drain_seconds) is read from its start (as before: a line read twice
    rather than a line lost)."""

    def __init__(self, f: "_OpenFile", keep_open: bool):
        self.offset = f.offset
        self.head = f.head_bytes
        self.tail = f.tail_bytes
        self.fd = os.dup(f.fd) if keep_open else None
        self.size_seen = -1
        self.since = 0.0

    def close(self) -> None:
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None

    def verdict(self, f: "_OpenFile", now: float, patience: float) -> tuple[bool, int]:
        """(whether to read on, and from which offset of f): (False, n) waits, n bytes already known."""
        size = os.fstat(f.fd).st_size
        if self.fd is not None:
            pos = start = f.offset
            limit = min(size, self.offset)
            while pos < limit:
                new = os.pread(f.fd, min(READ_BYTES, limit - pos), pos)
                if not new:
                    break
                old = os.pread(self.fd, len(new), pos)
                if new != old:
                    cut = new.rfind(b"\n", 0, _first_difference(new, old))
                    return True, pos + cut + 1 if cut >= 0 else start
                cut = new.rfind(b"\n")
                if cut >= 0:
                    start = pos + cut + 1
                pos += len(new)
            if size >= self.offset:
                return True, self.offset
            return False, start
        if size >= self.offset:
            same = os.pread(f.fd, len(self.head), 0) == self.head and \
                os.pread(f.fd, len(self.tail), self.offset - len(self.tail)) == self.tail
            return True, self.offset if same else 0
        first = os.pread(f.fd, min(size, len(self.head)), 0)
        if first != self.head[:len(first)]:
            return True, 0
        if size > len(self.head):
            if size != self.size_seen:
                self.size_seen, self.since = size, now
            elif now - self.since >= patience:
                return True, 0
        return False, 0


class _OpenFile:
    def __init__(self, path: Path, fd: int, offset: int, on_cut=None):
        self.path = path
        self.fd = fd
        self._on_cut = on_cut  # called with (path, offset) for each line past MAX_LINE skipped
        st = os.fstat(fd)
        self.dev, self.inode = st.st_dev, st.st_ino
        self.quiet_since: float | None = None
        self.mark(offset)
        self.before: _ReadBefore | None = None  # the file this one replaced, until told apart from it

    def mark(self, offset: int) -> None:
        """Start at `offset`: the first and the last HEAD_BYTES read before it, kept as bytes (_ReadBefore:
        a file emptied under us), and the digest of the first (the cursor's `head`)."""
        self.offset = offset
        self.pending = b""  # an incomplete last line, waiting for its newline (at most MAX_LINE bytes)
        self.skipping = False  # within a line past MAX_LINE: nothing of it is kept up to its newline
        self.scan = offset  # where the next read starts: after `pending` and any bytes skipped
        self.head_len = min(HEAD_BYTES, offset)
        self.head_bytes = os.pread(self.fd, self.head_len, 0) if self.head_len else b""
        self.head = hashlib.sha256(self.head_bytes).hexdigest()
        self.tail_bytes = os.pread(self.fd, self.head_len, offset - self.head_len) if self.head_len else b""

    def read_lines(self, max_bytes: int = 4 * READ_BYTES) -> list[tuple[str, int]]:
        """Complete lines appended since the last call (about max_bytes of them at most: a long
        backlog comes in several calls), each with the offset after it."""
        return [(text, pos) for text, pos, _ in self._read(max_bytes)]

    def read_positioned(self, max_bytes: int = 4 * READ_BYTES) -> list[tuple[str, "_LazyPosition"]]:
        """As read_lines, each line with the cursor after it, computed only when asked for."""
        return [(text, _LazyPosition(self, pos, window)) for text, pos, window in self._read(max_bytes)]

    def _read(self, max_bytes: int) -> list[tuple[str, int, tuple[bytes, int]]]:
        """read_lines' lines, each with its read's window: (the bytes read, with the HEAD_BYTES before
        them, and the offset where they start), one object shared by the lines of one read. A line longer
        than MAX_LINE is skipped up to its newline (the offset passes it then): only MAX_LINE bytes of an
        unfinished line are ever held, and a call reads about max_bytes at most, lines or not."""
        out: list[tuple[str, int, tuple[bytes, int]]] = []
        read = 0
        while read < max_bytes:
            chunk = os.pread(self.fd, READ_BYTES, self.scan)
            if not chunk:
                return out
            base, read = self.scan, read + len(chunk)
            self.scan += len(chunk)
            end = chunk.rfind(b"\n")
            if end < 0:
                self._hold(chunk)
                continue
            skipped = self.skipping
            if skipped:
                # The bytes before this read belong to a line skipped, not kept: the window's start is read
                # again (here, while the file is the one just read; a cursor never reads it later).
                n = min(HEAD_BYTES, base)
                window = (os.pread(self.fd, n, base - n) + chunk[:end + 1], base - n)
            else:
                window = (self.tail_bytes + self.pending + chunk[:end + 1], self.offset - len(self.tail_bytes))
            pos = base
            for i, raw in enumerate(chunk[:end + 1].split(b"\n")[:-1]):
                pos += len(raw) + 1
                if i == 0:
                    if skipped:  # the end of a line past MAX_LINE, counted when it passed the limit
                        self.skipping = False
                        continue
                    raw = self.pending + raw
                if len(raw) > MAX_LINE:
                    self._cut(pos - len(raw) - 1)
                    continue
                out.append((raw.decode("utf-8", "replace"), pos, window))
            self.pending = b""
            self.offset = pos
            self._hold(chunk[end + 1:])
            self.tail_bytes = window[0][-HEAD_BYTES:]
            if self.head_len < HEAD_BYTES and self.offset > self.head_len:
                self.head_len = min(HEAD_BYTES, self.offset)
                self.head_bytes = os.pread(self.fd, self.head_len, 0)
                self.head = hashlib.sha256(self.head_bytes).hexdigest()
        return out

    def _hold(self, rest: bytes) -> None:
        """Keep `rest`, bytes of a line not yet ended, unless the line is now past MAX_LINE."""
        if self.skipping or not rest:
            return
        if len(self.pending) + len(rest) > MAX_LINE:
            self.pending, self.skipping = b"", True
            self._cut(self.offset)
            return
        self.pending += rest

    def _cut(self, offset: int) -> None:
        if self._on_cut is not None:
            self._on_cut(self.path, offset)

    def position(self, offset: int) -> FilePosition:
        """The cursor after `offset`, from the file as it is now (_LazyPosition: from the bytes read)."""
        head_len = min(HEAD_BYTES, offset)
        head = self.head if head_len == self.head_len else _head(self.fd, head_len)
        return FilePosition(str(self.path), self.dev, self.inode, offset, head_len, head,
                            head_len, _tail(self.fd, offset, head_len))

    def close(self) -> None:
        if self.before is not None:
            self.before.close()
            self.before = None
        try:
            os.close(self.fd)
        except OSError:
            pass


class _LazyPosition:
    """The cursor after one line read, computed only when asked for (as_dict): only an observation's
    line and a batch's last are saved, and a digest of the bytes before every line read cost more than
    reading it. It keeps what it needs, the read's window (shared by the lines of one read) and the
    file's head digest, so that it never reads the file again: by then the file may have been truncated
    or replaced. The same FilePosition as _OpenFile.position gave for the bytes read."""

    __slots__ = ("path", "dev", "inode", "offset", "_head", "_window")

    def __init__(self, f: _OpenFile, offset: int, window: tuple[bytes, int]):
        self.path, self.dev, self.inode, self.offset = f.path, f.dev, f.inode, offset
        # A line past the file's first HEAD_BYTES: the file's head digest, taken when those were first
        # read (f.head_len is HEAD_BYTES by then). Before it: the bytes before the line are its head.
        self._head = f.head if offset >= HEAD_BYTES else None
        self._window = window

    def resolve(self) -> FilePosition:
        data, start = self._window
        head_len = min(HEAD_BYTES, self.offset)
        end = self.offset - start
        # A window starts HEAD_BYTES (or the whole file, when shorter) before its first line's start.
        head = self._head if self._head is not None else hashlib.sha256(data[:end]).hexdigest()
        tail = hashlib.sha256(data[end - head_len:end]).hexdigest()
        return FilePosition(str(self.path), self.dev, self.inode, self.offset, head_len, head, head_len, tail)

    def as_dict(self) -> dict:
        return self.resolve().as_dict()


class _GzipRemainder:
    """The lines after `offset` in a rotated file compressed since it was read (read once, whole)."""

    def __init__(self, path: Path, lines: list[tuple[str, int]], saved: dict | None = None):
        self.path = path
        self._lines = lines  # (text, offset after it in the uncompressed file)
        self._saved = saved  # the cursor it was found by: the same file's identity, for positions past it
        self.quiet_since: float | None = None

    @classmethod
    def open(cls, path: Path, saved: dict) -> "_GzipRemainder | None":
        import gzip

        try:
            with gzip.open(path, "rb") as f:
                head = f.read(saved["head_len"])
                if hashlib.sha256(head).hexdigest() != saved["head"]:
                    return None
                skip = saved["offset"] - len(head)
                while skip > 0:
                    chunk = f.read(min(skip, READ_BYTES))
                    if not chunk:
                        return None  # shorter than what was read: not that file
                    skip -= len(chunk)
                data = f.read()
        except (OSError, EOFError, ValueError):
            return None
        end = data.rfind(b"\n")
        lines, offset = [], saved["offset"]
        for raw in data[:end + 1].split(b"\n")[:-1]:
            offset += len(raw) + 1
            lines.append((raw.decode("utf-8", "replace"), offset))
        return cls(path, lines, saved)

    def read_lines(self) -> list[tuple[str, int]]:
        lines, self._lines = self._lines, []
        return lines

    def read_positioned(self) -> list[tuple[str, FilePosition]]:
        """As read_lines, each line with the cursor after it: the same file (device, inode, head) at the
        offset in its uncompressed bytes, which _GzipRemainder.open finds again after a restart."""
        s = self._saved
        return [(text, FilePosition(s["path"], s["dev"], s["inode"], offset, s["head_len"], s["head"]))
                for text, offset in self.read_lines()]

    def close(self) -> None:
        self._lines = []


class FileFollower:
    """Complete lines of a log file as it grows and rotates (synchronous: run `poll` in a thread)."""

    def __init__(self, path: Path, cursor: dict | None = None, drain_seconds: float = 5.0):
        self.path = Path(path)
        self.drain_seconds = drain_seconds
        self.lines_cut = 0  # lines longer than MAX_LINE skipped (relay_postfix_log_lines_cut_total)
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
                f.mark(saved["offset"])
                log.info("following %s from offset %d (resumed)", self.path, saved["offset"])
                self.current = f
                return
            f.close()
        if saved.get("tail") and st.st_size >= saved["offset"]:
            # Replaced by a copy of itself (sed -i, a copy put back) while relay was stopped: the same
            # first bytes and the same bytes before the offset (the last lines read), so the lines up
            # to the offset were read already.
            f = self._open(self.path, offset=0)
            if _head(f.fd, saved["head_len"]) == saved["head"] and \
                    _tail(f.fd, saved["offset"], saved.get("tail_len", 0)) == saved["tail"]:
                f.mark(saved["offset"])
                log.info("%s was replaced by a copy of the file read before: following it from offset %d",
                         self.path, saved["offset"])
                self.current = f
                return
            f.close()
        # Rotated (renamed, copied and truncated, compressed) or replaced while relay was stopped.
        old = self._find_rotated(saved)
        if old is not None:
            log.info("%s was rotated while relay was stopped: finishing %s first", self.path, old.path)
            self.draining.append(old)
        else:
            log.warning("%s was rotated or replaced while relay was stopped and the old file was not found "
                        "beside it: lines after offset %d of it were not read", self.path, saved["offset"])
        self.current = self._open(self.path, offset=0)

    def _find_rotated(self, saved: dict):
        """The file read last time, among the rotated files beside the log (mail.log.1, maillog.20261129-1134.gz):
        by its inode, else by its first bytes (copytruncate's copy, a compressed file), newest first."""
        try:
            entries = [e for e in os.scandir(self.path.parent)
                       if e.name.startswith(self.path.name) and e.name != self.path.name and e.is_file()]
        except OSError:
            return None
        entries.sort(key=lambda e: e.stat().st_mtime, reverse=True)
        by_inode = [e for e in entries if (e.stat().st_dev, e.stat().st_ino) == (saved["dev"], saved["inode"])]
        for entry in by_inode + [e for e in entries if e not in by_inode]:
            if entry.name.endswith(".gz"):
                rest = _GzipRemainder.open(Path(entry.path), saved)
                if rest is not None:
                    return rest
                continue
            if entry.stat().st_size < saved["offset"]:
                continue
            try:
                f = self._open(Path(entry.path), offset=0)
            except OSError:
                continue
            if _head(f.fd, saved["head_len"]) == saved["head"]:
                f.mark(saved["offset"])
                return f
            f.close()
        return None

    def _cut(self, path: Path, offset: int) -> None:
        self.lines_cut += 1
        _cut_log.warning("line-cut", "%s: a line longer than %d bytes at offset %d skipped up to its newline "
                                     "(not a log line: NULs or garbage in the log?)", path, MAX_LINE, offset)

    def _open(self, path: Path, offset: int | None) -> _OpenFile:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        if offset is None:
            offset = os.fstat(fd).st_size
            # Start after the last complete line: a half-written line would be read as a whole one.
            if offset:
                tail = os.pread(fd, min(offset, 65536), offset - min(offset, 65536))
                offset -= len(tail) - (tail.rfind(b"\n") + 1)
        return _OpenFile(path, fd, offset, self._cut)

    def _read_current(self, f: _OpenFile, now: float) -> list[tuple[str, _LazyPosition]]:
        """The new lines of the followed file; while it is not yet told apart from the file it replaced
        (_ReadBefore), none."""
        if f.before is not None:
            read_on, offset = f.before.verdict(f, now, self.drain_seconds)
            if offset != f.offset:
                f.mark(offset)
            if not read_on:
                return []
            if offset:
                log.info("%s was replaced by a copy of the file read before (sed -i, a copy put back): its "
                         "first %d bytes were read already, reading on from there", self.path, offset)
            f.before.close()
            f.before = None
        return f.read_positioned()

    def lines_before(self, max_bytes: int) -> list[str]:
        """Up to max_bytes of complete lines before where a resumed follower starts reading: what
        cleanup and qmgr logged about messages whose results are still to come."""
        first = self.draining[0] if self.draining else self.current
        if not isinstance(first, _OpenFile) or first.offset == 0:
            return []
        start = max(0, first.offset - max_bytes)
        data = os.pread(first.fd, first.offset - start, start)
        if start:
            data = data[data.find(b"\n") + 1:]  # the first line is cut: drop it
        return [raw.decode("utf-8", "replace") for raw in data.split(b"\n")[:-1]]

    # -- reading ------------------------------------------------------------------------------

    def poll(self) -> list[tuple[str, _LazyPosition | None]]:
        """Every complete line available now, in order, each with the position to save after it (for
        lines of a rotated file being drained: its own, until the new file has been read from, then
        None: the cursor follows the current file; _cursor_may_stay)."""
        out: list[tuple[str, _LazyPosition | None]] = []
        now = time.monotonic()
        for i, old in enumerate(list(self.draining)):
            if self._cursor_may_stay(old, self.draining[i + 1:]):
                lines = old.read_positioned()
                out.extend(lines)
            else:
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
        out.extend(self._read_current(cur, now))
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return out  # renamed away, the new one not created yet: keep reading the old one
        if (st.st_dev, st.st_ino) != (cur.dev, cur.inode):
            # Rotated by rename: the old file is drained, the new one read from its start; or replaced
            # by a copy of itself (sed -i): read on where the old one was left (_ReadBefore).
            self.rotations += 1
            cur.quiet_since = now
            self.draining.append(cur)
            new = self._open(self.path, offset=0)
            new.before = _ReadBefore(cur, keep_open=True)
            if cur.before is not None:
                cur.before.close()
                cur.before = None
            self.current = new
            out.extend(self._read_current(new, now))
        elif st.st_size < cur.offset:
            # copytruncate: the same file, emptied under us (or a copy being written back into it).
            self.rotations += 1
            log.info("%s was truncated (copytruncate, or a copy written back into it): reading it from the start "
                     "where it differs from what was read", self.path)
            if cur.before is not None:
                cur.before.close()
            cur.before = _ReadBefore(cur, keep_open=False)
            cur.mark(0)
            out.extend(self._read_current(cur, now))
        return out

    def _cursor_may_stay(self, old, newer: list) -> bool:
        """Whether the lines still read from a rotated file may carry the cursor (their own file's): only
        while nothing of the files after it was read (a restart then finishes that file by its inode and
        reads the new one from its start), and only while it is still in the directory to be found.
        Without a cursor, a restart read them again and wrote their events twice (review30 D4:
        logrotate's `create` renames, and syslog writes on into the renamed file until postrotate's HUP).
        Once the new file was read from, its cursor stays: a line of the old file is then lost at a
        restart rather than the new file's read twice."""
        if any(f.offset for f in newer if isinstance(f, _OpenFile)):
            return False
        if self.current is not None and self.current.offset:
            return False
        if isinstance(old, _GzipRemainder):
            return old._saved is not None
        try:
            return os.fstat(old.fd).st_nlink > 0
        except OSError:
            return False

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
    """journalctl reading the mail facility as JSON: after `cursor`, or everything (None: the journal
    held no mail entry when the follower first started)."""
    cmd = [binary, "-o", "json", "--no-pager", "--all", f"SYSLOG_FACILITY={MAIL_FACILITY}", *extra]
    if follow:
        cmd.append("-f")
    # -n all in both cases: following, journalctl shows only the last 10 entries by default, and with
    # --after-cursor it printed 10 entries after the cursor, then waited for the journal to change before
    # the rest (review30 D5: a backlog logged while relay was stopped waited, on a quiet host for ever).
    cmd += ["--after-cursor", cursor, "-n", "all"] if cursor else ["-n", "all"]
    return cmd


# The fields journal_line reads (journalctl adds its own: __CURSOR, the time stamps, _BOOT_ID).
JOURNAL_FIELDS = ("MESSAGE", "SYSLOG_IDENTIFIER", "_COMM", "SYSLOG_PID", "_PID", "_HOSTNAME")


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
    host = record.get("_HOSTNAME")
    if not isinstance(program, str):  # a field given twice (an array) or written as bytes: not a name
        program = ""
    # Correlation keys on the host: an array there (journal-remote input) raised TypeError in the
    # tracker and ended the reading task.
    return LogLine(when, host if isinstance(host, str) else "", program,
                   int(pid) if str(pid or "").isdigit() else None, message)


# -- ending a child within a deadline -------------------------------------------------------------

END_SECONDS = 5.0


async def _ended(proc, deadline: float = END_SECONDS) -> bytes:
    """Kills `proc` and its process group, reads both pipes to their end and reaps it, within
    `deadline` seconds however it goes; returns what it wrote on stderr.

    Both pipes are read to their end, not only stderr: in Python 3.11 Process.wait() returns once the
    child has exited *and* every pipe transport has seen its end (cpython issue #119710), and a stdout
    reader paused with more than twice its limit read ahead (journalctl far ahead of the follower)
    reads no more, so never sees it. Killed, journalctl writes nothing more: what is left is bounded.
    When the exit was reported after wait() began (stderr's end seen first, the usual order on a
    loaded machine), that wait() waited for ever: stop() hung in the test under load.

    Shielded: a second cancellation of the caller (a stop() of its own deadline) must not leave the
    child unreaped or its pipes open; the ending goes on to its own deadline."""
    import asyncio

    async def end() -> bytes:
        if proc.returncode is None:
            for kill in (lambda: os.killpg(proc.pid, signal.SIGKILL), proc.kill):
                try:
                    kill()
                    break
                except (ProcessLookupError, PermissionError):
                    continue  # not a group leader (already reaped group), or gone
        try:
            async with asyncio.timeout(deadline):
                _, err = await proc.communicate()
                return err or b""
        except TimeoutError:
            pass
        # Something outside its group (a daemonised descendant) holds a pipe open: our ends are
        # closed; the killed child itself is reaped by asyncio's child watcher.
        transport = getattr(proc, "_transport", None)  # no public way to close a Process's pipes
        if transport is not None:
            transport.close()
            log.error("journalctl (pid %d) ended, but a pipe of it stayed open for %.0f s: closed", proc.pid, deadline)
        else:  # tests/test_intake_journal.py checks that asyncio still has it
            log.error("journalctl (pid %d) ended, but a pipe of it stayed open for %.0f s, and this Python's "
                      "asyncio Process has no _transport to close it with: left open", proc.pid, deadline)
        try:
            async with asyncio.timeout(1):
                await proc.wait()
        except TimeoutError:
            pass
        return b""

    ending = asyncio.ensure_future(end())
    _ENDING.add(ending)
    ending.add_done_callback(_ENDING.discard)
    return await asyncio.shield(ending)


_ENDING: set = set()  # endings running on after their caller was cancelled (a strong reference)


def _in_thread(fn, *args):
    """fn(*args) in a daemon thread of its own, as a future of this loop (a thread that never returns
    holds neither the default executor nor the interpreter's exit)."""
    import asyncio

    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(result, exc) -> None:
        if future.done():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)

    def run() -> None:
        try:
            result, exc = fn(*args), None
        except Exception as e:  # handed to the awaiting coroutine
            result, exc = None, e
        try:
            loop.call_soon_threadsafe(settle, result, exc)
        except RuntimeError:
            pass  # the loop is gone: nobody waits any more

    threading.Thread(target=run, name="relay-cursor-save", daemon=True).start()
    return future


# -- the running follower: lines -> funnel, cursor kept ------------------------------------------

class PostfixLogFollower:
    """Follows the configured log inside `relay serve` and hands every failure to the funnel.

    The cursor is saved *before* a failure is handed over: after a crash between the two, that one
    line is not read again. A line is never processed twice into the bounce list; the price is that
    a crash at exactly that moment loses its event (logged at the next start as a resume)."""

    SAVE_EVERY = 1.0  # seconds between cursor saves while only uninteresting lines pass
    # stop()'s deadlines: the reading task (journalctl ended and reaped within END_SECONDS of it), then
    # the last cursor save. Their sum stays well below systemd's default stop timeout (90 s).
    STOP_SECONDS = 20.0
    SAVE_SECONDS = 10.0
    WARM_UP_BYTES = 8 << 20  # read again (for correlation only) before the resume point
    WARM_UP_JOURNAL_FACTOR = 4  # journal mode: journalctl's JSON for WARM_UP_BYTES of messages, about
    WARM_UP_SECONDS = 60.0  # journal mode: the reading back ends by then, whatever was read is used

    def _warm_up(self, lines: list[str]) -> None:
        from .postfix_log import parse_line

        for text in lines:
            line = parse_line(text)
            if line is not None:
                self.intake.tracker.feed(line)  # results here were handled before the restart

    def __init__(self, settings, outcomes, poll_interval: float = 0.5, drain_seconds: float = 5.0):
        from .postfix_events import PostfixLogIntake

        self.conf = settings.postfix_log
        self.outcomes = outcomes
        self.intake = PostfixLogIntake(settings)
        self.cursor = CursorFile(self.conf.state_directory)
        self.poll_interval = poll_interval
        self.drain_seconds = drain_seconds
        self.observed = 0
        self._task = None
        self._follower: FileFollower | None = None
        self._saved_at = 0.0
        self._unsaved: dict | None = None
        self._saved: dict | None = None  # the last position saved
        self._saving = None  # the thread's future of the save under way (stop() lets it end before its own)
        self.idle = None  # an asyncio.Event set whenever everything available was read (tests wait on it)

    @property
    def lines_cut(self) -> int:
        """Lines past MAX_LINE skipped in the followed file (relay_postfix_log_lines_cut_total)."""
        return self._follower.lines_cut if self._follower is not None else 0

    def reconfigure(self, settings) -> None:
        """SIGHUP: new correlation patterns apply to the next line (the log itself needs a restart)."""
        self.intake.settings = settings

    async def start(self) -> None:
        import asyncio

        if self.conf.journal and journalctl() is None:
            raise OSError("postfix_log.journal: journalctl was not found on PATH (is this a systemd system?)")
        self.cursor.path.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(self.cursor.path.parent, os.W_OK):
            raise OSError(f"postfix_log.state_directory: {self.cursor.path.parent} is not writable")
        self.idle = asyncio.Event()
        run = self._run_journal() if self.conf.journal else self._run_file()
        self._task = asyncio.get_running_loop().create_task(run)
        log.info("following Postfix's log: %s", "the journal" if self.conf.journal else self.conf.path)

    async def stop(self) -> None:
        """Ends the reading task, its journalctl and saves the cursor, each wait with a deadline: under
        systemd a stop that hangs is ended by SIGKILL after TimeoutStopSec, the cursor unsaved."""
        import asyncio

        task, self._task = self._task, None
        if task is not None:
            # Cancelled twice at most: a second cancellation for one that did not land (Python 3.11's
            # timeout and wait_for each had a way to lose one).
            for wait in (self.STOP_SECONDS / 2, self.STOP_SECONDS / 2):
                task.cancel()
                done, _ = await asyncio.wait({task}, timeout=wait)
                if done:
                    break
            if not task.done():
                log.error("the Postfix log follower did not stop within %.0f s: left behind", self.STOP_SECONDS)
            elif not task.cancelled() and task.exception() is not None:
                log.error("the Postfix log follower failed", exc_info=task.exception())
        if self._saving is not None and not self._saving.done():
            # A save the cancellation left running in its thread ends first: the position stop() saves is the
            # last word (_observe may have taken back the one that save writes).
            await asyncio.wait({self._saving}, timeout=self.SAVE_SECONDS)
        if self._unsaved is not None:
            # Its own thread, not the default executor's (its threads may all be busy, one of them in
            # this follower's own save that the cancellation left running), and a deadline: an fsync
            # that does not return (a hung NFS state directory) must not hold the relay's stop.
            saving = _in_thread(self.cursor.save, self._unsaved)
            done, _ = await asyncio.wait({saving}, timeout=self.SAVE_SECONDS)
            if not done:
                log.error("the Postfix log cursor could not be saved within %.0f s (%s): the lines read since "
                          "the last save are read again at the next start", self.SAVE_SECONDS, self.cursor.path)
            elif saving.exception() is not None:
                log.error("the Postfix log cursor could not be saved (%s): %s", self.cursor.path, saving.exception())
            else:
                self._unsaved = None
        if self._follower is not None:
            self._follower.close()
            self._follower = None

    async def _save(self, position: dict, now: bool) -> None:
        import asyncio

        self._unsaved = position
        t = time.monotonic()
        if now or t - self._saved_at >= self.SAVE_EVERY:
            # _in_thread, not the default executor: a save that never returns (a hung disk) and that
            # stop() cancelled would otherwise hold asyncio.run()'s executor shutdown at exit.
            self._saving = _in_thread(self.cursor.save, position)
            self._saving.add_done_callback(lambda f: f.cancelled() or f.exception())  # raised to the awaiter
            await asyncio.shield(self._saving)  # cancelled, the thread goes on: stop() waits for it
            self._saved_at = t
            self._unsaved = None
            self._saved = position

    async def _hand_over(self, line, position: dict | None) -> None:
        found = self.intake.take(line)
        if not found:
            if position is not None:
                await self._save(position, now=False)
            return
        for obs in found:
            await self._observe(obs, position)

    async def _observe(self, obs, position: dict | None) -> None:
        import asyncio

        if position is not None:
            before = self._unsaved if self._unsaved is not None else self._saved
            try:
                await self._save(position, now=True)  # first: a crash now must not read this line again
            except asyncio.CancelledError:
                # stop() before the line was handed over: its result is neither recorded nor written, so the
                # cursor must not pass it, or the restart never reads it again. stop() saves the position
                # before it, once this save has ended. (Cancelled in observe() instead, the line's event is
                # written all the same, its bounce list update marked as not done: the cursor passes it.)
                if before is not None:
                    self._unsaved = before
                raise
        try:
            await self.outcomes.observe(obs)
            self.observed += 1
        except Exception:  # one bad result must not stop the follower
            log.exception("could not record the Postfix delivery result for %s (queue id %s)",
                          obs.recipient, obs.fields.get("queue_id"))

    def _read_batch(self):
        """(lines read, [(observation, cursor after its line)], cursor after the last line)."""
        from .postfix_log import parse_line

        batch = self._follower.poll()
        failures = []
        last = None
        for text, position in batch:
            found = self.intake.take(parse_line(text))
            if position is not None:
                last = position  # computed below, once: a cursor is worked out only where it is saved
            if found:
                here = position.as_dict() if position is not None else None
                failures.extend((obs, here) for obs in found)
        return len(batch), failures, (last.as_dict() if last is not None else None)

    async def _run_file(self) -> None:
        import asyncio

        saved = self._saved = await asyncio.to_thread(self.cursor.load)
        self._follower = await asyncio.to_thread(FileFollower, self.conf.path, saved, self.drain_seconds)
        if saved is not None:
            # Correlation is memory: relearn the senders and Message-IDs of messages still in the queue.
            await asyncio.to_thread(self._warm_up, self._follower.lines_before(self.WARM_UP_BYTES))
        current = self._follower.current
        if saved is None and current is not None:
            # The first start reads from the end: remember that end now, so that what is logged while
            # relay is stopped before the first line arrives is still read after the next start.
            await self._save(current.position(current.offset).as_dict(), now=True)
        while True:
            try:
                # Reading, parsing and correlating run in a thread (tens of thousands of lines after a
                # restart must not stall the SMTP sessions); the funnel runs here, one failure at a time.
                lines, failures, last = await asyncio.to_thread(self._read_batch)
            except OSError as exc:
                log.error("cannot read %s: %s (retrying)", self.conf.path, exc)
                lines, failures, last = 0, [], None
                await asyncio.sleep(5)
            for obs, position in failures:
                await self._observe(obs, position)
            if last is not None:
                await self._save(last, now=False)
            if not lines:
                if self._unsaved is not None:
                    await self._save(self._unsaved, now=True)
                self.idle.set()
                await asyncio.sleep(self.poll_interval)
                self.idle.clear()

    async def _journal_tail(self, extra: tuple[str, ...]) -> str | None:
        """The cursor of the newest mail entry in the journal, None when there is none."""
        import asyncio

        cmd = [*journal_command(None, follow=False, extra=extra)[:-2], "-n", "1"]
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
                                                    start_new_session=True)
        try:
            out, err = await proc.communicate()
        finally:
            # stop() while it has not answered: the child is ended and reaped here, not left running
            # with its transport closed by the garbage collector after the loop is gone.
            if proc.returncode is None:
                await _ended(proc)
        if proc.returncode:
            raise OSError(f"journalctl failed: {err.decode('utf-8', 'replace').strip()}")
        for raw in reversed(out.splitlines()):
            try:
                return json.loads(raw).get("__CURSOR")
            except ValueError:
                continue
        return None

    async def _journal_warm_up(self, cursor: str, extra: tuple[str, ...]) -> None:
        """As the file's warm-up: the mail entries up to the resume point, newest first, back to about
        WARM_UP_BYTES of messages, fed to correlation only (their results were handled before the restart).
        Without it every message queued before a restart lost its sender, Message-ID and correlation
        fields when its result came after it (review30 D2). A failure here is logged, not fatal."""
        import asyncio

        cmd = [*journal_command(None, follow=False, extra=extra)[:-2], "--cursor", cursor, "--reverse",
               "--output-fields=" + ",".join(JOURNAL_FIELDS)]
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
                                                    limit=1 << 22, start_new_session=True)
        chunks: list[bytes] = []
        size = 0
        try:
            # JSON costs a few hundred bytes an entry beside its message (cursor, time stamps): the bound is
            # on what journalctl writes, WARM_UP_JOURNAL_FACTOR times the file mode's; and a deadline, so
            # that a journalctl that does not end cannot keep the follower from following.
            async with asyncio.timeout(self.WARM_UP_SECONDS):
                while size < self.WARM_UP_BYTES * self.WARM_UP_JOURNAL_FACTOR:
                    chunk = await proc.stdout.read(READ_BYTES)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
        except TimeoutError:
            log.warning("the journal before the resume point was not read within %.0f s: correlation relearns "
                        "from what was read", self.WARM_UP_SECONDS)
        finally:
            err = b""
            if proc.returncode is None:
                err = await _ended(proc)  # enough read (or stop()): ended and reaped
        if proc.returncode and not chunks:
            log.warning("the journal before the resume point could not be read for correlation (%s): messages "
                        "queued before the restart are reported without their sender and Message-ID",
                        (err.decode("utf-8", "replace").strip().splitlines() or [f"exit {proc.returncode}"])[-1])
            return
        data = b"".join(chunks)
        del chunks
        count = await asyncio.to_thread(self._warm_up_journal, data)
        log.info("journal: %d mail entries before the resume point read again for correlation", count)

    def _warm_up_journal(self, data: bytes) -> int:
        records = data.split(b"\n")  # an incomplete last record (the read was cut short) is not JSON
        lines = []
        for raw in records:
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict):
                line = journal_line(record)
                if line is not None:
                    lines.append(line)
        lines.reverse()  # read newest first: correlation goes oldest first
        for line in lines:
            self.intake.tracker.feed(line)
        return len(lines)

    async def _run_journal(self) -> None:
        import asyncio

        saved = self._saved = await asyncio.to_thread(self.cursor.load)
        cursor = saved.get("cursor") if saved and saved.get("kind") == "journal" else None
        extra = ("--directory", str(self.conf.journal_directory)) if self.conf.journal_directory else ()
        if cursor is not None:
            # Correlation is memory: relearn the senders and Message-IDs of messages still in the queue.
            try:
                await self._journal_warm_up(cursor, extra)
            except OSError as exc:
                log.warning("the journal before the resume point could not be read for correlation: %s", exc)
        if cursor is None:
            # The first start: only what comes next. The journal's newest mail entry is the starting
            # point, saved at once, so that a restart before the next entry still misses nothing.
            cursor = await self._journal_tail(extra)
            await self._save({"kind": "journal", "cursor": cursor}, now=True)
        backoff = 1.0
        while True:
            # Its own session (process group): ending it ends whatever it started too, which would
            # otherwise hold its pipes open.
            proc = await asyncio.create_subprocess_exec(
                *journal_command(cursor, extra=extra), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                stdin=asyncio.subprocess.DEVNULL, limit=1 << 22, start_new_session=True)
            try:
                while True:
                    try:
                        # asyncio.timeout, not wait_for: Python 3.11's wait_for returns the line when it
                        # arrives as stop() cancels this task, and the loop then read on for ever.
                        async with asyncio.timeout(self.poll_interval):
                            raw = await proc.stdout.readline()
                    except TimeoutError:
                        if self._unsaved is not None:
                            await self._save(self._unsaved, now=True)
                        self.idle.set()
                        continue
                    self.idle.clear()
                    if not raw:
                        break
                    try:
                        record = json.loads(raw)
                    except ValueError:
                        continue
                    cursor = record.get("__CURSOR") or cursor
                    await self._hand_over(journal_line(record), {"kind": "journal", "cursor": cursor})
                    backoff = 1.0
            finally:
                err = (await _ended(proc)).decode("utf-8", "replace").strip()
            log.error("journalctl ended (exit %s)%s; restarting in %.0f s", proc.returncode,
                      f": {err.splitlines()[-1]}" if err else "", backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 60.0)
