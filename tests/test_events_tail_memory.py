"""`relay events tail` on a large events file, as an operator runs it: the command in its own process.

It read the whole file into memory (one string, then a list of every line) to show the last twenty
lines: a jsonl sink of a busy relay grows by gigabytes between rotations, and the command took that
much memory, or a MemoryError's traceback, to show a screenful. It reads backwards from the end in
blocks now. The bound is on the command's peak resident memory (the kernel's ru_maxrss of that one
process, os.wait4), never on how long it took.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

FILE_MB = 96


def _event(n: int, kind: str = "rejected") -> bytes:
    return json.dumps({"schema": 1, "event_id": f"e{n}", "time": "2026-12-02T07:00:00Z", "kind": kind,
                       "stage": "rcpt", "recipient": f"r{n}@example.com",
                       "reply": {"code": 550, "enhanced": "5.1.1", "text": "550 5.1.1 User unknown " + "x" * 300,
                                 "source": "upstream"}}).encode() + b"\n"


def _tail(path, *args) -> tuple[list[dict], int]:
    """The events `relay events tail --json` prints, and its peak resident memory in KiB."""
    out, err = path.parent / "out.txt", path.parent / "err.txt"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "relay", "events", "tail", "--json", "--file", str(path),
                                 *args], stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    assert proc.returncode == 0, err.read_text()
    return [json.loads(line) for line in out.read_text().splitlines()], usage.ru_maxrss


def _big_file(path, first: bytes) -> None:
    # Many MB of events: a first event of its own, then ~300 kB blocks of ordinary ones, then three last ones.
    block = b"".join(_event(n) for n in range(800))
    with open(path, "wb") as fh:
        fh.write(first)
        for _ in range(FILE_MB * (1 << 20) // len(block)):
            fh.write(block)
        for n in (10**6, 10**6 + 1, 10**6 + 2):
            fh.write(_event(n))


def test_events_tail_shows_the_last_events_of_a_file_of_many_megabytes_without_reading_it_into_memory(tmp_path):
    small = tmp_path / "small.jsonl"
    small.write_bytes(b"".join(_event(n) for n in range(5)))
    shown, baseline = _tail(small, "-n", "3")
    assert [e["event_id"] for e in shown] == ["e2", "e3", "e4"]

    big = tmp_path / "events.jsonl"
    _big_file(big, _event(0, kind="bounced"))
    assert big.stat().st_size > FILE_MB << 20
    shown, peak = _tail(big, "-n", "3")
    assert [e["event_id"] for e in shown] == ["e1000000", "e1000001", "e1000002"]
    # The old reading held the file twice over (its text and its lines): ~200 MB more than the small file's.
    assert peak - baseline < 24 * 1024, (peak, baseline)

    # The one event of its kind is the file's first: found by reading back through all of it, block by block,
    # in the same bounded memory.
    shown, peak = _tail(big, "-n", "5", "--kind", "bounced")
    assert [e["event_id"] for e in shown] == ["e0"]
    assert peak - baseline < 24 * 1024, (peak, baseline)
