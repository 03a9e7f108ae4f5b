"""Reply classification: an SMTP reply -> what went wrong and what to do about it.

The rules are data, not code: an ordered list in `policies/bounce-rules.yaml`
(plus any operator files, tried first), and after them a fallback table keyed
by the enhanced status code (RFC 3463 class.subject.detail) and then by the
basic reply code (RFC 5321 4.2). First match wins.

Everything is compiled once at load time; `classify()` does no YAML parsing
and no regex compilation, so it can run on every rejection the relay sees.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from .decision import Reply
from .config import SHIPPED_POLICIES
from .errors import ConfigError, Problems
from .regex import PatternError, compile_rule_text, shipped_patterns
from .yamlfile import given as _given, load_yaml

CATEGORIES = frozenset(
    {
        "unknown_recipient",
        "mailbox_disabled",
        "mailbox_full",
        "message_too_large",
        "rate_limited",
        "too_many_connections",
        "spam_content",
        "policy_rejected",
        "auth_failed",
        "blocklisted",
        "routing_dns",
        "relay_denied",
        "greylisted",
        "temporary_failure",
        "syntax_error",
        "protocol_error",
        "expired",
        "other",
    }
)

# DESIGN.md, "the one funnel": what a refusal is about. Only `recipient` may list an address.
SCOPES = ("recipient", "message", "sender", "session", "relay")
# The SMTP stage a reply answered (RFC 5321 3.1-3.3); a rule's `stage:` names some of them.
STAGES = ("connect", "helo", "mail", "rcpt", "data")

SHIPPED_RULES = SHIPPED_POLICIES / "bounce-rules.yaml"

RULE_FILE = "bounce-rules.yaml"
OPERATOR_RULE_GLOB = "bounce-rules.*.yaml"


@dataclass(frozen=True)
class Classification:
    category: str
    permanent: bool
    retry: bool
    rule: str
    meaning: str
    advice: str
    # What the refusal is about (SCOPES): the rule's `scope:`, else its category's default
    # from the `scopes:` table. Policies.judge() may narrow it (a DATA refusal that names
    # no recipient concerns the message).
    scope: str = "recipient"

    def as_dict(self) -> dict:
        return asdict(self)


# --- how a reply is presented to the rules ------------------------------------

# RFC 3463 status code somewhere in the text, for servers that do not put it
# first (qmail "(#5.1.1)", Barracuda "550 cuda_nsu 5.1.1", Yahoo "- 5.7.1 [BL23]").
# Subjects run 0..7; digits or dots around it mean an IP address or a version
# number (checked by hand before the match: a leading look-behind would make re
# try every position of the text).
_EMBEDDED_ENHANCED = re.compile(r"([245])\.([0-7])\.(\d{1,3})(?![\d.])")


def effective_enhanced(reply: Reply) -> str | None:
    """The reply's enhanced status code: the leading one (RFC 3463 section 2
    puts it first), else the first one found elsewhere in the text."""
    enhanced = reply.enhanced
    if enhanced is not None:
        return enhanced
    for line in reply.lines:
        for m in _EMBEDDED_ENHANCED.finditer(line):
            start = m.start()
            if start == 0 or line[start - 1] not in "0123456789.":
                return ".".join(m.groups())
    return None


# How much of a reply's text the rules read (`match`, `not_match`, the recipient it names, suppression's
# evidence): its first 2,048 characters, four reply lines of RFC 5321 4.5.3.1.5's 512 octets. The
# longest real reply in the corpora is 714 characters, the longest DSN diagnostic 592. Past it is only
# what an upstream (up to aiosmtplib's 32 KiB a reply) or a bounce (a Diagnostic-Code of any length)
# adds, and every rule is searched through it on the event loop: the shipped rules took 0.6 s over a
# 32 KiB reply of "<<<..." and 27 s over 128 KiB (quadratic rules, bench/audit_regex.py); over 2,048
# characters a classification takes a few ms whatever they hold.
MAX_CLASSIFIED_TEXT = 2048


# Typographic quotes read as the plain ones patterns write ("recipient’s", ‘bob@x’, “Gmail”):
# word processors, web forms and some MTAs' templates put them in replies.
# Not U+02BC (a letter in Ukrainian and other scripts: part of an internationalised address's local
# part) nor the primes.
_PLAIN_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"'})


# A reply line's code marker inside a text: "550-5.7.1 " / "550 5.7.1 " / "550-" (RFC 5321 4.2.1's
# "NNN-" on every line but the last, "NNN " on the last; RFC 2034's enhanced code repeated after it).
_MARKER = re.compile(r"(?:(?<=\s)|^)(?P<code>[245]\d\d)(?P<sep>[- ])(?:(?P<enhanced>[245]\.\d{1,3}\.\d{1,3})(?=\s|$))?")


def _without_flattened_markers(text: str, code: int, enhanced: str | None) -> str:
    """`text` without the line markers of a multi-line reply that was flattened into it.

    Postfix writes a multi-line reply as one line, joining the lines with a space ("... not authorized
    to 550-5.7.1 send email directly ..."), in its probe reasons (reject_unverified_recipient), its DSN
    Diagnostic-Codes and its log; a smarthost may quote the next hop's reply so. A phrase the provider
    wrapped at a line end then has a marker in its middle (review-13 R13-2). A marker is dropped only
    where it continues a reply that said more lines follow, with that reply's own code (and enhanced
    code, if it gave one), as split_reply (intake/postfix_log.py) rebuilds lines:
    - a reply starts at the text's start (the reply's own code and enhanced code) or at a "NNN-" marker
      inside the text (an embedded reply: "host H said: 550-5.7.1 ..."); a marker right after a colon
      ("said: ", "Response: ") always starts a reply, never continues one;
    - within it, a "NNN-" marker with the same code and enhanced code is a line break: dropped. Its last
      line's "NNN X.Y.Z " is dropped too when the code and the enhanced code both repeat, and a "NNN-"
      continuation was seen (the reply's own start may have been "NNN " as parsed); a bare "NNN " (no
      enhanced code) is kept: it could be a number in the text ("exceeded 550 recipients").
    Only code tokens go; no word of the text is dropped."""
    if "-" not in text:
        return text
    current = (str(code), enhanced) if code else None  # the reply the text is in
    continued = False  # a "NNN-" continuation of `current` was seen inside the text
    out: list[str] = []
    last = 0
    for m in _MARKER.finditer(text):
        start = m.start()
        after_colon = start >= 2 and text[start - 2] == ":"
        mid_text = start >= 2 and not text[start - 2].isspace()
        here = (m["code"], m["enhanced"])
        if current is not None and here == current and mid_text and not after_colon:
            if m["sep"] == "-":
                continued = True
            elif not (continued and m["enhanced"]):
                current, continued = None, False
                continue
            out.append(text[last:start])
            last = m.end()
            if last < len(text) and text[last] == " " and m["enhanced"]:
                last += 1  # the space after the enhanced code: the words keep the one before the marker
            if m["sep"] == " ":
                current, continued = None, False
            continue
        if m["sep"] == "-" and (start == 0 or after_colon or mid_text):
            current, continued = here, True  # an embedded reply that says more lines follow
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def unwrapped_text(reply: Reply) -> str:
    """The reply as one line, as `match` patterns see it: the basic code, then
    every line's text joined by single spaces, without the per-line code prefix
    and without the enhanced code repeated on continuation lines. Servers wrap
    long replies at arbitrary words (RFC 5321 4.2.1 multi-line replies), so a
    phrase may start on one line and end on the next. At most MAX_CLASSIFIED_TEXT
    characters (its start). Within a line too, any run of white space (two spaces, a tab, a
    no-break space, a folded Diagnostic-Code's indentation) reads as one space, so that a
    pattern's "does not exist" finds "does  not exist"; and typographic quotes read as plain
    ones (_PLAIN_QUOTES)."""
    lines = reply.lines
    first = " ".join(lines[0][:MAX_CLASSIFIED_TEXT].split())
    head = f"{reply.code} {first}" if reply.code else first
    if len(lines) == 1:
        head = _without_flattened_markers(head.strip(), reply.code, reply.enhanced)
        return head[:MAX_CLASSIFIED_TEXT].translate(_PLAIN_QUOTES)
    repeated = reply.enhanced
    parts = [head.strip()]
    size = len(parts[0])
    for line in lines[1:]:
        if size >= MAX_CLASSIFIED_TEXT:
            break
        line = " ".join(line[:MAX_CLASSIFIED_TEXT].split())
        if repeated and line.startswith(repeated):
            line = line[len(repeated):].lstrip()
        if line:
            parts.append(line)
            size += len(line) + 1
    joined = _without_flattened_markers(" ".join(parts), reply.code, reply.enhanced)
    return joined[:MAX_CLASSIFIED_TEXT].translate(_PLAIN_QUOTES)


def _permanence(code: int, enhanced: str | None, override: bool | None) -> bool:
    # RFC 5321 4.2.1: the first digit decides. A 4yz is transient whatever its
    # text says (a 4xx "user unknown" is a deferral, not a verdict on the address).
    if 400 <= code < 500 or (code == 0 and enhanced and enhanced[0] == "4"):
        return False
    if override is not None:
        return override
    if 500 <= code < 600:
        return True
    if code == 0 and enhanced:
        # No usable basic code (a pasted fragment): RFC 3463 class 5 is permanent.
        return enhanced[0] == "5"
    return False


# --- compiled rules --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Outcome:
    rule_id: str
    category: str
    meaning: str
    advice: str
    permanent: bool | None
    scope: str
    as_permanent: Classification
    as_transient: Classification

    @classmethod
    def make(cls, rule_id: str, category: str, meaning: str, advice: str, permanent: bool | None,
             scope: str = "recipient") -> "_Outcome":
        return cls(
            rule_id,
            category,
            meaning,
            advice,
            permanent,
            scope,
            Classification(category, True, False, rule_id, meaning, advice, scope),
            Classification(category, False, True, rule_id, meaning, advice, scope),
        )

    def classification(self, code: int, enhanced: str | None) -> Classification:
        return self.as_permanent if _permanence(code, enhanced, self.permanent) else self.as_transient


@dataclass(frozen=True, slots=True)
class _TextPattern:
    """A case-insensitive search. Most patterns are lowercased at load time and
    run case-sensitively on the lowercased reply: the same result, about three
    times faster than re.IGNORECASE. Patterns with their own inline case flags,
    such as "(?-i:...)", keep re.IGNORECASE and run on the text as sent."""

    regex: re.Pattern
    on_lowered: bool

    def found(self, text: str, lowered: str) -> bool:
        return self.regex.search(lowered if self.on_lowered else text) is not None

    def wordings(self, text: str, lowered: str, limit: int = 8):
        """The passages of the text the pattern matches (at most `limit`, left to right)."""
        for n, m in enumerate(self.regex.finditer(lowered if self.on_lowered else text)):
            if n >= limit:
                return
            yield m.group(0)


@dataclass(frozen=True, slots=True)
class _Rule:
    outcome: _Outcome
    codes: frozenset[int] | None
    enhanced: re.Pattern | None
    match: _TextPattern | None
    not_match: _TextPattern | None
    file: str
    stages: frozenset[str] | None = None  # None: any stage, known or not
    # `names_recipient: true`: the rule's words carry the address they speak of, so they apply
    # only to a text that names the recipient (Classifier.classify's `names_recipient`).
    names_recipient: bool = False
    # `judge_reason: true`: the rule's words are a wrapper around another reply, the text after them
    # (Classifier.wrapped_reason), which Policies.judge judges as its own reply.
    judge_reason: bool = False

    def matches(self, code: int, enhanced: str | None, text: str, lowered: str, stage: str | None = None) -> bool:
        # Cheapest tests first: most rules are ruled out by code or enhanced code.
        if self.codes is not None and code not in self.codes:
            return False
        if self.stages is not None and stage not in self.stages:
            return False  # a rule for some stages never matches a reply of unknown stage
        if self.enhanced is not None and (enhanced is None or self.enhanced.fullmatch(enhanced) is None):
            return False
        if self.match is not None and not self.match.found(text, lowered):
            return False
        if self.not_match is not None and self.not_match.found(text, lowered):
            return False
        return True


@dataclass(frozen=True, slots=True)
class ReplyConditions:
    """The conditions a rule puts on a reply (code, enhanced, match, not_match, stage), compiled
    once. Classification rules use them, and so does every other policy that reacts to replies
    the way classification does (shaping.yaml's reactions): one matching machinery."""

    codes: frozenset[int] | None
    enhanced: re.Pattern | None
    match: _TextPattern | None
    not_match: _TextPattern | None
    stages: frozenset[str] | None = None

    def matches(self, reply: Reply, stage: str | None = None) -> bool:
        code = reply.code
        if self.codes is not None and code not in self.codes:
            return False
        if self.stages is not None and stage not in self.stages:
            return False
        if self.enhanced is not None:
            enhanced = effective_enhanced(reply)
            if enhanced is None or self.enhanced.fullmatch(enhanced) is None:
                return False
        if self.match is None and self.not_match is None:
            return True
        text = unwrapped_text(reply)
        lowered = text.lower()
        if self.match is not None and not self.match.found(text, lowered):
            return False
        if self.not_match is not None and self.not_match.found(text, lowered):
            return False
        return True


CONDITION_KEYS = frozenset({"code", "enhanced", "match", "not_match", "stage"})


def reply_conditions(entry: dict, key: str, problems: Problems) -> ReplyConditions | None:
    """The conditions of one rule entry (the keys of CONDITION_KEYS it has), or None when any is
    wrong (each problem is added to `problems`, named `key.<condition>`)."""
    before = len(problems.items)
    codes = _code_set(entry["code"], f"{key}.code", problems) if "code" in entry else None
    enhanced = _enhanced_regex(entry["enhanced"], f"{key}.enhanced", problems) if "enhanced" in entry else None
    match = _text_regex(entry["match"], f"{key}.match", problems) if "match" in entry else None
    not_match = _text_regex(entry["not_match"], f"{key}.not_match", problems) if "not_match" in entry else None
    stages = _stage_set(entry["stage"], f"{key}.stage", problems) if "stage" in entry else None
    if not any(k in entry for k in ("code", "enhanced", "match")):
        # The stage alone never decides (DESIGN.md, the one funnel).
        problems.add(key, "a rule needs at least one condition: code, enhanced or match")
    if len(problems.items) != before:
        return None
    return ReplyConditions(codes, enhanced, match, not_match, stages)


RULE_KEYS = frozenset({"id", "code", "enhanced", "match", "not_match", "stage", "category", "meaning", "advice",
                       "permanent", "scope", "note", "unconfirmed", "names_recipient", "judge_reason"})
FALLBACK_KEYS = frozenset({"id", "code", "enhanced", "category", "meaning", "advice", "permanent", "scope", "note"})
TOP_KEYS = frozenset({"version", "texts", "scopes", "rules", "fallback", "hard_at_any_stage", "sisimai_words",
                      "sisimai_rhost"})
# The reasons `sisimai_words:` may name (bounce-rules.yaml; policies.sisimai_hard reads each).
SISIMAI_WORD_REASONS = frozenset({"suspend", "userunknown", "hasmoved", "hostunknown"})



@dataclass(frozen=True)
class RhostEntry:
    """One entry of a receiving host's table that sisimai keys on the report's status or the SMTP
    command as well as on words (bounce-rules.yaml `sisimai_rhost:` `entries:`; go-sisimai
    rhost/for-microsoft.go's (status, range, message) rows, rhost/for-nttdocomo.go's Status and
    Command tests): `status` is an RFC 3463 code ("5.1.1") or a class.subject with a range of
    details ("5.7.606-649"); `stage` the command the report says was refused; `words` phrases of
    which one must be in the reply. Every condition given must hold."""
    reason: str
    status: str | None = None
    stage: str | None = None
    words: tuple[str, ...] = ()

    def holds(self, text: str, status: str | None, stage: str | None, case_sensitive: bool) -> bool:
        if self.status is not None and not _status_in(self.status, status):
            return False
        if self.stage is not None and stage != self.stage:
            return False
        if self.words:
            seen = text if case_sensitive else text.lower()
            return any((w if case_sensitive else w.lower()) in seen for w in self.words)
        return True


def _status_in(wanted: str, status: str | None) -> bool:
    """`wanted` ("5.1.1", or "5.7.606-649": class.subject and a range of details) holds the status."""
    if not status:
        return False
    head, _, detail = wanted.rpartition(".")
    low, _, high = detail.partition("-")
    got_head, _, got_detail = status.rpartition(".")
    if not high:
        return status == wanted
    return got_head == head and got_detail.isdigit() and int(low) <= int(got_detail) <= int(high)


@dataclass(frozen=True)
class RhostTable:
    """One receiving host's own table of sisimai's (bounce-rules.yaml `sisimai_rhost:`; go-sisimai
    rhost/lib.go `RhostClass` and rhost/for-*.go): the host names it is for (a remote host ending
    with one, or a recipient domain one ends with) and, per sisimai reason, the phrases by which
    that host's replies give it (plain text, found anywhere in the reply); `patterns`, per reason,
    regular expressions for the tables that read a code of the host's own in the reply (Facebook's
    "RCP-P1", Orange's "OFR_416"), tried before the phrases, as sisimai tries the codes first."""
    name: str
    hosts: tuple[str, ...]
    reasons: tuple[tuple[str, tuple[str, ...]], ...]
    case_sensitive: bool = False
    patterns: tuple[tuple[str, re.Pattern], ...] = ()
    entries: tuple[RhostEntry, ...] = ()

    def for_host(self, remote_host: str | None, destination: str | None) -> bool:
        return any(_host_matches(h, remote_host, destination) for h in self.hosts)

    def reason(self, text: str, status: str | None = None, stage: str | None = None) -> str | None:
        """The first reason whose phrase the text holds (sisimai tries a table's reasons in no fixed
        order; its tables do not give one text two reasons). `entries:` first, in their order (the
        status and the command keyed ones: NTTDOCOMO tries its Status tests, then its phrases, then
        Status 5.0.0 with the command); a table reads nothing where the report gives no words
        (sisimai: an empty Diagnostic-Code)."""
        if text.strip():
            for entry in self.entries:
                if entry.holds(text, status, stage, self.case_sensitive):
                    return entry.reason
        for reason, pattern in self.patterns:
            if pattern.search(text):
                return reason
        seen = text if self.case_sensitive else text.lower()
        for reason, phrases in self.reasons:
            if any((p if self.case_sensitive else p.lower()) in seen for p in phrases):
                return reason
        return None


def _host_matches(host: str, remote_host: str | None, destination: str | None) -> bool:
    """sisimai's RhostClass test for one host name of a table: the recipient's domain is the host name
    or a parent domain of it ("aol.com" for ".mail.aol.com"), or the remote host ends with it."""
    host = host.lower()
    if destination:
        domain = destination.lower().rstrip(".")
        if ("." + host.lstrip(".")).endswith("." + domain):
            return True
    return bool(remote_host) and remote_host.lower().rstrip(".").endswith(host)


def rhost_reason(tables, remote_host: str | None, destination: str | None, text: str,
                 status: str | None = None, stage: str | None = None) -> str | None:
    """sisimai's reason from the receiving host's own table (go-sisimai rhost/lib.go `Name`: the
    recipient's domain is tried against every table first, then the remote host), or None: no table is
    for this host, or its table does not know the words."""
    tables = tuple(tables or ())
    chosen = next((t for t in tables if destination and t.for_host(None, destination)), None)
    if chosen is None:
        chosen = next((t for t in tables if remote_host and t.for_host(remote_host, None)), None)
    return chosen.reason(text, status, stage) if chosen is not None else None


_CODE_PATTERN = re.compile(r"^[245][0-9x]{2}$")
_ENHANCED_PATTERN = re.compile(r"^([245xX*])\.(\d{1,3}|[\dx]{1,3}|\*)\.(\d{1,3}|[\dx]{1,3}|\*)$")
_ALL_CODES = range(200, 600)


def _code_set(value: Any, key: str, problems: Problems) -> frozenset[int] | None:
    """`code: 550`, `code: [550, 554]`, `code: "5xx"` or `"55x"` -> the set of codes."""
    items = value if isinstance(value, list) else [value]
    if not items:
        problems.add(key, "must not be an empty list")
        return None
    codes: set[int] = set()
    for i, item in enumerate(items):
        where = f"{key}[{i}]" if isinstance(value, list) else key
        if isinstance(item, bool):
            problems.add(where, f"expected a reply code such as 550 or a pattern such as \"5xx\", got {item!r}")
        elif isinstance(item, int):
            if 200 <= item <= 599:
                codes.add(item)
            else:
                problems.add(where, f"reply code {item} is outside 200..599 (RFC 5321 4.2)")
        elif isinstance(item, str) and item.isdigit() and 200 <= int(item) <= 599:
            codes.add(int(item))
        elif isinstance(item, str) and _CODE_PATTERN.match(item.lower()):
            pattern = re.compile(item.lower().replace("x", r"\d"))
            codes.update(c for c in _ALL_CODES if pattern.fullmatch(str(c)))
        else:
            problems.add(where, f"expected a reply code such as 550 or a pattern such as \"5xx\", got {item!r}")
    return frozenset(codes) if codes else None


def _enhanced_regex(value: Any, key: str, problems: Problems) -> re.Pattern | None:
    """`enhanced: "5.1.1"`, a list of them, or patterns: "X.1.1" (any class),
    "5.7.*" (any detail), "5.7.6xx" (x is any digit)."""
    items = value if isinstance(value, list) else [value]
    if not items:
        problems.add(key, "must not be an empty list")
        return None
    alternatives: list[str] = []
    for i, item in enumerate(items):
        where = f"{key}[{i}]" if isinstance(value, list) else key
        m = _ENHANCED_PATTERN.match(item) if isinstance(item, str) else None
        if m is None:
            problems.add(where, f"expected an enhanced status code such as \"5.1.1\", \"X.1.1\" or \"5.7.*\", got {item!r}")
            continue
        klass, subject, detail = m.groups()
        parts = ["[245]" if klass in "xX*" else klass]
        for part in (subject, detail):
            parts.append(r"\d{1,3}" if part == "*" else part.replace("x", r"\d"))
        alternatives.append(r"\.".join(parts))
    if not alternatives:
        return None
    return re.compile("|".join(f"(?:{a})" for a in alternatives))


_INLINE_CASE_FLAG = re.compile(r"\(\?[a-zA-Z]*-?[a-zA-Z]*[iI]")


def _lowercase_pattern(source: str) -> str:
    """Lowercase a regex's literal letters, leaving escapes (\\S, \\B, \\D ...) alone.
    A letter written as an escape (\\x41, \\u00C9) is taken as written, so it
    should be written in lower case."""
    out: list[str] = []
    i = 0
    while i < len(source):
        if source[i] == "\\" and i + 1 < len(source):
            out.append(source[i : i + 2])
            i += 2
        else:
            out.append(source[i].lower())
            i += 1
    return "".join(out)


# Replies write a negation both ways ("does not exist", "doesn't exist", "doesn’t exist"): a
# pattern that writes one reads the other too, so that a rule's wording is not lost on an
# apostrophe. Only a literal negation is widened, one that stands after a non-letter or "\b"
# (not "(is|are) not"); the widened contraction takes an apostrophe, not any character ("do
# n.t" would read "donate"), except where the pattern itself wrote "n.t".
_APOSTROPHE = "['’ʼ`]"
_AFTER_A_NON_LETTER = r"(?:(?<![\w\\])|(?<=\\b))"
_NOT_CONTINUED = r"(?![\w*+?{])"
_NEGATION = re.compile(_AFTER_A_NON_LETTER + r"(does|do|did|is|are|was|were|has|have|had|could|would|should|must|need)"
                       r"( not|n't|n\.t|n’t)" + _NOT_CONTINUED, re.IGNORECASE)
_CANNOT = re.compile(_AFTER_A_NON_LETTER + r"(can)(not| not|'t|\.t|’t)" + _NOT_CONTINUED, re.IGNORECASE)
_WILL_NOT = re.compile(_AFTER_A_NON_LETTER + r"(w)(ill not|on't|on\.t|on’t)" + _NOT_CONTINUED, re.IGNORECASE)


def _contraction(written: str) -> str:
    """The apostrophe of a widened contraction: any character where the pattern wrote "n.t"."""
    return "." if ".t" in written else _APOSTROPHE


def _either_negation(source: str) -> str:
    """`source` with each literal negation widened to its other spelling (_NEGATION). A pattern with
    a look-behind or a comment is left as written (a widened look-behind has no fixed width), and so
    is one whose widened form would not compile."""
    if ("n" not in source and "N" not in source) or "(?<" in source or "(?#" in source:
        return source
    widened = _NEGATION.sub(lambda m: f"{m[1]}(?: not|n{_contraction(m[2])}t)", source)
    # Each widened form starts with a literal, as every pattern does (docs/classification.md).
    widened = _CANNOT.sub(lambda m: f"{m[1]}(?:not| not|{_contraction(m[2])}t)", widened)
    widened = _WILL_NOT.sub(lambda m: f"{m[1]}(?:ill not|on{_contraction(m[2])}t)", widened)
    if widened == source:
        return source
    try:
        re.compile(widened)
    except re.error:
        return source
    return widened


def _text_regex(value: Any, key: str, problems: Problems) -> _TextPattern | None:
    """One regex or a list of them (any may match), case-insensitive."""
    items = value if isinstance(value, list) else [value]
    if not items:
        problems.add(key, "must not be an empty list")
        return None
    good: list[str] = []
    shipped = shipped_patterns()
    for i, item in enumerate(items):
        where = f"{key}[{i}]" if isinstance(value, list) else key
        if not isinstance(item, str) or not item:
            problems.add(where, f"expected a regular expression (a non-empty string), got {item!r}")
            continue
        if item in shipped:  # compiled alone by tests/test_classify.py; here only joined (a third of the start)
            good.append(item)
            continue
        try:
            re.compile(item, re.IGNORECASE)
        except re.error as exc:
            problems.add(where, f"bad regular expression {item!r}: {exc}")
            continue
        good.append(item)
    if len(good) != len(items):
        return None
    # Operator patterns run in RE2 (linear time, never a stalled loop); see relay/regex.py.
    inline_case = any(_INLINE_CASE_FLAG.search(g) for g in good)
    try:
        if inline_case:
            return _TextPattern(compile_rule_text(good, ignore_case=True, prepare=_either_negation), on_lowered=False)
        return _TextPattern(compile_rule_text(good, ignore_case=False,
                                              prepare=lambda s: _either_negation(_lowercase_pattern(s))),
                            on_lowered=True)
    except PatternError as exc:
        problems.add(key, str(exc))
        return None
    except re.error as exc:  # e.g. inline global flags in a later pattern
        problems.add(key, f"these regular expressions cannot be combined into one: {exc}")
        return None


def _stage_set(value: Any, key: str, problems: Problems) -> frozenset[str] | None:
    """`stage: rcpt` or `stage: [mail, rcpt]` -> the set of stages."""
    items = value if isinstance(value, list) else [value]
    if not items:
        problems.add(key, "must not be an empty list")
        return None
    stages: set[str] = set()
    for i, item in enumerate(items):
        where = f"{key}[{i}]" if isinstance(value, list) else key
        if item not in STAGES:
            problems.add(where, f"unknown stage {item!r}; expected one of " + ", ".join(STAGES))
        else:
            stages.add(item)
    return frozenset(stages) if len(stages) == len(items) else None


def _scope_table(data: dict, problems: Problems) -> dict[str, str]:
    """The file's `scopes:` table: category -> the scope of its rules that name none."""
    raw = data.get("scopes")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add("scopes", "expected a mapping of category to scope, e.g. {unknown_recipient: recipient}")
        return {}
    table: dict[str, str] = {}
    for category, scope in raw.items():
        key = f"scopes.{category}"
        if category not in CATEGORIES:
            problems.add(key, f"unknown category {category!r}; expected one of " + ", ".join(sorted(CATEGORIES)))
        elif scope not in SCOPES:
            problems.add(key, f"unknown scope {scope!r}; expected one of " + ", ".join(SCOPES))
        else:
            table[category] = scope
    return table


def _outcome(entry: dict, key: str, problems: Problems, scopes: dict[str, str]) -> _Outcome | None:
    ok = True
    rule_id = entry.get("id")
    if not isinstance(rule_id, str) or not rule_id.strip():
        problems.add(f"{key}.id", "required: a non-empty string naming the rule")
        ok = False
    category = entry.get("category")
    if category is None:
        problems.add(f"{key}.category", "required: one of " + ", ".join(sorted(CATEGORIES)))
        ok = False
    elif not isinstance(category, str) or category not in CATEGORIES:
        problems.add(f"{key}.category", f"unknown category {category!r}; expected one of " + ", ".join(sorted(CATEGORIES)))
        ok = False
    for field in ("meaning", "advice"):
        value = entry.get(field)
        if not isinstance(value, str) or not value.strip():
            problems.add(f"{key}.{field}", "required: a non-empty sentence for the operator")
            ok = False
    permanent = entry.get("permanent")
    if permanent is not None and not problems.check_bool(f"{key}.permanent", permanent):
        ok = False
    scope = entry.get("scope")
    if scope is not None and scope not in SCOPES:
        problems.add(f"{key}.scope", f"unknown scope {scope!r}; expected one of " + ", ".join(SCOPES))
        ok = False
    elif scope is None and isinstance(category, str) and category in CATEGORIES:
        scope = scopes.get(category)
        if scope is None:
            problems.add(f"{key}.scope", f"required: category {category!r} has no default in any `scopes:` "
                                         "table; give the rule `scope:` or add the category to `scopes:`")
            ok = False
    if not ok:
        return None
    return _Outcome.make(rule_id, category, " ".join(entry["meaning"].split()), " ".join(entry["advice"].split()),
                         permanent, scope)


@dataclass(frozen=True, slots=True)
class _Fallback:
    """Fallback lookups, most specific first: RFC 3463 class.subject.detail,
    any-class subject.detail ("X.1.1"), class.subject ("5.7.*"), any-class
    subject ("X.7.*"); then the basic code, its "55x" and "5xx" patterns; then
    the default."""

    enhanced: dict[str, _Outcome]
    codes: dict[str, _Outcome]
    default: _Outcome | None

    def lookup(self, code: int, enhanced: str | None) -> _Outcome | None:
        if enhanced:
            klass, subject, detail = enhanced.split(".")
            for key in (enhanced, f"X.{subject}.{detail}", f"{klass}.{subject}.*", f"X.{subject}.*"):
                hit = self.enhanced.get(key)
                if hit is not None:
                    return hit
        if code:
            text = str(code)
            for key in (text, text[:2] + "x", text[0] + "xx"):
                hit = self.codes.get(key)
                if hit is not None:
                    return hit
        return self.default


_FALLBACK_ENHANCED = re.compile(r"^([245X])\.(\d{1,3})\.(\d{1,3}|\*)$")


def _fallback_key(entry: dict, key: str, problems: Problems) -> tuple[str, str] | None:
    """("enhanced", "X.1.1") or ("code", "55x") or ("default", "") for one entry."""
    has_code, has_enhanced = "code" in entry, "enhanced" in entry
    if has_code and has_enhanced:
        problems.add(key, "a fallback entry is keyed by either code or enhanced, not both")
        return None
    if has_enhanced:
        value = entry["enhanced"]
        m = _FALLBACK_ENHANCED.match(value.upper()) if isinstance(value, str) else None
        if m is None:
            problems.add(f"{key}.enhanced", f"expected one enhanced code such as \"5.1.1\", \"X.1.1\" or \"5.7.*\", got {value!r}")
            return None
        return "enhanced", ".".join(m.groups())
    if has_code:
        value = entry["code"]
        text = str(value).lower() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
        if not (_CODE_PATTERN.match(text) and (text.isdigit() or text.endswith("x"))):
            problems.add(f"{key}.code", f"expected one reply code such as 550 or a pattern such as \"55x\" or \"5xx\", got {value!r}")
            return None
        return "code", text
    return "default", ""


def _check_patterns(patterns, where: str, problems: Problems) -> None:
    """A list of regular expressions under `where` (hard_at_any_stage, sisimai_words.REASON): each one
    that is no string or does not compile is named with its index."""
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
        problems.add(where, "expected a list of regular expressions (strings)")
        return
    for i, pattern in enumerate(patterns):
        try:
            re.compile(pattern)
        except re.error as exc:
            problems.add(f"{where}[{i}]", f"not a valid regular expression: {exc}")


_RHOST_STATUS = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$|^[245]\.\d{1,3}\.(\d{1,3})-(\d{1,3})$")
_RHOST_STAGES = ("connect", "helo", "mail", "rcpt", "data")


def _check_rhost_entries(entries, where: str, problems: Problems) -> None:
    """`entries:`: a list of mappings, each a `reason:` and at least one of `status:` (an RFC 3463
    code, or "5.7.606-649"), `stage:` (the refused command) and `words:` (a list of phrases)."""
    if not isinstance(entries, list):
        problems.add(where, "expected a list of entries (reason, and status, stage or words)")
        return
    for i, entry in enumerate(entries):
        at = f"{where}[{i}]"
        if not isinstance(entry, dict):
            problems.add(at, "expected a mapping with reason: and status:, stage: or words:")
            continue
        for key in entry:
            if key not in ("reason", "status", "stage", "words", "note"):
                problems.add(f"{at}.{key}", "unknown key; expected reason, status, stage, words or note")
        reason = entry.get("reason")
        if not isinstance(reason, str) or not reason.isalpha():
            problems.add(f"{at}.reason", "expected a sisimai reason name such as userunknown")
        if not any(k in entry for k in ("status", "stage", "words")):
            problems.add(at, "an entry needs at least one condition: status, stage or words")
        if "status" in entry:
            status = entry["status"]
            m = _RHOST_STATUS.match(status) if isinstance(status, str) else None
            if m is None or (m.group(1) is not None and int(m.group(1)) > int(m.group(2))):
                problems.add(f"{at}.status", "expected an RFC 3463 status such as 5.1.1 or a range such as 5.7.606-649")
        if "stage" in entry and entry["stage"] not in _RHOST_STAGES:
            problems.add(f"{at}.stage", f"expected one of {', '.join(_RHOST_STAGES)}")
        if "words" in entry:
            words = entry["words"]
            if not isinstance(words, list) or not words or not all(isinstance(w, str) and w.strip() for w in words):
                problems.add(f"{at}.words", "expected a list of phrases (plain text)")


def _check_rhost(tables, problems: Problems) -> None:
    """`sisimai_rhost:`: a mapping of a table's name to `hosts:` (host names), `reasons:` (a sisimai
    reason to a list of phrases) and an optional `case_sensitive:`."""
    if not isinstance(tables, dict):
        problems.add("sisimai_rhost", "expected a mapping of a receiving host's name to its `hosts:` and `reasons:`")
        return
    for name, table in tables.items():
        where = f"sisimai_rhost.{name}"
        if not isinstance(table, dict):
            problems.add(where, "expected a mapping with `hosts:` and `reasons:`")
            continue
        for key in table:
            if key not in ("hosts", "reasons", "patterns", "entries", "case_sensitive", "note"):
                problems.add(f"{where}.{key}",
                             "unknown key; expected hosts, reasons, patterns, entries, case_sensitive or note")
        hosts = table.get("hosts")
        if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) and h.strip(".") for h in hosts):
            problems.add(f"{where}.hosts", "expected a list of host names")
        patterns = table.get("patterns", {})
        if not isinstance(patterns, dict):
            problems.add(f"{where}.patterns", "expected a mapping of a sisimai reason to a list of regular expressions")
            patterns = {}
        for reason, regexes in patterns.items():
            if not isinstance(reason, str) or not reason.isalpha():
                problems.add(f"{where}.patterns.{reason}", "expected a sisimai reason name such as userunknown")
            _check_patterns(regexes, f"{where}.patterns.{reason}", problems)
        entries = table.get("entries", [])
        _check_rhost_entries(entries, f"{where}.entries", problems)
        reasons = table.get("reasons", {})
        if not isinstance(reasons, dict) or not (reasons or patterns or entries):
            problems.add(f"{where}.reasons", "expected a mapping of a sisimai reason to a list of phrases")
            continue
        for reason, phrases in reasons.items():
            if not isinstance(reason, str) or not reason.isalpha():
                problems.add(f"{where}.reasons.{reason}", "expected a sisimai reason name such as userunknown")
            if not isinstance(phrases, list) or not phrases or not all(isinstance(p, str) and p.strip() for p in phrases):
                problems.add(f"{where}.reasons.{reason}", "expected a list of phrases (plain text)")
        if not isinstance(table.get("case_sensitive", False), bool):
            problems.add(f"{where}.case_sensitive", "expected true or false")


