#!/usr/bin/env python3
"""How fast is a bounce-list lookup, and does the relay's memory grow with the list?

Builds SQLite bounce lists of the given sizes in a temporary directory (bulk
insert in key order, with the store's own schema), then, in a fresh process for
each size, times `SQLiteBounceStore.get()` -- the RCPT hot path, address
normalisation included -- for random hits and misses, and reads VmRSS from
/proc/self/status before the store is opened and after the last lookup.

    python bench/bench_bounce_lookup.py --sizes 1000000,10000000

Target: p99 under 50 µs at 10M entries, RSS independent of the list size.
Prints a table, then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "example.com", "mail.example.org", "bücher.example",
           "company.co.uk", "web.de"]
REPLY = ("550-5.1.1 The email account that you tried to reach does not exist. Please try\n"
         "550 5.1.1 double-checking the recipient's email address for typos.")


def address(i: int) -> str:
    """Key order is i order: the fixed-width number leads the local part."""
    return f"user{i:010d}@{DOMAINS[i % len(DOMAINS)]}"


def miss(i: int) -> str:
    # Same neighbourhood of the tree as a hit, so the search goes as deep.
    return f"user{i:010d}x@{DOMAINS[i % len(DOMAINS)]}"


def rss_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def build(path: Path, size: int) -> float:
    """Create the schema through the store, then bulk-load in key order (append-only B-tree)."""
    from relay.address import normalise
    from relay.store.sqlite import SQLiteBounceStore

    t0 = time.perf_counter()
    asyncio.run(SQLiteBounceStore(path).close())
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA journal_mode = OFF")  # a throw-away build: no rollback journal, no fsync
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -262144")
    now = time.time()
    # Keys as the store writes them: normalised (the IDN domain becomes its A-label),
    # then sorted, since normalising can change their order.
    a_label = {d: normalise(f"x@{d}").split("@")[1] for d in DOMAINS}
    db.execute("BEGIN")
    step = 200_000
    for start in range(0, size, step):
        rows = sorted((f"user{i:010d}@{a_label[DOMAINS[i % len(DOMAINS)]]}", i) for i in range(start, min(size, start + step)))
        db.executemany(
            "INSERT INTO relay_bounces (address, category, reply, rule, first_seen, last_seen, count, source,"
            " note, expires_at) VALUES (?, 'unknown_recipient', ?, 'bench', ?, ?, 1, 'auto', '', NULL)",
            ((a, REPLY, now - i % 86400, now) for a, i in rows))
    db.execute("COMMIT")
    db.execute("PRAGMA journal_mode = WAL")  # as the relay runs it
    db.close()
    return time.perf_counter() - t0


def percentile(sorted_ns: list[int], p: float) -> float:
    k = min(len(sorted_ns) - 1, max(0, round(p / 100 * (len(sorted_ns) - 1))))
    return sorted_ns[k] / 1000.0


def measure(path: Path, size: int, lookups: int, seed: int) -> dict:
    """Runs in its own process: RSS before opening the store and after the lookups."""
    rnd = random.Random(seed)
    hits = [address(rnd.randrange(size)) for _ in range(lookups)]
    misses = [miss(rnd.randrange(size)) for _ in range(lookups)]
    from relay.store.sqlite import SQLiteBounceStore  # imported before the first RSS reading

    rss_before = rss_kib()

    async def run() -> dict:
        store = SQLiteBounceStore(path)
        for a in hits[:2000] + misses[:2000]:  # warm the code paths, not the whole file
            await store.get(a)
        result = {}
        for name, keys, expect in (("hit", hits, True), ("miss", misses, False)):
            times = []
            clock = time.perf_counter_ns
            for a in keys:
                t = clock()
                entry = await store.get(a)
                times.append(clock() - t)
                if (entry is not None) is not expect:
                    raise SystemExit(f"wrong answer for {a}: {entry}")
            times.sort()
            result[name] = {"p50_us": round(percentile(times, 50), 2), "p99_us": round(percentile(times, 99), 2),
                            "max_us": round(times[-1] / 1000.0, 1), "n": len(times)}
        await store.close()
        return result

    result = asyncio.run(run())
    rss_after = rss_kib()
    return {"size": size, **result, "rss_before_kib": rss_before, "rss_after_kib": rss_after,
            "rss_growth_kib": rss_after - rss_before, "file_mib": round(path.stat().st_size / 2**20, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000000,10000000", help="comma-separated list sizes")
    ap.add_argument("--lookups", type=int, default=200_000, help="timed lookups each of hits and misses")
    ap.add_argument("--dir", help="keep the built lists here and reuse them (default: a temporary directory)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--build-only", metavar="SIZE:PATH", help=argparse.SUPPRESS)
    ap.add_argument("--measure-only", metavar="SIZE:PATH", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.build_only:
        size, path = args.build_only.split(":", 1)
        print(json.dumps({"build_s": round(build(Path(path), int(size)), 1)}))
        return 0
    if args.measure_only:
        size, path = args.measure_only.split(":", 1)
        print(json.dumps(measure(Path(path), int(size), args.lookups, args.seed)))
        return 0

    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="relay-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for size in sizes:
            path = work / f"bounces-{size}.db"
            build_s = None
            if not path.exists():
                # Each step in a child process, so the measuring process never held the build's memory.
                out = subprocess.run([sys.executable, __file__, "--build-only", f"{size}:{path}"],
                                     check=True, capture_output=True, text=True).stdout
                build_s = json.loads(out.splitlines()[-1])["build_s"]
            out = subprocess.run([sys.executable, __file__, "--measure-only", f"{size}:{path}",
                                  "--lookups", str(args.lookups), "--seed", str(args.seed)],
                                 check=True, capture_output=True, text=True).stdout
            result = json.loads(out.splitlines()[-1])
            result["build_s"] = build_s
            results.append(result)
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)

    print(f"{'entries':>12} {'file MiB':>9} {'build s':>8} {'hit p50':>8} {'hit p99':>8} {'miss p50':>9} "
          f"{'miss p99':>9} {'RSS before':>11} {'RSS after':>10} {'growth':>8}")
    for r in results:
        print(f"{r['size']:>12,} {r['file_mib']:>9} {r['build_s'] if r['build_s'] is not None else '-':>8} "
              f"{r['hit']['p50_us']:>6}µs {r['hit']['p99_us']:>6}µs {r['miss']['p50_us']:>7}µs "
              f"{r['miss']['p99_us']:>7}µs {r['rss_before_kib']:>8}KiB {r['rss_after_kib']:>7}KiB "
              f"{r['rss_growth_kib']:>5}KiB")
    meta = {"python": sys.version.split()[0], "sqlite": sqlite3.sqlite_version, "cpus": os.cpu_count()}
    print(json.dumps({"bench": "bounce_lookup", **meta, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
