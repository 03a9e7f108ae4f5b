"""SPF pre-flight at MAIL, against the loopback DNS server (never patched lookups)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from relay.config import Endpoint, Resolver as ResolverSettings, Settings
from relay.decision import Verdict
from relay.dns import Resolver
from relay.domains import DomainPolicies
from relay.pipeline import Session, Transaction
from relay.policies import Policies
from relay.spf import SpfChecker, is_spf_record
from relay.steps.spf_check import SpfCheckStep, sender_domain

EGRESS = "203.0.113.5"


def make_settings(dns, egress=(EGRESS,), cache_size=100) -> Settings:
    return Settings(source=Path("config.yaml"), hostname="relay.example.net", egress_ips=tuple(egress),
                    resolver=ResolverSettings((Endpoint("127.0.0.1", dns.port),), timeout=2.0,
                                              cache_size=cache_size))


def make_policies(domains: dict) -> Policies:
    return Policies(directory=Path("."), classifier=None, suppression=None,
                    domains=DomainPolicies.from_dict(domains))


def make_step(dns, domains: dict, **kw) -> SpfCheckStep:
    settings = make_settings(dns, **kw)
    return SpfCheckStep(settings, make_policies(domains), Resolver.from_settings(settings))


def txn(mail_from: str) -> Transaction:
    return Transaction(session=Session(id="s1", peer_ip="127.0.0.1", peer_port=40000, trusted_network=True),
                       id="t1", mail_from=mail_from)


# Zones that give each SPF result for our egress IP.
ZONES = {
    "pass": [("example.com", "TXT", f"v=spf1 ip4:{EGRESS} -all")],
    "fail": [("example.com", "TXT", "v=spf1 ip4:198.51.100.0/24 -all")],
    "softfail": [("example.com", "TXT", "v=spf1 ip4:198.51.100.0/24 ~all")],
    "neutral": [("example.com", "TXT", "v=spf1 ip4:198.51.100.0/24 ?all")],
    "none": [("example.com", "TXT", "some other text record")],
    "permerror": [("example.com", "TXT", "v=spf1 ip4:198.51.100.0/24 frobnicate -all")],
    "temperror": [],  # SERVFAIL, below
}


def load_zone(dns, result: str) -> None:
    for name, rtype, value in ZONES[result]:
        dns.zone.add(name, rtype, value)
    if result == "temperror":
        dns.zone.servfail.add("example.com")


# (result, policy) -> (verdict, code, enhanced, warned)
C, R, D = Verdict.CONTINUE, Verdict.REJECT, Verdict.DEFER
EXPECTED = {
    ("pass", "reject"): (C, None, None, False),
    ("pass", "tempfail"): (C, None, None, False),
    ("pass", "warn"): (C, None, None, False),
    ("fail", "reject"): (R, 550, "5.7.23", False),
    ("fail", "tempfail"): (D, 451, "4.7.24", False),
    ("fail", "warn"): (C, None, None, True),
    ("softfail", "reject"): (R, 550, "5.7.1", False),
    ("softfail", "tempfail"): (D, 451, "4.7.24", False),
    ("softfail", "warn"): (C, None, None, True),
    ("neutral", "reject"): (C, None, None, True),
    ("neutral", "tempfail"): (C, None, None, True),
    ("neutral", "warn"): (C, None, None, True),
    ("none", "reject"): (C, None, None, True),
    ("none", "tempfail"): (C, None, None, True),
    ("none", "warn"): (C, None, None, True),
    ("permerror", "reject"): (R, 550, "5.7.24", False),
    ("permerror", "tempfail"): (D, 451, "4.7.24", False),
    ("permerror", "warn"): (C, None, None, True),
    ("temperror", "reject"): (D, 451, "4.4.3", False),
    ("temperror", "tempfail"): (D, 451, "4.4.3", False),
    ("temperror", "warn"): (C, None, None, True),
}


@pytest.mark.parametrize("result,policy", sorted(EXPECTED))
async def test_result_and_policy_matrix(dns, result, policy):
    load_zone(dns, result)
    step = make_step(dns, {"example.com": {"spf": policy}})
    t = txn("<alice@Example.COM>")
    decision = await step.on_mail(t)
    verdict, code, enhanced, warned = EXPECTED[(result, policy)]
    assert decision.verdict is verdict
    assert t.notes["spf"]["result"] == result
    assert t.notes["spf"]["policy"] == policy
    if code is not None:
        assert decision.reply.code == code
        assert decision.reply.enhanced == enhanced
        text = decision.reply.lines[0]
        assert "example.com" in text and EGRESS in text
        if result in ("fail", "softfail"):
            # The reply names the record and the fix.
            assert text.startswith(f"{enhanced} SPF: example.com does not authorise our IP {EGRESS}: \"v=spf1")
            assert f"add ip4:{EGRESS}" in text
        assert decision.kind == ("deferred" if result == "temperror" else "policy_rejected")
    warnings = t.notes.get("warnings", [])
    if warned:
        assert len(warnings) == 1
        assert warnings[0]["check"] == "spf" and warnings[0]["result"] == result
        assert EGRESS in warnings[0]["text"]
    else:
        assert warnings == []
    await step.close()


@pytest.mark.parametrize("result", sorted(ZONES))
async def test_policy_off_makes_no_dns_query(dns, result):
    load_zone(dns, result)
    step = make_step(dns, {"example.com": {"spf": "off"}})
    t = txn("alice@example.com")
    assert (await step.on_mail(t)).verdict is Verdict.CONTINUE
    assert dns.zone.queries == []
    assert "spf" not in t.notes
    await step.close()


async def test_domain_without_entry_makes_no_dns_query(dns):
    load_zone(dns, "fail")
    step = make_step(dns, {"other.example": {"spf": "reject"}})
    assert (await step.on_mail(txn("alice@example.com"))).verdict is Verdict.CONTINUE
    assert dns.zone.queries == []
    await step.close()


async def test_null_sender_and_no_egress_ips_are_skipped(dns):
    load_zone(dns, "fail")
    step = make_step(dns, {"example.com": {"spf": "reject"}})
    assert (await step.on_mail(txn("<>"))).verdict is Verdict.CONTINUE
    assert (await step.on_mail(txn(""))).verdict is Verdict.CONTINUE
    no_egress = make_step(dns, {"example.com": {"spf": "reject"}}, egress=())
    assert (await no_egress.on_mail(txn("alice@example.com"))).verdict is Verdict.CONTINUE
    assert dns.zone.queries == []
    await step.close()
    await no_egress.close()


async def test_wildcard_entry_applies_to_other_domains(dns):
    load_zone(dns, "fail")
    step = make_step(dns, {"*": {"spf": "reject"}})
    decision = await step.on_mail(txn("alice@example.com"))
    assert decision.verdict is Verdict.REJECT
    await step.close()


async def test_result_is_cached_per_domain_and_ip(dns):
    load_zone(dns, "pass")
    step = make_step(dns, {"example.com": {"spf": "reject"}})
    assert (await step.on_mail(txn("alice@example.com"))).verdict is Verdict.CONTINUE
    asked = len(dns.zone.queries)
    assert asked >= 1
    assert (await step.on_mail(txn("bob@example.com"))).verdict is Verdict.CONTINUE
    assert len(dns.zone.queries) == asked  # the cache answered
    assert step.checker.evaluations == 1
    await step.close()


async def test_concurrent_checks_share_one_evaluation(dns):
    load_zone(dns, "pass")
    step = make_step(dns, {"example.com": {"spf": "reject"}})
    decisions = await asyncio.gather(*(step.on_mail(txn(f"u{i}@example.com")) for i in range(5)))
    assert all(d.verdict is Verdict.CONTINUE for d in decisions)
    assert step.checker.evaluations == 1
    await step.close()


async def test_cache_expires_with_the_record_ttl(dns):
    dns.zone.ttl = 1
    load_zone(dns, "pass")
    step = make_step(dns, {"example.com": {"spf": "reject"}})
    await step.on_mail(txn("alice@example.com"))
    dns.zone.clear("example.com")
    load_zone(dns, "fail")
    await asyncio.sleep(1.1)
    assert (await step.on_mail(txn("alice@example.com"))).verdict is Verdict.REJECT
    assert step.checker.evaluations == 2
    await step.close()


async def test_temperror_is_not_cached(dns):
    load_zone(dns, "temperror")
    step = make_step(dns, {"example.com": {"spf": "reject"}})
    assert (await step.on_mail(txn("alice@example.com"))).verdict is Verdict.DEFER
    dns.zone.servfail.clear()
    load_zone(dns, "pass")
    assert (await step.on_mail(txn("alice@example.com"))).verdict is Verdict.CONTINUE
    await step.close()


async def test_cache_is_bounded(dns):
    for d in ("a.example", "b.example"):
        dns.zone.add(d, "TXT", f"v=spf1 ip4:{EGRESS} -all")
    settings = make_settings(dns)
    checker = SpfChecker(Resolver.from_settings(settings), "relay.example.net", cache_size=1)
    await checker.check("a.example", EGRESS)
    await checker.check("b.example", EGRESS)
    await checker.check("a.example", EGRESS)  # evicted by b.example
    assert checker.evaluations == 3
    await checker.check("a.example", EGRESS)
    assert checker.evaluations == 3
    checker.close()


async def test_include_chain_passes(dns):
    dns.zone.add("example.com", "TXT", "v=spf1 include:_spf.example.com -all")
    dns.zone.add("_spf.example.com", "TXT", "v=spf1 include:_out.provider.example ~all")
    dns.zone.add("_out.provider.example", "TXT", "v=spf1 a:out.provider.example -all")
    dns.zone.add("out.provider.example", "A", EGRESS)
    step = make_step(dns, {"example.com": {"spf": "reject"}})
    t = txn("alice@example.com")
    assert (await step.on_mail(t)).verdict is Verdict.CONTINUE
    assert t.notes["spf"]["result"] == "pass"
    assert ("out.provider.example.", "A") in dns.zone.queries
    await step.close()


async def test_include_chain_fails_with_the_top_record_quoted(dns):
    dns.zone.add("example.com", "TXT", "v=spf1 include:_spf.example.com -all")
    dns.zone.add("_spf.example.com", "TXT", "v=spf1 ip4:198.51.100.1 -all")
    step = make_step(dns, {"example.com": {"spf": "reject"}})
    decision = await step.on_mail(txn("alice@example.com"))
    assert decision.reply.code == 550
    assert '"v=spf1 include:_spf.example.com -all"' in decision.reply.lines[0]
    await step.close()


async def test_include_of_domain_without_record_is_permerror(dns):
    # RFC 7208 5.2: an include whose target has no SPF record is a permerror.
    dns.zone.add("example.com", "TXT", "v=spf1 include:gone.example -all")
    step = make_step(dns, {"example.com": {"spf": "reject"}})
    decision = await step.on_mail(txn("alice@example.com"))
    assert decision.reply.code == 550 and decision.reply.enhanced == "5.7.24"
    assert "permerror" in decision.reply.lines[0]
    await step.close()


async def test_too_many_lookups_is_permerror(dns):
    # RFC 7208 4.6.4: more than 10 mechanisms that need DNS is a permerror.
    mechanisms = " ".join(f"a:h{i}.example.com" for i in range(11))
    dns.zone.add("example.com", "TXT", f"v=spf1 {mechanisms} ip4:{EGRESS} -all")
    for i in range(11):
        dns.zone.add(f"h{i}.example.com", "A", "198.51.100.1")
    step = make_step(dns, {"example.com": {"spf": "tempfail"}})
    t = txn("alice@example.com")
    decision = await step.on_mail(t)
    assert t.notes["spf"]["result"] == "permerror"
    assert decision.reply.code == 451 and decision.reply.enhanced == "4.7.24"
    await step.close()


async def test_every_egress_ip_is_checked_and_the_unauthorised_one_named(dns):
    dns.zone.add("example.com", "TXT", f"v=spf1 ip4:{EGRESS} -all")
    step = make_step(dns, {"example.com": {"spf": "reject"}}, egress=(EGRESS, "2001:db8::25"))
    t = txn("alice@example.com")
    decision = await step.on_mail(t)
    assert decision.verdict is Verdict.REJECT
    assert "our IP 2001:db8::25" in decision.reply.lines[0]
    assert "add ip6:2001:db8::25" in decision.reply.lines[0]
    assert t.notes["spf"]["ips"] == {EGRESS: "pass", "2001:db8::25": "fail"}
    await step.close()


async def test_timeout_is_a_temporary_failure_not_a_pass(dns):
    import socket

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        settings = Settings(source=Path("c.yaml"), hostname="relay.example.net", egress_ips=(EGRESS,),
                            resolver=ResolverSettings((Endpoint("127.0.0.1", silent.getsockname()[1]),),
                                                      timeout=0.5))
        step = SpfCheckStep(settings, make_policies({"example.com": {"spf": "reject"}}),
                            Resolver.from_settings(settings))
        decision = await step.on_mail(txn("alice@example.com"))
        assert decision.verdict is Verdict.DEFER
        assert decision.reply.code == 451 and decision.reply.enhanced == "4.4.3"
        assert "timeout" in decision.reply.lines[0].lower()
        await step.close()
    finally:
        silent.close()


def test_sender_domain():
    assert sender_domain("<Alice@Example.COM>") == "example.com"
    assert sender_domain("<>") is None
    assert sender_domain("") is None
    assert sender_domain("user@[192.0.2.1]") is None
    assert sender_domain("not an address") is None


def test_is_spf_record():
    assert is_spf_record("v=spf1 -all") and is_spf_record("V=SPF1") and is_spf_record("v=spf1")
    assert not is_spf_record("v=spf10 -all") and not is_spf_record("spf1")


# --- the static lookup count used by `relay doctor` (RFC 7208 4.6.4) ---------------

def resolver_for(dns) -> Resolver:
    return Resolver((Endpoint("127.0.0.1", dns.port),), timeout=2.0)


async def test_count_lookups_follows_includes_and_redirects(dns):
    from relay.spf import count_lookups

    dns.zone.add("example.com", "TXT", "v=spf1 ip4:192.0.2.0/24 a mx include:_i.example.com "
                                       "redirect=_r.example.com exp=explain.example.com")
    dns.zone.add("example.com", "A", "192.0.2.1")
    dns.zone.add("example.com", "MX", (10, "example.com"))
    dns.zone.add("_i.example.com", "TXT", "v=spf1 exists:%{i}.rbl.example ptr -all")
    dns.zone.add("_r.example.com", "TXT", "v=spf1 ip6:2001:db8::/32 -all")
    count = await count_lookups(resolver_for(dns), "example.com")
    # a, mx, include, (in _i: exists, ptr), redirect; ip4/ip6/exp/all cost nothing
    assert count.lookups == 6
    assert count.problems == []
    assert count.walked == ["example.com", "_i.example.com", "_r.example.com"]
    assert any("macro" in n for n in count.notes) and any("RFC 7208 5.5" in n for n in count.notes)


async def test_count_lookups_ignores_redirect_when_all_is_present(dns):
    from relay.spf import count_lookups

    dns.zone.add("example.com", "TXT", "v=spf1 -all redirect=_r.example.com")
    count = await count_lookups(resolver_for(dns), "example.com")
    assert count.lookups == 0 and count.walked == ["example.com"]


async def test_count_lookups_reports_loops_void_and_missing_targets(dns):
    from relay.spf import count_lookups

    dns.zone.add("example.com", "TXT", "v=spf1 include:loop.example.com a:gone1.example.com "
                                       "mx:gone2.example.com include:missing.example.com -all")
    dns.zone.add("loop.example.com", "TXT", "v=spf1 include:example.com -all")
    count = await count_lookups(resolver_for(dns), "example.com")
    assert any("loop" in p for p in count.problems)
    assert any("missing.example.com (included from example.com) has no SPF record" in p for p in count.problems)
    assert count.void == 3  # gone1 (no A), gone2 (no MX), missing (no record)


async def test_count_lookups_raises_on_dns_trouble(dns):
    from relay.dns import DnsTemporaryError
    from relay.spf import count_lookups

    dns.zone.add("example.com", "TXT", "v=spf1 include:sf.example.com -all")
    dns.zone.servfail.add("sf.example.com")
    with pytest.raises(DnsTemporaryError):
        await count_lookups(resolver_for(dns), "example.com")


def test_check_config_warns_of_an_spf_policy_that_cannot_run_without_egress_ips(tmp_path):
    """domains.yaml asked `spf: reject`, the config had no egress_ips, and `relay check-config` said only
    "OK": the pre-flight never ran (docs/spf-and-doctor.md), every message passed it unchecked."""
    import subprocess
    import sys

    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "domains.yaml").write_text("example.com:\n  spf: reject\nquiet.example:\n  spf: \"off\"\n")
    config = tmp_path / "relay.yaml"
    config.write_text(f"hostname: relay.test\nbounce_list: sqlite:///{tmp_path / 'b.db'}\npolicies: {policies}\n"
                      "upstream: {host: smtp.example.com}\n")
    repo = Path(__file__).resolve().parent.parent
    run = [sys.executable, "-m", "relay", "check-config", "-c", str(config)]
    out = subprocess.run(run, capture_output=True, text=True, timeout=60, cwd=str(repo))
    assert out.returncode == 0, out
    assert (f"warning: {policies / 'domains.yaml'}: spf: is set for example.com, but the config has no egress_ips"
            in out.stdout), out.stdout
    config.write_text(config.read_text() + "egress_ips: [203.0.113.5]\n")
    out = subprocess.run(run, capture_output=True, text=True, timeout=60, cwd=str(repo))
    assert out.returncode == 0 and "warning" not in out.stdout, out
