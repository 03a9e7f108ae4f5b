"""Webhooks: Standard Webhooks signatures, the spool, retries and dead letters, against a real HTTP
receiver on loopback that is down for a while and comes back (tests/support/webhook_receiver.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
import standardwebhooks
import yaml

from relay.config import ConfigError, load_settings
from relay.events import EventSinks, make_event
from relay.metrics import Metrics
from relay.spool import Spool
from relay.webhooks import WebhookSink, signing
from relay.webhooks.sender import payload
from tests.support.smtp_client import RawSMTP
from tests.support.webhook_receiver import SECRET, WebhookReceiver

FAST = {"batch": {"max_events": 10, "max_wait": "50ms"},
        "retry": {"initial_delay": "20ms", "max_delay": "200ms"}}


def webhook_settings(tmp_path: Path, url: str, **keys):
    tmp_path.mkdir(exist_ok=True)
    secret_file = tmp_path / "webhook.secret"
    secret_file.write_text(SECRET + "\n")
    entry = {"webhook": url, "secret_file": str(secret_file), "spool_dir": str(tmp_path / "spool"), **FAST, **keys}
    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump({"hostname": "relay.test", "events": [entry]}))
    return load_settings(path).events[0].webhook


def sinks_for(hook, metrics=None, flush_seconds=5.0) -> EventSinks:
    sinks = EventSinks([])
    sinks.sinks.append(WebhookSink(hook, sinks._failed, metrics, flush_seconds))
    return sinks


def emit(sinks: EventSinks, count: int, start: int = 0) -> list[str]:
    events = [make_event("rejected", "rcpt", recipient=f"u{i}@example.com") for i in range(start, start + count)]
    for event in events:
        sinks.emit(event)
    return [e["event_id"] for e in events]


def wait_until(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def spooled_lines(directory: Path) -> list[dict]:
    """The events written whole to the spool. The spool's writer thread may be appending meanwhile: a
    last line without its newline is still being written (the relay's reader stops there too)."""
    return [json.loads(line) for seg in sorted(directory.glob("*.jsonl")) if seg.name != "dead-letter.jsonl"
            for line in seg.read_text().splitlines(keepends=True) if line.endswith("\n")]


@pytest.fixture
def receiver():
    r = WebhookReceiver().start()
    yield r
    r.stop()


# --- signatures -----------------------------------------------------------------------------------

def test_signature_is_the_standard_webhooks_one():
    key = signing.parse_secret(SECRET)
    body = b'{"type":"relay.events","data":{"events":[{"kind":"rejected","text":"Empf\xc3\xa4nger"}]}}'
    ours = signing.signature(key, "msg_1", 1700000000, body)
    by_hand = base64.b64encode(hmac.new(bytes(range(32)), b"msg_1.1700000000." + body, hashlib.sha256).digest())
    assert ours == "v1," + by_hand.decode()
    from datetime import datetime, timezone
    reference = standardwebhooks.Webhook(SECRET).sign("msg_1", datetime.fromtimestamp(1700000000, timezone.utc),
                                                      body.decode())
    assert ours == reference


@pytest.mark.parametrize("text, why", [
    ("", "empty"), ("whsec_", "empty"), ("whsec_not base64!", "not base64"),
    ("whsec_" + base64.b64encode(b"short").decode(), "has 5 bytes"),
])
def test_a_secret_that_is_not_standard_webhooks_is_refused(text, why):
    with pytest.raises(signing.SecretError, match=why):
        signing.parse_secret(text)


def test_a_secret_without_the_prefix_is_base64_too():
    assert signing.parse_secret(base64.b64encode(bytes(range(32))).decode() + "\n") == bytes(range(32))


# --- delivery -------------------------------------------------------------------------------------

def test_events_spooled_while_the_endpoint_is_down_arrive_once_in_order_when_it_comes_back(tmp_path, receiver):
    hook = webhook_settings(tmp_path, receiver.url)
    receiver.stop()  # down: connection refused
    metrics = Metrics()
    sinks = sinks_for(hook, metrics)
    try:
        ids = emit(sinks, 25)
        assert wait_until(lambda: len(spooled_lines(hook.spool_dir)) == 25)
        receiver.mode = "fail"  # up, but 503
        receiver.start()
        assert len(receiver.wait_for_attempts(3)) >= 3
        receiver.mode = "lose-ack"  # takes a batch, then its 500 makes the sender send it again
        first_taken = len(receiver.attempts)
        assert wait_until(lambda: len(receiver.attempts) >= first_taken + 2)
        receiver.mode = "up"
        ids += emit(sinks, 15, start=25)
        events = receiver.wait_for(40)
    finally:
        sinks.close()
    assert receiver.bad == []
    assert [e["event_id"] for e in events] == ids  # every event once, in order
    # A batch keeps its id and body across attempts: the 503s, the lost acknowledgement and the success.
    bodies: dict[str, set[bytes]] = {}
    for attempt in receiver.attempts:
        bodies.setdefault(attempt.id, set()).add(attempt.body)
    assert all(len(b) == 1 for b in bodies.values())
    failed = [a.id for a in receiver.attempts if a.status != 204]
    assert failed[0] == receiver.order[0]  # the batch refused with 503 is the one taken first
    assert len(receiver.attempts) > len(receiver.order)  # retries happened, and were deduplicated
    assert all(len(receiver.batches[i]) <= 10 for i in receiver.order)  # batch.max_events
    assert ('relay_webhook_events_delivered_total{webhook="%s"} 40' % hook.display) in metrics.render()
    assert "token=abc" not in metrics.render()  # the query string may be a secret


def test_a_restart_delivers_the_unsent_spool_under_the_same_webhook_id(tmp_path, receiver):
    hook = webhook_settings(tmp_path, receiver.url)
    receiver.mode = "fail"
    sinks = sinks_for(hook, flush_seconds=0.5)
    ids = emit(sinks, 5)
    assert receiver.wait_for_attempts(1)
    sinks.close()  # the endpoint still fails: the batch stays in the spool, in flight
    refused_id = receiver.attempts[0].id
    assert receiver.events() == [] and len(spooled_lines(hook.spool_dir)) == 5

    receiver.mode = "up"
    sinks = sinks_for(hook)  # the next start
    try:
        ids += emit(sinks, 3, start=5)
        events = receiver.wait_for(8)
    finally:
        sinks.close()
    assert [e["event_id"] for e in events] == ids
    assert receiver.order[0] == refused_id
    assert receiver.bad == []


def test_a_batch_past_give_up_after_goes_to_the_dead_letter_file_and_is_counted(tmp_path, receiver):
    hook = webhook_settings(tmp_path, receiver.url, retry={"initial_delay": "20ms", "max_delay": "50ms",
                                                           "give_up_after": "300ms"})
    receiver.mode = "fail"
    metrics = Metrics()
    sinks = sinks_for(hook, metrics)
    try:
        dead = emit(sinks, 3)
        dead_letter = hook.spool_dir / "dead-letter.jsonl"
        assert wait_until(dead_letter.exists)
        receiver.mode = "up"
        alive = emit(sinks, 2, start=3)
        events = receiver.wait_for(2)
    finally:
        sinks.close()
    (record,) = [json.loads(line) for line in dead_letter.read_text().splitlines()]
    assert [e["event_id"] for e in record["events"]] == dead
    assert record["last_error"].startswith("HTTP 503") and record["attempts"] >= 1
    assert record["webhook_id"] in {a.id for a in receiver.attempts}
    assert [e["event_id"] for e in events] == alive  # the sender went on past it
    assert 'relay_webhook_dead_letters_total{webhook="%s"} 1' % hook.display in metrics.render()


def test_a_full_spool_drops_new_events_with_a_warning_and_keeps_the_old(tmp_path, caplog):
    from tests.support.upstream import closed_port

    hook = webhook_settings(tmp_path, f"http://127.0.0.1:{closed_port()}/hooks", spool_max_size=3000)
    sinks = sinks_for(hook, flush_seconds=0.2)
    try:
        emit(sinks, 30)  # ~250 bytes each: about a dozen fit
        assert wait_until(lambda: sum(sinks.failures.values()) + len(spooled_lines(hook.spool_dir)) == 30)
    finally:
        sinks.close()
    kept = spooled_lines(hook.spool_dir)
    assert 0 < len(kept) < 30 and sinks.failures[f"webhook:{hook.display}"] == 30 - len(kept)
    assert [e["recipient"] for e in kept] == [f"u{i}@example.com" for i in range(len(kept))]  # the oldest
    assert "is full" in caplog.text and "spool_max_size 3000" in caplog.text


def test_https_certificates_are_verified(tmp_path, caplog):
    from tests.support.tls import make_cert, server_context

    cert, key = make_cert(tmp_path, "127.0.0.1")
    receiver = WebhookReceiver(tls=server_context(cert, key)).start()
    try:
        caplog.set_level(logging.WARNING, "relay.webhooks")
        sinks = sinks_for(webhook_settings(tmp_path / "a", receiver.url), flush_seconds=0.2)
        emit(sinks, 1)
        assert wait_until(lambda: "certificate" in caplog.text)
        sinks.close()
        assert receiver.attempts == []
        sinks = sinks_for(webhook_settings(tmp_path / "b", receiver.url, ca_file=str(cert)))
        try:
            ids = emit(sinks, 2)
            assert [e["event_id"] for e in receiver.wait_for(2)] == ids
        finally:
            sinks.close()
    finally:
        receiver.stop()


# --- the spool ------------------------------------------------------------------------------------

def test_a_line_torn_by_a_killed_writer_is_cut_off_by_the_next_append(tmp_path):
    spool = Spool(tmp_path / "spool", 1 << 20)
    assert spool.append([b'{"n":1}\n']) == 1
    segment = next((tmp_path / "spool").glob("0*.jsonl"))
    with open(segment, "ab") as fh:
        fh.write(b'{"n":2, "half')  # a process killed in mid-write
    assert spool.append([b'{"n":3}\n']) == 1
    assert segment.read_bytes() == b'{"n":1}\n{"n":3}\n'
    assert spool.try_lock_sender()
    batch = spool.next_batch(10, 1 << 20)
    assert [json.loads(line) for line in batch.lines] == [{"n": 1}, {"n": 3}]
    spool.close()


def test_only_one_process_delivers_from_a_spool(tmp_path):
    one, two = Spool(tmp_path / "s", 1 << 20), Spool(tmp_path / "s", 1 << 20)
    assert one.try_lock_sender() and not two.try_lock_sender()
    one.release_sender()
    assert two.try_lock_sender()
    one.close()
    two.close()


# --- through the relay ----------------------------------------------------------------------------

def transact_refused(relay, rcpt="ratelimit@gmail.test"):
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        reply = c.cmd(f"RCPT TO:<{rcpt}>")
    return reply


def relay_events_config(tmp_path, url, **keys):
    secret_file = tmp_path / "webhook.secret"
    secret_file.write_text(SECRET)
    return [{"jsonl": str(tmp_path / "events.jsonl")},
            {"webhook": url, "secret_file": str(secret_file), "spool_dir": str(tmp_path / "spool"), **FAST, **keys}]


def test_a_hung_endpoint_never_delays_the_smtp_reply(upstream, relay_factory, tmp_path):
    import socket

    hung = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)
    try:
        url = f"http://127.0.0.1:{hung.getsockname()[1]}/hooks/mail"
        relay = relay_factory(upstream.port, events=relay_events_config(tmp_path, url, timeout="600s"))
        assert transact_refused(relay)[0] == 421
        hung.settimeout(20)
        held, _ = hung.accept()  # the sender's POST of that event, never answered (its timeout: 10 minutes)
        with held:
            for _ in range(2):
                assert transact_refused(relay)[0] == 421
        assert len(relay.events(wait_for=3)) == 3
        assert wait_until(lambda: len(spooled_lines(tmp_path / "spool")) == 3)
    finally:
        hung.close()


