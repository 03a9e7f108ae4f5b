"""The relay end to end over loopback: client socket -> relay -> Gmail-like upstream."""

from __future__ import annotations

import socket
import time

import pytest

from tests.support.processes import wait_until
from tests.support.smtp_client import RawSMTP, send_message
from tests.support.upstream import (GMAIL_MAILBOX_FULL, GMAIL_NO_SUCH_USER, GMAIL_RATE_LIMIT, GMAIL_SPAM,
                                    closed_port)

BODY = b"From: a@sender.test\r\nTo: b@example.com\r\nSubject: hello\r\nMessage-ID: <m1@sender.test>\r\n\r\nHi.\r\n"


def client(relay) -> RawSMTP:
    c = RawSMTP(relay.host, relay.port)
    assert c.cmd("EHLO client.test")[0] == 250
    return c


def test_ehlo_advertises_size_pipelining_8bitmime_smtputf8(relay):
    with RawSMTP(relay.host, relay.port) as c:
        assert c.greeting[0] == 220
        code, text = c.cmd("EHLO client.test")
        assert code == 250
        for ext in ("SIZE 36700160", "PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES"):
            assert f"250-{ext}" in text or f"250 {ext}" in text
        assert "AUTH" not in text  # no users file, and no TLS


def test_message_reaches_upstream_with_received_header(relay, upstream):
    with client(relay) as c:
        replies = send_message(c, "a@sender.test", ["b@example.com"], BODY)
    assert [r[0] for r in replies] == [250, 250, 354, 250]
    # The client sees the upstream's own final reply, not one of ours.
    assert replies[-1][1] == "250 2.0.0 OK 1700000000 x1si1234567 - gsmtp"
    (msg,) = upstream.wait_for_messages(1)
    assert msg.mail_from == "a@sender.test" and msg.rcpt_tos == ["b@example.com"]
    assert msg.data.startswith(b"Received: from client.test ([127.0.0.1])\r\n\tby relay.test (relay) with ESMTP")
    assert msg.data.endswith(BODY)


def test_multiline_rcpt_refusal_is_relayed_verbatim(relay, upstream):
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<nosuchuser@gmail.test>")
    assert code == 550
    assert text == GMAIL_NO_SUCH_USER


@pytest.mark.parametrize("rcpt,expected", [("full@gmail.test", GMAIL_MAILBOX_FULL), ("spam@gmail.test", GMAIL_SPAM)])
def test_data_refusal_is_relayed_verbatim(relay, upstream, rcpt, expected):
    with client(relay) as c:
        replies = send_message(c, "a@sender.test", [rcpt], BODY)
    assert replies[-1] == (int(expected[:3]), expected)
    assert upstream.messages == []


def test_rate_limit_deferral_is_relayed_verbatim(relay):
    with client(relay) as c:
        c.cmd("MAIL FROM:<a@sender.test>")
        assert c.cmd("RCPT TO:<ratelimit@gmail.test>") == (421, GMAIL_RATE_LIMIT)
        assert c.closed()  # RFC 5321 3.8: after a 421 the channel closes


def test_upstream_unreachable_is_451_441(relay_factory):
    relay = relay_factory(closed_port())
    with client(relay) as c:
        code, text = c.cmd("MAIL FROM:<a@sender.test>")
    assert code == 451 and text.startswith("451 4.4.1 Upstream 127.0.0.1:")
    assert "unreachable" in text


def test_the_unreachable_upstreams_event_names_the_host_and_port_tried(relay_factory):
    # Review22 F6: DESIGN.md's events carry `upstream: {host, port}`; the connect failure's `deferred`
    # event had `upstream: null` although its own reply text names the host and port tried, so a reader
    # grouping failures by upstream.host lost exactly the unreachable upstream.
    port = closed_port()
    relay = relay_factory(port)
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 451
    (event,) = relay.events(wait_for=1)
    assert event["kind"] == "deferred" and event["classification"]["rule"] == "relay:upstream-refused"
    assert event["upstream"] == {"host": "127.0.0.1", "port": port, "ip": None, "tls": None}


