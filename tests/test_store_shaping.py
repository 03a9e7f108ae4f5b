"""Traffic shaping's state in the store (SQLite and PostgreSQL): holds and counts shared by every
process, read-modify-write in one transaction."""

from __future__ import annotations

import asyncio
import time

import pytest

from relay.store import open_store
from relay.store.base import ShapingRecord
from tests.support import pg


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/bounces.db"
    else:
        url, schema = pg.isolated_url()
        yield url
        pg.drop(schema)


@pytest.fixture
async def store(store_url):
    s = open_store(store_url)
    yield s
    await s.close()


def record(key="google/example.com", until=2000.0, strikes=1, rate=None, since=1000.0) -> ShapingRecord:
    destination, _, sender = key.partition("/")
    return ShapingRecord(key=key, destination=destination, sender_domain=sender, rule="gmail-unusual-rate",
                         reason="unusual rate", reply="421-4.7.28 a\n421 4.7.28 b", since=since, until=until,
                         strikes=strikes, rate=rate, changed=since)


async def test_update_writes_reads_and_deletes(store):
    assert await store.shaping_records(["google/example.com"]) == []
    written = await store.shaping_update("google/example.com", lambda old: record() if old is None else None)
    assert written == record()
    assert await store.shaping_records(["google", "google/example.com"]) == [record()]
    # change() sees what is stored, and None deletes.
    seen = []
    assert await store.shaping_update("google/example.com", lambda old: seen.append(old)) is None
    assert seen == [record()]
    assert await store.shaping_records() == []


async def test_records_keep_none_and_fractions(store):
    r = record(until=None, rate=2.5, since=1234.5)
    await store.shaping_update(r.key, lambda old: r)
    assert await store.shaping_records() == [r]


async def test_release_by_destination_or_by_key(store):
    for key in ("google/example.com", "google/other.org", "google", "microsoft"):
        await store.shaping_update(key, lambda old, key=key: record(key))
    assert [r.key for r in await store.shaping_release("google/other.org")] == ["google/other.org"]
    assert [r.key for r in await store.shaping_release("google")] == ["google", "google/example.com"]
    assert [r.key for r in await store.shaping_records()] == ["microsoft"]
    assert await store.shaping_release("yahoo") == []


async def test_counts_add_up_over_processes(store_url):
    one, two = open_store(store_url), open_store(store_url)
    minute = time.time() // 60 * 60
    day = time.time() // 86400 * 86400
    try:
        await one.shaping_add_counts({("google", "minute", minute - 60): 2, ("google/example.com", "day", day): 2})
        await two.shaping_add_counts({("google", "minute", minute - 60): 3, ("google", "minute", minute): 1})
        assert await one.shaping_counts(["google", "yahoo"], "minute", minute - 60) == {"google": 6}
        assert await two.shaping_counts(["google"], "minute", minute) == {"google": 1}
        assert await two.shaping_counts(["google/example.com"], "day", day) == {"google/example.com": 2}
        # Buckets no limit looks at any more are swept when counts are added.
        await one.shaping_add_counts({("google", "minute", minute - 3 * 86400): 5})
        assert await one.shaping_counts(["google"], "minute", 0) == {"google": 6}
    finally:
        await one.close()
        await two.close()


async def test_concurrent_strikes_from_two_stores_make_one_record(store_url):
    """Two processes seeing the same push-back at once: the second sees the first's record."""
    one, two = open_store(store_url), open_store(store_url)

    def strike(old):
        return record(strikes=(old.strikes + 1) if old else 1)

    try:
        await asyncio.gather(*(s.shaping_update("google/example.com", strike) for s in (one, two, one, two)))
        [r] = await one.shaping_records()
        assert r.strikes == 4  # every read-modify-write saw the one before it
    finally:
        await one.close()
        await two.close()


async def test_forget_drops_what_nothing_changed_for_long_but_never_a_hold(store):
    await store.shaping_update("old", lambda old: record("old", until=1500.0, since=1000.0))
    await store.shaping_update("held", lambda old: record("held", until=99_999.0, since=1000.0))
    await store.shaping_update("fresh", lambda old: record("fresh", until=None, rate=5.0, since=5000.0))
    assert await store.shaping_forget(unchanged_since=4000.0, now=6000.0) == 1
    assert [r.key for r in await store.shaping_records()] == ["fresh", "held"]
