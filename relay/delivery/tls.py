"""The one place MX delivery asks what to do about TLS: `OutboundTls.tls_for()`.

Every connection to an MX host asks `await tls_for(recipient_domain, mx_host)` first and does
what the answer (a `tls_policy.TlsPlan`) says; nothing else in delivery/ makes a TLS choice.
The per-destination policy (DANE, MTA-STS, policies/tls.yaml: relay/delivery/tls_policy.py)
decides; the config's `upstream.starttls` can only lower it to `off` or raise it to
`required` for every domain. What a plan means to the connection (delivery/pool.py):

  off            no STARTTLS
  opportunistic  STARTTLS when offered, no certificate check (RFC 7435); a failed handshake
                 is retried at once on a new connection to the same address in clear, as
                 Postfix does at security level `may`; a refused STARTTLS (4xx/5xx, no
                 handshake begun) goes on in clear on the same session (RFC 3207 4)
  required       STARTTLS must succeed and the plan's check pass, else this host is not used
                 (`plan.refusal()`: 451 4.7.5 with the reason) and the next one is tried
  refuse         this host is not used at all (an MX an MTA-STS policy in enforce mode does
                 not list, dane-only without TLSA records)

A check that fails under a plan that is not enforced (MTA-STS `testing`) is only noted on
the event. Two equal plans (the check is not compared) may share a pooled connection: a
domain whose plan for a host differs never reuses a connection opened under another's.
"""

from __future__ import annotations

from dataclasses import replace

from .routes import MxHost
from .tls_policy import OutboundTlsPolicy, TlsPlan


class OutboundTls:
    """The seam: `upstream.starttls` around the per-destination policy."""

    def __init__(self, upstream_settings, policy: OutboundTlsPolicy | None = None):
        self._up = upstream_settings
        self.policy = policy

    async def tls_for(self, recipient_domain: str, mx_host: MxHost) -> TlsPlan:
        starttls = self._up.starttls
        if starttls == "off":
            return TlsPlan("off", "off")
        if mx_host.address is not None or self.policy is None:
            # An address literal has no name for DANE, MTA-STS or a certificate to name.
            plan = TlsPlan("opportunistic", "opportunistic", server_hostname=None)
        else:
            plan = await self.policy.plan(recipient_domain, mx_host.name)
        if starttls == "required" and plan.mode == "opportunistic":
            plan = replace(plan, mode="required", cause="mx-tls-required", reason="upstream.starttls is required",
                           policy="required" if plan.policy == "opportunistic" else plan.policy)
        return plan

    @staticmethod
    def wants_tls(plan: TlsPlan) -> bool:
        return plan.mode in ("opportunistic", "required")
