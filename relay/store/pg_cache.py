"""A relay's cache of recent bounce-list lookups, kept right by PostgreSQL's notifications.

A lookup through the database costs a round trip (~0.2 ms on a quiet machine, milliseconds to seconds
on a loaded one: bench/bench_pg_lookup.py); the same recipients come back all day. So each relay keeps
the answers of its recent lookups (listed or not), and the database tells every relay what changed:
a trigger on the bounces table (relay/store/schema.py, migration 5) sends NOTIFY with the changed
address at commit, whoever changed it (a relay, `relay bounces`, an operator's own SQL), and each
relay's listener drops that address from its cache. An operator's removal reaches every relay in
milliseconds.

The cache is used only while it can be trusted:
- Only while the listener is known to be alive: it asks the database every HEARTBEAT seconds (which
  also flushes any notification due before it), and an answer older than FRESH seconds turns the
  cache off, so lookups go to the database again (and a hung database is a 451 within its deadline,
  not stale answers). A listener that reconnects clears the cache first: it may have missed changes.
- A lookup's answer is kept only if no notification about its keys arrived while it was being
  fetched (else it may predate the change: the notification came first, the stale answer second).
- A change of a domain entry (`@example.com`), a TRUNCATE, a reconnect: everything is dropped.
- Expiry is judged by the database's clock (its offset to ours is measured at each heartbeat). An
  answer that has expired is a miss: the database is asked again (the address's own entry expiring
  may leave its domain's `@example.com` entry to answer).
"""

from __future__ import annotations

import time
from collections import OrderedDict

from .base import BounceEntry

HEARTBEAT = 0.25  # seconds between the listener's checks that it is alive
FRESH = 1.0  # seconds an answer from the listener keeps the cache usable
SIZE = 100_000  # lookups kept (least recently used dropped first); ?cache=N in the URL, 0: no cache
_TOUCHED_MAX = 10_000  # notified keys remembered for lookups in flight


class LookupCache:
    def __init__(self, size: int = SIZE):
        self.size = size
        self._entries: OrderedDict[str, BounceEntry | None] = OrderedDict()
        self._seq = 0  # one more for every notification
        self._touched: dict[str, int] = {}  # key -> seq of its latest notification
        self._floor = 0  # lookups begun before this seq are never kept (a clear, or _touched forgotten)
        self._alive_until = 0.0  # monotonic
        self.offset = 0.0  # the database's clock minus ours, in seconds
        self.hits = self.misses = 0

    # -- the listener's side ------------------------------------------------------------------------

    def alive(self, since: float) -> None:
        """The listener had an answer to a query sent at `since` (monotonic)."""
        self._alive_until = max(self._alive_until, since + FRESH)

    def down(self) -> None:
        self._alive_until = 0.0
        self.clear()

    def clear(self) -> None:
        self._entries.clear()
        self._touched.clear()
        self._seq += 1
        self._floor = self._seq

    def notified(self, key: str) -> None:
        if key == "*" or key.startswith("@"):
            self.clear()  # a truncation, or a domain entry: it answers for every address there
            return
        self._seq += 1
        self._entries.pop(key, None)
        if len(self._touched) >= _TOUCHED_MAX:
            self._touched.clear()
            self._floor = self._seq
        self._touched[key] = self._seq

    # -- the lookup's side --------------------------------------------------------------------------

    def usable(self) -> bool:
        return self.size > 0 and time.monotonic() < self._alive_until

    def get(self, key: str) -> tuple[bool, BounceEntry | None]:
        """(found, entry): found is False when the database must be asked."""
        if not self.usable() or key not in self._entries:
            self.misses += 1
            return False, None
        entry = self._entries[key]
        if entry is not None and entry.expires_at is not None and \
                entry.expires_at.timestamp() <= time.time() + self.offset:
            # Expired since: a miss, not "not listed". The kept answer is the row the lookup chose (the
            # address's own entry wins over its domain's), and once it expires the database answers
            # with the `@domain` entry behind it, if there is one. Expiry sends no notification, so
            # answering None here let a domain-listed address through for as long as this stayed
            # cached (review32 #3).
            del self._entries[key]
            self.misses += 1
            return False, None
        self._entries.move_to_end(key)
        self.hits += 1
        return True, entry

    def begin(self) -> int:
        return self._seq

    def put(self, key: str, domain_key: str | None, entry: BounceEntry | None, began: int) -> None:
        if not self.usable() or began < self._floor:
            return
        if self._touched.get(key, 0) > began or (domain_key is not None and self._touched.get(domain_key, 0) > began):
            return  # changed while we asked: this answer may be the old one
        self._entries[key] = entry
        self._entries.move_to_end(key)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)


def channel(schema: str, prefix: str) -> str:
    """The NOTIFY channel of one bounce list (at most 63 bytes, PostgreSQL's identifier length)."""
    name = f"{schema}.{prefix}bounces"
    if len(name.encode()) <= 63:
        return name
    import hashlib

    return "relay_bounces_" + hashlib.sha256(name.encode()).hexdigest()[:32]
