"""Delivery-error events: one flat JSON object a line, and the sinks that carry them.

A sink that fails (disk full) never blocks or breaks mail flow: the failure is logged loudly, counted,
and the event is dropped for that sink. A webhook spools to disk and retries (relay/webhooks/): an
endpoint that is down costs nothing until its spool is full. In the relay, stdout and a jsonl file are
written by a thread of their own (QueuedSink): a stdout nobody reads, or a slow disk, never holds the
event loop.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import sys
import threading
import time
import uuid
from collections import deque
from datetime import datetime, timezone
from typing import Any, Iterable

from .files import give_to_directory_owner, write_all

log = logging.getLogger("relay.events")

SCHEMA = "relay.event/1"
KINDS = ("rejected", "deferred", "suppressed", "policy_rejected", "bounced", "complained", "warning",
         "bounce_listed", "bounce_unlisted", "shaping_released")
# What the refusal means for the sender, so an application can act without parsing codes.
ACTIONS = {"rejected": "bounce", "suppressed": "bounce", "deferred": "retry", "bounced": "bounce",
           "complained": "none", "bounce_listed": "listed", "bounce_unlisted": "unlisted", "warning": "none",
           "shaping_released": "none"}


# The most of any text an event carries. Every string of an event (at any depth: `reply.text`,
# `dsn.diagnostic_code`, `references`, a correlation header, an address a DSN names) is cut here when
# the event is built (make_event, and Outcomes.finish for what the message's header adds): below the
# cap verbatim, above it the start is kept and a marker says how much was cut. Every event is written
# whole to every sink (JSON line, journal, webhook batch, PostgreSQL row), and much of it is what a
# remote party wrote: a bounce with a 10 MB Diagnostic-Code made a 10 MB event, one with 4 MiB
# Remote-MTA and Reporting-MTA names a 12.6 MB one (review19 F3). The longest real reply in the corpora
# is 714 characters and the longest DSN diagnostic 592; classification reads the first 2,048
# (classify.py).
MAX_EVENT_TEXT = 8192
# Fields that hold an address or a host name have a smaller cap: an address is at most 256 octets
# with its angle brackets (RFC 5321 4.5.3.1.3), a DNS name at most 255 (RFC 1035 2.3.4); a DSN's
# Remote-MTA and Reporting-MTA name one host (RFC 3464 2.2.2, 2.3.5), and a report's address fields
# one address (2.3.1-2). Twice that is still an address or a name; more is not, and is cut.
MAX_EVENT_NAME = 512
NAME_FIELDS = frozenset({"sender", "recipient", "return_path", "remote_mta", "reporting_mta",
                         "original_recipient", "original_recipient_readings", "final_recipient",
                         "actual_recipient", "helo", "host",
                         "said_by", "auth_user"})


def bounded_text(text: Any, limit: int = MAX_EVENT_TEXT) -> Any:
    """`text` when it is at most `limit` characters (or not a str); else its start and a marker
    saying how many characters were cut."""
    if not isinstance(text, str) or len(text) <= limit:
        return text
    return f"{text[:limit]} [... {len(text) - limit} more characters cut by the relay]"


def bounded_fields(value: Any, name: str = "") -> Any:
    """`value` (an event, or fields going into one) with every string in it, at any depth, cut to its
    field's cap (bounded_text): MAX_EVENT_NAME for an address or host name (NAME_FIELDS, by the key
    that holds it), MAX_EVENT_TEXT for any other. Returns `value` itself when nothing was cut."""
    if isinstance(value, str):
        return bounded_text(value, MAX_EVENT_NAME if name in NAME_FIELDS else MAX_EVENT_TEXT)
    if isinstance(value, dict):
        out = {key: bounded_fields(item, key) for key, item in value.items()}
        return value if all(out[key] is value[key] for key in value) else out
    if isinstance(value, (list, tuple)):
        out = [bounded_fields(item, name) for item in value]
        return value if all(a is b for a, b in zip(out, value)) else type(value)(out)
    return value


def now_iso(ts: float | None = None) -> str:
    t = datetime.fromtimestamp(time.time() if ts is None else ts, timezone.utc)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_event(kind: str, stage: str, *, sender: str = "", recipient: str = "", message_id: str | None = None,
               session_id: str | None = None, action: str | None = None, reply: Any = None,
               classification: Any = None, upstream: Any = None, **extra: Any) -> dict:
    """Build one event with the contract's fields (DESIGN.md "Events"); extra fields are kept flat."""
    if kind not in KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    if action is None:
        if kind == "policy_rejected":
            action = "retry" if reply is not None and 400 <= reply.code < 500 else "bounce"
        else:
            action = ACTIONS[kind]
    event = {
        "schema": SCHEMA,
        "event_id": str(uuid.uuid4()),
        "time": now_iso(),
        "kind": kind,
        "stage": stage,
        "action": action,
        "sender": sender,
        "recipient": recipient,
        "message_id": message_id,
        "session_id": session_id,
    }
    if reply is not None:
        event["reply"] = reply.as_dict() if hasattr(reply, "as_dict") else reply
    if classification is not None:
        event["classification"] = classification.as_dict() if hasattr(classification, "as_dict") else classification
    if upstream is not None:
        event["upstream"] = upstream
    event.update(extra)
    return bounded_fields(event)  # every text in it, whoever wrote it (MAX_EVENT_TEXT)


