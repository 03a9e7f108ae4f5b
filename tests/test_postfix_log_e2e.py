"""Postfix delivers, the relay learns: a private Postfix (maillog_file) relays to an upstream that
answers like Gmail and Microsoft, and the relay, following Postfix's own log, turns its real lines into
events with the provider's verbatim reply and lists exactly the addresses that should be listed.
Rotation (`postfix logrotate`), restart and resume with the real log."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.support.peers import PostfixInstance
from tests.support.relay_proc import RunningRelay, write_config
from tests.support.upstream import (GMAIL_MAILBOX_FULL, GMAIL_NO_SUCH_USER, GMAIL_RATE_LIMIT,
                                    MICROSOFT_ACCESS_DENIED, SENDER_REFUSED, SENDER_REFUSED_AT_RCPT)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def postfix(upstream):
    # Not under pytest's own temp root: that one is 0700 and other pytest runs on the machine set it back
    # to 0700 while this one runs, which locks Postfix's own users out of its queue.
    root = Path(tempfile.mkdtemp(prefix="relay-pflog-"))
    instance = PostfixInstance(root / "postfix", sink_port=upstream.port, milter_port=0, max_size=10 << 20)
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def follower_config(tmp_path, postfix):
    return write_config(tmp_path, 0, listen=None, upstream=None,
                        postfix_log={"path": str(postfix.maillog), "state_directory": str(tmp_path / "state")},
                        correlation={"sender_patterns": [r"^bounces\+(?P<conversation_id>[^@]+)@"]})


def send(postfix, sender, rcpt, subject="hello") -> str:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, rcpt, subject
    msg["Message-ID"] = mid = f"<{subject.replace(' ', '-')}.{time.monotonic_ns()}@sender.test>"
    msg.set_content("hello\n")
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=30) as s:
        s.send_message(msg, from_addr=sender, to_addrs=[rcpt])
    return mid


def wait_for_log(postfix, pattern: str, count: int = 1, timeout: float = 60) -> list[str]:
    """Lines of Postfix's log (current and rotated) matching pattern, once there are `count`."""
    rx = re.compile(pattern)
    deadline = time.time() + timeout
    while True:
        found = []
        for path in sorted(postfix.maillog.parent.glob(postfix.maillog.name + "*")):
            found += [line for line in path.read_text(errors="replace").splitlines() if rx.search(line)]
        if len(found) >= count or time.time() > deadline:
            return found
        time.sleep(0.1)


def wait_for_results(relay, n: int, timeout: float = 90) -> list[dict]:
    """Until the relay wrote n rejected/deferred events (or the timeout passed: the asserts then say what is missing)."""
    deadline = time.time() + timeout
    while True:
        events = relay.events()
        if sum(e["kind"] in ("rejected", "deferred") for e in events) >= n or time.time() > deadline:
            return events
        time.sleep(0.1)


def wait_idle(relay) -> None:
    """Until the follower has read everything Postfix logged so far."""
    async def idle():
        follower = relay.server.follower
        follower.idle.clear()
        await asyncio.wait_for(follower.idle.wait(), 30)
    relay.call(idle(), timeout=40)


