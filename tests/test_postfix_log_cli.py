"""`relay postfix-log import`: a real Postfix log (tests/data/postfix-3.7.11-maillog.log, written by
Debian 12's Postfix 3.7.11 relaying to tests/support/upstream.py in test_postfix_log_e2e) processed once."""

from __future__ import annotations

import datetime
import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.upstream import GMAIL_NO_SUCH_USER

REPO = Path(__file__).resolve().parent.parent
LOG = REPO / "tests" / "data" / "postfix-3.7.11-maillog.log"
LISTED = {"nosuchuser@gmail.test", "accessdenied@outlook.test"}


def relay(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "relay", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=120, input=stdin)


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "relay.yaml"
    path.write_text("hostname: relay.test\n"
                    "bounce_list: sqlite:///bounces.db\n"
                    "events: [{jsonl: events.jsonl}]\n"
                    "correlation: {sender_patterns: ['^bounces\\+(?P<conversation_id>[^@]+)@']}\n")
    return path


def listed(config):
    out = relay("bounces", "list", "--json", "-c", config)
    assert out.returncode == 0, out.stderr
    return {e["address"] for e in json.loads(out.stdout)}


def test_import_feeds_the_funnel(config, tmp_path):
    out = relay("postfix-log", "import", LOG, "-c", config)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    assert "6 failures" in out.stderr and "listed 2 addresses" in out.stderr
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    kinds = sorted(e["kind"] for e in events)
    # The two sender refusals also warn the operator (their own event each).
    assert kinds == ["bounce_listed"] * 2 + ["deferred"] + ["rejected"] * 5 + ["warning"] * 2
    (gone,) = [e for e in events if e["kind"] == "rejected" and e["recipient"] == "nosuchuser@gmail.test"]
    assert gone["reply"]["text"] == GMAIL_NO_SUCH_USER.replace("\r\n", "\n")
    assert gone["sender"] == "bounces+c42@sender.test" and gone["conversation_id"] == "c42"
    assert gone["message_id"].startswith("<one.") and gone["queue_id"] == "5454320E603"
    assert listed(config) == LISTED
    # Imported again: the listed stay listed once (no second bounce_listed event).
    relay("postfix-log", "import", LOG, "-c", config)
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert sum(e["kind"] == "bounce_listed" for e in events) == 2


def test_dry_run_prints_and_writes_nothing(config, tmp_path):
    out = relay("postfix-log", "import", LOG, "-c", config, "--dry-run")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert all(e["dry_run"] for e in events)
    assert {e["recipient"] for e in events if e["kind"] == "bounce_listed"} == LISTED
    assert {e["recipient"] for e in events if e.get("would_bounce_list") == "list"} == LISTED
    assert "would list 2 addresses" in out.stderr
    assert not (tmp_path / "events.jsonl").exists() and not (tmp_path / "bounces.db").exists()


def test_every_dry_run_line_is_a_valid_event_and_says_what_it_would_do_in_its_own_field(config):
    # Review22 F5: the dry run printed `bounce_list: would_list | would_count | never`, values the shipped
    # schema (relay/schema/event.schema.json: listed | held | error, what a failure DID to the list) does
    # not allow, so a consumer validating by it rejected the output. The verdict is `would_bounce_list`
    # now, in the policy's words (list | count | never), and a dry-run event carries no `bounce_list`.
    import jsonschema

    schema = json.loads((REPO / "relay" / "schema" / "event.schema.json").read_text())
    out = relay("postfix-log", "import", LOG, "-c", config, "--dry-run")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    validator = jsonschema.Draft202012Validator(schema)
    for event in events:
        assert not list(validator.iter_errors(event)), (event, [e.message for e in validator.iter_errors(event)])
        assert "bounce_list" not in event
    failures = [e for e in events if e["kind"] != "bounce_listed"]
    assert all(e["would_bounce_list"] in ("list", "count", "never") for e in failures)
    assert {e["recipient"] for e in failures if e["would_bounce_list"] == "list"} == LISTED
    assert any(e["would_bounce_list"] == "never" for e in failures)


