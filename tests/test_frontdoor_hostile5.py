"""Hostile-client round 5, each at the level a user meets it: a running relay on loopback, real sockets.

- The Received: field's WITH clause (RFC 5321 4.4 `Protocol`) said "ESMTP" whatever the client did: a
  client that greeted with HELO (plain SMTP, no service extensions) and one whose transaction used
  SMTPUTF8 (RFC 6531 3.7.3: the UTF8SMTP family) were recorded as ESMTP, so the trace a receiver and a
  postmaster read misstated how the message came in.
- A message whose first line is a continuation line (it starts with SP or HTAB) was sent on after the
  relay's Received: field as it came: the receiver unfolds it into that field (RFC 5322 2.2.3), so a
  client could extend the relay's own trace field, e.g. give it another date ("; Thu, 01 Jan 1970 ...",
  the date a reader takes is the one after the last ";") or an "(authenticated as ...)" comment.
- A message whose first line is no header field ("hello world") sat under the relay's own fields, inside
  the header section: now it is the body's first line, as a continuation's is.
"""

from __future__ import annotations

import email
import email.policy
import socket

import pytest

from relay.users import hash_password
from tests.support.smtp_client import RawSMTP, send_message
from tests.support.tls import make_cert
from tests.test_tls_auth import TLSClient, plain

BODY = b"From: a@sender.test\r\nTo: b@example.com\r\nSubject: trace\r\n\r\nHi.\r\n"


def received_with(message) -> str:
    """The protocol of the WITH clause of the topmost Received: field (the relay's own)."""
    header = message.data.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    assert header.startswith("Received: "), header
    first = header.split("\r\nSubject:", 1)[0].split("\r\nFrom:", 1)[0]
    return first.split(" with ", 1)[1].split()[0]


def plain_client(relay, greeting: str) -> RawSMTP:
    c = RawSMTP.__new__(RawSMTP)
    c.sock = socket.create_connection((relay.host, relay.port), timeout=15)
    c.buf = b""
    c.greeting = c.reply()
    assert c.cmd(greeting)[0] == 250
    return c