def test_an_endpoint_that_trickles_its_answer_gets_a_failed_attempt_and_give_up_after_applies(
        upstream, relay_factory, tmp_path):
    import socket
    import threading

    # Each byte comes well within `timeout` (a per-read limit), the answer never ends: only a deadline
    # on the attempt as a whole ends it (3 x timeout, docs/events.md).
    trickler = socket.socket()
    trickler.bind(("127.0.0.1", 0))
    trickler.listen(16)
    requests, stop = [], threading.Event()

    def answer(conn):
        with conn:
            conn.recv(65536)
            requests.append(time.monotonic())
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                while not stop.wait(0.2):
                    conn.sendall(b"X")  # a header line that never ends
            except OSError:
                pass

    def serve():
        while not stop.is_set():
            try:
                conn, _ = trickler.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{trickler.getsockname()[1]}/hooks/mail"
        relay = relay_factory(upstream.port, events=relay_events_config(
            tmp_path, url, timeout="1s", retry={"initial_delay": "20ms", "max_delay": "200ms", "give_up_after": "1s"}))
        assert transact_refused(relay)[0] == 421
        dead_letter = tmp_path / "spool" / "dead-letter.jsonl"
        assert wait_until(dead_letter.exists, timeout=60)  # on the old code: hours
        (record,) = [json.loads(line) for line in dead_letter.read_text().splitlines()]
        assert "no complete answer within 3 s" in record["last_error"]
        assert len(record["events"]) == 1 and len(requests) >= 1
    finally:
        stop.set()
        trickler.close()


