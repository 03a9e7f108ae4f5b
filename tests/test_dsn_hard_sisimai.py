"""`relay dsn parse`'s `hard` is sisimai's HardBounce (docs/bounces-in.md, "The `hard` label"):
a "no such user" whose report does not say which SMTP command it answered, and whose status code
is not X.1.x, is sisimai's Filtered, not hard, unless its words are the mailbox system's own lookup
(bounce-rules.yaml `hard_at_any_stage:`). The bounce list's decision does not change with it."""

from __future__ import annotations

import json

import pytest

from relay.classify import SHIPPED_RULES, Classifier
from relay.cli import main
from relay.errors import ConfigError


def run(capsys, *argv) -> list[dict]:
    status = main(["dsn", "parse", *argv])
    out, err = capsys.readouterr()
    assert status == 0 and err == ""
    return [json.loads(line) for line in out.splitlines()]


def _dsn(diagnostic: str, status: str = "5.0.0", extra: str = "") -> str:
    # An RFC 3464 report as a smarthost writes it: a human part, the delivery-status part.
    return ("From: MAILER-DAEMON@smarthost.example\n"
            "To: app@sender.example\n"
            "Subject: Undelivered Mail Returned to Sender\n"
            "MIME-Version: 1.0\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\n\n'
            "--b1\n"
            "Content-Type: text/plain\n\n"
            "Your message could not be delivered to one or more recipients.\n\n"
            "--b1\n"
            "Content-Type: message/delivery-status\n\n"
            "Reporting-MTA: dns; smarthost.example\n\n"
            "Final-Recipient: rfc822; bob@dest.example\n"
            "Action: failed\n"
            f"Status: {status}\n"
            "Remote-MTA: dns; mx.dest.example\n"
            f"Diagnostic-Code: smtp; {diagnostic}\n"
            f"{extra}\n"
            "--b1--\n")


def _row(capsys, tmp_path, text: str) -> dict:
    path = tmp_path / "bounce.eml"
    path.write_text(text, encoding="utf-8")
    [row] = run(capsys, str(path))
    return row


def _verdict(row: dict) -> tuple:
    return (row["recipient"], row["stage"], row["hard"], row["classification"]["category"],
            row["classification"]["bounce_list"])


def test_a_no_such_user_of_unknown_stage_is_not_hard_and_still_listed(capsys, tmp_path):
    # Before, `hard` was true: the report does not say whether the server refused the RCPT or the
    # message after DATA (a content filter's "550 unknown user"), and sisimai calls it Filtered. The
    # relay's own decision does not change: the address is listed at once, as before.
    row = _row(capsys, tmp_path, _dsn("550 unknown user"))
    assert _verdict(row) == ("bob@dest.example", None, False, "unknown_recipient", "list")
    row = _row(capsys, tmp_path, _dsn("550 <bob@dest.example>... No such user here", status="5.5.0"))
    assert _verdict(row) == ("bob@dest.example", None, False, "unknown_recipient", "list")


def test_the_stage_or_an_address_status_keeps_it_hard(capsys, tmp_path):
    # The same words in reply to RCPT (sisimai's UserUnknown at RCPT whatever the code) ...
    row = _row(capsys, tmp_path, _dsn("550 unknown user (in reply to RCPT TO command)"))
    assert _verdict(row) == ("bob@dest.example", "rcpt", True, "unknown_recipient", "list")
    # ... or under X.1.1, the server's or the report's code naming the address (RFC 3463 3.2).
    row = _row(capsys, tmp_path, _dsn("550 unknown user", status="5.1.1"))
    assert (row["stage"], row["hard"], row["classification"]["category"]) == (None, True, "unknown_recipient")
    row = _row(capsys, tmp_path, _dsn("550 5.1.1 <bob@dest.example>: unknown user"))
    assert (row["stage"], row["hard"]) == (None, True)


