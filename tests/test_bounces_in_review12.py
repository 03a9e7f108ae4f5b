"""Review-12's findings on the parser side of the bounce intake, each at the level a user meets it:
`relay dsn parse`, and a running relay with VERP on that gets the bounce or report at its `bounces_in`
listener (then a RCPT through the relay says whether the address was listed).

- F1: in a report about several addresses, one without a reply of its own never takes another's.
- F2: a failure of an alias's member (Final-Recipient) never lists the alias we sent to, and one
  report counts once per address.
- F4: an ARF report without Original-Rcpt-To is pinned on the returned message's recipient only when
  its To and Cc name one address.
- F5: NXDOMAIN for an MX host name is no evidence that the recipient's domain does not exist.
- F8: Sendmail's "(reason: ...)" reply loses its closing parenthesis and gets its stage.
- F9: the new address of a 251/551 ("please try <x>") is never a failed recipient.
- F10: the complaint rule depends on the ARF Feedback-Type (not-spam, auth-failure never list).

The *.eml files under tests/data/review12/ were written for this project by the reviewer (crafted
bounces in the formats of Exim, Sendmail, Postfix, and a JMRP-like feedback loop; no third-party data).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from relay.cli import main
from relay.suppression import SuppressionPolicy, load_default
from relay.config import ConfigError
from tests.test_bounces_in import (ORIGINAL, mail_bounce, rcpt_reply, relay_one, start_verp_relay,
                                   start_verp_relay_seeing_domains_again_after_1s, dsn_for)

DATA = Path(__file__).parent / "data" / "review12"


def parse(capsys, path: Path) -> list[dict]:
    assert main(["dsn", "parse", str(path)]) == 0
    out, _ = capsys.readouterr()
    return [json.loads(line) for line in out.splitlines()]


def variant(tmp_path: Path, name: str, old: str, new: str) -> Path:
    text = (DATA / name).read_text()
    assert old in text
    out = tmp_path / name
    out.write_text(text.replace(old, new))
    return out


def bounced_to(raw: str, return_path: str) -> bytes:
    """A crafted bounce addressed to `return_path`, as the reporting MTA would mail it."""
    return raw.replace("To: news@shop.example", f"To: {return_path}", 1).replace("\r\n", "\n") \
        .replace("\n", "\r\n").encode()


def listed(relay) -> set[str]:
    return {e["recipient"] for e in relay.events() if e["kind"] == "bounce_listed"}


# --- F1 ------------------------------------------------------------------------------------------

EXIMS_OWN_FAILURES = ["Unrouteable address", "host mx.other.example [192.0.2.9]: Connection refused",
                      "local delivery failed", "message has been frozen"]


@pytest.mark.parametrize("own", EXIMS_OWN_FAILURES)
def test_exim_an_address_without_a_reply_keeps_its_own_words_not_anothers_550(capsys, tmp_path, own):
    rows = parse(capsys, variant(tmp_path, "exim2.eml", "    Unrouteable address", f"    {own}"))
    carol, bob = rows
    assert carol["recipient"] == "carol@dest.example" and carol["code"] == 550 and carol["status"] == "5.1.1"
    assert bob["recipient"] == "bob@other.example"
    assert (bob["code"], bob["status"], bob["stage"]) == (None, None, None)
    assert bob["diagnostic"] == own and "carol" not in bob["diagnostic"]
    if own != "Unrouteable address":  # bounce-rules.yaml reads "unrouteable address" as no such user
        assert bob["classification"]["bounce_list"] != "list" and bob["hard"] is False


@pytest.mark.parametrize("name", ["sm-multi2.eml", "sm-multi3.eml"])
def test_sendmail_a_block_without_diagnostic_does_not_borrow_anothers_reply(capsys, name):
    carol, bob = parse(capsys, DATA / name)
    assert carol["code"] == 550 and carol["classification"]["bounce_list"] == "list"
    assert bob["recipient"] == "bob@dest.example"
    assert bob["code"] is None and bob["status"] == "5.0.0"  # the block's own summary Status
    assert "carol" not in (bob["diagnostic"] or "") and "User unknown" not in (bob["diagnostic"] or "")
    assert bob["hard"] is False and bob["classification"]["bounce_list"] != "list"


EXCHANGE_TWO_RECIPIENTS = """From: postmaster@corp.example
To: news@shop.example
Subject: Undeliverable: December news
Content-Type: text/plain

