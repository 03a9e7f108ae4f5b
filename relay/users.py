"""The AUTH users file: one `name:pbkdf2_sha256$ITERATIONS$SALT$HASH:DOMAINS` a line.

DOMAINS (comma-separated) are the sender domains the user may use, in MAIL FROM and in
the From: header the relay signs with DKIM; `*` allows any domain. A login should be a key
to one sender's mail, not to every domain the relay signs for. A line without DOMAINS (the
format before DOMAINS existed) still allows any domain, so that an upgrade never turns a
working submission into permanent 553s; `unrestricted` names those users, and the relay and
`relay check-config` warn about each of them.

Passwords are never stored or logged in clear. Verifying costs one PBKDF2 run
(tens of milliseconds, on purpose), so it never runs on the event loop: `check()`
hands it to a small pool of threads (hashlib releases the GIL while it hashes). A
successful check is remembered for a few minutes by a keyed digest, so that a
client that logs in for every message costs one HMAC. `FailedLogins` limits how
many wrong passwords one client address may try, so that guessing is slow and
costs the relay nothing once the limit is reached.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .errors import Problems
from .yamlfile import MAX_FILE_BYTES, read_text

SCHEME = "pbkdf2_sha256"
_DOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")
ITERATIONS = 120_000
_ANY = frozenset({"*"})

# PBKDF2 runs here, never on the event loop. Two threads: hashing is CPU work, and more threads
# than cores would only make each login slower; logins beyond them wait their turn.
_HASHING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="relay-auth")


def hash_password(password: str, iterations: int = ITERATIONS) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    b64 = lambda b: base64.b64encode(b).decode().rstrip("=")
    return f"{SCHEME}${iterations}${b64(salt)}${b64(digest)}"


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


class Users:
    SUCCESS_CACHE_SECONDS = 300

    def __init__(self, entries: dict[str, tuple[int, bytes, bytes]],
                 domains: dict[str, frozenset[str]] | None = None):
        self._entries = entries
        self._domains = domains or {}
        self.unrestricted = tuple(sorted(name for name in entries if not self._domains.get(name)))
        self._cache_key = secrets.token_bytes(32)
        self._recent: dict[bytes, float] = {}

    @classmethod
    def from_file(cls, path: Path) -> "Users":
        problems = Problems(str(path))
        entries: dict[str, tuple[int, bytes, bytes]] = {}
        domains: dict[str, frozenset[str]] = {}
        # Read at start and at every reload, like the config: bounded as config and policy files are
        # (one user's line is about 110 bytes, so some 9,000 users fit).
        lines = read_text(Path(path), problems, MAX_FILE_BYTES).splitlines()
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, stored = line.partition(":")
            stored, _, allowed = stored.partition(":")
            parts = stored.split("$")
            if not sep or not name or len(parts) != 4 or parts[0] != SCHEME or not parts[1].isdigit():
                # Never echo the line: it may hold a password pasted by mistake.
                problems.add(f"line {n}", f"expected NAME:{SCHEME}$ITERATIONS$SALT$HASH:DOMAINS "
                                          f"(make one with `relay users hash`)")
                continue
            try:
                entries[name] = (int(parts[1]), _unb64(parts[2]), _unb64(parts[3]))
            except ValueError:
                problems.add(f"line {n}", "salt or hash is not base64")
            names = [d.strip().lower().rstrip(".") for d in allowed.split(",") if d.strip()]
            bad = [d for d in names if d != "*" and not _DOMAIN.match(d)]
            if bad:
                problems.add(f"line {n}", f"{', '.join(map(repr, bad))}: not a domain name (DOMAINS is a "
                                          f"comma-separated list of sender domains, or *)")
            domains[name] = frozenset(names)
        problems.raise_if_any()
        return cls(entries, domains)

    def domains_of(self, name: str) -> frozenset[str]:
        """The sender domains `name` may use; {"*"} (any) when its line names none."""
        return self._domains.get(name) or _ANY

    async def check(self, name: str, password: str) -> bool:
        """verify() without blocking the event loop: a remembered success is one HMAC inline,
        anything else is hashed in the pool."""
        if self._remembered(name, password):
            return True
        return await asyncio.get_running_loop().run_in_executor(_HASHING, self.verify, name, password)

    def _remembered(self, name: str, password: str) -> bool:
        entry = self._entries.get(name)
        if entry is None:
            return False
        key = hmac.new(self._cache_key, f"{name}\0{password}".encode("utf-8", "surrogateescape") + entry[1],
                       "sha256").digest()
        return self._recent.get(key, 0) > time.monotonic()

    def verify(self, name: str, password: str) -> bool:
        entry = self._entries.get(name)
        if entry is None:
            # Spend the same time as for a real user, so timing does not reveal who exists.
            hashlib.pbkdf2_hmac("sha256", password.encode("utf-8", "surrogateescape"), b"x" * 16, ITERATIONS)
            return False
        iterations, salt, expected = entry
        key = hmac.new(self._cache_key, f"{name}\0{password}".encode("utf-8", "surrogateescape") + salt,
                       "sha256").digest()
        now = time.monotonic()
        if self._recent.get(key, 0) > now:
            return True
        digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8", "surrogateescape"), salt, iterations)
        if hmac.compare_digest(digest, expected):
            if len(self._recent) > 10000:
                self._recent.clear()
            self._recent[key] = now + self.SUCCESS_CACHE_SECONDS
            return True
        return False


class FailedLogins:
    """Failed AUTH attempts per client address, in a sliding window.

    Once an address has failed `limit` times within `window` seconds, its further attempts are
    refused at once (454, RFC 4954 6), without hashing, until the oldest failure leaves the
    window: a guesser gets a handful of tries a minute, and a flood of wrong passwords from one
    outsider costs no CPU (each would otherwise cost a PBKDF2 run). Memory is bounded: the
    addresses seen longest ago are forgotten first.

    Attempts being checked count too (`attempt`): a failure is known only once its hash has run, and
    every attempt made meanwhile passed `blocked()`. A guesser sending its AUTHs over parallel
    connections at once (limits.max_connections_per_client: 50) had all of them hashed, 50 guesses
    and 50 PBKDF2 runs a round instead of `limit`. An attempt that would make more than `limit`
    failures possible waits for the verdicts of those in flight (a right password is no failure: an
    honest client logging in on 20 connections at once waits a hash at most, never gets 454).
    """

    def __init__(self, limit: int = 10, window: float = 60.0, max_addresses: int = 10_000):
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._in_flight: dict[str, int] = {}  # attempts being checked, per address
        self._waiting: dict[str, list[asyncio.Future]] = {}  # attempts waiting for their verdicts

    async def begin(self, ip: str) -> bool:
        """Start an attempt from `ip`: True when it is refused (blocked) at once, without a check;
        else it counts as in flight until `end(ip, failed)`. Waits while the failures so far and
        the attempts in flight could reach the limit."""
        while True:
            if self.blocked(ip):
                return True
            in_flight = self._in_flight.get(ip, 0)
            times = self._recent(ip, time.monotonic())
            if (len(times) if times else 0) + in_flight < self.limit:
                self._in_flight[ip] = in_flight + 1
                return False
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(ip, []).append(waiter)
            try:
                await waiter
            finally:
                waiters = self._waiting.get(ip)
                if waiters is not None and waiter in waiters:  # cancelled (the client went away)
                    waiters.remove(waiter)
                    if not waiters:
                        del self._waiting[ip]

    def end(self, ip: str, failed: bool) -> None:
        """An attempt `begin` let through is over (also when cancelled: then `failed` is False)."""
        if failed:
            self.failed(ip)
        left = self._in_flight.get(ip, 1) - 1
        if left > 0:
            self._in_flight[ip] = left
        else:
            self._in_flight.pop(ip, None)
        for waiter in self._waiting.pop(ip, ()):
            if not waiter.done():
                waiter.set_result(None)  # each looks again

    def _recent(self, ip: str, now: float) -> deque[float] | None:
        times = self._failures.get(ip)
        if times is not None:
            while times and times[0] <= now - self.window:
                times.popleft()
        return times

    def blocked(self, ip: str) -> bool:
        times = self._recent(ip, time.monotonic())
        return times is not None and len(times) >= self.limit

    def failed(self, ip: str) -> None:
        now = time.monotonic()
        times = self._recent(ip, now)
        if times is None:
            times = self._failures[ip] = deque(maxlen=self.limit)
        self._failures.move_to_end(ip)
        times.append(now)
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)


def may_use(allowed: frozenset[str], domain: str | None) -> bool:
    """Whether a user with `allowed` sender domains may use `domain` (a subdomain of an allowed
    domain counts: mail.example.com under example.com)."""
    if "*" in allowed:
        return True
    if not domain:
        return False
    domain = domain.lower().rstrip(".")
    return any(domain == d or domain.endswith("." + d) for d in allowed)
