"""The bounce list's circuit breaker, through a running relay and the `relay bounces` command.

An outage at a large provider can answer "550 5.1.1 no such user" for valid users: when
one domain makes more than `breaker.distinct_addresses` addresses unknown within
`breaker.within`, the relay holds those listings for the operator instead of making them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from tests.support.funnel_e2e import bounces, send
from tests.support.upstream import GMAIL_NO_SUCH_USER

SCHEMA = json.loads((Path(__file__).parent.parent / "relay" / "schema" / "event.schema.json").read_text())


@pytest.fixture
def relay(upstream, relay_factory, tmp_path):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "suppression.yaml").write_text(
        "permanent: {unknown_recipient: {list_after: 1}}\n"
        "breaker: {distinct_addresses: 2, within: 10m}\n")
    for n in range(6):
        upstream.rcpt_replies[f"u{n}"] = GMAIL_NO_SUCH_USER
    return relay_factory(upstream.port, policies=str(policies))


def events(relay, n):
    found = relay.events(wait_for=n)
    for event in found:
        jsonschema.validate(event, SCHEMA)
    return found


def test_the_breaker_trips_holds_and_the_operator_confirms(relay, upstream):
    send(relay, ["u0@gmail.test", "u1@gmail.test"])
    assert bounces(relay, "check", "u0@gmail.test").returncode == 1  # listed: under the threshold
    send(relay, ["u2@gmail.test"])  # the third distinct address within the window trips it
    found = events(relay, 8)
    (warning,) = [e for e in found if e["kind"] == "warning"]
    assert warning["check"] == "breaker" and warning["result"] == "tripped" and warning["domain"] == "gmail.test"
    assert warning["held"] == ["u0@gmail.test", "u1@gmail.test", "u2@gmail.test"]
    unlisted = [e["recipient"] for e in found if e["kind"] == "bounce_unlisted"]
    assert unlisted == ["u0@gmail.test", "u1@gmail.test"]
    (rejected,) = [e for e in found if e["kind"] == "rejected" and e["recipient"] == "u2@gmail.test"]
    assert rejected["bounce_list"] == "held"
    assert relay.server.metrics.counters[("relay_breaker_trips_total", ())] == 1
    for n in range(3):
        assert bounces(relay, "check", f"u{n}@gmail.test").returncode == 0  # nobody listed
    # ... and check says why (review-17 F5: it said only "not listed").
    assert "u0@gmail.test: not listed, held by the circuit breaker of gmail.test: relay bounces held gmail.test" \
        in bounces(relay, "check", "u0@gmail.test").stdout
    assert "held by the circuit breaker of gmail.test" in bounces(relay, "show", "u1@gmail.test").stderr

    # Tripped: further unknowns at the domain are counted and held, and still asked upstream.
    send(relay, ["u3@gmail.test", "u0@gmail.test"])
    assert [c for c in upstream.commands if c == "RCPT u0@gmail.test"] == ["RCPT u0@gmail.test"] * 2
    held = json.loads(bounces(relay, "held", "--json").stdout)
    assert [h["address"] for h in held] == [f"u{n}@gmail.test" for n in range(4)]
    assert {h["domain"] for h in held} == {"gmail.test"}
    assert "gmail.test: 4 held" in bounces(relay, "held").stdout

    r = bounces(relay, "confirm", "gmail.test", "--reason", "checked with the provider: they are gone")
    assert r.returncode == 0 and "4 held listing(s) confirmed" in r.stdout
    assert json.loads(bounces(relay, "held", "--json").stdout) == []
    listed = [e for e in relay.events(wait_for=14) if e["kind"] == "bounce_listed" and e["stage"] == "operator"]
    assert sorted(e["recipient"] for e in listed) == [f"u{n}@gmail.test" for n in range(4)]
    # Confirmed: the relay refuses them itself now, with no reload.
    code, text = send(relay, ["u0@gmail.test"])[1]
    assert code == 550 and "bounce list" in text


def test_the_operator_discards_held_listings(relay, upstream):
    send(relay, ["u0@gmail.test", "u1@gmail.test", "u2@gmail.test"])
    events(relay, 6)
    assert bounces(relay, "discard", "u1@gmail.test", "--reason", "outage").returncode == 0
    r = bounces(relay, "discard", "@gmail.test", "--reason", "provider outage, users are fine")
    assert r.returncode == 0 and "2 held listing(s) discarded" in r.stdout
    assert bounces(relay, "discard", "gmail.test", "--reason", "again").returncode == 1  # nothing left
    assert json.loads(bounces(relay, "held", "--json").stdout) == []
    for n in range(3):
        assert bounces(relay, "check", f"u{n}@gmail.test").returncode == 0
    # Discarded and cleared: the domain counts afresh; one more unknown lists as usual.
    send(relay, ["u5@gmail.test"])
    assert bounces(relay, "check", "u5@gmail.test").returncode == 1


def test_confirm_and_discard_refuse_what_is_not_a_domain_or_address(relay):
    r = subprocess.run([sys.executable, "-m", "relay", "bounces", "confirm", "not a domain!", "--reason", "x",
                        "-c", str(relay.config_path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "neither an address nor a domain" in r.stderr and "Traceback" not in r.stderr
