#!/usr/bin/env python3
"""What metrics cost the event loop: one recording call, and one scrape.

    python bench/bench_metrics.py [--iterations N] [--json-only]

A recording call (`Metrics.inc` with labels, `Metrics.observe` into a histogram) runs on the mail
path; a scrape (`Metrics.exposition`, prometheus-client's generate_latest) runs on the event loop
(relay/metrics/http.py says why). The scrape is timed twice: on a fresh registry, and on one
filled to the catalogue's worst realistic case (every kind x category x scope x source of
refusal, MAX_DESTINATIONS destinations x every kind, every upstream command's histogram), and the
worst event-loop pause while scraping the filled one, built on the loop or in a thread. A table,
then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from relay.metrics import Metrics  # noqa: E402
from relay.metrics.catalogue import MAX_DESTINATIONS  # noqa: E402

KINDS = ("rejected", "deferred", "suppressed", "policy_rejected", "bounced")
CATEGORIES = ("unknown_recipient", "mailbox_disabled", "mailbox_full", "message_too_large", "rate_limited",
              "too_many_connections", "spam_content", "policy_rejected", "auth_failed", "blocklisted",
              "routing_dns", "relay_denied", "greylisted", "temporary_failure", "syntax_error", "protocol_error",
              "expired", "other")
SCOPES = ("recipient", "message", "sender", "session", "relay")
SOURCES = ("upstream", "relay", "mta-log", "dsn")
COMMANDS = ("CONNECT", "MAIL", "RCPT", "DATA", "EOM", "RSET")


def filled() -> Metrics:
    m = Metrics()
    for kind in KINDS:
        for category in CATEGORIES:
            for scope in SCOPES:
                for source in SOURCES:
                    m.inc("relay_refusals_total", kind=kind, category=category, scope=scope, source=source)
        for n in range(MAX_DESTINATIONS):
            m.inc("relay_destination_refusals_total", kind=kind, destination=f"d{n}.example")
        m.inc("relay_events_total", kind=kind)
    for command in COMMANDS:
        m.observe("relay_upstream_command_seconds", 0.01, command=command, upstream="smtp.example:587")
        for cls in ("2xx", "3xx", "4xx", "5xx", "error"):
            m.inc("relay_upstream_replies_total", command=command, upstream="smtp.example:587", **{"class": cls})
    return m


async def worst_pause(metrics: Metrics, scrapes: int, in_thread: bool) -> float:
    """The longest the event loop went without running a 1 ms timer while `scrapes` scrapes ran,
    the way relay/metrics/http.py runs them (in_thread) or all on the loop."""
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=1)
    worst = 0.0
    done = False

    async def tick():
        nonlocal worst
        last = loop.time()
        while not done:
            await asyncio.sleep(0.001)
            now = loop.time()
            worst = max(worst, now - last - 0.001)
            last = now

    ticker = loop.create_task(tick())
    await asyncio.sleep(0.01)
    for _ in range(scrapes):
        metrics.sample()
        if in_thread:
            await loop.run_in_executor(executor, metrics.encode, None)
        else:
            metrics.encode(None)
            await asyncio.sleep(0)
    done = True
    await ticker
    executor.shutdown()
    return worst


def timed(fn, iterations: int) -> list[float]:
    out = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--json-only", action="store_true")
    args = parser.parse_args()

    m = Metrics()
    calls = 100_000
    start = time.perf_counter()
    for _ in range(calls):
        m.inc("relay_refusals_total", kind="rejected", category="unknown_recipient", scope="recipient",
              source="upstream")
    inc_us = (time.perf_counter() - start) / calls * 1e6
    start = time.perf_counter()
    for _ in range(calls):
        m.observe("relay_upstream_command_seconds", 0.01, command="RCPT", upstream="smtp.example:587")
    observe_us = (time.perf_counter() - start) / calls * 1e6

    results = {"inc_us": round(inc_us, 2), "observe_us": round(observe_us, 2)}
    for name, metrics in (("fresh", Metrics()), ("filled", filled())):
        body = metrics.exposition()[0]
        series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        times = timed(metrics.exposition, args.iterations)
        results[f"scrape_{name}"] = {"series": series, "bytes": len(body),
                                     "mean_ms": round(statistics.fmean(times) * 1000, 3),
                                     "p99_ms": round(sorted(times)[int(len(times) * 0.99) - 1] * 1000, 3),
                                     "max_ms": round(max(times) * 1000, 3)}
    big = filled()
    results["loop_pause_ms"] = {
        "on_loop": round(asyncio.run(worst_pause(big, 20, in_thread=False)) * 1000, 2),
        "in_thread": round(asyncio.run(worst_pause(big, 20, in_thread=True)) * 1000, 2)}
    results["python"] = platform.python_version()
    if not args.json_only:
        print(f"one inc() with labels: {inc_us:.2f} us; one observe(): {observe_us:.2f} us")
        print(f"{'registry':<8} {'series':>7} {'bytes':>8} {'mean ms':>8} {'p99 ms':>8} {'max ms':>8}")
        for name in ("fresh", "filled"):
            r = results[f"scrape_{name}"]
            print(f"{name:<8} {r['series']:>7} {r['bytes']:>8} {r['mean_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8}")
        pause = results["loop_pause_ms"]
        print(f"worst event-loop pause over 20 scrapes of the filled registry: {pause['on_loop']} ms built on "
              f"the loop, {pause['in_thread']} ms built in a thread (as relay/metrics/http.py does)")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
