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