def listed(config) -> set[str]:
    out = subprocess.run([sys.executable, "-m", "relay", "bounces", "list", "--json", "-c", str(config)],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    return {e["address"] for e in json.loads(out.stdout)}


def by_recipient(events, kind):
    return {e["recipient"]: e for e in events if e["kind"] == kind}


def test_the_follower_turns_postfix_deliveries_into_events_and_listings(postfix, follower_config, upstream):
    relay = RunningRelay(follower_config)
    try:
        mids = {
            "nosuchuser@gmail.test": send(postfix, "bounces+c42@sender.test", "nosuchuser@gmail.test", "one"),
            "full@gmail.test": send(postfix, "a@sender.test", "full@gmail.test", "two"),
            "accessdenied@outlook.test": send(postfix, "a@sender.test", "accessdenied@outlook.test", "three"),
            "someone@gmail.test": send(postfix, "refusedsender@sender.test", "someone@gmail.test", "four"),
            "senderrefused@gmail.test": send(postfix, "a@sender.test", "senderrefused@gmail.test", "five"),
            "ok@example.com": send(postfix, "a@sender.test", "ok@example.com", "six"),
        }
        # 5 failures; the delivered message makes no event.
        wait_for_results(relay, 5)
        # A 421 makes Postfix suspend the whole destination: the rate limit comes last, alone.
        mids["ratelimit@gmail.test"] = send(postfix, "a@sender.test", "ratelimit@gmail.test", "seven")
        wait_for_results(relay, 6)
        wait_idle(relay)
        events = relay.events()
        metrics = relay.server.metrics.render()
    finally:
        relay.stop()

    assert "relay_postfix_log_failures_total 6" in metrics
    rejected, deferred = by_recipient(events, "rejected"), by_recipient(events, "deferred")
    assert set(rejected) == {"nosuchuser@gmail.test", "full@gmail.test", "accessdenied@outlook.test",
                             "someone@gmail.test", "senderrefused@gmail.test"}
    assert set(deferred) == {"ratelimit@gmail.test"}
    assert len([e for e in events if e["kind"] in ("rejected", "deferred")]) == 6  # each result once

    # The provider's reply, verbatim and line by line, although Postfix logged it as one line.
    for rcpt, wire, stage in (("nosuchuser@gmail.test", GMAIL_NO_SUCH_USER, "rcpt"),
                              ("full@gmail.test", GMAIL_MAILBOX_FULL, "data"),
                              ("accessdenied@outlook.test", MICROSOFT_ACCESS_DENIED, "rcpt"),
                              ("someone@gmail.test", SENDER_REFUSED, "mail"),
                              ("senderrefused@gmail.test", SENDER_REFUSED_AT_RCPT, "rcpt")):
        event = rejected[rcpt]
        assert event["reply"]["text"] == wire.replace("\r\n", "\n"), rcpt
        assert event["reply"]["source"] == "mta-log" and event["stage"] == stage, rcpt
        assert event["message_id"] == mids[rcpt]
    assert deferred["ratelimit@gmail.test"]["reply"]["text"] == GMAIL_RATE_LIMIT.replace("\r\n", "\n")
    assert deferred["ratelimit@gmail.test"]["classification"]["category"] == "rate_limited"

    # Correlation across Postfix's processes: sender (with its VERP fields), queue id, relay, delay.
    gone = rejected["nosuchuser@gmail.test"]
    assert gone["sender"] == "bounces+c42@sender.test" and gone["conversation_id"] == "c42"
    (line,) = wait_for_log(postfix, r"to=<nosuchuser@gmail\.test>.*status=bounced")
    assert gone["queue_id"] == re.search(r"\]: ([0-9A-F]+): to=", line).group(1)
    assert gone["relay"] == {"host": "127.0.0.1", "ip": "127.0.0.1", "port": upstream.port}
    assert gone["delay"] >= 0 and gone["dsn"] == {"status": "5.1.1"}
    assert gone["classification"]["category"] == "unknown_recipient"
    assert rejected["someone@gmail.test"]["sender"] == "refusedsender@sender.test"

    # Exactly the addresses refused for what they are; never for the sender or the message.
    assert listed(follower_config) == {"nosuchuser@gmail.test", "accessdenied@outlook.test"}
    assert set(by_recipient(events, "bounce_listed")) == {"nosuchuser@gmail.test", "accessdenied@outlook.test"}
    assert rejected["someone@gmail.test"]["classification"]["scope"] == "sender"
    assert rejected["senderrefused@gmail.test"]["classification"]["scope"] == "sender"
    assert rejected["full@gmail.test"]["classification"]["scope"] == "message"


def test_restart_and_rotation_resume_without_reading_a_line_twice(postfix, follower_config):
    relay = RunningRelay(follower_config)
    try:
        send(postfix, "a@sender.test", "nosuchuser@first.test")
        wait_for_results(relay, 1)
        wait_idle(relay)
    finally:
        relay.stop()

    # While the relay is stopped: one bounce in the old file, Postfix rotates its log, one in the new.
    send(postfix, "a@sender.test", "nosuchuser@second.test")
    assert wait_for_log(postfix, r"nosuchuser@second\.test.*status=bounced")
    out = subprocess.run(["postfix", "-c", str(postfix.etc), "logrotate"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert len(list(postfix.maillog.parent.glob(postfix.maillog.name + ".*"))) == 1
    send(postfix, "a@sender.test", "nosuchuser@third.test")
    assert wait_for_log(postfix, r"nosuchuser@third\.test.*status=bounced")

    relay = RunningRelay(follower_config)
    try:
        wait_for_results(relay, 3)
        wait_idle(relay)
    finally:
        relay.stop()
    # And once more with nothing new: nothing is read again.
    relay = RunningRelay(follower_config)
    try:
        wait_idle(relay)
        events = relay.events()
    finally:
        relay.stop()

    rejected = [e["recipient"] for e in events if e["kind"] == "rejected"]
    assert sorted(rejected) == ["nosuchuser@first.test", "nosuchuser@second.test", "nosuchuser@third.test"]
    assert sorted(e["recipient"] for e in events if e["kind"] == "bounce_listed") == sorted(rejected)
    assert listed(follower_config) == set(rejected)


def test_milter_and_follower_close_the_loop(tmp_path, upstream):
    """Postfix delivers and the provider refuses; the follower lists the address from Postfix's log;
    the next message to it is refused by Postfix at RCPT through the relay's milter."""
    root = Path(tempfile.mkdtemp(prefix="relay-pflog-milter-"))
    root.chmod(0o755)
    maillog = root / "postfix" / "maillog"  # PostfixInstance's maillog_file, before Postfix exists
    config = write_config(tmp_path, 0, listen=[], upstream=None, milter={"listen": "127.0.0.1:0"},
                          postfix_log={"path": str(maillog), "state_directory": str(tmp_path / "state")})
    relay = RunningRelay(config)
    postfix = None
    try:
        postfix = PostfixInstance(root / "postfix", sink_port=upstream.port, milter_port=relay.milter_port,
                                  max_size=10 << 20)
        postfix.start()
        assert postfix.maillog == maillog
        send(postfix, "a@sender.test", "nosuchuser@gmail.test", "first")
        events = wait_for_results(relay, 1)
        deadline = time.time() + 30
        while not any(e["kind"] == "bounce_listed" for e in events) and time.time() < deadline:
            time.sleep(0.1)
            events = relay.events()
        (listing,) = [e for e in events if e["kind"] == "bounce_listed"]
        assert listing["recipient"] == "nosuchuser@gmail.test"
        assert listing["reply"]["text"] == GMAIL_NO_SUCH_USER.replace("\r\n", "\n")

        with smtplib.SMTP("127.0.0.1", postfix.port, timeout=60) as s:
            s.ehlo("client.test")
            assert s.mail("a@sender.test")[0] == 250
            code, text = s.rcpt("nosuchuser@gmail.test")
            assert code == 550, text
            assert text.decode().startswith("5.1.1 <nosuchuser@gmail.test> is on this relay's bounce list since")
        upstream_rcpts = [c for c in upstream.commands if c == "RCPT nosuchuser@gmail.test"]
        assert len(upstream_rcpts) == 1  # the second message never reached the provider
    finally:
        if postfix is not None:
            postfix.stop()
        relay.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def soft_bouncing_postfix(upstream):
    root = Path(tempfile.mkdtemp(prefix="relay-pflog-"))
    instance = PostfixInstance(root / "postfix", sink_port=upstream.port, milter_port=0, max_size=10 << 20)
    instance._postconf({"soft_bounce": "yes"})  # what operators switch on while testing or migrating
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_soft_bounce_results_are_failures_judged_by_the_providers_reply(soft_bouncing_postfix, tmp_path):
    # With soft_bounce = yes Postfix logs `status=SOFTBOUNCE` (capitals, dsn=4.1.1 for Gmail's 550 5.1.1) and
    # keeps retrying; the parser read lower-case statuses only and ignored every such line (review26 F2).
    # Postfix will retry: a deferral; the reply says what the failure is, and the funnel lists the address.
    postfix = soft_bouncing_postfix
    config = write_config(tmp_path, 0, listen=None, upstream=None,
                          postfix_log={"path": str(postfix.maillog), "state_directory": str(tmp_path / "state")})
    relay = RunningRelay(config)
    try:
        mid = send(postfix, "a@sender.test", "nosuchuser@gmail.test", "soft")
        events = wait_for_results(relay, 1)
        wait_idle(relay)
        events = relay.events()
    finally:
        relay.stop()
    (line,) = wait_for_log(postfix, r"to=<nosuchuser@gmail\.test>.*status=")[:1]
    assert "status=SOFTBOUNCE" in line and "dsn=4.1.1" in line, line
    (event,) = [e for e in events if e["kind"] in ("rejected", "deferred")]
    assert event["kind"] == "deferred" and event["recipient"] == "nosuchuser@gmail.test"
    assert event["reply"]["text"] == GMAIL_NO_SUCH_USER.replace("\r\n", "\n")
    assert event["message_id"] == mid and event["stage"] == "rcpt"
    assert event["postfix"]["status"] == "softbounce" and event["dsn"] == {"status": "4.1.1"}
    assert event["classification"]["category"] == "unknown_recipient"
    assert listed(config) == {"nosuchuser@gmail.test"}


def test_a_soft_bounce_postfix_found_itself_is_read_as_the_permanent_failure_it_was():
    # soft_bounce = yes makes the dsn's first digit 4; a SOFTBOUNCE is always a bounce kept back, so the
    # reply Postfix stands in for (no server said it) carries the bounce's 5.
    from relay.intake.postfix_events import postfix_reply
    from relay.intake.postfix_log import parse_record

    d = parse_record("4F9D21C2E: to=<nobody@host.example>, relay=local, delay=0.02, delays=0.01/0/0/0.01, "
                     "dsn=4.1.1, status=SOFTBOUNCE (unknown user: \"nobody\")", "local")
    assert d is not None and d.status == "softbounce" and d.dsn == "4.1.1"
    assert postfix_reply(d).text == '5.1.1 unknown user: "nobody"'
    deferred = parse_record("4F9D21C2E: to=<a@b.example>, relay=none, delay=1, dsn=4.4.1, "
                            "status=deferred (connect to b.example[192.0.2.1]:25: Connection refused)", "smtp")
    assert deferred.status == "deferred" and postfix_reply(deferred).text.startswith("4.4.1 ")
