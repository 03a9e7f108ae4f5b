"""relay.delivery.tls_policy: tls.yaml, and the decision for one MX host with DANE, MTA-STS and the
operator's levels, checked against real TLS servers on loopback with certificates from a test CA."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import ssl

import pytest

from relay.config import Endpoint
from relay.delivery.mta_sts import MtaSts, PolicyFetcher
from relay.delivery.tls_policy import DomainTls, OutboundTlsPolicy, TlsPolicies, session_info
from relay.dns import Resolver
from relay.errors import ConfigError
from relay.policies import shipped_policies
from tests.support.https_server import policy_text
from tests.support.tls import make_cert, server_context


# -- tls.yaml ----------------------------------------------------------------------

def test_policy_file_entries_and_default():
    p = TlsPolicies.from_dict({"Bank.Example": "verify",
                               "partner.example": {"level": "verify", "match": ["MX1.partner.example."]},
                               "legacy.example": {"dane": False, "mta_sts": False},
                               "*": "required"})
    assert p.get("bank.example.") == DomainTls(level="verify")
    assert p.get("partner.example").match == ("mx1.partner.example",)
    assert p.get("legacy.example") == DomainTls(dane=False, mta_sts=False)
    assert p.get("other.example").level == "required"
    assert TlsPolicies.from_dict(None).get("x.example") == DomainTls()


def test_policy_file_errors_name_the_key():
    with pytest.raises(ConfigError) as info:
        TlsPolicies.from_dict({"a.example": "verfy",
                               "b.example": {"level": "verify", "matches": ["x"]},
                               "c.example": {"level": "required", "match": ["mx.c.example"]},
                               "d.example": {"level": "dane-only", "dane": False},
                               "e.example": {"dane": "yes"},
                               "f.example": {"level": "verify", "match": ["not a name"]},
                               "bad..name": "verify",
                               "g.example": ["verify"],
                               "G.example.": "required"}, "tls.yaml")
    problems = {p.key: p.why for p in info.value.problems}
    assert all(p.file == "tls.yaml" for p in info.value.problems)
    assert "'verfy' is not one of opportunistic, required, verify, dane-only" in problems["a.example.level"]
    assert "unknown key" in problems["b.example.matches"]
    assert "only at level verify" in problems["c.example.match"]
    assert "dane-only" in problems["d.example.dane"]
    assert "expected true or false" in problems["e.example.dane"]
    assert "not a host name" in problems["f.example.match[0]"]
    assert "not a domain name" in problems["bad..name"]
    assert "expected a level" in problems["g.example"]
    assert "the same domain as 'g.example'" in problems["G.example."]
    with pytest.raises(ConfigError, match="expected a mapping"):
        TlsPolicies.from_dict(["verify"], "tls.yaml")


def test_shipped_policies_carry_an_empty_tls_file(tmp_path):
    from relay.config import load_settings
    from relay.policies import load_policies
    (tmp_path / "relay.yaml").write_text("hostname: relay.test\n")
    loaded = load_policies(load_settings(tmp_path / "relay.yaml"))
    assert len(loaded.tls) == 0 and loaded.tls.get("example.com") == DomainTls()


def test_a_broken_tls_file_is_a_policy_error(tmp_path):
    from relay.config import load_settings
    from relay.policies import load_policies
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "tls.yaml").write_text("example.com: {level: bogus}\n")
    (tmp_path / "relay.yaml").write_text(f"hostname: relay.test\npolicies: {tmp_path / 'policies'}\n")
    with pytest.raises(ConfigError) as info:
        load_policies(load_settings(tmp_path / "relay.yaml"))
    assert [(p.file.endswith("tls.yaml"), p.key) for p in info.value.problems] == [(True, "example.com.level")]


# -- the decision, with real TLS peers ---------------------------------------------

async def peer_check(plan, server_ctx: ssl.SSLContext) -> tuple[str | None, dict]:
    """Handshake with a TLS server presenting `server_ctx`'s certificate, using the plan's
    context, then run the plan's check, as the delivery does after STARTTLS."""
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=plan.context,
                                                  server_hostname=plan.server_hostname)
        ssl_object = writer.get_extra_info("ssl_object")
        result = plan.verify(ssl_object), session_info(ssl_object)
        writer.close()
        return result
    finally:
        server.close()
        await server.wait_closed()


def deciding(dns, ca, https=None, policies=None):
    resolver = Resolver((Endpoint("127.0.0.1", dns.port),), timeout=2.0)
    sts = None
    if https is not None:
        sts = MtaSts(resolver, PolicyFetcher(resolver, port=https.port, ca_file=ca.ca_path, timeout=5.0,
                                             internal_networks=[ipaddress.ip_network("127.0.0.0/8")]))
    return OutboundTlsPolicy(policies or TlsPolicies(), resolver, sts, ca_file=ca.ca_path)


