"""`relay doctor DOMAIN -c CONFIG`: will receivers accept mail from DOMAIN through this relay?

Checks the published DNS of a sender domain against this relay's config, with
the relay's own resolver, and prints a checklist: `[ok]`, `[warn]` (worth
fixing, receivers still accept) and `[FAIL]` (receivers will reject, junk or
defer mail), each failure with its fix. Exit 1 when anything fails, else 0.

What is checked, and why it matters to receivers:

- SPF (RFC 7208): exactly one record (two is a permerror, 4.5); at most 10
  DNS-querying terms counted recursively (4.6.4; more is a permerror); each
  egress IP gets "pass".
- DKIM (RFC 6376): for each selector in domains.yaml, the key published at
  SELECTOR._domainkey.DOMAIN is the public half of our private key, or every
  signature we make fails.
- DMARC (RFC 7489): a record at _dmarc.DOMAIN (or the organizational domain,
  6.6.3), and what its policy demands of SPF and DKIM. Large mailbox providers
  (Gmail, Yahoo, since 2024) refuse bulk mail from domains without one.
- Reverse DNS: each egress IP has a PTR whose name resolves back to it
  (forward-confirmed reverse DNS); many receivers refuse mail without it.

DNS trouble is reported as a failed check with the question that failed, never
as a traceback: a check that could not be made is not a pass.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import sys
from dataclasses import dataclass, field

from . import add_config_arg, load_policies_or_exit, load_settings_or_exit, report_config_error
from ..errors import ConfigError

OK, WARN, FAIL = "ok", "warn", "FAIL"


def register(sub) -> None:
    p = sub.add_parser("doctor", help="check a sender domain's SPF, DKIM, DMARC and reverse DNS",
                       description="Check that DOMAIN's DNS lets receivers accept mail sent through this "
                                   "relay: SPF, DKIM keys, DMARC and reverse DNS of the egress IPs. "
                                   "Exit 1 when something would make receivers reject mail, else 0.")
    p.add_argument("domain", metavar="DOMAIN", help="the sender domain to check")
    add_config_arg(p)
    p.set_defaults(func=run)


@dataclass
class Check:
    status: str  # OK | WARN | FAIL
    text: str
    fix: str | None = None
    unchecked: bool = False  # FAIL because the check could not be made (DNS trouble)

    def lines(self) -> list[str]:
        out = [f"[{self.status}] {self.text}"]
        if self.fix:
            out.append(f"       fix: {self.fix}")
        return out


@dataclass
class Report:
    domain: str
    checks: list[Check] = field(default_factory=list)
    title: str = ""

    def add(self, status: str, text: str, fix: str | None = None) -> Check:
        check = Check(status, text, fix)
        self.checks.append(check)
        return check

    @property
    def failures(self) -> int:
        return sum(c.status == FAIL and not c.unchecked for c in self.checks)

    @property
    def unchecked(self) -> int:
        return sum(c.unchecked for c in self.checks)

    @property
    def warnings(self) -> int:
        return sum(c.status == WARN for c in self.checks)

    @property
    def exit_code(self) -> int:
        # A check that could not be made is not a pass: exit 1 for those too.
        return 1 if self.failures or self.unchecked else 0

    def render(self) -> str:
        lines = [self.title] if self.title else []
        lines += [line for c in self.checks for line in c.lines()]
        if self.failures:
            summary = (f"{self.failures} problem(s) will make receivers reject or junk mail from "
                       f"{self.domain}; {self.warnings} warning(s)")
        elif self.unchecked:
            summary = f"no problems found in what could be checked; {self.warnings} warning(s)"
        else:
            summary = (f"no problems that would make receivers reject mail from {self.domain}; "
                       f"{self.warnings} warning(s)")
        if self.unchecked:
            summary += f"; {self.unchecked} check(s) could not be made because of DNS trouble"
        lines.append(summary)
        return "\n".join(lines)


def run(args) -> int:
    from ..dns import Resolver
    from ..domains import normalise_domain

    settings = load_settings_or_exit(args)
    policies = load_policies_or_exit(settings)
    try:
        domain = normalise_domain(args.domain)
    except ValueError as exc:
        print(f"error: {args.domain!r} is not a domain name: {exc}", file=sys.stderr)
        return 2
    try:
        resolver = Resolver.from_settings(settings)
    except ConfigError as exc:  # a nameserver given by a name that does not resolve: FILE: resolver.nameservers[i]
        report_config_error(exc)
        return 1
    report = asyncio.run(diagnose(domain, settings, policies.domains.get(domain), resolver))
    print(report.render())
    return report.exit_code


def _dns_trouble(report: Report, what: str, exc) -> None:
    check = report.add(FAIL, f"{what}: could not check: {exc}",
                       "make sure the resolver in the config (resolver.nameservers, or the system's) answers, "
                       "then run relay doctor again")
    check.unchecked = True


async def diagnose(domain: str, settings, policy, resolver) -> Report:
    """Every check for `domain`; `policy` is its DomainPolicy (or None)."""
    report = Report(domain)
    report.title = (f"relay doctor {domain}: resolver {resolver.describe()}, egress IPs "
                    f"{', '.join(settings.egress_ips) or '(none configured)'}")
    # First: a misspelt domain gets "does not exist", not a list of records to publish (review27 F6).
    missing = await _does_not_exist(report, domain, resolver)
    if policy is None and missing:
        pass  # "add an entry for it" is no advice for a name that does not exist
    elif policy is None:
        report.add(WARN, f"config: {domain} has no entry in domains.yaml: the relay neither signs nor "
                         f"SPF-checks its mail",
                   f"add `{domain}: {{dkim: [{{selector: s1, key: /etc/relay/dkim/{domain}.s1.key}}], "
                   f"spf: reject}}` to domains.yaml")
    else:
        entry = 'the "*" entry' if getattr(policy, "from_wildcard", False) else "an entry"
        report.add(OK, f"config: {domain} has {entry} in domains.yaml (spf: {policy.spf}, "
                       f"{len(policy.dkim)} DKIM key(s))")
    if not settings.egress_ips:
        report.add(WARN, "config: no egress_ips: cannot check SPF authorisation or reverse DNS of the IPs "
                         "mail leaves from", "list the public IP addresses of this relay under egress_ips")
    if missing:
        # Every record the other checks look for would be "missing" and each would say "publish ...":
        # for a misspelt domain that sends the operator to fix DNS of a name that is not there (review27
        # F6). Below an NXDOMAIN nothing exists either (RFC 8020), so they are not run.
        await _check_ptr(report, settings, resolver)
        return report
    spf_ok = await _check_spf(report, domain, settings, resolver)
    dkim_ok = await _check_dkim(report, domain, policy, resolver)
    await _check_dmarc(report, domain, resolver, spf_ok=spf_ok, dkim_ok=dkim_ok)
    await _check_ptr(report, settings, resolver)
    return report


async def _does_not_exist(report: Report, domain: str, resolver) -> bool:
    """True (with the FAIL that says so) when DNS says `domain` does not exist at all (NXDOMAIN), as
    opposed to existing without the records the checks look for (NODATA). DNS trouble is left to the
    checks, which each say they could not check."""
    from ..dns import DnsTemporaryError

    try:
        answer = await resolver.query(domain, "TXT")
    except DnsTemporaryError:
        return False
    if not getattr(answer, "nxdomain", False):
        return False
    report.add(FAIL, f"DNS: {domain} does not exist (NXDOMAIN): no SPF, DKIM or DMARC record can be found "
                     f"under it, so those checks were not run",
               f"check the spelling of {domain!r}; if it is right, the domain is not registered or not delegated: "
               f"register it or fix its NS records at the registrar, then run relay doctor again")
    return True


# --- SPF ---------------------------------------------------------------------

def _mechanism(ip: str) -> str:
    return f"ip6:{ip}" if ipaddress.ip_address(ip).version == 6 else f"ip4:{ip}"


async def _check_spf(report: Report, domain: str, settings, resolver) -> bool:
    """True when every egress IP gets SPF pass."""
    from ..dns import DnsTemporaryError
    from ..spf import MAX_LOOKUPS, MAX_VOID_LOOKUPS, SpfChecker, count_lookups, spf_records

    wanted = " ".join(_mechanism(ip) for ip in settings.egress_ips) or "ip4:YOUR.EGRESS.IP"
    try:
        records = await spf_records(resolver, domain)
    except DnsTemporaryError as exc:
        _dns_trouble(report, "SPF", exc)
        return False
    if not records:
        report.add(FAIL, f"SPF: {domain} publishes no SPF record (TXT \"v=spf1 ...\"); receivers cannot "
                         f"authorise any sender", f'publish TXT at {domain}: "v=spf1 {wanted} -all" '
                                                 f"(put your other senders' mechanisms before -all)")
        return False
    if len(records) > 1:
        report.add(FAIL, f"SPF: {domain} publishes {len(records)} SPF records; receivers return permerror "
                         f"(RFC 7208 4.5): " + "; ".join(f'"{r}"' for r in records),
                   "merge them into one record")
        return False
    report.add(OK, f'SPF: one record at {domain}: "{records[0]}"')

    try:
        count = await count_lookups(resolver, domain)
    except DnsTemporaryError as exc:
        _dns_trouble(report, "SPF lookup count", exc)
        count = None
    if count is not None:
        if count.lookups > MAX_LOOKUPS:
            report.add(FAIL, f"SPF: the record needs {count.lookups} DNS lookups, more than the {MAX_LOOKUPS} "
                             f"RFC 7208 4.6.4 allows; receivers return permerror",
                       "replace include:/a/mx terms by the ip4:/ip6: ranges they stand for, or drop the "
                       "senders you no longer use")
        else:
            report.add(OK, f"SPF: {count.lookups} DNS lookup(s), within the limit of {MAX_LOOKUPS} "
                           f"(RFC 7208 4.6.4)")
        if count.void > MAX_VOID_LOOKUPS:
            report.add(FAIL, f"SPF: {count.void} lookups find nothing, more than the {MAX_VOID_LOOKUPS} "
                             f"RFC 7208 4.6.4 allows; receivers may return permerror",
                       "remove the terms that point at names without records")
        for problem in count.problems:
            report.add(FAIL, f"SPF: {problem}", "fix or remove that term; receivers return permerror")
        for note in count.notes:
            report.add(WARN, f"SPF: {note}")

    if not settings.egress_ips:
        return False
    checker = SpfChecker(resolver, settings.hostname, cache_size=0)
    try:
        results = await asyncio.gather(*(checker.check(domain, ip) for ip in settings.egress_ips))
    finally:
        checker.close()
    all_pass = True
    for r in results:
        if r.result == "pass":
            report.add(OK, f"SPF: egress IP {r.ip} is authorised (pass)")
            continue
        all_pass = False
        if r.result in ("fail", "softfail"):
            report.add(FAIL, f"SPF: egress IP {r.ip} is not authorised ({r.result}); receivers will fail SPF "
                             f"for mail sent through this relay",
                       f"add {_mechanism(r.ip)} to the SPF record of {domain}")
        elif r.result == "neutral":
            report.add(WARN, f"SPF: egress IP {r.ip} gets neutral: SPF neither authorises nor refuses it, so "
                             f"it cannot help DMARC", f"add {_mechanism(r.ip)} to the SPF record of {domain}")
        elif r.result == "temperror":
            _dns_trouble(report, f"SPF for egress IP {r.ip}", r.explanation)
        else:  # permerror (none was reported above)
            report.add(FAIL, f"SPF: egress IP {r.ip}: {r.result}: {r.explanation}",
                       "fix the record; receivers treat permerror like a failure under DMARC")
    return all_pass


# --- DKIM --------------------------------------------------------------------

def _tags(record: str) -> dict[str, str]:
    """Tag=value pairs (RFC 6376 3.2), names lower-cased, whitespace removed from values."""
    out = {}
    for part in record.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            out[name.strip().lower()] = re.sub(r"\s+", "", value)
    return out


async def _check_dkim(report: Report, domain: str, policy, resolver) -> bool:
    """True when at least one configured key is published correctly."""
    from .. import dkim as dkimlib
    from ..dns import DnsTemporaryError

    keys = tuple(getattr(policy, "dkim", ()) or ())
    if not keys:
        report.add(WARN, f"DKIM: no signing key configured for {domain}: mail leaves unsigned, and DMARC "
                         f"rests on SPF alone (which forwarding breaks)",
                   f"relay dkim keygen {domain} s1 --out /etc/relay/dkim, publish the printed record, "
                   f"and list the key under {domain}: dkim: in domains.yaml")
        return False
    any_ok = False
    for key in keys:
        name = f"{key.selector}._domainkey.{domain}"
        expected = dkimlib.public_key_record(key.private_key)
        want = _tags(expected)
        # RFC 1035 3.3.14: a TXT string holds 255 bytes; an RSA-2048 record needs two.
        publish = " ".join(f'"{part}"' for part in dkimlib.txt_strings(expected))
        label = f"DKIM {key.selector}"
        try:
            records = [r for r in await resolver.txt(name) if "p=" in r]
        except DnsTemporaryError as exc:
            _dns_trouble(report, label, exc)
            continue
        if not records:
            report.add(FAIL, f"{label}: no key published at {name}; receivers fail every signature with this "
                             f"selector", f"publish TXT at {name}: {publish}")
            continue
        if len(records) > 1:
            report.add(FAIL, f"{label}: {len(records)} key records at {name}; verifiers may pick either "
                             f"(RFC 6376 3.6.2.2)", f"keep only {publish}")
            continue
        got = _tags(records[0])
        if not got.get("p"):
            report.add(FAIL, f"{label}: the key at {name} is revoked (empty p=, RFC 6376 3.6.1)",
                       f"publish TXT at {name}: {publish}")
            continue
        if got.get("k", "rsa").lower() != want.get("k", "rsa") or got["p"] != want["p"]:
            report.add(FAIL, f"{label}: the key published at {name} does not match our private key "
                             f"({key.source or 'domains.yaml'}); receivers fail every signature",
                       f"publish TXT at {name}: {publish} (or configure the private key that matches)")
            continue
        flags = got.get("t", "")
        if "y" in flags.split(":"):
            report.add(WARN, f"{label}: key at {name} matches but is in testing mode (t=y): receivers may "
                             f"ignore failures and passes alike (RFC 6376 3.6.1)", "remove t=y when done testing")
        else:
            report.add(OK, f"{label}: the key at {name} matches our private key ({key.algorithm})")
        any_ok = True
    return any_ok


# --- DMARC -------------------------------------------------------------------

def _is_dmarc(record: str) -> bool:
    # RFC 7489 6.4: v=DMARC1 must be the first tag.
    return re.match(r"^\s*v\s*=\s*DMARC1\s*(;|$)", record) is not None


async def _find_dmarc(domain: str, resolver) -> tuple[str, list[str]]:
    """(where, records): _dmarc.DOMAIN, else the organizational domain's
    (RFC 7489 6.6.3). Without the Public Suffix List, parent domains are tried
    up to two labels, which finds it for the usual cases."""
    labels = domain.split(".")
    for i in range(len(labels) - 1):
        where = "_dmarc." + ".".join(labels[i:])
        records = [r for r in await resolver.txt(where) if _is_dmarc(r)]
        if records:
            return where, records
    return "_dmarc." + domain, []


async def _check_dmarc(report: Report, domain: str, resolver, spf_ok: bool, dkim_ok: bool) -> None:
    from ..dns import DnsTemporaryError

    try:
        where, records = await _find_dmarc(domain, resolver)
    except DnsTemporaryError as exc:
        _dns_trouble(report, "DMARC", exc)
        return
    if not records:
        report.add(FAIL, f"DMARC: no record at _dmarc.{domain}; Gmail and Yahoo refuse bulk mail from domains "
                         f"without one",
                   f'publish TXT at _dmarc.{domain}: "v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}" '
                   f"(p=none only monitors; tighten it once the reports are clean)")
        return
    if len(records) > 1:
        report.add(FAIL, f"DMARC: {len(records)} records at {where}; receivers apply none of them "
                         f"(RFC 7489 6.6.3)", "keep exactly one")
        return
    tags = _tags(records[0])
    inherited = where != f"_dmarc.{domain}"
    policy = (tags.get("sp") if inherited and tags.get("sp") else tags.get("p", "")).lower()
    if policy not in ("none", "quarantine", "reject"):
        report.add(FAIL, f'DMARC: the record at {where} has no valid p= ("{records[0]}"); receivers ignore it '
                         f"(RFC 7489 6.6.3)", "set p=none, p=quarantine or p=reject")
        return
    adkim = tags.get("adkim", "r").lower()
    aspf = tags.get("aspf", "r").lower()
    pct = tags.get("pct", "100")
    mode = {"r": "relaxed", "s": "strict"}
    report.add(OK, f"DMARC: p={policy} at {where}{' (inherited: sp/p of the organizational domain)' if inherited else ''}"
                   f"; DKIM alignment {mode.get(adkim, adkim)}, SPF alignment {mode.get(aspf, aspf)}, pct={pct}")
    if policy == "none":
        report.add(OK, "DMARC: p=none: receivers only report, they do not act on failures")
        return
    # RFC 7489 4.2: a message passes DMARC when SPF or DKIM passes *aligned*
    # with the From: domain. We sign with d=DOMAIN and send MAIL FROM @DOMAIN,
    # both aligned when From: is DOMAIN too.
    action = "reject" if policy == "reject" else "quarantine (junk)"
    if not spf_ok and not dkim_ok:
        report.add(FAIL, f"DMARC: p={policy} demands SPF or DKIM pass aligned with {domain}, and neither "
                         f"passes for mail through this relay: receivers will {action} it",
                   "fix the SPF and DKIM failures above (one of them is enough, both is better)")
    elif not dkim_ok:
        report.add(WARN, f"DMARC: p={policy} is met by SPF alone; forwarded mail loses SPF and will be "
                         f"{'rejected' if policy == 'reject' else 'junked'}",
                   f"configure DKIM signing for {domain}")
    if aspf == "s":
        report.add(WARN, "DMARC: aspf=s: SPF aligns only when MAIL FROM uses exactly the From: domain "
                         "(not a bounce subdomain)")


# --- reverse DNS -------------------------------------------------------------

async def _check_ptr(report: Report, settings, resolver) -> None:
    from ..dns import DnsTemporaryError

    for ip in settings.egress_ips:
        label = f"PTR {ip}"
        fix = (f"ask whoever owns {ip} (hosting provider, ISP) to set its reverse DNS to {settings.hostname}, "
               f"and publish an A/AAAA record of {settings.hostname} pointing at {ip}")
        try:
            names = await resolver.ptr(ip)
        except DnsTemporaryError as exc:
            _dns_trouble(report, label, exc)
            continue
        if not names:
            report.add(FAIL, f"{label}: no reverse DNS (PTR) record; many receivers refuse mail from such IPs",
                       fix)
            continue
        confirmed = []
        try:
            for name in names:
                addresses = await resolver.addresses(name)
                if any(ipaddress.ip_address(a) == ipaddress.ip_address(ip) for a in addresses):
                    confirmed.append(name)
        except DnsTemporaryError as exc:
            _dns_trouble(report, label, exc)
            continue
        if not confirmed:
            report.add(FAIL, f"{label}: reverse DNS names {', '.join(names)}, which do not resolve back to {ip} "
                             f"(forward-confirmed reverse DNS fails)", fix)
            continue
        report.add(OK, f"{label}: {confirmed[0]} resolves back to {ip} (forward-confirmed reverse DNS)")
        if settings.hostname.lower().rstrip(".") not in (n.lower().rstrip(".") for n in confirmed):
            report.add(WARN, f"{label}: our HELO name {settings.hostname} is not the reverse DNS name "
                             f"{confirmed[0]}; some receivers score that as suspicious",
                       f"set hostname: {confirmed[0]} in the config, or change the PTR")
