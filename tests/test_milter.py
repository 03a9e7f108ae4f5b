"""relay/milter: the codec (strict, fuzzed with hypothesis), and the running milter driven by
Debian's miltertest (Lua scripts) and by raw packets.

Postfix in front of the milter: tests/test_milter_postfix.py."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from relay.dkim import generate_key, private_key_pem, public_key_record
from relay.milter import codec
from tests.support.milter_client import MilterClient, pack, z
from tests.support.relay_proc import RunningRelay, write_config

REPO = Path(__file__).resolve().parent.parent


# -- codec --------------------------------------------------------------------------------------


def test_decoder_cuts_packets_across_reads():
    d = codec.Decoder()
    stream = pack(b"H", z("client.test")) + pack(b"A") + pack(b"B", b"body\r\n")
    out = []
    for i in range(len(stream)):
        out += d.feed(stream[i:i + 1])
    assert out == [(b"H", b"client.test\0"), (b"A", b""), (b"B", b"body\r\n")] and d.pending == 0


def test_every_command_parses():
    p = codec.parse
    assert p(b"O", struct.pack("!III", 6, 0x1FF, 0x1FFFFF)) == codec.OptNeg(6, 0x1FF, 0x1FFFFF)
    assert p(b"D", b"M" + z("i", "Q1", "{auth_authen}", "bob")) == codec.Macros("M", {"i": "Q1", "{auth_authen}": "bob"})
    assert p(b"D", b"C") == codec.Macros("C", {})
    assert p(b"C", z("mx.test") + b"4" + struct.pack("!H", 25) + z("192.0.2.1")) == \
        codec.Connect("mx.test", "4", 25, "192.0.2.1")
    assert p(b"C", z("localhost") + b"U") == codec.Connect("localhost", "U", 0, "")
    assert p(b"H", z("client.test")) == codec.Helo("client.test")
    assert p(b"M", z("<a@b.test>", "SIZE=10")) == codec.Mail(("<a@b.test>", "SIZE=10"))
    assert p(b"R", z("<c@d.test>")) == codec.Rcpt(("<c@d.test>",))
    assert p(b"L", z("Subject", " hi")) == codec.Header("Subject", " hi")
    assert p(b"N", b"") == codec.EndOfHeaders()
    assert p(b"B", b"\0raw\0") == codec.Body(b"\0raw\0")
    assert p(b"E", b"") == codec.EndOfMessage()
    assert p(b"A", b"") == codec.Abort() and p(b"Q", b"") == codec.Quit()
    assert p(b"K", b"") == codec.QuitNewConnection() and p(b"T", b"") == codec.Data()
    assert p(b"U", z("XYZZY")) == codec.Unknown("XYZZY")


@pytest.mark.parametrize("command,data,why", [
    (b"O", b"\0\0\0\6", "at least 12"),
    (b"C", b"host", "not NUL-terminated"),
    (b"C", z("host") + b"9" + b"\0\0" + z("x"), "unknown address family"),
    (b"C", z("host") + b"4\0", "no port"),
    (b"C", z("host") + b"4\0\x19" + b"1.2.3.4", "not NUL-terminated"),
    (b"H", z("a", "b"), "expected 1 string"),
    (b"L", z("Subject"), "expected 2 string"),
    (b"L", z("", "v"), "empty name"),
    (b"M", b"", "not NUL-terminated"),
    (b"D", b"M" + z("lonely"), "without a value"),
    (b"D", b"\x01" + z("{n}", "v"), "macros for stage"),
    (b"D", b"Q" + z("{n}", "v"), "macros for stage"),
    pytest.param(b"D", b"C" + z("{n}", "x" * 70000), "bytes of macros", id="D-macros-too-big"),
    (b"A", b"x", "unexpected bytes"),
    (b"Z", b"", "unknown command"),
])
def test_malformed_packets_are_refused_precisely(command, data, why):
    with pytest.raises(codec.ProtocolError, match=why):
        codec.parse(command, data)


def test_lengths_are_strict():
    with pytest.raises(codec.ProtocolError, match="length 0"):
        codec.Decoder().feed(b"\0\0\0\0")
    with pytest.raises(codec.ProtocolError, match="at most 1048576"):
        codec.Decoder().feed(struct.pack("!I", codec.MAX_PACKET + 1) + b"B")
    assert codec.Decoder().feed(struct.pack("!I", 100) + b"B" * 50) == []  # incomplete: wait for more


def test_replies_are_encoded_as_libmilter_expects():
    assert codec.continue_() == b"\0\0\0\1c"
    assert codec.replycode(["550-5.1.1 a", "550 5.1.1 b"]) == pack(b"y", b"550-5.1.1 a\r\n550 5.1.1 b\0")
    assert codec.insheader(0, "DKIM-Signature", " v=1;\n\tb=x") == pack(b"i", b"\0\0\0\0DKIM-Signature\0 v=1;\n\tb=x\0")
    assert codec.chgheader(2, "Authentication-Results", "") == pack(b"m", b"\0\0\0\2Authentication-Results\0\0")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_decoder_and_parser_raise_nothing_but_protocol_errors(data):
    try:
        for command, payload in codec.Decoder(max_packet=4096).feed(data):
            codec.parse(command, payload)
    except codec.ProtocolError:
        pass


# -- the running milter ------------------------------------------------------------------------


@pytest.fixture
def signing_policies(tmp_path, dns):
    key = generate_key("rsa", 2048)
    key_path = tmp_path / "signed.test.s1.key"
    key_path.write_bytes(private_key_pem(key))
    key_path.chmod(0o600)
    dns.zone.txt("s1._domainkey.signed.test", public_key_record(key))
    directory = tmp_path / "policies"
    shutil.copytree(REPO / "policies", directory)
    (directory / "domains.yaml").write_text(yaml.safe_dump({
        "signed.test": {"dkim": [{"selector": "s1", "key": str(key_path)}]}}))
    return directory


@pytest.fixture
def milter_factory(tmp_path, dns, signing_policies):
    started = []

    def start(**milter):
        overrides = milter.pop("overrides", {})
        # 192.0.2.0/24 (the tests' usual client) is one of ours: its mail is signed. Outsiders
        # (203.0.113.0/24 below) are the world's mail, which an outbound milter must not sign.
        overrides.setdefault("clients", {"networks": ["127.0.0.0/8", "192.0.2.0/24"]})
        config = write_config(tmp_path, 1, listen=[], upstream=None,
                              milter={"listen": "127.0.0.1:0", **milter}, policies=str(signing_policies),
                              resolver={"nameservers": [dns.nameserver]}, **overrides)
        relay = RunningRelay(config)
        started.append(relay)
        return relay

    yield start
    for relay in started:
        relay.stop()


@pytest.fixture
def milter(milter_factory):
    relay = milter_factory()
    relay.call(relay.server.resources.store.add("gone@example.com", category="unknown_recipient",
                                                 reply="550 5.1.1 no such user", rule="test"))
    return relay


def miltertest(tmp_path, port: int, body: str) -> subprocess.CompletedProcess:
    script = tmp_path / "script.lua"
    script.write_text(f'conn = mt.connect("inet:{port}@127.0.0.1")\n'
                      'if conn == nil then error("cannot connect") end\n'
                      'function check(r, what) if r ~= nil then error(what .. ": " .. r) end end\n'
                      'function reply(want, what) if mt.getreply(conn) ~= want then error(what) end end\n'
                      + body + "\nmt.disconnect(conn)\nmt.echo('ok')\n")
    return subprocess.run(["miltertest", "-v", "-s", str(script)], capture_output=True, text=True, timeout=60)


SIGNED_MESSAGE = """
check(mt.mailfrom(conn, "<bounces@signed.test>"), "mail")
reply(SMFIR_CONTINUE, "mail reply")
check(mt.rcptto(conn, "<b@example.com>"), "rcpt")
reply(SMFIR_CONTINUE, "rcpt reply")
check(mt.header(conn, "From", " Support <support@signed.test>"), "header From")
check(mt.header(conn, "Subject", " hello"), "header Subject")
{eoh}check(mt.bodystring(conn, "first line\\r\\n"), "body 1")
check(mt.bodystring(conn, "second line\\r\\n"), "body 2")
check(mt.eom(conn), "eom")
reply(SMFIR_CONTINUE, "eom reply")
if not mt.eom_check(conn, MT_HDRINSERT, "DKIM-Signature") then error("no DKIM-Signature inserted") end
"""


def test_miltertest_drives_every_stage_abort_and_a_second_message(tmp_path, milter):
    out = miltertest(tmp_path, milter.milter_port, f"""
