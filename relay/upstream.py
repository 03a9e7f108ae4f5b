"""Sessions with the upstream server, in lockstep with the client's commands.

The only module that imports aiosmtplib. Every outside failure (refused
connection, timeout, dropped connection, TLS trouble) is translated here into
a precise 4xx Reply with a sentence a person can act on, so that the client
MTA keeps the message and retries: nothing is acknowledged that the upstream
did not acknowledge.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
import time
from dataclasses import dataclass

import aiosmtplib
from aiosmtplib import errors as smtp_errors
from aiosmtplib.protocol import SMTPProtocol
from aiosmtplib.response import SMTPResponse

from .decision import Reply
from .errors import ConfigError, Problem
from .maildata import dot_stuffed, line_pieces

log = logging.getLogger("relay.upstream")

class UpstreamError(Exception):
    """The upstream could not be reached or stopped answering; `reply` says so to the client."""

    def __init__(self, reply: Reply, upstream: dict | None = None):
        super().__init__(reply.text)
        self.reply = reply
        # The event's `upstream` object when no connection was made to describe it (e.g. the MX host
        # a TLS policy refused: its name, address, the TLS it offered and the policy it failed).
        self.upstream = upstream


def _relay_reply(code: int, enhanced: str, text: str, cause: str) -> Reply:
    """One of the relay's own replies; `cause` names it in policies/relay-replies.yaml."""
    return Reply.make(code, enhanced, text, source="relay", cause=cause)


def _unreachable_cause(exc: BaseException) -> str:
    """Why a connection could not be made: the name did not resolve, the port refused, or else."""
    for err in (exc, exc.__cause__, exc.__context__):
        if isinstance(err, socket.gaierror):
            return "upstream-dns"
        if isinstance(err, ConnectionRefusedError):
            return "upstream-refused"
    text = str(exc).lower()
    if any(t in text for t in ("name or service not known", "nodename nor servname", "name resolution")):
        return "upstream-dns"
    if "connection refused" in text:
        return "upstream-refused"
    return "upstream-unreachable"


def _session_facts(client: aiosmtplib.SMTP) -> tuple[str | None, bool | None]:
    """The peer's address and whether TLS was up, while `client` is still connected; (None, None) when
    no connection was made (refused, timed out, the name did not resolve) or it is already gone."""
    try:
        peer = client.get_transport_info("peername")
        return (peer[0] if peer else None), client.get_transport_info("sslcontext") is not None
    except Exception:  # SMTPServerDisconnected: nothing to describe
        return None, None


# See UpstreamPool.first_command_timeout.
REUSED_FIRST_COMMAND_TIMEOUT = 10.0


def _describe(exc: BaseException) -> str:
    """An exception's first line, as our replies quote it: an upstream's words in it (a refused
    login, a STARTTLS refusal) come as aiosmtplib decoded them, bytes that are not UTF-8 as lone
    surrogates, which the client's reply cannot be encoded with, and control characters."""
    return _first_line(str(exc).strip()) or type(exc).__name__


def _first_line(text: str) -> str:
    """The first line of an upstream's words, read as any reply is (decoded_reply_text), at most
    200 characters: what our own replies quote of them."""
    return decoded_reply_text(text).split("\n")[0][:200]


@dataclass(frozen=True)
class Target:
    host: str
    port: int

    def as_dict(self) -> dict:
        return {"host": self.host, "port": self.port}

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


# What aiosmtplib refuses in a command's arguments (its COMMAND_INJECTION_REGEX): a control
# character would end the line early or smuggle another command in (RFC 5321 2.3.8).
_COMMAND_INJECTION = re.compile(rb"[\x00-\x1f\x7f]")
_COMMAND_NAMES = {b".": "EOM", b"MAIL": "MAIL", b"RCPT": "RCPT", b"DATA": "DATA", b"RSET": "RSET", b"NOOP": "NOOP",
                  b"QUIT": "QUIT"}
_EXPECTED = {b"MAIL": (250,), b"RCPT": (250, 251), b"DATA": (354,), b"RSET": (250,), b"NOOP": (250,)}
# Below RFC 5321 4.5.3.1.5's 512 octets, so that a quoted bad line still fits in our reply.
_QUOTED_GARBAGE = 80
# C0 controls but the tab and the newline, DEL, C1 controls (a Latin-1 reply's 0x85 is NEL) and the
# Unicode line and paragraph separators: each ends or corrupts a line for some reader (the client,
# `splitlines`, a terminal). _CONTROL_IN_LINE keeps the newlines between a reply's lines
# (decoded_reply_text); _CONTROL, for one line, takes them too.
_CONTROL_BUT_NEWLINE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029"
_CONTROL_IN_LINE = re.compile(f"[{_CONTROL_BUT_NEWLINE}]")
_CONTROL = re.compile(f"[\n{_CONTROL_BUT_NEWLINE}]")
# aiosmtplib's own bound on one reply line (protocol.MAX_LINE_LENGTH).
_MAX_REPLY_LINE = 8192
# What may follow a reply line's code (RFC 5321 4.2); a bare LF ends a line too (tolerated).
_AFTER_CODE = (b" ", b"-", b"\r", b"\n")


def decoded_reply_text(message: str) -> str:
    """The text of an upstream reply as one faithful string (docs/events.md "reply.text").

    aiosmtplib decodes reply bytes as UTF-8 with surrogateescape. Valid UTF-8 stays as it is; a
    reply that is not UTF-8 (an older server's Latin-1 `250 2.1.5 Empf\xe4nger ok`) is read as
    ISO 8859-1, where every byte is one character, so nothing is lost or invented and the text
    can go back to the client and into a JSON event. Control characters (other than the tab)
    would end or corrupt a reply line on the way to the client: each becomes "?"."""
    if not message.isascii():
        raw = message.encode("utf-8", "surrogateescape")
        try:
            message = raw.decode("utf-8")
        except UnicodeDecodeError:
            message = raw.decode("latin-1")
    # The newlines between the reply's lines stay; any other control character in a line goes.
    if _CONTROL_IN_LINE.search(message):
        message = _CONTROL_IN_LINE.sub("?", message)
    return message


