"""The Postfix log parser against real lines (tests/data/postfix-log-lines.yaml), and the shapes
around them: syslog frames, multi-line replies, the texts Postfix writes itself."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from relay.intake.postfix_log import (Delivery, Expired, MessageId, Removed, Sender, parse_detail, parse_line,
                                      parse_record, split_reply)

CORPUS = yaml.safe_load((Path(__file__).parent / "data" / "postfix-log-lines.yaml").read_text())
RECORDS = {"delivery": Delivery, "message-id": MessageId, "sender": Sender, "expired": Expired, "removed": Removed}
NOW = datetime(2026, 11, 29, 12, 0, 0).astimezone()


def _id(entry):
    return (entry.get("line") or entry.get("text"))[:60]


def test_every_corpus_entry_names_its_source():
    assert len(CORPUS) >= 150
    for entry in CORPUS:
        assert entry.get("source"), entry
        assert ("line" in entry) != ("text" in entry), entry


@pytest.mark.parametrize("entry", CORPUS, ids=_id)
def test_corpus_line(entry):
    expect = entry["expect"]
    if "line" in entry:
        line = parse_line(entry["line"], now=NOW)
        assert line is not None, "the frame was not recognised"
        text, service = line.text, line.service
        frame = expect.get("frame", {})
        for key in ("host", "program", "pid"):
            if key in frame:
                assert getattr(line, key) == frame[key], key
        if "month" in frame:
            assert (line.time.month, line.time.day, line.time.strftime("%H:%M:%S")) == \
                (frame["month"], frame["day"], frame["time"])
        if "iso" in frame:
            assert line.time == datetime.fromisoformat(frame["iso"])
    else:
        text, service = entry["text"], ""
    record = parse_record(text, service)
    if expect["record"] == "none":
        assert record is None
        return
    assert isinstance(record, RECORDS[expect["record"]]), record
    for key in ("queue_id", "recipient", "orig_recipient", "status", "dsn", "delay", "sender", "size",
                "nrcpt", "message_id"):
        if key in expect:
            assert getattr(record, key) == expect[key], key
    if "delays" in expect:
        assert record.delays == tuple(expect["delays"])
    if "relay" in expect:
        assert record.relay.as_dict() == expect["relay"]
    if isinstance(record, Delivery):
        d = record.detail
        for key, attr in (("said_by", "host"), ("stage", "stage"), ("command", "command"),
                          ("postfix_text", "postfix_text"), ("suspended", "suspended")):
            if key in expect:
                assert getattr(d, attr) == expect[key], key
        if "reply" in expect:
            if expect["reply"] is None:
                assert d.reply is None
            else:
                assert d.reply.text == expect["reply"]
                assert d.reply.source == "mta-log"


def test_the_rebuilt_reply_is_the_one_the_provider_sent():
    from tests.support.upstream import GMAIL_MAILBOX_FULL, GMAIL_NO_SUCH_USER, GMAIL_RATE_LIMIT, GMAIL_SPAM

    for wire in (GMAIL_NO_SUCH_USER, GMAIL_MAILBOX_FULL, GMAIL_RATE_LIMIT, GMAIL_SPAM):
        flat = wire.replace("\r\n", " ")  # what Postfix logs (smtp_chat.c joins the lines with a space)
        reply = split_reply(flat)
        assert reply.text == wire.replace("\r\n", "\n")
        assert reply.code == int(wire[:3])


def test_a_code_inside_a_line_is_text_not_a_line_break():
    reply = split_reply("550-5.7.1 Message rejected: 550 5.7.1 style words inside 550 5.7.1 final line")
    # Only the first same-code marker after a "-" line ends that line; the rest of the last line is text.
    assert reply.lines[0] == "5.7.1 Message rejected:"
    assert reply.lines[1] == "5.7.1 style words inside 550 5.7.1 final line"
    single = split_reply("552 5.3.4 Message size exceeds fixed limit of 550 5.0.0 bytes")
    assert single.lines == ("5.3.4 Message size exceeds fixed limit of 550 5.0.0 bytes",)


def test_multi_line_replies_without_enhanced_codes():
    reply = split_reply("550-Requested action not taken: mailbox unavailable 550 Failure sending mail. Try again later")
    assert reply.text == "550-Requested action not taken: mailbox unavailable\n550 Failure sending mail. Try again later"


@pytest.mark.parametrize("text,stage,command", [
    ("host mx.example[192.0.2.1] said: 550 5.1.1 no (in reply to RCPT TO command)", "rcpt", "RCPT TO"),
    ("host mx.example[192.0.2.1] said: 552 5.3.4 big (in reply to end of DATA command)", "data", "end of DATA"),
    ("host mx.example[192.0.2.1] said: 553 5.1.8 bad sender (in reply to MAIL FROM command)", "mail", "MAIL FROM"),
    ("host mx.example[192.0.2.1] said: 554 5.7.1 go away (in reply to HELO command)", "helo", "HELO"),
    ("host mx.example[192.0.2.1] said: 503 5.5.1 sequence (in reply to DATA command)", "data", "DATA"),
    ("host mx.example[192.0.2.1] refused to talk to me: 554 5.7.1 blocked", "connect", "initial server greeting"),
])
def test_stages(text, stage, command):
    d = parse_detail(text)
    assert (d.stage, d.command, d.host) == (stage, command, "mx.example[192.0.2.1]")
    assert d.reply is not None and d.reply.code == int(text.split(": ", 1)[1][:3])


@pytest.mark.parametrize("text,stage", [
    ("lost connection with mx.example[192.0.2.1] while sending RCPT TO", "rcpt"),
    ("lost connection with mx.example[192.0.2.1] while sending end of data -- message may be sent more than once",
     "data"),
    ("lost connection with mx.example[192.0.2.1] while performing the EHLO handshake", "helo"),
    ("conversation with mx.example[192.0.2.1] timed out while sending message body", "data"),
    ("connect to mx.example[2001:db8::1]:25: Connection refused", "connect"),
    ("Host or domain name not found. Name service error for name=example.invalid type=MX: Host not found, try again",
     None),
])
def test_texts_postfix_writes_itself(text, stage):
    d = parse_detail(text)
    assert d.reply is None and d.postfix_text == text and d.stage == stage


def test_rfc5424_frame():
    line = parse_line("<22>1 2026-11-29T11:24:41.123456Z mail.example postfix/smtp 4242 - - "
                      "A57A320C3C7: to=<a@b.example>, relay=none, delay=1, delays=1/0/0/0, dsn=4.4.1, "
                      "status=deferred (connect to b.example[192.0.2.7]:25: Connection timed out)")
    assert (line.host, line.program, line.pid) == ("mail.example", "postfix/smtp", 4242)
    assert line.time == datetime(2026, 11, 29, 11, 24, 41, 123456, tzinfo=timezone.utc)
    assert isinstance(parse_record(line.text, line.service), Delivery)


def test_a_december_line_read_in_january_is_last_year():
    line = parse_line("Dec 31 23:59:59 mx postfix/qmgr[1]: ABCDEF123: removed", now=datetime(2027, 1, 1, 0, 5).astimezone())
    assert line.time.year == 2026


def test_lines_that_are_not_syslog_are_none():
    assert parse_line("") is None
    assert parse_line("just some words") is None
    assert parse_record("not a queue id: to=<a@b>") is None
