"""Relabel the reply corpus's listing decisions after the policy change of issue 13.

    python3 scripts/corpus/relabel_unconfirmed.py          # prints what it would change
    python3 scripts/corpus/relabel_unconfirmed.py --write  # changes tests/data/corpus/*/*.yaml

A policy change, not tuning: the labelling convention (tests/data/corpus/README.md) derives
`bounce_list` from the other labels by one rule, and the project changed that rule. From the
labels alone (category, stage) and the reply's leading enhanced code, never from what the
rules make of a text, an entry labelled `list` becomes `count` when:
- its category is `mailbox_disabled` (suppression.yaml: a disabled account lists on the second
  refusal within 30 days, not at once);
- its stage is `data` (a "no such user" after the content was seen is unconfirmed);
- its category is `unknown_recipient` and its enhanced code is X.2.1 or X.7.1 (the code
  contradicts the text).
Run on both parts alike (the held-out part too: its labels follow the same convention).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from relay.decision import Reply  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "corpus"


def new_label(entry: dict) -> str:
    if entry.get("bounce_list") != "list":
        return entry.get("bounce_list")
    if entry.get("category") == "mailbox_disabled":
        return "count"
    if entry.get("stage") == "data":
        return "count"
    enhanced = Reply.parse(entry["reply"]).enhanced or ""
    if entry.get("category") == "unknown_recipient" and enhanced[2:] in ("2.1", "7.1"):
        return "count"
    return "list"


def relabel(path: Path, write: bool) -> int:
    entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    lines = path.read_text(encoding="utf-8").split("\n")
    starts = [i for i, line in enumerate(lines) if line.startswith("- ")]
    assert len(starts) == len(entries), path
    changed = 0
    for n, entry in enumerate(entries):
        label = new_label(entry)
        if label == entry.get("bounce_list"):
            continue
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        where = [i for i in range(starts[n], end) if lines[i] in ("  bounce_list: list", "- bounce_list: list")]
        assert len(where) == 1, (path, n)
        lines[where[0]] = lines[where[0]].replace("bounce_list: list", f"bounce_list: {label}")
        changed += 1
        print(f"{path.relative_to(ROOT)} #{n}: list -> {label} ({entry['category']}, stage {entry.get('stage')}): "
              f"{' '.join(entry['reply'].split())[:100]}")
    if write and changed:
        path.write_text("\n".join(lines), encoding="utf-8")
        assert [new_label(e) for e in yaml.safe_load(path.read_text(encoding="utf-8"))] == \
               [e.get("bounce_list") for e in yaml.safe_load(path.read_text(encoding="utf-8"))]
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    total = sum(relabel(path, args.write) for path in sorted(CORPUS.glob("*/*.yaml")))
    print(f"{total} entries {'relabelled' if args.write else 'to relabel'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
