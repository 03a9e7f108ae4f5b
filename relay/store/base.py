"""The bounce list behind one interface, whatever holds it.

Every address goes through `relay.address.normalise()` before it touches a
table, so a backend only ever compares canonical keys. Times are UTC; entries
carry aware datetimes, tables hold what suits the backend.

Listing logic lives here, once: a backend supplies a write transaction and a
handful of primitives (`_fetch`, `_count_failure`, `_write`, `_clear_failures`)
and `record_failure()` runs the same algorithm on SQLite and PostgreSQL.
"""

from __future__ import annotations

import abc
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Iterable
from urllib.parse import urlsplit, urlunsplit

from ..address import normalise
from ..events import bounded_text

SOURCES = ("auto", "operator")
# What the held table's and the hits table's `domain` column holds for the breaker keyed by the
# refusing provider (suppression.yaml `provider_breaker:`): `provider:google.com`. A domain breaker's
# rows hold the recipient domain, which can never contain a colon. One column for both breakers
# keeps the schema (and every relay sharing a database) as it was.
PROVIDER_PREFIX = "provider:"
# The holder of `@domain` listings the domain-listing breaker holds (suppression.yaml `domains: breaker:`),
# in the held table's and breaker hits' `domain` column beside recipient domains and `provider:NAME`.
DOMAINS_HOLDER = "domains:nonexistent"
PURGE_EVERY = 1000  # counted failures between sweeps of old failure records
# How far apart two failures of one message (the same `message` key) may be and still be one
# message retried: MTAs give up on a message after days (Postfix maximal_queue_lifetime and
# Sendmail's Timeout.queuereturn default to 5 days, Exim's retry rules to 4). Further apart, they
# are two sends: an application that reuses one Message-ID for every weekly digest would otherwise
# have its refusals counted once for ever (review-16 F2).
SAME_MESSAGE_WITHIN = 5 * 86400.0

# Column order shared by the backends, the CSV export and import.
FIELDS = ("address", "category", "reply", "rule", "first_seen", "last_seen", "count", "source", "note",
          "expires_at")


class StoreError(Exception):
    """The bounce list cannot be reached or used (bad URL, unreachable database,
    unreadable file). Its message is one line, fit for an operator."""


def key_of(text: str) -> str:
    """The list key of an address (relay.address.normalise), or of a whole domain:
    `@example.com` (an entry that refuses every address at the domain)."""
    text = text.strip()
    if text.startswith("@") and "@" not in text[1:] and ":" not in text:
        from ..domains import normalise_domain

        return "@" + normalise_domain(text[1:])
    return normalise(text)


def lookup_keys(address: str) -> tuple[str, str | None]:
    """The keys that refuse `address`: its own, and its domain's (None for a domain key)."""
    key = key_of(address)
    if key.startswith("@"):
        return key, None
    return key, "@" + key.rpartition("@")[2]


class StoreBusy(StoreError):
    """Another process holds the list's lock past the deadline: the same operation may
    succeed if tried again later."""


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{password}@", ":***@", 1)))


def to_epoch(value: float | int | datetime | None) -> float:
    if value is None:
        return time.time()
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)  # naive means UTC here, never local time
        return value.timestamp()
    return float(value)


