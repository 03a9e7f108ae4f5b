"""`relay dsn parse`'s `hard` follows sisimai's receiving-host tables (bounce-rules.yaml
`sisimai_rhost:`; go-sisimai rhost/lib.go `RhostClass`, rhost/for-*.go): where the recipient's domain
or the Remote-MTA that answered is one of a table's hosts, the table's reason for the reply's words
comes before sisimai's reason rules (its Filtered for a "no such user" of unknown stage, its Suspend
words), at any stage. Only `hard` reads the tables: the funnel's category and the bounce list do not
change (docs/bounces-in.md, "Branch dsn-reason")."""

from __future__ import annotations

import pytest

from relay.classify import SHIPPED_RULES, Classifier, rhost_reason
from relay.errors import ConfigError
from tests.test_dsn_hard_sisimai import _row, run  # `relay dsn parse` of one report, its rows


def _dsn(recipient: str, remote_mta: str, diagnostic: str, status: str = "5.0.0") -> str:
    # An RFC 3464 report as a smarthost writes it; the report names no SMTP command.
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
            f"Final-Recipient: rfc822; {recipient}\n"
            "Action: failed\n"
            f"Status: {status}\n"
            f"Remote-MTA: dns; {remote_mta}\n"
            f"Diagnostic-Code: smtp; {diagnostic}\n\n"
            "--b1--\n")


def _verdict(row: dict) -> tuple:
    return (row["stage"], row["hard"], row["classification"]["category"], row["classification"]["bounce_list"])


YAHOO = "554 delivery error: dd This user doesn't have a yahoo.com account ({0}) [0] - mta1.mail.gq1.yahoo.com"


def test_yahoos_own_no_such_account_from_its_host_is_hard_at_any_stage(capsys, tmp_path):
    # Yahoo answers after DATA; of a report that names no command, sisimai's reason rules call the
    # words Filtered (not hard), but its Yahoo Inc table, for a Remote-MTA under .yahoodns.net, reads
    # them as UserUnknown first. Before, `hard` was false here.
    row = _row(capsys, tmp_path, _dsn("bob@yahoo.com", "mta5.am0.yahoodns.net", YAHOO.format("bob@yahoo.com")))
    assert _verdict(row) == (None, True, "unknown_recipient", "list")
    # The same words from a host that is not Yahoo's: no table; Filtered as before, the list unchanged.
    row = _row(capsys, tmp_path, _dsn("bob@yahoo.com", "mx.relay.example", YAHOO.format("bob@yahoo.com")))
    assert _verdict(row) == (None, False, "unknown_recipient", "list")
    # A Remote-MTA written with its address and a final dot is the same host.
    row = _row(capsys, tmp_path, _dsn("bob@yahoo.com", "mta7.am0.yahoodns.net. [98.136.96.74]",
                                      YAHOO.format("bob@yahoo.com")))
    assert row["hard"] is True
    # A host that only contains the name is not Yahoo's.
    row = _row(capsys, tmp_path, _dsn("bob@yahoo.com", "yahoodns.net.mx.relay.example",
                                      YAHOO.format("bob@yahoo.com")))
    assert row["hard"] is False


def test_a_tables_words_naming_another_address_are_not_the_recipients(capsys, tmp_path):
    # The departure kept on purpose (policies.sisimai_hard, review2 N2): words naming another address
    # say that address is gone, not the recipient.
    row = _row(capsys, tmp_path, _dsn("bob@yahoo.com", "mta5.am0.yahoodns.net", YAHOO.format("alice@yahoo.com")))
    assert row["hard"] is False


def test_the_recipients_domain_chooses_the_table(capsys, tmp_path):
    # sisimai tries the recipient's domain first: icloud.com is a parent domain of Apple's
    # .mail.icloud.com, whatever host answered. Apple's "user does not exist" is UserUnknown at any
    # stage (before: Filtered, not hard); the same words to another domain stay Filtered.
    row = _row(capsys, tmp_path, _dsn("bob@icloud.com", "mx.relay.example", "550 5.0.0 <bob@icloud.com>: user does not exist"))
    assert _verdict(row)[:3] == (None, True, "unknown_recipient")
    row = _row(capsys, tmp_path, _dsn("bob@dest.example", "mx.dest.example", "550 5.0.0 <bob@dest.example>: user does not exist"))
    assert _verdict(row)[:3] == (None, False, "unknown_recipient")
    # KDDI (ezweb.ne.jp): "<addr>: User unknown" is UserUnknown, even where ours read a disabled account.
    row = _row(capsys, tmp_path, _dsn("bob@ezweb.ne.jp", "lsean.ezweb.ne.jp",
                                      "The user(s) account is disabled. <bob@ezweb.ne.jp>: user unknown"))
    assert row["hard"] is True


