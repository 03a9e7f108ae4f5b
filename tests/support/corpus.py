"""The corpus of real replies (tests/data/corpus/) and how the rules are measured on it.

Used by tests/test_corpus.py and bench/bench_accuracy.py. The held-out part
(tests/data/corpus/heldout/) is only ever measured, never used to write rules.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import yaml

import re

from relay.decision import Reply

CORPUS_DIR = Path(__file__).resolve().parent.parent / "data" / "corpus"
PARTS = ("train", "heldout")
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
SCOPES = frozenset({"recipient", "message", "sender", "session", "relay"})
BOUNCE_LIST = frozenset({"list", "count", "never"})
STAGES = frozenset({"connect", "helo", "mail", "rcpt", "data"})
ENTRY_KEYS = frozenset({"provider", "reply", "category", "scope", "bounce_list", "stage", "permanent", "source"})

# The figures the held-out part must reach (issue 8).
THRESHOLDS = {"category": 0.95, "bounce_list": 0.98, "false_listing_rate": 0.005}


def load_part(part: str) -> list[dict]:
    entries = []
    for path in sorted((CORPUS_DIR / part).glob("*.yaml")):
        for entry in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            entries.append({**entry, "_file": f"{part}/{path.name}"})
    return entries


@dataclass(frozen=True)
class Verdict:
    category: str
    permanent: bool
    rule: str
    bounce_list: str
    scope: str | None  # None while the engine has no attribution


def load_shipped_policies(directory: Path | None = None):
    from relay.config import SHIPPED_POLICIES
    from relay.policies import load_policies

    return load_policies(SimpleNamespace(policies=directory or SHIPPED_POLICIES))


def judge(policies, entry: dict) -> Verdict:
    """What the relay would make of the entry's reply: through `Policies.judge`
    (classification, attribution, listing decision) where the engine has it,
    else the classification plus the suppression table (no attribution)."""
    reply = Reply.parse(entry["reply"])
    if hasattr(policies, "judge"):
        # The transaction's recipients: the addresses the reply names (a reply at the
        # final dot is about one recipient only when it names it).
        # Read in the reply as the rules see it (unwrapped_text): without the code prefix of each
        # line, which the address pattern would take in ("550-user@x" is not an address).
        from relay.classify import unwrapped_text

        recipients = tuple(dict.fromkeys(_ADDRESS.findall(unwrapped_text(reply))))
        j = policies.judge(reply, stage=entry.get("stage"), recipients=recipients)
        c = j.classification
        return Verdict(c.category, c.permanent, c.rule, j.bounce_list, j.scope)
    c = policies.classifier.classify(reply)
    rule = policies.suppression.rule_for(c.category, c.permanent)
    listing = "never" if rule is None else ("list" if rule.immediate else "count")
    return Verdict(c.category, c.permanent, c.rule, listing, None)


@dataclass
class Figures:
    part: str
    replies: int = 0
    category_right: int = 0
    listing_right: int = 0
    scope_right: int = 0
    scope_judged: int = 0
    false_listings: int = 0  # listed at once although the reply does not say the address is bad
    missed_listings: int = 0  # a bad address the relay would not list at once
    confusions: Counter = field(default_factory=Counter)
    listing_confusions: Counter = field(default_factory=Counter)
    misses: list = field(default_factory=list)

    def ratio(self, n: int) -> float:
        return n / self.replies if self.replies else 0.0

    def as_dict(self) -> dict:
        return {
            "part": self.part,
            "replies": self.replies,
            "category": round(self.ratio(self.category_right), 4),
            "bounce_list": round(self.ratio(self.listing_right), 4),
            "false_listings": self.false_listings,
            "false_listing_rate": round(self.ratio(self.false_listings), 4),
            "missed_listings": self.missed_listings,
            "scope": round(self.scope_right / self.scope_judged, 4) if self.scope_judged else None,
            "confusions": [f"{a} -> {b}: {n}" for (a, b), n in self.confusions.most_common()],
            "listing_confusions": [f"{a} -> {b}: {n}" for (a, b), n in self.listing_confusions.most_common()],
        }


def measure(policies, entries: list[dict], part: str) -> Figures:
    figures = Figures(part)
    for entry in entries:
        verdict = judge(policies, entry)
        figures.replies += 1
        ok = True
        if verdict.category == entry["category"]:
            figures.category_right += 1
        else:
            figures.confusions[(entry["category"], verdict.category)] += 1
            ok = False
        if verdict.bounce_list == entry["bounce_list"]:
            figures.listing_right += 1
        else:
            figures.listing_confusions[(entry["bounce_list"], verdict.bounce_list)] += 1
            ok = False
        if verdict.bounce_list == "list" and entry["bounce_list"] != "list":
            figures.false_listings += 1
        if entry["bounce_list"] == "list" and verdict.bounce_list != "list":
            figures.missed_listings += 1
        if verdict.scope is not None:
            figures.scope_judged += 1
            if verdict.scope == entry["scope"]:
                figures.scope_right += 1
            else:
                ok = False
        if not ok:
            figures.misses.append((entry, verdict))
    return figures
