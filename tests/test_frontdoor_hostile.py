"""The SMTP front door against hostile and broken clients, through a running relay on loopback: each
test is a case a client can play on the wire, and the precise answer the relay owes it."""

from __future__ import annotations

import json
import socket
import sqlite3
import struct
from pathlib import Path

import jsonschema
import pytest

from relay.service import UNKNOWN_OUTCOME
from tests.support.client_gone import bounce_list_locked, reset_once_read
from tests.support.processes import wait_until
from tests.support.smtp_client import RawSMTP, send_message

BODY = b"From: a@sender.test\r\nTo: b@example.com\r\nSubject: hello\r\n\r\nHi.\r\n"


def client(relay, helo: str = "client.test") -> RawSMTP:
    c = RawSMTP(relay.host, relay.port)
    assert c.cmd(f"EHLO {helo}")[0] == 250
    return c


def test_a_client_silent_after_354_is_closed_at_the_idle_deadline(upstream, relay_factory):
    """DATA answered 354, then not one byte: limits.timeout holds between chunks of DATA from the 354
    on (RFC 5321 4.5.3.2.5: the server's wait for a data block is bounded), else one connection per
    slot held limits.max_connections for as long as the clients liked."""
    relay = relay_factory(upstream.port, limits={"timeout": 1, "data_timeout": 30, "max_connections_per_client": 2})
    silent = client(relay)
    assert silent.cmd("MAIL FROM:<a@sender.test>")[0] == 250
    assert silent.cmd("RCPT TO:<b@example.com>")[0] == 250
    assert silent.cmd("DATA")[0] == 354
    silent.sock.settimeout(20)  # a generous bound for a loaded machine; the relay's is 1 s
    try:
        code, text = silent.reply()
    except (TimeoutError, socket.timeout):
        code, text = None, "no reply: the connection was held open"
    assert code == 421 and text.startswith("421 4.4.2 relay.test No message data for 1 s"), text
    assert silent.closed()
    silent.close()
    (event,) = relay.events(wait_for=1)
    assert (event["kind"], event["stage"], event["reply"]["code"]) == ("deferred", "data", 421)
    with client(relay) as other:  # its slot is free again, and the relay serves on
        assert send_message(other, "a@sender.test", ["b@example.com"], BODY)[-1][0] == 250
    assert len(upstream.wait_for_messages(1)) == 1


def test_a_client_gone_after_its_final_dot_leaves_an_event_saying_the_outcome_is_unknown(upstream, relay_factory):
    """The whole message and its final dot went upstream, then the client reset the connection before the
    upstream answered. The relay closes the upstream connection with it, and the upstream may have taken
    the message all the same (Postfix has queued it once it read the dot): the client, told nothing, sends
    it again. Recorded as the shutdown's cut-off after the dot is (docs/events.md): deferred, its outcome
    unknown, not left without a word (no event at all, as if nothing had gone upstream)."""
    upstream.slow_seconds = 30.0  # the upstream has it all and has not answered yet
    relay = relay_factory(upstream.port)
    gone = client(relay)
    assert gone.cmd("MAIL FROM:<a@sender.test>")[0] == 250
    assert gone.cmd("RCPT TO:<slowdata@example.com>")[0] == 250
    assert gone.cmd("DATA")[0] == 354
    gone.send(BODY.replace(b"Subject", b"Message-ID: <gone@sender.test>\r\nSubject") + b".\r\n")
    assert wait_until(lambda: "DATA" in upstream.commands, timeout=15)  # the upstream read the final dot
    gone.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    gone.close()  # a reset, not a FIN: nothing more of this client's is read or answered
    events = relay.events(wait_for=1)
    assert [(e["kind"], e["stage"], e["recipient"], e.get("outcome")) for e in events] == [
        ("deferred", "data", "slowdata@example.com", UNKNOWN_OUTCOME)], events
    assert events[0]["classification"]["rule"] == "relay:client-gone-after-dot"
    assert events[0]["message_id"] == "<gone@sender.test>"
    schema = Path(__file__).parent.parent / "relay" / "schema" / "event.schema.json"
    jsonschema.validate(events[0], json.loads(schema.read_text()))
    with client(relay) as other:
        assert send_message(other, "a@sender.test", ["b@example.com"], BODY)[-1][0] == 250


