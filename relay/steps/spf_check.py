"""SPF pre-flight at MAIL: would receivers accept our egress IPs for this sender?

The relay sends from `settings.egress_ips`. If the sender domain's SPF record
(RFC 7208) does not authorise them, receivers will fail SPF for every message,
and under DMARC (RFC 7489) reject or quarantine it unless DKIM saves it. Finding
that out at MAIL lets the client MTA keep the message and tells the operator,
in the reply and the event, exactly which record and which IP to fix.

What happens per result, and the domain's `spf:` policy in domains.yaml:

| result               | reject                 | tempfail               | warn            |
|----------------------|------------------------|------------------------|-----------------|
| pass                 | continue               | continue               | continue        |
| fail                 | 550 5.7.23             | 451 4.7.24             | warning         |
| softfail             | 550 5.7.1              | 451 4.7.24             | warning         |
| permerror            | 550 5.7.24             | 451 4.7.24             | warning         |
| temperror, DNS down  | 451 4.4.3              | 451 4.4.3              | warning         |
| neutral, none        | warning                | warning                | warning         |

Enhanced codes from RFC 7372 3.2: X.7.23 "SPF validation failed", X.7.24
"SPF validation error" (the record is broken, RFC 7208 2.6.7); 4.4.3 is RFC
3463's "directory server failure" (DNS). A softfail is "probably not
authorised" (RFC 7208 2.6.5), not a validation failure, so it gets the generic
policy code 5.7.1. A temperror never passes: the client retries, as RFC 7208
2.6.6 intends. Under `warn` the operator asked for mail to flow whatever SPF
says, so a DNS outage is a warning there too. Neutral and none are never
refused (receivers do not refuse them either, RFC 7208 8.2, 8.1) but they mean
SPF cannot help DMARC, which is worth a warning.

A domain with no entry, or `spf: off`, costs no DNS lookup at all.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging

from ..address import split as split_address
from ..decision import CONTINUE, Decision, defer, reject
from ..pipeline import Step, Transaction
from ..spf import SpfChecker, SpfResult

log = logging.getLogger("relay.steps.spf")

# Which result of several egress IPs speaks for the transaction: the one that
# would hurt most. A definite failure outranks a DNS problem (retrying cannot
# fix it), which outranks the results that are only worth a warning.
_SEVERITY = {"fail": 6, "permerror": 5, "softfail": 4, "temperror": 3, "neutral": 2, "none": 1, "pass": 0}

POLICIES = ("reject", "tempfail", "warn", "off")

# RFC 5321 4.5.3.1.5: a reply line is at most 512 octets with its code; keep
# quoted records well inside that.
_MAX_RECORD_IN_REPLY = 200


def sender_domain(mail_from: str) -> str | None:
    """The domain of a MAIL FROM path, normalised as policies are keyed (lower
    case, A-labels); None for the null path and for address literals."""
    path = (mail_from or "").strip()
    if path in ("", "<>"):
        return None
    try:
        _local, domain = split_address(path)
    except ValueError:
        return None
    if domain.startswith("["):  # an address literal has no SPF record
        return None
    return domain


def _quote_record(record: str | None) -> str:
    if record is None:
        return "(no SPF record)"
    if len(record) > _MAX_RECORD_IN_REPLY:
        record = record[:_MAX_RECORD_IN_REPLY] + "..."
    return f'"{record}"'


def _mechanism_for(ip: str) -> str:
    return f"ip6:{ip}" if ipaddress.ip_address(ip).version == 6 else f"ip4:{ip}"


def describe(r: SpfResult) -> str:
    """One line for the reply, the event and the log: what is wrong and the fix."""
    rec = _quote_record(r.record)
    if r.result in ("fail", "softfail"):
        return (f"SPF: {r.domain} does not authorise our IP {r.ip}: {rec} gives {r.result}; "
                f"add {_mechanism_for(r.ip)} to the SPF record of {r.domain}")
    if r.result == "permerror":
        return (f"SPF: the record of {r.domain} is broken (permerror: {r.explanation}): {rec}; "
                f"receivers cannot authorise our IP {r.ip} until it is fixed (RFC 7208 4.6)")
    if r.result == "temperror":
        return f"SPF: cannot check {r.domain} for our IP {r.ip} now: {r.explanation}"
    if r.result == "none":
        return (f"SPF: {r.domain} publishes no SPF record; receivers cannot authorise our IP {r.ip}: "
                f'publish "v=spf1 {_mechanism_for(r.ip)} -all" (or add it to your record)')
    if r.result == "neutral":
        return (f"SPF: {r.domain} says neither yes nor no for our IP {r.ip}: {rec} gives neutral; "
                f"add {_mechanism_for(r.ip)} to it")
    return f"SPF: {r.domain} authorises our IP {r.ip}"


def spf_warnings(settings, policies) -> list[str]:
    """What `relay check-config` and `relay serve` say of an SPF policy that can never run: without
    `egress_ips` the pre-flight does not know which IPs receivers will see, and passes every message
    unchecked, whatever `spf:` the domain's entry asks for."""
    if settings.egress_ips:
        return []
    domains = policies.domains
    asking = [d for d in domains.domains if domains.get(d).spf != "off"]
    wildcard = domains.get(None)  # the "*" entry's policy, if there is one
    if wildcard is not None and wildcard.spf != "off":
        asking.append('"*"')
    if not asking:
        return []
    shown = ", ".join(asking[:5]) + (f" and {len(asking) - 5} more" if len(asking) > 5 else "")
    return [f"{domains.source}: spf: is set for {shown}, but the config has no egress_ips: the SPF pre-flight "
            "never runs without the IPs receivers will see; list them in egress_ips, or set spf: off"]


