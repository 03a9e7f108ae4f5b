"""Counters in Prometheus' text format, served over HTTP on `metrics.listen`."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

log = logging.getLogger("relay.metrics")

HELP = {
    "relay_connections_total": "Client connections accepted.",
    "relay_messages_total": "Messages by result (accepted, reject, defer).",
    "relay_events_total": "Events emitted, by kind.",
    "relay_event_sink_failures_total": "Events a sink failed to write (disk full, endpoint down).",
    "relay_active_sessions": "Client sessions open now.",
    "relay_breaker_trips_total": "Times a recipient domain's bounce-list circuit breaker tripped.",
    "relay_webhook_events_delivered_total": "Events a webhook endpoint took (2xx), by webhook.",
    "relay_webhook_dead_letters_total": "Webhook batches given up after retry.give_up_after and moved to the "
                                        "spool's dead-letter.jsonl, by webhook.",
    "relay_webhook_spool_bytes": "Bytes in the webhook spools (events not yet delivered, and delivered ones "
                                 "of the current segment).",
    "relay_operator_warnings_total": "Refusals about the sender or the relay's session (never listed), by scope.",
    "relay_shaping_deferrals_total": "Recipients the relay deferred itself by traffic shaping, by destination and why "
                                     "(held, slowed, warmup).",
    "relay_shaping_strikes_total": "Throttling replies that held or slowed a destination, by destination and rule.",
    "relay_shaping_messages_total": "Recipients the next hop accepted, by shaping destination (its rate).",
}


class Metrics:
    def __init__(self):
        self.counters: dict[tuple[str, tuple], float] = defaultdict(float)
        self.gauges: dict[str, callable] = {}

    def inc(self, name: str, value: float = 1, **labels) -> None:
        self.counters[(name, tuple(sorted(labels.items())))] += value

    def gauge(self, name: str, read) -> None:
        self.gauges[name] = read

    def render(self) -> str:
        out: list[str] = []
        seen: set[str] = set()
        for (name, labels), value in sorted(self.counters.items()):
            if name not in seen:
                seen.add(name)
                out += [f"# HELP {name} {HELP.get(name, name)}", f"# TYPE {name} counter"]
            lab = ",".join(f'{k}="{v}"' for k, v in labels)
            out.append(f"{name}{{{lab}}} {value:g}" if lab else f"{name} {value:g}")
        for name, read in sorted(self.gauges.items()):
            out += [f"# HELP {name} {HELP.get(name, name)}", f"# TYPE {name} gauge", f"{name} {read():g}"]
        return "\n".join(out) + "\n"

    async def serve(self, host: str, port: int, sock=None) -> asyncio.AbstractServer:
        """On host:port, or on `sock` when a worker's parent bound it (relay/workers.py)."""
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b"/"
                if path.split(b"?")[0] == b"/metrics":
                    body, status = self.render().encode(), b"200 OK"
                else:
                    body, status = b"see /metrics\n", b"404 Not Found"
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain; version=0.0.4\r\n"
                             b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
                await writer.drain()
            except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                pass
            finally:
                writer.close()

        if sock is not None:
            return await asyncio.start_server(handle, sock=sock)
        return await asyncio.start_server(handle, host, port)
