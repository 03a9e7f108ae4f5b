"""The webhook as an event sink: `write()` hands the line to a writer thread, which appends it to the
spool (fsynced); the sender thread delivers from the spool. Neither the event loop nor mail ever waits
for the disk or the endpoint.

Durability: an event is on disk (fsynced) before it is sent, so one the receiver has seen is never sent
again under another id. Events still in memory (between `write()` and the writer's fsync, typically a
few milliseconds) are lost if the process is killed or the power fails; a clean stop or restart writes
them first. A full spool (`spool_max_size`) or a failing disk drops new events, counted and logged as a
sink failure; mail goes on.
"""

from __future__ import annotations

import logging
import queue
import threading

from ..events import Sink
from .sender import Sender
from .spool import Spool, SpoolFull

log = logging.getLogger("relay.webhooks")

MEMORY_QUEUE = 100_000   # events waiting for the writer thread; beyond, the disk is not keeping up
WRITE_BATCH = 1000       # events appended (and fsynced) at once


class WebhookSink(Sink):
    def __init__(self, settings, on_failure, metrics=None, flush_seconds: float = 5.0):
        self.settings = settings
        self.name = f"webhook:{settings.display}"
        self._on_failure = on_failure
        self._flush_seconds = flush_seconds
        if settings.secret is None:
            log.warning("webhook %s has no secret_file: its batches are not signed, and the receiver cannot "
                        "tell them from forged ones", settings.display)
        self.spool = Spool(settings.spool_dir, settings.spool_max_size)
        self._queue: queue.Queue = queue.Queue(MEMORY_QUEUE)
        self.sender = Sender(self.spool, settings, settings.display, metrics)
        self._writer = threading.Thread(target=self._write_loop, name="relay-webhook-spool", daemon=True)
        self._writer.start()

    def write(self, line: str) -> None:
        try:
            self._queue.put_nowait(line.encode("utf-8"))
        except queue.Full:
            raise OSError(f"{MEMORY_QUEUE} events wait for the spool {self.settings.spool_dir}: "
                          f"the disk is not keeping up") from None

    def _write_loop(self) -> None:
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
            why = SpoolFull(f"the spool {self.settings.spool_dir} is full ({self.spool.last_size} bytes, "
                            f"spool_max_size {self.settings.spool_max_size}): the endpoint has not taken "
                            f"events for a while; new events are dropped until it does")
        if taken:
            self.sender.notify(taken)
        for _ in lines[taken:]:
            self._on_failure(self, why)

    def close(self) -> None:
        """Spool what is queued, then let the sender deliver for up to flush_seconds; the rest stays
        spooled for the next start (or for the relay that holds the spool, when this is a command)."""
        self._queue.put(None)
        self._writer.join()
        if self.sender.close(self._flush_seconds):
            self.spool.close()
        else:  # its thread still uses the spool's files; they close when the process ends
            log.warning("webhook %s: still sending after %g s; the rest stays in %s for the next start",
                        self.settings.display, self._flush_seconds, self.settings.spool_dir)