def to_datetime(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=timezone.utc)


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_time(text: str | None) -> datetime | None:
    """ISO 8601 (as `iso()` writes it, 'Z' or an offset) -> aware datetime; '' -> None."""
    if text is None or not str(text).strip():
        return None
    value = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class BounceEntry:
    address: str  # normalised (relay.address.normalise)
    category: str  # classification category of the failure that listed it, or "operator"
    reply: str  # the upstream reply verbatim (every line with its code prefix), or ""
    rule: str  # the classification rule that matched, or "operator"
    first_seen: datetime
    last_seen: datetime
    count: int  # failures seen while listing or listed (0 for an operator entry with none)
    source: str  # "auto" | "operator"
    note: str = ""
    expires_at: datetime | None = None  # None: stays until removed
    # Set only on the entry record_failure() returns when that failure put the address on
    # the list (new, or again after expiry): the caller's cue for a `bounce_listed` event.
    # Not stored, not compared, not in as_dict().
    listed_now: bool = field(default=False, compare=False, repr=False)
    # Set only when the circuit breaker held this listing instead of making it (the entry
    # is then in the held table, not on the list), and when this failure tripped the
    # breaker: the domain's earlier listings it moved to the held table. Not stored.
    held_now: bool = field(default=False, compare=False, repr=False)
    tripped: tuple[str, ...] | None = field(default=None, compare=False, repr=False)
    # Every breaker this failure tripped: (kind "domain" | "provider", its name, the earlier listings it
    # moved to the held table). `tripped` is the domain breaker's moved listings (None when it did not
    # trip now). Not stored.
    trips: tuple[tuple[str, str, tuple[str, ...]], ...] = field(default=(), compare=False, repr=False)
    # On a held listing read back (held(), confirm, discard): which breaker holds it, the recipient
    # domain or `provider:NAME`. Not compared.
    held_by: str | None = field(default=None, compare=False, repr=False)

    def active(self, now: float | datetime | None = None) -> bool:
        return self.expires_at is None or self.expires_at.timestamp() > to_epoch(now)

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": self.address, "category": self.category, "reply": self.reply, "rule": self.rule,
            "first_seen": iso(self.first_seen), "last_seen": iso(self.last_seen), "count": self.count,
            "source": self.source, "note": self.note, "expires_at": iso(self.expires_at),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BounceEntry":
        """From `as_dict()` output or a CSV row (strings). Raises ValueError naming the field."""
        try:
            address = key_of(data["address"])
        except KeyError:
            raise ValueError("missing field 'address'") from None
        source = (data.get("source") or "operator").strip()
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        try:
            now = datetime.now(timezone.utc)
            first = parse_time(data.get("first_seen")) or now
            last = parse_time(data.get("last_seen")) or first
            expires = parse_time(data.get("expires_at"))
        except ValueError as exc:
            raise ValueError(f"bad time: {exc}") from None
        count_text = data.get("count")
        try:
            count = int(count_text) if count_text not in (None, "") else 0
        except (TypeError, ValueError):
            raise ValueError(f"count must be a whole number, got {count_text!r}") from None
        if count < 0:  # refusals seen: never fewer than none (review32)
            raise ValueError(f"count must be 0 or more, got {count_text!r}")
        return cls(address=address, category=(data.get("category") or "operator").strip(),
                   reply=data.get("reply") or "", rule=(data.get("rule") or "operator").strip(),
                   first_seen=first, last_seen=last, count=count, source=source,
                   note=data.get("note") or "", expires_at=expires)


@dataclass(frozen=True)
class ShapingRecord:
    """What the relay holds against one destination (policies/shaping.yaml, relay/shaping/): shared
    through the store by every process and relay using it. Times are Unix seconds, UTC."""

    key: str  # the destination (`google`), or destination/sender domain (`google/example.com`)
    destination: str
    sender_domain: str  # "" when the hold is for every sender
    rule: str  # the reaction that struck last
    reason: str  # its phrase for replies ("unusual rate")
    reply: str  # the provider's reply that struck, verbatim
    since: float  # that strike
    until: float | None  # held (the relay answers 4xx itself) until then; None: not held
    strikes: int  # repeats so far (a hold grows with them; successes take them off)
    rate: float | None  # messages a minute while slowed; None: not slowed
    changed: float  # the last strike or decay

    def held(self, now: float) -> bool:
        return self.until is not None and self.until > now

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "destination": self.destination, "sender_domain": self.sender_domain or None,
                "rule": self.rule, "reason": self.reason, "reply": self.reply, "since": iso(to_datetime(self.since)),
                "until": iso(to_datetime(self.until)), "strikes": self.strikes, "rate_per_minute": self.rate,
                "changed": iso(to_datetime(self.changed))}


SHAPING_PERIODS = {"minute": 60.0, "day": 86400.0}  # the buckets counts are kept in (relay_shaping_counts)


# -- the recipients of VERP transactions (issue 13) ------------------------------------------------------

def verp_keep_days() -> int:
    """Days a transaction's recipients are kept: as long as its return path's token is accepted
    (relay/intake/verp.py MAX_AGE_DAYS), and a day more for clocks that disagree."""
    from ..intake.verp import MAX_AGE_DAYS

    return MAX_AGE_DAYS + 1


# Rows past their days deleted by one write at most: twice what it adds (and some), so that the table
# shrinks back to its days' worth whatever the rate of mail, and no write ever deletes a whole day
# (hundreds of thousands of rows at a busy relay) while holding the write lock.
VERP_EXPIRE_MIN = 200


