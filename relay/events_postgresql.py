"""Events in PostgreSQL (`events: [{postgresql: URL}]`): one row an event, queryable with SQL, and
read back by `relay events tail`.

The table is `<prefix>events` (relay/store/schema.py, migration 3): the event's `event_id`, `time`,
`kind`, `recipient` and `sender` as columns, and the whole event as `jsonb`, exactly as the other
sinks write it. The URL takes the same `?schema=&prefix=` as the bounce list's, so the events may
live beside the list or in a database of their own.

Writing never touches the event loop: `write()` puts the line in a queue and a thread of the sink's
own, with its own asyncio loop and asyncpg connection, inserts batches of them. A database that is
down, hung or restarting costs nothing but room: the batch is kept and retried (back-off up to
MAX_BACKOFF), and `event_id` is unique, so a batch that committed but whose answer was lost is not
stored twice when it is sent again. Every statement has a deadline, as the bounce list's do, so a hung
database is a retry, never a stuck thread.

Where the events wait: in memory by default (MAX_QUEUE events; a full queue drops, each counted and
logged by EventSinks as any sink failure; a relay stopped while the database is away loses what waits),
or, with `spool_dir:`, in a spool on disk (relay/spool.py, as a webhook's): every process appends, the
one holding the spool's sender lock inserts, and a restart, or a worker's death, loses nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections import deque
from datetime import datetime, timezone
from pathlib import Path

from .events import count_thread_restart
from .spool import MAX_BYTES as SPOOL_MAX_BYTES, Batch, Spool, SpoolWriter
from .store.base import StoreError, redact

log = logging.getLogger("relay.events")

BATCH = 500  # events a transaction
MAX_QUEUE = 200_000  # events waiting for the database before new ones are dropped
MAX_BACKOFF = 10.0  # seconds between attempts while the database is away
CONNECT_TIMEOUT = 5.0
QUERY_TIMEOUT = 5.0
FLUSH_SECONDS = 30.0  # close() waits this long for the queue to reach the database
SPOOL_BATCH_BYTES = 4 << 20  # bytes of events a transaction, from a spool
RESTART_AFTER = 10.0  # seconds before a writer that failed unexpectedly (a disk error) starts again
SPOOL_POLL = 1.0  # how often a sink without the spool's sender lock, or with nothing to send, looks again


def _place(url: str):
    """(asyncpg DSN, schema, prefix) of an events URL: the bounce list's URL rules."""
    from .store.postgresql import PostgresBounceStore

    store = PostgresBounceStore(url)  # parses and checks the URL; connects nothing
    return store._dsn, store.schema, store.prefix


def _row(line: str) -> tuple:
    """The columns of one event line. PostgreSQL's jsonb and text hold no NUL character: one sent by
    a remote server (it is in `reply.text` verbatim elsewhere) is stored as U+FFFD here."""
    event = json.loads(line)
    if "\\u0000" in line:
        event = _without_nul(event)
        line = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    when = event.get("time")
    try:
        at = datetime.fromisoformat(str(when).replace("Z", "+00:00")) if when else None
    except ValueError:
        at = None
    return (str(event.get("event_id") or uuid.uuid4()), at or datetime.now(timezone.utc), str(event.get("kind") or ""),
            str(event.get("recipient") or ""), str(event.get("sender") or ""), line)


def _without_nul(value):
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    return value


class _MemoryQueue:
    """Events waiting for the database in memory: lost if the process stops while it is away."""

    def __init__(self, max_queue: int):
        self._max_queue = max_queue
        self._queue: deque[str] = deque()
        self._wake = threading.Condition()
        self.closing = False
        self.wait_when_full = False

    def put(self, line: str) -> None:
        with self._wake:
            while len(self._queue) >= self._max_queue:
                if not self.wait_when_full:
                    raise OSError(f"{len(self._queue)} events wait for the database already (it is down or slow)")
                self._wake.wait(1.0)  # an operator command (an import): slower, never lossy
            self._queue.append(line)
            self._wake.notify_all()

    def take(self, n: int) -> list[str] | None:
        """The next batch (left in the queue until stored); None when closing and nothing is left."""
        with self._wake:
            while not self._queue and not self.closing:
                self._wake.wait()
            if not self._queue:
                return None
            return [self._queue[i] for i in range(min(n, len(self._queue)))]

    def done(self, n: int) -> None:
        with self._wake:
            for _ in range(n):
                self._queue.popleft()
            self._wake.notify_all()  # a writer waiting for room

    def close(self) -> None:
        with self._wake:
            self.closing = True
            self._wake.notify_all()

    def wait_closing(self, seconds: float) -> bool:
        """Wait up to `seconds` for close(); True when closing."""
        with self._wake:
            return self._wake.wait_for(lambda: self.closing, seconds)

    def waiting(self) -> int:
        with self._wake:
            return len(self._queue)

    def left_behind(self, n: int) -> str:
        return f"{n} event(s) not stored: the database did not take them"


