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

from .decision import Reply

log = logging.getLogger("relay.upstream")

# RFC 5321 4.5.2: a line starting with "." gets one more ".".
_LEADING_DOT = re.compile(rb"(?m)^\.")
_BARE_LINE_END = re.compile(rb"\r\n|\r|\n")


def _dot_stuffed(chunk) -> bytes | memoryview:
    """A line that starts with "." gets one more (RFC 5321 4.5.2); a copy only when needed."""
    return _LEADING_DOT.sub(b"..", chunk) if _LEADING_DOT.search(chunk) else chunk


class UpstreamError(Exception):
    """The upstream could not be reached or stopped answering; `reply` says so to the client."""

    def __init__(self, reply: Reply):
        super().__init__(reply.text)
        self.reply = reply


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


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


@dataclass(frozen=True)
class Target:
    host: str
    port: int

    def as_dict(self) -> dict:
        return {"host": self.host, "port": self.port}

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def crlf_normalise(data: bytes) -> bytes:
    """Every line ending becomes CRLF (what aiosmtplib would send anyway), so that
    DKIM signs exactly the bytes that go upstream (RFC 5321 2.3.8)."""
    if b"\r" not in data and b"\n" not in data:
        return data
    if data.count(b"\n") == data.count(b"\r\n") and data.count(b"\r") == data.count(b"\r\n"):
        return data  # already clean; the common case costs two counts, no copy
    return _BARE_LINE_END.sub(b"\r\n", data)


