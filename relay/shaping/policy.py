"""policies/shaping.yaml -> ShapingPolicy: destinations, their limits, and reactions to replies.

A destination is a mailbox provider seen as one receiver: the recipient domains it hosts
(`domains:`) and the MX host names it answers on (`mx:`, `*.google.com`), so that gmail.com and
every Workspace domain whose MX is at Google share one bucket. A recipient domain no destination
names is a destination of its own, with the `default:` limits and reactions.

A reaction is a rule that matches a reply the way classification rules do (code, enhanced,
match, not_match, stage: relay.classify.ReplyConditions, the same machinery) and says what to do
when the provider pushes back: `hold` the destination (the relay answers 4xx itself until then,
for a time that grows on repeat) and/or `slow` it (halve its rate). Both decay on success.

Everything is validated at load; every problem names the file, the key and why; unknown keys
are errors. A reload with a broken file keeps the running policy (relay/server.py).
"""

from __future__ import annotations

import datetime as _dt
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..classify import CONDITION_KEYS, ReplyConditions, reply_conditions
from ..config import SHIPPED_POLICIES, parse_duration
from ..errors import ConfigError, Problems
from ..yamlfile import given as _given, load_yaml

SHAPING_FILE = "shaping.yaml"
SHIPPED_SHAPING = SHIPPED_POLICIES / SHAPING_FILE

TOP_KEYS = ("version", "mx_lookup", "destinations", "default", "reactions", "warmup")
DESTINATION_KEYS = ("name", "domains", "mx", "limits", "reactions", "note")
DEFAULT_KEYS = ("limits", "reactions", "note")
LIMIT_KEYS = ("connections", "messages_per_connection", "messages_per_minute", "messages_per_hour")
REACTION_KEYS = frozenset({"id", "reason", "per_sender_domain", "hold", "slow", "decay_after", "note"}) | CONDITION_KEYS
HOLD_KEYS = ("for", "max", "growth")
SLOW_KEYS = ("factor", "floor")
WARMUP_KEYS = ("plans", "senders")
SENDER_KEYS = ("plan", "start", "destinations", "note")
STEP_KEYS = ("day", "per_day")

# A name that goes into keys (`google/example.com`), replies and metric labels.
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


@dataclass(frozen=True)
class Limits:
    """What a destination takes. None: no limit. `connections` and `messages_per_connection` are
    for a delivery that opens its own connections to the destination (MX mode); in smarthost
    mode the relay has one upstream, whose own pool settings apply."""

    connections: int | None = None
    messages_per_connection: int | None = None
    messages_per_minute: int | None = None
    messages_per_hour: int | None = None


@dataclass(frozen=True)
class HoldRule:
    """Hold for `first` seconds; each repeat (a new strike after the hold ended, before it decayed)
    multiplies it by `growth`, up to `longest`."""

    first: float
    longest: float
    growth: float = 2.0

    def duration(self, strikes: int) -> float:
        return min(self.longest, self.first * self.growth ** max(0, strikes - 1))


@dataclass(frozen=True)
class SlowRule:
    """Multiply the destination's rate by `factor` (0.5: halve it), never below `floor` messages
    a minute."""

    factor: float = 0.5
    floor: float = 1.0


@dataclass(frozen=True)
class Reaction:
    id: str
    conditions: ReplyConditions
    reason: str  # "unusual rate": goes into the relay's own reply ("... deferred mail for unusual rate ...")
    per_sender_domain: bool = False  # the provider throttles per (SPF) sender domain: Gmail does
    hold: HoldRule | None = None
    slow: SlowRule | None = None
    decay_after: float = 600.0  # a success this long after the last change takes one strike off

    def matches(self, reply, stage: str | None) -> bool:
        return self.conditions.matches(reply, stage)


