import time
from datetime import datetime, timezone

import pytest

from relay.decision import Verdict
from relay.pipeline import Pipeline, Session, Transaction
from relay.steps.bounce_list import BounceListStep, original_first_line
from relay.store import StoreError, open_store
from relay.store.base import BounceStore
from relay.suppression import SuppressionPolicy

POLICY = SuppressionPolicy.from_dict({"permanent": {"unknown_recipient": {"list_after": 1},
                                                    "other": {"list_after": 1}}})
GMAIL = ("550-5.1.1 The email account that you tried to reach does not exist. Please try\n"
         "550-5.1.1 double-checking the recipient's email address for typos or\n"
         "550 5.1.1 unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser")


@pytest.fixture
async def store(tmp_path):
    s = open_store(f"sqlite:///{tmp_path}/bounces.db")
    yield s
    await s.close()


def txn() -> Transaction:
    return Transaction(Session("s1", "127.0.0.1", 40000, trusted_network=True), "t1", "sender@example.org")


async def test_not_listed_continues(store):
    decision = await BounceListStep(store).on_rcpt(txn(), "someone@example.com")
    assert decision.verdict is Verdict.CONTINUE


async def test_listed_unknown_recipient_is_refused_with_550_5_1_1(store):
    await store.record_failure("gone@example.com", category="unknown_recipient", permanent=True,
                               reply_text=GMAIL, rule="gmail-no-such-user", policy=POLICY,
                               now=datetime(2026, 3, 4, 12, 0, tzinfo=timezone.utc))
    decision = await BounceListStep(store).on_rcpt(txn(), "<Gone@EXAMPLE.com>")
    assert decision.verdict is Verdict.REJECT and decision.kind == "suppressed"
    reply = decision.reply
    assert reply.code == 550 and reply.enhanced == "5.1.1" and reply.source == "relay"
    assert reply.lines[0] == ("5.1.1 <gone@example.com> is on this relay's bounce list since 2026-03-04 "
                              "(unknown_recipient)")
    assert reply.lines[1] == ("5.1.1 Original reply: 550 5.1.1 The email account that you tried to reach "
                              "does not exist. Please try")
    assert all(len(line) < 500 for line in reply.wire_lines())
    assert reply.wire().startswith("550-5.1.1 <gone@example.com>") and "\r\n550 5.1.1 Original" in reply.wire()
    entry = decision.detail["entry"]
    assert entry["address"] == "gone@example.com" and entry["reply"] == GMAIL and entry["first_seen"].startswith(
        "2026-03-04")


async def test_other_categories_are_refused_with_5_7_1_never_4xx(store):
    await store.record_failure("x@example.com", category="other", permanent=True, reply_text="554 5.4.7 gone",
                               rule="r", policy=POLICY)
    await store.add("op@example.com", note="customer asked")
    for rcpt in ("x@example.com", "op@example.com"):
        reply = (await BounceListStep(store).on_rcpt(txn(), rcpt)).reply
        assert (reply.code, reply.enhanced) == (550, "5.7.1")
    op = (await BounceListStep(store).on_rcpt(txn(), "op@example.com")).reply
    assert len(op.lines) == 1 and "(operator)" in op.lines[0]  # no original reply to quote


async def test_expired_entry_is_not_refused(store):
    policy = SuppressionPolicy.from_dict({"permanent": {"other": {"list_after": 1, "expire_after": "1h"}}})
    await store.record_failure("t@example.com", category="other", permanent=True, reply_text="550 no",
                               rule="r", policy=policy, now=time.time() - 7200)
    assert (await BounceListStep(store).on_rcpt(txn(), "t@example.com")).verdict is Verdict.CONTINUE


async def test_not_an_address_continues_to_the_upstream(store):
    assert (await BounceListStep(store).on_rcpt(txn(), "no-at-sign")).verdict is Verdict.CONTINUE


class BrokenStore(BounceStore):
    async def get(self, address):
        raise StoreError("cannot connect to bounce list postgresql://db/relay: connection refused")

    # The rest is never reached in these tests.
    iter_entries = count = purge = close = _transaction = _fetch = _count_failure = _write = _delete = \
        _clear_failures = held = _breaker_hit = _clear_breaker_hits = _held_count = _fetch_held = _hold = \
        _take_held = _recent_auto_entries = _first_failure = shaping_records = shaping_add_counts = shaping_forget = \
        shaping_counts = _fetch_shaping = _write_shaping = _delete_shaping = _take_shaping = None


