"""Log lines that a flood would repeat thousands of times a second, sampled.

A client that opens connections in a loop past `limits.max_connections` would write one WARNING per
connection; journald's rate limit (RateLimitBurst, 10,000 lines in 30 s by default) would then drop
the relay's other lines with them. The first line of a kind is written at once; within the next
`every` seconds the same kind is only counted, and the next line written says how many were left out.
The metrics count every one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass


@dataclass
class _Window:
    until: float  # monotonic time before which lines of this kind are only counted
    left_out: int = 0


class SampledLog:
    def __init__(self, logger: logging.Logger, every: float = 60.0, clock=time.monotonic):
        self._log = logger
        self._every = every
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    def warning(self, kind: str, message: str, *args) -> None:
        now = self._clock()
        window = self._windows.get(kind)
        if window is not None and now < window.until:
            window.left_out += 1
            return
        if window is not None and window.left_out:
            message += f" ({window.left_out} more like it in the {self._every:.0f} s before were not logged)"
        self._windows[kind] = _Window(until=now + self._every)
        self._log.warning(message, *args)
