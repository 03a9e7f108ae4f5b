#!/usr/bin/env python3
"""How fast the Postfix log follower reads a backlog: lines per second of its reading thread.

    python3 bench/bench_follower.py [--lines 200000] [--rounds 5] [--failure-every 1000]

Writes a log of `--lines` Postfix lines (smtpd connects, cleanup, qmgr, smtp status=sent, and one
status=bounced delivery every `--failure-every` lines, each with its queue id's earlier lines) to a
temporary directory, then times what `relay serve`'s follower runs in its thread for a backlog
(PostfixLogFollower._read_batch: read, parse, correlate, and the cursor of the lines that need one)
until the whole log is read. Nothing reaches the funnel or the bounce list (no event loop, no store).
Prints a line per round and the median lines/s last; the machine's other load moves it, so compare
medians of runs made one after the other.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from relay.config import load_settings  # noqa: E402
from relay.intake.follower import FileFollower, PostfixLogFollower  # noqa: E402


def log_lines(count: int, failure_every: int) -> list[str]:
    """`count` lines of a busy Postfix, in the shapes its services write (the syslog prefix included)."""
    out: list[str] = []
    n = 0
    while len(out) < count:
        n += 1
        qid = f"{n:011X}"
        stamp = f"Nov 29 11:{(n // 60) % 60:02d}:{n % 60:02d} mx1"
        out.append(f"{stamp} postfix/smtpd[{1000 + n % 97}]: connect from client{n % 500}.example.net[192.0.2.{n % 250}]")
        out.append(f"{stamp} postfix/smtpd[{1000 + n % 97}]: {qid}: client=client{n % 500}.example.net[192.0.2.{n % 250}]")
        out.append(f"{stamp} postfix/cleanup[{2000 + n % 13}]: {qid}: message-id=<m{n}@sender.test>")
        out.append(f"{stamp} postfix/qmgr[900]: {qid}: from=<app@sender.test>, size={1200 + n % 700}, nrcpt=1 (queue active)")
        if failure_every and n % max(1, failure_every // 6) == 0:
            out.append(f"{stamp} postfix/smtp[{3000 + n % 31}]: {qid}: to=<user{n}@dest.example>, "
                       f"relay=mx.dest.example[198.51.100.7]:25, delay=1.2, delays=0.1/0/0.6/0.5, dsn=5.1.1, "
                       f"status=bounced (host mx.dest.example[198.51.100.7] said: 550 5.1.1 <user{n}@dest.example>: "
                       f"Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO command))")
        else:
            out.append(f"{stamp} postfix/smtp[{3000 + n % 31}]: {qid}: to=<user{n}@dest.example>, "
                       f"relay=mx.dest.example[198.51.100.7]:25, delay=0.9, delays=0.1/0/0.4/0.4, dsn=2.0.0, "
                       f"status=sent (250 2.0.0 Ok: queued as {qid}Z)")
        out.append(f"{stamp} postfix/qmgr[900]: {qid}: removed")
        out.append(f"{stamp} postfix/smtpd[{1000 + n % 97}]: disconnect from client{n % 500}.example.net"
                   f"[192.0.2.{n % 250}] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5")
    return out[:count]


def one_round(directory: Path, lines: list[str]) -> tuple[float, int, int]:
    """(seconds, lines read, failures found) for the follower's thread reading `lines` as a backlog."""
    path = directory / "mail.log"
    path.write_text("")
    state = directory / "state"
    state.mkdir(exist_ok=True)
    config = directory / "relay.yaml"
    config.write_text(yaml.safe_dump({"hostname": "relay.test", "postfix_log": {
        "path": str(path), "state_directory": str(state)}}))
    follower = PostfixLogFollower(load_settings(config), outcomes=None)
    follower._follower = FileFollower(path)  # from the end of the empty file: the backlog is what follows
    with open(path, "a") as f:
        f.write("\n".join(lines) + "\n")
    read = found = 0
    start = time.perf_counter()
    while True:
        count, failures, last = follower._read_batch()
        if not count:
            break
        read += count
        found += len(failures)
    seconds = time.perf_counter() - start
    follower._follower.close()
    return seconds, read, found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--failure-every", type=int, default=1000, help="about one failure in this many lines")
    args = ap.parse_args()
    lines = log_lines(args.lines, args.failure_every)
    rates = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.rounds):
            seconds, read, found = one_round(Path(tmp), lines)
            assert read == len(lines), (read, len(lines))
            rates.append(read / seconds)
            print(f"round {n + 1}: {read} lines in {seconds:.3f} s: {read / seconds:,.0f} lines/s ({found} failures)")
    print(f"median: {statistics.median(rates):,.0f} lines/s over {args.rounds} rounds of {args.lines} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
