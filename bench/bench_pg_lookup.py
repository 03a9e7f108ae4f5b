#!/usr/bin/env python3
"""Two relays on one PostgreSQL at load: how long does the RCPT lookup take?

Fills one PostgreSQL bounce list (a schema of its own) with --entries addresses, then starts two
processes, each a relay's store as `relay serve` opens it (PostgresBounceStore, its pool, its
deadlines), and has each look addresses up at --rate lookups a second (open loop: a lookup starts on
schedule whether or not the previous ones finished, as RCPTs from many clients do), a tenth of them
listed, while a third process writes (record_failure) at --write-rate, as relays listing addresses do.
The time of a lookup runs from its scheduled start to its answer, so waiting for a pooled connection
counts. Prints a table and one JSON object on the last line.

    python bench/bench_pg_lookup.py --entries 100000 --rate 500,1000 --seconds 20 --cache 0,100000

Each relay looks up --distinct recipients (a working set; a tenth of them listed), so with the lookup
cache (relay/store/pg_cache.py) the first lookup of a recipient goes to the database and the next
ones do not, unless it changed.

Target (issue 15): p99 <= 2 ms with two relays at load. Needs PostgreSQL on 127.0.0.1:5432 (trust).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BASE = os.environ.get("RELAY_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


def address(i: int) -> str:
    return f"user{i:08d}@example{i % 100}.com"


async def fill(url: str, entries: int) -> None:
    import asyncpg

    from relay.store import open_store

    store = open_store(url)
    await store.migrate()
    await store.close()
    schema = url.split("schema=")[1].split("&")[0]
    conn = await asyncpg.connect(BASE)
    try:
        rows = [(address(i), "unknown_recipient", "550 5.1.1 no such user", "bench", "auto") for i in range(entries)]
        await conn.copy_records_to_table("relay_bounces", schema_name=schema, records=[
            (a, c, r, rule, _now(), _now(), 1, s, "", None) for a, c, r, rule, s in rows])
        await conn.execute(f'ANALYZE "{schema}".relay_bounces')
    finally:
        await conn.close()


def _now():
    from datetime import datetime, timezone
    return datetime.now(timezone.utc)


def target_of(i: int) -> str:
    return address(i) if i % 10 == 0 else f"other{i:08d}@example{i % 100}.com"  # a tenth listed


async def lookups(url: str, entries: int, rate: float, seconds: float, seed: int, distinct: int,
                  warm: bool) -> dict:
    from relay.store import open_store

    store = open_store(url)
    await store.get("warm@example.com")  # the pool is open, as in a relay that has served a while
    cache = getattr(store, "cache", None)
    if warm and cache is not None:
        # A relay that has served these recipients before: each looked up once, not timed.
        while not cache.usable():
            await asyncio.sleep(0.05)
        for first in range(0, distinct, 50):
            await asyncio.gather(*(store.get(target_of(i)) for i in range(first, min(first + 50, distinct))))
        cache.hits = 0
    rng = random.Random(seed)
    latencies: list[float] = []
    in_call: list[float] = []
    errors = 0
    tasks = set()

    async def one(at: float, target: str) -> None:
        nonlocal errors
        called = time.perf_counter()
        try:
            await store.get(target)
        except Exception:
            errors += 1
            return
        done = time.perf_counter()
        latencies.append(done - at)  # from its scheduled start: waiting for the loop counts
        in_call.append(done - called)  # the lookup itself

    start = time.perf_counter()
    n = int(rate * seconds)
    for k in range(n):
        at = start + k / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        target = target_of(rng.randrange(distinct))  # the relay's recipients: a working set
        task = asyncio.get_running_loop().create_task(one(at, target))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    cache = getattr(store, "cache", None)
    hits = cache.hits if cache is not None else 0
    await store.close()
    return {"latencies": latencies, "in_call": in_call, "errors": errors, "elapsed": elapsed, "hits": hits}


async def writes(url: str, rate: float, seconds: float) -> dict:
    from relay.store import open_store
    from relay.suppression import SuppressionPolicy

    policy = SuppressionPolicy.from_dict({"permanent": {"unknown_recipient": {"list_after": 1}}})
    store = open_store(url)
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        await store.record_failure(f"new{secrets.token_hex(6)}@example.net", category="unknown_recipient",
                                   permanent=True, reply_text="550 5.1.1 no such user", rule="bench", policy=policy)
        done += 1
        await asyncio.sleep(1 / rate)
    await store.close()
    return {"writes": done}


async def propagation(url: str, times: int) -> list[float]:
    """Seconds from a removal's commit at one store until another store's cached answer says so."""
    from relay.store import open_store

    relay, operator = open_store(url), open_store(url)
    await relay.get("warm@example.com")
    while relay.cache is not None and not relay.cache.usable():
        await asyncio.sleep(0.01)
    delays = []
    for n in range(times):
        target = f"prop{n}@example.com"
        await operator.add(target)
        while await relay.get(target) is None:  # listed, and now in the relay's cache
            await asyncio.sleep(0.001)
        await operator.remove(target)
        committed = time.perf_counter()
        while await relay.get(target) is not None:
            await asyncio.sleep(0.0005)
        delays.append(time.perf_counter() - committed)
    await relay.close()
    await operator.close()
    return delays


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def child(args) -> None:
    if args.role == "write":
        result = asyncio.run(writes(args.url, args.write_rate, args.seconds))
    else:
        result = asyncio.run(lookups(args.url, args.entries, args.one_rate, args.seconds, args.seed,
                                     min(args.distinct, args.entries), args.warm))
    print(json.dumps(result))


def _drop(schema: str) -> None:
    import asyncpg

    async def drop():
        conn = await asyncpg.connect(BASE)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
    asyncio.run(drop())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--rate", default="1000,2000", help="lookups a second at EACH relay (comma list)")
    ap.add_argument("--write-rate", type=float, default=20.0, help="listings a second meanwhile")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--relays", type=int, default=2)
    ap.add_argument("--distinct", type=int, default=20_000, help="distinct recipients the relays look up")
    ap.add_argument("--cache", default="0,100000", help="lookup cache sizes to compare (?cache=N; 0: none)")
    ap.add_argument("--propagation", type=int, default=0, metavar="N",
                    help="instead: time N removals until another relay's cache has them")
    ap.add_argument("--warm", action="store_true", help="each relay looks its recipients up once before timing")
    ap.add_argument("--role", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--one-rate", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        return child(args)

    schema = f"bench_{secrets.token_hex(4)}"
    url = f"{BASE}?schema={schema}"
    if args.propagation:
        try:
            delays = [d * 1000 for d in asyncio.run(propagation(url, args.propagation))]
        finally:
            _drop(schema)
        print(f"a removal seen by another relay's cache after: p50 {pct(delays, 50):.2f} ms, "
              f"p99 {pct(delays, 99):.2f} ms, max {max(delays):.2f} ms ({len(delays)} removals; "
              f"load average {os.getloadavg()[0]:.1f})")
        print(json.dumps({"bench": "pg_propagation", "ms": delays}))
        return
    asyncio.run(fill(url, args.entries))
    results = []
    try:
        print(f"{args.relays} relays, one PostgreSQL, {args.entries:,} entries, {args.write_rate:g} listings/s; "
              f"load average {os.getloadavg()[0]:.1f}")
        print("p50/p90/p99/max: from each lookup's scheduled start (the loop's lag counts); "
              "call p50/p99: inside store.get()")
        print(f"{'cache':>7} {'rate/relay':>10} {'lookups':>8} {'hits':>6} {'p50 ms':>7} {'p90 ms':>7} "
              f"{'p99 ms':>7} {'max ms':>7} {'call p50':>8} {'call p99':>8} errors")
        for cache in [int(c) for c in args.cache.split(",")]:
            for rate in [float(r) for r in args.rate.split(",")]:
                me = [sys.executable, __file__, "--url", f"{url}&cache={cache}", "--seconds", str(args.seconds),
                      "--entries", str(args.entries), "--distinct", str(args.distinct)] + (["--warm"] if args.warm else [])
                procs = [subprocess.Popen(me + ["--role", "lookup", "--one-rate", str(rate), "--seed", str(k)],
                                          stdout=subprocess.PIPE, text=True) for k in range(args.relays)]
                procs.append(subprocess.Popen(me + ["--role", "write", "--write-rate", str(args.write_rate)],
                                              stdout=subprocess.PIPE, text=True))
                outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
                lat = [x * 1000 for o in outs[:-1] for x in o["latencies"]]
                call = [x * 1000 for o in outs[:-1] for x in o["in_call"]]
                hits = sum(o["hits"] for o in outs[:-1])
                row = {"cache": cache, "rate_per_relay": rate, "relays": args.relays, "lookups": len(lat),
                       "hit_ratio": hits / max(len(lat), 1), "p50_ms": pct(lat, 50), "p90_ms": pct(lat, 90),
                       "p99_ms": pct(lat, 99), "max_ms": max(lat, default=float("nan")),
                       "call_p50_ms": pct(call, 50), "call_p99_ms": pct(call, 99),
                       "errors": sum(o["errors"] for o in outs[:-1]), "writes": outs[-1]["writes"],
                       "loadavg": os.getloadavg()[0], "warm": args.warm}
                results.append(row)
                print(f"{cache:>7} {rate:>10,.0f} {len(lat):>8,} {row['hit_ratio']:>6.0%} {row['p50_ms']:>7.2f} "
                      f"{row['p90_ms']:>7.2f} {row['p99_ms']:>7.2f} {row['max_ms']:>7.1f} {row['call_p50_ms']:>8.3f} "
                      f"{row['call_p99_ms']:>8.3f} {row['errors']}")
    finally:
        _drop(schema)
    print(json.dumps({"bench": "pg_lookup", "entries": args.entries, "results": results,
                      "loadavg": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
