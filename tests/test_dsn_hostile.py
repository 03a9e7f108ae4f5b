"""Hostile bounces: texts built to make the DSN reader's regular expressions or the email generator
backtrack or repeat their work. Each is read in time linear in its size, so the parse ends well within
its budget (PARSE_BUDGET), through `relay dsn parse` and through the bounces_in listener. On the old
code each took from a quarter of an hour to days in one regex or generator call, which the parse's
deadline cannot interrupt: the CLI hung, and the intake's one parser thread stayed busy, every bounce
behind it deferred (451)."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from relay.intake.bounces_in import PARSE_BUDGET, PARSE_DEADLINE
from tests.test_bounces_in import dsn_for, mail_bounce, relay_one, start_verp_relay

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20
HEAD = (b"From: MAILER-DAEMON@mx.example\r\nTo: postmaster@bounces.example.com\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n")


def _base64_text(text: bytes) -> bytes:
    # Base64 (or quoted-printable) turns short lines on the wire into a line of any length once decoded.
    return (HEAD + b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(text).replace(b"\n", b"\r\n"))


def _with_diagnostic(diagnostic: bytes) -> bytes:
    return (HEAD + b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
            b"--B\r\nContent-Type: text/plain\r\n\r\nThis is the mail system.\r\n"
            b"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
            b"Final-Recipient: rfc822; bob@dest.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            b"Diagnostic-Code: smtp; " + diagnostic + b"\r\n\r\n--B--\r\n")


# name -> (message, the failed recipients it reports)
HOSTILE = {
    # _ORIGINAL_MARKER's \s*[-=_*]*\s* tried a line of n spaces in n*n ways, times 30 alternatives.
    "a decoded line of 1 MiB of spaces": (_base64_text(b"Delivery failed\n" + b" " * MiB + b"!\n"), []),
    "a decoded line of 1 MiB of tabs before a reply code": (
        _base64_text(b"Delivery to bob@dest.example failed\n" + b"\t" * MiB + b"550 5.1.1 no such user\n"),
        ["bob@dest.example"]),
    # _ADDRESS tried every position of a run of atom characters, each a scan to the "@".
    "1 MiB of letters before an @": (_base64_text(b"Delivery failed\n" + b"a" * MiB + b"@\n"), []),
    "1 MiB of a. before an @": (_base64_text(b"Delivery failed\n" + b"a." * (MiB // 2) + b"@\n"), []),
    # The same with the letters an SMTPUTF8 address may hold (branch intake-hostile: U+00C0-U+24FF).
    "1 MiB of \u00f6 before an @": (_base64_text(b"Delivery failed\n" + "\u00f6".encode() * (MiB // 2) + b"@\n"), []),
    # And with combining marks, address characters since branch intake2 (a local part written in NFD).
    "1 MiB of o\u0308 before an @": (_base64_text(b"Delivery failed\n" + "o\u0308".encode() * (MiB // 3) + b"@\n"), []),
    "an @ before 1 MiB of \u00fc-": (_base64_text(b"Delivery failed\nx@" + "\u00fc-".encode() * (MiB // 3) + b"\n"), []),
    # _IN_REPLY_TO scanned to the end from every "(in reply to ", and the email generator refolded the
    # Diagnostic-Code in time quadratic in its words.
    "a Diagnostic-Code of 1 MiB of (in reply to": (_with_diagnostic(b"550 5.1.1 " + b"(in reply to " * (MiB // 13)),
                                                   ["bob@dest.example"]),
    "a Diagnostic-Code of 1 MiB of words": (_with_diagnostic(b"550 5.1.1 " + b"word " * (MiB // 5)),
                                            ["bob@dest.example"]),
    # _reply_lines split the reply at each "\s+" before a reply code, from every position of a run.
    "a Diagnostic-Code of 1 MiB of spaces": (_with_diagnostic(b"550 5.1.1 no such user" + b" " * MiB + b"x"),
                                             ["bob@dest.example"]),
    # Each folded line was appended to the value read so far, a copy of it each time: quadratic in the
    # lines (10 MiB in 11,000 lines: 7 s; this one over a minute), then searched whole for the stage.
    "a Diagnostic-Code of 20 MiB folded into 23,000 lines": (
        _with_diagnostic(b"550 5.1.1 no such user " + b"\r\n ".join([b"word " * 180] * (20 * MiB // 900))),
        ["bob@dest.example"]),
    # Pasted without a header: the text is searched for where the original message starts.
    "a header-less text of 1 MiB of spaces": (b" " * MiB + b"!\n", []),
}


def _folded(message: bytes) -> bytes:
    """`message` with its long lines folded (RFC 5322 2.2.3) into lines the SMTP listener takes (at
    most 1000 octets): a file given to `relay dsn parse` may have lines of any length, a message sent
    to the listener not."""
    out = []
    for line in message.split(b"\r\n"):
        out.append(b"\r\n ".join(line[at:at + 900] for at in range(0, len(line), 900)) if len(line) > 998 else line)
    return b"\r\n".join(out)


@pytest.mark.parametrize("name", list(HOSTILE))
def test_relay_dsn_parse_reads_a_hostile_bounce_within_the_parse_budget(tmp_path, name):
    message, failed = HOSTILE[name]
    path = tmp_path / "bounce.eml"
    path.write_bytes(message)
    # The bound is the intake's own: a parse that takes longer is refused there (554). Before, these
    # ran for a quarter of an hour (1 MiB of words) to days (1 MiB of spaces, cubic).
    config = []
    if len(message) > 10 * MiB:
        # Past bounces_in.max_message_size's default, which `dsn parse` applies too (review31 F6):
        # raised, as an operator's listener may take it, to reach the parser.
        (tmp_path / "relay.yaml").write_text(
            "hostname: relay.example.com\nbounces_in: {listen: '127.0.0.1:2526', domains: [b.example], "
            f"max_message_size: {len(message) + MiB}}}\n")
        config = ["-c", str(tmp_path / "relay.yaml")]
    done = subprocess.run([sys.executable, "-m", "relay", "dsn", "parse", *config, str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=PARSE_BUDGET * 3)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert [json.loads(line)["recipient"] for line in done.stdout.splitlines()] == failed


def test_hostile_bounces_get_an_answer_in_time_and_the_parser_stays_free(tmp_path, upstream, relay_factory):
    # Each is read (250) well before the 30 s deadline, and a real bounce sent right after is read too:
    # before, the first of them held the intake's one parser thread for hours (451 for it at 30 s, and
    # 451 for every bounce behind it). Folded, the Diagnostic-Code of spaces still cost the old code
    # ~5 s of _reply_lines on the event loop (FailedRecipient.reply(), runs of 899 spaces).
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    # To a return path of ours: mail to postmaster alone is not read at all (review23 F1).
    hostile_to = relay_one(relay, upstream)
    runs_of_spaces = _with_diagnostic(b"550 5.1.1 no such user" + (b" " * 899 + b"x") * (MiB // 900))
    for name, message in [(name, HOSTILE[name][0]) for name in (
            "a decoded line of 1 MiB of spaces", "1 MiB of letters before an @",
            "a Diagnostic-Code of 1 MiB of words")] + [("runs of 899 spaces", runs_of_spaces)]:
        began = time.monotonic()
        code, text = mail_bounce(relay, hostile_to, _folded(message),
                                 timeout=PARSE_DEADLINE + 30)[-1]
        assert code == 250, (name, text)
        assert time.monotonic() - began < PARSE_DEADLINE, name
    return_path = relay_one(relay, upstream, nth=2)
    replies = mail_bounce(relay, return_path, dsn_for(return_path), timeout=PARSE_DEADLINE + 30)
    assert replies[-1] == (250, "250 2.0.0 Recorded 1 failure(s)"), replies


def test_a_bounce_of_100000_status_blocks_runs_no_garbage_collection_that_stops_the_event_loop(
        tmp_path, upstream, relay_factory):
    # The email package builds hundreds of thousands of objects for such a report; the collections they
    # triggered in the parser thread (about a thousand, the full ones 90-150 ms each) hold the GIL, so
    # the event loop stood still for as long (loop lag measured through the listener: 134-160 ms before,
    # 50 ms after). The collector is paused while a bounce is parsed.
    import gc
    import threading

    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    hostile_to = relay_one(relay, upstream)  # a return path of ours: postmaster alone is not read (review23 F1)
    blocks = b"".join(b"Final-Recipient: rfc822; u%d@dest.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n" % i
                      for i in range(100_000))
    message = (HEAD + b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
               b"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
               + blocks + b"--B--\r\n")
    in_parser = []

    def seen(phase, info):
        if phase == "start" and threading.current_thread().name.startswith("relay-bounce-parse"):
            in_parser.append(info["generation"])

    gc.callbacks.append(seen)
    try:
        code, text = mail_bounce(relay, hostile_to, message, timeout=PARSE_DEADLINE + 30)[-1]
    finally:
        gc.callbacks.remove(seen)
    assert code == 250 and "99000 recipient blocks past the first 1000 not read" in text, text
    # Before: 1,012 collections in the parser thread. Now none while it parses; the first allocation after
    # the collector is back may run one young-generation collection (the parse's objects are gone by then).
    assert 2 not in in_parser and len(in_parser) <= 1, in_parser
    assert gc.isenabled()


def test_a_bounce_whose_diagnostic_code_is_1_mib_is_classified_on_its_first_characters(
        tmp_path, upstream, relay_factory):
    # A recorded bounce is classified on the event loop (Outcomes.observe). The shipped rules searched the
    # whole Diagnostic-Code: over 1 MiB of "<" the quadratic ones took about half an hour, the relay
    # standing still (the old code did not answer within the deadline). The rules read its first
    # MAX_CLASSIFIED_TEXT characters.
    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    return_path = relay_one(relay, upstream)
    message = _folded(dsn_for(return_path, status="5.2.1", diagnostic="550 5.2.1 " + "<" * MiB))
    code, text = mail_bounce(relay, return_path, message, timeout=PARSE_DEADLINE)[-1]
    assert (code, text) == (250, "250 2.0.0 Recorded 1 failure(s)")
    bounced = [e for e in relay.events(wait_for=2) if e["kind"] == "bounced"]
    assert [e["classification"]["category"] for e in bounced] == ["mailbox_disabled"]


def test_an_event_carries_at_most_max_event_text_of_a_10_mb_diagnostic_code(tmp_path, upstream, relay_factory):
    # Every event is written whole to every sink: the old code put the whole Diagnostic-Code in the
    # event, twice (reply.text and dsn.diagnostic_code), so a bounce with a 10 MB one made a 20 MB JSON
    # line. Its start is kept, with a marker saying how much was cut (docs/events.md).
    from relay.events import MAX_EVENT_TEXT

    # 10 MB of text: past bounces_in.max_message_size's default (10 MiB), raised to reach the parser.
    relay = start_verp_relay(tmp_path, upstream, relay_factory, intake={"max_message_size": 36700160})
    return_path = relay_one(relay, upstream)
    diagnostic = "550 5.1.1 no such user " + "word " * (10 * MiB // 5)
    message = _folded(dsn_for(return_path, status="5.1.1", diagnostic=diagnostic))
    # The relay answers within its own PARSE_DEADLINE (or says 451); the client waits longer than that,
    # as the test above does: waiting exactly as long raced the relay's answer (32 s on a loaded machine).
    code, text = mail_bounce(relay, return_path, message, timeout=PARSE_DEADLINE + 30)[-1]
    assert (code, text) == (250, "250 2.0.0 Recorded 1 failure(s)")
    (bounced,) = [e for e in relay.events(wait_for=2) if e["kind"] == "bounced"]
    for carried in (bounced["dsn"]["diagnostic_code"], bounced["reply"]["text"]):
        kept, _, marker = carried.partition(" [... ")
        assert len(kept) <= MAX_EVENT_TEXT and "550 5.1.1 no such user word word" in kept
        cut = int(re.fullmatch(r"(\d+) more characters cut by the relay\]", marker).group(1))
        assert cut > 10 * MiB - 2 * MAX_EVENT_TEXT
    longest = max(len(line) for line in relay.events_path.read_text().splitlines())
    assert longest < 4 * MAX_EVENT_TEXT


def test_the_bounce_list_keeps_at_most_max_event_text_of_a_1_mb_reply(tmp_path, upstream, relay_factory):
    # Events carry at most MAX_EVENT_TEXT characters of a provider's words; the bounce list kept the whole
    # text of the reply that listed an address: a hostile server's 1 MB Diagnostic-Code was stored as it came,
    # in every entry it listed (and shown by `relay bounces show`, read back by every RCPT that consults it).
    # It keeps the start and the marker an event has.
    from relay.events import MAX_EVENT_TEXT

    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    return_path = relay_one(relay, upstream)
    diagnostic = "550 5.1.1 no such user " + "word " * (MiB // 5)
    message = _folded(dsn_for(return_path, status="5.1.1", diagnostic=diagnostic))
    code, text = mail_bounce(relay, return_path, message, timeout=PARSE_DEADLINE + 30)[-1]
    assert (code, text) == (250, "250 2.0.0 Recorded 1 failure(s)")
    (bounced,) = [e for e in relay.events(wait_for=2) if e["kind"] == "bounced"]
    assert bounced["bounce_list"] == "listed"
    entry = relay.call(relay.server.resources.store.get("alice@dest.example"))
    assert entry is not None and entry.category == "unknown_recipient"
    kept, _, marker = entry.reply.partition(" [... ")
    assert len(kept) <= MAX_EVENT_TEXT and kept.startswith("550 5.1.1 no such user word word"), entry.reply[:100]
    assert int(re.fullmatch(r"(\d+) more characters cut by the relay\]", marker).group(1)) > MiB - 2 * MAX_EVENT_TEXT
    assert len(entry.reply) < MAX_EVENT_TEXT + 100


def test_an_event_carries_at_most_a_few_hundred_characters_of_a_bounces_mta_names(tmp_path, upstream, relay_factory):
    # review19 F3: only the reply's text, dsn.diagnostic_code and entry.reply were cut. A bounce's
    # Remote-MTA and Reporting-MTA went into the event as they came (remote_mta, dsn.remote_mta,
    # dsn.reporting_mta), as did the returned message's References: 4 MiB names made a 12.6 MB event
    # line, written whole to every sink. Every text of an event is cut now, a name to MAX_EVENT_NAME.
    from relay.events import MAX_EVENT_TEXT

    MAX_EVENT_NAME = 512  # docs/events.md "Long texts": an address or a host name
    relay = start_verp_relay(tmp_path, upstream, relay_factory, intake={"max_message_size": 36700160})
    return_path = relay_one(relay, upstream)
    big = "mx" + "x" * (4 * MiB) + ".example"
    references = " ".join(f"<m-{i}@example.com>" for i in range(20000))  # folded below: 380 KB
    message = dsn_for(return_path, status="5.1.1", diagnostic="550 5.1.1 no such user")
    message = (message.replace(b"Reporting-MTA: dns; smarthost.example", f"Reporting-MTA: dns; {big}".encode())
               .replace(b"Remote-MTA: dns; mx.dest.example", f"Remote-MTA: dns; {big}".encode())
               .replace(b"Message-ID: <m-1@example.com>", f"Message-ID: <m-1@example.com>\r\n"
                                                          f"References: {references}".encode()))
    code, text = mail_bounce(relay, return_path, _folded(message), timeout=PARSE_DEADLINE + 30)[-1]
    assert (code, text) == (250, "250 2.0.0 Recorded 1 failure(s)")
    (bounced,) = [e for e in relay.events(wait_for=2) if e["kind"] == "bounced"]
    for carried in (bounced["remote_mta"], bounced["dsn"]["remote_mta"], bounced["dsn"]["reporting_mta"]):
        kept, _, marker = carried.partition(" [... ")
        assert kept == big[:MAX_EVENT_NAME]
        # (_folded put a space in every 900 characters of the message: more were cut than `big` has.)
        assert int(re.fullmatch(r"(\d+) more characters cut by the relay\]", marker).group(1)) > len(big) - MAX_EVENT_NAME
    kept, _, marker = bounced["references"].partition(" [... ")
    assert len(kept) == MAX_EVENT_TEXT and kept.startswith(references[:800]), kept[:100]
    assert re.fullmatch(r"(\d+) more characters cut by the relay\]", marker)
    longest = max(len(line) for line in relay.events_path.read_text().split("\n"))
    assert longest < 4 * MAX_EVENT_TEXT


def test_relay_dsn_parse_counts_the_status_blocks_past_the_limit_in_parts_it_does_not_read(tmp_path):
    # Past MAX_STATUS_BLOCKS a status part's blocks are only counted (its per-message block is none of
    # them): 100 parts of one recipient block each past the 1,000th, then one of three without a
    # per-message block. Before, every part was read whole for that count (20,000 parts: 2-3 s).
    part = ("--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
            "Final-Recipient: rfc822; u{}@dest.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n")
    last = "".join(f"Final-Recipient: rfc822; v{i}@dest.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
                   for i in range(3))
    message = (HEAD + b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
               + "".join(part.format(i) for i in range(1100)).encode()
               + b"--B\r\nContent-Type: message/delivery-status\r\n\r\n" + last.encode() + b"--B--\r\n")
    path = tmp_path / "bounce.eml"
    path.write_bytes(message)
    done = subprocess.run([sys.executable, "-m", "relay", "dsn", "parse", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=PARSE_BUDGET * 6)
    assert done.returncode == 0, done.stderr
    assert "103 recipient blocks past the first 1000 not read" in done.stderr, done.stderr
    assert [json.loads(line)["recipient"] for line in done.stdout.splitlines()] == \
        [f"u{i}@dest.example" for i in range(1000)]
