"""The shaping state of one relay process: holds and slow-downs (in the store, shared by every
process and relay using it), and the message counts behind rate limits and warm-up caps.

A reaction's strike and a success's decay are read-modify-write transactions in the store
(`BounceStore.shaping_update`) with the pure functions `struck()` and `decayed()` below, so two
processes that see the same push-back at once make one hold, not two.

Counts: each process counts the recipients it lets through in memory and, for the keys a limit
looks at (a destination with a rate, a slowed one, a warm-up sender's), adds them to the store
once a second (`FLUSH_EVERY`), then reads back everyone's totals; a limit is judged on those
totals plus what this process counted since (a batch on its way to the store included, until the
totals read after it are in). A write per message would put every RCPT behind the store's write
lock; the price is that processes together may overshoot a limit by what they let through in one
flush interval.

Within one process a limit is exact: a recipient the check lets through takes its place at once
(`admit` returns a `Place`, with no wait between the check and the taking), so that sessions whose
RCPT the next hop is still answering count against the limit too (review32 #1, #2: eight sessions
at once all passed a limit of two, since each was counted only at the next hop's 250). The place
becomes a count at that 250 (`counted`) or is given back (`released`) on any other outcome.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from ..decision import Reply
from ..events import bounded_text
from ..store.base import SHAPING_PERIODS, ShapingRecord, StoreError
from .policy import Destination, Reaction, ShapingPolicy

log = logging.getLogger("relay.shaping")

FLUSH_EVERY = 1.0  # seconds between adding this process's counts to the store
FORGET_EVERY = 3600.0  # seconds between sweeps of records nothing changed for FORGET_AFTER
FORGET_AFTER = 86400.0  # a destination with no news for a day keeps no memory of old strikes
MINUTE = SHAPING_PERIODS["minute"]
DAY = SHAPING_PERIODS["day"]


def hold_key(destination: str, sender_domain: str) -> str:
    return f"{destination}/{sender_domain}" if sender_domain else destination


class Place:
    """One recipient's place in its destination's rate limits and its sender's warm-up cap, from the
    check at RCPT (Shaper.admit) until the next hop's answers settle it. `state`: "rcpt" while its RCPT
    is not answered yet (in flight: the rate limits and the cap both count it), "sent" once the next
    hop took the RCPT (counted for the rate; holds its place in the cap until the final dot), "done"."""

    __slots__ = ("destination", "sender_domain", "state")

    def __init__(self, destination: Destination, sender_domain: str):
        self.destination = destination
        self.sender_domain = sender_domain
        self.state = "rcpt"

    def __repr__(self) -> str:
        return f"Place({self.destination.name!r}, {self.sender_domain!r}, {self.state!r})"


@dataclass(frozen=True)
class Refusal:
    """Why the relay answers a recipient itself: `cause` (shaping-held | shaping-slowed |
    shaping-warmup, policies/relay-replies.yaml), the reply's enhanced code and text, and the
    event's `shaping` field."""

    cause: str
    enhanced: str
    text: str
    detail: dict


def clock(ts: float, span: float) -> str:
    """'10:02 UTC'; with seconds when the span is short (a hold of seconds would read 10:02-10:02),
    with the date when it is not today."""
    t = datetime.fromtimestamp(ts, timezone.utc)
    text = t.strftime("%H:%M:%S" if span < 120 else "%H:%M")
    if t.date() != datetime.now(timezone.utc).date():
        text = t.strftime("%Y-%m-%d ") + text
    return text + " UTC"


