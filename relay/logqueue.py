"""`relay serve`'s log lines written by a thread of their own, never by the event loop.

stderr is the journal's stream under systemd, or a pipe (`relay serve 2>&1 | logger`). When its reader
stalls (journald busy or restarting, a pipe nobody reads), the pipe fills and a write blocks: written
by logging.StreamHandler, on the thread that logged, one WARNING on the event loop held every session
until the reader came back. Here the loop only formats the line and appends it to a bounded queue
(relay.events.QueuedSink, as the events on stdout are written); the queue's thread writes it. A full
queue drops new lines and counts them (relay_log_lines_dropped_total); the next line that fits says how
many were dropped. At exit (logging.shutdown(): the process's end, a worker's end) what is queued is
written for up to STOP_SECONDS, then given up: a stderr nobody will read again never keeps the process.

Lines are formatted where they are logged, from the same records and format as before: the change
moves the write, never what a line says (nothing more of a record, e.g. its arguments, is kept).
"""

from __future__ import annotations

import logging
import os
import threading
import weakref

from .events import QueuedSink, Sink, SinkBacklog
from .files import write_all

# Lines waiting for the writer (~150 bytes each, a traceback a few KB: a few MB at most).
QUEUE_LINES = 10_000
# How long the end of a process waits for its queued lines (systemd's TimeoutStopSec is 90 s).
STOP_SECONDS = 5.0
FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"


class StderrSink(Sink):
    """Descriptor 2, past sys.stderr's buffer and its lock (as events.StdoutSink writes stdout): the
    writer thread may still be blocked in a write when the process exits."""

    name = "stderr"

    def __init__(self, fd: int = 2):
        self.fd = fd

    def write(self, line: str) -> None:
        # backslashreplace: a line holding a lone surrogate (raw bytes of a hostile peer) is written
        # rather than lost, as StreamHandler's stderr (errors=backslashreplace) wrote it.
        write_all(self.fd, line.encode("utf-8", "backslashreplace"))


class QueuedLogHandler(logging.Handler):
    """A logging handler that formats on the caller's thread and writes on a thread of its own."""

    def __init__(self, sink: Sink | None = None, capacity: int = QUEUE_LINES, stop_seconds: float = STOP_SECONDS):
        super().__init__()
        self._sink = sink if sink is not None else StderrSink()
        self._capacity = capacity
        self._stop_seconds = stop_seconds
        self.dropped = 0  # lines dropped: queue full, a failed write, or still queued when the writer gave up
        self._unreported = 0  # of those, the ones no line has told of yet
        # The counts' own lock: the writer thread counts too, and logging.shutdown() holds the handler's
        # lock while close() waits for that thread.
        self._count_lock = threading.Lock()
        self._closed = False
        self._queue = self._new_queue()
        # fork() copies only the thread that forks: a worker (relay.workers) needs a writer of its own.
        # What the parent had queued is the parent's to write.
        # (Weakly: a handler closed and dropped is not kept alive by the registration.)
        renew = weakref.WeakMethod(self._after_fork)
        os.register_at_fork(after_in_child=lambda: (renew() or (lambda: None))())

    def _new_queue(self) -> QueuedSink:
        return QueuedSink(self._sink, self._failed, capacity=self._capacity)

    def _after_fork(self) -> None:
        if not self._closed:
            self._count_lock = threading.Lock()  # a copy of one the parent's writer may have held
            self._queue = self._new_queue()
            self._unreported = 0

    def _failed(self, _sink, _exc) -> None:
        # From the writer thread (EPIPE, EBADF: stderr closed) or at close: no stderr to tell it on.
        with self._count_lock:
            self.dropped += 1
            self._unreported += 1

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
        except Exception as exc:
            # logging.Handler.handleError would print a traceback to stderr here, on the caller's thread
            # (the event loop): the one line is queued instead. The format string only, never its
            # arguments (they may be anything a caller passed).
            line = (f"logging error: {type(exc).__name__} formatting a {record.levelname} line of "
                    f"{record.name} ({str(record.msg)[:200]!r})\n")
        with self._count_lock:
            unreported, self._unreported = self._unreported, 0
        if unreported:
            try:
                self._queue.write(f"{unreported} log line(s) dropped: stderr did not take them fast enough "
                                  f"(its reader stalled)\n")
            except SinkBacklog:
                with self._count_lock:
                    self._unreported += unreported
                self._failed(None, None)
                return
        try:
            self._queue.write(line)
        except SinkBacklog:
            self._failed(None, None)

    def flush(self) -> None:
        """Nothing to do on the caller's thread: the writer writes as soon as it can; close() waits."""

    def wait_written(self, timeout: float) -> bool:
        """Wait until the lines logged before this call are written (or failed). True when they were."""
        return self._queue.flush(timeout)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.stop(self._stop_seconds)
            self._queue.close()  # what is still queued after STOP_SECONDS is counted in `dropped`
        super().close()


_installed: QueuedLogHandler | None = None


def install(level: str | int) -> QueuedLogHandler:
    """The root logger writes through one QueuedLogHandler on stderr, at `level` (relay serve)."""
    global _installed
    handler = QueuedLogHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    _installed = handler
    return handler


def dropped() -> int:
    """Lines the installed handler dropped so far (0 when none is installed: a command, a test)."""
    return _installed.dropped if _installed is not None else 0
