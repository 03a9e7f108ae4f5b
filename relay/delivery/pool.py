"""Connections to MX hosts: one pool per destination (an MX set), a cap on them all.

A destination's pool is an UpstreamPool (relay/upstream.py: the same connection
object, lockstep and reply translation as the smarthost path) whose new
connections are opened by trying the route's hosts in order (RFC 5321 5.1):
the next address, then the next host, on a connection that cannot be made, a
greeting or EHLO that refuses (4xx/421, and 5xx as Postfix's
smtp_skip_5xx_greeting does), or TLS that fails where TLS is required. Where
TLS is only opportunistic, a failed handshake is retried on a new connection to
the same address in clear, as Postfix does at security level `may`; a STARTTLS
the host offered and then refused (a 4xx/5xx reply, no handshake begun) leaves
the session usable, and the mail goes on in clear on it (RFC 3207 4).

Limits: `upstream.connections_per_destination` per MX set,
`upstream.messages_per_connection` per connection, `upstream.pool_size` in all.
When the cap is reached, an idle connection of another destination is closed
to make room (the least recently used); otherwise the caller waits like a
caller of a full smarthost pool.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import random
import socket

import aiosmtplib

from ..decision import Reply
from ..dns import DnsTemporaryError
from ..upstream import (Target, UpstreamConnection, UpstreamError, UpstreamPool, _describe, _first_line,
                        _session_facts)
from .internal import internal_kind, not_a_host
from .mta_sts import MtaSts, PolicyFetcher, fetcher_tls_context
from .routes import MxHost, Route, RouteError, Routes, loops_back
from .tls import OutboundTls
from .tls_policy import TlsPlan, session_info

log = logging.getLogger("relay.delivery")


def _reply(code: int, enhanced: str, text: str, cause: str) -> Reply:
    return Reply.make(code, enhanced, text, source="relay", cause=cause)


class MxConnection(UpstreamConnection):
    """A connection to one MX host, with what events say about it."""

    def __init__(self, client, target: Target, settings, mx: MxHost, decision: TlsPlan, metrics=None):
        super().__init__(client, target, settings, metrics)
        self.mx = mx
        self.decision = decision
        self.tls_protocol: str | None = None
        self.tls_cipher: str | None = None
        self.tls_note: str | None = decision.note  # e.g. a check that failed in MTA-STS testing mode
        # What a policy in testing mode found wrong with this host (RFC 8461 5: reported, not refused).
        self.tls_report: str | None = decision.report

    def describe(self) -> dict:
        out = super().describe()
        out.update({"route": "mx", "preference": self.mx.preference, "implicit_mx": self.mx.implicit,
                    "tls_protocol": self.tls_protocol, "tls_cipher": self.tls_cipher,
                    "tls_policy": self.decision.policy})
        if self.tls_note:
            out["tls_note"] = self.tls_note
        return out


class _TlsFailed(Exception):
    def __init__(self, why: str, info: dict | None = None):
        super().__init__(why)
        self.why = why
        self.info = info or {"protocol": None, "cipher": None}  # the session, when the handshake was made


def _tls_refused(host: MxHost, ip: str | None, port: int, plan: TlsPlan, info: dict | None = None) -> dict:
    """The event's `upstream` object for a host a TLS policy refused (no connection to describe)."""
    info = info or {"protocol": None, "cipher": None}
    return _mx_upstream(host, ip, port, plan, info, tls=info["protocol"] is not None)


def _mx_upstream(host: MxHost, ip: str | None, port: int, plan: TlsPlan, info: dict | None = None,
                 tls: bool | None = None) -> dict:
    """The event's `upstream` object for an MX host that gave no connection: the host (and address)
    tried; `tls` null when no session was made to have it or not."""
    info = info or {"protocol": None, "cipher": None}
    return {"host": host.name, "port": port, "ip": ip, "tls": tls, "route": "mx",
            "preference": host.preference, "implicit_mx": host.implicit, "tls_protocol": info["protocol"],
            "tls_cipher": info["cipher"], "tls_policy": plan.policy}


