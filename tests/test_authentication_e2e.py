"""DKIM signing and the SPF pre-flight through a running relay, checked by Mail::DKIM and a
loopback DNS server (what a receiver would see)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from relay.dkim import generate_key, private_key_pem, public_key_record
from tests.support.dkim_verify import mail_dkim
from tests.support.smtp_client import RawSMTP, send_message

REPO = Path(__file__).resolve().parent.parent
BODY = ("From: Support <support@signed.test>\r\nTo: b@example.com\r\nSubject: Grüße\r\n"
        "Message-ID: <x1@signed.test>\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n\r\n"
        ".leading dot\r\nBody ünïcödé line\r\n").encode()


@pytest.fixture
def signing_relay(tmp_path, dns, upstream, relay_factory):
    key = generate_key("rsa", 2048)
    key_path = tmp_path / "signed.test.s1.key"
    key_path.write_bytes(private_key_pem(key))
    key_path.chmod(0o600)
    dns.zone.txt("s1._domainkey.signed.test", public_key_record(key))
    dns.zone.txt("signed.test", "v=spf1 ip4:203.0.113.5 -all")
    dns.zone.txt("badspf.test", "v=spf1 ip4:198.51.100.1 -all")
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    (policies / "domains.yaml").write_text(yaml.safe_dump({
        "signed.test": {"dkim": [{"selector": "s1", "key": str(key_path)}], "spf": "reject"},
        "badspf.test": {"spf": "reject"},
        "warnspf.test": {"spf": "warn"},
    }))
    dns.zone.txt("warnspf.test", "v=spf1 -all")
    return relay_factory(upstream.port, policies=str(policies), egress_ips=["203.0.113.5"],
                         resolver={"nameservers": [dns.nameserver]})


def test_relayed_message_is_signed_and_verifies_with_mail_dkim(signing_relay, upstream, dns):
    with RawSMTP(signing_relay.host, signing_relay.port) as c:
        c.cmd("EHLO client.test")
        assert send_message(c, "bounces@signed.test", ["b@example.com"], BODY)[-1][0] == 250
    (msg,) = upstream.wait_for_messages(1)
    assert b"DKIM-Signature: v=1; a=rsa-sha256" in msg.data
    result = mail_dkim(msg.data, dns.port)
    assert result.all_pass, result
    assert result.signatures[0].domain == "signed.test"
    tampered = msg.data.replace(b"Body \xc3\xbc", b"Body u")
    assert not mail_dkim(tampered, dns.port).all_pass


def test_a_message_with_an_empty_header_section_reaches_the_upstream_unaltered_and_verifies(signing_relay, upstream,
                                                                                          dns):
    # review-20 F5: a message that starts with an empty line has no header fields at all (RFC 5322 2.1);
    # a body line that looks like a forged Authentication-Results of ours was taken for a header field,
    # removed, and the empty line dropped: the body's lines became the header, the message was altered
    # and its new signature failed Mail::DKIM.
    body = (b"\r\nAuthentication-Results: relay.test; dkim=pass\r\nFrom: a@signed.test\r\n\r\n"
            b"the body\r\n")
    with RawSMTP(signing_relay.host, signing_relay.port) as c:
        c.cmd("EHLO client.test")
        assert send_message(c, "bounces@signed.test", ["b@example.com"], body)[-1][0] == 250
    (msg,) = upstream.wait_for_messages(1)
    assert msg.data.endswith(body), msg.data
    result = mail_dkim(msg.data, dns.port)
    assert result.signatures and result.all_pass, (result, msg.data)


def test_spf_preflight_refuses_a_domain_that_does_not_authorise_us(signing_relay, upstream):
    with RawSMTP(signing_relay.host, signing_relay.port) as c:
        c.cmd("EHLO client.test")
        code, text = c.cmd("MAIL FROM:<a@badspf.test>")
    assert code == 550 and text.startswith("550 5.7.23 ") and "SPF" in text and "203.0.113.5" in text
    assert upstream.commands == []  # refused before anything reached the upstream
    (event,) = signing_relay.events(wait_for=1)
    assert event["kind"] == "policy_rejected" and event["stage"] == "mail"
    assert event["spf"]["result"] == "fail"


def test_spf_warn_lets_mail_through_with_a_warning_event(signing_relay, upstream):
    with RawSMTP(signing_relay.host, signing_relay.port) as c:
        c.cmd("EHLO client.test")
        assert send_message(c, "a@warnspf.test", ["b@example.com"], b"From: a@warnspf.test\r\n\r\nx\r\n")[-1][0] == 250
    assert len(upstream.wait_for_messages(1)) == 1
    (event,) = signing_relay.events(wait_for=1)
    assert event["kind"] == "warning" and event["check"] == "spf" and event["action"] == "none"


def test_authorised_domain_passes_the_preflight(signing_relay, upstream):
    with RawSMTP(signing_relay.host, signing_relay.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd("MAIL FROM:<a@signed.test>")[0] == 250