def test_a_tables_other_reasons_are_never_hard(capsys, tmp_path):
    # Yahoo's table calls "is no longer valid." Suspend: not hard, although a report's Status 5.1.1
    # would name UserUnknown under sisimai's reason rules (before: hard). The bounce list is unchanged.
    text = "554 delivery error: dd bob@yahoo.com is no longer valid. [-5] - mta1.mail.gq1.yahoo.com"
    before = _row(capsys, tmp_path, _dsn("bob@yahoo.com", "mx.relay.example", text, status="5.1.1"))
    assert before["hard"] is True
    row = _row(capsys, tmp_path, _dsn("bob@yahoo.com", "mta5.am0.yahoodns.net", text, status="5.1.1"))
    assert row["hard"] is False
    assert row["classification"] == before["classification"]
    # KDDI's "550 : User unknown" (no address) is its Filtered.
    row = _row(capsys, tmp_path, _dsn("bob@ezweb.ne.jp", "lsean.ezweb.ne.jp", "550 : User unknown", status="5.1.1"))
    assert row["hard"] is False


def test_a_hosts_own_codes_give_the_reason(capsys, tmp_path):
    # Facebook's RCP-P2 (the recipient's preferences) is its Filtered, not hard, although the Status
    # 5.1.1 would name UserUnknown under sisimai's reason rules (before: hard); its RCP-P1 is UserUnknown.
    text = ("550 5.1.1 RCP-P2 http://postmaster.facebook.com/response_codes#rcp Attempted recipient's "
            "preferences prevent messages from being delivered")
    row = _row(capsys, tmp_path, _dsn("bob@facebook.com", "mx.relay.example", text, status="5.1.1"))
    assert row["hard"] is False
    row = _row(capsys, tmp_path, _dsn("bob@facebook.com", "mx.relay.example", text.replace("RCP-P2", "RCP-P1"),
                                      status="5.1.1"))
    assert row["hard"] is True
    # Orange's code 416 (an invalid recipient) is UserUnknown whatever the stage (before: a "no such
    # user" of unknown stage without X.1.x, Filtered); its 426 (the account is blocked) is Suspend.
    orange = "550 5.5.0 Adresse d au moins un destinataire invalide. Invalid recipient. OFR_416 [416]"
    row = _row(capsys, tmp_path, _dsn("bob@orange.fr", "smtp-in.orange.fr", orange))
    assert _verdict(row)[:3] == (None, True, "unknown_recipient")
    row = _row(capsys, tmp_path, _dsn("bob@dest.example", "mx.dest.example", orange))
    assert _verdict(row)[:3] == (None, False, "unknown_recipient")
    row = _row(capsys, tmp_path, _dsn("bob@laposte.net", "smtp-in.laposte.net",
                                      "550 5.1.1 Le compte du destinataire est bloque. LPN007_426", status="5.1.1"))
    assert row["hard"] is False


def test_a_case_sensitive_table_matches_its_words_as_written():
    tables = Classifier.from_files([SHIPPED_RULES]).sisimai_rhost
    outlook = "550 Requested action not taken: mailbox unavailable"
    assert rhost_reason(tables, None, "hotmail.com", outlook) == "userunknown"
    assert rhost_reason(tables, "mx1.hotmail.com", None, outlook) == "userunknown"
    assert rhost_reason(tables, None, "hotmail.com", outlook.lower()) is None
    assert rhost_reason(tables, None, "example.com", outlook) is None