class DestinationPool(UpstreamPool):
    """The connections to one MX set."""

    def __init__(self, settings, destination: tuple, delivery: "MxDelivery"):
        super().__init__(settings, size=delivery.per_destination, metrics=delivery.metrics,
                         smarthost_tls=False)  # each MX host's TLS is its own TlsPlan
        self.destination = destination
        self._delivery = delivery
        self.max_transactions = self._up.messages_per_connection
        self.last_route: Route | None = None
        self.shaped_as: str | None = None  # the shaping destination whose connection cap it shares
        self.shaped_connections: int | None = None

    def shape(self, provider) -> None:
        """Traffic shaping's limits of the provider this MX set belongs to (a shaping.yaml destination,
        or None): its `connections` hold over all the provider's MX sets together (gmail.com's and
        every Workspace domain's: MxDelivery.may_open), and this set takes no more than that either;
        its `messages_per_connection` caps each connection. The smaller of them and the upstream caps
        applies, from the next connection opened and the next transaction; workers divide them."""
        limits = provider.limits if provider is not None else None
        size, per_connection = self._delivery.per_destination, self._up.messages_per_connection
        self.shaped_as, self.shaped_connections = None, None
        if limits is not None and limits.connections is not None:
            self.shaped_as, self.shaped_connections = provider.name, self._delivery.share(limits.connections)
            size = min(size, self.shaped_connections)
        if limits is not None and limits.messages_per_connection is not None:
            per_connection = min(per_connection, limits.messages_per_connection)
        self.size, self.max_transactions = size, per_connection

    @property
    def target(self) -> Target:
        route = self.last_route
        return Target(route.domain if route else "?", self._up.mx_port)

    def _may_open(self) -> bool:
        return self._open < self.size and self._delivery.may_open(self)

    def _busy_error(self) -> UpstreamError:
        domain = self.last_route.domain if self.last_route else "this destination"
        if (self.shaped_connections is not None
                and self._delivery.shaped_open(self.shaped_as) >= self.shaped_connections):
            return UpstreamError(_reply(
                451, "4.4.5", f"All {self.shaped_connections} connections to {self.shaped_as} (the mail servers "
                              f"of {domain} among them; connections in shaping.yaml) are in use; please retry "
                              f"later", "upstream-busy"))
        return UpstreamError(_reply(
            451, "4.4.5", f"All connections to the mail servers of {domain} are in use "
                          f"(upstream.connections_per_destination {self.size}, upstream.pool_size "
                          f"{self._delivery.cap} in all); please retry later", "upstream-busy"))

    async def _open_new(self, connect) -> UpstreamConnection:
        self._delivery.sessions += 1
        try:
            return await super()._open_new(connect)
        except BaseException:
            self._delivery.closed()
            raise

    def _closed(self, conn) -> None:
        super()._closed(conn)
        self._delivery.closed()

    @property
    def empty(self) -> bool:
        return not (self._open or self._idle or self._waiters or self._tasks)

    def idle_since(self) -> float | None:
        return min((c.last_used for c in self._idle), default=None)

    def drop_oldest_idle(self) -> bool:
        if not self._idle:
            return False
        conn = min(self._idle, key=lambda c: c.last_used)
        self._idle.remove(conn)
        self._spawn(conn.quit())
        return True

    # -- opening a connection: the route's hosts in order ---------------------

    async def connect_route(self, route: Route, decisions: dict[str, TlsPlan]) -> MxConnection:
        """A connection to the first host of `route` that takes one (RFC 5321 5.1), within
        connect_timeout + command_timeout in all, the hosts' DNS lookups included, and at most
        upstream.mx_max_addresses connections tried; else the reason as an UpstreamError."""
        self.last_route = route
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._up.connect_timeout + self._up.command_timeout
        failures: list[tuple[str, Reply]] = []
        described: dict[int, dict] = {}  # id(reply) -> the event's `upstream`: the host that failed so

        def fail(where: str, reply: Reply, host: MxHost, ip: str | None = None) -> None:
            failures.append((where, reply))
            described.setdefault(id(reply), _mx_upstream(host, ip, self._up.mx_port, decisions[host.name]))

        tries = 0
        for host in route.tried(self._up.mx_max_hosts):
            decision = decisions[host.name]
            if decision.mode == "refuse":
                refusal = decision.refusal(route.domain, host.name, decision.reason)
                described[id(refusal)] = _tls_refused(host, None, self._up.mx_port, decision)
                fail(host.name, refusal, host)
                continue
            if tries >= self._up.mx_max_addresses:
                break
            if loop.time() >= deadline:  # the lookups count too: each took up to resolver.timeout
                fail(host.name, _reply(451, "4.4.2", "not tried: out of time", "upstream-timeout"), host)
                break
            try:
                addresses = self._delivery.reachable(await asyncio.wait_for(
                    self._delivery.routes.addresses(host), deadline - loop.time()))
            except DnsTemporaryError as exc:
                fail(host.name, _reply(451, "4.4.3", f"DNS lookup failed ({exc.reason})", "mx-dns-temporary"), host)
                continue
            except (asyncio.TimeoutError, TimeoutError):
                fail(host.name, _reply(451, "4.4.3", "DNS lookup not finished in time", "mx-dns-temporary"), host)
                break
            if not addresses:
                fail(host.name, _reply(451, "4.4.4", self._delivery.no_address_why(), "mx-no-address"), host)
                continue
            for ip in addresses:
                nowhere = not_a_host(ip)
                if nowhere is not None:
                    # A broken zone: no connection can reach such an address (a multicast group, the
                    # broadcast). The domain's other hosts and addresses are still tried; if none takes
                    # the mail, 451 4.4.4 like MX records that name no usable host: the owner can fix
                    # the zone, and the client's retry then finds the mail a host.
                    fail(f"{host.name}[{ip}]", _not_a_host_refusal(host, ip, nowhere), host, ip)
                    continue
                if self._delivery.is_ourselves(ip):
                    where = f"MX host {host.name} is {ip} port {self._up.mx_port}, where this relay listens"
                    fail(f"{host.name}[{ip}]", loops_back(route.domain, where), host, ip)
                    continue
                kind = self._delivery.internal(ip)
                if kind is not None:
                    fail(f"{host.name}[{ip}]", _internal_refusal(route.domain, host, ip, kind), host, ip)
                    continue
                if tries >= self._up.mx_max_addresses:
                    break
                if loop.time() >= deadline:
                    fail(f"{host.name}[{ip}]", _reply(451, "4.4.2", "not tried: out of time", "upstream-timeout"),
                         host, ip)
                    break
                tries += 1
                try:
                    return await self._connect_host(route.domain, host, ip, decision, deadline)
                except UpstreamError as exc:
                    log.info("MX %s[%s] for %s: %s", host.name, ip, route.domain, exc.reply.text.split("\n")[0])
                    if exc.upstream is not None:
                        described[id(exc.reply)] = exc.upstream
                    fail(f"{host.name}[{ip}]", exc.reply, host, ip)
        reply = self._all_failed(route, failures)
        # One host's own reply names that host; the summary of several ("No mail server of X could be
        # reached", each host in its text) names the last one tried (review22 F6: never null when a
        # host was tried; null only when the route had no host at all).
        upstream = described.get(id(reply)) or (described.get(id(failures[-1][1])) if failures else None)
        raise UpstreamError(reply, upstream)

    async def _connect_host(self, domain: str, host: MxHost, ip: str, decision: TlsPlan,
                            deadline: float) -> MxConnection:
        try:
            return await self._dial(domain, host, ip, decision, OutboundTls.wants_tls(decision), deadline)
        except _TlsFailed as exc:
            if decision.mode != "opportunistic":
                raise UpstreamError(decision.refusal(domain, f"{host.name}[{ip}]", exc.why),
                                    _tls_refused(host, ip, self._up.mx_port, decision, exc.info)) from None
            # RFC 7435 / Postfix at level `may`: a host whose TLS fails still gets the mail, in clear.
            log.info("TLS with MX %s[%s] failed (%s); retrying in clear", host.name, ip, exc.why)
            conn = await self._dial(domain, host, ip, decision, False, deadline)
            conn.tls_note = f"TLS failed ({exc.why}); delivered in clear (opportunistic TLS)"
            return conn

    async def _dial(self, domain: str, host: MxHost, ip: str, decision: TlsPlan, tls: bool,
                    deadline: float) -> MxConnection:
        target = Target(host.name, self._up.mx_port)
        loop = asyncio.get_running_loop()
        budget = max(0.1, deadline - loop.time())
        source = self._delivery.source_for(ip)
        client = aiosmtplib.SMTP(hostname=ip, port=target.port, local_hostname=self.settings.hostname,
                                 source_address=(source, 0) if source else None,
                                 timeout=self._up.command_timeout, start_tls=False)
        try:
            await asyncio.wait_for(client.connect(timeout=min(self._up.connect_timeout, budget)), budget)
            await asyncio.wait_for(self._greet(client), self._up.command_timeout)
        except BaseException as exc:
            _, tls = _session_facts(client)
            client.close()
            error = self._connect_failure(exc, target)  # re-raises a cancellation
            # The MX host tried, as a live session's event names it (review22 F6).
            error.upstream = _mx_upstream(host, ip, target.port, decision, tls=tls)
            raise error from exc
        info = {"protocol": None, "cipher": None}
        note = decision.note
        report = decision.report
        if tls and client.supports_extension("starttls"):
            refused = None
            try:
                try:
                    await asyncio.wait_for(client.starttls(server_hostname=decision.server_hostname or self._sni(host),
                                                           tls_context=decision.context),
                                           self._up.command_timeout)
                except aiosmtplib.SMTPResponseException as exc:
                    # The host offered STARTTLS, then refused it (454, 5xx): no handshake was begun, and
                    # saying one failed sent the operator looking at certificates (RFC 3207 4).
                    if not 400 <= exc.code <= 599:
                        raise
                    refused = f"refused STARTTLS ({exc.code} {_first_line(exc.message)})"
                    if decision.mode != "opportunistic":
                        raise _TlsFailed(refused) from None
                if refused is not None:
                    # RFC 3207 4: after a refusal the session is as it was, and the client decides whether
                    # to go on. TLS is only opportunistic here, so it goes on in clear on this session, as
                    # Postfix does at level `may` and the smarthost path does (relay/upstream.py); a new
                    # connection would only meet the same refusal, and one more connection counts against
                    # the host's limits. The EHLO reply still holds: TLS was never started (RFC 3207 4.2).
                    log.info("MX %s[%s] for %s %s; going on in clear (opportunistic TLS)", host.name, ip,
                             domain, refused)
                    note = f"{refused}; delivered in clear (opportunistic TLS)"
                else:
                    ssl_object = client.get_transport_info("ssl_object")
                    info = session_info(ssl_object)
                    why = decision.verify(ssl_object)
                    if why and decision.enforced:
                        raise _TlsFailed(why, info)
                    if why:  # MTA-STS testing: reported, never refused (RFC 8461 5)
                        note = f"{decision.policy}: {why}"
                        report = "; ".join(r for r in (decision.report, why) if r)
            except asyncio.CancelledError:
                client.close()
                raise
            except _TlsFailed:
                client.close()
                raise
            except Exception as exc:
                client.close()
                raise _TlsFailed(f"TLS handshake failed: {_describe(exc)}") from exc
            if refused is None:  # the handshake was made
                await self._greet_after_tls(client, target, host, ip, decision, info)
        elif tls and decision.mode == "required":
            client.close()
            raise UpstreamError(decision.refusal(domain, f"{host.name}[{ip}]", "does not offer STARTTLS"
                                                 + (f" ({decision.reason})" if decision.reason else "")),
                                _tls_refused(host, ip, target.port, decision))
        if not decision.enforced and info["protocol"] is None:
            report = "; ".join(r for r in (report, "no TLS with this host") if r)
        conn = MxConnection(client, target, self._up, host, decision, self.metrics)
        conn.ip = ip
        conn.tls = info["protocol"] is not None
        conn.tls_protocol, conn.tls_cipher = info["protocol"], info["cipher"]
        conn.tls_note = note
        conn.tls_report = report
        self.opened += 1
        return conn

    async def _greet_after_tls(self, client, target: Target, host: MxHost, ip: str, decision: TlsPlan,
                               info: dict) -> None:
        """RFC 3207 4.2: what the server said before TLS is forgotten; EHLO again, over TLS. A reply
        refusing it (421 "busy, closing", any 4xx/5xx) is the host's own word about this session, not a
        failed handshake: reported as the host's reply with the TLS session that was made, and never a
        cue to dial again in clear (review29 F4: the host's 421 was "TLS handshake failed: Server not
        connected", and under opportunistic TLS the mail then went over a second connection in clear).
        Anything else here (the connection lost, a TLS alert read after the handshake, no answer) stays
        a failure of TLS with this host, as before."""
        try:
            await asyncio.wait_for(self._greet(client), self._up.command_timeout)
        except asyncio.CancelledError:
            client.close()
            raise
        except aiosmtplib.SMTPResponseException as exc:
            client.close()
            error = self._connect_failure(exc, target)
            error.upstream = _mx_upstream(host, ip, target.port, decision, info, tls=True)
            raise error from exc
        except Exception as exc:
            client.close()
            raise _TlsFailed(f"TLS handshake failed: {_describe(exc)}", info) from exc

    @staticmethod
    def _sni(host: MxHost) -> str | None:
        return None if host.address is not None else host.name  # no SNI for an address (RFC 6066 3)

    def _all_failed(self, route: Route, failures: list[tuple[str, Reply]]) -> Reply:
        """No host took a connection. A server's own words when they are the answer for the
        domain (classified like any provider reply): the most preferred one's 5xx when every host
        tried refused for good, else the first 4xx one spoke; otherwise ours, naming each host."""
        spoken = [reply for _, reply in failures if reply.source == "upstream"]
        if spoken and len(spoken) == len(failures) and all(reply.permanent for reply in spoken):
            return spoken[0]  # every host tried refused for good: the most preferred one's words
        deferred = [reply for reply in spoken if not reply.permanent]
        if deferred:
            # Another host said "later" (or was not reached): a 5xx greeting is no verdict on the
            # message then, and the answer must not depend on the random order of equal preferences
            # (RFC 5321 5.1). Postfix's default smtp_skip_5xx_greeting moves on and defers the same.
            return deferred[0]
        if failures and all(reply.cause in ("mx-loop", "mx-internal") for _, reply in failures):
            # Every address is ours, or internal: connecting again would not change that.
            return failures[-1][1]
        if len(failures) == 1 and (failures[0][1].cause or "").startswith("tls-"):
            return failures[0][1]  # one host, refused by TLS policy: its reply says it all (docs/tls.md)
        causes = {reply.cause for _, reply in failures}
        if "mx-unusable" in causes and causes <= {"mx-unusable", "mx-internal", "mx-loop"}:
            # Some addresses are never a host's, the others internal or ours: nothing was connected to,
            # so "could not be reached" (whose advice is to check port 25 egress) would mislead. The zone
            # is broken, which its owner can fix, and the client's retry may then deliver: 451 4.4.4 as
            # when every address is never a host's, not the permanent 550 of an all-internal set.
            causes = {"mx-unusable"}
        # One MX- or TLS-specific reason for every host is named as such; network failures, however
        # alike, are "unreachable" (relay-replies.yaml).
        cause = causes.pop() if len(causes) == 1 and next(iter(causes)).startswith(("mx-", "tls-")) else "mx-unreachable"
        enhanced = {"mx-unreachable": "4.4.1", "mx-unusable": "4.4.4"}.get(cause, failures[-1][1].enhanced)
        lines = [f"No mail server of {route.domain} could be reached; the message was not accepted, "
                 f"please retry later:"]
        for where, reply in failures[:8]:
            text = " ".join(line.removeprefix(reply.enhanced or "").strip() for line in reply.lines)
            lines.append(f"{where}: {text[:200]}")
        if not failures:
            lines.append("no host to try")
        return _reply(451, enhanced or "4.4.1", "\n".join(lines), cause)


