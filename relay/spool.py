"""A spool: events on disk, in order, until the next hop (a webhook endpoint, the events table in
PostgreSQL) has taken them, so that a next hop that is away, and a restart meanwhile, lose nothing.

A directory of append-only segment files (`000000000001.jsonl`, one event a line), a cursor
(`cursor.json`: the first event not yet delivered, and the batch in flight) and a dead-letter file.

- Any process may append (the relay, each of its workers, `relay bounces ...`): appends hold an exclusive
  flock on `lock` and are fsynced before the lock is released, so a line the sender reads is on disk.
- One process at a time delivers: the one holding the flock on `sender.lock`. It reads under a shared
  flock, so it never sees a line that is half written.
- A batch is recorded in the cursor (id, range, creation time) before its first attempt, so every retry,
  also after a restart, sends the same events under the same batch id and the receiver can deduplicate.
- A process killed in the middle of an append leaves a line without its newline; the next append cuts it
  off (it was never fsynced, never delivered, and its writer never returned).

Everything here blocks on the disk: it runs in the sinks' threads (SpoolWriter, the senders), never on
the event loop.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import queue
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

from .files import give_to_directory_owner, write_all

log = logging.getLogger("relay.spool")

MAX_BYTES = 1 << 30  # a spool's bound on disk unless its sink says (spool_max_size)
SEGMENT_BYTES = 4 << 20  # a new segment past this, so that delivered events can be deleted a file at a time
SUFFIX = ".jsonl"
CURSOR = "cursor.json"
DEAD_LETTER = "dead-letter.jsonl"


class SpoolFull(OSError):
    pass


_resets_lock = threading.Lock()
_cursor_resets = 0  # cursors of this process's spools that could not be read (relay_event_spool_cursor_resets_total)


def _count_cursor_reset() -> None:
    global _cursor_resets
    with _resets_lock:
        _cursor_resets += 1


def cursor_resets() -> int:
    return _cursor_resets


def _parse_cursor(data: bytes) -> tuple[int, int, dict | None]:
    """(segment, offset, batch in flight) of cursor.json's bytes; ValueError when they are not a cursor."""
    state = json.loads(data)
    if not isinstance(state, dict):
        raise ValueError("not a JSON object")
    segment, offset, inflight = state.get("segment"), state.get("offset"), state.get("inflight")
    if type(segment) is not int or type(offset) is not int or segment < 0 or offset < 0:
        raise ValueError("no segment and offset")
    if inflight is not None:
        if not (isinstance(inflight, dict) and isinstance(inflight.get("id"), str)
                and type(inflight.get("end")) is int and inflight["end"] >= offset
                and isinstance(inflight.get("created"), (int, float))):
            raise ValueError("a batch in flight without its id, end and time")
    return segment, offset, inflight


@dataclass
class Batch:
    id: str            # the batch id (a webhook's webhook-id), the same for every attempt
    segment: int
    start: int         # byte range of its lines in the segment
    end: int
    created: float     # wall-clock time the batch was formed (the payload's timestamp)
    lines: list[bytes]

    @property
    def oldest(self) -> float:
        """When its first event was made (the event's `time`), for give_up_after."""
        try:
            stamp = json.loads(self.lines[0]).get("time")
            return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except (ValueError, TypeError, AttributeError):
            return self.created


