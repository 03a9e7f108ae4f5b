"""upstream mode mx, end to end over real sockets: the loopback DNS server publishes the MX
records; MX hosts are Gmail-like upstreams on 127.0.0.2 and 127.0.0.3 (one port, as
`upstream.port` has it); 127.0.0.4 is an MX host that is down."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest

from tests.support.smtp_client import RawSMTP, send_message
from tests.support.upstream import GMAIL_NO_SUCH_USER, FakeUpstream, free_port

SCHEMA = json.loads((Path(__file__).parent.parent / "relay" / "schema" / "event.schema.json").read_text())
BODY = b"From: a@sender.test\r\nTo: b@example.com\r\nSubject: hello\r\nMessage-ID: <m1@sender.test>\r\n\r\nHi.\r\n"


@pytest.fixture
def mx_port():
    return free_port()


@pytest.fixture
def mx1(mx_port):
    server = FakeUpstream(hostname="mx1.example.com", address="127.0.0.2", port=mx_port).start()
    yield server
    server.stop()


@pytest.fixture
def mx2(mx_port):
    server = FakeUpstream(hostname="mx2.example.net", address="127.0.0.3", port=mx_port).start()
    yield server
    server.stop()


@pytest.fixture
def tls_mx(tmp_path, mx_port):
    """Start an MX host on 127.0.0.4 that offers STARTTLS: tls_mx(change=None, context=None), with a
    self-signed certificate for mx3.tls.test unless `context` is given."""
    from tests.support.tls import make_cert, server_context

    started = []

    def start(change=None, context=None):
        if context is None:
            context = server_context(*make_cert(tmp_path, "mx3.tls.test"))
        if change is not None:
            change(context)
        server = FakeUpstream(hostname="mx3.tls.test", address="127.0.0.4", port=mx_port,
                              tls_context=context).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def zone(dns):
    z = dns.zone
    # example.com: the preferred host is down, the next one answers.
    z.add("example.com", "MX", (10, "mx-down.example.com"))
    z.add("example.com", "MX", (20, "mx1.example.com"))
    z.add("mx-down.example.com", "A", "127.0.0.4")
    z.add("mx1.example.com", "A", "127.0.0.2")
    # shared.test: the same MX set as example.com (may share a transaction).
    z.add("shared.test", "MX", (10, "mx-down.example.com"))
    z.add("shared.test", "MX", (20, "mx1.example.com"))
    # example.net: another destination.
    z.add("example.net", "MX", (5, "mx2.example.net"))
    z.add("mx2.example.net", "A", "127.0.0.3")
    z.add("implicit.test", "A", "127.0.0.3")  # no MX: the domain's own address (RFC 5321 5.1)
    z.add("nullmx.test", "MX", (0, "."))  # RFC 7505
    z.add("nomail.test", "TXT", "v=spf1 -all")  # exists, no MX, no address
    z.add("alias.test", "CNAME", "example.net")  # the domain is an alias
    z.add("cname-mx.test", "MX", (10, "mail.cname-mx.test"))  # the exchange is an alias (RFC 2181 10.3)
    z.add("mail.cname-mx.test", "CNAME", "mx2.example.net")
    z.add("numeric.test", "MX", (10, "127.0.0.3"))  # an address where a name belongs
    z.servfail.add("broken.test")
    z.silent.add("silent.test")  # no answer at all: the resolver times out
    return z


@pytest.fixture
def mx_relay(dns, zone, mx_port, mx1, mx2, relay_factory):  # the relay stops first
    def start(**overrides):
        # The MX hosts here are on loopback, where MX delivery connects only when told to.
        upstream = {"mode": "mx", "host": None, "port": mx_port, "starttls": "opportunistic",
                    "mx_internal_networks": ["127.0.0.0/8"], **overrides.pop("upstream", {})}
        resolver = {"nameservers": [dns.nameserver], "timeout": 2, **overrides.pop("resolver", {})}
        return relay_factory(0, upstream=upstream, resolver=resolver, **overrides)
    return start


def client(relay) -> RawSMTP:
    c = RawSMTP(relay.host, relay.port)
    assert c.cmd("EHLO client.test")[0] == 250
    return c


def valid(event: dict) -> dict:
    jsonschema.validate(event, SCHEMA)
    return event


def test_delivers_to_the_next_mx_when_the_preferred_one_is_down(mx_relay, mx1, mx2):
    relay = mx_relay(egress_ips=["127.0.0.5"])
    with client(relay) as c:
        replies = send_message(c, "a@sender.test", ["b@example.com"], BODY)
    assert [r[0] for r in replies] == [250, 250, 354, 250]
    (msg,) = mx1.wait_for_messages(1)
    assert msg.rcpt_tos == ["b@example.com"] and msg.mail_from == "a@sender.test"
    assert msg.peer[0] == "127.0.0.5"  # the source address is one of egress_ips
    assert mx2.messages == []


def test_a_gmail_refusal_from_the_mx_reaches_the_client_verbatim_and_lists_the_address(mx_relay, mx1):
    relay = mx_relay()
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        assert c.cmd("RCPT TO:<nosuchuser@example.com>") == (550, GMAIL_NO_SUCH_USER)
        assert c.cmd("QUIT")[0] == 221
    events = [valid(e) for e in relay.events(wait_for=2)]
    rejected = next(e for e in events if e["kind"] == "rejected")
    assert rejected["stage"] == "rcpt" and rejected["recipient"] == "nosuchuser@example.com"
    assert rejected["reply"]["source"] == "upstream"
    assert rejected["reply"]["text"] == GMAIL_NO_SUCH_USER.replace("\r\n", "\n")
    assert rejected["classification"]["category"] == "unknown_recipient"
    assert rejected["classification"]["scope"] == "recipient"
    assert rejected["bounce_list"] == "listed"
    up = rejected["upstream"]
    assert (up["host"], up["ip"], up["port"], up["preference"], up["route"]) == (
        "mx1.example.com", "127.0.0.2", mx1.port, 20, "mx")
    assert up["tls"] is False and up["tls_protocol"] is None and up["tls_policy"] == "opportunistic"
    assert [e["kind"] for e in events].count("bounce_listed") == 1
    listed = subprocess.run(["python3", "-m", "relay", "bounces", "list", "--json", "-c", str(relay.config_path)],
                            capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent)
    assert "nosuchuser@example.com" in listed.stdout


def test_a_second_destination_gets_452_453_and_goes_in_the_next_transaction(mx_relay, mx1, mx2):
    relay = mx_relay()
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        assert c.cmd("RCPT TO:<b@example.com>")[0] == 250
        assert c.cmd("RCPT TO:<c@shared.test>")[0] == 250  # the same MX set: the same transaction
        code, text = c.cmd("RCPT TO:<d@example.net>")
        assert code == 452 and text.startswith("452 4.5.3 ") and "new transaction" in text
        assert c.cmd("DATA")[0] == 354
        c.send(BODY + b".\r\n")
        assert c.reply()[0] == 250
        # The client's retry of the deferred recipient, in a transaction of its own.
        assert [r[0] for r in send_message(c, "a@sender.test", ["d@example.net"], BODY)] == [250, 250, 354, 250]
    (first,) = mx1.wait_for_messages(1)
    assert first.rcpt_tos == ["b@example.com", "c@shared.test"]
    (second,) = mx2.wait_for_messages(1)
    assert second.rcpt_tos == ["d@example.net"]
    (deferred,) = [valid(e) for e in relay.events(wait_for=1)]
    assert deferred["kind"] == "deferred" and deferred["recipient"] == "d@example.net"
    assert deferred["classification"]["rule"] == "relay:mx-one-destination"


def test_a_message_to_many_recipients_at_other_destinations_still_goes_to_the_first_one(mx_relay, mx1, mx2):
    # Each recipient at another destination gets 452 4.5.3 "send it in a new transaction" (RFC 5321
    # 3.3, 4.5.3.1.10): no verdict on the address. They counted as errors past limits.max_recipients'
    # 100 free verdicts, so Python's smtplib.sendmail with 1 + 130 such recipients met a 421 at the
    # 121st RCPT and the message went to nobody, at every retry: the failure the recipient-limit
    # 452s had (they go uncounted up to 1,000, as Postfix's smtpd_recipient_overshoot_limit).
    import smtplib

    relay = mx_relay(limits={"error_delay": 0})
    others = [f"r{i}@example.net" for i in range(130)]
    with smtplib.SMTP(relay.host, relay.port, timeout=60) as s:
        refused = s.sendmail("a@sender.test", ["b@example.com", *others], BODY)
        assert sorted(refused) == sorted(others)
        assert {code for code, _ in refused.values()} == {452}
        # The client's retry of the rest, in a transaction of its own (100 at most: max_recipients).
        refused = s.sendmail("a@sender.test", others, BODY)
        assert sorted(refused) == sorted(others[100:])
    (first,) = mx1.wait_for_messages(1)
    assert first.rcpt_tos == ["b@example.com"]
    (second,) = mx2.wait_for_messages(1)
    assert second.rcpt_tos == others[:100]
    # Every 452 the client saw has its event (docs/events.md: every refusal becomes one).
    events = relay.events(wait_for=130 + 30)
    assert sorted(e["recipient"] for e in events if e["classification"]["rule"] == "relay:mx-one-destination") == sorted(others)


def test_past_1000_recipients_at_other_destinations_the_452s_count_as_errors(mx_relay, mx1, mx2):
    # Uncounted up to 1,000 together with the recipient-limit 452s (ErrorCount.free_overshoots), then
    # errors again: a client that sends nothing else is still closed at limits.error_limit.
    relay = mx_relay(limits={"error_delay": 0, "max_recipients": 2})
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        assert c.cmd("RCPT TO:<b@example.com>")[0] == 250
        c.send(b"".join(b"RCPT TO:<r%d@example.net>\r\n" % i for i in range(500)))
        c.send(b"".join(b"RCPT TO:<s%d@example.com>\r\n" % i for i in range(1 + 500 + 19)))
        codes = [c.reply()[0] for _ in range(500 + 1 + 500 + 19)]
        assert codes == [452] * 500 + [250] + [452] * 519, codes[-25:]
        c.send(b"RCPT TO:<last@example.net>\r\n")
        assert c.reply()[0] == 452  # the 20th error still gets its own reply,
        text = c.reply()[1]
        assert text.startswith("421 4.7.0 ") and "too many errors" in text, text
        assert c.closed()


def test_a_refused_first_recipient_leaves_the_transaction_free_to_go_elsewhere(mx_relay, mx1, mx2):
    relay = mx_relay()
    with client(relay) as c:
        replies = send_message(c, "a@sender.test", ["nosuchuser@example.com", "d@example.net"], BODY)
    assert [r[0] for r in replies] == [250, 550, 250, 354, 250]
    assert mx2.wait_for_messages(1)[0].rcpt_tos == ["d@example.net"]


@pytest.mark.parametrize("rcpt,code,enhanced,rule,scope", [
    ("x@nowhere.test", 550, "5.1.2", "relay:mx-nxdomain", "recipient"),
    ("x@nullmx.test", 556, "5.1.10", "relay:mx-null", "recipient"),
    ("x@nomail.test", 550, "5.1.2", "relay:mx-no-mail-server", "recipient"),
    ("x@broken.test", 451, "4.4.3", "relay:mx-dns-temporary", "relay"),
    ("x@silent.test", 451, "4.4.3", "relay:mx-dns-temporary", "relay"),
    ("x@numeric.test", 451, "4.4.4", "relay:mx-unusable", "relay"),
])
def test_what_dns_says_of_a_domain_answers_its_recipient(mx_relay, rcpt, code, enhanced, rule, scope):
    relay = mx_relay()
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        got, text = c.cmd(f"RCPT TO:<{rcpt}>")
        assert got == code and text.startswith(f"{code} {enhanced} "), text
        assert c.cmd("QUIT")[0] == 221
    event = next(valid(e) for e in relay.events(wait_for=1) if e["recipient"] == rcpt)
    assert event["kind"] == ("rejected" if code >= 500 else "deferred")
    assert event["reply"]["source"] == "relay"
    assert (event["classification"]["rule"], event["classification"]["scope"]) == (rule, scope)


def test_a_domain_in_dns_trouble_is_asked_once_for_all_its_recipients(mx_relay, dns):
    # Traffic shaping asked for the domain's MX host, then delivery asked again, and trouble was not
    # remembered: every RCPT cost two questions, each up to resolver.timeout when the zone never
    # answers (2 x 2 s here, per recipient). RFC 9520 3.2: the failure is cached.
    relay = mx_relay()
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        for rcpt in ("x@broken.test", "y@broken.test", "z@broken.test"):
            got, text = c.cmd(f"RCPT TO:<{rcpt}>")
            assert got == 451 and text.startswith("451 4.4.3 ") and "SERVFAIL" in text, text
        assert c.cmd("QUIT")[0] == 221
    assert dns.zone.queries.count(("broken.test.", "MX")) == 1
    deferred = [e for e in relay.events(wait_for=1) if e["kind"] == "deferred"]
    assert sorted(e["recipient"] for e in deferred) == ["x@broken.test", "y@broken.test", "z@broken.test"]


@pytest.mark.parametrize("literal", ["[0.0.0.0]", "[255.255.255.255]", "[224.0.0.1]", "[240.0.0.1]", "[IPv6:::]",
                                     "[IPv6:ff02::1]", "[IPv6:fe80::1]"])
def test_an_address_literal_that_names_no_host_is_refused_for_good(mx_relay, literal):
    # RFC 5321 4.1.3: an address literal names the host to deliver to. The unspecified address, a
    # broadcast, multicast or reserved one, or a link-local one (which needs an interface no literal can
    # name) were connected to, and the failure answered 451 4.4.1 "could not be reached": the client
    # retried for days mail that can never go.
    relay = mx_relay()
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd(f"RCPT TO:<b@{literal}>")
        assert text.startswith("553 5.1.3 Recipient address rejected: ") and "not a host" in text, text

@pytest.mark.parametrize("rcpt", ["postmaster", "Postmaster"])
def test_a_bare_postmaster_has_no_domain_to_look_up(mx_relay, zone, rcpt):
    # RFC 5321 4.1.1.3: a bare <postmaster> is this server's own; in mx mode there is no mailbox here and
    # no domain to route to. Its "domain" was taken to be "postmaster": looked up in DNS, answered
    # "domain not found: postmaster does not exist in DNS (NXDOMAIN)".
    relay = mx_relay()
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd(f"RCPT TO:<{rcpt}>")
        assert text.startswith(f"550 5.1.3 Recipient address rejected: <{rcpt}> has no domain"), text
        assert "RFC 5321 4.1.1.3" in text and "DNS" not in text, text
        assert c.cmd("RCPT TO:<b@example.net>")[0] == 250
    assert not any(name.rstrip(".") == "postmaster" for name, _ in zone.queries), zone.queries

@pytest.mark.parametrize("rcpt", ["x@implicit.test", "x@alias.test", "x@cname-mx.test", "x@[127.0.0.3]"])
def test_implicit_mx_aliases_and_address_literals_reach_their_host(mx_relay, mx2, rcpt):
    relay = mx_relay()
    with client(relay) as c:
        assert [r[0] for r in send_message(c, "a@sender.test", [rcpt], BODY)] == [250, 250, 354, 250]
    assert mx2.wait_for_messages(1)[0].rcpt_tos == [rcpt]


def test_every_mx_down_is_a_451_naming_each_host(mx_relay, mx_port, mx1, mx2):
    mx1.stop()
    relay = mx_relay()
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<b@example.com>")
    assert code == 451 and text.startswith("451-4.4.1 No mail server of example.com could be reached")
    assert "mx-down.example.com[127.0.0.4]" in text and "mx1.example.com[127.0.0.2]" in text
    (event,) = [valid(e) for e in relay.events(wait_for=1)]
    assert event["kind"] == "deferred" and event["classification"]["rule"] == "relay:mx-unreachable"
    # Review22 F6: the event names the host tried (the last, as the text names each), never null.
    last = text.splitlines()[-1].split(" ", 2)[2].split(":", 1)[0]  # "mx1.example.com[127.0.0.2]"
    up = event["upstream"]
    assert f"{up['host']}[{up['ip']}]" == last, (up, text)
    assert up["port"] == mx_port
    assert up["route"] == "mx" and up["tls"] is None


def test_a_421_greeting_fails_over_to_the_next_host(mx_relay, dns, mx1, mx2):
    dns.zone.add("two.test", "MX", (10, "mx2.example.net"))
    dns.zone.add("two.test", "MX", (20, "mx1.example.com"))
    mx2.greeting = "421 4.7.0 mx2.example.net Service not available, try again later"
    relay = mx_relay()
    with client(relay) as c:
        assert [r[0] for r in send_message(c, "a@sender.test", ["b@two.test"], BODY)] == [250, 250, 354, 250]
    assert mx1.wait_for_messages(1)[0].rcpt_tos == ["b@two.test"]


def test_a_lone_mx_refusing_at_the_greeting_is_relayed_in_its_own_words(mx_relay, mx2):
    mx2.greeting = "554 5.7.1 Service unavailable; client host [127.0.0.1] blocked using zen.spamhaus.org"
    relay = mx_relay()
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<d@example.net>")
    assert (code, text) == (554, mx2.greeting)
    (event,) = [valid(e) for e in relay.events(wait_for=2) if e["kind"] == "rejected"]
    assert event["stage"] == "connect" and event["reply"]["source"] == "upstream"
    assert event["classification"]["scope"] == "session" and "bounce_list" not in event


def test_a_refused_mail_from_answers_the_first_rcpt(mx_relay, mx2):
    relay = mx_relay()
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<refusedsender@sender.test>")[0] == 250  # checked locally only
        code, text = c.cmd("RCPT TO:<d@example.net>")
    assert code == 550 and text.startswith("550 5.7.1 Sender address rejected")
    event = next(valid(e) for e in relay.events(wait_for=1) if e["kind"] == "rejected")
    assert event["stage"] == "mail" and event["classification"]["scope"] == "sender"
    assert "bounce_list" not in event


def test_connections_are_reused_per_destination(mx_relay, mx2):
    relay = mx_relay()
    with client(relay) as c:
        for _ in range(3):
            assert send_message(c, "a@sender.test", ["d@example.net"], BODY)[-1][0] == 250
    assert len(mx2.wait_for_messages(3)) == 3
    assert mx2.connections == 1


def test_messages_per_connection_closes_a_used_up_connection(mx_relay, mx2):
    relay = mx_relay(upstream={"messages_per_connection": 2})
    with client(relay) as c:
        for _ in range(3):
            assert send_message(c, "a@sender.test", ["d@example.net"], BODY)[-1][0] == 250
    assert len(mx2.wait_for_messages(3)) == 3
    assert mx2.connections == 2


def test_opportunistic_starttls_is_used_and_named_on_events(tls_mx, mx_relay, dns):
    tls_mx()
    dns.zone.add("tls.test", "MX", (10, "mx3.tls.test"))
    dns.zone.add("mx3.tls.test", "A", "127.0.0.4")
    relay = mx_relay()
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        assert c.cmd("RCPT TO:<nosuchuser@tls.test>")[0] == 550
        assert c.cmd("QUIT")[0] == 221
    event = next(valid(e) for e in relay.events(wait_for=1) if e["kind"] == "rejected")
    up = event["upstream"]
    assert up["tls"] is True and up["tls_protocol"].startswith("TLSv1.") and up["tls_cipher"]


def test_a_failed_opportunistic_handshake_is_retried_in_clear(tls_mx, mx_relay, dns):
    import ssl

    def broken(context):
        context.set_ciphers("aNULL")  # nothing a client offers: every handshake fails
        context.maximum_version = ssl.TLSVersion.TLSv1_2

    server = tls_mx(broken)
    dns.zone.add("tls.test", "MX", (10, "mx3.tls.test"))
    dns.zone.add("mx3.tls.test", "A", "127.0.0.4")
    relay = mx_relay()
    with client(relay) as c:
        assert [r[0] for r in send_message(c, "a@sender.test", ["b@tls.test"], BODY)] == [250, 250, 354, 250]
    assert server.wait_for_messages(1)[0].rcpt_tos == ["b@tls.test"]
    assert server.connections == 2  # the failed handshake, then the same host in clear


def test_required_tls_skips_a_host_without_starttls(mx_relay, mx2):
    relay = mx_relay(upstream={"starttls": "required"})
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<d@example.net>")
    assert code == 451 and text.startswith("451-4.7.5 ") and "does not offer STARTTLS" in text
    assert mx2.messages == []


def test_swaks_delivers_through_mx_mode(mx_relay, mx2):
    relay = mx_relay()
    result = subprocess.run(["swaks", "--server", f"{relay.host}:{relay.port}", "--from", "a@sender.test",
                             "--to", "nosuchuser@example.net", "--helo", "client.test"],
                            capture_output=True, text=True, timeout=60)
    assert "550-5.1.1 The email account that you tried to reach does not exist" in result.stdout
    result = subprocess.run(["swaks", "--server", f"{relay.host}:{relay.port}", "--from", "a@sender.test",
                             "--to", "ok@example.net", "--helo", "client.test"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout
    assert mx2.wait_for_messages(1)[0].rcpt_tos == ["ok@example.net"]


def domain_evidence_after_a_second(tmp_path) -> str:
    """A policy directory with the shipped suppression rules, but a domain's evidence seen again after
    one second instead of the shipped hour, so that a test can wait for it."""
    policies = tmp_path / "policies"
    policies.mkdir()
    shipped = (Path(__file__).parent.parent / "policies" / "suppression.yaml").read_text()
    (policies / "suppression.yaml").write_text(shipped.replace("seen_again_after: 1h", "seen_again_after: 1s"))
    return str(policies)


def rcpt_once(relay, address: str):
    """The reply to RCPT TO:<address> in a session of its own."""
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        reply = c.cmd(f"RCPT TO:<{address}>")
        c.cmd("QUIT")
    return reply


def bounce_list_entries(relay) -> list[str]:
    """What `relay bounces list` shows for the relay's config."""
    import sys

    out = subprocess.run([sys.executable, "-m", "relay", "bounces", "list", "--json", "-c", str(relay.config_path)],
                         capture_output=True, text=True, timeout=60, check=True)
    return sorted(e["address"] for e in json.loads(out.stdout))


