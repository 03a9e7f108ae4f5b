"""The bounce list in one SQLite file (the default).

Several processes share the file: the running relay and `relay bounces ...` from the command
line. WAL mode (https://sqlite.org/wal.html) lets readers proceed while another process writes,
and every lookup is a fresh statement that sees the latest commit, so a CLI change is seen at the
next RCPT with no reload and no cache to invalidate.

Nothing here may stall the event loop (one stalled loop is every session stalled):
- Lookups run inline: a primary-key read is ~10 µs (FIELD-NOTES), a tenth of the cost of a thread
  hop. They run on their own connection with no busy wait: in WAL mode a reader never waits for a
  writer, and in the rare case it would (another process took SQLite's exclusive locking mode, or
  is recovering the WAL), the read is retried in a thread with a deadline; a list that stays
  unreadable is a StoreError, which the pipeline turns into 451 4.3.0, never a silent pass.
- Writes run on a second connection. Taking the write lock (BEGIN IMMEDIATE) and COMMIT (which may
  checkpoint and fsync) happen in one worker thread, with a deadline (`write_timeout`); the
  statements in between run inline, as the lock is then ours and they never wait. A write that
  cannot get the lock in time raises StoreBusy, which says which file and why.
- The file is watched: when it is deleted or replaced (its inode changes), both connections are
  reopened on the file now at that path, creating it if needed, so that entries the CLI writes to
  a new file are seen, never silently missed.

`put_many()` commits in small batches so a large import never holds the lock for long. The relay
process's memory does not grow with the list: SQLite's page cache is bounded and memory-mapped I/O
is off, so the file is read through the OS page cache, which is not the process's RSS.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import AsyncIterator

from .base import (PROVIDER_PREFIX, SAME_MESSAGE_WITHIN, SHAPING_PERIODS, BounceEntry, BounceStore, ShapingRecord, StoreBusy, StoreError, lookup_keys,
                   to_datetime, to_epoch, verp_keep_days)
from .schema import LATEST, migrate_sqlite, sqlite_version, too_new

log = logging.getLogger("relay.store")

PAGE = 1000  # entries fetched per query by iter_entries()
WRITE_TIMEOUT = 2.0  # seconds a write may wait for another process's write lock
READ_TIMEOUT = 2.0  # seconds a lookup may wait when the file cannot be read at once
# Seconds opening the file may wait for another process: several workers (or relays) starting at
# once open one file, and the first may be creating or migrating it (one write transaction) while
# the others wait; on a loaded machine that takes longer than a write's deadline. Opening happens
# before anything is served, so waiting here delays no client.
OPEN_TIMEOUT = 30.0

_COLUMNS = "address, category, reply, rule, first_seen, last_seen, count, source, note, expires_at"
_SHAPING_COLUMNS = "key, destination, sender_domain, rule, reason, reply, since, until, strikes, rate, changed"

# The tables are in schema.py (versioned migrations). Their WITHOUT ROWID: the table is its
# primary-key B-tree, so a lookup is one tree descent rather than an index descent plus a rowid one.

_GET = (f"SELECT {_COLUMNS} FROM relay_bounces WHERE address = ? AND (expires_at IS NULL OR expires_at > ?)")


_PUT = f"INSERT OR REPLACE INTO relay_bounces ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def _row(entry: BounceEntry) -> tuple:
    return (entry.address, entry.category, entry.reply, entry.rule, entry.first_seen.timestamp(),
            entry.last_seen.timestamp(), entry.count, entry.source, entry.note,
            entry.expires_at.timestamp() if entry.expires_at else None)


def _entry(row) -> BounceEntry:
    return BounceEntry(address=row[0], category=row[1], reply=row[2], rule=row[3],
                       first_seen=to_datetime(row[4]), last_seen=to_datetime(row[5]), count=row[6],
                       source=row[7], note=row[8], expires_at=to_datetime(row[9]))


def _held_entry(row) -> BounceEntry:
    """A held listing read with its `domain` column last: which breaker holds it."""
    return replace(_entry(row), held_by=row[10])


def _busy(exc: sqlite3.Error) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc))


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _unusable(path: Path, exc: BaseException) -> StoreError:
    """The operator's explanation of a file SQLite cannot use."""
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError) or \
            "not a database" in str(exc) or "malformed" in str(exc):
        return StoreError(f"{path} is not a bounce list database ({exc}): the file is damaged or is something "
                          f"else. Stop the relay, move it aside (mv {path} {path}.damaged) and start again: a new, "
                          f"empty list is created; re-add entries from an export (relay bounces import) if you "
                          f"have one")
    return StoreError(f"cannot open bounce list {path}: {exc}")


