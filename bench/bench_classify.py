"""Time reply classification over the corpus of real replies (tests/data/corpus/).

    python bench/bench_classify.py [--rounds N] [--nearest]

Prints a human summary on stderr and one JSON object on stdout:
{"bench": "classify", "replies": ..., "mean_us": ..., "p50_us": ..., "p99_us": ..., "max_us": ...}

Each corpus reply is parsed once (as the relay gets a Reply from the upstream
session) and then classified many times; the figure is the time of
`Classifier.classify(reply)` per reply. The loader runs once, outside the timing.

--nearest times the nearest-reply lookup instead (relay/nearest.py, `NearestReader.nearest`,
which Policies.judge adds where the rules end in a catch-all of their fallback table), over the
training part only (the held-out part is not read) and over hostile replies of 2,048 characters
(MAX_CLASSIFIED_TEXT); "bench" is then "nearest", with "hostile_max_us".
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
    parser.add_argument("--nearest", action="store_true", help="time the nearest-reply lookup (training part only)")
    args = parser.parse_args()
    if args.nearest:
        return nearest(args.rounds)

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


def _per_reply_us(call, replies, rounds):
    out = []
    for reply in replies:
        timer = timeit.Timer(lambda reply=reply: call(reply))
        out.append(min(timer.repeat(repeat=5, number=rounds)) / rounds * 1e6)
    return sorted(out)


def nearest(rounds: int) -> int:
    import random
    import time

    from relay.classify import MAX_CLASSIFIED_TEXT
    from relay.nearest import shipped_reader

    started = time.perf_counter()
    reader = shipped_reader()
    load_s = time.perf_counter() - started
    replies = [Reply.parse(entry["reply"])
               for path in sorted((CORPUS / "train").glob("*.yaml"))
               for entry in yaml.safe_load(path.read_text(encoding="utf-8"))]
    rng = random.Random(8)
    vocabulary = sorted({w for r in replies for line in r.lines for w in line.split()})
    n = MAX_CLASSIFIED_TEXT - 4
    hostile = [Reply.parse(f"550 {text}"[:MAX_CLASSIFIED_TEXT]) for text in (
        "a" * n, "@" * n, "a." * (n // 2), "x1" * (n // 2), "<" * n,
        " ".join(rng.choice(vocabulary) for _ in range(600)),  # real words, many rare features
        " ".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
                 for _ in range(300)),
    )]
    rounds = max(1, rounds // 10)
    per_reply_us = _per_reply_us(reader.nearest, replies, rounds)
    hostile_us = _per_reply_us(reader.nearest, hostile, rounds)
    p99_index = min(len(per_reply_us) - 1, round(0.99 * (len(per_reply_us) - 1)))
    result = {
        "bench": "nearest",
        "replies": len(replies),
        "rounds": rounds,
        "load_s": round(load_s, 3),
        "mean_us": round(statistics.fmean(per_reply_us), 2),
        "p50_us": round(statistics.median(per_reply_us), 2),
        "p99_us": round(per_reply_us[p99_index], 2),
        "max_us": round(per_reply_us[-1], 2),
        "hostile_max_us": round(hostile_us[-1], 2),
        "python": sys.version.split()[0],
    }
    print(f"nearest: {len(replies)} training replies x {rounds} rounds: mean {result['mean_us']} us, p50 "
          f"{result['p50_us']} us, p99 {result['p99_us']} us, max {result['max_us']} us; {len(hostile)} hostile "
          f"replies of {MAX_CLASSIFIED_TEXT} characters: max {result['hostile_max_us']} us; load {result['load_s']} s",
          file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