def valid(events: list[dict]) -> list[dict]:
    schema = json.loads((Path(__file__).parent.parent / "relay" / "schema" / "event.schema.json").read_text())
    for event in events:
        jsonschema.validate(event, schema)
    return events


def test_a_client_gone_once_the_upstream_refused_its_final_dot_leaves_that_refusal_not_an_unknown_outcome(
        upstream, relay_factory, tmp_path, monkeypatch):
    """The upstream answered the final dot with a 550, then the client reset the connection before the relay
    had ended the transaction (recording the refusal, here its count on the bounce list, which waits for the
    list's lock). The outcome was known, yet the relay wrote "deferred, outcome unknown" (rule
    relay:client-gone-after-dot), and the upstream's refusal, its event and its count on the bounce list
    were lost with the cancelled command. Another process (`relay bounces import`) holds the list's lock
    for the time it takes the client to go, which keeps the race open for this test every time."""
    refusal = "550 5.1.1 <refused550@example.com>: Recipient address rejected: User unknown in virtual mailbox table"
    upstream.data_replies["refused550"] = refusal
    relay = relay_factory(upstream.port, metrics={"listen": "127.0.0.1:0"})

    gone = client(relay)
    assert gone.cmd("MAIL FROM:<a@sender.test>")[0] == 250
    assert gone.cmd("RCPT TO:<refused550@example.com>")[0] == 250
    assert gone.cmd("DATA")[0] == 354
    with bounce_list_locked(tmp_path, monkeypatch):
        gone.send(BODY.replace(b"Subject", b"Message-ID: <refused@sender.test>\r\nSubject") + b".\r\n")
        reset_once_read(relay, gone, "EOM")  # a reset: the client never reads the 550
    events = valid(relay.events(wait_for=1))
    assert [(e["kind"], e["stage"], e["recipient"], e["reply"]["text"], e.get("outcome")) for e in events] == [
        ("rejected", "data", "refused550@example.com", refusal, None)], events
    assert events[0]["classification"]["category"] == "unknown_recipient"
    assert events[0]["message_id"] == "<refused@sender.test>"
    # Its failure was counted on the bounce list (a 5.1.1 at DATA lists at the second: suppression.yaml).
    with sqlite3.connect(tmp_path / "bounces.db") as db:
        assert db.execute("SELECT count(*) FROM relay_bounce_failures").fetchone()[0] == 1
    with client(relay) as other:
        assert send_message(other, "a@sender.test", ["b@example.com"], BODY)[-1][0] == 250


USER_UNKNOWN = "550 5.1.1 <refused550@example.com>: Recipient address rejected: User unknown in virtual mailbox table"


