"""The held-out split of the reply corpus: which entries are set aside.

    python3 scripts/corpus/split.py            # prints the split it would make

Used once, when the corpus was assembled, before any rule was tuned on it. The
entries of tests/data/replies.yaml (the seed corpus, already used to write the
shipped rules) all stay in the training part: they cannot measure anything. Of
the other entries, 30% are set aside (near-duplicates of a seed entry stay
in training too), stratified by source file and provider
(each stratum contributes its 30% of groups, rounded with a running\ntotal so small strata add up), with near-duplicates
grouped so a group is on one side only. The random generator is seeded, so the
split is reproducible from the same pool.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict

HELD_OUT_SHARE = 0.30
SEED = 20261129

_MASKS = [
    (re.compile(r"[\w.+-]+@[\w.-]+"), "@"),          # addresses
    (re.compile(r"\b\d{1,3}(\.\d{1,3}){3}\b"), "ip"),  # IPv4
    (re.compile(r"https?://\S+"), "url"),
    (re.compile(r"\b[a-z0-9-]+(\.[a-z0-9-]+){2,}\b"), "host"),
    (re.compile(r"[0-9a-f]{8,}"), "hex"),
    (re.compile(r"\d+"), "#"),
    (re.compile(r"[^a-z# @]+"), " "),
    (re.compile(r"\s+"), " "),
]


def near_duplicate_key(reply: str) -> str:
    """Two replies with the same key differ only in addresses, hosts, numbers
    or punctuation: they are the same text for measurement purposes."""
    text = reply.lower()
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text.strip()[:80]


def split(entries: list[dict], stratum, train_only: list[dict] = ()) -> tuple[list[dict], list[dict]]:
    """(train, held_out): groups of near-duplicates, stratified by `stratum(entry)`.
    A group with a near-duplicate in `train_only` (the seed corpus) stays in training."""
    pinned = {near_duplicate_key(entry["reply"]) for entry in train_only}
    groups: dict[str, list[dict]] = defaultdict(list)
    for entry in entries:
        key = near_duplicate_key(entry["reply"])
        if key not in pinned:
            groups[key].append(entry)
    strata: dict[str, list[str]] = defaultdict(list)
    for key, members in groups.items():
        strata[stratum(members[0])].append(key)
    rng = random.Random(SEED)
    held_keys: set[str] = set()
    due = 0.0  # running share, so small strata still add up to 30% overall
    for name in sorted(strata):
        keys = sorted(strata[name])
        rng.shuffle(keys)
        due += len(keys) * HELD_OUT_SHARE
        take = round(due) - len(held_keys)
        held_keys.update(keys[:max(take, 0)])
    train = [e for e in entries if near_duplicate_key(e["reply"]) not in held_keys]
    held = [e for e in entries if near_duplicate_key(e["reply"]) in held_keys]
    return train, held
