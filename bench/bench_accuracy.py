"""Accuracy of the shipped rules on the corpus of real replies.

    python bench/bench_accuracy.py [--policies DIR] [--show-train-misses]

Prints, for the training part and the held-out part of tests/data/corpus/
separately: category accuracy, listing-decision accuracy (list / count /
never), false listings (a reply the relay would list at once although it does
not say the address is bad), and the confusion pairs. A human summary goes to
stderr, one JSON object to stdout:
{"bench": "accuracy", "train": {...}, "heldout": {...}}

The held-out part was set aside before the rules were tuned and is only
measured; --show-train-misses lists the misses of the training part only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.corpus import PARTS, THRESHOLDS, load_part, load_shipped_policies, measure  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", type=Path, help="policy directory (default: the shipped one)")
    parser.add_argument("--show-train-misses", action="store_true", help="list every miss of the training part")
    args = parser.parse_args()

    policies = load_shipped_policies(args.policies)
    result = {"bench": "accuracy", "engine": "judge" if hasattr(policies, "judge") else "classify+suppression",
              "thresholds": THRESHOLDS}
    for part in PARTS:
        figures = measure(policies, load_part(part), part)
        result[part] = figures.as_dict()
        d = result[part]
        print(f"{part:8} replies={d['replies']:4}  category={d['category']:.1%}  bounce_list={d['bounce_list']:.1%}  "
              f"false_listings={d['false_listings']} ({d['false_listing_rate']:.2%})  missed_listings={d['missed_listings']}"
              + (f"  scope={d['scope']:.1%}" if d["scope"] is not None else ""), file=sys.stderr)
        for line in d["confusions"][:12]:
            print(f"           category {line}", file=sys.stderr)
        for line in d["listing_confusions"]:
            print(f"           listing  {line}", file=sys.stderr)
        if part == "train" and args.show_train_misses:
            for entry, verdict in figures.misses:
                print(f"  MISS {entry['_file']}: want {entry['category']}/{entry['scope']}/{entry['bounce_list']} "
                      f"got {verdict.category}/{verdict.scope}/{verdict.bounce_list} ({verdict.rule}) "
                      f"stage={entry['stage']} | {entry['reply'][:150]!r}", file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
