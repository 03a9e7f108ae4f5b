"""The milter listener: asyncio, on TCP (`host:port`) or a UNIX socket (`unix:PATH`).

Each connection negotiates options, then runs a MilterSession for as many client sessions and
messages as the MTA sends on it. A malformed or oversized packet closes that one connection
with a log line; nothing a peer sends can stop the server.

Deadlines: a packet, once its first byte came, must be complete within `limits.timeout`, however its
bytes trickle in (bytes of a packet do not restart it, so a byte a minute cannot hold the connection);
the first packet (option negotiation) must come within `limits.timeout` of the connect. Between two
packets the MTA may be silent for `milter.idle_timeout` (default 7210 s, libmilter's own): Postfix
sends nothing from RCPT until its cleanup has the whole message (SMFIP_NODATA), and an SMTP client's
DATA phase may last longer than limits.timeout (smtpd_timeout bounds each read, not the whole); the
MTA bounds its sessions itself (review30 D1). A peer that does not take our replies has them taken
within `limits.timeout`, else the connection is reset. A closed connection whose peer does not read is
reset after CLOSE_GRACE.
"""

from __future__ import annotations

import asyncio
import errno
import grp
import logging
import os
import socket
import stat

from ..logsample import SampledLog
from ..pipeline import Pipeline
from . import codec
from .session import WANTED_MACROS, MilterSession, hooks_used

log = logging.getLogger("relay.milter")
_refused_log = SampledLog(log)  # a connection flood: counted in full, logged once a minute

READ_SIZE = 256 * 1024
CLOSE_GRACE = 10.0  # seconds a closed connection may take to flush its last replies to a peer that does not read
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


def build_milter_pipeline(settings, policies, resources) -> Pipeline:
    """The steps milter mode runs, by `milter.mode` (DESIGN.md: the same steps as relay mode).

    outbound (mail the MTA sends for our domains): SPF of our egress IPs at MAIL, the bounce list
    at RCPT, DKIM signing at end of message.
    inbound (mail the MTA receives from the world): DKIM and SPF of the connecting client,
    recorded in Authentication-Results, with forged ones removed.
    No Received (the MTA writes its own) and no upstream (the MTA delivers)."""
    from ..steps.auth_results import AuthResultsStep
    from ..steps.bounce_list import BounceListStep
    from ..steps.dkim_sign import DkimSignStep
    from ..steps.spf_check import SpfCheckStep

    if settings.milter.mode == "inbound":
        return Pipeline([AuthResultsStep(settings, policies, resources.resolver, check_client_spf=True)])
    steps = []
    if _spf_can_refuse(settings, policies):
        # Only then: without it MAIL never refuses, and the MTA is told not to wait for our reply
        # there (SMFIP_NR_MAIL), one round trip less per message. A reload that changes this
        # applies to the milter connections opened after it (the flags are agreed per connection).
        steps.append(SpfCheckStep(settings, policies, resources.resolver))
    steps += [BounceListStep(resources.store), DkimSignStep(settings, policies, metrics=resources.metrics)]
    return Pipeline(steps)


def _spf_can_refuse(settings, policies) -> bool:
    """The SPF pre-flight can refuse, or warn, only with egress IPs and a domain whose policy checks."""
    domains = getattr(policies, "domains", None)
    if not settings.egress_ips or domains is None:
        return False
    names = [*domains.domains, "*"]
    return any((domains.get(name) or _OFF).spf != "off" for name in names)


class _Off:
    spf = "off"


_OFF = _Off()


