"""A webhook receiver on loopback, as an application would run one: it checks every request's Standard
Webhooks signature itself (the HMAC computed here, not with relay's code) and with the reference
`standardwebhooks` package, deduplicates by `webhook-id`, and can be down (connection refused), failing
(503), or lose its acknowledgement (takes the batch, then answers 500), then come back on the same port."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import ssl
import threading
import time
from dataclasses import dataclass

import standardwebhooks

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


@dataclass
class Attempt:
    id: str
    timestamp: str
    body: bytes
    status: int


class WebhookReceiver:
    def __init__(self, secret: str = SECRET, tls: ssl.SSLContext | None = None):
        self.secret = secret
        self.key = base64.b64decode(secret.removeprefix("whsec_"))
        self.tls = tls
        self.mode = "up"            # "up" | "fail" (503) | "lose-ack" (take it, answer 500)
        self.attempts: list[Attempt] = []
        self.batches: dict[str, list[dict]] = {}   # webhook-id -> its events, first time taken
        self.order: list[str] = []                 # ids in the order they were first taken
        self.bad: list[str] = []                   # why a request was refused (bad signature, ...)
        self.port = 0
        self._server = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/hooks/mail?token=abc"

    def start(self) -> "WebhookReceiver":
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the sender uses it

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(receiver._take(dict(self.headers), body, self.path))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Down: the port refuses connections until start() binds it again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _take(self, headers: dict, body: bytes, path: str) -> int:
        lower = {k.lower(): v for k, v in headers.items()}
        msg_id, stamp, sig = lower.get("webhook-id"), lower.get("webhook-timestamp"), lower.get("webhook-signature")
        with self._lock:
            status = 503 if self.mode == "fail" else 500 if self.mode == "lose-ack" else 204
            self.attempts.append(Attempt(msg_id, stamp, body, status))
            if path != "/hooks/mail?token=abc":
                self.bad.append(f"path {path}")
                return 404
            expected = base64.b64encode(hmac.new(self.key, f"{msg_id}.{stamp}.".encode() + body,
                                                 hashlib.sha256).digest()).decode()
            if not sig or f"v1,{expected}" not in sig.split(" "):
                self.bad.append(f"signature of {msg_id}")
                return 401
            try:
                standardwebhooks.Webhook(self.secret).verify(body, headers)
            except standardwebhooks.webhooks.WebhookVerificationError as exc:
                self.bad.append(f"standardwebhooks: {exc}")
                return 401
            if lower.get("content-type") != "application/json":
                self.bad.append(f"content-type {lower.get('content-type')}")
                return 415
            if status == 503:
                return status
            payload = json.loads(body)
            if payload["type"] != "relay.events":
                self.bad.append(f"type {payload['type']}")
            if msg_id not in self.batches:  # a retry of a batch already taken: deduplicated
                self.batches[msg_id] = payload["data"]["events"]
                self.order.append(msg_id)
            return status

    def events(self) -> list[dict]:
        with self._lock:
            return [event for msg_id in self.order for event in self.batches[msg_id]]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.events()) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.events()

    def wait_for_attempts(self, count: int, timeout: float = 20.0) -> list[Attempt]:
        deadline = time.monotonic() + timeout
        while len(self.attempts) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.attempts)