class SpfCheckStep(Step):
    name = "spf"

    def __init__(self, settings, policies, resolver, checker: SpfChecker | None = None):
        self.settings = settings
        self.policies = policies
        self.resolver = resolver
        self._own_checker = checker is None
        self.checker = checker or SpfChecker(resolver, settings.hostname, cache_size=settings.resolver.cache_size)

    async def on_mail(self, txn: Transaction) -> Decision:
        if not txn.session.may_relay:
            # Not our client (a milter sees the world's mail on port 25): this mail does not leave from our
            # egress IPs on our behalf, and our SPF record is no reason to refuse it (review26 F1).
            return CONTINUE
        domain = sender_domain(txn.mail_from)
        if domain is None:
            return CONTINUE  # null sender (bounces) or no domain: nothing to pre-flight
        policy = self.policies.domains.get(domain)
        mode = getattr(policy, "spf", "off") if policy is not None else "off"
        if mode == "off":
            return CONTINUE
        if not self.settings.egress_ips:
            return CONTINUE  # we do not know which IPs receivers will see

        results = await asyncio.gather(*(self.checker.check(domain, ip) for ip in self.settings.egress_ips))
        worst = max(results, key=lambda r: _SEVERITY[r.result])
        txn.notes["spf"] = {
            "domain": domain, "policy": mode, "result": worst.result,
            "record": worst.record, "ips": {r.ip: r.result for r in results},
        }
        if worst.result == "pass":
            return CONTINUE

        text = describe(worst)
        # The event takes txn.notes["spf"] (record, result per IP) from there.
        detail = {"step": self.name}
        if mode == "warn" or worst.result in ("neutral", "none"):
            txn.notes.setdefault("warnings", []).append({"check": "spf", "result": worst.result, "text": text})
            return CONTINUE
        if worst.result == "temperror":
            return defer(451, "4.4.3", text, kind="deferred", cause="spf-temperror", **detail)
        if mode == "tempfail":
            return defer(451, "4.7.24", text, kind="policy_rejected", cause="spf-failed", **detail)
        enhanced = {"fail": "5.7.23", "softfail": "5.7.1", "permerror": "5.7.24"}[worst.result]
        return reject(550, enhanced, text, kind="policy_rejected", cause="spf-failed", **detail)

    async def close(self) -> None:
        if self._own_checker:
            self.checker.close()
