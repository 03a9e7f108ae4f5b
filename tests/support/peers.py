"""The Debian peers (smtp-sink, a private Postfix instance), shared with the benchmark harness.

bench/systems.py owns how to run them; the tests use the same code so that what the
benchmark measures and what the tests check are the same setup.
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from systems import PostfixInstance, Sink, free_port, wait_port  # noqa: E402

__all__ = ["PostfixInstance", "Sink", "free_port", "wait_port"]