class UpstreamConnection:
    """One authenticated (if configured) SMTP connection to the upstream."""

    def __init__(self, client: aiosmtplib.SMTP, target: Target, settings):
        self._client = client
        self.target = target
        self._up = settings
        self.ip: str | None = None
        self.tls = False
        self.last_used = time.monotonic()
        self.transactions = 0
        self.broken = False
        self.data_completed = False
        self._data_started: asyncio.Future | None = None  # DATA sent ahead, its reply not yet read

    def supports(self, extension: str) -> bool:
        return self._client.supports_extension(extension)

    @property
    def max_size(self) -> int | None:
        value = self._client.esmtp_extensions.get("size", "")
        return int(value) if value.isdigit() and int(value) > 0 else None

    async def _command(self, *args: bytes, timeout: float | None = None) -> Reply:
        try:
            response = await self._client.execute_command(*args, timeout=timeout or self._up.command_timeout)
        except BaseException as exc:
            self.broken = True
            self.close()
            raise self._translate(exc) from exc
        reply = Reply.from_message(response.code, response.message)
        if reply.code == 421:  # RFC 5321 3.8: the server is closing the channel
            self.broken = True
        return reply

    def _translate(self, exc: BaseException) -> UpstreamError:
        if isinstance(exc, asyncio.CancelledError):
            raise exc
        if isinstance(exc, (smtp_errors.SMTPTimeoutError, asyncio.TimeoutError, TimeoutError)):
            return UpstreamError(_relay_reply(451, "4.4.2", f"Upstream {self.target} did not answer in time; "
                                                            f"the message was not accepted, please retry later",
                                              "upstream-timeout"))
        if isinstance(exc, smtp_errors.SMTPResponseException):
            return UpstreamError(Reply.from_message(exc.code, exc.message))
        return UpstreamError(_relay_reply(451, "4.4.2", f"Upstream {self.target} closed the connection "
                                                        f"({_describe(exc)}); the message was not accepted, "
                                                        f"please retry later", "upstream-closed"))

    async def mail(self, sender: str, options: list[str]) -> Reply:
        self.transactions += 1
        return await self._command(b"MAIL", b"FROM:<" + sender.encode("utf-8") + b">",
                                   *(o.encode("ascii") for o in options))

    async def rcpt(self, recipient: str, options: list[str] | None = None) -> Reply:
        return await self._command(b"RCPT", b"TO:<" + recipient.encode("utf-8") + b">",
                                   *(o.encode("ascii") for o in options or ()))

    async def rset(self) -> Reply:
        return await self._command(b"RSET")

    def begin_data(self) -> None:
        """Send DATA while the client is still sending its message, so that the upstream's 354
        is there by the time the message is (one round trip less for every message). From here
        on the connection can only take the message or be closed: see `in_data`."""
        if self._data_started is None and not self.broken:
            self._data_started = asyncio.ensure_future(self._command(b"DATA"))

    @property
    def in_data(self) -> bool:
        """DATA was sent and no message followed: a RSET or QUIT now would become message text."""
        return self._data_started is not None

    def abandon_data(self) -> None:
        """Give up a DATA sent ahead: closing is the only way out that delivers nothing."""
        started, self._data_started = self._data_started, None
        if started is not None:
            started.add_done_callback(lambda f: f.cancelled() or f.exception())
            self.broken = True
            self.close()

    async def data(self, chunks: list) -> Reply:
        """DATA with a CRLF-clean message given in pieces that each start a line. Dot-stuffing
        is ours (RFC 5321 4.5.2) and the writes go straight to the transport, so a large message
        is not copied again by the client library's own normalisation."""
        self.data_completed = False
        started, self._data_started = self._data_started, None
        start = await (started if started is not None else self._command(b"DATA"))
        if start.code != 354:
            return start
        protocol = self._client.protocol
        if protocol is None:
            self.broken = True
            raise UpstreamError(_relay_reply(451, "4.4.2", f"Upstream {self.target} closed the connection; "
                                                           f"please retry later", "upstream-closed"))
        chunks = [c for c in chunks if len(c)]
        last = chunks[-1] if chunks else b""
        tail = b".\r\n" if bytes(last[-2:]) == b"\r\n" else b"\r\n.\r\n"
        try:
            for chunk in chunks:
                await self._write_flow_controlled(protocol, _dot_stuffed(chunk))
            protocol.write(tail)
            response = await protocol.read_response(timeout=self._up.data_timeout)
        except BaseException as exc:
            self.broken = True
            self.close()
            raise self._translate(exc) from exc
        self.last_used = time.monotonic()
        self.data_completed = True
        return Reply.from_message(response.code, response.message)

    CHUNK = 1 << 20

    async def _write_flow_controlled(self, protocol, body: bytes) -> None:
        """Hand a large body to the transport a chunk at a time, waiting while its buffer is
        full, so that the transport does not hold another full copy of the message."""
        if len(body) <= self.CHUNK:
            protocol.write(body)
            return
        view = memoryview(body)
        transport = protocol.transport
        for start in range(0, len(view), self.CHUNK):
            protocol.write(view[start:start + self.CHUNK])
            if transport.get_write_buffer_size() > 4 * self.CHUNK:
                await protocol._drain_helper()

    async def quit(self) -> None:
        try:
            await asyncio.wait_for(self._client.quit(), 5)
        except BaseException:
            self.close()

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:
            pass


