"""Build and measure the sisimai phrase check (tests/data/sisimai_phrases/).

    python3 scripts/corpus/sisimai_phrases.py build     # phrases.yaml + mapping.yaml -> replies.yaml
    python3 scripts/corpus/sisimai_phrases.py measure [--misses] [--policies DIR]

sisimai's reason modules list, per bounce reason, the short phrases it recognises
(phrases.yaml holds them as facts, with the file and commit they are from). Each phrase
becomes one reply text; mapping.yaml says what this project should make of a reply of
that reason (category, listing decision, `hard`). `measure` runs every reply through
`Policies.judge` (as bench/bench_accuracy.py does) and prints agreement per reason.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "sisimai_phrases"
RECIPIENT = "user@example.org"
# A phrase that ends in one of these (or starts or ends with a space) is a piece of a
# longer sentence: it is kept verbatim after the reply code, without an address before it.
_OPEN_END = re.compile(r"(?:\b(?:for|of|by|to|from|the|with|at|is|using|see|after|than|mailbox|on|a)|[=<(:/-])$")
_HAS_CODE = re.compile(r"^[245]\d\d[ -]")


def _text(entry) -> tuple[str, bool]:
    """The phrase's text and whether it is a piece of a sentence."""
    if isinstance(entry, list):  # pieces in order, then the filler that goes between them
        *pieces, filler = entry
        return filler.join(pieces), False
    return entry, entry != entry.strip() or bool(_OPEN_END.search(entry.strip()))


def reply_for(text: str, fragment: bool, code, stage) -> str:
    text = text.strip()
    if _HAS_CODE.match(text) or code is None:
        return text
    if stage == "rcpt" and not fragment:
        return f"{code} <{RECIPIENT}>... {text}"
    return f"{code} {text}"


def build() -> list[dict]:
    phrases = yaml.safe_load((DATA / "phrases.yaml").read_text(encoding="utf-8"))
    mapping = yaml.safe_load((DATA / "mapping.yaml").read_text(encoding="utf-8"))
    overrides = mapping.get("phrases") or {}
    out = []
    used = set()
    for reason, block in phrases.items():
        expect = mapping["reasons"][reason]
        for entry in list(block.get("phrases") or []) + list(block.get("pairs") or []):
            text, fragment = _text(entry)
            key = f"{reason}: {text.strip()}"
            o = overrides.get(key, {})
            used.add(key) if key in overrides else None
            stage = o.get("stage", expect["stage"])
            item = {
                "reason": reason,
                "phrase": entry if isinstance(entry, str) else entry[:-1],
                "source": block["source"],
                "reply": o.get("reply") or reply_for(text, fragment, o.get("code", expect["code"]), stage),
                "stage": stage,
                "category": o.get("category", expect["category"]),
                # Other categories of ours that also carry this reason's meaning (mapping.yaml);
                # a phrase with its own category, or an xfail (ours is wrong for it), has none.
                "also": o.get("also", [] if ("category" in o or "xfail" in o) else list(expect.get("also") or [])),
                "bounce_list": o.get("bounce_list", expect["bounce_list"]),
                "hard": o.get("hard", expect["hard"]),
            }
            if o.get("note"):
                item["note"] = o["note"]
            if o.get("xfail"):
                item["xfail"] = o["xfail"]
            out.append(item)
    unknown = set(overrides) - used
    if unknown:
        raise SystemExit(f"mapping.yaml names phrases that phrases.yaml does not hold: {sorted(unknown)}")
    return out


def write(entries: list[dict]) -> None:
    header = ("# Built by scripts/corpus/sisimai_phrases.py from phrases.yaml and mapping.yaml: do not edit.\n"
              "# One reply per phrase of sisimai's reason modules; see README.md.\n")
    body = yaml.safe_dump(entries, sort_keys=False, allow_unicode=True, width=200)
    (DATA / "replies.yaml").write_text(header + body, encoding="utf-8")


def load() -> list[dict]:
    return yaml.safe_load((DATA / "replies.yaml").read_text(encoding="utf-8"))


def verdict(policies, entry: dict):
    from relay.decision import Reply

    addresses = tuple(dict.fromkeys(re.findall(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", entry["reply"])))
    return policies.judge(Reply.parse(entry["reply"]), stage=entry["stage"], recipients=addresses)


def measure(show_misses: bool, policies_dir: Path | None = None) -> int:
    sys.path.insert(0, str(ROOT))
    from tests.support.corpus import load_shipped_policies

    policies = load_shipped_policies(policies_dir)
    entries = load()
    per = defaultdict(Counter)
    wrong_list = []
    for e in entries:
        j = verdict(policies, e)
        c = j.classification
        ok_strict = c.category == e["category"]
        ok_cat = ok_strict or c.category in e.get("also", ())
        ok_list, ok_hard = j.bounce_list == e["bounce_list"], j.hard == e["hard"]
        r = per[e["reason"]]
        r["n"] += 1
        r["strict"] += ok_strict
        r["category"] += ok_cat
        r["xfail"] += bool(e.get("xfail"))
        r["bounce_list"] += ok_list
        r["hard"] += ok_hard
        if j.bounce_list == "list" and e["bounce_list"] != "list":
            wrong_list.append(e)
        if show_misses and not (ok_cat and ok_list and ok_hard):
            print(f"  MISS {e['reason']}: want {e['category']}/{e['bounce_list']}/hard={e['hard']} got "
                  f"{c.category}/{j.bounce_list}/hard={j.hard} ({c.rule}) | {e['reply']!r}")
    tot = Counter()
    for reason, r in per.items():
        tot.update(r)
        print(f"{reason:16} n={r['n']:3}  category={r['category']:3} (first category {r['strict']:3})  "
              f"bounce_list={r['bounce_list']:3}  hard={r['hard']:3}  xfail={r['xfail']}")
    n = tot["n"]
    print(f"{'all':16} n={n:3}  category={tot['category']/n:.1%} ({tot['category']}; first category "
          f"{tot['strict']/n:.1%})  "
          f"bounce_list={tot['bounce_list']/n:.1%} ({tot['bounce_list']})  hard={tot['hard']/n:.1%} ({tot['hard']})  "
          f"false_listings={len(wrong_list)}  xfail={tot['xfail']}")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("build", "measure"))
    p.add_argument("--misses", action="store_true")
    p.add_argument("--policies", type=Path, help="policy directory (default: the shipped one)")
    a = p.parse_args()
    if a.what == "build":
        entries = build()
        write(entries)
        print(f"{len(entries)} replies", file=sys.stderr)
        return 0
    return measure(a.misses, a.policies)


if __name__ == "__main__":
    raise SystemExit(main())
