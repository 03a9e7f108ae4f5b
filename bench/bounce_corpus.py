"""The labelled bounce corpus (tests/data/bounces, a copy of shared/corpora/bounces) and its fixed split.

The split is made before any tuning and never changes: 30% of the emails of each family (seeded,
stratified by `family`) are held out. The parser is tuned on the `tune` part only; the `holdout` figures
say how well it generalises to bounces it was not tuned on.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "bounces"
SEED = 3464  # RFC 3464; fixed so that the split never moves
HOLDOUT_SHARE = 0.3


@dataclass(frozen=True)
class LabelledRecipient:
    file: str
    family: str
    kind: str          # "bounce" | "feedback"
    index: int         # position among the email's labelled recipients
    recipient: str | None
    status: str | None
    status_pseudo: bool  # sisimai made the status up: it is not in the message
    code: str | None
    reason: str | None
    hard: bool
    feedback_type: str | None
    # crisp only: its `data.error.temporary`; crisp sets it and `hard` (its `permanent`) both false
    # where it cannot tell (the corpus README). None for sisimai files.
    temporary: bool | None = None


def load_labels(corpus: Path = CORPUS) -> list[dict]:
    return yaml.safe_load((corpus / "labels.yaml").read_text(encoding="utf-8"))


def split(entries: list[dict]) -> dict[str, str]:
    """file -> "tune" | "holdout": per family, a seeded 30% (rounded) goes to the holdout; a family of
    one email stays in `tune`."""
    by_family: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        by_family[entry["family"]].append(entry["file"])
    rng = random.Random(SEED)
    part: dict[str, str] = {}
    for family in sorted(by_family):
        files = sorted(by_family[family])
        rng.shuffle(files)
        held = round(len(files) * HOLDOUT_SHARE) if len(files) > 1 else 0
        for n, name in enumerate(files):
            part[name] = "holdout" if n < held else "tune"
    return part


def recipients(entries: list[dict]) -> list[LabelledRecipient]:
    out = []
    for entry in entries:
        for n, r in enumerate(entry["recipients"]):
            out.append(LabelledRecipient(
                file=entry["file"], family=entry["family"], kind=entry["kind"], index=n,
                recipient=r.get("recipient"), status=r.get("status"), status_pseudo=bool(r.get("status_pseudo")),
                code=r.get("code"), reason=r.get("reason"), hard=bool(r.get("hard")),
                feedback_type=r.get("feedback_type"),
                temporary=bool(r["temporary"]) if r.get("temporary") is not None else None))
    return out
