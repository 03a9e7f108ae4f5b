"""Time reply classification over the corpus of real replies (tests/data/corpus/).

    python bench/bench_classify.py [--rounds N]

Prints a human summary on stderr and one JSON object on stdout:
{"bench": "classify", "replies": ..., "mean_us": ..., "p50_us": ..., "p99_us": ..., "max_us": ...}

Each corpus reply is parsed once (as the relay gets a Reply from the upstream
session) and then classified many times; the figure is the time of
`Classifier.classify(reply)` per reply. The loader runs once, outside the timing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import timeit
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from relay.classify import default_classifier  # noqa: E402
from relay.decision import Reply  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "corpus"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=500, help="classifications per reply, best of 5 repeats (default 500)")
    args = parser.parse_args()

    classifier = default_classifier()
    replies = [Reply.parse(entry["reply"])
               for path in sorted(CORPUS.glob("*/*.yaml"))
               for entry in yaml.safe_load(path.read_text(encoding="utf-8"))]

    # Per reply: the best of 5 repeats of `rounds` calls, so one scheduler hiccup
    # does not stand for the reply's cost.
    per_reply_us = []
    for reply in replies:
        timer = timeit.Timer(lambda reply=reply: classifier.classify(reply))
        best = min(timer.repeat(repeat=5, number=args.rounds))
        per_reply_us.append(best / args.rounds * 1e6)

    per_reply_us.sort()
    p99_index = min(len(per_reply_us) - 1, round(0.99 * (len(per_reply_us) - 1)))
    result = {
        "bench": "classify",
        "replies": len(replies),
        "rounds": args.rounds,
        "mean_us": round(statistics.fmean(per_reply_us), 2),
        "p50_us": round(statistics.median(per_reply_us), 2),
        "p99_us": round(per_reply_us[p99_index], 2),
        "max_us": round(per_reply_us[-1], 2),
        "python": sys.version.split()[0],
    }
    print(
        f"classify: {result['replies']} replies x {args.rounds} rounds: "
        f"mean {result['mean_us']} us, p50 {result['p50_us']} us, p99 {result['p99_us']} us, "
        f"max {result['max_us']} us",
        file=sys.stderr,
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