def test_a_domain_found_missing_in_dns_twice_goes_on_the_bounce_list(mx_relay, tmp_path):
    import time

    # Answers kept at most a second (resolver.max_ttl): the second null MX sighting must be a second answer
    # from DNS; the zone's 300 s TTL would serve the first one again, which is no confirmation (review21 F1).
    relay = mx_relay(policies=domain_evidence_after_a_second(tmp_path), resolver={"max_ttl": "1s"})

    assert rcpt_once(relay, "a@nowhere.test")[0] == 550
    assert rcpt_once(relay, "b@broken.test")[0] == 451  # DNS trouble is never evidence
    assert rcpt_once(relay, "c@nullmx.test")[0] == 556
    assert bounce_list_entries(relay) == []
    time.sleep(1.2)
    assert rcpt_once(relay, "d@nowhere.test")[0] == 550
    assert rcpt_once(relay, "e@broken.test")[0] == 451
    assert rcpt_once(relay, "f@nullmx.test")[0] == 556
    assert bounce_list_entries(relay) == ["@nowhere.test", "@nullmx.test"]
    code, text = rcpt_once(relay, "g@nowhere.test")  # refused by the bounce list now, before any DNS lookup
    assert code == 550 and "nowhere.test is on this relay" in text


def test_a_domain_is_listed_for_what_dns_says_never_for_its_name_or_an_address_a_reply_quotes(mx_relay, dns, mx2,
                                                                                                 tmp_path):
    # suppression.yaml's domain evidence (`nxdomain`, `domain not found`...) was searched in the whole
    # reply, the addresses it quotes and the recipient's domain among them. A domain whose name holds
    # "nxdomain" and that has no mail server (mx-no-mail-server: not evidence), and a Postfix-style
    # refusal of <nxdomain@example.net> as an unknown user, each listed a whole domain at the second
    # sighting; every address at example.net was then refused. Only NXDOMAIN and a null MX list one.
    import time

    dns.zone.add("nxdomain-fans.test", "TXT", "v=spf1 -all")  # exists, no MX, no address
    mx2.rcpt_replies["nxdomain"] = ("550 5.1.1 <nxdomain@example.net>: Recipient address rejected: User unknown "
                                    "in virtual mailbox table")
    relay = mx_relay(policies=domain_evidence_after_a_second(tmp_path))

    for sighting in range(2):
        if sighting:
            time.sleep(1.2)
        assert rcpt_once(relay, "a@nxdomain-fans.test")[0] == 550
        assert rcpt_once(relay, "nxdomain@example.net")[0] == 550
        assert rcpt_once(relay, "b@nowhere.test")[0] == 550  # NXDOMAIN: the evidence that does list
    listed = bounce_list_entries(relay)
    assert "@nowhere.test" in listed
    assert "@nxdomain-fans.test" not in listed and "@example.net" not in listed, listed


