"""The PostgreSQL store's lookup cache (relay/store/pg_cache.py): its rules on their own, then against a
real PostgreSQL whose changes come from plain SQL, the CLI's way or a killed listener."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from relay.store import StoreError, open_store
from relay.store.base import BounceEntry
from relay.store.pg_cache import LookupCache
from tests.support import pg


def entry(address: str, expires_at=None) -> BounceEntry:
    now = datetime.now(timezone.utc)
    return BounceEntry(address=address, category="operator", reply="", rule="operator", first_seen=now,
                       last_seen=now, count=0, source="operator", expires_at=expires_at)


def live_cache() -> LookupCache:
    cache = LookupCache(size=3)
    cache.alive(time.monotonic())
    return cache


def test_an_answer_fetched_across_a_notification_is_not_kept():
    cache = live_cache()
    began = cache.begin()
    cache.notified("a@example.com")  # listed by another relay while our query was on its way
    cache.put("a@example.com", "@example.com", None, began)  # the answer from before that change
    assert cache.get("a@example.com") == (False, None)
    began = cache.begin()
    cache.put("a@example.com", "@example.com", entry("a@example.com"), began)
    assert cache.get("a@example.com")[0] is True


def test_a_domain_entry_changing_drops_every_answer():
    cache = live_cache()
    for a in ("a@example.com", "b@example.com"):
        cache.put(a, "@example.com", None, cache.begin())
    began = cache.begin()
    cache.notified("@example.com")
    assert cache.get("a@example.com") == (False, None) and cache.get("b@example.com") == (False, None)
    cache.put("c@example.com", "@example.com", None, began)  # fetched before the domain changed
    assert cache.get("c@example.com") == (False, None)


def test_nothing_is_answered_or_kept_without_a_live_listener():
    cache = LookupCache(size=3)
    cache.put("a@example.com", "@example.com", None, cache.begin())
    assert cache.get("a@example.com") == (False, None)
    cache = live_cache()
    cache.put("a@example.com", "@example.com", None, cache.begin())
    cache.down()
    assert cache.get("a@example.com") == (False, None)


def test_least_recently_used_go_first_and_expiry_is_by_the_databases_clock():
    cache = live_cache()
    for a in ("a@x.test", "b@x.test", "c@x.test"):
        cache.put(a, "@x.test", None, cache.begin())
    cache.get("a@x.test")
    cache.put("d@x.test", "@x.test", None, cache.begin())
    assert cache.get("b@x.test")[0] is False and cache.get("a@x.test")[0] is True
    soon = datetime.now(timezone.utc) + timedelta(minutes=30)
    cache.put("e@x.test", "@x.test", entry("e@x.test", expires_at=soon), cache.begin())
    assert cache.get("e@x.test")[1] is not None
    cache.offset = 3600.0  # the database's clock is an hour ahead of ours: it expired there
    # A miss (ask the database), not "not listed": the domain's entry may answer now (review32 #3).
    assert cache.get("e@x.test") == (False, None)
    assert "e@x.test" not in cache._entries


# -- against PostgreSQL ------------------------------------------------------------------------------

def sql(statement: str, *args) -> None:
    with psycopg.connect(pg._conninfo(), autocommit=True) as conn:
        conn.execute(statement, args)


async def until(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.02)


async def cached(store) -> None:
    await store.get("warm@example.com")
    assert await until(lambda: asyncio.sleep(0, store.cache.usable()))


async def test_changes_made_with_plain_sql_reach_the_cache(pg_url):
    url, schema = pg_url
    store = open_store(url)
    try:
        await cached(store)
        assert await store.get("a@example.com") is None
        hits = store.cache.hits
        assert await store.get("a@example.com") is None and store.cache.hits == hits + 1  # answered here
        table = f'"{schema}".relay_bounces'
        sql(f"INSERT INTO {table} (address, category, first_seen, last_seen, source) "
            "VALUES ('a@example.com', 'operator', now(), now(), 'operator')")
        assert await until(lambda: store.get("a@example.com"))
        sql(f"UPDATE {table} SET note = 'changed' WHERE address = 'a@example.com'")
        assert await until(lambda: _note(store, "a@example.com", "changed"))
        sql(f"DELETE FROM {table} WHERE address = 'a@example.com'")
        assert await until(lambda: _gone(store, "a@example.com"))
        await store.add("b@example.com")
        assert (await store.get("b@example.com")) is not None
        sql(f"TRUNCATE {table}")
        assert await until(lambda: _gone(store, "b@example.com"))
    finally:
        await store.close()


async def _note(store, address, note) -> bool:
    got = await store.get(address)
    return got is not None and got.note == note


async def _gone(store, address) -> bool:
    return await store.get(address) is None


async def test_a_killed_listener_turns_the_cache_off_and_clears_it(pg_url):
    url, schema = pg_url
    store = open_store(url)
    try:
        await cached(store)
        assert await store.get("a@example.com") is None  # cached: not listed
        # Every connection of this store dies (the pool's and the listener's), and meanwhile the
        # address is listed: a notification nobody was listening for.
        pg.terminate(schema)
        sql(f"INSERT INTO \"{schema}\".relay_bounces (address, category, first_seen, last_seen, source) "
            "VALUES ('a@example.com', 'operator', now(), now(), 'operator')")
        assert await until(lambda: store.get("a@example.com"))
        assert await until(lambda: asyncio.sleep(0, store.cache.usable()))  # and it comes back
    finally:
        await store.close()


async def test_the_cache_is_configured_in_the_url(pg_url):
    url, _ = pg_url
    store = open_store(url + "&cache=0")
    try:
        assert store.cache is None and await store.get("a@example.com") is None
    finally:
        await store.close()
    with pytest.raises(StoreError, match="cache must be a whole number"):
        open_store(url + "&cache=lots")


async def test_a_relay_sees_its_own_changes_at_once(pg_url):
    # Its own notification comes back from the database a moment later; the next lookup must not wait
    # for it (a relay that just listed an address refuses it at the next RCPT).
    url, _ = pg_url
    store = open_store(url)
    try:
        await cached(store)
        for n in range(50):
            address = f"own{n}@example.com"
            assert await store.get(address) is None  # cached: not listed
            await store.add(address)
            assert await store.get(address) is not None, n
            await store.remove(address)
            assert await store.get(address) is None, n
    finally:
        await store.close()


def test_an_address_whose_own_entry_expired_is_refused_by_its_domains_entry(upstream, relay_factory, pg_url):
    """review32 #3: a relay that had the address's own entry cached (an auto listing with
    `expire_after` under an operator's `@domain` entry) answered 250 once it expired, and sent the
    recipient upstream: the cache took the expired answer for "not listed", but the database then
    answers with the domain's entry, and expiry sends no notification. A fresh relay on the same
    database refused it all along."""
    from tests.support.smtp_client import RawSMTP

    url, schema = pg_url

    relay = relay_factory(upstream.port, bounce_list=url)
    store = relay.server.resources.store
    cache = store.cache

    def rcpt() -> tuple[int, str]:
        with RawSMTP(relay.host, relay.port) as c:
            c.cmd("EHLO client.test")
            assert c.cmd("MAIL FROM:<a@example.com>")[0] == 250
            reply = c.cmd("RCPT TO:<bob@gone.example>")
            c.cmd("QUIT")
            return reply

    deadline = time.monotonic() + 10
    while not cache.usable() and time.monotonic() < deadline:  # the listener proven alive: answers are kept
        time.sleep(0.05)
    relay.call(store.add("@gone.example", note="operator: the domain is gone"))
    relay.call(store.add("bob@gone.example", category="routing_dns", note="auto",
                         expires_at=datetime.now(timezone.utc) + timedelta(seconds=4)))
    first = rcpt()
    assert first[0] == 550 and "<bob@gone.example> is on this relay's bounce list" in first[1], first
    hits = cache.hits
    assert rcpt()[0] == 550 and cache.hits == hits + 1  # the own entry, answered from the cache
    # Wait (no assertion on time) until the database's clock is past the own entry's expiry.
    with psycopg.connect(pg._conninfo(), autocommit=True) as conn:
        while conn.execute(f'SELECT count(*) FROM "{schema}".relay_bounces WHERE address = %s '
                           "AND expires_at > now()", ("bob@gone.example",)).fetchone()[0]:
            time.sleep(0.1)
    code, text = rcpt()
    assert code == 550 and "the domain gone.example" in text, text
    assert not [c for c in upstream.commands if c.startswith("RCPT")]
    fresh = relay_factory(upstream.port, bounce_list=url)  # no cache: what the database says
    with RawSMTP(fresh.host, fresh.port) as c:
        c.cmd("EHLO client.test")
        c.cmd("MAIL FROM:<a@example.com>")
        assert c.cmd("RCPT TO:<bob@gone.example>") == (code, text)
