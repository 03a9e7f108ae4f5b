"""What puts an address on the bounce list: policies/suppression.yaml as data.

The policy is a table keyed by (category, permanent). Each cell is a
`SuppressionRule`: how many failures list the address, within which window,
and when the entry expires. The store asks `rule_for()` and does the counting;
nothing here knows about particular categories (see the YAML for the defaults
and why).
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .address import addresses_in, domain_in_a_labels, domain_of
from .errors import ConfigError, Problems
from .yamlfile import given as _given, load_yaml

# DESIGN.md, "Events": the classifier's categories.
CATEGORIES = (
    "unknown_recipient", "mailbox_disabled", "mailbox_full", "message_too_large",
    "rate_limited", "too_many_connections", "spam_content", "policy_rejected",
    "auth_failed", "blocklisted", "routing_dns", "relay_denied", "greylisted",
    "temporary_failure", "syntax_error", "protocol_error", "expired", "other",
)
# SMTP protocol errors are about the dialogue, never about an address: no section may list them.
NEVER_LISTED = ("protocol_error",)

SECTIONS = {"permanent": True, "temporary": False}
TOP_KEYS = ("version", *SECTIONS, "complaints", "breaker", "provider_breaker", "domains", "unconfirmed", "shared_return_path")
UNCONFIRMED_KEYS = ("list_after", "within")
SHARED_KEYS = ("list_after", "within", "expire_after")
BREAKER_KEYS = ("distinct_addresses", "within", "categories")
PROVIDER_BREAKER_KEYS = (*BREAKER_KEYS, "named_by", "two_label_suffixes")
DOMAIN_KEYS = ("evidence", "not_evidence", "categories", "seen_again_after", "within", "expire_after", "breaker")
DOMAIN_BREAKER_KEYS = ("distinct_domains", "within")
# The category of a domain entry (`@example.com`) on the bounce list.
DOMAIN_CATEGORY = "routing_dns"
RULE_KEYS = ("list_after", "within", "expire_after")
# The category a complaint's bounce-list entry carries (an ARF report is no delivery failure).
COMPLAINT = "complaint"

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_OFF = ("off", "never", "no", "false", "none")


def parse_duration(value: Any) -> float | None:
    """'30d' -> seconds; 'never'/off/None -> None; a bare int is seconds. ValueError otherwise."""
    if value is None or value is False:
        return None
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30d, not true")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError(f"duration must be positive, got {_shown(value)}")
        return _bounded(value, value)
    if isinstance(value, str):
        if value.strip().lower() in _OFF:
            return None
        m = _DURATION.match(value)
        if m and int(m.group(1)) > 0:
            return _bounded(int(m.group(1)) * _UNITS[m.group(2)], value)
    raise ValueError(f"bad duration {_shown(value)}: expected a number and a unit s, m, h, d or w (e.g. 30d), "
                     f"or never")


# The longest window or expiry: a hundred years. Past it an entry's expiry is no date (datetime ends at
# year 9999) and an int past float range ended check-config with an OverflowError traceback (review31
# F5); "never" is the word for no expiry.
MAX_DURATION = 100 * 365 * 86400


def _bounded(seconds: int | float, value: Any) -> float:
    if not (isinstance(seconds, int) or math.isfinite(seconds)):
        raise ValueError(f"bad duration {_shown(value)}: expected a number and a unit s, m, h, d or w (e.g. 30d), "
                         f"or never")
    if seconds > MAX_DURATION:
        raise ValueError(f"duration {_shown(value)} is longer than 100 years (36500d); write never for none")
    return float(seconds)


def _shown(value: Any) -> str:
    """A value for an error message, cut short (a 400-digit number is not worth quoting whole)."""
    text = repr(value) if not isinstance(value, int) else str(value) if value.bit_length() < 64 \
        else f"a number of {len(str(value))} digits"
    return text if len(text) <= 40 else text[:37] + "..."


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{int(seconds)}s"


@dataclass(frozen=True)
class SuppressionRule:
    category: str
    permanent: bool
    list_after: int  # failures that list the address; >= 1
    within: float | None = None  # seconds; the counting window when list_after > 1
    expire_after: float | None = None  # seconds; None: stays until removed

    @property
    def immediate(self) -> bool:
        return self.list_after == 1

    def describe(self) -> str:
        kind = "permanent" if self.permanent else "temporary"
        when = ("the first failure" if self.immediate
                else f"{self.list_after} failures within {format_duration(self.within)}")
        return (f"{kind} {self.category}: listed after {when}, "
                f"expires {'never' if self.expire_after is None else 'after ' + format_duration(self.expire_after)}")


# What a complaint of each ARF Feedback-Type does (`complaints.feedback_types`): `complaint`, the
# `complaints:` rule applies to the recipient; `never`, it is not recorded against the recipient.
# RFC 5965 3.5/7.3 registers abuse, fraud, virus and other, RFC 6430 not-spam (the recipient says the
# message is NOT spam), RFC 6591 auth-failure (the sender's SPF/DKIM/DMARC failed: about the sender,
# not a complaint of the recipient); opt-out is the unsubscribe drafts' (Removal-Recipient) and Apple
# Mail's. "*": any other type. When a file has no such table (one written before it existed), the
# shipped table's decisions (review-12 F10).
COMPLAINT_ACTIONS = ("complaint", "never")
DEFAULT_FEEDBACK_TYPES = {"abuse": "complaint", "fraud": "complaint", "virus": "complaint", "other": "complaint",
                          "opt-out": "complaint", "not-spam": "never", "auth-failure": "never", "*": "never"}
# A report without a Feedback-Type (SES leaves complaintFeedbackType out when the provider gave none)
# is read as the feedback loops' one type, abuse.
UNTYPED_FEEDBACK = "abuse"
_FEEDBACK_TYPE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}|\*")

# When a suppression file has no `complaints:` section (one written before it existed): a
# recipient who reported the mail as spam (an RFC 5965 ARF report) is listed at once, as
# the shipped file says; mailing them again is what mailbox providers punish.
DEFAULT_COMPLAINT_RULE = SuppressionRule(COMPLAINT, True, 1)


@dataclass(frozen=True)
class Breaker:
    """A circuit breaker against a receiver that misreports: when more than
    `distinct_addresses` addresses at one domain would be listed for `categories`
    within `within` seconds (an outage at a large provider can answer 550 5.1.1 for
    valid users), the domain's listings are held for the operator instead."""

    distinct_addresses: int
    within: float
    categories: frozenset[str]

    def describe(self) -> str:
        return (f"more than {self.distinct_addresses} addresses at one domain within "
                f"{format_duration(self.within)} ({', '.join(sorted(self.categories))}) are held")


