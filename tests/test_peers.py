"""Real peers from Debian: swaks and smtp-source as clients, smtp-sink as the upstream,
and Postfix as a real MTA that relays through us (relayhost = [127.0.0.1]:PORT)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.peers import PostfixInstance, Sink


def swaks(relay, *args) -> subprocess.CompletedProcess:
    return subprocess.run(["swaks", "--server", f"{relay.host}:{relay.port}", "--helo", "swaks.test",
                           "--from", "a@sender.test", "--timeout", "20", *args],
                          capture_output=True, text=True, timeout=60)


def test_swaks_delivers_through_the_relay(relay, upstream):
    out = swaks(relay, "--to", "b@example.com", "--header", "Subject: via swaks")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "<-  250 2.0.0 OK 1700000000 x1si1234567 - gsmtp" in out.stdout
    (msg,) = upstream.wait_for_messages(1)
    assert b"Subject: via swaks" in msg.data and msg.rcpt_tos == ["b@example.com"]


def test_swaks_sees_the_providers_multiline_refusal(relay, upstream):
    out = swaks(relay, "--to", "nosuchuser@gmail.test")
    assert out.returncode != 0
    assert "<** 550-5.1.1 The email account that you tried to reach does not exist. Please try" in out.stdout
    assert "<** 550 5.1.1  https://support.google.com/mail/?p=NoSuchUser" in out.stdout


def test_smtp_source_through_relay_into_smtp_sink(tmp_path, relay_factory):
    sink = Sink(tmp_path)
    try:
        relay = relay_factory(sink.port)
        sink.mark()
        out = subprocess.run(["smtp-source", "-s", "5", "-m", "200", "-l", "2048", "-d", "-f", "a@sender.test",
                              "-t", "b@example.com", f"{relay.host}:{relay.port}"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert sink.wait_for(200, timeout=60), f"sink counted {sink.count}"
        assert sink.count == 200
        assert relay.server.resources.pool.opened <= 5 + 1  # connections are pooled, not one per message
    finally:
        sink.stop()


@pytest.fixture
def postfix(relay):
    # Not under pytest's base temp dir: any pytest run started meanwhile on this machine resets that
    # one to 0700, and Postfix's master (as the postfix user) could no longer open its lock file.
    root = Path(tempfile.mkdtemp(prefix="relay-test-postfix-"))
    root.chmod(0o755)
    instance = PostfixInstance(root / "postfix", sink_port=relay.port, milter_port=0, max_size=10 << 20)
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_postfix_relays_through_us_and_logs_the_upstreams_words(postfix, relay, upstream):
    import smtplib

    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=30) as s:
        s.sendmail("a@sender.test", ["b@example.com"], b"Subject: from postfix\r\n\r\nhello\r\n")
        s.sendmail("a@sender.test", ["nosuchuser@gmail.test"], b"Subject: doomed\r\n\r\nhello\r\n")
    deadline = time.time() + 60
    log = ""
    while time.time() < deadline:
        log = postfix.maillog.read_text(errors="replace") if postfix.maillog.exists() else ""
        delivered = [m for m in upstream.messages if m.rcpt_tos == ["b@example.com"]]
        if delivered and "status=bounced" in log:
            break
        time.sleep(0.2)
    assert any(m.rcpt_tos == ["b@example.com"] and b"Subject: from postfix" in m.data for m in upstream.messages)
    bounced = [line for line in log.splitlines() if "nosuchuser@gmail.test" in line and "status=bounced" in line]
    assert bounced, log[-3000:]
    # Postfix reports the provider's own reply, relayed verbatim by us.
    assert "said: 550-5.1.1 The email account that you tried to reach does not exist." in bounced[0]
    assert "(in reply to RCPT TO command)" in bounced[0]
    kinds = [e["kind"] for e in relay.events(wait_for=2)]
    assert "rejected" in kinds and "bounce_listed" in kinds
