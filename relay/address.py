"""One canonical spelling of an email address, used for every bounce-list key.

The bounce list must find `<John.Doe@EXAMPLE.com>` when `john.doe@example.com`
was listed, and `jörg@bücher.example` when the failure came back for
`jörg@xn--bcher-kva.example`. `normalise()` is the only place that decides what
"the same address" means; the store, the step and the CLI all go through it.

What it does, and why:

- Surrounding whitespace and one pair of angle brackets are removed: a path as
  it appears in `RCPT TO:<...>` (RFC 5321 4.1.2) and a bare address are the same
  key. A source route (`<@a,@b:user@host>`) is dropped, as RFC 5321 4.1.2 and
  appendix C tell a receiver to do.
- The domain is lower-cased and converted to its IDNA A-label form (punycode,
  `xn--...`): DNS names are case-insensitive (RFC 4343), and a U-label and its
  A-label name the same domain (RFC 5890 2.3.2.1), so both spellings must meet
  in one key. A-labels are what goes on the wire and in DNS, are plain ASCII,
  and have exactly one spelling. Mapping follows UTS #46 non-transitional
  processing (IDNA 2008) when the `idna` package is present, so `faß.de` stays
  distinct from `fass.de`, as it is in DNS.
- The local part's ASCII letters are lower-cased (fold()), and nothing else. RFC 5321
  2.4 lets a receiver treat local parts case-sensitively, but in practice receiving
  systems do not (no major provider delivers `Bob@` and `bob@` to different
  people), and DESIGN.md's contract is
  that bounce-list matching is case-insensitive, local part included. The
  price of being wrong is a listed address also refusing its differently-cased
  twin, which never exists in practice; the price of the other choice is mail
  that keeps bouncing and hurts the sender's reputation.
  Non-ASCII letters (RFC 6531 local parts) keep their case: Unicode case mapping merges distinct
  mailboxes (str.lower() turns U+212A KELVIN SIGN into ASCII "k", U+2126 OHM SIGN into omega), so a
  refusal of "<KELVIN SIGN>ate@x" would have listed the good "kate@x" (review24 F2). RFC 6531 3.2 leaves
  such local parts to the receiving host alone; two different spellings stay two keys.
- `+tags` and dots in the local part are kept. `user+news@` and `user@` are
  the same mailbox at some providers and different mailboxes at others (and
  many treat `+` as an ordinary character); dots are ignored by Gmail only. The
  relay cannot know the receiver's rule, and a wrong merge would refuse mail to
  a mailbox that works, so two spellings stay two keys.
- A quoted local part that did not need quoting is unquoted: RFC 5322 3.4.1
  says the quoted-string and dot-atom forms are semantically equivalent, and
  RFC 5321 4.1.2 says a sender should not quote when it is not needed.

Anything that is not an address raises ValueError with a message that says
what is wrong, suitable for printing to an operator as is.
"""

from __future__ import annotations

import functools
import ipaddress
import re

try:  # IDNA 2008 / UTS #46; dnspython uses the same package when it is installed.
    import idna as _idna
except ImportError:  # pragma: no cover - exercised only where idna is missing
    _idna = None

__all__ = ["normalise", "fold", "delivered_as", "NeverListed",
           "split", "is_valid", "unsendable", "helo_domain", "printable", "shown", "literal_problem",
           "domain_in_a_labels", "to_a_labels"]

# RFC 5322 3.2.3 atext, plus any non-ASCII character (RFC 6531 3.3 extends
# atext with UTF-8 for SMTPUTF8). Dots are allowed anywhere: RFC 5322 forbids
# leading, trailing and doubled dots, but such mailboxes exist (e.g. older
# Japanese mobile carriers), fail with real bounces, and must be listable.
# RFC 5322 3.2.3 atext, ASCII only: a character of a dot-atom local part in the everyday (RFC 5321) form.
# A regex character class, for patterns that find or match plain addresses in text.
ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM_CHARS = re.compile(r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.\u0080-\U0010ffff]+$")
_STRICT_DOT_ATOM = re.compile(
    r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff]+"
    r"(\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff]+)*$"
)
# RFC 1035 2.3.1 / RFC 5321 4.1.2 (Let-dig, Ldh-str) for A-labels and ASCII labels.
_LDH_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

