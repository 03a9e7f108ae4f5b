"""sd_notify(3) without libsystemd: READY, RELOADING, STOPPING, STATUS and the watchdog."""

from __future__ import annotations

import asyncio
import os
import socket
import time

MAX_STATUS = 400  # characters of a reload's error in STATUS=, which `systemctl status` shows on one line


def notify(state: str) -> bool:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(address)
            sock.sendall(state.encode())
        except OSError:
            return False
    return True


def reloading() -> bool:
    """SIGHUP taken: systemd shows the unit "reloading" until reloaded() says READY=1 (sd_notify(3):
    RELOADING=1 comes with MONOTONIC_USEC=, the CLOCK_MONOTONIC time the reload began)."""
    return notify(f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")


def reloaded(error: str | None) -> bool:
    """The reload is over: READY=1, and STATUS= says whether the new config runs or why the old one
    still does, so that `systemctl status relay` shows a refused reload, not only the journal."""
    if error is None:
        status = "Running; the config was reloaded"
    else:
        why = " ".join(error.split())  # one line: a newline would end the STATUS= assignment
        if len(why) > MAX_STATUS:
            why = why[:MAX_STATUS] + "..."
        status = f"Running the previous config: the reload was refused: {why}"
    return notify(f"READY=1\nSTATUS={status}")


async def watchdog() -> None:
    """Pings at half the WatchdogSec interval while the event loop is healthy."""
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec or not usec.isdigit():
        return
    interval = int(usec) / 2e6
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)