def test_sisimai_rhost_is_checked_at_load(tmp_path):
    local = tmp_path / "bounce-rules.local.yaml"
    local.write_text("version: 1\nrules: []\nsisimai_rhost:\n  mine:\n    hosts: ['.mx.mine.example']\n"
                     "    reasons:\n      userunknown: ['no mailbox by that name']\n", encoding="utf-8")
    tables = Classifier.from_files([local, SHIPPED_RULES]).sisimai_rhost
    assert rhost_reason(tables, "a.mx.mine.example", None, "550 No mailbox by that name") == "userunknown"
    assert rhost_reason(tables, "mta5.am0.yahoodns.net", None, "mailbox not found") == "userunknown"
    for body, problem in [
            ("sisimai_rhost: ['x']\n", "expected a mapping"),
            ("sisimai_rhost:\n  mine:\n    hosts: []\n    reasons:\n      userunknown: ['x']\n", "expected a list of host names"),
            ("sisimai_rhost:\n  mine:\n    hosts: ['a.example']\n    reasons:\n      userunknown: 'x'\n",
             "expected a list of phrases"),
            ("sisimai_rhost:\n  mine:\n    hosts: ['a.example']\n    reasons:\n      user-unknown: ['x']\n",
             "expected a sisimai reason name"),
            ("sisimai_rhost:\n  mine:\n    hosts: ['a.example']\n    reason: {}\n", "unknown key"),
            ("sisimai_rhost:\n  mine:\n    hosts: ['a.example']\n    patterns:\n      userunknown: ['(']\n",
             "not a valid regular expression"),
            ("sisimai_rhost:\n  mine:\n    hosts: ['a.example']\n    reasons: {userunknown: ['x']}\n"
             "    case_sensitive: 'yes'\n", "expected true or false")]:
        local.write_text("version: 1\nrules: []\n" + body, encoding="utf-8")
        with pytest.raises(ConfigError, match=problem):
            Classifier.from_files([local])


# Branch dsn-rhost2: the tables sisimai keys on the report's status and the refused command as well
# as on words (`entries:`; go-sisimai rhost/for-microsoft.go, rhost/for-nttdocomo.go).

MICROSOFT_MX = "contoso-com.mail.protection.outlook.com"


def _dsn_with_command(recipient: str, remote_mta: str, diagnostic: str, status: str, command: str) -> str:
    # The same report with the reporting MTA's own words naming the command the reply answered.
    return _dsn(recipient, remote_mta, diagnostic, status).replace(
        "Your message could not be delivered to one or more recipients.\n",
        "Your message could not be delivered to one or more recipients.\n\n"
        f"<{recipient}>: host {remote_mta}[192.0.2.1] said: {diagnostic} (in reply to {command} command)\n")


def test_microsofts_rows_give_the_reason_by_status_and_words(capsys, tmp_path):
    # Microsoft's "5.1.10 ... Recipient not found" is its UserUnknown whatever the stage: hard after
    # DATA too (before: a "no such user" at DATA, sisimai's Filtered, not hard). The bounce list is
    # the funnel's and does not change.
    text = "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"
    row = _row(capsys, tmp_path, _dsn_with_command("bob@contoso.com", MICROSOFT_MX, text, "5.1.10", "end of DATA"))
    assert _verdict(row) == ("data", True, "unknown_recipient", "never")
    # The same words from a host that is not Microsoft's: sisimai's reason rules, Filtered as before.
    row = _row(capsys, tmp_path, _dsn_with_command("bob@contoso.com", "mx.contoso.example", text, "5.1.10",
                                                   "end of DATA"))
    assert _verdict(row) == ("data", False, "unknown_recipient", "never")
    # "Recipient address rejected: Access denied" is Suspend under 5.7.504 (not hard; before: hard, the
    # UserUnknown words in reply to RCPT) and UserUnknown under 5.4.1 (hard).
    denied = "550 {0} Recipient address rejected: Access denied"
    row = _row(capsys, tmp_path, _dsn_with_command("bob@contoso.com", MICROSOFT_MX, denied.format("5.7.504"),
                                                   "5.7.504", "RCPT TO"))
    assert _verdict(row) == ("rcpt", False, "policy_rejected", "never")
    row = _row(capsys, tmp_path, _dsn_with_command("bob@contoso.com", MICROSOFT_MX, denied.format("5.4.1"),
                                                   "5.4.1", "end of DATA"))
    assert row["hard"] is True
    # "DNS domain ... does not exist" under 5.4.310 is Microsoft's NoRelaying, not HostUnknown (before:
    # hard, HostUnknown's words about the recipient's own domain).
    row = _row(capsys, tmp_path, _dsn("bob@contoso.com", MICROSOFT_MX,
                                      "550 5.4.310 DNS domain contoso.com does not exist", status="5.4.310"))
    assert (row["hard"], row["classification"]["category"]) == (False, "routing_dns")


