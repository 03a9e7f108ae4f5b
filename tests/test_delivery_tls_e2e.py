"""Outbound TLS policy end to end in mx mode, over real sockets: the loopback DNS server publishes MX,
A, `_mta-sts` TXT and TLSA records (a signed zone sets the AD bit), a loopback HTTPS server serves the
MTA-STS policies, and the MX hosts on 127.0.0.2 / 127.0.0.3 present certificates from a test CA or
self-signed ones. An unverifiable peer is refused with 451 4.7.5 and an event; a good one gets the mail."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jsonschema
import pytest

from tests.support.https_server import policy_text
from tests.support.smtp_client import RawSMTP, send_message
from tests.support.tls import make_cert, server_context
from tests.support.upstream import FakeUpstream, free_port

SCHEMA = json.loads((Path(__file__).parent.parent / "relay" / "schema" / "event.schema.json").read_text())
BODY = b"From: a@sender.test\r\nTo: b@sts.test\r\nSubject: hello\r\nMessage-ID: <m1@sender.test>\r\n\r\nHi.\r\n"


@pytest.fixture
def mx_port():
    return free_port(("127.0.0.2", "127.0.0.3"))


@pytest.fixture
def mx_hosts(mx_port):
    """mx_host(name, address, context): an MX host on `address` offering STARTTLS with `context`."""
    started = []

    def start(name, address, context):
        server = FakeUpstream(hostname=name, address=address, port=mx_port, tls_context=context).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def tls_relay(dns, https, ca, mx_port, relay_factory):
    def start(**overrides):
        upstream = {"mode": "mx", "host": None, "port": mx_port, "starttls": "opportunistic",
                    "ca_file": str(ca.ca_path), "mta_sts_port": https.port, "mx_internal_networks": ["127.0.0.0/8"],
                    **overrides.pop("upstream", {})}
        return relay_factory(0, upstream=upstream, resolver={"nameservers": [dns.nameserver], "timeout": 2},
                             **overrides)
    return start


def valid(event: dict) -> dict:
    jsonschema.validate(event, SCHEMA)
    return event


def sts_domain(dns, https, ca, domain="sts.test", mode="enforce", mx=("mx.sts.test",), hosts=None):
    for i, (name, address) in enumerate(hosts or [("mx.sts.test", "127.0.0.2")]):
        dns.zone.add(domain, "MX", (10 + i, name))
        dns.zone.add(name, "A", address)
    dns.zone.add(f"_mta-sts.{domain}", "TXT", "v=STSv1; id=20261129;")
    dns.zone.add(f"mta-sts.{domain}", "A", "127.0.0.1")
    https.serve(f"mta-sts.{domain}", policy_text(mode, *mx), ca.issue(f"mta-sts.{domain}").context())


def deliver(relay, rcpt):
    with RawSMTP(relay.host, relay.port) as c:
        assert c.cmd("EHLO client.test")[0] == 250
        return send_message(c, "a@sender.test", [rcpt], BODY)


def events_of(relay, n=1):
    return [valid(e) for e in relay.events(wait_for=n)]


def test_mta_sts_enforce_delivers_over_a_verified_session(tls_relay, mx_hosts, dns, https, ca):
    sts_domain(dns, https, ca)
    mx = mx_hosts("mx.sts.test", "127.0.0.2", ca.issue("mx.sts.test").context())
    relay = tls_relay()
    assert [r[0] for r in deliver(relay, "b@sts.test")] == [250, 250, 354, 250]
    assert mx.wait_for_messages(1)[0].rcpt_tos == ["b@sts.test"]
    # The provider's own refusal over the same policy: the event names the session and the policy.
    code, _ = deliver(relay, "nosuchuser@sts.test")[1]
    assert code == 550
    (event,) = [e for e in events_of(relay) if e["kind"] == "rejected"]
    up = event["upstream"]
    assert (up["host"], up["ip"], up["tls"], up["tls_policy"]) == ("mx.sts.test", "127.0.0.2", True, "mta-sts")
    assert up["tls_protocol"].startswith("TLSv1.") and up["tls_cipher"]
    # Cached by id (RFC 8461 5.1): one fetch for both messages.
    assert https.requests == [("mta-sts.sts.test", "/.well-known/mta-sts.txt")]


def test_mta_sts_enforce_refuses_an_unverifiable_mx_with_451_and_an_event(tls_relay, mx_hosts, dns, https, ca,
                                                                           tmp_path):
    sts_domain(dns, https, ca)
    mx = mx_hosts("mx.sts.test", "127.0.0.2", server_context(*make_cert(tmp_path, "mx.sts.test")))  # self-signed
    relay = tls_relay()
    with RawSMTP(relay.host, relay.port) as c:
        assert c.cmd("EHLO client.test")[0] == 250
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<b@sts.test>")
        c.cmd("QUIT")
    assert code == 451
    assert text.startswith("451 4.7.5 TLS policy mta-sts for sts.test: MX host mx.sts.test[127.0.0.2]: "
                           "the certificate (subject CN=mx.sts.test"), text
    assert "does not verify for mx.sts.test" in text
    assert mx.messages == []
    (event,) = events_of(relay)
    assert event["kind"] == "deferred" and event["recipient"] == "b@sts.test"
    assert event["reply"]["text"] == text and event["reply"]["source"] == "relay"
    c = event["classification"]
    assert (c["rule"], c["scope"], c["permanent"]) == ("relay:tls-mta-sts", "relay", False)
    assert "bounce_list" not in event
    up = event["upstream"]  # the host refused, and the session it offered
    assert (up["host"], up["ip"], up["tls_policy"], up["tls"]) == ("mx.sts.test", "127.0.0.2", "mta-sts", True)
    assert up["tls_protocol"].startswith("TLSv1.") and up["tls_cipher"]


def test_mta_sts_enforce_skips_an_mx_the_policy_does_not_list(tls_relay, mx_hosts, dns, https, ca):
    # RFC 8461 4.1: an MX host that matches no pattern is not used; the next one is.
    sts_domain(dns, https, ca, mx=("*.mail.sts.test",),
               hosts=[("rogue.sts.test", "127.0.0.3"), ("in.mail.sts.test", "127.0.0.2")])
    rogue = mx_hosts("rogue.sts.test", "127.0.0.3", ca.issue("rogue.sts.test").context())
    good = mx_hosts("in.mail.sts.test", "127.0.0.2", ca.issue("in.mail.sts.test").context())
    relay = tls_relay()
    assert [r[0] for r in deliver(relay, "b@sts.test")] == [250, 250, 354, 250]
    assert good.wait_for_messages(1)[0].rcpt_tos == ["b@sts.test"]
    assert rogue.connections == 0


def test_mta_sts_enforce_with_no_listed_mx_is_a_451_naming_the_policy(tls_relay, mx_hosts, dns, https, ca):
    sts_domain(dns, https, ca, mx=("mx.elsewhere.test",))
    rogue = mx_hosts("mx.sts.test", "127.0.0.2", ca.issue("mx.sts.test").context())
    relay = tls_relay()
    code, text = deliver(relay, "b@sts.test")[1]
    assert code == 451 and text.startswith("451 4.7.5 TLS policy mta-sts for sts.test: MX host mx.sts.test: ")
    assert "is not an MX host the MTA-STS policy of sts.test allows (mx: mx.elsewhere.test" in text
    assert rogue.connections == 0
    (event,) = events_of(relay)
    assert event["classification"]["rule"] == "relay:tls-mta-sts"
    assert (event["upstream"]["host"], event["upstream"]["ip"]) == ("mx.sts.test", None)


def test_mta_sts_testing_delivers_and_warns(tls_relay, mx_hosts, dns, https, ca, tmp_path):
    # RFC 8461 5: testing mode reports what enforce would refuse, and the mail goes on.
    sts_domain(dns, https, ca, mode="testing")
    mx = mx_hosts("mx.sts.test", "127.0.0.2", server_context(*make_cert(tmp_path, "mx.sts.test")))
    relay = tls_relay()
    assert [r[0] for r in deliver(relay, "b@sts.test")] == [250, 250, 354, 250]
    assert mx.wait_for_messages(1)[0].rcpt_tos == ["b@sts.test"]
    (warning,) = events_of(relay)
    assert (warning["kind"], warning["check"], warning["result"], warning["domain"]) == (
        "warning", "mta-sts", "testing", "sts.test")
    assert "does not verify for mx.sts.test" in warning["text"]
    assert warning["upstream"]["tls_policy"] == "mta-sts-testing" and warning["upstream"]["tls"] is True
    assert warning["message_id"] == "<m1@sender.test>"


def test_a_domain_without_mta_sts_or_dane_gets_opportunistic_tls(tls_relay, mx_hosts, dns, tmp_path):
    dns.zone.add("plain.test", "MX", (10, "mx.plain.test"))
    dns.zone.add("mx.plain.test", "A", "127.0.0.2")
    mx = mx_hosts("mx.plain.test", "127.0.0.2", server_context(*make_cert(tmp_path, "whatever.test")))
    relay = tls_relay()
    assert [r[0] for r in deliver(relay, "b@plain.test")] == [250, 250, 354, 250]
    assert mx.wait_for_messages(1)[0].rcpt_tos == ["b@plain.test"]
    assert relay.events() == []


def _dane_zone(dns, port, record):
    dns.zone.add("dane.test", "MX", (10, "mx.dane.test"))
    dns.zone.add("mx.dane.test", "A", "127.0.0.2")
    dns.zone.add(f"_{port}._tcp.mx.dane.test", "TLSA", record)
    dns.zone.sign("dane.test")


def test_dane_ta_delivers_when_the_chain_leads_to_the_published_anchor(tls_relay, mx_hosts, dns, ca, mx_port):
    from cryptography.hazmat.primitives import serialization
    anchor = hashlib.sha256(ca.intermediate.public_bytes(serialization.Encoding.DER)).digest()
    _dane_zone(dns, mx_port, (2, 0, 1, anchor))  # DANE-TA, full certificate, SHA2-256
    mx = mx_hosts("mx.dane.test", "127.0.0.2", ca.issue("mx.dane.test").context())
    relay = tls_relay()
    assert [r[0] for r in deliver(relay, "b@dane.test")] == [250, 250, 354, 250]
    assert mx.wait_for_messages(1)[0].rcpt_tos == ["b@dane.test"]


def test_dane_ee_mismatch_is_a_451_with_the_records_and_the_session_on_the_event(tls_relay, mx_hosts, dns, ca,
                                                                                  mx_port):
    published, presented = ca.issue("mx.dane.test"), ca.issue("mx.dane.test")  # a key rolled without TLSA
    _dane_zone(dns, mx_port, (3, 1, 1, hashlib.sha256(published.spki()).digest()))
    mx = mx_hosts("mx.dane.test", "127.0.0.2", presented.context())
    relay = tls_relay()
    code, text = deliver(relay, "b@dane.test")[1]
    assert code == 451 and text.startswith("451 4.7.5 TLS policy dane for dane.test: MX host mx.dane.test[127.0.0.2]: "
                                           f"DANE (_{mx_port}._tcp.mx.dane.test): no TLSA record matches")
    assert hashlib.sha256(presented.spki()).hexdigest()[:16] in text
    assert hashlib.sha256(published.spki()).hexdigest()[:16] in text
    assert mx.messages == []
    (event,) = events_of(relay)
    assert event["classification"]["rule"] == "relay:tls-dane"
    assert event["upstream"]["tls_policy"] == "dane" and event["upstream"]["tls_protocol"].startswith("TLSv1.")


def test_an_mta_sts_policy_host_at_an_internal_address_is_not_fetched_from(tls_relay, mx_hosts, dns, https, ca):
    # A recipient domain names its policy host (mta-sts.<domain>) as it names its MX hosts; the relay refused
    # internal MX addresses but fetched the policy from wherever the name pointed (SSRF into its own host and
    # networks). Here the MX host's address is allowed (mx_internal_networks), the policy host's, 127.0.0.1,
    # is not: the old code fetched this enforce policy, which lists no MX host of the domain, and refused the
    # mail with 451; now nothing connects to 127.0.0.1 and the domain has no policy (RFC 8461 3.3, 5.1).
    sts_domain(dns, https, ca, mx=("mx.elsewhere.test",))
    mx = mx_hosts("mx.sts.test", "127.0.0.2", ca.issue("mx.sts.test").context())
    relay = tls_relay(upstream={"mx_internal_networks": ["127.0.0.2/32"]})
    assert [r[0] for r in deliver(relay, "b@sts.test")] == [250, 250, 354, 250]
    assert mx.wait_for_messages(1)[0].rcpt_tos == ["b@sts.test"]
    assert https.hellos == [] and https.requests == []
    # Why the domain's policy was not applied is on the next event.
    assert deliver(relay, "nosuchuser@sts.test")[1][0] == 550
    (event,) = [e for e in events_of(relay) if e["kind"] == "rejected"]
    assert event["upstream"]["tls_policy"] == "opportunistic"
    assert ("mta-sts.sts.test is at 127.0.0.1, a loopback address; this relay does not connect into internal "
            "networks (upstream.mx_internal_networks)") in event["upstream"]["tls_note"], event["upstream"]
    assert https.hellos == []


def test_the_mta_sts_policy_is_fetched_from_an_egress_ip_as_the_mail_is_sent(tls_relay, mx_hosts, dns, https, ca):
    # egress_ips are the addresses the relay is seen from: MX connections were made from them, but the
    # policy fetch (RFC 8461 3.3) left from the system's default source address (127.0.0.1 here), past
    # the firewall rules and logs that know the relay by its egress addresses.
    sts_domain(dns, https, ca)
    mx = mx_hosts("mx.sts.test", "127.0.0.2", ca.issue("mx.sts.test").context())
    relay = tls_relay(egress_ips=["127.0.0.5"])
    assert [r[0] for r in deliver(relay, "b@sts.test")] == [250, 250, 354, 250]
    assert mx.wait_for_messages(1)[0].peer[0] == "127.0.0.5"
    assert https.requests == [("mta-sts.sts.test", "/.well-known/mta-sts.txt")]
    assert https.peers == ["127.0.0.5"]


def test_an_mta_sts_policy_host_of_no_family_egress_ips_has_is_not_fetched_from(tls_relay, mx_hosts, dns, https,
                                                                                  ca):
    # With egress_ips all IPv4, a policy host that has only an IPv6 address is not connected to (from a
    # source address that is none of egress_ips): the domain has no policy (RFC 8461 3.3), and the event
    # says why.
    dns.zone.add("sts.test", "MX", (10, "mx.sts.test"))
    dns.zone.add("mx.sts.test", "A", "127.0.0.2")
    dns.zone.add("_mta-sts.sts.test", "TXT", "v=STSv1; id=20261129;")
    dns.zone.add("mta-sts.sts.test", "AAAA", "::1")
    https.serve("mta-sts.sts.test", policy_text("enforce", "mx.elsewhere.test"), ca.issue("mta-sts.sts.test").context())
    mx = mx_hosts("mx.sts.test", "127.0.0.2", ca.issue("mx.sts.test").context())
    relay = tls_relay(egress_ips=["127.0.0.5"], upstream={"mx_internal_networks": ["127.0.0.0/8", "::1/128"]})
    assert deliver(relay, "nosuchuser@sts.test")[1][0] == 550
    (event,) = [e for e in events_of(relay) if e["kind"] == "rejected"]
    assert event["upstream"]["tls_policy"] == "opportunistic"
    assert ("mta-sts.sts.test has no address of a family egress_ips has a source address for (::1)"
            in event["upstream"]["tls_note"]), event["upstream"]
    assert https.hellos == []


def test_an_mta_sts_ca_file_renewed_in_place_is_trusted_from_the_next_reload(tls_relay, mx_hosts, dns, https, ca,
                                                                             tmp_path):
    # The policy fetcher lives as long as the process (its policies are cached for it, RFC 8461 5.1) and
    # read upstream.ca_file at its first fetch only: after a SIGHUP with the bundle renewed in place it
    # still trusted the old one, so an enforce policy whose host the new CA signs was never fetched and
    # mail went out with opportunistic TLS to an MX host the policy does not allow. Now the reload reads
    # the file again, as it does the smarthost's.
    from tests.support.tls import CertAuthority

    (tmp_path / "other").mkdir()
    other = CertAuthority(tmp_path / "other", name="Another Test Root CA")
    bundle = tmp_path / "mx-ca.pem"
    bundle.write_bytes(other.ca_path.read_bytes())
    # Enforce policies that list no MX host of their domain: applied, they refuse the mail (451).
    sts_domain(dns, https, ca, mx=("mx.elsewhere.test",))
    sts_domain(dns, https, ca, domain="sts2.test", mx=("mx.elsewhere.test",), hosts=[("mx.sts2.test", "127.0.0.2")])
    mx = mx_hosts("mx.sts.test", "127.0.0.2", ca.issue("mx.sts.test", "mx.sts2.test").context())
    relay = tls_relay(upstream={"ca_file": str(bundle)})
    # The policy host's certificate does not chain to the configured CA: no policy (RFC 8461 3.3), and
    # the mail goes out as without one.
    assert [r[0] for r in deliver(relay, "b@sts.test")] == [250, 250, 354, 250]
    assert mx.wait_for_messages(1)[0].rcpt_tos == ["b@sts.test"]
    bundle.write_bytes(ca.ca_path.read_bytes())
    assert relay.reload() is True
    code, text = deliver(relay, "b@sts2.test")[1]
    assert code == 451 and text.startswith("451 4.7.5 TLS policy mta-sts for sts2.test: MX host mx.sts2.test: "), text
    assert len(mx.messages) == 1


def test_a_reload_whose_ca_file_cannot_be_loaded_keeps_the_mta_sts_fetchers_context(tls_relay, mx_hosts, dns,
                                                                                    https, ca, tmp_path, caplog):
    bundle = tmp_path / "mx-ca.pem"
    bundle.write_bytes(ca.ca_path.read_bytes())
    sts_domain(dns, https, ca, mx=("mx.elsewhere.test",))
    relay = tls_relay(upstream={"ca_file": str(bundle)})
    bundle.write_text("garbage, not a PEM bundle\n")
    assert relay.reload() is False
    assert any(f"reload refused, keeping the running config: {relay.config_path}: upstream.ca_file: "
               f"no certificate in {bundle}" in r.getMessage() for r in caplog.records), caplog.text
    code, text = deliver(relay, "b@sts.test")[1]  # fetched with the context of the running config
    assert code == 451 and text.startswith("451 4.7.5 TLS policy mta-sts for sts.test: MX host mx.sts.test: "), text