_restarts_lock = threading.Lock()
_thread_restarts = 0  # sink threads of this process that failed and were started again


def count_thread_restart() -> None:
    """A sink's thread (a webhook sender, a PostgreSQL writer) failed unexpectedly and starts again
    (relay_event_sink_restarts_total): never a thread that dies in silence (review28 F2)."""
    global _thread_restarts
    with _restarts_lock:
        _thread_restarts += 1


def thread_restarts() -> int:
    return _thread_restarts


_LONE_SURROGATE = re.compile("[\udc80-\udcff]")
# Characters that end a line for a Unicode-aware reader though they are not "\n": NEL and the other
# C1 controls, U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR (Python's str.splitlines, many
# "line" readers). A header may hold them (RFC 6532), and json.dumps(ensure_ascii=False) writes them
# raw: such a reader then cuts the event in two and can read neither half. Written as \uXXXX escapes
# they are the same JSON string (RFC 8259 section 7) on one line. (C0 controls json escapes itself.)
_LINE_BREAKING = re.compile("[\u0080-\u009f\u2028\u2029]")


def _json_line(event: dict) -> str:
    """One JSON line, always valid UTF-8, whose only line end is its final "\n". Text that came in as
    bytes that are not UTF-8 holds lone surrogates (Python's surrogateescape); each stands for one byte
    and is written as that byte read as ISO 8859-1, the representation upstream replies get
    (docs/events.md)."""
    line = json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=str)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = _LONE_SURROGATE.sub(lambda m: chr(ord(m.group()) - 0xDC00), line)
        line = line.encode("utf-8", "backslashreplace").decode("utf-8")  # any other lone surrogate
    # Outside strings a JSON text holds ASCII only: every match is inside a string, where an escape fits.
    return _LINE_BREAKING.sub(lambda m: f"\\u{ord(m.group()):04x}", line) + "\n"


class Sink:
    name = "sink"

    def write(self, line: str) -> None:
        raise NotImplementedError

    def reopen(self) -> None:
        pass

    def close(self) -> None:
        pass


class StdoutSink(Sink):
    """stdout, so that journald keeps the events of a systemd service.

    The line goes to the descriptor with os.write, past sys.stdout's buffer and its lock: in the relay
    a QueuedSink's thread writes here, and may still be blocked in a write when the process exits (a
    stdout nobody reads); a thread blocked inside sys.stdout's buffer would stop the interpreter's own
    flush of it at exit (a fatal error)."""

    name = "stdout"

    def write(self, line: str) -> None:
        try:
            fd = sys.stdout.fileno()
        except (AttributeError, OSError, ValueError):  # replaced by an object without a descriptor
            sys.stdout.write(line)
            sys.stdout.flush()
            return
        write_all(fd, line.encode("utf-8"))  # a stdout inherited non-blocking is waited on


class JournalSink(Sink):
    """The systemd journal, for an operator command whose config says `events: stdout`: the relay's
    stdout is its journal stream, which another process cannot write to, so the command's events go
    to the journal directly with the same identifier (`journalctl -t relay -o cat` reads both).
    The journal's native protocol: one datagram of FIELD=value lines (systemd.journal-fields(7))."""

    SOCKET = "/run/systemd/journal/socket"

    def __init__(self, path: str = SOCKET, identifier: str = "relay"):
        self.path = path
        self.identifier = identifier
        self.name = f"journal:{path}"

    @classmethod
    def available(cls, path: str = SOCKET) -> bool:
        return os.path.exists(path)

    def write(self, line: str) -> None:
        import socket

        payload = (f"SYSLOG_IDENTIFIER={self.identifier}\nPRIORITY=6\nMESSAGE={line.rstrip(chr(10))}\n"
                   ).encode("utf-8")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(payload, self.path)