def test_nttdocomos_table_reads_the_status_then_the_command(capsys, tmp_path):
    # mfsmax.docomo.ne.jp (the recipient's domain docomo.ne.jp chooses it): "550 Unknown user" is
    # UserUnknown under Status 5.1.1 or 5.0.911 whatever the command (before: 5.0.911 at DATA, not hard),
    # Filtered under 5.2.0 (before: hard in reply to RCPT), and under 5.0.0 UserUnknown in reply to RCPT,
    # Rejected after DATA.
    text = "550 Unknown user bob@docomo.ne.jp"
    for status, command, hard in [("5.0.911", "end of DATA", True), ("5.1.1", "end of DATA", True),
                                  ("5.2.0", "RCPT TO", False), ("5.0.0", "RCPT TO", True),
                                  ("5.0.0", "end of DATA", False)]:
        row = _row(capsys, tmp_path, _dsn_with_command("bob@docomo.ne.jp", "mfsmax.docomo.ne.jp", text, status, command))
        assert (status, command, row["hard"], row["classification"]["category"]) == (
            status, command, hard, "unknown_recipient")
    # Its phrases come before the 5.0.0 test: "552 Too much mail data" is MailboxFull, not hard.
    row = _row(capsys, tmp_path, _dsn_with_command("bob@docomo.ne.jp", "mfsmax.docomo.ne.jp",
                                                   "552 Too much mail data", "5.0.0", "RCPT TO"))
    assert row["hard"] is False


def test_status_keyed_entries_match_ranges_and_need_the_reports_words():
    tables = Classifier.from_files([SHIPPED_RULES]).sisimai_rhost
    banned = "550 5.7.607 Access denied, banned sending IP [192.0.2.5]"
    assert rhost_reason(tables, MICROSOFT_MX, None, banned, "5.7.607") == "blocked"     # 5.7.606-649
    assert rhost_reason(tables, MICROSOFT_MX, None, banned, "5.7.650") is None
    assert rhost_reason(tables, MICROSOFT_MX, None, banned, None) is None
    # sisimai's tables read nothing where the report gave no Diagnostic-Code.
    assert rhost_reason(tables, "mfsmax.docomo.ne.jp", None, "", "5.1.1") is None
    assert rhost_reason(tables, "mfsmax.docomo.ne.jp", None, "550 Unknown user", "5.1.1") == "userunknown"


def test_sisimai_rhost_entries_are_checked_at_load(tmp_path):
    local = tmp_path / "bounce-rules.local.yaml"
    head = "version: 1\nrules: []\nsisimai_rhost:\n  mine:\n    hosts: ['a.example']\n    entries:\n"
    local.write_text(head + "      - {reason: userunknown, status: '5.1.2-9', stage: rcpt, words: ['no box']}\n",
                     encoding="utf-8")
    tables = Classifier.from_files([local]).sisimai_rhost
    assert rhost_reason(tables, "mx.a.example", None, "550 No box here", "5.1.3", "rcpt") == "userunknown"
    assert rhost_reason(tables, "mx.a.example", None, "550 No box here", "5.1.3", "data") is None
    for entry, problem in [
            ("      - {reason: userunknown}\n", "at least one condition"),
            ("      - {reason: user-unknown, status: '5.1.1'}\n", "expected a sisimai reason name"),
            ("      - {reason: userunknown, status: '5.1'}\n", "expected an RFC 3463 status"),
            ("      - {reason: userunknown, status: '5.7.9-1'}\n", "expected an RFC 3463 status"),
            ("      - {reason: userunknown, stage: 'end'}\n", "expected one of"),
            ("      - {reason: userunknown, words: 'x'}\n", "expected a list of phrases"),
            ("      - {reason: userunknown, command: rcpt}\n", "unknown key"),
            ("      - 'x'\n", "expected a mapping")]:
        local.write_text(head + entry, encoding="utf-8")
        with pytest.raises(ConfigError, match=problem):
            Classifier.from_files([local])
    local.write_text(head.replace("    entries:\n", "    entries: {}\n"), encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a list of entries"):
        Classifier.from_files([local])