def struck(old: ShapingRecord | None, *, key: str, destination: Destination, sender_domain: str,
           reaction: Reaction, reply: Reply, now: float, rate_now: float | None) -> ShapingRecord:
    """The record after the provider pushed back with a reply `reaction` matched. A push-back that
    arrives while the hold is on (other messages already under way) is the same episode, not a
    repeat: only a strike after the hold ended makes the next one longer."""
    if old is not None and old.held(now):
        return old
    strikes = (old.strikes if old is not None else 0) + 1
    until = now + reaction.hold.duration(strikes) if reaction.hold is not None else None
    rate = old.rate if old is not None else None
    if reaction.slow is not None:
        base = rate or destination.limits.messages_per_minute or rate_now
        if base:
            rate = max(reaction.slow.floor, base * reaction.slow.factor)
        else:
            rate = reaction.slow.floor  # nothing went through lately that could be halved
    return ShapingRecord(key=key, destination=destination.name, sender_domain=sender_domain, rule=reaction.id,
                         reason=reaction.reason, reply=bounded_text(reply.text), since=now, until=until, strikes=strikes,
                         rate=rate, changed=now)


def decayed(old: ShapingRecord | None, *, now: float, decay_after: float,
            limit_per_minute: int | None) -> ShapingRecord | None:
    """The record after a delivery the destination accepted: once `decay_after` has passed since
    the last change, one strike comes off and a slowed rate doubles back (to no slow-down once it
    reaches the destination's own limit, or once no strike is left). None: nothing is held any more."""
    if old is None or old.held(now) or now - old.changed < decay_after:
        return old
    strikes = max(0, old.strikes - 1)
    rate = old.rate
    if rate is not None:
        rate *= 2
        if strikes == 0 or (limit_per_minute is not None and rate >= limit_per_minute):
            rate = None
    if strikes == 0 and rate is None:
        return None
    return replace(old, strikes=strikes, rate=rate, changed=now)