# RFC 5321 4.5.3.1.1 / 4.5.3.1.2: limits in octets.
MAX_LOCAL_PART = 64
MAX_DOMAIN = 255


_ASCII_UPPER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(text: str) -> str:
    """`text` (an address, a local part, or a text an address is searched in) with its ASCII letters
    A-Z lower-cased and every other character as it is: the one case-folding of addresses (the
    bounce list's keys, the step's lookups, a reply's or report's named recipients, the CLI). Never
    str.lower() or casefold(): they map non-ASCII letters onto others (U+212A KELVIN SIGN to "k"),
    which makes two mailboxes one key, and can change a text's length (U+0130 becomes two
    characters), which moves the positions found in it."""
    return text.lower() if text.isascii() else text.translate(_ASCII_UPPER)


class NeverListed(ValueError):
    """An address read whole that no bounce-list key can be: one RFC 5321 allows and normalise() does not
    (an empty quoted local part, 4.1.2; a local part past 64 octets, which 4.5.3.1 only asks to avoid), or
    one whose domain is no domain name (no key's domain can be it)."""


def normalise(address: str) -> str:
    """Return the canonical bounce-list key for `address`, or raise ValueError."""
    local, domain = split(address)
    return f"{local}@{domain}"


def delivered_as(address: str) -> str:
    """The bounce-list key of `address` as an MTA reads it, for matching a recipient against the list;
    ValueError when even that reading fails.

    Postfix reads an address with its RFC 822 tokenizer: a backslash outside quotes quotes the next
    character, and atoms and quoted strings side by side make one local part, so it delivers
    `RCPT TO:<go\\ne@example.com>` (or `<g"on"e@...>`) to gone@example.com (review26 F3: a listed
    address got past the bounce list that way). Neither is RFC 5321 syntax (4.1.2: a Dot-string has no
    quoted-pairs; a Quoted-string is the whole local part), so normalise() refuses them; here the
    quoted-pairs and quoted strings are resolved, and the resulting local part is normalised as the
    content of one quoted string would be (bare when it is a dot-atom, else quoted). The domain's
    quoted-pairs are resolved the same way. Only for matching: an address is never listed under this
    reading (listing goes through normalise())."""
    try:
        return normalise(address)
    except ValueError:
        pass
    text = address.strip() if isinstance(address, str) else address
    if not isinstance(text, str) or ("\\" not in text and '"' not in text):
        return normalise(address)  # raises, with normalise's own words
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    if text.startswith("@") and ":" in text:
        text = text.partition(":")[2]  # RFC 5321 4.1.2 source route, ignored as normalise() does
    local, domain = _tokens(text, address)
    if not local:
        raise (NeverListed if '"' in text else ValueError)(f"invalid address {address!r}: empty local part")
    if not domain:
        raise ValueError(f"invalid address {address!r}: no '@' between local part and domain")
    spelled = local if _STRICT_DOT_ATOM.match(local) else _quote(local)
    return normalise(f"{spelled}@{domain}")


def _tokens(text: str, original: str) -> tuple[str, str | None]:
    """(local part, domain) of `text` with quoted-pairs and quoted strings resolved, split at the last
    '@' outside quotes (None for the domain when there is none)."""
    parts: list[list[str]] = [[]]
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            if i + 1 == len(text):
                raise ValueError(f"invalid address {original!r}: dangling backslash")
            parts[-1].append(text[i + 1])
            i += 2
        elif c == '"':
            end = i + 1
            while end < len(text) and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            if end >= len(text):
                raise ValueError(f"invalid address {original!r}: unterminated quoted string")
            body = text[i + 1:end]
            parts[-1].append(re.sub(r"\\(.)", r"\1", body, flags=re.S))
            i = end + 1
        elif c == "@":
            parts.append([])
            i += 1
        else:
            if ord(c) < 32 or ord(c) == 127:
                raise ValueError(f"invalid address {original!r}: control character")
            parts[-1].append(c)
            i += 1
    if len(parts) == 1:
        return "".join(parts[0]), None
    # The last unquoted '@' separates the domain; an earlier one was quoted in effect (RFC 822 reads
    # no unquoted '@' in a local part), so it stays part of the local part.
    return "@".join("".join(p) for p in parts[:-1]), "".join(parts[-1])


