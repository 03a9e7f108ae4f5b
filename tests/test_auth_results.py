"""Authentication-Results for mail that arrives signed: dkimpy signs, keys live in
the loopback DNS server, our step verifies through the relay's resolver."""

from __future__ import annotations

import base64
from pathlib import Path

import dkim as dkimpy
import pytest
from cryptography.hazmat.primitives import serialization

from relay import dkim as ourdkim
from relay.authres import (MethodResult, authserv_id_of, forged_indexes, format_header, strip_forged,
                           verify_dkim)
from relay.config import Endpoint, Resolver as ResolverSettings, Settings
from relay.decision import Verdict
from relay.dns import Resolver
from relay.domains import DomainPolicies
from relay.pipeline import Message, Session, Transaction
from relay.policies import Policies
from relay.steps.auth_results import AuthResultsStep

HOST = "relay.example.net"


@pytest.fixture(scope="module")
def rsa_key():
    return ourdkim.generate_key("rsa", 2048)


@pytest.fixture(scope="module")
def ed_key():
    return ourdkim.generate_key("ed25519")


def pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def ed_seed_b64(key) -> bytes:
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    return base64.b64encode(raw)


MESSAGE = (b"From: Alice <alice@example.com>\r\n"
           b"To: bob@example.org\r\n"
           b"Subject: quarterly report\r\n"
           b"Date: Thu, 26 Nov 2026 18:00:00 +0000\r\n"
           b"Message-ID: <r1@example.com>\r\n"
           b"\r\n"
           b"Numbers attached.\r\n")


def signed(message: bytes, key, selector=b"s1", domain=b"example.com") -> bytes:
    sig = dkimpy.sign(message, selector, domain, pem(key), include_headers=[b"from", b"to", b"subject"])
    return sig + message


def publish(dns, key, selector="s1", domain="example.com") -> None:
    dns.zone.add(f"{selector}._domainkey.{domain}", "TXT", ourdkim.public_key_record(key))


def make_step(dns, **kw) -> AuthResultsStep:
    settings = Settings(source=Path("c.yaml"), hostname=HOST,
                        resolver=ResolverSettings((Endpoint("127.0.0.1", dns.port),), timeout=2.0))
    policies = Policies(directory=Path("."), classifier=None, suppression=None,
                        domains=DomainPolicies.from_dict({}))
    return AuthResultsStep(settings, policies, Resolver.from_settings(settings), **kw)


def txn(mail_from="alice@example.com", peer_ip="192.0.2.10", trusted=True, helo="mta.example.com"):
    session = Session(id="s1", peer_ip=peer_ip, peer_port=40000, helo=helo, trusted_network=trusted)
    return Transaction(session=session, id="t1", mail_from=mail_from)


def added_header(message: Message) -> str | None:
    out = message.assembled()
    if not out.startswith(b"Authentication-Results:"):
        return None
    fields = out.split(b"\r\n")
    lines = [fields[0]]
    for line in fields[1:]:
        if line[:1] in (b" ", b"\t"):
            lines.append(line)
        else:
            break
    return " ".join(l.decode().strip() for l in lines)


async def run(step, message_bytes: bytes, t=None) -> tuple[Message, Transaction]:
    t = t or txn()
    message = Message(message_bytes)
    decision = await step.on_data(t, message)
    assert decision.verdict is Verdict.CONTINUE
    return message, t


async def test_valid_rsa_signature_passes(dns, rsa_key):
    publish(dns, rsa_key)
    step = make_step(dns)
    message, t = await run(step, signed(MESSAGE, rsa_key))
    header = added_header(message)
    assert header.startswith(f"Authentication-Results: {HOST}; dkim=pass header.d=example.com header.s=s1 "
                             f"header.a=rsa-sha256 header.b=")
    assert t.notes["auth_results"]["results"][0]["result"] == "pass"
    assert ("s1._domainkey.example.com.", "TXT") in dns.zone.queries
    # The original bytes follow, untouched.
    assert message.assembled().endswith(message.original)


async def test_tampered_body_fails(dns, rsa_key):
    publish(dns, rsa_key)
    data = signed(MESSAGE, rsa_key).replace(b"Numbers attached.", b"Numbers changed.")
    message, _ = await run(make_step(dns), data)
    assert 'dkim=fail reason="body hash mismatch" header.d=example.com' in added_header(message)


async def test_tampered_signed_header_fails(dns, rsa_key):
    publish(dns, rsa_key)
    data = signed(MESSAGE, rsa_key).replace(b"quarterly report", b"urgent invoice")
    message, _ = await run(make_step(dns), data)
    assert 'dkim=fail reason="signature did not verify"' in added_header(message)


async def test_wrong_published_key_fails(dns, rsa_key):
    publish(dns, ourdkim.generate_key("rsa", 2048))
    message, _ = await run(make_step(dns), signed(MESSAGE, rsa_key))
    assert "dkim=fail" in added_header(message)


