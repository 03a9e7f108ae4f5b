"""The webhook sender: one thread that takes batches from the spool and POSTs them, in order.

A batch goes when it holds `max_events` events or `max_bytes`, or `max_wait` after its first event
arrived. A failed attempt (no connection, a timeout, any status but 2xx) is retried after an exponential
back-off with jitter (`initial_delay` doubled per attempt, capped at `max_delay`, each wait drawn between
half and all of that, so that many relays do not retry in step; a `Retry-After` in seconds is honoured up
to `max_delay`). The batch keeps its `webhook-id` across attempts and restarts. A batch whose oldest event
is older than `give_up_after` when an attempt fails is moved to the dead-letter file and counted
(`relay_webhook_dead_letters_total`), and the sender goes on with the next.

HTTP is the standard library's `http.client` in this thread (one keep-alive connection): the relay's
other dependencies have no HTTP client, and one request at a time needs no more. Certificates are
verified (the system's CAs, or `ca_file`); redirects are not followed (a 3xx is a failed attempt).

`timeout` bounds connecting and each read, not the answer: an endpoint that sends a byte every few
seconds would hold an attempt for hours (http.client reads a header line of up to 64 KiB), every later
event waiting and `give_up_after` never applying. So an attempt as a whole gets ATTEMPT_TIMEOUTS x
`timeout`; then a watchdog shuts the socket down and the attempt has failed, as a timeout does.
"""

from __future__ import annotations

import http.client
import logging
import random
import socket
import ssl
import threading
import time
from datetime import datetime, timezone
from urllib.parse import urlsplit

from ..events import count_thread_restart
from . import signing
from ..spool import Batch, Spool

log = logging.getLogger("relay.webhooks")

LOCK_POLL = 1.0      # how often a sender without the spool's lock tries again (another process delivers)
IDLE_POLL = 1.0      # how often an idle sender looks for events appended by other processes
MAX_RESPONSE = 65536  # bytes of a response body read; a longer one closes the connection
COMPLAIN_EVERY = 60.0
ATTEMPT_TIMEOUTS = 3  # an attempt as a whole (connecting, sending, the whole answer): this many `timeout`s
RESTART_AFTER = 10.0  # seconds before a sender that failed unexpectedly (a disk error) starts again  # seconds between log lines about the same failing endpoint