@pytest.mark.parametrize("said", [
    # A Postfix MX with unknown_address_reject_code = 550 whose own resolver is broken.
    "550 5.1.2 <{0}@example.net>: Recipient address rejected: Domain not found",
    # The same MX verifying the recipient (reject_unverified_recipient) when its probe's lookup failed.
    "550 5.1.1 <{0}@example.net>: Recipient address rejected: undeliverable address: Host or domain name not "
    "found. Name service error for name=example.net type=MX: Host not found",
])
def test_the_recipient_domains_own_mx_saying_the_domain_is_not_found_never_lists_the_domain(mx_relay, mx2, tmp_path,
                                                                                             said):
    # Review-13's open question: in MX mode the relay has just resolved example.net's MX and is talking
    # to it; that host's word that example.net does not exist is its own trouble, not the domain's
    # (the worst error: a good domain on the bounce list refuses every address at it).
    import time

    for local in ("alice", "bob"):
        mx2.rcpt_replies[local] = said.format(local)
    relay = mx_relay(policies=domain_evidence_after_a_second(tmp_path))
    assert rcpt_once(relay, "alice@example.net")[0] == 550
    time.sleep(1.2)  # past seen_again_after: a second sighting would list the domain
    assert rcpt_once(relay, "bob@example.net")[0] == 550
    assert "@example.net" not in bounce_list_entries(relay)


def test_a_hundred_mx_records_cost_ten_hosts_looked_up_and_each_host_once(mx_relay, dns):
    # RFC 5321 5.1: "there SHOULD be a configurable limit on the number of alternate addresses that can
    # be tried". Every one of 100 MX records was looked up (300 questions) and connected to, for each
    # recipient; one host named at 20 preferences was connected to 20 times.
    for i in range(100):
        dns.zone.add("many.test", "MX", (i, f"mx{i}.many.test"))  # none has an address
        dns.zone.add("repeated.test", "MX", (i, "mx-down.example.com"))  # 127.0.0.4: nothing listens
    relay = mx_relay()
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<b@many.test>")
        assert code == 451 and "mx0.many.test: the host has no address" in text, text
        code, text = c.cmd("RCPT TO:<b@repeated.test>")
        assert code == 451 and text.count("mx-down.example.com[127.0.0.4]") == 1, text
    asked = {name for name, rtype in dns.zone.queries if rtype in ("A", "AAAA") and name.endswith(".many.test.")}
    assert asked == {f"mx{i}.many.test." for i in range(10)}  # the ten most preferred


def test_mx_hosts_whose_names_never_answer_are_given_up_at_the_connection_deadline(mx_relay, dns):
    # connect_route's deadline (connect_timeout + command_timeout) was checked only before connecting:
    # each host's address lookup (up to resolver.timeout) came on top of it, one after another, so a zone
    # whose MX hosts never answer held the client's RCPT for hosts x resolver.timeout (100 hosts at the
    # default 5 s: over eight minutes).
    for i in range(5):
        dns.zone.add("slow.test", "MX", (i, f"mx{i}.slow.test"))
        dns.zone.silent.add(f"mx{i}.slow.test")
    relay = mx_relay(upstream={"connect_timeout": 1, "command_timeout": 1}, resolver={"timeout": 1})
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<b@slow.test>")
    assert code == 451 and ("not finished in time" in text or "out of time" in text), text
    asked = {name for name, rtype in dns.zone.queries if name.endswith(".slow.test.") and rtype in ("A", "AAAA")}
    assert len(asked) < 5, asked  # 2 s for lookups of 1 s each


def test_the_domains_mta_sts_record_is_looked_up_once_for_all_its_mx_hosts(mx_relay, dns, mx2):
    # Each MX host's TLS plan looked the domain's _mta-sts record up again, one after another (a failed
    # lookup is not cached): a record that never answers cost resolver.timeout per MX host before the
    # first connection.
    dns.zone.add("sts.test", "MX", (0, "mx2.example.net"))
    for i in range(1, 5):
        dns.zone.add("sts.test", "MX", (i, f"mx{i}.sts.test"))
    dns.zone.silent.add("_mta-sts.sts.test")
    relay = mx_relay()
    with client(relay) as c:
        assert [r[0] for r in send_message(c, "a@sender.test", ["b@sts.test"], BODY)] == [250, 250, 354, 250]
    assert dns.zone.queries.count(("_mta-sts.sts.test.", "TXT")) == 1


@pytest.fixture
def mx6():
    port = free_port(("::1", "127.0.0.2"))
    server = FakeUpstream(hostname="mx6.example.org", address="::1", port=port).start()
    yield server
    server.stop()


def test_an_ipv6_only_mx_is_reached_over_ipv6_unless_egress_ips_has_no_ipv6(mx6, dns, relay_factory):
    dns.zone.add("v6.test", "MX", (10, "mx6.example.org"))
    dns.zone.add("mx6.example.org", "AAAA", "::1")
    resolver = {"nameservers": [dns.nameserver], "timeout": 2}
    upstream = {"mode": "mx", "host": None, "port": mx6.port, "mx_internal_networks": ["::1/128"]}
    relay = relay_factory(0, upstream=upstream, resolver=resolver)
    with client(relay) as c:
        assert [r[0] for r in send_message(c, "a@sender.test", ["b@v6.test"], BODY)] == [250, 250, 354, 250]
    assert mx6.wait_for_messages(1)[0].peer[0] == "::1"
    # With only an IPv4 source address, mail from an IPv6 one would fail the receiver's SPF check.
    relay = relay_factory(0, upstream=upstream, resolver=resolver, egress_ips=["127.0.0.1"])
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<b@v6.test>")
    assert code == 451 and text.startswith("451-4.4.4 ") and "egress_ips" in text


def test_the_cap_on_sessions_makes_room_by_closing_another_destinations_idle_connection(mx_relay, mx1, mx2):
    relay = mx_relay(upstream={"pool_size": 1})
    with client(relay) as c:
        for rcpt in ("b@example.com", "d@example.net", "c@example.com"):
            assert [r[0] for r in send_message(c, "a@sender.test", [rcpt], BODY)] == [250, 250, 354, 250]
    assert len(mx1.wait_for_messages(2)) == 2 and len(mx2.wait_for_messages(1)) == 1
    assert (mx1.connections, mx2.connections) == (2, 1)  # each destination's turn closed the other's


def test_the_cap_on_sessions_defers_when_every_connection_is_busy(mx_relay, mx1, mx2):
    relay = mx_relay(upstream={"pool_size": 1, "connect_timeout": 1})
    with client(relay) as busy, client(relay) as other:
        assert busy.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        assert busy.cmd("RCPT TO:<b@example.com>")[0] == 250  # holds the only session
        assert other.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = other.cmd("RCPT TO:<d@example.net>")
        assert code == 451 and text.startswith("451 4.4.5 ") and "upstream.pool_size" in text
    assert mx2.connections == 0


