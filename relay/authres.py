"""Authentication-Results (RFC 8601): verifying what arrives signed, and saying so.

Three parts, each usable alone:

- `verify_dkim(message, resolver)`: every DKIM-Signature of a message checked
  (RFC 6376 6), the keys fetched through our async resolver, the hashing and
  the public-key step done by dkimpy in a worker thread (a large body must not
  stall other sessions).
- `format_header(authserv_id, results)`: the Authentication-Results field.
- `forged_indexes()` / `strip_forged()`: RFC 8601 5 says an MTA MUST remove
  Authentication-Results fields that claim its own authserv-id but arrived from
  outside, or a sender could forge "dkim=pass" in our name and have it believed
  further in.
"""

from __future__ import annotations

import asyncio
import base64
import re
from dataclasses import dataclass, field

import dkim as dkimpy
from dkim.util import InvalidTagValueList, parse_tag_value

from .dns import DnsTemporaryError, Resolver

__all__ = ["MethodResult", "verify_dkim", "format_header", "authserv_id_of", "forged_indexes",
           "strip_forged", "MAX_SIGNATURES"]

# RFC 6376 6.1: a verifier MAY limit how many signatures it checks; each costs
# a DNS query and a public-key operation, so a message cannot make us do
# unbounded work.
MAX_SIGNATURES = 8

# RFC 8601 2.2 value = token / quoted-string, token as in RFC 2045 5.1 (no tspecials).
_TSPECIALS = set('()<>@,;:\\"/[]?=')
_FIELD_SPLIT = re.compile(rb"\r\n(?![ \t])")


@dataclass(frozen=True)
class MethodResult:
    """One resinfo of RFC 8601 2.2: method=result, an optional reason, properties."""

    method: str  # "dkim" | "spf"
    result: str  # RFC 8601 2.7.1 (dkim) / 2.7.2 (spf) result values
    reason: str | None = None
    properties: tuple[tuple[str, str], ...] = ()  # ("header.d", "example.com"), ...
    detail: dict = field(default_factory=dict, compare=False)  # for notes and events

    def as_dict(self) -> dict:
        out = {"method": self.method, "result": self.result}
        if self.reason:
            out["reason"] = self.reason
        out.update({k: v for k, v in self.properties})
        return out


# --- the header ------------------------------------------------------------

