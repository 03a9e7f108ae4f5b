"""The shaper's decisions: strikes, decay, rate limits and warm-up caps, on a real SQLite store.
Times are given, never waited for."""

from __future__ import annotations

import datetime as dt

import pytest

from relay.decision import Reply
from relay.metrics import Metrics
from relay.shaping.destinations import destination_of
from relay.shaping.policy import load_shaping, shipped_shaping
from relay.shaping.shaper import Shaper, clock, decayed, struck
from relay.store import StoreError, open_store
from tests.support.dns_server import LoopbackDNS

GMAIL_4_7_28 = Reply.parse("421-4.7.28 Gmail has detected an unusual rate of mail originating from your SPF\r\n"
                           "421 4.7.28 domain [example.com 12]. - gsmtp")
TOO_MANY = Reply.parse("421 4.7.0 Too many concurrent SMTP connections from this IP")

POLICY = """
version: 1
destinations:
  google:
    name: gmail
    domains: [gmail.com]
    limits: {messages_per_minute: 10, messages_per_hour: 100}
    reactions: [gmail-unusual-rate, too-many-connections]
  microsoft: {domains: [outlook.com], reactions: [too-many-connections]}
reactions:
  - id: gmail-unusual-rate
    enhanced: "4.7.28"
    reason: unusual rate
    per_sender_domain: true
    hold: {for: 10m, max: 1h}
  - id: too-many-connections
    match: 'too many concurrent'
    reason: too many connections
    slow: {factor: 0.5, floor: 2}
    decay_after: 5m
warmup:
  plans:
    new: [{day: 1, per_day: 3}, {day: 2, per_day: 6}]
  senders:
    new.example: {plan: new, start: %s}
"""

NOW = 1_800_000_000.0  # a fixed moment (2027-01-15 08:00 UTC)


async def let_through(shaper, policy, destination, sender_domain, now) -> None:
    """As the step does: admitted at RCPT (None: no refusal), then counted at the next hop's 250."""
    refusal, place = await shaper.admit(policy, destination, sender_domain, now=now)
    assert refusal is None, refusal
    shaper.counted(place, now=now)


@pytest.fixture
def policy(tmp_path):
    path = tmp_path / "shaping.yaml"
    path.write_text(POLICY % dt.datetime.fromtimestamp(NOW, dt.timezone.utc).date().isoformat())
    return load_shaping(path)


