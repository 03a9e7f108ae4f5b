"""Through a running relay: a refusal lists an address only when it is about that address (issue 8).

The upstream answers with real servers' texts: Gmail's, and Postfix's as a smarthost
reports them (smtpd_delay_reject = yes, its default, puts HELO and sender refusals at
RCPT).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from tests.support.smtp_client import RawSMTP, send_message
import tests.support.upstream as upstream_module
from tests.support.upstream import GMAIL_NO_SUCH_USER, closed_port

SCHEMA = json.loads((Path(__file__).parent.parent / "relay" / "schema" / "event.schema.json").read_text())
BODY = b"From: App <app@sender.test>\r\nTo: x@example.com\r\nSubject: hi\r\nMessage-ID: <m1@sender.test>\r\n\r\nHi.\r\n"

GMAIL_NOT_RFC5322 = (
    "550-5.7.1 [203.0.113.5      11] Our system has detected that this message is not RFC\r\n"
    "550-5.7.1 5322 compliant: 'From' header is missing. To reduce the amount of spam sent\r\n"
    "550-5.7.1 to Gmail, this message has been blocked. Please visit\r\n"
    "550-5.7.1  https://support.google.com/mail/?p=RfcMessageNonCompliant\r\n"
    "550 5.7.1 and review RFC 5322 specifications for more information. a1si1 - gsmtp")
POSTFIX_SENDER_UNKNOWN = ("550 5.1.0 <app@sender.test>: Sender address rejected: "
                          "User unknown in virtual mailbox table")
POSTFIX_HELO = "504 5.5.2 <relay>: Helo command rejected: need fully-qualified hostname"
STOCK_TEXT_5_7_1 = "550 5.7.1 Requested action not taken: mailbox unavailable"


def valid(event: dict) -> dict:
    jsonschema.validate(event, SCHEMA)
    return event


def transact(relay, rcpts, sender="app@sender.test", body=BODY):
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        replies = send_message(c, sender, rcpts, body)
        c.cmd("QUIT")
    return replies


def events_of(relay, n):
    return [valid(e) for e in relay.events(wait_for=n)]


def kinds(events):
    return [e["kind"] for e in events]


def listed(relay, address) -> bool:
    r = subprocess.run([sys.executable, "-m", "relay", "bounces", "check", address, "-c", str(relay.config_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode in (0, 1), r.stderr
    return r.returncode == 1


def test_a_message_refusal_at_the_final_dot_lists_nobody(relay, upstream):
    upstream.data_replies["norfc"] = GMAIL_NOT_RFC5322
    replies = transact(relay, ["norfc@gmail.test", "jane@gmail.test", "joe@gmail.test"])
    assert replies[-1][0] == 550
    events = events_of(relay, 3)
    assert kinds(events) == ["rejected"] * 3
    assert {e["classification"]["scope"] for e in events} == {"message"}
    assert "bounce_list" not in events[0]
    for address in ("norfc@gmail.test", "jane@gmail.test", "joe@gmail.test"):
        assert not listed(relay, address)


def test_a_refusal_at_the_final_dot_that_names_one_recipient_counts_only_that_one(relay, upstream):
    # About gone@ only; and a "no such user" after the content was seen is unconfirmed
    # (content filters say it to hide their verdict): the second such refusal lists.
    upstream.data_replies["gone"] = "550 5.1.1 <gone@gmail.test>: Recipient address rejected: User unknown"
    transact(relay, ["gone@gmail.test", "jane@gmail.test"])
    events = events_of(relay, 2)
    assert kinds(events) == ["rejected", "rejected"]
    assert all(e["stage"] == "data" and e["classification"]["category"] == "unknown_recipient" for e in events)
    assert not listed(relay, "gone@gmail.test") and not listed(relay, "jane@gmail.test")
    # Another message: the same one again would be a retry, one count (review12 F11).
    transact(relay, ["gone@gmail.test", "jane@gmail.test"], body=BODY.replace(b"<m1@", b"<m2@"))
    events = events_of(relay, 5)
    assert sorted(kinds(events[2:])) == ["bounce_listed", "rejected", "rejected"]
    (listing,) = [e for e in events if e["kind"] == "bounce_listed"]
    assert listing["recipient"] == "gone@gmail.test" and listing["entry"]["count"] == 2
    assert listed(relay, "gone@gmail.test") and not listed(relay, "jane@gmail.test")


def test_a_user_unknown_under_a_contradicting_enhanced_code_counts(relay, upstream):
    # 5.7.1 is "not authorised" (a Postfix access map's REJECT): the text alone does not list.
    upstream.rcpt_replies["maybe"] = "550 5.7.1 <maybe@example.com>: Recipient address rejected: User unknown"
    transact(relay, ["maybe@example.com"])
    (rejected,) = events_of(relay, 1)
    assert rejected["classification"]["category"] == "unknown_recipient" and rejected.get("bounce_list") == "counted"
    assert not listed(relay, "maybe@example.com")
    transact(relay, ["maybe@example.com"])
    assert kinds(events_of(relay, 3)[1:]) == ["rejected", "bounce_listed"]
    assert listed(relay, "maybe@example.com")


GMAIL_DISABLED = ("550-5.2.1 The email account that you tried to reach is disabled. Learn more at\r\n"
                  "550 5.2.1 https://support.google.com/mail/?p=DisabledUser a1si1 - gsmtp")


def test_a_disabled_mailbox_counts_and_the_second_refusal_lists_it(relay, upstream):
    # Issue 13: the owner or the provider can re-enable it; one refusal does not list it.
    upstream.rcpt_replies["off"] = GMAIL_DISABLED
    transact(relay, ["off@gmail.test"])
    (rejected,) = events_of(relay, 1)
    assert (rejected["stage"], rejected["classification"]["category"]) == ("rcpt", "mailbox_disabled")
    assert rejected["classification"]["scope"] == "recipient" and rejected.get("bounce_list") == "counted"
    assert not listed(relay, "off@gmail.test")
    transact(relay, ["off@gmail.test"])
    events = events_of(relay, 3)
    assert kinds(events[1:]) == ["rejected", "bounce_listed"]
    assert events[1]["bounce_list"] == "listed"
    entry = events[2]["entry"]
    assert entry["category"] == "mailbox_disabled" and entry["count"] == 2 and entry["expires_at"]
    assert listed(relay, "off@gmail.test")


@pytest.mark.parametrize("text, scope", [(POSTFIX_SENDER_UNKNOWN, "sender"), (POSTFIX_HELO, "session")])
def test_postfix_sender_and_helo_refusals_at_rcpt_list_nobody_and_warn_once(relay, upstream, text, scope):
    upstream.rcpt_replies["jane"] = upstream.rcpt_replies["joe"] = text
    replies = transact(relay, ["jane@example.com", "joe@example.com"])
    assert [r[0] for r in replies[1:3]] == [int(text[:3])] * 2
    events = events_of(relay, 3)
    assert sorted(kinds(events)) == ["rejected", "rejected", "warning"]
    (warning,) = [e for e in events if e["kind"] == "warning"]
    assert warning["check"] == "attribution" and warning["result"] == scope and warning["action"] == "none"
    assert warning["classification"]["scope"] == scope and warning["reply"]["text"] == text
    assert all(e["classification"]["scope"] == scope for e in events)
    assert not listed(relay, "jane@example.com") and not listed(relay, "joe@example.com")
    counters = relay.server.metrics.counters
    assert counters[("relay_operator_warnings_total", (("scope", scope),))] == 1


@pytest.mark.parametrize("text", ["503 5.5.1 RCPT first", "550 Protocol violation",
                                  "504 Command parameter not implemented", "554 5.5.1 no valid recipients"])
def test_protocol_replies_list_nobody(relay, upstream, text):
    upstream.rcpt_replies["jane"] = text
    transact(relay, ["jane@example.com"])
    events = events_of(relay, 2)
    (rejected,) = [e for e in events if e["kind"] == "rejected"]
    assert rejected["classification"]["category"] == "protocol_error"
    assert rejected["classification"]["scope"] == "session"
    assert not listed(relay, "jane@example.com")


@pytest.mark.parametrize("text", [
    # Issue #8's listing audit: the sender's refusal in words the recipient rules also use; each
    # listed the recipient at once before it.
    "550 5.1.0 <app@sender.test>: Return path address does not exist",
    "550 5.1.1 Unknown originator",
    "550 5.1.0 Dirección del remitente rechazada: usuario desconocido",
])
def test_sender_refusals_in_recipient_words_list_nobody(relay, upstream, text):
    upstream.rcpt_replies["jane"] = text
    transact(relay, ["jane@example.com"])
    (rejected,) = [e for e in events_of(relay, 2) if e["kind"] == "rejected"]
    assert rejected["classification"]["scope"] == "sender" and "bounce_list" not in rejected
    assert not listed(relay, "jane@example.com")


@pytest.mark.parametrize("text", [
    # Issue #8's listing audit 2: a true hard bounce that names the sender only as a field or an
    # aside; the first audit's sender exclusion left each unlisted (a missed listing).
    "550 5.1.1 Recipient rejected: jane@example.com: user not found (mail from app@sender.test)",
    "550 5.1.10 RecipientNotFound; Recipient not found by SMTP address lookup. Sender: app@sender.test",
    # Exim's recipient callout quoting the next hop's answer, read as a sender check before.
    "550-Callout verification failed:\r\n550 550 Unknown user",
])
def test_a_hard_bounce_in_words_the_sender_rules_also_use_still_lists(relay, upstream, text):
    upstream.rcpt_replies["jane"] = text
    transact(relay, ["jane@example.com"])
    events = events_of(relay, 2)
    assert kinds(events) == ["rejected", "bounce_listed"]
    assert events[0]["classification"]["scope"] == "recipient"
    assert events[0]["classification"]["category"] == "unknown_recipient"
    assert listed(relay, "jane@example.com")


@pytest.mark.parametrize("text", [
    # Issue #8's listing audit 3: the address exists and its owner or provider refused this sender
    # (a members-only group under X.1.1, RFC 5321's stock "mailbox unavailable" over a delivery
    # restriction or a blocked sender, greylisting under X.1.1). Each put jane@ on the bounce list
    # at once with the rules before the audit.
    "550 5.1.1 The group accepts messages only from its members",
    "550-Requested action not taken: mailbox unavailable\r\n550 Delivery to this mailbox is restricted to "
    "approved senders",
    "550-Requested action not taken: mailbox unavailable\r\n550 Recipient has chosen not to receive mail from you",
    "550 5.1.1 Recipient address rejected: greylisted",
])
def test_a_good_address_whose_owner_refused_the_sender_is_not_listed(relay, upstream, text):
    upstream.rcpt_replies["jane"] = text
    transact(relay, ["jane@example.com", "joe@example.com"])
    events = events_of(relay, 3)
    (rejected,) = [e for e in events if e["kind"] == "rejected"]
    assert "bounce_listed" not in kinds(events)
    assert rejected["recipient"] == "jane@example.com" and "bounce_list" not in rejected
    assert rejected["classification"]["category"] == "policy_rejected"
    assert not listed(relay, "jane@example.com")


def test_directory_based_edge_blocking_still_lists(relay, upstream):
    # Exchange Online's DBEB "Access denied. AS(201806281)" is Microsoft's word for a recipient
    # its directory does not hold: the near text of a restriction that must still list.
    upstream.rcpt_replies["jane"] = "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)"
    transact(relay, ["jane@example.com"])
    events = events_of(relay, 2)
    assert kinds(events) == ["rejected", "bounce_listed"]
    assert events[0]["classification"]["category"] == "unknown_recipient"
    assert listed(relay, "jane@example.com")


@pytest.mark.parametrize("text", [
    "550 5.1.1 User unknown; sender" + " " * 300 + "x",
    "550 5.1.1 No such user; mail from:" + " :" * 150 + "x",
])
def test_a_reply_built_to_backtrack_the_sender_rules_is_answered_at_once(relay, upstream, text):
    # The sender-as-subject words of listing audit 2 (read when a text says "user unknown" and names
    # the sender) had four unbounded whitespace runs around an optional address: with 80 spaces after
    # "sender" the classification took 275 ms on the event loop, with 300 about a minute (growing with
    # the fourth power), every session waiting, and the client's RCPT timed out.
    upstream.rcpt_replies["jane"] = text
    assert [code for code, _ in transact(relay, ["jane@example.com"])[:2]] == [250, 550]
    (rejected,) = [e for e in events_of(relay, 2) if e["kind"] == "rejected"]
    assert rejected["recipient"] == "jane@example.com"
    assert rejected["classification"]["category"] == "unknown_recipient"


def test_a_sender_domain_refused_at_mail_from_is_the_sender_s_not_routing(relay, upstream, monkeypatch):
    # Issue #8, world14: J:COM and SoftBank answer MAIL FROM with "553 <sender domain> does not
    # exist" when the envelope sender's domain has no DNS record at all (SendMagic's notes). It was
    # read as the recipient host's routing, with advice to check the recipient's domain.
    monkeypatch.setitem(upstream_module.MAIL_REPLIES, "nodns", "553 sender.test does not exist")
    transact(relay, ["jane@example.com"], sender="nodns@sender.test")
    rejected = [e for e in events_of(relay, 1) if e["kind"] == "rejected"]
    assert rejected and all(e["classification"]["category"] == "auth_failed" for e in rejected)
    assert all(e["classification"]["scope"] == "sender" and "bounce_list" not in e for e in rejected)
    assert not listed(relay, "jane@example.com")


@pytest.mark.parametrize("text", ["550 5.7.1 Unauthorized", "550 5.7.1 Permission denied"])
def test_a_policy_refusal_of_mail_from_that_names_nothing_warns_about_the_sender(relay, upstream, monkeypatch, text):
    # Scope audit (issue #8): at MAIL FROM nothing of the message has been sent (RFC 5321 3.3) and the
    # command's one argument is the reverse-path. A bare "550 5.7.1 Unauthorized" there was judged about
    # the message, which warns nobody: the operator never heard that the next hop refuses this sender.
    monkeypatch.setitem(upstream_module.MAIL_REPLIES, "refused", text)
    transact(relay, ["jane@example.com"], sender="refused@sender.test")
    events = events_of(relay, 2)
    rejected = [e for e in events if e["kind"] == "rejected"]
    assert rejected and all(e["classification"]["scope"] == "sender" and "bounce_list" not in e for e in rejected)
    (warning,) = [e for e in events if e["kind"] == "warning"]
    assert warning["check"] == "attribution" and warning["result"] == "sender"
    assert not listed(relay, "jane@example.com")


def test_a_sender_domain_on_a_domain_list_at_mail_from_warns_about_the_sender(relay, upstream, monkeypatch):
    # Issue #8, world25: a domain list (Spamhaus DBL, URIBL) lists names, never the client's IP; "554 5.7.1
    # Sender domain <d> listed at dbl.spamhaus.org" in reply to MAIL FROM was judged the session's (the
    # relay's own IP), so the operator was warned about the wrong thing. It is the sender's domain.
    monkeypatch.setitem(upstream_module.MAIL_REPLIES, "dbl", "554 5.7.1 Sender domain sender.test listed at dbl.spamhaus.org")
    transact(relay, ["jane@example.com"], sender="dbl@sender.test")
    events = events_of(relay, 2)
    rejected = [e for e in events if e["kind"] == "rejected"]
    assert rejected and all(e["classification"]["category"] == "blocklisted" for e in rejected)
    assert all(e["classification"]["scope"] == "sender" and "bounce_list" not in e for e in rejected)
    (warning,) = [e for e in events if e["kind"] == "warning"]
    assert warning["check"] == "attribution" and warning["result"] == "sender"
    assert not listed(relay, "jane@example.com")


def test_a_url_in_the_message_on_a_domain_list_at_the_final_dot_is_the_message_s(relay, upstream):
    # Issue #8, world25 (and the scope audit's probe): "550 A URL in this email (<d>) is listed on <list>"
    # answers the final dot about the message's content, not the client; it was read as a block of the
    # relay's IP (blocklisted, session). Nobody is listed either way.
    upstream.data_replies["jane"] = "550 5.7.1 A link in your e-mail (bad.example) is listed at dbl.spamhaus.org"
    transact(relay, ["jane@example.com"])
    (rejected,) = [e for e in events_of(relay, 1) if e["kind"] == "rejected"]
    assert rejected["stage"] == "data"
    assert (rejected["classification"]["category"], rejected["classification"]["scope"]) == ("spam_content", "message")
    assert not listed(relay, "jane@example.com")


def test_a_misspelled_address_unknown_at_rcpt_lists_the_recipient(relay, upstream):
    # Issue #8, world25: STRATO's "550 recipient e-mail adress unknown" ("adress": a common misspelling)
    # is the recipient's unknown address; the rules read no word of it and only counted the address
    # (the code-550 fallback), so a bad address stayed off the list (a missed listing).
    upstream.rcpt_replies["jane"] = "550 Recipient adress unknown"
    transact(relay, ["jane@example.com"])
    rejected = [e for e in events_of(relay, 2) if e["kind"] == "rejected"]
    assert rejected[0]["classification"]["category"] == "unknown_recipient"
    assert rejected[0]["bounce_list"] == "listed"
    assert listed(relay, "jane@example.com")


def test_a_pop_before_smtp_refusal_at_rcpt_never_lists_the_recipient(relay, upstream):
    # Issue #8, world26: a Japanese host's "553 5.3.0 <a>... Please receive your mail before sending" is
    # its POP-before-SMTP relay check refusing the client (it relays only after a POP3 login), not the
    # recipient's mailbox. The rules read only X.3.0 (other, permanent) and counted each such refusal
    # against the recipient's good address, on the way to the bounce list (the worst error).
    upstream.rcpt_replies["jane"] = "553 5.3.0 <jane@example.com>... Please receive your mail before sending"
    transact(relay, ["jane@example.com"])
    transact(relay, ["jane@example.com"])
    rejected = [e for e in events_of(relay, 4) if e["kind"] == "rejected"]
    assert len(rejected) == 2
    assert all((e["classification"]["category"], e["classification"]["scope"]) == ("relay_denied", "session")
               for e in rejected)
    assert not listed(relay, "jane@example.com")


def test_coremail_s_user_hangup_at_rcpt_is_the_recipient_s_disabled_mailbox(relay, upstream):
    # Issue #8, world26: Coremail's "User hangup" is its word for a suspended ("hung up") account: the
    # recipient's disabled mailbox (counted, not listed at once). The rules read no word of it (code-550:
    # other), which hid why the address was counted.
    upstream.rcpt_replies["jane"] = "550 User hangup"
    transact(relay, ["jane@example.com"])
    (rejected,) = [e for e in events_of(relay, 1) if e["kind"] == "rejected"]
    assert (rejected["classification"]["category"], rejected["classification"]["scope"]) == (
        "mailbox_disabled", "recipient")
    assert not listed(relay, "jane@example.com")


def test_an_account_administratively_disabled_under_5_1_1_is_counted_not_listed(relay, upstream):
    # Issue #8, world27: Infomaniak's FAQ quotes a recipient's provider answering "550 5.1.1 <a> recipient
    # rejected, account administratively disabled": the account exists and was disabled by its provider
    # (RFC 3463 X.2.1's meaning, whatever X.1.1 it carries), which may re-enable it. The rules read only
    # the X.1.1 and listed the address at once as unknown (a false listing); a disabled mailbox counts.
    upstream.rcpt_replies["jane"] = "550 5.1.1 jane@example.com recipient rejected, account administratively disabled"
    transact(relay, ["jane@example.com"])
    (rejected,) = [e for e in events_of(relay, 1) if e["kind"] == "rejected"]
    assert (rejected["classification"]["category"], rejected["classification"]["scope"]) == (
        "mailbox_disabled", "recipient")
    assert not listed(relay, "jane@example.com")


def test_a_receive_connector_s_reserved_domain_refusal_never_counts_the_recipient(relay, upstream):
    # Issue #8, world28: Exchange Server's receive connectors refuse recipients at RFC 2606's reserved
    # names ("5.1.4 / 5.1.5 Recipient address reserved by RFC 2606", its NDR table on TechNet) - a setting
    # of that server about the recipient's domain, not an unknown user and not a malformed address. The
    # rules read only the X.1.4 (other, permanent) and counted each refusal against the address: the third
    # within a week put it on the bounce list.
    upstream.rcpt_replies["jane"] = "550 5.1.4 Recipient address reserved by RFC 2606"
    for _ in range(3):
        transact(relay, ["jane@example.com"])
    rejected = [e for e in events_of(relay, 3) if e["kind"] == "rejected"]
    assert len(rejected) == 3
    assert all((e["classification"]["category"], e["classification"]["scope"]) == ("policy_rejected", "recipient")
               for e in rejected)
    assert not listed(relay, "jane@example.com")


def test_an_upstream_s_551_about_its_login_or_the_command_line_lists_nobody(relay, upstream):
    # Issue #8, world15: a Chinese mail server's reply table has "551 auth error." (its SMTP AUTH
    # failed for good) and "551 line parse error" (it could not parse the command line). RFC 5321's
    # 551 is "user not local", and the rules listed both recipients at once as unknown.
    upstream.rcpt_replies["jane"] = "551 auth error."
    upstream.rcpt_replies["john"] = "551 line parse error"
    transact(relay, ["jane@example.com", "john@example.com", "joe@example.com"])
    rejected = {e["recipient"]: e["classification"] for e in events_of(relay, 2) if e["kind"] == "rejected"}
    assert (rejected["jane@example.com"]["category"], rejected["jane@example.com"]["scope"]) == (
        "auth_failed", "session")
    assert (rejected["john@example.com"]["category"], rejected["john@example.com"]["scope"]) == (
        "protocol_error", "session")
    assert not listed(relay, "jane@example.com") and not listed(relay, "john@example.com")


def test_a_protocol_reply_to_the_final_dot_lists_nobody(relay, upstream):
    upstream.data_replies["jane"] = "554 5.5.1 Error: no valid recipients"
    transact(relay, ["jane@example.com"])
    (rejected,) = [e for e in events_of(relay, 2) if e["kind"] == "rejected"]
    assert rejected["stage"] == "data" and rejected["classification"]["category"] == "protocol_error"
    assert not listed(relay, "jane@example.com")


def test_policy_code_wins_over_rfc5321_stock_text(relay, upstream):
    upstream.rcpt_replies["jane"] = STOCK_TEXT_5_7_1
    transact(relay, ["jane@example.com"])
    (rejected,) = events_of(relay, 1)
    assert rejected["classification"]["category"] != "mailbox_disabled"
    assert rejected["classification"]["scope"] != "recipient"
    assert not listed(relay, "jane@example.com")


def test_a_true_hard_bounce_still_lists_at_once(relay, upstream):
    transact(relay, ["nosuchuser@gmail.test"])
    events = events_of(relay, 2)
    assert kinds(events) == ["rejected", "bounce_listed"]
    assert events[0]["classification"]["scope"] == "recipient"
    assert events[0]["reply"]["text"] == GMAIL_NO_SUCH_USER.replace("\r\n", "\n")
    assert listed(relay, "nosuchuser@gmail.test")


def test_the_relays_own_unreachable_upstream_reply_is_classed_as_what_it_is(relay_factory):
    relay = relay_factory(25, upstream={"host": "upstream.nonexistent.invalid"})
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        code, text = c.cmd("MAIL FROM:<a@sender.test>")
    assert code == 451 and "unreachable" in text
    (event,) = events_of(relay, 1)
    assert event["reply"]["source"] == "relay"
    c = event["classification"]
    assert (c["category"], c["rule"], c["scope"]) == ("routing_dns", "relay:upstream-dns", "relay")
    assert "SPF" not in c["advice"] and "upstream.host" in c["advice"]


def test_a_refused_connection_to_the_upstream_is_classed_as_such(relay_factory):
    relay = relay_factory(closed_port())
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 451
    (event,) = events_of(relay, 1)
    c = event["classification"]
    assert (c["category"], c["rule"], c["scope"]) == ("temporary_failure", "relay:upstream-refused", "relay")


def test_a_bounce_list_refusal_is_the_relays_own(relay, upstream):
    transact(relay, ["nosuchuser@gmail.test"])
    relay.events(wait_for=2)
    transact(relay, ["nosuchuser@gmail.test"])
    (suppressed,) = [e for e in events_of(relay, 3) if e["kind"] == "suppressed"]
    assert suppressed["classification"]["rule"] == "relay:bounce-listed"
    assert suppressed["classification"]["scope"] == "relay"


@pytest.mark.parametrize("text", [
    # Exim's address parser answering for an address that is not this recipient (the envelope
    # sender, reported at RCPT by a server that delays its rejections): no stage or command named.
    # Each listed jane@ at once.
    "501 <.a@x>: missing or malformed local part",
    "501 5.1.3 <.app@sender.test>: missing or malformed local part",
    "550 5.1.1 <app@sender.test>: User unknown",
    # Exim's sender verification heading alone (a DSN or a log often keeps only the first line of
    # the multi-line reply): it counted towards listing jane@ as an unexplained 550.
    "550 Verification failed for <app@sender.test>",
])
def test_a_refusal_at_rcpt_about_another_address_lists_nobody(relay, upstream, text):
    upstream.rcpt_replies["jane"] = text
    transact(relay, ["jane@example.com", "joe@example.com"])
    events = events_of(relay, 3)
    (rejected,) = [e for e in events if e["kind"] == "rejected"]
    assert rejected["recipient"] == "jane@example.com" and "bounce_list" not in rejected
    assert rejected["classification"]["scope"] == "sender"
    assert rejected["classification"]["category"] != "syntax_error"
    assert "bounce_listed" not in kinds(events) and "warning" in kinds(events)
    assert not listed(relay, "jane@example.com")


@pytest.mark.parametrize("text", [
    "550 5.1.1 <JANE@Example.COM>: Recipient address rejected: User unknown",
    "550 5.1.1 <jane@example.net>: forwarded from <jane@example.com>: User unknown",
    "550 5.1.1 <jane@tenant.onmicrosoft.com>: User unknown",
])
def test_a_refusal_at_rcpt_that_leads_with_the_recipient_in_another_form_still_lists(relay, upstream, text):
    upstream.rcpt_replies["jane"] = text
    transact(relay, ["jane@example.com"])
    events = events_of(relay, 2)
    assert kinds(events) == ["rejected", "bounce_listed"]
    assert events[0]["classification"]["scope"] == "recipient"
    assert listed(relay, "jane@example.com")


@pytest.mark.parametrize("sender, text", [
    # Review of 2a9313d..cd336bb, F3: a sender check reported at RCPT that leads with the envelope
    # sender, when the sender shares the recipient's local part (B2B: info@, sales@) or its domain
    # (internal mail through the smarthost). The local-part/domain leniency read it as jane's: listed.
    ("jane@sender.test", "550 5.1.1 <jane@sender.test>: User unknown"),
    ("app@example.com", "550 5.1.1 <APP@example.com>: User unknown"),
    # F1: the new wordings said of the sender, and RFC 3463's X.1.8.
    ("app@sender.test", "553 5.1.8 Sender address is wrong or no longer valid"),
    ("app@sender.test", "550 5.1.1 The sender address is wrong or no longer valid"),
])
def test_a_sender_check_at_rcpt_that_shares_the_recipients_name_or_domain_lists_nobody(relay, upstream, sender,
                                                                                       text):
    upstream.rcpt_replies["jane"] = text
    transact(relay, ["jane@example.com"], sender=sender)
    events = events_of(relay, 2)
    (rejected,) = [e for e in events if e["kind"] == "rejected"]
    assert rejected["classification"]["scope"] == "sender" and "bounce_list" not in rejected
    assert "bounce_listed" not in kinds(events)
    assert not listed(relay, "jane@example.com")


def test_account_temporarily_suspended_at_rcpt_does_not_count_the_recipients(relay, upstream):
    # F4: through a smarthost, "Account has been temporarily suspended" at RCPT is as often the relay's
    # own submission account: it counted every recipient (a second one within 30 days listed them).
    upstream.rcpt_replies["jane"] = "550 5.7.1 Account has been temporarily suspended"
    transact(relay, ["jane@example.com"])
    transact(relay, ["jane@example.com"])
    events = events_of(relay, 4)
    rejected = [e for e in events if e["kind"] == "rejected"]
    assert len(rejected) == 2 and all("bounce_list" not in e for e in rejected), rejected
    assert not listed(relay, "jane@example.com")


def test_a_hard_bounce_of_the_senders_own_tagged_mailbox_lists_the_recipient(relay, upstream):
    # Review2, N1: jane mails her own +tag address through the relay; the server names the mailbox
    # without the +detail. The sender test came before "Recipient address rejected" and read the
    # true hard bounce as the sender's: nobody listed.
    upstream.rcpt_replies["jane+news"] = ("550 5.1.1 <jane@example.com>: Recipient address rejected: "
                                          "User unknown in virtual mailbox table")
    transact(relay, ["jane+news@example.com"], sender="jane@example.com")
    events = events_of(relay, 2)
    assert kinds(events) == ["rejected", "bounce_listed"]
    assert events[0]["classification"]["scope"] == "recipient"
    assert listed(relay, "jane+news@example.com")


def test_a_refusal_naming_the_recipient_and_another_missing_mailbox_does_not_list_at_once(relay, upstream):
    # Review2, N2: the text names jane, but its "user ... was not found" is about alice@acme.org (a
    # verified sender, a forwarding target); it listed jane at once, hard.
    upstream.rcpt_replies["jane"] = "550 <jane@example.com>: user alice@acme.org was not found"
    transact(relay, ["jane@example.com"])
    (rejected,) = events_of(relay, 1)
    assert rejected["classification"]["rule"] != "unknown-recipient-named-address"
    assert rejected.get("bounce_list") != "list"
    assert not listed(relay, "jane@example.com")


@pytest.mark.parametrize("template, kind", [
    # review-2 F1: world17's "recipient <a> invalid" read the start of any "Recipient <a> invalid:
    # <reason>" as an unknown user: a smarthost that refuses to relay, or an IP on a list, listed every
    # recipient of the transaction at once.
    ("550 Recipient <{}> invalid: relay not permitted", "relay_denied"),
    ("550 Recipient <{}> invalid: client 192.0.2.1 listed at zen.spamhaus.org", "blocklisted"),
    # And the older unbracketed "(user|recipient|mailbox|address) invalid" with another cause beside
    # it (not_recipient_other_cause): listed at once before.
    ("550 Recipient invalid: relaying denied", "relay_denied"),
    ("550 User invalid: no access for this IP", "blocklisted"),
    # review-5 F1: a list other than nine names, or another verb, listed at once after c148aa2.
    ("550 5.1.1 Address invalid: 192.0.2.1 listed at cbl.abuseat.org", "blocklisted"),
    ("550 5.1.1 Invalid recipient: 192.0.2.1 found in zen.spamhaus.org", "blocklisted"),
    # review-8 F2: "listed in <zone>", another verb before a list's zone, a bare "blacklisted".
    ("550 5.1.1 Invalid recipient: 192.0.2.1 listed in hostkarma.junkemailfilter.com", "blocklisted"),
    ("550 5.1.1 Invalid recipient: 192.0.2.1 found in all.spamrats.com", "blocklisted"),
    ("550 5.1.1 Invalid recipient: IP 192.0.2.1 blacklisted", "blocklisted"),
])
def test_a_recipient_called_invalid_for_the_session_s_sake_lists_nobody(relay, upstream, template, kind):
    for local in ("jane", "joe"):
        upstream.rcpt_replies[local] = template.format(f"{local}@example.com")
    replies = transact(relay, ["jane@example.com", "joe@example.com"])
    assert [r[0] for r in replies[1:3]] == [550, 550]
    rejected = [e for e in events_of(relay, 3) if e["kind"] == "rejected"]
    assert len(rejected) == 2
    assert {(e["classification"]["category"], e["classification"]["scope"]) for e in rejected} == {(kind, "session")}
    assert all("bounce_list" not in e for e in rejected)
    assert not listed(relay, "jane@example.com") and not listed(relay, "joe@example.com")


@pytest.mark.parametrize("local, reply", [
    # review-8 F1: the block-list guard widened in 5166f2d took these true unknown users for a block
    # list (never listed): "rbl" as the mailbox's name, a negated listing, a non-list "rejected using",
    # a list's homepage in a footer.
    ("rbl", "550 5.1.1 <rbl@example.com>... User unknown"),
    ("jane", "550 5.1.1 User unknown: address was never listed at example.com"),
    ("jane", "550 5.1.1 Recipient rejected using LDAP lookup: no such user"),
    ("jane", "550 5.1.1 <jane@example.com> User unknown; this server is protected by Spamhaus (https://www.spamhaus.org/)"),
])
def test_a_true_unknown_user_beside_block_list_words_is_listed(relay, upstream, local, reply):
    upstream.rcpt_replies[local] = reply
    transact(relay, [f"{local}@example.com"])
    events = events_of(relay, 2)
    assert kinds(events) == ["rejected", "bounce_listed"]
    assert (events[0]["classification"]["category"], events[0]["classification"]["scope"]) == (
        "unknown_recipient", "recipient")
    assert listed(relay, f"{local}@example.com")


def test_an_expired_ip_authorisation_does_not_count_towards_a_disabled_mailbox(relay, upstream):
    # review-2 F2: "address expired" without a bracketed address was a disabled (time-limited)
    # mailbox, counted: the second refusal within 30 days listed jane@ for 90 days.
    upstream.rcpt_replies["jane"] = "554 5.7.1 Relaying denied. IP address expired (POP before SMTP)"
    transact(relay, ["jane@example.com"])
    transact(relay, ["jane@example.com"])
    events = events_of(relay, 4)  # each transaction's refusal and the operator's warning
    assert sorted(kinds(events)) == ["rejected", "rejected", "warning", "warning"]
    assert {(e["classification"]["category"], e["classification"]["scope"]) for e in events} == {
        ("relay_denied", "session")}
    assert not listed(relay, "jane@example.com")


def test_a_recipient_tld_the_filter_does_not_know_never_lists_the_address(relay, upstream):
    # review-2 F4: smtpf's "from unknown TLD" comes from its own TLD table, which goes stale (valid
    # new gTLDs such as .dev are refused in the same words). It was routing_dns about the recipient,
    # counted: the third refusal within 3 days listed jane@example.dev.
    upstream.rcpt_replies["jane"] = "550 5.7.1 recipient <jane@example.dev> from unknown TLD"
    for _ in range(3):
        transact(relay, ["jane@example.dev"])
    events = events_of(relay, 3)
    assert kinds(events) == ["rejected"] * 3
    assert {(e["classification"]["category"], e["classification"]["scope"]) for e in events} == {
        ("routing_dns", "relay")}
    assert all("bounce_list" not in e for e in events)
    assert not listed(relay, "jane@example.dev")


def _both_refused_as_relay_denied_and_listed_nobody(relay, code):
    """jane and joe both refused with `code` at RCPT: two `rejected` events, relay_denied about the
    session, and neither on the bounce list."""
    replies = transact(relay, ["jane@example.com", "joe@example.com"])
    assert [r[0] for r in replies[1:3]] == [code, code]
    rejected = [e for e in events_of(relay, 3) if e["kind"] == "rejected"]
    assert len(rejected) == 2
    assert {(e["classification"]["category"], e["classification"]["scope"]) for e in rejected} == {
        ("relay_denied", "session")}
    assert all("bounce_list" not in e for e in rejected)
    assert not listed(relay, "jane@example.com") and not listed(relay, "joe@example.com")


@pytest.mark.parametrize("text", [
    # world18: mox answers RCPT TO for a domain it takes no mail for with "550 5.1.1 not accepting
    # email for domain": the recipient's MX points at a server that does not host the domain, a
    # relay refusal. Its X.1.1 read it as an unknown mailbox: every recipient was listed at once.
    "550 5.1.1 not accepting email for domain (Rj3kUqzZ0nWq8yXo6bTt1A)",
    "550 5.1.1 Not accepting mail for this domain",
])
def test_a_server_that_takes_no_mail_for_the_domain_lists_nobody(relay, upstream, text):
    for local in ("jane", "joe"):
        upstream.rcpt_replies[local] = text
    _both_refused_as_relay_denied_and_listed_nobody(relay, 550)


def test_a_login_without_the_right_to_send_outside_mail_lists_nobody(relay, upstream):
    # world19: Citadel answers RCPT TO with "551 <a> - you do not have permission to send Internet
    # mail" when the authenticated login may not send mail outside the server: the client's right to
    # relay, whoever the recipient. Its 551 (RFC 5321: user not local) read as a moved address: both
    # recipients were listed at once.
    for local in ("jane", "joe"):
        upstream.rcpt_replies[local] = f"551 <{local}@example.com> - you do not have permission to send Internet mail"
    _both_refused_as_relay_denied_and_listed_nobody(relay, 551)


def test_a_user_unknown_whose_enhanced_class_contradicts_its_reply_code_counts(relay, upstream):
    # "550 4.1.1": the reply code says permanent, the enhanced code's class says transient (RFC 3463
    # section 2: the class sub-code is the same permanent/transient verdict the reply code's first
    # digit gives). A server that cannot keep its own two codes in step has not said for sure that the
    # address is gone: one such refusal counts, the second within `unconfirmed:`'s window lists.
    upstream.rcpt_replies["split"] = "550 4.1.1 <split@example.com>: Recipient address rejected: User unknown"
    replies = transact(relay, ["split@example.com"])
    assert any(code == 550 for code, _ in replies)  # the client still hears the refusal, verbatim
    (rejected,) = events_of(relay, 1)
    assert rejected["classification"]["category"] == "unknown_recipient"
    assert rejected["classification"]["permanent"] is True  # the reply code decides (RFC 5321 4.2.1)
    assert rejected.get("bounce_list") == "counted"
    assert not listed(relay, "split@example.com")
    transact(relay, ["split@example.com"])
    assert kinds(events_of(relay, 3)[1:]) == ["rejected", "bounce_listed"]
    assert listed(relay, "split@example.com")


@pytest.mark.parametrize("reply, verdict", [
    # Inconsistent classes: never "list" at once (unconfirmed: counted).
    ("550 4.1.1 <a@example.com>: Recipient address rejected: User unknown", "count"),
    ("553 4.1.3 Bad recipient address syntax", "count"),
    # Consistent: as before.
    ("550 5.1.1 <a@example.com>: Recipient address rejected: User unknown", "list"),
    ("553 5.1.3 Bad recipient address syntax", "list"),
    # A 4yz is transient whatever its enhanced code says (RFC 5321 4.2.1): never lists by default.
    ("450 5.1.1 <a@example.com>: Recipient address rejected: User unknown", "never"),
])
def test_relay_classify_shows_that_inconsistent_codes_only_count(reply, verdict):
    r = subprocess.run([sys.executable, "-m", "relay", "classify", "--stage", "rcpt", "--recipient", "a@example.com",
                        reply], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["bounce_list"] == verdict, out
