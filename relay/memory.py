"""Large buffers go back to the operating system when they are freed.

A message is read into one buffer of up to `limits.max_message_size` bytes. glibc's malloc serves
such a block with mmap and unmaps it on free, but only up to its *dynamic* mmap threshold: each
freed mmapped block raises the threshold to its size (up to 32 MiB on 64-bit, mallopt(3)), after
which blocks of that size come from the heap, where freed memory stays in the process and
fragments (measured: 8 clients x 30 MiB, three rounds, RSS 43 -> 84/44/356 MB; bench/bench_memory.py).
A fixed threshold turns the dynamic one off: every block of 1 MiB or more is mapped on its own
and unmapped when freed. Small allocations (everything on the 1 KiB path) are not affected.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("relay.memory")

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
LARGE = 1 << 20


def give_back_large_buffers() -> bool:
    """Set glibc's mmap (and trim) threshold to 1 MiB; False where there is no glibc (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = getattr(libc, "mallopt", None)
    except OSError:
        mallopt = None
    if mallopt is None:
        return False
    ok = bool(mallopt(M_MMAP_THRESHOLD, LARGE)) and bool(mallopt(M_TRIM_THRESHOLD, 2 * LARGE))
    if not ok:
        log.debug("mallopt refused the thresholds; large buffers may stay in the heap after use")
    return ok
