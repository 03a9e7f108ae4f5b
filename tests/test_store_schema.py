"""Versioned migrations (relay/store/schema.py) on a real SQLite file and a real PostgreSQL schema."""

from __future__ import annotations

import asyncio
import sqlite3

import psycopg
import pytest

from relay.store import open_store
from relay.store.schema import LATEST, MIGRATIONS, SchemaTooNew, statements
from tests.support import pg


def pg_rows(sql: str):
    with psycopg.connect(pg._conninfo()) as conn:
        return conn.execute(sql).fetchall()


def pg_run(sql: str) -> None:
    with psycopg.connect(pg._conninfo(), autocommit=True) as conn:
        conn.execute(sql)


async def test_a_new_sqlite_list_records_every_migration(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/b.db")
    try:
        assert [m.version for m in await store.migrate()] == list(range(1, LATEST + 1))
        assert await store.schema_version() == LATEST
    finally:
        await store.close()
    db = sqlite3.connect(tmp_path / "b.db")
    rows = db.execute("SELECT version, description FROM relay_schema_version ORDER BY version").fetchall()
    assert [r[0] for r in rows] == [m.version for m in MIGRATIONS]
    assert db.execute("PRAGMA user_version").fetchone()[0] == LATEST  # what older relays read
    store = open_store(f"sqlite:///{tmp_path}/b.db")  # opened again: nothing to apply
    try:
        assert await store.migrate() == []
    finally:
        await store.close()


async def test_a_new_postgresql_list_records_every_migration(pg_url):
    url, schema = pg_url
    store = open_store(url)
    try:
        assert [m.version for m in await store.migrate()] == list(range(1, LATEST + 1))
        assert await store.schema_version() == LATEST
    finally:
        await store.close()
    assert [r[0] for r in pg_rows(f'SELECT version FROM "{schema}".relay_schema_version ORDER BY 1')] == \
        list(range(1, LATEST + 1))
    assert pg_rows(f"SELECT to_regclass('\"{schema}\".relay_events')")[0][0] is not None


async def test_postgresql_tables_from_before_the_version_table_are_brought_up(pg_url):
    url, schema = pg_url
    # What a relay from before versioning made: the bounce list's tables and nothing else.
    pg_run(f'CREATE SCHEMA "{schema}"')
    for statement in statements(MIGRATIONS[0].postgresql):
        pg_run(statement.format(schema=schema, prefix="relay_"))
    pg_run(f"""INSERT INTO "{schema}".relay_bounces (address, category, first_seen, last_seen, source)
               VALUES ('kept@example.com', 'operator', now(), now(), 'operator')""")
    store = open_store(url)
    try:
        assert (await store.get("kept@example.com")).category == "operator"
        assert await store.held() == [] and await store.schema_version() == LATEST
    finally:
        await store.close()


async def test_relays_starting_at_once_migrate_once(pg_url):
    url, schema = pg_url
    stores = [open_store(url) for _ in range(4)]
    try:
        applied = await asyncio.gather(*(s.migrate() for s in stores))
    finally:
        for s in stores:
            await s.close()
    assert sorted(len(a) for a in applied) == [0, 0, 0, LATEST]
    assert len(pg_rows(f'SELECT * FROM "{schema}".relay_schema_version')) == LATEST


async def test_a_sqlite_list_a_newer_relay_migrated_is_refused(tmp_path):
    path = tmp_path / "b.db"
    store = open_store(f"sqlite:///{path}")
    await store.close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO relay_schema_version VALUES (?, 'from the future', 0)", (LATEST + 1,))
    db.commit()
    db.close()
    with pytest.raises(SchemaTooNew, match=f"version {LATEST + 1} is newer than this relay knows"):
        open_store(f"sqlite:///{path}")


async def test_a_postgresql_list_a_newer_relay_migrated_is_refused_at_every_use(pg_url):
    url, schema = pg_url
    store = open_store(url)
    await store.migrate()
    await store.close()
    pg_run(f"""INSERT INTO "{schema}".relay_schema_version (version, description)
               VALUES ({LATEST + 1}, 'from the future')""")
    store = open_store(url)
    try:
        for _ in range(2):  # never a pool that works around the refusal
            with pytest.raises(SchemaTooNew, match="upgrade this relay"):
                await store.get("a@example.com")
    finally:
        await store.close()


async def test_a_failed_migration_leaves_the_database_as_it_was(pg_url, monkeypatch):
    url, schema = pg_url
    from relay.store import schema as schema_module

    broken = schema_module.Migration(LATEST + 1, "broken", sqlite="", postgresql='CREATE TABLE "{schema}".x (;')
    monkeypatch.setattr(schema_module, "MIGRATIONS", (*MIGRATIONS, broken))
    monkeypatch.setattr(schema_module, "LATEST", LATEST + 1)
    store = open_store(url)
    try:
        with pytest.raises(Exception, match="cannot create the bounce list tables"):
            await store.migrate()
    finally:
        await store.close()
    # One transaction: not even the first migrations stayed.
    assert pg_rows(f"SELECT to_regclass('\"{schema}\".relay_bounces')")[0][0] is None



async def test_a_role_that_may_not_alter_the_tables_is_told_how_to_migrate(pg_url):
    # review-17 F3: a role with only row rights (the tables made by their owner) met a pending
    # migration with PostgreSQL's "permission denied ..." alone, and no word of `relay db migrate`.
    url, schema = pg_url
    store = open_store(url)
    await store.migrate()
    await store.close()
    role = f"r_{schema}"
    pg_run(f"""DELETE FROM "{schema}".relay_schema_version WHERE version = {LATEST}""")  # the newest one is pending
    pg_run(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{role}-pw'")  # a password too: not only under trust auth
    try:
        pg_run(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        pg_run(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"')
        limited = open_store(url.replace(f"//{pg.USER}@", f"//{role}:{role}-pw@", 1))
        try:
            with pytest.raises(Exception, match="cannot create the bounce list tables") as err:
                await limited.get("a@example.com")
            assert "permission denied" in str(err.value) and "relay db migrate" in str(err.value)
        finally:
            await limited.close()
    finally:
        pg_run(f'DROP OWNED BY "{role}"')
        pg_run(f'DROP ROLE "{role}"')


async def test_lists_of_several_prefixes_starting_at_once_in_a_new_schema_all_migrate(pg_url):
    """review24 F9: the bounce list and an events sink (other prefixes, one new schema) starting together
    both created the schema; the second failed on pg_namespace's unique key (15 runs of 15)."""
    url, schema = pg_url
    for round_ in range(3):
        stores = [open_store(f"{url}&prefix=r{round_}{p}") for p in ("relay_", "ev_", "x_")]
        try:
            applied = await asyncio.gather(*(s.migrate() for s in stores), return_exceptions=True)
        finally:
            for s in stores:
                await s.close()
        assert [len(a) if isinstance(a, list) else repr(a) for a in applied] == [LATEST] * 3
        pg_run(f'DROP SCHEMA "{schema}" CASCADE')  # new again for the next round