class Sender:
    def __init__(self, spool: Spool, settings, name: str, metrics=None):
        self.spool = spool
        self.settings = settings
        self.name = name
        self.metrics = metrics
        parts = urlsplit(settings.url)
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None) \
            if self._https else None
        self._conn: http.client.HTTPConnection | None = None
        self._cond = threading.Condition()
        self._appended = 0
        self._closing = False
        self._deadline = float("inf")
        self._complained = 0.0
        self._failing_since: float | None = None
        self.delivered = 0
        self.dead_letters = 0
        self._thread = threading.Thread(target=self._run, name="relay-webhook-sender", daemon=True)
        self._thread.start()

    # --- called from the sink ------------------------------------------------------------------

    def notify(self, appended: int) -> None:
        with self._cond:
            self._appended += appended
            self._cond.notify_all()

    def close(self, flush_seconds: float) -> bool:
        """Deliver what is spooled while the endpoint answers, within flush_seconds; what is left stays
        in the spool for the next start. True when the sender stopped in time."""
        with self._cond:
            self._closing = True
            self._deadline = time.monotonic() + flush_seconds
            self._cond.notify_all()
        self._thread.join(flush_seconds + 1.0)
        return not self._thread.is_alive()

    # --- the thread ----------------------------------------------------------------------------

    def _wait(self, seconds: float, for_data: bool) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._closing or (for_data and self._appended > 0), timeout=seconds)

    def _run(self) -> None:
        try:
            while True:
                try:
                    self._deliver_all()
                    return
                except Exception:  # never take the relay down: what is spooled stays spooled
                    count_thread_restart()
                    log.exception("webhook %s: the sender failed; it starts again in %g s (events wait in %s)",
                                  self.name, RESTART_AFTER, self.spool.directory)
                    self._disconnect()
                    self.spool.release_sender()  # another process may do better meanwhile
                    self._wait(RESTART_AFTER, for_data=False)
                    if self._closing:
                        return
        finally:
            self._disconnect()
            self.spool.release_sender()

    def _deliver_all(self) -> None:
        s = self.settings
        caught_up = True  # nothing was pending when last looked: let the next batch fill for max_wait
        while time.monotonic() < self._deadline:
            if not self.spool.try_lock_sender():
                if self._closing:
                    return  # another process delivers from this spool
                self._wait(LOCK_POLL, for_data=False)
                continue
            pending = self.spool.pending_bytes()
            if pending == 0 and self.spool.inflight is None:
                caught_up = True
                if self._closing:
                    return
                with self._cond:
                    self._appended = 0  # a notice that came after the last look is covered by IDLE_POLL
                self._wait(IDLE_POLL, for_data=True)
                continue
            if caught_up and self.spool.inflight is None:
                self._fill(pending)
                caught_up = False
            with self._cond:
                self._appended = 0
            batch = self.spool.next_batch(s.max_events, s.max_bytes)
            if batch is None:  # only a line still being written
                caught_up = True
                self._wait(IDLE_POLL, for_data=False)
                continue
            if not self._deliver(batch):
                return  # closing with the endpoint failing: the batch stays in flight for the next start

    def _fill(self, pending: int) -> None:
        """After a quiet spell, give the batch max_wait to fill, unless max_events or max_bytes come first."""
        s = self.settings
        until = time.monotonic() + s.max_wait
        while pending < s.max_bytes:
            left = until - time.monotonic()
            with self._cond:
                if self._closing or self._appended >= s.max_events or left <= 0:
                    return
                self._cond.wait_for(lambda: self._closing or self._appended >= s.max_events, timeout=left)
            pending = self.spool.pending_bytes()

    def _deliver(self, batch: Batch) -> bool:
        s = self.settings
        attempt = 0
        while True:
            attempt += 1
            error, retry_after = self._post(batch)
            if error is None:
                self.spool.delivered(batch)
                self.delivered += len(batch.lines)
                if self.metrics is not None:
                    self.metrics.inc("relay_webhook_events_delivered_total", len(batch.lines), webhook=self.name)
                if self._failing_since is not None:
                    log.warning("webhook %s: the endpoint takes events again after %.0f s", self.name,
                                time.monotonic() - self._failing_since)
                    self._failing_since = None
                return True
            now = time.monotonic()
            if self._failing_since is None:
                self._failing_since = now
            if time.time() - batch.oldest >= s.give_up_after:
                self.spool.dead_letter(batch, error, attempt)
                self.dead_letters += 1
                if self.metrics is not None:
                    self.metrics.inc("relay_webhook_dead_letters_total", webhook=self.name)
                log.error("webhook %s: batch %s (%d event(s)) not delivered within give_up_after (%g s): %s; "
                          "moved to %s", self.name, batch.id, len(batch.lines), s.give_up_after, error,
                          self.spool.directory / "dead-letter.jsonl")
                return True
            if self._closing:
                log.warning("webhook %s: stopping while the endpoint fails (%s); batch %s and the events after "
                            "it stay in %s for the next start", self.name, error, batch.id, self.spool.directory)
                return False
            delay = min(s.max_delay, s.initial_delay * 2 ** (attempt - 1))
            delay = random.uniform(delay / 2, delay)
            if retry_after is not None:
                delay = max(delay, min(retry_after, s.max_delay))
            if now - self._complained >= COMPLAIN_EVERY:
                self._complained = now
                log.warning("webhook %s: attempt %d of batch %s failed: %s; retrying in %.1f s (events are "
                            "kept in %s)", self.name, attempt, batch.id, error, delay, self.spool.directory)
            self._wait(delay, for_data=False)

    # --- HTTP ----------------------------------------------------------------------------------

    def _connect(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=self.settings.timeout,
                                               context=self._context)
        return http.client.HTTPConnection(self._host, self._port, timeout=self.settings.timeout)

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _post(self, batch: Batch) -> tuple[str | None, float | None]:
        """None when the endpoint took the batch, else why not (and its Retry-After, in seconds)."""
        body = payload(batch)
        for fresh in (self._conn is None, True):
            if fresh:
                self._disconnect()
                self._conn = self._connect()
            stamp = int(time.time())
            headers = {"Content-Type": "application/json", "User-Agent": "relay-webhooks/1",
                       **signing.headers(self.settings.secret, batch.id, stamp, body)}
            watchdog = _Watchdog(self._conn, ATTEMPT_TIMEOUTS * self.settings.timeout)
            try:
                self._conn.request("POST", self._target, body=body, headers=headers)
                response = self._conn.getresponse()
                response.read(MAX_RESPONSE)
                if not response.isclosed():
                    self._disconnect()  # a long response body we do not read: do not reuse the connection
                if watchdog.stop():
                    raise TimeoutError("the attempt's deadline passed")
            except (OSError, http.client.HTTPException) as exc:
                self._disconnect()
                if watchdog.stop():
                    return (f"no complete answer within {watchdog.seconds:g} s ({ATTEMPT_TIMEOUTS} x timeout: "
                            f"the endpoint answers too slowly)"), None
                if not fresh and isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError,
                                                  BrokenPipeError)):
                    continue  # a kept-alive connection the endpoint had closed: once more on a new one
                return _describe(exc), None
            finally:
                watchdog.stop()
            if response.will_close:
                self._disconnect()
            if 200 <= response.status < 300:
                return None, None
            why = f"HTTP {response.status} {response.reason}".rstrip()
            if 300 <= response.status < 400:
                why += " (redirects are not followed: configure the URL it points to)"
            return why, _retry_after(response.getheader("Retry-After"))
        return "no response", None