def routed_relay(relay_factory, upstream, dns, mx_port, tmp_path, routes: str):
    """A relay in mx mode beside the smarthost `upstream`, with `routes` as its policies/routes.yaml."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "routes.yaml").write_text(routes)
    return relay_factory(upstream.port, policies=str(policies), upstream={"mx_port": mx_port, "mx_internal_networks": ["127.0.0.0/8"]},
                         resolver={"nameservers": [dns.nameserver], "timeout": 2})


def test_mixed_routing_sends_named_domains_through_the_smarthost(dns, zone, mx_port, mx2, upstream, tmp_path,
                                                                  relay_factory):
    relay = routed_relay(relay_factory, upstream, dns, mx_port, tmp_path,
                         "default: mx\ndomains:\n  .corp.test: smarthost\n")
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        assert c.cmd("RCPT TO:<x@eu.corp.test>")[0] == 250  # the smarthost: no DNS lookup of corp.test
        assert c.cmd("RCPT TO:<d@example.net>")[0] == 452  # another destination
        assert c.cmd("DATA")[0] == 354
        c.send(BODY + b".\r\n")
        assert c.reply()[0] == 250
        assert send_message(c, "a@sender.test", ["d@example.net"], BODY)[-1][0] == 250
    assert upstream.wait_for_messages(1)[0].rcpt_tos == ["x@eu.corp.test"]
    assert mx2.wait_for_messages(1)[0].rcpt_tos == ["d@example.net"]
    assert not [q for q in dns.zone.queries if "corp.test" in q[0]]


def tls_policy_dir(tmp_path, text: str) -> str:
    policies = tmp_path / "policies"
    policies.mkdir(exist_ok=True)
    (policies / "tls.yaml").write_text(text)
    return str(policies)


@pytest.mark.parametrize("trusted", [True, False])
def test_tls_yaml_verify_delivers_to_a_host_whose_certificate_verifies_and_refuses_one_that_does_not(
        tmp_path, ca, tls_mx, mx_relay, dns, trusted):
    issued = ca.issue("mx3.tls.test")
    server = tls_mx(context=issued.context() if trusted else None)  # else self-signed
    dns.zone.add("tls.test", "MX", (10, "mx3.tls.test"))
    dns.zone.add("mx3.tls.test", "A", "127.0.0.4")
    relay = mx_relay(policies=tls_policy_dir(tmp_path, "tls.test: verify\n"), upstream={"ca_file": str(ca.ca_path)})
    with client(relay) as c:
        replies = send_message(c, "a@sender.test", ["b@tls.test"], BODY)
    if trusted:
        assert [r[0] for r in replies] == [250, 250, 354, 250]
        assert server.wait_for_messages(1)[0].rcpt_tos == ["b@tls.test"]
        return
    code, text = replies[1]
    assert code == 451 and text.startswith("451 4.7.5 TLS policy verify for tls.test: MX host mx3.tls.test[127.0.0.4]")
    assert server.messages == []
    (event,) = [valid(e) for e in relay.events(wait_for=1)]
    assert event["kind"] == "deferred" and event["classification"]["rule"] == "relay:tls-policy"


@pytest.mark.parametrize("matching", [True, False])
def test_dane_tlsa_records_are_checked_on_delivery(tmp_path, ca, tls_mx, mx_relay, dns, mx_port, matching):
    import hashlib

    issued = ca.issue("mx3.tls.test")
    server = tls_mx(context=issued.context())
    dns.zone.add("tls.test", "MX", (10, "mx3.tls.test"))
    dns.zone.add("mx3.tls.test", "A", "127.0.0.4")
    digest = hashlib.sha256(issued.spki()).hexdigest() if matching else "00" * 32
    dns.zone.add(f"_{mx_port}._tcp.mx3.tls.test", "TLSA", (3, 1, 1, digest))  # DANE-EE, SPKI, SHA2-256
    dns.zone.sign("tls.test")
    relay = mx_relay()
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<nosuchuser@tls.test>" if matching else "RCPT TO:<b@tls.test>")
        c.cmd("QUIT")
    event = next(valid(e) for e in relay.events(wait_for=1) if e["kind"] in ("rejected", "deferred"))
    if matching:
        assert code == 550  # the MX's own words, over a session DANE authenticated
        assert event["upstream"]["tls_policy"] == "dane" and event["upstream"]["tls"] is True
    else:
        assert code == 451 and text.startswith("451 4.7.5 TLS policy dane for tls.test") and "TLSA" in text
        assert event["classification"]["rule"] == "relay:tls-dane"
        assert server.messages == []


def test_shaping_knows_a_workspace_domain_by_its_mx_host_and_holds_it_after_gmails_throttling(mx_relay, dns, mx1):
    # A Google Workspace domain: not gmail.com, but its MX host is Google's (shaping.yaml `mx:`).
    dns.zone.add("workspace.test", "MX", (1, "aspmx.l.google.com"))
    dns.zone.add("aspmx.l.google.com", "A", "127.0.0.2")
    relay = mx_relay()
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        assert c.cmd("RCPT TO:<ratelimit@workspace.test>")[0] == 421  # Gmail's 421-4.7.28, verbatim
    asked = sum(1 for cmd in mx1.commands if cmd.startswith("RCPT"))
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<b@workspace.test>")
    assert code == 451 and text.startswith("451 4.7.28 Held: gmail deferred mail from sender.test")
    assert sum(1 for cmd in mx1.commands if cmd.startswith("RCPT")) == asked  # held here, Google not asked
    pushed = next(e for e in relay.events(wait_for=2) if e["reply"]["source"] == "upstream")
    assert pushed["upstream"]["host"] == "aspmx.l.google.com" and pushed["shaping"]["destination"] == "google"


def test_equal_preference_hosts_greeting_5xx_and_4xx_always_defer(mx_relay, dns, mx1, mx2):
    # review21 F3: two MX hosts of one preference (tried in random order, RFC 5321 5.1), one greeting
    # 554 and one 421. The client heard whichever spoke last: a 554 about half the time (its MTA bounced
    # mail that the busy host would take on a retry). Postfix's default smtp_skip_5xx_greeting moves
    # past a 5xx greeting and defers as well.
    dns.zone.add("pair.test", "MX", (10, "mx1.example.com"))
    dns.zone.add("pair.test", "MX", (10, "mx2.example.net"))
    mx1.greeting = "554 5.7.1 mx1 does not take mail from you now"
    mx2.greeting = "421 4.3.2 mx2 busy, try again later"
    relay = mx_relay()
    answers = set()
    for n in range(12):  # both orders come up (1 in 2048 that one never does)
        with client(relay) as c:
            assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
            answers.add(c.cmd(f"RCPT TO:<u{n}@pair.test>"))
    assert answers == {(421, mx2.greeting)}
    events = [valid(e) for e in relay.events(wait_for=12)]
    assert {e["kind"] for e in events} == {"deferred"} and not any("bounce_list" in e for e in events)


def test_a_5xx_greeting_with_another_host_unreachable_defers(mx_relay, dns, mx2):
    # The other host could not be reached at all: a retry may reach it, so no permanent answer.
    dns.zone.add("half.test", "MX", (10, "mx2.example.net"))
    dns.zone.add("half.test", "MX", (20, "mx-down.example.com"))
    dns.zone.add("mx-down.example.com", "A", "127.0.0.4")
    mx2.greeting = "554 5.7.1 Service unavailable; client host [127.0.0.1] blocked using zen.spamhaus.org"
    relay = mx_relay()
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<d@half.test>")
    assert code == 451 and text.startswith("451-4.4.1 No mail server of half.test could be reached"), text
    assert "blocked using zen.spamhaus.org" in text and "mx-down.example.com[127.0.0.4]" in text


def test_every_host_greeting_5xx_is_the_most_preferred_hosts_refusal(mx_relay, dns, mx1, mx2):
    dns.zone.add("both.test", "MX", (10, "mx2.example.net"))
    dns.zone.add("both.test", "MX", (20, "mx1.example.com"))
    mx2.greeting = "554 5.7.1 mx2 blocked using zen.spamhaus.org"
    mx1.greeting = "550 5.7.1 mx1 no service"
    relay = mx_relay()
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        assert c.cmd("RCPT TO:<d@both.test>") == (554, mx2.greeting)


def test_shaping_hears_a_throttling_greeting_from_the_mx(mx_relay, dns, mx2):
    from tests.support.upstream import GMAIL_RATE_LIMIT

    dns.zone.add("workspace.test", "MX", (1, "alt1.aspmx.l.google.com"))
    dns.zone.add("alt1.aspmx.l.google.com", "A", "127.0.0.3")
    mx2.greeting = GMAIL_RATE_LIMIT
    relay = mx_relay()
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        assert c.cmd("RCPT TO:<a@workspace.test>")[0] == 421  # Google's words, from its greeting
    connections = mx2.connections
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<b@workspace.test>")
    assert code == 451 and text.startswith("451 4.7.28 Held: gmail deferred mail from sender.test")
    assert mx2.connections == connections  # held here: Google is not even connected to
    pushed = next(e for e in relay.events(wait_for=2) if e["reply"]["source"] == "upstream")
    assert pushed["stage"] == "connect" and pushed["shaping"]["destination"] == "google"


def _shaping_policy(tmp_path, limits: str):
    policies = tmp_path / "policies"
    policies.mkdir(exist_ok=True)
    (policies / "shaping.yaml").write_text(
        f"version: 1\ndestinations:\n  google: {{name: gmail, mx: ['*.google.com'], limits: {limits}}}\n")
    return policies


def test_shaping_caps_the_connections_to_a_providers_mx(mx_relay, dns, mx1, tmp_path):
    dns.zone.add("workspace.test", "MX", (1, "aspmx.l.google.com"))
    dns.zone.add("aspmx.l.google.com", "A", "127.0.0.2")
    relay = mx_relay(policies=str(_shaping_policy(tmp_path, "{connections: 1}")), upstream={"connect_timeout": 1})
    with client(relay) as busy, client(relay) as other:
        assert busy.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        assert busy.cmd("RCPT TO:<b@workspace.test>")[0] == 250  # holds Google's one connection
        assert other.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = other.cmd("RCPT TO:<c@workspace.test>")
        assert code == 451 and text.startswith("451 4.4.5 All 1 connections to google (the mail servers of "
                                               "workspace.test among them; connections in shaping.yaml)")
    assert mx1.connections == 1


def test_a_providers_connection_cap_holds_over_all_its_mx_sets(mx_relay, dns, mx1, tmp_path):
    # Two Workspace domains with MX sets of their own at one provider: its connections are counted together.
    dns.zone.add("workspace.test", "MX", (1, "aspmx.l.google.com"))
    dns.zone.add("aspmx.l.google.com", "A", "127.0.0.2")
    dns.zone.add("other-workspace.test", "MX", (5, "alt1.aspmx.l.google.com"))
    dns.zone.add("alt1.aspmx.l.google.com", "A", "127.0.0.2")
    relay = mx_relay(policies=str(_shaping_policy(tmp_path, "{connections: 1}")), upstream={"connect_timeout": 1})
    with client(relay) as busy, client(relay) as other:
        assert busy.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        assert busy.cmd("RCPT TO:<b@workspace.test>")[0] == 250  # Google's one connection
        assert other.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = other.cmd("RCPT TO:<c@other-workspace.test>")
        assert code == 451 and text.startswith("451 4.4.5 All 1 connections to google ")
        assert busy.cmd("RSET")[0] == 250
    assert mx1.connections == 1
    # Once that connection is idle, the other MX set closes it and opens its own.
    with client(relay) as c:
        assert send_message(c, "a@sender.test", ["c@other-workspace.test"], BODY)[-1][0] == 250
    assert len(mx1.wait_for_messages(1)) == 1
    assert mx1.connections == 2


def test_shaping_closes_a_providers_connection_after_its_messages_per_connection(mx_relay, dns, mx1, tmp_path):
    dns.zone.add("workspace.test", "MX", (1, "aspmx.l.google.com"))
    dns.zone.add("aspmx.l.google.com", "A", "127.0.0.2")
    relay = mx_relay(policies=str(_shaping_policy(tmp_path, "{messages_per_connection: 2}")))
    with client(relay) as c:
        for n in range(3):
            assert send_message(c, "a@sender.test", [f"u{n}@workspace.test"], BODY)[-1][0] == 250
    assert len(mx1.wait_for_messages(3)) == 3
    assert mx1.connections == 2  # two messages on the first, the third on a new one


def test_metrics_time_each_mx_hosts_commands(mx_relay, mx1):
    from tests.support.metrics import samples

    relay = mx_relay(metrics={"listen": "127.0.0.1:0"})
    with client(relay) as c:
        replies = send_message(c, "a@sender.test", ["b@example.com", "nosuchuser@example.com"], BODY)
    assert [r[0] for r in replies] == [250, 250, 550, 354, 250]
    got = samples(relay.http("/metrics")[2])
    eom = {dict(labels)["upstream"]: v for (name, labels), v in got.items()
           if name == "relay_upstream_command_seconds_count" and dict(labels)["command"] == "EOM"}
    assert eom == {f"mx1.example.com:{mx1.port}": 1}
    assert got[("relay_upstream_replies_total", (("class", "5xx"), ("command", "RCPT"),
                                                 ("upstream", f"mx1.example.com:{mx1.port}")))] == 1
    assert got[("relay_refusals_total", (("category", "unknown_recipient"), ("kind", "rejected"),
                                         ("scope", "recipient"), ("source", "upstream")))] == 1


# --- mail that would come back to the relay (RFC 5321 5.1) -----------------------------------------

def test_a_domain_whose_best_mx_is_the_relay_itself_is_refused_as_a_loop(mx_relay, dns, mx1):
    dns.zone.add("loop.test", "MX", (10, "relay.test"))  # the relay's own hostname
    dns.zone.add("loop.test", "MX", (20, "mx1.example.com"))  # worse than us: discarded too
    dns.zone.add("relay.test", "A", "127.0.0.2")
    dns.zone.add("backup.test", "MX", (5, "mx1.example.com"))  # a better host than us: delivered there
    dns.zone.add("backup.test", "MX", (10, "relay.test"))
    relay = mx_relay()
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<someone@loop.test>")
        assert code == 554 and "5.4.6 mail for loop.test loops back to myself" in text and "relay.test" in text
        assert c.cmd("RSET")[0] == 250
        replies = send_message(c, "a@sender.test", ["someone@backup.test"], BODY)
        assert [r[0] for r in replies] == [250, 250, 354, 250]
    assert [m.rcpt_tos for m in mx1.wait_for_messages(1)] == [["someone@backup.test"]]
    rejected = next(e for e in relay.events(wait_for=1) if e["kind"] == "rejected")
    assert rejected["recipient"] == "someone@loop.test"
    assert (rejected["classification"]["category"], rejected["classification"]["scope"]) == ("routing_dns", "relay")
    assert "bounce_list" not in rejected or rejected["bounce_list"] != "listed"


def test_an_mx_address_where_the_relay_itself_listens_is_refused_as_a_loop_not_connected_to(
        dns, zone, relay_factory):
    from tests.support.upstream import free_port

    port = free_port()
    dns.zone.add("self.test", "MX", (10, "mail.self.test"))
    dns.zone.add("mail.self.test", "A", "127.0.0.1")  # where the relay listens, on the MX port
    relay = relay_factory(0, listen=[{"address": f"127.0.0.1:{port}"}],
                          upstream={"mode": "mx", "host": None, "port": port, "starttls": "opportunistic",
                                    "mx_internal_networks": ["127.0.0.0/8"]},
                          resolver={"nameservers": [dns.nameserver], "timeout": 2})
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<someone@self.test>")
        assert code == 554 and "5.4.6" in text and "127.0.0.1 port" in text and "loops back to myself" in text
        assert c.cmd("QUIT")[0] == 221


def test_with_the_smarthost_as_default_route_a_bare_postmaster_goes_there(dns, zone, mx_port, upstream, tmp_path,
                                                                          relay_factory):
    relay = routed_relay(relay_factory, upstream, dns, mx_port, tmp_path,
                         "default: smarthost\ndomains:\n  example.net: mx\n")
    with client(relay) as c:
        assert [r[0] for r in send_message(c, "a@sender.test", ["postmaster"], BODY)] == [250, 250, 354, 250]
    assert upstream.wait_for_messages(1)[0].rcpt_tos == ["postmaster"]


@pytest.mark.parametrize("rcpt, where", [
    ("b@[127.0.0.2]", "would go to [127.0.0.2], a loopback address"),  # mx1 answers there
    ("b@example.com", "would go to mx1.example.com (127.0.0.2), a loopback address"),  # its MX hosts: 127.0.0.4, .2
    ("b@[10.255.255.1]", "would go to [10.255.255.1], a private address"),
    ("b@[IPv6:::ffff:169.254.169.254]", "a link-local address"),  # a cloud's metadata service, v4-mapped
], ids=["literal-loopback", "mx-loopback", "literal-private", "literal-link-local-mapped"])
def test_mx_delivery_never_connects_into_internal_networks_unless_told_to(mx_relay, mx1, rcpt, where):
    # An outbound relay must not reach its own host or networks for a client (SSRF): the old code
    # delivered b@[127.0.0.2] to whatever listened there, and tried 10.255.255.1 until its timeout.
    relay = mx_relay(upstream={"mx_internal_networks": []})
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd(f"RCPT TO:<{rcpt}>")
        assert (code, text[:10]) == (550, "550 5.7.1 "), text
        assert where in text and "upstream.mx_internal_networks" in text, text
        assert c.cmd("QUIT")[0] == 221
    assert mx1.connections == 0 and mx1.messages == []
    (event,) = relay.events(wait_for=1)
    # Refused by the relay's own policy (docs/events.md: kind policy_rejected), about no recipient.
    assert (event["kind"], event["stage"], event["reply"]["source"]) == ("policy_rejected", "rcpt", "relay")
    assert (event["classification"]["rule"], event["classification"]["scope"]) == ("relay:mx-internal", "relay")
    assert event.get("bounce_list") != "listed"
    # An operator who routes to an internal server says so, and it is delivered to.
    relay = mx_relay(upstream={"mx_internal_networks": ["127.0.0.2/32"]})
    with client(relay) as c:
        replies = send_message(c, "a@sender.test", ["b@[127.0.0.2]"], BODY)
    assert [r[0] for r in replies] == [250, 250, 354, 250]
    assert mx1.wait_for_messages(1)[0].rcpt_tos == ["b@[127.0.0.2]"]


# IPv6 forms that carry an IPv4 address, which a host, the network's NAT64 gateway or a 6to4/Teredo relay
# reaches for the relay (relay/delivery/internal.py).
EMBEDDED_INTERNAL = [
    ("64:ff9b::7f00:2", "a loopback address (127.0.0.2 in NAT64 form)"),  # RFC 6052 well-known prefix
    ("64:ff9b::a9fe:a9fe", "a link-local address (169.254.169.254 in NAT64 form)"),  # a metadata service
    ("2002:7f00:2::1", "a loopback address (127.0.0.2 in 6to4 form)"),  # RFC 3056
    ("2002:a00:1::1", "a private address (10.0.0.1 in 6to4 form)"),
    ("::7f00:2", "a loopback address (127.0.0.2 in IPv4-compatible form)"),  # RFC 4291 2.5.5.1
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "a private address (10.0.0.1 in Teredo form)"),  # RFC 4380 4
    # review14 L2: both were connected to (451 4.4.1 "could not be reached"), not refused as internal.
    ("64:ff9b:1::7f00:1", "a loopback address (127.0.0.1 in local-use NAT64 form)"),  # RFC 8215
    ("::ffff:0:7f00:1", "a loopback address (127.0.0.1 in IPv4-translated form)"),  # RFC 2765 2.1 (SIIT)
]


@pytest.mark.parametrize("address, kind", EMBEDDED_INTERNAL, ids=[a for a, _ in EMBEDDED_INTERNAL])
def test_an_mx_at_an_ipv6_address_carrying_an_internal_ipv4_one_is_refused_as_internal(
        mx_relay, mx1, dns, address, kind):
    # Only IPv4-mapped ::ffff:a.b.c.d was read as the IPv4 address inside: an MX host (or a literal) at
    # 64:ff9b::7f00:2 or 2002:7f00:2:: was connected to, and through NAT64 or 6to4 that reaches 127.0.0.2.
    dns.zone.add("embedded.test", "MX", (10, "mx.embedded.test"))
    dns.zone.add("mx.embedded.test", "AAAA", address)
    relay = mx_relay(upstream={"mx_internal_networks": []})
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        for rcpt, where in (("b@embedded.test", "mx.embedded.test ("), (f"b@[IPv6:{address}]", f"[ipv6:{address}]")):
            code, text = c.cmd(f"RCPT TO:<{rcpt}>")
            assert (code, text[:10]) == (550, "550 5.7.1 "), text
            assert f"would go to {where}" in text and f", {kind}; this relay does not deliver" in text, text
        assert c.cmd("QUIT")[0] == 221
    events = relay.events(wait_for=2)
    assert [e["classification"]["rule"] for e in events] == ["relay:mx-internal"] * 2


def test_an_allowed_internal_network_counts_for_its_ipv4_mapped_form(mx_relay, mx1):
    # upstream.mx_internal_networks: ["127.0.0.2/32"] let mail go to 127.0.0.2 but not to the same host
    # written ::ffff:127.0.0.2 (refused 550 5.7.1 as internal): the IPv6 form was compared with an IPv4 network.
    relay = mx_relay(upstream={"mx_internal_networks": ["127.0.0.2/32"]})
    with client(relay) as c:
        replies = send_message(c, "a@sender.test", ["b@[IPv6:::ffff:127.0.0.2]"], BODY)
    assert [r[0] for r in replies] == [250, 250, 354, 250], replies
    assert mx1.wait_for_messages(1)[0].rcpt_tos == ["b@[IPv6:::ffff:127.0.0.2]"]


def test_an_mx_whose_greeting_mixes_codes_is_skipped_for_the_next_one(mx_relay, mx1, mx_port):
    # RFC 5321 4.2.1: one code on every line of a reply. "554-" then "220" was taken as a welcome from
    # the preferred MX (127.0.0.4), which had refused the session; now it is a failed host, as a 554
    # greeting is, and the next MX takes the message.
    from tests.support.scripted_upstream import ScriptedUpstream

    bad = ScriptedUpstream(address="127.0.0.4", port=mx_port).start()
    try:
        bad.reset(greeting=b"554-5.7.1 no service for you\r\n220 mx-down.example.com ESMTP\r\n")
        relay = mx_relay()
        with client(relay) as c:
            replies = send_message(c, "a@sender.test", ["b@example.com"], BODY)
        assert [r[0] for r in replies] == [250, 250, 354, 250]
        assert mx1.wait_for_messages(1)[0].rcpt_tos == ["b@example.com"]
        assert bad.connections == 1 and b"MAIL" not in b"".join(bytes(r) for r in bad.received)
    finally:
        bad.stop()


NEVER_A_HOST = [("A", "224.0.0.1", "a multicast address"), ("A", "239.255.255.250", "a multicast address"),
                ("A", "255.255.255.255", "the limited broadcast address"),
                ("A", "240.0.0.1", "a reserved address (240.0.0.0/4)"), ("A", "0.0.0.0", "the unspecified address"),
                ("AAAA", "ff02::1", "a multicast address"), ("AAAA", "ff0e::101", "a multicast address"),
                ("AAAA", "::ffff:e000:fb", "a multicast address"),
                ("AAAA", "64:ff9b::e000:1", "a multicast address (224.0.0.1 in NAT64 form)")]


@pytest.mark.parametrize("rtype,address,kind", NEVER_A_HOST)
def test_an_mx_address_that_is_never_a_host_is_a_broken_zone_and_the_next_mx_still_gets_the_mail(
        mx_relay, mx1, dns, rtype, address, kind):
    # An MX host at a multicast, broadcast or reserved address was connected to; the failure ("Network is
    # unreachable", or a timeout) was answered 451 4.4.1 "could not be reached", which says nothing of the
    # zone being broken (and 0.0.0.0 was refused for good as "internal", which it is not: it is no host at
    # all). Such an address is now never connected to: the domain's other MX hosts are still tried, and if
    # none is left the reply is 451 4.4.4, naming the address and what it is (a broken zone: its owner can
    # fix it, so the client's retry may then succeed).
    dns.zone.add("nohost.test", "MX", (10, "mx.nohost.test"))
    dns.zone.add("mx.nohost.test", rtype, address)
    dns.zone.add("fallback.test", "MX", (10, "mx.nohost.test"))
    dns.zone.add("fallback.test", "MX", (20, "mx1.example.com"))
    relay = mx_relay(upstream={"mx_internal_networks": ["127.0.0.2/32", "0.0.0.0/8", "::/0"]})
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<b@nohost.test>")
        assert (code, text[:10]) == (451, "451-4.4.4 "), text
        shown = {"::ffff:e000:fb": "::ffff:224.0.0.251"}.get(address, address)  # as the resolver writes it
        assert (f"mx.nohost.test[{shown}]: MX host mx.nohost.test has the address {shown}, {kind}, which is "
                f"never one mail host's (a broken zone, RFC 5321 5.1); not connected to") in text, text
        assert c.cmd("QUIT")[0] == 221
    (event,) = relay.events(wait_for=1)
    assert event["kind"] == "deferred" and event["classification"]["rule"] == "relay:mx-unusable", event
    with client(relay) as c:
        replies = send_message(c, "a@sender.test", ["b@fallback.test"], BODY)
    assert [r[0] for r in replies] == [250, 250, 354, 250], replies
    assert mx1.wait_for_messages(1)[0].rcpt_tos == ["b@fallback.test"]


@pytest.mark.parametrize("address,kind", [
    ("198.18.0.25", "a benchmarking address (RFC 2544, RFC 6890)"),
    ("198.19.255.1", "a benchmarking address (RFC 2544, RFC 6890)"),
    ("192.0.0.9", "an IETF protocol assignment address (RFC 6890)"),
    ("192.0.2.25", "a documentation address (TEST-NET-1, RFC 5737)"),
    ("198.51.100.25", "a documentation address (TEST-NET-2, RFC 5737)"),
    ("203.0.113.25", "a documentation address (TEST-NET-3, RFC 5737)"),
    ("2001:db8::25", "a documentation address (RFC 3849)")])
def test_an_mx_in_special_purpose_space_that_is_not_the_internet_is_refused_as_internal(mx_relay, dns, address, kind):
    # Benchmarking (198.18.0.0/15), IETF protocol assignments (192.0.0.0/24) and documentation space are
    # never a host on the public Internet, but a lab's or an operator's network may have hosts there:
    # they are internal, refused unless upstream.mx_internal_networks lists them. An MX there was
    # connected to, and the timeout answered 451 4.4.1 "could not be reached" for days.
    dns.zone.add("special.test", "MX", (10, "mx.special.test"))
    dns.zone.add("mx.special.test", "AAAA" if ":" in address else "A", address)
    relay = mx_relay(upstream={"mx_internal_networks": []})
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<b@special.test>")
        assert (code, text[:10]) == (550, "550 5.7.1 "), text
        assert f"would go to mx.special.test ({address}), {kind}; this relay does not deliver" in text, text


@pytest.mark.parametrize("first,second", [("224.0.0.25", "10.1.2.3"), ("10.1.2.3", "224.0.0.25")],
                         ids=["never-a-host-first", "internal-first"])
def test_mx_addresses_never_a_host_and_internal_together_are_a_broken_zone_not_unreachable(
        mx_relay, dns, first, second):
    # One MX address never a host's (multicast), the other internal: nothing was connected to, yet the reply
    # was the generic 451 4.4.1 "could not be reached" (relay:mx-unreachable, whose advice is to check port 25
    # egress). It is now 451 4.4.4 relay:mx-unusable, as when every address is never a host's: the zone is
    # broken and its owner can fix it, so it stays temporary (not the permanent 550 of an all-internal set);
    # each address keeps its own line.
    dns.zone.add("mixed.test", "MX", (10, "mx1.mixed.test"))
    dns.zone.add("mixed.test", "MX", (20, "mx2.mixed.test"))
    dns.zone.add("mx1.mixed.test", "A", first)
    dns.zone.add("mx2.mixed.test", "A", second)
    relay = mx_relay(upstream={"mx_internal_networks": []})
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<b@mixed.test>")
        assert c.cmd("QUIT")[0] == 221
    assert (code, text[:10]) == (451, "451-4.4.4 "), text
    assert "[224.0.0.25]: MX host" in text and "a multicast address" in text, text
    assert "10.1.2.3" in text and "internal networks" in text, text
    (event,) = relay.events(wait_for=1)
    assert event["kind"] == "deferred" and event["classification"]["rule"] == "relay:mx-unusable", event


OFFERS_STARTTLS = b"250-scripted.test\r\n250-STARTTLS\r\n250 SIZE 100000000\r\n"
STARTTLS_REFUSALS = pytest.mark.parametrize("refusal", [b"554 5.7.0 TLS not available\r\n",
                                                        b"454 4.7.0 TLS not available due to temporary reason\r\n"],
                                            ids=["554", "454"])


def starttls_refusing_mx(dns, mx_port):
    """refuses.test's one MX host, mx.refuses.test at 127.0.0.4: a scripted server, started (reset() it
    with EHLO=OFFERS_STARTTLS and the STARTTLS reply)."""
    from tests.support.scripted_upstream import ScriptedUpstream

    dns.zone.add("refuses.test", "MX", (10, "mx.refuses.test"))
    dns.zone.add("mx.refuses.test", "A", "127.0.0.4")
    return ScriptedUpstream(address="127.0.0.4", port=mx_port).start()


@STARTTLS_REFUSALS
def test_an_mx_refusing_starttls_when_required_is_named_as_a_refusal_not_a_failed_handshake(
        mx_relay, dns, mx_port, refusal):
    # upstream.starttls: required, and the MX host offers STARTTLS but refuses it. The 451 4.7.5 was right,
    # but its text said "TLS handshake failed: ..." where no handshake was begun: the operator went looking
    # at certificates. It now says the host refused STARTTLS, with the host's own reply; nothing is sent in
    # clear. Where TLS is opportunistic, the same host still gets the mail in clear, and the event says why
    # (on the same connection: test_an_mx_refusing_opportunistic_starttls_gets_the_mail_in_clear_on_the_same_session).
    up = starttls_refusing_mx(dns, mx_port)
    said = refusal.decode().strip()
    try:
        up.reset(EHLO=OFFERS_STARTTLS, STARTTLS=refusal)
        relay = mx_relay(upstream={"starttls": "required"})
        with client(relay) as c:
            assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
            code, text = c.cmd("RCPT TO:<b@refuses.test>")
            assert c.cmd("QUIT")[0] == 221
        assert (code, text[:10]) == (451, "451-4.7.5 "), text
        assert (f"451 4.7.5 mx.refuses.test[127.0.0.4]: TLS policy required for refuses.test: MX host "
                f"mx.refuses.test[127.0.0.4]: refused STARTTLS ({said})") in text, text
        assert "handshake" not in text
        assert all(b"MAIL FROM" not in bytes(r) for r in up.received)  # nothing in clear
        relay.stop()
        up.reset(EHLO=OFFERS_STARTTLS, STARTTLS=refusal,
                 RCPT=b"550 5.1.1 no such user\r\n")
        relay = mx_relay()  # opportunistic
        with client(relay) as c:
            assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
            assert c.cmd("RCPT TO:<nosuchuser@refuses.test>")[0] == 550  # the host's own reply, in clear
            assert c.cmd("QUIT")[0] == 221
        (event,) = [e for e in relay.events(wait_for=1) if e["kind"] == "rejected"]
        assert event["upstream"]["tls_note"] == f"refused STARTTLS ({said}); delivered in clear (opportunistic TLS)"
        assert event["upstream"]["tls"] is False and up.connections == 1, event["upstream"]
    finally:
        up.stop()


@STARTTLS_REFUSALS
def test_an_mx_refusing_opportunistic_starttls_gets_the_mail_in_clear_on_the_same_session(
        mx_relay, dns, mx_port, refusal):
    # RFC 3207 4: a refused STARTTLS (no handshake begun) leaves the session as it was, and the client
    # decides whether to go on. With opportunistic TLS the relay dropped the connection and dialled the
    # same host again in clear, as after a broken handshake: two connections where one does, one more
    # against the host's connection limits. Postfix at level `may`, and the smarthost path, go on in clear
    # on the same session.
    up = starttls_refusing_mx(dns, mx_port)
    try:
        up.reset(EHLO=OFFERS_STARTTLS, STARTTLS=refusal)
        relay = mx_relay()  # opportunistic
        with client(relay) as c:
            assert [r[0] for r in send_message(c, "a@sender.test", ["b@refuses.test"], BODY)] == [250, 250, 354, 250]
            assert c.cmd("QUIT")[0] == 221
        assert up.messages == 1
        assert up.connections == 1, [bytes(r) for r in up.received]
        (session,) = [bytes(r) for r in up.received]
        assert session.index(b"STARTTLS") < session.index(b"MAIL FROM:<a@sender.test>"), session
        assert session.count(b"EHLO") == 1, session  # TLS never began: the EHLO reply still holds
    finally:
        up.stop()


def test_the_mx_hosts_and_addresses_tried_are_configurable(mx_relay, dns):
    # RFC 5321 5.1: the limit on MX hosts and addresses tried "SHOULD be configurable"; it was fixed at 10
    # hosts and 10 connections. upstream.mx_max_hosts and upstream.mx_max_addresses now set it.
    for i in range(20):
        dns.zone.add("many.test", "MX", (i, f"mx{i}.many.test"))  # none has an address
    for i in range(6):
        dns.zone.add("down.test", "MX", (i, f"mx{i}.down.test"))
        dns.zone.add(f"mx{i}.down.test", "A", "127.0.0.4")  # nothing listens there
    relay = mx_relay(upstream={"mx_max_hosts": 3, "mx_max_addresses": 2})
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<b@many.test>")
        assert code == 451 and "mx0.many.test: the host has no address" in text, text
        code, text = c.cmd("RCPT TO:<b@down.test>")
        assert code == 451 and text.count("[127.0.0.4]:") == 2, text  # two connections tried
        assert "mx0.down.test[127.0.0.4]" in text and "mx1.down.test[127.0.0.4]" in text, text
    asked = {name for name, rtype in dns.zone.queries if rtype in ("A", "AAAA") and name.endswith(".many.test.")}
    assert asked == {f"mx{i}.many.test." for i in range(3)}  # the three most preferred
    relay.stop()
    relay = mx_relay(upstream={"mx_max_hosts": 20, "mx_max_addresses": 20})
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<b@down.test>")
        assert code == 451 and text.count("[127.0.0.4]:") == 6, text  # every host, past the old 10 hosts too
    asked = {name for name, rtype in dns.zone.queries if rtype in ("A", "AAAA") and name.endswith(".many.test.")}
    assert len(asked) == 3  # the many.test answers are cached; the old limits hold no more


def test_an_international_domain_goes_to_its_own_mx_never_to_the_idna_2003_lookalikes(mx_relay, dns, mx1, mx2):
    # faß.de and fass.de are two registered domains (IDNA 2008, RFC 5891: faß.de is xn--fa-hia.de;
    # DENIC registers both since 2010). dnspython's default codec is IDNA 2003, which maps ß to ss:
    # anna@faß.de was delivered to fass.de's MX (another organisation), and the MTA-STS record asked
    # for was _mta-sts.fass.de (review21 F2).
    dns.zone.add("fass.de", "MX", (10, "mx1.example.com"))        # somebody else's domain
    dns.zone.add("xn--fa-hia.de", "MX", (10, "mx2.example.net"))  # the recipient's domain
    relay = mx_relay()
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test> SMTPUTF8")[0] == 250
        assert c.cmd("RCPT TO:<anna@faß.de>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(BODY + b".\r\n")
        assert c.reply()[0] == 250
        c.cmd("QUIT")
    assert mx2.wait_for_messages(1)[0].rcpt_tos == ["anna@faß.de"]
    assert mx1.messages == []
    asked = {q for q in dns.zone.queries if "fa" in q[0]}
    assert ("xn--fa-hia.de.", "MX") in asked and ("_mta-sts.xn--fa-hia.de.", "TXT") in asked, asked
    assert not {q for q in asked if "fass" in q[0]}, asked


@pytest.mark.parametrize("domain", ["\u2603.com", "a\u200db.test", "-dash\u00e9.test"])
def test_a_domain_no_idna_2008_name_can_have_is_a_syntax_refusal_never_domain_evidence(mx_relay, dns, domain):
    # A snowman (allowed by IDNA 2003, not by IDNA 2008), a joiner out of place, a label starting with a
    # hyphen: no domain can have these names, so the address is wrong (553 5.1.3, RFC 3463), not a
    # domain that does not exist (which would count towards listing it) and never a traceback.
    relay = mx_relay()
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test> SMTPUTF8")[0] == 250
        code, text = c.cmd(f"RCPT TO:<x@{domain}>")
        assert code == 553 and text.startswith("553 5.1.3 ") and "IDNA 2008" in text, text
        assert text.isascii(), text
        assert c.cmd("QUIT")[0] == 221
    assert not [q for q in dns.zone.queries if q[1] == "MX"]
    # Refused before routing, by the one address check of both modes (service.address_problem,
    # review23 F5): the client's syntax error, as in smarthost mode.
    event = next(valid(e) for e in relay.events(wait_for=1) if e["kind"] == "policy_rejected")
    assert event["classification"]["rule"] == "relay:address-syntax"
    assert event["classification"]["category"] == "syntax_error"
    assert event.get("bounce_list") is None


def test_the_second_nxdomain_sighting_is_never_the_cached_first_answer(mx_relay, dns, tmp_path):
    # review21 F1: NXDOMAIN answers carry the zone's SOA (RFC 2308 3), a .de-like minimum of 7200 s. The
    # resolver served the first answer from its cache for two hours; a second RCPT past seen_again_after
    # (1 s here, 1 h shipped) read it back, asked DNS nothing, and listed @flaky.test although the domain
    # existed again. A sighting is dated by when DNS answered: the replay is the first sighting again.
    import time

    dns.zone.negative_ttl = 7200
    relay = mx_relay(policies=domain_evidence_after_a_second(tmp_path))
    assert rcpt_once(relay, "a@flaky.test")[0] == 550  # NXDOMAIN, the first sighting
    dns.zone.add("flaky.test", "MX", (10, "mx1.example.com"))  # the owner fixed the zone
    time.sleep(1.2)
    assert rcpt_once(relay, "b@flaky.test")[0] == 550  # the cache still says NXDOMAIN (until max_negative_ttl)
    assert "@flaky.test" not in bounce_list_entries(relay)


def test_a_null_mx_read_back_from_the_cache_is_no_second_sighting(mx_relay, dns, tmp_path):
    import time

    dns.zone.ttl = 7200  # null MX records are commonly published with hours
    dns.zone.add("wasnull.test", "MX", (0, "."))
    relay = mx_relay(policies=domain_evidence_after_a_second(tmp_path))
    assert rcpt_once(relay, "a@wasnull.test")[0] == 556
    dns.zone.clear("wasnull.test")
    dns.zone.add("wasnull.test", "MX", (10, "mx1.example.com"))  # the domain takes mail now
    time.sleep(1.2)
    assert rcpt_once(relay, "b@wasnull.test")[0] == 556  # from the cache
    assert "@wasnull.test" not in bounce_list_entries(relay)


def test_a_domain_that_stays_missing_is_listed_on_a_second_answer_from_dns(mx_relay, dns, tmp_path):
    # The other side of the one above: with the negative answer cached 1 s (resolver.max_negative_ttl),
    # the second RCPT asks DNS again, hears NXDOMAIN again, and that fresh answer lists the domain.
    import time

    dns.zone.negative_ttl = 7200
    relay = mx_relay(policies=domain_evidence_after_a_second(tmp_path), resolver={"max_negative_ttl": "1s"})
    assert rcpt_once(relay, "a@gone.test")[0] == 550
    time.sleep(1.2)
    asked = dns.zone.queries.count(("gone.test.", "MX"))
    assert rcpt_once(relay, "b@gone.test")[0] == 550
    assert dns.zone.queries.count(("gone.test.", "MX")) > asked
    assert bounce_list_entries(relay) == ["@gone.test"]


def test_a_resolver_that_says_nxdomain_for_every_outside_name_never_lists_a_domain(mx_relay, dns, tmp_path):
    # review21 F4: resolver.nameservers pointing at a server that knows only its own names (split-horizon,
    # a filtering forwarder whose upstream is gone) says NXDOMAIN for gmail.com, outlook.com, yahoo.com;
    # two rounds past seen_again_after listed all three for 30 days. The resolver must first show it sees
    # the public DNS: the domain's top-level domain, else resolver.control_name. Here it sees neither.
    import time

    dns.zone.tlds.clear()
    relay = mx_relay(policies=domain_evidence_after_a_second(tmp_path), resolver={"control_name": "com"})
    for n in range(2):
        if n:
            time.sleep(1.2)
        for domain in ("gmail.com", "outlook.com", "yahoo.com"):
            code, text = rcpt_once(relay, f"user{n}@{domain}")
            assert code == 451 and text.startswith("451 4.4.3 ") and "does not see the public DNS" in text, text
    assert bounce_list_entries(relay) == []
    deferred = [valid(e) for e in relay.events(wait_for=6) if e["kind"] == "deferred"]
    assert len(deferred) == 6
    assert {(e["classification"]["rule"], e["classification"]["scope"]) for e in deferred} == {
        ("relay:mx-dns-unreliable", "relay")}
    # Once the resolver sees the public DNS again, an NXDOMAIN is the domain's.
    dns.zone.tlds.add("com")
    assert rcpt_once(relay, "user@gone-for-good.com")[0] == 550


def test_without_a_control_name_a_resolver_that_knows_only_its_zones_still_finds_a_domain_missing(mx_relay, dns,
                                                                                                  tmp_path):
    # The shipped default asks no control zone: a DNS server that knows only its own zones (a test bed,
    # an air-gapped site; no top-level domain at all) answered every NXDOMAIN 451 mx-dns-unreliable, and
    # a domain that does not exist was never listed there. The domain breaker guards instead.
    import time

    dns.zone.tlds.clear()
    dns.zone.negative_ttl = 1
    relay = mx_relay(policies=domain_evidence_after_a_second(tmp_path))
    assert rcpt_once(relay, "a@nowhere.test")[0] == 550
    time.sleep(1.2)
    code, text = rcpt_once(relay, "b@nowhere.test")
    assert code == 550 and "NXDOMAIN" in text, text
    assert bounce_list_entries(relay) == ["@nowhere.test"]
    assert not [q for q in dns.zone.queries if q[1] == "SOA"]


def test_a_typo_top_level_domain_is_still_a_domain_that_does_not_exist(mx_relay, dns, tmp_path):
    # gmail.con: its top-level domain does not exist either, so the control is resolver.control_name
    # (com here), which the resolver sees: the NXDOMAIN is believed, and lists at its second answer.
    import time

    dns.zone.negative_ttl = 1
    relay = mx_relay(policies=domain_evidence_after_a_second(tmp_path), resolver={"control_name": "com"})
    assert rcpt_once(relay, "a@gmail.con")[0] == 550
    time.sleep(1.2)
    assert rcpt_once(relay, "b@gmail.con")[0] == 550
    assert bounce_list_entries(relay) == ["@gmail.con"]
    assert ("com.", "SOA") in dns.zone.queries and ("con.", "SOA") in dns.zone.queries


def test_many_domains_found_missing_at_once_are_held_for_the_operator(mx_relay, dns, tmp_path):
    # review21 F4, the second guard: the resolver sees the public DNS (the control passes), yet domain
    # after domain says NXDOMAIN (an authoritative platform's outage, a filtering resolver blocking them).
    # Over `domains: breaker: distinct_domains` (2 here, 10 shipped) listings within its window, the
    # listings are held for the operator, the earlier ones taken back, and a warning says why.
    import sys
    import time

    policies = Path(domain_evidence_after_a_second(tmp_path))
    text = (policies / "suppression.yaml").read_text()
    (policies / "suppression.yaml").write_text(text.replace("distinct_domains: 10", "distinct_domains: 2"))
    relay = mx_relay(policies=str(policies))
    domains = ("gone1.test", "gone2.test", "gone3.test")
    for n in range(2):
        if n:
            time.sleep(1.2)
        for domain in domains:
            assert rcpt_once(relay, f"user{n}@{domain}")[0] == 550
    assert bounce_list_entries(relay) == []
    events = relay.events(wait_for=10)
    listed = [e["recipient"] for e in events if e["kind"] == "bounce_listed"]
    unlisted = sorted(e["recipient"] for e in events if e["kind"] == "bounce_unlisted")
    assert listed == ["@gone1.test", "@gone2.test"] and unlisted == listed, (listed, unlisted)
    warning = next(valid(e) for e in events if e["kind"] == "warning" and e.get("check") == "breaker")
    assert warning["breaker"] == "domains" and warning["held"] == ["@" + d for d in domains]
    assert "resolver" in warning["text"]
    held = json.loads(subprocess.run([sys.executable, "-m", "relay", "bounces", "held", "--json", "-c",
                                      str(relay.config_path)], capture_output=True, text=True, check=True,
                                     timeout=60).stdout)
    assert sorted((e["address"], e["held_by"]) for e in held) == [("@" + d, "domains") for d in domains]
    subprocess.run([sys.executable, "-m", "relay", "bounces", "confirm", "gone2.test", "--reason", "checked",
                    "-c", str(relay.config_path)], capture_output=True, text=True, check=True, timeout=60)
    assert bounce_list_entries(relay) == ["@gone2.test"]


def test_an_international_domain_that_does_not_exist_is_listed_under_its_a_labels(mx_relay, dns, tmp_path):
    # The NXDOMAIN reply names the domain in A-labels now (IDNA 2008); the evidence still reads it as the
    # recipient's own domain, and the entry is the key the bounce list gives faß.de (relay/address.py).
    import time

    relay = mx_relay(policies=domain_evidence_after_a_second(tmp_path))
    for n in range(2):
        if n:
            time.sleep(1.2)
        with client(relay) as c:
            assert c.cmd("MAIL FROM:<a@sender.test> SMTPUTF8")[0] == 250
            code, text = c.cmd(f"RCPT TO:<u{n}@gone-faß.de>")
            assert code == 550 and "xn--gone-fa-6va.de does not exist" in text, text
    assert bounce_list_entries(relay) == ["@xn--gone-fa-6va.de"]


# -- review29: DANE per address family and at a CNAME target; EHLO refusals are the host's words ------

@pytest.mark.parametrize("matching", [False, True])
@pytest.mark.parametrize("a_lookup", ["bogus", "absent"])
def test_dane_holds_when_the_a_lookup_of_a_secure_mx_host_fails(tmp_path, ca, dns, relay_factory, a_lookup,
                                                                 matching):
    """review29 F1: a validating resolver answers SERVFAIL to a forged A RRset. That failure turned DANE
    off for the host, and the mail went to its IPv6 address with opportunistic TLS: any certificate.
    Each family is judged on its own (RFC 7672 2.2.2): the AAAA records validated, so the host's
    certificate is checked against its TLSA records over IPv6. ("absent": the same host without an A
    record, where DANE always held.)"""
    import hashlib

    port = free_port(("::1", "127.0.0.2"))
    issued = ca.issue("mx.dane6.test")
    server = FakeUpstream(hostname="mx.dane6.test", address="::1", port=port, tls_context=issued.context()).start()
    try:
        z = dns.zone
        z.add("dane6.test", "MX", (10, "mx.dane6.test"))
        z.add("mx.dane6.test", "AAAA", "::1")
        if a_lookup == "bogus":
            z.add("mx.dane6.test", "A", "127.0.0.9")
            z.bogus.add(("mx.dane6.test", "A"))
        digest = hashlib.sha256(issued.spki()).hexdigest() if matching else "00" * 32
        z.add(f"_{port}._tcp.mx.dane6.test", "TLSA", (3, 1, 1, digest))
        z.sign("dane6.test")
        relay = relay_factory(0, upstream={"mode": "mx", "host": None, "port": port, "starttls": "opportunistic",
                                           "mx_internal_networks": ["::1/128", "127.0.0.0/8"]},
                              resolver={"nameservers": [dns.nameserver], "timeout": 2})
        with client(relay) as c:
            assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
            code, text = c.cmd("RCPT TO:<nosuchuser@dane6.test>" if matching else "RCPT TO:<b@dane6.test>")
        event = next(valid(e) for e in relay.events(wait_for=1) if e["kind"] in ("rejected", "deferred"))
        if matching:
            assert code == 550  # the MX's own words, over a session DANE authenticated
            assert event["upstream"]["tls_policy"] == "dane" and event["upstream"]["ip"] == "::1"
            return
        assert code == 451 and text.startswith("451 4.7.5 TLS policy dane for dane6.test"), text
        assert "no TLSA record matches" in text
        assert server.messages == []
        assert event["classification"]["rule"] == "relay:tls-dane"
    finally:
        server.stop()


@pytest.mark.parametrize("published_at", ["target", "target-matching", "mx-name"])
def test_dane_tlsa_records_at_the_cname_target_of_an_mx_host(tmp_path, ca, tls_mx, mx_relay, dns, mx_port,
                                                              published_at):
    """review29 F2: RFC 7672 2.2.2: an MX host that is an alias (mail.hosted.test CNAME the provider's
    mx3.tls.test) has its TLSA records looked up at the expanded name first, then at its own name. Only
    the MX name was asked, so a provider's records were never used and the mail went with any certificate."""
    import hashlib

    issued = ca.issue("mx3.tls.test")
    server = tls_mx(context=issued.context())
    z = dns.zone
    z.add("hosted.test", "MX", (10, "mail.hosted.test"))
    z.add("mail.hosted.test", "CNAME", "mx3.tls.test")
    z.add("mx3.tls.test", "A", "127.0.0.4")
    digest = hashlib.sha256(issued.spki()).hexdigest() if published_at == "target-matching" else "00" * 32
    owner = "mail.hosted.test" if published_at == "mx-name" else "mx3.tls.test"
    z.add(f"_{mx_port}._tcp.{owner}", "TLSA", (3, 1, 1, digest))
    z.sign("hosted.test")
    z.sign("tls.test")
    relay = mx_relay()
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<nosuchuser@hosted.test>" if published_at == "target-matching"
                           else "RCPT TO:<b@hosted.test>")
    events = [valid(e) for e in relay.events(wait_for=1)]
    if published_at == "target-matching":
        assert code == 550  # the MX's own words, over a session the provider's TLSA record authenticated
        event = next(e for e in events if e["kind"] == "rejected")
        assert event["upstream"]["tls_policy"] == "dane" and event["upstream"]["tls"] is True
        return
    assert code == 451 and text.startswith("451 4.7.5 TLS policy dane for hosted.test"), text
    assert f"_{mx_port}._tcp.{owner}" in text and "no TLSA record matches" in text
    assert server.messages == []
    assert next(e for e in events if e["kind"] == "deferred")["classification"]["rule"] == "relay:tls-dane"