def test_rotated_gzipped_logs_and_stdin(config, tmp_path):
    gz = tmp_path / "maillog.1.gz"
    gz.write_bytes(gzip.compress(LOG.read_bytes()))
    out = relay("postfix-log", "import", gz, "-c", config, "--dry-run")
    assert out.returncode == 0 and "would list 2 addresses" in out.stderr
    out = relay("postfix-log", "import", "-", "-c", config, "--dry-run", stdin=LOG.read_text())
    assert out.returncode == 0 and "would list 2 addresses" in out.stderr


def test_progress_on_stderr(config):
    out = relay("postfix-log", "import", LOG, "-c", config, "--dry-run", "--progress")
    assert "100.0%" in out.stderr and "79 lines" in out.stderr


def test_errors_are_one_line(config, tmp_path):
    out = relay("postfix-log", "import", tmp_path / "nope.log", "-c", config)
    assert out.returncode == 2 and out.stderr == f"error: {tmp_path / 'nope.log'} does not exist\n"
    bad = tmp_path / "bad.yaml"
    bad.write_text("hostname: relay.test\npostfix_log: {}\n")
    out = relay("postfix-log", "import", LOG, "-c", bad)
    assert out.returncode == 2 and "postfix_log: name the log to follow" in out.stderr  # an error, as the module says (review24 F8)
    out = relay("postfix-log")
    assert out.returncode == 2 and "import" in out.stderr and out.stdout == ""  # a usage error, on stderr


def test_a_message_that_expires_is_a_failure_for_each_recipient_still_deferred(config, tmp_path):
    # qmgr's `status=expired, returned to sender` names no recipient: the recipients are those whose last
    # result was a deferral (the 421-4.7.28 of the real log), and the sending side gave up, so the
    # failure is `expired` with the provider's last words, and never lists the address.
    lines = LOG.read_text().splitlines()
    (deferral,) = [line for line in lines if "status=deferred" in line]
    queue_id = deferral.split("]: ", 1)[1].split(":", 1)[0]
    log = tmp_path / "expired.log"
    log.write_text("\n".join(lines) + "\n" + deferral.replace("11:37:19", "11:47:19") + "\n"
                   f"Dec  4 11:37:20 postfix-bench postfix-bench/qmgr[17123]: {queue_id}: from=<a@sender.test>, "
                   "status=expired, returned to sender\n"
                   f"Dec  4 11:37:20 postfix-bench postfix-bench/qmgr[17123]: {queue_id}: removed\n")
    out = relay("postfix-log", "import", log, "-c", config)
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    (gave_up,) = [e for e in events if e["kind"] == "rejected" and e["recipient"] == "ratelimit@gmail.test"]
    assert gave_up["classification"]["category"] == "expired"
    assert gave_up["classification"]["scope"] == "relay" and gave_up["reply"]["source"] == "mta-log"
    assert "message expired" in gave_up["reply"]["text"] and "421-4.7.28 Gmail has detected" in gave_up["reply"]["text"]
    assert gave_up["postfix"]["status"] == "expired" and gave_up["queue_id"] == queue_id
    assert "ratelimit@gmail.test" not in listed(config)


def _bounced_line(queue_id: str, rcpt: str, said: str, orig_to: str = "", stamp: str = "Dec  1 04:00:01") -> str:
    orig = f", orig_to=<{orig_to}>" if orig_to else ""
    return (f"{stamp} mx postfix/qmgr[1]: {queue_id}: from=<a@sender.test>, size=452, nrcpt=1 (queue active)\n"
            f"{stamp} mx postfix/smtp[2]: {queue_id}: to=<{rcpt}>{orig}, relay=none, delay=0.1, "
            f"delays=0/0/0.1/0, dsn=5.1.2, status=bounced ({said})\n"
            f"{stamp} mx postfix/qmgr[1]: {queue_id}: removed\n")