check(mt.negotiate(conn, nil, nil, nil), "negotiate")
if not mt.test_action(conn, SMFIF_ADDHDRS) then error("ADDHDRS not asked for") end
if not mt.test_action(conn, SMFIF_CHGHDRS) then error("CHGHDRS not asked for") end
if not mt.test_option(conn, SMFIP_NR_HDR) then error("headers should need no reply") end
if mt.test_option(conn, SMFIP_NR_RCPT) then error("RCPT can be refused: it needs a reply") end
mt.macro(conn, SMFIC_CONNECT, "{{daemon_name}}", "smtpd", "j", "mx.test")
check(mt.conninfo(conn, "client.test", "192.0.2.10"), "conninfo")
check(mt.helo(conn, "client.test"), "helo")
-- first message: aborted after a bounce-listed recipient was refused
mt.macro(conn, SMFIC_MAIL, "i", "QUEUE1", "{{mail_addr}}", "a@sender.test")
check(mt.mailfrom(conn, "<a@sender.test>"), "mail 1")
reply(SMFIR_CONTINUE, "mail 1 reply")
mt.macro(conn, SMFIC_RCPT, "{{rcpt_addr}}", "gone@example.com")
check(mt.rcptto(conn, "<gone@example.com>"), "rcpt gone")
reply(SMFIR_REPLYCODE, "bounce-listed recipient not refused")
check(mt.abort(conn), "abort")
-- second message on the same connection: signed
{SIGNED_MESSAGE.format(eoh="")}
-- third: a message not ours to sign
check(mt.mailfrom(conn, "<a@other.test>"), "mail 3")
check(mt.rcptto(conn, "<c@example.com>"), "rcpt 3")
check(mt.header(conn, "From", " a@other.test"), "header 3")
check(mt.eom(conn), "eom 3")
reply(SMFIR_CONTINUE, "eom 3 reply")
if mt.eom_check(conn, MT_HDRINSERT) then error("a message of a domain without keys was changed") end
""")
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stdout + out.stderr
    events = milter.events(wait_for=1)
    (event,) = [e for e in events if e["kind"] == "suppressed"]
    assert event["recipient"] == "gone@example.com" and event["stage"] == "rcpt"
    assert event["bounce_list"] == "listed"
    assert event["reply"]["text"].startswith("550-5.1.1 <gone@example.com> is on this relay's bounce list")
    assert event["queue_id"] == "QUEUE1" and event["client"]["ip"] == "192.0.2.10"
    jsonschema.validate(event, json.loads((REPO / "relay" / "schema" / "event.schema.json").read_text()))
    assert event["client"]["helo"] == "client.test"


def test_miltertest_stages_we_ask_not_to_get_are_answered_when_the_mta_sends_them(tmp_path, milter):
    # An MTA that cannot skip stages or go without replies (no SMFIP_NO* or NR_* offered): the
    # milter answers every stage, DATA, unknown commands and end of headers included.
    out = miltertest(tmp_path, milter.milter_port, f"""