class Classifier:
    """Compiled rules from one or more files, in precedence order."""

    def __init__(self, rules: list[_Rule], fallback: _Fallback, files: list[str],
                 texts: dict[str, tuple[str, str]] | None = None, unconfirmed_rules: Iterable[str] = (),
                 hard_at_any_stage: re.Pattern | None = None,
                 sisimai_words: dict[str, re.Pattern] | None = None,
                 sisimai_rhost: Iterable[RhostTable] = ()):
        self._rules = tuple(rules)
        # `sisimai_rhost:` (bounce-rules.yaml): sisimai's receiving-host tables; only `hard` reads them
        # (policies.sisimai_hard).
        self.sisimai_rhost = tuple(sisimai_rhost)
        # `hard_at_any_stage:` (bounce-rules.yaml): words of a "no such user" that are a hard bounce
        # although the report does not say which SMTP command they answered, or said DATA
        # (policies.sisimai_hard, filtered_at_unknown_stage); None: no file gives any.
        self.hard_at_any_stage = hard_at_any_stage
        # `sisimai_words:` (bounce-rules.yaml): reason -> the words by which sisimai gives that reason
        # where our rules read the text otherwise; only `hard` reads them (policies.sisimai_hard).
        self.sisimai_words = dict(sisimai_words or {})
        # Ids of the rules marked `unconfirmed: true`: a text that puts its own address claim in
        # doubt (Policies.judge only counts it, as a "no such user" at DATA).
        self.unconfirmed_rules = frozenset(unconfirmed_rules)
        # The rules marked `judge_reason: true`, by id (wrapped_reason).
        self._reason_rules = {rule.outcome.rule_id: rule for rule in self._rules if rule.judge_reason}
        self._fallback = fallback
        self.files = tuple(files)
        outcomes = [*fallback.enhanced.values(), *fallback.codes.values()]
        if fallback.default is not None:
            outcomes.append(fallback.default)
        # Rule ids are unique across rules and fallback entries (checked at load), so an id says
        # whether a classification came from the fallback table, and from which kind of entry.
        keys = {o.rule_id: ("enhanced", k) for k, o in fallback.enhanced.items()}
        keys.update({o.rule_id: ("code", k) for k, o in fallback.codes.items()})
        keys[_NO_RULE.rule_id] = ("default", "")
        if fallback.default is not None:
            keys[fallback.default.rule_id] = ("default", "")
        self._fallback_keys = keys
        # Each category's generic meaning and advice: the `texts:` entry named after it, else the
        # first fallback entry of the category, else its first rule's.
        category_texts = dict(texts or {})
        for outcome in [*outcomes, *(rule.outcome for rule in self._rules)]:
            category_texts.setdefault(outcome.category, (outcome.meaning, outcome.advice))
        self._category_texts = category_texts

    # -- loading -----------------------------------------------------------------

    @classmethod
    def from_files(cls, paths: Iterable[Path | str]) -> "Classifier":
        """Load rule files in precedence order: operator files first, the shipped
        file last. Rules of earlier files are tried first; an earlier file's
        fallback entry wins over a later file's for the same code. Rule ids must
        be unique across all files. Every problem in every file is collected and
        raised as one ConfigError."""
        rules: list[_Rule] = []
        enhanced: dict[str, _Outcome] = {}
        codes: dict[str, _Outcome] = {}
        default: _Outcome | None = None
        seen_ids: dict[str, str] = {}
        unconfirmed_ids: set[str] = set()
        all_problems: list = []
        files: list[str] = []
        loaded: list[tuple[Path, dict, Problems]] = []
        scopes: dict[str, str] = {}
        for path in paths:
            path = Path(path)
            files.append(str(path))
            problems = Problems(str(path))
            data = cls._read(path, problems)
            if data is not None:
                # An earlier file's `scopes:` entry wins, as its rules do.
                for category, scope in _scope_table(data, problems).items():
                    scopes.setdefault(category, scope)
                loaded.append((path, data, problems))
            else:
                all_problems.extend(problems.items)
        if SHIPPED_RULES.resolve() not in {Path(f).resolve() for f in files}:
            # An operator's own bounce-rules.yaml that predates `scopes:` still gets the
            # shipped defaults for the categories it does not map.
            for category, scope in _shipped_scopes().items():
                scopes.setdefault(category, scope)
        for path, data, problems in loaded:
            file_rules, file_fallback = cls._compile_file(data, str(path), problems, seen_ids, scopes,
                                                          unconfirmed_ids)
            rules.extend(file_rules)
            for kind, fkey, outcome in file_fallback:
                if kind == "enhanced":
                    enhanced.setdefault(fkey, outcome)
                elif kind == "code":
                    codes.setdefault(fkey, outcome)
                elif default is None:
                    default = outcome
            all_problems.extend(problems.items)
        if all_problems:
            raise ConfigError(all_problems)
        texts: dict[str, tuple[str, str]] = {}
        for _, data, _ in loaded:
            for category, text in (data.get("texts") if isinstance(data.get("texts"), dict) else {}).items():
                if (category in CATEGORIES and isinstance(text, dict) and isinstance(text.get("meaning"), str)
                        and isinstance(text.get("advice"), str)):
                    texts.setdefault(category, (" ".join(text["meaning"].split()), " ".join(text["advice"].split())))
        any_stage: list[str] = []
        for _, data, _ in loaded:
            any_stage.extend(p for p in (data.get("hard_at_any_stage") or []) if isinstance(p, str))
        any_stage_regex = (re.compile("|".join(f"(?:{p})" for p in any_stage), re.IGNORECASE)
                           if any_stage else None)
        by_reason: dict[str, list[str]] = {}
        for _, data, _ in loaded:
            words = data.get("sisimai_words")
            for reason, patterns in (words.items() if isinstance(words, dict) else ()):
                by_reason.setdefault(reason, []).extend(p for p in patterns or [] if isinstance(p, str))
        sisimai_words = {reason: re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
                         for reason, patterns in by_reason.items() if patterns}
        tables: dict[str, RhostTable] = {}
        for _, data, _ in loaded:
            given = data.get("sisimai_rhost")
            for name, table in (given.items() if isinstance(given, dict) else ()):
                # The first file that names a host's table gives it (operator files come first).
                if isinstance(table, dict) and name not in tables:
                    flags = 0 if table.get("case_sensitive", False) else re.IGNORECASE
                    tables[name] = RhostTable(
                        str(name), tuple(table.get("hosts") or ()),
                        tuple((reason, tuple(phrases)) for reason, phrases in (table.get("reasons") or {}).items()),
                        bool(table.get("case_sensitive", False)),
                        tuple((reason, re.compile("|".join(f"(?:{p})" for p in patterns), flags))
                              for reason, patterns in (table.get("patterns") or {}).items()),
                        tuple(RhostEntry(str(e["reason"]), e.get("status"), e.get("stage"), tuple(e.get("words") or ()))
                              for e in table.get("entries") or ()))
        return cls(rules, _Fallback(enhanced, codes, default), files, texts, unconfirmed_ids, any_stage_regex,
                   sisimai_words, tables.values())

    @classmethod
    def from_directory(cls, directory: Path | str) -> "Classifier":
        """The rule files of a policy directory: operator files named
        `bounce-rules.*.yaml` (in name order) before `bounce-rules.yaml`; when the
        directory has no `bounce-rules.yaml`, the shipped one is used."""
        return cls.from_files(rule_files(directory))

    @staticmethod
    def _read(path: Path, problems: Problems) -> dict | None:
        try:
            data = load_yaml(path)
        except ConfigError as exc:
            problems.extend(exc)
            return None
        if not isinstance(data, dict):
            problems.add("(file)", "expected a mapping with `rules:` and/or `fallback:`")
            return None
        return data

    @classmethod
    def _compile_file(cls, data: dict, file: str, problems: Problems, seen_ids: dict[str, str],
                      scopes: dict[str, str], unconfirmed_ids: set[str]):
        for name in data:
            if name not in TOP_KEYS:
                problems.add(str(name), "unknown top-level key; expected one of " + ", ".join(sorted(TOP_KEYS)))
        problems.check_version(data)
        if "rules" not in data and "fallback" not in data:
            problems.add("rules", "required: the file has neither `rules:` nor `fallback:`")
        if "texts" in data and not isinstance(data["texts"], dict):
            problems.add("texts", "expected a mapping of shared texts (used through YAML anchors)")
        if "hard_at_any_stage" in data:
            _check_patterns(data["hard_at_any_stage"], "hard_at_any_stage", problems)
        if "sisimai_words" in data:
            words = data["sisimai_words"]
            if not isinstance(words, dict):
                problems.add("sisimai_words", "expected a mapping of a sisimai reason ("
                             + ", ".join(sorted(SISIMAI_WORD_REASONS)) + ") to a list of regular expressions")
            else:
                for reason, patterns in words.items():
                    where = f"sisimai_words.{reason}"
                    if reason not in SISIMAI_WORD_REASONS:
                        problems.add(where, "unknown reason; expected one of " + ", ".join(sorted(SISIMAI_WORD_REASONS)))
                    else:
                        _check_patterns(patterns, where, problems)
        if "sisimai_rhost" in data:
            _check_rhost(data["sisimai_rhost"], problems)

        def check_id(entry: dict, key: str) -> None:
            rule_id = entry.get("id")
            if not isinstance(rule_id, str):
                return
            where = f"{file} {key}"
            if rule_id in seen_ids:
                problems.add(f"{key}.id", f"duplicate rule id {rule_id!r}: already defined at {seen_ids[rule_id]}")
            else:
                seen_ids[rule_id] = where

        rules: list[_Rule] = []
        raw_rules = _given(data.get("rules"), [])
        if not isinstance(raw_rules, list):
            problems.add("rules", "expected a list of rules")
            raw_rules = []
        for n, entry in enumerate(raw_rules):
            key = f"rules[{n}]"
            if not isinstance(entry, dict):
                problems.add(key, "expected a mapping with id, category, meaning, advice and conditions")
                continue
            problems.unknown_keys(entry, RULE_KEYS, key)
            check_id(entry, key)
            outcome = _outcome(entry, key, problems, scopes)
            conditions = reply_conditions(entry, key, problems)
            names = entry.get("names_recipient", False)
            if not problems.check_bool(f"{key}.names_recipient", names):
                names = False
            judge_reason = entry.get("judge_reason", False)
            if not problems.check_bool(f"{key}.judge_reason", judge_reason):
                judge_reason = False
            elif judge_reason and "match" not in entry:
                problems.add(f"{key}.judge_reason", "needs `match:`: the reason is the text after what it matches")
            unconfirmed = entry.get("unconfirmed", False)
            if problems.check_bool(f"{key}.unconfirmed", unconfirmed) and unconfirmed and outcome is not None:
                if outcome.scope != "recipient":
                    # All the marker does is keep a recipient-scoped refusal from listing at once and
                    # from being a hard bounce (Policies._judged); a refusal of any other scope never
                    # touches the bounce list and is never hard, so the marker would be silently ignored.
                    given = ("its `scope:`" if entry.get("scope") is not None
                             else f"the `scopes:` entry of {outcome.category}")
                    problems.add(f"{key}.unconfirmed",
                                 f"has no effect: the rule's scope is {outcome.scope} ({given}), and only a "
                                 f"recipient-scoped refusal can list an address or be a hard bounce, which is all "
                                 f"`unconfirmed: true` changes; remove it, or give the rule `scope: recipient` if "
                                 f"the refusal is about the recipient's address")
                else:
                    unconfirmed_ids.add(outcome.rule_id)
            if outcome is not None and conditions is not None:
                rules.append(_Rule(outcome, conditions.codes, conditions.enhanced, conditions.match,
                                   conditions.not_match, file, conditions.stages, names, bool(judge_reason)))

        fallback: list[tuple[str, str, _Outcome]] = []
        raw_fallback = _given(data.get("fallback"), [])
        if not isinstance(raw_fallback, list):
            problems.add("fallback", "expected a list of fallback entries")
            raw_fallback = []
        keys_here: dict[tuple[str, str], str] = {}
        for n, entry in enumerate(raw_fallback):
            key = f"fallback[{n}]"
            if not isinstance(entry, dict):
                problems.add(key, "expected a mapping with id, code or enhanced, category, meaning and advice")
                continue
            problems.unknown_keys(entry, FALLBACK_KEYS, key)
            check_id(entry, key)
            outcome = _outcome(entry, key, problems, scopes)
            fkey = _fallback_key(entry, key, problems)
            if fkey is None or outcome is None:
                continue
            if fkey in keys_here:
                shown = "the default entry" if fkey[0] == "default" else f"{fkey[0]} {fkey[1]}"
                problems.add(key, f"{shown} is already covered by {keys_here[fkey]}")
                continue
            keys_here[fkey] = key
            fallback.append((fkey[0], fkey[1], outcome))
        return rules, fallback

    # -- classifying -------------------------------------------------------------

    def classify(self, reply: Reply, stage: str | None = None,
                 names_recipient: bool | Callable[[str], bool] | None = None) -> Classification:
        """The first matching rule's classification. `stage` is the SMTP stage the reply
        answered, when known: rules with `stage:` match only at their stages. `names_recipient`
        decides the rules marked `names_recipient: true`, whose words carry an address that may be
        another's: None (no recipient is known) or True applies them, False skips them, and a
        callable is asked of each passage such a rule's `match` found (the wording, with the
        address it carries): the rule applies when it says yes to one (Policies.judge)."""
        code = reply.code
        enhanced = effective_enhanced(reply)
        text = unwrapped_text(reply)
        lowered = text.lower()
        skip_named = names_recipient is False
        ask = names_recipient if callable(names_recipient) else None
        for rule in self._rules:
            if skip_named and rule.names_recipient:
                continue
            if rule.matches(code, enhanced, text, lowered, stage):
                if (ask is not None and rule.names_recipient and rule.match is not None
                        and not any(ask(w) for w in rule.match.wordings(text, lowered))):
                    continue
                return rule.outcome.classification(code, enhanced)
        outcome = self._fallback.lookup(code, enhanced)
        if outcome is None:
            return _NO_RULE.classification(code, enhanced)
        return outcome.classification(code, enhanced)

    def wrapped_reason(self, classification: Classification, text: str) -> str | None:
        """The reply a wrapper carries, when `classification` came from a rule marked `judge_reason:
        true`: the text (`text`, unwrapped_text) after the first passage its `match` found; None
        otherwise, or when nothing follows it. Postfix's reject_unverified_recipient writes
        "<rcpt>: Recipient address rejected: undeliverable address: REASON" whatever REASON says
        (Policies.judge)."""
        rule = self._reason_rules.get(classification.rule)
        if rule is None or rule.match is None:
            return None
        lowered = text.lower()
        if rule.match.on_lowered and len(lowered) != len(text):
            return None  # a character whose lower case is longer: positions differ (never in a wrapper)
        found = rule.match.regex.search(lowered if rule.match.on_lowered else text)
        if found is None:
            return None
        reason = text[found.end():].strip()
        return reason or None

    def fallback_key(self, classification: Classification) -> tuple[str, str] | None:
        """Where `classification` came from when no text rule matched: ("enhanced", "X.1.1"),
        ("code", "550"), ("code", "5xx") or ("default", ""); None when a rule matched."""
        return self._fallback_keys.get(classification.rule)

    def code_category(self, code: int) -> str | None:
        """The category the fallback table gives the reply code alone (no enhanced code, no text): what
        the code itself says (551 "user not local": unknown_recipient; 550: other). None: no entry."""
        outcome = self._fallback.lookup(code, None) if code else None
        return outcome.category if outcome is not None else None

    def category_texts(self, category: str) -> tuple[str, str]:
        """The generic (meaning, advice) of a category."""
        return self._category_texts.get(category, (_NO_RULE.meaning, _NO_RULE.advice))

    def classify_text(self, text: str, stage: str | None = None) -> Classification:
        """Classify a reply as it was written on the wire (or pasted from a log)."""
        return self.classify(Reply.parse(text), stage)

    @property
    def rule_ids(self) -> list[str]:
        """Every rule and fallback id, in the order they are tried."""
        ids = [rule.outcome.rule_id for rule in self._rules]
        fb = self._fallback
        ids.extend(o.rule_id for o in fb.enhanced.values())
        ids.extend(o.rule_id for o in fb.codes.values())
        if fb.default is not None:
            ids.append(fb.default.rule_id)
        return ids