def test_a_relay_restart_delivers_what_the_dead_endpoint_did_not_take(upstream, relay_factory, tmp_path, receiver):
    url = receiver.url
    receiver.stop()
    events = relay_events_config(tmp_path, url)
    relay = relay_factory(upstream.port, events=events)
    for _ in range(3):
        assert transact_refused(relay)[0] == 421
    written = relay.events(wait_for=3)
    relay.stop()
    assert [e["event_id"] for e in spooled_lines(tmp_path / "spool")] == [e["event_id"] for e in written]

    receiver.start()
    relay = relay_factory(upstream.port, events=events)
    delivered = receiver.wait_for(3)
    assert [e["event_id"] for e in delivered] == [e["event_id"] for e in written]
    assert receiver.bad == []
    assert "relay_webhook_spool_bytes" in relay.server.metrics.render()


# --- config ---------------------------------------------------------------------------------------

def load_problems(tmp_path, entry: dict) -> dict[str, str]:
    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump({"hostname": "relay.test", "events": [entry]}))
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert all(p.file == str(path) for p in info.value.problems)
    return {p.key: p.why for p in info.value.problems}


def test_config_errors_name_the_key_and_why(tmp_path):
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "short.secret").write_text("whsec_" + base64.b64encode(b"0123456789").decode())
    assert load_problems(tmp_path, {"webhook": "https://app.example/hooks", "secret_file": "missing.secret",
                                    "spool_dir": str(tmp_path / "s")}) == {
        "events[0].secret_file": f"no such file in {tmp_path} (the value is not shown, as it may be the webhook "
                                 f"secret itself: write the path of a file that holds it)"}
    problems = load_problems(tmp_path, {"webhook": "ftp://app.example/hooks", "secret_file": "short.secret",
                                        "spool_dir": "a-file", "batch": {"max_events": 0, "max_size": 1},
                                        "retry": {"initial_delay": "10m", "max_delay": "1m"},
                                        "spool_max_size": "lots", "ca_file": "nope.pem", "headers": {}})
    assert problems["events[0].webhook"] == "'ftp://app.example/hooks' is not an http(s) URL"
    assert "has 10 bytes" in problems["events[0].secret_file"]
    assert problems["events[0].spool_dir"] == f"{tmp_path / 'a-file'} is not a directory"
    assert problems["events[0].batch.max_events"] == "must be positive, got 0"
    assert problems["events[0].batch.max_size"].startswith("unknown key")
    assert problems["events[0].retry.max_delay"] == "60 s is less than initial_delay (600 s)"
    assert "is not a size" in problems["events[0].spool_max_size"]
    assert "does not exist" in problems["events[0].ca_file"]
    assert problems["events[0].headers"].startswith("unknown key")
    for url, why in [("https://user:pw@app.example/", "user name or password"), ("https://:443/", "names no host"),
                     ("http://app.example:99999/", "not a URL")]:
        assert why in load_problems(tmp_path, {"webhook": url, "spool_dir": "s"})["events[0].webhook"]


