"""Exim's text bounces about several addresses (review15 F4): each address takes its own reply where
the text gives one, and one without a reply of its own keeps its own words, never another's
(review12-fix-a's rule), wherever it stands in the list.

The bounces are written here from Exim's format (deliver.c's bounce text: "The following address(es)
failed:", each address on a line of its own, two spaces in, its error under it four spaces in; the
X-Failed-Recipients header), not copied from anywhere. Before, an address without a reply written
before one with a reply was dropped (no `bounced` event at all): the text's first reply named the other
address, and the rule for a mere mention ("An: sender@x" above another's refusal) left it out.
"""

from __future__ import annotations

import json

import pytest

from relay.cli import main
from tests.test_bounces_in import mail_bounce, relay_one, start_verp_relay
from tests.test_bounces_in_review12 import bounced_to

HEAD = """Return-path: <>
From: Mail Delivery System <Mailer-Daemon@mail.shop.example>
To: news@shop.example
Subject: Mail delivery failed: returning message to sender
X-Failed-Recipients: {failed}
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

"""
COPY = """
------ This is a copy of the message, including all the headers. ------

From: news@shop.example
To: {to}
Subject: news

hi
"""

ALICE = """  alice@dest.example
    host mx.dest.example [192.0.2.1]
    SMTP error from remote mail server after RCPT TO:<alice@dest.example>:
    550 5.1.1 <alice@dest.example>: Recipient address rejected: User unknown
"""
DAVE = """  dave@dest.example
    host mx.dest.example [192.0.2.1]
    SMTP error from remote mail server after RCPT TO:<dave@dest.example>:
    552 5.2.2 Mailbox full
"""
# Replies that name no address: the whole text's first reply runs on into the next entry.
ERIN = """  erin@dest.example
    host mx.dest.example [192.0.2.1]
    SMTP error from remote mail server after RCPT TO:<erin@dest.example>:
    550 5.7.1 Rejected by policy
"""


def bob(words: str) -> str:
    return f"  bob@other.example\n    {words}\n"


def exim(*entries: str, header: bool = True) -> str:
    addresses = [e.split("\n", 1)[0].strip() for e in entries]
    text = HEAD.format(failed=", ".join(addresses)) + "".join(entries) + COPY.format(to=", ".join(addresses))
    if not header:
        text = text.split("\n\n", 1)[1].split("------ This is a copy")[0]  # the text pasted alone
    return text


