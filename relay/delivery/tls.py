"""The one place that decides outbound TLS towards an MX host: `OutboundTls.tls_for()`.

Every connection to an MX asks `tls_for(recipient_domain, mx_host)` first and does what
the answer says; nothing else in delivery/ makes a TLS choice. The default is the
operator's `upstream.starttls` (in mode mx: opportunistic, RFC 7435: encrypt when the
host offers STARTTLS, do not authenticate, and never refuse to deliver in clear for the
lack of it). Per-domain policy, MTA-STS (RFC 8461) and DANE (RFC 7672) raise it by
answering `required` with a verification to do; see docs/internals.md ("Outbound TLS").
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Callable

from .routes import MxHost

TLS_MODES = ("off", "opportunistic", "required", "refuse")


@dataclass(frozen=True)
class TlsDecision:
    """What to do about TLS with one MX host, for one recipient domain.

    mode:
      off            never STARTTLS
      opportunistic  STARTTLS when offered, no certificate check; a failed handshake is retried
                     on a new connection in clear (as Postfix does at level `may`)
      required       STARTTLS must succeed (and `verify`/`check` pass), else the host is skipped
      refuse         do not connect to this host at all (e.g. an MX that an MTA-STS policy in
                     `enforce` mode does not list); `reason` says why
    Two decisions that compare equal may share a connection: a pooled connection opened under
    one decision is reused for another recipient domain only when that domain's decision for
    the same host is equal (the context and check are not compared: they follow from the rest).
    """

    mode: str = "opportunistic"
    verify: bool = False  # check the certificate chain and the name (server_hostname)
    server_hostname: str | None = None  # SNI, and the name verified; None: the MX host's name
    policy: str = "opportunistic"  # named on events (upstream.tls_policy), e.g. "mta-sts", "dane"
    reason: str = ""  # why `required` or `refuse`: goes into the 4xx and the event when it fails
    context: ssl.SSLContext | None = field(default=None, compare=False)  # None: built from `verify`
    # A check after the handshake (DANE: the TLSA records against the peer's chain); returns why it
    # failed, or None. A failure counts as a failed handshake.
    check: Callable[[ssl.SSLObject], str | None] | None = field(default=None, compare=False)

    def __post_init__(self):
        if self.mode not in TLS_MODES:
            raise ValueError(f"unknown TLS mode {self.mode!r}")

    @property
    def wanted(self) -> bool:
        return self.mode in ("opportunistic", "required")


class OutboundTls:
    """The default decision for every domain and host, from the config's `upstream` section.

    The seam: a policy (per-domain TLS, MTA-STS, DANE) subclasses this or wraps it and answers
    `tls_for()` differently; the pool calls nothing else."""

    def __init__(self, upstream_settings):
        self._up = upstream_settings
        self._contexts: dict[bool, ssl.SSLContext] = {}

    async def tls_for(self, recipient_domain: str, mx_host: MxHost) -> TlsDecision:
        mode = self._up.starttls
        verify = mode == "required" and self._up.tls_verify
        return TlsDecision(mode=mode, verify=verify, policy=mode if not verify else "verify")

    def context(self, decision: TlsDecision) -> ssl.SSLContext:
        """The SSL context for a decision (shared: building one costs a CA store load)."""
        if decision.context is not None:
            return decision.context
        ctx = self._contexts.get(decision.verify)
        if ctx is None:
            ca = str(self._up.ca_file) if self._up.ca_file else None
            ctx = ssl.create_default_context(cafile=ca)
            if not decision.verify:
                # RFC 7435 (opportunistic security): encrypt without authenticating. Checking a
                # certificate nobody asked us to check only turns TLS into clear text.
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self._contexts[decision.verify] = ctx
        return ctx
