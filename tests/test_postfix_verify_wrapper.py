"""Postfix's reject_unverified_recipient wrapper (review-13 R13-1, R13-2, R13-3).

A Postfix gateway with `reject_unverified_recipient` and `unverified_recipient_reject_code = 550`
answers a RCPT whose verification probe bounced with a fixed wrapper around the probe's own failure
reason (smtpd_check.c: the recipient class's DSN is always 4.1.1, so 5.1.1 with a 5xx code):

    550 5.1.1 <rcpt>: Recipient address rejected: undeliverable address: REASON

(450 4.1.1 "... unverified address: REASON" with a 4xx code). The 5.1.1 says nothing of the mailbox:
REASON is judged as its own reply, as Postfix writes a reason ("host H said: REPLY (in reply to C
command)", or its own words). Tests through a running relay (smarthost: the upstream is the gateway)
and through `relay postfix-log import` (milter mode: Postfix delivering to such a gateway).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_attribution_e2e import events_of, listed, transact

REPO = Path(__file__).resolve().parent.parent

WRAPPER = "550 5.1.1 <{0}@gmail.test>: Recipient address rejected: undeliverable address: "
# Gmail's documented NotAuthorizedError, flattened into one line as Postfix writes a multi-line reply
# into a probe's reason, its DSN Diagnostic-Code and its log (smtp_chat.c joins the lines with a space).
GMAIL_NOT_AUTHORIZED_FLAT = (
    "550-5.7.1 [198.51.100.7] The IP you're using to send mail is not authorized to 550-5.7.1 send email "
    "directly to our servers. Please use the SMTP relay at your 550-5.7.1 service provider instead. For more "
    "information, go to 550 5.7.1  https://support.google.com/mail/?p=NotAuthorizedError a1si123 - gsmtp")


def _import(tmp_path, lines: str, dry_run: bool = True) -> list[dict]:
    config = tmp_path / "relay.yaml"
    config.write_text("hostname: relay.test\nbounce_list: sqlite:///bounces.db\nevents: [{jsonl: events.jsonl}]\n")
    log = tmp_path / "mail.log"
    log.write_text(lines)
    out = subprocess.run([sys.executable, "-m", "relay", "postfix-log", "import", str(log), "-c", str(config),
                          *(["--dry-run"] if dry_run else [])],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def _bounced(queue_id: str, rcpt: str, said: str) -> str:
    return (f"Dec  1 09:00:00 mx postfix/qmgr[1]: {queue_id}: from=<app@sender.test>, size=452, nrcpt=1 (queue active)\n"
            f"Dec  1 09:00:00 mx postfix/smtp[2]: {queue_id}: to=<{rcpt}>, relay=gw.dest.example[192.0.2.1]:25, "
            f"delay=1, delays=0/0/0.5/0.5, dsn=5.1.1, status=bounced ({said})\n"
            f"Dec  1 09:00:00 mx postfix/qmgr[1]: {queue_id}: removed\n")


# -- R13-3: the stage is the last "(in reply to X command)"; the provider's text is kept verbatim ------

def test_a_reply_that_quotes_an_in_reply_to_keeps_its_text_and_the_stage_of_the_last(tmp_path):
    inner = ("550 5.1.1 <d1@dest.example>: Recipient address rejected: undeliverable address: host "
             "exchange.dest.internal[10.0.0.5] said: 530 5.7.0 Must issue a STARTTLS command first "
             "(in reply to MAIL FROM command)")
    events = _import(tmp_path, _bounced("4F9D1D10AB", "d1@dest.example",
                                        f"host gw.dest.example[192.0.2.1] said: {inner} (in reply to RCPT TO command)"))
    [event] = [e for e in events if e["kind"] == "rejected"]
    assert event["postfix"]["command"] == "RCPT TO"
    assert event["stage"] == "rcpt"
    assert event["reply"]["text"] == inner


# -- R13-2: a multi-line reply flattened into one text reads as its provider wrote it ------------------

def _classify(*args) -> dict:
    out = subprocess.run([sys.executable, "-m", "relay", "classify", *args], capture_output=True, text=True,
                         cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_flattened_multi_line_reply_reads_whole():
    # Gmail's NotAuthorizedError as Postfix writes it in one line: "... not authorized to 550-5.7.1 send
    # email directly ..." was a generic policy refusal; whole, it is the sending IP's block (session).
    got = _classify("--stage", "rcpt", GMAIL_NOT_AUTHORIZED_FLAT)
    assert (got["category"], got["scope"], got["rule"]) == ("blocklisted", "session", "sending-ip-blocked")


@pytest.mark.parametrize("text, unwrapped", [
    (GMAIL_NOT_AUTHORIZED_FLAT,
     "550 5.7.1 [198.51.100.7] The IP you're using to send mail is not authorized to send email directly to our "
     "servers. Please use the SMTP relay at your service provider instead. For more information, go to "
     "https://support.google.com/mail/?p=NotAuthorizedError a1si123 - gsmtp"),
    # An embedded reply (after "said: ") keeps its own code: it is where that reply starts.
    ("550 5.1.1 <b@x.test>: Recipient address rejected: undeliverable address: host h[192.0.2.1] said: "
     "550 5.1.1 <b@x.test>: Recipient address rejected: User unknown (in reply to RCPT TO command)",
     "550 5.1.1 <b@x.test>: Recipient address rejected: undeliverable address: host h[192.0.2.1] said: "
     "550 5.1.1 <b@x.test>: Recipient address rejected: User unknown (in reply to RCPT TO command)"),
    ("550 5.1.1 <b@x.test>: undeliverable address: host h said: 550-5.1.1 first 550 5.1.1 second",
     "550 5.1.1 <b@x.test>: undeliverable address: host h said: 550-5.1.1 first second"),
    # Exim's callout report (no enhanced codes): the continuation markers go, the quoted reply after
    # "Response:" and the last line's bare "550 " (it could be a number) stay.
    ("550-Verification failed for <c@m.test> 550-Called: 192.0.2.4 550-Sent: RCPT TO:<c@m.test> 550-Response: "
     "550 5.1.1 <c@m.test>: Recipient address rejected: User unknown in local recipient table 550 Sender verify failed",
     "550 Verification failed for <c@m.test> Called: 192.0.2.4 Sent: RCPT TO:<c@m.test> Response: 550 5.1.1 "
     "<c@m.test>: Recipient address rejected: User unknown in local recipient table 550 Sender verify failed"),
    # Numbers in a text are not markers.
    ("550 Your message exceeded 550 recipients, call 555-1234", "550 Your message exceeded 550 recipients, call 555-1234"),
    ("550 5.7.1 blocked, see 550 5.7.1 policy", "550 5.7.1 blocked, see 550 5.7.1 policy"),
])
def test_unwrapped_text_drops_only_the_markers_of_a_flattened_reply(text, unwrapped):
    from relay.classify import unwrapped_text
    from relay.decision import Reply

    assert unwrapped_text(Reply.parse(text)) == unwrapped


# -- R13-1: the wrapper is judged by the reason it carries ------------------------------------------

NOT_ABOUT_THE_RECIPIENT = {
    # Postfix's own text: the gateway's MX or transport points at itself (RFC 5321 5.1 routing).
    "loopy": "mail for gmail.test loops back to myself",
    # Exchange's receive connector demands STARTTLS of the probe's MAIL FROM.
    "tls": "host exchange.gmail.test[10.0.0.5] said: 530 5.7.0 Must issue a STARTTLS command first "
           "(in reply to MAIL FROM command)",
    "denied": "host exchange.gmail.test[10.0.0.5] said: 550 5.7.1 Access denied (in reply to MAIL FROM command)",
    # Exim's default ACL text, and RFC 5321's stock text, at the probe's MAIL FROM.
    "prohibited": "host exim.gmail.test[10.0.0.6] said: 550 Administrative prohibition (in reply to MAIL FROM command)",
    "stock": "host exim.gmail.test[10.0.0.6] said: 550 Requested action not taken: mailbox unavailable "
             "(in reply to MAIL FROM command)",
    # The gateway's own IP is not allowed to send to the final MX (R13-2: flattened by Postfix).
    "blocked": f"host gmail-smtp-in.l.google.com[142.250.27.27] said: {GMAIL_NOT_AUTHORIZED_FLAT} "
               "(in reply to RCPT TO command)",
}


def test_a_wrapped_reason_about_the_path_or_the_session_lists_nobody(relay, upstream):
    for local, reason in NOT_ABOUT_THE_RECIPIENT.items():
        upstream.rcpt_replies[local] = WRAPPER.format(local) + reason
    rcpts = [f"{local}@gmail.test" for local in NOT_ABOUT_THE_RECIPIENT] + ["fine@gmail.test"]
    replies = transact(relay, rcpts)
    assert [r[0] for r in replies[1:len(rcpts)]] == [550] * len(NOT_ABOUT_THE_RECIPIENT)  # verbatim to the client
    events = events_of(relay, len(rcpts))
    rejected = {e["recipient"]: e for e in events if e["kind"] == "rejected"}
    assert set(rejected) == {f"{local}@gmail.test" for local in NOT_ABOUT_THE_RECIPIENT}
    for address, event in rejected.items():
        assert event["classification"]["scope"] != "recipient", (address, event["classification"])
        assert "bounce_list" not in event, address
        assert not listed(relay, address), address
    assert not any(e["kind"] == "bounce_listed" for e in events)


def test_a_wrapped_unknown_user_still_lists_and_a_reason_no_rule_reads_only_counts(relay, upstream):
    upstream.rcpt_replies["gone"] = WRAPPER.format("gone") + (
        "host mailstore.gmail.test[10.0.0.7] said: 550 5.1.1 <gone@gmail.test>: Recipient address rejected: "
        "User unknown in virtual mailbox table (in reply to RCPT TO command)")
    # A real one (a Haraka queue log): qmail's "no mailbox here by that name" behind the wrapper.
    upstream.rcpt_replies["nobody"] = WRAPPER.format("nobody") + (
        "host 192.168.1.131[192.168.1.131] said: 550 sorry, no mailbox here by that name (in reply to RCPT TO command)")
    upstream.rcpt_replies["local"] = WRAPPER.format("local") + 'unknown user: "local"'  # Postfix local(8)
    # Only the wrapper's 5.1.1 speaks for the address: counted, not listed at once.
    upstream.rcpt_replies["vague"] = WRAPPER.format("vague") + (
        "host mailstore.gmail.test[10.0.0.7] said: 550 Rejected (in reply to RCPT TO command)")
    transact(relay, ["gone@gmail.test", "nobody@gmail.test", "local@gmail.test", "vague@gmail.test"])
    events = events_of(relay, 7)
    assert sorted(e["recipient"] for e in events if e["kind"] == "bounce_listed") == [
        "gone@gmail.test", "local@gmail.test", "nobody@gmail.test"]
    vague = next(e for e in events if e["kind"] == "rejected" and e["recipient"] == "vague@gmail.test")
    assert vague["classification"]["rule"] == "postfix-undeliverable-recipient"
    assert vague.get("bounce_list") != "listed"
    assert not listed(relay, "vague@gmail.test")


def test_postfix_delivering_to_such_a_gateway_lists_only_the_unknown_user(tmp_path):
    said = "host gw.dest.example[192.0.2.1] said: 550 5.1.1 <{0}@dest.example>: Recipient address rejected: " \
           "undeliverable address: {1} (in reply to RCPT TO command)"
    lines = (_bounced("4F9D1D10AB", "d1@dest.example", said.format(
                 "d1", "host exchange.dest.internal[10.0.0.5] said: 530 5.7.0 Must issue a STARTTLS command first "
                       "(in reply to MAIL FROM command)"))
             + _bounced("4F9D1D20AB", "d2@dest.example", said.format("d2", "mail for dest.example loops back to myself"))
             + _bounced("4F9D1D30AB", "d3@dest.example", said.format(
                 "d3", "host exchange.dest.internal[10.0.0.5] said: 550 5.1.10 RESOLVER.ADR.RecipientNotFound; "
                       "Recipient not found by SMTP address lookup (in reply to RCPT TO command)")))
    events = _import(tmp_path, lines)
    assert sorted(e["recipient"] for e in events if e["kind"] == "bounce_listed") == ["d3@dest.example"]
    rejected = {e["recipient"]: e for e in events if e["kind"] == "rejected"}
    assert rejected["d1@dest.example"]["classification"]["scope"] != "recipient"
    assert rejected["d2@dest.example"]["classification"]["scope"] == "relay"
