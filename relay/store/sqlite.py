"""The bounce list in one SQLite file (the default).

Lookups run inline on the event loop: a primary-key read is ~10 µs here
(FIELD-NOTES), about a tenth of the cost of handing it to a thread. Writes are
inline too: they are rare (one per listed failure or CLI change) and short.

Several processes share the file: the running relay and `relay bounces ...`
from the command line. WAL mode (https://sqlite.org/wal.html) lets readers
proceed while another process writes, and every lookup is a fresh statement
that sees the latest commit, so a CLI change is seen at the next RCPT with no
reload and no cache to invalidate. Writers wait for each other through
busy_timeout instead of failing with "database is locked"; `put_many()` commits
in small batches so a large import never holds the lock for long.

The relay process's memory does not grow with the list: SQLite's page cache
is bounded (cache_size) and memory-mapped I/O is left off, so the file is read
through the OS page cache, which is not the process's RSS.
"""

from __future__ import annotations

import sqlite3
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from .base import BounceEntry, BounceStore, StoreError, lookup_keys, to_datetime, to_epoch

SCHEMA_VERSION = 2  # 2: the circuit breaker's tables
PAGE = 1000  # entries fetched per query by iter_entries()

_COLUMNS = "address, category, reply, rule, first_seen, last_seen, count, source, note, expires_at"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS relay_bounces (
    address    TEXT PRIMARY KEY,           -- relay.address.normalise()
    category   TEXT NOT NULL,
    reply      TEXT NOT NULL DEFAULT '',
    rule       TEXT NOT NULL DEFAULT '',
    first_seen REAL NOT NULL,              -- Unix time, UTC
    last_seen  REAL NOT NULL,
    count      INTEGER NOT NULL DEFAULT 0,
    source     TEXT NOT NULL CHECK (source IN ('auto', 'operator')),
    note       TEXT NOT NULL DEFAULT '',
    expires_at REAL                        -- NULL: never
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS relay_bounce_failures (
    address  TEXT NOT NULL,
    category TEXT NOT NULL,
    at       REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS relay_bounce_failures_key ON relay_bounce_failures (address, category, at);
CREATE INDEX IF NOT EXISTS relay_bounce_failures_at ON relay_bounce_failures (at);
CREATE TABLE IF NOT EXISTS relay_bounce_held (
    address    TEXT PRIMARY KEY,           -- a listing the circuit breaker holds for the operator
    domain     TEXT NOT NULL,
    category   TEXT NOT NULL,
    reply      TEXT NOT NULL DEFAULT '',
    rule       TEXT NOT NULL DEFAULT '',
    first_seen REAL NOT NULL,
    last_seen  REAL NOT NULL,
    count      INTEGER NOT NULL DEFAULT 0,
    source     TEXT NOT NULL,
    note       TEXT NOT NULL DEFAULT '',
    expires_at REAL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS relay_bounce_held_domain ON relay_bounce_held (domain);
CREATE TABLE IF NOT EXISTS relay_breaker_hits (
    domain  TEXT NOT NULL,
    address TEXT NOT NULL,
    at      REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS relay_breaker_hits_domain ON relay_breaker_hits (domain, at);
"""
# WITHOUT ROWID: the table is its primary-key B-tree, so a lookup is one tree
# descent rather than an index descent plus a rowid descent.


def _entry(row) -> BounceEntry:
    return BounceEntry(address=row[0], category=row[1], reply=row[2], rule=row[3],
                       first_seen=to_datetime(row[4]), last_seen=to_datetime(row[5]), count=row[6],
                       source=row[7], note=row[8], expires_at=to_datetime(row[9]))


class SQLiteBounceStore(BounceStore):
    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 5000, url: str | None = None):
        self.path = Path(path)
        self.url = url or f"sqlite:///{self.path}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: autocommit; write transactions are explicit (BEGIN IMMEDIATE).
            # check_same_thread=False: the loop thread owns it, but close() may run from another.
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: a commit survives a process crash; a power loss may lose the
            # last commits but never corrupts the file (https://sqlite.org/pragma.html#pragma_synchronous).
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._create_schema()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open bounce list {self.url}: {exc}") from None

    _sql_get = (f"SELECT {_COLUMNS} FROM relay_bounces WHERE address = ? "
                "AND (expires_at IS NULL OR expires_at > ?)")

    def _create_schema(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: bounce list schema {version} is newer than this relay ({SCHEMA_VERSION})")
        self._db.execute("BEGIN IMMEDIATE")  # two processes starting at once create it once
        try:
            # One statement at a time: executescript() would commit the open transaction first.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    # -- reads -------------------------------------------------------------------------------

    async def get(self, address: str) -> BounceEntry | None:
        # The address's own entry, else its domain's (`@example.com`): a hit costs one
        # primary-key probe as before, a miss two (an IN list measured slower in the tail).
        key, domain_key = lookup_keys(address)
        now = to_epoch(None)
        row = self._db.execute(self._sql_get, (key, now)).fetchone()
        if row is None and domain_key is not None:
            row = self._db.execute(self._sql_get, (domain_key, now)).fetchone()
        return _entry(row) if row else None

    async def iter_entries(self) -> AsyncIterator[BounceEntry]:
        # Keyset pagination: no statement stays open across the consumer's awaits, so a
        # long export neither holds a read snapshot nor blocks WAL checkpoints.
        after = ""
        while True:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM relay_bounces WHERE address > ? "
                "AND (expires_at IS NULL OR expires_at > ?) ORDER BY address LIMIT ?",
                (after, to_epoch(None), PAGE)).fetchall()
            for row in rows:
                yield _entry(row)
            if len(rows) < PAGE:
                return
            after = rows[-1][0]

    async def count(self) -> int:
        return self._db.execute("SELECT count(*) FROM relay_bounces WHERE expires_at IS NULL OR expires_at > ?",
                                (to_epoch(None),)).fetchone()[0]

    async def purge(self, *, failures_older_than: float, now=None) -> int:
        at = to_epoch(now)
        async with self._transaction() as db:
            gone = db.execute("DELETE FROM relay_bounces WHERE expires_at IS NOT NULL AND expires_at <= ?",
                              (at,)).rowcount
            gone += db.execute("DELETE FROM relay_bounce_failures WHERE at <= ?",
                               (at - failures_older_than,)).rowcount
            gone += db.execute("DELETE FROM relay_breaker_hits WHERE at <= ?", (at - failures_older_than,)).rowcount
        return gone

    async def held(self, domain: str | None = None) -> list[BounceEntry]:
        if domain is None:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM relay_bounce_held ORDER BY address").fetchall()
        else:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM relay_bounce_held WHERE domain = ? ORDER BY address",
                                    (domain,)).fetchall()
        return [_entry(row) for row in rows]

    async def close(self) -> None:
        self._db.close()

    # -- the write primitives ---------------------------------------------------------------
    # None of these awaits anything, so a transaction runs start to finish without
    # yielding to the loop: no other coroutine can slip a statement into it.

    @asynccontextmanager
    async def _transaction(self):
        # IMMEDIATE takes the write lock up front, so read-then-write cannot
        # deadlock against another process doing the same (SQLITE_BUSY on upgrade).
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    async def _fetch(self, db, key: str) -> BounceEntry | None:
        row = db.execute(f"SELECT {_COLUMNS} FROM relay_bounces WHERE address = ?", (key,)).fetchone()
        return _entry(row) if row else None

    async def _count_failure(self, db, key: str, category: str, at: float, within: float) -> int:
        db.execute("INSERT INTO relay_bounce_failures (address, category, at) VALUES (?, ?, ?)", (key, category, at))
        db.execute("DELETE FROM relay_bounce_failures WHERE address = ? AND category = ? AND at <= ?",
                   (key, category, at - within))
        return db.execute("SELECT count(*) FROM relay_bounce_failures WHERE address = ? AND category = ?",
                          (key, category)).fetchone()[0]

    async def _write(self, db, entry: BounceEntry) -> None:
        db.execute(
            f"INSERT OR REPLACE INTO relay_bounces ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (entry.address, entry.category, entry.reply, entry.rule, entry.first_seen.timestamp(),
             entry.last_seen.timestamp(), entry.count, entry.source, entry.note,
             entry.expires_at.timestamp() if entry.expires_at else None))

    async def _delete(self, db, key: str) -> None:
        db.execute("DELETE FROM relay_bounces WHERE address = ?", (key,))

    async def _clear_failures(self, db, key: str, category: str | None) -> None:
        if category is None:
            db.execute("DELETE FROM relay_bounce_failures WHERE address = ?", (key,))
        else:
            db.execute("DELETE FROM relay_bounce_failures WHERE address = ? AND category = ?", (key, category))

    async def _first_failure(self, db, key: str, category: str, at: float, within: float) -> float:
        db.execute("INSERT INTO relay_bounce_failures (address, category, at) VALUES (?, ?, ?)", (key, category, at))
        db.execute("DELETE FROM relay_bounce_failures WHERE address = ? AND category = ? AND at <= ?",
                   (key, category, at - within))
        return db.execute("SELECT min(at) FROM relay_bounce_failures WHERE address = ? AND category = ?",
                          (key, category)).fetchone()[0]

    async def _breaker_hit(self, db, domain: str, key: str, at: float, within: float) -> int:
        db.execute("INSERT INTO relay_breaker_hits (domain, address, at) VALUES (?, ?, ?)", (domain, key, at))
        db.execute("DELETE FROM relay_breaker_hits WHERE domain = ? AND at <= ?", (domain, at - within))
        return db.execute("SELECT count(DISTINCT address) FROM relay_breaker_hits WHERE domain = ?",
                          (domain,)).fetchone()[0]

    async def _clear_breaker_hits(self, db, domain: str) -> None:
        db.execute("DELETE FROM relay_breaker_hits WHERE domain = ?", (domain,))

    async def _held_count(self, db, domain: str) -> int:
        return db.execute("SELECT count(*) FROM relay_bounce_held WHERE domain = ?", (domain,)).fetchone()[0]

    async def _fetch_held(self, db, key: str) -> BounceEntry | None:
        row = db.execute(f"SELECT {_COLUMNS} FROM relay_bounce_held WHERE address = ?", (key,)).fetchone()
        return _entry(row) if row else None

    async def _hold(self, db, entry: BounceEntry, domain: str) -> None:
        db.execute(
            f"INSERT OR REPLACE INTO relay_bounce_held (domain, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (domain, entry.address, entry.category, entry.reply, entry.rule, entry.first_seen.timestamp(),
             entry.last_seen.timestamp(), entry.count, entry.source, entry.note,
             entry.expires_at.timestamp() if entry.expires_at else None))

    async def _take_held(self, db, domain: str | None, key: str | None) -> list[BounceEntry]:
        where, arg = ("domain = ?", domain) if key is None else ("address = ?", key)
        rows = db.execute(f"SELECT {_COLUMNS} FROM relay_bounce_held WHERE {where} ORDER BY address",
                          (arg,)).fetchall()
        db.execute(f"DELETE FROM relay_bounce_held WHERE {where}", (arg,))
        return [_entry(row) for row in rows]

    async def _recent_auto_entries(self, db, domain: str, since: float, categories) -> list[BounceEntry]:
        # A scan of the domain's keys by suffix: it runs only when a breaker trips.
        cats = sorted(categories)
        rows = db.execute(
            f"SELECT {_COLUMNS} FROM relay_bounces WHERE address LIKE ? ESCAPE '\\' AND source = 'auto' "
            f"AND first_seen > ? AND category IN ({', '.join('?' * len(cats))})",
            ("%@" + _like_escape(domain), since, *cats)).fetchall()
        return [_entry(row) for row in rows if row[0].rpartition("@")[2] == domain]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
