"""relay/signals.py: signals handled on the event loop, and turned off at a process's end."""

from __future__ import annotations

import subprocess
import sys
import textwrap

FLOOD = textwrap.dedent("""
    import asyncio, os, signal
    from relay import signals

    async def main():
        loop = asyncio.get_running_loop()
        reloads, stopping = [], asyncio.Event()
        signals.handle_on_loop(loop, {signal.SIGHUP: lambda: reloads.append(1), signal.SIGTERM: stopping.set})
        for _ in range(20000):  # the loop is busy meanwhile: nothing drains asyncio's self-pipe
            os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.sleep(0.1)
        os.kill(os.getpid(), signal.SIGTERM)  # once drained, the next signal still arrives
        await asyncio.wait_for(stopping.wait(), 10)
        print("reloads", "some" if reloads else "none")

    asyncio.run(main())
""")


def test_a_flood_of_signals_while_the_loop_is_busy_is_handled_without_a_report_on_stderr():
    done = subprocess.run([sys.executable, "-c", FLOOD], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "reloads some"
    assert done.stderr == ""  # was one "Exception ignored ... BlockingIOError" per signal lost


LATE = textwrap.dedent("""
    import signal, sys
    from relay import signals

    class Reported:  # an exception in __del__ reaches sys.unraisablehook, as CPython's report does
        def __init__(self, message):
            self.message = message

        def __del__(self):
            raise OSError(self.message)

    def report(message):
        Reported(message)

    signals.ignore([signal.SIGTERM, signal.SIGHUP])
    report("Signal 15 ignored due to race condition")  # ignored on purpose: dropped
    report("Signal 1 ignored due to race condition")
    report("Signal 10 ignored due to race condition")  # SIGUSR1 was not ignored here: still reported
    report("something else")
""")


def test_a_signal_that_another_thread_took_while_it_was_being_ignored_is_not_reported():
    """signals.ignore() blocks the signals in the calling thread only: another thread can take one in
    the instant before SIG_IGN is set, and CPython reports it through sys.unraisablehook ("OSError:
    Signal 15 ignored due to race condition", once on a draining worker's stderr in
    test_workers' SIGTERM/SIGHUP flood). Those reports are dropped for the ignored signals only."""
    done = subprocess.run([sys.executable, "-c", LATE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Signal 15" not in done.stderr and "Signal 1 " not in done.stderr
    assert "Signal 10 ignored due to race condition" in done.stderr and "something else" in done.stderr
