"""Issue 13, the part left open: a VERP return path is one a transaction, and a transaction may have
several recipients. Each of them saw the return path (Return-Path:, a reply to it), so any of them can
mail a "bounce" to it naming another recipient of the same message, and the token is valid. Before,
such a report listed that other recipient at once, for good (a good address on the bounce list: the
worst error of this product). Now a report to a return path several recipients were sent never lists
at once (suppression.yaml `shared_return_path:`: the second failure within 30 days from another
message lists, and that entry expires after 30 days), and an address the report names that was no
recipient of the transaction is a `warning` event that says so, never a listing.

Through a running relay with VERP on: a message to two recipients goes through the relay to a
loopback upstream, then a DSN is mailed to the bounces_in listener over loopback. SQLite and
PostgreSQL stores."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import pytest

from relay.intake.verp import VerpCodec
from relay.errors import ConfigError
from relay.suppression import DEFAULT_SHARED, SuppressionPolicy
from tests.test_bounces_in import KEY, SCHEMA, dsn_for, mail_bounce, rcpt_reply, relay_one, start_verp_relay
from tests.test_bounces_in_recipients import arf_for, dsn_naming

SHIPPED = (Path(__file__).parent.parent / "policies" / "suppression.yaml").read_text()


@pytest.fixture(params=["sqlite", "postgresql"])
def relay(request, tmp_path, upstream, relay_factory):
    if request.param == "sqlite":
        return start_verp_relay(tmp_path, upstream, relay_factory)
    url, _ = request.getfixturevalue("pg_url")
    return start_verp_relay(tmp_path, upstream, relay_factory, bounce_list=url,
                            events=[{"jsonl": str(tmp_path / "events.jsonl")}])


def listed(relay) -> list[str]:
    return [e["recipient"] for e in relay.events() if e["kind"] == "bounce_listed"]


def test_a_recipients_forged_bounce_naming_the_other_recipient_does_not_list_them(relay, upstream):
    # alice and bob get one message; alice mails a DSN for bob to its Return-Path. Before: bob was
    # listed at once, for good ("bounce_listed" bob; his next RCPT 550).
    return_path = relay_one(relay, upstream, rcpts=["alice@dest.example", "bob@dest.example"])
    forged = dsn_for(return_path, rcpt="bob@dest.example")
    code, text = mail_bounce(relay, return_path, forged)[-1]
    assert (code, text) == (250, "250 2.0.0 Recorded 1 failure(s)")
    # Again and again: one count per message (its VERP transaction), however many reports come to it.
    for _ in range(3):
        assert mail_bounce(relay, return_path, forged)[-1][0] == 250
    events = relay.events(wait_for=4)
    assert [(e["kind"], e["recipient"]) for e in events] == [("bounced", "bob@dest.example")] * 4
    bounced = events[0]
    assert bounced.get("bounce_list") == "counted"
    assert bounced["verp"]["recipients"] == 2
    assert bounced["transaction_id"] == VerpCodec(KEY).verify(return_path).transaction_id
    assert "shared by 2 recipients" in bounced["reason"] and "never lists at once" in bounced["reason"]
    for event in events:
        jsonschema.validate(event, SCHEMA)
    assert rcpt_reply(relay, "bob@dest.example") == 250
    assert rcpt_reply(relay, "alice@dest.example") == 250
    assert listed(relay) == []


def test_a_bounce_naming_a_stranger_is_a_warning_event_that_says_why(relay, upstream):
    # Before: only a log line; the application never heard that its message drew a forged report.
    return_path = relay_one(relay, upstream, rcpts=["alice@dest.example", "bob@dest.example"])
    token = VerpCodec(KEY).verify(return_path)
    code, text = mail_bounce(relay, return_path, dsn_naming(return_path, ("ceo@example.com", None)))[-1]
    assert (code, text) == (250, "250 2.0.0 Recorded 0 failure(s); 1 not recipients of that transaction: ignored")
    [warning] = relay.events(wait_for=1)
    jsonschema.validate(warning, SCHEMA)
    assert warning["kind"] == "warning" and warning["action"] == "none"
    assert warning["recipient"] == "ceo@example.com"
    assert (warning["check"], warning["result"]) == ("verp_recipient", "not_a_recipient")
    assert warning["transaction_id"] == token.transaction_id
    assert warning["verp"]["recipients"] == 2 and warning["verp"]["return_path"] == return_path.lower()
    assert "was not one of its 2 recipient(s)" in warning["text"] and "never on the bounce list" in warning["text"]
    assert warning["dsn"]["status"] == "5.1.1"
    assert "bounce_list" not in warning
    assert rcpt_reply(relay, "ceo@example.com") == 250
    assert listed(relay) == []


def test_a_real_failure_of_a_shared_message_lists_at_the_second_message_and_that_entry_expires(relay, upstream):
    # What it costs a real unknown mailbox: one more message. The listing then made expires after
    # 30 days (shared_return_path.expire_after): evidence only from shared return paths is not for good.
    first = relay_one(relay, upstream, rcpts=["alice@dest.example", "gone@dest.example"], nth=1)
    assert mail_bounce(relay, first, dsn_for(first, rcpt="gone@dest.example"))[-1][0] == 250
    assert rcpt_reply(relay, "gone@dest.example") == 250
    second = relay_one(relay, upstream, rcpts=["bob@dest.example", "gone@dest.example"], nth=2)
    assert mail_bounce(relay, second, dsn_for(second, rcpt="gone@dest.example"))[-1][0] == 250
    events = relay.events(wait_for=3)
    assert [(e["kind"], e["recipient"]) for e in events] == [
        ("bounced", "gone@dest.example"), ("bounced", "gone@dest.example"), ("bounce_listed", "gone@dest.example")]
    assert events[1]["bounce_list"] == "listed"
    entry = events[2]["entry"]
    assert entry["count"] == 2
    expires = datetime.fromisoformat(entry["expires_at"].replace("Z", "+00:00"))
    days = (expires - datetime.now(timezone.utc)).total_seconds() / 86400
    assert 29 < days <= 30
    assert rcpt_reply(relay, "gone@dest.example") == 550


def test_a_single_recipient_message_still_lists_at_once_for_good(relay, upstream):
    return_path = relay_one(relay, upstream, rcpts=["gone@dest.example"])
    assert mail_bounce(relay, return_path, dsn_for(return_path, rcpt="Gone@Dest.Example"))[-1][0] == 250
    events = relay.events(wait_for=2)
    assert [e["kind"] for e in events] == ["bounced", "bounce_listed"]
    assert "reason" not in events[0] and events[0]["verp"]["recipients"] == 1
    assert events[1]["entry"]["expires_at"] is None
    assert rcpt_reply(relay, "gone@dest.example") == 550


def test_a_complaint_to_a_shared_return_path_does_not_list_the_other_recipient(tmp_path, upstream, relay_factory):
    # A complaint (ARF) lists at once by default: forged by one recipient about the other, it did.
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    return_path = relay_one(relay, upstream, rcpts=["alice@isp.example", "bob@isp.example"])
    code, text = mail_bounce(relay, return_path, arf_for(return_path, "bob@isp.example"))[-1]
    assert (code, text) == (250, "250 2.0.0 Recorded 1 complaint(s)")
    events = relay.events(wait_for=1)
    assert [(e["kind"], e["recipient"]) for e in events] == [("complained", "bob@isp.example")]
    assert "shared by 2 recipients" in events[0]["reason"]
    assert rcpt_reply(relay, "bob@isp.example") == 250


def test_shared_return_path_off_never_lists_on_such_a_report(tmp_path, upstream, relay_factory):
    policies = tmp_path / "policies"
    policies.mkdir()
    assert "shared_return_path: {list_after: 2, within: 30d, expire_after: 30d}" in SHIPPED
    (policies / "suppression.yaml").write_text(SHIPPED.replace(
        "shared_return_path: {list_after: 2, within: 30d, expire_after: 30d}", "shared_return_path: off"))
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    for nth in (1, 2):
        return_path = relay_one(relay, upstream, rcpts=["alice@dest.example", "gone@dest.example"], nth=nth)
        assert mail_bounce(relay, return_path, dsn_for(return_path, rcpt="gone@dest.example"))[-1][0] == 250
    assert [e["kind"] for e in relay.events(wait_for=2)] == ["bounced", "bounced"]
    assert rcpt_reply(relay, "gone@dest.example") == 250


def test_a_bounce_to_a_transaction_without_recorded_recipients_says_so(tmp_path, upstream, relay_factory):
    # A valid token whose transaction has no recipients on record (sent before the upgrade, its write
    # failed, or a key holder's own token): ignored, and the event says why.
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    return_path = VerpCodec(KEY).return_path("noreply@example.com", "00000000000000aa", "bounces.example.com")
    code, text = mail_bounce(relay, return_path, dsn_for(return_path))[-1]
    assert (code, text) == (250, "250 2.0.0 Recorded 0 failure(s); 1 not recipients of that transaction: ignored")
    [warning] = relay.events(wait_for=1)
    jsonschema.validate(warning, SCHEMA)
    assert (warning["check"], warning["result"]) == ("verp_recipient", "recipients_unknown")
    assert warning["recipient"] == "alice@dest.example" and warning["verp"]["recipients"] == 0
    assert rcpt_reply(relay) == 250


def test_a_report_naming_thousands_of_strangers_makes_ten_events(tmp_path, upstream, relay_factory):
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    return_path = relay_one(relay, upstream, rcpts=["alice@dest.example", "bob@dest.example"])
    strangers = [(f"customer{i}@dest.example", None) for i in range(300)]
    code, text = mail_bounce(relay, return_path, dsn_naming(return_path, *strangers))[-1]
    assert (code, text) == (250, "250 2.0.0 Recorded 0 failure(s); 300 not recipients of that transaction: ignored")
    events = relay.events(wait_for=10, timeout=1)
    assert len(events) == 10 and all(e["ignored_in_report"] == 300 for e in events)


def test_the_shared_return_path_section_is_checked_at_load():
    assert SuppressionPolicy.from_dict({}).shared == DEFAULT_SHARED
    assert SuppressionPolicy.from_dict({"shared_return_path": "off"}).shared is None
    rule = SuppressionPolicy.from_dict({"shared_return_path": {"list_after": 3, "within": "10d"}}).shared
    assert (rule.list_after, rule.within, rule.expire_after) == (3, 864000.0, None)
    for bad, why in (({"list_after": 1}, "2 or more"), ({"list_after": 2}, "within"),
                     ({"list_after": 2, "within": "1d", "expire": "1d"}, "unknown"),
                     ("sometimes", "or off")):
        with pytest.raises(ConfigError) as err:
            SuppressionPolicy.from_dict({"shared_return_path": bad})
        assert why in str(err.value), (bad, str(err.value))
    policy = SuppressionPolicy.from_file(Path(__file__).parent.parent / "policies" / "suppression.yaml")
    assert policy.shared == DEFAULT_SHARED
    # A category that already counts keeps its own count; the sooner expiry wins.
    disabled = policy.shared_rule(policy.rule_for("mailbox_disabled", True))
    assert (disabled.list_after, disabled.within, disabled.expire_after) == (2, 30 * 86400.0, 30 * 86400.0)
    other = policy.shared_rule(policy.rule_for("other", True))
    assert (other.list_after, other.within, other.expire_after) == (3, 7 * 86400.0, 30 * 86400.0)
    assert policy.longest_window >= 30 * 86400.0


def test_the_return_path_of_an_smtputf8_sender_fits_in_64_octets(tmp_path, upstream, relay_factory):
    # The token review (issue 13): the sender beside the token was measured in characters, so an
    # SMTPUTF8 sender of 18 "ñ" went upstream as a 77-octet local part (RFC 5321 4.5.3.1.1: 64 octets),
    # which a strict next hop refuses at MAIL. Its bounce still comes back to the transaction.
    from tests.support.smtp_client import RawSMTP

    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    sender = "ñ" * 18 + "@example.com"
    with RawSMTP(relay.host, relay.port, timeout=60) as c:
        c.cmd("EHLO client.test")
        assert c.cmd(f"MAIL FROM:<{sender}> SMTPUTF8".encode())[0] == 250
        assert c.cmd("RCPT TO:<alice@dest.example>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(b"Subject: x\r\n\r\nhi\r\n.\r\n")
        assert c.reply()[0] == 250
    [msg] = upstream.wait_for_messages(1)
    local = msg.mail_from.rpartition("@")[0]
    assert len(local.encode("utf-8")) <= 64, msg.mail_from
    assert mail_bounce(relay, msg.mail_from, dsn_for(msg.mail_from))[-1] == (250, "250 2.0.0 Recorded 1 failure(s)")
    assert rcpt_reply(relay) == 550
