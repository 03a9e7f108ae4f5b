"""Events in PostgreSQL (relay/events_postgresql.py) and `relay events tail` reading them: a real
PostgreSQL schema a test, a real relay on loopback, connections killed on the server's side."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from relay import events
from relay.events_postgresql import PostgresEventSink
from tests.support import pg
from tests.support.smtp_client import RawSMTP
from tests.support.upstream import closed_port

ROOT = Path(__file__).resolve().parent.parent


def rows(schema: str, sql: str = "SELECT event_id, kind, recipient, event FROM {t} ORDER BY id") -> list:
    with psycopg.connect(pg._conninfo()) as conn:
        try:
            return conn.execute(sql.format(t=f'"{schema}".relay_events')).fetchall()
        except psycopg.errors.UndefinedTable:
            return []  # the sink has not connected yet


def wait_for(check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def emit(sinks: events.EventSinks, n: int, start: int = 0) -> list[str]:
    ids = []
    for i in range(start, start + n):
        event = events.make_event("rejected", "rcpt", recipient=f"u{i}@example.com", sender="s@sender.test")
        sinks.emit(event)
        ids.append(event["event_id"])
    return ids


def test_a_refusal_is_a_row_queryable_with_sql(pg_url, upstream, relay_factory, tmp_path):
    url, schema = pg_url
    relay = relay_factory(upstream.port, events=[{"jsonl": str(tmp_path / "e.jsonl")}, {"postgresql": url}])
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO c.test")
        c.cmd("MAIL FROM:<s@sender.test>")
        assert c.cmd("RCPT TO:<nosuchuser@gmail.test>")[0] == 550
        c.cmd("QUIT")
    found = wait_for(lambda: rows(schema, "SELECT kind, recipient, event->'classification'->>'category', "
                                          "event->'reply'->>'code', event_id FROM {t} WHERE kind = 'rejected'"))
    assert found and found[0][:4] == ("rejected", "nosuchuser@gmail.test", "unknown_recipient", "550")
    # The same event as the file's, field for field.
    in_file = [e for e in relay.events(wait_for=1) if e["kind"] == "rejected"][0]
    assert found[0][4] == in_file["event_id"]
    stored = rows(schema, "SELECT event FROM {t} WHERE kind = 'rejected'")[0][0]
    assert stored == json.loads(json.dumps(in_file))


def test_no_event_is_lost_when_the_connections_are_killed(pg_url):
    url, schema = pg_url
    sink = PostgresEventSink(url)
    sinks = events.EventSinks([sink])
    ids = emit(sinks, 50)
    assert wait_for(lambda: len(rows(schema)) == 50)
    killed = 0
    for round_ in range(5):  # what a restart of PostgreSQL does to the relay's connection, five times
        killed += pg.terminate(schema)
        ids += emit(sinks, 200, start=50 + 200 * round_)
    sinks.close()
    assert killed >= 1 and sink.retries >= 1
    stored = [r[0] for r in rows(schema)]
    assert sorted(stored) == sorted(ids)  # every event once: none lost, none twice
    assert sinks.failures == {}


def test_a_hung_database_holds_events_back_without_holding_the_relay(pg_url):
    url, schema = pg_url
    sink = PostgresEventSink(url)
    sinks = events.EventSinks([sink])
    emit(sinks, 1)
    assert wait_for(lambda: len(rows(schema)) == 1)
    with psycopg.connect(pg._conninfo()) as holder:
        holder.execute(f'LOCK TABLE "{schema}".relay_events IN ACCESS EXCLUSIVE MODE')
        ids = emit(sinks, 100, start=1)  # returns at once: write() only queues
        assert sink.pending() > 0
        wait_for(lambda: sink.retries > 0)  # the insert gave up at its deadline and waits to retry
        holder.rollback()
    assert wait_for(lambda: len(rows(schema)) == 101)
    sinks.close()
    assert set(ids) <= {r[0] for r in rows(schema)}


def test_a_nul_from_a_remote_server_is_stored_as_a_replacement_character(pg_url):
    url, schema = pg_url
    sink = PostgresEventSink(url)
    sinks = events.EventSinks([sink])
    sinks.emit(events.make_event("rejected", "rcpt", recipient="a@example.com",
                                 reply={"code": 550, "enhanced": "5.1.1", "text": "550 no\x00such user",
                                        "source": "upstream"}))
    sinks.close()
    assert rows(schema, "SELECT event->'reply'->>'text' FROM {t}") == [("550 no\ufffdsuch user",)]


def following(schema: str) -> bool:
    """Whether `relay events tail -f` on `schema` is in its polling loop: its connection's latest
    query is since()'s (what pg_stat_activity shows of a backend is its current or last query)."""
    with psycopg.connect(pg._conninfo()) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                            "AND strpos(query, %s) > 0 AND strpos(query, 'stored_at > now()') > 0",
                            (f'"{schema}"',)).fetchone()[0] > 0


