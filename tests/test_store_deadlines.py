"""A hung PostgreSQL bounce list under a running relay: RCPT is 451 4.3.0 within a deadline, never a
pass and never a stuck session (real PostgreSQL, a real second session holding a lock)."""

from __future__ import annotations


import psycopg
import pytest

from tests.support import pg
from tests.support.smtp_client import RawSMTP


@pytest.fixture
def pg_list(pg_url):
    pg.add_to_list(pg_url[0], "listed@example.com", "other@example.com")
    return pg_url


def test_a_hung_database_is_a_451_at_rcpt(pg_list, upstream, relay_factory):
    url, schema = pg_list
    relay = relay_factory(upstream.port, bounce_list=url)
    with RawSMTP(relay.host, relay.port) as c:  # the pool is open and the list answers
        c.cmd("EHLO c.test")
        c.cmd("MAIL FROM:<s@sender.test>")
        assert c.cmd("RCPT TO:<listed@example.com>")[0] == 550
    # Another session takes the table and does not let go: every lookup would wait for ever.
    with psycopg.connect(pg._conninfo(), autocommit=False) as holder:
        holder.execute(f'LOCK TABLE "{schema}"."relay_bounces" IN ACCESS EXCLUSIVE MODE')
        with RawSMTP(relay.host, relay.port, timeout=20) as c, RawSMTP(relay.host, relay.port, timeout=5) as other:
            c.cmd("EHLO c.test")
            other.cmd("EHLO other.test")
            c.cmd("MAIL FROM:<s@sender.test>")
            # Not looked up before: not in the relay's lookup cache (which the lock does not make stale:
            # a change to the list would have to get through the lock too, and be notified).
            c.send("RCPT TO:<other@example.com>\r\n")
            assert other.cmd("NOOP")[0] == 250
            code, text = c.reply()
            assert code == 451 and text.startswith("451 4.3.0")
        holder.rollback()
    assert "RCPT listed@example.com" not in upstream.commands and "RCPT other@example.com" not in upstream.commands