check(mt.negotiate(conn, 6, SMFIF_ADDHDRS + SMFIF_CHGHDRS, SMFIP_HDR_LEADSPC), "negotiate")
if mt.test_option(conn, SMFIP_NR_HDR) then error("NR_HDR was not offered") end
check(mt.conninfo(conn, "client.test", "192.0.2.10"), "conninfo")
reply(SMFIR_CONTINUE, "connect reply")
check(mt.helo(conn, "client.test"), "helo")
reply(SMFIR_CONTINUE, "helo reply")
check(mt.unknown(conn, "XYZZY"), "unknown")
reply(SMFIR_CONTINUE, "unknown reply")
{SIGNED_MESSAGE.format(eoh='check(mt.eoh(conn), "eoh")').replace('rcpt reply")', 'rcpt reply")' + chr(10) +
                                                                 'check(mt.data(conn), "data")' + chr(10) +
                                                                 'reply(SMFIR_CONTINUE, "data reply")')}
""")
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stdout + out.stderr


def test_refusal_reaches_the_mta_as_our_reply_code_and_text(milter):
    with MilterClient("127.0.0.1", milter.milter_port) as c:
        c.negotiate()
        c.send(b"C", z("client.test") + b"4" + struct.pack("!H", 4321) + z("192.0.2.10"))
        c.send(b"M", z("<a@sender.test>"))  # no reply: MAIL never refuses here (NR_MAIL)
        assert not c.replies_to(codec.SMFIP_NR_MAIL)
        c.send(b"R", z("<Gone@Example.com>"))
        cmd, data = c.read()
    assert cmd == b"y"
    text = data.rstrip(b"\0").decode()
    assert text.startswith("550-5.1.1 <gone@example.com> is on this relay's bounce list since "), text
    assert text.endswith("\r\n550 5.1.1 Original reply: 550 5.1.1 no such user"), text



def test_recipients_of_one_transaction_are_bounded(milter):
    # Every recipient was kept, however long (a packet may be 1 MiB) and however many: a peer sending
    # RCPT after RCPT grew the process without bound.
    MAX_RECIPIENTS = 1000  # relay.milter.session.MAX_RECIPIENTS, Postfix's smtpd_recipient_limit
    before = len(milter.events())
    with MilterClient("127.0.0.1", milter.milter_port) as c:
        c.negotiate()
        c.send(b"C", z("client.test") + b"4" + struct.pack("!H", 4321) + z("192.0.2.10"))
        c.send(b"M", z("<a@sender.test>"))
        c.send(b"R", z("<" + "x" * 250 + "@example.com>"))
        cmd, data = c.read()
        assert (cmd, data) == (b"y", b"501 5.1.3 Recipient address longer than 256 octets (RFC 5321 4.5.3.1.3)\0")
        c.sock.sendall(b"".join(pack(b"R", z(f"<r{i}@example.com>")) for i in range(MAX_RECIPIENTS)))
        assert [c.read()[0] for _ in range(MAX_RECIPIENTS)] == [b"c"] * MAX_RECIPIENTS
        c.send(b"R", z("<one.more@example.com>"))
        cmd, data = c.read()
        assert (cmd, data) == (b"y", b"452 4.5.3 Too many recipients (at most 1000 per message)\0")
        c.send(b"A")  # abort: the next transaction has room again
        c.send(b"M", z("<a@sender.test>"))
        c.send(b"R", z("<one.more@example.com>"))
        assert c.read()[0] == b"c"
    # Both refusals the MTA heard have their events (they had none); neither lists anybody.
    events = milter.events(wait_for=before + 2)[before:]
    assert [(e["kind"], e["stage"], e["recipient"], e["reply"]["code"], e["classification"]["scope"])
            for e in events] == [("policy_rejected", "rcpt", "x" * 250 + "@example.com", 501, "relay"),
                                 ("deferred", "rcpt", "one.more@example.com", 452, "relay")], events
    assert events[1]["classification"]["rule"] == "relay:too-many-recipients"
    assert not [e for e in events if e.get("bounce_list") == "listed"]

def test_macros_only_for_the_stages_there_are_and_of_a_size_an_mta_sends(milter, caplog):
    # Each macros packet was kept under its stage byte, whatever it was: a peer sending 256 stages of
    # 1 MiB each held 260 MiB per connection (781 MiB for three), for as long as the connection lasted.
    caplog.set_level(logging.WARNING)
    big = "x" * (1024 * 1024 - 64)
    for stage, value in ((b"\x01", "v"), (b"Z", "v"), (b"R", big)):
        with MilterClient("127.0.0.1", milter.milter_port) as c:
            c.negotiate()
            c.send(b"D", stage + z("{n}", value))
            assert c.closed_by_peer(), stage
    warnings = [r.getMessage() for r in caplog.records if r.name == "relay.milter"]
    assert len(warnings) == 3 and all("macros" in w for w in warnings), warnings
    with MilterClient("127.0.0.1", milter.milter_port) as c:  # an MTA's macros, as ever
        c.negotiate()
        c.send(b"D", b"C" + z("j", "mx.example", "{client_addr}", "192.0.2.10", "{client_name}", "client.test"))
        c.send(b"C", z("client.test") + b"4" + struct.pack("!H", 4321) + z("192.0.2.10"))
        c.send(b"D", b"R" + z("i", "4Qx1y2", "{rcpt_addr}", "gone@example.com"))
        c.send(b"M", z("<a@sender.test>"))
        c.send(b"R", z("<gone@example.com>"))
        assert c.read()[0] == b"y"

def test_a_second_negotiation_ends_the_open_transaction_with_its_events(milter):
    # Option negotiation again on the same connection replaced the session: its open transaction never
    # ended, and the events of what it had refused (here the bounce-listed recipient) were never written.
    with MilterClient("127.0.0.1", milter.milter_port) as c:
        c.negotiate()
        c.send(b"C", z("client.test") + b"4" + struct.pack("!H", 4321) + z("192.0.2.10"))
        c.send(b"M", z("<a@sender.test>"))
        c.send(b"R", z("<gone@example.com>"))
        assert c.read()[0] == b"y"
        c.negotiate()
        c.send(b"C", z("client.test") + b"4" + struct.pack("!H", 4321) + z("192.0.2.10"))
        c.send(b"M", z("<a@sender.test>"))
        c.send(b"R", z("<b@example.com>"))
        assert c.read()[0] == b"c"
        events = milter.events(wait_for=1)
        assert [(e["kind"], e["recipient"]) for e in events] == [("suppressed", "gone@example.com")], events
        c.send(b"Q")

def test_negotiation_asks_only_for_the_stages_needed(milter_factory, tmp_path, signing_policies):
    outbound = milter_factory()
    with MilterClient("127.0.0.1", outbound.milter_port) as c:
        version, actions, protocol = c.negotiate()
    assert version == 6 and actions == codec.SMFIF_ADDHDRS | codec.SMFIF_CHGHDRS | codec.SMFIF_SETSYMLIST
    for flag in ("NOUNKNOWN", "NODATA", "NOEOH", "NR_CONN", "NR_HELO", "NR_HDR", "NR_BODY", "HDR_LEADSPC"):
        assert protocol & getattr(codec, f"SMFIP_{flag}"), flag
    for flag in ("NR_RCPT", "NOHDRS", "NOBODY", "NORCPT", "NOMAIL"):  # the bounce list refuses at RCPT
        assert not protocol & getattr(codec, f"SMFIP_{flag}"), flag
    assert protocol & codec.SMFIP_NR_MAIL  # no egress_ips: the SPF pre-flight cannot refuse at MAIL
    with_spf = milter_factory(overrides={"egress_ips": ["203.0.113.5"]})
    with MilterClient("127.0.0.1", with_spf.milter_port) as c:
        _, _, protocol = c.negotiate()
    assert protocol & codec.SMFIP_NR_MAIL  # egress IPs, but no domain's policy checks SPF
    (signing_policies / "domains.yaml").write_text(yaml.safe_dump({"spf.test": {"spf": "reject"}}))
    spf_checked = milter_factory(overrides={"egress_ips": ["203.0.113.5"]})
    with MilterClient("127.0.0.1", spf_checked.milter_port) as c:
        _, _, protocol = c.negotiate()
    assert not protocol & codec.SMFIP_NR_MAIL  # now MAIL can be refused: it needs a reply
    inbound = milter_factory(mode="inbound")
    with MilterClient("127.0.0.1", inbound.milter_port) as c:
        _, _, protocol = c.negotiate()
    assert protocol & codec.SMFIP_NR_MAIL and protocol & codec.SMFIP_NR_RCPT  # inbound never refuses


def test_only_flags_the_mta_offers_are_taken(milter):
    with MilterClient("127.0.0.1", milter.milter_port) as c:
        _, actions, protocol = c.negotiate(actions=codec.SMFIF_ADDHDRS, steps=0)
        assert (actions, protocol) == (codec.SMFIF_ADDHDRS, 0)
        # Without NR_* agreed, every stage is answered.
        c.send(b"C", z("client.test") + b"4" + struct.pack("!H", 1) + z("192.0.2.10"))
        assert c.read() == (b"c", b"")
        c.send(b"H", z("client.test"))
        assert c.read() == (b"c", b"")


def test_forged_authentication_results_are_deleted_by_occurrence(milter_factory, dns):
    relay = milter_factory(mode="inbound")
    with MilterClient("127.0.0.1", relay.milter_port) as c:
        c.negotiate()
        c.send(b"C", z("client.test") + b"4" + struct.pack("!H", 1) + z("203.0.113.10"))
        c.send(b"M", z("<a@nowhere.test>"))
        c.send(b"R", z("<b@example.com>"))
        c.send(b"L", z("Authentication-Results", " mx.other.test; spf=pass"))
        c.send(b"L", z("Authentication-Results", " relay.test; dkim=pass header.d=evil.test"))
        c.send(b"L", z("Received", " from somewhere"))
        c.send(b"L", z("authentication-results", " relay.test; spf=pass"))
        c.send(b"L", z("From", " a@nowhere.test"))
        c.send(b"B", b"hi\r\n")
        c.send(b"E")
        replies = c.until_final()
    assert replies[-1] == (b"c", b"")
    deletes = [(struct.unpack("!I", d[:4])[0], d[4:]) for cmd, d in replies if cmd == b"m"]
    # Last occurrence first: deleting it does not move the index of the earlier one.
    assert deletes == [(3, b"authentication-results\0\0"), (2, b"Authentication-Results\0\0")]
    inserts = [d for cmd, d in replies if cmd == b"i"]
    assert len(inserts) == 1 and inserts[0].startswith(b"\0\0\0\0Authentication-Results\0 relay.test;")
    assert b"spf=none" in inserts[0] or b"spf=" in inserts[0]


def test_a_body_over_the_size_limit_is_not_kept_and_is_refused_clearly(milter_factory):
    relay = milter_factory(overrides={"limits": {"max_message_size": 10000}})
    with MilterClient("127.0.0.1", relay.milter_port) as c:
        c.negotiate()
        c.send(b"C", z("client.test") + b"4" + struct.pack("!H", 1) + z("192.0.2.10"))
        c.send(b"M", z("<bounces@signed.test>"))
        c.send(b"R", z("<b@example.com>"))
        assert c.read() == (b"c", b"")
        c.send(b"L", z("From", " bounces@signed.test"))
        for _ in range(10):
            c.send(b"B", b"x" * 4000 + b"\r\n")
        c.send(b"E")
        cmd, data = c.read()
        assert cmd == b"y" and data == b"552 5.3.4 Message too big for this relay's milter (limit 10000 bytes)\0"
        # The next message on the connection is fine.
        c.send(b"M", z("<bounces@signed.test>"))
        c.send(b"R", z("<b@example.com>"))
        assert c.read() == (b"c", b"")
    (event,) = relay.events(wait_for=1)
    assert event["kind"] == "policy_rejected" and event["stage"] == "data"
    assert event["classification"]["category"] == "message_too_large"


def _fields(n: int) -> list[tuple[str, str]]:
    return [(f"X-F{i}", " v") for i in range(n)]


@pytest.mark.parametrize("fields, refused", [
    (_fields(1001), True),  # past MAX_HEADER_FIELDS
    ([("X-Big", " " + "\n ".join(["x" * 990] * 300))], True),  # one folded field past MAX_HEADER_BYTES
    (_fields(990), False),  # within both
    ([("X-Big", " " + "\n ".join(["x" * 990] * 250))], False),
], ids=["1001-fields", "folded-300k", "990-fields", "folded-250k"])
def test_a_header_section_past_relay_modes_limits_is_refused_552_at_end_of_message(milter, fields, refused):
    # Relay mode refuses a header section over 256 KiB or 1,000 fields (552 5.3.4, maildata.header_refusal):
    # every step reads the header on the event loop. The milter kept every field an MTA passed on and ran the
    # steps on them; now it keeps none past the bounds and its reply at end of message is the same refusal.
    from relay.maildata import MAX_HEADER_BYTES, MAX_HEADER_FIELDS

    assert (MAX_HEADER_BYTES, MAX_HEADER_FIELDS) == (256 * 1024, 1000)  # the figures this test is built on
    with MilterClient("127.0.0.1", milter.milter_port) as c:
        c.negotiate()
        c.send(b"C", z("client.test") + b"4" + struct.pack("!H", 1) + z("192.0.2.10"))
        for message in range(2):
            c.send(b"M", z("<bounces@signed.test>"))
            c.send(b"R", z("<b@example.com>"))
            assert c.read() == (b"c", b"")
            c.send(b"L", z("From", " bounces@signed.test"))
            for name, value in fields if message == 0 else []:
                c.send(b"L", z(name, value))
            c.send(b"B", b"hello\r\n")  # no end-of-headers: the milter asked not to get it (SMFIP_NOEOH)
            c.send(b"E")
            replies = c.until_final()
            if message == 0 and refused:
                assert replies == [(b"y", b"552 5.3.4 Message header too big for this relay's milter (at most "
                                           b"262144 bytes and 1000 fields)\0")], replies
            else:  # signed, as any message of signed.test; the next message on the connection too
                assert replies[-1] == (b"c", b""), replies
                assert [cmd for cmd, data in replies if data.startswith(b"\0\0\0\0DKIM-Signature\0")] == [b"i"], replies
    refusals = [e for e in milter.events(wait_for=1 if refused else 0) if e["kind"] == "policy_rejected"]
    if refused:
        (event,) = refusals
        assert (event["stage"], event["reply"]["code"], event["reply"]["enhanced"]) == ("data", 552, "5.3.4")
        assert (event["classification"]["category"], event["classification"]["rule"]) == (
            "message_too_large", "relay:header-too-large")
    else:
        assert refusals == []


def test_malformed_packet_closes_that_connection_only(milter, caplog):
    caplog.set_level(logging.WARNING, logger="relay.milter")
    with MilterClient("127.0.0.1", milter.milter_port) as bad:
        bad.negotiate()
        bad.sock.sendall(struct.pack("!I", 50 * 1024 * 1024) + b"B")
        assert bad.closed_by_peer()
    with MilterClient("127.0.0.1", milter.milter_port) as before_negotiation:
        before_negotiation.send(b"C", z("x") + b"U")
        assert before_negotiation.closed_by_peer()
    assert any("closed: a packet of 52428800 bytes" in r.getMessage() for r in caplog.records)
    assert any("before option negotiation" in r.getMessage() for r in caplog.records)
    with MilterClient("127.0.0.1", milter.milter_port) as good:
        assert good.negotiate()[0] == 6



def test_a_peer_that_does_not_read_our_replies_is_reset_at_the_deadline(milter_factory, caplog):
    # Before, a peer that sent commands and never read the replies held its connection (and its
    # task, and the socket) for ever once the buffers were full: the write waited with no deadline.
    caplog.set_level(logging.INFO, logger="relay.milter")
    relay = milter_factory(overrides={"limits": {"timeout": 1}})
    hog = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    hog.connect(("127.0.0.1", relay.milter_port))
    hog.setblocking(False)
    # Each option negotiation is answered with the options and the macros wanted (~200 bytes).
    negotiations = pack(b"O", struct.pack("!III", 6, 0x1FF, 0)) * 4096
    sent, stuck_since = 0, None
    import time
    while stuck_since is None or time.monotonic() - stuck_since < 0.5:
        try:
            sent += hog.send(negotiations[sent % len(negotiations):])
            stuck_since = None
        except BlockingIOError:  # the milter stopped reading: it waits on its own replies
            stuck_since = stuck_since or time.monotonic()
            time.sleep(0.02)
        except OSError:
            break
        assert sent < 200 * 1024 * 1024
    try:
        with MilterClient("127.0.0.1", relay.milter_port) as other:  # the others are served meanwhile
            assert other.negotiate()[0] == 6
        from tests.support.processes import wait_until
        assert wait_until(lambda: not relay.server.milter.connections), relay.server.milter.connections
        assert any("did not take our replies within 1 s" in r.getMessage() for r in caplog.records)
    finally:
        hog.close()


def test_a_packet_trickled_a_byte_at_a_time_is_cut_at_the_deadline(milter_factory, caplog):
    # Each byte used to restart the idle deadline: a byte a minute of a packet announcing 1,000 bytes
    # held the connection for 16 hours. The packet must be complete within limits.timeout.
    import time
    caplog.set_level(logging.INFO, logger="relay.milter")
    relay = milter_factory(overrides={"limits": {"timeout": 1}})
    with MilterClient("127.0.0.1", relay.milter_port) as slow:
        slow.negotiate()
        trickle = struct.pack("!I", 1000) + b"B" + b"x" * 999
        closed = False
        for i in range(40):  # a byte every 0.1 s: 4 s, past the 1 s deadline
            try:
                slow.sock.sendall(trickle[i:i + 1])
            except OSError:
                closed = True
                break
            time.sleep(0.1)
            if not relay.server.milter.connections:
                closed = True
                break
        assert closed
        assert slow.closed_by_peer()
    assert any("a packet not complete within 1 s (" in r.getMessage() for r in caplog.records), \
        [r.getMessage() for r in caplog.records]


def test_milter_connections_are_bounded_by_max_connections(milter_factory, caplog):
    # Each connection held a socket and a task until its idle deadline, with no bound on how many:
    # a peer connecting in a loop could take every file descriptor of the process.
    caplog.set_level(logging.WARNING, logger="relay.milter")
    relay = milter_factory(overrides={"limits": {"max_connections": 3, "max_connections_per_client": 3}})
    held = [MilterClient("127.0.0.1", relay.milter_port) for _ in range(3)]
    try:
        for c in held:
            assert c.negotiate()[0] == 6
        for _ in range(5):
            with MilterClient("127.0.0.1", relay.milter_port) as extra:
                assert extra.closed_by_peer()
        held.pop().close()
        from tests.support.processes import wait_until
        wait_until(lambda: len(relay.server.milter.connections) == 2)
        with MilterClient("127.0.0.1", relay.milter_port) as again:
            assert again.negotiate()[0] == 6
    finally:
        for c in held:
            c.close()
    assert relay.server.metrics.counters[("relay_connections_refused_total", (("limit", "milter_max_connections"),))] == 5
    logged = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(logged) == 1 and "3 open already (limits.max_connections)" in logged[0], logged

_COMMANDS = st.sampled_from(list(b"ODCHMRLNBEAQKTUZ"))
_PACKETS = st.builds(lambda c, d: pack(bytes([c]), d), _COMMANDS, st.binary(max_size=40))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.lists(_PACKETS, max_size=8), junk=st.binary(max_size=64), cut=st.integers(0, 400))
def test_fuzz_random_and_truncated_packets_never_stop_the_server(milter, prefix, junk, cut):
    valid = pack(b"O", struct.pack("!III", 6, 0x1FF, 0x1FFFFF))
    stream = (valid + b"".join(prefix) + junk)[:cut or None]
    with socket.create_connection(("127.0.0.1", milter.milter_port), timeout=10) as s:
        s.sendall(stream)
        s.shutdown(socket.SHUT_WR)
        try:
            while s.recv(65536):
                pass
        except ConnectionResetError:
            pass
    with MilterClient("127.0.0.1", milter.milter_port) as c:  # the server is still there
        assert c.negotiate()[0] == 6


# -- several worker processes (relay/milter/workers.py) ------------------------------------------


from tests.support.processes import children as _children, wait_until as _wait  # noqa: E402


def test_workers_share_one_socket_reload_stop_and_are_replaced(tmp_path, signing_policies):
    import signal
    import sys

    sock_path = tmp_path / "milter.sock"
    config = tmp_path / "workers.yaml"
    config.write_text(yaml.safe_dump({
        "hostname": "relay.test", "bounce_list": f"sqlite:///{tmp_path / 'b.db'}",
        "events": [{"jsonl": str(tmp_path / "events.jsonl")}], "policies": str(signing_policies),
        "milter": {"listen": f"unix:{sock_path}", "socket_mode": "0600", "workers": 3}}))
    proc = subprocess.Popen([sys.executable, "-m", "relay", "serve", "-c", str(config)], cwd=str(REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        workers = _wait(lambda: len(_children(proc.pid)) == 3 and _children(proc.pid))
        def listening() -> bool:  # the parent binds the socket; a worker listens on it
            with socket.socket(socket.AF_UNIX) as s:
                return s.connect_ex(str(sock_path)) == 0
        _wait(listening)
        assert oct(sock_path.stat().st_mode & 0o777) == "0o600"

        def negotiate() -> int:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(20)
            s.connect(str(sock_path))
            s.sendall(pack(b"O", struct.pack("!III", 6, 0x1FF, 0x1FFFFF)))
            data = s.recv(4096)
            s.close()
            return struct.unpack("!I", data[5:9])[0]

        assert all(negotiate() == 6 for _ in range(10))
        proc.send_signal(signal.SIGHUP)  # forwarded: every worker reloads, none dies
        assert negotiate() == 6 and _children(proc.pid) == workers
        victim = next(iter(workers))
        os.kill(victim, signal.SIGKILL)
        _wait(lambda: len(_children(proc.pid)) == 3 and victim not in _children(proc.pid))
        assert negotiate() == 6
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert "starting 3 workers" in err and "ended (exit status -9); starting another" in err, err
    assert "Traceback" not in err, err
    assert not sock_path.exists()


def test_milter_workers_is_the_old_spelling_of_workers(tmp_path):
    from relay.config import load_settings
    from relay.errors import ConfigError

    config = tmp_path / "c.yaml"
    base = {"hostname": "relay.test", "listen": [{"address": "127.0.0.1:2525"}], "upstream": {"host": "127.0.0.1"}}
    config.write_text(yaml.safe_dump({**base, "milter": {"listen": "127.0.0.1:8892", "workers": 3}}))
    assert load_settings(config).workers == 3  # every listener is shared now, not only a milter's
    config.write_text(yaml.safe_dump({**base, "workers": 2, "milter": {"listen": "127.0.0.1:8892", "workers": 3}}))
    with pytest.raises(ConfigError) as err:
        load_settings(config)
    assert [f"{p.key}: {p.why}" for p in err.value.problems] == [
        "milter.workers: 3 differs from workers (2); remove milter.workers (workers covers the milter too)"]


def test_a_reload_lets_a_message_at_end_of_message_finish_with_its_steps(tmp_path, caplog):
    # review-20 F9: a reload closed the old milter pipeline at once (its SPF thread pool shut down)
    # while an end of message that started on it still waited for DNS (DKIM verification): its next
    # step failed ("cannot schedule new futures after shutdown", a traceback) and the MTA got 451.
    import time

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a DNS server that never answers
    silent.bind(("127.0.0.1", 0))
    config = write_config(tmp_path, 1, listen=[], upstream=None, milter={"listen": "127.0.0.1:0", "mode": "inbound"},
                          resolver={"nameservers": [f"127.0.0.1:{silent.getsockname()[1]}"], "timeout": 3})
    relay = RunningRelay(config)
    try:
        with MilterClient("127.0.0.1", relay.milter_port, timeout=30) as c:
            c.negotiate()
            c.send(b"C", z("client.test") + b"4" + struct.pack("!H", 1) + z("192.0.2.10"))
            c.send(b"M", z("<a@sender.example>"))
            c.send(b"R", z("<b@example.com>"))
            c.send(b"L", z("DKIM-Signature", " v=1; a=rsa-sha256; d=sender.example; s=s1; c=relaxed/relaxed; "
                                              "h=from; bh=AAAA; b=AAAA"))
            c.send(b"L", z("From", " a@sender.example"))
            c.send(b"B", b"hi\r\n")
            c.send(b"E")
            time.sleep(0.5)  # the verification is waiting for the silent DNS server (3 s)
            assert relay.reload()
            replies = c.until_final()
        assert replies[-1][0] in (b"c", b"a"), replies
        assert not any(cmd == b"y" for cmd, _ in replies), replies
        assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]
    finally:
        relay.stop()
        silent.close()


# -- review26 F1: sign only what our side vouches for --------------------------------------------

def _one_message(c, client_ip: str, auth: str | None = None) -> list[tuple[bytes, bytes]]:
    """A message of signed.test (From: and MAIL FROM) from `client_ip`, logged in as `auth` if given,
    on a negotiated connection; the replies to its end of message."""
    c.send(b"C", z("client.example") + b"4" + struct.pack("!H", 4321) + z(client_ip))
    if auth is not None:  # Postfix sends {auth_authen} with MAIL (milter_mail_macros; SETSYMLIST asks for it)
        c.send(b"D", b"M" + z("{auth_authen}", auth))
    c.send(b"M", z("<ceo@signed.test>"))
    c.send(b"R", z("<b@example.com>"))
    assert c.read() == (b"c", b"")
    c.send(b"L", z("From", " CEO <ceo@signed.test>"))
    c.send(b"L", z("Subject", " wire the money"))
    c.send(b"B", b"pay now\r\n")
    c.send(b"E")
    return c.until_final()


def _signed(replies) -> bool:
    return any(cmd == b"i" and data[4:].startswith(b"DKIM-Signature\0") for cmd, data in replies)


def test_outbound_milter_signs_only_for_our_networks_and_logged_in_clients(milter, caplog):
    # The world's mail reaches smtpd_milters on port 25 too: a client outside clients.networks with no
    # login sent From: ceo@signed.test and got a valid signature (review26 F1). It passes unsigned
    # and unrefused (it may be inbound mail to a local mailbox), logged and counted.
    caplog.set_level(logging.WARNING, logger="relay.dkim")
    with MilterClient("127.0.0.1", milter.milter_port) as c:
        c.negotiate()
        outsider = _one_message(c, "203.0.113.5")
        c.send(b"K")  # SMFIC_QUIT_NC: the next client session on the same connection
        logged_in = _one_message(c, "203.0.113.5", auth="ceo")
        c.send(b"K")
        ours = _one_message(c, "192.0.2.10")
    assert outsider[-1] == (b"c", b"") and not _signed(outsider), outsider
    assert logged_in[-1] == (b"c", b"") and _signed(logged_in), logged_in
    assert ours[-1] == (b"c", b"") and _signed(ours), ours
    assert any("not signing for d=signed.test: client 203.0.113.5 is outside clients.networks" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]
    assert milter.server.resources.metrics.value("relay_dkim_unsigned_total", reason="untrusted_client") == 1


def test_outbound_milter_asks_the_mta_for_the_login_at_mail():
    from relay.milter.session import WANTED_MACROS
    assert "{auth_authen}" in WANTED_MACROS[codec.SMFIM_ENVFROM].split()
    assert "{client_addr}" in WANTED_MACROS[codec.SMFIM_CONNECT].split()


def test_dkim_required_does_not_refuse_an_outsiders_mail(milter_factory, signing_policies):
    # dkim_required refuses mail of ours that cannot be signed; an outsider's mail is not ours to sign
    # (nor to refuse: inbound mail passes through the same smtpd).
    (signing_policies / "domains.yaml").write_text(yaml.safe_dump({"signed.test": {"dkim_required": True}}))
    relay = milter_factory()
    with MilterClient("127.0.0.1", relay.milter_port) as c:
        c.negotiate()
        outsider = _one_message(c, "203.0.113.5")
        c.send(b"K")
        ours = _one_message(c, "192.0.2.10")
    assert outsider[-1] == (b"c", b"") and not _signed(outsider), outsider
    assert ours[-1][0] == b"y" and ours[-1][1].startswith(b"550 5.7.1 Message refused: no DKIM key"), ours


@pytest.mark.parametrize("workers", [1, 2])
def test_a_milter_socket_that_cannot_be_made_is_named_with_its_key_and_path(tmp_path, workers):
    """A file that is not a socket where milter.listen points (or a directory the service may not write,
    under the unit's ProtectSystem=strict): `relay serve` said only `error: cannot start: [Errno 98] Address
    already in use`, with no word of the milter or the path."""
    import sys

    in_the_way = tmp_path / "milter.sock"
    in_the_way.write_text("not a socket\n")
    config = tmp_path / "relay.yaml"
    config.write_text(yaml.safe_dump({"hostname": "relay.test", "bounce_list": f"sqlite:///{tmp_path / 'b.db'}",
                                      "milter": {"listen": f"unix:{in_the_way}"}, "workers": workers}))
    repo = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-m", "relay", "serve", "-c", str(config)], capture_output=True, text=True,
                         timeout=60, cwd=str(repo), env={**os.environ, "PYTHONPATH": str(repo)})
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert (f"error: cannot start: milter.listen: cannot listen on unix:{in_the_way}: address already in use "
            "(a file that is not a socket is at that path") in out.stderr, out.stderr
    assert in_the_way.read_text() == "not a socket\n"  # not the relay's to remove
