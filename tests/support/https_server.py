"""An HTTPS server on loopback that serves MTA-STS policies (RFC 8461 3.3) for tests.

One server answers for many `mta-sts.<domain>` hosts, by the Host header; each host has a
certificate from the test CA (SNI picks it), so a wrong or missing certificate can be tested
too. Runs in a thread, so that a relay in another thread or process can fetch from it."""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Page:
    body: bytes | str
    status: int = 200
    headers: dict = field(default_factory=lambda: {"Content-Type": "text/plain"})
    chunked: bool = False


def policy_text(mode: str, *mx: str, max_age: int = 86400) -> str:
    return "version: STSv1\r\nmode: {}\r\n{}max_age: {}\r\n".format(
        mode, "".join(f"mx: {m}\r\n" for m in mx), max_age)


class PolicyServer:
    def __init__(self, default_context: ssl.SSLContext):
        self.pages: dict[str, Page] = {}  # host -> page
        self.contexts: dict[str, ssl.SSLContext] = {}  # host -> certificate to present (SNI)
        self.requests: list[tuple[str, str]] = []  # (host, path)
        self.hellos: list[str] = []  # the server name of every TLS handshake begun (SNI)
        self.peers: list[str] = []  # the address each request came from (egress_ips)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                host = (self.headers.get("Host") or "").split(":")[0].lower()
                server.requests.append((host, self.path))
                server.peers.append(self.client_address[0])
                page = server.pages.get(host)
                if page is None or self.path != "/.well-known/mta-sts.txt":
                    page = Page("not found", 404)
                body = page.body.encode() if isinstance(page.body, str) else page.body
                self.send_response(page.status)
                for name, value in page.headers.items():
                    self.send_header(name, value)
                if page.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for i in range(0, len(body), 7):
                        part = body[i:i + 7]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

        def pick_certificate(sock, name, _ctx):
            self.hellos.append((name or "").lower())
            chosen = self.contexts.get((name or "").lower())
            if chosen is not None:
                sock.context = chosen

        default_context.sni_callback = pick_certificate
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._context = default_context
        self._httpd.socket = default_context.wrap_socket(self._httpd.socket, server_side=True)
        self.port = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    def serve(self, host: str, page: Page | str, context: ssl.SSLContext | None = None) -> None:
        self.pages[host.lower()] = page if isinstance(page, Page) else Page(page)
        if context is not None:
            self.contexts[host.lower()] = context

    def start(self) -> "PolicyServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