def test_upstream_drop_mid_data_is_451_never_250(relay, upstream):
    with client(relay) as c:
        replies = send_message(c, "a@sender.test", ["disconnect@gmail.test"], BODY)
        assert replies[-1][0] == 451 and replies[-1][1].startswith("451 4.4.2 ")
        # The relay keeps serving this client with a fresh upstream connection.
        replies = send_message(c, "a@sender.test", ["b@example.com"], BODY)
        assert replies[-1][0] == 250
    assert len(upstream.wait_for_messages(1)) == 1


def test_slow_upstream_data_reply_times_out_as_451(upstream, relay_factory):
    upstream.slow_seconds = 4
    relay = relay_factory(upstream.port, upstream={"data_timeout": 1})
    with client(relay) as c:
        started = time.monotonic()
        replies = send_message(c, "a@sender.test", ["slowdata@gmail.test"], BODY)
        assert replies[-1][0] == 451 and replies[-1][1].startswith("451 4.4.2 ")
        assert "did not answer in time" in replies[-1][1]
        assert time.monotonic() - started < 4


def test_a_reused_upstream_connection_times_out_at_the_deadline_of_the_reply_awaited(upstream, relay_factory):
    # One timer per upstream connection checks the deadline of whatever reply is awaited when it fires
    # (relay/upstream.py UpstreamConnection._await_reply): armed by the first message, it fires while the second one's
    # slow final dot is awaited, and must neither fail that reply early (its deadline is later) nor
    # forget it (it re-arms for it).
    upstream.slow_seconds = 6
    relay = relay_factory(upstream.port, upstream={"command_timeout": 2, "data_timeout": 2})
    with client(relay) as c:
        assert send_message(c, "a@sender.test", ["b@example.com"], BODY)[-1][0] == 250
        time.sleep(1.2)  # the first message's timer is due 2 s after its MAIL: during the next dot
        started = time.monotonic()
        replies = send_message(c, "a@sender.test", ["slowdata@gmail.test"], BODY)
        waited = time.monotonic() - started
        assert replies[-1][0] == 451 and "did not answer in time" in replies[-1][1]
        assert waited >= 1.9  # not at the first message's deadline, 0.8 s in
        assert waited < 6  # before the upstream's reply would have come
        # The connection that timed out is not used again; the next message goes on a new one.
        assert send_message(c, "a@sender.test", ["b@example.com"], BODY)[-1][0] == 250
    assert len(upstream.wait_for_messages(2)) == 2


def test_upstream_connections_are_reused(relay, upstream):
    with client(relay) as c:
        for _ in range(5):
            assert send_message(c, "a@sender.test", ["b@example.com"], BODY)[-1][0] == 250
    with client(relay) as c:
        assert send_message(c, "a@sender.test", ["b@example.com"], BODY)[-1][0] == 250
    assert len(upstream.wait_for_messages(6)) == 6
    assert upstream.connections == 1
    assert "RSET" not in upstream.commands  # a finished transaction needs no RSET (RFC 5321 3.3)


def test_rset_mid_transaction_resets_upstream(relay, upstream):
    with client(relay) as c:
        c.cmd("MAIL FROM:<a@sender.test>")
        c.cmd("RCPT TO:<b@example.com>")
        assert c.cmd("RSET")[0] == 250
        assert send_message(c, "x@sender.test", ["y@example.com"], BODY)[-1][0] == 250
    (msg,) = upstream.wait_for_messages(1)
    assert msg.mail_from == "x@sender.test" and msg.rcpt_tos == ["y@example.com"]


def test_partial_recipients_only_accepted_ones_get_the_message(relay, upstream):
    with client(relay) as c:
        replies = send_message(c, "a@sender.test", ["b@example.com", "nosuchuser@gmail.test", "c@example.com"], BODY)
    assert [r[0] for r in replies] == [250, 250, 550, 250, 354, 250]
    (msg,) = upstream.wait_for_messages(1)
    assert msg.rcpt_tos == ["b@example.com", "c@example.com"]