class MxDelivery:
    """Routes, TLS decisions and the destination pools of MX delivery (process lifetime)."""

    def __init__(self, settings, resolver, share=None, metrics=None):
        """`share(total)`: this process's part of a cap that several workers divide (relay/workers.py)."""
        self.settings = settings
        self.metrics = metrics  # relay_upstream_* per MX host (the label bounded: relay/metrics/catalogue.py)
        up = settings.upstream
        self.share = share if share is not None else (lambda total: total)
        self.cap = self.share(up.pool_size)  # MX connections in all
        self.per_destination = self.share(up.connections_per_destination)
        self.routes = Routes(resolver, own_names=frozenset({settings.hostname}))
        # Where this relay takes SMTP: an MX address that is one of them would loop (RFC 5321 5.1).
        self._listening = [lst.endpoint for lst in settings.listen]
        if settings.bounces_in is not None and settings.bounces_in.listen is not None:
            self._listening.append(settings.bounces_in.listen)
        up = settings.upstream
        # Policies cached by domain for the process's life (RFC 8461 5.1); fetched with the system's
        # roots plus upstream.ca_file, on upstream.mta_sts_port (443 but in tests); never from an
        # internal address but those upstream.mx_internal_networks allows, as for the MX hosts; from one
        # of egress_ips, as the MX connections are.
        egress = [ipaddress.ip_address(ip) for ip in settings.egress_ips]
        self._egress = {4: [str(a) for a in egress if a.version == 4], 6: [str(a) for a in egress if a.version == 6]}
        # The fetches' TLS context is built now, as the smarthost's is (a ConfigError when upstream.ca_file
        # cannot be loaded), and again at each reload (server.read_reload_files).
        self.mta_sts = MtaSts(resolver, PolicyFetcher(resolver, port=up.mta_sts_port, ca_file=up.ca_file,
                                                      internal_networks=up.mx_internal_networks,
                                                      source_for=self.source_for, reachable=self.reachable,
                                                      context=fetcher_tls_context(settings)))
        self.pools: dict[tuple, DestinationPool] = {}
        self.sessions = 0  # MX connections open or being opened, in all

    MAX_EMPTY_POOLS = 1000  # pools with nothing open are forgotten beyond this many destinations

    def pool(self, route: Route) -> DestinationPool:
        pool = self.pools.get(route.destination)
        if pool is None:
            if len(self.pools) >= self.MAX_EMPTY_POOLS:
                for key, old in list(self.pools.items()):
                    if old.empty:
                        del self.pools[key]
            pool = self.pools[route.destination] = DestinationPool(self.settings, route.destination, self)
        pool.last_route = route
        return pool

    async def first_host(self, routing, domain: str) -> str | None:
        """The MX host mail for `domain` goes to first (traffic shaping's destination by MX), or None:
        the smarthost's domains, and domains without a route."""
        if routing.route_for(domain) != "mx":
            return None
        try:
            route = await self.routes.route(domain)
        except RouteError:
            return None
        return route.hosts[0].name

    async def decisions(self, route: Route, tls: OutboundTls) -> dict[str, TlsPlan]:
        """The TLS decision for each host the route tries, for its recipient domain. Asked together:
        one after another, each host's plan looked up the domain's MTA-STS record again (a failed
        lookup was not cached then), so a record that never answered cost resolver.timeout per MX host
        before any connection; together they share that lookup (MtaSts.policy_for) and their DANE
        lookups overlap."""
        hosts = route.tried(self.settings.upstream.mx_max_hosts)
        plans = await asyncio.gather(*(tls.tls_for(route.domain, host) for host in hosts))
        return dict(zip((host.name for host in hosts), plans))

    # -- the global cap -----------------------------------------------------

    def may_open(self, asking: DestinationPool) -> bool:
        if asking.shaped_connections is not None:
            if self.shaped_open(asking.shaped_as) >= asking.shaped_connections:
                # The provider's connections are all open (shaping.yaml): one idle in another of its
                # MX sets makes room; else wait for one to close.
                idle = [(p.idle_since(), p) for p in self.pools.values()
                        if p is not asking and p.shaped_as == asking.shaped_as and p.idle_since() is not None]
                if idle:
                    min(idle, key=lambda item: item[0])[1].drop_oldest_idle()
                return False
        if self.sessions < self.cap:
            return True
        # Full: the connection idle longest, in another destination, makes room.
        others = [(p.idle_since(), p) for p in self.pools.values() if p is not asking and p.idle_since() is not None]
        if others:
            min(others, key=lambda item: item[0])[1].drop_oldest_idle()
        return False

    def shaped_open(self, provider: str | None) -> int:
        """Connections open or being opened to one shaping destination, over all its MX sets."""
        return sum(p._open for p in self.pools.values() if p.shaped_as == provider)

    def closed(self) -> None:
        self.sessions -= 1
        for pool in list(self.pools.values()):
            pool._wake()

    # -- source addresses (egress_ips) ----------------------------------------

    def reachable(self, addresses: list[str]) -> list[str]:
        """The addresses we may connect to: with egress_ips set, only those of a family we have a
        source address for (mail from another source would fail the receiver's SPF check)."""
        if not self.settings.egress_ips:
            return addresses
        return [a for a in addresses if self._egress[ipaddress.ip_address(a).version]]

    def is_ourselves(self, ip: str) -> bool:
        """Whether connecting to `ip` on the MX port would reach one of this relay's own listeners."""
        port = self.settings.upstream.mx_port
        for endpoint in self._listening:
            if endpoint.port != port:
                continue
            if endpoint.host in ("", "0.0.0.0", "::", "*"):
                if _local_address(ip):
                    return True
            elif _same_address(endpoint.host, ip):
                return True
        return False

    def internal(self, ip: str) -> str | None:
        """What kind of internal address `ip` is, when MX delivery may not connect to it (not in
        upstream.mx_internal_networks); else None."""
        return internal_kind(ip, self.settings.upstream.mx_internal_networks)

    def no_address_why(self) -> str:
        if self.settings.egress_ips:
            return "no address (A/AAAA) of a family egress_ips has a source address for"
        return "the host has no address (A/AAAA)"

    def source_for(self, ip: str) -> str | None:
        choices = self._egress[ipaddress.ip_address(ip).version]
        return random.choice(choices) if choices else None

    async def close(self) -> None:
        await asyncio.gather(*(pool.close() for pool in list(self.pools.values())), return_exceptions=True)

    @property
    def opened(self) -> int:
        return sum(p.opened for p in self.pools.values())


