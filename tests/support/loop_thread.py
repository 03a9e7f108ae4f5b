"""The event loop of a test server that runs in a thread of the test process."""

from __future__ import annotations

import asyncio


def run_until_stopped(loop: asyncio.AbstractEventLoop) -> None:
    """loop.run_forever(), then what asyncio.run does at its end: the tasks still pending (a session
    waiting for its next line when the server stopped) are cancelled and finish. Left pending, asyncio
    reports each when the garbage collector finds it, as an ERROR logged in whichever later test runs
    then (one that asserts its log has no ERROR fails for another test's task)."""
    loop.run_forever()
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.wait(pending, timeout=5))
    loop.run_until_complete(loop.shutdown_asyncgens())