class UpstreamPool:
    """Reuses upstream connections across transactions (RSET only after an aborted
    transaction: RFC 5321 3.3 ends a transaction with the reply to the final dot)."""

    def __init__(self, settings):
        self.settings = settings
        self._up = settings.upstream
        self._idle: list[UpstreamConnection] = []
        self._password: str | None = None
        self.opened = 0
        self.reused = 0

    @property
    def target(self) -> Target:
        return Target(self._up.host, self._up.port)

    def _read_password(self) -> str | None:
        if self._up.password_file is None:
            return None
        if self._password is None:
            self._password = self._up.password_file.read_text(encoding="utf-8").strip()
        return self._password

    def _tls_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self._up.ca_file) if self._up.ca_file else None)
        if not self._up.tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    async def connect(self) -> UpstreamConnection:
        target = self.target
        mode = self._up.starttls
        client = aiosmtplib.SMTP(
            hostname=target.host, port=target.port, local_hostname=self.settings.hostname,
            timeout=self._up.command_timeout,
            start_tls={"required": True, "opportunistic": None, "off": False}[mode],
            tls_context=self._tls_context() if mode != "off" else None,
            username=self._up.username, password=self._read_password(),
        )
        try:
            await asyncio.wait_for(client.connect(timeout=self._up.connect_timeout),
                                   self._up.connect_timeout + self._up.command_timeout)
            if client.is_ehlo_or_helo_needed:  # no STARTTLS or AUTH made connect() greet already
                await self._greet(client)
        except BaseException as exc:
            client.close()
            raise self._connect_error(exc, target) from exc
        conn = UpstreamConnection(client, target, self._up)
        sock = client.get_transport_info("peername")
        conn.ip = sock[0] if sock else None
        conn.tls = client.get_transport_info("sslcontext") is not None
        self.opened += 1
        return conn

    @staticmethod
    async def _greet(client: aiosmtplib.SMTP) -> None:
        try:
            await client.ehlo()
        except smtp_errors.SMTPHeloError:
            await client.helo()  # RFC 5321 3.2: fall back to HELO for an old server

    def _connect_error(self, exc: BaseException, target: Target) -> UpstreamError:
        if isinstance(exc, asyncio.CancelledError):
            raise exc
        if isinstance(exc, smtp_errors.SMTPAuthenticationError):
            return UpstreamError(_relay_reply(451, "4.7.0", f"The relay could not log in to upstream {target} "
                                                            f"({exc.code} {exc.message.splitlines()[0]}); check "
                                                            f"upstream.username and password_file", "upstream-login"))
        if isinstance(exc, smtp_errors.SMTPException) and "STARTTLS" in str(exc):
            return UpstreamError(_relay_reply(451, "4.7.5", f"Upstream {target} does not offer STARTTLS and "
                                                            f"upstream.starttls is required; not sending in clear",
                                              "upstream-no-starttls"))
        if isinstance(exc, ssl.SSLError) or isinstance(getattr(exc, "__cause__", None), ssl.SSLError):
            return UpstreamError(_relay_reply(451, "4.7.5", f"TLS with upstream {target} failed "
                                                            f"({_describe(exc)})", "upstream-tls"))
        if isinstance(exc, smtp_errors.SMTPResponseException):
            # The upstream answered its greeting or EHLO with a refusal (e.g. 421, 554).
            return UpstreamError(Reply.from_message(exc.code, exc.message))
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError, smtp_errors.SMTPTimeoutError)):
            return UpstreamError(_relay_reply(451, "4.4.2", f"Upstream {target} did not answer within "
                                                            f"{self._up.connect_timeout:g} s; please retry later",
                                              "upstream-timeout"))
        return UpstreamError(_relay_reply(451, "4.4.1", f"Upstream {target} is unreachable ({_describe(exc)}); "
                                                        f"the message was not accepted, please retry later",
                                              _unreachable_cause(exc)))

    async def acquire(self) -> UpstreamConnection:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.broken or now - conn.last_used > self._up.idle_timeout:
                asyncio.ensure_future(conn.quit())
                continue
            self.reused += 1
            return conn
        return await self.connect()

    async def release(self, conn: UpstreamConnection, clean: bool) -> None:
        """Give a connection back. `clean` is False when a transaction was left open
        upstream; it is then reset first, and closed if the reset fails."""
        if conn.in_data:
            conn.abandon_data()
            return
        if not conn.broken and not clean:
            try:
                reply = await conn.rset()
                conn.broken = reply.code != 250
            except UpstreamError:
                conn.broken = True
        if conn.broken or len(self._idle) >= self._up.pool_size:
            await conn.quit()
            return
        conn.last_used = time.monotonic()
        self._idle.append(conn)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        await asyncio.gather(*(c.quit() for c in idle), return_exceptions=True)


async def probe_recipient(settings, recipient: str, sender: str = "") -> Reply:
    """Ask the upstream whether it accepts `recipient` now: MAIL and RCPT, no DATA.
    Used by `relay bounces recheck`; a connection failure comes back as its 4xx Reply."""
    pool = UpstreamPool(settings)
    try:
        conn = await pool.connect()
    except UpstreamError as exc:
        return exc.reply
    try:
        reply = await conn.mail(sender, [])
        if reply.positive:
            reply = await conn.rcpt(recipient)
        await conn.rset()
        return reply
    except UpstreamError as exc:
        return exc.reply
    finally:
        await conn.quit()