@dataclass(frozen=True)
class Destination:
    name: str  # the key: `google`; for a recipient domain no destination names, the domain itself
    label: str  # how replies name the provider: `gmail`
    limits: Limits
    reactions: tuple[Reaction, ...]
    domains: frozenset[str] = frozenset()
    mx: tuple[str, ...] = ()  # host suffixes (".google.com") or exact names
    default: bool = False  # the `default:` entry applied to an unnamed recipient domain

    def answers_on(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(host.endswith(p) if p.startswith(".") else host == p for p in self.mx)

    def reaction_for(self, reply, stage: str | None) -> Reaction | None:
        for reaction in self.reactions:
            if reaction.matches(reply, stage):
                return reaction
        return None


@dataclass(frozen=True)
class WarmupStep:
    day: int  # from this day of the plan on (day 1 is the start date)
    per_day: int


@dataclass(frozen=True)
class WarmupSender:
    """A new sending domain on a plan: daily caps per destination that grow on a schedule."""

    domain: str
    plan: str
    start: _dt.date
    steps: tuple[WarmupStep, ...]
    destinations: frozenset[str] | None = None  # None: every destination

    def cap(self, destination: str, today: _dt.date) -> int | None:
        """Messages a day to `destination` allowed on `today`; None: no cap (not covered, or the
        plan is over)."""
        if self.destinations is not None and destination not in self.destinations:
            return None
        day = (today - self.start).days + 1
        if day < 1:
            return self.steps[0].per_day  # not started yet: the first day's cap
        cap = None
        for step in self.steps:
            if step.day <= day:
                cap = step.per_day
        if day > self.steps[-1].day:
            return None  # past the last step: warmed up
        return cap


@dataclass(frozen=True)
class ShapingPolicy:
    file: str
    destinations: tuple[Destination, ...]
    default_limits: Limits
    default_reactions: tuple[Reaction, ...]
    mx_lookup: bool = False
    warmup: dict[str, WarmupSender] = field(default_factory=dict)

    def __post_init__(self):
        by_domain = {d: dest for dest in self.destinations for d in dest.domains}
        object.__setattr__(self, "_by_domain", by_domain)
        object.__setattr__(self, "_by_name", {dest.name: dest for dest in self.destinations})

    @property
    def has_mx_patterns(self) -> bool:
        return any(dest.mx for dest in self.destinations)

    def by_domain(self, domain: str) -> Destination | None:
        return self._by_domain.get(domain)

    def by_mx(self, host: str) -> Destination | None:
        for dest in self.destinations:
            if dest.answers_on(host):
                return dest
        return None

    def named(self, name: str) -> Destination | None:
        return self._by_name.get(name)

    def for_domain(self, domain: str) -> Destination:
        """The `default:` destination for a recipient domain that no destination names."""
        return Destination(name=domain, label=domain, limits=self.default_limits, reactions=self.default_reactions,
                           default=True)

    def warmup_for(self, sender_domain: str) -> WarmupSender | None:
        return self.warmup.get(sender_domain)


# -- loading -----------------------------------------------------------------------------------

def _name(value: Any, key: str, problems: Problems) -> str | None:
    if not isinstance(value, str) or not value or set(value) - _NAME_CHARS:
        problems.add(key, f"expected a name of lower-case letters, digits, '-', '_' and '.', got {value!r}")
        return None
    return value


def _count(value: Any, key: str, problems: Problems, *, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems.add(key, f"expected a whole number of at least 1{' or null (no limit)' if allow_none else ''}, "
                          f"got {value!r}")
        return None
    return value


def _duration(value: Any, key: str, problems: Problems) -> float | None:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        problems.add(key, str(exc))
        return None
    if seconds <= 0:
        problems.add(key, "must be longer than 0")
        return None
    return seconds


def _mapping(value: Any, key: str, problems: Problems, example: str) -> dict | None:
    if not isinstance(value, dict):
        problems.add(key, f"expected a mapping such as {example}, got {value!r}")
        return None
    return value


def _limits(value: Any, key: str, problems: Problems) -> Limits:
    if value is None:
        return Limits()
    data = _mapping(value, key, problems, "{connections: 10, messages_per_minute: 100}")
    if data is None:
        return Limits()
    problems.unknown_keys(data, LIMIT_KEYS, key)
    return Limits(**{k: _count(data.get(k), f"{key}.{k}", problems) for k in LIMIT_KEYS})


def _domain(value: Any, key: str, problems: Problems) -> str | None:
    from ..domains import normalise_domain

    if not isinstance(value, str):
        problems.add(key, f"expected a domain name, got {value!r}")
        return None
    try:
        return normalise_domain(value)
    except ValueError as exc:
        problems.add(key, f"{value!r} is not a domain name: {exc}")
        return None


def _mx_pattern(value: Any, key: str, problems: Problems) -> str | None:
    """`*.google.com` -> `.google.com` (any host below it); `mx.example.com` -> itself."""
    if not isinstance(value, str):
        problems.add(key, f"expected a host name or a pattern such as \"*.google.com\", got {value!r}")
        return None
    wild = value.startswith("*.")
    domain = _domain(value[2:] if wild else value, key, problems)
    if domain is None:
        return None
    return "." + domain if wild else domain


def _list(value: Any, key: str, problems: Problems) -> list:
    if isinstance(value, list):
        return value
    problems.add(key, f"expected a list, got {value!r}")
    return []


def _reaction(entry: Any, key: str, problems: Problems) -> Reaction | None:
    data = _mapping(entry, key, problems, "{id: gmail-unusual-rate, enhanced: \"4.7.28\", reason: unusual rate, "
                                          "hold: {for: 15m, max: 4h}}")
    if data is None:
        return None
    before = len(problems.items)
    problems.unknown_keys(data, REACTION_KEYS, key)
    rule_id = data.get("id")
    if not isinstance(rule_id, str) or not rule_id.strip():
        problems.add(f"{key}.id", "required: a non-empty string naming the reaction (events carry it)")
    reason = data.get("reason")
    if not isinstance(reason, str) or not reason.strip() or not reason.isascii() or "\n" in reason.strip():
        problems.add(f"{key}.reason", "required: a short ASCII phrase for the relay's reply, e.g. \"unusual rate\"")
    conditions = reply_conditions(data, key, problems)
    per_sender = data.get("per_sender_domain", False)
    problems.check_bool(f"{key}.per_sender_domain", per_sender)
    hold = slow = None
    if "hold" in data:
        spec = _mapping(data["hold"], f"{key}.hold", problems, "{for: 15m, max: 4h, growth: 2}")
        if spec is not None:
            problems.unknown_keys(spec, HOLD_KEYS, f"{key}.hold")
            if "for" not in spec:
                problems.add(f"{key}.hold.for", "required: how long the first hold lasts, e.g. 15m")
            first = _duration(spec.get("for"), f"{key}.hold.for", problems) if "for" in spec else None
            longest = _duration(spec["max"], f"{key}.hold.max", problems) if "max" in spec else first
            growth = spec.get("growth", 2)
            if isinstance(growth, bool) or not isinstance(growth, (int, float)) or not 1 <= growth <= 10:
                problems.add(f"{key}.hold.growth", f"expected a number from 1 (never grows) to 10, got {growth!r}")
                growth = None
            if first is not None and longest is not None and longest < first:
                problems.add(f"{key}.hold.max", "must not be shorter than hold.for")
            elif first is not None and longest is not None and growth is not None:
                hold = HoldRule(first, longest, float(growth))
    if "slow" in data:
        spec = data["slow"]
        if spec is True:
            spec = {}
        spec = _mapping(spec, f"{key}.slow", problems, "{factor: 0.5, floor: 1}")
        if spec is not None:
            problems.unknown_keys(spec, SLOW_KEYS, f"{key}.slow")
            factor, floor = spec.get("factor", 0.5), spec.get("floor", 1)
            ok = True
            if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor < 1:
                problems.add(f"{key}.slow.factor", f"expected a number between 0 and 1 (0.5 halves the rate), "
                                                   f"got {factor!r}")
                ok = False
            if isinstance(floor, bool) or not isinstance(floor, (int, float)) or floor <= 0:
                problems.add(f"{key}.slow.floor", f"expected messages a minute above 0, got {floor!r}")
                ok = False
            if ok:
                slow = SlowRule(float(factor), float(floor))
    if "hold" not in data and "slow" not in data:
        problems.add(key, "a reaction needs hold, slow or both: what to do when the reply comes")
    decay = _duration(data["decay_after"], f"{key}.decay_after", problems) if "decay_after" in data else None
    if len(problems.items) != before or conditions is None:
        return None
    if decay is None:
        decay = hold.first if hold is not None else 600.0
    return Reaction(rule_id, conditions, " ".join(reason.split()), per_sender, hold, slow, decay)


def _reaction_refs(value: Any, key: str, problems: Problems, reactions: dict[str, Reaction | None]
                   ) -> tuple[Reaction, ...]:
    if value is None:
        return ()
    out = []
    for i, ref in enumerate(_list(value, key, problems)):
        if isinstance(ref, str) and ref in reactions and reactions[ref] is None:
            continue  # the reaction itself is wrong, and said so: one problem, not two
        if not isinstance(ref, str):
            problems.add(f"{key}[{i}]", f"expected the id of a reaction in `reactions:`, got "
                                        f"{type(ref).__name__} {ref!r}")
        elif ref not in reactions:
            problems.add(f"{key}[{i}]", f"no reaction with id {ref!r} in `reactions:`")
        else:
            out.append(reactions[ref])
    return tuple(out)


def _warmup(value: Any, problems: Problems, destinations: set[str]) -> dict[str, WarmupSender]:
    data = _mapping(value, "warmup", problems, "{plans: {...}, senders: {...}}")
    if data is None:
        return {}
    problems.unknown_keys(data, WARMUP_KEYS, "warmup")
    plans: dict[str, tuple[WarmupStep, ...]] = {}
    raw_plans = _mapping(_given(data.get("plans"), {}), "warmup.plans", problems, "{new-domain: [{day: 1, per_day: 50}]}")
    for name, steps in (raw_plans or {}).items():
        key = f"warmup.plans.{name}"
        parsed: list[WarmupStep] = []
        for i, step in enumerate(_list(steps, key, problems)):
            skey = f"{key}[{i}]"
            spec = _mapping(step, skey, problems, "{day: 1, per_day: 50}")
            if spec is None:
                continue
            problems.unknown_keys(spec, STEP_KEYS, skey)
            day = _count(spec.get("day"), f"{skey}.day", problems, allow_none=False)
            per_day = _count(spec.get("per_day"), f"{skey}.per_day", problems, allow_none=False)
            if day is None or per_day is None:
                continue
            if parsed and day <= parsed[-1].day:
                problems.add(f"{skey}.day", f"days must increase; {day} follows {parsed[-1].day}")
                continue
            parsed.append(WarmupStep(day, per_day))
        if not parsed:
            problems.add(key, "a plan needs at least one step {day: 1, per_day: N}")
        elif parsed[0].day != 1:
            problems.add(f"{key}[0].day", "the first step must be day 1")
        else:
            plans[str(name)] = tuple(parsed)
    senders: dict[str, WarmupSender] = {}
    raw_senders = _mapping(_given(data.get("senders"), {}), "warmup.senders", problems,
                           "{example.com: {plan: new-domain, start: 2026-11-20}}")
    for name, spec in (raw_senders or {}).items():
        key = f"warmup.senders.{name}"
        domain = _domain(name, key, problems)
        spec = _mapping(spec, key, problems, "{plan: new-domain, start: 2026-11-20}")
        if spec is None or domain is None:
            continue
        problems.unknown_keys(spec, SENDER_KEYS, key)
        plan = spec.get("plan")
        if plan not in plans:
            problems.add(f"{key}.plan", f"no plan {plan!r} in warmup.plans")
        start = spec.get("start")
        if isinstance(start, str):
            try:
                start = _dt.date.fromisoformat(start)
            except ValueError:
                pass
        if isinstance(start, _dt.datetime) or not isinstance(start, _dt.date):
            problems.add(f"{key}.start", f"expected the plan's first day as a date (2026-11-20), got {start!r}")
            start = None
        only = None
        if "destinations" in spec:
            only = set()
            for i, dest in enumerate(_list(spec["destinations"], f"{key}.destinations", problems)):
                if dest not in destinations:
                    problems.add(f"{key}.destinations[{i}]", f"no destination {dest!r} in `destinations:`")
                else:
                    only.add(dest)
        if plan in plans and start is not None:
            senders[domain] = WarmupSender(domain, plan, start, plans[plan],
                                           frozenset(only) if only is not None else None)
    return senders


def load_shaping(path: Path | str) -> ShapingPolicy:
    path = Path(path)
    problems = Problems(str(path))
    data = load_yaml(path)
    if not isinstance(data, dict):
        problems.add("(file)", "expected a mapping with `destinations:`, `default:` and `reactions:`")
        problems.raise_if_any()
    problems.unknown_keys(data, TOP_KEYS)
    problems.check_version(data)
    mx_lookup = data.get("mx_lookup", False)
    if not problems.check_bool("mx_lookup", mx_lookup):
        mx_lookup = False

    reactions: dict[str, Reaction | None] = {}  # None: named, but wrong
    for i, entry in enumerate(_list(_given(data.get("reactions"), []), "reactions", problems)):
        reaction = _reaction(entry, f"reactions[{i}]", problems)
        if reaction is None:
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                reactions.setdefault(entry["id"], None)
            continue
        if reaction.id in reactions:
            problems.add(f"reactions[{i}].id", f"duplicate reaction id {reaction.id!r}")
            continue
        reactions[reaction.id] = reaction

    destinations: list[Destination] = []
    seen_domains: dict[str, str] = {}
    raw = _mapping(_given(data.get("destinations"), {}), "destinations", problems, "{google: {domains: [gmail.com]}}")
    for name, spec in (raw or {}).items():
        key = f"destinations.{name}"
        checked = _name(name, key, problems)
        if spec is None:
            spec = {}
        spec = _mapping(spec, key, problems, "{domains: [gmail.com], mx: [\"*.google.com\"], reactions: [...]}")
        if spec is None or checked is None:
            continue
        before = len(problems.items)
        problems.unknown_keys(spec, DESTINATION_KEYS, key)
        label = spec.get("name", checked)
        if not isinstance(label, str) or not label.strip() or not label.isascii():
            problems.add(f"{key}.name", f"expected a short ASCII name for replies, e.g. gmail, got {label!r}")
        domains = set()
        for i, d in enumerate(_list(_given(spec.get("domains"), []), f"{key}.domains", problems)):
            domain = _domain(d, f"{key}.domains[{i}]", problems)
            if domain is None:
                continue
            if domain in seen_domains:
                problems.add(f"{key}.domains[{i}]", f"{domain} already belongs to destination {seen_domains[domain]}")
            seen_domains[domain] = checked
            domains.add(domain)
        mx = [_mx_pattern(p, f"{key}.mx[{i}]", problems)
              for i, p in enumerate(_list(_given(spec.get("mx"), []), f"{key}.mx", problems))]
        if not domains and not mx:
            problems.add(key, "a destination needs `domains:` or `mx:` (or both) to be found")
        limits = _limits(spec.get("limits"), f"{key}.limits", problems)
        refs = _reaction_refs(spec.get("reactions"), f"{key}.reactions", problems, reactions)
        if len(problems.items) == before:
            destinations.append(Destination(checked, label.strip(), limits, refs, frozenset(domains),
                                            tuple(p for p in mx if p)))

    default = _given(data.get("default"), {})
    default = _mapping(default, "default", problems, "{limits: {...}, reactions: [...]}") or {}
    problems.unknown_keys(default, DEFAULT_KEYS, "default")
    default_limits = _limits(default.get("limits"), "default.limits", problems)
    default_reactions = _reaction_refs(default.get("reactions"), "default.reactions", problems, reactions)
    warmup = _warmup(data["warmup"], problems, {d.name for d in destinations}) if data.get("warmup") else {}
    problems.raise_if_any()
    return ShapingPolicy(str(path), tuple(destinations), default_limits, default_reactions, mx_lookup, warmup)


@functools.cache
def shipped_shaping() -> ShapingPolicy:
    """The shipped policies/shaping.yaml, loaded once."""
    return load_shaping(SHIPPED_SHAPING)

