"""The funnel's input for ways in without a live session: Observation -> Outcomes.observe()."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from relay.config import load_settings
from relay.decision import Reply
from relay.outcomes import Observation, open_outcomes
from relay.policies import load_policies
from tests.support.relay_proc import write_config

SCHEMA = json.loads((Path(__file__).parent.parent / "relay" / "schema" / "event.schema.json").read_text())


def observe_all(tmp_path, observations, **overrides):
    settings = load_settings(write_config(tmp_path, 25, **overrides))
    policies = load_policies(settings)

    async def run():
        outcomes, close = await open_outcomes(settings, policies)
        try:
            results = [await outcomes.observe(obs) for obs in observations]
            entries = [e async for e in outcomes.store.iter_entries()]
        finally:
            await close()
        return results, entries

    results, entries = asyncio.run(run())
    written = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    for event in written:
        jsonschema.validate(event, SCHEMA)
    assert written == [e for r in results for e in r]
    return results, {e.address: e for e in entries}


def log_reply(text):
    return Reply.parse(text, source="mta-log")


def test_a_hard_bounce_from_the_log_lists_the_address_and_says_so(tmp_path):
    obs = Observation("rejected", "rcpt", "Jane@Example.com", log_reply("550 5.1.1 <jane@example.com>: User unknown"),
                      sender="app@sender.test", fields={"queue_id": "4Bx1", "relay": {"host": "mx.example.com"}})
    (events,), entries = observe_all(tmp_path, [obs])
    assert [e["kind"] for e in events] == ["rejected", "bounce_listed"]
    first = events[0]
    assert first["reply"]["source"] == "mta-log" and first["queue_id"] == "4Bx1"
    assert first["classification"]["scope"] == "recipient" and first["bounce_list"] == "listed"
    assert first["sender"] == "app@sender.test" and first["stage"] == "rcpt"
    assert "jane@example.com" in entries


def test_sender_message_and_protocol_refusals_from_a_dsn_list_nobody(tmp_path):
    texts = [
        ("rcpt", "550 5.1.0 <app@x.test>: Sender address rejected: User unknown in virtual mailbox table"),
        ("data", "550 5.7.1 not RFC 5322 compliant: 'From' header is missing"),
        ("data", "550 5.1.1 user unknown"),  # at the final dot and naming nobody: the message
        ("rcpt", "503 5.5.1 RCPT first"),
        (None, "554 5.5.1 no valid recipients"),
    ]
    obs = [Observation("bounced", stage, "a@example.com", Reply.parse(t, source="dsn")) for stage, t in texts]
    results, entries = observe_all(tmp_path, obs)
    # Sender and session refusals also warn the operator; nothing is listed.
    assert [[e["kind"] for e in r] for r in results] == [
        ["bounced", "warning"], ["bounced"], ["bounced"], ["bounced", "warning"], ["bounced", "warning"]]
    assert results[0][1]["result"] == "sender" and results[0][1]["check"] == "attribution"
    assert entries == {}
    assert [r[0]["classification"]["scope"] for r in results] == ["sender", "message", "message", "session", "session"]


def test_a_deferral_never_lists(tmp_path):
    obs = Observation("deferred", "rcpt", "a@example.com", log_reply("452 4.2.2 Mailbox full"))
    (events,), entries = observe_all(tmp_path, [obs])
    assert [e["kind"] for e in events] == ["deferred"] and events[0]["action"] == "retry" and entries == {}


def test_a_complaint_lists_the_complainer_at_once(tmp_path):
    obs = Observation("complained", None, "a@example.com", Reply.parse("", source="dsn"),
                      fields={"feedback_type": "abuse"})
    (events,), entries = observe_all(tmp_path, [obs])
    assert [e["kind"] for e in events] == ["complained", "bounce_listed"]
    assert entries["a@example.com"].category == "complaint"
    assert events[1]["reason"] == "complaint (abuse)"


def test_complaints_can_be_turned_off(tmp_path):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "suppression.yaml").write_text("permanent: {unknown_recipient: {list_after: 1}}\n"
                                               "complaints: {list_after: off}\n")
    obs = Observation("complained", None, "a@example.com", Reply.parse("", source="dsn"))
    (events,), entries = observe_all(tmp_path, [obs], policies=str(policies))
    assert [e["kind"] for e in events] == ["complained"] and entries == {}


def test_an_unknown_observation_kind_is_refused():
    with pytest.raises(ValueError, match="unknown observation kind"):
        Observation("accepted", "rcpt", "a@example.com", log_reply("250 ok"))


@pytest.mark.parametrize("rcpt", ["b@example..com", "b@[999.1.1.1]", "x" * 65 + "@example.com", "b@-example.com"])
def test_a_refused_recipient_that_is_no_address_is_not_a_store_error(relay, upstream, caplog, rcpt):
    # The relay passes on what it cannot tell is no address (the bounce list step lets the next hop say
    # what it is); the next hop's 550 then reached the bounce list, whose key raised: an ERROR with a
    # traceback per refusal, and the event said bounce_list "error" as if the store were down.
    import logging

    from tests.support.smtp_client import RawSMTP

    caplog.set_level(logging.WARNING)
    upstream.rcpt_replies[rcpt.split("@")[0]] = "550 5.1.1 <" + rcpt + ">: Recipient address rejected: User unknown"
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd(f"RCPT TO:<{rcpt}>")
        assert code in (550, 553), text
    # An address literal that is no address ([999.1.1.1]) is refused by the relay itself at RCPT
    # (RFC 5321 4.1.3), a policy_rejected event that must not touch the list either.
    (event,) = [e for e in relay.events(wait_for=1) if e["kind"] in ("rejected", "policy_rejected")]
    assert event["recipient"] == rcpt and event.get("bounce_list") != "error", event
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []


def test_the_dry_run_judges_an_observation_with_the_same_senders_as_the_funnel(tmp_path):
    # Review7 F4: `relay postfix-log --dry-run` (DryRun) judged with the original sender only, the
    # funnel (Outcomes.observe) with the return path or else the original sender, and F1 with both:
    # one helper, Observation.senders(), so the two cannot drift.
    from relay.commands.postfix_log import DryRun

    return_path = "noreply=example.com=qfitipzktqa5jznwo5acxuwikt6q@bounces.example.com"
    texts = [f"550 5.1.1 <{return_path}>... User unknown", "550 5.1.1 <noreply@example.com>... User unknown"]
    observations = [Observation("bounced", None, "bob@example.com", Reply.parse(text, "dsn"),
                                sender="noreply@example.com", return_path=return_path) for text in texts]
    results, entries = observe_all(tmp_path, observations)
    dry = DryRun(load_policies(load_settings(write_config(tmp_path, 25))))
    for obs, funnel in zip(observations, results):
        [bounced, *_] = funnel
        [would] = dry.observe(obs)
        assert bounced["classification"]["scope"] == would["classification"]["scope"] == "sender", obs.reply.text
        assert "bounce_list" not in bounced and "bounce_list" not in would and would["would_bounce_list"] == "never"
    assert entries == {}
    assert observations[0].senders() == (return_path, "noreply@example.com")


@pytest.mark.parametrize("where, provider", [
    ({"live": {"host": "alt2.aspmx.l.google.com", "ip": "192.0.2.1", "route": "mx"}}, "google.com"),
    # A smarthost is never the provider; the host its words name is.
    ({"live": {"host": "smarthost.example.net", "ip": "192.0.2.2"}}, "hoster.co.uk"),
    ({"live": {"host": "smarthost.example.net", "ip": "192.0.2.2"}, "text": "550 5.1.1 User unknown"}, None),
    ({"mta-log": {"relay": {"host": "mx1.hoster.example", "ip": "192.0.2.3", "port": 25}}}, "hoster.example"),
    # contract7: a Postfix log event carries `upstream` too (DESIGN.md), with no `route`: by its source, the
    # host Postfix talked to is still the provider, not taken for a smarthost.
    ({"mta-log": {"relay": {"host": "mx1.hoster.example", "ip": "192.0.2.3", "port": 25},
                  "upstream": {"host": "mx1.hoster.example", "port": 25, "ip": "192.0.2.3"}}}, "hoster.example"),
    ({"mta-log": {"relay": {"host": "none"}}, "text": "550 5.1.1 User unknown"}, None),  # Postfix's relay=none
    ({"dsn": {"remote_mta": "example-com.mail.protection.outlook.com (192.0.2.4)"}}, "outlook.com"),
    ({"dsn": {"remote_mta": "[192.0.2.5]"}}, "192.0.2.5"),
])
def test_the_refusing_provider_is_the_host_that_answered_never_a_smarthost(tmp_path, where, provider):
    # Outcomes._provider: the provider breaker's key (policies/suppression.yaml provider_breaker:), from the
    # host that answered by the way in (_live_host for a live session, _reported_host by the reply's source).
    from types import SimpleNamespace

    from relay.outcomes import Outcomes
    from relay.suppression import load_default

    outcomes = Outcomes(SimpleNamespace(suppression=load_default()), store=None, sinks=None, settings=None)
    text = where.pop("text", "550 5.1.1 <a@b.test>: undeliverable address: host mx.hoster.co.uk[192.0.2.9] said: "
                             "550 5.1.1 no such user (in reply to RCPT TO command)")
    ((way, found),) = where.items()
    host = outcomes._live_host(found) if way == "live" else outcomes._reported_host(way, found)
    assert outcomes._provider(text, host) == provider


def test_what_a_messages_header_adds_to_an_event_is_cut_as_the_rest_is(relay, upstream):
    # review19 F3: a transaction's events take `references`, `in_reply_to` and the correlation headers
    # from the message when it ends (Outcomes.finish), after make_event cut the event's texts: a client's
    # 200 KB References header went into the event whole. It is cut to MAX_EVENT_TEXT with the marker.
    import re

    from relay.events import MAX_EVENT_TEXT
    from tests.support.smtp_client import RawSMTP, send_message

    references = [f"<m-{i}@example.com>" for i in range(10000)]
    body = (b"From: a@sender.test\r\nTo: nosuchuser@dest.test\r\nSubject: hi\r\nMessage-ID: <r@sender.test>\r\n"
            b"References: " + "\r\n ".join(references).encode() + b"\r\n\r\nhello\r\n")
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        replies = send_message(c, "a@sender.test", ["nosuchuser@dest.test", "ok@dest.test"], body)
        c.cmd("QUIT")
    assert replies[1][0] == 550 and replies[-1][0] == 250, replies
    (event,) = [e for e in relay.events(wait_for=2) if e["kind"] == "rejected"]
    kept, _, marker = event["references"].partition(" [... ")
    assert len(kept) == MAX_EVENT_TEXT and kept.startswith(references[0]), kept[:100]
    assert re.fullmatch(r"(\d+) more characters cut by the relay\]", marker), marker[:100]


def _held_list_outcomes(tmp_path, run):
    """run(outcomes, metrics) with the bounce list's write lock held by another process (its writes wait
    30 s for it); returns what run returned and the events written."""
    import sqlite3

    from relay.events import EventSinks
    from relay.metrics import Metrics
    from relay.outcomes import Outcomes
    from relay.store.sqlite import SQLiteBounceStore

    settings = load_settings(write_config(tmp_path, 25))
    policies = load_policies(settings)

    async def main():
        store = SQLiteBounceStore(tmp_path / "bounces.db", write_timeout=30.0)  # the configured list
        sinks = EventSinks.for_command(settings)
        metrics = Metrics()
        lock = sqlite3.connect(tmp_path / "bounces.db", isolation_level=None, timeout=30)
        lock.execute("BEGIN IMMEDIATE")
        try:
            return await run(Outcomes(policies, store, sinks, settings, metrics), metrics)
        finally:
            lock.execute("ROLLBACK")
            lock.close()
            await store.close()
            sinks.close()

    result = asyncio.run(main())
    path = tmp_path / "events.jsonl"
    written = [json.loads(line) for line in (path.read_text() if path.exists() else "").splitlines()]
    for event in written:
        jsonschema.validate(event, SCHEMA)
    return result, written


async def _cancelled_in_the_store(coro):
    """Run `coro` until it waits in the bounce list's write (for the other process's lock, in the store's
    thread), then cancel it there. (Not at its first wait: the store's own writers' queue, whose wait_for
    of Python 3.11 may take the lock and drop a cancellation that comes at the same turn.)"""
    task = asyncio.ensure_future(coro)
    await asyncio.sleep(0.2)  # the loop's turns up to the thread's wait (it lasts 30 s)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("emit", [True, False])
def test_a_result_whose_bounce_list_write_a_stop_cancels_still_has_its_event(tmp_path, emit):
    """A stop (the Postfix log follower's, the bounce listener's cut) cancels observe() in the bounce list's
    write: the result's event was made only after it, and lost. Now it is emitted as the cancellation goes on,
    its list update marked as not done, and counted as relay_bounce_list_unrecorded_total{why="stopped"}; a
    caller that emits only with its answer (the bounce intake, emit=False) gives no answer, and no event."""
    obs = Observation("rejected", "rcpt", "held@example.com", log_reply("550 5.1.1 <held@example.com>: User unknown"))

    async def run(outcomes, metrics):
        await _cancelled_in_the_store(outcomes.observe(obs, emit=emit))
        return metrics.value("relay_bounce_list_unrecorded_total", why="stopped")

    stopped, written = _held_list_outcomes(tmp_path, run)
    assert stopped == 1
    if not emit:
        assert written == []
        return
    # On main (63b3368): [].
    assert [(e["kind"], e["recipient"], e["bounce_list"]) for e in written] == [
        ("rejected", "held@example.com", "error")]
    assert "stopped waiting for the bounce list" in written[0]["bounce_list_error"]


def test_a_refusal_whose_recording_is_given_up_before_it_began_queues_its_events_without_the_list(tmp_path):
    """Outcomes.refused_unrecorded (a command cancelled in a watcher's write after the next hop's refusal was
    read): the refusal's events for every recipient, a recipient it would have counted or listed marked as not
    recorded and counted; nothing waits, nothing touches the store."""
    from relay.decision import Decision, Verdict
    from relay.pipeline import Session, Transaction

    async def run(outcomes, metrics):
        session = Session(id="s1", peer_ip="127.0.0.1", peer_port=1)
        txn = Transaction(session=session, id="t1", mail_from="a@sender.test", rcpts=["gone@example.com"])
        reply = Reply.parse("550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown",
                            source="upstream")
        outcomes.refused_unrecorded(txn, session, "rcpt", ["gone@example.com"], Decision(Verdict.REJECT, reply))
        throttled = Reply.parse("450 4.7.28 Gmail has detected an unusual rate of mail", source="upstream")
        outcomes.refused_unrecorded(txn, session, "rcpt", ["fast@gmail.com"], Decision(Verdict.DEFER, throttled))
        outcomes.finish(txn)
        entries = [e async for e in outcomes.store.iter_entries()]
        return metrics.value("relay_bounce_list_unrecorded_total", why="stopped"), entries

    (stopped, entries), written = _held_list_outcomes(tmp_path, run)
    assert [(e["kind"], e["recipient"], e.get("bounce_list")) for e in written] == [
        ("rejected", "gone@example.com", "error"), ("deferred", "fast@gmail.com", None)]
    assert "stopped waiting for the bounce list" in written[0]["bounce_list_error"]
    assert stopped == 1 and entries == []


@pytest.mark.parametrize("case", ["counted", "never_concerned"])
def test_a_stop_after_the_recipients_list_update_does_not_say_the_failure_was_never_recorded(tmp_path, caplog, case):
    """observe() cancelled by a stop in the domain's evidence (_domain_evidence), after the recipient's own list
    update: a mailbox_disabled failure already counted (list_after 2), or a deferral that never concerned the
    address's record (temporary: never lists). Its event said `bounce_list: error` "... not counted or listed",
    the log "never recorded on the bounce list" (an operator following it would list by hand an address whose
    one failure was meant only to count) and relay_bounce_list_unrecorded_total{why="stopped"} went up (review
    of int2, 2026-12-02, F2). Now the event keeps what the list update said (`counted`, or nothing)."""
    from relay.events import EventSinks
    from relay.metrics import Metrics
    from relay.outcomes import Outcomes
    from relay.store.sqlite import SQLiteBounceStore

    if case == "counted":
        obs = Observation("rejected", "rcpt", "off@example.com",
                          log_reply("550 5.2.1 <off@example.com>: Mailbox disabled for this recipient"))
    else:
        obs = Observation("deferred", "rcpt", "off@example.com", log_reply(
            "450 4.1.1 <off@example.com>: Recipient address rejected: User unknown in virtual mailbox table"))
    settings = load_settings(write_config(tmp_path, 25))
    policies = load_policies(settings)
    reached = []

    async def main():
        store = SQLiteBounceStore(tmp_path / "bounces.db")
        sinks = EventSinks.for_command(settings)
        metrics = Metrics()
        outcomes = Outcomes(policies, store, sinks, settings, metrics)

        async def domain_evidence(*args, **kwargs):  # the stop lands here, the recipient's update done
            reached.append(args[1])
            await asyncio.Event().wait()

        outcomes._domain_evidence = domain_evidence
        try:
            task = asyncio.ensure_future(outcomes.observe(obs))
            while not reached:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            entries = [e async for e in store.iter_entries()]
            return metrics.value("relay_bounce_list_unrecorded_total", why="stopped"), entries
        finally:
            await store.close()
            sinks.close()

    caplog.set_level("INFO", logger="relay")
    unrecorded, entries = asyncio.run(main())
    written = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    for event in written:
        jsonschema.validate(event, SCHEMA)
    assert reached == ["off@example.com"]
    # On int2 (1903d49): bounce_list "error" (STOPPED_RECORDING), the log line, and the metric at 1.
    assert [(e["kind"], e["recipient"], e.get("bounce_list")) for e in written] == [
        (obs.kind, "off@example.com", "counted" if case == "counted" else None)], written
    assert "bounce_list_error" not in written[0]
    assert "never recorded on the bounce list" not in caplog.text
    assert unrecorded == 0
    assert entries == []  # nobody listed (the mailbox_disabled failure is only counted)
