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

REQUEST_TIMEOUT = 10.0
MAX_REQUEST = 16 * 1024


class MetricsListener:
    def __init__(self, metrics, health):
        self.metrics = metrics
        self.health = health
        self.servers: list[asyncio.AbstractServer] = []
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
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
            status, body, content_type = await self._respond(head)
            method = head.split(b" ", 1)[0]
            writer.write(b"HTTP/1.1 " + status.encode() + b"\r\nContent-Type: " + content_type.encode()
                         + b"\r\nContent-Length: " + str(len(body)).encode()
                         + b"\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
                         + (b"" if method == b"HEAD" else body))
            await writer.drain()
        except (asyncio.TimeoutError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            pass
        except Exception:
            log.exception("metrics: answering a request failed")
        finally:
            writer.close()

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
