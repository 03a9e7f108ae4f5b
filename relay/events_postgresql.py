"""Events in PostgreSQL (`events: [{postgresql: URL}]`): one row an event, queryable with SQL, and
read back by `relay events tail`.

The table is `<prefix>events` (relay/store/schema.py, migration 3): the event's `event_id`, `time`,
`kind`, `recipient` and `sender` as columns, and the whole event as `jsonb`, exactly as the other
sinks write it. The URL takes the same `?schema=&prefix=` as the bounce list's, so the events may
live beside the list or in a database of their own.

Writing never touches the event loop: `write()` puts the line in a queue and a thread of the sink's
own, with its own asyncio loop and asyncpg connection, inserts batches of them. A database that is
down, hung or restarting costs nothing but memory: the batch is kept and retried (back-off up to
MAX_BACKOFF), and `event_id` is unique, so a batch that committed but whose answer was lost is not
stored twice when it is sent again. Only a full queue (MAX_QUEUE events waiting) drops events, each
counted and logged by EventSinks as any sink failure. Every statement has a deadline, as the bounce
list's do, so a hung database is a retry, never a stuck thread.
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

from .store.base import StoreError, redact

log = logging.getLogger("relay.events")

BATCH = 500  # events a transaction
MAX_QUEUE = 200_000  # events waiting for the database before new ones are dropped
MAX_BACKOFF = 10.0  # seconds between attempts while the database is away
CONNECT_TIMEOUT = 5.0
QUERY_TIMEOUT = 5.0
FLUSH_SECONDS = 30.0  # close() waits this long for the queue to reach the database


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


class PostgresEventSink:
    """A Sink (relay.events) that stores each event as a row. Thread-safe `write()`."""

    def __init__(self, url: str, *, max_queue: int = MAX_QUEUE, batch: int = BATCH):
        from .store.postgresql import import_driver

        import_driver(url)  # at start, not in the thread: a missing driver stops `relay serve`
        self.url = url
        self.name = f"postgresql:{redact(url)}"
        self._dsn, self.schema, self.prefix = _place(url)
        self.table = f'"{self.schema}"."{self.prefix}events"'
        self._max_queue = max_queue
        self._batch = batch
        self._queue: deque[str] = deque()
        self._wake = threading.Condition()
        self._closing = False
        # The relay never waits for the database (a full queue drops, counted); an operator command
        # writing a million bounce_listed events waits for room instead (EventSinks.for_command).
        self.wait_when_full = False
        self.stored = 0  # events the database has (metrics, tests)
        self.retries = 0  # failed attempts
        self._thread = threading.Thread(target=self._run, name="relay-events-pg", daemon=True)
        self._thread.start()

    # -- the Sink interface (called on the event loop) -------------------------------------------

    def write(self, line: str) -> None:
        with self._wake:
            while len(self._queue) >= self._max_queue:
                if not self.wait_when_full:
                    raise OSError(f"{len(self._queue)} events wait for the database already (it is down or slow)")
                self._wake.wait(1.0)  # an operator command (an import): slower, never lossy
            self._queue.append(line)
            self._wake.notify_all()

    def reopen(self) -> None:
        pass

    def pending(self) -> int:
        with self._wake:
            return len(self._queue)

    def close(self) -> None:
        with self._wake:
            self._closing = True
            self._wake.notify_all()
        self._thread.join(FLUSH_SECONDS + QUERY_TIMEOUT)
        left = self.pending()
        if left:
            log.error("event sink %s: %d event(s) not stored: the database did not take them within %g s "
                      "of closing", self.name, left, FLUSH_SECONDS)

    # -- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.run(self._main())

    def _take(self) -> list[str] | None:
        """The next batch (left in the queue until stored); None when closing and nothing is left."""
        with self._wake:
            while not self._queue and not self._closing:
                self._wake.wait()
            if not self._queue:
                return None
            return [self._queue[i] for i in range(min(self._batch, len(self._queue)))]

    def _done(self, n: int) -> None:
        with self._wake:
            for _ in range(n):
                self._queue.popleft()
            self._wake.notify_all()  # a writer waiting for room
        self.stored += n

    async def _main(self) -> None:
        conn = None
        backoff = 0.25
        deadline = None
        complained = 0.0
        while True:
            batch = await asyncio.to_thread(self._take)
            if batch is None:
                break
            if self._closing:
                deadline = deadline or time.monotonic() + FLUSH_SECONDS
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
                    log.error("event sink %s: cannot store %d event(s), retrying: %s", self.name,
                              self.pending(), _one_line(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = 0.25
            self._done(len(batch))
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
