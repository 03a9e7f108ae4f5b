"""SIGTERM's drain (relay/server.py stop()) through a running relay: a transaction whose message and final
dot the upstream has is let finish (its reply may be an acceptance), every session still mid-transaction
when the drain ends is told 421 4.3.2 (RFC 5321 3.8) and its transaction written as a `deferred` event.

review25 F1: a client whose final dot was out to a slow upstream was cut off at the drain's end with no
reply, no event and nothing logged, though the upstream had the whole message."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.support.peers import free_port
from tests.support.processes import children, wait_until
from tests.support.relay_proc import RunningRelay, write_config
from tests.support.scripted_upstream import ScriptedUpstream
from tests.support.smtp_client import RawSMTP

REPO = Path(__file__).resolve().parent.parent
BODY = b"From: a@sender.test\r\nTo: b@example.com\r\nSubject: hi\r\nMessage-ID: <drain@sender.test>\r\n\r\nHi.\r\n"
UNKNOWN = "unknown: the upstream had the whole message"


@pytest.fixture
def gated():
    """A scripted upstream whose reply to the final dot (250) waits for `upstream.gate`."""
    up = ScriptedUpstream().start()
    up.gate = threading.Event()
    up.reset(dot_gate=up.gate)
    try:
        yield up
    finally:
        up.gate.set()
        up.stop()


def _dot_reached(up: ScriptedUpstream, count: int = 1) -> bool:
    return sum(1 for seen in up.received if bytes(seen).endswith(b"\r\n.\r\n")) >= count


def _message_sent(c: RawSMTP, rcpt: str) -> None:
    """MAIL, RCPT, DATA and the message with its final dot; the reply to the dot is not read."""
    assert c.cmd("EHLO c.test")[0] == 250
    assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
    assert c.cmd(f"RCPT TO:<{rcpt}>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(BODY + b".\r\n")


def _mid_transaction(c: RawSMTP, rcpt: str) -> None:
    assert c.cmd("EHLO c.test")[0] == 250
    assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
    assert c.cmd(f"RCPT TO:<{rcpt}>")[0] == 250


def test_the_drain_lets_a_final_dot_the_upstream_has_be_answered_and_cuts_the_rest_with_421_and_events(
        tmp_path, gated, monkeypatch):
    import relay.server

    monkeypatch.setattr(relay.server, "DRAIN_SECONDS", 0.5)
    running = RunningRelay(write_config(tmp_path, gated.port, upstream={"data_timeout": 120}))
    try:
        sent = RawSMTP(running.host, running.port, timeout=60)
        waiting = RawSMTP(running.host, running.port, timeout=60)
        _message_sent(sent, "sent@example.com")
        wait_until(lambda: _dot_reached(gated))  # the upstream has the whole message; its reply waits
        _mid_transaction(waiting, "waiting@example.com")
        stopping = running.begin_stop()
        # The client between RCPT and DATA is cut off when the drain ends: told so, never just closed.
        code, text = waiting.reply()
        assert (code, text) == (421, "421 4.3.2 Relay shutting down, try again later")
        assert waiting.closed()
        # Past the drain, the one whose message the upstream has still waits for the upstream's word.
        assert not stopping.done()
        gated.gate.set()
        assert sent.reply()[0] == 250  # the upstream's acceptance, passed on
        assert sent.reply() == (421, "421 4.3.2 Relay shutting down, try again later")
        stopping.result(60)
    finally:
        gated.gate.set()
        running.stop()
    events = running.events()
    assert [(e["kind"], e["stage"], e["recipient"], e["reply"]["text"]) for e in events] == [
        ("deferred", "rcpt", "waiting@example.com", "421 4.3.2 Relay shutting down, try again later")]
    assert events[0]["classification"]["rule"] == "relay:relay-shutdown" and "outcome" not in events[0]
    assert gated.messages == 1


def test_a_transaction_cut_after_its_final_dot_says_421_and_records_its_outcome_as_unknown(
        tmp_path, gated, monkeypatch, caplog):
    """When the drain must end while the upstream has the whole message and has not answered (here: the
    grace past its reply's deadline made negative, so that the cut comes first), the client is told 421
    and that the message may have gone, and the event says the outcome is unknown."""
    import logging

    import relay.server

    caplog.set_level(logging.INFO, logger="relay.server")  # the drain's closing line is INFO
    monkeypatch.setattr(relay.server, "DRAIN_SECONDS", 0.5)
    monkeypatch.setattr(relay.server, "DOT_REPLY_GRACE", -119.0, raising=False)  # due 120 s after the dot
    running = RunningRelay(write_config(tmp_path, gated.port, upstream={"data_timeout": 120}))
    try:
        c = RawSMTP(running.host, running.port, timeout=60)
        _message_sent(c, "sent@example.com")
        wait_until(lambda: _dot_reached(gated))
        running.begin_stop().result(60)
        code, text = c.reply()
        assert code == 421 and text.startswith("421 4.3.2 Relay shutting down while the upstream had the whole "
                                               "message and had not answered: it may have been delivered")
    finally:
        gated.gate.set()
        running.stop()
    events = running.events()
    assert [(e["kind"], e["stage"], e["recipient"], e.get("outcome")) for e in events] == [
        ("deferred", "data", "sent@example.com", UNKNOWN)]
    assert events[0]["classification"]["rule"] == "relay:relay-shutdown-after-dot"
    jsonschema.validate(events[0], json.loads((REPO / "relay" / "schema" / "event.schema.json").read_text()))
    assert events[0]["message_id"] == "<drain@sender.test>"
    logged = [r.getMessage() for r in caplog.records if "cut off after the drain" in r.getMessage()]
    assert len(logged) == 1 and "sent@example.com" in logged[0] and UNKNOWN in logged[0], logged
    # The drain's closing line counts it (review27 F7).
    assert any(r.getMessage() == "stopped: drained 1 session(s) (1 in a transaction; 1 cut off with 421 when "
                                 "their time was up)" for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_a_refusal_at_rcpt_being_recorded_when_the_drain_ends_is_recorded_before_the_relay_stops(
        tmp_path, upstream, relay_factory, monkeypatch):
    """The drain ended while the relay was recording an upstream's 550 5.1.1 to a RCPT (its listing waits
    for the bounce list's lock, held by another process). The cut ended the transaction as if nothing had
    been answered and cancelled the command: the refusal's event and its listing were lost. The cut now
    leaves the command to record the refusal, and the relay stops once it has (the store's own deadline
    bounds that wait: upstream.data_timeout is no part of it)."""
    import sqlite3

    import relay.server
    from tests.support.client_gone import bounce_list_locked, metric

    monkeypatch.setattr(relay.server, "DRAIN_SECONDS", 0.5)
    refusal = "550 5.1.1 <refused550@example.com>: Recipient address rejected: User unknown in virtual mailbox table"
    upstream.rcpt_replies["refused550"] = refusal
    running = relay_factory(upstream.port, metrics={"listen": "127.0.0.1:0"})
    c = RawSMTP(running.host, running.port, timeout=60)
    assert c.cmd("EHLO c.test")[0] == 250
    assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
    with bounce_list_locked(tmp_path, monkeypatch):
        c.send(b"RCPT TO:<refused550@example.com>\r\n")
        wait_until(lambda: metric(running, "relay_upstream_replies_total", command="RCPT", **{"class": "5xx"}) == 1)
        stopping = running.begin_stop()
        assert c.reply() == (421, "421 4.3.2 Relay shutting down, try again later")  # cut at the drain's end
        assert not stopping.done()  # the refusal is still being recorded
    stopping.result(60)
    events = running.events()
    assert [(e["kind"], e["stage"], e["recipient"]) for e in events] == [
        ("rejected", "rcpt", "refused550@example.com"), ("bounce_listed", "rcpt", "refused550@example.com")], events
    assert events[0]["reply"]["text"] == refusal
    with sqlite3.connect(tmp_path / "bounces.db") as db:
        assert db.execute("SELECT address FROM relay_bounces").fetchall() == [("refused550@example.com",)]


# `relay serve` itself, one process or workers: the drain shortened to 1 s by a sitecustomize.
SHORT_DRAIN = "import relay.server\nrelay.server.DRAIN_SECONDS = 1.0\n"


@pytest.mark.parametrize("workers", [1, 2])
def test_relay_serve_sigterm_lets_the_upstream_answer_a_final_dot_and_cuts_the_rest_with_421_and_events(
        tmp_path, gated, workers):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SHORT_DRAIN)
    port = free_port()
    config = tmp_path / "relay.yaml"
    config.write_text(yaml.safe_dump({
        "hostname": "relay.test", "listen": [{"address": f"127.0.0.1:{port}"}], "workers": workers,
        "upstream": {"host": "127.0.0.1", "port": gated.port, "starttls": "off", "data_timeout": 120},
        "bounce_list": f"sqlite:///{tmp_path / 'b.db'}", "events": [{"jsonl": str(tmp_path / 'e.jsonl')}]}))
    stderr_path = tmp_path / "stderr.log"
    with open(stderr_path, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "relay", "serve", "-c", str(config)], cwd=str(REPO),
                                stdout=subprocess.DEVNULL, stderr=stderr,
                                env={**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])})
    started = {proc.pid}
    try:
        wait_until(lambda: proc.poll() is not None or stderr_path.read_text().count("listening on 127.0.0.1")
                   == workers, timeout=60)
        assert proc.poll() is None, stderr_path.read_text()
        started |= children(proc.pid)
        sent = RawSMTP("127.0.0.1", port, timeout=60)
        waiting = RawSMTP("127.0.0.1", port, timeout=60)
        _message_sent(sent, "sent@example.com")
        wait_until(lambda: _dot_reached(gated))
        _mid_transaction(waiting, "waiting@example.com")
        proc.send_signal(signal.SIGTERM)
        assert waiting.reply() == (421, "421 4.3.2 Relay shutting down, try again later")
        assert proc.poll() is None  # still draining: the upstream has not answered the dot
        gated.gate.set()
        assert sent.reply()[0] == 250
        assert sent.reply() == (421, "421 4.3.2 Relay shutting down, try again later")
        assert proc.wait(60) == 0
    finally:
        gated.gate.set()
        for pid in started:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(10)
    err = stderr_path.read_text()
    assert "Traceback" not in err, err
    events = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert [(e["kind"], e["stage"], e["recipient"]) for e in events] == [("deferred", "rcpt", "waiting@example.com")]
    assert "cut off after the drain" in err and "waiting@example.com" in err
    assert gated.messages == 1