def is_valid(address: str) -> bool:
    try:
        split(address)
    except ValueError:
        return False
    return True


def split(address: str) -> tuple[str, str]:
    """(normalised local part, normalised domain) of `address`."""
    if not isinstance(address, str):
        raise ValueError(f"not an address: {address!r} (expected text)")
    return _split(address)


@functools.lru_cache(maxsize=8192)
def _split(address: str) -> tuple[str, str]:
    # Memoised: a pure function of the text, and a message asks it about the same few addresses
    # and domains (bounce list, policies, shaping, SPF) about seven times. A ValueError is not
    # kept: a bad address is parsed again each time and says why again.
    text = address.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    if not text:
        raise ValueError("empty address (the null path <> is not a recipient)")
    if text.startswith("@") and ":" in text:
        # RFC 5321 4.1.2: "<@hosta,@hostb:user@hostc>"; the route is ignored.
        text = text.partition(":")[2]
    if "@" not in text:
        raise ValueError(f"invalid address {address!r}: no '@' between local part and domain")
    local, _, domain = text.rpartition("@")
    local = _local_part(local, address)
    try:
        return local, _domain(domain, address)
    except NeverListed:
        raise
    except ValueError as exc:
        # No list key, address or domain entry, has a domain that is no domain name: what such an address
        # is, the delivery (MX mode's 553 5.1.3) or the MTA says, not the bounce list.
        raise NeverListed(str(exc)) from None


def _local_part(local: str, original: str) -> str:
    if not local:
        raise ValueError(f"invalid address {original!r}: empty local part")
    if local.startswith('"'):
        local = _unquote(local, original)
        if _STRICT_DOT_ATOM.match(local):
            # RFC 5322 3.4.1: quoting was not needed, so this is the same mailbox as the bare form.
            pass
        else:
            local = _quote(local)
    elif not _DOT_ATOM_CHARS.match(local):
        bad = next(c for c in local if not _DOT_ATOM_CHARS.match(c))
        raise ValueError(
            f"invalid address {original!r}: character {bad!r} is not allowed in an unquoted local part"
        )
    local = fold(local)
    if len(local.encode("utf-8")) > MAX_LOCAL_PART:
        raise NeverListed(
            f"invalid address {original!r}: local part longer than {MAX_LOCAL_PART} octets (RFC 5321 4.5.3.1.1)"
        )
    return local


def _unquote(local: str, original: str) -> str:
    """Content of an RFC 5321 Quoted-string, with quoted-pairs resolved."""
    if len(local) < 2 or not local.endswith('"'):
        raise ValueError(f"invalid address {original!r}: unterminated quoted local part")
    out = []
    body = local[1:-1]
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            if i + 1 == len(body):
                raise ValueError(f"invalid address {original!r}: dangling backslash in quoted local part")
            out.append(body[i + 1])
            i += 2
            continue
        if c == '"':
            raise ValueError(f"invalid address {original!r}: unescaped quote inside quoted local part")
        if ord(c) < 32 or ord(c) == 127:
            raise ValueError(f"invalid address {original!r}: control character in local part")
        out.append(c)
        i += 1
    if not out:
        raise NeverListed(f"invalid address {original!r}: empty local part")
    return "".join(out)