def test_dane_does_not_follow_an_alias_into_an_unsigned_zone(tls_mx, mx_relay, dns, mx_port):
    # RFC 7672 2.2.2: the CNAME chain must validate as a whole (the target's zone is unsigned here): no
    # DANE, the mail goes with opportunistic TLS as to any host outside DNSSEC.
    server = tls_mx()
    z = dns.zone
    z.add("hosted.test", "MX", (10, "mail.hosted.test"))
    z.add("mail.hosted.test", "CNAME", "mx3.tls.test")
    z.add("mx3.tls.test", "A", "127.0.0.4")
    z.add(f"_{mx_port}._tcp.mx3.tls.test", "TLSA", (3, 1, 1, "00" * 32))
    z.sign("hosted.test")
    relay = mx_relay()
    with client(relay) as c:
        assert [r[0] for r in send_message(c, "a@sender.test", ["b@hosted.test"], BODY)] == [250, 250, 354, 250]
    assert server.wait_for_messages(1)[0].rcpt_tos == ["b@hosted.test"]


def _ehlo_mx(dns, mx_port, name="mx.ehlo.test"):
    from tests.support.scripted_upstream import ScriptedUpstream
    dns.zone.add("ehlo.test", "MX", (10, name))
    dns.zone.add(name, "A", "127.0.0.4")
    return ScriptedUpstream(address="127.0.0.4", port=mx_port).start()