class UpstreamConnection:
    """One authenticated (if configured) SMTP connection to the upstream, and the state of the
    mail transaction on it (RFC 5321 3.3): a transaction is open from an accepted MAIL until
    the reply to the final dot or an accepted RSET. Anything that leaves the two ends out of
    step (a command cut off, a reply out of sequence, garbage, a 421) closes the connection."""

    def __init__(self, client: aiosmtplib.SMTP, target: Target, settings, metrics=None):
        self._client = client
        self.target = target
        self._up = settings
        self.metrics = metrics
        self.ip: str | None = None
        self.tls = False
        self.opened = self.last_used = time.monotonic()
        self.transactions = 0
        self.reused = False  # handed out again by the pool: the first command may find it dead
        self.broken = False
        self.in_transaction = False  # a MAIL was accepted and nothing ended the transaction yet
        self.busy = False  # a command is on the wire, its reply not read yet
        self.on_close = None  # the pool's bookkeeping, called once when the connection closes
        self.home: "UpstreamPool | None" = None  # the pool it goes back to
        self._in_data = False  # DATA answered 354, the message not sent yet
        self._sending = False  # the message and its final dot are being written
        self._answered_early = False  # a reply came while the final dot had not left this process
        self._label = str(target)  # the metrics' `upstream` label
        self.out_of_step: str | None = None  # what the upstream said that no command asked for
        # Why the relay gave this connection up in the middle of a transaction (a malformed reply, no
        # answer in time): the answer to every later command of that transaction. They met the closed
        # connection and said "Upstream ... closed the connection", cause upstream-closed, though the
        # upstream had closed nothing: the relay had, for a reason already known.
        self.given_up: Reply | None = None
        # (command, reply code) -> the series _measure records to: looked up once per connection.
        self._series: dict[tuple, tuple] = {}
        # The deadline of the reply awaited now (loop time), checked by one timer per connection that
        # is moved only when it fires early or must fire sooner (see _await_reply).
        self._awaited: asyncio.Future | None = None
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._guard(client.protocol)

    def _guard(self, protocol) -> None:
        """Read the upstream's replies strictly on this connection (in lockstep: one command, one
        reply). The client library drops bytes that come while no command waits, and parses a
        reply out of a read that may hold more: a second reply to one command (or one sent before
        the command) was then taken for the next command's, e.g. a `354` followed by a `250` made
        the `250` the reply to the final dot though the upstream refused the message. Both now
        leave the connection out of step: the command waiting gets a 451 and it is closed."""
        if protocol is None:
            return
        if protocol._buffer:  # more than the greeting and EHLO's replies came while connecting
            self.out_of_step = _describe_garbage(bytes(protocol._buffer).decode("utf-8", "replace").strip())
        receive = protocol.data_received

        def data_received(data: bytes) -> None:
            if self._sending and data and protocol.transport is not None and protocol.transport.get_write_buffer_size():
                # Our write buffer still holds the end of the message, the final dot last: whatever
                # this is, it cannot be the reply to a dot the upstream has not been sent.
                self._answered_early = True
            waiter = protocol._response_waiter
            if waiter is not None and (not protocol._response_pending or waiter.done()) and data:
                if self.out_of_step is None:
                    self.out_of_step = _describe_garbage(data.decode("utf-8", "replace").strip())
                return
            receive(data)

        protocol.data_received = data_received
        protocol._read_response_from_buffer = _ReplyReader(protocol._buffer)

    def describe(self) -> dict:
        """The event's `upstream` object (docs/events.md)."""
        return {"host": self.target.host, "port": self.target.port, "ip": self.ip, "tls": self.tls}

    def supports(self, extension: str) -> bool:
        return self._client.supports_extension(extension)

    @property
    def max_size(self) -> int | None:
        value = self._client.esmtp_extensions.get("size", "")
        return int(value) if value.isdigit() and int(value) > 0 else None

    @property
    def alive(self) -> bool:
        """Connected as far as this process knows: an upstream that closed an idle connection
        (FIN or reset) has already been noticed by the event loop; one that spoke unasked is
        out of step."""
        return not self.broken and self.out_of_step is None and self._client.is_connected

    def _check_in_step(self) -> None:
        if self.out_of_step is not None:
            raise UpstreamError(_relay_reply(
                451, "4.5.0", f"Upstream {self.target} sent a reply no command asked for ({self.out_of_step}); "
                              f"the message was not accepted, please retry later", "upstream-protocol"))

    async def _command(self, *args: bytes, timeout: float | None = None) -> Reply:
        if self.given_up is not None:
            raise UpstreamError(self.given_up)
        self.busy = True
        start = time.perf_counter()
        try:
            response = await self._execute(b" ".join(args) + b"\r\n", timeout or self._up.command_timeout)
        except BaseException as exc:
            self.fail()
            if not isinstance(exc, asyncio.CancelledError):
                self._measure(args[0], start, None)
            raise self._give_up(self._translate(exc)) from exc
        finally:
            self.busy = False
        self._measure(args[0], start, response.code)
        try:
            return self._checked(response.code, response.message, args[0])
        except UpstreamError as exc:
            raise self._give_up(exc) from None

    def _give_up(self, error: UpstreamError) -> UpstreamError:
        """`error`, kept as the reason this connection was given up (see given_up)."""
        if self.given_up is None:
            self.given_up = error.reply
        return error

    async def _execute(self, line: bytes, timeout: float):
        """One command line out, its reply back, on the client library's protocol object. Its
        SMTP.execute_command would add a lock (a connection here runs one transaction's commands
        in turn) and the same checks in two more layers; what it does on a failure (close the
        connection) fail() does here, for every failure, and _checked() for a 421."""
        protocol = self._client.protocol
        if protocol is None:
            raise smtp_errors.SMTPServerDisconnected("Server not connected")
        if _COMMAND_INJECTION.search(line, 0, len(line) - 2):
            raise ValueError("Command arg contains a prohibited control character")
        self._check_in_step()
        protocol._response_pending = True  # the reply is expected: kept, not dropped as unsolicited
        protocol.write(line)
        return await self._await_reply(protocol, timeout)

    async def _await_reply(self, protocol, timeout: float | None):
        """The client library's SMTPProtocol.read_response, with the same outcomes (the reply, or
        SMTPReadTimeoutError past `timeout`, or the connection's failure) and the same bookkeeping (a
        new waiter for the next reply), without asyncio.wait_for: that wraps the reply's future in a
        second one, with callbacks, a timer of its own and an extra turn of the loop before this
        task wakes, four times a message. Here one timer per connection checks the deadline of
        whatever reply is awaited when it fires, re-arms itself if that is later, and lapses when
        nothing is awaited: a command costs no timer operation unless its deadline is sooner than
        the armed one."""
        waiter = protocol._response_waiter
        if waiter is None:
            raise smtp_errors.SMTPServerDisconnected("Connection lost")
        protocol._response_pending = True
        try:
            if waiter.done() or timeout is None:
                return await waiter
            loop = protocol._loop
            self._deadline = deadline = loop.time() + timeout
            timer = self._timer
            if timer is None or timer.when() > deadline:
                if timer is not None:
                    timer.cancel()
                self._timer = loop.call_at(deadline, self._deadline_check)
            self._awaited = waiter
            try:
                return await waiter
            finally:
                self._awaited = None
        finally:
            protocol._response_pending = False
            protocol._response_waiter = None if protocol.transport is None else protocol._loop.create_future()

    def _deadline_check(self) -> None:
        self._timer = None
        waiter = self._awaited
        if waiter is None or waiter.done():
            return  # nothing awaited now: the next command arms the timer again
        loop = waiter.get_loop()
        if loop.time() < self._deadline:
            self._timer = loop.call_at(self._deadline, self._deadline_check)
            return
        waiter.set_exception(smtp_errors.SMTPReadTimeoutError("Timed out waiting for server response"))

    def _measure(self, command: bytes, start: float | None, code: int | None) -> None:
        """The round trip and the reply's class, per command (EOM: the final dot). A command that
        got no reply (timeout, closed, cut off) counts as class "error"; its time is the wait
        (none when it failed before it was sent)."""
        if self.metrics is None:
            return
        series = self._series.get((command, code))
        if series is None:
            name = _COMMAND_NAMES.get(command) or command.decode("ascii", "replace")
            reply_class = f"{code // 100}xx" if code is not None and 200 <= code <= 599 else "error"
            series = self._series[(command, code)] = (
                self.metrics.child("relay_upstream_command_seconds", "histogram", command=name, upstream=self._label),
                self.metrics.child("relay_upstream_replies_total", "counter", command=name, upstream=self._label,
                                   **{"class": reply_class}))
        seconds, replies = series
        if start is not None and seconds is not None:
            seconds.observe(time.perf_counter() - start)
        if replies is not None:
            replies.inc()

    def _checked(self, code: int, message: str, command: bytes) -> Reply:
        """The upstream's reply as a Reply, or an UpstreamError when it cannot be one: garbage
        instead of a reply, or a positive reply that is not the one the command calls for
        (RFC 5321 4.3.2: DATA is answered 354, the final dot 250): taking such a reply for
        acceptance would acknowledge mail that was never sent."""
        if not 200 <= code <= 599:
            self.fail()
            raise UpstreamError(_relay_reply(
                451, "4.5.0", f"Upstream {self.target} sent a malformed reply to {_said_to(command)} "
                              f"({_describe_garbage(message)}); the message was not accepted, please retry later",
                "upstream-protocol"))
        reply = Reply.from_message(code, decoded_reply_text(message))
        if code == 421:  # RFC 5321 3.8: the server is closing the channel
            self.fail()
        elif reply.positive and code not in _EXPECTED.get(command, (250,)):
            self.fail()
            raise UpstreamError(_relay_reply(
                451, "4.5.0", f"Upstream {self.target} answered {_said_to(command)} with {code} (out of sequence; "
                              f"{' or '.join(map(str, _EXPECTED.get(command, (250,))))} was due); the message "
                              f"was not accepted, please retry later", "upstream-protocol"))
        return reply

    def _translate(self, exc: BaseException) -> UpstreamError:
        if isinstance(exc, asyncio.CancelledError):
            raise exc
        if isinstance(exc, UpstreamError):
            return exc
        if isinstance(exc, (smtp_errors.SMTPTimeoutError, asyncio.TimeoutError, TimeoutError)):
            return UpstreamError(_relay_reply(451, "4.4.2", f"Upstream {self.target} did not answer in time; "
                                                            f"the message was not accepted, please retry later",
                                              "upstream-timeout"))
        if isinstance(exc, smtp_errors.SMTPResponseException):
            if 200 <= exc.code <= 599:
                return UpstreamError(Reply.from_message(exc.code, decoded_reply_text(exc.message)))
            # aiosmtplib's code -1: a line that is not a reply (RFC 5321 4.2), or one too long.
            return UpstreamError(_relay_reply(451, "4.5.0", f"Upstream {self.target} sent a malformed reply "
                                                            f"({_describe_garbage(exc.message)}); the message "
                                                            f"was not accepted, please retry later",
                                              "upstream-protocol"))
        return UpstreamError(_relay_reply(451, "4.4.2", f"Upstream {self.target} closed the connection "
                                                        f"({_describe(exc)}); the message was not accepted, "
                                                        f"please retry later", "upstream-closed"))

    async def mail(self, sender: str, options: list[str], timeout: float | None = None) -> Reply:
        self.transactions += 1
        reply = await self._command(b"MAIL", b"FROM:<" + sender.encode("utf-8") + b">",
                                    *(o.encode("ascii") for o in options), timeout=timeout)
        self.in_transaction = reply.positive
        return reply

    async def rcpt(self, recipient: str, options: list[str] | None = None) -> Reply:
        return await self._command(b"RCPT", b"TO:<" + recipient.encode("utf-8") + b">",
                                   *(o.encode("ascii") for o in options or ()))

    async def rset(self) -> Reply:
        reply = await self._command(b"RSET")
        if reply.positive:
            self.in_transaction = False
        return reply

    async def start_data(self) -> Reply:
        """DATA (RFC 5321 4.1.1.4): the upstream's 354, or its refusal. Asked once the client's
        message is complete, never while it is still arriving: an upstream left waiting in DATA
        state for a slow client drops the connection at its own DATA timeout. After a 354 the
        connection can only take the message or be closed (a RSET would become message text)."""
        reply = await self._command(b"DATA")
        self._in_data = reply.code == 354
        return reply

    @property
    def in_data(self) -> bool:
        """DATA was answered 354 and the message has not followed yet."""
        return self._in_data

    async def data(self, chunks: list, dot_lines: bool = True, sent=None) -> Reply:
        """DATA with a CRLF-clean message given in pieces that each start a line. Dot-stuffing
        is ours (RFC 5321 4.5.2) and the writes go straight to the transport, so a large message
        is not copied again by the client library's own normalisation. `dot_lines` False: the
        caller knows that no line starts with ".", and the pieces go as they are. `sent(due)` is
        called once the final dot has been written, with the loop time by which its reply is due."""
        if not self._in_data:
            start = await self.start_data()
            if start.code != 354:
                return start  # a refusal of the DATA command; the transaction stays open
        self._in_data = False
        protocol = self._client.protocol
        if protocol is None:
            self.fail()
            raise UpstreamError(_relay_reply(451, "4.4.2", f"Upstream {self.target} closed the connection; "
                                                           f"please retry later", "upstream-closed"))
        try:
            self._check_in_step()  # e.g. a 250 after the 354: the reply to the final dot would be in doubt
        except UpstreamError:
            self.fail()
            raise
        chunks = [c for c in chunks if len(c)]
        last = chunks[-1] if chunks else b""
        tail = b".\r\n" if bytes(last[-2:]) == b"\r\n" else b"\r\n.\r\n"
        self.busy = True
        self._sending, self._answered_early = True, False
        start: float | None = None
        # A reply the upstream sends before the final dot (a 552 for a message too big, then a
        # close) is kept for us rather than dropped as unsolicited by the client library.
        protocol._response_pending = True
        # The reply to the final dot is the first whole reply after it, whatever follows in the same
        # read: `250 queued` then `421 closing` is an accepted message and a server ending the session
        # (RFC 5321 3.8, 4.1.1.4); it was a 451 "not accepted", so the client sent it again. Anything
        # after it leaves the connection out of step and closed below (never reused).
        reader = protocol._read_response_from_buffer
        lenient = isinstance(reader, _ReplyReader)
        if lenient:
            reader.alone = False
        transport = protocol.transport
        large = transport is not None and sum(len(c) for c in chunks) > self.CHUNK
        if large:
            # Each large piece goes to the socket while the transport holds nothing: asyncio then
            # copies into its own buffer only what the socket did not take at once, instead of the
            # bulk of the message into a buffer of megabytes grown and shrunk again for every
            # message, on fresh pages each time (issue #15: ~0.5 ms of CPU per MiB). Paused as soon
            # as it holds anything, resumed once it holds nothing (see _make_room).
            low, high = transport.get_write_buffer_limits()
            transport.set_write_buffer_limits(high=1, low=0)
        try:
            # Pieces smaller than CHUNK go out joined, the final dot with them: a transport write
            # is a send() at once, and a 1 KiB message (Received, DKIM-Signature, the message, the
            # dot) was four of them. A large piece goes by itself, flow-controlled, never copied.
            batch: list = []
            batched = 0
            for chunk in chunks:
                if dot_lines and len(chunk) > self.CHUNK:
                    # Stuffed a piece at a time, the loop turning in between (a 30 MB message held
                    # it ~0.2 s in one replace: issue #15). Each piece starts a line (line_pieces),
                    # so each is stuffed as it would be in the whole.
                    if batch:
                        protocol.write(b"".join(batch))
                        batch, batched = [], 0
                    for part in line_pieces(chunk):
                        protocol.write(dot_stuffed(part))
                        if not await self._make_room(protocol):
                            await asyncio.sleep(0)
                    continue
                piece = dot_stuffed(chunk) if dot_lines else chunk
                if len(piece) > self.CHUNK:
                    if batch:
                        protocol.write(b"".join(batch))
                        batch, batched = [], 0
                    await self._write_flow_controlled(protocol, piece)
                    continue
                batch.append(piece)
                batched += len(piece)
                if batched > self.CHUNK:
                    await self._write_flow_controlled(protocol, b"".join(batch))
                    batch, batched = [], 0
            early = protocol._response_waiter is not None and protocol._response_waiter.done()
            batch.append(tail)
            protocol.write(b"".join(batch))
            if sent is not None:
                # From here the upstream may accept the message at any moment (RFC 5321 4.5.3.2.6 gives
                # it data_timeout, 10 minutes by default, to say so).
                sent(asyncio.get_running_loop().time() + self._up.data_timeout)
            # The upstream's latency at the end of DATA: from the final dot, not the transfer (for
            # a small message the dot went out with it).
            start = time.perf_counter()
            response = await self._await_reply(protocol, self._up.data_timeout)
        except asyncio.CancelledError:
            self.fail()
            raise
        except Exception as exc:
            response = self._early_response(protocol)
            self.fail()
            if response is None:
                self._measure(b".", start, None)
                raise (self._translate(exc) if start is None else self._unanswered_dot(exc)) from exc
            early = True
        finally:
            self.busy = self._sending = False
            if lenient:
                reader.alone = True
            if large and not transport.is_closing():
                transport.set_write_buffer_limits(high=high, low=low)
        if protocol._buffer and not self.broken:
            # More than the one reply came (a 421 closing, garbage): what the upstream meant by it
            # answers no command of ours, so this connection is not used again.
            self.out_of_step = _describe_garbage(bytes(protocol._buffer).decode("utf-8", "replace").strip())
            self.fail()
        early = early or self._answered_early
        if not early:
            self._measure(b".", start, response.code)
        self.last_used = time.monotonic()
        self.in_transaction = False  # RFC 5321 3.3: the reply to the final dot ends it, whatever it was
        if early:
            self.fail()  # answered mid-message: what the upstream makes of the rest is unknowable
            if 200 <= response.code < 400:
                # An early refusal is the upstream's answer (a 552, then a close); an early 250 is no
                # acceptance: the upstream had not seen the end of the message (RFC 5321 4.1.1.4).
                raise UpstreamError(_relay_reply(
                    451, "4.5.0", f"Upstream {self.target} answered {response.code} before the end of DATA "
                                  f"(out of sequence: only the reply to the final dot accepts a message); the "
                                  f"message was not accepted, please retry later", "upstream-protocol"))
        return self._checked(response.code, response.message, b".")

    def _unanswered_dot(self, exc: BaseException) -> UpstreamError:
        """No reply to a final dot that went out (no answer within data_timeout, or the connection closed):
        the upstream may have had the whole message and taken it before it failed to say so (RFC 5321
        4.1.1.4; Postfix's "timed out while sending end of data -- message may be sent more than once").
        Still a 4xx, never a 250: losing a message is worse than a second copy (RFC 5321 6.1). The client
        was told "the message was not accepted", which nobody could know."""
        error = self._translate(exc)
        cause = error.reply.cause
        if cause == "upstream-timeout":
            what = f"did not answer the end of DATA within {self._up.data_timeout:g} s (did not answer in time)"
        elif cause == "upstream-closed":
            what = f"closed the connection after the end of DATA was sent, before its reply ({_describe(exc)})"
        else:
            return error
        # Whether the upstream read the message before it closed is unknowable here (its close may have
        # crossed the message on the wire): "may", never "had it".
        return UpstreamError(_relay_reply(451, "4.4.2", f"Upstream {self.target} {what}; the message may have "
                                                        f"been delivered: please retry later (a second copy may "
                                                        f"arrive)", cause))

    @staticmethod
    def _early_response(protocol):
        """The reply the upstream sent before it went away mid-message, if it sent one."""
        waiter = getattr(protocol, "_response_waiter", None)
        if waiter is None or not waiter.done() or waiter.cancelled() or waiter.exception() is not None:
            return None
        return waiter.result()

    CHUNK = 1 << 20
    WRITE = 1 << 19  # a large piece goes to the transport this much at a time

    async def _write_flow_controlled(self, protocol, body: bytes) -> None:
        """Hand a large body to the transport a WRITE at a time, each once the transport holds
        nothing (data() set its limits), so that the socket takes it straight from the message and
        what it does not take (less than WRITE: a buffer below glibc's mmap threshold, reused) is
        all asyncio copies. An upstream that stops reading gets command_timeout to make room again,
        then the connection is closed (RFC 5321 4.5.3.2.5 gives a data block 3 minutes)."""
        if len(body) <= self.WRITE:
            protocol.write(body)
            return
        view = memoryview(body)
        for start in range(0, len(view), self.WRITE):
            protocol.write(view[start:start + self.WRITE])
            await self._make_room(protocol)

    async def _make_room(self, protocol) -> bool:
        """Wait (command_timeout at most) until the transport has written out what it holds; whether
        it waited. During a large message's data() the transport pauses the protocol as soon as it
        holds anything and resumes it once it holds nothing."""
        if not protocol.transport.get_write_buffer_size():
            return False
        await asyncio.wait_for(protocol._drain_helper(), self._up.command_timeout)
        return True

    async def quit(self) -> None:
        """QUIT and close, within 5 s whatever the upstream does."""
        try:
            if self.alive and not self.busy:
                await asyncio.wait_for(self._client.quit(), 5)
        except BaseException:
            pass
        finally:
            self.close()

    def fail(self) -> None:
        """The two ends are out of step or the upstream is gone: never use this connection again."""
        self.broken = True
        self.close()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            self._client.close()
        except Exception:
            pass
        on_close, self.on_close = self.on_close, None
        if on_close is not None:
            on_close(self)


