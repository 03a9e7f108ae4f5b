"""Postfix as the client of a relay in mode mx: one message to three domains, three destinations.

The relay holds one destination per transaction and answers a recipient for another one
`452 4.5.3`. What Postfix makes of that decides how promptly the other domains get their
copy (docs/delivery.md, "Postfix as the client")."""

from __future__ import annotations

import shutil
import smtplib
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.peers import PostfixInstance
from tests.support.upstream import FakeUpstream, free_port

RCPTS = ["a@one.test", "b@two.test", "c@three.test"]


@pytest.fixture
def destinations(dns):
    """Three domains, each with its own MX host on 127.0.0.2/.3/.4 (one port)."""
    port = free_port()
    servers = {}
    for n, (domain, address) in enumerate([("one.test", "127.0.0.2"), ("two.test", "127.0.0.3"),
                                          ("three.test", "127.0.0.4")]):
        servers[domain] = FakeUpstream(hostname=f"mx.{domain}", address=address, port=port).start()
        dns.zone.add(domain, "MX", (10, f"mx.{domain}"))
        dns.zone.add(f"mx.{domain}", "A", address)
    yield port, servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def mx_relay(dns, destinations, relay_factory):
    port, _ = destinations
    return relay_factory(0, upstream={"mode": "mx", "host": None, "port": port, "mx_internal_networks": ["127.0.0.0/8"]},
                         resolver={"nameservers": [dns.nameserver], "timeout": 2})


def start_postfix(relay, **settings) -> tuple[PostfixInstance, Path]:
    # Not under pytest's base temp dir (see tests/test_peers.py).
    root = Path(tempfile.mkdtemp(prefix="relay-test-postfix-"))
    root.chmod(0o755)
    instance = PostfixInstance(root / "postfix", sink_port=relay.port, milter_port=0, max_size=10 << 20)
    main = {k: v for k, v in settings.items() if "/" not in k}
    master = [f"{k}={v}" for k, v in settings.items() if "/" in k]  # service/type/field, master.cf
    if main:
        instance._postconf(main)
    if master:
        subprocess.run(["postconf", "-c", str(instance.etc), "-F", *master], check=True, capture_output=True,
                       timeout=30)
    instance.start()
    return instance, root


@pytest.fixture
def postfix_with(mx_relay):
    started = []

    def start(**settings):
        instance, root = start_postfix(mx_relay, **settings)
        started.append((instance, root))
        return instance

    yield start
    for instance, root in started:
        instance.stop()
        shutil.rmtree(root, ignore_errors=True)


def submit(postfix: PostfixInstance) -> None:
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=30) as s:
        s.sendmail("app@sender.test", RCPTS, b"Subject: to three domains\r\nMessage-ID: <3@sender.test>\r\n\r\nhi\r\n")


def wait_delivered(servers, timeout: float) -> dict[str, list[str]]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = {d: [r for m in s.messages for r in m.rcpt_tos] for d, s in servers.items()}
        if all(got.values()):
            return got
        time.sleep(0.2)
    return {d: [r for m in s.messages for r in m.rcpt_tos] for d, s in servers.items()}


def log_lines(postfix: PostfixInstance, what: str) -> list[str]:
    text = postfix.maillog.read_text(errors="replace") if postfix.maillog.exists() else ""
    return [line for line in text.splitlines() if what in line]


def why_not_delivered(postfix: PostfixInstance, relay) -> str:
    """What a failure needs to be understood, short enough not to be cut: Postfix's verdicts and
    warnings, and what the relay recorded."""
    lines = [line.split(": ", 1)[-1] for line in log_lines(postfix, "")
             if any(word in line for word in ("status=", "warning", "fatal", "panic", "error"))]
    events = [(e["kind"], e.get("stage"), (e.get("reply") or {}).get("text")) for e in relay.events()]
    queued = sorted(f"{p.relative_to(postfix.spool)} mtime-now={p.stat().st_mtime - time.time():.0f}s"
                    for sub in ("active", "deferred", "incoming") for p in (postfix.spool / sub).rglob("*")
                    if p.is_file())
    last = [line.split(": ", 1)[-1] for line in log_lines(postfix, "")[-25:]]
    return "\n".join(["postfix:"] + lines + ["relay events:"] + [str(e) for e in events] + ["queue:"] + queued
                     + [f"now {time.strftime('%H:%M:%S')}; maillog, last lines:"] + last)


def test_postfix_defers_the_452_recipients_to_its_queue(postfix_with, destinations, mx_relay):
    """With main.cf defaults (Postfix 3.7), all three recipients go in one transaction (one
    nexthop: the relay). The two the relay answers 452 4.5.3 are deferred: they wait in the
    queue for its back-off (minimal_backoff_time, 300 s by default; cut to 1 s here) and are
    not sent in a new transaction of the same session. Each queue run delivers one more
    destination, so N destinations take N delivery attempts."""
    _, servers = destinations
    # qmgr/unix/wakeup: when the qmgr meets the message still locked by the delivery agent of the
    # try before (likely with a 1 s back-off), it logs "skipped, still being delivered" and puts it
    # back in the incoming queue, which it scans again only when woken: by the master every 300 s
    # (master.cf's wakeup), cut to 1 s like the back-off. Before, the test then waited out 120 s.
    postfix = postfix_with(minimal_backoff_time="1s", maximal_backoff_time="2s", queue_run_delay="1s",
                           **{"qmgr/unix/wakeup": "1"})
    submit(postfix)
    got = wait_delivered(servers, timeout=120)
    assert sorted(r for rcpts in got.values() for r in rcpts) == sorted(RCPTS), why_not_delivered(postfix, mx_relay)
    attempts = log_lines(postfix, "(queue active)")
    deferred = log_lines(postfix, "status=deferred")
    assert len(attempts) == 3, attempts
    assert len(deferred) == 2 + 1 and all("said: 452 4.5.3 Recipient" in line for line in deferred), deferred
    assert len(log_lines(postfix, "status=sent")) == 3


def test_postfix_with_a_recipient_limit_of_one_sends_each_domain_promptly(postfix_with, destinations, mx_relay):
    """`smtp_destination_recipient_limit = 1` (the smtp transport's recipients per delivery): one
    transaction per recipient, so the relay never needs to say 452 and nothing waits in the queue."""
    _, servers = destinations
    postfix = postfix_with(smtp_destination_recipient_limit="1")
    submit(postfix)
    got = wait_delivered(servers, timeout=120)
    assert got == {"one.test": ["a@one.test"], "two.test": ["b@two.test"], "three.test": ["c@three.test"]}
    assert log_lines(postfix, "status=deferred") == []
    assert not [e for e in mx_relay.events() if e["kind"] == "deferred"]