class _SpooledQueue:
    """Events waiting for the database in a spool on disk (relay/spool.py): every process appends; the one
    holding the spool's sender lock inserts; what is not stored at a stop waits for the next start."""

    def __init__(self, spool: Spool, on_failure):
        self.spool = spool
        self._wake = threading.Condition()
        self._appended = False
        self.closing = False
        self.wait_when_full = False  # appends never wait for the database: the spool's bound is on disk
        self._batch: Batch | None = None
        self.writer = SpoolWriter(spool, "events-pg", on_failure, self._on_appended,
                                  "the database has not taken events for a while")

    def _on_appended(self, n: int) -> None:
        with self._wake:
            self._appended = True
            self._wake.notify_all()

    def _wait(self) -> None:
        with self._wake:
            self._wake.wait_for(lambda: self._appended or self.closing, timeout=SPOOL_POLL)
            self._appended = False

    def put(self, line: str) -> None:
        self.writer.put(line)

    def take(self, n: int) -> list[str] | None:
        while True:
            if not self.spool.try_lock_sender():
                if self.closing:
                    return None  # another process inserts from this spool
                self._wait()
                continue
            with self._wake:
                self._appended = False
            self._batch = self.spool.next_batch(n, SPOOL_BATCH_BYTES)
            if self._batch is not None:
                return [line.decode("utf-8", "replace") for line in self._batch.lines]
            if self.closing:
                return None
            self._wait()

    def done(self, n: int) -> None:
        self.spool.delivered(self._batch)
        self._batch = None

    def close(self) -> None:
        self.writer.close()  # what is in memory goes to the disk first
        with self._wake:
            self.closing = True
            self._wake.notify_all()

    def wait_closing(self, seconds: float) -> bool:
        """Wait up to `seconds` for close(); True when closing."""
        with self._wake:
            return self._wake.wait_for(lambda: self.closing, seconds)

    def waiting(self) -> int:
        """Bytes not yet stored, as the process that inserts from the spool knows (0 in the others)."""
        return self.spool.pending_bytes() if self.spool.sending else 0

    def left_behind(self, n: int) -> str:
        return (f"{n} bytes of events wait in the spool {self.spool.directory} for the next start: the "
                f"database did not take them")