def _said_to(command: bytes) -> str:
    """The command a reply answered, as a refusal's text names it."""
    return "the end of DATA" if command == b"." else command.decode("ascii", "replace")


class _ReplyReader:
    """One whole reply from the start of the connection's buffer as aiosmtplib's SMTPResponse, or
    None while it is incomplete (aiosmtplib's parser, stricter): every line of a multi-line reply
    carries the same code (RFC 5321 4.2.1), else which of them the server meant is a guess
    (`550-no` then `250 ok` was a 250); and, when `alone`, nothing may follow the reply in the
    same read, as we never pipeline: a second reply there would be taken for the next command's.
    Either is a malformed reply (code -1).

    Called at every read that ends a line, it goes on from the lines it read before: parsed
    again from the start each time, a reply that came one line per read cost the event loop
    time growing with the square of its lines (5,400 lines of "550-", aiosmtplib's 32 KiB,
    took 68 s of parsing)."""

    def __init__(self, buffer: bytearray, alone: bool = True):
        self.buffer = buffer
        self.alone = alone
        self._restart()

    def _restart(self) -> None:
        self.offset = 0  # the end of the lines read so far, each a continuation line of `code`
        self.code: int | None = None
        self.message = bytearray()

    def __call__(self):
        buffer = self.buffer
        if len(buffer) < self.offset:  # emptied under us (aiosmtplib's "Response too long")
            self._restart()
        if not self.offset:
            end = buffer.find(b"\n")
            if end == len(buffer) - 1 and 3 <= end < _MAX_REPLY_LINE and buffer[3] != 0x2D:  # b"-"
                # The usual case, four times a message: the buffer holds one whole single-line reply
                # and nothing after it (so `alone` changes nothing). The same outcome as _read(),
                # without its per-line bookkeeping.
                line = bytes(buffer)
                code = _line_code(line)
                del buffer[:]
                return SMTPResponse(code, line[4:].strip(b" \t\r\n").decode("utf-8", "surrogateescape"))
        try:
            response = self._read()
        except Exception:
            self._restart()
            raise
        if response is not None:
            self._restart()
        return response

    def _read(self):
        buffer, message = self.buffer, self.message
        while True:
            end = buffer.find(b"\n", self.offset)
            if end == -1:
                return None
            line = bytes(buffer[self.offset:end + 1])
            if len(line) > _MAX_REPLY_LINE:
                raise smtp_errors.SMTPResponseException(-1, "Response too long")
            line_code = _line_code(line)
            if self.code is not None and line_code != self.code:
                raise smtp_errors.SMTPResponseException(
                    -1, f"reply lines with different codes: {self.code} then {line.decode('utf-8', 'ignore')}")
            self.code = line_code
            self.offset += len(line)
            if message:
                message.extend(b"\n")
            message.extend(line[4:].strip(b" \t\r\n"))
            if line[3:4] != b"-":
                break
        if self.alone and self.offset < len(buffer):
            extra = bytes(buffer[self.offset:]).decode("utf-8", "ignore")
            raise smtp_errors.SMTPResponseException(-1, f"a second reply to one command: {extra}")
        del buffer[:self.offset]
        return SMTPResponse(self.code, bytes(message).decode("utf-8", "surrogateescape"))