def test_max_recipients_452_453(upstream, relay_factory):
    relay = relay_factory(upstream.port, limits={"max_recipients": 2})
    with client(relay) as c:
        c.cmd("MAIL FROM:<a@sender.test>")
        assert c.cmd("RCPT TO:<r1@example.com>")[0] == 250
        assert c.cmd("RCPT TO:<r2@example.com>")[0] == 250
        code, text = c.cmd("RCPT TO:<r3@example.com>")
    assert code == 452 and text.startswith("452 4.5.3 ")
    # A refusal the client saw has its event (it had none); the relay's own limit lists nobody.
    (event,) = relay.events(wait_for=1)
    assert (event["kind"], event["stage"], event["recipient"], event["reply"]["text"]) == ("deferred", "rcpt",
                                                                                          "r3@example.com", text)
    assert event["classification"]["rule"] == "relay:too-many-recipients" and event["classification"]["scope"] == "relay"
    assert "bounce_list" not in event or event["bounce_list"] in (None, "not_listed")


def test_a_repeated_rcpt_counts_towards_max_recipients(upstream, relay_factory):
    # review14 F4: a duplicate RCPT was answered 250 "Duplicate recipient" before the max_recipients
    # check and counted nowhere, so a client could repeat it for ever (each restarting the idle
    # deadline) and hold its slot and its upstream connection. Postfix counts every accepted RCPT
    # towards smtpd_recipient_limit; so does the relay, with the same 452 4.5.3.
    relay = relay_factory(upstream.port, limits={"max_recipients": 3})
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        assert c.cmd("RCPT TO:<r1@example.com>")[0] == 250
        code, text = c.cmd("RCPT TO:<r1@Example.COM>")
        assert code == 250 and "Duplicate recipient" in text, text
        assert c.cmd("RCPT TO:<r1@example.com>")[0] == 250
        code, text = c.cmd("RCPT TO:<r1@example.com>")
        assert code == 452 and text.startswith("452 4.5.3 Too many recipients"), text
        code, text = c.cmd("RCPT TO:<r2@example.com>")
        assert code == 452 and text.startswith("452 4.5.3 "), text
        # The transaction itself stands: its one recipient gets the message once.
        assert c.cmd("DATA")[0] == 354
        assert c.cmd("Subject: once\r\n\r\nbody\r\n.")[0] == 250
        # A new transaction starts the count again.
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        assert c.cmd("RCPT TO:<r1@example.com>")[0] == 250
        assert c.cmd("RCPT TO:<r1@example.com>")[0] == 250
    (msg,) = upstream.wait_for_messages(1)
    assert msg.rcpt_tos == ["r1@example.com"]


def test_max_message_size_552_534(upstream, relay_factory):
    relay = relay_factory(upstream.port, limits={"max_message_size": 2000})
    with client(relay) as c:
        code, text = c.cmd("MAIL FROM:<a@sender.test> SIZE=5000")
        assert code == 552 and text.startswith("552 5.3.4 ")
        replies = send_message(c, "a@sender.test", ["b@example.com"], b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 100)
        assert replies[-1][0] == 552 and replies[-1][1].startswith("552 5.3.4 ")
        assert send_message(c, "a@sender.test", ["b@example.com"], b"Subject: small\r\n\r\nx\r\n")[-1][0] == 250
    assert [m.data.endswith(b"Subject: small\r\n\r\nx\r\n") for m in upstream.wait_for_messages(1)] == [True]
    # DATA goes upstream only once a message is complete and within the limit: the refused one never
    # reached the upstream's DATA. (Whether the next message reuses the connection depends on whether
    # the RSET ending the refused transaction there came back before its MAIL: either is right.)
    assert upstream.commands.count("DATA") == 1
    # Each refusal the client saw writes its event: the one at MAIL for the declared SIZE= too (review19
    # F4: Postfix sends SIZE= whenever EHLO offers it, so that is where its messages over the limit are
    # refused, and it wrote none), classified as the same refusal at DATA is.
    events = relay.events(wait_for=2)
    assert [(e["kind"], e["stage"], e["reply"]["enhanced"], e["sender"], e["recipient"],
             e["classification"]["category"], e["classification"]["rule"]) for e in events] == [
        ("policy_rejected", "mail", "5.3.4", "a@sender.test", "", "message_too_large", "relay:message-too-large"),
        ("policy_rejected", "data", "5.3.4", "a@sender.test", "b@example.com", "message_too_large",
         "relay:message-too-large")]
    assert events[0]["reply"]["text"] == "552 5.3.4 Message size exceeds fixed maximum message size (2000 bytes)"
    assert events[0]["action"] == "bounce" and events[0]["classification"]["scope"] == "relay"


