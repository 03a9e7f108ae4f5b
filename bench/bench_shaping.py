#!/usr/bin/env python3
"""What traffic shaping adds to each RCPT, beside the bounce-list lookup every RCPT already pays.

Times, in one process on one SQLite file (the default store), the RCPT hooks of the shaping step
(destination lookup + the store read of its holds + rate and warm-up checks, shipped shaping.yaml)
and of the bounce-list step, for recipients at Gmail and at other domains, with a few holds
stored (one of them for another sender domain, so the read finds rows but no hold applies).

    python bench/bench_shaping.py [--calls 20000]

Prints a table (µs per RCPT, p50 and p99) and the shaping/bounce-list ratio, then one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


async def main(calls: int) -> dict:
    import logging

    logging.getLogger("relay").setLevel(logging.ERROR)  # the strikes set up below log a warning each
    from relay.config import load_settings
    from relay.decision import Reply
    from relay.pipeline import Session, Transaction
    from relay.policies import shipped_policies
    from relay.shaping.shaper import Shaper
    from relay.steps.bounce_list import BounceListStep
    from relay.steps.shaping import ShapingStep
    from relay.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "relay.yaml"
        config.write_text(f"hostname: relay.example.com\nbounce_list: \"sqlite:///{tmp}/bounces.db\"\n")
        settings = load_settings(config)
        store = open_store(settings.bounce_list)
        policy = shipped_policies().shaping
        shaper = Shaper(store)
        shaping = ShapingStep(settings, policy, shaper)
        bounce = BounceListStep(store)
        google = policy.named("google")
        reply = Reply.parse("421-4.7.28 Gmail has detected an unusual rate\r\n421 4.7.28 of mail - gsmtp")
        for sender in ("other.example", "third.example"):
            await shaper.strike(google, sender, google.reactions[0], reply, now=time.time() - 10)
        txn = Transaction(Session("s", "127.0.0.1", 1), "t", "a@example.com")
        rcpts = [f"user{i}@{'gmail.com' if i % 2 else f'example{i % 50}.org'}" for i in range(calls)]
        results = {}
        for name, step in (("bounce_list", bounce), ("shaping", shaping)):
            for rcpt in rcpts[:500]:  # warm caches
                await step.on_rcpt(txn, rcpt)
                step.after_rcpt(txn, rcpt)
            times = []
            for rcpt in rcpts:
                t0 = time.perf_counter_ns()
                await step.on_rcpt(txn, rcpt)
                step.after_rcpt(txn, rcpt)  # the shaping step gives back the place the check took
                times.append((time.perf_counter_ns() - t0) / 1000)
            times.sort()
            results[name] = {"p50_us": round(statistics.median(times), 1),
                             "p99_us": round(times[int(len(times) * 0.99)], 1)}
        await shaper.close()
        await store.close()
    results["ratio_p50"] = round(results["shaping"]["p50_us"] / results["bounce_list"]["p50_us"], 2)
    results["calls"] = calls
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    out = asyncio.run(main(args.calls))
    print(f"{'RCPT hook':<14}{'p50 µs':>10}{'p99 µs':>10}")
    for name in ("bounce_list", "shaping"):
        print(f"{name:<14}{out[name]['p50_us']:>10}{out[name]['p99_us']:>10}")
    print(f"shaping / bounce_list (p50): {out['ratio_p50']}x")
    print(json.dumps(out))
