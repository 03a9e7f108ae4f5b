"""`relay postfix-log import` of real lines published by users (tests/data/postfix-log-lines.yaml): the
frames their loggers put around Postfix's words, and Postfix's own texts that name no recipient's fault.

One import of one log built from the corpus's lines, verbatim; each test reads the events it wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
CORPUS = yaml.safe_load((REPO / "tests" / "data" / "postfix-log-lines.yaml").read_text())


def corpus_line(fragment: str) -> str:
    (line,) = [e["line"] for e in CORPUS if "line" in e and fragment in e["line"]]
    return line


def corpus_text(fragment: str) -> str:
    (text,) = [e["text"] for e in CORPUS if "text" in e and fragment in e["text"]]
    return text


LINES = {
    # blanks after the closing parenthesis (docker-mailserver#2033, EasyEngine/dockerfiles#106)
    "trailing": corpus_line("to=<mereng.marina@example.com>"),
    "sasl_no_mech": corpus_line("SASL authentication failed; cannot authenticate to server smtp.example.com"),
    # docker compose's "service  | " before the line (rabbitmq-email#55, mailcow-dockerized#6486)
    "compose_size": corpus_line("to=<address2@mail.local>"),
    "compose_gmail": corpus_line("1230db0bd489 postfix/smtp[32918]"),
    # Docker's RFC 3339 time and no host (Mailu#583); a leading blank (mail-spoofer#3)
    "no_host": corpus_line("to=<some-random-address@yahoo.com.tw>"),
    "indented": corpus_line("to=<myemail@gmail.com>, relay=none"),
    # journalctl under a German locale (chatmail/relay#21)
    "okt": corpus_line("Okt 15 23:48:15"),
    # Postfix's own words about the session, never about the recipient
    "sasl_said": corpus_line("to=<karl_rez@outlook.com>"),
    "tls_required": corpus_line("to=<emailaddress@hotmail.com>"),
    # frames with no delivery result: BusyBox syslogd, docker-postfix's severity column, rsyslog's folding
    "busybox": corpus_line("5de1a1801612 mail.info postfix/qmgr"),
    "severity": corpus_line("INFO    postfix/cleanup[1203]"),
    "repeated": corpus_line("message repeated 2 times"),
}
# whyscream/postfix-grok-patterns test/error_0002.yaml holds Postfix's words only; the frame is ours.
UNCACHED = "Jan  2 03:04:05 mail postfix/error[4242]: " + corpus_text("status=undeliverable-but-not-cached")
# BusyBox syslogd (Alpine images) keeps 256 bytes of a message (CONFIG_FEATURE_SYSLOGD_READ_BUFFER_SIZE):
# the real Gmail refusal of jtojnar/nixfiles#13 loses its end, closing parenthesis included.
_FULL = corpus_line("to=<foo@gmail.com>, relay=gmail-smtp-in.l.google.com[2a00:1450:4013:c06::1b]")
CUT = _FULL[:_FULL.index("]: ") + 3 + 256]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("world")
    log = tmp / "mail.log"
    log.write_text("\n".join([*LINES.values(), UNCACHED, CUT]) + "\n")
    config = tmp / "relay.yaml"
    config.write_text("hostname: relay.test\nbounce_list: sqlite:///bounces.db\nevents: [{jsonl: events.jsonl}]\n")
    out = subprocess.run([sys.executable, "-m", "relay", "postfix-log", "import", str(log), "-c", str(config),
                          "--dry-run"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    return {e["recipient"]: e for e in events if e["kind"] in ("rejected", "deferred")}, out.stderr


def test_every_line_is_read_and_only_unknown_users_are_listed(imported):
    events, summary = imported
    assert f"{len(LINES) + 2} lines" in summary
    # Postfix's "User unknown in virtual alias table" (a bounce, and a verification probe's finding)
    # is about the address; nothing else here is.
    assert "would list 2 addresses" in summary
    listed = {r for r, e in events.items() if e["would_bounce_list"] != "never"}
    assert listed == {"mereng.marina@example.com", "user@yahoo.com"}


def test_blanks_after_the_line(imported):
    events, _ = imported
    unknown = events["mereng.marina@example.com"]
    assert unknown["kind"] == "rejected" and unknown["reply"]["text"] == "5.1.1 User unknown in virtual alias table"
    assert unknown["postfix"]["orig_recipient"] == "yappele.lydia@example.com"


def test_docker_compose_prefix_and_docker_time(imported):
    events, _ = imported
    full = events["receiver"]
    assert full["kind"] == "deferred" and full["postfix"]["host"] == "1230db0bd489"
    assert full["reply"]["text"].splitlines() == [
        "452-4.2.2 The recipient's inbox is out of storage space. Please direct the",
        "452-4.2.2 recipient to",
        "452 4.2.2  https://support.google.com/mail/?p=OverQuotaTemp ffacd0b85a97d-39eaf435204si4553432f8f.601 - gsmtp"]
    yahoo = events["some-random-address@yahoo.com.tw"]
    assert yahoo["stage"] == "mail" and yahoo["postfix"]["log_time"].startswith("2018-08-22T07:30:18")
    assert events["myemail@gmail.com"]["stage"] == "connect"


def test_localised_month(imported):
    events, _ = imported
    quota = events["user1697413481.021437_1@c3.testrun.org"]
    assert quota["postfix"]["log_time"] is not None and quota["postfix"]["log_time"][5:19] == "10-15T23:48:15"


def test_texts_about_the_session_or_the_message_are_not_about_the_recipient(imported):
    events, _ = imported
    sasl = events["karl_rez@outlook.com"]
    assert (sasl["stage"], sasl["postfix"]["command"]) == ("helo", "AUTH")
    assert sasl["postfix"]["said_by"] == "smtp.outlook.com[2603:1036:c00:1::2]" and sasl["reply"]["code"] == 535
    assert events["user@example.com"]["stage"] == "helo"  # no mechanism to authenticate with
    assert events["emailaddress@hotmail.com"]["stage"] == "helo"  # TLS required, not offered
    size = events["address2@mail.local"]
    assert size["kind"] == "rejected" and size["stage"] == "mail"  # the server's SIZE limit (RFC 1870)
    for e in (sasl, events["user@example.com"], events["emailaddress@hotmail.com"], size):
        assert e["classification"]["scope"] != "recipient", e


def test_an_address_verification_that_is_not_cached_is_still_a_failure(imported):
    events, _ = imported
    probe = events["user@yahoo.com"]
    assert probe["kind"] == "rejected" and probe["postfix"]["status"] == "undeliverable-but-not-cached"


def test_a_line_cut_short_by_the_logger(imported):
    events, _ = imported
    cut = events["foo@gmail.com"]
    assert cut["kind"] == "rejected" and cut["postfix"]["said_by"] == "gmail-smtp-in.l.google.com[2a00:1450:4013:c06::1b]"
    assert cut["reply"]["code"] == 550 and cut["reply"]["text"] == "550 5.7.26 Your email has been blo"
