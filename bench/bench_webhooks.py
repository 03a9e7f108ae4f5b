#!/usr/bin/env python3
"""What does a webhook cost? Events go through `EventSinks.emit()` to a WebhookSink (spooled, fsynced,
signed, batched) and a receiver on loopback (http.server, keep-alive) that counts them.

    python bench/bench_webhooks.py [--events 20000] [--quick]

Side by side: batches of 100 (the default) and batches of 1 (one POST per event, as the sink sent before
it batched; a tenth of the events). For each: the caller's cost of emit() (what the event loop pays), and the events per second
the receiver gets, from the first emit() to the last event taken. Prints a table, then one JSON object on
the last line (the harness collects it).
"""

from __future__ import annotations

import argparse
import http.server
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from relay.config import load_settings  # noqa: E402
from relay.events import EventSinks, make_event  # noqa: E402
from relay.webhooks import WebhookSink  # noqa: E402

SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
REPLY = {"code": 550, "enhanced": "5.1.1",
         "text": "550-5.1.1 The email account that you tried to reach does not exist. Please try\n"
                 "550 5.1.1 double-checking the recipient's email address for typos.", "source": "upstream"}
CLASSIFICATION = {"category": "unknown_recipient", "permanent": True, "retry": False, "rule": "gmail-nosuchuser",
                  "meaning": "The mailbox does not exist at the receiving domain.",
                  "advice": "Check the address for typos; do not retry it."}


class Counter(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    taken = 0
    posts = 0
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        n = len(json.loads(body)["data"]["events"])
        with Counter.lock:
            Counter.taken += n
            Counter.posts += 1
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def pct(sorted_ns: list[int], p: float) -> float:
    k = min(len(sorted_ns) - 1, max(0, round(p / 100 * (len(sorted_ns) - 1))))
    return round(sorted_ns[k] / 1000.0, 2)


def run(directory: Path, port: int, events: list[dict], max_events: int) -> dict:
    secret = directory / "secret"
    secret.write_text(SECRET)
    config = directory / "relay.yaml"
    config.write_text(yaml.safe_dump({"hostname": "bench.example", "events": [{
        "webhook": f"http://127.0.0.1:{port}/hooks", "secret_file": str(secret),
        "spool_dir": str(directory / "spool"), "batch": {"max_events": max_events, "max_wait": "50ms"}}]}))
    hook = load_settings(config).events[0].webhook
    Counter.taken = Counter.posts = 0
    sinks = EventSinks([])
    sinks.sinks.append(WebhookSink(hook, sinks._failed, None, 60.0))
    clock = time.perf_counter_ns
    costs = []
    start = time.perf_counter()
    for event in events:
        t = clock()
        sinks.emit(event)
        costs.append(clock() - t)
    while Counter.taken < len(events) and time.perf_counter() - start < 600:
        time.sleep(0.005)
    elapsed = time.perf_counter() - start
    sinks.close()
    costs.sort()
    return {"max_events": max_events, "events": len(events), "emit_p50_us": pct(costs, 50), "emit_p99_us": pct(costs, 99),
            "delivered": Counter.taken, "posts": Counter.posts, "seconds": round(elapsed, 2),
            "events_per_s": round(Counter.taken / elapsed), "failures": sum(sinks.failures.values())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--quick", action="store_true", help="2,000 events")
    args = ap.parse_args()
    n = 2000 if args.quick else args.events
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    events = [make_event("rejected", "rcpt", sender="app@bench.example", recipient=f"u{i}@gmail.com",
                         message_id=f"<m{i}@bench.example>", session_id="s-1", reply=REPLY,
                         classification=CLASSIFICATION, upstream={"host": "smtp.provider.example", "port": 587})
              for i in range(n)]
    results = []
    try:
        # One POST per event is slow: a tenth of the events gives its rate.
        for max_events, some in ((100, events), (1, events[:max(100, n // 10)])):
            with tempfile.TemporaryDirectory() as tmp:
                results.append(run(Path(tmp), server.server_address[1], some, max_events))
    finally:
        server.shutdown()
    print(f"{'batch':>6} {'emit p50 us':>12} {'emit p99 us':>12} {'posts':>7} {'events/s':>9}")
    for r in results:
        print(f"{r['max_events']:>6} {r['emit_p50_us']:>12} {r['emit_p99_us']:>12} {r['posts']:>7} "
              f"{r['events_per_s']:>9}")
    ratio = round(results[0]["events_per_s"] / max(1, results[1]["events_per_s"]), 1)
    print(f"batches of 100 deliver {ratio}x the events per second of one POST per event")
    print(json.dumps({"bench": "webhooks", "events": n, "runs": results, "batched_vs_single": ratio}))
    return 0 if all(r["delivered"] == r["events"] and r["failures"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
