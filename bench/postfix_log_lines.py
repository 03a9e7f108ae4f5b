"""How well the Postfix log parser reads the labelled real lines of tests/data/postfix-log-lines.yaml.

    python3 bench/postfix_log_lines.py [--from N] [--misses] [FILE...]

Prints `lines read right: R/T` (a line is right when every labelled field is) and, per field, how
many labelled values the parser read right. `--from N` measures the entries from the N-th (0-based)
on, e.g. `--from 34` for the 120 lines added after the first 34; `--misses` lists what was misread.
"""

from __future__ import annotations

import argparse
import collections
import sys
from datetime import datetime
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from relay.intake.postfix_log import (Delivery, Expired, MessageId, Removed, Sender,  # noqa: E402
                                      parse_line, parse_record)

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "postfix-log-lines.yaml"
RECORDS = {"delivery": Delivery, "message-id": MessageId, "sender": Sender, "expired": Expired, "removed": Removed}
NOW = datetime(2026, 11, 29, 12, 0, 0).astimezone()  # the test's "now" (RFC 3164 lines have no year)


def measure(entry, ok, total) -> list[str]:
    expect, misses = entry["expect"], []

    def check(field, got, want):
        total[field] += 1
        if got == want:
            ok[field] += 1
        else:
            misses.append(f"{field}: read {got!r}, labelled {want!r}")

    text, service = entry.get("text"), ""
    if "line" in entry:
        line = parse_line(entry["line"], now=NOW)
        check("frame", line is not None, True)
        text = None
        if line is not None:
            text, service = line.text, line.service
            frame = expect.get("frame", {})
            for key in ("host", "program", "pid"):
                if key in frame:
                    check("frame." + key, getattr(line, key), frame[key])
            if "month" in frame:
                got = (line.time.month, line.time.day, line.time.strftime("%H:%M:%S")) if line.time else None
                check("frame.time", got, (frame["month"], frame["day"], frame["time"]))
            if "iso" in frame:
                check("frame.time", line.time, datetime.fromisoformat(frame["iso"]))
    record = parse_record(text, service) if text is not None else None
    want = expect["record"]
    check("record", type(record).__name__ if record is not None else "none",
          RECORDS[want].__name__ if want != "none" else "none")
    if want == "none" or not isinstance(record, RECORDS[want]):
        return misses
    for key in ("queue_id", "recipient", "orig_recipient", "status", "dsn", "delay", "sender", "size", "nrcpt",
                "message_id"):
        if key in expect:
            check(key, getattr(record, key), expect[key])
    if "delays" in expect:
        check("delays", record.delays, tuple(expect["delays"]))
    if "relay" in expect:
        check("relay", record.relay.as_dict() if record.relay else None, expect["relay"])
    if isinstance(record, Delivery):
        d = record.detail
        for key, attr in (("said_by", "host"), ("stage", "stage"), ("command", "command"),
                          ("postfix_text", "postfix_text"), ("suspended", "suspended")):
            if key in expect:
                check(key, getattr(d, attr), expect[key])
        if "reply" in expect:
            check("reply", d.reply.text if d.reply is not None else None, expect["reply"])
    return misses


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path, default=[CORPUS])
    ap.add_argument("--from", dest="start", type=int, default=0, help="first entry measured (0-based)")
    ap.add_argument("--misses", action="store_true", help="list the misread lines")
    args = ap.parse_args(argv)
    entries = []
    for path in args.files:
        entries += yaml.safe_load(path.read_text())
    entries = entries[args.start:]
    ok, total = collections.Counter(), collections.Counter()
    right, missed = 0, []
    for entry in entries:
        misses = measure(entry, ok, total)
        if misses:
            missed.append(((entry.get("line") or entry.get("text"))[:100], misses))
        else:
            right += 1
    print(f"lines read right: {right}/{len(entries)}")
    for field in sorted(total):
        print(f"  {field:15s} {ok[field]}/{total[field]}")
    if args.misses:
        for text, misses in missed:
            print(f"miss: {text}")
            for m in misses:
                print(f"      {m[:300]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
