"""    python3 scripts/corpus/build_world.py CANDIDATES tests/data/corpus/train/OUT.yaml
    (world_candidates.py -> world.yaml, world2_candidates.py -> world2.yaml,
     world3_candidates.py -> world3.yaml, world4_candidates.py -> world4.yaml,
     world5_candidates.py -> world5.yaml, world6_candidates.py -> world6.yaml,
     world7_candidates.py -> world7.yaml, world8_candidates.py -> world8.yaml,
     world9_candidates.py -> world9.yaml,
     world10_candidates.py -> world10.yaml,
     world11_candidates.py -> world11.yaml,
     world12_candidates.py -> world12.yaml,
     world13_candidates.py -> world13.yaml,
     world14_candidates.py -> world14.yaml,
     world15_candidates.py -> world15.yaml,
     world16_candidates.py -> world16.yaml,
     world17_candidates.py -> world17.yaml,
     world18_candidates.py -> world18.yaml,
     world19_candidates.py -> world19.yaml,
     world20_candidates.py -> world20.yaml,
     world21_candidates.py -> world21.yaml,
     world22_candidates.py -> world22.yaml,
     world23_candidates.py -> world23.yaml,
     world24_candidates.py -> world24.yaml,
     world25_candidates.py -> world25.yaml,
     world26_candidates.py -> world26.yaml,
     world27_candidates.py -> world27.yaml,
     world28_candidates.py -> world28.yaml)

Turn the candidate list into tests/data/corpus/train/world.yaml, dropping exact
duplicates and any near-duplicate (same near_duplicate_key) of an entry already in the
corpus: a key shared with the held-out part drops the candidate (never printed)."""
import sys, yaml, importlib.util
from pathlib import Path
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "scripts" / "corpus"))
from split import near_duplicate_key
from relay.classify import effective_enhanced
from relay.decision import Reply
from tests.support.corpus import load_part
spec = importlib.util.spec_from_file_location("c", sys.argv[1]); c = importlib.util.module_from_spec(spec); spec.loader.exec_module(c)

def permanent(text):
    r = Reply.parse(text)
    if 400 <= r.code < 600: return r.code >= 500
    e = effective_enhanced(r)
    return r.code == 0 and bool(e) and e[0] == "5"

def listing(cat, scope, perm, stage=None, reply=""):
    """The labelling rule of tests/data/corpus/README.md ("Format", bounce_list), with
    issue 13's unconfirmed refusals (scripts/corpus/relabel_unconfirmed.py)."""
    if not perm or scope != "recipient": return "never"
    if cat in ("unknown_recipient", "syntax_error"):
        if stage == "data": return "count"
        enhanced = Reply.parse(reply).enhanced or ""
        if cat == "unknown_recipient" and enhanced[2:] in ("2.1", "7.1"): return "count"
        return "list"
    if cat in ("mailbox_disabled", "routing_dns", "other"): return "count"
    return "never"

train = [e for e in load_part("train") if e["_file"] != f"train/{Path(sys.argv[2]).name}"]
held_keys = {near_duplicate_key(e["reply"]) for e in load_part("heldout")}
train_keys = {near_duplicate_key(e["reply"]) for e in train}
seen = set(); out = []; dropped_held = dropped_train = 0
for prov, reply, cat, scope, stage, src in c.C:
    k = near_duplicate_key(reply)
    if k in held_keys: dropped_held += 1; continue
    if k in train_keys or k in seen: dropped_train += 1; continue
    seen.add(k); p = permanent(reply)
    out.append(dict(provider=prov, reply=reply, category=cat, scope=scope, bounce_list=listing(cat, scope, p, stage, reply),
                    stage=stage, permanent=p, source=src))
hdr = "# Part of the reply corpus: see tests/data/corpus/README.md for the format, sources and split.\n"
open(sys.argv[2], "w").write(hdr + yaml.safe_dump(out, sort_keys=False, allow_unicode=True, width=120))
print(f"kept {len(out)}; dropped {dropped_held} (near-duplicate of a held-out entry), {dropped_train} (near-duplicate of training or of each other)")