def _quote(content: str) -> str:
    return '"' + content.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _domain(domain: str, original: str) -> str:
    if not domain:
        raise ValueError(f"invalid address {original!r}: empty domain")
    if domain.startswith("[") and domain.endswith("]"):
        return _address_literal(domain[1:-1], original)
    if domain.endswith("."):
        # A fully qualified name's root dot: "example.com." is "example.com".
        domain = domain[:-1]
    try:
        if domain.isascii():
            ascii_domain = domain.lower()
            if any(label.startswith("xn--") for label in ascii_domain.split(".")):
                ascii_domain = to_a_labels(ascii_domain)
        else:
            ascii_domain = to_a_labels(domain)
    except (UnicodeError, ValueError) as exc:
        raise ValueError(f"invalid address {original!r}: domain {domain!r} is not a valid IDN ({exc})") from None
    if len(ascii_domain) > MAX_DOMAIN - 2 or not ascii_domain:
        raise ValueError(f"invalid address {original!r}: domain longer than 253 characters (RFC 1035 2.3.4)")
    for label in ascii_domain.split("."):
        if not label:
            raise ValueError(f"invalid address {original!r}: empty label in domain {domain!r}")
        if len(label) > 63:
            raise ValueError(f"invalid address {original!r}: domain label longer than 63 characters (RFC 1035 2.3.4)")
        if not _LDH_LABEL.match(label):
            raise ValueError(
                f"invalid address {original!r}: domain label {label!r} is not letters, digits and inner hyphens"
            )
    return ascii_domain


@functools.lru_cache(maxsize=4096)
def to_a_labels(domain: str) -> str:
    """`domain` (or one label of it) in A-labels by IDNA 2008, UTS #46 non-transitional (faß.de is
    xn--fa-hia.de, never fass.de); idna.IDNAError (a UnicodeError) for no valid IDNA 2008 name."""
    # Memoised: a pure function of the text (no state, nothing to invalidate), UTS #46
    # processing costs ~13 µs in pure Python, and recipients' domains repeat a lot.
    if _idna is not None:
        # uts46 maps case, full-width forms and the like before encoding (UTS #46 4);
        # non-transitional keeps ß and ς as themselves, as IDNA 2008 registries do.
        return _idna.encode(domain, uts46=True, transitional=False).decode("ascii")
    return domain.encode("idna").decode("ascii").lower()  # IDNA 2003 fallback


# _LDH_LABEL with an underscore: cron and application mail leaves hosts named `web_01` as
# root@web_01.example.com, Postfix takes it, and refusing it would stop mail that went out before
# (final read of review23-fix). Only for a sender: the relay passes it on, it never routes to it.
_SENDER_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")


def mailbox_problem(address: str, sender: bool = False) -> str | None:
    """What makes `address` (local-part "@" domain, as MAIL or RCPT carried it) no RFC 5321 4.1.2
    Mailbox, or None: the one check of an envelope address's local part and domain, whatever the
    mode (smarthost or MX: review23 F5, where smarthost mode passed `b@dest..test` upstream and MX
    mode refused it at routing). An address literal is checked apart (literal_problem)."""
    local, _, domain = address.rpartition("@")
    if not local.startswith('"') and (local.startswith(".") or local.endswith(".") or ".." in local):
        # Dot-string = Atom *("." Atom): no dot at either end, never two in a row. Mailboxes with
        # such dots exist (older Japanese mobile carriers); they are sent quoted ("a..b"@x), as
        # Postfix's client quotes them (smtp_quote_rfc821_envelope).
        return "a dot at either end of the local part, or two in a row (RFC 5321 4.1.2 Dot-string; quote it)"
    if domain.startswith("["):
        return None
    if not domain.isascii():
        try:
            domain = to_a_labels(domain)
        except (UnicodeError, ValueError) as exc:
            return f"the domain is not a valid international domain name (IDNA 2008, RFC 5891: {exc})"
    if len(domain) > MAX_DOMAIN:
        return f"the domain is longer than {MAX_DOMAIN} octets (RFC 5321 4.5.3.1.2)"
    for label in domain.split("."):
        if not label:
            return "an empty label in the domain: a dot at either end, or two in a row (RFC 5321 4.1.2)"
        if len(label) > 63:
            return "a label of the domain is longer than 63 octets (RFC 1035 2.3.4, RFC 5321 4.1.2)"
        if not (_SENDER_LABEL if sender else _LDH_LABEL).fullmatch(label.lower()):
            return ("a label of the domain is not letters, digits and inner hyphens (RFC 5321 4.1.2 sub-domain, "
                    "RFC 1035 2.3.1)")
    return None


def domain_in_a_labels(domain: str) -> str:
    """`domain` (lowercased, without a trailing dot) in A-labels, as the bounce list keys it
    (to_a_labels), for telling whether two spellings name one domain; as it is, lowercased, when it
    is no IDNA name (a reply's text may hold anything)."""
    domain = domain.strip().rstrip(".").lower()
    try:
        return to_a_labels(domain)
    except (UnicodeError, ValueError):
        return domain


