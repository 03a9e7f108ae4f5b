"""relay/nearest.py, the nearest labelled reply, and how Policies.judge takes its word where the
rules end in a catch-all of their fallback table (docs/classification.md, "The nearest-reply
fallback"): never listing more than the fallback would."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from relay.decision import Reply
from relay.nearest import DATA_FILE, MAX_TEXT, SHIPPED, THRESHOLD, Neighbour, NearestReader, shipped_reader, words
from relay.policies import shipped_policies

ROOT = Path(__file__).resolve().parent.parent
RCPT = ("bob@example.com",)


def test_the_shipped_data_is_built_from_the_training_part_and_up_to_date():
    r = subprocess.run([sys.executable, "scripts/corpus/build_nearest.py", "--check"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    data = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    assert "heldout" not in DATA_FILE.read_text(encoding="utf-8")
    assert len(data["replies"]) == len(shipped_reader()) > 2000
    assert set(data["replies"][0]) == {"reply", "category", "scope", "permanent"}


def test_words_mask_addresses_hosts_numbers_and_codes():
    assert words("<bob@example.com>: Recipient 5.1.1 rejected by mx1.example.net [192.0.2.1] id 9f3a77 "
                 "see https://x.test/a") == ["addr", "recipient", "rejected", "by", "host", "host", "id", "see", "url"]
    assert words("OFR005_104 queue") == ["ofr", "queue"]


def test_a_labelled_reply_is_its_own_nearest_and_other_addresses_change_nothing():
    reader = NearestReader([("550 5.1.1 <a@example.com>: mailbox nonexistent", "unknown_recipient", "recipient", True),
                            ("421 too many connections from your host", "too_many_connections", "session", False)])
    found = reader.nearest(Reply.parse("550 5.1.1 <zed@other.example>: mailbox nonexistent"))
    assert (found.category, found.scope, found.permanent) == ("unknown_recipient", "recipient", True)
    assert found.similarity > 0.99
    assert reader.nearest(Reply.parse("250 ok")) is None  # nothing in common


HOSTILE = [
    "550 " + "a" * 2044,
    "550 " + "@" * 2044,
    "550 " + "a." * 1022,
    "550 " + "x1" * 1022,
    "550 " + "user unknown mailbox disabled blocked spam " * 48,
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_a_lookup_stays_cheap_on_a_long_hostile_reply(text):
    # The event loop runs it; bench/bench_classify.py --nearest measures the shipped cost (a few ms).
    reader = shipped_reader()
    reply = Reply.parse(text)
    started = time.perf_counter()
    for _ in range(5):
        reader.nearest(reply)
    assert (time.perf_counter() - started) / 5 < 0.05


def test_only_the_first_characters_are_read():
    reader = shipped_reader()
    head = "550 sorry, no mailbox here by that name "
    a = reader.nearest(Reply.parse(head + "x " * MAX_TEXT))
    b = reader.nearest(Reply.parse(head + "x " * MAX_TEXT + "spam blocked listed"))
    assert a == b


# --- through Policies.judge ---------------------------------------------------------------


class FakeReader:
    def __init__(self, category, scope, permanent=True, similarity=0.9):
        self.answer = Neighbour(similarity, category, scope, permanent, "a labelled reply")

    def nearest(self, reply):
        return self.answer


def judged(text, reader="shipped", stage="rcpt"):
    policies = shipped_policies()
    if reader != "shipped":
        policies = replace(policies, nearest=reader)
    return policies.judge(Reply.parse(text), stage=stage, recipients=RCPT)


# Not corpus texts: wordings of the same kind as training replies the rules do not read.
@pytest.mark.parametrize(
    "text, rules, reader",
    [
        # Paran's IP control (world7), reworded: a block of the sending IP, not the address.
        ("550 Transaction failed (SPAM_SUSPECT:IP_CONTROL)", ("other", "recipient", "count"),
         ("blocklisted", "session", "never")),
        # A 554 saying the service is down for now (world6's ESP), reworded.
        ("554 Transaction failed [Service temporarily unavailable, try again in a few minutes]",
         ("policy_rejected", "message", "never"), ("temporary_failure", "session", "never")),
        # An address restricted by its owner (world4), reworded: still only counted.
        ("553 mailbox bob@example.com is restricted by its owner", ("other", "recipient", "count"),
         ("mailbox_disabled", "recipient", "count")),
    ],
)
def test_a_catch_all_verdict_takes_the_nearest_replys_category(text, rules, reader):
    alone = judged(text, reader=None)
    assert (alone.classification.category, alone.scope, alone.bounce_list) == rules
    got = judged(text)
    assert (got.classification.category, got.scope, got.bounce_list) == reader
    assert got.classification.rule == f"nearest:{alone.classification.rule}"
    assert got.classification.permanent is alone.classification.permanent
    assert got.classification.meaning != alone.classification.meaning and got.classification.advice


def test_the_neighbour_never_lists_where_the_fallback_does_not():
    # code-550 counts "550 go away"; a neighbour saying "no such user" would list it at once.
    got = judged("550 go away", FakeReader("unknown_recipient", "recipient"))
    assert (got.classification.category, got.bounce_list, got.classification.rule) == ("other", "count", "code-550")


def test_the_neighbour_never_undoes_a_listing_of_the_fallback():
    # code-551 ("user not local") lists; a neighbour reading a policy refusal does not stop it.
    got = judged("551 go elsewhere", FakeReader("policy_rejected", "message"))
    assert (got.classification.category, got.bounce_list) == ("unknown_recipient", "list")


def test_the_neighbour_alone_never_makes_a_refusal_about_the_recipient():
    # The default (no code) reads `other`; a neighbour labelled about the recipient keeps the
    # fallback's scope, so a text without a reply code stays off every address.
    text = "your message went nowhere today"
    alone = judged(text, reader=None)
    got = judged(text, FakeReader("mailbox_full", "recipient", permanent=False))
    assert got.classification.category == "mailbox_full"
    assert got.scope == alone.scope and got.bounce_list == "never"
    message = judged("550 go away", FakeReader("spam_content", "recipient"), stage="data")
    assert message.scope == "message" and message.bounce_list == "never"


def test_the_neighbour_never_makes_a_hard_bounce_the_fallback_did_not_see():
    # routing_dns counts like `other`, but it is a hard bounce (the domain does not exist).
    got = judged("550 go away", FakeReader("routing_dns", "recipient"))
    assert (got.classification.category, got.hard) == ("other", False)


def test_a_neighbour_of_the_other_kind_or_too_far_is_not_taken():
    assert judged("550 go away", FakeReader("temporary_failure", "session", permanent=False)).classification.rule \
        == "code-550"
    far = FakeReader("blocklisted", "session", similarity=THRESHOLD - 0.01)
    assert judged("550 go away", far).classification.rule == "code-550"
    assert judged("550 go away", FakeReader("blocklisted", "session", similarity=THRESHOLD)).classification.rule \
        == "nearest:code-550"


@pytest.mark.parametrize("text, rule", [
    ("550 5.1.1 go away", "enhanced-5.1.1"),   # an enhanced code names the cause
    ("452 go away", "code-452"),               # a deferral, whatever the cause
    ("501 go away", "code-50x"),               # RFC 5321: a syntax error of the command
    ("535 go away", "code-535"),               # RFC 4954: authentication failed
    ("552 go away", "code-552"),               # RFC 5321: storage exceeded
])
def test_a_fallback_entry_that_names_a_cause_is_not_overruled(text, rule):
    reader = FakeReader("blocklisted", "session", permanent=text[0] == "5")
    assert judged(text, reader).classification.rule == rule


def test_a_rule_match_is_never_overruled():
    got = judged("550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown",
                 FakeReader("blocklisted", "session"))
    assert (got.classification.category, got.bounce_list) == ("unknown_recipient", "list")


def test_the_config_key_turns_it_off(tmp_path):
    from relay.config import load_settings
    from relay.policies import load_policies

    base = "hostname: relay.example.com\n"
    (tmp_path / "on.yaml").write_text(base)
    (tmp_path / "off.yaml").write_text(base + "nearest_fallback: false\n")
    (tmp_path / "bad.yaml").write_text(base + "nearest_fallback: maybe\n")
    assert load_policies(load_settings(tmp_path / "on.yaml")).nearest is SHIPPED
    assert load_policies(load_settings(tmp_path / "off.yaml")).nearest is None
    from relay.errors import ConfigError

    with pytest.raises(ConfigError, match="nearest_fallback"):
        load_settings(tmp_path / "bad.yaml")


def test_the_threshold_is_the_documented_one():
    assert THRESHOLD == 0.3
    assert "0.3" in (ROOT / "docs" / "classification.md").read_text(encoding="utf-8")


# --- through a running relay ----------------------------------------------------------------

PARAN_REWORDED = "550 Transaction failed (SPAM_SUSPECT:IP_CONTROL)"


def _refusal_events(relay, upstream, local, n):
    from tests.support.smtp_client import RawSMTP, send_message

    upstream.rcpt_replies[local] = PARAN_REWORDED
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        send_message(c, "app@sender.test", [f"{local}@example.com"],
                     b"From: a@sender.test\r\nTo: x@example.com\r\nSubject: hi\r\n\r\nHi.\r\n")
        c.cmd("QUIT")
    return relay.events(wait_for=n)


def test_a_running_relay_reads_an_unknown_wording_by_its_nearest_reply(relay, upstream):
    # An IP block in a wording no rule reads: the 550 fallback counted the recipient; the nearest
    # real reply says the sending IP is blocked, about the session, so no address is touched.
    # The session's refusal also warns the operator (the sending IP is blocked).
    warning, event = _refusal_events(relay, upstream, "paran", 2)
    assert (warning["kind"], event["kind"]) == ("warning", "rejected")
    for e in (warning, event):
        c = e["classification"]
        assert (c["category"], c["scope"], c["rule"]) == ("blocklisted", "session", "nearest:code-550")
    assert "bounce_list" not in event


def test_a_running_relay_with_nearest_fallback_off_keeps_the_fallback(upstream, relay_factory):
    relay = relay_factory(upstream.port, nearest_fallback=False)
    (event,) = _refusal_events(relay, upstream, "paran", 1)
    assert event["kind"] == "rejected"
    c = event["classification"]
    assert (c["category"], c["scope"], c["rule"]) == ("other", "recipient", "code-550")


def test_the_reader_is_built_at_its_first_lookup_or_when_a_relay_prepares_to_serve(tmp_path):
    # ~0.9 s of CPU: check-config and a `dsn parse` that no fallback reached never pay it; a relay
    # builds it before it listens (RelayServer, the workers' parent), never at a lookup on its loop.
    (tmp_path / "relay.yaml").write_text("hostname: relay.example.com\n")
    script = f"""
import sys
from relay.config import load_settings
from relay.decision import Reply
from relay.nearest import shipped_reader
from relay.policies import load_policies
policies = load_policies(load_settings({str(tmp_path / "relay.yaml")!r}))
built = [shipped_reader.cache_info().currsize]
policies.judge(Reply.parse("550 5.1.1 <a@example.com>: Recipient address rejected: User unknown"), "rcpt", ["a@example.com"])
built.append(shipped_reader.cache_info().currsize)  # a rule read it: no lookup
policies.prepare()
built.append(shipped_reader.cache_info().currsize)
print(built)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.stdout.strip() == "[0, 0, 1]", done.stderr