def check_file(path: str | Path) -> str | None:
    """Why the SQLite file at `path` cannot serve as the bounce list, or None (also when it does not
    exist yet: the relay creates it). Read-only: check-config changes nothing."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            db.execute("PRAGMA busy_timeout = 1000")
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            version = sqlite_version(db)
        finally:
            db.close()
    except sqlite3.Error as exc:
        if _busy(exc):
            return None  # in use by another process: that is no fault of the file
        return str(_unusable(path, exc))
    if version > LATEST:
        return str(too_new(str(path), version))
    return None


class SQLiteBounceStore(BounceStore):
    def __init__(self, path: str | Path, *, write_timeout: float = WRITE_TIMEOUT,
                 read_timeout: float = READ_TIMEOUT, url: str | None = None):
        self.path = Path(path)
        self.url = url or f"sqlite:///{self.path}"
        self.write_timeout = write_timeout
        self.read_timeout = read_timeout
        # One thread: write transactions take turns in it in the order they were asked for.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-sqlite")
        self._write_lock: asyncio.Lock | None = None
        self._reader, self._writer, self._file = self._open()

    # -- opening -------------------------------------------------------------------------------

    def _open(self) -> tuple[sqlite3.Connection, sqlite3.Connection, tuple[int, int] | None]:
        # Two processes opening a new file at once (a relay's workers, a relay and the CLI): the one
        # turning on WAL mode may get SQLITE_BUSY at once, without the busy handler waiting
        # (https://sqlite.org/wal.html#sometimes_queries_return_sqlite_busy_in_wal_mode): try again.
        import time

        deadline = time.monotonic() + max(self.write_timeout, OPEN_TIMEOUT)
        while True:
            try:
                return self._open_once()
            except StoreBusy:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def _open_once(self) -> tuple[sqlite3.Connection, sqlite3.Connection, tuple[int, int] | None]:
        reader = writer = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: autocommit; write transactions are explicit (BEGIN IMMEDIATE).
            # check_same_thread=False: BEGIN and COMMIT run in the worker thread, the rest on the loop.
            writer = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            open_wait = int(max(self.write_timeout, OPEN_TIMEOUT) * 1000)
            writer.execute(f"PRAGMA busy_timeout = {open_wait}")
            writer.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: a commit survives a process crash; a power loss may lose the
            # last commits but never corrupts the file (https://sqlite.org/pragma.html#pragma_synchronous).
            writer.execute("PRAGMA synchronous = NORMAL")
            self._create_schema(writer)
            writer.execute(f"PRAGMA busy_timeout = {int(self.write_timeout * 1000)}")
            reader = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            reader.execute(f"PRAGMA busy_timeout = {open_wait}")
            # Open the WAL files now, not at the first lookup: a relay's open files are set at start.
            reader.execute("SELECT 1 FROM relay_bounces LIMIT 1").fetchall()
            reader.execute("PRAGMA busy_timeout = 0")  # from now on a lookup never waits on the loop
        except (sqlite3.Error, OSError) as exc:
            for db in (reader, writer):
                if db is not None:
                    db.close()
            if isinstance(exc, sqlite3.Error) and _busy(exc):
                raise StoreBusy(f"cannot open bounce list {self.path}: it is locked by another process "
                                f"(waited {max(self.write_timeout, OPEN_TIMEOUT):g} s); try again") from None
            raise _unusable(self.path, exc) from None
        except StoreError:  # the schema is newer than this relay
            for db in (reader, writer):
                if db is not None:
                    db.close()
            raise
        return reader, writer, _file_id(self.path)

    def _create_schema(self, db: sqlite3.Connection) -> None:
        self.migrated = migrate_sqlite(db, str(self.path))

    async def migrate(self) -> list:
        await self._follow_file()  # a file replaced since is opened, and so migrated, now
        return self.migrated

    async def schema_version(self) -> int:
        await self._follow_file()
        return sqlite_version(self._reader)

    async def _follow_file(self) -> None:
        """Reopen when the file at our path is no longer the one we have open (deleted, or
        replaced by `relay bounces` creating a new one): a listing must never go to, or be read
        from, a file nobody else sees. One stat() per lookup, about a microsecond."""
        if _file_id(self.path) == self._file:
            return
        async with self._locked():
            if _file_id(self.path) == self._file:  # another lookup reopened it meanwhile
                return
            old = (self._reader, self._writer)
            self._reader, self._writer, self._file = await self._in_worker(self._open)
            for db in old:
                db.close()

    # -- the worker thread ----------------------------------------------------------------------

    async def _in_worker(self, fn, *args):
        """fn(*args) in the worker thread. If the caller is cancelled, the call still ends in the
        thread (it cannot be stopped); a transaction it began is rolled back there before any
        other write runs, since the worker runs one job at a time in order."""
        future = asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # Nobody awaits its outcome now: a failure is retrieved here, else asyncio logs it
            # ("Future exception was never retrieved") when the future is collected.
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._worker.submit(self._rollback_if_open, self._writer)
            raise

    @staticmethod
    def _rollback_if_open(db: sqlite3.Connection) -> None:
        if db.in_transaction:
            db.execute("ROLLBACK")

    @asynccontextmanager
    async def _locked(self):
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        try:
            await asyncio.wait_for(self._write_lock.acquire(), self.write_timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise self._busy_error() from None
        try:
            yield
        finally:
            self._write_lock.release()

    @property
    def write_deadline(self) -> float:
        # The in-process writers' queue (_locked), then SQLite's busy_timeout for another process's lock.
        return 2 * self.write_timeout

    def _busy_error(self) -> StoreBusy:
        return StoreBusy(f"the bounce list {self.path} is locked by another process (waited "
                         f"{self.write_timeout:g} s for it); try again")

    def _begin(self, db: sqlite3.Connection) -> None:
        # IMMEDIATE takes the write lock up front, so read-then-write cannot deadlock against
        # another process doing the same (SQLITE_BUSY on upgrade). busy_timeout is the deadline.
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _busy(exc):
                raise self._busy_error() from None
            raise

    @staticmethod
    def _commit(db: sqlite3.Connection) -> None:
        try:
            db.execute("COMMIT")
        except BaseException:
            # A failed COMMIT leaves the transaction open, and every later BEGIN would fail.
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    # -- reads ---------------------------------------------------------------------------------

    async def get(self, address: str) -> BounceEntry | None:
        # The address's own entry, else its domain's (`@example.com`): a hit costs one
        # primary-key probe as before, a miss two (an IN list measured slower in the tail).
        await self._follow_file()
        key, domain_key = lookup_keys(address)
        now = to_epoch(None)
        row = await self._query(_GET, (key, now), one=True)
        if row is None and domain_key is not None:
            row = await self._query(_GET, (domain_key, now), one=True)
        return _entry(row) if row else None

    async def _query(self, sql: str, args: tuple, one: bool = False):
        try:
            cursor = self._reader.execute(sql, args)
            return cursor.fetchone() if one else cursor.fetchall()
        except sqlite3.Error as exc:
            if not _busy(exc):
                raise StoreError(f"cannot read bounce list {self.path}: {exc}") from None
            return await asyncio.to_thread(self._patient_query, sql, args, one)

    def _patient_query(self, sql: str, args: tuple, one: bool):
        """A read that may wait up to read_timeout for the file, in a thread, on a connection of
        its own (the loop's reader must not be shared with this thread)."""
        try:
            db = sqlite3.connect(str(self.path), isolation_level=None)
            try:
                db.execute(f"PRAGMA busy_timeout = {int(self.read_timeout * 1000)}")
                cursor = db.execute(sql, args)
                return cursor.fetchone() if one else cursor.fetchall()
            finally:
                db.close()
        except sqlite3.Error as exc:
            if _busy(exc):
                raise StoreBusy(f"the bounce list {self.path} cannot be read: another process holds it "
                                f"exclusively (waited {self.read_timeout:g} s)") from None
            raise StoreError(f"cannot read bounce list {self.path}: {exc}") from None

    async def iter_entries(self) -> AsyncIterator[BounceEntry]:
        # Keyset pagination: no statement stays open across the consumer's awaits, so a
        # long export neither holds a read snapshot nor blocks WAL checkpoints.
        await self._follow_file()
        after = ""
        while True:
            rows = await self._query(
                f"SELECT {_COLUMNS} FROM relay_bounces WHERE address > ? "
                "AND (expires_at IS NULL OR expires_at > ?) ORDER BY address LIMIT ?",
                (after, to_epoch(None), PAGE))
            for row in rows:
                yield _entry(row)
            if len(rows) < PAGE:
                return
            after = rows[-1][0]

    async def count(self) -> int:
        # count(*) walks the whole table (milliseconds per hundred thousand entries): in a thread,
        # on a connection of its own, never on the loop (relay_bounce_list_entries asks every minute).
        await self._follow_file()
        row = await asyncio.to_thread(self._patient_query, "SELECT count(*) FROM relay_bounces WHERE expires_at IS "
                                      "NULL OR expires_at > ?", (to_epoch(None),), True)
        return row[0]

    async def purge(self, *, failures_older_than: float, now=None) -> int:
        at = to_epoch(now)

        def sweep(db) -> int:
            gone = db.execute("DELETE FROM relay_bounces WHERE expires_at IS NOT NULL AND expires_at <= ?",
                              (at,)).rowcount
            gone += db.execute("DELETE FROM relay_bounce_failures WHERE at <= ?",
                               (at - failures_older_than,)).rowcount
            gone += db.execute("DELETE FROM relay_breaker_hits WHERE at <= ?", (at - failures_older_than,)).rowcount
            # VERP recipients past their days, a bounded number (writes delete some too): a backlog left by
            # a relay that stopped sending VERP mail goes over several sweeps, each a short transaction.
            return gone + _expire_verp(db, int(at // 86400) - verp_keep_days(), VERP_PURGE_ROWS)

        async with self._transaction() as db:
            # In the worker thread, not inline as a transaction's other statements: how long a sweep takes
            # grows with the list (an index finds the expired listings, but each deletion is work), and
            # the loop must not wait for it (review24 F5). The write lock is ours: nothing else uses `db`.
            return await self._in_worker(sweep, db)

    async def held(self, domain: str | None = None, provider: str | None = None) -> list[BounceEntry]:
        await self._follow_file()
        if provider is not None:
            rows = await self._query(f"SELECT {_COLUMNS}, domain FROM relay_bounce_held WHERE domain = ? "
                                     "ORDER BY address", (PROVIDER_PREFIX + provider,))
        elif domain is None:
            rows = await self._query(f"SELECT {_COLUMNS}, domain FROM relay_bounce_held ORDER BY address", ())
        else:
            # Every listing held at the domain, whichever breaker holds it (its own, or a provider's).
            rows = await self._query(f"SELECT {_COLUMNS}, domain FROM relay_bounce_held WHERE address LIKE ? "
                                     "ESCAPE '\\' ORDER BY address", ("%@" + _like_escape(domain),))
            rows = [row for row in rows if row[0].rpartition("@")[2] == domain]
        return [_held_entry(row) for row in rows]

    async def close(self) -> None:
        async with self._locked():
            # In the worker thread, after what it is still running: a write whose caller was cancelled (a
            # shutdown that gave up on it, RelayService.drain; the follower's stop) goes on there up to its
            # busy_timeout, and its connection closed under it from the loop's thread crashed the process
            # (SIGSEGV in sqlite3). The worker runs one job at a time, in order.
            # Waited for no longer than a write may take (write_deadline): a job ahead of it stuck in
            # the kernel (an fsync on a hung disk) would otherwise hold stop() here until systemd's
            # SIGKILL (review-int2 F3). Then the close stays queued behind that job, in the same thread,
            # and the connections are closed when it ends, or with the process.
            future = asyncio.get_running_loop().run_in_executor(self._worker, self._close_connections)
            done, _ = await asyncio.wait({future}, timeout=self.write_deadline)
            if done:
                future.result()
            else:
                future.add_done_callback(lambda f: f.cancelled() or f.exception())
                log.error("bounce list %s: not closed after %g s: the thread that writes it is still busy "
                          "with an earlier write (a hung disk?); its connections are closed when that write "
                          "ends, or when the process exits", self.path, self.write_deadline)
        self._worker.shutdown(wait=False)

    def _close_connections(self) -> None:
        self._reader.close()
        self._writer.close()

    # -- the write primitives ---------------------------------------------------------------
    # None of these awaits anything but the worker thread (the sweep and the breaker's domain scan), and
    # every use of the writer holds _locked(): no other coroutine can slip a statement into a transaction.

    @asynccontextmanager
    async def _transaction(self):
        await self._follow_file()
        async with self._locked():
            db = self._writer
            await self._in_worker(self._begin, db)
            try:
                yield db
            except BaseException:
                try:
                    db.execute("ROLLBACK")  # never waits: the lock is ours
                except sqlite3.Error:
                    # A statement still running in the worker thread (a sweep whose caller was cancelled):
                    # the worker rolls back once it is done, before any other write's BEGIN.
                    self._worker.submit(self._rollback_if_open, db)
                raise
            await self._in_worker(self._commit, db)

    async def _fetch(self, db, key: str) -> BounceEntry | None:
        row = db.execute(f"SELECT {_COLUMNS} FROM relay_bounces WHERE address = ?", (key,)).fetchone()
        return _entry(row) if row else None

    def _add_failure(self, db, key: str, category: str, at: float, within: float, message: str | None) -> bool:
        """Forget the key's failures of `category` older than the window, and record this one unless
        its message already has one within it and within SAME_MESSAGE_WITHIN of it (a retry). Whether it was
        recorded (a new message)."""
        db.execute("DELETE FROM relay_bounce_failures WHERE address = ? AND category = ? AND at <= ?",
                   (key, category, at - within))
        if message is not None and db.execute(
                "SELECT 1 FROM relay_bounce_failures WHERE address = ? AND category = ? AND message = ? "
                "AND at > ? AND at < ? LIMIT 1",
                (key, category, message, at - SAME_MESSAGE_WITHIN, at + SAME_MESSAGE_WITHIN)).fetchone():
            return False
        db.execute("INSERT INTO relay_bounce_failures (address, category, at, message) VALUES (?, ?, ?, ?)",
                   (key, category, at, message))
        return True

    async def _count_failure(self, db, key: str, category: str, at: float, within: float,
                             message: str | None = None) -> int:
        self._add_failure(db, key, category, at, within, message)
        return db.execute("SELECT count(*) FROM relay_bounce_failures WHERE address = ? AND category = ?",
                          (key, category)).fetchone()[0]

    async def _write(self, db, entry: BounceEntry) -> None:
        db.execute(_PUT, _row(entry))

    async def _write_batch(self, chunk: list[BounceEntry]) -> int:
        async with self._transaction() as db:
            db.executemany(_PUT, (_row(e) for e in chunk))  # in order: the last of an address wins
        return len(chunk)

    async def _take_listing(self, db, key: str) -> BounceEntry | None:
        row = db.execute(f"SELECT {_COLUMNS} FROM relay_bounces WHERE address = ? AND source = 'auto'",
                         (key,)).fetchone()
        if row is None:
            return None
        db.execute("DELETE FROM relay_bounces WHERE address = ?", (key,))
        return _entry(row)

    async def _delete(self, db, key: str) -> None:
        db.execute("DELETE FROM relay_bounces WHERE address = ?", (key,))

    async def _clear_failures(self, db, key: str, category: str | None) -> None:
        if category is None:
            db.execute("DELETE FROM relay_bounce_failures WHERE address = ?", (key,))
        else:
            db.execute("DELETE FROM relay_bounce_failures WHERE address = ? AND category = ?", (key, category))

    async def _first_failure(self, db, key: str, category: str, at: float, within: float,
                             message: str | None = None) -> float | None:
        if not self._add_failure(db, key, category, at, within, message):
            return None
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

    async def _take_held(self, db, domain: str | None, key: str | None, holder: str | None = None) -> list[BounceEntry]:
        if key is not None:
            where, arg = "address = ?", key
        elif holder is not None:
            where, arg = "domain = ?", holder
        else:
            where, arg = "address LIKE ? ESCAPE '\\'", "%@" + _like_escape(domain)
        rows = db.execute(f"SELECT {_COLUMNS}, domain FROM relay_bounce_held WHERE {where} ORDER BY address",
                          (arg,)).fetchall()
        if domain is not None and key is None and holder is None:
            rows = [row for row in rows if row[0].rpartition("@")[2] == domain]
        db.executemany("DELETE FROM relay_bounce_held WHERE address = ?", [(row[0],) for row in rows])
        return [_held_entry(row) for row in rows]

    async def _breaker_hit_addresses(self, db, domain: str, since: float) -> list[str]:
        return [row[0] for row in db.execute(
            "SELECT DISTINCT address FROM relay_breaker_hits WHERE domain = ? AND at > ? ORDER BY address",
            (domain, since)).fetchall()]

    async def _recent_auto_entries(self, db, domain: str, since: float, categories) -> list[BounceEntry]:
        # A scan of the whole list by suffix (no index serves '%@domain'): it runs only when a breaker
        # trips, but grows with the list (188 ms at a million entries), so in the worker thread, never on
        # the loop (review24 F5); the write lock is ours, nothing else uses `db` meanwhile.
        cats = sorted(categories)

        def scan(db):
            return db.execute(
                f"SELECT {_COLUMNS} FROM relay_bounces WHERE address LIKE ? ESCAPE '\\' AND source = 'auto' "
                f"AND first_seen > ? AND category IN ({', '.join('?' * len(cats))})",
                ("%@" + _like_escape(domain), since, *cats)).fetchall()

        rows = await self._in_worker(scan, db)
        return [_entry(row) for row in rows if row[0].rpartition("@")[2] == domain]


    # -- the recipients of VERP transactions -----------------------------------------------------

    async def _put_verp_recipients(self, rows, keep_days: int, expire_limit: int) -> None:
        # The whole transaction in one turn of the worker thread (BEGIN, the rows, the expiry, COMMIT):
        # it runs on the path to a client's 250, and each trip to the thread costs ~0.1 ms here, more
        # than the statements (bench: docs/bounces-in.md). The asyncio lock keeps the writer ours.
        await self._follow_file()
        before = int(to_epoch(None) // 86400) - keep_days
        async with self._locked():
            await self._in_worker(self._put_verp_now, self._writer, rows, before, expire_limit)

    def _put_verp_now(self, db: sqlite3.Connection, rows, before: int, expire_limit: int) -> None:
        self._begin(db)
        try:
            # One statement for the batch, not one a row (executemany): each statement gives up the GIL
            # and takes it back, and in a busy relay the event loop's thread holds it, so each take may
            # wait for the interpreter's switch interval (5 ms).
            for start in range(0, len(rows), _VERP_ROWS_A_STATEMENT):
                chunk = rows[start:start + _VERP_ROWS_A_STATEMENT]
                db.execute("INSERT INTO relay_verp_recipients (transaction_id, recipient, day) VALUES "
                           + ", ".join(["(?, ?, ?)"] * len(chunk)), [v for row in chunk for v in row])
            _expire_verp(db, before, expire_limit)
        except BaseException:
            if db.in_transaction:  # a full disk or an I/O error may have rolled it back already
                db.execute("ROLLBACK")
            raise
        self._commit(db)

    async def _verp_digests(self, transaction_id: str) -> set[bytes]:
        # A range of the primary key, inline like get() (a few µs; a busy file goes to a thread).
        await self._follow_file()
        rows = await self._query("SELECT recipient FROM relay_verp_recipients WHERE transaction_id = ?",
                                 (transaction_id,))
        return {bytes(row[0]) for row in rows}

    # -- traffic shaping -------------------------------------------------------------------------

    async def shaping_records(self, keys=None) -> list[ShapingRecord]:
        await self._follow_file()
        if keys is None:
            rows = await self._query(f"SELECT {_SHAPING_COLUMNS} FROM relay_shaping ORDER BY key", ())
        else:
            keys = list(keys)
            if not keys:
                return []
            rows = await self._query(f"SELECT {_SHAPING_COLUMNS} FROM relay_shaping WHERE key IN "
                                     f"({', '.join('?' * len(keys))}) ORDER BY key", tuple(keys))
        return [ShapingRecord(*row) for row in rows]

    async def shaping_forget(self, unchanged_since: float, now: float) -> int:
        async with self._transaction() as db:
            return db.execute("DELETE FROM relay_shaping WHERE changed < ? AND (until IS NULL OR until <= ?)",
                              (unchanged_since, now)).rowcount

    async def shaping_add_counts(self, counts) -> None:
        if not counts:
            return
        async with self._transaction() as db:
            db.executemany("INSERT INTO relay_shaping_counts (key, period, start, count) VALUES (?, ?, ?, ?) "
                           "ON CONFLICT (key, period, start) DO UPDATE SET count = count + excluded.count",
                           [(key, period, start, n) for (key, period, start), n in counts.items()])
            # Buckets past any window a limit looks at (an hour of minutes, yesterday's day), for the
            # keys written now: by primary key, never a scan of the table.
            now = to_epoch(None)
            for key in {k for k, _, _ in counts}:
                for period, length in SHAPING_PERIODS.items():
                    db.execute("DELETE FROM relay_shaping_counts WHERE key = ? AND period = ? AND start < ?",
                               (key, period, now - 2 * max(length, 3600.0)))

    async def shaping_counts(self, keys, period: str, since: float) -> dict[str, int]:
        await self._follow_file()
        keys = list(keys)
        if not keys:
            return {}
        rows = await self._query(
            f"SELECT key, sum(count) FROM relay_shaping_counts WHERE period = ? AND start >= ? AND key IN "
            f"({', '.join('?' * len(keys))}) GROUP BY key", (period, since, *keys))
        return {key: int(n) for key, n in rows}

    async def _fetch_shaping(self, db, key: str) -> ShapingRecord | None:
        row = db.execute(f"SELECT {_SHAPING_COLUMNS} FROM relay_shaping WHERE key = ?", (key,)).fetchone()
        return ShapingRecord(*row) if row else None

    async def _write_shaping(self, db, record: ShapingRecord) -> None:
        db.execute(f"INSERT OR REPLACE INTO relay_shaping ({_SHAPING_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (record.key, record.destination, record.sender_domain, record.rule, record.reason, record.reply,
                    record.since, record.until, record.strikes, record.rate, record.changed))

    async def _delete_shaping(self, db, key: str) -> None:
        db.execute("DELETE FROM relay_shaping WHERE key = ?", (key,))

    async def _take_shaping(self, db, target: str) -> list[ShapingRecord]:
        rows = db.execute(f"SELECT {_SHAPING_COLUMNS} FROM relay_shaping WHERE key = ? OR destination = ? "
                          "ORDER BY key", (target, target)).fetchall()
        db.execute("DELETE FROM relay_shaping WHERE key = ? OR destination = ?", (target, target))
        return [ShapingRecord(*row) for row in rows]


# VERP recipient rows one purge() deletes at most: its statements run on the event loop, and 10,000
# of them held it 62 ms on a 200,000-row table (review); 500 take a few ms.
VERP_PURGE_ROWS = 500

# SQLite binds at most 32,766 parameters a statement (SQLITE_MAX_VARIABLE_NUMBER since 3.32).
_VERP_ROWS_A_STATEMENT = 1000


def _expire_verp(db: sqlite3.Connection, before: int, limit: int) -> int:
    """Delete up to `limit` of the oldest VERP recipient rows (by id, the order written) whose day is
    before `before`; returns how many. Rows are written in day order (a token's day is the day its
    message was sent, hours before at most), so the oldest are the first past their days: nothing to
    delete costs one look at the first row, and there is no index on the day to keep up."""
    oldest = db.execute("SELECT day FROM relay_verp_recipients ORDER BY id LIMIT 1").fetchone()
    if oldest is None or oldest[0] >= before:
        return 0
    return db.execute("DELETE FROM relay_verp_recipients WHERE id IN (SELECT id FROM relay_verp_recipients "
                      "ORDER BY id LIMIT ?) AND day < ?", (limit, before)).rowcount


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
