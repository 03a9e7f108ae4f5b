"""The last step when mail goes to MX hosts (upstream.mode mx, or policies/routes.yaml):
lockstep with one destination per transaction (DESIGN.md "Lockstep").

The destination is known only at the first RCPT, so MAIL is answered by the relay
once the local steps before this one passed it. The first RCPT picks the
destination (the recipient domain's MX set, or the smarthost) and opens the
upstream transaction there: MAIL, then RCPT. Later recipients whose domains have
the same MX set (and the same TLS decision) join it; any other gets
`452 4.5.3` and the client sends it in a new transaction (RFC 5321 3.3), so the
one reply to the final dot is true for every recipient. DATA and the end of
the transaction are the smarthost step's (UpstreamStep).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..decision import Decision, Reply, Verdict, accept
from ..delivery.pool import MxConnection, MxDelivery
from ..delivery.routes import RouteError
from ..delivery.routing import Routing
from ..delivery.tls import OutboundTls
from ..pipeline import Transaction
from ..upstream import UpstreamError, UpstreamPool
from .upstream import UpstreamStep, _deferred, open_transaction


@dataclass
class Destination:
    """Where this transaction's mail goes, once its first recipient chose (txn.notes["delivery"])."""

    key: tuple  # ("smarthost",) or ("mx", *MX set)
    domain: str  # the recipient domain that chose it


def _refusal(reply: Reply, stage: str | None = None) -> Decision:
    if reply.permanent:
        return Decision(Verdict.REJECT, reply, "rejected", stage=stage)
    return Decision(Verdict.DEFER, reply, "deferred", stage=stage)


class DeliveryStep(UpstreamStep):
    name = "delivery"

    def __init__(self, routing: Routing, mx: MxDelivery, smarthost: UpstreamPool | None, tls: OutboundTls,
                 watchers=(), provider_of=None):
        super().__init__(smarthost, watchers=watchers)
        self.routing = routing
        self.mx = mx
        self.tls = tls  # this pipeline's TLS policy (policies/tls.yaml changes with a reload)
        # Traffic shaping: `provider_of(mx_host)` is the provider (shaping.yaml destination) that host
        # belongs to, whose connection limits apply, or None; this pipeline's, so a reload changes them.
        self.provider_of = provider_of

    async def on_mail(self, txn: Transaction) -> Decision:
        # The steps before this one checked the sender; the upstream hears MAIL at the first RCPT.
        return accept(Reply.make(250, "2.1.0", "Sender OK"))

    async def on_rcpt(self, txn: Transaction, rcpt: str) -> Decision:
        _, at, domain = rcpt.rpartition("@")
        domain = domain.lower()
        if at and domain:
            kind = self.routing.route_for(domain) if self.pool is not None else "mx"
        elif rcpt.lower() == "postmaster" and self.pool is not None and self.routing.default == "smarthost":
            kind = "smarthost"  # RFC 5321 4.1.1.3's bare postmaster goes where relay mode sends it
        else:
            # Without an "@", rpartition leaves the whole address where the domain goes: a bare
            # <postmaster> (the one address without a domain that reaches here) was looked up in DNS.
            why = (" (RFC 5321 4.1.1.3: a bare postmaster is this server's own, and this relay keeps no "
                   "mailbox; write to postmaster@ the domain meant)" if rcpt.lower() == "postmaster" else "")
            return _refusal(Reply.make(550, "5.1.3", f"Recipient address rejected: <{rcpt}> has no domain to "
                                                     f"deliver to{why}", cause="mx-bad-domain"))
        route = decisions = None
        if kind == "smarthost":
            key: tuple = ("smarthost",)
        else:
            try:
                route = await self.mx.routes.route(domain)
            except RouteError as exc:
                return _refusal(exc.reply)
            key = ("mx", *route.destination)
            decisions = await self.mx.decisions(route, self.tls)
        conn = txn.notes.get("upstream_conn")
        current: Destination | None = txn.notes.get("delivery")
        if conn is not None and (current.key != key or not self._suits(conn, decisions)):
            if txn.rcpts:
                return Decision(Verdict.DEFER, Reply.make(
                    452, "4.5.3", f"Recipient <{rcpt}> goes to other mail servers than <{txn.rcpts[0]}>; "
                                  f"send it in a new transaction (RFC 5321 3.3)", cause="mx-one-destination"),
                    "deferred")
            # Nothing accepted in this transaction yet: it may go to this recipient's destination instead.
            txn.notes.pop("upstream_conn")
            txn.notes.pop("upstream", None)
            conn.home.release(conn)
            conn = None
        if conn is None:
            txn.notes.pop("upstream", None)  # set again by the connection this attempt gets
            if kind == "smarthost":
                decision, conn = await open_transaction(self.pool, txn, heard=self._heard, rcpt=rcpt)
            else:
                pool = self.mx.pool(route)
                if self.provider_of is not None:
                    pool.shape(self.provider_of(route.hosts[0].name))
                decision, conn = await open_transaction(
                    pool, txn, suits=lambda c: self._suits(c, decisions),
                    connect=lambda: pool.connect_route(route, decisions), heard=self._heard, rcpt=rcpt)
            if conn is None:
                # The upstream refused our MAIL (or its greeting), or could not be reached: that is
                # this RCPT's reply; the event says which stage the upstream's words answered.
                reply = decision.reply
                stage = None
                if reply.source == "upstream":
                    stage = "mail" if txn.notes.get("upstream") else "connect"
                    if stage == "connect":
                        # A refusing greeting (Gmail's 421-4.7.28 comes at connect too) is the
                        # provider's word about this recipient's destination: the watchers hear it.
                        # The event keeps the host that said it (the connection's `upstream`, review22 F6).
                        heard = await self._heard(txn, "connect", rcpt, reply)
                        decision = replace(heard, detail={**decision.detail, **heard.detail})
                return Decision(decision.verdict, reply, decision.kind, decision.detail, stage=stage)
            txn.notes["upstream_conn"] = conn
            txn.notes["delivery"] = Destination(key, domain)
            report = getattr(conn, "tls_report", None)
            if report:
                # RFC 8461 5: a policy in testing mode reports and delivers; the report is an operator
                # warning of this transaction, with the host and session it is about.
                txn.notes.setdefault("warnings", []).append({
                    "check": "mta-sts", "result": "testing", "domain": domain, "upstream": conn.describe(),
                    "text": f"MTA-STS policy of {domain} (testing mode) not met by {conn.mx.name}: {report}"})
        try:
            reply = await conn.rcpt(rcpt)
        except UpstreamError as exc:
            return _deferred(exc)
        return await self._heard(txn, "rcpt", rcpt, reply)

    @staticmethod
    def _suits(conn, decisions) -> bool:
        """A connection opened for one domain serves another only under the same TLS decision."""
        if not isinstance(conn, MxConnection):
            return decisions is None
        return decisions is not None and decisions.get(conn.mx.name) == conn.decision

    def reset_now(self, txn: Transaction) -> None:  # UpstreamStep.on_reset calls it
        conn = txn.notes.pop("upstream_conn", None)
        if conn is not None:
            conn.home.release(conn)
