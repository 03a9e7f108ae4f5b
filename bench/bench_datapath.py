#!/usr/bin/env python3
"""CPU per pass over the message bytes (issue #15): what each check and rewrite on the way through the
relay costs for one message, in-process, no sockets.

    python bench/bench_datapath.py [--size 10m] [--repeat 7] [--quick]

Three bodies of the same size: `smtp-source` (what `smtp-source -l` sends and the throughput bench relays:
lines of 80, no space, no dot), `text` (lines with runs of spaces, tabs, spaces at line ends, lines that
start with a dot: everything that makes the relaxed canonicalisation and dot-stuffing do work, on every
line) and `attachment` (a few lines of text, then base64: the usual large message). Each pass is
timed as the relay runs it (the DATA reader fed 256 KiB reads; line endings; the body hash for each
canonicalisation; dot-stuffing when the reader could not rule it out), best of `--repeat`, in CPU ms (process
time). A table, then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from relay import dkim as dkimlib  # noqa: E402
from relay.maildata import DataReceiver, crlf_normalise, dot_stuffed  # noqa: E402

HEADERS = b"From: <a@bench.example>\r\nTo: <b@bench.example>\r\nSubject: bytes\r\n\r\n"
READ = 256 * 1024


def smtp_source_body(size: int) -> bytes:
    # As smtp-source writes it: a digit, 77 X, CRLF.
    lines = [b"%d" % (i % 10) + b"X" * 77 + b"\r\n" for i in range(10)]
    block = b"".join(lines)
    return HEADERS + (block * (size // len(block) + 1))[:size - len(HEADERS) - 2] + b"\r\n"


def text_body(size: int) -> bytes:
    block = (b"Dear  reader,\t here is the report \r\n.a line that starts with a dot\r\n"
             b"    <div class=\"x\">indented</div>\r\nplain words, and more words, and more.\r\n")
    return HEADERS + (block * (size // len(block) + 1))[:size - len(HEADERS) - 2] + b"\r\n"


def attachment_body(size: int) -> bytes:
    # The usual shape of a large message: a few lines of text (spaces, a signature "-- "), then a
    # base64 attachment (lines of 76, no space).
    import base64
    import random

    text = b"Hi  there,\r\n\r\nthe report is attached. \r\n\r\n-- \r\nAlice\r\n\r\n"
    raw = random.Random(15).randbytes(size * 3 // 4)
    b64 = base64.encodebytes(raw).replace(b"\n", b"\r\n")
    return HEADERS + text + b64[:size - len(HEADERS) - len(text) - 2] + b"\r\n"


def stuffed(message: bytes) -> bytes:
    """The message as the client sends it after DATA (RFC 5321 4.5.2), with the final dot."""
    return (b"." if message.startswith(b".") else b"") + message.replace(b"\r\n.", b"\r\n..") + b".\r\n"


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return round(min(times) * 1000, 2)


def measure(message: bytes, repeat: int) -> dict:
    wire = stuffed(message)
    reads = [wire[i:i + READ] for i in range(0, len(wire), READ)]

    def receive():
        receiver = DataReceiver(0)
        for chunk in reads:
            if receiver.feed(chunk):
                break
        return receiver.message()

    content, dot_lines = receive()
    assert bytes(content) == message
    data = crlf_normalise(content)
    _, start = dkimlib.body_offset(data)
    out = {
        "receive (end of data, dot lines, long lines, NUL)": best(receive, repeat),
        "line endings (crlf_normalise)": best(lambda: crlf_normalise(content), repeat),
        "body hash, relaxed": best(lambda: dkimlib.body_hash(data, "relaxed", start=start), repeat),
        "body hash, simple": best(lambda: dkimlib.body_hash(data, "simple", start=start), repeat),
        "dot-stuffing": best(lambda: dot_stuffed(data), repeat) if dot_lines else 0.0,
    }
    out["total (relaxed)"] = round(sum(v for k, v in out.items() if k != "body hash, simple"), 2)
    out["dot lines seen"] = dot_lines
    return out


def parse_size(text: str) -> int:
    t = text.strip().lower()
    for suffix, mult in (("m", 1024 ** 2), ("k", 1024)):
        if t.endswith(suffix):
            return int(float(t[:-1]) * mult)
    return int(t)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="10m")
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="1 MiB, 3 repeats")
    args = p.parse_args(argv)
    size = parse_size("1m" if args.quick else args.size)
    repeat = 3 if args.quick else args.repeat
    result = {"bench": "datapath", "size": size, "repeat": repeat, "cpu_ms": {}}
    for name, make in (("smtp-source", smtp_source_body), ("text", text_body), ("attachment", attachment_body)):
        result["cpu_ms"][name] = measure(make(size), repeat)
    mib = size / 1024 ** 2
    print(f"CPU ms per pass, one {mib:g} MiB message (best of {repeat})")
    names = list(result["cpu_ms"]["smtp-source"])
    kinds = list(result["cpu_ms"])
    print(f"{'pass':52}" + "".join(f" {kind:>12}" for kind in kinds))
    for k in names:
        print(f"{k:52}" + "".join(f" {result['cpu_ms'][kind][k]!s:>12}" for kind in kinds))
    for kind in kinds:
        result["cpu_ms"][kind]["total per MiB (relaxed)"] = round(result["cpu_ms"][kind]["total (relaxed)"] / mib, 2)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