@pytest.mark.parametrize("command", ["RCPT", "DATA"])
def test_a_client_gone_once_the_upstream_refused_its_rcpt_or_data_command_leaves_that_refusal_counted(
        upstream, relay_factory, tmp_path, monkeypatch, command):
    """The upstream refused the RCPT (or the DATA command) with a 550 5.1.1, and the client reset the
    connection while the relay was recording that refusal (its listing waits for the bounce list's lock,
    held by another process). The relay cancelled the command with the client: the refusal's event and
    its listing (RCPT) or count (DATA) were lost (charter: never lose an event for a refusal; a missed
    listing is the second worst error), and the next message to that address went to the upstream again."""
    if command == "RCPT":
        upstream.rcpt_replies["refused550"] = USER_UNKNOWN
    else:
        upstream.data_command_reply = USER_UNKNOWN
    relay = relay_factory(upstream.port, metrics={"listen": "127.0.0.1:0"})

    gone = client(relay)
    assert gone.cmd("MAIL FROM:<a@sender.test>")[0] == 250
    with bounce_list_locked(tmp_path, monkeypatch):
        if command == "RCPT":
            gone.send(b"RCPT TO:<refused550@example.com>\r\n")
        else:
            assert gone.cmd("RCPT TO:<refused550@example.com>")[0] == 250
            assert gone.cmd("DATA")[0] == 354
            gone.send(BODY + b".\r\n")
        reset_once_read(relay, gone, command)  # a reset: the client never reads the 550
    stage = command.lower()
    if command == "DATA":
        # A 5.1.1 to the message counts, and lists at the second (suppression.yaml, docs/bounce-list.md).
        events = valid(relay.events(wait_for=1, timeout=30))
        assert [(e["kind"], e["stage"], e["recipient"]) for e in events] == [
            ("rejected", stage, "refused550@example.com")], events
        with sqlite3.connect(tmp_path / "bounces.db") as db:
            assert db.execute("SELECT address, category FROM relay_bounce_failures").fetchall() == [
                ("refused550@example.com", "unknown_recipient")]
    else:
        # A 5.1.1 at RCPT lists at once.
        events = valid(relay.events(wait_for=2, timeout=30))
        assert [(e["kind"], e["stage"], e["recipient"]) for e in events] == [
            ("rejected", stage, "refused550@example.com"), ("bounce_listed", stage, "refused550@example.com")], events
        with sqlite3.connect(tmp_path / "bounces.db") as db:
            assert db.execute("SELECT address, category FROM relay_bounces").fetchall() == [
                ("refused550@example.com", "unknown_recipient")]
        # The listing holds: the next message to that address is the relay's to refuse, not the upstream's.
        with client(relay) as other:
            assert other.cmd("MAIL FROM:<a@sender.test>")[0] == 250
            code, text = other.cmd("RCPT TO:<refused550@example.com>")
            assert code == 550 and "is on this relay's bounce list" in text, text
    assert events[0]["reply"]["text"] == USER_UNKNOWN
    assert events[0]["classification"]["category"] == "unknown_recipient"


def test_the_refusal_of_a_non_ascii_address_without_smtputf8_is_itself_ascii(relay, upstream):
    """A client that did not ask for SMTPUTF8 gets ASCII replies (RFC 6531 3.7.4): the 553 5.6.7 that
    refuses its UTF-8 address showed the address in UTF-8, the very bytes it could not take."""
    with client(relay) as c:
        code, text = c.cmd("MAIL FROM:<jörg@sender.test>".encode())
        assert code == 553 and text.startswith("553 5.6.7 Non-ASCII sender address <j\\xf6rg@sender.test>"), text
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<b@bücher.example>".encode())
        assert code == 553 and text.isascii() and "<b@b\\xfccher.example>" in text, text


def test_a_malformed_non_ascii_address_without_smtputf8_is_refused_in_ascii(relay, upstream):
    """The "Malformed address" refusals echoed the address in UTF-8 to a client that did not ask for
    SMTPUTF8, whose replies are ASCII (RFC 6531 3.7.4), as the 553 5.6.7 above is: backslash escapes."""
    with client(relay) as c:
        for command, reply in [("MAIL FROM:<jörg@@sender.test>", "553 5.1.7 Malformed address <j\\xf6rg@@sender.test>"),
                               ("MAIL FROM:jörg@sender.test>", "553 5.1.7 Malformed address j\\xf6rg@sender.test>")]:
            code, text = c.cmd(command.encode())
            assert code == 553 and text.isascii() and text.startswith(reply), text
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        for rcpt in ["<b@@bücher.example>", '<"bü"x@example.com>', "<b@bücher.example"]:
            code, text = c.cmd(f"RCPT TO:{rcpt}".encode())
            assert code == 553 and text.isascii() and text.startswith("553 5.1.3 Malformed address "), text
            assert rcpt.encode("ascii", "backslashreplace").decode() in text, text

