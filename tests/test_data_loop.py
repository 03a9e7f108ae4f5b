"""A large message does not hold the relay's event loop: its line endings are made CRLF (and its dots
unstuffed, stuffed again) a piece at a time, every other session served in between (issue #15).

No durations here (project rule): the test is about order. The relay asks the upstream for DATA once
the final dot has come, before it makes the message ready; from then until the message is ready (its
header read onto the transaction), a second client's NOOPs must keep being answered. With the loop held
for the whole message in one go (1 s for 30 MB of bare LF on the machine of issue #15), not one was.
bench/bench_loop_stall.py gives the figures.
"""

from __future__ import annotations

import re
import threading

from tests.support.smtp_client import RawSMTP

HEAD = b"From: a@sender.test\nTo: b@example.com\nSubject: bare LF\n\n"
NOOPS_WANTED = 3


def _transaction_of(relay, sender: str):
    # The transaction as the relay holds it (the relay runs in a thread of this process): read from
    # the test's thread, its `headers` fill when the message is ready (RelayService._message).
    for txn in list(relay.server.service._txns.values()):
        if txn.mail_from == sender:
            return txn
    return None


def test_a_second_client_is_answered_while_a_large_bare_lf_message_is_made_ready(relay, upstream):
    sender = "big@sender.test"
    body = HEAD + (b"x" * 78 + b"\n") * (24 * 1024 * 1024 // 79)  # 24 MiB, every line ending a bare LF
    other = RawSMTP(relay.host, relay.port, timeout=60)
    assert other.cmd("EHLO other.test")[0] == 250
    big = RawSMTP(relay.host, relay.port, timeout=120)
    assert big.cmd("EHLO big.test")[0] == 250
    assert big.cmd(f"MAIL FROM:<{sender}>")[0] == 250
    assert big.cmd("RCPT TO:<b@example.com>")[0] == 250
    assert big.cmd("DATA")[0] == 354
    sending = threading.Thread(target=big.send, args=(body + b"\r\n.\r\n",), daemon=True)
    sending.start()

    # The final dot has come and the relay has asked the upstream for DATA: the message is being made ready.
    assert upstream.data_command.wait(60)
    answered_meanwhile = 0
    while answered_meanwhile < NOOPS_WANTED:
        assert other.cmd("NOOP")[0] == 250
        txn = _transaction_of(relay, sender)
        if txn is None or txn.headers:
            break  # ready (or done): the NOOP was answered after the work
        answered_meanwhile += 1
    assert answered_meanwhile == NOOPS_WANTED, f"{answered_meanwhile} NOOPs answered before the large message was ready"

    sending.join(60)
    assert big.reply()[0] == 250
    (captured,) = upstream.wait_for_messages(1, timeout=60)
    # Byte for byte the message with every line ending a CRLF (RFC 5321 2.3.8), under the relay's Received;
    # the last bare LF, then the CRLF that begins the final dot (4.1.1.4), end an empty line.
    assert captured.data.endswith(body.replace(b"\n", b"\r\n") + b"\r\n")
    other.close()
    big.close()


def test_a_large_message_of_dot_lines_and_mixed_line_endings_arrives_byte_for_byte(relay, upstream):
    # Each rewrite a piece at a time on the whole path: the client's stuffed dots taken out, the bare CRs
    # and LFs made CRLF (RFC 5321 2.3.8: "\n." too is a line that starts with a dot), every dot line
    # stuffed again on the way out (4.5.2) in pieces that each start a line; 3 MiB, past the size of a
    # piece (maildata.PIECE) and of a write (upstream CHUNK). What the upstream unstuffs is the message.
    lines = [b".a dot line\r\n", b"..two dots\n", b"text\r", b".\r\n", b". after a bare LF\n", b"\n", b"x" * 70 + b"\r\n"]
    body = b"From: a@sender.test\r\nTo: b@example.com\r\nSubject: dots\r\n\r\n" + b"".join(lines) * (3 * 1024 * 1024 // 120)
    stuffed = body.replace(b"\r\n.", b"\r\n..")
    with RawSMTP(relay.host, relay.port, timeout=60) as c:
        assert c.cmd("EHLO client.test")[0] == 250
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        assert c.cmd("RCPT TO:<b@example.com>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(stuffed + b".\r\n")
        assert c.reply()[0] == 250
    (captured,) = upstream.wait_for_messages(1, timeout=60)
    expected = re.sub(rb"\r\n|\r|\n", b"\r\n", body)
    assert captured.data.endswith(expected)
    assert captured.data.startswith(b"Received: ")
    assert len(captured.data) - len(expected) < 400  # nothing else: the Received field alone
