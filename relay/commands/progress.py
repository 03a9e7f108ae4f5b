"""A progress bar on stderr for commands that stream many rows (`relay bounces import/export`).

On a terminal it redraws one line (at most every REDRAW seconds, so a million rows cost a few hundred
writes); elsewhere (a log, a pipe, when forced with --progress) it writes a plain line every
LOG_EVERY seconds, so that a log keeps a readable record. stdout is left alone: it may carry the data.
"""

from __future__ import annotations

import sys
import time

REDRAW = 0.2
LOG_EVERY = 5.0
WIDTH = 24


def wanted(flag: bool | None, stream=None) -> bool:
    """--progress / --no-progress, else: only when stderr is a terminal."""
    stream = stream or sys.stderr
    if flag is not None:
        return flag
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    def __init__(self, verb: str, total: int | None = None, *, enabled: bool = True, stream=None):
        self.verb = verb
        self.total = total
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = enabled and wanted(None, self.stream)
        self.done = 0
        self._start = time.monotonic()
        self._shown = 0.0

    def advance(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._shown >= (REDRAW if self.tty else LOG_EVERY):
            self._shown = now
            self._draw(now)

    def finish(self) -> None:
        if self.enabled:
            self._draw(time.monotonic(), last=True)

    def _draw(self, now: float, last: bool = False) -> None:
        elapsed = max(now - self._start, 1e-6)
        rate = self.done / elapsed
        if self.total:
            share = min(self.done / self.total, 1.0)
            bar = "#" * int(share * WIDTH) + "-" * (WIDTH - int(share * WIDTH))
            text = f"{self.verb} [{bar}] {share:4.0%} {self.done:,}/{self.total:,}, {rate:,.0f}/s"
            if not last and rate > 0:
                text += f", {max(self.total - self.done, 0) / rate:,.0f} s left"
        else:
            text = f"{self.verb} {self.done:,}, {rate:,.0f}/s"
        if last:
            text += f", {elapsed:,.1f} s"
        if self.tty:
            self.stream.write("\r\x1b[K" + text + ("\n" if last else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