def _syslog_stamp(seconds_ago: float) -> str:
    """An RFC 3164 time stamp (local time, no year) `seconds_ago` before now: a line's own time is what
    the bounce list counts by (review12 F6), and a recent one keeps a listing unexpired."""
    t = datetime.datetime.now().astimezone() - datetime.timedelta(seconds=seconds_ago)
    return f"{t:%b} {t.day:2d} {t:%H:%M:%S}"


@pytest.mark.parametrize("said, orig_to, listed_domain", [
    # review-10 N1: dest.example's own server says another domain (a forward's target) is not found:
    # twice, it listed the whole of dest.example.
    ("host mx.dest.example[192.0.2.10] said: 550 5.1.2 <{local}@gone.example>: Recipient address rejected: "
     "Domain not found (in reply to RCPT TO command)", "", False),
    # review-10 N2: the log's orig_to (the address before the relay's own rewriting) at another domain
    # does not make a true NXDOMAIN of the recipient's domain someone else's.
    ("Host or domain name not found. Name service error for name=dest.example type=MX: Host not found",
     "info{n}@oldbrand.example", True),
])
def test_a_no_such_domain_lists_only_the_domain_it_is_about(tmp_path, said, orig_to, listed_domain):
    policies = tmp_path / "policies"
    policies.mkdir()
    shipped = (REPO / "policies" / "suppression.yaml").read_text()
    assert "seen_again_after: 1h" in shipped
    (policies / "suppression.yaml").write_text(shipped.replace("seen_again_after: 1h", "seen_again_after: 1s"))
    config = tmp_path / "relay.yaml"
    config.write_text(f"hostname: relay.test\npolicies: {policies}\nbounce_list: sqlite:///bounces.db\n"
                      "events: [{jsonl: events.jsonl}]\n")
    for n, local in enumerate(("alice", "bob"), 1):
        # The lines' own times a minute apart, past seen_again_after: a second sighting lists the domain.
        log = tmp_path / f"{n}.log"
        log.write_text(_bounced_line(f"5EE7920E61{n}", f"{local}@dest.example", said.format(local=local),
                                     orig_to.format(n=n), stamp=_syslog_stamp(180 - 60 * n)))
        out = relay("postfix-log", "import", log, "-c", config)
        assert out.returncode == 0, out.stderr
    assert ("@dest.example" in listed(config)) is listed_domain


def _local_line(queue_id: str, service: str, rcpt: str, relay_to: str, dsn: str, text: str, stamp: str) -> str:
    return (f"{stamp} mx postfix/qmgr[1]: {queue_id}: from=<a@sender.test>, size=452, nrcpt=1 (queue active)\n"
            f"{stamp} mx postfix/{service}[3]: {queue_id}: to=<{rcpt}>, relay={relay_to}, delay=0.1, "
            f"delays=0/0/0/0.1, dsn={dsn}, status=bounced ({text})\n"
            f"{stamp} mx postfix/qmgr[1]: {queue_id}: removed\n")


def test_a_delivery_program_that_fails_lists_nobody(config, tmp_path):
    # review-18 F1: pipe(8) and local(8) write "Command died with status N" and sys_exits.c's texts with
    # dsn 5.3.x when the program they run fails (a spam filter down, a delivery agent misconfigured);
    # enhanced-5.3 counted them as the recipient's, and three messages in an hour listed him for 30 days.
    failures = [('Command died with status 1: "/usr/bin/spamc"', "pipe", "spamassassin", "5.3.0"),
                ('Command died with signal 11: "/usr/lib/dovecot/deliver"', "local", "local", "5.3.0"),
                ("local configuration error", "pipe", "dovecot", "5.3.5")]
    lines = []
    for n, (text, service, relay_to, dsn) in enumerate(failures):
        for m in range(3):  # three messages each, a minute apart
            lines.append(_local_line(f"4F00000000{n}{m}", service, f"user{n}@example.org", relay_to, dsn, text,
                                     _syslog_stamp(600 - 60 * m)))
    # The guard: local(8)'s own "unknown user" (EX_NOUSER's 5.1.1) still says the user does not exist.
    lines.append(_local_line("4F0000000099", "local", "gone@mx.example.org", "local", "5.1.1", 'unknown user: "gone"',
                             _syslog_stamp(60)))
    log = tmp_path / "local.log"
    log.write_text("".join(lines))
    out = relay("postfix-log", "import", log, "-c", config)
    assert out.returncode == 0, out.stderr
    assert listed(config) == {"gone@mx.example.org"}
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    failed = [e for e in events if e["kind"] == "rejected" and e["recipient"].startswith("user")]
    assert len(failed) == 9
    assert {(e["classification"]["rule"], e["classification"]["scope"]) for e in failed} == {
        ("mta-delivery-program-failed", "relay")}