def test_max_connections_421(upstream, relay_factory):
    relay = relay_factory(upstream.port, limits={"max_connections": 2})
    a, b = RawSMTP(relay.host, relay.port), RawSMTP(relay.host, relay.port)
    try:
        c = RawSMTP(relay.host, relay.port)
        assert c.greeting[0] == 421 and c.greeting[1].startswith("421 4.7.0 ")
        c.close()
    finally:
        a.close()
        b.close()

    def admitted() -> bool:  # once the relay has seen a and b go (connection_lost: a turn of its loop)
        with RawSMTP(relay.host, relay.port) as d:
            return d.greeting[0] == 220
    wait_until(admitted, timeout=10)


def test_connections_refused_for_their_clients_cap_do_not_take_other_clients_slots(upstream, relay_factory):
    # review23 F4: a connection refused for its own client's cap (limits.max_connections_per_client)
    # was counted against limits.max_connections until it was gone, so one client's burst refused
    # other clients ("Too many connections to this relay"). The relay's loop is held while the
    # connections wait in the listen queue, so that they are all accepted in one turn, as a burst is.
    import threading
    relay = relay_factory(upstream.port, limits={"max_connections": 3, "max_connections_per_client": 1})
    held, release = threading.Event(), threading.Event()

    def hold():
        held.set()
        release.wait(30)

    relay.loop.call_soon_threadsafe(hold)
    assert held.wait(10)
    clients = []
    try:
        try:
            burst = [socket.create_connection((relay.host, relay.port), timeout=30,
                                              source_address=("127.0.0.1", 0)) for _ in range(3)]
            other = socket.create_connection((relay.host, relay.port), timeout=30, source_address=("127.0.0.2", 0))
        finally:
            release.set()
        clients = [*burst, other]
        greetings = [sock.recv(4096).decode() for sock in clients]
    finally:
        for sock in clients:
            sock.close()
    assert greetings[0].startswith("220 "), greetings
    assert all(g.startswith("421 4.7.0 Too many connections from 127.0.0.1") for g in greetings[1:3]), greetings
    assert greetings[3].startswith("220 "), greetings  # 127.0.0.2: one of 3 slots, one taken


