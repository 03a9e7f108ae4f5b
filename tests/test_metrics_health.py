"""/healthz and /readyz of a running relay, over a real socket (relay/metrics/health.py, http.py)."""

from __future__ import annotations

import asyncio
import socket
import time

import psycopg
import pytest

from relay.metrics import Metrics
from relay.metrics.health import Health, Sampler
from relay.store.sqlite import SQLiteBounceStore
from tests.support import pg
from tests.support.smtp_client import RawSMTP

METRICS = {"listen": "127.0.0.1:0", "ready_timeout": 0.5}


def wait_for_status(relay, path, status, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        got = relay.http(path)
        if got[0] == status or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def test_a_running_relay_is_live_and_ready(relay_factory, upstream):
    relay = relay_factory(upstream.port, metrics=METRICS)
    status, content_type, body = relay.http("/healthz")
    assert (status, body) == (200, "ok\n") and content_type.startswith("text/plain")
    status, _, body = relay.http("/readyz")
    assert status == 200 and body.startswith("ready\n") and "bounce list: ok" in body


def test_other_paths_and_methods(relay_factory, upstream):
    relay = relay_factory(upstream.port, metrics=METRICS)
    assert relay.http("/")[0] == 404
    host, port = relay.server.metrics_address
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert s.makefile("rb").readline().startswith(b"HTTP/1.1 405 ")
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        head = s.makefile("rb").read()
    assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n")  # headers, no body
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
        assert s.makefile("rb").readline().startswith(b"HTTP/1.1 400 ")
    assert relay.http("/healthz")[0] == 200  # none of that hurt the listener


def test_draining_is_not_ready_but_still_live(relay_factory, upstream):
    relay = relay_factory(upstream.port, metrics=METRICS)
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250  # a transaction in flight holds the drain
        stopping = relay.begin_stop()
        status, _, body = wait_for_status(relay, "/readyz", 503)
        assert status == 503 and "draining" in body
        assert relay.http("/healthz")[0] == 200
        metrics = relay.http("/metrics")[2]
        assert "\nrelay_draining 1.0\n" in metrics
        assert not stopping.done()
        assert c.cmd("RCPT TO:<b@example.com>")[0] == 250  # the transaction may finish
        c.cmd("DATA")
        c.send(b"Subject: x\r\n\r\nbody\r\n.\r\n")
        assert c.reply()[0] == 250
    stopping.result(60)
    assert len(upstream.wait_for_messages(1)) == 1


@pytest.fixture
def pg_list(pg_url):
    pg.add_to_list(pg_url[0], "listed@example.com")
    return pg_url


def test_a_bounce_list_that_does_not_answer_is_not_ready(pg_list, relay_factory, upstream):
    url, schema = pg_list
    relay = relay_factory(upstream.port, bounce_list=url, metrics=METRICS)
    assert relay.http("/readyz")[0] == 200
    # Another session takes the table and does not let go: every lookup waits.
    with psycopg.connect(pg._conninfo(), autocommit=False) as holder:
        holder.execute(f'LOCK TABLE "{schema}"."relay_bounces" IN ACCESS EXCLUSIVE MODE')
        status, _, body = relay.http("/readyz")
        assert status == 503 and "bounce list: no answer within 0.5 s" in body
        assert relay.http("/healthz")[0] == 200  # the process itself is fine: no restart wanted
        holder.rollback()
    assert wait_for_status(relay, "/readyz", 200)[0] == 200


def test_a_bounce_list_that_does_not_answer_is_not_ready_though_its_answers_are_cached(pg_list, relay_factory,
                                                                                      upstream):
    # The lookup cache (relay/store/pg_cache.py) is on while its listener's heartbeat answers, and
    # a locked table does not stop that heartbeat: a probe answered from the cache said "ready".
    url, schema = pg_list
    relay = relay_factory(upstream.port, bounce_list=url, metrics=METRICS)
    cache = relay.server.resources.store.cache
    deadline = time.monotonic() + 20
    while not cache.usable():
        assert time.monotonic() < deadline, "the lookup cache never came on"
        time.sleep(0.02)
    assert relay.http("/readyz")[0] == 200  # a probe the cache could answer next time
    with psycopg.connect(pg._conninfo(), autocommit=False) as holder:
        holder.execute(f'LOCK TABLE "{schema}"."relay_bounces" IN ACCESS EXCLUSIVE MODE')
        status, _, body = relay.http("/readyz")
        assert status == 503 and "bounce list: no answer within 0.5 s" in body
        holder.rollback()


def test_a_bounce_list_that_fails_is_not_ready(tmp_path, relay_factory, upstream):
    relay = relay_factory(upstream.port, metrics=METRICS)
    db = tmp_path / "bounces.db"
    db.unlink()
    db.mkdir()  # the list's path is now a directory: it cannot be opened again
    status, _, body = relay.http("/readyz")
    assert status == 503 and body.startswith("bounce list: ")


async def test_not_ready_until_the_listeners_are_bound():
    health = Health(Metrics(), None, 1.0)
    ok, lines = await health.ready()
    assert not ok and lines[0].startswith("starting")
    health.listening = True
    assert await health.ready() == (True, ["ready", "bounce list: none configured"])


class CountHeldBack(SQLiteBounceStore):
    """A real list whose count, once made, is handed back only when the test says."""

    def __init__(self, path):
        super().__init__(path)
        self.counted = asyncio.Event()
        self.answer = asyncio.Event()

    async def count(self) -> int:
        entries = await super().count()
        self.counted.set()
        await self.answer.wait()
        return entries


async def test_the_sampler_stops_when_its_count_is_answered_as_it_is_closed(tmp_path):
    # The relay stopped as the first count of the bounce list came back: Python 3.11's wait_for
    # returned the count and dropped the cancellation, the sampler slept on, and stop() hung.
    store = CountHeldBack(tmp_path / "bounces.db")
    sampler = Sampler(Metrics(), store, interval=3600.0)
    sampler.start()
    await store.counted.wait()
    store.answer.set()  # the count's answer and the cancellation arrive in the same turn of the loop
    try:
        async with asyncio.timeout(30):  # not a measure: the old code never returned
            await sampler.close()
    finally:
        await store.close()


def _exchange(host, port, data: bytes, timeout: float = 5.0) -> bytes:
    """Send `data`, then read until the listener closes (or `timeout` passes): the raw answer."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (socket.timeout, ConnectionResetError) as error:
            out += f"<{type(error).__name__}>".encode()
        return out


def test_hostile_requests_get_a_status_line(relay_factory, upstream, monkeypatch, caplog):
    import logging

    import relay.metrics.http as http

    caplog.set_level(logging.WARNING)
    monkeypatch.setattr(http, "REQUEST_TIMEOUT", 1.0)
    relay = relay_factory(upstream.port, metrics=METRICS)
    host, port = relay.server.metrics_address
    cases = [
        # a request line of 1 MiB: closed with the request unread, a reset instead of an answer
        (b"GET /" + b"a" * (1 << 20) + b" HTTP/1.1\r\n\r\n", b"HTTP/1.1 414 "),
        (b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n", b"HTTP/1.1 431 "),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"HTTP/1.1 408 "),  # the head never ends
        # a TLS ClientHello (no line end): 400 at once, not silence after the timeout
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)), b"HTTP/1.1 400 "),
        (b"GET /../../etc/passwd HTTP/1.1\r\n\r\n", b"HTTP/1.1 404 "),
        (b"GET /healthz HTTP/1.1\n\n", b"HTTP/1.1 200 "),  # bare LF line ends (RFC 9112 2.2)
    ]
    for request, expected in cases:
        answer = _exchange(host, port, request, timeout=0.9 if expected == b"HTTP/1.1 400 " else 5)
        assert answer.startswith(expected), (request[:40], answer[:200])
    for method in (b"OPTIONS *", b"POST /metrics", b"PUT /healthz"):
        answer = _exchange(host, port, method + b" HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
        assert answer.startswith(b"HTTP/1.1 405 ") and b"\r\nAllow: GET, HEAD\r\n" in answer, answer  # RFC 9110 15.5.6
    assert relay.http("/healthz")[0] == 200
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []


def test_a_scrape_whose_accept_names_an_unreadable_version_gets_the_text_format(relay_factory, upstream, caplog):
    # prometheus-client's choose_encoder() compares a version it could not read with a tuple: the
    # TypeError became a traceback in the log and the scraper got no answer at all (the connection
    # closed). An Accept a server cannot honour may be disregarded (RFC 9110 12.5.1): the text format.
    import logging

    caplog.set_level(logging.WARNING)
    relay = relay_factory(upstream.port, metrics=METRICS)
    for accept in ("application/openmetrics-text; version=abc", "text/plain; version=1.x",
                   "application/openmetrics-text; version=\xff"):
        status, content_type, body = relay.http("/metrics", accept=accept)
        assert status == 200 and content_type.startswith("text/plain; version=0.0.4"), (accept, status, content_type)
        assert body.startswith("# HELP "), body[:80]
    # a version it can read is still honoured
    assert relay.http("/metrics", accept="application/openmetrics-text; version=1.0.0")[1].startswith(
        "application/openmetrics-text")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []


def test_a_flood_of_idle_connections_gets_503_and_leaves_the_listener_working(relay_factory, upstream):
    # Each idle connection is an open file; unbounded, a flood took every descriptor the process has
    # (the SMTP listeners' too). 64 at once (relay/metrics/http.py MAX_CLIENTS).
    relay = relay_factory(upstream.port, metrics=METRICS)
    host, port = relay.server.metrics_address
    idle = [socket.create_connection((host, port), timeout=5) for _ in range(64)]
    try:
        time.sleep(0.2)
        answer = _exchange(host, port, b"GET /healthz HTTP/1.1\r\n\r\n", timeout=3)
        assert answer.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1" in answer, answer[:200]
    finally:
        for s in idle:
            s.close()
    assert wait_for_status(relay, "/healthz", 200)[0] == 200
