"""Signals in the relay's processes: handled on the event loop, and turned off at the end of a
process, without a race of our own."""

from __future__ import annotations

import asyncio
import signal
import sys

# Signals ignore() turned off in this process, for _quiet_late_reports.
_ignored: set[int] = set()
_previous_unraisablehook = None


def ignore(signums) -> None:
    """SIG_IGN for each of `signums`. A signal that arrived just before is handled by the handler it
    came under, never reported as lost: CPython runs pending Python handlers at the start of every
    signal.signal() call, and one whose handler a previous call of the same loop had already set to
    SIG_IGN was printed as "Exception ignored ... OSError: Signal 15 ignored due to race condition".
    Blocked meanwhile, none can arrive between the changes; once ignored, a pending one is dropped
    by the kernel (POSIX: setting SIG_IGN discards it)."""
    signums = tuple(signums)
    _quiet_late_reports(signums)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, signums)
    try:
        for signum in signums:
            signal.signal(signum, signal.SIG_IGN)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _quiet_late_reports(signums) -> None:
    """The mask blocks the signals in this thread only: another thread of the process (asyncio's
    executor, a store's) can take one in the instant between CPython's check of pending signals and
    its change of the handler, and CPython then reports it from the next bytecode as "Exception
    ignored ... OSError: Signal 15 ignored due to race condition" (seen once from a draining worker
    under a flood of forwarded SIGTERMs). Dropping it is what ignore() asked for, so that report, for
    these signals only, goes nowhere (sys.unraisablehook, the public hook for such reports); every
    other report reaches the hook that was there before."""
    global _previous_unraisablehook
    _ignored.update(int(s) for s in signums)
    if sys.unraisablehook is not _drop_late_signal_report:
        _previous_unraisablehook = sys.unraisablehook
        sys.unraisablehook = _drop_late_signal_report


def _drop_late_signal_report(unraisable) -> None:
    exc = unraisable.exc_value
    if isinstance(exc, OSError) and any(str(exc) == f"Signal {signum} ignored due to race condition"
                                        for signum in _ignored):
        return
    (_previous_unraisablehook or sys.__unraisablehook__)(unraisable)


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