class NotDeliveredSink(Sink):
    """For an operator command whose events would go to the relay's stdout when no journal runs:
    the command cannot write to another process's output, and its own stdout is the operator's
    terminal or a pipe (`relay bounces export -`), not the event stream. So it says so on stderr,
    with the event, rather than pass it off as part of the stream."""

    name = "stdout (not the relay's)"

    def write(self, line: str) -> None:
        sys.stderr.write("note: events: stdout is the relay's own output, which this command cannot write to, "
                         "and no systemd journal is running; this event was not added to the event stream "
                         "(add a jsonl or webhook sink to keep operator events): " + line)
        sys.stderr.flush()


class JsonlSink(Sink):
    """Append-only JSON-lines file, safe under logrotate: reopened on SIGHUP
    (`reopen()`) and whenever the path no longer names the file we hold.

    Each line goes out with os.write on an O_APPEND descriptor, no buffer of ours: one write() a line
    (so that the lines of workers and commands sharing the file do not interleave), and after a write
    the disk refused half-way (ENOSPC, EFBIG) nothing of that line is kept to come out later. What the
    disk took of it stays as a torn line without its newline; the next line written (by this process
    after a failure, or by whoever opens the file next) starts with a newline, so that only the torn
    event is lost, counted as a failure, and never the one after it. A newline rather than cutting the
    torn part off as the spool does (Spool._cut_torn_tail): readers share this file, and other
    processes append to it."""

    CHECK_EVERY = 1.0  # seconds between checks that the file was moved away

    def __init__(self, path: str):
        self.path = path
        self.name = f"jsonl:{path}"
        self._fd: int | None = None
        self._ino = None
        self._checked = 0.0
        self._check_tail = True  # look whether the file ends in a torn line before the next write

    def _open(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        # Read and write: the read is of the file's last byte (_torn).
        flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC
        while True:
            try:
                fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                try:
                    fd = os.open(self.path, flags)
                except FileNotFoundError:
                    continue  # removed in between (logrotate): create it after all
                break
            # Created here: by a root-run command (`sudo relay bounces add`), for the directory's owner,
            # the relay's user, who must go on appending (as the webhook spool's files, relay/files.py).
            # Only a file created here: an existing one keeps the owner it was given (logrotate's `create`).
            try:
                give_to_directory_owner(fd, directory)
            except OSError:
                os.close(fd)
                raise
            break
        self._fd = fd
        self._ino = os.fstat(self._fd).st_ino
        self._checked = time.monotonic()
        self._check_tail = True

    def _moved(self) -> bool:
        now = time.monotonic()
        if now - self._checked < self.CHECK_EVERY:
            return False
        self._checked = now
        try:
            return os.stat(self.path).st_ino != self._ino
        except FileNotFoundError:
            return True

    def _torn(self) -> bool:
        """The file ends in a line without its newline (a write cut short, here or by another process)."""
        st = os.fstat(self._fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
            return False  # /dev/full, a FIFO: nothing to look at
        return os.pread(self._fd, 1, st.st_size - 1) != b"\n"

    def write(self, line: str) -> None:
        if self._fd is None or self._moved():
            self.reopen()
        data = line.encode("utf-8")
        self._check_tail, check = False, self._check_tail
        if check and self._torn():
            data = b"\n" + data  # end the torn line first: it alone is lost
        try:
            write_all(self._fd, data)  # a short write: the rest, unless the disk refuses
        except OSError:
            self._check_tail = True  # what the disk took of this line may be there, without its newline
            raise

    def reopen(self) -> None:
        self.close()
        self._open()

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None


# Events waiting for a QueuedSink's thread (~1 KB each: 10 MB at most). A queue this long means that
# the reader of stdout (journald, a pipe) or the disk is not keeping up: new events for that sink are
# dropped, counted in relay_event_sink_failures_total and logged, rather than make the event loop wait.
QUEUE_EVENTS = 10_000
# How long a stop waits for the queued sinks to write what they hold (systemd's TimeoutStopSec is 90 s;
# the webhooks get 5 s too, and the drain of clients comes first).
STOP_SECONDS = 5.0
_REOPEN = object()


class SinkBacklog(OSError):
    """A QueuedSink's queue is full: the event is dropped for that sink."""


class QueuedSink(Sink):
    """A sink whose write may block (stdout, a file) run by a thread of its own, behind a bounded queue,
    as the webhook's spool writer is: the event loop only appends to the queue.

    - A full queue (QUEUE_EVENTS waiting) drops the new event for this sink: write() raises SinkBacklog,
      which EventSinks counts and logs like any failed write (once every 10 s). Never a wait.
    - A write that fails in the thread (disk full) is reported to `on_failure(sink, exc)` from there.
    - reopen() (SIGHUP, logrotate) is queued too, in order with the events.
    - close() writes what is queued for up to STOP_SECONDS (stop() starts it, so that several sinks
      share one deadline); what is still queued then is logged and counted as lost. The thread is a
      daemon: one blocked for good in a write (a stdout nobody will read) does not keep the process."""

    def __init__(self, sink: Sink, on_failure, capacity: int = QUEUE_EVENTS):
        self.sink = sink
        self.name = sink.name
        self._on_failure = on_failure
        self._capacity = capacity
        self._items: deque = deque()
        self._events = 0  # events in _items
        self._cond = threading.Condition()
        self._submitted = 0
        self._done = 0
        self._stopping = False
        self._deadline = float("inf")
        self._stop_seconds = STOP_SECONDS
        self._thread = threading.Thread(target=self._run, name=f"relay-events-{sink.name}", daemon=True)
        self._thread.start()

    def write(self, line: str) -> None:
        with self._cond:
            if self._events >= self._capacity:
                raise SinkBacklog(f"{self._events} events wait to be written to {self.sink.name} (its reader or "
                                  f"disk is not keeping up); new events for it are dropped until it does")
            self._put(line)
            self._events += 1

    def reopen(self) -> None:
        with self._cond:
            self._put(_REOPEN)

    def _put(self, item) -> None:
        if self._stopping:
            raise SinkBacklog(f"{self.sink.name} is closing")
        self._items.append(item)
        self._submitted += 1
        self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until what was queued before this call is written (or failed). True when it was."""
        with self._cond:
            target = self._submitted
            return self._cond.wait_for(lambda: self._done >= target, timeout)

    def stop(self, seconds: float = STOP_SECONDS) -> None:
        with self._cond:
            if not self._stopping:
                self._stopping = True
                self._deadline = time.monotonic() + seconds
                self._stop_seconds = seconds
                self._cond.notify_all()

    def close(self) -> None:
        self.stop()
        self._thread.join(max(0.0, self._deadline - time.monotonic()))
        if self._thread.is_alive():
            with self._cond:
                lost = self._events  # the one the thread is blocked in, and those queued behind it
            log.error("event sink %s: %d event(s) not written within %g s of stopping (its reader or disk does "
                      "not take them): they are lost", self.name, lost, self._stop_seconds)
            exc = SinkBacklog(f"not written within {self._stop_seconds:g} s of stopping")
            for _ in range(lost):
                self._on_failure(self, exc)
            return  # the thread still uses the sink: its descriptor closes with the process
        self.sink.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._items or self._stopping)
                if not self._items:
                    return  # stopping, and everything is written
                item = self._items.popleft()
            try:
                if item is _REOPEN:
                    self.sink.reopen()
                else:
                    self.sink.write(item)
            except Exception as exc:
                self._on_failure(self, exc)
            with self._cond:
                self._done += 1
                if item is not _REOPEN:
                    self._events -= 1  # counted until written, for the bound and for what a stop loses
                self._cond.notify_all()


COMMAND_WEBHOOK_FLUSH = 30.0
# How long an operator command waits for a PostgreSQL event sink that does not take its events (the
# database down): the change is made already, and the command then says its audit event was lost and
# exits 2 (review24 F7: it waited 35 s and exited 0).
COMMAND_DB_FLUSH = 10.0


class EventSinks:
    """Fan-out to every configured sink."""

    def __init__(self, sinks: Iterable[Sink]):
        self.sinks = list(sinks)
        self.emitted = 0
        self.failures: dict[str, int] = {}
        self._last_complaint: dict[str, float] = {}
        self._lock = threading.Lock()  # failures come from the sinks' threads too

    @classmethod
    def from_settings(cls, settings, metrics=None, webhook_flush_seconds: float = 5.0,
                      queued: bool = True) -> "EventSinks":
        """The relay's sinks. A webhook spools to disk, so stopping waits for it only briefly
        (webhook_flush_seconds): what it has not sent goes at the next start. stdout and jsonl are
        QueuedSinks unless `queued` is false (a command, which has no event loop to keep free)."""
        inst = cls([])

        def blocking(sink: Sink) -> Sink:
            return QueuedSink(sink, inst._failed) if queued else sink

        for spec in settings.events:
            if spec.kind == "stdout":
                inst.sinks.append(blocking(StdoutSink()))
            elif spec.kind == "jsonl":
                inst.sinks.append(blocking(JsonlSink(spec.target)))
            elif spec.kind == "webhook":
                from .webhooks import WebhookSink
                inst.sinks.append(WebhookSink(spec.webhook, inst._failed, metrics, webhook_flush_seconds))
            elif spec.kind == "postgresql":
                from .events_postgresql import PostgresEventSink
                inst.sinks.append(PostgresEventSink(spec.target, spool_dir=spec.spool_dir,
                                                    spool_max_size=spec.spool_max_size, on_failure=inst._failed))
        return inst

    def webhook_spool_bytes(self) -> int:
        from .webhooks import WebhookSink
        return sum(sink.spool.last_size for sink in self.sinks if isinstance(sink, WebhookSink))

    @classmethod
    def for_command(cls, settings) -> "EventSinks":
        """The sinks of an operator command (`relay bounces ...`), run outside the relay process:
        files and webhooks as configured; a stdout sink means the relay's own output, which the
        command reaches through the journal when one runs (see JournalSink, NotDeliveredSink).
        A webhook's events go through its spool; the command delivers them itself for up to
        COMMAND_WEBHOOK_FLUSH seconds unless a running relay holds the spool (then the relay does)."""
        inst = cls.from_settings(settings, webhook_flush_seconds=COMMAND_WEBHOOK_FLUSH, queued=False)
        inst.sinks = [(JournalSink() if JournalSink.available() else NotDeliveredSink())
                      if isinstance(sink, StdoutSink) else sink for sink in inst.sinks]
        for sink in inst.sinks:
            if hasattr(sink, "wait_when_full"):
                sink.wait_when_full = True  # a command may wait; it must not drop what it announces
            if hasattr(sink, "flush_seconds"):
                sink.flush_seconds = COMMAND_DB_FLUSH
        return inst

    def lost(self) -> dict[str, int]:
        """After close(): per sink, the events it neither stored nor kept for a later try (a spool keeps
        them; a full disk or a database that never answered does not)."""
        lost = {name: n for name, n in self.failures.items() if n}
        for sink in self.sinks:
            left = sink.lost() if hasattr(sink, "lost") else 0
            if left:
                lost[sink.name] = lost.get(sink.name, 0) + left
        return lost

    def _failed(self, sink: Sink, exc: BaseException) -> None:
        with self._lock:
            self.failures[sink.name] = count = self.failures.get(sink.name, 0) + 1
            now = time.monotonic()
            # Loud, but not one line per event while a disk stays full.
            complain = now - self._last_complaint.get(sink.name, 0.0) >= 10.0
            if complain:
                self._last_complaint[sink.name] = now
        if complain:
            log.error("event sink %s failed (%s failures so far), events are being dropped: %s",
                      sink.name, count, exc)

    def emit(self, event: dict) -> None:
        line = _json_line(event)
        self.emitted += 1
        for sink in self.sinks:
            try:
                sink.write(line)
            except Exception as exc:
                self._failed(sink, exc)

    def reopen(self) -> None:
        for sink in self.sinks:
            try:
                sink.reopen()
            except Exception as exc:
                self._failed(sink, exc)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the queued sinks have written what was emitted before this call."""
        deadline = time.monotonic() + timeout
        return all(sink.flush(max(0.0, deadline - time.monotonic())) for sink in self.sinks
                   if isinstance(sink, QueuedSink))

    def close(self) -> None:
        for sink in self.sinks:
            if isinstance(sink, QueuedSink):
                sink.stop()  # all of them write what they hold meanwhile, within one STOP_SECONDS
        for sink in self.sinks:
            sink.close()
