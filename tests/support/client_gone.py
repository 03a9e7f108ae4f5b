"""A client that goes away while the relay records what the next hop answered: the bounce list's lock held by
another process keeps the relay's recording waiting for as long as the test takes to make the client go, and
/metrics says when the relay has read the reply (tests/test_frontdoor_hostile.py, tests/test_delivery_mx.py)."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import struct

from relay.store.sqlite import SQLiteBounceStore
from tests.support.metrics import samples
from tests.support.processes import wait_until
from tests.support.smtp_client import RawSMTP


@contextlib.contextmanager
def bounce_list_locked(tmp_path, monkeypatch):
    """The bounce list's SQLite write lock held by another process (`relay bounces import`), so that the
    relay's recording of a refusal waits for it, for as long as the test takes to make the client go. The
    relay's write waits up to 30 s for that lock (2 s by default), however loaded this machine is."""
    monkeypatch.setitem(SQLiteBounceStore.__init__.__kwdefaults__, "write_timeout", 30.0)
    lock = sqlite3.connect(tmp_path / "bounces.db", isolation_level=None, timeout=30)
    lock.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        lock.execute("ROLLBACK")
        lock.close()


def metric(relay, name: str, **labels) -> float:
    found = [v for (n, ls), v in samples(relay.http("/metrics")[2]).items()
             if n == name and labels.items() <= dict(ls).items()]
    return sum(found)


def reset_once_read(relay, gone: RawSMTP, command: str) -> None:
    """Once the relay has read the upstream's refusal of `command` (and waits for the list's lock to record
    it), the client resets the connection, never reading that refusal, and the relay sees it go."""
    wait_until(lambda: metric(relay, "relay_upstream_replies_total", command=command, **{"class": "5xx"}) == 1)
    gone.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    gone.close()
    wait_until(lambda: metric(relay, "relay_active_sessions") == 0)
