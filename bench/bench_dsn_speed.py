"""What `parse_bounce` costs: per file of the labelled corpora, and on made-up hostile reports.

    python bench/bench_dsn_speed.py [--hostile-only | --corpora-only] [--repeat N]

Corpora: the tune part of tests/data/bounces (bench/bounce_corpus.py's split; the holdout part is for
accuracy figures only and is not read here) and tests/data/bounces/world: total, median and largest
time per file. Hostile reports (made here): a DSN with N recipient blocks (each with a Diagnostic-Code),
the same with 300 KB of human-readable text, and a 30 MB one (250,000 blocks); and, for scale, a real
bounce shape returning a 22 MB attachment. Prints one line each on stdout; times are wall-clock on
whatever else the machine is doing (best of --repeat runs).
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bounce_corpus  # noqa: E402
from relay.intake.dsn import parse_bounce  # noqa: E402

HEAD = (b"From: MAILER-DAEMON@smarthost.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; "
        b"report-type=delivery-status; boundary=\"B\"\r\n\r\n")


def hostile(blocks: int, text_lines: int = 0, attachment: int = 0) -> bytes:
    text = b"This is the mail system at host smarthost.example.\r\n" + b"".join(
        b"line %d of a long report text, nothing in it\r\n" % n for n in range(text_lines))
    body = b"".join(b"Final-Recipient: rfc822; a%d@dest.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
                    b"Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n" % n for n in range(blocks))
    original = b""
    if attachment:
        data = base64.encodebytes(os.urandom(attachment)).replace(b"\n", b"\r\n")
        original = (b"--B\r\nContent-Type: message/rfc822\r\n\r\nFrom: a@example.com\r\nTo: b@dest.example\r\n"
                    b"Subject: big\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"C\"\r\n\r\n"
                    b"--C\r\nContent-Type: text/plain\r\n\r\nhi\r\n--C\r\nContent-Type: application/octet-stream\r\n"
                    b"Content-Transfer-Encoding: base64\r\n\r\n" + data + b"--C--\r\n")
    return (HEAD + b"--B\r\nContent-Type: text/plain\r\n\r\n" + text + b"--B\r\nContent-Type: message/delivery-status"
            b"\r\n\r\nReporting-MTA: dns; smarthost.example\r\n\r\n" + body + original + b"--B--\r\n")


def timed(raw: bytes, repeat: int) -> tuple[float, object]:
    best, report = float("inf"), None
    for _ in range(repeat):
        began = time.perf_counter()
        report = parse_bounce(raw)
        best = min(best, time.perf_counter() - began)
    return best, report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hostile-only", action="store_true")
    parser.add_argument("--corpora-only", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not args.hostile_only:
        entries = bounce_corpus.load_labels()
        parts = bounce_corpus.split(entries)
        sets = {"tune": [bounce_corpus.CORPUS / e["file"] for e in entries if parts[e["file"]] == "tune"],
                "world": [f for f in sorted((bounce_corpus.CORPUS / "world").iterdir())
                          if f.is_file() and f.suffix not in (".md", ".yaml")]}
        for name, files in sets.items():
            times = sorted((timed(f.read_bytes(), args.repeat)[0], f.name) for f in files)
            print(f"{name:6} {len(files)} files  total {sum(t for t, _ in times):.2f} s  median "
                  f"{statistics.median(t for t, _ in times) * 1000:.2f} ms  largest {times[-1][0] * 1000:.1f} ms "
                  f"({times[-1][1]})")
    if args.corpora_only:
        return 0
    cases = [("1,000 blocks", hostile(1000), args.repeat), ("5,000 blocks", hostile(5000), args.repeat),
             ("1,000 blocks + 300 KB text", hostile(1000, text_lines=6500), 1),
             ("250,000 blocks (30 MB)", hostile(250_000), 1),
             ("1 block + 22 MB attachment", hostile(1, attachment=22 * 1024 * 1024), 1)]
    for name, raw, repeat in cases:
        took, report = timed(raw, repeat)
        print(f"hostile {name:28} {len(raw):>10} octets  {took:8.3f} s  {len(report.recipients)} recipients read, "
              f"{getattr(report, 'blocks_not_read', 0)} not read")
    return 0


if __name__ == "__main__":
    sys.exit(main())
