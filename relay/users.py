"""The AUTH users file: one `name:pbkdf2_sha256$ITERATIONS$SALT$HASH` a line.

Passwords are never stored or logged in clear. Verifying costs one PBKDF2 run
(tens of milliseconds, on purpose); a successful check is remembered for a few
minutes by a keyed digest, so that a client that logs in for every message does
not stall the event loop each time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from pathlib import Path

from .errors import Problems

SCHEME = "pbkdf2_sha256"
ITERATIONS = 120_000


def hash_password(password: str, iterations: int = ITERATIONS) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    b64 = lambda b: base64.b64encode(b).decode().rstrip("=")
    return f"{SCHEME}${iterations}${b64(salt)}${b64(digest)}"


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


class Users:
    SUCCESS_CACHE_SECONDS = 300

    def __init__(self, entries: dict[str, tuple[int, bytes, bytes]]):
        self._entries = entries
        self._cache_key = secrets.token_bytes(32)
        self._recent: dict[bytes, float] = {}

    @classmethod
    def from_file(cls, path: Path) -> "Users":
        problems = Problems(str(path))
        entries: dict[str, tuple[int, bytes, bytes]] = {}
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            problems.add("(file)", f"cannot read: {exc.strerror or exc}")
            problems.raise_if_any()
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, stored = line.partition(":")
            parts = stored.split("$")
            if not sep or not name or len(parts) != 4 or parts[0] != SCHEME or not parts[1].isdigit():
                # Never echo the line: it may hold a password pasted by mistake.
                problems.add(f"line {n}", f"expected NAME:{SCHEME}$ITERATIONS$SALT$HASH "
                                          f"(make one with `relay users hash`)")
                continue
            try:
                entries[name] = (int(parts[1]), _unb64(parts[2]), _unb64(parts[3]))
            except ValueError:
                problems.add(f"line {n}", "salt or hash is not base64")
        problems.raise_if_any()
        return cls(entries)

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
