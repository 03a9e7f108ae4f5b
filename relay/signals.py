"""Turning signals off at the end of a process, without a race of our own."""

from __future__ import annotations

import signal


def ignore(signums) -> None:
    """SIG_IGN for each of `signums`. A signal that arrived just before is handled by the handler it
    came under, never reported as lost: CPython runs pending Python handlers at the start of every
    signal.signal() call, and one whose handler a previous call of the same loop had already set to
    SIG_IGN was printed as "Exception ignored ... OSError: Signal 15 ignored due to race condition".
    Blocked meanwhile, none can arrive between the changes; once ignored, a pending one is dropped
    by the kernel (POSIX: setting SIG_IGN discards it)."""
    signums = tuple(signums)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, signums)
    try:
        for signum in signums:
            signal.signal(signum, signal.SIG_IGN)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