GMAIL_EHLO_421 = (b"421-4.7.0 Try again later, closing connection. (EHLO)\r\n"
                  b"421 4.7.0  https://support.google.com/mail/answer/81126 - gsmtp\r\n")


@pytest.mark.parametrize("close", [True, False])
def test_a_421_to_ehlo_reaches_the_client_in_the_hosts_own_words(mx_relay, dns, mx_port, close):
    """review29 F3: a 421 to EHLO fell back to HELO on a connection aiosmtplib had closed: the client got
    "unreachable (Server not connected)", relay:mx-unreachable, and the host's words were lost."""
    server = _ehlo_mx(dns, mx_port)
    try:
        server.reset(EHLO=GMAIL_EHLO_421, close_after={"EHLO"} if close else set())
        relay = mx_relay()
        with client(relay) as c:
            assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
            code, text = c.cmd("RCPT TO:<b@ehlo.test>")
        assert code == 421 and "Try again later, closing connection. (EHLO)" in text, text
        assert all(b"HELO " not in bytes(r) and b"MAIL" not in bytes(r) for r in server.received)
        event = next(valid(e) for e in relay.events(wait_for=1) if e["kind"] == "deferred")
        assert event["reply"]["source"] == "upstream" and event["upstream"]["host"] == "mx.ehlo.test"
    finally:
        server.stop()


