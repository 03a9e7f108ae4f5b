"""Would a nearest-neighbour reader help where the rules end in their fallback table? (issue #8)

    PYTHONPATH=$PWD python3 bench/bench_nearest.py [--rounds world10,world11,...] [--threshold T] [--sweep]

An arrival proxy that never touches the held-out part: for each world round (train/worldN.yaml,
committed as a corpus-only commit before any rule change for it), take the policy directory as of
that corpus commit (`git show <commit>:policies/...`) and, as the reader's data, the training corpus
minus that round and minus every later round (the files that existed when the round arrived, with
today's labels). Score the round's texts:

- rules alone (what main's rules of the time made of the round when it arrived);
- rules + reader: where the verdict came from the fallback table (the rule id is one of the
  fallback's), the reader's nearest labelled text, if similar enough, gives the category; its
  listing decision may never be looser than the fallback's (list > count > never: a looser one is
  rejected, the fallback's verdict stands) and its scope never becomes `recipient` on its own.

Also counts how many of the round's arrival misses (category) came from the fallback at all: the
ceiling of any fallback-side reader. Reads only tests/data/corpus/train/ and git history.

Readers (--reader): `words` (TF-IDF over masked word unigrams and bigrams, plus reply-code and
enhanced-code tokens), `chars` (TF-IDF over character 3-5-grams inside masked words, plus the code
tokens), `both` (the two vectors concatenated). Cosine similarity, the single nearest text.
"""

from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import relay.regex  # noqa: E402
from relay.classify import effective_enhanced, unwrapped_text  # noqa: E402
from relay.decision import Reply  # noqa: E402
from relay.nearest import THRESHOLD, NearestReader  # noqa: E402
from relay.policies import _catch_all  # noqa: E402
from tests.support.corpus import _ADDRESS, load_shipped_policies  # noqa: E402

TRAIN = ROOT / "tests" / "data" / "corpus" / "train"
TUNE_ROUNDS = ("world5", "world6", "world7", "world8", "world9")
EVAL_ROUNDS = ("world10", "world11", "world12", "world13")
RANK = {"never": 0, "count": 1, "list": 2}