# When the files define no default, a reply nothing matched still gets an answer. Its
# scope is `message`: an unexplained refusal is never evidence against an address.
_NO_RULE = _Outcome.make(
    "default",
    "other",
    "The receiving server refused the message for a reason these rules do not recognise.",
    "Read the full reply text from the receiving server: it usually says what went wrong.",
    None,
    "message",
)


@functools.cache
def _shipped_scopes() -> dict[str, str]:
    """The shipped file's `scopes:` table (read once; the shipped file is validated by its own load)."""
    try:
        data = load_yaml(SHIPPED_RULES)
    except ConfigError:
        return {}
    return _scope_table(data, Problems(str(SHIPPED_RULES))) if isinstance(data, dict) else {}


RELAY_REPLIES_FILE = "relay-replies.yaml"
SHIPPED_RELAY_REPLIES = SHIPPED_POLICIES / RELAY_REPLIES_FILE
_RELAY_TOP_KEYS = frozenset({"version", "causes", "default"})
_RELAY_ENTRY_KEYS = frozenset({"category", "meaning", "advice", "permanent", "scope", "note"})
# A relay reply is about our side (relay), or, for what DNS says of a recipient's domain when we
# deliver to MX hosts ourselves, about that recipient.
_RELAY_SCOPES = ("relay", "recipient")


