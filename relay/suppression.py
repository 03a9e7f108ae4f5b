"""What puts an address on the bounce list: policies/suppression.yaml as data.

The policy is a table keyed by (category, permanent). Each cell is a
`SuppressionRule`: how many failures list the address, within which window,
and when the entry expires. The store asks `rule_for()` and does the counting;
nothing here knows about particular categories (see the YAML for the defaults
and why).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .address import addresses_in, domain_in_a_labels, domain_of
from .errors import ConfigError, Problems
from .yamlfile import load_yaml

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
TOP_KEYS = (*SECTIONS, "complaints", "breaker", "domains", "unconfirmed")
UNCONFIRMED_KEYS = ("list_after", "within")
BREAKER_KEYS = ("distinct_addresses", "within", "categories")
DOMAIN_KEYS = ("evidence", "not_evidence", "categories", "seen_again_after", "within", "expire_after")
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
            raise ValueError(f"duration must be positive, got {value}")
        return float(value)
    if isinstance(value, str):
        if value.strip().lower() in _OFF:
            return None
        m = _DURATION.match(value)
        if m and int(m.group(1)) > 0:
            return float(int(m.group(1)) * _UNITS[m.group(2)])
    raise ValueError(f"bad duration {value!r}: expected a number and a unit s, m, h, d or w (e.g. 30d), or never")


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


# An address as replies quote it: in angle brackets (any local part, RFC 5321 4.1.2's quoted
# strings with spaces among them), or bare; bounded repeats keep the search linear.
_QUOTED_ADDRESS = re.compile(r'<[^<>\r\n]{0,320}@[^<>\r\n]{0,255}>|[^\s<>@"]{1,64}@[^\s<>@]{1,255}')


# The name a resolver's error says it looked up (Postfix's dns_lookup.c: "name=%s type=%s"), and the
# server Exchange last tried ("DNS domain does not exist ... [LastAttemptedServerName=x]").
_LOOKED_UP = re.compile(r"\bname=([^\s\]\[;,]{1,255})\S{0,64} type=|LastAttemptedServerName=([^\s\]\[;,]{1,255})",
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
    if any(domain_in_a_labels(name) != domain for name in looked_up):
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
        text = re.sub(re.escape(domain), "the-domain", text, flags=re.IGNORECASE)
    return text


# When a suppression file has no `unconfirmed:` section (one written before it existed): as the
# shipped file says, an address claim the refusal itself puts in doubt (Policies.judge says when)
# lists on the second such failure within 30 days, not at once.
DEFAULT_UNCONFIRMED = SuppressionRule("unconfirmed", True, 2, 30 * 86400.0)


# When a suppression file has no `breaker:` section (one written before it existed): on,
# as the shipped file says; a misreporting receiver must never empty a domain's list of users.
DEFAULT_BREAKER = Breaker(10, 600.0, frozenset({"unknown_recipient", "mailbox_disabled"}))


class SuppressionPolicy:
    """The (category, permanent) -> SuppressionRule table, the rule for complaints and the breaker."""

    def __init__(self, rules: Mapping[tuple[str, bool], SuppressionRule], source: str = "<built-in>",
                 complaint: SuppressionRule | None = DEFAULT_COMPLAINT_RULE,
                 breaker: Breaker | None = DEFAULT_BREAKER, domains: DomainRule | None = None,
                 unconfirmed: SuppressionRule | None = DEFAULT_UNCONFIRMED):
        self._rules = dict(rules)
        self.source = source
        # None: complaints never list (the operator turned it off).
        self.complaint = complaint
        # None: no breaker (the operator turned it off).
        self.breaker = breaker
        # None: domains are never listed as a whole (no `domains:` section, or off).
        self.domains = domains
        # None: a refusal that lists at once by its category does so even when in doubt (off).
        self.unconfirmed = unconfirmed

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

    @property
    def longest_window(self) -> float:
        """How long failure records must be kept for counting (0 when nothing counts)."""
        rules = [*self._rules.values(), *([self.complaint] if self.complaint else [])]
        if self.unconfirmed is not None and any(r.immediate for r in self._rules.values()):
            rules.append(self.unconfirmed)  # it only ever counts what would list at once
        windows = [r.within or 0.0 for r in rules] + [self.breaker.within if self.breaker else 0.0,
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
        complaint: SuppressionRule | None = DEFAULT_COMPLAINT_RULE
        if "complaints" in data:
            complaint = _parse_rule(COMPLAINT, True, data["complaints"], "complaints", problems)
        breaker: Breaker | None = DEFAULT_BREAKER
        if "breaker" in data:
            breaker = _parse_breaker(data["breaker"], problems)
        domains = _parse_domains(data["domains"], problems) if "domains" in data else None
        unconfirmed: SuppressionRule | None = DEFAULT_UNCONFIRMED
        if "unconfirmed" in data:
            unconfirmed = _parse_unconfirmed(data["unconfirmed"], problems)
        for section, permanent in SECTIONS.items():
            table = data.get(section) or {}
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
        return cls(rules, file, complaint, breaker, domains, unconfirmed)

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


def _section(spec: Any, key: str, shape: str, problems: Problems) -> dict | None:
    """A top-level section that may be turned `off`: its mapping, or None (off, or not a mapping:
    reported as such, `shape` saying what was expected)."""
    if spec is None or spec is False or (isinstance(spec, str) and spec.strip().lower() in _OFF):
        return None
    if not isinstance(spec, dict):
        problems.add(key, f"expected {shape}, or off")
        return None
    return spec


def _parse_unconfirmed(spec: Any, problems: Problems) -> SuppressionRule | None:
    """`unconfirmed: {list_after: 2, within: 30d}`, or `unconfirmed: off` (list at once as the
    category says). It only ever delays a listing: list_after must be 2 or more."""
    spec = _section(spec, "unconfirmed", "a mapping such as {list_after: 2, within: 30d}", problems)
    if spec is None:
        return None
    before = len(problems.items)
    problems.unknown_keys(spec, UNCONFIRMED_KEYS, "unconfirmed")
    rule = _parse_rule("unconfirmed", True, {k: v for k, v in spec.items() if k in UNCONFIRMED_KEYS},
                       "unconfirmed", problems)
    if len(problems.items) > before:
        return None
    if rule is None:
        problems.add("unconfirmed.list_after", "a number of failures of 2 or more (`unconfirmed: off` lists at once)")
        return None
    if rule.list_after < 2:
        problems.add("unconfirmed.list_after",
                     f"expected 2 or more, got {rule.list_after} (`unconfirmed: off` lists at once)")
        return None
    return rule


def _parse_breaker(spec: Any, problems: Problems) -> Breaker | None:
    """`breaker: {distinct_addresses: 10, within: 10m, categories: [...]}`, or `breaker: off`."""
    spec = _section(spec, "breaker", "a mapping such as {distinct_addresses: 10, within: 10m}", problems)
    if spec is None:
        return None
    before = len(problems.items)
    problems.unknown_keys(spec, BREAKER_KEYS, "breaker")
    count = spec.get("distinct_addresses", DEFAULT_BREAKER.distinct_addresses)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        problems.add("breaker.distinct_addresses", f"expected a whole number >= 1, got {count!r}")
    within = DEFAULT_BREAKER.within
    try:
        within = parse_duration(spec.get("within", DEFAULT_BREAKER.within))
        if within is None:
            problems.add("breaker.within", "required: a window such as 10m (never is not a window)")
    except ValueError as exc:
        problems.add("breaker.within", str(exc))
    categories = spec.get("categories", sorted(DEFAULT_BREAKER.categories))
    if not isinstance(categories, list) or not categories:
        problems.add("breaker.categories", "expected a non-empty list of categories")
        categories = []
    for n, category in enumerate(categories):
        if category not in CATEGORIES:
            problems.add(f"breaker.categories[{n}]", f"unknown category; expected one of: {', '.join(CATEGORIES)}")
    if len(problems.items) > before:
        return None
    return Breaker(count, within, frozenset(categories))


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
    if len(problems.items) > before or evidence is None:
        return None
    return DomainRule(evidence, not_evidence, durations["seen_again_after"], durations["within"],
                      durations["expire_after"], categories)


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


__all__ = ["CATEGORIES", "COMPLAINT", "DOMAIN_CATEGORY", "Breaker", "DomainRule", "SuppressionPolicy", "SuppressionRule", "ConfigError", "parse_duration",
           "format_duration", "load_default"]