def test_8bit_and_smtputf8_end_to_end(relay, upstream):
    body = "From: ü@sender.test\r\nSubject: grüße\r\n\r\nÄÖÜ ✓\r\n".encode()
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<jörg@sender.test> BODY=8BITMIME SMTPUTF8".encode())[0] == 250
        assert c.cmd("RCPT TO:<bücher@example.com>".encode())[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(body + b".\r\n")
        assert c.reply()[0] == 250
    (msg,) = upstream.wait_for_messages(1)
    assert msg.mail_from == "jörg@sender.test" and msg.rcpt_tos == ["bücher@example.com"]
    assert "BODY=8BITMIME" in msg.mail_options and "SMTPUTF8" in msg.mail_options
    assert msg.data.endswith(body)


def test_pipelined_commands(relay, upstream):
    with client(relay) as c:
        c.send(b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<nosuchuser@x.test>\r\nDATA\r\n")
        codes = [c.reply()[0] for _ in range(4)]
        assert codes == [250, 250, 550, 354]
        c.send(BODY + b".\r\nQUIT\r\n")
        assert c.reply()[0] == 250
        assert c.reply()[0] == 221
    assert upstream.wait_for_messages(1)[0].rcpt_tos == ["b@example.com"]


def test_client_outside_networks_is_refused_before_upstream(upstream, relay_factory):
    relay = relay_factory(upstream.port, clients={"networks": ["10.0.0.0/8"]})
    with RawSMTP(relay.host, relay.port) as c:
        code, text = c.greeting
    assert code == 554 and text.startswith("554 5.7.1 ")
    assert upstream.connections == 0
    kinds = [e["kind"] for e in relay.events(wait_for=1)]
    assert kinds == ["policy_rejected"]


@pytest.mark.parametrize("line,code,prefix", [
    ("FOO bar", 500, "500 5.5.1"),
    ("MAIL FROM:<not an address>", 553, "553 5.1.7"),  # RFC 3463 3.2: X.1.7, the sender's syntax
    ("MAIL FROM:<@@@>", 553, "553 5.1.7"),
    ("RCPT TO:<@@@>", 503, "503 5.5.1"),
    ("RCPT TO:<b@example.com>", 503, "503 5.5.1"),
    ("DATA", 503, "503 5.5.1"),
    ("MAIL FROM:<a@sender.test> FOO=BAR", 555, "555 5.5.4"),
    ("MAIL TO:<a@sender.test>", 501, "501 5.5.4"),
])
def test_bad_commands_get_precise_replies(relay, upstream, line, code, prefix):
    with client(relay) as c:
        got = c.cmd(line)
        assert got[0] == code and got[1].startswith(prefix), got
        assert c.cmd("NOOP")[0] == 250  # still serving
    assert upstream.connections == 0


def test_overlong_line_and_8bit_garbage(relay, upstream):
    with client(relay) as c:
        code, text = c.cmd(b"MAIL FROM:<" + b"a" * 2000 + b"@x.test>")
        assert code == 500 and text.startswith("500 5.5.2")
        code, _ = c.cmd(b"\xff\xfe\x80 garbage")
        assert code == 500
        assert c.cmd("NOOP")[0] == 250


def test_client_that_never_finishes_data_is_timed_out_and_others_served(upstream, relay_factory):
    relay = relay_factory(upstream.port, limits={"timeout": 1})
    stuck = client(relay)
    stuck.cmd("MAIL FROM:<a@sender.test>")
    stuck.cmd("RCPT TO:<b@example.com>")
    assert stuck.cmd("DATA")[0] == 354
    stuck.send(b"Subject: never ends\r\n\r\npartial")
    with client(relay) as other:
        assert send_message(other, "a@sender.test", ["b@example.com"], BODY)[-1][0] == 250
    stuck.sock.settimeout(5)
    assert stuck.reply()[1].startswith("421 4.4.2 relay.test No message data for 1 s")  # RFC 5321 3.8
    assert stuck.closed(timeout=5)
    stuck.close()
    assert len(upstream.wait_for_messages(1)) == 1


# CVE-2023-51764 family: only CRLF.CRLF ends DATA; anything else is data, and what goes upstream is CRLF-clean.
SMUGGLING = [b"\n.\n", b"\r.\r", b"\r\n.\r", b"\r.\r\n", b"\n.\r\n", b"\r\n.\n", b"\n.\r"]


@pytest.mark.parametrize("terminator", SMUGGLING, ids=[repr(t) for t in SMUGGLING])
def test_smuggling_payloads_never_end_data_early(relay, upstream, terminator):
    smuggled = (b"MAIL FROM:<evil@attacker.test>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n"
                b"From: ceo@sender.test\r\nSubject: smuggled\r\n\r\nsmuggled\r\n")
    payload = b"From: a@sender.test\r\nSubject: outer\r\n\r\nfirst part" + terminator + smuggled
    with client(relay) as c:
        c.cmd("MAIL FROM:<a@sender.test>")
        c.cmd("RCPT TO:<b@example.com>")
        assert c.cmd("DATA")[0] == 354
        c.send(payload + b"\r\n.\r\n")
        assert c.reply()[0] == 250
        assert c.cmd("NOOP")[0] == 250  # no pending replies for smuggled commands
    (msg,) = upstream.wait_for_messages(1)
    time.sleep(0.3)
    assert len(upstream.messages) == 1
    assert msg.mail_from == "a@sender.test" and msg.rcpt_tos == ["b@example.com"]
    assert b"evil@attacker.test" in msg.data  # carried as text inside the one message
    data = msg.data
    assert data.count(b"\r") == data.count(b"\r\n") and data.count(b"\n") == data.count(b"\r\n")


def test_forged_authentication_results_with_our_id_never_go_upstream(relay, upstream):
    body = (b"Authentication-Results: relay.test; dkim=pass header.d=bank.test\r\n"
            b"Authentication-Results: mx.other.example; spf=pass smtp.mailfrom=a@sender.test\r\n"
            b"From: a@sender.test\r\nSubject: forged\r\n\r\nhi\r\n")
    with client(relay) as c:
        assert send_message(c, "a@sender.test", ["b@example.com"], body)[-1][0] == 250
    (msg,) = upstream.wait_for_messages(1)
    assert b"relay.test; dkim=pass header.d=bank.test" not in msg.data  # RFC 8601 5: ours to remove
    assert b"Authentication-Results: mx.other.example; spf=pass" in msg.data  # others' stay
    assert msg.data.endswith(b"From: a@sender.test\r\nSubject: forged\r\n\r\nhi\r\n")


def test_null_sender_and_bare_postmaster_are_relayed(relay, upstream):
    with client(relay) as c:
        replies = send_message(c, "", ["b@example.com", "postmaster"], b"Subject: Undelivered Mail\r\n\r\nDSN\r\n")
    assert [r[0] for r in replies] == [250, 250, 250, 354, 250]
    (msg,) = upstream.wait_for_messages(1)
    assert msg.mail_from == "<>" and msg.rcpt_tos == ["b@example.com", "postmaster"]
    assert "MAIL <>" in upstream.commands


def test_data_sent_ahead_is_abandoned_not_delivered_when_the_client_vanishes(relay, upstream):
    gone = client(relay)
    gone.cmd("MAIL FROM:<a@sender.test>")
    gone.cmd("RCPT TO:<b@example.com>")
    assert gone.cmd("DATA")[0] == 354
    gone.send(b"Subject: half\r\n\r\nhalf a message\r\n")
    gone.close()
    time.sleep(0.3)
    with client(relay) as c:
        assert send_message(c, "a@sender.test", ["b@example.com"], BODY)[-1][0] == 250
    (msg,) = upstream.wait_for_messages(1)
    time.sleep(0.2)
    assert len(upstream.messages) == 1 and b"half a message" not in msg.data


def test_upstream_refusing_data_ahead_is_relayed(relay, upstream):
    # DATA sent ahead, answered 4xx by the upstream: the client gets that reply after its message.
    upstream_reply = "451 4.3.0 Mail server temporarily rejected message."
    with client(relay) as c:
        c.cmd("MAIL FROM:<a@sender.test>")
        c.cmd("RCPT TO:<b@example.com>")
        upstream.data_command_reply = upstream_reply
        assert c.cmd("DATA")[0] == 354
        c.send(BODY + b".\r\n")
        assert c.reply() == (451, upstream_reply)
        upstream.data_command_reply = None
        assert send_message(c, "a@sender.test", ["b@example.com"], BODY)[-1][0] == 250
    assert len(upstream.wait_for_messages(1)) == 1


def test_empty_message_and_dot_stuffed_lines_round_trip(relay, upstream):
    with client(relay) as c:
        c.cmd("MAIL FROM:<a@sender.test>")
        c.cmd("RCPT TO:<b@example.com>")
        assert c.cmd("DATA")[0] == 354
        c.send(b".\r\n")  # no message text at all
        assert c.reply()[0] == 250
        body = b"Subject: dots\r\n\r\n..one leading dot\r\n...two\r\n.\r\n"  # the last line is the end
        c.cmd("MAIL FROM:<a@sender.test>")
        c.cmd("RCPT TO:<b@example.com>")
        assert c.cmd("DATA")[0] == 354
        c.send(body)
        assert c.reply()[0] == 250
    first, second = upstream.wait_for_messages(2)
    # The empty message reaches the upstream as just our Received: header, and nothing else.
    assert first.data.startswith(b"Received: from client.test") and first.data.count(b"\r\n\r\n") == 0
    assert first.data.endswith(b"GMT\r\n")
    assert second.data.endswith(b"Subject: dots\r\n\r\n.one leading dot\r\n..two\r\n")


def test_final_dot_split_across_reads(relay, upstream):
    with client(relay) as c:
        c.cmd("MAIL FROM:<a@sender.test>")
        c.cmd("RCPT TO:<b@example.com>")
        assert c.cmd("DATA")[0] == 354
        for piece in [b"Subject: slow\r\n\r\nline\r", b"\n", b".", b"\r", b"\nNOOP\r\n"]:
            c.send(piece)
            time.sleep(0.05)
        assert c.reply()[0] == 250
        assert c.reply()[0] == 250  # the NOOP sent right after the final dot
    (msg,) = upstream.wait_for_messages(1)
    assert msg.data.endswith(b"Subject: slow\r\n\r\nline\r\n")


def test_overlong_line_in_data_is_refused_with_an_event(relay, upstream):
    with client(relay) as c:
        replies = send_message(c, "a@sender.test", ["b@example.com"], b"Subject: long\r\n\r\n" + b"x" * 1200 + b"\r\n")
        assert replies[-1][0] == 500 and replies[-1][1].startswith("500 5.5.2 Line too long")
        assert send_message(c, "a@sender.test", ["b@example.com"], BODY)[-1][0] == 250
    assert len(upstream.wait_for_messages(1)) == 1
    (event,) = relay.events(wait_for=1)
    assert event["kind"] == "policy_rejected" and event["reply"]["enhanced"] == "5.5.2"


def test_oversized_message_with_final_dot_across_chunks(upstream, relay_factory):
    relay = relay_factory(upstream.port, limits={"max_message_size": 100_000})
    big = b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 300
    with client(relay) as c:
        c.cmd("MAIL FROM:<a@sender.test>")
        c.cmd("RCPT TO:<b@example.com>")
        assert c.cmd("DATA")[0] == 354
        c.send(big + b"\r")
        time.sleep(0.05)
        c.send(b"\n.\r\n")  # the terminator arrives after the limit was passed, split from the data
        code, text = c.reply()
        assert code == 552 and text.startswith("552 5.3.4")
        assert c.cmd("NOOP")[0] == 250
    assert upstream.messages == []


def test_long_line_split_across_reads_is_caught(relay, upstream):
    with client(relay) as c:
        c.cmd("MAIL FROM:<a@sender.test>")
        c.cmd("RCPT TO:<b@example.com>")
        assert c.cmd("DATA")[0] == 354
        c.send(b"Subject: split\r\n\r\n" + b"z" * 700)
        time.sleep(0.05)
        c.send(b"z" * 700 + b"\r\n.\r\n")
        code, text = c.reply()
    assert code == 500 and text.startswith("500 5.5.2 Line too long")
    assert upstream.messages == []


def test_too_many_unknown_commands_ends_the_session_with_421(relay):
    # review14 L1: the 5th unknown command got aiosmtpd's "502 5.5.1 Too many unrecognized commands,
    # goodbye." and the close. RFC 5321 3.8: a server that closes the channel says 421, as Postfix does
    # ("421 4.7.0 HOST Error: too many errors"); a 5xx told the client nothing of the close.
    with client(relay) as c:
        for _ in range(4):
            code, text = c.cmd("BOGUS")
            assert code == 500
        code, text = c.cmd("BOGUS")
        assert text.startswith("421 4.7.0 relay.test Error: too many errors"), text
        assert c.closed()


def test_a_duplicate_recipient_is_delivered_once(relay, upstream):
    # RFC 5321 lets a server accept the same RCPT twice; Postfix collapses duplicates, and an
    # operator expects one copy. The domain is case-insensitive, the local part is not (RFC 5321 2.4).
    with client(relay) as c:
        replies = send_message(c, "a@sender.test", ["b@example.com", "b@EXAMPLE.com", "B@example.com",
                                                    "b@example.com"], BODY)
    assert [r[0] for r in replies] == [250, 250, 250, 250, 250, 354, 250], replies
    (msg,) = upstream.wait_for_messages(1)
    assert msg.rcpt_tos == ["b@example.com", "B@example.com"]
    assert [c for c in upstream.commands if c.startswith("RCPT")] == ["RCPT b@example.com", "RCPT B@example.com"]
    assert replies[2][1].startswith("250 2.1.5 ") and "<b@EXAMPLE.com>" in replies[2][1], replies


MALFORMED = ["b@dest..test", "b@-dash.test", "b@dash-.test", ".b@dest.test", "b.@dest.test", "a..b@dest.test",
             "b@" + "d" * 64 + ".test", "b@" + ("a" * 60 + ".") * 4 + "a" * 20 + ".test", "b@x_y.test"]


@pytest.mark.parametrize("mode", ["smarthost", "mx"])
def test_a_malformed_address_is_refused_553_in_every_mode_and_never_goes_upstream(upstream, relay_factory, dns, mode):
    # review23 F5: RFC 5321 4.1.2 (sub-domain: letters, digits and inner hyphens; Dot-string: no dot at
    # either end, never two in a row), RFC 1035 2.3.4 (a label of at most 63 octets) and RFC 5321
    # 4.5.3.1.2 (a domain of at most 255). Smarthost mode answered these 250 and passed them upstream;
    # MX mode refused some at routing. Both refuse them with 553 5.1.3 (5.1.7 for a sender).
    overrides = {}
    if mode == "mx":
        overrides = {"upstream": {"mode": "mx", "host": None, "port": upstream.port, "starttls": "off",
                                  "mx_internal_networks": ["127.0.0.0/8"]},
                     "resolver": {"nameservers": [dns.nameserver], "timeout": 2}}
    relay = relay_factory(upstream.port, **overrides)
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        for rcpt in MALFORMED:
            code, text = c.cmd(f"RCPT TO:<{rcpt}>")
            assert code == 553 and text.startswith("553 5.1.3 Malformed address"), (rcpt, text)
        assert c.cmd("RSET")[0] == 250
        code, text = c.cmd("MAIL FROM:<a@sender..test>")
        assert code == 553 and text.startswith("553 5.1.7 Malformed address"), text
        # A host named with an underscore sends as root@web_01...: taken as a sender, as before.
        assert c.cmd("MAIL FROM:<root@web_01.sender.test>")[0] == 250
        assert c.cmd("RSET")[0] == 250
        # Quoted, a local part may hold any dots (RFC 5321 4.1.2 Quoted-string).
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd('RCPT TO:<"a..b"@example.com>')
        assert code == 250 if mode == "smarthost" else not text.startswith("553 5.1.3 Malformed"), text
    assert not any("dest" in cmd or "x_y" in cmd for cmd in upstream.commands), upstream.commands
    if mode == "smarthost":  # sent on (quoted, as it came: the upstream's own parser unquotes it for its record)
        assert "RCPT a..b@example.com" in upstream.commands, upstream.commands
    events = [e for e in relay.events(wait_for=len(MALFORMED) + 1) if e["kind"] == "policy_rejected"]
    assert {e["classification"]["rule"] for e in events if e["stage"] == "rcpt"} == {"relay:address-syntax"}


def test_a_refused_kelvin_sign_address_does_not_list_the_ascii_address(relay, upstream):
    """review24 F2: str.lower() made U+212A KELVIN SIGN + "ate@x.test" the key "kate@x.test", so the
    upstream's 550 5.1.1 for that (unknown) SMTPUTF8 mailbox listed the good kate@x.test, and anyone who
    could make the relay's users write to an address could get a real one refused."""
    upstream.rcpt_replies["\u212aate"] = GMAIL_NO_SUCH_USER
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test> SMTPUTF8")[0] == 250
        code, text = c.cmd("RCPT TO:<\u212aate@x.test>")
        assert code == 550 and "5.1.1" in text
    relay.events(wait_for=1)
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<kate@x.test>")
        assert (code, "bounce list" in text) == (250, False), text
        code, text = c.cmd("RCPT TO:<KATE@x.test>")
        assert code == 250, text
    assert "RCPT kate@x.test" in upstream.commands
