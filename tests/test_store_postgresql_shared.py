"""Two relays on one PostgreSQL behave as one: real RelayServers on loopback, one real PostgreSQL
schema, the real CLI; the database restarted (a proxy that stops and starts: the shared server is
never stopped), its connections killed (pg_terminate_backend), or hung (a proxy that stops
forwarding)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import yaml

from relay.store import open_store
from tests.support import pg
from tests.support.smtp_client import RawSMTP
from tests.support.tcp_proxy import TcpProxy

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def proxy():
    p = TcpProxy(pg.HOST, pg.PORT)
    yield p
    p.close()


def two_relays(relay_factory, upstream, tmp_path: Path, url: str):
    relays = []
    for name in ("a", "b"):
        relays.append(relay_factory(upstream.port, bounce_list=url,
                                    events=[{"jsonl": str(tmp_path / f"{name}.jsonl")}, {"postgresql": url}]))
    return relays


def rcpt(relay, address: str) -> tuple[int, str]:
    with RawSMTP(relay.host, relay.port, timeout=30) as c:
        c.cmd("EHLO c.test")
        c.cmd("MAIL FROM:<s@sender.test>")
        reply = c.cmd(f"RCPT TO:<{address}>")
        c.cmd("QUIT")
    return reply


def until_code(relay, address: str, code: int, timeout: float = 10.0) -> int:
    """The RCPT reply's code once it is `code`, or the last one after `timeout` (no timing assertion:
    a change that never arrives fails; how soon it arrives is measured in bench/)."""
    deadline = time.monotonic() + timeout
    while True:
        got = rcpt(relay, address)[0]
        if got == code or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def listed(url: str, address: str):
    async def get():
        store = open_store(url)
        try:
            return await store.get(address)
        finally:
            await store.close()
    return asyncio.run(get())


def wait_for(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def stored_events(schema: str) -> list[dict]:
    with psycopg.connect(pg._conninfo()) as conn:
        try:
            return [r[0] for r in conn.execute(f'SELECT event FROM "{schema}".relay_events ORDER BY id')]
        except psycopg.errors.UndefinedTable:
            return []


def cli(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    cfg = tmp_path / "cli.yaml"
    cfg.write_text(yaml.safe_dump({"hostname": "relay.test", "bounce_list": url,
                                   "events": [{"jsonl": str(tmp_path / "cli.jsonl")}]}))
    return subprocess.run([sys.executable, "-m", "relay", *args, "-c", str(cfg)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)


def test_a_hard_bounce_at_one_relay_is_refused_by_the_other(pg_url, upstream, relay_factory, tmp_path):
    url, schema = pg_url
    a, b = two_relays(relay_factory, upstream, tmp_path, url)
    code, text = rcpt(a, "nosuchuser@gmail.test")
    assert code == 550 and "5.1.1" in text  # the upstream's own refusal, relayed by a
    assert wait_for(lambda: listed(url, "nosuchuser@gmail.test"))
    asked = upstream.commands.count("RCPT nosuchuser@gmail.test")
    code, text = rcpt(b, "NoSuchUser@gmail.test")
    assert code == 550 and "is on this relay's bounce list" in text
    assert asked == 1 and upstream.commands.count("RCPT nosuchuser@gmail.test") == 1  # b never asked upstream
    kinds = lambda: {(e["kind"], e["recipient"].lower()) for e in stored_events(schema)}  # noqa: E731
    assert wait_for(lambda: {("rejected", "nosuchuser@gmail.test"), ("bounce_listed", "nosuchuser@gmail.test"),
                             ("suppressed", "nosuchuser@gmail.test")} <= kinds())


def test_an_operators_add_and_removal_reach_both_relays_at_their_next_rcpt(pg_url, upstream, relay_factory,
                                                                          tmp_path):
    url, _ = pg_url
    a, b = two_relays(relay_factory, upstream, tmp_path, url)
    assert [rcpt(r, "fixed@example.com")[0] for r in (a, b)] == [250, 250]
    # Both relays have the answer "not listed" in their lookup caches now: the database's
    # notification of each change is what takes it out (the time it takes: bench/bench_pg_lookup.py).
    out = cli(tmp_path, url, "bounces", "add", "fixed@example.com", "--reason", "complaint")
    assert out.returncode == 0, out.stderr
    assert [until_code(r, "fixed@example.com", 550) for r in (a, b)] == [550, 550]
    out = cli(tmp_path, url, "bounces", "remove", "fixed@example.com", "--reason", "mailbox restored")
    assert out.returncode == 0, out.stderr
    assert [until_code(r, "fixed@example.com", 250) for r in (b, a)] == [250, 250]


def test_killed_connections_let_no_listed_address_through_and_lose_no_event(pg_url, upstream, relay_factory,
                                                                           tmp_path):
    url, schema = pg_url
    a, b = two_relays(relay_factory, upstream, tmp_path, url)
    assert cli(tmp_path, url, "bounces", "add", "listed@example.com", "--reason", "test").returncode == 0
    seen = []
    for round_ in range(4):
        assert pg.terminate(schema) >= 1  # both relays' pools and event sinks
        for relay in (a, b):
            code, text = rcpt(relay, "listed@example.com")
            assert code in (550, 451), text  # refused, or deferred while the list is unreadable: never a pass
            address = f"nosuchuser@r{round_}p{relay.port}.test"
            code, _ = rcpt(relay, address)
            assert code == 550
            seen.append(address)
    assert "RCPT listed@example.com" not in upstream.commands
    # Every refusal the clients saw is an event in the database and in each relay's file, and listed.
    assert wait_for(lambda: {e["recipient"] for e in stored_events(schema) if e["kind"] == "rejected"} >= set(seen))
    for relay in (a, b):
        relay.server.sinks.flush(5)  # the jsonl sink's thread may lag behind the database's
    files = [json.loads(line) for name in "ab" for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
    assert {e["recipient"] for e in files if e["kind"] == "rejected"} >= set(seen)
    for address in seen:
        assert wait_for(lambda: listed(url, address)), address


def test_a_database_stopped_and_started_loses_nothing(pg_url, proxy, upstream, relay_factory, tmp_path):
    url, schema = pg_url
    assert cli(tmp_path, url, "bounces", "add", "listed@example.com", "--reason", "test").returncode == 0
    via_proxy = url.replace(f":{pg.PORT}/", f":{proxy.port}/")
    a, b = two_relays(relay_factory, upstream, tmp_path, via_proxy)
    assert [rcpt(r, "listed@example.com")[0] for r in (a, b)] == [550, 550]
    proxy.stop()  # the database goes away: connections reset, new ones refused
    deferred = []
    for relay in (a, b):
        for address in ("listed@example.com", f"new{relay.port}@example.com"):
            code, text = rcpt(relay, address)
            # The list cannot be read: every recipient is deferred (the client retries), none passes.
            assert code == 451 and text.startswith("451 4.3.0"), text
            deferred.append(address)
    proxy.start()  # back
    assert [rcpt(r, "listed@example.com")[0] for r in (a, b)] == [550, 550]
    assert [rcpt(r, "nosuchuser@back.test")[0] for r in (a, b)] == [550, 550]  # listed by a, refused by b
    assert listed(url, "nosuchuser@back.test")
    # Every refusal the clients saw, during the outage too, is an event in the database.
    def kinds():
        return [(e["kind"], e["recipient"]) for e in stored_events(schema)]
    assert wait_for(lambda: len([k for k in kinds() if k[0] == "deferred"]) >= len(deferred))
    assert sorted(r for k, r in kinds() if k == "deferred") == sorted(deferred)
    assert wait_for(lambda: kinds().count(("suppressed", "listed@example.com")) == 4)
    assert upstream.commands.count("RCPT nosuchuser@back.test") == 1
    assert "RCPT listed@example.com" not in upstream.commands


def test_a_hung_database_is_a_451_within_the_deadline(pg_url, proxy, upstream, relay_factory, tmp_path):
    url, _ = pg_url
    for address in ("listed@example.com", "other@example.com"):
        assert cli(tmp_path, url, "bounces", "add", address, "--reason", "test").returncode == 0
    relay = relay_factory(upstream.port, bounce_list=url.replace(f":{pg.PORT}/", f":{proxy.port}/"))
    assert rcpt(relay, "listed@example.com")[0] == 550  # now in the relay's lookup cache
    proxy.pause()  # every byte held: the path to the database is dead, nothing is closed
    try:
        with RawSMTP(relay.host, relay.port, timeout=20) as c, RawSMTP(relay.host, relay.port, timeout=5) as other:
            c.cmd("EHLO c.test")
            other.cmd("EHLO other.test")
            c.cmd("MAIL FROM:<s@sender.test>")
            c.send("RCPT TO:<other@example.com>\r\n")  # not cached: the database is asked
            assert other.cmd("NOOP")[0] == 250  # the loop is not stuck
            code, text = c.reply()
            assert code == 451 and text.startswith("451 4.3.0"), text
            # The cache cannot be shown fresh (its listener has had no answer for longer than FRESH
            # by now): the cached address is not answered from it either.
            code, text = c.cmd("RCPT TO:<listed@example.com>")
            assert code == 451 and text.startswith("451 4.3.0"), text
    finally:
        proxy.resume()
    assert "RCPT listed@example.com" not in upstream.commands and "RCPT other@example.com" not in upstream.commands


async def test_a_failure_while_the_database_is_away_is_store_busy_so_it_is_recorded_later(pg_url, proxy):
    # StoreBusy is what relay/outcomes.py records again in the background (a refusal seen while the
    # database restarts still lists the address once it is back); any other error would be dropped.
    from relay.store import StoreBusy
    from relay.suppression import SuppressionPolicy

    url, _ = pg_url
    policy = SuppressionPolicy.from_dict({"permanent": {"unknown_recipient": {"list_after": 1}}})
    store = open_store(url.replace(f":{pg.PORT}/", f":{proxy.port}/"))
    try:
        await store.add("warm@example.com")  # the pool is open
        proxy.stop()
        for _ in range(2):  # the pool's connection is dead; then no new one can be made
            with pytest.raises(StoreBusy, match="unreachable|cannot connect"):
                await store.record_failure("gone@example.com", category="unknown_recipient", permanent=True,
                                           reply_text="550 5.1.1 no such user", rule="r", policy=policy)
        proxy.start()
        entry = await store.record_failure("gone@example.com", category="unknown_recipient", permanent=True,
                                           reply_text="550 5.1.1 no such user", rule="r", policy=policy)
        assert entry.listed_now
    finally:
        await store.close()


async def test_relays_whose_clocks_disagree_time_listings_by_the_database(pg_url, monkeypatch):
    from types import SimpleNamespace

    from relay.store import base
    from relay.suppression import SuppressionPolicy

    url, _ = pg_url
    policy = SuppressionPolicy.from_dict({"permanent": {"mailbox_disabled": {"list_after": 1, "expire_after": "1h"}}})
    real = time.time
    # This process plays a relay whose clock is two hours fast (no NTP): its own time would list the
    # address until three hours from now, and a relay with the right time would see it listed too long.
    monkeypatch.setattr(base, "time", SimpleNamespace(time=lambda: real() + 7200))
    store = open_store(url)
    try:
        entry = await store.record_failure("off@example.com", category="mailbox_disabled", permanent=True,
                                           reply_text="550 5.2.1 disabled", rule="r", policy=policy)
        added = await store.add("op@example.com", note="operator")
    finally:
        await store.close()
    with psycopg.connect(pg._conninfo()) as conn:
        db_now = float(conn.execute("SELECT extract(epoch FROM now())").fetchone()[0])
    assert abs(entry.first_seen.timestamp() - db_now) < 300 and abs(added.last_seen.timestamp() - db_now) < 300
    assert abs(entry.expires_at.timestamp() - (db_now + 3600)) < 300


async def test_a_lookup_right_after_every_pooled_connection_was_killed_answers(pg_url):
    # pg_terminate_backend (a failover, an administrator) kills every idle connection of the pool at
    # once; the relay may take one from the pool before its loop has seen the socket close. The
    # lookup must not then fail on one dead connection after another: it answers from a new one.
    url, schema = pg_url
    store = open_store(url)
    try:
        await store.add("listed@example.com")
        pool = await store._get_pool()
        for round_ in range(3):
            held = [await pool.acquire() for _ in range(4)]  # four pooled connections, all idle after
            for conn in held:
                await pool.release(conn)
            assert pg.terminate(schema) >= 4  # blocks the loop: no close is seen before the lookup
            assert (await store.get("listed@example.com")) is not None, round_
            assert await store.get(f"new{round_}@example.com") is None
    finally:
        await store.close()
