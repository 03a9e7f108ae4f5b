"""The bounce list in PostgreSQL, for several relays sharing one list.

URL: postgresql://user[:password]@host[:port]/database[?schema=NAME&prefix=PREFIX]
(also postgres://). `schema` (default public) and `prefix` (default relay_)
place the tables, so one database can hold several lists, and tests can give
each test its own. The other query parameters go to asyncpg as they are.

A lookup costs ~180 µs through asyncpg (FIELD-NOTES) against ~10 µs for
SQLite: the price of sharing the list between machines. Writers serialise per
address with a transaction-scoped advisory lock, because a row lock cannot
protect an address that has no row yet.

Every use has a deadline, so that a hung database (a lock held by someone else, an
overloaded server, a network that drops packets) is a StoreError within seconds, which
the pipeline answers with 451 4.3.0 at RCPT, never a pass and never a stuck session:
connecting (`CONNECT_TIMEOUT`), getting a connection from the pool and each query
(`QUERY_TIMEOUT`, enforced by asyncpg on our side and as statement_timeout and
lock_timeout on the server's, so that the server gives up the work too).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import time
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import AsyncIterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .base import (PROVIDER_PREFIX, SAME_MESSAGE_WITHIN, SHAPING_PERIODS, BounceEntry, BounceStore, ShapingRecord, StoreBusy, StoreError, lookup_keys,
                   redact, to_datetime, to_epoch, verp_keep_days)
from .pg_cache import FRESH, HEARTBEAT, SIZE as CACHE_SIZE, LookupCache, channel
from .schema import migrate_postgresql, postgresql_version

log = logging.getLogger("relay.store")

# The list keys the running write transaction changed (its task's own), for the cache at commit.
_TOUCHED: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("relay_pg_touched", default=None)


def _touch(key: str) -> None:
    touched = _TOUCHED.get()
    if touched is not None:
        touched.append(key)

EXTRA = "postgresql"  # pyproject.toml: the optional dependencies a postgresql:// URL needs


def driver_missing(url: str) -> str | None:
    """Why a postgresql:// URL cannot be used by this installation (its driver is not installed),
    or None. Said at check-config and at start, never as a traceback at the first RCPT."""
    try:
        import asyncpg  # noqa: F401
    except ImportError as exc:
        # Not `pip install 'relay[...]'`: relay is installed from its source tree, and that line
        # would ask the package index for whatever package is called relay there.
        return (f"{redact(url)} needs the PostgreSQL driver asyncpg, which is not installed ({exc}): "
                f"install relay with its {EXTRA} extra from its source tree or wheel, into the relay's own "
                f"environment (pip install '/path/to/relay[{EXTRA}]', docs/install.md)")
    return None


def _lost(asyncpg) -> tuple[type[BaseException], ...]:
    """What asyncpg raises when the connection is gone (rather than the query wrong). A pooled
    connection the server closed while it sat idle, taken before the loop saw the close, fails
    with the first of these and may leave its protocol half-way (InternalClientError: "another
    operation is in progress")."""
    return (OSError, asyncpg.PostgresConnectionError, asyncpg.AdminShutdownError, asyncpg.CannotConnectNowError,
            asyncpg.InternalClientError)


def import_driver(url: str):
    why = driver_missing(url)
    if why:
        raise StoreError(why)
    import asyncpg

    return asyncpg

PAGE = 1000
VERP_PURGE_ROWS = 10_000  # VERP recipient rows one purge() deletes at most
CONNECT_TIMEOUT = 5.0  # seconds to open a connection
QUERY_TIMEOUT = 3.0  # seconds for a pooled connection, and for each query
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
_COLUMNS = "address, category, reply, rule, first_seen, last_seen, count, source, note, expires_at"
_SHAPING_COLUMNS = "key, destination, sender_domain, rule, reason, reply, since, until, strikes, rate, changed"


def _entry(row) -> BounceEntry:
    return BounceEntry(address=row[0], category=row[1], reply=row[2], rule=row[3], first_seen=row[4],
                       last_seen=row[5], count=row[6], source=row[7], note=row[8], expires_at=row[9])


def _held_entry(row) -> BounceEntry:
    """A held listing read with its `domain` column last: which breaker holds it."""
    return replace(_entry(row), held_by=row[10])


def _values(entry: BounceEntry) -> tuple:
    return (entry.address, entry.category, entry.reply, entry.rule, entry.first_seen, entry.last_seen,
            entry.count, entry.source, entry.note, entry.expires_at)


class PostgresBounceStore(BounceStore):
    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10,
                 connect_timeout: float = CONNECT_TIMEOUT, query_timeout: float = QUERY_TIMEOUT):
        self.url = url
        import_driver(url)  # at start (open_store), not at the first RCPT
        self.connect_timeout = connect_timeout
        self.query_timeout = query_timeout
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        self.schema = query.pop("schema", "public")
        self.prefix = query.pop("prefix", "relay_")
        cache = query.pop("cache", str(CACHE_SIZE))
        if not cache.isdigit():
            raise StoreError(f"{redact(url)}: cache must be a whole number of lookups (0: none), got {cache!r}")
        for what, value in (("schema", self.schema), ("prefix", self.prefix)):
            if not _IDENT.match(value) and not (what == "prefix" and value == ""):
                raise StoreError(f"{redact(url)}: {what} must be lower-case letters, digits and _, got {value!r}")
        scheme = "postgresql" if parts.scheme == "postgres" else parts.scheme
        # Named in pg_stat_activity, so that a DBA sees whose connections these are.
        query.setdefault("application_name", "relay")
        self._dsn = urlunsplit(parts._replace(scheme=scheme, query=urlencode(query)))
        self._min, self._max = min_size, max_size
        self.migrated: list = []
        self.cache = LookupCache(int(cache)) if int(cache) else None
        self._listener: asyncio.Task | None = None
        self._pool = None
        self._pool_lock = asyncio.Lock()
        s, p = self.schema, self.prefix
        self.bounces = f'"{s}"."{p}bounces"'
        self.failures = f'"{s}"."{p}bounce_failures"'
        self.held_table = f'"{s}"."{p}bounce_held"'
        self.hits = f'"{s}"."{p}breaker_hits"'
        self.shaping = f'"{s}"."{p}shaping"'
        self.shaping_counts_table = f'"{s}"."{p}shaping_counts"'
        self.verp_recipients_table = f'"{s}"."{p}verp_recipients"'
        self._sql_get = (f"SELECT {_COLUMNS} FROM {self.bounces} "
                         "WHERE address IN ($1, $2) AND (expires_at IS NULL OR expires_at > now())")

    # -- connection ---------------------------------------------------------------------------

    async def _get_pool(self):
        if self._pool is not None:
            return self._pool
        async with self._pool_lock:
            if self._pool is None:
                asyncpg = import_driver(self.url)
                ms = str(int(self.query_timeout * 1000))
                try:
                    pool = await asyncpg.create_pool(
                        self._dsn, min_size=self._min, max_size=self._max, timeout=self.connect_timeout,
                        command_timeout=self.query_timeout,
                        server_settings={"statement_timeout": ms, "lock_timeout": ms})
                except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
                    # StoreBusy: the database may be restarting; a failure to record is retried later.
                    raise StoreBusy(f"cannot connect to bounce list {redact(self.url)}: {exc}") from None
                try:
                    async with self._deadline("migrate the tables", self.query_timeout * 3), \
                            pool.acquire() as conn:
                        self.migrated = await migrate_postgresql(conn, self.schema, self.prefix, redact(self.url))
                except asyncpg.PostgresError as exc:
                    await pool.close()
                    hint = ""
                    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
                        # A role that may only read and write rows cannot apply a migration (review-17 F3):
                        # say what to do rather than leave the operator with PostgreSQL's words alone.
                        hint = ("; this database user may not create or alter tables: run `relay db migrate` "
                                "with a config whose store URL is the tables' owner's (docs/bounce-list.md, "
                                "\"Schema versions\")")
                    raise StoreError(f"cannot create the bounce list tables in {redact(self.url)}: {exc}{hint}") from None
                except BaseException:
                    await pool.close()
                    raise
                self._pool = pool
                if self.cache is not None:
                    self._listener = asyncio.get_running_loop().create_task(self._listen())
        return self._pool

    async def _listen(self) -> None:
        """Keep the lookup cache right (relay/store/pg_cache.py): LISTEN on the list's channel, and
        prove every HEARTBEAT that the connection is alive; while it is not, the cache is off."""
        asyncpg = import_driver(self.url)
        cache, name = self.cache, channel(self.schema, self.prefix)
        backoff, complained = 0.25, 0.0
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=self.connect_timeout,
                                             command_timeout=self.query_timeout)
                conn.add_termination_listener(lambda _conn: cache.down())
                await conn.add_listener(name, lambda _c, _pid, _ch, payload: cache.notified(payload))
                cache.clear()  # what it holds may predate this LISTEN: changes since would be missed
                backoff = 0.25
                while True:
                    sent, local = time.monotonic(), time.time()
                    db_now = await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())", timeout=FRESH)
                    cache.offset = float(db_now) - (local + time.time()) / 2
                    cache.alive(sent)
                    await asyncio.sleep(HEARTBEAT)
            except asyncio.CancelledError:
                cache.down()
                raise
            except Exception as exc:  # the database is away: lookups ask it (and get 451s) meanwhile
                cache.down()
                if time.monotonic() - complained > 30:
                    complained = time.monotonic()
                    log.warning("bounce list %s: lookup cache off until the database answers again: %s",
                                redact(self.url), f"{type(exc).__name__}: {exc}".splitlines()[0])
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                if conn is not None:
                    conn.terminate()

    async def migrate(self) -> list:
        await self._get_pool()
        return self.migrated

    async def schema_version(self) -> int:
        # On a connection of its own, so that asking (relay db status) never migrates.
        asyncpg = import_driver(self.url)
        try:
            conn = await asyncpg.connect(self._dsn, timeout=self.connect_timeout, command_timeout=self.query_timeout)
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
            raise StoreError(f"cannot connect to {redact(self.url)}: {exc}") from None
        try:
            async with self._deadline("read the schema version"):
                return await postgresql_version(conn, self.schema, self.prefix)
        finally:
            await conn.close()

    async def _clock(self, conn, now) -> float:
        if now is not None:
            return to_epoch(now)
        # The database's clock, the same for every relay (now(): this transaction's start).
        return float(await conn.fetchval("SELECT extract(epoch FROM now())"))

    @property
    def write_deadline(self) -> float:
        # A connection from the pool, then the write's statements: lock_timeout and statement_timeout
        # (query_timeout) bound the wait for another writer's lock and the work.
        return 2 * self.query_timeout

    # -- reads ---------------------------------------------------------------------------------

    async def get(self, address: str) -> BounceEntry | None:
        # The address's own entry, else its domain's (`@example.com`).
        key, domain_key = lookup_keys(address)
        cache = self.cache
        if cache is not None:
            found, entry = cache.get(key)
            if found:
                return entry
            began = cache.begin()
        entry = await self._look_up(key, domain_key)
        if cache is not None:
            cache.put(key, domain_key, entry, began)
        return entry

    async def get_uncached(self, address: str) -> BounceEntry | None:
        return await self._look_up(*lookup_keys(address))

    async def _look_up(self, key: str, domain_key: str | None) -> BounceEntry | None:
        pool = await self._get_pool()
        async with self._deadline("look up an address"):
            try:
                rows = await pool.fetch(self._sql_get, key, domain_key or key, timeout=self.query_timeout)
            except _lost(import_driver(self.url)) as exc:
                if isinstance(exc, TimeoutError):
                    raise  # a database that does not answer: no second wait
                # A pooled connection the server closed a moment ago (a restart, a failover,
                # pg_terminate_backend): its idle siblings are most likely closed too, so every one is
                # replaced at its next use and the second try, within the same deadline, gets a new one.
                await pool.expire_connections()
                rows = await pool.fetch(self._sql_get, key, domain_key or key, timeout=self.query_timeout)
        if not rows:
            return None
        return _entry(rows[0] if len(rows) == 1 or rows[0][0] == key else rows[1])

    @asynccontextmanager
    async def _deadline(self, what: str, seconds: float | None = None):
        """A StoreError naming the list when the database does not answer in time (the pool may
        also wait for a free connection, which asyncpg's query timeout does not cover)."""
        import asyncpg

        seconds = seconds or self.query_timeout
        try:
            async with asyncio.timeout(seconds):
                yield
        except (TimeoutError, asyncio.TimeoutError):
            raise StoreBusy(f"bounce list {redact(self.url)} did not answer within {seconds:g} s "
                             f"(trying to {what})") from None
        except asyncpg.QueryCanceledError as exc:  # statement_timeout or lock_timeout on the server
            raise StoreBusy(f"bounce list {redact(self.url)} gave up (trying to {what}): {exc}") from None
        except asyncpg.LockNotAvailableError as exc:
            raise StoreBusy(f"bounce list {redact(self.url)} is locked (trying to {what}): {exc}") from None
        except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as exc:
            # The server rolled this transaction back so that another could go on: the same change tried
            # again succeeds, so it is busy, retried later like a lock held past the deadline, never a
            # failure dropped with a traceback (review24 F4).
            raise StoreBusy(f"bounce list {redact(self.url)} was busy with another change (trying to {what}): "
                            f"{exc}".splitlines()[0]) from None
        except _lost(asyncpg) as exc:  # a restart or failover of the database, a dropped connection
            if self._pool is not None:
                await self._pool.expire_connections()  # the pool's other idle connections went with it
            raise StoreBusy(f"bounce list {redact(self.url)} is unreachable (trying to {what}): "
                            f"{type(exc).__name__}: {exc}") from None

    async def iter_entries(self) -> AsyncIterator[BounceEntry]:
        pool = await self._get_pool()
        after = ""
        while True:
            rows = await pool.fetch(
                f"SELECT {_COLUMNS} FROM {self.bounces} WHERE address > $1 "
                "AND (expires_at IS NULL OR expires_at > now()) ORDER BY address LIMIT $2", after, PAGE)
            for row in rows:
                yield _entry(row)
            if len(rows) < PAGE:
                return
            after = rows[-1][0]

    async def count(self) -> int:
        pool = await self._get_pool()
        return await pool.fetchval(
            f"SELECT count(*) FROM {self.bounces} WHERE expires_at IS NULL OR expires_at > now()")

    async def purge(self, *, failures_older_than: float, now=None) -> int:
        async with self._transaction() as conn:
            at = await self._clock(conn, now)
            gone = await conn.fetchval(
                f"WITH d AS (DELETE FROM {self.bounces} WHERE expires_at <= $1 RETURNING 1) SELECT count(*) FROM d",
                to_datetime(at))  # expired: the cache judges expiry itself
            gone += await conn.fetchval(
                f"WITH d AS (DELETE FROM {self.failures} WHERE at <= $1 RETURNING 1) SELECT count(*) FROM d",
                to_datetime(at - failures_older_than))
            gone += await conn.fetchval(
                f"WITH d AS (DELETE FROM {self.hits} WHERE at <= $1 RETURNING 1) SELECT count(*) FROM d",
                to_datetime(at - failures_older_than))
            # VERP recipients past their days, a bounded number (writes delete some too): a backlog goes
            # over several sweeps, each well within the statement's deadline.
            gone += await conn.fetchval(
                f"WITH d AS (DELETE FROM {self.verp_recipients_table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM "
                f"{self.verp_recipients_table} WHERE day < $1 LIMIT $2)) RETURNING 1) SELECT count(*) FROM d",
                int(at // 86400) - verp_keep_days(), VERP_PURGE_ROWS)
        return gone

    async def held(self, domain: str | None = None, provider: str | None = None) -> list[BounceEntry]:
        pool = await self._get_pool()
        if provider is not None:
            rows = await pool.fetch(f"SELECT {_COLUMNS}, domain FROM {self.held_table} WHERE domain = $1 "
                                    "ORDER BY address", PROVIDER_PREFIX + provider)
        elif domain is None:
            rows = await pool.fetch(f"SELECT {_COLUMNS}, domain FROM {self.held_table} ORDER BY address")
        else:
            # Every listing held at the domain, whichever breaker holds it (its own, or a provider's).
            rows = await pool.fetch(f"SELECT {_COLUMNS}, domain FROM {self.held_table} WHERE right(address, $1) = $2 "
                                    "ORDER BY address", len(domain) + 1, "@" + domain)
        return [_held_entry(row) for row in rows]

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            try:
                await self._listener
            except asyncio.CancelledError:
                pass
            self._listener = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def drop(self) -> None:
        """Drop this list's tables (tests; never called by the relay itself)."""
        pool = await self._get_pool()
        await pool.execute(f"DROP TABLE IF EXISTS {self.bounces}, {self.failures}, {self.held_table}, {self.hits}, "
                           f"{self.shaping}, {self.shaping_counts_table}, {self.verp_recipients_table}")

    # -- the write primitives ------------------------------------------------------------------

    @asynccontextmanager
    async def _transaction(self):
        pool = await self._get_pool()
        # Each statement has query_timeout (the pool's command_timeout); the whole transaction is
        # bounded too, as it may wait for a free connection and then for a per-address lock.
        touched: list[str] = []
        token = _TOUCHED.set(touched)
        try:
            async with self._deadline("change the list", self.query_timeout * 3):
                async with pool.acquire() as conn, conn.transaction():
                    yield conn
        finally:
            _TOUCHED.reset(token)
        # Committed: this relay's own lookups see the change now, not when its notification comes
        # back from the database (a relay that just listed an address refuses it at the next RCPT).
        if self.cache is not None:
            for key in touched:
                self.cache.notified(key)

    async def _lock(self, conn, key: str) -> None:
        # Held until the transaction ends: two relays recording failures for one address
        # (or a relay and the CLI) take turns instead of losing one of the counts.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"bounce:{key}")

    async def _fetch(self, conn, key: str) -> BounceEntry | None:
        await self._lock(conn, key)
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM {self.bounces} WHERE address = $1", key)
        return _entry(row) if row else None

    async def _add_failure(self, conn, key: str, category: str, at: float, within: float,
                           message: str | None) -> bool:
        """Forget the key's failures of `category` older than the window, and record this one unless
        its message already has one within it and within SAME_MESSAGE_WITHIN of it (a retry; the key's lock
        is held: _fetch). Whether it was recorded."""
        await conn.execute(f"DELETE FROM {self.failures} WHERE address = $1 AND category = $2 AND at <= $3",
                           key, category, to_datetime(at - within))
        if message is not None and await conn.fetchval(
                f"SELECT 1 FROM {self.failures} WHERE address = $1 AND category = $2 AND message = $3 "
                "AND at > $4 AND at < $5 LIMIT 1",
                key, category, message, to_datetime(at - SAME_MESSAGE_WITHIN), to_datetime(at + SAME_MESSAGE_WITHIN)):
            return False
        await conn.execute(f"INSERT INTO {self.failures} (address, category, at, message) VALUES ($1, $2, $3, $4)",
                           key, category, to_datetime(at), message)
        return True

    async def _count_failure(self, conn, key: str, category: str, at: float, within: float,
                             message: str | None = None) -> int:
        await self._add_failure(conn, key, category, at, within, message)
        return await conn.fetchval(f"SELECT count(*) FROM {self.failures} WHERE address = $1 AND category = $2",
                                   key, category)

    def _upsert(self) -> str:
        return (f"INSERT INTO {self.bounces} ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
                "ON CONFLICT (address) DO UPDATE SET category = EXCLUDED.category, reply = EXCLUDED.reply, "
                "rule = EXCLUDED.rule, first_seen = EXCLUDED.first_seen, last_seen = EXCLUDED.last_seen, "
                "count = EXCLUDED.count, source = EXCLUDED.source, note = EXCLUDED.note, "
                "expires_at = EXCLUDED.expires_at")

    async def _write(self, conn, entry: BounceEntry) -> None:
        _touch(entry.address)
        await conn.execute(self._upsert(), *_values(entry))

    async def _write_batch(self, chunk: list[BounceEntry]) -> int:
        # One round trip a batch (asyncpg pipelines executemany), not one an entry: an import of
        # a million rows is then bound by the server's work, not by latency.
        async with self._transaction() as conn:
            for entry in chunk:
                _touch(entry.address)
            await conn.executemany(self._upsert(), [_values(e) for e in chunk])  # in order: the last one wins
        return len(chunk)

    async def _update(self, conn, entry: BounceEntry) -> bool:
        # Not an upsert: a breaker trip on another relay takes listings without their address's lock, and
        # an INSERT ... ON CONFLICT waiting on the row it deletes would insert it again once that commits
        # (review24 F1). An UPDATE waiting on it finds it gone (READ COMMITTED re-checks the row).
        _touch(entry.address)
        status = await conn.execute(
            f"UPDATE {self.bounces} SET category = $2, reply = $3, rule = $4, first_seen = $5, last_seen = $6, "
            "count = $7, source = $8, note = $9, expires_at = $10 WHERE address = $1", *_values(entry))
        return status != "UPDATE 0"

    async def _take_listing(self, conn, key: str) -> BounceEntry | None:
        # One statement: the row as another relay's committed update left it (a DELETE waiting on its row
        # lock re-reads the row), and nothing when it is no longer the relay's own.
        _touch(key)
        row = await conn.fetchrow(f"DELETE FROM {self.bounces} WHERE address = $1 AND source = 'auto' "
                                  f"RETURNING {_COLUMNS}", key)
        return _entry(row) if row else None

    async def _delete(self, conn, key: str) -> None:
        _touch(key)
        await conn.execute(f"DELETE FROM {self.bounces} WHERE address = $1", key)

    async def _clear_failures(self, conn, key: str, category: str | None) -> None:
        if category is None:
            await conn.execute(f"DELETE FROM {self.failures} WHERE address = $1", key)
        else:
            await conn.execute(f"DELETE FROM {self.failures} WHERE address = $1 AND category = $2", key, category)

    async def _first_failure(self, conn, key: str, category: str, at: float, within: float,
                             message: str | None = None) -> float | None:
        if not await self._add_failure(conn, key, category, at, within, message):
            return None
        first = await conn.fetchval(f"SELECT min(at) FROM {self.failures} WHERE address = $1 AND category = $2",
                                    key, category)
        return to_epoch(first)

    async def _lock_domain(self, conn, domain: str) -> None:
        # Two relays counting one domain's hits take turns, so the breaker trips exactly once.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"breaker:{domain}")

    async def _breaker_hit(self, conn, domain: str, key: str, at: float, within: float) -> int:
        await self._lock_domain(conn, domain)
        await conn.execute(f"INSERT INTO {self.hits} (domain, address, at) VALUES ($1, $2, $3)",
                           domain, key, to_datetime(at))
        await conn.execute(f"DELETE FROM {self.hits} WHERE domain = $1 AND at <= $2", domain,
                           to_datetime(at - within))
        return await conn.fetchval(f"SELECT count(DISTINCT address) FROM {self.hits} WHERE domain = $1", domain)

    async def _clear_breaker_hits(self, conn, domain: str) -> None:
        await self._lock_domain(conn, domain)
        await conn.execute(f"DELETE FROM {self.hits} WHERE domain = $1", domain)

    async def _held_count(self, conn, domain: str) -> int:
        return await conn.fetchval(f"SELECT count(*) FROM {self.held_table} WHERE domain = $1", domain)

    async def _fetch_held(self, conn, key: str) -> BounceEntry | None:
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM {self.held_table} WHERE address = $1", key)
        return _entry(row) if row else None

    async def _hold(self, conn, entry: BounceEntry, domain: str) -> None:
        await conn.execute(
            f"INSERT INTO {self.held_table} (domain, {_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
            "ON CONFLICT (address) DO UPDATE SET domain = EXCLUDED.domain, category = EXCLUDED.category, "
            "reply = EXCLUDED.reply, rule = EXCLUDED.rule, first_seen = EXCLUDED.first_seen, "
            "last_seen = EXCLUDED.last_seen, count = EXCLUDED.count, source = EXCLUDED.source, "
            "note = EXCLUDED.note, expires_at = EXCLUDED.expires_at",
            domain, entry.address, entry.category, entry.reply, entry.rule, entry.first_seen, entry.last_seen,
            entry.count, entry.source, entry.note, entry.expires_at)

    @staticmethod
    def _held_where(domain: str | None, key: str | None, holder: str | None) -> tuple[str, tuple]:
        if key is not None:
            return "address = $1", (key,)
        if holder is not None:
            return "domain = $1", (holder,)
        return "right(address, $1) = $2", (len(domain) + 1, "@" + domain)

    async def _lock_held(self, conn, domain: str | None, key: str | None, holder: str | None = None) -> None:
        # A relay recording a failure of a held address holds `bounce:<addr>`, then its breakers' locks,
        # then writes the held row. Deleting the held rows first and taking `bounce:<addr>` after (to
        # look at the list) was the other order: a deadlock, whose victim lost the failure or the
        # operator's confirm (review24 F4). So: the addresses' locks in address order (two confirms take
        # them alike), then the breakers', domains before providers (as record_failure does), then rows.
        where, args = self._held_where(domain, key, holder)
        rows = await conn.fetch(f"SELECT address, domain FROM {self.held_table} WHERE {where}", *args)
        addresses = sorted({row[0] for row in rows} | ({key} if key else set()))
        holders = ({row[1] for row in rows} | {a.rpartition("@")[2] for a in addresses}
                   | ({domain} if domain else set()) | ({holder} if holder else set()))
        # One round trip for any number (a confirm of thousands), taken in the array's order.
        names = [f"bounce:{a}" for a in addresses] + [
            f"breaker:{h}" for h in sorted(holders, key=lambda h: (h.startswith(PROVIDER_PREFIX), h))]
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(name, 0)) "
                           "FROM unnest($1::text[]) WITH ORDINALITY AS t(name, n) ORDER BY n", names)

    async def _take_held(self, conn, domain: str | None, key: str | None, holder: str | None = None) -> list[BounceEntry]:
        where, args = self._held_where(domain, key, holder)
        rows = await conn.fetch(f"DELETE FROM {self.held_table} WHERE {where} RETURNING {_COLUMNS}, domain", *args)
        return sorted((_held_entry(row) for row in rows), key=lambda e: e.address)

    async def _breaker_hit_addresses(self, conn, domain: str, since: float) -> list[str]:
        rows = await conn.fetch(f"SELECT DISTINCT address FROM {self.hits} WHERE domain = $1 AND at > $2 "
                                "ORDER BY address", domain, to_datetime(since))
        return [row[0] for row in rows]

    async def _recent_auto_entries(self, conn, domain: str, since: float, categories) -> list[BounceEntry]:
        # A scan of the domain's keys by suffix: it runs only when a breaker trips.
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM {self.bounces} WHERE right(address, $1) = $2 AND source = 'auto' "
            "AND first_seen > $3 AND category = ANY($4::text[])",
            len(domain) + 1, "@" + domain, to_datetime(since), sorted(categories))
        return [_entry(row) for row in rows]

    # -- the recipients of VERP transactions -------------------------------------------------------

    async def _put_verp_recipients(self, rows, keep_days: int, expire_limit: int) -> None:
        async with self._transaction() as conn:
            await conn.executemany(f"INSERT INTO {self.verp_recipients_table} (transaction_id, recipient, day) "
                                   "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", rows)
            # By the day index, a bounded number, judged by the database's clock (the same for every
            # relay sharing the table). ctid: the rows found, without a second look-up by key.
            await conn.execute(
                f"DELETE FROM {self.verp_recipients_table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM "
                f"{self.verp_recipients_table} WHERE day < floor(extract(epoch FROM now()) / 86400)::integer - $1 "
                "LIMIT $2))", keep_days, expire_limit)

    async def _verp_digests(self, transaction_id: str) -> set[bytes]:
        pool = await self._get_pool()
        async with self._deadline("look up a transaction's recipients"):
            rows = await pool.fetch(f"SELECT recipient FROM {self.verp_recipients_table} WHERE transaction_id = $1",
                                    transaction_id, timeout=self.query_timeout)
        return {bytes(row[0]) for row in rows}

    # -- traffic shaping ---------------------------------------------------------------------------

    async def shaping_records(self, keys=None) -> list[ShapingRecord]:
        pool = await self._get_pool()
        async with self._deadline("read shaping holds"):
            if keys is None:
                rows = await pool.fetch(f"SELECT {_SHAPING_COLUMNS} FROM {self.shaping} ORDER BY key")
            else:
                rows = await pool.fetch(f"SELECT {_SHAPING_COLUMNS} FROM {self.shaping} WHERE key = ANY($1::text[]) "
                                        "ORDER BY key", list(keys), timeout=self.query_timeout)
        return [_shaping(row) for row in rows]

    async def shaping_forget(self, unchanged_since: float, now: float) -> int:
        async with self._transaction() as conn:
            return await conn.fetchval(
                f"WITH d AS (DELETE FROM {self.shaping} WHERE changed < $1 AND (until IS NULL OR until <= $2) "
                "RETURNING 1) SELECT count(*) FROM d", to_datetime(unchanged_since), to_datetime(now))

    async def shaping_add_counts(self, counts) -> None:
        if not counts:
            return
        async with self._transaction() as conn:
            await conn.executemany(
                f"INSERT INTO {self.shaping_counts_table} (key, period, start, count) VALUES ($1, $2, $3, $4) "
                f"ON CONFLICT (key, period, start) DO UPDATE SET count = {self.shaping_counts_table}.count + "
                "EXCLUDED.count",
                [(key, period, to_datetime(start), n) for (key, period, start), n in sorted(counts.items())])
            # Buckets past any window a limit looks at, for the keys written now (by primary key).
            now = to_epoch(None)
            for key in sorted({k for k, _, _ in counts}):
                for period, length in SHAPING_PERIODS.items():
                    await conn.execute(f"DELETE FROM {self.shaping_counts_table} WHERE key = $1 AND period = $2 "
                                       "AND start < $3", key, period, to_datetime(now - 2 * max(length, 3600.0)))

    async def shaping_counts(self, keys, period: str, since: float) -> dict[str, int]:
        keys = list(keys)
        if not keys:
            return {}
        pool = await self._get_pool()
        async with self._deadline("read shaping counts"):
            rows = await pool.fetch(
                f"SELECT key, sum(count) FROM {self.shaping_counts_table} WHERE period = $1 AND start >= $2 "
                "AND key = ANY($3::text[]) GROUP BY key", period, to_datetime(since), keys,
                timeout=self.query_timeout)
        return {row[0]: int(row[1]) for row in rows}

    async def _fetch_shaping(self, conn, key: str) -> ShapingRecord | None:
        # Two relays striking one destination at once take turns (a row lock cannot cover a new row).
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"shaping:{key}")
        row = await conn.fetchrow(f"SELECT {_SHAPING_COLUMNS} FROM {self.shaping} WHERE key = $1", key)
        return _shaping(row) if row else None

    async def _write_shaping(self, conn, r: ShapingRecord) -> None:
        await conn.execute(
            f"INSERT INTO {self.shaping} ({_SHAPING_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
            "ON CONFLICT (key) DO UPDATE SET destination = EXCLUDED.destination, "
            "sender_domain = EXCLUDED.sender_domain, rule = EXCLUDED.rule, reason = EXCLUDED.reason, "
            "reply = EXCLUDED.reply, since = EXCLUDED.since, until = EXCLUDED.until, strikes = EXCLUDED.strikes, "
            "rate = EXCLUDED.rate, changed = EXCLUDED.changed",
            r.key, r.destination, r.sender_domain, r.rule, r.reason, r.reply, to_datetime(r.since),
            to_datetime(r.until), r.strikes, r.rate, to_datetime(r.changed))

    async def _delete_shaping(self, conn, key: str) -> None:
        await conn.execute(f"DELETE FROM {self.shaping} WHERE key = $1", key)

    async def _take_shaping(self, conn, target: str) -> list[ShapingRecord]:
        rows = await conn.fetch(f"DELETE FROM {self.shaping} WHERE key = $1 OR destination = $1 "
                                f"RETURNING {_SHAPING_COLUMNS}", target)
        return sorted((_shaping(row) for row in rows), key=lambda r: r.key)


def _shaping(row) -> ShapingRecord:
    return ShapingRecord(row[0], row[1], row[2], row[3], row[4], row[5], to_epoch(row[6]),
                         None if row[7] is None else to_epoch(row[7]), row[8], row[9], to_epoch(row[10]))


__all__ = ["PostgresBounceStore", "redact"]
