"""The classifier's shipped patterns against texts built to make them backtrack.

Every upstream reply is classified on the event loop (relay/classify.py), at most
MAX_CLASSIFIED_TEXT characters of it, through the shipped rules' joined alternations, which run
in Python's backtracking `re` (operator rules run in RE2: relay/regex.py). One pattern that
backtracks holds every session: listing audit 2's sender words, with four unbounded whitespace
runs, took about a minute for "550 5.1.1 User unknown; sender" and 300 spaces. bench/audit_regex.py
builds adversarial texts from each pattern's own structure; here it runs on the classifier's
patterns at the classified length, and fails on one that times out or whose worst search takes
over HANG_MS: a hang guard with a wide margin (sound patterns take a few ms, a backtracking one
seconds to hours), not a speed target.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from relay.classify import MAX_CLASSIFIED_TEXT

ROOT = Path(__file__).resolve().parent.parent
HANG_MS = 1000


def test_no_shipped_classifier_pattern_backtracks_on_a_classified_length_text():
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "audit_regex.py"), "--where", "relay/classify.py,relay/regex.py",
         "--small", str(MAX_CLASSIFIED_TEXT // 4), "--large", str(MAX_CLASSIFIED_TEXT), "--timeout", "20",
         "--hang-ms", str(HANG_MS), "--top", "5"],
        cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert ", 0 over" in run.stdout, run.stdout