def recipient_digest(address: str) -> bytes:
    """What the table holds for a recipient: sha256 of its bounce-list key (relay.address.normalise:
    the domain lower-cased and in A-labels, the local part lower-cased too). The local part is compared
    case-insensitively although RFC 5321 2.4 makes it case-sensitive: many MTAs report it in another
    case than the one it was sent in (a DSN's Final-Recipient folded to lower case, or the mailbox's
    own spelling), and the bounce list itself matches case-insensitively (DESIGN.md), so a listing can
    only ever be about the case-folded address anyway. A digest rather than the address: the table is
    not a second copy of every address mailed, and a lookup needs only equality. Raises ValueError for
    what is not an address."""
    import hashlib

    return hashlib.sha256(normalise(address).encode("utf-8")).digest()


class BounceStore(abc.ABC):
    """A bounce list. All methods are coroutines; addresses are normalised on the way in."""

    url: str = ""

    @property
    def write_deadline(self) -> float:
        """About how long one write may wait at most, the list's lock included, before it fails with this
        store's own error: what a shutdown waits for an outcome being recorded (relay.server stop())."""
        return 5.0

    # -- the public interface --------------------------------------------------------------

    @abc.abstractmethod
    async def get(self, address: str) -> BounceEntry | None:
        """The active entry for `address`, or None. The hot path: one RCPT, one call."""

    async def get_uncached(self, address: str) -> BounceEntry | None:
        """get(), asked of the database itself, never of a cache of earlier answers: the readiness
        probe, for which a cached answer proves nothing about whether the list answers now."""
        return await self.get(address)

    async def record_failure(self, address: str, *, category: str, permanent: bool, reply_text: str,
                             rule: str, policy, now: float | datetime | None = None,
                             suppression_rule=None, provider: str | None = None,
                             message: str | None = None) -> BounceEntry | None:
        """Record one delivery failure. Returns the entry when this failure listed the
        address (then `entry.listed_now` is true) or the address stays listed; None when
        it is not on the list. `suppression_rule` (a SuppressionRule, e.g. the complaint
        rule) replaces the policy's rule for (category, permanent). `provider`: the refusing
        provider's name (ProviderBreaker.provider_of), for the breaker keyed by it; None when
        not known (that breaker then does not count this failure).

        `message` names the message the failure was about (outcomes.message_key: a digest of its
        Message-ID, Postfix queue id or VERP transaction): a counted failure of a message already
        counted within the window is not counted again, so that listing after N failures means N
        messages, not N sightings of one (a retry, Postfix soft_bounce, a 4xx then a 5xx, a report
        delivered twice: review12 F3, F11). None: unknown, every failure counts. `now`: the time the
        failure happened (a log line's), from which the windows and the listing's expiry run."""
        key = key_of(address)
        srule = suppression_rule if suppression_rule is not None else policy.rule_for(category, permanent)
        async with self._transaction() as tx:
            at = await self._clock(tx, now)
            existing = await self._fetch(tx, key)
            listed = existing if existing is not None and existing.active(at) else None
            if srule is None:
                return listed  # such failures never list; say whether it is listed anyway
            failures = 1
            if srule.list_after > 1:
                failures = await self._count_failure(tx, key, category, at, srule.within, message)
            if failures >= srule.list_after:
                if listed is None:
                    held = await self._breaker(tx, policy, key, category, reply_text, rule, at, failures,
                                               srule.expire_after, provider)
                    if held is not None:
                        await self._clear_failures(tx, key, category)
                        return held
                was_listed = listed is not None
                listed = _listing(listed, key, category, reply_text, rule, at, failures, srule.expire_after)
                if not was_listed:
                    await self._write(tx, listed)
                elif not await self._update(tx, listed):
                    # Taken off the list since it was read: another relay's breaker tripped and moved it to
                    # the held table (PostgreSQL; the trip takes listings without their address's lock).
                    # Writing it back would list what the operator is asked to confirm or discard, and
                    # leave it refused after a discard (review24 F1). It stays held.
                    await self._clear_failures(tx, key, category)
                    held = await self._fetch_held(tx, key)
                    return None if held is None else replace(held, held_now=True)
                await self._clear_failures(tx, key, category)
        if srule.list_after > 1:
            # Counted failures of addresses that never fail again would pile up; sweep
            # the old ones now and then rather than on every failure.
            self._counted = getattr(self, "_counted", 0) + 1
            if self._counted % PURGE_EVERY == 0:
                await self.purge(failures_older_than=policy.longest_window, now=at)
        return listed

    async def record_domain_evidence(self, address: str, *, reply_text: str, rule: str, policy,
                                     now: float | datetime | None = None,
                                     message: str | None = None) -> BounceEntry | None:
        """Record that a reply said `address`'s domain does not exist (`policy`: the
        suppression policy's DomainRule). A sighting at least `seen_again_after` after the
        first one within `within` lists the domain (`@domain`, expiring after
        `expire_after`). Returns the domain entry when it is listed now (`listed_now`) or
        stays listed, else None. A sighting of a message already sighted (`message`, as in
        record_failure) is no new evidence: the same bounce seen twice is never the confirmation."""
        from ..suppression import DOMAIN_CATEGORY

        key = "@" + key_of(address).rpartition("@")[2]
        async with self._transaction() as tx:
            at = await self._clock(tx, now)
            existing = await self._fetch(tx, key)
            if existing is not None and existing.active(at):
                return existing
            first = await self._first_failure(tx, key, DOMAIN_CATEGORY, at, policy.within, message)
            if first is None or at - first < policy.seen_again_after:
                return None  # one sighting, or two too close together: a glitch is never evidence
            entry = _listing(None, key, DOMAIN_CATEGORY, reply_text, rule, at, 2, policy.expire_after)
            held = await self._domains_breaker(tx, getattr(policy, "breaker", None), entry, at)
            if held is None:
                await self._write(tx, entry)
            await self._clear_failures(tx, key, DOMAIN_CATEGORY)
        return held or entry

    async def _domains_breaker(self, tx, breaker, entry: BounceEntry, at: float) -> BounceEntry | None:
        """The held entry when the breaker on `@domain` listings holds this one; None to list it.
        Over `distinct_domains` within its window, or tripped already (anything it holds), the listing
        is held; tripping now also takes back the `@domain` listings it counted within the window. The
        address breakers' own primitives (hits, held table), under the holder DOMAINS_HOLDER."""
        from ..suppression import DOMAIN_CATEGORY

        if breaker is None:
            return None
        hits = await self._breaker_hit(tx, DOMAINS_HOLDER, entry.address, at, breaker.within)
        tripped_before = await self._held_count(tx, DOMAINS_HOLDER) > 0
        if not tripped_before and hits <= breaker.distinct_domains:
            return None
        trips = ()
        if not tripped_before:
            counted = await self._counted_entries(tx, DOMAINS_HOLDER, at - breaker.within, {DOMAIN_CATEGORY})
            trips = (("domains", "", await self._take_back(tx, counted, DOMAINS_HOLDER, entry.address)),)
        await self._hold(tx, entry, DOMAINS_HOLDER)
        return replace(entry, listed_now=False, held_now=True, trips=trips, held_by=DOMAINS_HOLDER)

    async def _breaker(self, tx, policy, key, category, reply_text, rule, at, failures, expire_after,
                       provider=None) -> BounceEntry | None:
        """The held entry when a circuit breaker holds this new listing; None to list it.

        Two breakers: the recipient domain's (`breaker:`) and the refusing provider's
        (`provider_breaker:`, when the provider is known). Each that applies counts the listing,
        whichever holds it, so that its count is true; the listing is held when either is over
        its limit or tripped already (its held table not empty), under the domain's breaker
        first. A breaker tripping now also takes back its own listings of the window."""
        domain = key.rpartition("@")[2]
        applying = []
        breaker = getattr(policy, "breaker", None)
        if breaker is not None and category in breaker.categories:
            applying.append(("domain", domain, domain, breaker))
        by_provider = getattr(policy, "provider_breaker", None)
        if provider and by_provider is not None and category in by_provider.categories:
            applying.append(("provider", provider, PROVIDER_PREFIX + provider, by_provider))
        holding = []
        for kind, name, holder, each in applying:
            hits = await self._breaker_hit(tx, holder, key, at, each.within)
            tripped_before = await self._held_count(tx, holder) > 0
            if tripped_before or hits > each.distinct_addresses:
                holding.append((kind, name, holder, each, tripped_before))
        if not holding:
            return None
        previous = await self._fetch_held(tx, key)
        held = _listing(previous, key, category, reply_text, rule, at, failures, expire_after)
        trips = []
        for kind, name, holder, each, tripped_before in holding:
            if tripped_before:
                continue
            # Tripping now: the listings this domain (provider) made within the window are as suspect.
            if kind == "domain":
                recent = await self._recent_auto_entries(tx, domain, at - each.within, each.categories)
            else:
                recent = await self._counted_entries(tx, holder, at - each.within, each.categories)
            trips.append((kind, name, await self._take_back(tx, recent, holder, key)))
        await self._hold(tx, held, holding[0][2])
        domain_trip = next((t[2] for t in trips if t[0] == "domain"), None)
        return replace(held, listed_now=False, held_now=True, tripped=domain_trip, trips=tuple(trips),
                       held_by=holding[0][2])

    async def _take_back(self, tx, entries: list[BounceEntry], holder: str, keep: str) -> tuple[str, ...]:
        """A breaker tripping now takes back its earlier listings of the window: each of `entries` but
        the one of `keep` (the listing that tripped it, held by the caller) moves from the list to the
        held table under `holder`. Returns the addresses moved, sorted."""
        moved = []
        for entry in entries:
            if entry.address == keep:
                continue
            # The listing as it is now, and only while it is still the relay's own: another relay may have
            # counted a failure on it since it was read, or the operator made it theirs (review24 F1).
            now = await self._take_listing(tx, entry.address)
            if now is None:
                continue
            await self._hold(tx, now, holder)
            moved.append(entry.address)
        return tuple(sorted(moved))

    async def _counted_entries(self, tx, holder: str, since: float, categories) -> list[BounceEntry]:
        """The relay's own listings (source auto, of `categories`, first made after `since`) of the
        addresses the breaker of `holder` counted (its hits) within its window: the listings of a
        provider (`provider:NAME`), or the `@domain` listings (DOMAINS_HOLDER)."""
        out = []
        for address in await self._breaker_hit_addresses(tx, holder, since):
            entry = await self._fetch(tx, address)
            if (entry is not None and entry.source == "auto" and entry.category in categories
                    and entry.first_seen.timestamp() > since):
                out.append(entry)
        return out

    # -- the breaker's held listings (relay bounces held / confirm / discard) -------------------

    @abc.abstractmethod
    async def held(self, domain: str | None = None, provider: str | None = None) -> list[BounceEntry]:
        """Held listings (at one recipient domain, whichever breaker holds them; those one provider's
        breaker holds; or all), ordered by address, each with `held_by`."""

    async def confirm_held(self, target: str, now: float | datetime | None = None,
                           provider: bool = False) -> list[BounceEntry]:
        """Put the held listings of `target` (a domain, or one address; with `provider`, those the
        breaker of the provider `target` holds) on the list; returns them."""
        held_target = _held_target(target, provider)
        async with self._transaction() as tx:
            at = await self._clock(tx, now)
            await self._lock_held(tx, *held_target)
            taken = await self._take_held(tx, *held_target)
            written = []
            for entry in taken:
                existing = await self._fetch(tx, entry.address)
                if existing is not None and existing.active(at):
                    continue  # listed meanwhile (e.g. by the operator): keep that entry
                await self._write(tx, entry)
                written.append(entry)
            await self._settle_breaker(tx, taken)
        return written

    async def discard_held(self, target: str, provider: bool = False) -> list[BounceEntry]:
        """Forget the held listings of `target` (as confirm_held takes it); returns them."""
        held_target = _held_target(target, provider)
        async with self._transaction() as tx:
            await self._lock_held(tx, *held_target)
            taken = await self._take_held(tx, *held_target)
            await self._settle_breaker(tx, taken)
        return taken

    async def _lock_held(self, tx, domain: str | None, key: str | None, holder: str | None = None) -> None:
        """Before confirm or discard touches a held row: take the locks a relay recording a failure
        takes, in its order (the address's, then its breakers'), for every listing the target holds.
        Nothing to do where write transactions are serialised whole (SQLite)."""

    async def _settle_breaker(self, tx, taken: list[BounceEntry]) -> None:
        # A domain (provider) with nothing held any more starts counting afresh: the hits that
        # tripped it must not trip it again at the next failure.
        holders = {e.address.rpartition("@")[2] for e in taken} | {e.held_by for e in taken if e.held_by}
        # Domains before providers, the order record_failure takes their locks in (PostgreSQL).
        for holder in sorted(holders, key=lambda h: (h.startswith(PROVIDER_PREFIX), h)):
            if await self._held_count(tx, holder) == 0:
                await self._clear_breaker_hits(tx, holder)

    async def add(self, address: str, *, category: str = "operator", reply: str = "", rule: str = "operator",
                  source: str = "operator", note: str = "", now: float | datetime | None = None,
                  expires_at: datetime | None = None) -> BounceEntry:
        """List `address` (an operator's decision, or an import). Never expires unless told."""
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        key = key_of(address)
        async with self._transaction() as tx:
            at = await self._clock(tx, now)
            existing = await self._fetch(tx, key)
            listed = existing if existing is not None and existing.active(at) else None
            entry = BounceEntry(
                address=key, category=category, rule=rule,
                reply=bounded_text(reply) or (listed.reply if listed else ""),
                first_seen=listed.first_seen if listed else to_datetime(at), last_seen=to_datetime(at),
                count=listed.count if listed else 0, source=source, note=note, expires_at=expires_at)
            await self._write(tx, entry)
            return entry

    async def put_many(self, entries: Iterable[BounceEntry], batch: int = 1000) -> int:
        """Write entries as they are (import); one short transaction a batch, so a large
        import never holds the write lock long enough to stall a running relay."""
        written = 0
        chunk: list[BounceEntry] = []
        for entry in entries:
            chunk.append(replace(entry, address=key_of(entry.address), reply=bounded_text(entry.reply)))
            if len(chunk) >= batch:
                written += await self._write_batch(chunk)
                chunk = []
        if chunk:
            written += await self._write_batch(chunk)
        return written

    async def _write_batch(self, chunk: list[BounceEntry]) -> int:
        async with self._transaction() as tx:
            for entry in chunk:
                await self._write(tx, entry)
        return len(chunk)

    async def remove(self, address: str) -> BounceEntry | None:
        """Take `address` off the list (and forget its counted failures and any listing a circuit
        breaker holds of it: unlist). Returns the entry that was active, or None when it was not listed."""
        return (await self.unlist(address))[0]

    async def unlist(self, address: str) -> tuple[BounceEntry | None, BounceEntry | None]:
        """Take `address` off the list, forget its counted failures, and discard the listing a circuit
        breaker holds of it: the operator's "this address is good" covers the held listing too, which a
        later `confirm DOMAIN` would otherwise put on the list (review24 F3). Returns (the entry that
        was active or None, the held listing discarded or None)."""
        key = key_of(address)
        async with self._transaction() as tx:
            at = await self._clock(tx, None)
            if not key.startswith("@"):
                await self._lock_held(tx, None, key)  # the breakers' locks before any row (review24 F4)
            existing = await self._fetch(tx, key)
            await self._delete(tx, key)
            await self._clear_failures(tx, key, None)
            held = [] if key.startswith("@") else await self._take_held(tx, None, key)
            await self._settle_breaker(tx, held)
        return (existing if existing is not None and existing.active(at) else None), (held[0] if held else None)

    @abc.abstractmethod
    def iter_entries(self) -> AsyncIterator[BounceEntry]:
        """Active entries ordered by address, fetched a page at a time."""

    @abc.abstractmethod
    async def count(self) -> int:
        """Number of active entries."""

    @abc.abstractmethod
    async def purge(self, *, failures_older_than: float, now: float | datetime | None = None) -> int:
        """Delete expired entries and counted failures older than `failures_older_than`
        seconds (use the policy's longest window). Returns rows deleted."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def migrate(self) -> list:
        """Bring the tables up to this relay's schema (relay.store.schema); returns the migrations
        this store applied (none when they were there already). Raises SchemaTooNew when another,
        newer relay migrated the database past what this one knows. Opening a store migrates."""
        return []

    async def schema_version(self) -> int:
        """The version the database is at (relay.store.schema.MIGRATIONS)."""
        raise NotImplementedError

    async def __aenter__(self) -> "BounceStore":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- the recipients of VERP transactions (relay/steps/verp.py, relay/intake/bounces_in.py) ------

    async def record_verp_recipients(self, rows: Iterable[tuple[str, str, int]]) -> int:
        """Record (transaction_id, recipient address, token day) rows in one write transaction: each
        address the next hop accepted in a transaction sent with a VERP return path. Rows older than
        verp_keep_days() are deleted in the same transaction (a bounded number: VERP_EXPIRE_MIN).
        Returns the rows written. Addresses that are not addresses are left out."""
        out = []
        for transaction_id, address, day in rows:
            try:
                out.append((transaction_id, recipient_digest(address), int(day)))
            except ValueError:
                continue
        if not out:
            return 0
        await self._put_verp_recipients(out, verp_keep_days(), 2 * len(out) + VERP_EXPIRE_MIN)
        return len(out)

    async def verp_recipients(self, transaction_id: str, addresses: Iterable[str]) -> set[str]:
        """Which of `addresses` were recipients of `transaction_id` (as recorded by
        record_verp_recipients): the matching ones, spelt as given. Raises StoreError when the store
        cannot answer (the caller must not guess)."""
        return (await self.verp_transaction(transaction_id, addresses))[0]

    async def verp_transaction(self, transaction_id: str, addresses: Iterable[str]) -> tuple[set[str], int]:
        """verp_recipients, and how many recipients `transaction_id` had in all (0: none recorded: the
        message was sent before the recording, its write failed, or the rows have expired). A return
        path shared by several recipients is weaker evidence for each (relay/intake/bounces_in.py)."""
        digests: dict[bytes, list[str]] = {}
        for address in addresses:
            try:
                digests.setdefault(recipient_digest(address), []).append(address)
            except ValueError:
                continue
        known = await self._verp_digests(transaction_id)
        return {a for digest, spellings in digests.items() if digest in known for a in spellings}, len(known)

    async def _put_verp_recipients(self, rows: list[tuple[str, bytes, int]], keep_days: int, expire_limit: int) -> None:
        raise NotImplementedError

    async def _verp_digests(self, transaction_id: str) -> set[bytes]:
        """The recipient digests recorded for `transaction_id`."""
        raise NotImplementedError

    # -- traffic shaping (relay/shaping/): holds and counts shared by every process -------------

    @abc.abstractmethod
    async def shaping_records(self, keys: Iterable[str] | None = None) -> list[ShapingRecord]:
        """The records of `keys` (None: all), ordered by key; expired holds included (the
        caller judges them by time). The hot path: one call per RCPT."""

    async def shaping_update(self, key: str, change) -> ShapingRecord | None:
        """Read-modify-write one record in a write transaction: `change(old or None)` returns the new
        record, or None to delete it (or to leave none). Returns what was written."""
        async with self._transaction() as tx:
            old = await self._fetch_shaping(tx, key)
            new = change(old)
            if new is None:
                if old is not None:
                    await self._delete_shaping(tx, key)
            elif new != old:
                await self._write_shaping(tx, new)
        return new

    async def shaping_release(self, target: str) -> list[ShapingRecord]:
        """Delete the records of a destination (every sender domain's) or of one key; returns them."""
        async with self._transaction() as tx:
            return await self._take_shaping(tx, target)

    @abc.abstractmethod
    async def shaping_forget(self, unchanged_since: float, now: float) -> int:
        """Delete the records not held at `now` that have not changed since `unchanged_since` (a
        destination nobody mailed for that long keeps no memory of old strikes); returns how many."""

    @abc.abstractmethod
    async def shaping_add_counts(self, counts: dict[tuple[str, str, float], int]) -> None:
        """Add to the counts of (key, period, bucket start); period is a SHAPING_PERIODS name."""

    @abc.abstractmethod
    async def shaping_counts(self, keys: Iterable[str], period: str, since: float) -> dict[str, int]:
        """The sum of each key's counts of `period` in buckets starting at or after `since`."""

    @abc.abstractmethod
    async def _fetch_shaping(self, tx, key: str) -> ShapingRecord | None: ...

    @abc.abstractmethod
    async def _write_shaping(self, tx, record: ShapingRecord) -> None: ...

    @abc.abstractmethod
    async def _delete_shaping(self, tx, key: str) -> None: ...

    @abc.abstractmethod
    async def _take_shaping(self, tx, target: str) -> list[ShapingRecord]:
        """Delete and return the records whose key is `target` or whose destination is `target`."""

    # -- what a backend supplies for the shared write logic --------------------------------

    async def _clock(self, tx, now: float | datetime | None) -> float:
        """The time a change is made at: `now` when given (tests, imports), else the store's
        clock. PostgreSQL's is the database's, so that relays whose clocks disagree still agree
        on when a listing expires and which failures fall within a window."""
        return to_epoch(now)

    @abc.abstractmethod
    def _transaction(self) -> AbstractAsyncContextManager[Any]:
        """A write transaction, serialised against other writers of the same list
        (other processes included); yields the handle the primitives take."""

    @abc.abstractmethod
    async def _fetch(self, tx, key: str) -> BounceEntry | None:
        """The entry for `key`, expired or not."""

    @abc.abstractmethod
    async def _count_failure(self, tx, key: str, category: str, at: float, within: float,
                             message: str | None = None) -> int:
        """Record a failure at `at` (unless `message` already has one within the window: one count
        per message), forget this key's failures of `category` older than the window, and return
        how many remain within it (this one included)."""

    @abc.abstractmethod
    async def _write(self, tx, entry: BounceEntry) -> None:
        """Insert or replace the entry for entry.address."""

    async def _update(self, tx, entry: BounceEntry) -> bool:
        """Replace the entry for entry.address if there still is one; whether there was. A backend
        whose write transactions are serialised whole (SQLite) knows there is: _fetch saw it."""
        await self._write(tx, entry)
        return True

    async def _take_listing(self, tx, key: str) -> BounceEntry | None:
        """Delete and return the relay's own (source auto) listing of `key` as it is at this moment;
        None when there is none (removed, or the operator's). A breaker trip moves listings with it.
        Not abstract, as _breaker_hit_addresses (both backends here implement it)."""
        raise NotImplementedError

    @abc.abstractmethod
    async def _delete(self, tx, key: str) -> None: ...

    @abc.abstractmethod
    async def _clear_failures(self, tx, key: str, category: str | None) -> None:
        """Forget counted failures of `key` (of one category, or all when None)."""

    @abc.abstractmethod
    async def _first_failure(self, tx, key: str, category: str, at: float, within: float,
                             message: str | None = None) -> float | None:
        """Record a failure at `at`, forget this key's failures of `category` older than the
        window, and return the time of the earliest that remains; None (nothing recorded) when
        `message` already has one within the window."""

    @abc.abstractmethod
    async def _breaker_hit(self, tx, domain: str, key: str, at: float, within: float) -> int:
        """Record that `key` at `domain` would be listed at `at`, forget the domain's hits
        older than the window, and return how many distinct addresses remain in it."""

    @abc.abstractmethod
    async def _clear_breaker_hits(self, tx, domain: str) -> None: ...

    async def _breaker_hit_addresses(self, tx, domain: str, since: float) -> list[str]:
        """The distinct addresses of the hits counted under `domain` (a recipient domain or
        `provider:NAME`) after `since`. Not abstract: a store written before the provider breaker
        still loads (both backends here implement it)."""
        raise NotImplementedError

    @abc.abstractmethod
    async def _held_count(self, tx, domain: str) -> int:
        """Held listings at `domain`: more than none means its breaker is tripped."""

    @abc.abstractmethod
    async def _fetch_held(self, tx, key: str) -> BounceEntry | None: ...

    @abc.abstractmethod
    async def _hold(self, tx, entry: BounceEntry, domain: str) -> None:
        """Insert or replace the held listing for entry.address."""

    @abc.abstractmethod
    async def _take_held(self, tx, domain: str | None, key: str | None, holder: str | None = None) -> list[BounceEntry]:
        """Delete and return the held listings at the recipient `domain` (whichever breaker holds
        them), the one of `key`, or those `holder` (`provider:NAME`) holds; each with `held_by`."""

    @abc.abstractmethod
    async def _recent_auto_entries(self, tx, domain: str, since: float, categories) -> list[BounceEntry]:
        """The relay's own (source auto) listings at `domain` first made after `since`
        for one of `categories`."""


def _held_target(target: str, provider: bool = False) -> tuple[str | None, str | None, str | None]:
    """`example.com` or `@example.com` -> (domain, None, None); an address -> (None, its key, None);
    with `provider`, a provider's name -> (None, None, `provider:NAME`)."""
    text = target.strip()
    if provider:
        from ..suppression import provider_name

        name = provider_name(text)
        if name is None:
            raise ValueError(f"{target!r} is not a provider's name (a domain such as google.com)")
        return None, None, PROVIDER_PREFIX + name
    if "@" in text.lstrip("@"):
        return None, normalise(text), None
    from ..domains import normalise_domain

    return normalise_domain(text.lstrip("@")), None, None


def _listing(listed: BounceEntry | None, key: str, category: str, reply_text: str, rule: str, at: float,
             failures: int, expire_after: float | None) -> BounceEntry:
    """The entry after a failure that lists (or re-lists) the address."""
    # The provider's words as an event carries them (events.MAX_EVENT_TEXT, its start and a marker): a
    # hostile server's or bounce's megabyte of text was stored whole, and read back at every RCPT.
    reply_text = bounded_text(reply_text)
    now = to_datetime(at)
    expires = None if expire_after is None else to_datetime(at + expire_after)
    if listed is None:
        return BounceEntry(address=key, category=category, reply=reply_text, rule=rule, first_seen=now,
                           last_seen=now, count=failures, source="auto", note="", expires_at=expires,
                           listed_now=True)
    # Already listed: the latest failure explains it best, the listing keeps its
    # origin (an operator's entry stays the operator's), and it never gets shorter.
    if listed.expires_at is None or expires is None:
        expires = None
    else:
        expires = max(listed.expires_at, expires)
    return replace(listed, category=category, reply=reply_text, rule=rule, last_seen=now,
                   count=listed.count + 1, expires_at=expires)