@pytest.mark.parametrize("greeting, sender, options, expected", [
    # RFC 5321 4.4: Protocol = "ESMTP" / "SMTP"; a HELO session uses no service extension.
    ("HELO client.test", "a@sender.test", "", "SMTP"),
    ("EHLO client.test", "a@sender.test", "", "ESMTP"),
    # RFC 6531 3.7.3: a transaction that used SMTPUTF8 is recorded with the UTF8SMTP protocol value.
    ("EHLO client.test", "j\u00f6rg@sender.test", " SMTPUTF8", "UTF8SMTP"),
    ("EHLO client.test", "a@sender.test", " SMTPUTF8", "UTF8SMTP"),
])
def test_the_received_field_names_the_protocol_the_client_used(relay, upstream, greeting, sender, options,
                                                               expected):
    with plain_client(relay, greeting) as c:
        assert c.cmd(f"MAIL FROM:<{sender}>{options}".encode())[0] == 250
        assert c.cmd("RCPT TO:<b@example.com>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(BODY + b".\r\n")
        assert c.reply()[0] == 250
    assert received_with(upstream.wait_for_messages(1)[0]) == expected


def test_a_helo_session_after_an_ehlo_one_on_the_same_connection_is_recorded_as_smtp(relay, upstream):
    # HELO starts the session afresh (RFC 5321 4.1.4): what an earlier EHLO said no longer holds.
    with plain_client(relay, "EHLO client.test") as c:
        assert send_message(c, "a@sender.test", ["b@example.com"], BODY)[-1][0] == 250
        assert c.cmd("HELO client.test")[0] == 250
        assert send_message(c, "a@sender.test", ["b@example.com"], BODY)[-1][0] == 250
    assert [received_with(m) for m in upstream.wait_for_messages(2)] == ["ESMTP", "SMTP"]


def test_smtputf8_over_tls_with_a_login_is_utf8smtpsa(tmp_path, upstream, relay_factory):
    users = tmp_path / "users"
    users.write_text(f"alice:{hash_password('s3cret pass')}:sender.test\n")
    crt, key = make_cert(tmp_path)
    relay = relay_factory(upstream.port, listen=[{"address": "127.0.0.1:0", "tls": {"cert": str(crt), "key": str(key)}}],
                          clients={"networks": ["10.0.0.0/8"], "users_file": str(users)})
    with TLSClient(relay.host, relay.port) as c:
        c.ehlo_over_tls(crt)
        assert c.cmd("AUTH PLAIN " + plain("alice", "s3cret pass"))[0] == 235
        assert c.cmd("MAIL FROM:<a@sender.test> SMTPUTF8")[0] == 250
        assert c.cmd("RCPT TO:<j\u00f6rg@example.com>".encode())[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(BODY + b".\r\n")
        assert c.reply()[0] == 250
        # The next transaction on the same session without SMTPUTF8 is ESMTPSA again (RFC 3848).
        assert send_message(c, "a@sender.test", ["b@example.com"], BODY)[-1][0] == 250
    assert [received_with(m) for m in upstream.wait_for_messages(2)] == ["UTF8SMTPSA", "ESMTPSA"]


@pytest.mark.parametrize("first_line", [
    b"\tby mx.google.com with ESMTPSA; Thu, 01 Jan 1970 00:00:00 +0000",
    b" (authenticated as ceo@example.com)",
])
def test_a_first_line_that_is_a_continuation_never_becomes_part_of_the_relays_received_field(
        relay, upstream, first_line):
    body = first_line + b"\r\nSubject: forged trace\r\n\r\nHi.\r\n"
    with plain_client(relay, "EHLO client.test") as c:
        assert send_message(c, "a@sender.test", ["b@example.com"], body)[-1][0] == 250
    data = upstream.wait_for_messages(1)[0].data
    parsed = email.message_from_bytes(data, policy=email.policy.compat32)
    received = parsed.get_all("Received")
    assert len(received) == 1, received
    # The relay's field, unfolded, ends with the relay's own date, and has nothing of the client's line.
    assert first_line.strip().decode() not in received[0], received[0]
    assert received[0].rstrip().endswith("GMT"), received[0]
    # The client's text still goes, whole: there was no header section to keep it in, so it is the body.
    assert data.endswith(b"\r\n\r\n" + body), data


@pytest.mark.parametrize("blank", [b"  ", b"\t", b" \t "])
def test_a_first_line_of_nothing_but_white_space_keeps_the_header_fields_after_it(relay, upstream, blank):
    # review-int2 F3: such a line folds into the field before it and adds nothing to it; taken for a
    # continuation line with text, it had an empty line put before it and the client's From, Subject and
    # Message-ID became body (no From: many receivers refuse the message; no Message-ID: a retry counted anew).
    body = blank + b"\r\nFrom: a@sender.test\r\nMessage-ID: <m1@sender.test>\r\nSubject: kept\r\n\r\nHi.\r\n"
    with plain_client(relay, "EHLO client.test") as c:
        assert send_message(c, "a@sender.test", ["b@example.com"], body)[-1][0] == 250
    parsed = email.message_from_bytes(upstream.wait_for_messages(1)[0].data, policy=email.policy.compat32)
    assert parsed["From"] == "a@sender.test", parsed.as_string()[:500]
    assert parsed["Subject"] == "kept" and parsed["Message-ID"] == "<m1@sender.test>"
    assert parsed.get_payload() == "Hi.\r\n"


@pytest.mark.parametrize("first_line", [
    b"hello world",
    b"From a@sender.test Thu Jan  1 00:00:00 1970",  # an mbox separator: no field name and colon
    b"X Bad Name: a space is no field-name character",
    b"\xc3\x84rger: not US-ASCII",
])
def test_a_first_line_that_is_no_header_field_starts_the_body_after_the_relays_fields(relay, upstream, first_line):
    # RFC 5322 2.1/3.6.8: a header section is fields (a name of printable US-ASCII but ":", then ":"), and the
    # first line that is none of them cannot be in it. After the relay's own Received field such a line sat
    # in the header section, with the client's lines after it taken as fields or as body as each reader
    # chose; like a first line that is a continuation (above), and like Postfix's cleanup, the relay puts
    # the empty line before it and all the client sent is the body.
    body = first_line + b"\r\nSubject: after a non-header line\r\n\r\nHi.\r\n"
    with plain_client(relay, "EHLO client.test") as c:
        assert send_message(c, "a@sender.test", ["b@example.com"], body)[-1][0] == 250
    data = upstream.wait_for_messages(1)[0].data
    header, rest = data.split(b"\r\n\r\n", 1)
    assert rest == body, data
    assert first_line not in header and b"Subject" not in header, header
    parsed = email.message_from_bytes(data, policy=email.policy.compat32)
    assert parsed["Subject"] is None and len(parsed.get_all("Received")) == 1, parsed.as_string()[:500]


@pytest.mark.parametrize("first_line", [b"Subject: kept", b"Subject : kept", b"X-Tab\t: kept"])
def test_a_first_line_that_is_a_header_field_stays_one(relay, upstream, first_line):
    # RFC 5322 4.5.3: white space before the colon is the obsolete syntax a reader must still take.
    body = first_line + b"\r\nFrom: a@sender.test\r\n\r\nHi.\r\n"
    with plain_client(relay, "EHLO client.test") as c:
        assert send_message(c, "a@sender.test", ["b@example.com"], body)[-1][0] == 250
    data = upstream.wait_for_messages(1)[0].data
    header, rest = data.split(b"\r\n\r\n", 1)
    assert header.endswith(b"\r\n" + first_line + b"\r\nFrom: a@sender.test") and rest == b"Hi.\r\n", data