Delivery has failed to these recipients or groups:
bob@corp.example
The recipient's mailbox is full and can't accept messages now.
carol@corp.example
The email address you entered couldn't be found.

Diagnostic information for administrators:
Generating server: mx.corp.example
carol@corp.example
Remote Server returned '550 5.1.1 RESOLVER.ADR.RecipNotFound; not found'
bob@corp.example
Remote Server returned '552 5.2.2 STOREDRV.Deliver; recipient mailbox is full'
"""


def test_exchange_each_recipient_takes_his_own_reply_from_the_administrators_part(capsys, tmp_path):
    # Exchange lists the recipients, then each one again with his reply: bob's first part ran on into
    # carol's "550 5.1.1 ... RecipNotFound" (review-12 F1).
    path = tmp_path / "exchange.eml"
    path.write_text(EXCHANGE_TWO_RECIPIENTS)
    rows = {r["recipient"]: r for r in parse(capsys, path)}
    assert (rows["bob@corp.example"]["code"], rows["bob@corp.example"]["status"]) == (552, "5.2.2")
    assert rows["bob@corp.example"]["classification"]["bounce_list"] == "never"
    assert (rows["carol@corp.example"]["code"], rows["carol@corp.example"]["status"]) == (550, "5.1.1")


def test_exim_through_a_running_relay_the_address_without_a_reply_is_not_listed(tmp_path, upstream, relay_factory):
    # Two messages to both, each bounced: a return path shared by two recipients only counts a failure
    # (issue 13), so carol is listed at the second; bob, whose block quotes no reply, never.
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    raw = (DATA / "exim2.eml").read_text().replace("    Unrouteable address",
                                                   "    host mx.other.example [192.0.2.9]: Connection refused")
    for nth in (1, 2):
        rp = relay_one(relay, upstream, rcpts=["carol@dest.example", "bob@other.example"], nth=nth)
        assert mail_bounce(relay, rp, bounced_to(raw, rp))[-1] == (250, "250 2.0.0 Recorded 2 failure(s)")
    events = relay.events(wait_for=5)
    bob = next(e for e in events if e["kind"] == "bounced" and e["recipient"] == "bob@other.example")
    assert "carol" not in bob["reply"]["text"] and "bounce_list" not in bob
    assert listed(relay) == {"carol@dest.example"}
    assert rcpt_reply(relay, "bob@other.example") == 250
    assert rcpt_reply(relay, "carol@dest.example") == 550


def test_sendmail_through_a_running_relay_a_block_without_diagnostic_is_not_listed(tmp_path, upstream, relay_factory):
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    for nth in (1, 2):  # shared by two: each bounce only counts (issue 13)
        rp = relay_one(relay, upstream, rcpts=["carol@dest.example", "bob@dest.example"], nth=nth)
        assert mail_bounce(relay, rp, bounced_to((DATA / "sm-multi3.eml").read_text(), rp))[-1][0] == 250
    relay.events(wait_for=5)
    assert listed(relay) == {"carol@dest.example"}
    assert rcpt_reply(relay, "bob@dest.example") == 250


# --- F8 ------------------------------------------------------------------------------------------

def test_sendmail_reason_keeps_no_closing_parenthesis_and_gets_the_transcripts_stage(capsys):
    carol, bob = parse(capsys, DATA / "sm-multi.eml")
    assert bob["diagnostic"] == "552 5.2.2 Over quota"
    assert bob["stage"] == "data"  # ">>> DATA" / "<<< 552 5.2.2 Over quota" in the transcript
    assert carol["diagnostic"] == "550 5.1.1 <carol@dest.example>... User unknown" and carol["stage"] == "rcpt"


# --- F9 ------------------------------------------------------------------------------------------

def test_a_551_forward_path_is_not_a_failed_recipient(capsys):
    [bob] = parse(capsys, DATA / "moved.eml")
    assert bob["recipient"] == "bob@dest.example"
    assert bob["diagnostic"] == "551 5.1.6 User has moved; please try <robert@newcorp.example>"


@pytest.mark.parametrize("words", ["the new address is", "please try", "will forward to", "has moved to"])
def test_a_reports_own_words_for_the_new_address_do_not_make_it_a_failed_recipient(capsys, tmp_path, words):
    rows = parse(capsys, variant(tmp_path, "moved2.eml", "the new address is", words))
    assert [r["recipient"] for r in rows] == ["bob@dest.example"]


def test_a_551_forward_path_through_a_running_relay_is_not_listed(tmp_path, upstream, relay_factory):
    # The message went to the old and the new address in one transaction (a CRM mailing every address
    # of a contact): the token proves both were recipients, so only the parser can keep robert out.
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    rp = relay_one(relay, upstream, rcpts=["bob@dest.example", "robert@newcorp.example"])
    assert mail_bounce(relay, rp, bounced_to((DATA / "moved.eml").read_text(), rp))[-1] == \
        (250, "250 2.0.0 Recorded 1 failure(s)")
    events = relay.events(wait_for=2)
    assert {e["recipient"] for e in events if e["kind"] == "bounced"} == {"bob@dest.example"}
    assert rcpt_reply(relay, "robert@newcorp.example") == 250


# --- F2 ------------------------------------------------------------------------------------------

def postfix_alias_dsn(return_path: str, blocks: list[tuple[str, str]], status: str = "5.1.1",
                      diagnostic: str = "550 5.1.1 <{final}>: Recipient address rejected: User unknown "
                                        "in virtual mailbox table") -> bytes:
    """Postfix's DSN for an alias expanded to members (`blocks`: (member, alias)), each refused."""
    text = "".join(f"<{final}> (expanded from <{orig}>): host mx.isp.example[192.0.2.7] said:\r\n"
                   f"    {diagnostic.format(final=final)} (in reply to RCPT TO command)\r\n\r\n"
                   for final, orig in blocks)
    body = "".join(f"Final-Recipient: rfc822; {final}\r\nOriginal-Recipient: rfc822;{orig}\r\nAction: failed\r\n"
                   f"Status: {status}\r\nRemote-MTA: dns; mx.isp.example\r\n"
                   f"Diagnostic-Code: smtp; {diagnostic.format(final=final)}\r\n\r\n" for final, orig in blocks)
    return (f"From: MAILER-DAEMON@mx.dest.example\r\nTo: {return_path}\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
            f"--B\r\nContent-Type: text/plain\r\n\r\nThis is the mail system at host mx.dest.example.\r\n\r\n{text}"
            f"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.dest.example\r\n"
            f"X-Postfix-Sender: rfc822; {return_path}\r\n\r\n{body}"
            f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\n").encode() + ORIGINAL.split(b"\r\n\r\n")[0] + \
        b"\r\n--B--\r\n"


def test_one_members_failure_does_not_list_the_alias(tmp_path, upstream, relay_factory):
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    for n in (1, 2):  # every mail to the alias bounces for that member: never a listing, not at the second
        rp = relay_one(relay, upstream, rcpt="team@dest.example", nth=n)
        assert mail_bounce(relay, rp, postfix_alias_dsn(rp, [("carol@isp.example", "team@dest.example")]))[-1] == \
            (250, "250 2.0.0 Recorded 1 failure(s)")
    events = relay.events(wait_for=2)
    bounced = [e for e in events if e["kind"] == "bounced"]
    assert [e["recipient"] for e in bounced] == ["team@dest.example"] * 2  # the events are written
    assert bounced[0]["dsn"]["final_recipient"] == "carol@isp.example"
    assert not listed(relay)
    assert rcpt_reply(relay, "team@dest.example") == 250


def test_two_members_failures_in_one_report_do_not_list_the_alias(tmp_path, upstream, relay_factory):
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    rp = relay_one(relay, upstream, rcpt="team@dest.example")
    report = postfix_alias_dsn(rp, [("carol@isp.example", "team@dest.example"), ("dave@isp.example", "team@dest.example")],
                               status="5.2.1", diagnostic="550 5.2.1 <{final}>... User unknown")
    assert mail_bounce(relay, rp, report)[-1] == (250, "250 2.0.0 Recorded 2 failure(s)")
    relay.events(wait_for=2)
    assert not listed(relay)
    assert rcpt_reply(relay, "team@dest.example") == 250


def test_one_report_naming_an_address_twice_counts_it_once(tmp_path, upstream, relay_factory):
    # Two blocks for alice herself with two count-only refusals ("User unknown" after end of data:
    # listed at the second refusal): one report is one refusal, not two.
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    rp = relay_one(relay, upstream)
    one = dsn_for(rp, diagnostic="550 5.1.1 <alice@dest.example>... User unknown (in reply to end of DATA command)")
    block = one.split(b"Final-Recipient:", 1)[1].split(b"--B", 1)[0]
    twice = one.replace(b"--B\r\nContent-Type: text/rfc822-headers",
                        b"\r\nFinal-Recipient:" + block.replace(b"User unknown", b"User unknown here") +
                        b"--B\r\nContent-Type: text/rfc822-headers", 1)
    assert mail_bounce(relay, rp, twice)[-1] == (250, "250 2.0.0 Recorded 2 failure(s)")
    assert [e["kind"] for e in relay.events(wait_for=2)] == ["bounced", "bounced"]
    assert rcpt_reply(relay) == 250
    rp = relay_one(relay, upstream, nth=2)  # a second report, of another send: the second refusal
    assert mail_bounce(relay, rp, one)[-1][0] == 250
    relay.events(wait_for=4)
    assert listed(relay) == {"alice@dest.example"}


# --- F4 and F10 ----------------------------------------------------------------------------------

def arf(return_path: str, feedback_type: str, rcpt: str | None = "alice@dest.example",
        headers: bytes = ORIGINAL.split(b"\r\n\r\n")[0]) -> bytes:
    extra = "Auth-Failure: dkim\r\nReported-Domain: example.com\r\nDKIM-Domain: example.com\r\n" \
        if feedback_type == "auth-failure" else ""
    to = f"Original-Rcpt-To: <{rcpt}>\r\n" if rcpt else ""
    return (f"From: feedback@isp.example\r\nTo: {return_path}\r\nSubject: report\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=feedback-report; boundary=F\r\n\r\n"
            f"--F\r\nContent-Type: text/plain\r\n\r\nA report.\r\n"
            f"--F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: {feedback_type}\r\n"
            f"User-Agent: isp/1\r\nVersion: 1\r\n{extra}{to}\r\n"
            f"--F\r\nContent-Type: text/rfc822-headers\r\n\r\n").encode() + headers + b"\r\n--F--\r\n"


def test_an_arf_report_without_original_rcpt_to_is_not_pinned_on_the_to_when_cc_had_another(capsys, tmp_path):
    [row] = parse(capsys, DATA / "arf-cc.eml")
    assert row["recipient"] is None and row["feedback_type"] == "abuse"
    [row] = parse(capsys, variant(tmp_path, "arf-cc.eml", "Cc: bob@dest.example\n", ""))
    assert row["recipient"] == "alice@dest.example"  # one recipient named: that one


def test_an_arf_report_without_original_rcpt_to_through_a_running_relay_lists_nobody(tmp_path, upstream,
                                                                                     relay_factory):
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    rp = relay_one(relay, upstream, rcpts=["alice@dest.example", "bob@dest.example"])
    headers = b"From: noreply@example.com\r\nTo: alice@dest.example\r\nCc: bob@dest.example\r\n" \
              b"Subject: Offers\r\nMessage-ID: <m-1@example.com>"
    assert mail_bounce(relay, rp, arf(rp, "abuse", rcpt=None, headers=headers))[-1][0] == 250
    relay.events(wait_for=1, timeout=2)
    assert not listed(relay)
    assert rcpt_reply(relay, "alice@dest.example") == 250 and rcpt_reply(relay, "bob@dest.example") == 250


@pytest.mark.parametrize("feedback_type, lists", [("not-spam", False), ("auth-failure", False),
                                                  ("some-new-type", False), ("abuse", True), ("fraud", True),
                                                  ("virus", True), ("other", True)])
def test_a_complaint_lists_by_its_feedback_type(tmp_path, upstream, relay_factory, feedback_type, lists):
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    rp = relay_one(relay, upstream)
    assert mail_bounce(relay, rp, arf(rp, feedback_type))[-1] == (250, "250 2.0.0 Recorded 1 complaint(s)")
    events = relay.events(wait_for=2 if lists else 1, timeout=3)
    [complained] = [e for e in events if e["kind"] == "complained"]
    assert complained["feedback_type"] == feedback_type  # the event is written whatever the type
    assert (complained.get("bounce_list") == "listed") is lists
    assert rcpt_reply(relay) == (550 if lists else 250)


def test_the_complaint_table_is_data_validated_at_load():
    shipped = load_default()
    assert shipped.complaint_rule("not-spam") is None and shipped.complaint_rule("auth-failure") is None
    assert shipped.complaint_rule("abuse") is shipped.complaint and shipped.complaint_rule(None) is shipped.complaint
    policy = SuppressionPolicy.from_dict({"complaints": {"list_after": 1, "feedback_types": {"abuse": "never",
                                                                                              "*": "complaint"}}})
    assert policy.complaint_rule("abuse") is None and policy.complaint_rule("whatever") is policy.complaint
    for bad in ({"abuse": "list"}, {"not a type": "never"}, {}, ["abuse"]):
        with pytest.raises(ConfigError, match="feedback_types"):
            SuppressionPolicy.from_dict({"complaints": {"list_after": 1, "feedback_types": bad}})


# --- F5 ------------------------------------------------------------------------------------------

GMAIL_MX_HOST_NXDOMAIN = ("550-5.1.2 DNS Error: DNS type 'a' lookup of mx.dest.example responded with code NXDOMAIN\r\n"
                          "    550-5.1.2 Domain name not found: mx.dest.example\r\n"
                          "    550 5.1.2 https://support.google.com/mail/?p=BadRcptDomain")


@pytest.mark.parametrize("text", [
    "550-5.1.2 DNS Error: DNS type 'a' lookup of mx.dest.example responded with code NXDOMAIN 550-5.1.2 Domain "
    "name not found: mx.dest.example",
    "550 5.4.4 Unable to route: hostname mail.dest.example: NXDOMAIN",
    "550 Domain mx1.dest.example does not exist",
    "550 5.1.2 Host unknown (Name server: mx1.hostingco.example: host not found)",
    "554 5.4.4 lookup of mx1.hostingco.example failed: NXDOMAIN",
])
def test_nxdomain_for_another_name_than_the_recipients_domain_is_no_evidence(text):
    assert not load_default().domains.says_no_such_domain(text, "bob@dest.example")


@pytest.mark.parametrize("text", [
    "550-5.1.2 DNS Error: DNS type 'mx' lookup of dest.example responded with code NXDOMAIN 550-5.1.2 Domain "
    "name not found: dest.example",
    "550 Domain dest.example does not exist",
    "Host or domain name not found. Name service error for name=dest.example type=MX: Host not found",
    "550 5.1.2 hostname dest.example: NXDOMAIN",
])
def test_nxdomain_for_the_recipients_own_domain_is_still_evidence(text):
    assert load_default().domains.says_no_such_domain(text, "bob@dest.example")


def test_nxdomain_of_an_mx_host_through_a_running_relay_does_not_list_the_domain(tmp_path, upstream, relay_factory):
    relay = start_verp_relay_seeing_domains_again_after_1s(tmp_path, upstream, relay_factory)
    for n, rcpt in ((1, "bob@dest.example"), (2, "carol@dest.example")):
        rp = relay_one(relay, upstream, rcpt=rcpt, nth=n)
        assert mail_bounce(relay, rp, dsn_for(rp, rcpt=rcpt, status="5.1.2",
                                              diagnostic=GMAIL_MX_HOST_NXDOMAIN))[-1][0] == 250
        time.sleep(1.5)  # past seen_again_after: a second sighting, were it evidence
    relay.events(wait_for=2, timeout=3)
    assert "@dest.example" not in listed(relay)
    assert rcpt_reply(relay, "alice@dest.example") == 250