def _value(text: str) -> str:
    """A token when it can be one, else a quoted-string (RFC 5322 3.2.4)."""
    if text and all(33 <= ord(c) < 127 and c not in _TSPECIALS for c in text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _pvalue(prop: str, text: str) -> str:
    # RFC 8601 2.2: pvalue may be a bare [local-part "@"] domain-name.
    if re.fullmatch(r"(?:[A-Za-z0-9.!#$%&'*+\-/=?^_`{|}~]+@)?[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?", text):
        return text
    return _value(text)


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii").replace("\r", " ").replace("\n", " ")


def format_header(authserv_id: str, results: list[MethodResult]) -> bytes:
    """`Authentication-Results: <authserv-id>; dkim=...; spf=...` folded one
    resinfo a line, CRLF-terminated. With no results: `; none` (RFC 8601 2.2)."""
    parts = []
    for r in results:
        piece = f"{r.method}={r.result}"
        if r.reason:
            piece += f" reason={_value(_ascii(r.reason))}"
        for name, value in r.properties:
            piece += f" {name}={_pvalue(name, _ascii(value))}"
        parts.append(piece)
    body = ";\r\n\t".join(parts) if parts else "none"
    return f"Authentication-Results: {authserv_id};\r\n\t{body}\r\n".encode("ascii")


# --- forged headers ------------------------------------------------------------

def _skip_cfws(text: str, i: int) -> int:
    """Index after folding white space and (nested) comments (RFC 5322 3.2.2)."""
    depth = 0
    while i < len(text):
        c = text[i]
        if depth:
            if c == "\\":
                i += 2
                continue
            depth += {"(": 1, ")": -1}.get(c, 0)
        elif c == "(":
            depth = 1
        elif not c.isspace():
            break
        i += 1
    return i


# How far into an Authentication-Results value its authserv-id is looked for. The id is the first
# token after optional comments (RFC 8601 2.2); the scan below walks character by character in Python
# (0.2 us each: a 1 MB comment held the event loop 230 ms, a 30 MB one about 7 s). A field whose id
# does not end within this many characters is removed as if it claimed ours: it cannot be told from
# a forgery at a bounded cost, and real ones carry at most a short comment before the id.
AUTHSERV_ID_WITHIN = 1024
_TOKEN = re.compile(r"[^\s;()]+")  # an unquoted authserv-id: up to white space, ";" or a comment


def _authserv_id(value: str) -> tuple[str | None, int]:
    """The authserv-id of `value`, lower-cased, and the index where reading it stopped."""
    i = _skip_cfws(value, 0)
    if i < len(value) and value[i] == '"':  # a quoted-string authserv-id
        j = i + 1
        out = []
        while j < len(value) and value[j] != '"':
            if value[j] == "\\" and j + 1 < len(value):
                j += 1
            out.append(value[j])
            j += 1
        ident, end = "".join(out), j + 1
    else:
        m = _TOKEN.match(value, i)
        ident, end = (m.group(0), m.end()) if m else ("", i)
    ident = ident.strip().rstrip(".").lower()
    return ident or None, end


def authserv_id_of(value: str) -> str | None:
    """The authserv-id of an Authentication-Results value (RFC 8601 2.2: the
    first token, before the optional version and the first ";"), lower-cased."""
    return _authserv_id(value)[0]


def _claims(value: str, ours: str, cut: bool = False) -> bool:
    """Whether an Authentication-Results value claims the authserv-id `ours`, or cannot be told not
    to within its first AUTHSERV_ID_WITHIN characters (`cut`: `value` is already the start of a
    longer one)."""
    head = value[:AUTHSERV_ID_WITHIN]
    ident, end = _authserv_id(head)
    if (cut or len(value) > len(head)) and end >= len(head):
        return True  # the id runs past the window (or never starts in it)
    return ident == ours


def forged_indexes(headers: list[tuple[str, str]], authserv_id: str) -> list[int]:
    """Positions in `headers` ((name, value) pairs, as Message.headers()) of
    Authentication-Results fields that claim `authserv_id` (or whose id cannot be read within
    AUTHSERV_ID_WITHIN characters). Comparison is case-insensitive: the authserv-id is normally a
    host name (RFC 8601 2.5)."""
    ours = authserv_id.rstrip(".").lower()
    return [i for i, (name, value) in enumerate(headers)
            if name.lower() == "authentication-results" and _claims(value, ours)]


def strip_forged(header_block: bytes, authserv_id: str) -> bytes:
    """`header_block` (CRLF lines, as Message.header_block) without the
    Authentication-Results fields that claim `authserv_id`; others are kept
    byte for byte, in order."""
    ours = authserv_id.rstrip(".").lower()
    fields = _FIELD_SPLIT.split(header_block)
    kept = []
    for raw in fields:
        name, sep, value = raw.partition(b":")
        if sep and name.strip().lower() == b"authentication-results":
            # Unfolded, the id's window is at most this many bytes of the folded value (a fold is 3).
            window = AUTHSERV_ID_WITHIN * 3 + 1
            head = value[:window].decode("utf-8", "replace")
            if _claims(re.sub(r"\r\n[ \t]", " ", head), ours, cut=len(value) > window):
                continue
        kept.append(raw)
    return b"\r\n".join(kept)


# --- DKIM verification ---------------------------------------------------------

@dataclass(frozen=True)
class _Signature:
    index: int  # among DKIM-Signature fields, top first (dkimpy's idx)
    tags: dict | None
    domain: str
    selector: str
    algorithm: str
    b_prefix: str
    problem: str | None  # why it cannot be checked, when it cannot


def _header_fields(message: bytes) -> list[tuple[bytes, bytes]]:
    """(name, value) of each header field, values still folded (RFC 5322 2.2)."""
    if message.startswith(b"\r\n"):
        return []  # RFC 5322 2.1: an empty first line ends a header section that has no fields
    end = message.find(b"\r\n\r\n")
    block = message[: end + 2] if end >= 0 else message
    out = []
    for raw in _FIELD_SPLIT.split(block):
        name, sep, value = raw.partition(b":")
        if sep:
            out.append((name.strip(), value))
    return out


def _signatures(message: bytes, limit: int | None = None) -> list[_Signature]:
    """The first `limit` DKIM-Signature fields (all with None), read. The others are not even parsed:
    dkimpy's tag parser runs on the event loop here, and 10,000 signatures held it 124 ms."""
    out = []
    index = 0
    for name, value in _header_fields(message):
        if name.lower() != b"dkim-signature":
            continue
        if limit is not None and index >= limit:
            break
        try:
            tags = parse_tag_value(value)
            problem = None
        except InvalidTagValueList as exc:
            tags, problem = None, f"malformed signature ({exc})"
        get = (lambda k: tags.get(k, b"").decode("ascii", "replace")) if tags else (lambda k: "")
        domain, selector = get(b"d").strip().lower(), get(b"s").strip()
        if tags is not None and (not domain or not selector):
            problem = "signature without d= or s="
        b64 = re.sub(r"\s+", "", get(b"b"))
        out.append(_Signature(index, tags, domain, selector, get(b"a").strip().lower(), b64[:8], problem))
        index += 1
    return out


def _key_record(records: list[str]) -> str | None:
    """The key record among the TXT records of SELECTOR._domainkey.DOMAIN
    (RFC 6376 3.6.2.2: one is expected; take the first that looks like a key)."""
    for r in records:
        if "p=" in r:
            return r
    return None


def _verify_all(message: bytes, work: list[tuple[_Signature, str]]) -> list[tuple[str, str | None]]:
    """dkimpy's verification of each signature against the key we fetched for
    it. Runs in a worker thread: parsing and hashing a large body takes time."""
    d = dkimpy.DKIM(message, minkey=1024)
    return [_verify_one(d, sig, key_record) for sig, key_record in work]


def _verify_one(d: "dkimpy.DKIM", sig: _Signature, key_record: str) -> tuple[str, str | None]:
    name = f"{sig.selector}._domainkey.{sig.domain}"
    key_bytes = key_record.encode("ascii", "replace")
    try:
        dkimpy.evaluate_pk(name.encode(), key_bytes)
    except (dkimpy.KeyFormatError, ValueError, TypeError, base64.binascii.Error) as exc:
        return "permerror", f"bad key record at {name}: {exc}"
    except dkimpy.DKIMException as exc:
        return "permerror", f"unusable key at {name}: {exc}"
    try:
        ok = d.verify(idx=sig.index, dnsfunc=lambda _name, timeout=5: key_bytes)
    except dkimpy.ValidationError as exc:
        text = str(exc)
        if "body hash mismatch" in text:
            return "fail", "body hash mismatch"
        # Syntax, expiry, unknown algorithm: RFC 8601 2.7.1 "neutral".
        return "neutral", text
    except dkimpy.KeyFormatError as exc:  # e.g. an RSA key under 1024 bits (RFC 8301 3.2)
        return "permerror", str(exc)
    except dkimpy.DKIMException as exc:
        return "neutral", str(exc)
    return ("pass", None) if ok else ("fail", "signature did not verify")


async def verify_dkim(message: bytes, resolver: Resolver, limit: int = MAX_SIGNATURES) -> list[MethodResult]:
    """One MethodResult per DKIM-Signature (top first, at most `limit`)."""
    sigs = _signatures(message, limit)
    if not sigs:
        return []

    async def key_for(sig: _Signature):
        if sig.problem:
            return None
        try:
            return await resolver.txt(f"{sig.selector}._domainkey.{sig.domain}")
        except DnsTemporaryError as exc:
            return exc

    keys = await asyncio.gather(*(key_for(s) for s in sigs))
    outcome: dict[int, tuple[str, str | None]] = {}
    work = []
    for sig, key in zip(sigs, keys):
        if sig.problem:
            outcome[sig.index] = ("neutral", sig.problem)
        elif isinstance(key, DnsTemporaryError):
            outcome[sig.index] = ("temperror", f"key lookup failed: {key.reason}")
        elif _key_record(key or []) is None:
            outcome[sig.index] = ("permerror", f"no key for signature at {sig.selector}._domainkey.{sig.domain}")
        else:
            work.append((sig, _key_record(key)))
    if work:
        for (sig, _), verdict in zip(work, await asyncio.to_thread(_verify_all, message, work)):
            outcome[sig.index] = verdict

    results = []
    for sig in sigs:
        props = []
        if sig.domain:
            props.append(("header.d", sig.domain))
        if sig.selector:
            props.append(("header.s", sig.selector))
        if sig.algorithm:
            props.append(("header.a", sig.algorithm))
        if sig.b_prefix:
            # RFC 6008: the first 8 characters of b= tell several signatures apart.
            props.append(("header.b", sig.b_prefix))
        result, reason = outcome[sig.index]
        results.append(MethodResult("dkim", result, reason, tuple(props),
                                    detail={"domain": sig.domain, "selector": sig.selector}))
    return results