async def test_missing_key_is_permerror(dns, rsa_key):
    message, _ = await run(make_step(dns), signed(MESSAGE, rsa_key))
    assert 'dkim=permerror reason="no key for signature at s1._domainkey.example.com"' in added_header(message)


async def test_key_lookup_trouble_is_temperror(dns, rsa_key):
    dns.zone.servfail.add("s1._domainkey.example.com")
    message, _ = await run(make_step(dns), signed(MESSAGE, rsa_key))
    assert "dkim=temperror" in added_header(message)


async def test_two_signatures_rsa_and_ed25519(dns, rsa_key, ed_key):
    publish(dns, rsa_key, "s1")
    publish(dns, ed_key, "e1")
    once = signed(MESSAGE, rsa_key, b"s1")
    sig = dkimpy.sign(once, b"e1", b"example.com", ed_seed_b64(ed_key), signature_algorithm=b"ed25519-sha256",
                      include_headers=[b"from", b"to", b"subject"])
    message, t = await run(make_step(dns), sig + once)
    header = added_header(message)
    assert "dkim=pass header.d=example.com header.s=e1 header.a=ed25519-sha256" in header
    assert "dkim=pass header.d=example.com header.s=s1 header.a=rsa-sha256" in header
    assert [r["header.s"] for r in t.notes["auth_results"]["results"]] == ["e1", "s1"]


async def test_malformed_signature_is_neutral(dns):
    data = b"DKIM-Signature: this is not a tag list\r\n" + MESSAGE
    message, _ = await run(make_step(dns), data)
    assert "dkim=neutral" in added_header(message)


async def test_nothing_to_verify_adds_no_header(dns):
    message, t = await run(make_step(dns), MESSAGE)
    assert message.assembled() == MESSAGE
    assert t.notes["auth_results"]["results"] == []
    assert dns.zone.queries == []


FORGED = (b"Authentication-Results: relay.example.net; dkim=pass header.d=bank.example\r\n"
          b"Authentication-Results: (sneaky) RELAY.Example.NET. 1;\r\n\tspf=pass smtp.mailfrom=bank.example\r\n"
          b"Authentication-Results: mx.google.com; dkim=pass header.d=example.com\r\n"
          b"Authentication-Results: relay.example.net.evil; dkim=pass\r\n")


async def test_forged_results_with_our_authserv_id_are_removed(dns):
    message, t = await run(make_step(dns), FORGED + MESSAGE)
    assert message.removed_headers == {0, 1}
    names = message.headers()
    assert names[2][1].startswith("mx.google.com;") and names[3][1].startswith("relay.example.net.evil;")
    assert t.notes["auth_results"]["removed_forged"] == 2
    # Nothing added (nothing was verified), and the forged fields are gone from what goes upstream.
    whole = FORGED + MESSAGE
    block = message.header_block
    assert message.assembled() == strip_forged(block, "relay.example.net") + whole[len(block):]


def test_strip_forged_keeps_other_fields_byte_for_byte():
    block = Message(FORGED + MESSAGE).header_block
    out = strip_forged(block, "relay.example.net")
    assert out == (b"Authentication-Results: mx.google.com; dkim=pass header.d=example.com\r\n"
                   b"Authentication-Results: relay.example.net.evil; dkim=pass\r\n") + MESSAGE.split(b"\r\n\r\n")[0] + b"\r\n"
    assert strip_forged(block, "other.example") == block


def test_authserv_id_parsing():
    assert authserv_id_of("relay.example.net; none") == "relay.example.net"
    assert authserv_id_of(" (comment (nested)) Relay.Example.Net 1; dkim=pass") == "relay.example.net"
    assert authserv_id_of('"relay.example.net"; spf=pass') == "relay.example.net"
    assert authserv_id_of("relay.example.net;dkim=pass") == "relay.example.net"
    assert authserv_id_of("") is None
    headers = [("Subject", "relay.example.net"), ("Authentication-Results", "relay.example.net; none")]
    assert forged_indexes(headers, "Relay.Example.Net.") == [1]


def test_format_header_quotes_what_is_not_a_token():
    h = format_header("relay.example.net", [
        MethodResult("dkim", "pass", None, (("header.d", "example.com"), ("header.b", "ab/c+d=e"))),
        MethodResult("spf", "fail", 'a "quoted" reason', (("smtp.mailfrom", "alice@example.com"),)),
    ])
    assert h == (b"Authentication-Results: relay.example.net;\r\n"
                 b'\tdkim=pass header.d=example.com header.b="ab/c+d=e";\r\n'
                 b'\tspf=fail reason="a \\"quoted\\" reason" smtp.mailfrom=alice@example.com\r\n')


