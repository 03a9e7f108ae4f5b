"""How a DSN names the recipient we sent to, where a user meets it: `relay dsn parse`, and a running relay
with VERP on that gets the DSN at its `bounces_in` listener.

- Original-Recipient carries the ORCPT value (RFC 3464 2.3.1), which RFC 3461 4 writes in xtext
  (`a+2Bb@x` is a+b@x; Sendmail keeps it so); the "utf-8" address-type writes "+" as `\\x{2B}` (RFC 6533
  3). Read as written, neither was the address we sent to (`a+2Bb@...`, `x{2B}b@...`): an alias's
  failure of a tagged address was a `verp_recipient` warning, never recorded. Only valid xtext is
  decoded: Postfix writes the value decoded (`a+tag@x`), taken as written.
- A non-ASCII local part we sent composed (NFC) and a reporting MTA writes decomposed (NFD) is the same
  address: the failure is recorded and listed under the address the relay sent.
"""

from __future__ import annotations

import unicodedata

import pytest

from tests.support.smtp_client import RawSMTP
from tests.test_bounces_in import ORIGINAL, mail_bounce, rcpt_reply, relay_one, start_verp_relay
from tests.test_bounces_in_hostile import JOERG, dsn_parse, send_to_joerg, smtputf8_rcpt_reply, utf8_dsn

TAGGED = "a+b@dest.example"


