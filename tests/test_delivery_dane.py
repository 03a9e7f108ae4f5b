"""relay.delivery.dane: TLSA lookups through the loopback DNS (AD bit) and certificate checks."""

from __future__ import annotations

import hashlib

import pytest

from relay.config import Endpoint
from relay.delivery import dane
from relay.dns import Resolver, Tlsa
from tests.support.tls import CertAuthority


def resolver_for(dns) -> Resolver:
    return Resolver((Endpoint("127.0.0.1", dns.port),), timeout=2.0)


def chain_of(ca, issued) -> list[bytes]:
    from cryptography.hazmat.primitives import serialization
    return [issued.der(), ca.intermediate.public_bytes(serialization.Encoding.DER)]


def der(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return cert.public_bytes(serialization.Encoding.DER)


def records(*tlsa) -> dane.DaneRecords:
    return dane.DaneRecords("_25._tcp.mx.example.test", tuple(t for t in tlsa if dane.usable(t)),
                            tuple(t for t in tlsa if not dane.usable(t)))


# -- matching (RFC 7672 3.1) ---------------------------------------------------

def test_dane_ee_matches_spki_and_full_certificate_by_every_matching_type(ca):
    good = ca.issue("mx.example.test")
    chain = chain_of(ca, good)
    for rec in (Tlsa(3, 1, 1, hashlib.sha256(good.spki()).digest()),
                Tlsa(3, 1, 2, hashlib.sha512(good.spki()).digest()),
                Tlsa(3, 1, 0, good.spki()),
                Tlsa(3, 0, 1, hashlib.sha256(good.der()).digest()),
                Tlsa(3, 0, 0, good.der())):
        assert dane.check(records(rec), chain, ["mx.example.test"]) is None, rec


def test_dane_ee_ignores_names_and_dates(ca):
    # RFC 7672 3.1.1: the TLSA record binds the key; the certificate's names and expiry do not matter.
    other = ca.issue("somewhere.else.test", expired=True)
    rec = Tlsa(3, 1, 1, hashlib.sha256(other.spki()).digest())
    assert dane.check(records(rec), [other.der()], ["mx.example.test"]) is None


def test_dane_ee_mismatch_says_what_the_server_sent_and_what_dns_says(ca):
    good, impostor = ca.issue("mx.example.test"), ca.issue("mx.example.test")
    rec = Tlsa(3, 1, 1, hashlib.sha256(good.spki()).digest())
    problem = dane.check(records(rec), chain_of(ca, impostor), ["mx.example.test"])
    assert problem is not None
    assert "_25._tcp.mx.example.test" in problem and "no TLSA record matches" in problem
    assert hashlib.sha256(impostor.spki()).hexdigest()[:16] in problem
    assert "DANE-EE SPKI SHA2-256 " + rec.data.hex()[:16] in problem


def test_dane_ta_validates_the_chain_to_the_matched_anchor_and_the_name(ca):
    good = ca.issue("mx.example.test")
    rec = Tlsa(2, 0, 1, hashlib.sha256(der(ca.intermediate)).digest())
    assert dane.check(records(rec), chain_of(ca, good), ["mx.example.test"]) is None
    rec_spki = Tlsa(2, 1, 1, hashlib.sha256(ca.intermediate.public_key().public_bytes(
        *_spki_format())).digest())
    assert dane.check(records(rec_spki), chain_of(ca, good), ["mx.example.test"]) is None


def _spki_format():
    from cryptography.hazmat.primitives import serialization
    return serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo


def test_dane_ta_checks_the_name(ca):
    # RFC 7672 3.2.2: with DANE-TA the server's certificate must name the MX host.
    wrong = ca.issue("other.example.test")
    rec = Tlsa(2, 0, 1, hashlib.sha256(der(ca.intermediate)).digest())
    problem = dane.check(records(rec), chain_of(ca, wrong), ["mx.example.test"])
    assert problem is not None and "trust anchor of DANE-TA Cert SHA2-256" in problem
    assert "mx.example.test" in problem


def test_dane_ta_of_another_ca_does_not_match(ca, tmp_path):
    other_ca = CertAuthority(tmp_path, "Another CA")
    rec = Tlsa(2, 0, 1, hashlib.sha256(der(other_ca.intermediate)).digest())
    problem = dane.check(records(rec), chain_of(ca, ca.issue("mx.example.test")), ["mx.example.test"])
    assert problem is not None and "no TLSA record matches" in problem


def test_pkix_usages_are_unusable(ca):
    # RFC 7672 3.1.3: PKIX-TA(0) and PKIX-EE(1) are not used for SMTP, even when they would match.
    good = ca.issue("mx.example.test")
    digest = hashlib.sha256(good.spki()).digest()
    recs = records(Tlsa(1, 1, 1, digest), Tlsa(0, 1, 1, digest), Tlsa(3, 1, 9, digest), Tlsa(3, 7, 1, digest))
    assert recs.usable == () and len(recs.unusable) == 4
    assert not recs.authenticates
    # Nothing to authenticate with: TLS was mandatory, the peer is accepted unauthenticated.
    assert dane.check(recs, chain_of(ca, good), ["mx.example.test"]) is None


def test_no_certificate_or_garbage_is_a_problem(ca):
    rec = Tlsa(3, 1, 1, b"\0" * 32)
    assert "no certificate" in dane.check(records(rec), [], ["mx"])
    assert "could not be read" in dane.check(records(rec), [b"not a certificate"], ["mx"])


# -- lookup (RFC 7672 2.2) -----------------------------------------------------

def _zone(dns, *, sign=True, tlsa=(3, 1, 1, "00" * 32)):
    dns.zone.add("example.test", "MX", (10, "mx.example.test"))
    dns.zone.add("mx.example.test", "A", "127.0.0.2")
    if tlsa:
        dns.zone.add("_25._tcp.mx.example.test", "TLSA", tlsa)
    if sign:
        dns.zone.sign("example.test")


async def test_lookup_finds_secure_records(dns):
    _zone(dns)
    found = await dane.lookup(resolver_for(dns), "example.test", "mx.example.test")
    assert found is not None and found.base == "_25._tcp.mx.example.test"
    assert [(r.usage, r.selector, r.mtype) for r in found.usable] == [(3, 1, 1)]


async def test_lookup_uses_the_port(dns):
    _zone(dns, tlsa=None)
    dns.zone.add("_2525._tcp.mx.example.test", "TLSA", (3, 1, 1, "00" * 32))
    assert await dane.lookup(resolver_for(dns), "example.test", "mx.example.test") is None
    assert await dane.lookup(resolver_for(dns), "example.test", "mx.example.test", port=2525) is not None


async def test_insecure_tlsa_is_ignored(dns):
    _zone(dns, sign=False)
    assert await dane.lookup(resolver_for(dns), "example.test", "mx.example.test") is None


async def test_insecure_mx_rrset_or_addresses_disable_dane(dns):
    # RFC 7672 2.2.1 / 2.2.2: a forged MX or address could lead to a host with forged TLSA records.
    dns.zone.add("example.test", "MX", (10, "mx.signed.test"))
    dns.zone.add("mx.signed.test", "A", "127.0.0.2")
    dns.zone.add("_25._tcp.mx.signed.test", "TLSA", (3, 1, 1, "00" * 32))
    dns.zone.sign("signed.test")
    r = resolver_for(dns)
    assert await dane.lookup(r, "example.test", "mx.signed.test") is None  # MX insecure
    dns.zone.add("implicit.test", "A", "127.0.0.3")
    dns.zone.add("_25._tcp.implicit.test", "TLSA", (3, 1, 1, "00" * 32))
    assert await dane.lookup(r, "implicit.test", "implicit.test") is None  # addresses insecure
    # An implicit MX (the domain itself, RFC 5321 5.1) needs no MX RRset.
    assert await dane.lookup(r, "mx.signed.test", "mx.signed.test") is not None


async def test_no_tlsa_in_a_signed_zone_is_no_dane(dns):
    _zone(dns, tlsa=None)
    assert await dane.lookup(resolver_for(dns), "example.test", "mx.example.test") is None


async def test_tlsa_trouble_for_a_secure_host_is_an_error(dns):
    # RFC 7672 2.2: when the TLSA answer is unknown, the host must not get cleartext or unauthenticated TLS.
    _zone(dns, tlsa=None)
    dns.zone.servfail.add("_25._tcp.mx.example.test")
    with pytest.raises(dane.DaneLookupError, match="TLSA records of mx.example.test could not be looked up"):
        await dane.lookup(resolver_for(dns), "example.test", "mx.example.test")


# -- review29: each address family on its own; TLSA at a CNAME target (RFC 7672 2.2.2) -----------------

@pytest.mark.parametrize("failing", ["A", "AAAA"])
async def test_a_failed_address_lookup_leaves_dane_on_for_the_family_that_validated(dns, failing):
    # A validating resolver answers SERVFAIL to a forged RRset: that is no "DANE does not apply" (F1).
    # The other family validated: DANE applies to the host, so to the addresses left to connect to.
    _zone(dns)
    dns.zone.add("mx.example.test", "AAAA", "::1")
    dns.zone.bogus.add(("mx.example.test", failing))
    found = await dane.lookup(resolver_for(dns), "example.test", "mx.example.test")
    assert found is not None and found.base == "_25._tcp.mx.example.test"


async def test_a_failed_address_lookup_of_a_host_in_a_signed_mx_rrset_is_an_error(dns):
    # The MX RRset validated; the host's only family fails: its security is unknown.
    _zone(dns)
    dns.zone.bogus.add(("mx.example.test", "A"))
    with pytest.raises(dane.DaneLookupError, match="addresses of mx.example.test could not be looked up"):
        await dane.lookup(resolver_for(dns), "example.test", "mx.example.test")


async def test_a_failed_address_lookup_of_an_insecure_host_is_still_no_dane(dns):
    # The other family's answer shows the host's zone is unsigned: DANE cannot apply whatever A says.
    dns.zone.add("example.test", "MX", (10, "mx.plain.test"))
    dns.zone.add("mx.plain.test", "AAAA", "::1")
    dns.zone.add("mx.plain.test", "A", "127.0.0.2")
    dns.zone.sign("example.test")
    dns.zone.bogus.add(("mx.plain.test", "A"))
    assert await dane.lookup(resolver_for(dns), "example.test", "mx.plain.test") is None


async def test_tlsa_is_looked_up_at_the_cname_target_first_then_at_the_mx_name(dns):
    r = resolver_for(dns)
    dns.zone.add("example.test", "MX", (10, "mail.example.test"))
    dns.zone.add("mail.example.test", "CNAME", "mx.provider.test")
    dns.zone.add("mx.provider.test", "A", "127.0.0.2")
    dns.zone.add("_25._tcp.mx.provider.test", "TLSA", (3, 1, 1, "11" * 32))
    dns.zone.add("_25._tcp.mail.example.test", "TLSA", (3, 1, 1, "22" * 32))
    dns.zone.sign("example.test")
    dns.zone.sign("provider.test")
    found = await dane.lookup(r, "example.test", "mail.example.test")
    assert found.base == "_25._tcp.mx.provider.test" and found.usable[0].data == b"\x11" * 32
    assert found.base_domain == "mx.provider.test"
    assert found.reference_names == ["mx.provider.test", "mail.example.test"]  # RFC 7672 3.2.2
    dns.zone.clear("_25._tcp.mx.provider.test")
    r.clear_cache()
    found = await dane.lookup(r, "example.test", "mail.example.test")
    assert found.base == "_25._tcp.mail.example.test" and found.usable[0].data == b"\x22" * 32


async def test_tlsa_trouble_at_the_cname_target_is_an_error(dns):
    dns.zone.add("example.test", "MX", (10, "mail.example.test"))
    dns.zone.add("mail.example.test", "CNAME", "mx.provider.test")
    dns.zone.add("mx.provider.test", "A", "127.0.0.2")
    dns.zone.add("_25._tcp.mail.example.test", "TLSA", (3, 1, 1, "22" * 32))
    dns.zone.sign("example.test")
    dns.zone.sign("provider.test")
    dns.zone.servfail.add("_25._tcp.mx.provider.test")
    with pytest.raises(dane.DaneLookupError, match="TLSA records of mx.provider.test"):
        await dane.lookup(resolver_for(dns), "example.test", "mail.example.test")
