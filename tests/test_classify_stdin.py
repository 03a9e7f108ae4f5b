"""`relay classify` with no TEXT reads one JSON string a line from stdin: each line and the input as a
whole are bounded, as `relay dsn parse` bounds what it reads (a line was held whole, however long:
300 MB with no newline grew the process to 924 MB, /dev/zero without end)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from relay.commands.classify import MAX_INPUT_BYTES, MAX_LINE_BYTES

REPO = Path(__file__).resolve().parent.parent


def _limited_memory():
    import resource

    # The old code read /dev/zero as one line without end: bounded here, so that showing the defect
    # cannot take the machine's memory.
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def classify(stdin, timeout: float = 120) -> subprocess.CompletedProcess:
    given = isinstance(stdin, bytes)
    return subprocess.run([sys.executable, "-m", "relay", "classify"], input=stdin if given else None,
                          stdin=None if given else stdin, capture_output=True, timeout=timeout, cwd=REPO,
                          preexec_fn=_limited_memory)


def test_a_line_past_the_bound_is_an_error_line_and_the_next_lines_are_still_classified():
    long_line = json.dumps("550 5.1.1 " + "a" * (MAX_LINE_BYTES + 10)).encode()
    stdin = (json.dumps("550 5.1.1 User unknown") + "\n").encode() + long_line + b"\n" + \
        (json.dumps("452 4.2.2 Mailbox full") + "\n").encode()
    out = classify(stdin)
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == 3, out.stdout[:2000]
    assert lines[0]["category"] == "unknown_recipient"
    assert lines[1] == {"error": f"line 2: longer than {MAX_LINE_BYTES} bytes; expected one JSON string "
                                 f"(an SMTP reply) a line"}
    assert lines[2]["category"] == "mailbox_full"
    assert out.returncode == 1 and b"Traceback" not in out.stderr


def test_a_line_just_within_the_bound_is_classified():
    text = "550 5.1.1 User unknown " + "a" * (MAX_LINE_BYTES - 40)
    line = json.dumps(text).encode()
    assert len(line) <= MAX_LINE_BYTES
    out = classify(line + b"\n")
    assert out.returncode == 0 and json.loads(out.stdout)["category"] == "unknown_recipient", out.stderr[-2000:]


def test_endless_input_stops_at_the_bound_with_a_clear_error():
    with open("/dev/zero", "rb") as zero:
        out = classify(zero)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.decode() == (f"error: stdin: over {MAX_INPUT_BYTES} bytes in all; the rest was not read "
                                   f"(classify a larger input in parts)\n")
