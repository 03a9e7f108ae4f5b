"""The circuit breaker keyed by the refusing provider, through a running relay and `relay bounces`.

An outage at a hosting provider (Google Workspace, Microsoft 365, a hoster's shared MX) answering
"550 5.1.1" for valid users of many customer domains refuses a few addresses at each domain: the
domain breaker (`breaker:`) never trips, and every one was listed (review-12's design note). The
provider breaker (`provider_breaker:`) counts them under the provider: the registrable domain of
the MX host the relay talked to (MX delivery), or of a host the reply names (a smarthost relaying
a remote's words). A smarthost itself is never the provider.

Here, in MX mode, the loopback DNS server points the MX of several customer domains at one host,
mx.hoster.test (127.0.0.2), a fake upstream that answers 550 5.1.1 for their users.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from tests.support.funnel_e2e import bounces, send
from tests.support.upstream import GMAIL_NO_SUCH_USER, FakeUpstream, free_port

SCHEMA = json.loads((Path(__file__).parent.parent / "relay" / "schema" / "event.schema.json").read_text())
CUSTOMERS = [f"c{n}.test" for n in range(6)]
# What a smarthost that verifies recipients at the remote end (Postfix's reject_unverified_recipient)
# says: the remote host it asked is named in its words.
WRAPPED = ("550 5.1.1 <{rcpt}>: Recipient address rejected: undeliverable address: host "
           "aspmx.l.google.test[192.0.2.26] said: 550-5.1.1 The email account that you tried to reach does not "
           "exist. (in reply to RCPT TO command)")


def policies(tmp_path, breaker: str, provider_breaker: str) -> str:
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "suppression.yaml").write_text(
        "permanent: {unknown_recipient: {list_after: 1}}\n"
        f"breaker: {breaker}\n"
        f"provider_breaker: {provider_breaker}\n")
    return str(directory)


@pytest.fixture
def hoster(dns):
    """mx.hoster.test on 127.0.0.2, the MX of every customer domain; unknown users u0..u9."""
    server = FakeUpstream(hostname="mx.hoster.test", address="127.0.0.2", port=free_port()).start()
    for n in range(10):
        server.rcpt_replies[f"u{n}"] = GMAIL_NO_SUCH_USER
    dns.zone.add("mx.hoster.test", "A", "127.0.0.2")
    for domain in CUSTOMERS:
        dns.zone.add(domain, "MX", (10, "mx.hoster.test"))
    yield server
    server.stop()


@pytest.fixture
def mx_relay(dns, hoster, relay_factory, tmp_path):
    def start(breaker="{distinct_addresses: 10, within: 10m}",
              provider_breaker="{distinct_addresses: 3, within: 10m}"):
        upstream = {"mode": "mx", "host": None, "port": hoster.port, "mx_internal_networks": ["127.0.0.0/8"]}
        resolver = {"nameservers": [dns.nameserver], "timeout": 2}
        return relay_factory(0, upstream=upstream, resolver=resolver,
                             policies=policies(tmp_path, breaker, provider_breaker))
    return start


def valid(events):
    for event in events:
        jsonschema.validate(event, SCHEMA)
    return events


def held(relay, *argv):
    return json.loads(bounces(relay, "held", "--json", *argv).stdout)


def test_a_provider_refusing_users_of_many_domains_trips_its_breaker_and_the_operator_confirms(mx_relay, hoster):
    relay = mx_relay()
    # One unknown user at each of three customer domains: at the limit (3), all listed.
    for n in range(3):
        assert send(relay, [f"u{n}@c{n}.test"])[1][0] == 550
    assert [bounces(relay, "check", f"u{n}@c{n}.test").returncode for n in range(3)] == [1, 1, 1]
    # The fourth address the same provider refuses, at a fourth domain, trips the provider's breaker:
    # no domain has more than one address, so the domain breaker alone would have listed them all.
    assert send(relay, ["u3@c3.test"])[1][0] == 550
    found = valid(relay.events(wait_for=12))
    (warning,) = [e for e in found if e["kind"] == "warning"]
    assert warning["check"] == "breaker" and warning["result"] == "tripped"
    assert warning["provider"] == "hoster.test" and "domain" not in warning
    assert warning["held"] == ["u0@c0.test", "u1@c1.test", "u2@c2.test", "u3@c3.test"]
    assert "relay bounces confirm --provider hoster.test" in warning["text"]
    assert sorted(e["recipient"] for e in found if e["kind"] == "bounce_unlisted") == [
        "u0@c0.test", "u1@c1.test", "u2@c2.test"]
    (rejected,) = [e for e in found if e["kind"] == "rejected" and e["recipient"] == "u3@c3.test"]
    assert rejected["bounce_list"] == "held" and rejected["upstream"]["host"] == "mx.hoster.test"
    assert relay.server.metrics.counters[("relay_breaker_trips_total", ())] == 1
    assert [bounces(relay, "check", f"u{n}@c{n}.test").returncode for n in range(4)] == [0, 0, 0, 0]
    assert ("u2@c2.test: not listed, held by the provider hoster.test's circuit breaker: relay bounces held "
            "--provider hoster.test") in bounces(relay, "check", "u2@c2.test").stdout

    # Tripped: what the provider refuses next is held too, and still asked of it (never refused here).
    assert send(relay, ["u4@c4.test"])[1][0] == 550
    assert send(relay, ["u0@c0.test"])[1][0] == 550
    assert hoster.commands.count("RCPT u0@c0.test") == 2
    by_provider = held(relay, "--provider", "hoster.test")
    assert [h["address"] for h in by_provider] == [f"u{n}@c{n}.test" for n in range(5)]
    assert {(h["held_by"], h["provider"]) for h in by_provider} == {("provider", "hoster.test")}
    assert [h["address"] for h in held(relay, "c2.test")] == ["u2@c2.test"]  # a domain's, whichever breaker
    assert "provider hoster.test: 5 held" in bounces(relay, "held").stdout

    r = bounces(relay, "confirm", "--provider", "hoster.test", "--reason", "the hoster says they are gone")
    assert r.returncode == 0 and "provider hoster.test: 5 held listing(s) confirmed" in r.stdout
    assert held(relay) == []
    assert [bounces(relay, "check", f"u{n}@c{n}.test").returncode for n in range(5)] == [1] * 5
    code, text = send(relay, ["u1@c1.test"])[1]
    assert code == 550 and "bounce list" in text  # the relay refuses it itself now


def test_the_operator_discards_a_providers_held_listings_and_it_counts_afresh(mx_relay, hoster):
    relay = mx_relay()
    for n in range(4):
        send(relay, [f"u{n}@c{n}.test"])
    relay.events(wait_for=10)
    assert bounces(relay, "discard", "u1@c1.test", "--reason", "outage").returncode == 0
    r = bounces(relay, "discard", "--provider", "hoster.test", "--reason", "the hoster's outage, users are fine")
    assert r.returncode == 0 and "3 held listing(s) discarded" in r.stdout
    assert bounces(relay, "discard", "--provider", "hoster.test", "--reason", "again").returncode == 1
    assert [bounces(relay, "check", f"u{n}@c{n}.test").returncode for n in range(4)] == [0] * 4
    # Nothing held any more: the provider's hits are cleared; the next unknown lists as usual.
    send(relay, ["u5@c5.test"])
    assert bounces(relay, "check", "u5@c5.test").returncode == 1


def test_the_domain_breaker_still_trips_for_one_domain(mx_relay, hoster):
    relay = mx_relay(breaker="{distinct_addresses: 2, within: 10m}",
                     provider_breaker="{distinct_addresses: 5, within: 10m}")
    send(relay, ["u0@c0.test", "u1@c0.test"])
    send(relay, ["u2@c0.test"])
    found = valid(relay.events(wait_for=8))
    (warning,) = [e for e in found if e["kind"] == "warning"]
    assert warning["domain"] == "c0.test" and "provider" not in warning
    assert warning["held"] == ["u0@c0.test", "u1@c0.test", "u2@c0.test"]
    assert {h["held_by"] for h in held(relay, "c0.test")} == {"domain"}
    assert bounces(relay, "confirm", "c0.test", "--reason", "gone").returncode == 0
    assert [bounces(relay, "check", f"u{n}@c0.test").returncode for n in range(3)] == [1, 1, 1]


def test_off_turns_the_provider_breaker_off(mx_relay):
    relay = mx_relay(provider_breaker="off")
    for n in range(5):
        send(relay, [f"u{n}@c{n}.test"])
    assert [bounces(relay, "check", f"u{n}@c{n}.test").returncode for n in range(5)] == [1] * 5
    assert held(relay) == []


@pytest.fixture
def smarthost_relay(upstream, relay_factory, tmp_path):
    for n in range(6):
        upstream.rcpt_replies[f"u{n}"] = GMAIL_NO_SUCH_USER  # names no host
        upstream.rcpt_replies[f"w{n}"] = WRAPPED.format(rcpt=f"w{n}@d{n}.test")
    return relay_factory(upstream.port, policies=policies(tmp_path, "{distinct_addresses: 10, within: 10m}",
                                                          "{distinct_addresses: 2, within: 10m}"))


def test_a_smarthost_is_never_the_provider_but_a_host_its_reply_names_is(smarthost_relay):
    relay = smarthost_relay
    # The smarthost refuses users of five domains in its own words: it is no provider of theirs.
    for n in range(5):
        send(relay, [f"u{n}@d{n}.test"])
    assert [bounces(relay, "check", f"u{n}@d{n}.test").returncode for n in range(5)] == [1] * 5
    # Its replies naming the remote host that refused ("host aspmx.l.google.test[...] said:") count
    # under that host's provider, google.test: the third trips it.
    for n in range(3):
        send(relay, [f"w{n}@d{n}.test"])
    found = valid(relay.events(wait_for=18))
    (warning,) = [e for e in found if e["kind"] == "warning"]
    assert warning["provider"] == "google.test"
    assert warning["held"] == ["w0@d0.test", "w1@d1.test", "w2@d2.test"]
    assert [h["address"] for h in held(relay, "--provider", "google.test")] == [
        "w0@d0.test", "w1@d1.test", "w2@d2.test"]


def test_confirm_needs_one_target_and_a_providers_name(smarthost_relay):
    def run(*argv):
        return subprocess.run([sys.executable, "-m", "relay", "bounces", *argv, "-c",
                               str(smarthost_relay.config_path)], capture_output=True, text=True, timeout=60)

    r = run("confirm", "--reason", "x")
    assert r.returncode == 2 and "give one of DOMAIN|ADDR or --provider NAME" in r.stderr
    r = run("confirm", "c0.test", "--provider", "hoster.test", "--reason", "x")
    assert r.returncode == 2 and "give one of" in r.stderr
    r = run("discard", "--provider", "not a name!", "--reason", "x")
    assert r.returncode == 2 and "not a provider's name" in r.stderr and "Traceback" not in r.stderr