def test_two_webhooks_may_not_share_a_spool(tmp_path):
    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump({"hostname": "relay.test", "events": [
        {"webhook": "https://a.example/", "spool_dir": "s"}, {"webhook": "https://b.example/", "spool_dir": "s"}]}))
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert [p.key for p in info.value.problems] == ["events[1].spool_dir"]


def test_the_default_spool_is_under_the_state_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump({"hostname": "relay.test", "events": [{"webhook": "https://a.example/h"}]}))
    hook = load_settings(path).events[0].webhook
    assert hook.spool_dir.parent == tmp_path / "state" / "webhooks" and hook.secret is None


def test_check_config_lists_webhook_errors(tmp_path):
    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump({"hostname": "relay.test", "events": [
        {"webhook": "https://a.example/h", "secret_file": "nope", "spool_dir": "s"}]}))
    out = subprocess.run([sys.executable, "-m", "relay", "check-config", "-c", str(path)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1
    # a bare name (no directory) may be the secret itself: not shown (review20 F6)
    assert f"{path}: events[0].secret_file: no such file in {tmp_path} (the value is not shown" in out.stdout
    assert "Traceback" not in out.stderr


def test_an_operator_commands_events_reach_the_webhook_through_the_running_relays_spool(
        upstream, relay_factory, tmp_path, receiver):
    relay = relay_factory(upstream.port, events=relay_events_config(tmp_path, receiver.url))
    out = subprocess.run([sys.executable, "-m", "relay", "bounces", "add", "ops@example.com", "--reason", "test",
                          "-c", str(relay.config_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    # The command appended to the spool; the relay, which holds the spool's sender lock, sent it.
    (event,) = receiver.wait_for(1)
    assert event["kind"] == "bounce_listed" and event["recipient"] == "ops@example.com"
    assert receiver.bad == []


def test_files_a_root_command_adds_to_the_spool_belong_to_the_spools_owner(tmp_path):
    import os

    if os.geteuid() != 0:
        pytest.fail("needs root (as the tests run here and in CI) to create files for another user")
    directory = tmp_path / "spool"
    directory.mkdir()
    os.chown(directory, 65534, 65534)  # the relay's user owns its spool
    spool = Spool(directory, 1 << 20)
    spool.append([b'{"n":1}\n'])
    assert spool.try_lock_sender()
    spool.delivered(spool.next_batch(10, 1 << 20))
    spool.close()
    assert {p.name: p.stat().st_uid for p in directory.iterdir()} == {
        "lock": 65534, "sender.lock": 65534, "000000000001.jsonl": 65534, "cursor.json": 65534}


def test_a_cursor_lost_after_delivery_sends_the_batch_again_under_its_id(tmp_path):
    # The cursor moved past a delivered batch is not fsynced; a power failure may undo it. What is on
    # disk then is the batch in flight, which goes again with the id the receiver already has.
    spool = Spool(tmp_path / "s", 1 << 20)
    spool.append([b'{"n":1}\n', b'{"n":2}\n'])
    assert spool.try_lock_sender()
    batch = spool.next_batch(10, 1 << 20)
    in_flight = (tmp_path / "s" / "cursor.json").read_bytes()
    spool.delivered(batch)
    spool.close()
    (tmp_path / "s" / "cursor.json").write_bytes(in_flight)  # the undone write
    again = Spool(tmp_path / "s", 1 << 20)
    assert again.try_lock_sender()
    resent = again.next_batch(10, 1 << 20)
    assert (resent.id, payload(resent)) == (batch.id, payload(batch))
    again.close()


def test_every_worker_spools_to_one_webhook_and_each_event_arrives_once(tmp_path, upstream, receiver):
    from tests.test_workers import Relay

    relay = Relay(tmp_path, upstream.port, events=[{"jsonl": str(tmp_path / "e.jsonl")}] +
                  relay_events_config(tmp_path, receiver.url)[1:])
    try:
        for c in relay.one_connection_per_worker().values():
            with c:
                c.cmd("EHLO client.test")
                assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
                assert c.cmd("RCPT TO:<ratelimit@gmail.test>")[0] == 421
        assert wait_until(lambda: len(relay.events()) == 2)
        # Both workers appended to the one spool; whichever holds its sender lock delivered both.
        delivered = receiver.wait_for(2)
        assert sorted(e["event_id"] for e in delivered) == sorted(e["event_id"] for e in relay.events())
        assert receiver.bad == []
    finally:
        assert relay.stop() == 0
    assert "Traceback" not in relay.stderr()


def test_a_reload_that_changes_the_webhook_hands_its_spool_to_the_new_sink(upstream, relay_factory, tmp_path,
                                                                          receiver):
    receiver.mode = "fail"
    relay = relay_factory(upstream.port, events=relay_events_config(tmp_path, receiver.url))
    assert transact_refused(relay)[0] == 421
    assert receiver.wait_for_attempts(1)
    config = yaml.safe_load(relay.config_path.read_text())
    config["events"][1]["batch"] = {"max_events": 5, "max_wait": "10ms"}  # same spool, new settings
    relay.config_path.write_text(yaml.safe_dump(config))
    assert relay.reload()
    assert transact_refused(relay)[0] == 421
    receiver.mode = "up"
    delivered = receiver.wait_for(2)
    assert [e["event_id"] for e in delivered] == [e["event_id"] for e in relay.events(wait_for=2)]
    assert receiver.order[0] == receiver.attempts[0].id  # the batch in flight before the reload, under its id
    assert receiver.bad == []


# --- review28 -------------------------------------------------------------------------------------

def _reload_metric(relay, name: str) -> str:
    import re

    text = relay.server.metrics.render()
    return " ".join(re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def test_a_reload_with_a_ca_file_holding_no_certificate_is_refused_whole_and_the_next_good_one_builds_the_webhook(
        upstream, relay_factory, tmp_path):
    # review28 F1: the CA file was first read when the new sink was built, after the new settings were
    # installed and outside the reload's error handling: the reload half-applied, counted as nothing,
    # and the webhook never existed until a restart, even after the file was fixed.
    from tests.support.tls import make_cert, server_context

    cert, key = make_cert(tmp_path, "127.0.0.1")
    receiver = WebhookReceiver(tls=server_context(cert, key)).start()
    try:
        relay = relay_factory(upstream.port)  # a jsonl sink only
        running = relay.server.settings
        ca = tmp_path / "hooks-ca.pem"
        ca.write_text("garbage\n")
        config = yaml.safe_load(relay.config_path.read_text())
        config["events"] = relay_events_config(tmp_path, receiver.url, ca_file=str(ca))
        relay.config_path.write_text(yaml.safe_dump(config))
        out = subprocess.run([sys.executable, "-m", "relay", "check-config", "-c", str(relay.config_path)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 1, out.stdout
        assert f"{relay.config_path}: events[1].ca_file: no certificate in {ca}" in out.stdout
        assert "Traceback" not in out.stderr

        assert relay.reload() is False  # SIGHUP
        assert relay.server.settings is running and [s.kind for s in relay.server.settings.events] == ["jsonl"]
        assert _reload_metric(relay, "relay_config_last_reload_successful") == "0.0"
        assert 'result="failed"' in relay.server.metrics.render()
        assert not (tmp_path / "spool").exists()  # no sink of the refused config was left running

        ca.write_bytes(cert.read_bytes())  # fixed; SIGHUP again
        assert relay.reload() is True
        assert transact_refused(relay)[0] == 421
        written = relay.events(wait_for=1)
        assert [e["event_id"] for e in receiver.wait_for(1)] == [e["event_id"] for e in written]
        assert receiver.bad == []
    finally:
        receiver.stop()


def test_a_ca_bundle_renewed_in_place_is_used_after_a_sighup(tmp_path):
    # The same path with new contents is a changed config: a SIGHUP builds a sink that trusts it.
    from tests.support.tls import make_cert

    one, _ = make_cert(tmp_path, "127.0.0.1")
    ca = tmp_path / "ca.pem"
    ca.write_bytes(one.read_bytes())
    first = webhook_settings(tmp_path, "https://127.0.0.1:1/h", ca_file=str(ca))
    assert webhook_settings(tmp_path, "https://127.0.0.1:1/h", ca_file=str(ca)) == first
    (tmp_path / "renewed").mkdir()
    two, _ = make_cert(tmp_path / "renewed", "127.0.0.1")
    ca.write_bytes(two.read_bytes())
    assert webhook_settings(tmp_path, "https://127.0.0.1:1/h", ca_file=str(ca)) != first


def test_a_zero_length_cursor_does_not_stop_the_webhook(upstream, relay_factory, tmp_path, receiver):
    # review28 F2: a cursor.json that cannot be parsed (zero-length after a power failure: it was renamed
    # into place without an fsync) made the sender fail every 10 s for good, and the spool fill up.
    events = relay_events_config(tmp_path, receiver.url)
    relay = relay_factory(upstream.port, events=events)
    assert transact_refused(relay)[0] == 421
    first = relay.events(wait_for=1)
    assert [e["event_id"] for e in receiver.wait_for(1)] == [e["event_id"] for e in first]
    relay.stop()
    cursor = tmp_path / "spool" / "cursor.json"
    assert cursor.exists()
    cursor.write_bytes(b"")

    relay = relay_factory(upstream.port, events=events)
    assert transact_refused(relay)[0] == 421
    second = relay.events(wait_for=2)[1]
    assert wait_until(lambda: second["event_id"] in [e["event_id"] for e in receiver.events()])
    # At least once: the spool's events from its oldest on went again; none was lost.
    assert {e["event_id"] for e in receiver.events()} == {first[0]["event_id"], second["event_id"]}
    assert (tmp_path / "spool" / "cursor.json.bad").read_bytes() == b""
    assert wait_until(lambda: json.loads(cursor.read_text())["offset"] > 0)  # a good cursor again
    assert float(_reload_metric(relay, "relay_event_spool_cursor_resets_total")) >= 1
    assert receiver.bad == []


def test_the_cursor_is_fsynced_before_it_replaces_the_old_one(tmp_path, monkeypatch):
    import os

    spool = Spool(tmp_path / "s", 1 << 20)
    spool.append([b'{"n":1}\n'])
    assert spool.try_lock_sender()
    batch = spool.next_batch(10, 1 << 20)
    synced, replaced = [], []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")),
                                                 real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (replaced.append((str(a), len(synced))), real_replace(a, b))[1])
    spool.delivered(batch)
    spool.close()
    tmp = str(tmp_path / "s" / "cursor.json.tmp")
    assert replaced == [(tmp, 1)] and synced[0] == tmp  # the file's data, then the rename
    assert synced[1:] == [str(tmp_path / "s")]  # then the directory (the rename itself)


def test_a_webhook_urls_query_is_not_in_config_errors(tmp_path):
    # review28 F6: docs/events.md says the query may hold a token; errors quoted the URL whole.
    path = tmp_path / "relay.yaml"
    for url in ["https://hooks.example/hook?token=SECRETTOKEN#x", "https://hooks.example:99999/hook?token=SECRETTOKEN",
                "ftp://hooks.example/hook?token=SECRETTOKEN"]:
        path.write_text(yaml.safe_dump({"hostname": "relay.test", "events": [{"webhook": url, "spool_dir": "s"}]}))
        out = subprocess.run([sys.executable, "-m", "relay", "check-config", "-c", str(path)], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 1 and "events[0].webhook: '" in out.stdout, out.stdout
        assert "SECRETTOKEN" not in out.stdout + out.stderr
        assert "?…" in out.stdout


def test_a_reload_whose_sinks_fail_to_start_keeps_all_of_the_running_config(upstream, relay_factory, tmp_path,
                                                                          receiver, monkeypatch):
    # review28 F1, the reload's side: whatever fails while the new sinks are built (a disk error opening
    # the spool here), nothing of the new config is installed, the reload counts as failed, and the
    # next good reload builds the sinks (the old code had installed the new settings already, so the
    # next reload saw no change in `events` and never built the webhook).
    from relay.webhooks import sink as webhook_sink

    relay = relay_factory(upstream.port)  # a jsonl sink only
    running, pipeline = relay.server.settings, relay.server.service.pipeline
    config = yaml.safe_load(relay.config_path.read_text())
    config["events"] = relay_events_config(tmp_path, receiver.url)
    relay.config_path.write_text(yaml.safe_dump(config))

    def broken(*args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(webhook_sink, "Spool", broken)
    assert relay.reload() is False
    assert relay.server.settings is running and relay.server.service.pipeline is pipeline
    assert _reload_metric(relay, "relay_config_last_reload_successful") == "0.0"
    monkeypatch.undo()
    assert relay.reload() is True
    assert transact_refused(relay)[0] == 421
    written = relay.events(wait_for=1)
    assert [e["event_id"] for e in receiver.wait_for(1)] == [e["event_id"] for e in written]