class PostgresEventSink:
    """A Sink (relay.events) that stores each event as a row. Thread-safe `write()`."""

    def __init__(self, url: str, *, max_queue: int = MAX_QUEUE, batch: int = BATCH,
                 spool_dir: Path | None = None, spool_max_size: int = SPOOL_MAX_BYTES, on_failure=None,
                 flush_seconds: float = FLUSH_SECONDS):
        from .store.postgresql import import_driver

        import_driver(url)  # at start, not in the thread: a missing driver stops `relay serve`
        self.url = url
        self.name = f"postgresql:{redact(url)}"
        self._dsn, self.schema, self.prefix = _place(url)
        self.table = f'"{self.schema}"."{self.prefix}events"'
        self._batch = batch
        self.flush_seconds = flush_seconds
        self.spool: Spool | None = None
        if spool_dir is None:
            self._room = _MemoryQueue(max_queue)
        else:
            self.spool = Spool(spool_dir, spool_max_size)
            self._room = _SpooledQueue(self.spool, lambda exc: on_failure(self, exc)
                                       if on_failure else log.error("event sink %s: %s", self.name, exc))
        self.stored = 0  # events the database has (metrics, tests)
        self.retries = 0  # failed attempts
        self._thread = threading.Thread(target=self._run, name="relay-events-pg", daemon=True)
        self._thread.start()

    @property
    def wait_when_full(self) -> bool:
        """The relay never waits for the database (a full queue drops, counted); an operator command
        writing a million bounce_listed events waits for room instead (EventSinks.for_command)."""
        return self._room.wait_when_full

    @wait_when_full.setter
    def wait_when_full(self, value: bool) -> None:
        self._room.wait_when_full = value

    # -- the Sink interface (called on the event loop) -------------------------------------------

    def write(self, line: str) -> None:
        self._room.put(line)

    def reopen(self) -> None:
        pass

    def pending(self) -> int:
        """What waits for the database: events in memory, or bytes of events in the spool."""
        return self._room.waiting()

    def close(self) -> None:
        self._room.close()
        self._thread.join(self.flush_seconds + QUERY_TIMEOUT)
        left = self.pending()
        if left:
            log.error("event sink %s: %s (within %g s of closing)", self.name, self._room.left_behind(left),
                      self.flush_seconds)
        if not self._thread.is_alive() and self.spool is not None:
            self.spool.close()

    def lost(self) -> int:
        """After close(): events that never reached the database and are kept nowhere (in memory only;
        a spool keeps them for the next start)."""
        return self.pending() if self.spool is None else 0

    # -- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                asyncio.run(self._main())
                return
            except Exception:  # never a thread that dies in silence: what is spooled waits for the next run
                count_thread_restart()
                log.exception("event sink %s: its writer failed; it starts again in %g s", self.name, RESTART_AFTER)
                if self._room.wait_closing(RESTART_AFTER):
                    return

    async def _main(self) -> None:
        conn = None
        backoff = 0.25
        deadline = None
        complained = 0.0
        while True:
            try:
                batch = await asyncio.to_thread(self._room.take, self._batch)
            except OSError as exc:  # the spool's disk: a retry, as the database's trouble is
                self.retries += 1
                if time.monotonic() - complained >= 10.0:
                    complained = time.monotonic()
                    log.error("event sink %s: cannot read its spool, retrying: %s", self.name, _one_line(exc))
                if self._room.closing:
                    break
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            if batch is None:
                break
            if self._room.closing:
                deadline = deadline or time.monotonic() + self.flush_seconds
                if time.monotonic() > deadline:
                    break
            try:
                if conn is None or conn.is_closed():
                    conn = await self._connect()
                await self._insert(conn, batch)
            except Exception as exc:  # the database's trouble is a retry, never an exception in mail flow
                self.retries += 1
                if conn is not None:
                    conn.terminate()
                    conn = None
                if time.monotonic() - complained >= 10.0:
                    complained = time.monotonic()
                    log.error("event sink %s: cannot store events (%d %s waiting), retrying: %s", self.name,
                              self.pending(), "event(s)" if isinstance(self._room, _MemoryQueue) else "bytes",
                              _one_line(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = 0.25
            self._room.done(len(batch))
            self.stored += len(batch)
        if conn is not None:
            await conn.close(timeout=QUERY_TIMEOUT)

    async def _connect(self):
        import asyncpg

        from .store.schema import migrate_postgresql

        ms = str(int(QUERY_TIMEOUT * 1000))
        conn = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT, command_timeout=QUERY_TIMEOUT,
                                     server_settings={"statement_timeout": ms, "lock_timeout": ms})
        try:
            await migrate_postgresql(conn, self.schema, self.prefix, redact(self.url))
        except BaseException:
            conn.terminate()
            raise
        return conn

    async def _insert(self, conn, batch: list[str]) -> None:
        rows = []
        for line in batch:
            try:
                rows.append(_row(line))
            except ValueError:
                log.error("event sink %s: not an event, skipped: %.200r", self.name, line)
        async with asyncio.timeout(QUERY_TIMEOUT * 2):
            await conn.executemany(
                f"INSERT INTO {self.table} (event_id, time, kind, recipient, sender, event) "
                "VALUES ($1, $2, $3, $4, $5, $6::jsonb) ON CONFLICT (event_id) DO NOTHING", rows)


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- reading (relay events tail) --------------------------------------------------------------------

LOOK_BACK = "10 seconds"  # see follow(): longer than any insert's transaction may take to commit


class EventReader:
    """The events of one database for `relay events tail`, oldest first."""

    def __init__(self, url: str, kinds: list[str] | None = None, recipient: str | None = None):
        from .store.postgresql import import_driver

        import_driver(url)
        self.url = url
        self._dsn, schema, prefix = _place(url)
        self.table = f'"{schema}"."{prefix}events"'
        self.kinds = kinds
        self.recipient = recipient
        self.conn = None

    async def __aenter__(self) -> "EventReader":
        import asyncpg

        try:
            self.conn = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT, command_timeout=QUERY_TIMEOUT)
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
            raise StoreError(f"cannot connect to {redact(self.url)}: {_one_line(exc)}") from None
        return self

    async def __aexit__(self, *exc) -> None:
        if self.conn is not None:
            await self.conn.close()

    def _where(self, first_arg: int) -> tuple[str, list]:
        clauses, args = [], []
        if self.kinds:
            args.append(list(self.kinds))
            clauses.append(f"kind = ANY(${first_arg + len(args) - 1}::text[])")
        if self.recipient:
            args.append(self.recipient.lower())
            clauses.append(f"lower(recipient) = ${first_arg + len(args) - 1}")
        return "".join(f" AND {c}" for c in clauses), args

    async def last(self, n: int) -> list[tuple[int, str]]:
        """The newest n events (id, JSON text), oldest first."""
        where, args = self._where(2)
        rows = await self._fetch(f"SELECT id, event::text FROM {self.table} WHERE true{where} "
                                 "ORDER BY id DESC LIMIT $1", n, *args)
        return [(r[0], r[1]) for r in reversed(rows)]

    async def since(self, after: int, seen: set[int]) -> list[tuple[int, str]]:
        """Events stored after id `after`, and any stored in the last LOOK_BACK that are not in `seen`.
        Ids are handed out when a row is inserted, not when it commits: two relays writing at once
        can commit id 11 after id 12 was read, so the recent past is read again, by time."""
        where, args = self._where(2)
        rows = await self._fetch(
            f"SELECT id, event::text FROM {self.table} WHERE (id > $1 OR stored_at > now() - interval "
            f"'{LOOK_BACK}'){where} ORDER BY id", after, *args)
        return [(r[0], r[1]) for r in rows if r[0] not in seen]

    async def _fetch(self, sql: str, *args):
        import asyncpg

        try:
            return await self.conn.fetch(sql, *args)
        except asyncpg.UndefinedTableError:
            return []  # no event stored yet: the sink creates the table at its first connection
