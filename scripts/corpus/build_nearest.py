"""Write relay/nearest-corpus.json, the nearest-reply reader's data (relay/nearest.py).

    PYTHONPATH=$PWD python3 scripts/corpus/build_nearest.py [--check]

The reply, category, scope and permanence of every entry of the training part of the corpus
(tests/data/corpus/train/*.yaml, in file-name order, each file in its order), and nothing
else: the held-out part is never read. --check exits 1 when the file is not what this
script would write (tests/test_nearest.py runs it, so a corpus change without a rebuild
fails CI).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
TRAIN = ROOT / "tests" / "data" / "corpus" / "train"
OUT = ROOT / "relay" / "nearest-corpus.json"


def build() -> str:
    replies = []
    for path in sorted(TRAIN.glob("*.yaml")):
        for entry in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            replies.append({"reply": entry["reply"], "category": entry["category"], "scope": entry["scope"],
                            "permanent": entry["permanent"]})
    lines = ",\n".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in replies)
    about = json.dumps("built by scripts/corpus/build_nearest.py from tests/data/corpus/train/ (the training part only)")
    return f'{{"about":{about},\n"replies":[\n{lines}\n]}}\n'



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that the file is up to date")
    args = parser.parse_args()
    text = build()
    if args.check:
        current = OUT.read_text(encoding="utf-8") if OUT.is_file() else ""
        if current != text:
            print(f"{OUT.relative_to(ROOT)} is out of date: run scripts/corpus/build_nearest.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}: {len(json.loads(text)['replies'])} replies", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