class MilterConnection:
    """Option negotiation and the dispatch of one connection's commands to its MilterSession."""

    def __init__(self, server: "MilterServer", peer: str, non_smtpd: bool = False):
        self.server = server
        self.peer = peer
        self.non_smtpd = non_smtpd  # on milter.non_smtpd_listen: every session is a sendmail(1) submission
        self.protocol = 0  # the SMFIP_* flags agreed
        self.negotiated = False
        self.closed = False
        self.session: MilterSession | None = None

    def _noreply(self, flag: int) -> bool:
        return bool(self.protocol & flag)

    def _negotiate(self, cmd: codec.OptNeg) -> bytes:
        if cmd.version < 2:
            raise codec.ProtocolError(f"milter protocol version {cmd.version} (2 to 6 are understood)")
        pipeline = self.server.pipeline
        used = hooks_used(pipeline)
        wanted = (codec.SMFIP_NOUNKNOWN | codec.SMFIP_NODATA | codec.SMFIP_NOEOH
                  | codec.SMFIP_NR_HELO | codec.SMFIP_NR_HDR | codec.SMFIP_NR_BODY | codec.SMFIP_HDR_LEADSPC)
        if "on_connect" not in used:
            wanted |= codec.SMFIP_NR_CONN
        if "on_mail" not in used:
            wanted |= codec.SMFIP_NR_MAIL
        if "on_rcpt" not in used:
            wanted |= codec.SMFIP_NR_RCPT
        # Only what the MTA offers may be asked for (libmilter refuses anything else); a flag it
        # does not offer just means we reply at that stage.
        self.protocol = wanted & cmd.protocol
        wanted_actions = codec.SMFIF_ADDHDRS | codec.SMFIF_CHGHDRS | codec.SMFIF_SETSYMLIST
        remove_refused = False
        if self.non_smtpd and "on_rcpt" in used:
            # Postfix's cleanup cannot refuse one recipient of a message submitted with sendmail(1): a
            # refusal at RCPT defers the whole message ("milter configuration error: can't reject
            # recipient in non-smtpd(8) submission", cleanup_milter.c), good recipients included. So a
            # recipient a step refuses is removed at end of message instead (SMFIR_DELRCPT), and only
            # here: on milter.listen (smtpd) a refusal at RCPT is what the client must hear.
            if cmd.actions & codec.SMFIF_DELRCPT:
                wanted_actions |= codec.SMFIF_DELRCPT
                remove_refused = True
            else:
                log.warning("milter connection from %s on non_smtpd_listen: the MTA does not offer to let us "
                            "remove recipients (SMFIF_DELRCPT); bounce-listed recipients are refused at RCPT",
                            self.peer)
        actions = wanted_actions & cmd.actions
        macros = WANTED_MACROS if actions & codec.SMFIF_SETSYMLIST else None
        self.negotiated = True
        self.session = MilterSession(self.server, leading_space=bool(self.protocol & codec.SMFIP_HDR_LEADSPC),
                                     remove_refused=remove_refused, local_submission=self.non_smtpd)
        return codec.optneg_reply(min(cmd.version, codec.PROTOCOL_VERSION), actions, self.protocol, macros)

    @staticmethod
    def _reply(reply) -> bytes:
        if reply is None:
            return codec.continue_()
        if not (400 <= reply.code < 600):
            return codec.continue_()
        return codec.replycode(reply.wire_lines())

    def _stage_reply(self, flag: int, reply) -> bytes:
        if self._noreply(flag):
            if reply is not None:  # negotiation said no step refuses here: a wiring bug, logged loudly
                log.error("milter: a refusal at a stage the MTA was told takes no reply: %s", reply.text)
            return b""
        return self._reply(reply)

    async def handle(self, cmd) -> bytes:
        """One command; returns what to send back (b"" when the stage takes no reply)."""
        if isinstance(cmd, codec.OptNeg):
            if self.session is not None:
                # Negotiated again on this connection: what the old session had open ends first (its
                # transaction's events written), as at SMFIC_QUIT_NC, before a new session replaces it.
                await self.session.close()
            return self._negotiate(cmd)
        if not self.negotiated:
            raise codec.ProtocolError(f"{type(cmd).__name__} before option negotiation")
        s = self.session
        if isinstance(cmd, codec.Macros):
            s.set_macros(cmd.stage, cmd.values)
            return b""
        if isinstance(cmd, codec.Connect):
            reply = await s.connect(cmd)
            return self._stage_reply(codec.SMFIP_NR_CONN, reply)
        if isinstance(cmd, codec.Helo):
            s.helo(cmd.name)
            return b"" if self._noreply(codec.SMFIP_NR_HELO) else codec.continue_()
        if isinstance(cmd, codec.Mail):
            reply = await s.mail(cmd.args)
            return self._stage_reply(codec.SMFIP_NR_MAIL, reply)
        if isinstance(cmd, codec.Rcpt):
            reply = await s.rcpt(cmd.args, can_refuse=not self._noreply(codec.SMFIP_NR_RCPT))
            return self._stage_reply(codec.SMFIP_NR_RCPT, reply)
        if isinstance(cmd, codec.Header):
            s.header(cmd.name, cmd.value)
            return b"" if self._noreply(codec.SMFIP_NR_HDR) else codec.continue_()
        if isinstance(cmd, codec.EndOfHeaders):
            return b"" if self._noreply(codec.SMFIP_NR_EOH) else codec.continue_()
        if isinstance(cmd, codec.Body):
            s.body(cmd.data)
            return b"" if self._noreply(codec.SMFIP_NR_BODY) else codec.continue_()
        if isinstance(cmd, codec.EndOfMessage):
            if cmd.data:
                s.body(cmd.data)
            reply, changes = await s.end_of_message()
            out = bytearray()
            for change in changes:
                if change.action == "delete":
                    out += codec.chgheader(change.index, change.name, "")
                elif change.action == "delrcpt":
                    out += codec.delrcpt(change.name)
                else:
                    out += codec.insheader(change.index, change.name, change.value)
            out += self._reply(reply)
            return bytes(out)
        if isinstance(cmd, codec.Abort):
            await s.abort()
            return b""  # libmilter: no reply to abort
        if isinstance(cmd, codec.Data):
            return b"" if self._noreply(codec.SMFIP_NR_DATA) else codec.continue_()
        if isinstance(cmd, codec.Unknown):
            return b"" if self._noreply(codec.SMFIP_NR_UNKN) else codec.continue_()
        if isinstance(cmd, codec.QuitNewConnection):
            await s.close()  # the options stay; the next client session starts with connect
            return b""
        if isinstance(cmd, codec.Quit):
            self.closed = True
            return b""
        raise codec.ProtocolError(f"unexpected {type(cmd).__name__}")

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