def test_a_450_to_ehlo_is_no_cue_to_hand_the_mail_over_in_helo_mode(mx_relay, dns, mx_port):
    # review29 F3: the host said "unavailable" and left the connection open; the relay said HELO and
    # handed it the mail. Only "EHLO not known" (500/502, RFC 5321 4.1.4, 3.2) falls back to HELO.
    server = _ehlo_mx(dns, mx_port)
    try:
        server.reset(EHLO=b"450 4.3.2 Service currently unavailable\r\n")
        relay = mx_relay()
        with client(relay) as c:
            assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
            assert c.cmd("RCPT TO:<b@ehlo.test>") == (450, "450 4.3.2 Service currently unavailable")
        assert all(b"HELO " not in bytes(r) and b"MAIL" not in bytes(r) for r in server.received)
    finally:
        server.stop()


@pytest.mark.parametrize("code", [500, 502])
def test_a_server_that_does_not_know_ehlo_is_greeted_with_helo(mx_relay, dns, mx_port, code):
    server = _ehlo_mx(dns, mx_port)
    try:
        server.reset(EHLO=f"{code} 5.5.1 Command unrecognized\r\n".encode())
        relay = mx_relay()
        with client(relay) as c:
            assert [r[0] for r in send_message(c, "a@sender.test", ["b@ehlo.test"], BODY)] == [250, 250, 354, 250]
        assert b"HELO " in bytes(server.received[0]) and b"MAIL FROM" in bytes(server.received[0])
    finally:
        server.stop()


