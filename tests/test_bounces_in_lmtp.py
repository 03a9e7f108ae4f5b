"""`bounces_in.protocol: lmtp` (review22 F1; DESIGN.md: bounces_in listens for "SMTP (or LMTP)"): an MTA
that hands the bounce domains' mail on over LMTP (RFC 2033; Postfix's lmtp(8) through `transport_maps`)
delivers to the listener. LHLO instead of HELO/EHLO (4.1); after the final dot, one reply per recipient
accepted at RCPT, in order (4.2), each 250 said only once that recipient's failures are recorded, a
recipient whose recording failed getting its own 451. The same refusals as SMTP: only the bounce
domains, never an open relay. Through a running relay, with a raw LMTP client over loopback."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from tests.support.smtp_client import RawSMTP
from tests.test_bounces_in import BOUNCE_DOMAIN, dsn_for, relay_one, start_verp_relay
from tests.test_postfix_log_cli import REPO

LMTP = {"protocol": "lmtp"}


def lmtp(relay, sender: str, rcpts: list[str], message: bytes, timeout: float = 30.0):
    """LHLO, MAIL, RCPT..., DATA and the message: (RCPT replies, the replies after the final dot, one
    read per RCPT accepted)."""
    with RawSMTP(relay.host, relay.intake_port, timeout=timeout) as c:
        assert c.greeting[0] == 220 and "LMTP" in c.greeting[1], c.greeting
        code, text = c.cmd("LHLO mta.example.net")
        assert code == 250 and "PIPELINING" in text and "ENHANCEDSTATUSCODES" in text, text
        assert c.cmd(f"MAIL FROM:<{sender}>")[0] == 250
        rcpt_replies = [c.cmd(f"RCPT TO:<{r}>") for r in rcpts]
        accepted = sum(code == 250 for code, _ in rcpt_replies)
        assert c.cmd("DATA")[0] == 354
        c.send(message + (b"" if message.endswith(b"\r\n") else b"\r\n") + b".\r\n")
        finals = [c.reply() for _ in range(accepted)]
        assert c.cmd("NOOP")[0] == 250  # nothing more was said after the last recipient's reply
    return rcpt_replies, finals


def test_a_dsn_over_lmtp_becomes_a_bounced_event_and_each_recipient_gets_its_reply(tmp_path, upstream, relay_factory):
    relay = start_verp_relay(tmp_path, upstream, relay_factory, intake=LMTP)
    return_path = relay_one(relay, upstream)
    rcpt_replies, finals = lmtp(relay, "", [return_path, "someone@example.org", f"postmaster@{BOUNCE_DOMAIN}"],
                                dsn_for(return_path))
    assert [code for code, _ in rcpt_replies] == [250, 550, 250]
    assert rcpt_replies[1][1].startswith("550 5.7.1 <someone@example.org>: relaying denied"), rcpt_replies
    # One reply per accepted recipient, in the order of their RCPTs (RFC 2033 4.2).
    assert finals == [(250, "250 2.0.0 Recorded 1 failure(s)"), (250, "250 2.0.0 Received (postmaster: not recorded)")]
    events = relay.events(wait_for=2)
    bounced = [e for e in events if e["kind"] == "bounced"]
    assert [e["recipient"] for e in bounced] == ["alice@dest.example"]
    assert bounced[0]["message_id"] == "<m-1@example.com>" and bounced[0]["reply"]["source"] == "dsn"
    assert [e["kind"] for e in events] == ["bounced", "bounce_listed"]


def test_lmtp_takes_only_lhlo_and_only_the_bounce_domains(tmp_path, upstream, relay_factory):
    relay = start_verp_relay(tmp_path, upstream, relay_factory, intake=LMTP)
    with RawSMTP(relay.host, relay.intake_port) as c:
        for verb in ("EHLO", "HELO"):
            code, text = c.cmd(f"{verb} mta.example.net")
            assert code == 500 and "LHLO" in text, text
        assert c.cmd("MAIL FROM:<>")[0] == 503  # no LHLO yet
        assert c.cmd("LHLO mta.example.net")[0] == 250
        assert c.cmd("MAIL FROM:<>")[0] == 250
        # Never an open relay: any other domain, and a return path that is not ours, are refused.
        assert c.cmd("RCPT TO:<bob@gmail.com>")[1].startswith("550 5.7.1 <bob@gmail.com>: relaying denied")
        assert c.cmd(f"RCPT TO:<forged@{BOUNCE_DOMAIN}>")[1].startswith("550 5.7.1 ")
        assert c.cmd("DATA")[0] == 503  # no recipient accepted
    assert relay.events(wait_for=0, timeout=1) == []
    # The relay's own listener still speaks SMTP.
    with RawSMTP(relay.host, relay.port) as c:
        assert c.cmd("EHLO client.test")[0] == 250


def test_a_recipient_whose_recording_failed_gets_its_own_451(tmp_path, upstream, relay_factory):
    # Two sends, two return paths; one report about both failures, delivered to both. Alice's "user
    # unknown" must be written to the bounce list, which another process holds locked: her return path
    # gets 451 (the MTA retries that recipient only). Bob's mailbox full writes nothing: his gets 250
    # and his event, and only his.
    relay = start_verp_relay(tmp_path, upstream, relay_factory, intake=LMTP)
    rp_alice = relay_one(relay, upstream)
    rp_bob = relay_one(relay, upstream, rcpt="bob@dest.example", nth=2)
    both = dsn_for(rp_alice).replace(
        b"--B\r\nContent-Type: text/rfc822-headers",
        b"\r\nFinal-Recipient: rfc822; bob@dest.example\r\nAction: failed\r\nStatus: 5.2.2\r\n"
        b"Diagnostic-Code: smtp; 552 5.2.2 <bob@dest.example>: mailbox full\r\n--B\r\nContent-Type: text/rfc822-headers", 1)
    assert b"bob@dest.example" in both
    db = sqlite3.connect(tmp_path / "bounces.db", isolation_level=None, check_same_thread=False)
    db.execute("BEGIN IMMEDIATE")
    try:
        _, finals = lmtp(relay, "", [rp_alice, rp_bob], both, timeout=60)
    finally:
        db.execute("COMMIT")
        db.close()
    assert finals[0][0] == 451 and finals[0][1].startswith("451 4.3.0 Bounce read, but the bounce list"), finals
    assert finals[1] == (250, "250 2.0.0 Recorded 1 failure(s)"), finals
    events = relay.events(wait_for=1, timeout=3)
    assert [(e["kind"], e["recipient"]) for e in events] == [("bounced", "bob@dest.example")], events
    # The reporting MTA's retry, to alice's return path alone, records hers.
    _, finals = lmtp(relay, "", [rp_alice], both)
    assert finals == [(250, "250 2.0.0 Recorded 1 failure(s); 1 not recipients of that transaction: ignored")]
    events = relay.events(wait_for=3)
    # bob is no recipient of alice's transaction, but he was one of bob's, recorded at the first attempt
    # of this same message: no "forged or misdirected" warning about him (it was one before).
    assert [(e["kind"], e["recipient"]) for e in events[1:]] == [("bounced", "alice@dest.example"),
                                                                   ("bounce_listed", "alice@dest.example")]


def test_a_retry_after_a_partial_451_does_not_warn_again(tmp_path, upstream, relay_factory):
    # The report also names zed, a recipient of neither transaction: its verp_recipient warning is told
    # with the first attempt's 250 (to bob's return path), and not again at the retry to alice's. Before,
    # the retry warned about zed a second time, and about bob ("not a recipient: forged or misdirected")
    # though his failure had just been recorded against his own transaction.
    relay = start_verp_relay(tmp_path, upstream, relay_factory, intake=LMTP)
    rp_alice = relay_one(relay, upstream)
    rp_bob = relay_one(relay, upstream, rcpt="bob@dest.example", nth=2)
    block = ("\r\nFinal-Recipient: rfc822; {0}\r\nAction: failed\r\nStatus: 5.2.2\r\n"
             "Diagnostic-Code: smtp; 552 5.2.2 <{0}>: mailbox full\r\n")
    report = dsn_for(rp_alice).replace(
        b"--B\r\nContent-Type: text/rfc822-headers",
        (block.format("bob@dest.example") + block.format("zed@dest.example")).encode() +
        b"--B\r\nContent-Type: text/rfc822-headers", 1)
    db = sqlite3.connect(tmp_path / "bounces.db", isolation_level=None, check_same_thread=False)
    db.execute("BEGIN IMMEDIATE")
    try:
        _, finals = lmtp(relay, "", [rp_alice, rp_bob], report, timeout=60)
    finally:
        db.execute("COMMIT")
        db.close()
    assert [code for code, _ in finals] == [451, 250], finals
    first = relay.events(wait_for=2, timeout=3)
    assert sorted((e["kind"], e["recipient"]) for e in first) == [("bounced", "bob@dest.example"),
                                                                  ("warning", "zed@dest.example")], first
    _, finals = lmtp(relay, "", [rp_alice], report)
    assert [code for code, _ in finals] == [250], finals
    events = relay.events(wait_for=len(first) + 2)
    later = events[len(first):]
    assert [(e["kind"], e["recipient"]) for e in later] == [("bounced", "alice@dest.example"),
                                                            ("bounce_listed", "alice@dest.example")], later
    assert not [e for e in relay.events(wait_for=len(events) + 1, timeout=1)[len(events):]]


def test_a_message_refused_whole_is_refused_for_each_recipient(tmp_path, upstream, relay_factory):
    relay = start_verp_relay(tmp_path, upstream, relay_factory, intake={**LMTP, "max_message_size": 2000})
    return_path = relay_one(relay, upstream)
    _, finals = lmtp(relay, "", [return_path, f"postmaster@{BOUNCE_DOMAIN}"],
                     dsn_for(return_path) + b"x" * 3000 + b"\r\n")
    assert [code for code, _ in finals] == [552, 552], finals
    assert all(text.startswith("552 5.3.4 ") for _, text in finals), finals


def test_the_protocol_is_checked_at_load(tmp_path):
    config = tmp_path / "relay.yaml"
    config.write_text("hostname: relay.example.com\nbounces_in: {listen: '127.0.0.1:2526', domains: [b.example.com], "
                      "protocol: lmtp}\n")
    ok = subprocess.run([sys.executable, "-m", "relay", "check-config", "-c", str(config)], capture_output=True,
                        text=True, cwd=REPO, timeout=60)
    assert ok.returncode == 0, ok.stderr
    config.write_text(config.read_text().replace("protocol: lmtp", "protocol: LMTPS"))
    bad = subprocess.run([sys.executable, "-m", "relay", "check-config", "-c", str(config)], capture_output=True,
                         text=True, cwd=REPO, timeout=60)
    assert bad.returncode == 1
    said = bad.stdout + bad.stderr
    assert f"{config}: bounces_in.protocol: expected smtp or lmtp, got 'LMTPS'" in said, said
    assert "Traceback" not in said


def test_postfix_delivers_bounces_to_the_listener_with_its_lmtp_client(tmp_path, upstream, relay_factory):
    # A real Postfix (Debian's, a private instance) receiving the bounce domain's mail and handing it on
    # with lmtp(8), as docs/bounces-in.md configures it: transport_maps -> lmtp:inet:127.0.0.1:PORT.
    import shutil
    import smtplib
    import tempfile
    import time
    from pathlib import Path

    from tests.support.peers import PostfixInstance

    relay = start_verp_relay(tmp_path, upstream, relay_factory, intake=LMTP)
    return_path = relay_one(relay, upstream)
    root = Path(tempfile.mkdtemp(prefix="relay-test-postfix-"))  # not under pytest's base temp dir
    root.chmod(0o755)
    postfix = PostfixInstance(root / "postfix", sink_port=upstream.port, milter_port=0, max_size=10 << 20)
    postfix._postconf({"relay_domains": BOUNCE_DOMAIN,
                       "transport_maps": f"inline:{{{BOUNCE_DOMAIN}=lmtp:inet:127.0.0.1:{relay.intake_port}}}"})
    postfix.start()
    try:
        with smtplib.SMTP("127.0.0.1", postfix.port, timeout=30) as s:
            s.sendmail("", [return_path, f"postmaster@{BOUNCE_DOMAIN}"], dsn_for(return_path))
        deadline = time.monotonic() + 60
        sent: list[str] = []
        while time.monotonic() < deadline and len(sent) < 2:
            log = postfix.maillog.read_text(errors="replace") if postfix.maillog.exists() else ""
            sent = [line for line in log.splitlines() if "status=sent" in line]
            time.sleep(0.2)
        log = postfix.maillog.read_text(errors="replace") if postfix.maillog.exists() else ""
        assert len(sent) == 2, log[-3000:]
        # Each recipient's own reply, as Postfix's lmtp client logged it.
        assert any(f"to=<{return_path.lower()}>" in line.lower() and "relay=127.0.0.1[127.0.0.1]:" in line
                   and "(250 2.0.0 Recorded 1 failure(s))" in line for line in sent), sent
        assert any(f"to=<postmaster@{BOUNCE_DOMAIN}>" in line and "(250 2.0.0 Received (postmaster: not recorded))"
                   in line for line in sent), sent
        events = relay.events(wait_for=2, timeout=30)
        assert [(e["kind"], e["recipient"]) for e in events] == [("bounced", "alice@dest.example"),
                                                               ("bounce_listed", "alice@dest.example")]
    finally:
        postfix.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_per_recipient_replies_have_a_typed_home_of_their_own():
    # DESIGN.md: state that steps share has a typed home, not a loose key in Transaction.notes. Each
    # transaction starts with its own empty mapping (SMTP: one reply for the message), never one shared
    # with another transaction.
    from relay.decision import Reply
    from relay.pipeline import Session, Transaction
    session = Session("s1", "127.0.0.1", 40000)
    first, second = Transaction(session, "t1", ""), Transaction(session, "t2", "")
    assert first.replies_by_recipient == {} and second.replies_by_recipient == {}
    first.replies_by_recipient["a@b.example"] = Reply.make(250, "2.0.0", "Recorded 1 failure(s)")
    assert second.replies_by_recipient == {} and "replies_by_recipient" not in first.notes


def test_a_refused_message_gets_one_reply_per_recipient_never_counted_as_errors(tmp_path, upstream, relay_factory):
    # review23 F2: RFC 2033 4.2, exactly one reply per accepted recipient after the final dot. A message
    # refused whole (here a NUL in it, 550 5.6.0) for 25 recipients is one verdict: the replies after
    # the first were counted as the client's errors, so past limits.soft_error_limit each was delayed
    # and at limits.error_limit (20) the connection closed with 421, recipients 22-25 never answered.
    relay = start_verp_relay(tmp_path, upstream, relay_factory, intake=LMTP)
    rcpts = [f"postmaster@{BOUNCE_DOMAIN}"] * 25
    rcpt_replies, finals = lmtp(relay, "", rcpts, b"Subject: x\r\n\r\nnul \x00 here\r\n", timeout=60)
    assert [code for code, _ in rcpt_replies] == [250] * 25
    assert len(finals) == 25 and all(text.startswith("550 5.6.0") for _, text in finals), finals
