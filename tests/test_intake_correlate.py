"""Correlation by queue id: each delivery result carries its message's sender and Message-ID."""

from __future__ import annotations

from relay.intake.correlate import DeliveryResult, ExpiredResult, QueueTracker
from relay.intake.postfix_log import parse_line

# A message's life as Postfix 3.7 logs it (the first lines of tests/data/postfix-log-lines.yaml's
# last entries, from this machine's Postfix), with an unrelated queue id in between.
LIFE = """\
Nov 29 11:24:41 pb postfix/smtpd[14292]: A57A320C3C7: client=localhost[127.0.0.1]
Nov 29 11:24:41 pb postfix/cleanup[14295]: A57A320C3C7: message-id=<m1@example.com>
Nov 29 11:24:41 pb postfix/qmgr[14290]: A57A320C3C7: from=<bounces+c42@example.com>, size=340, nrcpt=2 (queue active)
Nov 29 11:24:41 pb postfix/cleanup[14295]: B12320C3C8: message-id=<other@example.com>
Nov 29 11:24:41 pb postfix/smtp[14297]: A57A320C3C7: to=<nosuchuser@gmail.test>, relay=mx[192.0.2.1]:25, delay=0.04, delays=0/0.02/0/0.01, dsn=5.1.1, status=bounced (host mx[192.0.2.1] said: 550 5.1.1 no such user (in reply to RCPT TO command))
Nov 29 11:24:41 pb postfix/smtp[14297]: A57A320C3C7: to=<ok@gmail.test>, relay=mx[192.0.2.1]:25, delay=0.04, delays=0/0.02/0/0.01, dsn=2.0.0, status=sent (250 2.0.0 OK)
Nov 29 11:24:41 pb postfix/qmgr[14290]: A57A320C3C7: removed
"""


def feed(tracker, text):
    return [r for r in (tracker.feed(parse_line(raw)) for raw in text.splitlines()) if r is not None]


def test_results_carry_sender_message_id_and_size():
    tracker = QueueTracker()
    bounced, sent = feed(tracker, LIFE)
    assert isinstance(bounced, DeliveryResult)
    assert (bounced.sender, bounced.message_id, bounced.size, bounced.queue_id) == \
        ("bounces+c42@example.com", "<m1@example.com>", 340, "A57A320C3C7")
    assert bounced.delivery.recipient == "nosuchuser@gmail.test" and sent.delivery.status == "sent"
    assert len(tracker) == 1  # A57A320C3C7 removed; B12320C3C8 still waits for its lines


def test_a_result_whose_earlier_lines_were_not_seen_has_no_sender():
    tracker = QueueTracker()
    (result,) = feed(tracker, LIFE.splitlines()[4])
    assert result.sender is None and result.message_id is None


def test_memory_is_bounded_by_count():
    tracker = QueueTracker(max_entries=100)
    lines = "\n".join(f"Nov 29 11:24:41 pb postfix/cleanup[1]: {i:010X}: message-id=<{i}@x>" for i in range(1000))
    feed(tracker, lines)
    assert len(tracker) == 100 and tracker.forgotten == 900
    # the newest are kept
    (r,) = feed(tracker, f"Nov 29 11:24:42 pb postfix/smtp[2]: {999:010X}: to=<a@b.example>, relay=none, delay=1, "
                         f"delays=1/0/0/0, dsn=4.4.1, status=deferred (connect to b.example[192.0.2.1]:25: Connection refused)")
    assert r.message_id == "<999@x>"


def test_memory_is_bounded_by_age_in_log_time():
    tracker = QueueTracker(max_age=3600)
    feed(tracker, "Nov 29 08:00:00 pb postfix/cleanup[1]: AAAAAAAAA1: message-id=<old@x>\n"
                  "Nov 29 11:00:00 pb postfix/cleanup[1]: AAAAAAAAA2: message-id=<new@x>")
    assert len(tracker) == 1 and tracker.forgotten == 1


def test_expiry_is_a_result():
    tracker = QueueTracker()
    (r,) = feed(tracker, "Nov 29 11:24:41 pb postfix/cleanup[1]: ABCDEF1234: message-id=<e@x>\n"
                         "Nov 29 11:24:41 pb postfix/qmgr[1]: ABCDEF1234: from=<s@x>, status=expired, returned to sender")
    assert isinstance(r, ExpiredResult) and r.message_id == "<e@x>" and r.expired.sender == "s@x"


def test_lines_of_other_programs_are_ignored():
    tracker = QueueTracker()
    assert feed(tracker, "Nov 29 11:24:41 pb opendkim[195]: 407032C4FF6A: DKIM-Signature field added (s=mail, d=x)") == []
    assert len(tracker) == 0


def test_the_same_queue_id_on_two_hosts_or_instances_are_two_messages():
    tracker = QueueTracker()
    results = feed(tracker, """\
Nov 29 11:24:41 mx1 postfix/qmgr[1]: ABCDEF1234: from=<one@x>, size=1, nrcpt=1 (queue active)
Nov 29 11:24:41 mx2 postfix/qmgr[1]: ABCDEF1234: from=<two@x>, size=1, nrcpt=1 (queue active)
Nov 29 11:24:41 mx1 postfix-out/qmgr[1]: ABCDEF1234: from=<three@x>, size=1, nrcpt=1 (queue active)
Nov 29 11:24:42 mx2 postfix/relay[2]: ABCDEF1234: to=<a@b.example>, relay=none, delay=1, delays=1/0/0/0, dsn=4.4.1, status=deferred (connect to b.example[192.0.2.1]:25: Connection refused)
Nov 29 11:24:42 mx1 postfix-out/smtp[2]: ABCDEF1234: to=<a@b.example>, relay=none, delay=1, delays=1/0/0/0, dsn=4.4.1, status=deferred (connect to b.example[192.0.2.1]:25: Connection refused)
Nov 29 11:24:42 mx1 postfix/smtp[2]: ABCDEF1234: to=<a@b.example>, relay=none, delay=1, delays=1/0/0/0, dsn=4.4.1, status=deferred (connect to b.example[192.0.2.1]:25: Connection refused)""")
    assert [r.sender for r in results] == ["two@x", "three@x", "one@x"]


def test_expiry_names_the_recipients_still_deferred():
    tracker = QueueTracker()
    results = feed(tracker, "Nov 29 11:24:41 pb postfix/qmgr[1]: ABCDEF1234: from=<s@x>, size=1, nrcpt=2 (queue active)\n"
                   "Nov 29 11:24:42 pb postfix/smtp[2]: ABCDEF1234: to=<a@y>, relay=none, delay=1, delays=1/0/0/0, "
                   "dsn=4.4.1, status=deferred (connect to y[192.0.2.1]:25: Connection timed out)\n"
                   "Nov 29 11:24:42 pb postfix/smtp[2]: ABCDEF1234: to=<b@y>, relay=none, delay=1, delays=1/0/0/0, "
                   "dsn=4.4.1, status=deferred (connect to y[192.0.2.1]:25: Connection timed out)\n"
                   "Nov 30 11:24:42 pb postfix/smtp[2]: ABCDEF1234: to=<b@y>, relay=y[192.0.2.1]:25, delay=9, "
                   "delays=1/0/0/0, dsn=2.0.0, status=sent (250 ok)\n"
                   "Dec  4 11:24:41 pb postfix/qmgr[1]: ABCDEF1234: from=<s@x>, status=expired, returned to sender")
    expired = results[-1]
    assert isinstance(expired, ExpiredResult)
    assert [r.delivery.recipient for r in expired.pending] == ["a@y"]