def relay_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "relay", *args], capture_output=True, text=True, timeout=60,
                          env=env, cwd=ROOT, **kw)


def test_events_tail_reads_and_follows_the_table(pg_url, tmp_path):
    url, schema = pg_url
    cfg = tmp_path / "relay.yaml"
    cfg.write_text(f"hostname: relay.test\nbounce_list: 'sqlite:///{tmp_path}/b.db'\n"
                   f"events: [{{postgresql: '{url}'}}]\n")
    sinks = events.EventSinks([PostgresEventSink(url)])
    emit(sinks, 30)
    sinks.emit(events.make_event("bounce_listed", "operator", recipient="Listed@Example.com"))
    sinks.close()
    out = relay_cli("events", "tail", "-c", str(cfg), "-n", "5", "--json")
    assert out.returncode == 0, out.stderr
    shown = [json.loads(line) for line in out.stdout.splitlines()]
    assert [e["recipient"] for e in shown] == ["u26@example.com", "u27@example.com", "u28@example.com",
                                               "u29@example.com", "Listed@Example.com"]
    only = relay_cli("events", "tail", "-c", str(cfg), "--kind", "bounce_listed", "--recipient", "listed@example.com")
    assert only.returncode == 0 and len(only.stdout.splitlines()) == 1 and "bounce_listed" in only.stdout
    # -f: what is stored after it started is shown, once each.
    follower = subprocess.Popen([sys.executable, "-m", "relay", "events", "tail", "-f", "-n", "0", "--json",
                                 "-c", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    try:
        # -n 0 shows only events stored after its first look at the table: emit once it is polling.
        assert wait_for(lambda: following(schema) or follower.poll() is not None, timeout=60)
        assert follower.poll() is None, follower.stderr.read()
        sinks = events.EventSinks([PostgresEventSink(url)])
        ids = emit(sinks, 3, start=100)
        sinks.close()
        got = [json.loads(follower.stdout.readline())["event_id"] for _ in ids]
        assert got == ids
    finally:
        follower.kill()
        follower.wait()


def test_check_config_refuses_an_events_url_that_is_not_postgresql(tmp_path):
    cfg = tmp_path / "relay.yaml"
    cfg.write_text("hostname: relay.test\nevents: [{postgresql: 'mysql://db/relay'}]\n")
    out = relay_cli("check-config", "-c", str(cfg))
    assert out.returncode == 1 and "events[0].postgresql" in out.stdout and "not a postgresql:// URL" in out.stdout
    cfg.write_text("hostname: relay.test\nevents: [{postgresql: 'postgresql://db/relay?schema=Bad-Name'}]\n")
    out = relay_cli("check-config", "-c", str(cfg))
    assert out.returncode == 1 and "events[0].postgresql" in out.stdout and "schema must be" in out.stdout


def test_a_full_queue_drops_in_the_relay_and_waits_in_an_operator_command(pg_url):
    url, schema = pg_url
    relay_sink = PostgresEventSink(url, max_queue=5)
    relay_sinks = events.EventSinks([relay_sink])
    emit(relay_sinks, 1)
    assert wait_for(lambda: len(rows(schema)) == 1)
    with psycopg.connect(pg._conninfo()) as holder:
        holder.execute(f'LOCK TABLE "{schema}".relay_events IN ACCESS EXCLUSIVE MODE')
        emit(relay_sinks, 20, start=1)  # the relay: never waits, the overflow is counted
        assert relay_sinks.failures.get(relay_sink.name, 0) >= 10
        holder.rollback()
    relay_sinks.close()
    command_sink = PostgresEventSink(url, max_queue=5)
    command_sink.wait_when_full = True  # as EventSinks.for_command sets it
    command_sinks = events.EventSinks([command_sink])
    ids = emit(command_sinks, 200, start=100)
    command_sinks.close()
    assert command_sinks.failures == {} and set(ids) <= {r[0] for r in rows(schema)}


# --- a spool on disk (spool_dir) -------------------------------------------------------------------

def test_with_a_spool_events_of_a_relay_stopped_while_the_database_is_away_are_stored_at_the_next_start(
        pg_url, tmp_path):
    url, schema = pg_url
    away = url.replace(f":{pg.PORT}/", f":{closed_port()}/")  # the database is down: nothing listens
    spool = tmp_path / "events-spool"
    first = PostgresEventSink(away, spool_dir=spool, flush_seconds=0.5)
    sinks = events.EventSinks([first])
    ids = emit(sinks, 40)
    sinks.close()  # the stop: the events are on the disk, not in the table
    assert rows(schema) == [] and first.retries >= 1
    assert sum(1 for f in spool.glob("*.jsonl") for _ in f.open("rb")) == 40
    # The next start, with the database back: the spooled events arrive, then the new ones, each once.
    second = PostgresEventSink(url, spool_dir=spool)
    sinks = events.EventSinks([second])
    ids += emit(sinks, 5, start=40)
    assert wait_for(lambda: len(rows(schema)) == 45)
    sinks.close()
    assert [r[0] for r in rows(schema)] == ids  # in order, none lost, none twice
    assert sinks.failures == {}


def test_a_spool_shared_by_two_workers_stores_each_event_once(pg_url, tmp_path):
    url, schema = pg_url
    spool = tmp_path / "events-spool"
    workers = [PostgresEventSink(url, spool_dir=spool), PostgresEventSink(url, spool_dir=spool)]
    sinks = [events.EventSinks([w]) for w in workers]
    ids = emit(sinks[0], 30) + emit(sinks[1], 30, start=30)
    # Generous: under a loaded machine a connect or insert past its 5 s deadline is retried after a
    # back-off (0.25 s doubling); the test is about who inserts, not how fast (it timed out once at 20 s).
    assert wait_for(lambda: len(rows(schema)) == 60, timeout=60)
    assert sum(w.spool.sending for w in workers) == 1  # one process inserts; the other only appends
    for s in sinks:
        s.close()
    assert sorted(r[0] for r in rows(schema)) == sorted(ids)


def test_check_config_takes_a_spool_for_the_events_table_and_refuses_unknown_keys(tmp_path):
    cfg = tmp_path / "relay.yaml"
    url = "postgresql://relay@127.0.0.1/relay"
    cfg.write_text(f"hostname: relay.test\nevents: [{{postgresql: '{url}', spool_dir: spool, spool_max_size: 64MiB}}]\n")
    out = relay_cli("check-config", "-c", str(cfg))
    assert "events[0]" not in out.stdout, out.stdout
    cfg.write_text(f"hostname: relay.test\nevents: [{{postgresql: '{url}', spool: spool}}]\n")
    out = relay_cli("check-config", "-c", str(cfg))
    assert out.returncode == 1 and "events[0].spool" in out.stdout and "Traceback" not in out.stderr
    cfg.write_text(f"hostname: relay.test\nevents: [{{postgresql: '{url}', spool_dir: s}}, "
                   f"{{webhook: 'http://127.0.0.1:9/h', spool_dir: s}}]\n")
    out = relay_cli("check-config", "-c", str(cfg))
    assert out.returncode == 1 and "events[1].spool_dir" in out.stdout and "spool of another" in out.stdout


# --- review28 F2: a cursor that cannot be read, a writer thread that fails ----------------------------

def _refuse(relay, rcpt: str) -> None:
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO c.test")
        c.cmd("MAIL FROM:<s@sender.test>")
        assert c.cmd(f"RCPT TO:<{rcpt}>")[0] == 421  # deferred: one event, no listing


def test_a_zero_length_spool_cursor_does_not_stop_the_events_table(pg_url, upstream, relay_factory, tmp_path):
    # The cursor was renamed into place without an fsync: after a power failure it may be empty. The
    # sink's thread died on it (an exception outside its retry loop), and no row was stored again.
    url, schema = pg_url
    sinks = [{"jsonl": str(tmp_path / "e.jsonl")}, {"postgresql": url, "spool_dir": str(tmp_path / "pgspool")}]
    relay = relay_factory(upstream.port, events=sinks)
    _refuse(relay, "ratelimit@gmail.test")
    assert wait_for(lambda: len(rows(schema)) == 1)
    relay.stop()
    (tmp_path / "pgspool" / "cursor.json").write_bytes(b"")

    relay = relay_factory(upstream.port, events=sinks)
    _refuse(relay, "ratelimit@gmail.test")
    written = [e["event_id"] for e in relay.events(wait_for=2)]  # both runs' events
    assert len(written) == 2
    # Every event, each once (the spool went again from its start: the table dedupes on event_id).
    assert wait_for(lambda: sorted(r[0] for r in rows(schema)) == sorted(written))
    assert (tmp_path / "pgspool" / "cursor.json.bad").exists()
    assert "relay_event_spool_cursor_resets_total" in relay.server.metrics.render()


def test_a_writer_thread_that_fails_is_counted_and_started_again(pg_url, tmp_path, monkeypatch, caplog):
    import logging

    from relay import events_postgresql

    url, schema = pg_url
    monkeypatch.setattr(events_postgresql, "RESTART_AFTER", 0.05, raising=False)
    real_take, failed = events_postgresql._SpooledQueue.take, []

    def take(self, n):
        if not failed:
            failed.append(1)
            raise RuntimeError("an unforeseen failure")
        return real_take(self, n)

    monkeypatch.setattr(events_postgresql._SpooledQueue, "take", take)
    before = events.thread_restarts() if hasattr(events, "thread_restarts") else 0
    caplog.set_level(logging.ERROR, "relay.events")
    sink = PostgresEventSink(url, spool_dir=tmp_path / "spool")
    sinks = events.EventSinks([sink])
    ids = emit(sinks, 3)
    assert wait_for(lambda: [r[0] for r in rows(schema)] == ids)
    sinks.close()
    assert failed and events.thread_restarts() == before + 1
    assert "its writer failed; it starts again" in caplog.text
