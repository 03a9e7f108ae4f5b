#!/usr/bin/env python3
"""What does one delivery-error event cost? `make_event()` builds the record, `EventSinks.emit()`
serialises it and appends it to a JSON-lines file (flushed per event, as the relay does).

    python bench/bench_events.py [--events 50000] [--quick]

Prints a table, then one JSON object on the last line (the harness collects it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from relay.events import EventSinks, JsonlSink, make_event  # noqa: E402

REPLY = {"code": 550, "enhanced": "5.1.1",
         "text": "550-5.1.1 The email account that you tried to reach does not exist. Please try\n"
                 "550 5.1.1 double-checking the recipient's email address for typos.", "source": "upstream"}
CLASSIFICATION = {"category": "unknown_recipient", "permanent": True, "retry": False, "rule": "gmail-nosuchuser",
                  "meaning": "The mailbox does not exist at the receiving domain.",
                  "advice": "Check the address for typos; do not retry it."}
UPSTREAM = {"host": "smtp.provider.example", "port": 587}


def pct(sorted_ns: list[int], p: float) -> float:
    k = min(len(sorted_ns) - 1, max(0, round(p / 100 * (len(sorted_ns) - 1))))
    return round(sorted_ns[k] / 1000.0, 2)


def one() -> dict:
    return make_event("rejected", "rcpt", sender="app@bench.example", recipient="nobody@gmail.com",
                      message_id="<abc@bench.example>", session_id="s-123", reply=REPLY,
                      classification=CLASSIFICATION, upstream=UPSTREAM)


def timed(fn, n: int) -> list[int]:
    clock = time.perf_counter_ns
    out = []
    for _ in range(n):
        t = clock()
        fn()
        out.append(clock() - t)
    out.sort()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--quick", action="store_true", help="5,000 events")
    args = ap.parse_args()
    n = 5000 if args.quick else args.events
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        path = os.path.join(tmp, "events.jsonl")
        sinks = EventSinks([JsonlSink(path)])
        for _ in range(500):  # warm
            sinks.emit(one())
        event = one()
        results = {}
        for name, fn in (("make_event", one), ("emit_jsonl", lambda: sinks.emit(event)),
                         ("make_and_emit", lambda: sinks.emit(one()))):
            t0 = time.perf_counter()
            times = timed(fn, n)
            wall = time.perf_counter() - t0
            results[name] = {"p50_us": pct(times, 50), "p99_us": pct(times, 99), "max_us": round(times[-1] / 1000, 1),
                             "per_s": round(n / wall), "n": n}
        sinks.close()
        size = Path(path).stat().st_size
        lines = sum(1 for _ in open(path, encoding="utf-8"))
        json.loads(Path(path).read_text(encoding="utf-8").splitlines()[-1])  # the last line is whole JSON
    print(f"{'what':<16}{'p50 us':>9}{'p99 us':>9}{'max us':>9}{'per s':>10}")
    for name, r in results.items():
        print(f"{name:<16}{r['p50_us']:>9}{r['p99_us']:>9}{r['max_us']:>9}{r['per_s']:>10,}")
    print(json.dumps({"bench": "event_write", "sink": "jsonl", "bytes_per_event": round(size / lines),
                      "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
