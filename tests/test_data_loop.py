"""A large message does not hold the relay's event loop: its line endings are made CRLF (and its dots
unstuffed, stuffed again) a piece at a time, every other session served in between (issue #15).

No durations here (project rule): the test is about order. From the moment the relay has the whole
message (its final dot came, the message handed to RelayService.data) until the message is ready (its
header read onto the transaction), a second client's NOOPs must keep being answered. With the loop held
for the whole message in one go (~1 s for 24 MiB of bare LF here), not one could be.

The second client is an asyncio client on the relay's own event loop (the relay runs in a thread of
the test process): it sees the relay's state at each turn of that loop, and needs no other thread. A
thread of the test could not tell: a loop that lets go of the GIL every few milliseconds (between the
pieces) and takes it straight back starves the other threads of one process (CPython gives the GIL to a
waiting thread only after 5 ms without any switch).
bench/bench_loop_stall.py gives the figures.
"""

from __future__ import annotations

import asyncio
import re
import threading

from tests.support.smtp_client import RawSMTP

NOOPS_WANTED = 2


def _transaction_of(relay, sender: str):
    for txn in list(relay.server.service._txns.values()):
        if txn.mail_from == sender:
            return txn
    return None


def _being_made_ready(relay, sender: str) -> bool | None:
    """Whether the relay has all of `sender`'s message and is making it ready (its header not yet read
    onto the transaction: RelayService._message); None once its transaction is over."""
    txn = _transaction_of(relay, sender)
    if txn is None:
        return None
    received = any(p.envelope.mail_from == sender and p.envelope.content is not None
                   for p in list(relay.server.counter.protocols))
    return received and not txn.headers


async def _noops_while_made_ready(relay, sender: str) -> int:
    """A second client: once the relay is making `sender`'s message ready, NOOPs one at a time; how many
    were answered while it still was."""
    reader, writer = await asyncio.open_connection(relay.host, relay.port)

    async def reply() -> bytes:
        while True:
            line = await reader.readline()
            if line[3:4] != b"-":
                return line

    try:
        assert (await reply()).startswith(b"220")
        writer.write(b"EHLO other.test\r\n")
        assert (await reply()).startswith(b"250")
        while not (state := _being_made_ready(relay, sender)):
            if state is None:
                return 0  # over, and never seen being made ready
            await asyncio.sleep(0.001)
        answered = 0
        while answered < NOOPS_WANTED:
            writer.write(b"NOOP\r\n")
            assert (await reply()).startswith(b"250")
            if not _being_made_ready(relay, sender):
                break  # ready (or over): this NOOP was answered after the work
            answered += 1
        return answered
    finally:
        writer.close()


def test_a_second_client_is_answered_while_a_large_bare_lf_message_is_made_ready(relay, upstream):
    sender = "big@sender.test"
    # 24 MiB of nothing but bare LFs (RFC 5321 2.3.8: each one a line ending, made CRLF): the most work
    # per octet. The upstream refuses DATA, so as not to read 24 million empty lines itself; the relay
    # makes the message ready all the same while that reply is on its way.
    body = b"From: a@sender.test\nTo: b@example.com\nSubject: bare LF\n\n" + b"\n" * (24 * 1024 * 1024)
    upstream.data_command_reply = "554 5.3.4 Not today"
    big = RawSMTP(relay.host, relay.port, timeout=120)
    assert big.cmd("EHLO big.test")[0] == 250
    assert big.cmd(f"MAIL FROM:<{sender}>")[0] == 250
    assert big.cmd("RCPT TO:<b@example.com>")[0] == 250
    assert big.cmd("DATA")[0] == 354
    other = asyncio.run_coroutine_threadsafe(_noops_while_made_ready(relay, sender), relay.loop)
    sending = threading.Thread(target=big.send, args=(body + b"\r\n.\r\n",), daemon=True)
    sending.start()

    answered = other.result(120)
    assert answered == NOOPS_WANTED, f"{answered} NOOPs answered while the large message was made ready"
    sending.join(60)
    assert big.reply()[0] == 554  # the upstream's refusal of DATA, passed on
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