def orcpt_dsn(return_path: str, original: str, final: str) -> bytes:
    """A Sendmail-like DSN of one recipient block with both recipient fields as written."""
    return (f"From: MAILER-DAEMON@smarthost.example\r\nTo: {return_path}\r\n"
            f"Subject: Returned mail: see transcript for details\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
            f"--B\r\nContent-Type: text/plain\r\n\r\nThe original message was received at the smarthost.\r\n\r\n"
            f"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
            f"Reporting-MTA: dns; smarthost.example\r\n\r\n"
            f"Original-Recipient: {original}\r\nFinal-Recipient: {final}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            f"Remote-MTA: dns; mx.list.example\r\n"
            f"Diagnostic-Code: smtp; 550 5.1.1 <member@list.example>... User unknown\r\n\r\n"
            f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\n").encode() + ORIGINAL.split(b"\r\n\r\n")[0] + \
        b"\r\n--B--\r\n"


ENCODED = {
    "xtext (RFC 3461 4)": "rfc822;a+2Bb@dest.example",
    "xtext, every character a hexchar": "rfc822;+61+2B+62@dest.example",
    "utf-8 address-type (RFC 6533 3)": "utf-8;a\\x{2B}b@dest.example",
}


@pytest.mark.parametrize("name", ENCODED)
def test_relay_dsn_parse_decodes_an_original_recipients_xtext(tmp_path, name):
    [line] = dsn_parse(tmp_path, orcpt_dsn("news@example.com", ENCODED[name], "rfc822; member@list.example"))
    assert line["original_recipient"] == TAGGED
    assert line["recipient"] == "member@list.example"


AS_WRITTEN = {
    # No valid xtext: Postfix writes the ORCPT value decoded (RFC 3461 4 asks for xtext), so it is the
    # address as the sender gave it, taken as written.
    "Postfix's tagged address (a + without two hex digits)": ("rfc822;a+tag@dest.example", "a+tag@dest.example"),
    "lower-case hex": ("rfc822;a+2bb@dest.example", "a+2bb@dest.example"),
    "a bare =": ("rfc822;a=b@dest.example", "a=b@dest.example"),
    "a hexchar for a control character": ("rfc822;a+0Ab@dest.example", "a+0Ab@dest.example"),
}


@pytest.mark.parametrize("name", AS_WRITTEN)
def test_relay_dsn_parse_takes_an_original_recipient_that_is_no_valid_xtext_as_written(tmp_path, name):
    written, address = AS_WRITTEN[name]
    [line] = dsn_parse(tmp_path, orcpt_dsn("news@example.com", written, "rfc822; alice@dest.example"))
    assert line["original_recipient"] == address
    assert line["recipient"] == "alice@dest.example"


NOT_UTF8_XTEXT = {
    # Each would be read as an address nobody was sent to (its backslash is no address's).
    "utf-8: a surrogate": "utf-8;j\\x{D800}rg@dest.example",
    "utf-8: a backslash that is no \\x{}": "utf-8;j\\x{00F6rg@dest.example",
}


@pytest.mark.parametrize("name", NOT_UTF8_XTEXT)
def test_relay_dsn_parse_takes_a_utf8_original_recipient_that_is_no_valid_xtext_for_absent(tmp_path, name):
    [line] = dsn_parse(tmp_path, orcpt_dsn("news@example.com", NOT_UTF8_XTEXT[name], "rfc822; alice@dest.example"))
    assert line["original_recipient"] is None
    assert line["recipient"] == "alice@dest.example"


def test_the_listener_records_an_aliass_failure_of_a_tagged_address_written_in_xtext(tmp_path, upstream,
                                                                                     relay_factory):
    # We sent to a+b@; its alias's member failed. Read as written, the Original-Recipient a+2Bb@ was no
    # recipient of the transaction and the member neither: a verp_recipient warning, the failure lost.
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    return_path = relay_one(relay, upstream, rcpt=TAGGED)
    replies = mail_bounce(relay, return_path, orcpt_dsn(return_path, ENCODED["xtext (RFC 3461 4)"],
                                                        "rfc822; member@list.example"))
    assert replies[-1] == (250, "250 2.0.0 Recorded 1 failure(s)"), replies
    events = relay.events(wait_for=1)
    assert [(e["kind"], e["recipient"]) for e in events] == [("bounced", TAGGED)], events
    assert events[0]["dsn"]["original_recipient"] == TAGGED
    # An alias's member gone says nothing of the alias (docs/bounces-in.md): recorded, never listed.
    assert rcpt_reply(relay, TAGGED) == 250


def test_the_listener_records_an_aliass_failure_of_a_tagged_address_postfix_writes_decoded(tmp_path, upstream,
                                                                                           relay_factory):
    # Postfix writes the ORCPT value decoded ("rfc822;a+tag@x"): taken for no address (no valid xtext),
    # neither name was a recipient of the transaction: a verp_recipient warning, the failure lost.
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    return_path = relay_one(relay, upstream, rcpt="a+tag@dest.example")
    replies = mail_bounce(relay, return_path, orcpt_dsn(return_path, "rfc822;a+tag@dest.example",
                                                        "rfc822; member@list.example"))
    assert replies[-1] == (250, "250 2.0.0 Recorded 1 failure(s)"), replies
    events = relay.events(wait_for=1)
    assert [(e["kind"], e["recipient"]) for e in events] == [("bounced", "a+tag@dest.example")], events
    assert rcpt_reply(relay, "a+tag@dest.example") == 250


# --- Unicode normalisation -------------------------------------------------------------------------

JOERG_NFD = unicodedata.normalize("NFD", JOERG)


@pytest.mark.parametrize("field", [f"rfc822; {JOERG_NFD}", f"utf-8; {JOERG_NFD}"])
def test_the_listener_records_a_composed_recipient_a_report_writes_decomposed(tmp_path, upstream, relay_factory,
                                                                              field):
    assert JOERG_NFD != JOERG and unicodedata.normalize("NFC", JOERG) == JOERG
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    return_path = send_to_joerg(relay, upstream)
    replies = mail_bounce(relay, return_path, utf8_dsn(return_path, field, "message/global-delivery-status"))
    # Before: "Recorded 0 failure(s); 1 not recipients of that transaction: ignored" and a warning.
    assert replies[-1] == (250, "250 2.0.0 Recorded 1 failure(s)"), replies
    events = relay.events(wait_for=2)
    # The bounce list holds the address the client used (composed), never the report's spelling.
    assert [(e["kind"], e["recipient"]) for e in events] == [("bounced", JOERG), ("bounce_listed", JOERG)]
    assert smtputf8_rcpt_reply(relay, JOERG) == 550


def test_a_kelvin_sign_in_a_report_never_stands_for_the_letter_k(tmp_path, upstream, relay_factory):
    # NFC maps U+212A KELVIN SIGN to "K" on its own (a canonical singleton): kate@ is another mailbox than
    # "\u212aate@" to the bounce list (review24 F2), and stays so when a report is matched.
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    return_path = relay_one(relay, upstream, rcpt="kate@dest.example")
    replies = mail_bounce(relay, return_path, utf8_dsn(return_path, "rfc822; \u212aate@dest.example",
                                                       "message/global-delivery-status"))
    assert replies[-1][0] == 250 and "Recorded 0 failure(s)" in replies[-1][1], replies
    events = relay.events(wait_for=1)
    assert [(e["kind"], e.get("check")) for e in events] == [("warning", "verp_recipient")], events
    assert rcpt_reply(relay, "kate@dest.example") == 250


# --- An ORCPT value that is valid xtext by accident (issue 13, review F3) -----------------------------
#
# Postfix writes the ORCPT value decoded: a tagged address with two hex digits after its "+" (a country
# code, a year) is valid xtext by accident: "order+31@x.example" decodes to order1@x.example, another
# mailbox. Read only decoded, the failure of order+31@ was told as order1@'s, or lost.

PHONE_TAG = "order+31@x.example"
DECODED_BY_ACCIDENT = "order1@x.example"


def postfix_dsn(return_path: str, original: str, final: str, named: str) -> bytes:
    """A Postfix-like DSN of one recipient block: the ORCPT value as Postfix writes it (decoded), and a
    remote reply that names the address `named` (the one that failed)."""
    return (f"From: MAILER-DAEMON@smarthost.example\r\nTo: {return_path}\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
            f"--B\r\nContent-Type: text/plain\r\n\r\nThis is the mail system at host smarthost.example.\r\n\r\n"
            f"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
            f"Reporting-MTA: dns; smarthost.example\r\nX-Postfix-Sender: rfc822; {return_path}\r\n\r\n"
            f"Final-Recipient: rfc822; {final}\r\nOriginal-Recipient: {original}\r\nAction: failed\r\n"
            f"Status: 5.1.1\r\nRemote-MTA: dns; mx.x.example\r\n"
            f"Diagnostic-Code: smtp; 550 5.1.1 <{named}>: Recipient address rejected: User unknown\r\n\r\n"
            f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\n").encode() + ORIGINAL.split(b"\r\n\r\n")[0] + \
        b"\r\n--B--\r\n"


def test_relay_dsn_parse_reads_a_tagged_original_recipient_as_its_final_recipient_does(tmp_path):
    # Final-Recipient order+31@: the reporting MTA wrote the ORCPT value as it wrote that one, decoded.
    [line] = dsn_parse(tmp_path, postfix_dsn("news@example.com", f"rfc822;{PHONE_TAG}", PHONE_TAG, PHONE_TAG))
    assert line["original_recipient"] == PHONE_TAG
    assert line["recipient"] == PHONE_TAG
    assert "original_recipient_readings" not in line


def test_relay_dsn_parse_gives_both_readings_of_an_original_recipient_nothing_decides(tmp_path):
    # An alias's member failed: nothing in the report says which reading the ORCPT value is. The
    # likelier first: "+31" is no character an xtext encoder must write ("+" and "=" are), so as written.
    [line] = dsn_parse(tmp_path, postfix_dsn("news@example.com", f"rfc822;{PHONE_TAG}", "member@list.example",
                                             "member@list.example"))
    assert line["original_recipient"] == PHONE_TAG
    assert line["original_recipient_readings"] == [PHONE_TAG, DECODED_BY_ACCIDENT]
    assert line["recipient"] == "member@list.example"


def test_the_listener_records_an_aliass_failure_of_an_address_whose_tag_is_xtext_by_accident(tmp_path, upstream,
                                                                                             relay_factory):
    # Before: the Original-Recipient read as order1@ (no recipient) and the member neither: "Recorded 0
    # failure(s); 1 not recipients of that transaction: ignored" and a verp_recipient warning naming
    # order1@, the failure of order+31@ lost.
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    return_path = relay_one(relay, upstream, rcpt=PHONE_TAG)
    replies = mail_bounce(relay, return_path, postfix_dsn(return_path, f"rfc822;{PHONE_TAG}", "member@list.example",
                                                          "member@list.example"))
    assert replies[-1] == (250, "250 2.0.0 Recorded 1 failure(s)"), replies
    events = relay.events(wait_for=1)
    assert [(e["kind"], e["recipient"]) for e in events] == [("bounced", PHONE_TAG)], events
    assert events[0]["dsn"]["original_recipient"] == PHONE_TAG
    assert DECODED_BY_ACCIDENT not in str(events)
    assert rcpt_reply(relay, PHONE_TAG) == 250  # an alias's member gone says nothing of the alias


def test_a_failure_of_an_address_whose_tag_is_xtext_by_accident_is_never_told_as_the_decoded_ones(
        tmp_path, upstream, relay_factory):
    # One message to order+31@ and to order1@ (two mailboxes); order+31@ fails, Postfix reports it. Before:
    # the Original-Recipient, decoded, matched order1@ first: the application was told that order1@
    # bounced (the good address), and order+31@'s failure never counted.
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    return_path = relay_one(relay, upstream, rcpts=[PHONE_TAG, DECODED_BY_ACCIDENT])
    replies = mail_bounce(relay, return_path, postfix_dsn(return_path, f"rfc822;{PHONE_TAG}", PHONE_TAG, PHONE_TAG))
    assert replies[-1] == (250, "250 2.0.0 Recorded 1 failure(s)"), replies
    events = relay.events(wait_for=1)
    assert [(e["kind"], e["recipient"]) for e in events] == [("bounced", PHONE_TAG)], events
    assert events[0]["dsn"]["original_recipient"] == PHONE_TAG
    assert DECODED_BY_ACCIDENT not in str(events)
    # A shared return path never lists at once (suppression.yaml shared_return_path): a second message's
    # failure of order+31@ lists it, and order1@ is never on the list.
    return_path = relay_one(relay, upstream, rcpts=[PHONE_TAG, DECODED_BY_ACCIDENT], nth=2)
    mail_bounce(relay, return_path, postfix_dsn(return_path, f"rfc822;{PHONE_TAG}", PHONE_TAG, PHONE_TAG))
    events = relay.events(wait_for=3)
    assert ("bounce_listed", PHONE_TAG) in [(e["kind"], e["recipient"]) for e in events], events
    assert DECODED_BY_ACCIDENT not in str(events)
    assert rcpt_reply(relay, PHONE_TAG) == 550
    assert rcpt_reply(relay, DECODED_BY_ACCIDENT) == 250


def test_an_original_recipient_that_reads_as_two_recipients_names_the_likelier_and_lists_nobody(
        tmp_path, upstream, relay_factory):
    # Both readings were recipients, and an alias's member failed: nothing says which of the two was
    # expanded. The event names the likelier (as written: "+31" is nothing an encoder must write); the
    # bounce list is left alone. Before: the event named order1@.
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    return_path = relay_one(relay, upstream, rcpts=[PHONE_TAG, DECODED_BY_ACCIDENT])
    replies = mail_bounce(relay, return_path, postfix_dsn(return_path, f"rfc822;{PHONE_TAG}", "member@list.example",
                                                          "member@list.example"))
    assert replies[-1] == (250, "250 2.0.0 Recorded 1 failure(s)"), replies
    events = relay.events(wait_for=1)
    assert [(e["kind"], e["recipient"]) for e in events] == [("bounced", PHONE_TAG)], events
    assert events[0]["dsn"]["original_recipient_readings"] == [PHONE_TAG, DECODED_BY_ACCIDENT]
    assert rcpt_reply(relay, PHONE_TAG) == 250
    assert rcpt_reply(relay, DECODED_BY_ACCIDENT) == 250


def test_a_report_without_final_recipient_whose_original_recipient_reads_as_the_one_recipient_lists_it(
        tmp_path, upstream, relay_factory):
    # No Final-Recipient (RFC 3464 requires one; not every MTA writes it), an Original-Recipient that reads
    # two ways, and the transaction had one of them: order1@. Before, the failure stayed named by the other
    # reading (order+31@), was taken for an alias's and never listed (review-int2 F7), while the reply
    # names order1@ unknown.
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    return_path = relay_one(relay, upstream, rcpt=DECODED_BY_ACCIDENT)
    report = postfix_dsn(return_path, f"rfc822;{PHONE_TAG}", "x", DECODED_BY_ACCIDENT).replace(
        b"Final-Recipient: rfc822; x\r\n", b"")
    replies = mail_bounce(relay, return_path, report)
    assert replies[-1] == (250, "250 2.0.0 Recorded 1 failure(s)"), replies
    events = relay.events(wait_for=2)
    assert [(e["kind"], e["recipient"]) for e in events] == [("bounced", DECODED_BY_ACCIDENT),
                                                              ("bounce_listed", DECODED_BY_ACCIDENT)], events
    assert rcpt_reply(relay, DECODED_BY_ACCIDENT) == 550