@dataclass(frozen=True)
class ProviderBreaker:
    """The circuit breaker keyed by the refusing provider rather than the recipient domain: an outage
    at a hosting provider (Google Workspace, Microsoft 365, a hoster's shared MX) answering 550 5.1.1
    for valid users of many customer domains refuses a few addresses at each domain, never enough
    for the domain breaker, and every one was listed (review-12's design note). When more than
    `distinct_addresses` addresses refused by one provider would be listed for `categories` within
    `within` seconds, the provider's listings are held for the operator.

    The provider is the registrable domain of the host that refused (`provider_of`): the MX host the
    relay talked to, a DSN's Remote-MTA, a Postfix log's relay=, else a host the reply itself names
    (`named_by`: Postfix's "host H[ip] said:", Exim's "host H [ip]:", Exchange's "Remote Server at
    H", a Microsoft 365 server name). A smarthost the relay hands mail to is never it."""

    distinct_addresses: int
    within: float
    categories: frozenset[str]
    # Regexes (RE2, case-insensitive) each with a group `host`: a host name the reply says answered.
    named_by: tuple = ()
    # Public suffixes of two labels (co.uk): a host under one keeps three labels, not two.
    two_label_suffixes: frozenset[str] = frozenset()

    def describe(self) -> str:
        return (f"more than {self.distinct_addresses} addresses refused by one provider within "
                f"{format_duration(self.within)} ({', '.join(sorted(self.categories))}) are held")

    def named_host(self, text: str) -> str | None:
        """The first host name a reply says answered (`named_by`), or None."""
        for pattern in self.named_by:
            m = pattern.search(text or "")
            if m and m.group("host"):
                return m.group("host")
        return None

    def provider_of(self, host: str | None) -> str | None:
        """`host` reduced to its registrable domain, the provider's name: the last two labels, or the
        last three under one of `two_label_suffixes` (aspmx.l.google.com -> google.com,
        mx1.hoster.co.uk -> hoster.co.uk). Not the Public Suffix List (no library for it is a
        dependency): a suffix missing from the list pools the hosts under it into one provider, which
        holds more listings for the operator, never fewer (docs/bounce-list.md). An IP address is its
        own provider. None when `host` is no host name, or a single label (Postfix's relay=none,
        local: no remote host answered)."""
        return provider_name(host, self.two_label_suffixes)