def test_gmails_throttle_at_ehlo_reaches_traffic_shaping(mx_relay, dns, mx_port):
    # review29 F3: Google answers EHLO with 421 4.7.28 when it throttles; lost as "unreachable", shaping
    # never heard it and the relay went on knocking. Now it holds the sender's next mail for Google.
    server = _ehlo_mx(dns, mx_port, name="aspmx.l.google.com")
    try:
        from tests.support.upstream import GMAIL_RATE_LIMIT
        server.reset(EHLO=GMAIL_RATE_LIMIT.encode() + b"\r\n", close_after={"EHLO"})
        relay = mx_relay()
        with client(relay) as c:
            assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
            code, text = c.cmd("RCPT TO:<b@ehlo.test>")
        assert code == 421 and text.startswith("421-4.7.28 Gmail has detected an unusual rate"), text
        connections = server.connections
        with client(relay) as c:
            assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
            code, text = c.cmd("RCPT TO:<c@ehlo.test>")
        assert code == 451 and text.startswith("451 4.7.28 Held: gmail deferred mail from sender.test"), text
        assert server.connections == connections  # held here, Google not asked again
    finally:
        server.stop()


@pytest.mark.parametrize("level", ["required", "opportunistic"])
def test_a_421_to_the_ehlo_after_starttls_is_the_hosts_reply_and_no_cue_for_clear_text(
        tmp_path, tls_mx, mx_relay, dns, level):
    """review29 F4: the EHLO after a successful STARTTLS sat inside the handshake's error handling: the
    host's 421 became "TLS handshake failed: Server not connected" (relay:tls-policy), and under
    opportunistic TLS the relay dialled again and delivered in clear to a host that had just done TLS."""
    server = tls_mx()
    server.ehlo_after_tls_reply = "421 4.7.0 mx3.tls.test Service not available, closing transmission channel"
    dns.zone.add("tls.test", "MX", (10, "mx3.tls.test"))
    dns.zone.add("mx3.tls.test", "A", "127.0.0.4")
    relay = mx_relay(policies=tls_policy_dir(tmp_path, f"tls.test: {level}\n"))
    with client(relay) as c:
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<b@tls.test>")
    assert (code, text) == (421, server.ehlo_after_tls_reply)
    assert server.connections == 1 and server.messages == []
    event = next(valid(e) for e in relay.events(wait_for=1) if e["kind"] == "deferred")
    assert event["reply"]["source"] == "upstream"
    assert event["upstream"]["tls"] is True and event["upstream"]["tls_protocol"] is not None


def test_a_client_gone_after_its_final_dot_to_the_mx_leaves_an_event_saying_the_outcome_is_unknown(mx_relay, mx2):
    """As through the smarthost (tests/test_frontdoor_hostile.py): the final dot went to the destination's
    MX, then the client reset the connection before the MX answered. The MX may have queued the message
    all the same, so the relay records it deferred, its outcome unknown, never nothing at all."""
    import socket
    import struct

    from relay.service import UNKNOWN_OUTCOME
    from tests.support.processes import wait_until

    mx2.slow_seconds = 30.0  # the MX has it all and has not answered yet
    relay = mx_relay()
    gone = client(relay)
    assert gone.cmd("MAIL FROM:<a@sender.test>")[0] == 250
    assert gone.cmd("RCPT TO:<slowdata@example.net>")[0] == 250
    assert gone.cmd("DATA")[0] == 354
    gone.send(BODY.replace(b"<m1@", b"<gone@") + b".\r\n")
    assert wait_until(lambda: "DATA" in mx2.commands, timeout=15)  # the MX read the final dot
    gone.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    gone.close()  # a reset: nothing more of this client's is read or answered
    events = [valid(e) for e in relay.events(wait_for=1)]
    assert [(e["kind"], e["stage"], e["recipient"], e.get("outcome")) for e in events] == [
        ("deferred", "data", "slowdata@example.net", UNKNOWN_OUTCOME)], events
    assert events[0]["classification"]["rule"] == "relay:client-gone-after-dot"
    assert events[0]["message_id"] == "<gone@sender.test>"
    assert events[0]["upstream"]["route"] == "mx"
    with client(relay) as other:  # the relay serves on
        assert send_message(other, "a@sender.test", ["b@example.net"], BODY)[-1][0] == 250


def test_a_client_gone_once_the_mx_refused_its_final_dot_leaves_that_refusal_not_an_unknown_outcome(
        mx_relay, mx2, tmp_path, monkeypatch):
    """As through the smarthost (tests/test_frontdoor_hostile.py, review F2): the MX answered the final dot
    with a 550, and the client reset the connection while the relay was still recording it (its count
    waits for the bounce list's lock, held by another process). The MX's refusal is the outcome: its event
    and its count, never "deferred, outcome unknown"."""
    import sqlite3

    from tests.support.client_gone import bounce_list_locked, reset_once_read

    refusal = "550 5.1.1 <refused550@example.net>: Recipient address rejected: User unknown in virtual mailbox table"
    mx2.data_replies["refused550"] = refusal
    relay = mx_relay(metrics={"listen": "127.0.0.1:0"})

    gone = client(relay)
    assert gone.cmd("MAIL FROM:<a@sender.test>")[0] == 250
    assert gone.cmd("RCPT TO:<refused550@example.net>")[0] == 250
    assert gone.cmd("DATA")[0] == 354
    with bounce_list_locked(tmp_path, monkeypatch):
        gone.send(BODY.replace(b"<m1@", b"<refused@") + b".\r\n")
        reset_once_read(relay, gone, "EOM")
    events = [valid(e) for e in relay.events(wait_for=1)]
    assert [(e["kind"], e["stage"], e["recipient"], e["reply"]["text"], e.get("outcome")) for e in events] == [
        ("rejected", "data", "refused550@example.net", refusal, None)], events
    assert events[0]["upstream"]["route"] == "mx" and events[0]["message_id"] == "<refused@sender.test>"
    with sqlite3.connect(tmp_path / "bounces.db") as db:
        assert db.execute("SELECT count(*) FROM relay_bounce_failures").fetchone()[0] == 1


def test_a_client_gone_once_the_mx_refused_its_rcpt_leaves_that_refusal_and_its_listing(
        mx_relay, mx2, tmp_path, monkeypatch):
    """As through the smarthost (tests/test_frontdoor_hostile.py): the MX refused the RCPT with a 550 5.1.1
    and the client reset the connection while the relay was recording it (its listing waits for the bounce
    list's lock, held by another process). The relay cancelled the command with the client, and the MX's
    refusal, its event and its listing were lost. They are written once the lock is free."""
    import sqlite3

    from tests.support.client_gone import bounce_list_locked, reset_once_read

    refusal = "550 5.1.1 <refused550@example.net>: Recipient address rejected: User unknown in virtual mailbox table"
    mx2.rcpt_replies["refused550"] = refusal
    relay = mx_relay(metrics={"listen": "127.0.0.1:0"})

    gone = client(relay)
    assert gone.cmd("MAIL FROM:<a@sender.test>")[0] == 250
    with bounce_list_locked(tmp_path, monkeypatch):
        gone.send(b"RCPT TO:<refused550@example.net>\r\n")
        reset_once_read(relay, gone, "RCPT")
    events = [valid(e) for e in relay.events(wait_for=2, timeout=30)]
    assert [(e["kind"], e["stage"], e["recipient"]) for e in events] == [
        ("rejected", "rcpt", "refused550@example.net"), ("bounce_listed", "rcpt", "refused550@example.net")], events
    assert events[0]["reply"]["text"] == refusal and events[0]["upstream"]["route"] == "mx"
    with sqlite3.connect(tmp_path / "bounces.db") as db:
        assert db.execute("SELECT address FROM relay_bounces").fetchall() == [("refused550@example.net",)]
    with client(relay) as other:  # the relay serves on
        assert send_message(other, "a@sender.test", ["b@example.net"], BODY)[-1][0] == 250