def parse(capsys, tmp_path, text: str) -> dict[str, dict]:
    path = tmp_path / "exim.eml"
    path.write_text(text)
    assert main(["dsn", "parse", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return {r["recipient"]: r for r in map(json.loads, out.splitlines())}


OWN_WORDS = ["Unrouteable address", "host mx.other.example [192.0.2.9]: Connection refused",
             "retry timeout exceeded", "local delivery failed"]


@pytest.mark.parametrize("header", [True, False], ids=["whole-bounce", "text-pasted"])
@pytest.mark.parametrize("words", OWN_WORDS)
def test_an_address_without_a_reply_written_first_keeps_its_own_words(capsys, tmp_path, words, header):
    rows = parse(capsys, tmp_path, exim(bob(words), ALICE, DAVE, header=header))
    assert list(rows) == ["bob@other.example", "alice@dest.example", "dave@dest.example"]
    b = rows["bob@other.example"]
    assert (b["code"], b["status"], b["stage"], b["diagnostic"]) == (None, None, None, words)
    assert (rows["alice@dest.example"]["code"], rows["alice@dest.example"]["status"]) == (550, "5.1.1")
    assert "alice" in rows["alice@dest.example"]["diagnostic"]
    assert (rows["dave@dest.example"]["code"], rows["dave@dest.example"]["status"],
            rows["dave@dest.example"]["diagnostic"]) == (552, "5.2.2", "552 5.2.2 Mailbox full")


@pytest.mark.parametrize("order", [(0, 1, 2), (1, 0, 2), (2, 1, 0), (1, 2, 0)])
@pytest.mark.parametrize("header", [True, False], ids=["whole-bounce", "text-pasted"])
def test_each_address_takes_its_own_reply_in_any_order(capsys, tmp_path, order, header):
    entries = [ERIN, bob("Unrouteable address"), DAVE]
    rows = parse(capsys, tmp_path, exim(*(entries[i] for i in order), header=header))
    got = {a: (r["code"], r["status"], r["stage"], r["diagnostic"]) for a, r in rows.items()}
    assert got == {"erin@dest.example": (550, "5.7.1", "rcpt", "550 5.7.1 Rejected by policy"),
                   "bob@other.example": (None, None, None, "Unrouteable address"),
                   "dave@dest.example": (552, "5.2.2", "rcpt", "552 5.2.2 Mailbox full")}
    assert rows["erin@dest.example"]["classification"]["bounce_list"] == "never"  # a policy refusal
    assert rows["dave@dest.example"]["classification"]["bounce_list"] == "never"  # mailbox full


def test_a_mere_mention_is_still_left_out(capsys, tmp_path):
    # The guard of review12-fix-a's rule: a forwarded report's "An: sender@x" above another
    # address's refusal is no failed recipient (the line is not an entry of a list of failures).
    text = ("Subject: WG: Undelivered Mail Returned to Sender\n\n"
            "An: sender@app.example\n\n"
            "This is the mail system at host smarthost.example.\n\n"
            "I'm sorry to have to inform you that your message could not\n"
            "be delivered to one or more recipients.\n\n"
            "<bob@remote.example>: host mx.remote.example[192.0.2.10] said: 550 5.1.1\n"
            "    <bob@remote.example>: Recipient address rejected: User unknown (in reply to RCPT TO command)\n")
    assert list(parse(capsys, tmp_path, text)) == ["bob@remote.example"]


def test_through_a_running_relay_the_address_written_first_gets_its_event(tmp_path, upstream, relay_factory):
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    rp = relay_one(relay, upstream, rcpts=["bob@other.example", "alice@dest.example"])
    raw = exim(bob("host mx.other.example [192.0.2.9]: Connection refused"), ALICE)
    assert mail_bounce(relay, rp, bounced_to(raw, rp))[-1] == (250, "250 2.0.0 Recorded 2 failure(s)")
    events = relay.events(wait_for=3)
    bounced = {e["recipient"]: e for e in events if e["kind"] == "bounced"}
    assert set(bounced) == {"bob@other.example", "alice@dest.example"}
    assert "alice" not in bounced["bob@other.example"]["reply"]["text"]
    assert "bounce_list" not in bounced["bob@other.example"]  # a refused connection lists nobody


def member(address: str, lines: str, note: str = "(generated from team@shop-list.example)") -> str:
    return f"  {address}\n    {note}\n" + "".join(f"    {line}\n" for line in lines.split("\n"))


@pytest.mark.parametrize("note", ["(generated from team@shop-list.example)",
                                  "(ultimately generated from team@shop-list.example)"])
@pytest.mark.parametrize("header", [True, False], ids=["whole-bounce", "text-pasted"])
def test_members_of_one_list_keep_their_own_failures(capsys, tmp_path, note, header):
    # Exim notes under each address the one the sender used ("generated from"): with several members
    # of one list, the text after the list's address is one member's part. Before, carol (no reply of
    # her own) took the words and the stage of alice's entry ("team@...) host mx.dest.example ...").
    text = exim(member("alice@dest.example", "SMTP error from remote mail server after RCPT TO:<alice@dest.example>:\n"
                       "host mx.dest.example [192.0.2.1]: 550 5.1.1 User unknown", note),
                member("carol@other.example", "Unrouteable address", note),
                member("dave@dest.example", "SMTP error from remote mail server after RCPT TO:<dave@dest.example>:\n"
                       "host mx.dest.example [192.0.2.1]: 552 5.2.2 Mailbox full", note), header=header)
    rows = parse(capsys, tmp_path, text)
    assert list(rows) == ["alice@dest.example", "carol@other.example", "dave@dest.example"]
    assert {r["original_recipient"] for r in rows.values()} == {"team@shop-list.example"}
    carol = rows["carol@other.example"]
    assert (carol["code"], carol["status"], carol["stage"], carol["diagnostic"]) == (
        None, None, None, "Unrouteable address")
    assert (rows["alice@dest.example"]["code"], rows["alice@dest.example"]["status"]) == (550, "5.1.1")
    assert (rows["dave@dest.example"]["code"], rows["dave@dest.example"]["status"]) == (552, "5.2.2")


# -- review22 F7: `action` and `remote_mta` of Exim's text -------------------------------------------------

SINGLE = """From: Mail Delivery System <Mailer-Daemon@mx.example.net>
To: alice@sender.test
Subject: Mail delivery failed: returning message to sender
Message-Id: <E1abc@mx.example.net>

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  gone@example.org
    host mx.example.org [192.0.2.10]
    SMTP error from remote mail server after RCPT TO:<gone@example.org>:
    550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown in virtual mailbox table

------ This is a copy of the message, including all the headers. ------

From: alice@sender.test
To: gone@example.org
Message-ID: <orig3@sender.test>
Subject: hi

hi
"""


@pytest.mark.parametrize("header", [True, False], ids=["whole-bounce", "text-pasted"])
def test_a_permanent_exim_bounce_says_failed_and_names_the_host_that_refused(capsys, tmp_path, header):
    # Review22 F7: "This is a permanent error" and "host mx.example.org [192.0.2.10]" on a line of its
    # own (Exim 4.88 and later put the host above "SMTP error from remote mail server after ...") gave
    # `action: null, remote_mta: null`, although the bounce says both.
    text = SINGLE if header else SINGLE.split("\n\n", 1)[1].split("------ This is a copy")[0]
    (row,) = parse(capsys, tmp_path, text).values()
    assert (row["recipient"], row["action"], row["remote_mta"]) == (
        "gone@example.org", "failed", "mx.example.org[192.0.2.10]")
    assert (row["code"], row["status"], row["stage"]) == (550, "5.1.1", "rcpt")


@pytest.mark.parametrize("header", [True, False], ids=["whole-bounce", "text-pasted"])
def test_each_address_takes_only_its_own_host(capsys, tmp_path, header):
    other_host = DAVE.replace("mx.dest.example [192.0.2.1]", "mx2.dest.example [192.0.2.2]")
    rows = parse(capsys, tmp_path, exim(bob("Unrouteable address"), ALICE, other_host, header=header))
    got = {a: (r["action"], r["remote_mta"]) for a, r in rows.items()}
    assert got == {"bob@other.example": ("failed", None),  # no host of its own: never another's
                   "alice@dest.example": ("failed", "mx.dest.example[192.0.2.1]"),
                   "dave@dest.example": ("failed", "mx2.dest.example[192.0.2.2]")}


def test_two_hosts_for_one_address_name_none_and_a_delay_is_not_failed(capsys, tmp_path):
    two = SINGLE.replace("    host mx.example.org [192.0.2.10]\n",
                         "    host mx1.example.org [192.0.2.10]\n    host mx2.example.org [192.0.2.11]\n")
    (row,) = parse(capsys, tmp_path, two).values()
    assert row["remote_mta"] is None and row["action"] == "failed"
    # A report that says the failure is not final (a retry to come) is not `failed`, whatever else it says.
    delayed = SINGLE.replace("This is a permanent error.", "This is a permanent error for now; delivery "
                                                           "will be retried.")
    (row,) = parse(capsys, tmp_path, delayed).values()
    assert row["action"] is None
    # Nor one that does not say: Postfix's text bounce names no permanence (its DSN part does).
    postfix = SINGLE.replace("This is a permanent error. ", "")
    (row,) = parse(capsys, tmp_path, postfix).values()
    assert row["action"] is None and row["remote_mta"] == "mx.example.org[192.0.2.10]"


def test_through_a_running_relay_the_bounced_event_names_the_host(tmp_path, upstream, relay_factory):
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    rp = relay_one(relay, upstream, rcpts=["alice@dest.example"])
    raw = exim(ALICE)
    assert mail_bounce(relay, rp, bounced_to(raw, rp))[-1] == (250, "250 2.0.0 Recorded 1 failure(s)")
    (event,) = [e for e in relay.events(wait_for=2) if e["kind"] == "bounced"]
    assert event["recipient"] == "alice@dest.example"
    assert event["remote_mta"] == "mx.dest.example[192.0.2.1]"
    assert event["dsn"]["action"] == "failed" and event["dsn"]["remote_mta"] == "mx.dest.example[192.0.2.1]"
