"""VERP return paths that carry an authenticated token, so that a bounce is tied to the message it
reports and a forged one is refused.

    sender  noreply@example.com, transaction 3f2a9c01d4e5b677, bounce domain bounces.example.com
    return  noreply=example.com=aeaqdkrvyaadpwqwaf3ft3qc7jbhiukw@bounces.example.com

The local part is `SENDER-LOCAL=SENDER-DOMAIN=TOKEN` (VERP's sender-in-the-address shape), TOKEN being
base32 in lower case: only letters and 2-7, so that a server folding the local part to one case (many
do, although RFC 5321 2.4 says it is case-sensitive) does not break it. TOKEN holds a version, the day it
was made, the relay's transaction id and an HMAC-SHA256 tag (truncated to 48 bits) over all of it and
the lower-cased sender, with the key from `bounces_in.key_file`: changing any character (the sender
included) or forging a token without the key fails verification. Tokens older than MAX_AGE_DAYS are
refused (a bounce arrives within the sender's queue lifetime, days; a replayed old one does not).

RFC 5321 4.5.3.1.1 limits a local part to 64 octets (an SMTPUTF8 sender's is counted in octets of
UTF-8). When the sender's address does not fit beside the token, the return path carries the token alone (28 characters) and the sender is only in the
transaction's own events (tied by `transaction_id`).

The recipient is not in the token: the relay answers in lockstep, so the upstream's MAIL FROM (and
so the return path) is sent before any RCPT is known. With one return path per transaction, the
transaction id identifies the message. The token authenticates that transaction, not the addresses a
bounce names: every recipient saw the return path and could mail a report naming anyone to it. So the
recipients the next hop accepted are recorded when it accepts the message (relay/steps/verp.py, table
`verp_recipients`, kept MAX_AGE_DAYS and a day), and bounces_in acts only on a failed recipient that
was one of them (issue 13).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
import time
from dataclasses import dataclass

VERSION = 1
FLAG_SENDER = 0x80            # the sender is in the local part, before the token
MAX_AGE_DAYS = 30
TAG_BYTES = 6
LOCAL_PART_MAX = 64           # RFC 5321 4.5.3.1.1
_TOKEN = re.compile(r"^[a-z2-7]{28}$")
_CONTEXT = b"relay-verp-v1\0"


class VerpError(ValueError):
    """Why a return path is not one of ours (forged, altered, expired, malformed)."""


@dataclass(frozen=True)
class VerpToken:
    sender: str               # the original envelope sender, lower case ("" when it did not fit)
    transaction_id: str       # the relay's transaction id of the original send (hex)
    day: int                  # days since the epoch (UTC) when the return path was made
    return_path: str = ""

    def as_fields(self) -> dict:
        return {"return_path": self.return_path, "sender": self.sender or None,
                "transaction_id": self.transaction_id,
                "sent_on": time.strftime("%Y-%m-%d", time.gmtime(self.day * 86400))}


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def _unb32(text: str) -> bytes:
    padded = text.upper() + "=" * (-len(text) % 8)
    return base64.b32decode(padded)


class VerpCodec:
    def __init__(self, key: bytes):
        if not key:
            raise ValueError("a VERP key is required")
        self._key = key

    def _tag(self, head: bytes, sender: str) -> bytes:
        mac = hmac.new(self._key, _CONTEXT + head + b"\0" + sender.encode("utf-8", "surrogateescape"),
                       hashlib.sha256)
        return mac.digest()[:TAG_BYTES]

    def return_path(self, sender: str, transaction_id: str, bounce_domain: str, now: float | None = None) -> str:
        """The return path for one transaction. `sender` is the original envelope sender (not empty:
        bounces are never sent to bounces), `transaction_id` the relay's 16-hex-digit id."""
        if not sender or "@" not in sender:
            raise ValueError("VERP needs a sender address")
        txn = bytes.fromhex(transaction_id)
        if len(txn) != 8:
            raise ValueError("transaction id must be 8 bytes of hex")
        day = int((time.time() if now is None else now) // 86400) & 0xFFFF
        local, _, domain = sender.lower().rpartition("@")
        in_clear = f"{local}={domain}="
        # Octets, not characters (RFC 5321 4.5.3.1.1 counts octets; an SMTPUTF8 local part, RFC 6531,
        # is sent as UTF-8): an SMTPUTF8 sender of 18 "ñ" is 59 characters beside the token but 77
        # octets, a local part a strict next hop may refuse at MAIL (and with it the message).
        with_sender = len(in_clear.encode("utf-8", "surrogateescape")) + 28 <= LOCAL_PART_MAX
        flags = VERSION | (FLAG_SENDER if with_sender else 0)
        head = struct.pack(">BH", flags, day) + txn
        tag = self._tag(head, sender.lower() if with_sender else "")
        token = _b32(head + tag)
        return f"{in_clear if with_sender else ''}{token}@{bounce_domain.lower()}"

    def verify(self, address: str, now: float | None = None) -> VerpToken:
        """The token a return path carries; VerpError says why it is not a valid one of ours."""
        local, at, domain = address.rpartition("@")
        if not at:
            raise VerpError("not an address")
        local = local.lower()
        parts = local.split("=")
        token = parts[-1]
        if not _TOKEN.match(token):
            raise VerpError("no VERP token in the local part")
        raw = _unb32(token)
        if _b32(raw) != token:
            # 28 characters carry 140 bits for 136: the last one has unused bits. Only the canonical
            # spelling is ours, so that no character of a return path can change without notice.
            raise VerpError("the token is not in canonical form (altered return path)")
        head, tag = raw[:11], raw[11:]
        flags, day = struct.unpack(">BH", head[:3])
        if flags & 0x7F != VERSION:
            raise VerpError("unknown token version")
        sender = ""
        if flags & FLAG_SENDER:
            if len(parts) < 3 or not parts[-2]:
                raise VerpError("the sender is missing from the return path")
            sender = f"{'='.join(parts[:-2])}@{parts[-2]}"
        elif len(parts) != 1:
            raise VerpError("unexpected text before the token")
        if not hmac.compare_digest(tag, self._tag(head, sender)):
            raise VerpError("the token does not match (forged or altered return path)")
        today = int((time.time() if now is None else now) // 86400) & 0xFFFF
        age = (today - day) & 0xFFFF
        if age > MAX_AGE_DAYS and age < 0xFFFF:  # 0xFFFF: made "tomorrow" (clock skew), accepted
            raise VerpError(f"the return path is {age} days old (at most {MAX_AGE_DAYS})")
        return VerpToken(sender=sender, transaction_id=head[3:11].hex(), day=day, return_path=address.lower())
