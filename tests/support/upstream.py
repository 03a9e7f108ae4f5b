"""An upstream SMTP server on loopback that answers like real providers do.

Recipients choose the behaviour by their local part (the replies are the
providers' real texts), so one server covers every scenario of a test:

  nosuchuser@   Gmail's multi-line 550-5.1.1 at RCPT
  full@         552-5.2.2 (Gmail, mailbox full) at the end of DATA
  ratelimit@    Gmail's 421-4.7.28 at RCPT
  spam@         Gmail's 550-5.7.1 at the end of DATA
  noroute@      554 5.4.4 at RCPT
  disconnect@   the server drops the connection in the middle of DATA
  slowdata@     the reply to the final dot comes after `slow_seconds`
  tempfail@     451 4.3.0 at RCPT
  accessdenied@ Microsoft's 550 5.4.1 (recipient not in the tenant) at RCPT
  senderrefused@  a sender refusal reported at RCPT (Postfix's smtpd_delay_reject shape)
and senders with the local part `refusedsender` are refused at MAIL (550 5.7.1).
anything else is accepted and the message is captured. A test scripts more with
`upstream.rcpt_replies[local] = text` and `upstream.data_replies[local] = text`.

Throttling the way Gmail does it: `upstream.throttle_after[sender_domain] = N` answers every RCPT
of mail from that domain with `upstream.throttle_reply` (Gmail's 421-4.7.28) once N messages from
it were accepted; other senders' mail still goes (`upstream.accepted_from` counts per domain).

A provider slow to answer RCPT (sessions under way at once): `upstream.rcpt_gate.clear()` holds
every reply to RCPT until `upstream.rcpt_gate.set()`; `upstream.rcpts_waiting` says how many wait.

Misbehaviour, for the relay's lockstep at the edges (see also the attributes
of FakeUpstream: data_command_reply, rset_delay, data_idle_timeout, and the
methods drop_connections() and mute_connections()):

  latin1@       accepted with a Latin-1 (not UTF-8) 250 at RCPT
  latin1no@     refused with a Latin-1 550 at RCPT
  garbage@      a line of "DDDD..." instead of a reply at RCPT
  nul@          a NUL line instead of a reply at RCPT
  closing421@   421 to the final dot, the connection left open
  toobig@       552 in the middle of the message; the rest is read, then the connection closed
  stall@        354, then the server stops reading and never answers
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field

from aiosmtpd.smtp import SMTP

from tests.support.loop_thread import run_until_stopped

GMAIL_NO_SUCH_USER = (
    "550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n"
    "550-5.1.1 double-checking the recipient's email address for typos or\r\n"
    "550-5.1.1 unnecessary spaces. For more information, go to\r\n"
    "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser 41be03b00d2f7-b1e3c0b4a2dsi1234567a12.123 - gsmtp")
GMAIL_MAILBOX_FULL = (
    "552-5.2.2 The recipient's inbox is out of storage space and inactive. Please\r\n"
    "552-5.2.2 direct the recipient to\r\n"
    "552 5.2.2  https://support.google.com/mail/?p=OverQuotaPerm d2e1a72fcca58-7a3b1234sor123.12 - gsmtp")
GMAIL_RATE_LIMIT = (
    "421-4.7.28 Gmail has detected an unusual rate of mail originating from your SPF\r\n"
    "421-4.7.28 domain [example.com      12]. To protect our users from spam, mail sent from your\r\n"
    "421-4.7.28 domain has been temporarily rate limited. For more information, go to\r\n"
    "421-4.7.28  https://support.google.com/mail/?p=UnsolicitedRateLimitError to review our\r\n"
    "421 4.7.28 Bulk Email Senders Guidelines. 5b1f17b1804b1-42f8c1234sor1234567.12 - gsmtp")
GMAIL_SPAM = (
    "550-5.7.1 [203.0.113.5      12] Our system has detected that this message is\r\n"
    "550-5.7.1 likely unsolicited mail. To reduce the amount of spam sent to Gmail,\r\n"
    "550-5.7.1 this message has been blocked. For more information, go to\r\n"
    "550 5.7.1  https://support.google.com/mail/?p=UnsolicitedMessageError a1si123 - gsmtp")
NO_ROUTE = "554 5.4.4 [internal] Domain lookup failed"
MICROSOFT_ACCESS_DENIED = ("550 5.4.1 Recipient address rejected: Access denied. AS(201806281) "
                           "[DM6NAM10FT025.eop-nam10.prod.protection.outlook.com]")
SENDER_REFUSED_AT_RCPT = "553 5.7.1 <refusedsender@sender.test>: Sender address rejected: not owned by user"
SENDER_REFUSED = "550 5.7.1 Sender address rejected: domain has no SPF authorisation for your IP"
TEMPFAIL = "451 4.3.0 Mail server temporarily rejected message."

# Bytes that are not UTF-8 travel as surrogates (surrogateescape) and go out as the original bytes.
LATIN1_OK = "250 2.1.5 Empf\udce4nger ok"
LATIN1_REFUSED = "550 5.1.1 Empf\udce4nger unbekannt"
CLOSING_421 = "421 4.7.0 Try again later, closing connection"

RCPT_REPLIES = {"nosuchuser": GMAIL_NO_SUCH_USER, "ratelimit": GMAIL_RATE_LIMIT, "noroute": NO_ROUTE,
                "tempfail": TEMPFAIL, "accessdenied": MICROSOFT_ACCESS_DENIED,
                "senderrefused": SENDER_REFUSED_AT_RCPT, "latin1no": LATIN1_REFUSED, "garbage": "D" * 300,
                "nul": "\x00"}
RCPT_ACCEPTED_WITH = {"latin1": LATIN1_OK}
MAIL_REPLIES = {"refusedsender": SENDER_REFUSED}
DATA_REPLIES = {"full": GMAIL_MAILBOX_FULL, "spam": GMAIL_SPAM, "closing421": CLOSING_421}


@dataclass
class Captured:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    mail_options: list[str] = field(default_factory=list)
    peer: tuple = ()


class _SMTP(SMTP):
    def __init__(self, upstream: "FakeUpstream", *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.upstream = upstream
        self.muted = False

    async def push(self, status):
        if self.muted:
            return  # gone silent: no reply, no FIN (a NAT that forgot the flow)
        if isinstance(status, str):
            status = status.encode("utf-8", "surrogateescape")
        await super().push(status)

    def connection_made(self, transport):
        if self.transport is None:  # not the STARTTLS switch
            self.upstream.open_connections += 1
        super().connection_made(transport)
        self.upstream.live.add(self)

    async def _handle_client(self):
        if self.upstream.greeting is not None:  # a server refusing the session (RFC 5321 3.1, 4.3.2)
            await self.push(self.upstream.greeting)
            self.transport.close()
            return
        await super()._handle_client()

    def connection_lost(self, error):
        self.upstream.open_connections -= 1
        self.upstream.live.discard(self)
        super().connection_lost(error)

    async def smtp_DATA(self, arg):
        self.upstream.data_command.set()
        if self.upstream.data_command_reply and self.envelope.rcpt_tos:
            await self.push(self.upstream.data_command_reply)
            return
        locals_ = {r.split("@")[0].lower() for r in self.envelope.rcpt_tos}
        if "toobig" in locals_:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            await self._reader.read(1000)
            await self.push("552 5.3.4 Message size exceeds fixed limit")
            self.transport.pause_reading()  # busy elsewhere for a while: the sender's buffers fill up
            await asyncio.sleep(1.0)
            self.transport.resume_reading()
            tail = b""  # the rest is read and dropped, then the connection closes (FIN, not a reset)
            while not tail.endswith(b"\r\n.\r\n"):
                chunk = await self._reader.read(65536)
                if not chunk:
                    break
                tail = (tail + chunk)[-5:]
            self.transport.close()
            return
        if "stall" in locals_:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            self.transport.pause_reading()
            await asyncio.sleep(3600)
            return
        if self.upstream.data_idle_timeout is not None and self.envelope.rcpt_tos:
            # Postfix under stress (smtpd_timeout 10 s): no message within the timeout, 421 and close.
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            try:
                data = await asyncio.wait_for(self._reader.readuntil(b"\r\n.\r\n"),
                                              self.upstream.data_idle_timeout)
            except asyncio.TimeoutError:
                await self.push("421 4.4.2 mx.upstream.test Error: timeout exceeded")
                self.transport.close()
                return
            self.envelope.content = self.envelope.original_content = data[:-3]
            status = await self._call_handler_hook("DATA")
            self._set_post_data_state()
            await self.push(status)
            return
        await super().smtp_DATA(arg)


class _Handler:
    def __init__(self, upstream: "FakeUpstream"):
        self.upstream = upstream

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        self.upstream.ehlos += 1
        if self.upstream.ehlo_after_tls_reply is not None and server._tls_protocol is not None:
            return [self.upstream.ehlo_after_tls_reply]
        return responses

    async def handle_MAIL(self, server, session, envelope, address, options):
        self.upstream.commands.append(f"MAIL {address} {' '.join(options)}".strip())
        local = address.split("@")[0].lower()
        if local in MAIL_REPLIES:
            return MAIL_REPLIES[local]
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        self.upstream.commands.append(f"RCPT {address}")
        if not self.upstream.rcpt_gate.is_set():
            self.upstream.rcpts_waiting += 1
            try:
                while not self.upstream.rcpt_gate.is_set():
                    await asyncio.sleep(0.01)
            finally:
                self.upstream.rcpts_waiting -= 1
        local = address.split("@")[0]
        # ASCII letters only, as a mail server compares mailboxes: str.lower() would make U+212A
        # KELVIN SIGN "k", and a refusal keyed for a non-ASCII mailbox would refuse an ASCII one.
        local = local.lower() if local.isascii() else local
        if local in self.upstream.rcpt_replies:
            return self.upstream.rcpt_replies[local]
        sender_domain = (envelope.mail_from or "").rpartition("@")[2].lower()
        limit = self.upstream.throttle_after.get(sender_domain)
        if limit is not None and self.upstream.accepted_from.get(sender_domain, 0) >= limit:
            self.upstream.throttled += 1
            return self.upstream.throttle_reply
        envelope.rcpt_tos.append(address)
        return RCPT_ACCEPTED_WITH.get(local, "250 2.1.5 OK")

    async def handle_RSET(self, server, session, envelope):
        self.upstream.commands.append("RSET")
        if self.upstream.rset_delay:
            await asyncio.sleep(self.upstream.rset_delay)
        return "250 2.0.0 OK"

    async def handle_DATA(self, server, session, envelope):
        self.upstream.commands.append("DATA")
        locals_ = {r.split("@")[0].lower() for r in envelope.rcpt_tos}
        if "disconnect" in locals_:
            server.transport.close()
            return "421 4.4.2 gone"  # never reaches the client: the connection is closed
        if "slowdata" in locals_:
            await asyncio.sleep(self.upstream.slow_seconds)
        for local in locals_:
            if local in self.upstream.data_replies:
                return self.upstream.data_replies[local]
        sender_domain = (envelope.mail_from or "").rpartition("@")[2].lower()
        self.upstream.accepted_from[sender_domain] = self.upstream.accepted_from.get(sender_domain, 0) + 1
        self.upstream.messages.append(Captured(envelope.mail_from, list(envelope.rcpt_tos),
                                               envelope.original_content, list(envelope.mail_options),
                                               session.peer))
        return "250 2.0.0 OK 1700000000 x1si1234567 - gsmtp"


class FakeUpstream:
    def __init__(self, hostname: str = "mx.upstream.test", tls_context=None, require_starttls: bool = False,
                 auth: dict | None = None, rcvbuf: int | None = None, timeout: float = 30,
                 address: str = "127.0.0.1", port: int = 0):
        self.hostname = hostname
        self.address = address  # e.g. 127.0.0.2, 127.0.0.3 ...: several MX hosts on one port
        self.greeting: str | None = None  # e.g. "421 4.7.0 busy": refuse every session at the greeting
        self._rcvbuf = rcvbuf  # a small receive buffer fills fast when the server stops reading
        self._timeout = timeout  # the server's own idle timeout
        self.messages: list[Captured] = []
        self.commands: list[str] = []
        self.ehlos = 0
        self.ehlo_after_tls_reply: str | None = None  # e.g. "421 4.7.0 busy": the EHLO after STARTTLS refused
        self.connections = 0
        self.open_connections = 0  # connected now
        self.slow_seconds = 2.0
        self.rcpt_replies: dict[str, str] = dict(RCPT_REPLIES)  # local part -> reply to RCPT
        self.data_replies: dict[str, str] = dict(DATA_REPLIES)  # local part -> reply to the final dot
        self.data_command_reply: str | None = None  # a reply to the DATA command itself (refusal, or a bogus 250)
        self.data_command = threading.Event()  # set when a DATA command arrives (the client has its message)
        self.rset_delay = 0.0  # seconds before the reply to RSET
        self.rcpt_gate = threading.Event()  # cleared: replies to RCPT wait until it is set again
        self.rcpt_gate.set()
        self.rcpts_waiting = 0  # RCPTs held at the gate now
        self.data_idle_timeout: float | None = None  # 421 and close when no message follows 354 in time
        self.live: set = set()  # connections open now
        self.throttle_after: dict[str, int] = {}  # sender domain -> messages accepted before 421-4.7.28
        self.throttle_reply = GMAIL_RATE_LIMIT
        self.accepted_from: dict[str, int] = {}  # sender domain -> messages accepted
        self.throttled = 0  # RCPTs answered with throttle_reply
        self._tls_context = tls_context
        self._require_starttls = require_starttls
        self._auth = auth
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=run_until_stopped, args=(self.loop,), daemon=True)
        self.port = port
        self._server = None

    def _factory(self):
        self.connections += 1
        kwargs = {}
        if self._auth is not None:
            users = self._auth

            def authenticator(server, session, envelope, mechanism, data):
                from aiosmtpd.smtp import AuthResult
                ok = users.get(data.login.decode()) == data.password.decode()
                return AuthResult(success=ok, handled=False)
            kwargs.update(authenticator=authenticator, auth_require_tls=self._tls_context is not None)
        return _SMTP(self, _Handler(self), hostname=self.hostname, ident="ESMTP test", enable_SMTPUTF8=True,
                    tls_context=self._tls_context, require_starttls=self._require_starttls, timeout=self._timeout, **kwargs)

    def start(self) -> "FakeUpstream":
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(
            self.loop.create_server(self._factory, self.address, self.port), self.loop)
        self._server = fut.result(10)
        if self._rcvbuf:
            for sock in self._server.sockets:  # accepted connections inherit it (Linux)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._rcvbuf)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def _in_loop(self, fn):
        async def run():
            return fn()
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(5)

    def drop_connections(self) -> int:
        """Close every open connection (a server closing idle connections: FIN after its timeout)."""
        def drop():
            dropped = list(self.live)
            for proto in dropped:
                proto.transport.close()
            return len(dropped)
        return self._in_loop(drop)

    def mute_connections(self) -> int:
        """Every open connection goes silent without closing; new connections answer normally."""
        def mute():
            for proto in self.live:
                proto.muted = True
            return len(self.live)
        return self._in_loop(mute)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return  # stopped already (a test that takes a host down, then the fixture)

        # A server that stops closes its connections: left open on a stopped loop, a relay's QUIT
        # there went unanswered, and the relay's own stop (often the next fixture's teardown)
        # waited out the QUIT deadline, 5 s.
        async def close():
            self._server.close()
            for proto in list(self.live):
                if proto.transport is not None:
                    proto.transport.close()
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def wait_for_messages(self, n: int, timeout: float = 10.0) -> list[Captured]:
        deadline = time.time() + timeout
        while len(self.messages) < n and time.time() < deadline:
            time.sleep(0.02)
        return self.messages


def free_port(addresses=("127.0.0.2", "127.0.0.3", "127.0.0.4")) -> int:
    """A TCP port free on every one of `addresses` (MX hosts on one port, as `upstream.port` has it)."""
    from tests.support.peers import free_port as free_on

    return free_on(tuple(addresses))


# The sockets that keep closed_port()'s ports taken while the tests run.
_CLOSED_PORTS: list[socket.socket] = []


def closed_port() -> int:
    """A loopback port with nothing listening on it (for 'upstream unreachable'). Its socket stays
    bound, never listening, until the tests end: a connection there is refused, and no server of this
    or a later test that binds port 0 is given the same port (released at once, it was: a relay then
    listened on its own 'unreachable' upstream and relayed to itself)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _CLOSED_PORTS.append(s)
    return s.getsockname()[1]
