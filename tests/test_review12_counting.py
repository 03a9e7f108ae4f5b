"""review12 F3, F6, F7, F11: what counts towards listing is one failure per message, at the time it
happened, recorded once; a bounce is told to the application once.

- F3: a bounce answered 451 because the bounce list was busy was recorded in the background AND again
  at the reporting MTA's retry: one "count only" refusal listed, and two `bounced` events.
- F11: retries of one message (Postfix soft_bounce, the same DSN delivered twice, a client MTA's retry
  of a message refused at DATA) counted as repeated refusals; a second sighting of the same message
  was a domain's confirmation.
- F6: `relay postfix-log import` judged windows and expiry at the import's time, not the line's.
"""

from __future__ import annotations

import datetime
import json
import sqlite3
import time

from tests.support.smtp_client import RawSMTP, send_message
from tests.test_bounces_in import dsn_for, mail_bounce, rcpt_reply, relay_one, start_verp_relay
from tests.test_postfix_log_cli import REPO, listed, relay

AT_DATA = "550 5.1.1 <alice@dest.example>... User unknown (in reply to end of DATA command)"


# -- F3: a bounce deferred because the list was busy is recorded once ----------------------------------

def test_a_bounce_deferred_while_the_list_is_busy_is_recorded_once_at_the_retry(tmp_path, upstream, relay_factory):
    relay_ = start_verp_relay(tmp_path, upstream, relay_factory)
    return_path = relay_one(relay_, upstream)
    message = dsn_for(return_path, diagnostic=AT_DATA)  # an unconfirmed claim: lists at a second refusal
    db = sqlite3.connect(tmp_path / "bounces.db", isolation_level=None, check_same_thread=False)
    db.execute("BEGIN IMMEDIATE")  # another process (relay bounces import, another relay) holds the lock
    try:
        first = mail_bounce(relay_, return_path, message, timeout=30)[-1]
    finally:
        db.execute("COMMIT")
        db.close()
    assert first[0] == 451 and first[1].startswith("451 4.3.0 "), first
    time.sleep(2.5)  # the old code's background record ran 1 s after the lock was free
    assert mail_bounce(relay_, return_path, message)[-1] == (250, "250 2.0.0 Recorded 1 failure(s)")
    events = relay_.events(wait_for=1, timeout=3)
    # Once: the retry's. Before: a `bounced` event from the background record, a `deferred` one for the
    # intake's own 451 (F7), a second `bounced` and a `bounce_listed` with count 2 from one refusal.
    assert [e["kind"] for e in events] == ["bounced"], events
    assert events[0].get("bounce_list") == "counted"
    assert rcpt_reply(relay_) == 250  # not listed


# -- F11: one message is one count ---------------------------------------------------------------------

def test_the_same_bounce_delivered_twice_counts_once_and_another_message_lists(tmp_path, upstream, relay_factory):
    relay_ = start_verp_relay(tmp_path, upstream, relay_factory)
    return_path = relay_one(relay_, upstream)
    message = dsn_for(return_path, diagnostic=AT_DATA)
    for _ in range(2):  # the reporting MTA sent it again (its own retry, a lost 250)
        assert mail_bounce(relay_, return_path, message)[-1][0] == 250
    assert [e["kind"] for e in relay_.events(wait_for=2)] == ["bounced", "bounced"]
    assert rcpt_reply(relay_) == 250  # one message refused once: not listed
    other = relay_one(relay_, upstream, nth=2)  # another message, refused the same way
    mail_bounce(relay_, other, dsn_for(other, diagnostic=AT_DATA))
    events = relay_.events(wait_for=4)
    assert [e["kind"] for e in events[2:]] == ["bounced", "bounce_listed"]
    assert events[3]["entry"]["count"] == 2
    assert rcpt_reply(relay_) == 550


def test_a_client_mtas_retry_of_a_message_refused_at_data_counts_once(relay_factory, upstream):
    # The live path: a client MTA behind the relay retries the message its own soft_bounce kept (or a
    # 4xx, then a 5xx): the same Message-ID is one message, however many transactions carry it.
    upstream.data_replies["bob"] = "550 5.1.1 <bob@dest.example>: Recipient address rejected: User unknown"
    relay_ = relay_factory(upstream.port)

    def send(message_id: str) -> int:
        with RawSMTP(relay_.host, relay_.port) as c:
            c.cmd("EHLO client.test")
            replies = send_message(c, "noreply@example.com", ["bob@dest.example"],
                                   f"From: noreply@example.com\r\nTo: bob@dest.example\r\nSubject: hi\r\n"
                                   f"Message-ID: <{message_id}>\r\n\r\nHello\r\n".encode())
        return replies[-1][0]

    def bob() -> int:
        with RawSMTP(relay_.host, relay_.port) as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<noreply@example.com>")
            return c.cmd("RCPT TO:<bob@dest.example>")[0]

    assert send("m-1@example.com") == 550
    assert send("m-1@example.com") == 550  # the same message, retried
    assert bob() == 250  # an unconfirmed claim (at DATA) of one message: not listed
    assert send("m-2@example.com") == 550
    assert bob() == 550  # a second message refused the same way lists


def _stamp(t: datetime.datetime) -> str:
    """An RFC 3164 time stamp (local time, no year), as syslog writes Postfix's lines."""
    t = t.astimezone()
    return f"{t:%b} {t.day:2d} {t:%H:%M:%S}"


