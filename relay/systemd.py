"""sd_notify(3) without libsystemd: READY, STOPPING, STATUS and the watchdog."""

from __future__ import annotations

import asyncio
import os
import socket


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


async def watchdog() -> None:
    """Pings at half the WatchdogSec interval while the event loop is healthy."""
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec or not usec.isdigit():
        return
    interval = int(usec) / 2e6
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)