def mx_zone(dns, domain="example.test", host="mx.example.test", address="127.0.0.2"):
    dns.zone.add(domain, "MX", (10, host))
    dns.zone.add(host, "A", address)


async def test_default_is_opportunistic_without_checks(dns, ca, tmp_path):
    mx_zone(dns)
    plan = await deciding(dns, ca).plan("example.test", "mx.example.test")
    assert (plan.mode, plan.policy, plan.enforced, plan.check) == ("opportunistic", "opportunistic", True, None)
    problem, info = await peer_check(plan, server_context(*make_cert(tmp_path, "whatever")))
    assert problem is None  # RFC 7435: a self-signed certificate is fine
    assert info["protocol"].startswith("TLSv1") and info["cipher"]


async def test_required_level_needs_tls_but_no_check(dns, ca):
    mx_zone(dns)
    plan = await deciding(dns, ca, policies=TlsPolicies({"example.test": DomainTls("required")})).plan(
        "example.test", "mx.example.test")
    assert plan.requires_tls and plan.policy == "required" and plan.check is None


async def test_verify_level(dns, ca, tmp_path):
    mx_zone(dns)
    decide = deciding(dns, ca, policies=TlsPolicies({"example.test": DomainTls("verify"),
                                                     "other.test": DomainTls("verify", match=("other.test",))}))
    plan = await decide.plan("example.test", "mx.example.test")
    assert plan.requires_tls and plan.policy == "verify"
    assert (await peer_check(plan, ca.issue("mx.example.test").context()))[0] is None
    wrong, _ = await peer_check(plan, ca.issue("mx.elsewhere.test").context())
    assert "does not verify for mx.example.test" in wrong
    self_signed, _ = await peer_check(plan, server_context(*make_cert(tmp_path, "mx.example.test")))
    assert "does not verify" in self_signed
    matched = await decide.plan("other.test", "mx.example.test")
    assert (await peer_check(matched, ca.issue("other.test").context()))[0] is None


async def test_dane_ee_pass_and_mismatch(dns, ca):
    good = ca.issue("mx.example.test")
    mx_zone(dns)
    dns.zone.add("_25._tcp.mx.example.test", "TLSA", (3, 1, 1, hashlib.sha256(good.spki()).digest()))
    dns.zone.sign("example.test")
    plan = await deciding(dns, ca).plan("example.test", "mx.example.test")
    assert (plan.mode, plan.policy, plan.cause) == ("required", "dane", "tls-dane")
    assert (await peer_check(plan, good.context()))[0] is None
    problem, _ = await peer_check(plan, ca.issue("mx.example.test").context())  # same name, other key
    assert "no TLSA record matches" in problem
    reply = plan.refusal("example.test", "mx.example.test", problem)
    assert reply.code == 451 and reply.enhanced == "4.7.5" and reply.cause == "tls-dane"
    assert reply.text.startswith("451 4.7.5 TLS policy dane for example.test: MX host mx.example.test: DANE")
    judged = shipped_policies().judge(reply, "rcpt", ["a@example.test"])
    assert judged.scope == "relay" and judged.bounce_list == "never"
    assert judged.classification.rule == "relay:tls-dane" and not judged.classification.permanent


async def test_dane_ta_pass(dns, ca):
    from cryptography.hazmat.primitives import serialization
    mx_zone(dns)
    dns.zone.add("_25._tcp.mx.example.test", "TLSA",
                 (2, 0, 1, hashlib.sha256(ca.intermediate.public_bytes(serialization.Encoding.DER)).digest()))
    dns.zone.sign("example.test")
    plan = await deciding(dns, ca).plan("example.test", "mx.example.test")
    assert (await peer_check(plan, ca.issue("mx.example.test").context()))[0] is None
    assert "does not verify for mx.example.test" in (await peer_check(plan, ca.issue("x.test").context()))[0]


async def test_unsigned_tlsa_is_ignored(dns, ca):
    mx_zone(dns)
    dns.zone.add("_25._tcp.mx.example.test", "TLSA", (3, 1, 1, "00" * 32))
    assert (await deciding(dns, ca).plan("example.test", "mx.example.test")).policy == "opportunistic"


async def test_unusable_tlsa_means_tls_without_authentication(dns, ca):
    mx_zone(dns)
    dns.zone.add("_25._tcp.mx.example.test", "TLSA", (1, 1, 1, "00" * 32))  # PKIX-EE: unusable
    dns.zone.sign("example.test")
    plan = await deciding(dns, ca).plan("example.test", "mx.example.test")
    assert plan.requires_tls and plan.policy == "dane" and plan.check is None