def _line(t: datetime.datetime, queue_id: str, rcpt: str, said: str, status: str = "bounced") -> str:
    return (f"{_stamp(t)} mx postfix/smtp[101]: {queue_id}: to=<{rcpt}>, relay=mx.dest.example[192.0.2.1]:25, "
            f"delay=1, delays=0/0/0/1, dsn=5.1.1, status={status} (host mx.dest.example[192.0.2.1] said: {said})\n")


def _config(tmp_path, seen_again_after: str = "1h"):
    policies = tmp_path / "policies"
    policies.mkdir(exist_ok=True)
    shipped = (REPO / "policies" / "suppression.yaml").read_text()
    assert "seen_again_after: 1h" in shipped
    (policies / "suppression.yaml").write_text(shipped.replace("seen_again_after: 1h",
                                                               f"seen_again_after: {seen_again_after}"))
    config = tmp_path / "relay.yaml"
    config.write_text(f"hostname: relay.test\npolicies: {policies}\nbounce_list: sqlite:///{tmp_path}/bounces.db\n"
                      f"events: [{{jsonl: {tmp_path}/events.jsonl}}]\n")
    return config


def _import(tmp_path, config, lines: list[str], name: str = "mail.log") -> str:
    log = tmp_path / name
    log.write_text("".join(lines))
    out = relay("postfix-log", "import", log, "-c", config)
    assert out.returncode == 0, out.stderr
    return out.stdout + out.stderr


UNKNOWN_AT_DATA = "550 5.1.1 <bob@dest.example>: User unknown (in reply to end of DATA command)"


def test_postfix_soft_bounce_retries_of_one_message_count_once(tmp_path):
    # soft_bounce = yes: Postfix keeps the 5xx in the queue and retries the same queue file.
    config = _config(tmp_path)
    now = datetime.datetime.now(datetime.timezone.utc)
    _import(tmp_path, config, [_line(now - datetime.timedelta(minutes=m), "4F1A2B3C4D", "bob@dest.example",
                                     UNKNOWN_AT_DATA, "deferred") for m in (30, 25, 20)])
    assert "bob@dest.example" not in listed(config)
    # Another message (another queue file) refused the same way is the second refusal.
    _import(tmp_path, config, [_line(now - datetime.timedelta(minutes=10), "5A1B2C3D4E", "bob@dest.example",
                                     UNKNOWN_AT_DATA)], "more.log")
    assert "bob@dest.example" in listed(config)


NXDOMAIN = ("Host or domain name not found. Name service error for name=dest.example type=MX: Host not found")


def _nx_line(t: datetime.datetime, queue_id: str, rcpt: str, status: str = "bounced") -> str:
    return (f"{_stamp(t)} mx postfix/smtp[101]: {queue_id}: to=<{rcpt}>, relay=none, delay=1, "
            f"delays=0/0/0/1, dsn=5.4.4, status={status} ({NXDOMAIN})\n")


def test_a_second_sighting_of_the_same_message_is_no_confirmation_that_a_domain_is_gone(tmp_path):
    config = _config(tmp_path)  # seen again at least an hour later lists the domain
    now = datetime.datetime.now(datetime.timezone.utc)
    # One message, deferred (soft_bounce) and then bounced two hours later: one sighting.
    _import(tmp_path, config, [_nx_line(now - datetime.timedelta(hours=3), "6B1A2B3C4D", "bob@dest.example", "deferred"),
                               _nx_line(now - datetime.timedelta(hours=1), "6B1A2B3C4D", "bob@dest.example")])
    assert "@dest.example" not in listed(config)
    # Another message, two hours after the first sighting: the domain is seen again.
    _import(tmp_path, config, [_nx_line(now - datetime.timedelta(minutes=50), "7C1A2B3C4D", "carol@dest.example")],
            "more.log")
    assert "@dest.example" in listed(config)


# -- F6: a log line counts at its own time ------------------------------------------------------------

VAGUE = "550 Rejected (in reply to RCPT TO command)"  # `other`: listed after 3 within 7 days


def test_import_counts_each_line_at_its_own_time(tmp_path):
    config = _config(tmp_path)
    now = datetime.datetime.now(datetime.timezone.utc)
    # Three refusals of bob on three days 10 days apart: never three within 7 days.
    _import(tmp_path, config, [_line(now - datetime.timedelta(days=d), f"AAA{d:07d}", "bob@dest.example", VAGUE)
                               for d in (22, 12, 2)])
    assert "bob@dest.example" not in listed(config)
    # Three within two days: listed, and the listing's 30 days run from the third line, not the import.
    third = now - datetime.timedelta(days=3)
    _import(tmp_path, config, [_line(third - datetime.timedelta(days=d), f"BBB{d:07d}", "carol@dest.example", VAGUE)
                               for d in (2, 1, 0)], "carol.log")
    out = relay("bounces", "list", "--json", "-c", config)
    [entry] = [e for e in json.loads(out.stdout) if e["address"] == "carol@dest.example"]
    expires = datetime.datetime.fromisoformat(entry["expires_at"].replace("Z", "+00:00"))
    assert abs((expires - (third + datetime.timedelta(days=30))).total_seconds()) < 5, entry


def test_an_old_logs_listing_that_has_expired_since_lists_nothing(tmp_path):
    config = _config(tmp_path)
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=40)
    _import(tmp_path, config, [_line(old + datetime.timedelta(hours=h), f"CCC{h:07d}", "dave@dest.example", VAGUE)
                               for h in (0, 1, 2)])
    assert "dave@dest.example" not in listed(config)  # listed for 30 days from 40 days ago: over
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in events] == ["rejected"] * 3  # and nobody is told of a listing
