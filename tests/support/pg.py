"""Real PostgreSQL for tests: 127.0.0.1:5432, trust auth, database `test`.

`ensure_running()` starts the Debian cluster when it is down, so a fresh machine
passes. `isolated_url()` hands each test its own schema; `drop()` removes it.
"""

from __future__ import annotations

import glob
import os
import secrets
import subprocess
import time

import psycopg

HOST = os.environ.get("RELAY_TEST_PGHOST", "127.0.0.1")
PORT = int(os.environ.get("RELAY_TEST_PGPORT", "5432"))
USER = os.environ.get("RELAY_TEST_PGUSER", "postgres")
DATABASE = os.environ.get("RELAY_TEST_PGDATABASE", "test")

_ready = False


def _conninfo() -> str:
    return f"host={HOST} port={PORT} user={USER} dbname={DATABASE} connect_timeout=3"


def _can_connect() -> bool:
    try:
        with psycopg.connect(_conninfo()) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


def ensure_running(timeout: float = 30.0) -> None:
    """Start the local cluster if nothing answers; raise RuntimeError if it never does."""
    global _ready
    if _ready or _can_connect():
        _ready = True
        return
    versions = [os.path.basename(p) for p in glob.glob("/etc/postgresql/*")]
    for version in versions:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                       capture_output=True, text=True, timeout=60)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _can_connect():
            _ready = True
            return
        time.sleep(0.3)
    raise RuntimeError(f"PostgreSQL at {HOST}:{PORT} did not come up (clusters tried: {versions or 'none'})")


def isolated_url() -> tuple[str, str]:
    """(bounce_list URL, schema name): a schema of its own, created by the store on first use. The
    connections are named after the schema (application_name), so that terminate() finds them."""
    ensure_running()
    schema = f"t_{secrets.token_hex(6)}"
    return f"postgresql://{USER}@{HOST}:{PORT}/{DATABASE}?schema={schema}&application_name={schema}", schema


def terminate(schema: str) -> int:
    """Kill the server side of every connection a test's URL opened (pg_terminate_backend): what a
    restart of PostgreSQL does to them, without stopping a server other tests share. Returns how many."""
    assert schema.startswith("t_"), schema
    with psycopg.connect(_conninfo(), autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                            (schema,)).fetchall()
    return sum(1 for (ok,) in rows if ok)


def drop(schema: str) -> None:
    assert schema.startswith("t_"), schema  # never drop anything a test did not create
    with psycopg.connect(_conninfo(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def add_to_list(url: str, *addresses: str) -> None:
    """Put `addresses` on the bounce list at `url` through the relay's own store (it creates the tables)."""
    import asyncio

    from relay.store import open_store

    async def add():
        store = open_store(url)
        try:
            for address in addresses:
                await store.add(address, note="test")
        finally:
            await store.close()
    asyncio.run(add())