class Spool:
    def __init__(self, directory: Path, max_bytes: int):
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        # Delivered lines leave the disk a segment at a time: keep a segment small beside the bound.
        self.segment_bytes = max(1, min(SEGMENT_BYTES, max_bytes // 8))
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_fd = self._open(self.directory / "lock", os.O_RDWR | os.O_CREAT)
        self._sender_fd: int | None = None
        self.segment = 0   # the cursor: (segment, offset) of the first event not yet delivered
        self.offset = 0
        self.inflight: dict | None = None
        self.last_size = self.size()  # bytes on disk as of the last append or delivery (for the metrics gauge)

    def _open(self, path: Path, flags: int) -> int:
        """Open (or create) a file of the spool. An operator command run as root (`relay bounces add`)
        creates its files for the directory's owner, the relay's user, who must go on using them."""
        fd = os.open(path, flags, 0o600)
        try:
            give_to_directory_owner(fd, self.directory)
        except OSError:
            os.close(fd)
            raise
        return fd

    # --- locks ---------------------------------------------------------------------------------

    @contextmanager
    def _locked(self, kind: int):
        fcntl.flock(self._lock_fd, kind)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def try_lock_sender(self) -> bool:
        """Become the one process that delivers from this spool; then read the cursor it left."""
        if self._sender_fd is None:
            fd = self._open(self.directory / "sender.lock", os.O_RDWR | os.O_CREAT)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    return False
                raise
            self._sender_fd = fd
            self._load_cursor()
        return True

    @property
    def sending(self) -> bool:
        """This process holds the sender lock: it, and no other, delivers from the spool."""
        return self._sender_fd is not None

    def release_sender(self) -> None:
        if self._sender_fd is not None:
            os.close(self._sender_fd)  # closing the descriptor drops the flock
            self._sender_fd = None

    def close(self) -> None:
        self.release_sender()
        os.close(self._lock_fd)

    # --- segments ------------------------------------------------------------------------------

    def _segments(self) -> list[int]:
        out = []
        for name in os.listdir(self.directory):
            if name.endswith(SUFFIX) and name[:-len(SUFFIX)].isdigit():
                out.append(int(name[:-len(SUFFIX)]))
        return sorted(out)

    def _path(self, segment: int) -> Path:
        return self.directory / f"{segment:012d}{SUFFIX}"

    def size(self) -> int:
        """Bytes in the spool (segments not yet deleted: delivered lines of the current one included)."""
        total = 0
        for seg in self._segments():
            try:
                total += os.stat(self._path(seg)).st_size
            except FileNotFoundError:
                pass
        return total

    # --- writers -------------------------------------------------------------------------------

    def append(self, lines: list[bytes]) -> int:
        """Append whole lines, fsynced. Returns how many fit under max_bytes (a prefix of `lines`);
        the caller drops the rest. Raises OSError when the disk refuses (nothing half-written stays)."""
        with self._locked(fcntl.LOCK_EX):
            segments = self._segments()
            used = sum(os.stat(self._path(s)).st_size for s in segments)
            room = self.max_bytes - used
            take, size = 0, 0
            for line in lines:
                if size + len(line) > room:
                    break
                take, size = take + 1, size + len(line)
            if take == 0:
                self.last_size = used
                return 0
            segment = segments[-1] if segments else 1
            new = not segments
            if segments and os.stat(self._path(segment)).st_size >= self.segment_bytes:
                segment, new = segment + 1, True
            fd = self._open(self._path(segment), os.O_RDWR | os.O_CREAT | os.O_APPEND)
            try:
                start = self._cut_torn_tail(fd)
                try:
                    write_all(fd, b"".join(lines[:take]))
                    os.fdatasync(fd)  # the data and the new size: all a reader needs
                except OSError:
                    os.ftruncate(fd, start)  # no partial line left behind (ENOSPC mid-write)
                    raise
            finally:
                os.close(fd)
            if new:
                self._sync_directory()
            self.last_size = used + size
            return take

    @staticmethod
    def _cut_torn_tail(fd: int) -> int:
        """A line without its newline at the end is what a killed writer left: cut it off."""
        end = os.fstat(fd).st_size
        if end == 0 or os.pread(fd, 1, end - 1) == b"\n":
            return end
        pos = end
        while pos > 0:
            chunk_start = max(0, pos - 65536)
            chunk = os.pread(fd, pos - chunk_start, chunk_start)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                pos = chunk_start + nl + 1
                break
            pos = chunk_start
        os.ftruncate(fd, pos)
        return pos

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # --- the sender (holds sender.lock) --------------------------------------------------------

    def _load_cursor(self) -> None:
        path = self.directory / CURSOR
        try:
            self.segment, self.offset, self.inflight = _parse_cursor(path.read_bytes())
        except FileNotFoundError:
            self.segment, self.offset, self.inflight = 0, 0, None
        except (OSError, ValueError) as exc:
            # Unreadable (a zero-length file after a crash, a disk error, an edit): never a sender that
            # fails on it for good (review28 F2). Delivery starts again at the oldest event still
            # spooled: what was delivered from there on goes again (a webhook under a new id, PostgreSQL
            # dedupes on event_id); at-least-once rather than events lost.
            self.segment, self.offset, self.inflight = 0, 0, None
            aside = self.directory / (CURSOR + ".bad")
            try:
                os.replace(path, aside)
                kept = f"kept as {aside.name}"
            except OSError as why:
                kept = f"could not be set aside ({why.strerror or why})"
            _count_cursor_reset()
            log.error("spool %s: its cursor (%s) cannot be read (%s); it is %s, and delivery starts again at "
                      "the oldest event in the spool: events delivered before may be delivered again",
                      self.directory, CURSOR, getattr(exc, "strerror", None) or exc, kept)

    def _save_cursor(self) -> None:
        """Atomically, and on the disk before this returns: written to a temporary file, fsynced, renamed
        over the cursor, the directory fsynced. Without the fsync before the rename a power failure can
        leave a zero-length cursor.json on some file systems (XFS): review28 F2."""
        tmp = self.directory / (CURSOR + ".tmp")
        with open(self._open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "w") as fh:
            json.dump({"segment": self.segment, "offset": self.offset, "inflight": self.inflight}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.directory / CURSOR)
        self._sync_directory()

    def pending_bytes(self) -> int:
        """Bytes not yet delivered (0 when the sender has caught up)."""
        total = 0
        for seg in self._segments():
            if seg < self.segment:
                continue
            try:
                size = os.stat(self._path(seg)).st_size
            except FileNotFoundError:
                continue
            total += size - self.offset if seg == self.segment else size
        return max(0, total)

    def next_batch(self, max_events: int, max_bytes: int) -> Batch | None:
        """The batch in flight (after a restart too), else the next lines from the cursor, recorded as
        in flight before they are sent. None when there is nothing to send."""
        if self.inflight is not None:
            seg, start, end = self.segment, self.offset, int(self.inflight["end"])
            try:
                with open(self._path(seg), "rb") as fh:
                    fh.seek(start)
                    data = fh.read(end - start)
            except FileNotFoundError:
                data = b""
            if len(data) == end - start and data.endswith(b"\n"):
                return Batch(self.inflight["id"], seg, start, end, float(self.inflight["created"]),
                             data.splitlines(keepends=True))
            log.error("spool %s: the batch in flight (%s) is no longer in %s (removed by hand?); "
                      "going on from the next event there is", self.directory, self.inflight["id"],
                      self._path(seg).name)
            self.inflight = None
        while True:
            with self._locked(fcntl.LOCK_SH):
                segments = self._segments()
                if not segments:
                    return None
                if self.segment not in segments:
                    later = [s for s in segments if s > self.segment]
                    # Past the newest segment: the files were removed by hand; start again at the first.
                    self.segment, self.offset = (later or segments)[0], 0
                lines = self._read_lines(self.segment, self.offset, max_events, max_bytes)
                newer = [s for s in segments if s > self.segment]
            if lines:
                break
            if not newer:
                return None
            # Nobody writes to a segment once a newer one exists: this one is done.
            finished = self.segment
            self.segment, self.offset = newer[0], 0
            self._save_cursor()
            self._path(finished).unlink(missing_ok=True)
        end = self.offset + sum(len(line) for line in lines)
        created = time.time()
        self.inflight = {"id": f"msg_{uuid.uuid4().hex}", "end": end, "created": created}
        self._save_cursor()
        return Batch(self.inflight["id"], self.segment, self.offset, end, created, lines)

    def _read_lines(self, segment: int, offset: int, max_events: int, max_bytes: int) -> list[bytes]:
        lines: list[bytes] = []
        size = 0
        with open(self._path(segment), "rb") as fh:
            fh.seek(offset)
            while len(lines) < max_events:
                line = fh.readline()
                if not line.endswith(b"\n"):
                    break  # end of what is written (or a line being cut off as torn)
                if lines and size + len(line) > max_bytes:
                    break  # one line longer than max_bytes still goes, alone
                lines.append(line)
                size += len(line)
        return lines

    def delivered(self, batch: Batch) -> None:
        self.segment, self.offset, self.inflight = batch.segment, batch.end, None
        self._save_cursor()
        self.last_size = self.size()

    def dead_letter(self, batch: Batch, error: str, attempts: int) -> None:
        """Move the batch to dead-letter.jsonl (one JSON object a line, a batch each: its webhook-id, why,
        and its events as they would have been sent), then go on past it."""
        head = json.dumps({"webhook_id": batch.id, "dead_lettered": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                   time.gmtime()),
                           "attempts": attempts, "last_error": error}, separators=(",", ":"))
        record = (head[:-1].encode() + b',"events":[' + b",".join(line.rstrip(b"\n") for line in batch.lines)
                  + b"]}\n")
        fd = self._open(self.directory / DEAD_LETTER, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            os.write(fd, record)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.delivered(batch)


MEMORY_QUEUE = 100_000   # events waiting for the writer thread; beyond, the disk is not keeping up
WRITE_BATCH = 1000       # events appended (and fsynced) at once


class SpoolWriter:
    """Appends a sink's events to its spool from a thread of its own, a batch per fsync, so that neither
    the event loop nor mail waits for the disk. Events still in memory (between `put()` and the fsync,
    typically a few milliseconds) are lost if the process is killed; `close()` writes them first.
    A full spool or a failing disk drops new events: `on_failure(exc)` once per dropped event."""

    def __init__(self, spool: Spool, name: str, on_failure: Callable[[BaseException], None],
                 on_appended: Callable[[int], None], full_because: str):
        self.spool = spool
        self._on_failure = on_failure
        self._on_appended = on_appended
        self._full_because = full_because  # why a spool fills up: the next hop has not taken events
        self._queue: queue.Queue = queue.Queue(MEMORY_QUEUE)
        self._thread = threading.Thread(target=self._run, name=f"relay-spool-{name}", daemon=True)
        self._thread.start()

    def put(self, line: str) -> None:
        try:
            self._queue.put_nowait(line.encode("utf-8"))
        except queue.Full:
            raise OSError(f"{MEMORY_QUEUE} events wait for the spool {self.spool.directory}: "
                          f"the disk is not keeping up") from None

    def close(self) -> None:
        """Write what is queued, then stop."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        stop = False
        while not stop:
            lines = [self._queue.get()]
            while len(lines) < WRITE_BATCH:
                try:
                    lines.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if None in lines:
                stop = True
                lines = [line for line in lines if line is not None]
            if lines:
                self._append(lines)

    def _append(self, lines: list[bytes]) -> None:
        try:
            taken = self.spool.append(lines)
        except OSError as exc:
            taken, why = 0, exc
        else:
            why = None
        if why is None and taken < len(lines):
            why = SpoolFull(f"the spool {self.spool.directory} is full ({self.spool.last_size} bytes, "
                            f"spool_max_size {self.spool.max_bytes}): {self._full_because}; new events are "
                            f"dropped until it does")
        if taken:
            self._on_appended(taken)
        for _ in lines[taken:]:
            self._on_failure(why)