class Shaper:
    """Process-wide: lives as long as the store (relay.server.Resources); pipelines come and go
    with reloads and reach it with the policy they were built with."""

    def __init__(self, store, metrics=None, resolver=None):
        self.store = store
        self.metrics = metrics
        self.resolver = resolver
        self._pending: dict[tuple[str, str, float], int] = {}  # counted here, not yet in the store
        # A flush's batch while the store writes it, then (written) until the totals read after it are
        # in: counted by every limit meanwhile (review32 #4: a write waiting on SQLite's lock hid it).
        self._writing: dict[tuple[str, str, float], int] = {}
        self._unread: dict[tuple[str, str, float], int] = {}
        self._totals: dict[tuple[str, str, float], int] = {}  # everyone's counts, as last read
        self._hour: dict[str, int] = {}  # everyone's last hour per key, as last read
        self._watched: set[str] = set()  # keys whose counts a limit looks at: shared through the store
        self._local: dict[tuple[str, float], int] = {}  # (key, minute) -> recipients this process let through
        # Rate key (destination, destination/sender) -> recipients the check let through whose RCPT the
        # next hop has not answered yet (Place "rcpt"): counted by the rate limits like recipients sent.
        self._inflight: dict[str, int] = {}
        # Warm-up key -> recipients the check let through whose message the next hop has not yet
        # answered at the final dot: each holds a place in its sender's daily cap until then (admit()
        # to delivered() or released()), so that messages under way at once cannot overshoot it.
        self._reserved: dict[str, int] = {}
        self._pruned = 0.0  # the minute _local was last swept
        self._forgotten = time.time()  # the last sweep of stale records (the first after FORGET_EVERY)
        self._flusher: asyncio.Task | None = None
        self._closed = False

    def _count(self, name: str, **labels) -> None:
        if self.metrics is not None:
            self.metrics.inc(name, **labels)

    # -- judging one recipient -------------------------------------------------------------------

    async def check(self, policy: ShapingPolicy, destination: Destination, sender_domain: str,
                    now: float | None = None, struck: set[str] | None = None) -> Refusal | None:
        """None when mail from `sender_domain` may go to `destination` now; else why not. `struck`,
        when given, gets the destination's name if a record it read carries strikes (see succeeded)."""
        now = time.time() if now is None else now
        keys = [destination.name, hold_key(destination.name, sender_domain)]
        records = await self.store.shaping_records(keys)
        if struck is not None and any(r.strikes for r in records):
            struck.add(destination.name)
        held = [r for r in records if r.held(now)]
        if held:
            record = max(held, key=lambda r: r.until)
            self._count("relay_shaping_deferrals_total", destination=destination.name, why="held")
            return self._held(destination, record)
        limited = self._over_rate(policy, destination, sender_domain, records, now)
        if limited is not None:
            self._count("relay_shaping_deferrals_total", destination=destination.name, why="slowed")
            return limited
        capped = self._over_cap(policy, destination, sender_domain, now)
        if capped is not None:
            self._count("relay_shaping_deferrals_total", destination=destination.name, why="warmup")
            return capped
        return None

    async def admit(self, policy: ShapingPolicy, destination: Destination, sender_domain: str,
                    now: float | None = None, struck: set[str] | None = None) -> tuple[Refusal | None, Place | None]:
        """check(), and when the recipient may go, its place taken before anything else runs (nothing
        is awaited between the two): (refusal, None) or (None, place). The caller settles the place:
        counted() at the next hop's 250 to RCPT, then delivered() at its 250 to the final dot, or
        released() on any other end."""
        refusal = await self.check(policy, destination, sender_domain, now=now, struck=struck)
        if refusal is not None:
            return refusal, None
        return None, self.take(destination, sender_domain)

    def take(self, destination: Destination, sender_domain: str) -> Place:
        """A place for one recipient to `destination` (see admit)."""
        per_sender = hold_key(destination.name, sender_domain)
        for key in {destination.name, per_sender}:
            self._inflight[key] = self._inflight.get(key, 0) + 1
        self._reserved[per_sender] = self._reserved.get(per_sender, 0) + 1
        return Place(destination, sender_domain)

    @staticmethod
    def _held(destination: Destination, record: ShapingRecord) -> Refusal:
        enhanced = Reply.parse(record.reply).enhanced or ""
        if not enhanced.startswith("4."):
            enhanced = "4.7.0"  # RFC 3463: X.7.0 other security or policy status
        sender = f" from {record.sender_domain}" if record.sender_domain else ""
        span = record.until - record.since
        text = (f"Held: {destination.label} deferred mail{sender} for {record.reason} at "
                f"{clock(record.since, span)}; retry after {clock(record.until, span)}")
        return Refusal("shaping-held", enhanced, text, _detail(record, until=record.until))

    def _over_rate(self, policy, destination, sender_domain, records, now) -> Refusal | None:
        per_minute = destination.limits.messages_per_minute
        per_hour = destination.limits.messages_per_hour
        slowed = [r for r in records if r.rate is not None]
        rate_record = min(slowed, key=lambda r: r.rate) if slowed else None
        if rate_record is not None and (per_minute is None or rate_record.rate < per_minute):
            per_minute = rate_record.rate
        if per_minute is None and per_hour is None:
            return None
        key = rate_record.key if rate_record is not None else destination.name
        self._watch(key)
        if per_minute is not None and self.last_minute(key, now) >= per_minute:
            start = math.floor(now / MINUTE) * MINUTE
            return self._slowed(destination, rate_record, f"{per_minute:g} messages a minute", start + MINUTE,
                                key)
        if per_hour is not None and self._hour.get(destination.name, 0) + self._pending_since(
                destination.name, now - 3600) + self._inflight.get(destination.name, 0) >= per_hour:
            self._watch(destination.name)
            return self._slowed(destination, None, f"{per_hour} messages an hour", now + MINUTE, destination.name)
        return None

    def _slowed(self, destination, record, limit: str, until: float, key: str) -> Refusal:
        why = f"slowed after {record.reason} to {limit}" if record is not None else f"limited to {limit}"
        text = (f"Slowed: {destination.label} takes {limit} from this relay now ({why}); retry after "
                f"{clock(until, until - time.time())}")
        detail = _detail(record, until=until) if record is not None else {
            "destination": destination.name, "key": key, "rule": "limits", "until": iso_time(until)}
        detail["limit"] = limit
        return Refusal("shaping-slowed", "4.7.0", text, detail)

    def _over_cap(self, policy: ShapingPolicy, destination: Destination, sender_domain: str,
                  now: float) -> Refusal | None:
        sender = policy.warmup_for(sender_domain)
        if sender is None:
            return None
        today = datetime.fromtimestamp(now, timezone.utc).date()
        cap = sender.cap(destination.name, today)
        if cap is None:
            return None
        key = hold_key(destination.name, sender_domain)
        self._watch(key)
        if self.today(key, now) + self._reserved.get(key, 0) < cap:
            return None
        tomorrow = (math.floor(now / DAY) + 1) * DAY
        text = (f"Warm-up: {sender_domain} may send {cap} messages a day to {destination.label} on day "
                f"{(today - sender.start).days + 1} of plan {sender.plan}; retry after {clock(tomorrow, DAY)}")
        return Refusal("shaping-warmup", "4.7.0", text, {
            "destination": destination.name, "key": key, "rule": f"warmup:{sender.plan}", "until": iso_time(tomorrow),
            "cap": cap})

    # -- counting --------------------------------------------------------------------------------

    def counted(self, place: Place, now: float | None = None) -> None:
        """One recipient let through to its destination (the next hop's 250 to its RCPT): an attempt,
        which is what the destination's rate limits and the rate a slow-down halves count
        (docs/shaping.md: "recipients the relay let through"; a message the provider then defers at
        DATA was still sent at it). The place goes on holding its sender's warm-up cap until the reply
        to the final dot (delivered(), or released()). Only keys a limit looks at (`_watch`) go to
        the store: every recipient domain is a destination of its own, and counting them all there
        would grow the table with every domain ever mailed. The others are counted here only. The place
        stops being in flight in the same step, so the recipient is never counted twice or not at all."""
        if place.state != "rcpt":
            return
        place.state = "sent"
        now = time.time() if now is None else now
        minute = math.floor(now / MINUTE) * MINUTE
        destination = place.destination
        per_sender = hold_key(destination.name, place.sender_domain)
        self._land(destination.name, per_sender)
        if minute != self._pruned:  # once a minute: forget what no window covers any more
            self._local = {b: n for b, n in self._local.items() if b[1] >= minute - MINUTE}
            self._pruned = minute
        for key in {destination.name, per_sender}:
            self._local[(key, minute)] = self._local.get((key, minute), 0) + 1
            if key in self._watched:
                self._add((key, "minute", minute))
        if self._pending:
            self._start_flushing()

    def delivered(self, place: Place, now: float | None = None) -> None:
        """The next hop accepted the message (250 to the final dot) for one recipient counted() before:
        a message sent, which is what a warm-up plan's `per_day` counts (docs/shaping.md: "may send
        per_day messages a day"; review25 F2: a message deferred at DATA used the cap up, and a new
        domain the provider greylisted was held till the next day with nothing delivered)."""
        if place.state != "sent":
            return
        place.state = "done"
        now = time.time() if now is None else now
        destination = place.destination
        per_sender = hold_key(destination.name, place.sender_domain)
        self._unreserve(per_sender)
        if per_sender in self._watched:
            self._add((per_sender, "day", math.floor(now / DAY) * DAY))
        self._count("relay_shaping_messages_total", destination=destination.name)
        if self._pending:
            self._start_flushing()

    def released(self, place: Place) -> None:
        """A place whose recipient will not be sent after all: one the next hop did not take at RCPT (any
        other reply, a broken connection, a later refusal, the client gone before the reply) is free in
        the rate limits and the cap again; one it took (counted()) whose message it did not accept
        (deferred or refused at DATA, or the transaction ended without it) is free in the cap, and
        stays an attempt in the rate. Once only: a place already settled is left alone."""
        per_sender = hold_key(place.destination.name, place.sender_domain)
        if place.state == "rcpt":
            self._land(place.destination.name, per_sender)
        if place.state != "done":
            self._unreserve(per_sender)
        place.state = "done"

    def _land(self, *keys: str) -> None:
        """Recipients no longer in flight for these rate keys."""
        for key in set(keys):
            left = self._inflight.get(key, 0) - 1
            if left > 0:
                self._inflight[key] = left
            else:
                self._inflight.pop(key, None)

    def _unreserve(self, key: str) -> None:
        left = self._reserved.get(key, 0) - 1
        if left > 0:
            self._reserved[key] = left
        else:
            self._reserved.pop(key, None)

    def held_places(self) -> tuple[dict[str, int], dict[str, int]]:
        """(in flight per rate key, places held per warm-up key): what no count shows yet. Empty once
        every transaction settled (tests look: no place is ever leaked)."""
        return dict(self._inflight), dict(self._reserved)

    def _add(self, bucket) -> None:
        self._pending[bucket] = self._pending.get(bucket, 0) + 1

    def _watch(self, key: str) -> None:
        if key not in self._watched:
            self._watched.add(key)
            # A limit that came with a reload counts what this process let through before it in the
            # window (review-20 F10: it started from zero, and 5 recipients in the minute plus a new
            # limit of 2 let 2 more through). They reach the store with the next flush.
            for (counted, start), n in self._local.items():
                if counted == key:
                    self._pending[(key, "minute", start)] = self._pending.get((key, "minute", start), 0) + n
            self._start_flushing()

    def _bucket(self, key: str, period: str, start: float) -> int:
        if key not in self._watched:
            return self._local.get((key, start), 0) if period == "minute" else 0
        bucket = (key, period, start)
        return (self._totals.get(bucket, 0) + self._pending.get(bucket, 0) + self._writing.get(bucket, 0)
                + self._unread.get(bucket, 0))

    def _pending_since(self, key: str, since: float) -> int:
        """This process's minute counts since `since` that the totals last read do not hold."""
        return sum(n for counts in (self._pending, self._writing, self._unread)
                   for (k, period, start), n in counts.items() if k == key and period == "minute" and start >= since)

    def last_minute(self, key: str, now: float) -> int:
        """Recipients in the last minute: this minute's count plus the part of the previous one
        the sliding window still covers (rounded up: never under-counts), plus those in flight
        (let through, their RCPT not answered yet: see admit)."""
        start = math.floor(now / MINUTE) * MINUTE
        previous = self._bucket(key, "minute", start - MINUTE)
        return (self._bucket(key, "minute", start) + math.ceil(previous * (1 - (now - start) / MINUTE))
                + self._inflight.get(key, 0))

    def today(self, key: str, now: float) -> int:
        return self._bucket(key, "day", math.floor(now / DAY) * DAY)

    def _start_flushing(self) -> None:
        if self._flusher is None and not self._closed:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store is away: keep counting, try again next time
                log.warning("shaping: could not share message counts through the store: %s", exc)

    async def flush(self, now: float | None = None) -> None:
        """Add this process's counts to the store, then read everyone's back; now and then, forget
        the records of destinations nothing happened to for FORGET_AFTER."""
        now = time.time() if now is None else now
        if now - self._forgotten >= FORGET_EVERY:
            self._forgotten = now
            await self.store.shaping_forget(now - FORGET_AFTER, now)
        # The batch stays counted while the store writes it (SQLite may wait up to 2 s for another
        # process's lock) and, once written, until the totals read after it replace the old ones.
        pending, self._pending = self._pending, {}
        self._writing = pending
        try:
            await self.store.shaping_add_counts(pending)
        except BaseException:
            self._writing = {}
            for bucket, n in pending.items():  # not lost: added again at the next flush
                self._pending[bucket] = self._pending.get(bucket, 0) + n
            raise
        self._writing = {}
        for bucket, n in pending.items():
            self._unread[bucket] = self._unread.get(bucket, 0) + n
        if not self._watched:
            self._unread = {}
            return
        keys = sorted(self._watched)
        minute = math.floor(now / MINUTE) * MINUTE
        day = math.floor(now / DAY) * DAY
        this_minute = await self.store.shaping_counts(keys, "minute", minute)
        two_minutes = await self.store.shaping_counts(keys, "minute", minute - MINUTE)
        hour = await self.store.shaping_counts(keys, "minute", now - 3600)
        days = await self.store.shaping_counts(keys, "day", day)
        totals: dict[tuple[str, str, float], int] = {}
        for key in keys:
            totals[(key, "minute", minute)] = this_minute.get(key, 0)
            totals[(key, "minute", minute - MINUTE)] = two_minutes.get(key, 0) - this_minute.get(key, 0)
            totals[(key, "day", day)] = days.get(key, 0)
        self._totals = totals
        self._hour = {key: hour.get(key, 0) for key in keys}
        self._unread = {}  # every batch written before the reads began is in the totals now

    async def close(self) -> None:
        """Stop the flushes and add what was counted since the last one."""
        self._closed = True
        if self._flusher is not None:
            self._flusher.cancel()
            try:
                await self._flusher
            except (asyncio.CancelledError, Exception):
                pass
            self._flusher = None
        if self._pending:
            try:
                await self.store.shaping_add_counts(self._pending)
                self._pending = {}
            except Exception as exc:
                log.warning("shaping: message counts not shared at shutdown: %s", exc)

    # -- reacting to the provider -----------------------------------------------------------------

    async def strike(self, destination: Destination, sender_domain: str, reaction: Reaction, reply: Reply,
                     now: float | None = None) -> ShapingRecord | None:
        """Record a push-back `reaction` matched; the record after it, or None when the store could not
        be written (logged: the reply itself reached the client and has its event)."""
        now = time.time() if now is None else now
        key = hold_key(destination.name, sender_domain if reaction.per_sender_domain else "")
        rate_now = self.last_minute(key, now) or None

        def change(old):
            return struck(old, key=key, destination=destination, sender_domain=sender_domain if
                          reaction.per_sender_domain else "", reaction=reaction, reply=reply, now=now,
                          rate_now=rate_now)

        try:
            record = await self.store.shaping_update(key, change)
        except StoreError as exc:
            log.error("shaping: %s pushed back (%s) but the hold could not be stored: %s", key,
                      reply.text.split("\n")[0], exc)
            return None
        if record is not None and record.since == now:
            self._count("relay_shaping_strikes_total", destination=destination.name, rule=reaction.id)
            log.warning("shaping: %s pushed back (%s, rule %s): %s%s", key, reply.text.split("\n")[0], reaction.id,
                        f"held until {iso_time(record.until)}" if record.until and record.until > now else "not held",
                        f", slowed to {record.rate:g} messages a minute" if record.rate is not None else "")
        return record

    async def succeeded(self, policy: ShapingPolicy, destination: Destination, sender_domain: str,
                        now: float | None = None) -> None:
        """A delivery `destination` accepted: decay its records that may decay now. One read; nothing
        is written unless something changes. The caller may skip it when the check at RCPT read no
        strikes: a record struck since is younger than the transaction, and decays only after
        `decay_after` has passed since its last change, at a later success."""
        now = time.time() if now is None else now
        keys = sorted({destination.name, hold_key(destination.name, sender_domain)})
        try:
            records = [r for r in await self.store.shaping_records(keys) if r.strikes]
            for record in records:
                reaction = next((r for r in destination.reactions if r.id == record.rule), None)
                decay_after = reaction.decay_after if reaction is not None else 600.0
                if record.held(now) or now - record.changed < decay_after:
                    continue
                limit = destination.limits.messages_per_minute
                await self.store.shaping_update(record.key, lambda old: decayed(
                    old, now=now, decay_after=decay_after, limit_per_minute=limit))
        except StoreError as exc:
            log.warning("shaping: could not decay %s after a success: %s", destination.name, exc)


def iso_time(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _detail(record: ShapingRecord, until: float | None) -> dict:
    return {"destination": record.destination, "key": record.key, "sender_domain": record.sender_domain or None,
            "rule": record.rule, "reason": record.reason, "until": iso_time(until), "strikes": record.strikes}