def test_the_mailbox_systems_own_lookup_is_hard_at_any_stage(capsys, tmp_path):
    # PowerMTA's own category of the failure: a mailbox that does not exist.
    row = _row(capsys, tmp_path, _dsn("554 delivery error: dd This user doesn't have a dest.example account "
                                      "(bob@dest.example) [0]", extra="X-PowerMTA-BounceCategory: bad-mailbox"))
    assert (row["stage"], row["hard"], row["classification"]["bounce_list"]) == (None, True, "list")
    # Without it, the same Yahoo text of unknown stage is sisimai's Filtered.
    row = _row(capsys, tmp_path, _dsn("554 delivery error: dd This user doesn't have a dest.example account "
                                      "(bob@dest.example) [0]"))
    assert (row["stage"], row["hard"], row["classification"]["bounce_list"]) == (None, False, "list")
    # Gmail's "Address not found" above the reply it got: its own words about the address.
    gmail = ("From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\n"
             "To: app@sender.example\n"
             "Subject: Delivery Status Notification (Failure)\n\n"
             "** Address not found **\n\n"
             "Your message wasn't delivered to bob@dest.example because the address couldn't be found, "
             "or is unable to receive mail.\n\n"
             "The response was:\n\n"
             "550 <bob@dest.example>: User unknown\n")
    row = _row(capsys, tmp_path, gmail)
    assert (row["recipient"], row["stage"], row["hard"]) == ("bob@dest.example", None, True)
    # Exchange 2003's own NDR: "The recipient name is not recognized" (000C05A6).
    exchange = ("From: System Administrator <postmaster@dest.example>\n"
                "To: app@sender.example\n"
                "Subject: Undeliverable: hello\n\n"
                "Your message\n\n  To:      bob@dest.example\n  Subject: hello\n\n"
                "did not reach the following recipient(s):\n\n"
                "bob@dest.example on Thu, 29 Apr 2010 00:00:00 -0000\n"
                "    The recipient name is not recognized\n"
                "    MSEXCH:IMS:DEST:SITE:SERVER 0 (000C05A6) Unknown Recipient\n")
    row = _row(capsys, tmp_path, exchange)
    assert (row["recipient"], row["stage"], row["hard"]) == ("bob@dest.example", None, True)