async def test_client_spf_for_untrusted_client(dns, rsa_key):
    dns.zone.add("example.com", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    step = make_step(dns, check_client_spf=True)
    message, t = await run(step, MESSAGE, txn(trusted=False))
    assert added_header(message) == f"Authentication-Results: {HOST}; spf=pass smtp.mailfrom=example.com"
    message, t = await run(step, MESSAGE, txn(trusted=False, peer_ip="198.51.100.1"))
    assert added_header(message) == f"Authentication-Results: {HOST}; spf=fail smtp.mailfrom=example.com"
    await step.close()


async def test_client_spf_with_signature_in_one_header(dns, rsa_key):
    publish(dns, rsa_key)
    dns.zone.add("example.com", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    step = make_step(dns, check_client_spf=True)
    message, _ = await run(step, signed(MESSAGE, rsa_key), txn(trusted=False))
    header = added_header(message)
    assert header.startswith(f"Authentication-Results: {HOST}; dkim=pass ")
    assert header.endswith("; spf=pass smtp.mailfrom=example.com")
    await step.close()


async def test_client_spf_null_sender_checks_helo(dns):
    dns.zone.add("mta.example.com", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    step = make_step(dns, check_client_spf=True)
    message, _ = await run(step, MESSAGE, txn(mail_from="<>", trusted=False))
    assert added_header(message) == f"Authentication-Results: {HOST}; spf=pass smtp.helo=mta.example.com"
    await step.close()


async def test_client_spf_temperror_is_reported(dns):
    dns.zone.servfail.add("example.com")
    step = make_step(dns, check_client_spf=True)
    message, _ = await run(step, MESSAGE, txn(trusted=False))
    assert added_header(message).startswith(f"Authentication-Results: {HOST}; spf=temperror reason=")
    await step.close()


async def test_client_spf_skipped_for_trusted_clients_and_by_default(dns):
    dns.zone.add("example.com", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    trusted_step = make_step(dns, check_client_spf=True)
    message, _ = await run(trusted_step, MESSAGE, txn(trusted=True))
    assert added_header(message) is None
    authenticated = txn(trusted=False)
    authenticated.session.auth_user = "app"
    message, _ = await run(trusted_step, MESSAGE, authenticated)
    assert added_header(message) is None
    default_step = make_step(dns)
    message, _ = await run(default_step, MESSAGE, txn(trusted=False))
    assert added_header(message) is None
    assert dns.zone.queries == []
    await trusted_step.close()


async def test_verify_dkim_directly(dns, rsa_key):
    publish(dns, rsa_key)
    settings_resolver = Resolver((Endpoint("127.0.0.1", dns.port),), timeout=2.0)
    results = await verify_dkim(signed(MESSAGE, rsa_key), settings_resolver)
    assert [r.result for r in results] == ["pass"]
    assert await verify_dkim(MESSAGE, settings_resolver) == []


async def test_signature_by_our_own_signer_passes(dns, rsa_key, ed_key):
    # Mail that went through another relay of ours (or was re-injected) carries our signatures.
    publish(dns, rsa_key, "s1")
    publish(dns, ed_key, "e1")
    data = MESSAGE
    for selector, key in (("s1", rsa_key), ("e1", ed_key)):
        data = ourdkim.sign(data, ourdkim.DkimKey(selector=selector, private_key=key), "example.com") + data
    message, t = await run(make_step(dns), data)
    assert [(r["header.s"], r["result"]) for r in t.notes["auth_results"]["results"]] == [("e1", "pass"),
                                                                                        ("s1", "pass")]


class _CountedText(str):
    """A str that counts the characters read from it one at a time (the authserv-id scanner's steps)."""

    reads = 0

    def __getitem__(self, key):
        type(self).reads += 1
        return str.__getitem__(self, key)


@pytest.mark.parametrize("start", ["(", '"', " "], ids=["comment", "quoted", "spaces"])
def test_a_long_authentication_results_is_read_only_as_far_as_its_id(start):
    # The authserv-id scanner walked the whole value in Python, on the event loop: 1 MB of comment
    # held it 230 ms (measured through a running relay), 30 MB about 7 s. Now it reads a bounded
    # window, and a field whose id does not end in it is removed like a forgery of ours (RFC 8601 5).
    _CountedText.reads = 0
    value = _CountedText(start + "a" * 200_000 + ") relay.example.net; dkim=pass")
    headers = [("Authentication-Results", value), ("Authentication-Results", "mx.google.com; none")]
    assert forged_indexes(headers, "relay.example.net") == [0]
    assert _CountedText.reads < 5_000
    block = b"Authentication-Results: " + start.encode() + b"a" * 200_000 + b"\r\nSubject: s\r\n"
    assert strip_forged(block, "relay.example.net") == b"Subject: s\r\n"


async def test_only_the_first_signatures_are_read(dns, monkeypatch):
    # RFC 6376 6.1: a verifier may limit the signatures it checks; the old code still parsed every
    # one of them on the event loop first (10,000 signatures held it 124 ms).
    import relay.authres as authres

    parsed = []
    real = authres.parse_tag_value
    monkeypatch.setattr(authres, "parse_tag_value", lambda value: parsed.append(1) or real(value))
    data = b"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=nokey; h=from; bh=x; b=abc\r\n" * 10_000 + MESSAGE
    await run(make_step(dns), data)
    assert len(parsed) == authres.MAX_SIGNATURES
