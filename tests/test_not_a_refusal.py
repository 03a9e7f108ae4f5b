"""A 2xx or 3xx reply is no refusal (review27 F2): `relay classify` says so, with exit 1, and no way
into the funnel reads one as a refusal or lists an address with it.

Before, "250 2.0.0 OK queued" was classified `other` by `enhanced-X.0` ("the server refused the
message") and a pasted greeting "220 mx.example ESMTP" took the nearest refusal's meaning
(`routing_dns`)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from relay.cli import main


def classify(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "relay", "classify", *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("text", ["250 2.0.0 OK queued", "220 mx.example ESMTP", "354 Start mail input",
                                  "250-mx.example\r\n250 SIZE 35882577", "251 2.1.5 User not local; will forward"])
def test_a_positive_reply_is_answered_not_a_refusal_with_exit_1(text):
    out = classify(text)
    assert out.returncode == 1, out.stdout + out.stderr
    got = json.loads(out.stdout)
    assert got["rule"] == "not-a-refusal" and got["category"] == "other"
    assert got["meaning"].startswith("Not a refusal")
    assert (got["permanent"], got["retry"], got["bounce_list"]) == (False, False, "never")
    # The same at every stage and with a recipient it could have named.
    out = classify(text, "--stage", "rcpt", "--recipient", "a@example.com")
    assert json.loads(out.stdout)["rule"] == "not-a-refusal" and out.returncode == 1


def test_stdin_mode_answers_each_line_and_exits_1_when_one_was_not_a_refusal():
    out = classify(stdin=json.dumps("550 5.1.1 User unknown") + "\n" + json.dumps("250 2.0.0 OK") + "\n")
    first, second = (json.loads(line) for line in out.stdout.splitlines())
    assert first["category"] == "unknown_recipient" and second["rule"] == "not-a-refusal"
    assert out.returncode == 1
    out = classify(stdin=json.dumps("550 5.1.1 User unknown") + "\n")
    assert out.returncode == 0


def test_refusals_and_code_less_texts_are_classified_as_before():
    assert json.loads(classify("550 5.1.1 User unknown").stdout)["category"] == "unknown_recipient"
    out = classify("hello")
    assert out.returncode == 0 and json.loads(out.stdout)["rule"] == "default"


DSN = """\
From: MAILER-DAEMON@mx.example.net
To: bounces@sender.example
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Delivery failed.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; bob@example.org
Action: failed
Status: 5.0.0
Diagnostic-Code: smtp; 250 2.0.0 Ok: queued as 4ABC123

--B--
"""


def test_a_report_quoting_a_250_is_no_refusal_and_lists_nobody(tmp_path, capsys):
    path = tmp_path / "bounce.eml"
    path.write_text(DSN)
    assert main(["dsn", "parse", str(path)]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["recipient"] == "bob@example.org"
    assert row["classification"]["rule"] == "not-a-refusal"
    assert row["classification"]["bounce_list"] == "never"
