"""`milter.workers: N`: N processes accepting on one milter socket (pre-fork).

One asyncio process signs on one core; Postfix runs many smtpd processes, and OpenDKIM a thread per
connection. The parent binds the socket (TCP, or the UNIX socket with its mode and group), forks
the workers before anything else is opened (store, threads, event sinks are per process), forwards
SIGTERM, SIGINT and SIGHUP to them, and starts a new worker when one dies unexpectedly.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Callable

log = logging.getLogger("relay.milter")

RESTART_DELAY = 1.0  # seconds before a worker that died is replaced (no busy loop when it keeps dying)


def serve_workers(settings, run_worker: Callable[[object], None]) -> int:
    from .server import bind_milter_socket, remove_milter_socket

    sock = bind_milter_socket(settings.milter)
    log.info("milter: %d worker processes on %s", settings.milter.workers, settings.milter)
    children: set[int] = set()
    stopping = False

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            # Until the worker's loop takes SIGHUP over (a reload), one arriving during its start
            # must not end it.
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            code = 0
            try:
                run_worker(sock)
            except BaseException:
                log.exception("milter worker %d failed", os.getpid())
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        children.add(pid)

    def forward(signum, _frame) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    for _ in range(settings.milter.workers):
        spawn()
    exit_code = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        children.discard(pid)
        if stopping:
            # A worker still starting when SIGTERM came ends by the signal itself: that is a stop too.
            if os.waitstatus_to_exitcode(status) not in (0, -signal.SIGTERM, -signal.SIGINT):
                log.error("milter worker %d ended with exit status %d while stopping", pid,
                          os.waitstatus_to_exitcode(status))
                exit_code = 1
            continue
        log.error("milter worker %d ended (exit status %d); starting another", pid,
                  os.waitstatus_to_exitcode(status))
        time.sleep(RESTART_DELAY)
        if not stopping:
            spawn()
    sock.close()
    remove_milter_socket(settings.milter)
    return exit_code
