"""Domains that do not exist go on the bounce list as `@domain` entries, through a running relay.

In smarthost mode the evidence is the upstream's own words: Postfix says "Host or domain
name not found. Name service error for name=... type=A: Host not found" for NXDOMAIN and
"..., try again" for SERVFAIL and timeouts. Only the first, seen again after a delay, lists
the domain; a DNS glitch never does.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jsonschema
import pytest

from tests.support.funnel_e2e import bounces, send

SCHEMA = json.loads((Path(__file__).parent.parent / "relay" / "schema" / "event.schema.json").read_text())
NXDOMAIN = ("550 5.1.2 <{rcpt}>: Host or domain name not found. Name service error for name=nx.test type=A: "
            "Host not found")
SERVFAIL = ("550 5.1.2 <{rcpt}>: Host or domain name not found. Name service error for name=glitch.test type=MX: "
            "Host not found, try again")
# Issue #8's listing audit: a server that only does not relay for a domain (in smarthost mode the
# upstream's own configuration), and a missing mailbox whose text quotes a host name with "nxdomain"
# in it, say nothing of whether the recipient's domain exists.
NOT_OUR_DOMAIN = "550 5.4.1 <{rcpt}>: Recipient domain not found in our accepted domains, relay not permitted"
UNKNOWN_NAMING_A_HOST = "550 5.1.1 <{rcpt}>: User unknown; nxdomain.mx.test is not a domain we serve"
DELAY = 1.2  # a little more than the policy's seen_again_after below


@pytest.fixture
def relay(upstream, relay_factory, tmp_path):
    policies = tmp_path / "policies"
    policies.mkdir()
    shipped = (Path(__file__).parent.parent / "policies" / "suppression.yaml").read_text()
    # The shipped rules, with a delay a test can wait for instead of the shipped hour.
    (policies / "suppression.yaml").write_text(shipped.replace("seen_again_after: 1h", "seen_again_after: 1s"))
    for n in range(4):
        upstream.rcpt_replies[f"n{n}"] = NXDOMAIN.format(rcpt=f"n{n}@nx.test")
        upstream.rcpt_replies[f"g{n}"] = SERVFAIL.format(rcpt=f"g{n}@glitch.test")
    upstream.rcpt_replies["t0"] = "450 4.1.2 <t0@temp.test>: Recipient address rejected: Domain not found"
    for n in range(3):
        upstream.rcpt_replies[f"r{n}"] = NOT_OUR_DOMAIN.format(rcpt=f"r{n}@notours.test")
        upstream.rcpt_replies[f"u{n}"] = UNKNOWN_NAMING_A_HOST.format(rcpt=f"u{n}@served.test")
    return relay_factory(upstream.port, policies=str(policies))


def listed_keys(relay):
    return [e["address"] for e in json.loads(bounces(relay, "list", "--json").stdout)]


def send_apart(relay, *rounds: list[str]) -> None:
    """One message to each round's recipients, DELAY apart: every sighting after the first counts
    as seen again (the policy's seen_again_after)."""
    for n, rcpts in enumerate(rounds):
        if n:
            time.sleep(DELAY)
        send(relay, rcpts)


def test_a_domain_that_does_not_exist_is_listed_after_the_second_sighting_and_refused_at_rcpt(relay, upstream):
    send(relay, ["n0@nx.test"])
    send(relay, ["n1@nx.test"])  # seen again, but too soon: still one domain glitch away from proof
    assert listed_keys(relay) == []
    time.sleep(DELAY)
    send(relay, ["n2@nx.test"])
    assert listed_keys(relay) == ["@nx.test"]
    found = relay.events(wait_for=4)
    for event in found:
        jsonschema.validate(event, SCHEMA)
    (listing,) = [e for e in found if e["kind"] == "bounce_listed"]
    assert listing["recipient"] == "@nx.test" and listing["entry"]["expires_at"] is not None

    asked = len(upstream.commands)
    code, text = send(relay, ["someone.else@NX.test"])[1]
    assert code == 550 and text.startswith("550-5.1.2 <someone.else@NX.test>: the domain nx.test is on this relay")
    assert len([c for c in upstream.commands[asked:] if c.startswith("RCPT")]) == 0  # refused here
    suppressed = [e for e in relay.events(wait_for=5) if e["kind"] == "suppressed"]
    assert suppressed[0]["entry"]["address"] == "@nx.test"

    assert "@nx.test" in bounces(relay, "show", "@nx.test").stdout
    assert bounces(relay, "check", "x@nx.test").returncode == 1
    r = bounces(relay, "remove", "@nx.test", "--reason", "the domain was registered again")
    assert r.returncode == 0
    assert send(relay, ["ok@nx.test"])[1][0] == 250


def test_a_dns_glitch_or_a_deferral_never_lists_a_domain(relay):
    send_apart(relay, ["g0@glitch.test", "t0@temp.test"], ["g1@glitch.test", "t0@temp.test"],
               ["g2@glitch.test", "t0@temp.test"])
    assert not any(key.startswith("@") for key in listed_keys(relay))
    assert send(relay, ["ok@glitch.test"])[1][0] == 250


def test_the_operator_can_list_a_domain(relay):
    assert bounces(relay, "add", "@gone.test", "--reason", "the company closed").returncode == 0
    code, text = send(relay, ["a@gone.test"])[1]
    assert code == 550 and "the domain gone.test" in text
    assert "@gone.test" in bounces(relay, "list").stdout


def test_a_relay_refusal_or_a_missing_mailbox_never_lists_a_domain(relay):
    send_apart(relay, ["r0@notours.test", "u0@served.test"], ["r1@notours.test", "u1@served.test"],
               ["r2@notours.test", "u2@served.test"])
    keys = listed_keys(relay)
    assert not any(key.startswith("@") for key in keys), keys
    # The missing mailboxes themselves are listed; the relay refusals list no one.
    assert sorted(keys) == ["u0@served.test", "u1@served.test", "u2@served.test"]
    assert send(relay, ["ok@notours.test"])[1][0] == 250
    assert send(relay, ["ok@served.test"])[1][0] == 250
