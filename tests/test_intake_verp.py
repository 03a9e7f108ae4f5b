"""relay/intake/verp.py: return paths with an authenticated token, and the VERP step at MAIL."""

from __future__ import annotations

import asyncio
import re

import pytest

from relay.intake.verp import MAX_AGE_DAYS, VerpCodec, VerpError

KEY = b"k" * 32
TXN = "3f2a9c01d4e5b677"
NOW = 1_790_000_000.0


def codec(key: bytes = KEY) -> VerpCodec:
    return VerpCodec(key)


def test_round_trip_carries_sender_and_transaction():
    path = codec().return_path("NoReply@Example.com", TXN, "bounces.example.com", now=NOW)
    local, domain = path.split("@")
    assert domain == "bounces.example.com"
    assert len(local) <= 64  # RFC 5321 4.5.3.1.1
    assert re.fullmatch(r"noreply=example\.com=[a-z2-7]{28}", local)
    token = codec().verify(path, now=NOW)
    assert (token.sender, token.transaction_id) == ("noreply@example.com", TXN)


def test_survives_case_folding():
    path = codec().return_path("noreply@example.com", TXN, "bounces.example.com", now=NOW)
    assert codec().verify(path.upper(), now=NOW).transaction_id == TXN


@pytest.mark.parametrize("tamper", [
    lambda p: p.replace("noreply=", "noreplx="),                 # another sender
    lambda p: p[:30] + ("a" if p[30] != "a" else "b") + p[31:],    # one character of the token
    lambda p: p.split("@")[0][:-1] + "@" + p.split("@")[1],       # a truncated token
    lambda p: "someone=else.example=" + p.split("=", 2)[2],       # the token moved to another sender
])
def test_altered_return_paths_are_refused(tamper):
    path = codec().return_path("noreply@example.com", TXN, "bounces.example.com", now=NOW)
    with pytest.raises(VerpError):
        codec().verify(tamper(path), now=NOW)


def test_every_single_character_change_is_refused():
    path = codec().return_path("noreply@example.com", TXN, "bounces.example.com", now=NOW)
    local, domain = path.split("@")
    for i, char in enumerate(local):
        for other in "abcdefghijklmnopqrstuvwxyz234567=":
            if other == char:
                continue
            with pytest.raises(VerpError):
                codec().verify(local[:i] + other + local[i + 1:] + "@" + domain, now=NOW)


def test_forged_with_another_key_is_refused():
    forged = codec(b"x" * 32).return_path("noreply@example.com", TXN, "bounces.example.com", now=NOW)
    with pytest.raises(VerpError, match="forged or altered"):
        codec().verify(forged, now=NOW)


def test_old_return_paths_are_refused():
    path = codec().return_path("noreply@example.com", TXN, "bounces.example.com", now=NOW)
    assert codec().verify(path, now=NOW + MAX_AGE_DAYS * 86400).transaction_id == TXN
    with pytest.raises(VerpError, match="days old"):
        codec().verify(path, now=NOW + (MAX_AGE_DAYS + 1) * 86400)


def test_a_long_sender_leaves_only_the_token():
    sender = "notifications+" + "x" * 40 + "@mail.example.com"
    path = codec().return_path(sender, TXN, "bounces.example.com", now=NOW)
    local = path.split("@")[0]
    assert re.fullmatch(r"[a-z2-7]{28}", local)
    token = codec().verify(path, now=NOW)
    assert (token.sender, token.transaction_id) == ("", TXN)


def test_not_a_token():
    for address in ("postmaster@bounces.example.com", "a=b=c@bounces.example.com", "plain"):
        with pytest.raises(VerpError):
            codec().verify(address, now=NOW)


def _step(verp_domains: dict, key: bytes | None = KEY):
    from types import SimpleNamespace

    from relay.config import BouncesIn
    from relay.domains import DomainPolicies
    from relay.steps.verp import VerpStep

    domains = DomainPolicies.from_dict({d: {"verp": b} for d, b in verp_domains.items()})
    settings = SimpleNamespace(bounces_in=BouncesIn(domains=("bounces.example.com",), key=key or b""))
    return VerpStep(settings, SimpleNamespace(domains=domains))


def _txn(sender: str):
    from relay.pipeline import Session, Transaction
    return Transaction(session=Session("s", "127.0.0.1", 1), id=TXN, mail_from=sender)


def test_step_rewrites_only_configured_sender_domains():
    step = _step({"example.com": "bounces.example.com"})
    signed, other, null = _txn("noreply@example.com"), _txn("a@other.example"), _txn("")
    for txn in (signed, other, null):
        asyncio.run(step.on_mail(txn))
    assert signed.return_path.endswith("@bounces.example.com")
    assert codec().verify(signed.return_path).sender == "noreply@example.com"
    assert signed.mail_from == "noreply@example.com"  # events keep the sender
    assert other.return_path is None and null.return_path is None


def test_verp_without_key_is_a_config_problem():
    from types import SimpleNamespace

    from relay.config import BouncesIn
    from relay.domains import DomainPolicies
    from relay.steps.verp import verp_problems

    domains = DomainPolicies.from_dict({"example.com": {"verp": "bounces.example.com"}}, "domains.yaml")
    policies = SimpleNamespace(domains=domains)
    [p] = verp_problems(SimpleNamespace(bounces_in=None), policies)
    assert (p.file, p.key) == ("domains.yaml", "example.com.verp") and "key_file" in p.why
    [p] = verp_problems(SimpleNamespace(bounces_in=BouncesIn(domains=("other.example",), key=KEY)), policies)
    assert "not one of bounces_in.domains" in p.why
    assert verp_problems(SimpleNamespace(bounces_in=BouncesIn(domains=("bounces.example.com",), key=KEY)),
                         policies) == []


def test_a_utf8_sender_is_beside_the_token_only_when_the_local_part_fits_in_64_octets():
    # RFC 5321 4.5.3.1.1 counts octets: 18 "ñ" are 59 characters beside the token, but 77 octets of
    # UTF-8 (the length was counted in characters).
    path = codec().return_path("ñ" * 18 + "@example.com", TXN, "bounces.example.com", now=NOW)
    local = path.rpartition("@")[0]
    assert len(local.encode("utf-8")) <= 64 and re.fullmatch(r"[a-z2-7]{28}", local)
    assert codec().verify(path, now=NOW).transaction_id == TXN
    fits = codec().return_path("ñ" * 10 + "@example.com", TXN, "bounces.example.com", now=NOW)
    assert len(fits.rpartition("@")[0].encode("utf-8")) == 20 + 13 + 28
    assert codec().verify(fits, now=NOW).sender == "ñ" * 10 + "@example.com"