def provider_name(host: str | None, two_label_suffixes=frozenset()) -> str | None:
    """ProviderBreaker.provider_of without a breaker (see there)."""
    # A DSN's Remote-MTA may carry the address after the name ("mx.example.com (192.0.2.1)"): the name.
    text = (host or "").strip().split()[0] if (host or "").strip() else ""
    text = text.strip("[]").rstrip(".").lower()
    if text.startswith("ipv6:"):
        text = text[5:]
    if not text:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    try:
        text = domain_in_a_labels(text)
    except Exception:  # noqa: BLE001 - no host name: no provider
        return None
    labels = [label for label in text.split(".") if label]
    if len(labels) < 2 or any(not re.fullmatch(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?", label) for label in labels):
        return None
    keep = 3 if len(labels) >= 3 and ".".join(labels[-2:]) in two_label_suffixes else 2
    return ".".join(labels[-keep:])


@dataclass(frozen=True)
class DomainRule:
    """When a recipient domain itself goes on the list (an `@domain` entry): a permanent,
    recipient-scoped refusal whose text says the domain does not exist (`evidence`, and
    none of `not_evidence`: a DNS glitch such as SERVFAIL or a timeout never counts), seen
    again at least `seen_again_after` after the first sighting, within `within`."""

    evidence: re.Pattern
    not_evidence: re.Pattern | None
    seen_again_after: float
    within: float
    expire_after: float | None
    # The categories whose refusals may be evidence (None: any). A refusal read as a missing
    # mailbox, a relay refusal or a content verdict says the domain answered, whatever domain
    # word it quotes.
    categories: frozenset[str] | None = None
    # More than `distinct_domains` domains listed within `within` holds them for the operator
    # (DomainBreaker); None: `breaker: off`.
    breaker: "DomainBreaker | None" = None

    def counts_category(self, category: str) -> bool:
        return self.categories is None or category in self.categories

    def says_no_such_domain(self, text: str, address: str = "") -> bool:
        """Whether `text`, a permanent refusal of `address`, says its domain does not exist. The
        addresses the text quotes and the recipient's domain are not the server's words: a
        Postfix-style "<nxdomain@example.com>: Recipient address rejected: User unknown" (the
        local part matching `nxdomain`), or "nxdomain-fans.example has no mail server", listed a
        whole domain that exists."""
        if address and not _about_the_domain_of(text, address):
            return False
        text = _without_addresses(text, address)
        if self.evidence.search(text) is None:
            return False
        return not self.dns_glitch(text)

    def dns_glitch(self, text: str) -> bool:
        """The text tells of a failed DNS lookup (`not_evidence`: SERVFAIL, a timeout, "try again"),
        not of a domain that does not exist."""
        return self.not_evidence is not None and self.not_evidence.search(text) is not None


@dataclass(frozen=True)
class DomainBreaker:
    """The circuit breaker on `@domain` listings (`domains: breaker:`): when more than
    `distinct_domains` domains would be listed as not existing within `within` seconds, those
    listings are held for the operator, as the address breakers hold theirs. Many domains found
    "nonexistent" at once is the relay's DNS failing (a resolver that says NXDOMAIN for every
    outside name, review21 F4), not that many domains vanished; a DNS glitch must never list one."""

    distinct_domains: int
    within: float

    def describe(self) -> str:
        return f"more than {self.distinct_domains} domains listed within {format_duration(self.within)} are held"


DEFAULT_DOMAIN_BREAKER = DomainBreaker(10, 3600.0)


# An address as replies quote it: in angle brackets (any local part, RFC 5321 4.1.2's quoted
# strings with spaces among them), or bare; bounded repeats keep the search linear.
_QUOTED_ADDRESS = re.compile(r'<[^<>\r\n]{0,320}@[^<>\r\n]{0,255}>|[^\s<>@"]{1,64}@[^\s<>@]{1,255}')


# The name a resolver's error says it looked up (Postfix's dns_lookup.c: "name=%s type=%s"), and the
# server Exchange last tried ("DNS domain does not exist ... [LastAttemptedServerName=x]").
_LOOKED_UP = re.compile(r"\bname=([^\s\]\[;,]{1,255})\S{0,64} type=|LastAttemptedServerName=([^\s\]\[;,]{1,255})",
                        re.IGNORECASE)
# The other ways a text names what it looked up or could not find (review-12 F5: Gmail's "DNS type 'a'
# lookup of mx.dest.example responded with code NXDOMAIN ... Domain name not found: mx.dest.example"
# is about dest.example's MX HOST, and dest.example exists: its MX record answered), in general form:
# "lookup of/for X", "resolving X", "query for X"; "hostname X: NXDOMAIN", "host X not found",
# "domain X does not exist"; "not found: X"; "X: host not found", "X: NXDOMAIN". X is a name with a
# dot that is not an address's domain (an address is checked below) nor a URL's host.
_NAME = r"(?<![@\w./:-])['\"<\[(]?([A-Za-z0-9_](?:[\w-]*\.)+[A-Za-z][\w-]*\.?)(?![\w@-]|\.\w|/)"
_NOT_FOUND = (r"(?:\(?nxdomain\)?|(?:was |is )?not found|does ?n[o']t exist|could ?n[o']t be (?:found|resolved)|"
              r"cannot be (?:found|resolved)|(?:is )?unknown|no such (?:domain|host))")
_NAMED_LOOKUP = re.compile(
    r"\blook(?:ed)?[- ]?up (?:of |for )?(?:the )?(?:(?:host|domain|mx|name) )?" + _NAME +
    r"|\b(?:resolv(?:e|ing)|quer(?:y|ying|ied)(?: for| of)?) (?:the )?(?:(?:host|domain|name) )?" + _NAME +
    r"|\b(?:host ?name|host|domain(?: name)?|mx host|mail server|mail exchanger)\s*[:=]?\s*" + _NAME +
    r"['\">\])]?\s*[:,]?\s*" + _NOT_FOUND +
    r"|\b(?:not found|nxdomain|does not exist|no such (?:domain|host))\s*(?:for\s+)?[:=]\s*" + _NAME +
    r"|" + _NAME + r"['\">\])]?\s*:\s*(?:nxdomain|(?:host|domain|name) not found|no such (?:domain|host))",
    re.IGNORECASE)
# A quoted address's domain as far as it is a domain name (the punctuation a text puts after a bare
# address, "bob@dest.example:" or "(bob@dest.example)", is not part of it; review-11 R11-1).
_DOMAIN_NAME = re.compile(r"[\w.-]{1,255}")


def _about_the_domain_of(text: str, address: str) -> bool:
    """Whether a "no such domain" text may be about `address`'s domain: every name it says it looked
    up is that domain, and, when it quotes addresses, one of them is at that domain. Postfix's
    "<bob@gone.example>: Recipient address rejected: Domain not found" or "name=gone.example" said
    by dest.example's own server (a forward's target; an MX host elsewhere) listed the whole of
    dest.example (review-9 N1, review-10 N1). Compared in A-labels, so an IDN domain matches its
    other spelling (review-10 N3)."""
    domain = domain_of(address)
    looked_up = [a or b for a, b in _LOOKED_UP.findall(text)]
    looked_up += [next(g for g in m.groups() if g) for m in _NAMED_LOOKUP.finditer(text)]
    if any(domain_in_a_labels(name.rstrip(".")) != domain for name in looked_up):
        return False
    quoted = [domain_in_a_labels(name.group()) for name in (
        _DOMAIN_NAME.match(a.rpartition("@")[2]) for a in addresses_in(text, limit=None)) if name]
    return not quoted or domain in quoted


def _without_addresses(text: str, address: str) -> str:
    """`text` with each address it quotes, and the recipient's domain, replaced by a placeholder."""
    if "@" in text:
        text = _QUOTED_ADDRESS.sub("<address>", text)
    domain = address.rpartition("@")[2].strip().rstrip(".")
    if domain and domain.lower() in text.lower():
        # Only where it stands alone: in "mx.dest.example" it is part of another name (review-12 F5).
        text = re.sub(r"(?<![\w.-])" + re.escape(domain) + r"(?![\w-]|\.\w)", "the-domain", text,
                      flags=re.IGNORECASE)
    return text


# When a suppression file has no `unconfirmed:` section (one written before it existed): as the
# shipped file says, an address claim the refusal itself puts in doubt (Policies.judge says when)
# lists on the second such failure within 30 days, not at once.
DEFAULT_UNCONFIRMED = SuppressionRule("unconfirmed", True, 2, 30 * 86400.0)
# When a suppression file has no `shared_return_path:` section: as the shipped file says, a bounce to a
# VERP return path that several recipients were sent (any of them may have written it) lists on the
# second such failure within 30 days, and the entry it makes expires after 30 days (issue 13).
DEFAULT_SHARED = SuppressionRule("shared_return_path", True, 2, 30 * 86400.0, 30 * 86400.0)


# When a suppression file has no `breaker:` section (one written before it existed): on,
# as the shipped file says; a misreporting receiver must never empty a domain's list of users.
DEFAULT_BREAKER = Breaker(10, 600.0, frozenset({"unknown_recipient", "mailbox_disabled"}))
# The provider breaker's own defaults, as shipped: a provider pools every domain it hosts, so five times
# the domain breaker's threshold (docs/bounce-list.md, "Sizing").
DEFAULT_PROVIDER_LIMITS = Breaker(5 * DEFAULT_BREAKER.distinct_addresses, DEFAULT_BREAKER.within,
                                  DEFAULT_BREAKER.categories)


class SuppressionPolicy:
    """The (category, permanent) -> SuppressionRule table, the rule for complaints and the breaker."""

    def __init__(self, rules: Mapping[tuple[str, bool], SuppressionRule], source: str = "<built-in>",
                 complaint: SuppressionRule | None = DEFAULT_COMPLAINT_RULE,
                 breaker: Breaker | None = DEFAULT_BREAKER, domains: DomainRule | None = None,
                 unconfirmed: SuppressionRule | None = DEFAULT_UNCONFIRMED,
                 provider_breaker: ProviderBreaker | None = None,
                 feedback_types: Mapping[str, str] | None = None,
                 shared: SuppressionRule | None = DEFAULT_SHARED):
        self._rules = dict(rules)
        self.source = source
        # None: complaints never list (the operator turned it off).
        self.complaint = complaint
        # Feedback-Type (lower case) -> "complaint" | "never" (COMPLAINT_ACTIONS); "*": the others.
        self.feedback_types = dict(DEFAULT_FEEDBACK_TYPES if feedback_types is None else feedback_types)
        # None: no breaker (the operator turned it off).
        self.breaker = breaker
        # None: no breaker keyed by the refusing provider (off; a policy built in code without one).
        self.provider_breaker = provider_breaker
        # None: domains are never listed as a whole (no `domains:` section, or off).
        self.domains = domains
        # None: a refusal that lists at once by its category does so even when in doubt (off).
        self.unconfirmed = unconfirmed
        # None: a report to a return path shared by several recipients never touches the list (off).
        self.shared = shared

    def complaint_rule(self, feedback_type: str | None) -> SuppressionRule | None:
        """The rule for a complaint of this ARF Feedback-Type, or None when such a report never
        touches the recipient's record (`complaints.feedback_types`: not-spam, auth-failure)."""
        kind = (feedback_type or UNTYPED_FEEDBACK).strip().lower()
        action = self.feedback_types.get(kind, self.feedback_types.get("*", "never"))
        return self.complaint if action == "complaint" else None

    def rule_for(self, category: str, permanent: bool) -> SuppressionRule | None:
        """The rule that applies, or None when such a failure never lists an address."""
        return self._rules.get((category, bool(permanent)))

    @property
    def rules(self) -> list[SuppressionRule]:
        return list(self._rules.values())

    def bounce_list(self, category: str, permanent: bool) -> str:
        """What one such failure does to a recipient-scoped address: `list` (at once),
        `count` (towards listing after repeats) or `never`."""
        rule = self._rules.get((category, bool(permanent)))
        if rule is None:
            return "never"
        return "list" if rule.immediate else "count"

    def unconfirmed_rule(self, category: str, permanent: bool) -> SuppressionRule | None:
        """The rule for a failure whose category lists at once but whose refusal puts its own
        claim in doubt (`unconfirmed:`): counted, listed after `list_after` of them within
        `within`, the entry expiring as the category's would. None: the category's own rule
        applies (it does not list at once, never lists, or `unconfirmed: off`)."""
        rule = self._rules.get((category, bool(permanent)))
        if rule is None or not rule.immediate or self.unconfirmed is None:
            return None
        return SuppressionRule(category, rule.permanent, self.unconfirmed.list_after, self.unconfirmed.within,
                               rule.expire_after)

    def counting_rule(self, rule: SuppressionRule | None) -> SuppressionRule | None:
        """`rule` for a failure that may only count, never list at once (a report nothing
        authenticates: bounces_in without a key, `unsigned: count`): the rule itself when it already
        counts; else `unconfirmed:`'s count and window (its default when `unconfirmed: off`, which
        would list at once), the entry expiring as `rule`'s would. None: such a failure never lists."""
        if rule is None or not rule.immediate:
            return rule
        counting = self.unconfirmed or DEFAULT_UNCONFIRMED
        return SuppressionRule(rule.category, rule.permanent, counting.list_after, counting.within,
                               rule.expire_after)

    def shared_rule(self, rule: SuppressionRule | None) -> SuppressionRule | None:
        """`rule` for a failure or complaint reported to a VERP return path that several recipients
        were sent (`shared_return_path:`; relay/intake/bounces_in.py): it needs at least that
        section's number of failures within its window (a rule that counts more already keeps its
        own), and the entry it makes expires by the sooner of the two expiries. None: such a report
        never lists (`shared_return_path: off`, or `rule` never lists)."""
        if rule is None or self.shared is None:
            return None
        shared = self.shared
        if rule.list_after >= shared.list_after:
            list_after, within = rule.list_after, rule.within
        else:
            list_after, within = shared.list_after, shared.within
        expiries = [e for e in (rule.expire_after, shared.expire_after) if e is not None]
        return SuppressionRule(rule.category, rule.permanent, list_after, within, min(expiries, default=None))

    @property
    def longest_window(self) -> float:
        """How long failure records must be kept for counting (0 when nothing counts)."""
        rules = [*self._rules.values(), *([self.complaint] if self.complaint else [])]
        if self.unconfirmed is not None and any(r.immediate for r in self._rules.values()):
            rules.append(self.unconfirmed)  # it only ever counts what would list at once
        if self.shared is not None and any(r.list_after < self.shared.list_after for r in rules):
            rules.append(self.shared)  # it counts only what would list sooner (shared_rule)
        windows = [r.within or 0.0 for r in rules] + [self.breaker.within if self.breaker else 0.0,
                                                      self.provider_breaker.within if self.provider_breaker else 0.0,
                                                      self.domains.within if self.domains else 0.0]
        return max(windows, default=0.0)

    @classmethod
    def from_file(cls, path: str | Path) -> "SuppressionPolicy":
        path = Path(path)
        data = load_yaml(path)
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: Any, file: str = "<dict>") -> "SuppressionPolicy":
        problems = Problems(file)
        rules: dict[tuple[str, bool], SuppressionRule] = {}
        if data is None:
            data = {}
        if not isinstance(data, dict):
            problems.add("(top level)", f"expected a mapping with 'permanent' and 'temporary', got {type(data).__name__}")
            problems.raise_if_any()
        problems.unknown_keys(data, TOP_KEYS)
        problems.check_version(data)
        complaint: SuppressionRule | None = DEFAULT_COMPLAINT_RULE
        feedback_types = None
        if "complaints" in data:
            spec = data["complaints"]
            if isinstance(spec, dict) and "feedback_types" in spec:
                feedback_types = _parse_feedback_types(spec["feedback_types"], problems)
                spec = {k: v for k, v in spec.items() if k != "feedback_types"}
            complaint = _parse_rule(COMPLAINT, True, spec, "complaints", problems)
        breaker: Breaker | None = DEFAULT_BREAKER
        if "breaker" in data:
            breaker = _parse_breaker(data["breaker"], problems)
        # A file without the section (written before it existed) gets the shipped one: a provider's
        # outage must not list its customers' users however old the operator's file is.
        provider_breaker = (_parse_provider_breaker(data["provider_breaker"], problems) if "provider_breaker" in data
                            else default_provider_breaker())
        domains = _parse_domains(data["domains"], problems) if "domains" in data else None
        unconfirmed: SuppressionRule | None = DEFAULT_UNCONFIRMED
        if "unconfirmed" in data:
            unconfirmed = _parse_unconfirmed(data["unconfirmed"], problems)
        shared: SuppressionRule | None = DEFAULT_SHARED
        if "shared_return_path" in data:
            shared = _parse_shared(data["shared_return_path"], problems)
        for section, permanent in SECTIONS.items():
            table = _given(data.get(section), {})
            if not isinstance(table, dict):
                problems.add(section, f"expected a mapping of category to rule, got {type(table).__name__}")
                continue
            for category, spec in table.items():
                key = f"{section}.{category}"
                if category not in CATEGORIES:
                    problems.add(key, f"unknown category; expected one of: {', '.join(CATEGORIES)}")
                    continue
                rule = _parse_rule(category, permanent, spec, key, problems)
                if rule is not None and category in NEVER_LISTED:
                    problems.add(key, f"{category} is an SMTP dialogue error, never about the address: it cannot list")
                elif rule is not None:
                    rules[(category, permanent)] = rule
        problems.raise_if_any()
        return cls(rules, file, complaint, breaker, domains, unconfirmed, provider_breaker,
                   feedback_types=feedback_types, shared=shared)

    def __repr__(self) -> str:
        return f"SuppressionPolicy({self.source!r}, {len(self._rules)} rules)"


def _parse_rule(category: str, permanent: bool, spec: Any, key: str, problems: Problems) -> SuppressionRule | None:
    if not isinstance(spec, dict):
        problems.add(key, "expected a mapping such as {list_after: 1} or {list_after: 3, within: 7d}")
        return None
    before = len(problems.items)
    problems.unknown_keys(spec, RULE_KEYS, key)
    if "list_after" not in spec:
        problems.add(f"{key}.list_after", "required (a number of failures, or off)")
        return None
    list_after = _list_after(spec["list_after"], f"{key}.list_after", problems)
    durations: dict[str, float | None] = {}
    for name in ("within", "expire_after"):
        try:
            durations[name] = parse_duration(spec.get(name))
        except ValueError as exc:
            problems.add(f"{key}.{name}", str(exc))
    if list_after is not None and list_after > 1 and "within" in durations and durations["within"] is None:
        problems.add(f"{key}.within", f"required when list_after is {list_after} (e.g. within: 7d)")
    if len(problems.items) > before or list_after is None:
        return None  # off, or broken (already reported)
    return SuppressionRule(category, permanent, list_after,
                           durations["within"] if list_after > 1 else None, durations["expire_after"])


def _parse_feedback_types(spec: Any, problems: Problems) -> dict[str, str] | None:
    """`complaints.feedback_types`: Feedback-Type -> complaint | never, "*" for the types not named
    (never when absent)."""
    key = "complaints.feedback_types"
    if not isinstance(spec, dict) or not spec:
        problems.add(key, "expected a mapping of ARF Feedback-Type to complaint or never, "
                          "e.g. {abuse: complaint, not-spam: never}")
        return None
    out: dict[str, str] = {}
    for name, action in spec.items():
        if not isinstance(name, str) or not _FEEDBACK_TYPE_NAME.fullmatch(name.strip().lower()):
            problems.add(f"{key}.{name}", "not a Feedback-Type (RFC 5965 3.1: a token such as abuse or not-spam), "
                                          "nor * for the types not named")
            continue
        if action not in COMPLAINT_ACTIONS:
            problems.add(f"{key}.{name}", f"expected one of: {', '.join(COMPLAINT_ACTIONS)}")
            continue
        out[name.strip().lower()] = action
    out.setdefault("*", "never")
    return out


def _section(spec: Any, key: str, shape: str, problems: Problems) -> dict | None:
    """A top-level section that may be turned `off`: its mapping, or None (off, or not a mapping:
    reported as such, `shape` saying what was expected)."""
    if spec is None or spec is False or (isinstance(spec, str) and spec.strip().lower() in _OFF):
        return None
    if not isinstance(spec, dict):
        problems.add(key, f"expected {shape}, or off")
        return None
    return spec


def _parse_delaying(name: str, spec: Any, keys: tuple[str, ...], example: str, off: str,
                    problems: Problems) -> SuppressionRule | None:
    """A section whose rule only ever delays a listing (`unconfirmed`, `shared_return_path`), or None for
    `off` or a section with problems: list_after must be 2 or more; `off` does what `off` says."""
    spec = _section(spec, name, f"a mapping such as {example}", problems)
    if spec is None:
        return None
    before = len(problems.items)
    problems.unknown_keys(spec, keys, name)
    rule = _parse_rule(name, True, {k: v for k, v in spec.items() if k in keys}, name, problems)
    if len(problems.items) > before:
        return None
    if rule is None or rule.list_after < 2:
        got = "" if rule is None else f", got {rule.list_after}"
        problems.add(f"{name}.list_after", f"expected 2 or more{got} (`{name}: off` {off})")
        return None
    return rule


def _parse_unconfirmed(spec: Any, problems: Problems) -> SuppressionRule | None:
    """`unconfirmed: {list_after: 2, within: 30d}`, or `unconfirmed: off` (list at once as the
    category says)."""
    return _parse_delaying("unconfirmed", spec, UNCONFIRMED_KEYS, "{list_after: 2, within: 30d}",
                           "lists at once", problems)


def _parse_shared(spec: Any, problems: Problems) -> SuppressionRule | None:
    """`shared_return_path: {list_after: 2, within: 30d, expire_after: 30d}`, or `off` (such a report
    never touches the list). One report from a recipient of the same message must never list another
    (issue 13)."""
    return _parse_delaying("shared_return_path", spec, SHARED_KEYS,
                           "{list_after: 2, within: 30d, expire_after: 30d}",
                           "never lists on such a report", problems)


def _parse_breaker(spec: Any, problems: Problems) -> Breaker | None:
    """`breaker: {distinct_addresses: 10, within: 10m, categories: [...]}`, or `breaker: off`."""
    spec = _section(spec, "breaker", "a mapping such as {distinct_addresses: 10, within: 10m}", problems)
    if spec is None:
        return None
    problems.unknown_keys(spec, BREAKER_KEYS, "breaker")
    return _breaker_fields(spec, "breaker", DEFAULT_BREAKER, problems)


def _breaker_fields(spec: dict, key: str, default: Breaker, problems: Problems) -> Breaker | None:
    """The fields both breakers share (BREAKER_KEYS) of the section `key`, each left out taking
    `default`'s; None when one is wrong (reported)."""
    before = len(problems.items)
    count, within = _count_and_window(spec, key, "distinct_addresses", default.distinct_addresses, default.within,
                                      "10m", problems)
    categories = spec.get("categories", sorted(default.categories))
    if not isinstance(categories, list) or not categories:
        problems.add(f"{key}.categories", "expected a non-empty list of categories")
        categories = []
    for n, category in enumerate(categories):
        if category not in CATEGORIES:
            problems.add(f"{key}.categories[{n}]", f"unknown category; expected one of: {', '.join(CATEGORIES)}")
    if len(problems.items) > before:
        return None
    return Breaker(count, within, frozenset(categories))


def _count_and_window(spec: dict, key: str, count_key: str, default_count: int, default_within: float,
                      example: str, problems: Problems) -> tuple[int | None, float | None]:
    """Every breaker's threshold (`count_key`: a whole number >= 1) and window (`within`: a duration,
    never `never`) in the section `key`, each left out taking its default; None for one that is wrong
    (reported: both, when both are)."""
    count = spec.get(count_key, default_count)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        problems.add(f"{key}.{count_key}", f"expected a whole number >= 1, got {count!r}")
        count = None
    within = None
    try:
        within = parse_duration(spec.get("within", default_within))
        if within is None:
            problems.add(f"{key}.within", f"required: a window such as {example} (never is not a window)")
    except ValueError as exc:
        problems.add(f"{key}.within", str(exc))
    return count, within


def _parse_provider_breaker(spec: Any, problems: Problems) -> ProviderBreaker | None:
    """`provider_breaker: {distinct_addresses: 50, within: 10m, categories: [...], named_by: [...],
    two_label_suffixes: [...]}`, or `provider_breaker: off`."""
    from .regex import PatternError, compile_linear

    spec = _section(spec, "provider_breaker", "a mapping such as {distinct_addresses: 50, within: 10m}", problems)
    if spec is None:
        return None
    before = len(problems.items)
    problems.unknown_keys(spec, PROVIDER_BREAKER_KEYS, "provider_breaker")
    base = _breaker_fields(spec, "provider_breaker", DEFAULT_PROVIDER_LIMITS, problems)
    shipped = _shipped_provider_section() if ("named_by" not in spec or "two_label_suffixes" not in spec) else {}
    named_by = []
    # A key left out takes the shipped file's value: a section written for its threshold alone
    # still knows how replies name hosts, and which suffixes have two labels.
    given = spec["named_by"] if "named_by" in spec else shipped.get("named_by", [])
    if not isinstance(given, list):
        problems.add("provider_breaker.named_by", "expected a list of regular expressions, each with a group (?P<host>...)")
        given = []
    for n, source in enumerate(given):
        where = f"provider_breaker.named_by[{n}]"
        if not isinstance(source, str) or not source:
            problems.add(where, f"expected a regular expression, got {source!r}")
            continue
        try:
            pattern = compile_linear(source, ignore_case=True)
        except PatternError as exc:
            problems.add(where, str(exc))
            continue
        if "host" not in (pattern.groupindex or {}):
            problems.add(where, "needs a group (?P<host>...): the host name the reply says answered")
            continue
        named_by.append(pattern)
    suffixes = spec["two_label_suffixes"] if "two_label_suffixes" in spec else shipped.get("two_label_suffixes", [])
    if not isinstance(suffixes, list) or not all(
            isinstance(s, str) and re.fullmatch(r"[a-z0-9-]+\.[a-z0-9-]+", s.strip().lower()) for s in suffixes):
        problems.add("provider_breaker.two_label_suffixes", "expected a list of two-label suffixes such as co.uk")
        suffixes = []
    if len(problems.items) > before or base is None:
        return None
    return ProviderBreaker(base.distinct_addresses, base.within, base.categories, tuple(named_by),
                           frozenset(s.strip().lower() for s in suffixes))


@functools.lru_cache(maxsize=1)
def _shipped_provider_section() -> dict:
    """The shipped file's `provider_breaker:` mapping (raw), or {} if it cannot be read."""
    from .config import SHIPPED_POLICIES

    try:
        section = load_yaml(SHIPPED_POLICIES / "suppression.yaml").get("provider_breaker")
    except Exception:  # noqa: BLE001 - the shipped file is tested; never stop a relay over it
        return {}
    return section if isinstance(section, dict) else {}


def default_provider_breaker() -> ProviderBreaker | None:
    """The shipped file's `provider_breaker:` section (for a file written before it existed)."""
    problems = Problems("<shipped suppression.yaml>")
    found = _parse_provider_breaker(_shipped_provider_section() or {}, problems)
    if problems.items or found is None:
        # The shipped file is tested; a broken copy must not stop the relay nor turn the breaker off.
        return ProviderBreaker(DEFAULT_PROVIDER_LIMITS.distinct_addresses, DEFAULT_PROVIDER_LIMITS.within,
                               DEFAULT_PROVIDER_LIMITS.categories)
    return found


def _patterns(value: Any, key: str, problems: Problems) -> re.Pattern | None:
    """A regex or a list of them (any may match), case-insensitive."""
    items = value if isinstance(value, list) else [value]
    good = []
    for n, item in enumerate(items):
        where = f"{key}[{n}]" if isinstance(value, list) else key
        if not isinstance(item, str) or not item:
            problems.add(where, f"expected a regular expression, got {item!r}")
            continue
        try:
            re.compile(item)
        except re.error as exc:
            problems.add(where, f"bad regular expression {item!r}: {exc}")
            continue
        good.append(item)
    if not good or len(good) != len(items):
        if not items:
            problems.add(key, "must not be an empty list")
        return None
    return re.compile("|".join(f"(?:{g})" for g in good), re.IGNORECASE)


def _parse_domains(spec: Any, problems: Problems) -> DomainRule | None:
    """`domains: {evidence: [...], not_evidence: [...], seen_again_after: 1h, within: 7d, expire_after: 30d}`."""
    spec = _section(spec, "domains", "a mapping with evidence, seen_again_after, within and expire_after", problems)
    if spec is None:
        return None
    before = len(problems.items)
    problems.unknown_keys(spec, DOMAIN_KEYS, "domains")
    if "evidence" not in spec:
        problems.add("domains.evidence", "required: regexes of reply texts saying the domain does not exist")
    evidence = _patterns(spec["evidence"], "domains.evidence", problems) if "evidence" in spec else None
    not_evidence = (_patterns(spec["not_evidence"], "domains.not_evidence", problems)
                    if "not_evidence" in spec else None)
    durations: dict[str, float | None] = {}
    for name, required in (("seen_again_after", True), ("within", True), ("expire_after", False)):
        try:
            durations[name] = parse_duration(spec.get(name))
        except ValueError as exc:
            problems.add(f"domains.{name}", str(exc))
            continue
        if required and durations[name] is None:
            problems.add(f"domains.{name}", "required: a duration such as 1h")
    if (durations.get("seen_again_after") and durations.get("within")
            and durations["within"] <= durations["seen_again_after"]):
        problems.add("domains.within", "must be longer than seen_again_after")
    categories = None
    if "categories" in spec:
        given = spec["categories"]
        if not isinstance(given, list) or not given:
            problems.add("domains.categories", "expected a non-empty list of categories")
        else:
            for n, category in enumerate(given):
                if category not in CATEGORIES:
                    problems.add(f"domains.categories[{n}]",
                                 f"unknown category; expected one of: {', '.join(CATEGORIES)}")
            categories = frozenset(given)
    breaker = _parse_domain_breaker(spec["breaker"], problems) if "breaker" in spec else DEFAULT_DOMAIN_BREAKER
    if len(problems.items) > before or evidence is None:
        return None
    return DomainRule(evidence, not_evidence, durations["seen_again_after"], durations["within"],
                      durations["expire_after"], categories, breaker)


def _parse_domain_breaker(spec: Any, problems: Problems) -> DomainBreaker | None:
    """`domains: {breaker: {distinct_domains: 10, within: 1h}}`, or `breaker: off`."""
    spec = _section(spec, "domains.breaker", "a mapping such as {distinct_domains: 10, within: 1h}", problems)
    if spec is None:
        return None
    problems.unknown_keys(spec, DOMAIN_BREAKER_KEYS, "domains.breaker")
    count, within = _count_and_window(spec, "domains.breaker", "distinct_domains",
                                      DEFAULT_DOMAIN_BREAKER.distinct_domains, DEFAULT_DOMAIN_BREAKER.within,
                                      "1h", problems)
    if count is None or within is None:
        return None
    return DomainBreaker(count, within)


def _list_after(value: Any, key: str, problems: Problems) -> int | None:
    """None means off."""
    if value is None or value is False:
        return None
    if isinstance(value, str) and value.strip().lower() in _OFF:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems.add(key, f"expected a whole number of failures >= 1, or off; got {value!r}")
        return None
    return value


def load_default() -> SuppressionPolicy:
    """The shipped policies/suppression.yaml."""
    from .config import SHIPPED_POLICIES

    return SuppressionPolicy.from_file(SHIPPED_POLICIES / "suppression.yaml")


__all__ = ["CATEGORIES", "COMPLAINT", "DOMAIN_CATEGORY", "Breaker", "DomainBreaker", "DomainRule", "ProviderBreaker", "SuppressionPolicy", "SuppressionRule", "ConfigError", "parse_duration",
           "format_duration", "load_default"]