def bind_milter_socket(m, listen: bool = True, key: str = "milter.listen") -> socket.socket:
    """The listening socket milter.listen names: TCP, or a UNIX socket with its mode and group.
    listen=False: bound only, for workers whose server listens on it (relay/workers.py). A socket that
    cannot be made raises OSError naming `key` and the address: bind(2) on a UNIX path says only
    "[Errno 98] Address already in use" or "[Errno 1] Operation not permitted", without the path."""
    try:
        return _bind_milter_socket(m, listen)
    except OSError as exc:
        why = exc.strerror or str(exc)
        why = why[:1].lower() + why[1:]
        if m.path is not None and exc.errno == errno.EADDRINUSE:
            why += " (a file that is not a socket is at that path: remove it or choose another)"
        elif m.path is not None and exc.errno in (errno.EPERM, errno.EACCES, errno.EROFS):
            why += (" (under systemd: the directory in ReadWritePaths=, and the relay's user in the group "
                    "of milter.socket_group: docs/install.md)")
        named = OSError(f"{key}: cannot listen on {m}: {why}")
        named.errno = exc.errno
        raise named from None


def _bind_milter_socket(m, listen: bool) -> socket.socket:
    if m.path is not None:
        path = str(m.path)
        if os.path.exists(path) and stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)  # a stale socket from a previous run (binding would fail)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            os.chmod(path, m.socket_mode)
            if m.socket_group is not None:
                os.chown(path, -1, grp.getgrnam(m.socket_group).gr_gid)
            if listen:
                sock.listen(1024)
        except BaseException:
            sock.close()
            raise
        return sock
    return socket.create_server((m.endpoint.host, m.endpoint.port), backlog=1024,
                                family=socket.AF_INET6 if ":" in m.endpoint.host else socket.AF_INET)