def test_hard_at_any_stage_is_checked_at_load(tmp_path):
    # An operator file's list adds to the shipped one; a bad one is an error at load.
    local = tmp_path / "bounce-rules.local.yaml"
    local.write_text("version: 1\nrules: []\nhard_at_any_stage: ['no such luser here']\n", encoding="utf-8")
    classifier = Classifier.from_files([local, SHIPPED_RULES])
    assert classifier.hard_at_any_stage.search("550 No such luser here")
    assert classifier.hard_at_any_stage.search("The recipient name is not recognized")
    local.write_text("version: 1\nrules: []\nhard_at_any_stage: ['unclosed (']\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        Classifier.from_files([local])
    local.write_text("version: 1\nrules: []\nhard_at_any_stage: 'not a list'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a list of regular expressions"):
        Classifier.from_files([local])


def test_imails_rcpt_to_generated_following_response_is_the_rcpt_stage(capsys, tmp_path):
    # Ipswitch IMail (SMTP32) writes the command above the reply it got. Before, the stage was not
    # read (null), and `hard` fell to sisimai's Filtered; at RCPT it is UserUnknown, as sisimai reads it.
    text = ("From: postmaster@sender.example\n"
            "To: app@sender.example\n"
            "Subject: Undeliverable Mail\n"
            "X-Mailer: <SMTP32 v8.15>\n\n"
            "Unknown user: bob@dest.example\n\n"
            "RCPT TO generated following response:\n"
            "553 5.3.0 <bob@dest.example>... Addressee unknown, relay=[192.0.2.10]\n\n"
            "Original message follows.\n")
    row = _row(capsys, tmp_path, text)
    assert _verdict(row) == ("bob@dest.example", "rcpt", True, "unknown_recipient", "list")


# Branch sisimai-hard: the rest of sisimai's rule as its source has it (go-sisimai reason/find.go,
# why-userunknown.go, why-filtered.go, smtp/failure, smtp/status, lda; policies.sisimai_hard). Each
# `hard` below was false before; the bounce list's decision is the one it was.

def test_an_address_status_is_user_unknown_at_any_stage(capsys, tmp_path):
    # sisimai reads 5.1.0/5.1.1/5.1.3 as UserUnknown before its Filtered, at DATA too ...
    row = _row(capsys, tmp_path, _dsn("550 5.1.1 <bob@dest.example>... User unknown (in reply to end of DATA "
                                      "command)", status="5.1.1"))
    assert _verdict(row) == ("bob@dest.example", "data", True, "unknown_recipient", "count")
    # ... whether the server or the report said it (Sendmail's Status 5.1.1 over a vague refusal) ...
    row = _row(capsys, tmp_path, _dsn("550 <bob@dest.example> recipient rejected (in reply to RCPT TO command)",
                                      status="5.1.1"))
    assert _verdict(row) == ("bob@dest.example", "rcpt", True, "unknown_recipient", "count")
    # ... and 5.1.3 (a malformed address) is in its table as UserUnknown too.
    row = _row(capsys, tmp_path, _dsn("553 5.1.3 <bob@dest.example>... Bad recipient address syntax (in reply to "
                                      "RCPT TO command)", status="5.1.3"))
    assert _verdict(row) == ("bob@dest.example", "rcpt", True, "syntax_error", "list")


def test_an_address_status_gives_way_to_words_of_another_reason(capsys, tmp_path):
    # Unchanged: the sender's refusal (its Rejected), a disabled account (its Suspend) under X.1.x.
    row = _row(capsys, tmp_path, _dsn("550 5.1.0 <app@sender.example>: Sender address rejected: User unknown in "
                                      "virtual mailbox table (in reply to RCPT TO command)", status="5.1.0"))
    assert (row["hard"], row["classification"]["scope"], row["classification"]["bounce_list"]) == (
        False, "sender", "never")
    # A disabled account in sisimai's Suspend words (why-suspend.go) under X.1.1; "Account disabled"
    # alone is not one of them, so there 5.1.1 names UserUnknown (branch dsn-hard5).
    row = _row(capsys, tmp_path, _dsn("550 5.1.1 <bob@dest.example>... Mailbox disabled (in reply to RCPT TO "
                                      "command)", status="5.1.1"))
    assert (row["hard"], row["classification"]["category"]) == (False, "mailbox_disabled")
    row = _row(capsys, tmp_path, _dsn("550 5.1.1 <bob@dest.example>... Account disabled (in reply to RCPT TO "
                                      "command)", status="5.1.1"))
    assert (row["hard"], row["classification"]["category"]) == (True, "mailbox_disabled")
    # And a "no such user" after DATA without an address status stays sisimai's Filtered.
    row = _row(capsys, tmp_path, _dsn("550 unknown user (in reply to end of DATA command)"))
    assert (row["stage"], row["hard"]) == ("data", False)


def test_a_no_such_user_at_rcpt_or_a_moved_mailbox_is_hard_whatever_the_code(capsys, tmp_path):
    # sisimai's HardBounce is its reason's: UserUnknown and HasMoved are hard even when temporary.
    row = _row(capsys, tmp_path, _dsn("450 4.1.1 <bob@dest.example>: Recipient address rejected: User unknown in "
                                      "local recipient table (in reply to RCPT TO command)",
                                      status="4.1.1").replace("Action: failed", "Action: delayed"))
    assert _verdict(row) == ("bob@dest.example", "rcpt", True, "unknown_recipient", "never")
    row = _row(capsys, tmp_path, _dsn("450 4.1.6 <bob@dest.example>... Mailbox moved (in reply to RCPT TO command)",
                                      status="4.1.6").replace("Action: failed", "Action: delayed"))
    assert _verdict(row) == ("bob@dest.example", "rcpt", True, "unknown_recipient", "never")


def test_a_server_not_accepting_mail_is_not_accept(capsys, tmp_path):
    # 5.3.2 is NotAccept in sisimai's status table: hard when permanent. Nothing is listed.
    row = _row(capsys, tmp_path, _dsn("554 5.3.2 System not accepting network messages", status="5.3.2"))
    assert (row["hard"], row["classification"]["category"], row["classification"]["bounce_list"]) == (
        True, "temporary_failure", "never")


def test_a_local_delivery_agents_own_words_are_hard(capsys, tmp_path):
    # sisimai's LDA table (maildrop's "Cannot find system user") is read before its Filtered, even
    # where our rules do not read the words (category other, counted as before).
    row = _row(capsys, tmp_path, _dsn("maildrop: Cannot find system user bob"))
    assert _verdict(row) == ("bob@dest.example", None, True, "other", "count")


# Branch dsn-hard5: sisimai's own words for Suspend, HasMoved and HostUnknown (bounce-rules.yaml
# `sisimai_words:`), and its UserUnknown by the status over our reading of a disabled account. Each
# case is a synthetic reply built from the rule (docs/bounces-in.md, "Branch dsn-hard5"), not one of
# sisimai's emails; `bounce_list` is asserted each time: the listing decision does not move.

def test_an_address_status_is_user_unknown_over_a_disabled_reading_that_is_not_suspends(capsys, tmp_path):
    # "inactive email address", "account deactivated" are none of sisimai's Suspend words, which
    # rank before UserUnknown; so its status 5.1.1 names the reason (why-userunknown.go). Before: not
    # hard, our rules read the words as a disabled account.
    for diagnostic, status in (("550 5.1.1 <bob@dest.example>: inactive email address", "5.0.0"),
                               ("550 account deactivated", "5.1.1")):
        row = _row(capsys, tmp_path, _dsn(diagnostic, status=status))
        assert _verdict(row) == ("bob@dest.example", None, True, "mailbox_disabled", "count"), diagnostic


def test_suspends_own_words_are_never_hard_even_under_an_address_status(capsys, tmp_path):
    # Before: "has been suspended" under 5.1.1 was hard (our rules read only the code there).
    row = _row(capsys, tmp_path, _dsn("550 5.1.1 <bob@dest.example>: has been suspended"))
    assert _verdict(row) == ("bob@dest.example", None, False, "unknown_recipient", "list")
    row = _row(capsys, tmp_path, _dsn("550 5.1.1 <bob@dest.example>: mailbox disabled"))
    assert _verdict(row) == ("bob@dest.example", None, False, "mailbox_disabled", "count")
    # RFC 4954's 525 5.7.13 "User Account Disabled" (sisimai's Suspend by the reply code).
    row = _row(capsys, tmp_path, _dsn("525 5.7.13 <bob@dest.example>: user account disabled"))
    assert row["hard"] is False


def test_has_moveds_own_words_are_hard(capsys, tmp_path):
    # Before: not hard, no rule of ours reads "has been replaced by" (a mailbox moved to a new address).
    row = _row(capsys, tmp_path, _dsn("550 <bob@dest.example> has been replaced by <robert@new.example>"))
    assert (row["hard"], row["classification"]["bounce_list"]) == (True, "count")


def test_host_unknowns_553_does_not_exist_is_hard_only_for_the_recipients_domain(capsys, tmp_path):
    # Before: not hard. The recipient's domain, or his address, said not to exist.
    for diagnostic in ("553 dest.example does not exist", "553 bob@dest.example does not exist"):
        row = _row(capsys, tmp_path, _dsn(diagnostic))
        assert (row["hard"], row["classification"]["bounce_list"]) == (True, "count"), diagnostic
    # Another domain (the sender's, in reply to the message) says nothing of the recipient's.
    row = _row(capsys, tmp_path, _dsn("553 sender.example does not exist"))
    assert row["hard"] is False


def test_sisimai_words_are_checked_at_load(tmp_path):
    local = tmp_path / "bounce-rules.local.yaml"
    local.write_text("version: 1\nrules: []\nsisimai_words:\n  hasmoved: ['now lives at']\n", encoding="utf-8")
    classifier = Classifier.from_files([local, SHIPPED_RULES])
    assert classifier.sisimai_words["hasmoved"].search("Bob now lives at x") is not None
    assert classifier.sisimai_words["hasmoved"].search("bob has been replaced by robert") is not None
    local.write_text("version: 1\nrules: []\nsisimai_words:\n  filtered: ['x']\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown reason"):
        Classifier.from_files([local])
    local.write_text("version: 1\nrules: []\nsisimai_words:\n  suspend: ['(']\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        Classifier.from_files([local])
    local.write_text("version: 1\nrules: []\nsisimai_words: ['x']\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a mapping"):
        Classifier.from_files([local])


def test_user_unknowns_own_words_at_rcpt_are_hard_whatever_our_reading(capsys, tmp_path):
    # sisimai's UserUnknown at RCPT by its words, whatever the code (why-userunknown.go). Before: not
    # hard, our rules read these as nothing in particular (`other`) or a disabled account.
    for words in ("mailbox is unavailable", "user not active", "mailbox is inactive", "not a local address"):
        row = _row(capsys, tmp_path, _dsn(f"550 <bob@dest.example>: {words} (in reply to RCPT TO command)"))
        assert (row["stage"], row["hard"]) == ("rcpt", True), words
        assert row["classification"]["bounce_list"] == "count", words
    # Not over a reason sisimai ranks first (relaying: its NoRelaying), nor over Suspend's words.
    row = _row(capsys, tmp_path, _dsn("553 sorry, that domain or user isn't in my list of allowed rcpthosts "
                                      "(in reply to RCPT TO command)"))
    assert row["hard"] is False
    row = _row(capsys, tmp_path, _dsn("550 <bob@dest.example>: this address no longer accepts mail "
                                      "(in reply to RCPT TO command)"))
    assert row["hard"] is False
    # Nor without the RCPT stage: of unknown stage it is sisimai's Filtered.
    row = _row(capsys, tmp_path, _dsn("550 <bob@dest.example>: user not active"))
    assert (row["stage"], row["hard"]) == (None, False)
