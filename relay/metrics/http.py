"""The metrics listener: GET /metrics, /healthz and /readyz on the event loop.

Why not prometheus-client's own `start_http_server`: it serves from a thread, and then
- /healthz would answer while the event loop is stuck (the one failure it exists to catch),
- /readyz could not await the bounce-list probe the loop owns (asyncpg pools belong to their loop),
- the sampled gauges would read the loop's structures (sessions, pools) from another thread.
The exposition itself (`generate_latest`) is prometheus-client's; only the few lines of HTTP/1.1
are ours. Building it is CPU work proportional to the number of series: under a millisecond for
a fresh relay, but tens of milliseconds for a few thousand series (bench/bench_metrics.py), so it
runs in a thread of its own, after the loop-owned values were sampled on the loop.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("relay.metrics")

REQUEST_TIMEOUT = 10.0  # for the whole request head, however slowly it comes; and for the answer to go
MAX_REQUEST = 16 * 1024
LINGER = 2.0  # seconds the rest of a refused request is read and dropped before the close
MAX_CLIENTS = 64  # connections at once; more get 503
# What a request line may hold (RFC 9112 3: method SP request-target SP HTTP-version, all visible ASCII).
_REQUEST_LINE_BYTES = bytes(range(0x20, 0x7f))


class MetricsListener:
    def __init__(self, metrics, health):
        self.metrics = metrics
        self.health = health
        self.servers: list[asyncio.AbstractServer] = []
        self._open = 0  # connections being served
        # One thread: concurrent scrapes take turns rather than each taking a core.
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-metrics")

    async def start(self, host: str, port: int, socks=None) -> tuple[str, int]:
        """On host:port, or on the sockets a workers' parent bound for this worker (relay/workers.py:
        SO_REUSEPORT, so a scrape reaches any one worker, which answers for all of them)."""
        if socks:
            self.servers = [await asyncio.start_server(self._handle, sock=sock, limit=MAX_REQUEST) for sock in socks]
        else:
            self.servers = [await asyncio.start_server(self._handle, host, port, limit=MAX_REQUEST,
                                                       reuse_address=True)]
        addr = self.servers[0].sockets[0].getsockname()
        return addr[0], addr[1]

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for server in self.servers:
            await server.wait_closed()
        self._encoder.shutdown(wait=False)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open += 1
        try:
            if self._open > MAX_CLIENTS:
                # More scrapers than any deployment has: a flood, which must not take the process's
                # file descriptors (the SMTP listeners share them).
                await self._answer(writer, b"GET", "503 Service Unavailable", b"too many connections\n",
                                   extra=b"Retry-After: 1\r\n")
                return
            head, problem = await self._read_head(reader)
            if problem is not None:
                await self._answer(writer, b"GET", problem, (problem.split(" ", 1)[1] + "\n").encode())
                return
            if head is None:
                return  # the client went away before a request
            status, body, content_type = await self._respond(head)
            extra = b"Allow: GET, HEAD\r\n" if status.startswith("405") else b""
            await self._answer(writer, head.split(b" ", 1)[0], status, body, content_type, extra)
        except ConnectionError:
            pass
        except Exception:
            log.exception("metrics: answering a request failed")
        finally:
            await self._linger(reader, writer)
            self._open -= 1
            writer.close()

    @staticmethod
    async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Our side done: FIN, then what the client still sends is read and dropped for a moment.
        Closed with unread input (a request too large, a body nobody reads) the kernel sends RST,
        and the client may lose the answer before it reads it (RFC 9112 9.6)."""
        try:
            if writer.can_write_eof() and not writer.transport.is_closing():
                writer.write_eof()
            async with asyncio.timeout(LINGER):
                while await reader.read(65536):
                    pass
        except (TimeoutError, ConnectionError, OSError):
            pass

    @staticmethod
    async def _read_head(reader: asyncio.StreamReader) -> tuple[bytes | None, str | None]:
        """The request line and header fields, or (None, the status refusing them): a head larger
        than MAX_REQUEST (414 or 431, RFC 9110 15.5.15, RFC 6585 5), one not complete within
        REQUEST_TIMEOUT (408), a request line that is not text (400, at once). A bare LF ends a line
        too (RFC 9112 2.2). (None, None): the client closed without sending a request."""
        buf = bytearray()
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                while True:
                    ends = [at for at in (buf.find(b"\n\r\n"), buf.find(b"\n\n")) if at >= 0]  # an empty line
                    end = min(ends) if ends else len(buf)
                    first = buf.split(b"\n", 1)[0]
                    if first.rstrip(b"\r").translate(None, _REQUEST_LINE_BYTES):
                        return None, "400 Bad Request"  # binary, TLS, another protocol: no need to wait
                    if end > MAX_REQUEST:
                        if buf.find(b"\n", 0, MAX_REQUEST) < 0:
                            return None, "414 URI Too Long"
                        return None, "431 Request Header Fields Too Large"
                    if ends:
                        return bytes(buf[:end + 1]).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"), None
                    chunk = await reader.read(4096)
                    if not chunk:
                        return None, ("400 Bad Request" if buf.strip() else None)
                    buf += chunk
        except TimeoutError:
            return None, "408 Request Timeout"

    @staticmethod
    async def _answer(writer: asyncio.StreamWriter, method: bytes, status: str, body: bytes,
                      content_type: str = "text/plain; charset=utf-8", extra: bytes = b"") -> None:
        writer.write(b"HTTP/1.1 " + status.encode() + b"\r\nContent-Type: " + content_type.encode()
                     + b"\r\nContent-Length: " + str(len(body)).encode()
                     + b"\r\nCache-Control: no-store\r\n" + extra + b"Connection: close\r\n\r\n"
                     + (b"" if method == b"HEAD" else body))
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):  # a client that does not read is let go
                await writer.drain()
        except TimeoutError:
            writer.transport.abort()

    async def _respond(self, head: bytes) -> tuple[str, bytes, str]:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return "400 Bad Request", b"not an HTTP request\n", "text/plain; charset=utf-8"
        method, target = parts[0], parts[1]
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", b"GET or HEAD only\n", "text/plain; charset=utf-8"
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        path = target.split("?", 1)[0]
        if path == "/metrics":
            self.metrics.sample()  # on the loop: the gauges read the loop's own structures
            body, content_type = await asyncio.get_running_loop().run_in_executor(
                self._encoder, self.metrics.encode, headers.get("accept"))
            return "200 OK", body, content_type
        if path == "/healthz":
            ok, why = self.health.live()
            return ("200 OK" if ok else "503 Service Unavailable"), (why + "\n").encode(), "text/plain; charset=utf-8"
        if path == "/readyz":
            ok, lines_out = await self.health.ready()
            return (("200 OK" if ok else "503 Service Unavailable"), ("\n".join(lines_out) + "\n").encode(),
                    "text/plain; charset=utf-8")
        return "404 Not Found", b"try /metrics, /healthz or /readyz\n", "text/plain; charset=utf-8"