def domain_of(address: str) -> str:
    """The domain of an address as a text writes it (what follows its last "@"), in A-labels
    (domain_in_a_labels): for telling whether two spellings name one domain."""
    return domain_in_a_labels(address.rpartition("@")[2])


# Characters that end an address written in a reply (around "<a@x>", "a@x:", "(a@x)", "'a@x'").
_ADDRESS_ENDS = frozenset(' \t<>()[]"\',;:')


def addresses_in(text: str, limit: int | None = 32):
    """The addresses written in `text` (each "@" with the run around it up to a delimiter, at most
    64 characters before and 255 after, RFC 5321 4.5.3.1): linear in the text's length. At most
    `limit` of them (None: all)."""
    at = text.find("@")
    found = 0
    while at >= 0 and (limit is None or found < limit):
        start = at
        while start > 0 and at - start < 64 and text[start - 1] not in _ADDRESS_ENDS:
            start -= 1
        end = at + 1
        while end < len(text) and end - at <= 255 and text[end] not in _ADDRESS_ENDS:
            end += 1
        if start < at and end > at + 1:
            found += 1
            yield text[start:end].rstrip(".")
        at = text.find("@", end if end > at + 1 else at + 1)


def _address_literal(literal: str, original: str) -> str:
    """RFC 5321 4.1.3: [192.0.2.1] or [IPv6:2001:db8::1], in canonical form."""
    text = literal.strip()
    if literal_problem(text) is not None:
        raise ValueError(f"invalid address {original!r}: bad address literal [{literal}]")
    if text[:5].lower() == "ipv6:":
        return f"[ipv6:{ipaddress.IPv6Address(text[5:]).compressed}]"
    return f"[{ipaddress.IPv4Address(text)}]"


# RFC 5321 4.1.3: IPv4-address-literal = Snum 3("." Snum), Snum = 1*3DIGIT (0-255);
# General-address-literal = Standardized-tag ":" 1*dcontent, Standardized-tag = Ldh-str.
_IPV4_LITERAL = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_TAGGED_LITERAL = re.compile(r"([A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?):(.*)", re.S)
_IPV6_TEXT = re.compile(r"[0-9A-Fa-f:.]+")  # IPv6-addr's characters: no zone ("%eth0"), no space


def literal_problem(literal: str) -> str | None:
    """Why `literal` (the text between an address literal's brackets, as sent) names no host, in
    words for a reply, or None when it is one (RFC 5321 4.1.3).

    - IPv4: four numbers 0-255. One with a leading zero ("010") is refused although Snum allows
      it: inet_aton() and the software built on it read it as octal (010 = 8), so the next hop
      and the relay could deliver to different hosts; nobody writes literals so.
    - "IPv6:" (any case: RFC 5234 2.3) and an IPv6 address in RFC 5321's forms, without a zone
      ("%eth0" names an interface of the sending host, meaningless anywhere else).
    - Any other tag is a General-address-literal, whose Standardized-tag "MUST be specified in a
      Standards-Track RFC and registered with IANA": the registry (Address Literal Tags) holds
      only "IPv6", so no server can route one. Refused rather than passed on: the next hop can
      only refuse it too, or accept it and bounce it later, to a sender who then learns less.
    """
    if not literal:
        return "[] is an empty address literal"
    if ":" in literal and _is_ipv6(literal):
        return f"[{literal}] is an IPv6 address literal without its tag: write [IPv6:{literal}]"
    tagged = _TAGGED_LITERAL.fullmatch(literal)
    if tagged is None:
        if not _IPV4_LITERAL.fullmatch(literal):
            return (f"[{literal}] is not an address literal: an IPv4 one is four numbers 0-255 joined "
                    f"by dots, e.g. [192.0.2.1]")
        numbers = literal.split(".")
        over = next((n for n in numbers if int(n) > 255), None)
        if over is not None:
            return f"[{literal}] is not an address literal: {over} is over 255"
        if any(len(n) > 1 and n.startswith("0") for n in numbers):
            return (f"[{literal}] is an ambiguous address literal: a number with a leading zero is read "
                    f"as octal by some software; write it without")
        return None
    tag, content = tagged.groups()
    if tag.lower() != "ipv6":
        return (f"[{literal}] is a general address literal with the tag {tag!r}, which is not registered: "
                f"IPv6 is the only one (RFC 5321 4.1.3)")
    if "%" in content:
        return f"[{literal}] is not an address literal: a zone ({content[content.index('%'):]}) names an interface of the sending host"
    if not _is_ipv6(content):
        return f"[{literal}] is not an address literal: {printable(content) or 'nothing after the tag'} is not an IPv6 address"
    return None