def remove_milter_socket(m) -> None:
    if m.path is not None:
        try:
            os.unlink(m.path)
        except OSError:
            pass


class MilterServer:
    def __init__(self, settings, pipeline: Pipeline, outcomes, sock: socket.socket | None = None,
                 non_smtpd_sock: socket.socket | None = None):
        self.settings = settings
        self.pipeline = pipeline  # replaced on reload
        self.outcomes = outcomes
        self.server: asyncio.AbstractServer | None = None
        self.non_smtpd_server: asyncio.AbstractServer | None = None  # milter.non_smtpd_listen
        self.connections: set[asyncio.Task] = set()
        self._sock = sock  # bound by the parent of several workers (relay/workers.py), else by start()
        self._non_smtpd_sock = non_smtpd_sock
        self._owns_socket = sock is None

    async def start(self) -> str:
        """Listen where milter.listen (and milter.non_smtpd_listen) say; returns a description of the
        bound address of milter.listen."""
        m = self.settings.milter
        self.server, where = await self._listen(m, self._sock, non_smtpd=False)
        log.info("milter (%s) listening on %s", m.mode, where)
        if m.has_non_smtpd:
            self.non_smtpd_server, ns_where = await self._listen(m.non_smtpd(), self._non_smtpd_sock,
                                                                 non_smtpd=True)
            log.info("milter (%s) for non_smtpd_milters (sendmail(1) submissions: bounce-listed recipients "
                     "removed at end of message) listening on %s", m.mode, ns_where)
        return where

    async def _listen(self, m, sock, non_smtpd: bool) -> tuple[asyncio.AbstractServer, str]:
        sock = sock if sock is not None else bind_milter_socket(
            m, key="milter.non_smtpd_listen" if non_smtpd else "milter.listen")

        async def serve(reader, writer):
            await self._serve(reader, writer, non_smtpd=non_smtpd)

        if m.path is not None:
            server = await asyncio.start_unix_server(serve, sock=sock, limit=READ_SIZE, backlog=1024)
            return server, f"unix:{m.path}"
        server = await asyncio.start_server(serve, sock=sock, limit=READ_SIZE, backlog=1024)
        addr = server.sockets[0].getsockname()
        return server, f"{addr[0]}:{addr[1]}"

    @property
    def port(self) -> int | None:
        if self.server is None or self.settings.milter.path is not None:
            return None
        return self.server.sockets[0].getsockname()[1]

    @property
    def non_smtpd_port(self) -> int | None:
        if self.non_smtpd_server is None or self.settings.milter.non_smtpd_path is not None:
            return None
        return self.non_smtpd_server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     non_smtpd: bool = False) -> None:
        task = asyncio.current_task()
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else "unix socket"
        limit = self.settings.limits.max_connections
        if len(self.connections) >= limit:
            # Each connection holds a socket and a task until its idle deadline: without a bound, a
            # peer opening connections in a loop could take every file descriptor of the process.
            # Dropped at once (the protocol has no greeting to refuse with); the MTA applies its
            # milter_default_action to that session.
            metrics = getattr(self.outcomes, "metrics", None)
            if metrics is not None:
                metrics.inc("relay_connections_refused_total", limit="milter_max_connections")
            _refused_log.warning("max_connections", "milter connection from %s refused: %d open already "
                                 "(limits.max_connections)", peer, limit)
            writer.transport.abort()
            return
        self.connections.add(task)
        conn = MilterConnection(self, peer, non_smtpd=non_smtpd)
        decoder = codec.Decoder()
        idle = self.settings.limits.timeout  # a packet begun must be complete within it; replies taken
        gap = self.settings.milter.idle_timeout  # the MTA's silence between two packets, once negotiated
        loop = asyncio.get_running_loop()
        packet_due = loop.time() + idle  # the next packet must be complete by then
        sock = writer.get_extra_info("socket")
        tcp = sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6)
        if tcp:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while not conn.closed:
                try:
                    async with asyncio.timeout_at(packet_due):  # no extra task per read, unlike wait_for
                        data = await reader.read(READ_SIZE)
                except TimeoutError:
                    if decoder.pending:
                        log.warning("milter connection from %s closed: a packet not complete within %.0f s "
                                    "(%d bytes of it came)", peer, idle, decoder.pending)
                    elif conn.negotiated:
                        log.info("milter connection from %s idle for %.0f s (milter.idle_timeout): closed",
                                 peer, gap)
                    else:
                        log.info("milter connection from %s: no option negotiation within %.0f s: closed", peer, idle)
                    break
                if not data:
                    if decoder.pending:
                        log.warning("milter connection from %s ended in the middle of a packet (%d bytes of "
                                    "it came)", peer, decoder.pending)
                    break
                if tcp and _QUICKACK is not None:
                    # With NR_* agreed the MTA sends headers and body without waiting for us, so we
                    # send nothing back until end of message; a delayed ACK (40 ms on Linux) would hold
                    # its end-of-message packet behind Nagle's algorithm (the MTA sets no TCP_NODELAY).
                    # Linux leaves quick-ACK mode by itself, so it is set again after every read.
                    sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
                out = bytearray()
                begun = decoder.pending  # bytes of a packet that had begun before this read
                packets = decoder.feed(data)
                for command, payload in packets:
                    out += await conn.handle(codec.parse(command, payload))
                    if conn.closed:
                        break
                if packets or not begun:
                    # A packet ended (or the first bytes of one came): the next one's deadline. Bytes of
                    # a packet already begun do not move it.
                    packet_due = loop.time() + self._wait(conn, decoder, idle, gap)
                if out:
                    writer.write(out)
                    try:
                        async with asyncio.timeout(idle):
                            await writer.drain()
                    except TimeoutError:
                        # A peer that sends commands and does not read the replies: once the socket's
                        # buffers are full, drain() would wait for ever, and the connection with it.
                        log.warning("milter connection from %s reset: it did not take our replies within "
                                    "%.0f s (%d bytes waiting)", peer, idle, writer.transport.get_write_buffer_size())
                        writer.transport.abort()
                        break
                    packet_due = max(packet_due, loop.time() + self._wait(conn, decoder, idle, gap))
        except codec.ProtocolError as exc:
            log.warning("milter connection from %s closed: %s", peer, exc)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # The server is stopping. Ending normally, not cancelled: asyncio's stream callback asks a
            # cancelled handler task for its exception and logs a traceback (Python 3.11).
            pass
        except Exception:
            log.exception("milter connection from %s closed after an internal error", peer)
        finally:
            try:
                await conn.close()
            except Exception:
                log.exception("milter connection from %s: closing its session failed", peer)
            writer.close()
            if writer.transport.get_write_buffer_size():
                # close() waits for the last replies to be taken; a peer that never takes them would
                # keep the socket open for ever.
                loop.call_later(CLOSE_GRACE, writer.transport.abort)
            self.connections.discard(task)

    @staticmethod
    def _wait(conn: MilterConnection, decoder: codec.Decoder, idle: float, gap: float) -> float:
        """How long the next packet may take: limits.timeout once it has begun (or before option
        negotiation), milter.idle_timeout while the MTA is silent between packets."""
        return idle if decoder.pending or not conn.negotiated else gap

    async def close(self) -> None:
        for server in (self.server, self.non_smtpd_server):
            if server is not None:
                server.close()
        for task in list(self.connections):
            task.cancel()
        if self.connections:
            await asyncio.gather(*self.connections, return_exceptions=True)
        if self._owns_socket:
            remove_milter_socket(self.settings.milter)
            if self.settings.milter.has_non_smtpd:
                remove_milter_socket(self.settings.milter.non_smtpd())
        await self.pipeline.close()