async def test_tlsa_trouble_refuses_the_host(dns, ca):
    mx_zone(dns)
    dns.zone.sign("example.test")
    dns.zone.servfail.add("_25._tcp.mx.example.test")
    plan = await deciding(dns, ca).plan("example.test", "mx.example.test")
    assert plan.mode == "refuse" and "could not be looked up" in plan.reason and plan.cause == "tls-dane"


async def test_dane_can_be_switched_off_and_dane_only_refuses_without_it(dns, ca):
    mx_zone(dns)
    dns.zone.add("_25._tcp.mx.example.test", "TLSA", (3, 1, 1, "00" * 32))
    dns.zone.sign("example.test")
    off = await deciding(dns, ca, policies=TlsPolicies({"example.test": DomainTls(dane=False)})).plan(
        "example.test", "mx.example.test")
    assert off.policy == "opportunistic"
    mx_zone(dns, "other.test", "mx.other.test")
    only = await deciding(dns, ca, policies=TlsPolicies({"other.test": DomainTls("dane-only")})).plan(
        "other.test", "mx.other.test")
    assert only.mode == "refuse" and "no DNSSEC-validated TLSA records" in only.reason


def sts_zone(dns, https, ca, mode="enforce", mx=("mx.example.test",)):
    mx_zone(dns)
    dns.zone.add("_mta-sts.example.test", "TXT", "v=STSv1; id=1")
    dns.zone.add("mta-sts.example.test", "A", "127.0.0.1")
    https.serve("mta-sts.example.test", policy_text(mode, *mx), ca.issue("mta-sts.example.test").context())


async def test_mta_sts_enforce_passes_a_good_peer_and_refuses_an_unverifiable_one(dns, https, ca, tmp_path):
    sts_zone(dns, https, ca)
    plan = await deciding(dns, ca, https).plan("example.test", "mx.example.test")
    assert (plan.mode, plan.policy, plan.enforced, plan.cause) == ("required", "mta-sts", True, "tls-mta-sts")
    assert (await peer_check(plan, ca.issue("mx.example.test").context()))[0] is None
    problem, _ = await peer_check(plan, server_context(*make_cert(tmp_path, "mx.example.test")))
    assert "does not verify for mx.example.test" in problem
    reply = plan.refusal("example.test", "mx.example.test", problem)
    assert reply.text.startswith("451 4.7.5 TLS policy mta-sts for example.test: MX host mx.example.test: ")
    assert shipped_policies().judge(reply, "rcpt").classification.rule == "relay:tls-mta-sts"


async def test_mta_sts_enforce_refuses_an_unlisted_mx(dns, https, ca):
    sts_zone(dns, https, ca, mx=("*.mail.example.test",))
    plan = await deciding(dns, ca, https).plan("example.test", "mx.example.test")
    assert plan.mode == "refuse" and "is not an MX host the MTA-STS policy of example.test allows" in plan.reason
    assert (await deciding(dns, ca, https).plan("example.test", "a.mail.example.test")).mode == "required"


async def test_mta_sts_testing_reports_and_delivers(dns, https, ca, tmp_path):
    sts_zone(dns, https, ca, mode="testing", mx=("other.example.test",))
    plan = await deciding(dns, ca, https).plan("example.test", "mx.example.test")
    assert (plan.mode, plan.policy, plan.enforced) == ("opportunistic", "mta-sts-testing", False)
    assert "is not an MX host the MTA-STS policy" in plan.report and plan.note is None
    problem, _ = await peer_check(plan, server_context(*make_cert(tmp_path, "mx.example.test")))
    assert "does not verify" in problem  # reported; the caller delivers anyway (not enforced)


async def test_dane_comes_before_mta_sts(dns, https, ca):
    # RFC 8461 2: a domain with DANE records is checked by DANE, not by MTA-STS.
    sts_zone(dns, https, ca, mx=("nothing.example.test",))
    dns.zone.add("_25._tcp.mx.example.test", "TLSA", (3, 1, 1, "00" * 32))
    dns.zone.sign("example.test")
    plan = await deciding(dns, ca, https).plan("example.test", "mx.example.test")
    assert plan.policy == "dane" and https.requests == []


async def test_mta_sts_fetch_failure_is_a_note_and_opportunistic(dns, https, ca):
    mx_zone(dns)
    dns.zone.add("_mta-sts.example.test", "TXT", "v=STSv1; id=1")  # no policy host
    plan = await deciding(dns, ca, https).plan("example.test", "mx.example.test")
    assert plan.policy == "opportunistic" and "could not be fetched" in plan.note


async def test_mta_sts_can_be_switched_off(dns, https, ca):
    sts_zone(dns, https, ca)
    plan = await deciding(dns, ca, https, TlsPolicies({"example.test": DomainTls(mta_sts=False)})).plan(
        "example.test", "mx.example.test")
    assert plan.policy == "opportunistic" and https.requests == []
