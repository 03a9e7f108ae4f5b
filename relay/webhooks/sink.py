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

from ..events import Sink
from ..spool import Spool, SpoolWriter
from .sender import Sender

log = logging.getLogger("relay.webhooks")


class WebhookSink(Sink):
    def __init__(self, settings, on_failure, metrics=None, flush_seconds: float = 5.0):
        self.settings = settings
        self.name = f"webhook:{settings.display}"
        self._flush_seconds = flush_seconds
        if settings.secret is None:
            log.warning("webhook %s has no secret_file: its batches are not signed, and the receiver cannot "
                        "tell them from forged ones", settings.display)
        self.spool = Spool(settings.spool_dir, settings.spool_max_size)
        self.sender = Sender(self.spool, settings, settings.display, metrics)
        self.writer = SpoolWriter(self.spool, "webhook", lambda exc: on_failure(self, exc), self.sender.notify,
                                  "the endpoint has not taken events for a while")

    def write(self, line: str) -> None:
        self.writer.put(line)

    def close(self) -> None:
        """Spool what is queued, then let the sender deliver for up to flush_seconds; the rest stays
        spooled for the next start (or for the relay that holds the spool, when this is a command)."""
        self.writer.close()
        if self.sender.close(self._flush_seconds):
            self.spool.close()
        else:  # its thread still uses the spool's files; they close when the process ends
            log.warning("webhook %s: still sending after %g s; the rest stays in %s for the next start",
                        self.settings.display, self._flush_seconds, self.settings.spool_dir)