def _internal_refusal(domain: str, host: MxHost, ip: str, kind: str) -> Reply:
    """The refusal of a host at an internal address. RFC 3463 X.7.1: delivery not authorized, the
    result of per-host filtering; permanent, as the address is what the domain (or literal) says."""
    where = host.name if host.address is not None else f"{host.name} ({ip})"
    return _reply(550, "5.7.1", f"Recipient address rejected: mail for {domain} would go to {where}, {kind}; "
                                f"this relay does not deliver into internal networks "
                                f"(upstream.mx_internal_networks)", "mx-internal")


def _not_a_host_refusal(host: MxHost, ip: str, kind: str) -> Reply:
    """One MX address that is never a host's (relay/delivery/internal.py `not_a_host`)."""
    return _reply(451, "4.4.4", f"MX host {host.name} has the address {ip}, {kind}, which is never one mail "
                                f"host's (a broken zone, RFC 5321 5.1); not connected to", "mx-unusable")


def _same_address(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a.strip("[]")) == ipaddress.ip_address(b)
    except ValueError:
        return False


@functools.lru_cache(maxsize=1024)
def _local_address(ip: str) -> bool:
    """Whether `ip` is an address of this host: the kernel lets a socket bind to exactly those
    (without IP_FREEBIND), which covers every interface without listing them."""
    family = socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((ip, 0))
        except OSError:
            return False
    return True