@pytest.fixture
async def shaper(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/bounces.db")
    s = Shaper(store, Metrics())
    yield s
    await s.close()
    await store.close()


async def test_a_strike_holds_one_sender_domain_then_the_hold_ends(policy, shaper):
    google = policy.named("google")
    record = await shaper.strike(google, "example.com", google.reactions[0], GMAIL_4_7_28, now=NOW)
    assert record.key == "google/example.com" and record.until == NOW + 600
    refusal = await shaper.check(policy, google, "example.com", now=NOW + 1)
    assert refusal.cause == "shaping-held" and refusal.enhanced == "4.7.28"
    assert refusal.text.startswith("Held: gmail deferred mail from example.com for unusual rate at ")
    assert refusal.text.endswith("08:00 UTC; retry after 2027-01-15 08:10 UTC")
    assert refusal.detail["rule"] == "gmail-unusual-rate" and refusal.detail["strikes"] == 1
    assert await shaper.check(policy, google, "other.org", now=NOW + 1) is None
    assert await shaper.check(policy, google, "example.com", now=NOW + 601) is None
    assert shaper.metrics.counters[("relay_shaping_deferrals_total", (("destination", "google"), ("why", "held")))] == 1
    assert shaper.metrics.counters[("relay_shaping_strikes_total",
                                    (("destination", "google"), ("rule", "gmail-unusual-rate")))] == 1


async def test_a_push_back_during_the_hold_is_the_same_episode_and_a_later_one_holds_longer(policy, shaper):
    google = policy.named("google")
    reaction = google.reactions[0]
    await shaper.strike(google, "example.com", reaction, GMAIL_4_7_28, now=NOW)
    again = await shaper.strike(google, "example.com", reaction, GMAIL_4_7_28, now=NOW + 30)
    assert again.strikes == 1 and again.until == NOW + 600
    later = await shaper.strike(google, "example.com", reaction, GMAIL_4_7_28, now=NOW + 700)
    assert later.strikes == 2 and later.until == NOW + 700 + 1200


def test_decay_takes_a_strike_off_after_quiet_time_and_forgets_at_zero(policy):
    google = policy.named("google")
    r = struck(None, key="google/example.com", destination=google, sender_domain="example.com",
               reaction=google.reactions[0], reply=GMAIL_4_7_28, now=NOW, rate_now=None)
    r = struck(r, key=r.key, destination=google, sender_domain="example.com", reaction=google.reactions[0],
               reply=GMAIL_4_7_28, now=NOW + 700, rate_now=None)
    assert r.strikes == 2
    assert decayed(r, now=NOW + 1000, decay_after=600, limit_per_minute=None) is r  # still held
    assert decayed(r, now=NOW + 700 + 1200 + 1, decay_after=60_000, limit_per_minute=None) is r  # too soon
    one = decayed(r, now=NOW + 2000, decay_after=600, limit_per_minute=None)
    assert one.strikes == 1 and one.changed == NOW + 2000
    assert decayed(one, now=NOW + 2100, decay_after=600, limit_per_minute=None) is one
    assert decayed(one, now=NOW + 2600, decay_after=600, limit_per_minute=None) is None


async def test_slow_halves_the_rate_and_success_doubles_it_back(policy, shaper):
    google = policy.named("google")
    slow = google.reactions[1]
    record = await shaper.strike(google, "example.com", slow, TOO_MANY, now=NOW)
    assert record.key == "google" and record.rate == 5.0 and record.until is None  # 10 a minute, halved
    record = await shaper.strike(google, "example.com", slow, TOO_MANY, now=NOW + 1)
    assert record.rate == 2.5
    record = await shaper.strike(google, "example.com", slow, TOO_MANY, now=NOW + 2)
    assert record.rate == 2.0  # the floor
    await shaper.succeeded(policy, google, "example.com", now=NOW + 2 + 299)  # too soon: nothing changes
    assert (await shaper.store.shaping_records(["google"]))[0].rate == 2.0
    await shaper.succeeded(policy, google, "example.com", now=NOW + 2 + 300)
    [back] = await shaper.store.shaping_records(["google"])
    assert back.rate == 4.0 and back.strikes == 2


async def test_slowing_a_destination_without_a_limit_halves_what_it_was_getting(policy, shaper):
    microsoft = policy.named("microsoft")
    for _ in range(8):
        shaper.counted(shaper.take(microsoft, "example.com"), now=NOW)
    record = await shaper.strike(microsoft, "example.com", microsoft.reactions[0], TOO_MANY, now=NOW + 1)
    assert record.rate == 4.0


async def test_a_slowed_destination_defers_past_its_rate(policy, shaper):
    microsoft = policy.named("microsoft")
    await shaper.strike(microsoft, "example.com", microsoft.reactions[0], TOO_MANY, now=NOW)  # floor: 2 a minute
    start = NOW // 60 * 60 + 120
    await let_through(shaper, policy, microsoft, "example.com", start)
    await let_through(shaper, policy, microsoft, "example.com", start)
    refusal = await shaper.check(policy, microsoft, "example.com", now=start + 1)
    assert refusal.cause == "shaping-slowed"
    assert refusal.text.startswith("Slowed: microsoft takes 2 messages a minute from this relay now "
                                   "(slowed after too many connections to 2 messages a minute)")
    # The window slides: most of the previous minute still counts at its start, none of it at its end.
    assert await shaper.check(policy, microsoft, "example.com", now=start + 61) is not None
    assert await shaper.check(policy, microsoft, "example.com", now=start + 119) is None


async def test_the_limits_of_a_destination_hold_without_any_strike(policy, shaper):
    google = policy.named("google")
    start = NOW // 60 * 60
    for _ in range(10):
        await let_through(shaper, policy, google, "example.com", start)
    refusal = await shaper.check(policy, google, "example.com", now=start + 1)
    assert refusal.cause == "shaping-slowed" and refusal.detail["rule"] == "limits"
    assert "gmail takes 10 messages a minute" in refusal.text


async def test_counts_are_shared_through_the_store(policy, shaper, tmp_path):
    google = policy.named("google")
    start = NOW // 60 * 60
    other_store = open_store(f"sqlite:///{tmp_path}/bounces.db")
    other = Shaper(other_store)
    try:
        for _ in range(10):  # as the step does: judged, then counted once the provider took it
            await let_through(other, policy, google, "example.com", start)
        await other.flush(now=start)
        assert await shaper.check(policy, google, "example.com", now=start) is None  # not read yet
        await shaper.flush(now=start)  # the periodic read of everyone's counts
        assert (await shaper.check(policy, google, "example.com", now=start)).cause == "shaping-slowed"
    finally:
        await other.close()
        await other_store.close()


async def test_warmup_caps_a_new_sender_domain_per_destination_per_day(policy, shaper):
    google = policy.named("google")
    for _ in range(3):
        await let_through(shaper, policy, google, "new.example", NOW)
    refusal = await shaper.check(policy, google, "new.example", now=NOW)
    assert refusal.cause == "shaping-warmup" and refusal.detail["cap"] == 3
    assert refusal.text.startswith("Warm-up: new.example may send 3 messages a day to gmail on day 1 of plan new")
    assert await shaper.check(policy, google, "old.example", now=NOW) is None
    assert await shaper.check(policy, google, "new.example", now=NOW + 86400) is None  # day 2: 6


async def test_destinations_by_domain_by_chosen_mx_and_by_looked_up_mx(policy, tmp_path):
    shipped = shipped_shaping()
    assert (await destination_of(shipped, "GMail.com")).name == "google"
    assert (await destination_of(shipped, "bücher.example")).name == "xn--bcher-kva.example"  # ASCII in replies
    assert (await destination_of(shipped, "[192.0.2.1]")).name == "[192.0.2.1]"
    assert (await destination_of(shipped, "corp.example", mx_host="aspmx.l.google.com.")).name == "google"
    assert (await destination_of(shipped, "corp.example")).name == "corp.example"  # no lookup: mx_lookup off
    from dataclasses import replace
    from relay.config import Endpoint
    from relay.dns import Resolver

    dns = LoopbackDNS().start()
    try:
        dns.zone.add("corp.example", "MX", (10, "corp-example.mail.protection.outlook.com."))
        resolver = Resolver((Endpoint("127.0.0.1", dns.port),), timeout=2)
        looking = replace(shipped, mx_lookup=True)
        assert (await destination_of(looking, "corp.example", resolver=resolver)).name == "microsoft"
        assert (await destination_of(looking, "nomx.example", resolver=resolver)).name == "nomx.example"
    finally:
        dns.stop()


def test_clock_shows_seconds_for_short_spans_and_the_date_when_not_today():
    assert clock(NOW, 600).endswith("08:00 UTC") and clock(NOW, 600).startswith("2027-01-15 ")
    assert clock(NOW + 5, 10).endswith("08:00:05 UTC")


async def test_only_what_a_limit_looks_at_is_counted_in_the_store(policy, shaper):
    """Every recipient domain is a destination of its own: counting them all in the store would grow
    it with every domain ever mailed. One without limits is counted in memory only."""
    other = policy.for_domain("example.org")
    start = NOW // 60 * 60
    for _ in range(5):
        await let_through(shaper, policy, other, "example.com", start)
    assert shaper.last_minute("example.org", start + 1) == 5  # for the rate a slow-down would halve
    await shaper.flush(now=start)
    assert await shaper.store.shaping_counts(["example.org", "example.org/example.com"], "minute", 0) == {}


async def test_a_destination_nothing_happened_to_for_a_day_is_forgotten(policy, shaper):
    microsoft = policy.named("microsoft")
    await shaper.strike(microsoft, "example.com", microsoft.reactions[0], TOO_MANY, now=NOW)
    await shaper.flush(now=NOW + 3600)  # within the day: kept
    assert len(await shaper.store.shaping_records()) == 1
    await shaper.flush(now=NOW + 86400 + 7200)  # the next sweep, a day on
    assert await shaper.store.shaping_records() == []


async def test_a_recipient_holds_its_place_from_the_check_until_the_next_hop_answers(policy, shaper):
    """review32 #1, #2: a place is taken at the check (admit), so recipients whose RCPT the next hop is
    still answering count against the rate and the cap; it becomes a count at the 250, or is given back."""
    google = policy.named("google")  # 10 a minute; new.example: 3 a day
    start = NOW // 60 * 60
    places = []
    for _ in range(3):
        refusal, place = await shaper.admit(policy, google, "new.example", now=start)
        assert refusal is None
        places.append(place)
    refusal, place = await shaper.admit(policy, google, "new.example", now=start)
    assert place is None and refusal.cause == "shaping-warmup"  # three in flight fill the day's cap
    assert shaper.last_minute("google", start) == 3
    shaper.released(places[0])  # refused at RCPT: its place is free in both
    shaper.released(places[0])  # once only
    assert shaper.last_minute("google", start) == 2
    shaper.counted(places[1], now=start)  # the next hop's 250 to RCPT: an attempt, still in the cap
    shaper.released(places[1])  # RSET before the final dot: free in the cap, still an attempt
    assert shaper.last_minute("google", start) == 2
    shaper.counted(places[2], now=start)
    shaper.delivered(places[2], now=start)  # sent: one of the day's 3
    assert shaper.held_places() == ({}, {})
    assert shaper.today("google/new.example", start) == 1
    for _ in range(8):  # 10 a minute: 2 counted, 8 more in flight
        assert (await shaper.admit(policy, google, "example.com", now=start))[0] is None
    assert (await shaper.admit(policy, google, "example.com", now=start))[0].cause == "shaping-slowed"


async def test_a_flushs_batch_stays_counted_while_the_store_writes_it_and_when_the_read_fails(policy, shaper):
    """review32 #4: the batch a flush swapped out was neither pending nor in the totals while the store
    wrote it (SQLite waits up to 2 s for another process's lock)."""
    import asyncio

    google = policy.named("google")
    start = NOW // 60 * 60
    for _ in range(4):
        await let_through(shaper, policy, google, "example.com", start)
    store = shaper.store
    writing, go_on = asyncio.Event(), asyncio.Event()
    add_counts = store.shaping_add_counts

    async def slow_add(counts):
        writing.set()
        await go_on.wait()
        await add_counts(counts)

    store.shaping_add_counts = slow_add
    flush = asyncio.ensure_future(shaper.flush(now=start))
    await writing.wait()
    assert shaper.last_minute("google", start) == 4  # on its way to the store: still counted
    go_on.set()
    await flush
    assert shaper.last_minute("google", start) == 4  # in the totals now, and only there
    await let_through(shaper, policy, google, "example.com", start)
    reads = store.shaping_counts

    async def failing_read(*args):
        raise StoreError("the store went away")

    store.shaping_counts = failing_read
    with pytest.raises(StoreError):
        await shaper.flush(now=start)  # written, but the totals could not be read back
    assert shaper.last_minute("google", start) == 5
    store.shaping_counts = reads
    await shaper.flush(now=start)
    assert shaper.last_minute("google", start) == 5