class _NoAuthOffered(Exception):
    """upstream.username is set and the upstream's EHLO reply offers no AUTH."""

    def __init__(self, tls: bool):
        super().__init__("no AUTH offered")
        self.tls = tls


class _TlsRequired(Exception):
    """upstream.starttls is required and the upstream did not let the session start TLS."""

    def __init__(self, why: str, cause: str):
        super().__init__(why)
        self.why = why
        self.cause = cause


def _line_code(line: bytes) -> int:
    """A reply line's code. RFC 5321 4.2: three digits, then a space, a hyphen or the end of the
    line; int() alone took "2500 queued" or "250x" for a 250 (the final dot's acceptance)."""
    if not line[:3].isdigit() or line[3:4] not in _AFTER_CODE:
        raise smtp_errors.SMTPResponseException(
            -1, f"Malformed SMTP response line: {line.decode('utf-8', 'ignore')}")
    return int(line[:3])


# The replies a connection reads before UpstreamConnection._guard takes over (the greeting, EHLO,
# STARTTLS, AUTH, read inside aiosmtplib's connect()) are held to RFC 5321 4.2.1 too: the library
# took the last line's code, so a `554-` greeting ending in a `220` line was a welcome, and mail went
# to a server that had refused the session. A connection is made inside the library, with no hook to
# give it another reader: the library's own reader is replaced, here, for every connection.
def _connect_reply(protocol) -> SMTPResponse | None:
    reader = protocol.__dict__.get("_relay_reader")
    if reader is None or reader.buffer is not protocol._buffer:
        reader = protocol._relay_reader = _ReplyReader(protocol._buffer, alone=False)
    return reader()


