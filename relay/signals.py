"""Signals in the relay's processes: handled on the event loop, and turned off at the end of a
process, without a race of our own."""

from __future__ import annotations

import asyncio
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


def handle_on_loop(loop: asyncio.AbstractEventLoop, handlers: dict[int, object]) -> None:
    """Each of `handlers` (signum -> callback) runs on `loop` when its signal arrives. asyncio writes
    each signal's number to a self-pipe that the loop drains; an operator repeating SIGTERM or SIGHUP
    (or a parent forwarding each to every worker) while the loop is busy fills that pipe, and CPython
    then printed "Exception ignored when trying to write to the signal wakeup fd: BlockingIOError"
    for every lost byte. The ones lost are repeats of signals still in the pipe, so they are dropped
    quietly (the public set_wakeup_fd(fd, warn_on_full_buffer=False), on asyncio's own fd)."""
    for signum, callback in handlers.items():
        loop.add_signal_handler(signum, callback)
    signums = tuple(handlers)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, signums)  # none arrives while no fd is set
    try:
        fd = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(fd, warn_on_full_buffer=False)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
