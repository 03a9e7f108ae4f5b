"""Odd and hostile real-world bounces (issue 13 robustness), each where a user meets it: `relay dsn parse`,
and a running relay with VERP on that gets the bounce at its `bounces_in` listener.

- An SMTPUTF8 recipient (RFC 6531) in a DSN: a `utf-8` address-type in 7-bit form (RFC 6533 3,
  `\\x{HEX}`), a message/global-delivery-status with the address in UTF-8, and a text bounce naming it.
  The reader found addresses with an ASCII-only pattern: `jörg@dest.example` was read as
  `rg@dest.example` (an address nobody was sent to: another person's, perhaps), `j\\x{00F6}rg@...` as
  `x{00F6}rg@...`, and a report whose only recipient was non-ASCII as no bounce at all ("250 ...
  nothing recorded": the failure lost).
- A report returning a message that carried a report of its own: only the outer report's parts count.
- Challenge-response notices (TMDA, SpamArrest): a held message, never a failure that counts.
- A Feedback-Type with a comment (RFC 5965 3.1 CFWS); a Diagnostic-Code in RFC 2047 encoded words; a
  quoted-printable status part with a soft line break inside an address.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.smtp_client import RawSMTP
from tests.test_bounces_in import ORIGINAL, mail_bounce, rcpt_reply, relay_one, start_verp_relay

ROOT = Path(__file__).resolve().parent.parent
JOERG = "jörg@dest.example"


def dsn_parse(tmp_path: Path, message: bytes) -> list[dict]:
    path = tmp_path / "bounce.eml"
    path.write_bytes(message)
    done = subprocess.run([sys.executable, "-m", "relay", "dsn", "parse", str(path)], capture_output=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert b"Traceback" not in done.stderr, done.stderr
    return [json.loads(line) for line in done.stdout.decode().splitlines()]


def utf8_dsn(return_path: str, final_recipient: str, status_type: str = "message/delivery-status") -> bytes:
    """A Postfix-like DSN whose per-recipient block carries `final_recipient` as written."""
    return (f"From: MAILER-DAEMON@smarthost.example\r\nTo: {return_path}\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
            f"--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"This is the mail system at host smarthost.example.\r\n\r\n"
            f"I'm sorry to have to inform you that your message could not be delivered.\r\n\r\n"
            f"--B\r\nContent-Type: {status_type}\r\n\r\n"
            f"Reporting-MTA: dns; smarthost.example\r\n\r\n"
            f"Final-Recipient: {final_recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            f"Remote-MTA: dns; mx.dest.example\r\n"
            f"Diagnostic-Code: smtp; 550 5.1.1 Recipient address rejected: User unknown "
            f"(in reply to RCPT TO command)\r\n\r\n"
            f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\n").encode() + \
        ORIGINAL.split(b"\r\n\r\n")[0].replace(b"alice@dest.example", JOERG.encode()) + b"\r\n--B--\r\n"


TEXT_BOUNCE = ("From: MAILER-DAEMON@smarthost.example\r\nTo: {rp}\r\nSubject: Mail delivery failed\r\n"
               "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
               "This message was created automatically by mail delivery software.\r\n\r\n"
               "A message that you sent could not be delivered to one or more of its\r\n"
               "recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
               "  {rcpt}\r\n    host mx.dest.example [192.0.2.7]\r\n"
               "    SMTP error from remote mail server after RCPT TO:<{rcpt}>:\r\n"
               "    550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown\r\n")

UTF8_RECIPIENTS = {
    # RFC 6533 3: utf-8-addr-xtext, the 7-bit form a message/delivery-status part carries.
    "utf-8 address-type, \\x{} form": ("utf-8; j\\x{00F6}rg@dest.example", "message/delivery-status"),
    # RFC 6533 3 and 6: the UTF-8 form, in a message/global-delivery-status part.
    "utf-8 address-type in a global DSN": (f"utf-8; {JOERG}", "message/global-delivery-status"),
    # What real MTAs write (Postfix with smtputf8_enable): rfc822 with the address in UTF-8.
    "rfc822 address-type in UTF-8": (f"rfc822; {JOERG}", "message/global-delivery-status"),
}


@pytest.mark.parametrize("name", UTF8_RECIPIENTS)
def test_relay_dsn_parse_reads_an_smtputf8_recipient_whole(tmp_path, name):
    field, status_type = UTF8_RECIPIENTS[name]
    [line] = dsn_parse(tmp_path, utf8_dsn("news@example.com", field, status_type))
    assert line["recipient"] == JOERG
    assert line["status"] == "5.1.1" and line["classification"]["category"] == "unknown_recipient"


@pytest.mark.parametrize("rcpt", [JOERG, "bob@mail.bücher.example", "иван@dest.example"])
def test_relay_dsn_parse_never_reads_part_of_a_non_ascii_address_as_another_address(tmp_path, rcpt):
    lines = dsn_parse(tmp_path, TEXT_BOUNCE.format(rp="news@example.com", rcpt=rcpt).encode())
    assert [line["recipient"] for line in lines] == [rcpt]
    assert lines[0]["code"] == 550 and lines[0]["stage"] == "rcpt"


def send_to_joerg(relay, upstream) -> str:
    """One message from noreply@example.com to jörg@dest.example (SMTPUTF8) through the relay; the
    VERP return path the upstream saw."""
    with RawSMTP(relay.host, relay.port, timeout=60) as c:
        c.cmd("EHLO client.test")
        assert c.cmd("MAIL FROM:<noreply@example.com> SMTPUTF8")[0] == 250
        assert c.cmd(f"RCPT TO:<{JOERG}>".encode())[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(ORIGINAL.replace(b"alice@dest.example", JOERG.encode()) + b".\r\n")
        assert c.reply()[0] == 250
    [msg] = upstream.wait_for_messages(1)
    return msg.mail_from


@pytest.mark.parametrize("name", UTF8_RECIPIENTS)
def test_the_listener_records_and_lists_an_smtputf8_recipients_bounce(tmp_path, upstream, relay_factory, name):
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    return_path = send_to_joerg(relay, upstream)
    field, status_type = UTF8_RECIPIENTS[name]
    replies = mail_bounce(relay, return_path, utf8_dsn(return_path, field, status_type))
    assert replies[-1] == (250, "250 2.0.0 Recorded 1 failure(s)"), replies
    events = relay.events(wait_for=2)
    assert [(e["kind"], e["recipient"]) for e in events] == [("bounced", JOERG), ("bounce_listed", JOERG)]
    assert smtputf8_rcpt_reply(relay, JOERG) == 550


def smtputf8_rcpt_reply(relay, rcpt: str) -> int:
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd("MAIL FROM:<noreply@example.com> SMTPUTF8")[0] == 250
        code, _ = c.cmd(f"RCPT TO:<{rcpt}>".encode())
        c.cmd("RSET")
    return code


def test_the_listener_never_takes_part_of_a_non_ascii_address_for_a_recipient(tmp_path, upstream, relay_factory):
    # A text bounce about jörg was read as one about rg@dest.example: with rg a recipient of the same
    # message, rg was listed for jörg's failure, and jörg's failure was lost.
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    with RawSMTP(relay.host, relay.port, timeout=60) as c:
        c.cmd("EHLO client.test")
        assert c.cmd("MAIL FROM:<noreply@example.com> SMTPUTF8")[0] == 250
        assert c.cmd(f"RCPT TO:<{JOERG}>".encode())[0] == 250
        assert c.cmd("RCPT TO:<rg@dest.example>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(ORIGINAL + b".\r\n")
        assert c.reply()[0] == 250
    return_path = upstream.wait_for_messages(1)[0].mail_from
    replies = mail_bounce(relay, return_path, TEXT_BOUNCE.format(rp=return_path, rcpt=JOERG).encode())
    assert replies[-1][0] == 250, replies
    events = relay.events(wait_for=1)
    assert [(e["kind"], e["recipient"]) for e in events] == [("bounced", JOERG)], events
    assert rcpt_reply(relay, "rg@dest.example") == 250


# --- A report returning a message that itself carries a report -----------------------------------

def returned_report(kind: str) -> bytes:
    """A report of its own (a DSN about carol, or an ARF complaint about her), as the returned message
    of another report carries it: mail that forwarded it, or a bounce of a bounce."""
    part = ("Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; other.example\r\n\r\n"
            "Final-Recipient: rfc822; carol@dest.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            "Diagnostic-Code: smtp; 550 5.1.1 <carol@dest.example>: User unknown (in reply to RCPT TO command)\r\n"
            if kind == "dsn" else
            "Content-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: fbl/1.0\r\n"
            "Version: 1\r\nOriginal-Rcpt-To: carol@dest.example\r\n")
    report_type = "delivery-status" if kind == "dsn" else "feedback-report"
    return ("From: noreply@example.com\r\nTo: alice@dest.example\r\nSubject: Fwd: a report\r\n"
            "Message-ID: <m-1@example.com>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type={report_type}; boundary=\"I\"\r\n\r\n"
            "--I\r\nContent-Type: text/plain\r\n\r\nThe report this message forwards.\r\n\r\n"
            f"--I\r\n{part}\r\n--I--\r\n").encode()


def outer_dsn(return_path: str, action: str, status: str, inner: bytes) -> bytes:
    diagnostic = ("Diagnostic-Code: smtp; 550 5.1.1 <alice@dest.example>: User unknown (in reply to RCPT TO "
                  "command)\r\n" if action == "failed" else "")
    return (f"From: MAILER-DAEMON@smarthost.example\r\nTo: {return_path}\r\n"
            f"Subject: Delivery Status Notification\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
            f"--B\r\nContent-Type: text/plain\r\n\r\nThis is the mail system at host smarthost.example.\r\n\r\n"
            f"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; smarthost.example\r\n\r\n"
            f"Final-Recipient: rfc822; alice@dest.example\r\nAction: {action}\r\nStatus: {status}\r\n"
            f"{diagnostic}\r\n--B\r\nContent-Type: message/rfc822\r\n\r\n").encode() + inner + b"\r\n--B--\r\n"


NESTED = {
    # (outer action, outer status, returned report) -> the recipients `relay dsn parse` prints, their kind
    "a success DSN returning a DSN": ("delivered", "2.0.0", "dsn", []),
    "a relayed DSN returning a DSN": ("relayed", "2.0.0", "dsn", []),
    "a failure DSN returning a DSN": ("failed", "5.1.1", "dsn", [("alice@dest.example", None)]),
    "a failure DSN returning an ARF report": ("failed", "5.1.1", "arf", [("alice@dest.example", None)]),
    "a delay DSN returning an ARF report": ("delayed", "4.4.1", "arf", [("alice@dest.example", None)]),
}


@pytest.mark.parametrize("name", NESTED)
def test_relay_dsn_parse_reads_the_reports_own_parts_not_those_of_the_message_it_returns(tmp_path, name):
    action, status, inner, expected = NESTED[name]
    lines = dsn_parse(tmp_path, outer_dsn("news@example.com", action, status, returned_report(inner)))
    assert [(line["recipient"], line["feedback_type"]) for line in lines] == expected


@pytest.mark.parametrize("inner", ["dsn", "arf"])
def test_relay_dsn_parse_still_reads_a_report_forwarded_alone_as_an_attachment(tmp_path, inner):
    forwarded = (b"From: alice@example.com\r\nTo: news@example.com\r\nSubject: Fwd: bounce\r\nMIME-Version: 1.0\r\n"
                 b"Content-Type: multipart/mixed; boundary=\"F\"\r\n\r\n--F\r\nContent-Type: text/plain\r\n\r\n"
                 b"see below\r\n--F\r\nContent-Type: message/rfc822\r\n\r\n" + returned_report(inner) + b"\r\n--F--\r\n")
    [line] = dsn_parse(tmp_path, forwarded)
    assert line["recipient"] == "carol@dest.example"


def test_the_listener_never_takes_a_returned_messages_own_report_for_the_bounce(tmp_path, upstream, relay_factory):
    # A message to alice and carol that carried a DSN about carol (a ticket system forwarding one) was
    # delivered to alice; her MTA's success DSN (RFC 3461 NOTIFY=SUCCESS) returns the message. Read
    # as a report about carol, it listed carol, a good address, at once.
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    with RawSMTP(relay.host, relay.port, timeout=60) as c:
        c.cmd("EHLO client.test")
        c.cmd("MAIL FROM:<noreply@example.com>")
        assert c.cmd("RCPT TO:<alice@dest.example>")[0] == 250
        assert c.cmd("RCPT TO:<carol@dest.example>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(returned_report("dsn") + b".\r\n")
        assert c.reply()[0] == 250
    return_path = upstream.wait_for_messages(1)[0].mail_from
    replies = mail_bounce(relay, return_path, outer_dsn(return_path, "delivered", "2.0.0", returned_report("dsn")))
    assert replies[-1] == (250, "250 2.0.0 Received: not a bounce, nothing recorded"), replies
    # The failure report about alice returning it is hers alone, not a complaint about carol.
    replies = mail_bounce(relay, return_path, outer_dsn(return_path, "failed", "5.1.1", returned_report("arf")))
    assert replies[-1][0] == 250, replies
    events = relay.events(wait_for=1)
    assert [(e["kind"], e["recipient"]) for e in events] == [("bounced", "alice@dest.example")], events
    assert rcpt_reply(relay, "carol@dest.example") == 250


# --- Challenge-response notices --------------------------------------------------------------------

CHALLENGES = {
    # TMDA's confirmation request (its wording, addresses ours).
    "tmda": ("Subject: Re: Your ticket\r\n",
             "This message was created automatically by mail delivery software (TMDA).\r\n\r\n"
             "Your message attached below is being held because the address\r\n"
             "<{sender}> has not been verified.\r\n\r\n"
             "To release your message for delivery, please send an empty message\r\n"
             "to the following address, or use your mailer's \"Reply\" feature.\r\n\r\n"
             "   alice-confirm+1701.abcdef@dest.example\r\n\r\n"
             "Your message to {rcpt} will not be delivered until you confirm.\r\n"),
    # SpamArrest's verification request.
    "spamarrest": ("Subject: Re: Your ticket [SpamArrest verification]\r\n",
                   "Hello,\r\n\r\nI apologize for this automatic reply to your email.\r\n\r\n"
                   "To control spam, I now allow incoming messages only from senders I have approved "
                   "beforehand.\r\n\r\nIf you would like to be added to my list of approved senders, please "
                   "fill out the short request form (see link below). Once I approve you, I will receive "
                   "your original message in my inbox. Otherwise your message to {rcpt} will not be "
                   "delivered and will be deleted after 14 days.\r\n"),
}


def challenge(name: str, return_path: str, rcpt: str = "alice@dest.example") -> bytes:
    subject, body = CHALLENGES[name]
    # TMDA writes from its confirmation address, SpamArrest from the recipient's.
    sender = "alice-confirm+1701.abcdef@dest.example" if name == "tmda" else rcpt
    return (f"From: {sender}\r\nTo: {return_path}\r\n{subject}Content-Type: text/plain\r\n\r\n"
            + body.format(sender="noreply@example.com", rcpt=rcpt)).encode()


@pytest.mark.parametrize("name", CHALLENGES)
def test_relay_dsn_parse_reads_a_challenge_as_no_final_failure(tmp_path, name):
    for line in dsn_parse(tmp_path, challenge(name, "news@example.com")):
        assert line["classification"]["permanent"] is False and line["hard"] is False, line


@pytest.mark.parametrize("name", CHALLENGES)
def test_a_recipients_challenges_never_list_him(tmp_path, upstream, relay_factory, name):
    # A challenge-response filter answers every message it holds: three messages in a week, three
    # challenges, each read as an unexplained permanent failure (`other`, list_after: 3 within 7d),
    # listed alice, who gets her mail once the sender confirms.
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    for nth in (1, 2, 3):
        return_path = relay_one(relay, upstream, nth=nth)
        replies = mail_bounce(relay, return_path, challenge(name, return_path))
        assert replies[-1][0] == 250, replies
    events = relay.events(wait_for=3)
    # Nothing but alice's deferrals (a confirmation address the text names would be a verp_recipient warning).
    assert [e["kind"] for e in events if e["recipient"] == "alice@dest.example"] == ["deferred"] * 3, events
    assert {e["kind"] for e in events} <= {"deferred", "warning"}, events
    assert rcpt_reply(relay) == 250


# --- A Feedback-Type with a comment; a Diagnostic-Code in RFC 2047 encoded words ---------------------

@pytest.mark.parametrize("written, feedback_type, lists", [
    # RFC 5965 3.1: `"Feedback-Type:" [CFWS] token [CFWS]`: a comment is no part of the type.
    ("abuse (user clicked Junk)", "abuse", True),
    ("(JMRP) fraud", "fraud", True),
    ("not-spam (moved back to the inbox)", "not-spam", False),
])
def test_a_feedback_type_with_a_comment_is_its_token(tmp_path, upstream, relay_factory, written, feedback_type,
                                                      lists):
    from tests.test_bounces_in_review12 import arf

    [line] = dsn_parse(tmp_path, arf("news@example.com", written))
    assert line["feedback_type"] == feedback_type
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    rp = relay_one(relay, upstream)
    assert mail_bounce(relay, rp, arf(rp, written))[-1] == (250, "250 2.0.0 Recorded 1 complaint(s)")
    events = relay.events(wait_for=2 if lists else 1, timeout=3)
    [complained] = [e for e in events if e["kind"] == "complained"]
    assert complained["feedback_type"] == feedback_type
    assert rcpt_reply(relay) == (550 if lists else 250)


def test_relay_dsn_parse_reads_a_diagnostic_code_in_encoded_words(tmp_path):
    # A reply in another charset, written as RFC 2047 encoded words: before, no reply code was read
    # from it and the words stayed encoded.
    encoded = "=?utf-8?q?550_5=2E1=2E1_Benutzer_unbekannt_=28Empf=C3=A4nger=29?="
    message = utf8_dsn("news@example.com", "rfc822; alice@dest.example").replace(
        b"550 5.1.1 Recipient address rejected: User unknown (in reply to RCPT TO command)", encoded.encode())
    [line] = dsn_parse(tmp_path, message)
    assert line["code"] == 550 and line["status"] == "5.1.1"
    assert line["diagnostic"] == "550 5.1.1 Benutzer unbekannt (Empfänger)"


# --- A quoted-printable status part with a soft line break -------------------------------------------

def qp_dsn(return_path: str) -> bytes:
    """A DSN whose status part is quoted-printable (RFC 2045 6.7: at most 76 characters a line, so a
    long field is broken with soft line breaks, "=" at the end of a line), one of them in the address."""
    return (f"From: MAILER-DAEMON@smarthost.example\r\nTo: {return_path}\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
            f"--B\r\nContent-Type: text/plain\r\n\r\nThis is the mail system at host smarthost.example.\r\n\r\n"
            f"--B\r\nContent-Type: message/delivery-status\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            f"Reporting-MTA: dns; smarthost.example\r\n\r\n"
            f"Final-Recipient: rfc822; alice@dest.exa=\r\nmple\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            f"Diagnostic-Code: smtp; 550 5.1.1 <alice@dest.example>: Recipient address rejected: User unknown =\r\n"
            f"in virtual mailbox table (in reply to RCPT TO command)\r\n\r\n--B--\r\n").encode()


def test_relay_dsn_parse_reads_a_quoted_printable_status_part_across_its_soft_line_breaks(tmp_path):
    # The encoded part was regenerated with a blank line where the parser had split a block (after a
    # soft line break), which made the soft break a hard one: "alice@dest.exa" and "mple" apart, no
    # address, the report read as none.
    [line] = dsn_parse(tmp_path, qp_dsn("news@example.com"))
    assert line["recipient"] == "alice@dest.example" and line["code"] == 550 and line["stage"] == "rcpt"
    assert line["diagnostic"] == ("550 5.1.1 <alice@dest.example>: Recipient address rejected: User unknown "
                                  "in virtual mailbox table")


def test_the_listener_records_a_quoted_printable_status_parts_failure(verp_relay_of):
    relay, return_path = verp_relay_of
    replies = mail_bounce(relay, return_path, qp_dsn(return_path))
    assert replies[-1] == (250, "250 2.0.0 Recorded 1 failure(s)"), replies
    assert rcpt_reply(relay) == 550


@pytest.fixture
def verp_relay_of(tmp_path, upstream, relay_factory):
    """A VERP relay and the return path of one message it relayed to alice@dest.example."""
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    return relay, relay_one(relay, upstream)