SMTPProtocol._read_response_from_buffer = _connect_reply


def _describe_garbage(message: str) -> str:
    """A short, printable quotation of what came instead of a reply."""
    text = message.replace("Malformed SMTP response line: ", "").strip()
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return repr(text[:_QUOTED_GARBAGE]) if text else "an empty line"


def smarthost_tls_context(settings) -> ssl.SSLContext | None:
    """The TLS context of every STARTTLS with the smarthost (None for `upstream.starttls: off`); a
    ConfigError naming upstream.ca_file when that file cannot be loaded now (it passed the config's
    own check when the config was read, but may have been replaced since)."""
    up = settings.upstream
    if up.starttls == "off":
        return None
    try:
        # upstream.ca_file, when set, is the smarthost's only trust anchor (create_default_context loads
        # the system's roots only without a cafile): an operator's private CA pins the smarthost, as
        # Postfix's smtp_tls_CAfile does with tls_append_default_CA = no (docs/config.md). MX delivery
        # adds it to the system's roots instead (relay/delivery/certs.py trust_store).
        ctx = ssl.create_default_context(cafile=str(up.ca_file) if up.ca_file else None)
    except (ssl.SSLError, OSError) as exc:
        from .tlsfiles import ca_file_problem

        why = (ca_file_problem(up.ca_file) if up.ca_file else None) or f"cannot load: {exc}"
        raise ConfigError([Problem(str(settings.source), "upstream.ca_file", why)]) from None
    # RFC 7435: opportunistic security encrypts without authenticating; verifying would turn
    # a self-signed or mismatched certificate into a failure worse than no TLS at all.
    if not up.tls_verify or up.starttls == "opportunistic":
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class UpstreamPool:
    """Upstream connections shared by all sessions: at most `pool_size` open at once (idle or
    in use), reused across transactions (RFC 5321 3.3: a transaction ends with the reply to the
    final dot; RSET only after an aborted one). Giving a connection back never waits on the
    upstream: a RSET or QUIT it needs runs in a task the pool owns, finished at close()."""

    def __init__(self, settings, size: int | None = None, metrics=None, smarthost_tls: bool = True):
        self.settings = settings
        self._up = settings.upstream
        # This process's share of upstream.pool_size when several workers divide it (relay/workers.py).
        self.size = size if size is not None else settings.upstream.pool_size
        self.metrics = metrics
        self._idle: list[UpstreamConnection] = []
        self._open = 0  # connections open or being opened, idle or in use
        self._waiters: list[asyncio.Future] = []
        self._tasks: set[asyncio.Task] = set()
        self._reaper: asyncio.TimerHandle | None = None
        self.opened = 0
        self.reused = 0
        self.max_transactions: int | None = None  # then a connection is closed rather than kept
        # Built once here (at start) and again at every reload (RelayServer._reload), never per connection:
        # a ca_file replaced by garbage at run time made every session a traceback and an anonymous
        # "451 4.3.0 Temporary local problem"; now a reload refuses it and the running context stays.
        # An MX set's pool (delivery/pool.py DestinationPool) has a TLS plan per host instead: none here.
        self.tls_context = smarthost_tls_context(settings) if smarthost_tls else None

    def _may_open(self) -> bool:
        return self._open < self.size

    def _busy_error(self) -> UpstreamError:
        return UpstreamError(_relay_reply(
            451, "4.4.5", f"All {self.size} connections to upstream {self.target} are in use "
                          f"(upstream.pool_size); please retry later", "upstream-busy"))

    @property
    def target(self) -> Target:
        return Target(self._up.host, self._up.port)

    @property
    def open_count(self) -> int:
        """Connections open or being opened, idle or in use."""
        return self._open

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    @property
    def first_command_timeout(self) -> float:
        """The deadline of the first command on a reused connection. An upstream that vanished
        without a FIN (a NAT or firewall forgot the flow) never answers; a live one answers a
        MAIL at once. After this, a fresh connection is tried with the full command_timeout."""
        return min(self._up.command_timeout, self._up.connect_timeout, REUSED_FIRST_COMMAND_TIMEOUT)

    def _read_password(self) -> str | None:
        """The password read from upstream.password_file at load (config.py): a file the relay
        cannot use is a config error then, never a failure at a message (review20 F3)."""
        return self._up.password

    async def connect(self) -> UpstreamConnection:
        target = self.target
        mode = self._up.starttls
        client = aiosmtplib.SMTP(
            hostname=target.host, port=target.port, local_hostname=self.settings.hostname,
            timeout=self._up.command_timeout,
            # STARTTLS, EHLO and the login are ours (_session): the library's STARTTLS fails the
            # connection when the upstream refuses it (opportunistic goes on in clear) and passes the
            # upstream's refusal on as if it were about the message (required: ours); its login greets
            # first on its own, falling back to HELO after any EHLO refusal (see _greet).
            start_tls=False,
            tls_context=self.tls_context,
        )
        start = time.perf_counter()
        try:
            await asyncio.wait_for(self._session(client, mode),
                                   self._up.connect_timeout + self._up.command_timeout)
        except BaseException as exc:
            ip, tls = _session_facts(client)
            client.close()
            error = self._connect_error(exc, target, ip, tls)  # re-raises a cancellation
            self._measure_connect(start, target, error.reply.code if error.reply.source != "relay" else None)
            raise error from exc
        self._measure_connect(start, target, 250)
        conn = UpstreamConnection(client, target, self._up, self.metrics)
        sock = client.get_transport_info("peername")
        conn.ip = sock[0] if sock else None
        conn.tls = client.get_transport_info("sslcontext") is not None
        self.opened += 1
        return conn

    async def _session(self, client: aiosmtplib.SMTP, mode: str) -> None:
        """Connect, STARTTLS as configured, EHLO (again after STARTTLS, RFC 3207 4.2) and the login
        if one is configured: every greeting through _greet, so that the upstream's own refusal of an
        EHLO is what the client is told. aiosmtplib's login greets by itself when no greeting is
        current and takes any refusal of EHLO as a cue for HELO: a 4xx to the EHLO after STARTTLS
        ("451 4.3.2 try later") became a HELO, then "The SMTP AUTH extension is not supported by this
        server", and the client got a 451 4.4.1 "unreachable" of the relay's instead of the host's
        reply. So the login only ever runs after our greeting."""
        await client.connect(timeout=self._up.connect_timeout)
        if mode in ("opportunistic", "required"):
            await self._starttls(client, required=mode == "required")
        if client.is_ehlo_or_helo_needed:  # no STARTTLS, or STARTTLS reset the session (RFC 3207 4.2)
            await self._greet(client)
        if self._up.username:
            if not client.supports_extension("auth"):
                # No AUTH in the EHLO reply (RFC 4954 3): there is nothing to log in with, and sending
                # unauthenticated would not be what the operator configured. aiosmtplib's own refusal
                # of this case reached the client as the 451 4.4.1 "unreachable", advice about the network.
                raise _NoAuthOffered(tls=client.get_transport_info("sslcontext") is not None)
            await client.login(self._up.username, self._read_password())

    async def _starttls(self, client: aiosmtplib.SMTP, required: bool) -> None:
        """STARTTLS when the upstream offers it. A refusal of
        STARTTLS (454 "TLS not available due to temporary reason", or any 4xx/5xx) leaves the session
        as it was (RFC 3207 4: the client decides whether to go on): opportunistic means it goes on,
        in clear, on the same session, as it would with an upstream that never offered TLS. A
        handshake that fails is still a failure (the connection is gone).

        `required`: no STARTTLS offered, or a refusal of it, is the relay's own failure to meet its
        configured policy, not a verdict on the message: 451 4.7.5 (RFC 3463 X.7.5, as for a failed
        handshake), scope relay, never the upstream's code. Its 554 to STARTTLS reached the client as a
        554 to MAIL, and the client bounced mail that a fixed TLS setup would have delivered."""
        await self._greet(client)
        if not client.supports_extension("starttls"):
            if required:
                raise _TlsRequired("does not offer STARTTLS", "upstream-no-starttls")
        else:
            try:
                await client.starttls()
            except smtp_errors.SMTPResponseException as exc:
                if not 400 <= exc.code <= 599:
                    raise
                said = f"{exc.code} {_first_line(exc.message)}"
                if required:
                    raise _TlsRequired(f"refused STARTTLS ({said})", "upstream-starttls-refused") from None
                log.info("upstream %s refused STARTTLS (%s); going on in clear (upstream.starttls: "
                         "opportunistic)", self.target, said)

    def _measure_connect(self, start: float, target: Target, code: int | None) -> None:
        """CONNECT: TCP, greeting, STARTTLS, EHLO and AUTH, as one round trip of the pool."""
        if self.metrics is None:
            return
        self.metrics.observe("relay_upstream_command_seconds", time.perf_counter() - start, command="CONNECT",
                             upstream=str(target))
        reply_class = f"{code // 100}xx" if code is not None else "error"
        self.metrics.inc("relay_upstream_replies_total", command="CONNECT", upstream=str(target),
                         **{"class": reply_class})

    # EHLO replies that mean "EHLO is not known here" (RFC 5321 4.1.4, 4.2.4: 500 "command not
    # recognized", 502 "command not implemented"): an old server, to be greeted with HELO (3.2).
    HELO_FALLBACK = frozenset({500, 502})

    @classmethod
    async def _greet(cls, client: aiosmtplib.SMTP) -> None:
        """EHLO, or HELO for a server that does not know EHLO. Any other refusal is the host's own
        reply, raised as such (SMTPResponseException): a 421/4xx is "not now" (Gmail's 421 4.7.28
        throttle comes here), never a cue to try HELO. aiosmtplib closes the connection on a 421, so a
        HELO after it lost the host's words ("Server not connected"), and after a 4xx that left the
        connection open the relay went on in HELO mode and handed its mail to a host that had said it
        was unavailable (review29 F3)."""
        try:
            await client.ehlo()
        except smtp_errors.SMTPHeloError as exc:
            if exc.code not in cls.HELO_FALLBACK:
                raise smtp_errors.SMTPResponseException(exc.code, exc.message) from None
            await client.helo()  # RFC 5321 3.2: fall back to HELO for an old server

    def _connect_error(self, exc: BaseException, target: Target, ip: str | None = None,
                       tls: bool | None = None) -> UpstreamError:
        """Why `target` gave no connection, with the event's `upstream`: the host and port tried, and
        the address and TLS of the session when one was made (DESIGN.md: events carry `upstream`
        {host, port}; a reader grouping failures by upstream.host lost exactly the unreachable ones,
        review22 F6)."""
        error = self._connect_failure(exc, target)
        if error.upstream is None:
            error.upstream = {"host": target.host, "port": target.port, "ip": ip, "tls": tls}
        return error

    def _connect_failure(self, exc: BaseException, target: Target) -> UpstreamError:
        if isinstance(exc, asyncio.CancelledError):
            raise exc
        if isinstance(exc, smtp_errors.SMTPAuthenticationError):
            # The upstream's words, as decoded_reply_text reads any reply: its raw text (a byte that is not
            # UTF-8, a NUL) made the client's reply a traceback and "451 4.3.0 Temporary local problem".
            said = _first_line(exc.message)
            return UpstreamError(_relay_reply(451, "4.7.0", f"The relay could not log in to upstream {target} "
                                                            f"({exc.code} {said}); check "
                                                            f"upstream.username and password_file", "upstream-login"))
        if isinstance(exc, _NoAuthOffered):
            # Many servers offer AUTH only once TLS is up (Postfix's smtpd_tls_auth_only).
            hint = "" if exc.tls else "; some servers offer it only over TLS (upstream.starttls)"
            return UpstreamError(_relay_reply(451, "4.7.0", f"Upstream {target} does not offer AUTH "
                                                            f"(upstream.username is set){hint}; the message was "
                                                            f"not accepted, check upstream.host and "
                                                            f"upstream.username", "upstream-login"))
        if isinstance(exc, _TlsRequired):
            return UpstreamError(_relay_reply(451, "4.7.5", f"Upstream {target} {exc.why} and upstream.starttls is "
                                                            f"required; not sending in clear", exc.cause))
        if isinstance(exc, smtp_errors.SMTPException) and "STARTTLS" in str(exc):
            return UpstreamError(_relay_reply(451, "4.7.5", f"Upstream {target} does not offer STARTTLS and "
                                                            f"upstream.starttls is required; not sending in clear",
                                              "upstream-no-starttls"))
        if isinstance(exc, ssl.SSLError) or isinstance(getattr(exc, "__cause__", None), ssl.SSLError):
            return UpstreamError(_relay_reply(451, "4.7.5", f"TLS with upstream {target} failed "
                                                            f"({_describe(exc)})", "upstream-tls"))
        if isinstance(exc, smtp_errors.SMTPResponseException):
            if not 400 <= exc.code <= 599:
                # Not a refusal: garbage, or a greeting that is not 220 yet not a 4xx/5xx (`220-hi`
                # then `250 there`); relayed, its 250 became the reply to the client's MAIL.
                return UpstreamError(_relay_reply(451, "4.5.0", f"Upstream {target} sent a malformed reply "
                                                                f"({_describe_garbage(exc.message)}); please "
                                                                f"retry later", "upstream-protocol"))
            # The upstream answered its greeting or EHLO with a refusal (e.g. 421, 554).
            return UpstreamError(Reply.from_message(exc.code, decoded_reply_text(exc.message)))
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError, smtp_errors.SMTPTimeoutError)):
            return UpstreamError(_relay_reply(451, "4.4.2", f"Upstream {target} did not answer within "
                                                            f"{self._up.connect_timeout:g} s; please retry later",
                                              "upstream-timeout"))
        closed = next((e for e in (exc, exc.__cause__) if isinstance(e, smtp_errors.SMTPServerDisconnected)), None)
        if closed is not None:
            # The host took the TCP connection, then closed it before or while it greeted, or after
            # EHLO or STARTTLS's 220: reachable, and "unreachable ... check the relay's network and
            # routes" sent the operator to the wrong end (RFC 5321 3.1: a server may drop a session it
            # will not serve; Postfix logs "lost connection with HOST while receiving the initial
            # server greeting").
            return UpstreamError(_relay_reply(451, "4.4.2", f"Upstream {target} closed the connection before "
                                                            f"the session was set up ({_describe(closed)}); the "
                                                            f"message was not accepted, please retry later",
                                              "upstream-closed"))
        return UpstreamError(_relay_reply(451, "4.4.1", f"Upstream {target} is unreachable ({_describe(exc)}); "
                                                        f"the message was not accepted, please retry later",
                                              _unreachable_cause(exc)))

    # -- lending connections out --------------------------------------------

    async def acquire(self, suits=None, connect=None) -> UpstreamConnection:
        """A live connection: an idle one, a new one while fewer than pool_size are open, or
        else the next one given back (up to connect_timeout: then 451, the client retries).
        `suits(conn)` picks among idle connections (default: any); `connect()` opens a new one
        (default: self.connect)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._up.connect_timeout
        while True:
            conn = self._take_idle(suits)
            if conn is not None:
                return conn
            if self._may_open():
                return await self._open_new(connect or self.connect)
            if self._idle:
                # Full, with idle connections none of which suits: one of them makes room.
                self._spawn(self._idle.pop(0).quit())
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, max(0.0, deadline - loop.time()))
            except (asyncio.TimeoutError, TimeoutError):
                raise self._busy_error() from None
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def _take_idle(self, suits=None) -> UpstreamConnection | None:
        now = time.monotonic()
        skipped: list[UpstreamConnection] = []
        while self._idle:
            conn = self._idle.pop()
            if conn.alive and suits is not None and not suits(conn):
                skipped.append(conn)
            elif not conn.alive:
                conn.close()  # the upstream closed it while idle: nothing to say to it
            elif now - conn.last_used > self._up.idle_timeout:
                self._spawn(conn.quit())
            else:
                conn.reused = True
                self.reused += 1
                self._idle.extend(reversed(skipped))
                return conn
        self._idle.extend(reversed(skipped))
        return None

    async def _open_new(self, connect) -> UpstreamConnection:
        self._open += 1
        try:
            conn = await connect()
        except BaseException:
            self._open -= 1
            self._wake()
            raise
        conn.on_close = self._closed
        conn.home = self
        return conn

    def _closed(self, conn: UpstreamConnection) -> None:
        self._open -= 1
        if conn in self._idle:
            self._idle.remove(conn)
        self._wake()

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
                return

    def release(self, conn: UpstreamConnection) -> None:
        """Give a connection back after a transaction; never waits on the upstream."""
        if conn.in_data or conn.busy or not conn.alive:
            # After a 354 only the message or a close ends DATA; a command cut off mid-way would
            # have its reply taken for the next one's.
            conn.fail()
        elif conn.in_transaction:
            self._spawn(self._reset_and_keep(conn))  # RFC 5321 4.1.1.5: reset before reuse
        else:
            self._keep(conn)

    async def _reset_and_keep(self, conn: UpstreamConnection) -> None:
        try:
            reply = await conn.rset()
        except UpstreamError:
            return  # closed already
        if reply.code != 250:
            conn.fail()
        else:
            self._keep(conn)

    def _keep(self, conn: UpstreamConnection) -> None:
        if not conn.alive:
            conn.close()
            return
        if self.max_transactions is not None and conn.transactions >= self.max_transactions:
            self._spawn(conn.quit())
            return
        conn.last_used = time.monotonic()
        self._idle.append(conn)
        self._wake()
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().call_later(self._up.idle_timeout, self._reap)

    def _reap(self) -> None:
        """Close connections idle longer than idle_timeout, without waiting for the next MAIL."""
        self._reaper = None
        now = time.monotonic()
        for conn in [c for c in self._idle if now - c.last_used >= self._up.idle_timeout]:
            self._idle.remove(conn)
            self._spawn(conn.quit())
        if self._idle:
            oldest = min(c.last_used for c in self._idle)
            self._reaper = asyncio.get_running_loop().call_later(
                max(0.1, oldest + self._up.idle_timeout - now), self._reap)

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """QUIT every idle connection and finish the resets and QUITs under way (each has its
        own deadline)."""
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        idle, self._idle = self._idle, []
        for conn in idle:
            self._spawn(conn.quit())
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