async def test_a_store_error_is_not_a_silent_pass():
    step = BounceListStep(BrokenStore())
    with pytest.raises(StoreError):
        await step.on_rcpt(txn(), "a@example.com")
    decision = await Pipeline([step]).rcpt(txn(), "a@example.com")  # the pipeline turns it into 451 4.3.0
    assert decision.verdict is Verdict.DEFER and decision.reply.code == 451 and decision.reply.enhanced == "4.3.0"


async def test_a_cli_change_takes_effect_at_the_next_rcpt(store, tmp_path):
    step = BounceListStep(store)
    assert (await step.on_rcpt(txn(), "late@example.com")).verdict is Verdict.CONTINUE
    other = open_store(f"sqlite:///{tmp_path}/bounces.db")  # another process would do the same
    await other.add("late@example.com", note="n")
    await other.close()
    assert (await step.on_rcpt(txn(), "late@example.com")).verdict is Verdict.REJECT


@pytest.mark.parametrize("reply, first", [
    (GMAIL, "550 5.1.1 The email account that you tried to reach does not exist. Please try"),
    ("550 5.1.1 <u@x>: Recipient address rejected", "550 5.1.1 <u@x>: Recipient address rejected"),
    ("", ""),
    ("no code at all", "no code at all"),
    ("550 caf\u00e9 \x07bell", "550 caf? ?bell"),
    ("550 " + "x" * 400, "550 " + "x" * 193 + "..."),
])
def test_original_first_line(reply, first):
    assert original_first_line(reply) == first


@pytest.mark.parametrize("spelling", ["go\\ne@example.com", "<g\\one@EXAMPLE.com>", '"gone"@example.com',
                                      "gone@ex\\ample.com", '"go"ne@example.com'])
async def test_a_listed_address_in_an_mtas_equivalent_spelling_is_refused(store, spelling):
    # Postfix delivers <go\ne@example.com> to gone@example.com (an RFC 822 quoted-pair outside quotes);
    # it was let through as "not an address" (review26 F3).
    await store.add("gone@example.com", category="unknown_recipient", reply=GMAIL, rule="test")
    decision = await BounceListStep(store).on_rcpt(txn(), spelling)
    assert decision.verdict is Verdict.REJECT, spelling
    assert decision.reply.lines[0] == f"5.1.1 <gone@example.com> is on this relay's bounce list since " \
                                      f"{datetime.now(timezone.utc).date().isoformat()} (unknown_recipient)"


@pytest.mark.parametrize("rcpt, why", [
    ("gone\\@example.com", "no '@' between local part and domain"),
    ('go"ne@example.com', "unterminated quoted string"),
    ("gone(c)@example.com", "character '(' is not allowed in an unquoted local part"),
    ("a@b@", "character '@' is not allowed in an unquoted local part"),
])
async def test_an_address_that_cannot_be_read_is_refused_not_let_through(store, rcpt, why):
    decision = await BounceListStep(store).on_rcpt(txn(), rcpt)
    assert decision.verdict is Verdict.REJECT and decision.kind == "policy_rejected"
    assert (decision.reply.code, decision.reply.enhanced) == (553, "5.1.3")
    assert decision.reply.lines[0].startswith(f"5.1.3 Recipient address <{rcpt}> cannot be read, so this relay "
                                              f"cannot tell whether it is on its bounce list: "), decision.reply
    assert why in decision.reply.lines[0], decision.reply
    assert await store.count() == 0


@pytest.mark.parametrize("rcpt", ['""@example.com', "<" + "x" * 65 + "@example.com>", '"' + "y" * 70 + '"@example.com'])
async def test_an_address_read_whole_that_no_list_key_can_be_goes_on(store, rcpt):
    # RFC 5321 allows an empty quoted local part (4.1.2) and does not forbid a longer one (4.5.3.1); the
    # list never holds such a key, so nothing is to be refused.
    assert (await BounceListStep(store).on_rcpt(txn(), rcpt)).verdict is Verdict.CONTINUE


@pytest.mark.parametrize("rcpt", ["x@\u2603.com", "x@-dash.test", "go\\ne@bad_domain.test"])
async def test_an_address_whose_domain_is_no_domain_name_is_left_to_the_delivery(store, rcpt):
    # No key's domain can be it; MX mode's delivery step refuses it in its own words (relay:mx-bad-domain).
    assert (await BounceListStep(store).on_rcpt(txn(), rcpt)).verdict is Verdict.CONTINUE


async def test_the_refusal_of_an_unreadable_address_is_ascii():
    decision = await BounceListStep(None).on_rcpt(txn(), "j\u00f6rg(c)@example.com")
    assert decision.reply.code == 553 and decision.reply.text.isascii(), decision.reply