class _Watchdog:
    """Ends an attempt that outlives its deadline: shuts its connection's socket down, so that the read
    the sender thread is blocked in returns. stop() (under the lock) ends the watch: after it the
    watchdog never touches the connection, which may be kept alive for the next batch."""

    POLL = 0.5  # while still connecting (no socket yet: the name is being resolved), look again this often

    def __init__(self, conn: http.client.HTTPConnection, seconds: float):
        self.seconds = seconds
        self._conn = conn
        self._lock = threading.Lock()
        self._stopped = False
        self.expired = False
        self._arm(seconds)

    def _arm(self, seconds: float) -> None:
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self.expired = True
            sock = self._conn.sock
            if sock is None:
                self._arm(self.POLL)
                return
            try:
                # socket.socket's own shutdown: for TLS, under the SSL layer, which another thread is using.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> bool:
        """End the watch; True when the deadline had passed."""
        with self._lock:
            self._stopped = True
            self._timer.cancel()
            return self.expired


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not verified: {exc.verify_message} (set ca_file for a private CA)"
    if isinstance(exc, TimeoutError) or "timed out" in str(exc):
        return "timed out"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text


def _retry_after(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit():
        return None  # the HTTP-date form is rare for webhooks: the back-off applies
    return float(value.strip())


def payload(batch: Batch) -> bytes:
    """The Standard Webhooks payload shape: type, timestamp, data; the events as they were written."""
    stamp = datetime.fromtimestamp(batch.created, timezone.utc).isoformat(timespec="milliseconds")
    head = ('{"type":"relay.events","timestamp":"%s","data":{"events":[' % stamp.replace("+00:00", "Z"))
    return head.encode() + b",".join(line.rstrip(b"\n") for line in batch.lines) + b"]}}"