JOURNAL_REMOTE = Path("/lib/systemd/systemd-journal-remote")


def _journal_json(tmp_path: Path) -> Path:
    """The real log's lines stored in a real journal file (systemd-journal-remote, from the journal export
    format) and read back with `journalctl --file ... -o json`: what `journalctl -u postfix -o json` gives
    on a systemd host, the format the live follower reads."""
    import re
    import shutil

    if not JOURNAL_REMOTE.is_file() or shutil.which("journalctl") is None:
        pytest.skip("systemd-journal-remote and journalctl are needed to write and read a journal file")
    syslog = re.compile(r"^(\w{3} +\d+ [\d:]{8}) (\S+) ([^\[:]+)\[(\d+)\]: (.*)$")
    export = bytearray()
    for n, line in enumerate(LOG.read_text().splitlines()):
        m = syslog.match(line)
        assert m, line
        when = datetime.datetime.strptime(f"2026 {m[1]}", "%Y %b %d %H:%M:%S")
        usec = int(when.replace(tzinfo=datetime.timezone.utc).timestamp() * 1e6)
        export += (f"__REALTIME_TIMESTAMP={usec}\n__MONOTONIC_TIMESTAMP={n + 1}\n"
                   f"_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME={m[2]}\nSYSLOG_FACILITY=2\n"
                   f"SYSLOG_IDENTIFIER={m[3]}\nSYSLOG_PID={m[4]}\nMESSAGE={m[5]}\n\n").encode()
    journal = tmp_path / "postfix.journal"
    made = subprocess.run([str(JOURNAL_REMOTE), "-o", str(journal), "-"], input=bytes(export),
                          capture_output=True, timeout=60)
    assert made.returncode == 0, made.stderr
    out = subprocess.run(["journalctl", "--file", str(journal), "-o", "json"], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    path = tmp_path / "postfix.json"
    path.write_bytes(out.stdout)
    return path


def test_journalctl_json_is_read_as_the_follower_reads_it(config, tmp_path):
    # review26 F5: `journalctl -o json` output was read as "0 lines, ... no events; would list 0 addresses",
    # exit 0: a back-fill from the journal silently did nothing.
    records = _journal_json(tmp_path)
    assert records.read_text().startswith('{"')
    out = relay("postfix-log", "import", records, "-c", config)
    assert out.returncode == 0, out.stderr
    assert "79 lines" in out.stderr and "6 failures" in out.stderr and "listed 2 addresses" in out.stderr, out.stderr
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    (gone,) = [e for e in events if e["kind"] == "rejected" and e["recipient"] == "nosuchuser@gmail.test"]
    assert gone["reply"]["text"] == GMAIL_NO_SUCH_USER.replace("\r\n", "\n")
    assert gone["queue_id"] == "5454320E603" and gone["sender"] == "bounces+c42@sender.test"
    assert listed(config) == LISTED


def test_input_in_no_format_it_reads_is_an_error_not_an_empty_success(config, tmp_path):
    # journalctl -o json-pretty (one record over many lines), a CSV: nothing read as a log line.
    pretty = tmp_path / "pretty.json"
    pretty.write_text('{\n\t"MESSAGE" : "5454320E603: removed",\n\t"SYSLOG_IDENTIFIER" : "postfix/qmgr"\n}\n')
    out = relay("postfix-log", "import", pretty, "-c", config, "--dry-run")
    assert out.returncode == 2, out.stderr
    assert out.stderr == ("error: none of the 4 lines read is a syslog or maillog_file line or a journal record "
                          "(journalctl -o json): not a Postfix log this command can read\n")
    empty = tmp_path / "empty.log"
    empty.write_text("")
    out = relay("postfix-log", "import", empty, "-c", config, "--dry-run")
    assert out.returncode == 0 and "0 lines" in out.stderr  # an empty log is no error


# -- rotated files given newest first, as a shell's mail.log* gives them (review30 D3) ----------------

def test_rotated_files_given_newest_first_are_read_oldest_first(config, tmp_path):
    # `import mail.log*` is mail.log mail.log.1 ...: read in that order, the result in mail.log came
    # before its message's from= and message-id= in mail.log.1, and its event lost its sender, VERP
    # conversation_id and Message-ID.
    lines = LOG.read_text().splitlines(keepends=True)
    (tmp_path / "mail.log.1").write_text("".join(lines[:20]))
    (tmp_path / "mail.log.2.gz").write_bytes(gzip.compress(b""))  # an empty old file: no time stamp
    (tmp_path / "mail.log").write_text("".join(lines[20:]))
    out = relay("postfix-log", "import", tmp_path / "mail.log", tmp_path / "mail.log.1", tmp_path / "mail.log.2.gz",
                "-c", config, "--dry-run")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    (gone,) = [e for e in events if e["kind"] == "rejected" and e["recipient"] == "nosuchuser@gmail.test"]
    assert gone["sender"] == "bounces+c42@sender.test" and gone["conversation_id"] == "c42", gone
    assert gone["message_id"].startswith("<one."), gone
    assert "reading oldest first:" in out.stderr


def test_an_expiry_in_a_newer_file_than_its_deferrals_is_reported_whatever_the_order_given(config, tmp_path):
    # The expiry (qmgr, no recipient named) reports the recipients still deferred: read before the
    # deferral it was nothing, and the 5.4.7 `rejected` event, the application's word that the message
    # was given up, was lost with exit 0.
    (tmp_path / "exp.log.1").write_text(
        "Nov 25 10:00:01 mx postfix/cleanup[2]: C1C2C3D4E5: message-id=<c1@sender.test>\n"
        "Nov 25 10:00:01 mx postfix/qmgr[1]: C1C2C3D4E5: from=<bounces+c77@sender.test>, size=300, nrcpt=1 "
        "(queue active)\n"
        "Nov 25 10:00:02 mx postfix/smtp[3]: C1C2C3D4E5: to=<slow@example.org>, relay=mx[192.0.2.1]:25, delay=0.1, "
        "delays=0/0/0/0.1, dsn=4.7.0, status=deferred (host mx[192.0.2.1] said: 451 4.7.0 Try again later "
        "(in reply to RCPT TO command))\n")
    (tmp_path / "exp.log").write_text(
        "Nov 30 10:00:01 mx postfix/qmgr[1]: C1C2C3D4E5: from=<bounces+c77@sender.test>, status=expired, "
        "returned to sender\n"
        "Nov 30 10:00:01 mx postfix/qmgr[1]: C1C2C3D4E5: removed\n")
    out = relay("postfix-log", "import", tmp_path / "exp.log", tmp_path / "exp.log.1", "-c", config, "--dry-run")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    (gave_up,) = [e for e in events if e["kind"] == "rejected"]
    assert gave_up["recipient"] == "slow@example.org" and gave_up["reply"]["enhanced"] == "5.4.7", gave_up
    assert gave_up["conversation_id"] == "c77" and gave_up["message_id"] == "<c1@sender.test>"
