"""DKIM signing (RFC 6376) with RSA-SHA256 and Ed25519-SHA256 (RFC 8463).

Why our own signer rather than dkimpy's `dkim.sign`: dkimpy does the RSA step
in pure Python (7-8 ms per RSA-2048 signature, blocking the event loop). Here
the canonicalisation is ours (RFC 6376 3.4) and the private-key step goes
through `cryptography` (OpenSSL): about 0.25 ms for RSA-2048, 0.02 ms for
Ed25519. Verification is left to receivers; the tests check our signatures
with implementations that are not ours (Mail::DKIM, dkimpy).

The message given to `sign()` must be the exact bytes that go upstream, with
CRLF line ends and without SMTP dot-stuffing (the SMTP client adds that on the
wire and the receiver removes it before verifying).

The body hash is computed in chunks of whole lines (`body_hash`), so that a
caller can run it in a thread for a large body: each chunk holds the GIL only
briefly, and hashlib releases it while hashing, so the event loop keeps running.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import time
from dataclasses import dataclass
from typing import Any, Iterable

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

__all__ = [
    "DkimKey", "DEFAULT_HEADERS", "ALGORITHMS", "CANONICALIZATIONS", "sign", "body_hash", "split_message",
    "body_offset",
    "public_key_record", "generate_key", "load_private_key", "key_algorithm", "txt_strings",
]

ALGORITHMS = ("rsa-sha256", "ed25519-sha256")
CANONICALIZATIONS = ("simple", "relaxed")

# Signed when present: most of the fields RFC 6376 5.4.1 recommends (From is a
# MUST, 5.4), plus Message-ID, Sender and the MIME fields, whose change would
# alter what the reader sees; List-Unsubscribe-Post because RFC 8058 4 wants it
# covered by a valid signature for one-click unsubscribe.
DEFAULT_HEADERS = (
    "From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References", "MIME-Version",
    "Content-Type", "Content-Transfer-Encoding", "List-Unsubscribe", "List-Unsubscribe-Post", "Reply-To",
    "Sender",
)
# Listed once more than they occur: RFC 6376 5.4.2 and 8.15, a name in h= with
# no instance left signs "the field is absent", so a second From added in
# transit breaks the signature instead of being shown to the reader.
OVERSIGNED = frozenset({"from"})

MIN_RSA_BITS = 1024  # RFC 8301 3.2: signers MUST use at least 1024 bits (and SHOULD use 2048)
MAX_LINE = 78  # RFC 5322 2.1.1: lines SHOULD be no more than 78 characters

# Bodies are canonicalised and hashed in pieces of whole lines about this big.
BODY_CHUNK = 64 * 1024


@dataclass(frozen=True)
class DkimKey:
    """One signing key of one domain, as domains.yaml describes it."""

    selector: str
    private_key: Any  # rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    headers: tuple[str, ...] = DEFAULT_HEADERS
    header_canonicalization: str = "relaxed"
    body_canonicalization: str = "relaxed"
    expire: float | None = None  # seconds after t= for x= (RFC 6376 3.5), None: no x=
    source: str = ""  # where the key came from (a file path), for messages only

    @functools.cached_property
    def algorithm(self) -> str:
        # Cached (the key never changes): an isinstance() against cryptography's ABCs costs about a
        # microsecond, and signing asks it several times a message.
        return key_algorithm(self.private_key)

    @property
    def canonicalization(self) -> str:
        return f"{self.header_canonicalization}/{self.body_canonicalization}"


# --- keys ------------------------------------------------------------------

def key_algorithm(private_key: Any) -> str:
    if isinstance(private_key, rsa.RSAPrivateKey):
        return "rsa-sha256"
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return "ed25519-sha256"
    raise ValueError(f"{type(private_key).__name__} is not a DKIM key type (RSA or Ed25519)")


@functools.lru_cache(maxsize=4096)
def load_private_key(data: bytes) -> Any:
    """An RSA or Ed25519 private key from PEM (PKCS#8 or PKCS#1). ValueError says what is wrong.

    Kept by content: a reload parses only keys that changed, and a key shared by many domains once
    (review-20 F4). OpenSSL's RSA consistency check holds the interpreter lock ~120 ms per 2048-bit
    key and ~800 ms per 4096-bit one (a thread does not spare the loop), so it is replaced by what
    matters for DKIM: a signature made with the key verifies with its own public key (~2 ms)."""
    if b"-----BEGIN" not in data or b"PRIVATE KEY-----" not in data:
        if b"PUBLIC KEY-----" in data:
            raise ValueError("is a public key, not a PEM private key")
        raise ValueError("not a PEM private key")
    try:
        key = serialization.load_pem_private_key(data, password=None, unsafe_skip_rsa_key_validation=True)
    except TypeError:
        raise ValueError("the PEM private key is encrypted; DKIM keys must be stored without a passphrase") from None
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a PEM private key ({exc})") from None
    except Exception as exc:  # unsupported algorithm and the like
        raise ValueError(f"not a usable PEM private key ({exc})") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA key of {key.key_size} bits is too short (RFC 8301: at least 1024, 2048 advised)")
        _check_rsa_signs(key)
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448

    kind = {ec.EllipticCurvePrivateKey: "an ECDSA", dsa.DSAPrivateKey: "a DSA", ed448.Ed448PrivateKey: "an Ed448"}
    name = next((v for k, v in kind.items() if isinstance(key, k)), f"a {type(key).__name__}")
    # RFC 6376 3.3 and RFC 8463 define only rsa-sha256 and ed25519-sha256 (rsa-sha1 is obsolete, RFC 8301).
    raise ValueError(f"{name} key cannot sign DKIM; use RSA (rsa-sha256) or Ed25519 (ed25519-sha256)")


def _check_rsa_signs(key: Any) -> None:
    """A corrupt key (a changed byte in p, q or d: the PEM still parses once OpenSSL's check is
    skipped) makes signatures that fail at every receiver; sign and verify once instead."""
    probe = b"relay DKIM key check"
    try:
        signature = key.sign(probe, padding.PKCS1v15(), hashes.SHA256())
        key.public_key().verify(signature, probe, padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        raise ValueError("the RSA key is inconsistent: a signature made with it does not verify with its own "
                         "public key (a damaged file?)") from None


def generate_key(kind: str = "rsa", bits: int = 2048) -> Any:
    if kind == "rsa":
        if bits < MIN_RSA_BITS:
            raise ValueError(f"{bits} bits is too short for DKIM (RFC 8301: at least 1024, 2048 advised)")
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key type {kind!r} (rsa or ed25519)")


def private_key_pem(private_key: Any) -> bytes:
    return private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())


def public_key_record(private_key: Any) -> str:
    """The TXT value to publish at SELECTOR._domainkey.DOMAIN (RFC 6376 3.6.1).

    RSA: p= is the DER SubjectPublicKeyInfo, as every verifier expects.
    Ed25519: p= is the raw 32-byte public key (RFC 8463 4), not SPKI.
    """
    public = private_key.public_key()
    if isinstance(private_key, rsa.RSAPrivateKey):
        der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode('ascii')}"
    raise ValueError(f"{type(private_key).__name__} is not a DKIM key type")


def txt_strings(value: str, size: int = 255) -> list[str]:
    """A TXT value cut into character-strings of at most 255 bytes (RFC 1035 3.3.14);
    verifiers join them with nothing between (RFC 6376 3.6.2.2)."""
    data = value.encode("ascii")
    return [data[i:i + size].decode("ascii") for i in range(0, len(data), size)] or [""]


# --- canonicalisation (RFC 6376 3.4) ----------------------------------------

_FIELD_SPLIT = re.compile(rb"\r\n(?![ \t])")
_UNFOLD = re.compile(rb"\r\n(?=[ \t])")
_WSP_RUN = re.compile(rb"[ \t]+")
# For bodies: tabs to spaces, then only runs of two or more spaces need a
# substitution. Same result as _WSP_RUN, and about ten times faster on text,
# where single spaces are everywhere.
_TAB_TO_SPACE = bytes.maketrans(b"\t", b" ")
_SPACE_RUN = re.compile(rb"  +")


def body_offset(message: bytes) -> tuple[bytes, int]:
    """(header block ending in CRLF, index where the body starts). RFC 5322 2.1:
    the first empty line ends the header. An offset rather than a slice: copying
    a 30 MB body costs the event loop tens of milliseconds."""
    if message.startswith(b"\r\n"):
        return b"", 2
    end = message.find(b"\r\n\r\n")
    if end < 0:  # no body at all
        return (message if message.endswith(b"\r\n") or not message else message + b"\r\n"), len(message)
    return message[:end + 2], end + 4


def split_message(message: bytes) -> tuple[bytes, bytes]:
    """(header block ending in CRLF, body)."""
    header_block, start = body_offset(message)
    return header_block, message[start:]


def header_fields(header_block: bytes) -> list[tuple[bytes, bytes]]:
    """(lower-cased name, the field exactly as in the message without its final CRLF)."""
    out = []
    for raw in _FIELD_SPLIT.split(header_block):
        if not raw:
            continue
        name, colon, _ = raw.partition(b":")
        if not colon:
            continue  # not a header field; nothing can select it
        out.append((name.rstrip(b" \t").lower(), raw))
    return out


def _relaxed_header(raw: bytes) -> bytes:
    # RFC 6376 3.4.2: lower-case the name, unfold, reduce WSP runs to one SP,
    # drop WSP at the end of the value and around the colon.
    name, _, value = raw.partition(b":")
    # Each substitution only where it has something to do: most fields are one line with single spaces.
    if b"\r\n" in value:
        value = _UNFOLD.sub(b"", value)
    if b"\t" in value or b"  " in value:
        value = _WSP_RUN.sub(b" ", value)
    return name.rstrip(b" \t").lower() + b":" + value.strip(b" ") + b"\r\n"


def _canon_header(raw: bytes, relaxed: bool) -> bytes:
    # RFC 6376 3.4.1: "simple" is the field unchanged, folding included.
    return _relaxed_header(raw) if relaxed else raw + b"\r\n"


def _line_spans(body: bytes, size: int, start: int = 0) -> Iterable[tuple[int, int]]:
    """(start, end) of pieces of `body[start:]` of about `size` bytes, each ending after a CRLF (but the last)."""
    pos, n = start, len(body)
    while pos < n:
        end = pos + size
        if end >= n:
            end = n
        else:
            crlf = body.find(b"\r\n", end - 1)
            end = n if crlf < 0 else crlf + 2
        yield pos, end
        pos = end


def _content_end(body, start: int) -> int:
    """Where the canonical body ends in `body[start:]`, which ends with CRLF: after the last line that
    is not empty (RFC 6376 3.4.3: "ignores all empty lines at the end"), or `start` when all are.
    Only the run of CR and LF at the end is looked at, a window at a time (no copy of the body): this
    runs in a thread, and one C call over a run of 60 MB (a message of nothing but bare LFs, made
    CRLF) kept the GIL, and so the event loop, for 0.3-0.4 s (issue #15)."""
    end = len(body)
    text = start  # where the run begins: just after the last octet that is not CR or LF
    high = end
    while high > start:
        low = max(start, high - _WINDOW)
        kept = bytes(body[low:high]).rstrip(b"\r\n")
        if kept:
            text = low + len(kept)
            break
        high = low
    breaks = _rfind_in_windows(body, b"\r\r", text, end), _rfind_in_windows(body, b"\n\n", text, end)
    run = max(max(breaks) + 1, text)  # the CRLF pairs end the body from here on
    if body[run:run + 1] == b"\n":
        run += 1
    return start if run == start else run + 2


_WINDOW = 64 * 1024


def _rfind_in_windows(body, pair: bytes, low: int, high: int) -> int:
    """body.rfind(pair, low, high) for a two-octet `pair`, a window at a time from the end (each window
    one short call, for a memoryview a copy of it): -1 when it is not there."""
    while high - low >= 2:
        lo = max(low, high - _WINDOW)
        at = bytes(body[lo:high]).rfind(pair)
        if at >= 0:
            return lo + at
        high = lo + 1  # the pair may straddle the two windows
    return -1


def _needs_relaxing(body, start: int, end: int | None = None) -> bool:
    """Whether relaxed body canonicalisation (RFC 6376 3.4.4) changes anything in `body[start:end]` but
    the trailing empty lines: a tab, a run of spaces, or a space at a line's end. Text without a space
    or a tab (what smtp-source sends, base64 parts) is told by two memchr calls."""
    end = len(body) if end is None else end
    if body.find(b"\t", start, end) >= 0:
        return True
    if body.find(b" ", start, end) < 0:
        return False
    return (body.find(b"  ", start, end) >= 0 or body.find(b" \r\n", start, end) >= 0
            or (end > start and body[end - 1:end] == b" "))


def _hash_as_is(body, start: int, relaxed: bool) -> bytes:
    """The body hash of a body whose canonical form is itself less its trailing empty lines: one
    hashlib call over a view of the message (no copy; hashlib lets go of the GIL while it hashes)."""
    digest = hashlib.sha256()
    if len(body) - start >= 2 and body[-2:] == b"\r\n":
        end = _content_end(body, start)
        if end > start:
            digest.update(memoryview(body)[start:end])
        elif not relaxed:
            digest.update(b"\r\n")  # 3.4.3: an empty body is one CRLF in "simple"; 3.4.4: nothing
    elif len(body) > start:
        digest.update(memoryview(body)[start:])
        digest.update(b"\r\n")  # 3.4.3, 3.4.4: a last line without CRLF gets one
    elif not relaxed:
        digest.update(b"\r\n")
    return digest.digest()


def body_hash(body: bytes, canonicalization: str = "relaxed", chunk: int = BODY_CHUNK, start: int = 0) -> bytes:
    """SHA-256 of the canonicalised `body[start:]` (RFC 6376 3.4.3, 3.4.4, 3.7), raw digest.

    Both algorithms drop empty lines at the end of the body, so empty lines are
    held back until a line with content follows them. "simple" turns an empty
    body into one CRLF; "relaxed" leaves it empty. A last line without CRLF gets
    one (both algorithms), which is also what the SMTP client sends.

    "simple", and "relaxed" over a body it would not change, hash the message's own bytes in one
    call; only a body with tabs, runs of spaces or spaces at line ends is rewritten, in pieces.
    """
    relaxed = canonicalization == "relaxed"
    if not relaxed or not _needs_relaxing(body, start):
        return _hash_as_is(body, start, relaxed)
    digest = hashlib.sha256()
    view = memoryview(body)
    held_empty_lines = 0
    for pos, end in _line_spans(body, chunk, start):
        if _needs_relaxing(body, pos, end):
            piece = body[pos:end]
            if not piece.endswith(b"\r\n"):
                piece += b"\r\n"
            # 3.4.4: WSP runs inside a line become one SP; WSP at line end goes. Each step only where
            # the piece has something for it (most text has no tab; many pieces no run of spaces).
            if b"\t" in piece:
                piece = piece.translate(_TAB_TO_SPACE)
            if b"  " in piece:
                piece = _SPACE_RUN.sub(b" ", piece)
            if b" \r\n" in piece:
                piece = piece.replace(b" \r\n", b"\r\n")
        elif end - pos >= 2 and body[end - 2:end] == b"\r\n":
            piece = view[pos:end]  # nothing to relax here (a base64 part, say): hashed as it is
        else:
            piece = bytes(view[pos:end]) + b"\r\n"  # the last line, without its CRLF
        # Empty lines at the end of a piece wait until a line with content follows them.
        stop = _content_end(piece, 0)
        if stop == 0:
            held_empty_lines += len(piece) // 2
            continue
        if held_empty_lines:
            digest.update(b"\r\n" * held_empty_lines)
        digest.update(piece[:stop])
        held_empty_lines = (len(piece) - stop) // 2
    return digest.digest()


# --- signing -----------------------------------------------------------------

@functools.lru_cache(maxsize=64)
def _wanted_names(wanted: tuple[str, ...]) -> tuple[tuple[str, bytes, int], ...]:
    """(name, its bytes, instances added beyond those present) for each distinct name, lower-cased."""
    out, seen = [], set()
    for header in wanted:
        lname = header.lower()
        if lname not in seen:
            seen.add(lname)
            out.append((lname, lname.encode("ascii"), 1 if lname in OVERSIGNED else 0))
    return tuple(out)


def _signed_names(fields: list[tuple[bytes, bytes]], wanted: Iterable[str]) -> list[str]:
    """h= names: each wanted field present, once per instance; From once more."""
    counts: dict[bytes, int] = {}
    for name, _ in fields:
        counts[name] = counts.get(name, 0) + 1
    names: list[str] = []
    for lname, key, extra in _wanted_names(tuple(wanted)):
        n = counts.get(key, 0) + extra
        if n:
            names.extend([lname] * n)
    return names


def _selected_fields(fields: list[tuple[bytes, bytes]], names: list[str]) -> list[bytes]:
    """RFC 6376 5.4.2: for a name listed k times, take its instances bottom-up;
    a name with no instance left contributes nothing (the over-sign)."""
    by_name: dict[bytes, list[bytes]] = {}
    for name, raw in fields:
        by_name.setdefault(name, []).append(raw)
    out = []
    for name in names:
        stack = by_name.get(name.encode("ascii"))
        if stack:
            out.append(stack.pop())
    return out


def _fold_tags(tags: list[tuple[str, str]]) -> str:
    """`DKIM-Signature: t=v; ...;` folded at MAX_LINE. RFC 6376 3.2 allows FWS
    around tags, and 3.5 allows it around the colons of h=, so a long header
    list is folded after a colon. The fold is greedy, tag after tag: all but the last tag (bh=, a new
    value each message) are folded once for the same key, domain, second and header list."""
    lines = list(_folded(tuple(tags[:-1])))
    _fold_into(lines, tags[-1:])
    return "\r\n".join(lines)


@functools.lru_cache(maxsize=256)
def _folded(tags: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    lines = ["DKIM-Signature:"]
    _fold_into(lines, tags)
    return tuple(lines)


def _fold_into(lines: list[str], tags) -> None:
    for tag, value in tags:
        if tag == "h":
            names = value.split(":")
            tokens = [f"{n}:" for n in names[:-1]] + [f"{names[-1]};"]
            tokens[0] = "h=" + tokens[0]
        else:
            tokens = [f"{tag}={value};"]
        if len(lines[-1]) + 1 + len(tokens[0]) <= MAX_LINE:
            lines[-1] += " " + tokens[0]
        else:
            lines.append("\t" + tokens[0])
        for token in tokens[1:]:
            if len(lines[-1]) + len(token) <= MAX_LINE:
                lines[-1] += token
            else:
                lines.append("\t" + token)


# Stateless parameter objects of the RSA signature: made once, not per message.
_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@functools.lru_cache(maxsize=1024)
def _domain_ascii(domain: str) -> str:
    domain = domain.strip().rstrip(".")
    if domain.isascii():
        return domain.lower()
    from .address import split as split_address

    return split_address(f"postmaster@{domain}")[1]


def sign(message: bytes, key: DkimKey, domain: str, now: float | None = None, *,
         body_digest: bytes | None = None, skip_fields: Iterable[int] = ()) -> bytes:
    """The `DKIM-Signature: ...\\r\\n` field for `message` signed by `key` for d=`domain`.

    `body_digest`: the body hash when the caller computed it already (for a
    large body, in a thread: see `body_hash`); it must be for the key's body
    canonicalisation.
    `skip_fields`: indexes (in header order, as `Message.headers()` counts them)
    of fields that will be removed before the message is sent: they are
    neither signed nor counted.
    """
    header_block, start = body_offset(message)
    relaxed_headers = key.header_canonicalization == "relaxed"
    if body_digest is None:
        body_digest = body_hash(message, key.body_canonicalization, start=start)
    fields = header_fields(header_block)
    if skip_fields:
        skip = set(skip_fields)
        fields = [f for i, f in enumerate(fields) if i not in skip]
    names = _signed_names(fields, key.headers)
    timestamp = int(time.time() if now is None else now)
    algorithm = key.algorithm  # cached: isinstance() against cryptography's ABCs costs a microsecond or two
    tags = [("v", "1"), ("a", algorithm), ("c", key.canonicalization), ("d", _domain_ascii(domain)),
            ("s", key.selector), ("t", str(timestamp))]
    if key.expire is not None:
        # RFC 6376 3.5: x= must be later than t=.
        tags.append(("x", str(timestamp + max(1, int(key.expire)))))
    tags += [("h", ":".join(names)), ("bh", _b64(body_digest))]
    head = _fold_tags(tags) + "\r\n\tb="

    # RFC 6376 3.7: hash the selected fields, then this field with an empty b=
    # value and without its final CRLF, both in the header canonicalisation.
    signed = b"".join(_canon_header(raw, relaxed_headers) for raw in _selected_fields(fields, names))
    own = _canon_header(head.encode("ascii"), relaxed_headers)[:-2]
    data = signed + own
    private_key = key.private_key
    if algorithm == "rsa-sha256":
        signature = private_key.sign(data, _PKCS1V15, _SHA256)
    elif algorithm == "ed25519-sha256":
        # RFC 8463 3: PureEdDSA over the SHA-256 hash of the data, not the data itself.
        signature = private_key.sign(hashlib.sha256(data).digest())
    else:
        raise ValueError(f"{type(private_key).__name__} is not a DKIM key type")
    # Whitespace inside b= is ignored by verifiers (RFC 6376 3.5), so the value
    # may be folded freely: lines of MAX_LINE, starting with a tab.
    value = _b64(signature)
    first = MAX_LINE - len("\tb=")
    pieces = [value[:first]] + [value[i:i + MAX_LINE - 1] for i in range(first, len(value), MAX_LINE - 1)]
    return (head + "\r\n\t".join(pieces) + "\r\n").encode("ascii")