_MASKS = [
    (re.compile(r"[\w.+-]+@[\w.-]+"), " addr "),
    (re.compile(r"https?://\S+"), " url "),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b"), " ip "),
    (re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b"), " "),  # enhanced codes: their own tokens
    (re.compile(r"\b[a-z0-9-]+(?:\.[a-z0-9-]+){2,}\b"), " host "),
    (re.compile(r"[0-9a-f]*\d[0-9a-f]*"), " "),
]
_WORD = re.compile(r"[^\W\d_]+")


def round_index(name: str) -> int:
    """world -> 1, world2 -> 2 ...; the base files (seed, bounces, public) -> 0."""
    if not name.startswith("world"):
        return 0
    return int(name[5:] or 1)


def load(name: str) -> list[dict]:
    return yaml.safe_load((TRAIN / f"{name}.yaml").read_text(encoding="utf-8")) or []


def corpus_commit(name: str) -> str:
    """The first commit that added train/<name>.yaml (the corpus-only commit of the round)."""
    out = subprocess.run(["git", "log", "--reverse", "--format=%H", "--", f"tests/data/corpus/train/{name}.yaml"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return out[0]


def policies_at(commit: str, into: Path):
    names = subprocess.run(["git", "ls-tree", "--name-only", f"{commit}:policies"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for n in names:
        data = subprocess.run(["git", "show", f"{commit}:policies/{n}"], cwd=ROOT, capture_output=True, check=True).stdout
        (into / n).write_bytes(data)
    # The rules of that commit were the shipped ones then: compiled with `re`, as shipped rules are
    # (relay/regex.py compiles other patterns in RE2, which refuses some of the old ones).
    old = set()
    for path in into.glob("bounce-rules*.yaml"):
        for rule in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("rules") or []:
            for key in ("match", "not_match"):
                value = rule.get(key) if isinstance(rule, dict) else None
                old.update(v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str))
    shipped = relay.regex.shipped_patterns
    relay.regex.shipped_patterns = lambda: frozenset(old)
    try:
        # Rules alone: without the shipped reader, whose data holds every round.
        return replace(load_shipped_policies(into), nearest=None)
    finally:
        relay.regex.shipped_patterns = shipped


def fallback_ids(policies) -> frozenset[str]:
    fb = policies.classifier._fallback
    ids = {o.rule_id for o in fb.enhanced.values()} | {o.rule_id for o in fb.codes.values()}
    if fb.default is not None:
        ids.add(fb.default.rule_id)
    return frozenset(ids | {"default"})


# --- the reader --------------------------------------------------------------------------


def features(reply: Reply, kind: str) -> Counter:
    text = unwrapped_text(reply).lower()
    if reply.code:
        text = text[len(str(reply.code)):]
    for pattern, repl in _MASKS:
        text = pattern.sub(repl, text)
    words = _WORD.findall(text)
    f: Counter = Counter()
    if reply.code:
        f[f"c:{reply.code}"] += 1
        f[f"c:{str(reply.code)[0]}"] += 1
    enhanced = effective_enhanced(reply)
    if enhanced:
        f[f"e:{enhanced}"] += 1
        f[f"e:X.{enhanced.split('.', 1)[1]}"] += 1
    if kind in ("words", "both"):
        f.update(f"w:{w}" for w in words)
        f.update(f"b:{a} {b}" for a, b in zip(words, words[1:]))
    if kind in ("chars", "both"):
        for w in words:
            w = f"<{w}>"
            for n in (3, 4, 5):
                f.update(f"g:{w[i:i + n]}" for i in range(max(1, len(w) - n + 1)))
    return f


class Reader:
    def __init__(self, entries: list[dict], kind: str):
        self.kind = kind
        self.entries = entries
        docs = [features(Reply.parse(e["reply"]), kind) for e in entries]
        df: Counter = Counter()
        for d in docs:
            df.update(d.keys())
        n = len(docs)
        self.idf = {t: math.log((1 + n) / (1 + c)) + 1 for t, c in df.items()}
        self.postings: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for i, d in enumerate(docs):
            vec = self._vector(d)
            for t, w in vec.items():
                self.postings[t].append((i, w))

    def _vector(self, counts: Counter) -> dict[str, float]:
        vec = {t: (1 + math.log(c)) * self.idf[t] for t, c in counts.items() if t in self.idf}
        norm = math.sqrt(sum(w * w for w in vec.values())) or 1.0
        return {t: w / norm for t, w in vec.items()}

    def nearest(self, reply: Reply) -> tuple[float, dict | None]:
        vec = self._vector(features(reply, self.kind))
        scores: dict[int, float] = defaultdict(float)
        for t, w in vec.items():
            for i, dw in self.postings.get(t, ()):
                scores[i] += w * dw
        if not scores:
            return 0.0, None
        best = max(scores, key=scores.__getitem__)
        return scores[best], self.entries[best]


# --- judging with and without the reader ----------------------------------------------------


class _Fixed:
    """A classifier that answers one classification (to run Policies.judge on it)."""

    def __init__(self, classification):
        self.c = classification

    def classify(self, reply, stage=None):
        return self.c


def judge_both(policies, fb_ids, reader, threshold, entry, mode="reject"):
    reply = Reply.parse(entry["reply"])
    recipients = tuple(dict.fromkeys(_ADDRESS.findall(entry["reply"])))
    stage = entry.get("stage")
    rules = policies.judge(reply, stage=stage, recipients=recipients)
    c = rules.classification
    info = {"fallback": c.rule in fb_ids, "similarity": None, "used": False, "rejected": False, "neighbour": None}
    if not info["fallback"] or reader is None:
        return rules, rules, info
    if mode == "shipped":
        # Policies.judge's own consultation (relay/policies.py), with this round's reader.
        mine = replace(policies, nearest=reader).judge(reply, stage=stage, recipients=recipients)
        found = reader.nearest(reply)
        info["similarity"] = found and found.similarity
        info["neighbour"] = found and {"category": found.category, "scope": found.scope, "reply": found.reply}
        info["used"] = mine.classification.rule.startswith("nearest:")
        consulted = _catch_all(policies.classifier.fallback_key(c))
        info["rejected"] = (consulted and found is not None and found.similarity >= THRESHOLD and not info["used"]
                            and found.category != c.category)
        return rules, mine, info
    if isinstance(reader, NearestReader):
        found = reader.nearest(reply)
        sim, near = (0.0, None) if found is None else (found.similarity, {"category": found.category,
                                                                          "scope": found.scope, "reply": found.reply})
    else:
        sim, near = reader.nearest(reply)
    info["similarity"], info["neighbour"] = sim, near
    if near is None or sim < threshold or near["category"] == c.category:
        return rules, rules, info
    original = policies.classifier.classify(reply, stage)
    scope = near["scope"]
    if scope == "recipient" and original.scope != "recipient":
        scope = original.scope  # never `recipient` from the reader alone
    nc = replace(original, category=near["category"], scope=scope, rule=f"nearest:{original.rule}")
    mine = replace(policies, classifier=_Fixed(nc)).judge(reply, stage=stage, recipients=recipients)
    looser = RANK[mine.bounce_list] > RANK[rules.bounce_list]
    if mode == "same" and mine.bounce_list != rules.bounce_list:
        info["rejected"] = True
        return rules, rules, info
    if mode == "keeplist" and (looser or (rules.bounce_list == "list" and mine.bounce_list != "list")):
        info["rejected"] = True
        return rules, rules, info
    if looser:
        info["rejected"] = True
        if mode == "reject":
            return rules, rules, info
        mine = replace(mine, bounce_list=rules.bounce_list)
    info["used"] = True
    return rules, mine, info


def score(entries, verdicts):
    out = Counter()
    for e, j in zip(entries, verdicts):
        out["n"] += 1
        out["category"] += j.classification.category == e["category"]
        out["listing"] += j.bounce_list == e["bounce_list"]
        out["scope"] += j.scope == e["scope"]
        out["false_listings"] += j.bounce_list == "list" and e["bounce_list"] != "list"
        out["missed_listings"] += e["bounce_list"] == "list" and j.bounce_list != "list"
        out["looser"] += RANK[j.bounce_list] > RANK[e["bounce_list"]]
    return out


def run_round(name, kind, thresholds, mode, show=False):
    files = sorted(p.stem for p in TRAIN.glob("*.yaml"))
    data = [e for f in files if round_index(f) < round_index(name) for e in load(f)]
    entries = load(name)
    if kind == "shipped":
        reader = NearestReader((e["reply"], e["category"], e["scope"], e["permanent"]) for e in data)
    else:
        reader = Reader(data, kind)
    with tempfile.TemporaryDirectory() as tmp:
        policies = policies_at(corpus_commit(name), Path(tmp))
    fb = fallback_ids(policies)
    rows = {}
    for t in thresholds:
        base, mine, infos = [], [], []
        for e in entries:
            r, m, i = judge_both(policies, fb, reader, t, e, mode)
            base.append(r)
            mine.append(m)
            infos.append(i)
        rows[t] = (score(entries, base), score(entries, mine), infos, base, mine)
    if show:
        t = thresholds[0]
        _, _, infos, base, mine = rows[t]
        for e, r, m, i in zip(entries, base, mine, infos):
            if not i["fallback"]:
                continue
            mark = ("FIX " if m.classification.category == e["category"] != r.classification.category else
                    "BREAK" if r.classification.category == e["category"] != m.classification.category else
                    "same" if r.classification.category == m.classification.category else "swap")
            near = i["neighbour"] or {}
            print(f"  {name} {mark:5} want {e['category']}/{e['scope']}/{e['bounce_list']} rules "
                  f"{r.classification.category}/{r.scope}/{r.bounce_list} ({r.classification.rule}) reader "
                  f"{m.classification.category}/{m.scope}/{m.bounce_list} sim={i['similarity'] or 0:.2f}"
                  f"{' REJECTED' if i['rejected'] else ''} | {e['reply'][:110]!r} ~ {near.get('reply', '')[:80]!r}",
                  file=sys.stderr)
    return len(entries), len(data), rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", default=",".join(EVAL_ROUNDS), help="comma-separated rounds (default world10..13)")
    parser.add_argument("--reader", default="shipped", choices=("shipped", "words", "chars", "both"))
    parser.add_argument("--threshold", type=float, action="append",
                        help="similarity threshold(s); default relay.nearest.THRESHOLD")
    parser.add_argument("--mode", default="shipped", choices=("shipped", "reject", "cap", "same", "keeplist"),
                        help="shipped (default): Policies.judge's own rule (relay/policies.py); the experiment's "
                             "variants: reject a looser listing decision, or keep the fallback's (cap); same: reject "
                             "any answer that changes the listing decision; keeplist: reject a looser one and one "
                             "that stops a listing")
    parser.add_argument("--show", action="store_true", help="list every fallback verdict of the rounds (first threshold)")
    args = parser.parse_args()
    thresholds = args.threshold or [THRESHOLD]
    totals = {t: [Counter(), Counter()] for t in thresholds}
    fallback_misses = Counter()
    for name in args.rounds.split(","):
        n, ndata, rows = run_round(name, args.reader, thresholds, args.mode, args.show)
        infos = rows[thresholds[0]][2]
        base = rows[thresholds[0]][3]
        entries = load(name)
        misses = [(e, b, i) for e, b, i in zip(entries, base, infos) if b.classification.category != e["category"]]
        from_fb = sum(1 for _, _, i in misses if i["fallback"])
        fallback_misses["misses"] += len(misses)
        fallback_misses["from_fallback"] += from_fb
        fallback_misses["fallback_verdicts"] += sum(1 for i in infos if i["fallback"])
        print(f"{name}: {n} texts, reader data {ndata} texts, rules of {corpus_commit(name)[:7]}; category misses "
              f"{len(misses)}, of them from the fallback {from_fb}; fallback verdicts {sum(1 for i in infos if i['fallback'])}")
        for t in thresholds:
            b, m = rows[t][0], rows[t][1]
            totals[t][0] += b
            totals[t][1] += m
            used = sum(1 for i in rows[t][2] if i["used"])
            rej = sum(1 for i in rows[t][2] if i["rejected"])
            print(f"  t={t:.2f} rules alone:  {line(b)}\n         rules+reader: {line(m)}  (reader answered {used}, "
                  f"not taken {rej}: another permanence, looser, or undoing a listing)")
    print(f"ALL: category misses {fallback_misses['misses']}, from the fallback {fallback_misses['from_fallback']}; "
          f"fallback verdicts {fallback_misses['fallback_verdicts']}")
    for t in thresholds:
        b, m = totals[t]
        print(f"  t={t:.2f} rules alone:  {line(b)}\n         rules+reader: {line(m)}")
    return 0


def line(s: Counter) -> str:
    n = s["n"] or 1
    return (f"category {s['category']}/{s['n']} {s['category'] / n:.1%}  listing {s['listing'] / n:.1%}  "
            f"scope {s['scope'] / n:.1%}  false_listings {s['false_listings']}  missed {s['missed_listings']}  "
            f"looser_than_label {s['looser']}")


if __name__ == "__main__":
    raise SystemExit(main())