class RelayReplies:
    """Classifications of the relay's own replies, by the cause the reply carries
    (policies/relay-replies.yaml). Scope is always `relay`; provider rules never see
    these replies."""

    def __init__(self, causes: dict[str, _Outcome], default: _Outcome, file: str):
        self._causes = causes
        self._default = default
        self.file = file

    @property
    def causes(self) -> frozenset[str]:
        return frozenset(self._causes)

    def classify(self, reply: Reply) -> Classification:
        outcome = self._causes.get(reply.cause or "", self._default)
        return outcome.classification(reply.code, reply.enhanced)

    @classmethod
    def from_file(cls, path: Path | str) -> "RelayReplies":
        path = Path(path)
        problems = Problems(str(path))
        data = load_yaml(path)
        if not isinstance(data, dict):
            problems.add("(file)", "expected a mapping with `causes:` and `default:`")
            problems.raise_if_any()
        problems.unknown_keys(data, _RELAY_TOP_KEYS)
        problems.check_version(data)
        causes: dict[str, _Outcome] = {}
        raw = _given(data.get("causes"), {})
        if not isinstance(raw, dict):
            problems.add("causes", "expected a mapping of cause id to {category, meaning, advice}")
            raw = {}

        def entry_outcome(entry: Any, key: str, rule_id: str) -> _Outcome | None:
            if not isinstance(entry, dict):
                problems.add(key, "expected a mapping with category, meaning and advice")
                return None
            problems.unknown_keys(entry, _RELAY_ENTRY_KEYS, key)
            scope = entry.get("scope", "relay")
            if scope not in _RELAY_SCOPES:
                problems.add(f"{key}.scope", f"{scope!r}: a relay reply's scope is one of {', '.join(_RELAY_SCOPES)}")
                return None
            return _outcome({**entry, "id": rule_id, "scope": scope}, key, problems, {})

        for cause, entry in raw.items():
            outcome = entry_outcome(entry, f"causes.{cause}", f"relay:{cause}")
            if outcome is not None:
                causes[str(cause)] = outcome
        default = None
        if "default" not in data:
            problems.add("default", "required: the classification of a relay reply with no known cause")
        else:
            default = entry_outcome(data["default"], "default", "relay:default")
        problems.raise_if_any()
        return cls(causes, default, str(path))


@functools.cache
def default_relay_replies() -> RelayReplies:
    """The shipped policies/relay-replies.yaml, loaded once."""
    return RelayReplies.from_file(SHIPPED_RELAY_REPLIES)


def rule_files(directory: Path | str) -> list[Path]:
    """Rule files of a policy directory in precedence order (see Classifier.from_directory)."""
    directory = Path(directory)
    # Whatever is at an operator's name is loaded (a directory, a dangling symlink, a FIFO is then
    # an error naming it), as policies.policy_file does: never skipped or replaced by the shipped file.
    operator = sorted(directory.glob(OPERATOR_RULE_GLOB))
    main = directory / RULE_FILE
    return [*operator, main if os.path.lexists(main) else SHIPPED_RULES]


@functools.cache
def default_classifier() -> Classifier:
    """The shipped rules, loaded once."""
    return Classifier.from_files([SHIPPED_RULES])
