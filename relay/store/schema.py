"""The relay's tables, as an ordered list of versioned migrations, for SQLite and PostgreSQL.

A database records each migration applied to it in a `schema_version` table (one row per
version, with when it was applied), so that several relays and `relay db migrate` agree on what
is there. The relay applies the missing ones when it opens a database, under the database's own
lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock, and DDL is transactional), so that
relays starting at once apply each migration once. A database whose version is newer than the
newest migration this relay knows is refused with SchemaTooNew: an older relay must not write to
tables whose meaning changed under it.

Adding a migration: append one `Migration` with the next version and never edit or reorder one
that has been released (a database that already has it will not run it again). Both texts run in
one transaction; either may be empty when a backend needs nothing (the events table exists only in
PostgreSQL). PostgreSQL statements name tables `"{schema}"."{prefix}NAME"`, as the URL's
`?schema=&prefix=` place them (and `{channel}` is the list's NOTIFY channel); SQLite tables are
always `relay_NAME`.

Databases made before this module (SQLite's `PRAGMA user_version`, PostgreSQL tables without a
version table) are brought up by the same list: the first migrations create only what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import StoreError
from .pg_cache import channel


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sqlite: str | tuple[str, ...]  # statements separated by ';', or a tuple of statements
    postgresql: str | tuple[str, ...]


class SchemaTooNew(StoreError):
    """The database was migrated by a newer relay than this one."""


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "bounce list and counted failures", sqlite="""
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
        """, postgresql="""
        CREATE TABLE IF NOT EXISTS "{schema}"."{prefix}bounces" (
            address    text COLLATE "C" PRIMARY KEY,   -- code-point order, as SQLite and Python sort
            category   text NOT NULL,
            reply      text NOT NULL DEFAULT '',
            rule       text NOT NULL DEFAULT '',
            first_seen timestamptz NOT NULL,
            last_seen  timestamptz NOT NULL,
            count      integer NOT NULL DEFAULT 0,
            source     text NOT NULL CHECK (source IN ('auto', 'operator')),
            note       text NOT NULL DEFAULT '',
            expires_at timestamptz
        );
        CREATE TABLE IF NOT EXISTS "{schema}"."{prefix}bounce_failures" (
            address  text COLLATE "C" NOT NULL,
            category text NOT NULL,
            at       timestamptz NOT NULL
        );
        CREATE INDEX IF NOT EXISTS "{prefix}bounce_failures_key"
            ON "{schema}"."{prefix}bounce_failures" (address, category, at);
        CREATE INDEX IF NOT EXISTS "{prefix}bounce_failures_at" ON "{schema}"."{prefix}bounce_failures" (at);
        """),
    Migration(2, "the circuit breaker's held listings and hits", sqlite="""
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
        """, postgresql="""
        CREATE TABLE IF NOT EXISTS "{schema}"."{prefix}bounce_held" (
            address    text COLLATE "C" PRIMARY KEY,   -- a listing the circuit breaker holds
            domain     text COLLATE "C" NOT NULL,
            category   text NOT NULL,
            reply      text NOT NULL DEFAULT '',
            rule       text NOT NULL DEFAULT '',
            first_seen timestamptz NOT NULL,
            last_seen  timestamptz NOT NULL,
            count      integer NOT NULL DEFAULT 0,
            source     text NOT NULL,
            note       text NOT NULL DEFAULT '',
            expires_at timestamptz
        );
        CREATE INDEX IF NOT EXISTS "{prefix}bounce_held_domain" ON "{schema}"."{prefix}bounce_held" (domain);
        CREATE TABLE IF NOT EXISTS "{schema}"."{prefix}breaker_hits" (
            domain  text COLLATE "C" NOT NULL,
            address text COLLATE "C" NOT NULL,
            at      timestamptz NOT NULL
        );
        CREATE INDEX IF NOT EXISTS "{prefix}breaker_hits_domain" ON "{schema}"."{prefix}breaker_hits" (domain, at);
        """),
    Migration(3, "events (the postgresql event sink)", sqlite="", postgresql="""
        CREATE TABLE IF NOT EXISTS "{schema}"."{prefix}events" (
            id         bigserial PRIMARY KEY,          -- the order events were stored in: tail follows it
            event_id   text NOT NULL UNIQUE,           -- a retried batch never stores an event twice
            time       timestamptz NOT NULL,           -- the event's own time (the relay's clock)
            stored_at  timestamptz NOT NULL DEFAULT now(),
            kind       text NOT NULL,
            recipient  text NOT NULL DEFAULT '',
            sender     text NOT NULL DEFAULT '',
            event      jsonb NOT NULL                  -- the whole event, as the other sinks write it
        );
        CREATE INDEX IF NOT EXISTS "{prefix}events_time" ON "{schema}"."{prefix}events" (time);
        CREATE INDEX IF NOT EXISTS "{prefix}events_recipient" ON "{schema}"."{prefix}events" (lower(recipient), id);
        CREATE INDEX IF NOT EXISTS "{prefix}events_kind" ON "{schema}"."{prefix}events" (kind, id);
        """),
    Migration(4, "traffic shaping's holds and message counts", sqlite="""
        CREATE TABLE IF NOT EXISTS relay_shaping (
            key           TEXT PRIMARY KEY,        -- destination, or destination/sender-domain
            destination   TEXT NOT NULL,
            sender_domain TEXT NOT NULL DEFAULT '',
            rule          TEXT NOT NULL,
            reason        TEXT NOT NULL,
            reply         TEXT NOT NULL DEFAULT '',
            since         REAL NOT NULL,
            until         REAL,                    -- NULL: not held
            strikes       INTEGER NOT NULL,
            rate          REAL,                    -- messages a minute while slowed (NULL: not slowed)
            changed       REAL NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS relay_shaping_destination ON relay_shaping (destination);
        CREATE TABLE IF NOT EXISTS relay_shaping_counts (
            key    TEXT NOT NULL,
            period TEXT NOT NULL,                  -- minute | day
            start  REAL NOT NULL,                  -- the bucket's first second
            count  INTEGER NOT NULL,
            PRIMARY KEY (key, period, start)
        ) WITHOUT ROWID;
        """, postgresql="""
        CREATE TABLE IF NOT EXISTS "{schema}"."{prefix}shaping" (
            key           text COLLATE "C" PRIMARY KEY,  -- destination, or destination/sender-domain
            destination   text COLLATE "C" NOT NULL,
            sender_domain text NOT NULL DEFAULT '',
            rule          text NOT NULL,
            reason        text NOT NULL,
            reply         text NOT NULL DEFAULT '',
            since         timestamptz NOT NULL,
            until         timestamptz,                   -- NULL: not held
            strikes       integer NOT NULL,
            rate          double precision,              -- messages a minute while slowed
            changed       timestamptz NOT NULL
        );
        CREATE INDEX IF NOT EXISTS "{prefix}shaping_destination" ON "{schema}"."{prefix}shaping" (destination);
        CREATE TABLE IF NOT EXISTS "{schema}"."{prefix}shaping_counts" (
            key    text COLLATE "C" NOT NULL,
            period text NOT NULL,                        -- minute | day
            start  timestamptz NOT NULL,
            count  integer NOT NULL,
            PRIMARY KEY (key, period, start)
        );
        """),
    Migration(5, "changes to the bounce list are notified (each relay's lookup cache); events by stored_at",
              sqlite="", postgresql=(
        # One statement each: the function's body holds semicolons of its own.
        """CREATE OR REPLACE FUNCTION "{schema}"."{prefix}bounces_changed"() RETURNS trigger
           LANGUAGE plpgsql AS $$
           BEGIN
               IF TG_OP = 'TRUNCATE' THEN
                   PERFORM pg_notify('{channel}', '*');
                   RETURN NULL;
               END IF;
               IF TG_OP IN ('UPDATE', 'DELETE') THEN
                   PERFORM pg_notify('{channel}', OLD.address);
               END IF;
               IF TG_OP IN ('INSERT', 'UPDATE') THEN
                   PERFORM pg_notify('{channel}', NEW.address);
               END IF;
               RETURN NULL;
           END $$""",
        'DROP TRIGGER IF EXISTS "{prefix}bounces_changed" ON "{schema}"."{prefix}bounces"',
        """CREATE TRIGGER "{prefix}bounces_changed" AFTER INSERT OR UPDATE OR DELETE ON "{schema}"."{prefix}bounces"
           FOR EACH ROW EXECUTE FUNCTION "{schema}"."{prefix}bounces_changed"()""",
        'DROP TRIGGER IF EXISTS "{prefix}bounces_truncated" ON "{schema}"."{prefix}bounces"',
        """CREATE TRIGGER "{prefix}bounces_truncated" AFTER TRUNCATE ON "{schema}"."{prefix}bounces"
           FOR EACH STATEMENT EXECUTE FUNCTION "{schema}"."{prefix}bounces_changed"()""",
        """CREATE INDEX IF NOT EXISTS "{prefix}events_stored_at" ON "{schema}"."{prefix}events" (stored_at)""",
    )),
    # Issue 13: a VERP token authenticates a transaction, not its recipients; a bounce to it is acted on
    # only for addresses the next hop accepted in that transaction (relay/steps/verp.py writes them at
    # the 250 to the final dot, relay/intake/bounces_in.py reads them). Kept as long as a token is
    # accepted (relay/intake/verp.py MAX_AGE_DAYS) and a day more, by `day`.
    Migration(6, "the recipients of VERP transactions (which addresses a bounce to a return path may name)",
              sqlite="""
        CREATE TABLE IF NOT EXISTS relay_verp_recipients (
            -- In the order written: a write's rows go on the table's last page, and expiry takes the
            -- oldest first by this key. Keyed by transaction (or with an index on the day), each row of
            -- a write dirtied a page of its own in two B-trees: ~40% more CPU a commit (bench/, 5 rows).
            id             INTEGER PRIMARY KEY,
            transaction_id TEXT NOT NULL,          -- the relay's transaction id (16 hex digits), as in events
            recipient      BLOB NOT NULL,          -- sha256 of relay.address.normalise(address), 32 bytes
            day            INTEGER NOT NULL        -- days since the epoch (UTC) of the return path's token
        );
        CREATE INDEX IF NOT EXISTS relay_verp_recipients_transaction ON relay_verp_recipients (transaction_id);
        """, postgresql="""
        CREATE TABLE IF NOT EXISTS "{schema}"."{prefix}verp_recipients" (
            transaction_id text COLLATE "C" NOT NULL,  -- the relay's transaction id (16 hex digits)
            recipient      bytea NOT NULL,             -- sha256 of relay.address.normalise(address)
            day            integer NOT NULL,           -- days since the epoch (UTC) of the token
            PRIMARY KEY (transaction_id, recipient)
        );
        CREATE INDEX IF NOT EXISTS "{prefix}verp_recipients_day" ON "{schema}"."{prefix}verp_recipients" (day);
        """),
    # review12 F3/F11: a counted failure says which message it was about, so that a retry of the same
    # message (Postfix soft_bounce, a 4xx then a 5xx, the same DSN delivered again after our 451) is not
    # counted as another refusal. NULL: not known (each such failure counts, as before).
    # SQLite has no ADD COLUMN IF NOT EXISTS, and a file from before the version table runs every
    # migration again: the table is rebuilt (its rows copied) rather than altered.
    Migration(7, "counted failures name the message they were about (one count per message)", sqlite="""
        DROP TABLE IF EXISTS relay_bounce_failures_7;
        CREATE TABLE relay_bounce_failures_7 (
            address  TEXT NOT NULL,
            category TEXT NOT NULL,
            at       REAL NOT NULL,
            message  TEXT                          -- outcomes.message_key(), NULL when not known
        );
        INSERT INTO relay_bounce_failures_7 (address, category, at) SELECT address, category, at FROM relay_bounce_failures;
        DROP TABLE relay_bounce_failures;
        ALTER TABLE relay_bounce_failures_7 RENAME TO relay_bounce_failures;
        CREATE INDEX IF NOT EXISTS relay_bounce_failures_key ON relay_bounce_failures (address, category, at);
        CREATE INDEX IF NOT EXISTS relay_bounce_failures_at ON relay_bounce_failures (at)
        """, postgresql="""
        ALTER TABLE "{schema}"."{prefix}bounce_failures" ADD COLUMN IF NOT EXISTS message text
        """),
    # review24 F5: purge() deletes expired listings by `expires_at`, which had no index: a scan of the
    # whole list (148 ms on the event loop at a million SQLite entries) every PURGE_EVERY counted
    # failures. Partial: most entries never expire (NULL), and the sweep asks only for those that do.
    Migration(8, "an index of the bounce list's expiry times (the sweep of expired listings)", sqlite="""
        CREATE INDEX IF NOT EXISTS relay_bounces_expires ON relay_bounces (expires_at) WHERE expires_at IS NOT NULL
        """, postgresql="""
        CREATE INDEX IF NOT EXISTS "{prefix}bounces_expires" ON "{schema}"."{prefix}bounces" (expires_at)
            WHERE expires_at IS NOT NULL
        """),
)

LATEST = MIGRATIONS[-1].version


def statements(text: str | tuple[str, ...]) -> list[str]:
    """The statements of a migration: a tuple as it is, a text split at ';' (then no statement may
    hold a ';' of its own: a function body goes in a tuple)."""
    if isinstance(text, tuple):
        return list(text)
    return [s.strip() for s in text.split(";") if s.strip()]


def pending(current: int) -> list[Migration]:
    return [m for m in MIGRATIONS if m.version > current]


def too_new(where: str, current: int) -> SchemaTooNew:
    return SchemaTooNew(f"{where}: schema version {current} is newer than this relay knows ({LATEST}): "
                        f"another relay was upgraded and migrated it; upgrade this relay too")


def _check_order() -> None:
    versions = [m.version for m in MIGRATIONS]
    assert versions == list(range(1, len(versions) + 1)), f"migrations must be numbered 1, 2, ...: {versions}"


_check_order()


# -- SQLite ---------------------------------------------------------------------------------------

SQLITE_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS relay_schema_version (
    version     INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at  REAL NOT NULL              -- Unix time, UTC
)"""


def sqlite_version(db) -> int:
    """The version of an SQLite bounce list (0: new or empty). Files from before the version table
    carry it in PRAGMA user_version only."""
    has_table = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'relay_schema_version'"
                           ).fetchone()
    if has_table:
        row = db.execute("SELECT max(version) FROM relay_schema_version").fetchone()
        if row[0] is not None:
            return int(row[0])
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate_sqlite(db, where: str) -> list[Migration]:
    """Apply the missing migrations to an SQLite connection in autocommit mode (isolation_level=None);
    returns those applied. Raises SchemaTooNew."""
    import time

    if sqlite_version(db) == LATEST:  # the common case: no write lock taken
        return []
    db.execute("BEGIN IMMEDIATE")  # two processes starting at once migrate once
    try:
        current = sqlite_version(db)
        if current > LATEST:
            raise too_new(where, current)
        todo = pending(current)
        if todo:
            db.execute(SQLITE_VERSION_TABLE)
        for migration in todo:
            # One statement at a time: executescript() would commit the open transaction first.
            for statement in statements(migration.sqlite):
                db.execute(statement)
            db.execute("INSERT INTO relay_schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                       (migration.version, migration.description, time.time()))
        # Relays from before the version table read user_version: they refuse a newer file.
        db.execute(f"PRAGMA user_version = {max(current, LATEST)}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return todo


# -- PostgreSQL (asyncpg) ---------------------------------------------------------------------------

def pg_version_table(schema: str, prefix: str) -> str:
    return f'"{schema}"."{prefix}schema_version"'


async def postgresql_version(conn, schema: str, prefix: str) -> int:
    """The version of the tables at schema/prefix: 0 when there are none, or when they were made
    before the version table (the first migrations then create only what is missing)."""
    table = await conn.fetchval("SELECT to_regclass($1)", pg_version_table(schema, prefix))
    if table is not None:
        value = await conn.fetchval(f"SELECT max(version) FROM {pg_version_table(schema, prefix)}")
        if value is not None:
            return int(value)
    return 0


async def migrate_postgresql(conn, schema: str, prefix: str, where: str) -> list[Migration]:
    """Apply the missing migrations on an asyncpg connection; returns those applied. One transaction
    under an advisory lock per schema/prefix, so relays starting at once take turns."""
    if await postgresql_version(conn, schema, prefix) == LATEST:
        return []
    async with conn.transaction():
        # The schema's own lock first: the bounce list and an events sink with other prefixes in one new
        # schema, started together, both ran CREATE SCHEMA IF NOT EXISTS, and the second failed on
        # pg_namespace's unique key (IF NOT EXISTS does not wait for the other's uncommitted schema;
        # review24 F9). Then the prefix's, which relays of every version take.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"schema:{schema}")
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"schema:{schema}.{prefix}")
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        current = await postgresql_version(conn, schema, prefix)
        if current > LATEST:
            raise too_new(where, current)
        todo = pending(current)
        if todo:
            await conn.execute(f"""
                CREATE TABLE IF NOT EXISTS {pg_version_table(schema, prefix)} (
                    version     integer PRIMARY KEY,
                    description text NOT NULL,
                    applied_at  timestamptz NOT NULL DEFAULT now()
                )""")
        for migration in todo:
            for statement in statements(migration.postgresql):
                await conn.execute(statement.format(schema=schema, prefix=prefix, channel=channel(schema, prefix)))
            await conn.execute(f"INSERT INTO {pg_version_table(schema, prefix)} (version, description) "
                               "VALUES ($1, $2)", migration.version, migration.description)
    return todo