def _is_ipv6(text: str) -> bool:
    if not _IPV6_TEXT.fullmatch(text):
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


# Characters that never go on the wire in a command or a trace header: the C0 controls (with NUL,
# CR and LF, which end or split a line), DEL and the C1 controls. RFC 5321 4.1.2 allows none of them
# in a path (a quoted local part takes qtextSMTP = %d32-33 / %d35-91 / %d93-126, and quoted-pairSMTP
# only %d32-126), RFC 6531 3.3 only adds UTF-8 non-ASCII *graphic* text; aiosmtplib refuses C0 and DEL
# outright, and a terminal acts on ESC and the C1 CSI.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# What aiosmtpd makes of bytes that are not UTF-8 (surrogateescape): no encoder can send them back.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def unsendable(text: str) -> str | None:
    """Why `text` (an address or parameter as the client sent it) cannot be passed on verbatim in
    an SMTP command, or None when it can."""
    m = _CONTROL.search(text)
    if m is not None:
        return f"control character U+{ord(m.group()):04X}"
    if _SURROGATE.search(text) is not None:
        return "bytes that are not UTF-8"
    return None


# Everything but printable ASCII and printable non-ASCII letters: controls, invalid UTF-8, and the
# bidirectional overrides that make a terminal show text in another order (Trojan Source, CVE-2021-42574).
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with every control, bidi override and undecodable byte written as an escape
    (`\\x1b`, `\\u202e`): safe to show on a terminal or echo in a reply, and still tells what came."""
    if _UNPRINTABLE.search(text) is None:
        return text
    return _UNPRINTABLE.sub(_escape, text)


def shown(text: str, limit: int = 100) -> str:
    """`text` (an address or path as the client sent it) for a reply: printable(), and cut at `limit`
    characters with "..." after the cut, so that a shortened address never reads as one it sent."""
    return printable(text[:limit]) + ("..." if len(text) > limit else "")


def ascii_reply(text: str) -> str:
    """`text` (a reply that quotes what a client sent) in printable ASCII, every other character a
    backslash escape (`j\\xf6rg`): UTF-8 in a reply is for SMTPUTF8 transactions only (RFC 6531
    3.7.4.2), and ASCII is right for every client, so a refusal of an address is always written so."""
    return printable(text).encode("ascii", "backslashreplace").decode("ascii")


def _escape(m: re.Match) -> str:
    n = ord(m.group())
    if 0xDC80 <= n <= 0xDCFF:  # surrogateescape's stand-in for the undecodable byte n - 0xDC00
        n -= 0xDC00
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def helo_domain(name: str) -> str | None:
    """The HELO/EHLO argument as RFC 5321 4.1.1.1 wants it (a Domain, in A-labels, or an
    address-literal), or None when it is neither: such a name may be shown only in a comment."""
    if not name or len(name) > MAX_DOMAIN or unsendable(name) is not None:
        return None
    if name.startswith("[") and name.endswith("]"):
        try:
            _address_literal(name[1:-1], name)
        except ValueError:
            return None
        return name
    domain = name[:-1] if name.endswith(".") else name
    try:
        ascii_domain = domain.lower() if domain.isascii() else to_a_labels(domain)
    except (UnicodeError, ValueError):
        return None
    labels = ascii_domain.split(".")
    if len(ascii_domain) > MAX_DOMAIN - 2 or not all(_LDH_LABEL.match(label) for label in labels):
        return None
    return ascii_domain if not domain.isascii() else domain
