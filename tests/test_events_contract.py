"""DESIGN.md's event contract, read as someone outside the tests reads it: every refusal event carries
`upstream: {host, port}` and `classification`, and `bounce_list` "when the event changed or consulted the
list" (contract7). Through a running relay over loopback and the CLI as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jsonschema

from tests.support.smtp_client import RawSMTP

REPO = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((REPO / "relay" / "schema" / "event.schema.json").read_text())
DISABLED = "550 5.2.1 The email account that you tried to reach is disabled. - gsmtp"


def relay_cli(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "relay", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=120, input=stdin)


def rcpt_once(relay, rcpt):
    """One transaction that gets no further than the RCPT (refused) and ends with RSET."""
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        c.cmd("MAIL FROM:<app@sender.test>")
        reply = c.cmd(f"RCPT TO:<{rcpt}>")
        c.cmd("RSET")
        c.cmd("QUIT")
    return reply


def test_a_refusal_that_only_counts_says_counted_then_listed_then_suppressed(upstream, relay_factory):
    # 550 5.2.1 (mailbox disabled) lists after two failures (policies/suppression.yaml): the first only
    # counts. Before contract7 its event had no `bounce_list` at all, though it changed the list's counter.
    upstream.rcpt_replies["sleepy"] = DISABLED
    relay = relay_factory(upstream.port)
    assert rcpt_once(relay, "sleepy@gmail.test")[0] == 550
    (first,) = [e for e in relay.events(wait_for=1) if e["kind"] == "rejected"]
    jsonschema.validate(first, SCHEMA)
    assert first["classification"]["category"] == "mailbox_disabled"
    assert first["upstream"]["host"] == "127.0.0.1" and first["upstream"]["port"] == upstream.port
    assert first.get("bounce_list") == "counted", first
    assert relay_cli("bounces", "check", "sleepy@gmail.test", "-c", relay.config_path).returncode == 0  # not listed

    assert rcpt_once(relay, "sleepy@gmail.test")[0] == 550
    events = relay.events(wait_for=3)
    second = [e for e in events if e["kind"] == "rejected"][1]
    jsonschema.validate(second, SCHEMA)
    assert second["bounce_list"] == "listed"
    assert [e["recipient"] for e in events if e["kind"] == "bounce_listed"] == ["sleepy@gmail.test"]

    # Refused by the list itself: the event consulted it, and says which listing refused.
    code, text = rcpt_once(relay, "Sleepy@gmail.test")
    assert code == 550 and "bounce list" in text
    (suppressed,) = [e for e in relay.events(wait_for=4) if e["kind"] == "suppressed"]
    jsonschema.validate(suppressed, SCHEMA)
    assert suppressed["bounce_list"] == "listed" and suppressed["entry"]["address"] == "sleepy@gmail.test"


def test_a_refusal_that_never_lists_still_has_no_bounce_list(upstream, relay_factory):
    # The guard: `counted` is for refusals that touch the list, not every refusal (552 5.2.2 mailbox full:
    # list_after off).
    upstream.rcpt_replies["stuffed"] = "552 5.2.2 The email account that you tried to reach is over quota."
    relay = relay_factory(upstream.port)
    assert rcpt_once(relay, "stuffed@gmail.test")[0] == 552
    (event,) = [e for e in relay.events(wait_for=1) if e["kind"] == "rejected"]
    assert event["classification"]["category"] == "mailbox_full" and "bounce_list" not in event


POSTFIX = ("{stamp} mail postfix/smtp[4242]: {queue}: to=<{rcpt}>, relay=mx.hoster.test[192.0.2.25]:2525, "
           "delay=0.1, delays=0/0/0.05/0.05, dsn=5.2.1, status=bounced (host mx.hoster.test[192.0.2.25] said: "
           "550 5.2.1 <{rcpt}>: mailbox disabled (in reply to RCPT TO command))")


def _postfix_config(tmp_path: Path) -> Path:
    config = tmp_path / "relay.yaml"
    config.write_text(f"hostname: relay.test\nbounce_list: sqlite:///{tmp_path}/bounces.db\n"
                      f"events: [{{jsonl: {tmp_path}/events.jsonl}}]\n")
    return config


def _stamp(minutes_ago: int) -> str:
    at = datetime.now(timezone.utc).astimezone() - timedelta(minutes=minutes_ago)
    return f"{at:%b} {at.day:2d} {at:%H:%M:%S}"  # syslog: local time, no year


def test_postfix_log_import_counted_then_listed_with_upstream(tmp_path):
    config = _postfix_config(tmp_path)
    log = tmp_path / "mail.log"
    log.write_text("\n".join(POSTFIX.format(stamp=_stamp(3 - n), queue=f"ABCDEF{n}", rcpt="carol@shop.test")
                             for n in range(2)) + "\n")
    out = relay_cli("postfix-log", "import", log, "-c", config)
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    rejected = [e for e in events if e["kind"] == "rejected"]
    assert [e.get("bounce_list") for e in rejected] == ["counted", "listed"], rejected
    for event in rejected:
        jsonschema.validate(event, SCHEMA)
        # DESIGN.md: `upstream: {host, port}`: the host Postfix talked to (its relay=), as a live event's.
        assert event["upstream"] == {"host": "mx.hoster.test", "port": 2525, "ip": "192.0.2.25"}
        assert event["relay"] == {"host": "mx.hoster.test", "ip": "192.0.2.25", "port": 2525}  # as before
        assert event["reply"]["source"] == "mta-log"


def test_postfix_log_results_without_a_network_host_carry_no_upstream(tmp_path):
    # relay=none (no server was reached) or local delivery: no host and port to name, so no `upstream`
    # (the schema's upstream requires both).
    config = _postfix_config(tmp_path)
    log = tmp_path / "mail.log"
    log.write_text(f"{_stamp(2)} mail postfix/smtp[4242]: ABCDEF1: to=<dan@nowhere.test>, relay=none, delay=0.1, "
                   "delays=0/0/0.05/0, dsn=4.4.1, status=deferred (connect to mx.nowhere.test[192.0.2.9]:25: "
                   "Connection timed out)\n")
    out = relay_cli("postfix-log", "import", log, "-c", config)
    assert out.returncode == 0, out.stderr
    (event,) = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    jsonschema.validate(event, SCHEMA)
    assert event["kind"] == "deferred" and "upstream" not in event and event["relay"] == {"host": "none"}
