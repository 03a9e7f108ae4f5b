"""The SMTP front door against hostile and broken clients, through a running relay on loopback: each
test is a case a client can play on the wire, and the precise answer the relay owes it."""

from __future__ import annotations

import socket

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
