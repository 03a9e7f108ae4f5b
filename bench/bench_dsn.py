"""How well `relay dsn parse` reads the labelled bounce corpus (tests/data/bounces).

    python bench/bench_dsn.py [--part tune|holdout|all] [--failures]
    python bench/bench_dsn.py --world [--failures]
    python bench/bench_dsn.py --reasons [--world]

`--reasons` (tune part only, or the world set with --world) measures how our reading of each labelled
recipient (the funnel's category and the printed `hard`) maps to the reason its label gives: sisimai's
`reason` on the tune part's sisimai files; on the world set, which labels no reason, the reason its
`hard_why` names ("sisimai: userunknown") where it names one. It prints, per labelled reason, how
many lines ours reads as each category with `hard` true or false, and the lines where the label's
reason is a hard one (userunknown, hostunknown, hasmoved, notaccept unless temporary) and ours is not
hard, or the other way round. Never over the holdout (its labels are not read by tuning).

`--world` reads the second, independent set instead (tests/data/bounces/world: real bounces from other
bounce parsers' test data, labelled by reading each message; see its README.md). Its figures:
- recipient: a labelled address of a `bounce` is an output line's `recipient` or `original_recipient`
  (the set labels the address the message says failed; where a DSN gives both, either is right).
- status: that line's `status` equals the label (null included). Labels without an address are left out.
- spurious: output lines of a `bounce` naming an address that is not a labelled one (a good address
  reported as failed is the worst error: it can put that address on the bounce list).
- false failures: a `none` message (auto-reply, ordinary mail) that yields any line, or a `delay`
  warning that yields a line classified permanent.
- hard: a labelled address of a `bounce` whose label `hard` (the set's README: the address or its
  domain does not exist or has moved, in a reader's meaning that ignores the stage, where the field,
  sisimai's HardBounce, calls a "no such user" of unknown stage without X.1.x Filtered) equals the
  `hard` field of the output line
  naming it (not found: false). `hard_false_positives`: ours hard, the label not (the worse error:
  a good address treated as gone); `hard_listed_not_hard`: of those, the ones this report lists at
  once (bounce_list `list`). `listed_not_hard`: every address whose label is not hard that this report
  lists at once, whatever our `hard` field says (a good address listed is the worst error; a listing
  with `hard` false is one `hard_listed_not_hard` cannot see). Labels without an address are left out.

Prints a human summary on stderr and one JSON object on stdout:
{"bench": "dsn", "parts": {"tune": {...}, "holdout": {...}, "all": {...}}}

For every labelled recipient (labels.yaml), against what `relay dsn parse` prints for its file
(the same `records()` the command prints, with the shipped policies):
- recipient: an output line names the labelled address (case-insensitive). Labels without an
  address (the source could not tell) are left out of this figure.
- status: the output line for that address carries the labelled enhanced code. Where the label's
  status is one sisimai made up (`status_pseudo`, not in the message) or null, the right answer is
  null: we report only codes the message carries. A recipient not found counts as wrong.
- hard: the label `hard` means two things (README of the corpus): sisimai's HardBounce ("the address
  or its domain does not exist": userunknown, hostunknown, hasmoved, notaccept; not suspend, filtered,
  mailboxfull, ...) and crisp's `data.error.permanent` (any permanent failure). Each is compared with
  the field of ours that says the same thing:
  - `hard_agreement` (the label's meaning): a sisimai label == the `hard` field `relay dsn parse`
    prints (docs/bounces-in.md: a permanent refusal saying that the address or its domain does not
    exist or has moved; false for unconfirmed (but a "no such user" under X.2.1 at RCPT is hard),
    for a "no such user" whose report names no command and whose code is not X.1.x (sisimai's
    Filtered, since branch dsn-sisimai), disabled, full, policy, spam and temporary failures and
    DNS glitches; sisimai computes its label
    from its reason alone: userunknown, hostunknown, hasmoved, notaccept unless temporary; since
    branch sisimai-hard (policies.sisimai_hard) also for what its source calls UserUnknown, HasMoved
    or NotAccept where we doubted it: a status 5.1.0/5.1.1/5.1.3 at any stage or from the report, a
    "no such user" at RCPT whatever the code, 4.1.6, 5.3.2, a local delivery agent's words), a crisp
    label == classification.permanent. A crisp label that is neither permanent
    nor temporary is crisp's "cannot tell" (README: crisp sets both false then, e.g. a Postfix report
    that gave up after connection timeouts): not judged (`hard_not_judged`).
  - `hard_agreement_listing`: the definition used until 2026-12-01, kept for comparison. It compared
    a sisimai label with the listing decision: hard == classification.bounce_list is `list` or `count`
    and the category is not `other`. That reads "counts towards listing" as "does not exist": a
    disabled or suspended mailbox (sisimai `suspend`, not hard) and a DNS lookup that failed
    (`networkerror`, not hard) count towards listing and were scored hard, while an unconfirmed "no such
    user" (which counts too) was scored hard whatever the label. crisp: as above, every crisp label
    judged. docs/benchmarks.md, "Bounce parsing", says why it was replaced.
  - `hard_agreement_list` (strict): hard == this one report lists the address (bounce_list == "list").
  A third figure reads the `hard` field for every file, crisp's included:
  - `hard_agreement_field`: label hard == record["hard"]. For crisp files, whose label is "any
    permanent failure", this field disagrees by design on a permanent refusal that is not about the
    address's existence (spam, a full mailbox, a disabled account).
  Issue 13's target ("agrees with the `hard` label on >= 95%") does not say which field; the first is
  the one that compares like with like.
- `crisp_permanent`: crisp's label on its own terms, [right, judged]: label `hard` (crisp's
  `data.error.permanent`) == classification.permanent, over every crisp file; `crisp_permanent_5xx` the
  same over the files whose label has a 5xx reply code (crisp's `permanent` and `temporary` are both
  false where crisp cannot tell, e.g. a Postfix report that gave up after connection timeouts).
  ARF complaints are not bounces (hard is false for all of them) and have their own rule: left out.
  A recipient not found counts as wrong.

The split (bench/bounce_corpus.py) was fixed before any tuning: the parser was tuned on `tune`
only; `holdout` says how it does on bounces it was not tuned on.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bounce_corpus  # noqa: E402
from relay.commands.dsn import records  # noqa: E402
from relay.intake.dsn import parse_bounce  # noqa: E402
from relay.policies import shipped_policies  # noqa: E402


def expected_status(label) -> str | None:
    return None if label.status_pseudo else label.status


def crisp_could_not_tell(label) -> bool:
    """crisp labelled the failure neither permanent nor temporary: its "cannot tell" (corpus README)."""
    return label.file.startswith("crisp-") and not label.hard and label.temporary is False


def hard_decision(record: dict | None, label=None, strict: bool = False) -> bool | None:
    """Our `hard` for a label, by the label's meaning (see the module docstring): a sisimai label is
    compared with the `hard` field, a crisp label with classification.permanent. None when there is
    no decision to compare (a complaint; crisp could not tell). `strict`: this report lists the address."""
    if label is not None and crisp_could_not_tell(label) and not strict:
        return None
    if record is None:
        return False  # not found: no decision is a wrong one
    classification = record.get("classification") or {}
    decision = classification.get("bounce_list")
    if decision is None:
        return None
    if strict:
        return decision == "list"
    if label is not None and label.file.startswith("crisp-"):
        return bool(classification.get("permanent"))
    return bool(record.get("hard"))


def hard_decision_listing(record: dict | None, label=None) -> bool | None:
    """The definition before 2026-12-01 (`hard_agreement_listing`): a sisimai label compared with the
    listing decision (bounce_list `list` or `count`, category not `other`), every crisp label with
    classification.permanent."""
    if record is None:
        return False
    classification = record.get("classification") or {}
    decision = classification.get("bounce_list")
    if decision is None:
        return None
    if label is not None and label.file.startswith("crisp-"):
        return bool(classification.get("permanent"))
    return decision in ("list", "count") and classification.get("category") != "other"


def evaluate(corpus: Path = bounce_corpus.CORPUS) -> dict:
    """Per labelled recipient: (part, label, record or None)."""
    entries = bounce_corpus.load_labels(corpus)
    parts = bounce_corpus.split(entries)
    policies = shipped_policies()
    out = []
    by_file: dict[str, list[dict]] = {}
    for entry in entries:
        report = parse_bounce((corpus / entry["file"]).read_bytes())
        by_file[entry["file"]] = records(report, entry["file"], policies)
    for label in bounce_corpus.recipients(entries):
        rows = by_file[label.file]
        record = None
        if label.recipient is not None:
            record = next((r for r in rows if (r["recipient"] or "").lower() == label.recipient.lower()), None)
        elif label.index < len(rows):
            record = rows[label.index]
        out.append((parts[label.file], label, record))
    return {"results": out, "records": by_file, "parts": parts}


def figures(results, part: str) -> dict:
    chosen = [(lab, rec) for p, lab, rec in results if part == "all" or p == part]
    rcpt = [(lab, rec) for lab, rec in chosen if lab.recipient is not None]
    rcpt_ok = sum(1 for lab, rec in rcpt if rec is not None)
    status_ok = sum(1 for lab, rec in chosen if rec is not None and rec["status"] == expected_status(lab))
    bounces = [(lab, rec) for lab, rec in chosen if lab.kind == "bounce"]
    decided = any(rec is not None and hard_decision(rec) is not None for lab, rec in bounces)
    judged = [(lab, hard_decision(rec, lab)) for lab, rec in bounces] if decided else []
    not_judged = sum(1 for lab, ours in judged if ours is None and crisp_could_not_tell(lab))
    judged = [(lab, ours) for lab, ours in judged if ours is not None]
    listing = [(lab, hard_decision_listing(rec, lab)) for lab, rec in bounces] if decided else []
    listing = [(lab, ours) for lab, ours in listing if ours is not None]
    strict = [(lab, hard_decision(rec, lab, strict=True)) for lab, rec in bounces] if decided else []
    strict = [(lab, ours) for lab, ours in strict if ours is not None]
    field = [(lab, bool(rec["hard"]) if rec is not None else False) for lab, rec in bounces]
    field_ok = sum(1 for lab, ours in field if ours == lab.hard)
    hard_ok = sum(1 for lab, ours in judged if ours == lab.hard)
    listing_ok = sum(1 for lab, ours in listing if ours == lab.hard)
    strict_ok = sum(1 for lab, ours in strict if ours == lab.hard)
    fails: dict[str, Counter] = defaultdict(Counter)
    for lab, rec in chosen:
        if lab.recipient is not None and rec is None:
            fails["recipient"][lab.family] += 1
        if rec is None or rec["status"] != expected_status(lab):
            fails["status"][lab.family] += 1
    for lab, ours in judged:
        if ours != lab.hard:
            fails["hard"][lab.family] += 1
    for lab, ours in listing:
        if ours != lab.hard:
            fails["hard (listing definition)"][lab.family] += 1
    for lab, ours in field:
        if ours != lab.hard:
            fails["hard field"][lab.family] += 1
    crisp = [(lab, bool(((rec or {}).get("classification") or {}).get("permanent")))
             for lab, rec in bounces if lab.file.startswith("crisp-")]
    crisp_5xx = [(lab, ours) for lab, ours in crisp if (lab.code or "").startswith("5")]
    listed_not_hard = sum(1 for lab, ours in strict if ours and not lab.hard)
    return {
        "recipients": len(chosen),
        "recipient_accuracy": round(rcpt_ok / len(rcpt), 4) if rcpt else None,
        "recipient_right": rcpt_ok, "recipient_labelled": len(rcpt),
        "status_accuracy": round(status_ok / len(chosen), 4) if chosen else None,
        "status_right": status_ok,
        "hard_agreement": round(hard_ok / len(judged), 4) if judged else None,
        "hard_right": hard_ok, "hard_judged": len(judged), "hard_not_judged": not_judged,
        "hard_agreement_listing": round(listing_ok / len(listing), 4) if listing else None,
        "hard_listing_right": listing_ok, "hard_listing_judged": len(listing),
        "hard_agreement_list": round(strict_ok / len(strict), 4) if strict else None,
        "hard_agreement_field": round(field_ok / len(field), 4) if field else None,
        "hard_field_right": field_ok, "hard_field_judged": len(field),
        # The same per source: the crisp labels mean "permanent", so the sisimai part is the one
        # where the field and the label say the same kind of thing.
        "hard_field_by_source": {src: [sum(1 for lab, ours in field if lab.file.startswith(src) and ours == lab.hard),
                                       sum(1 for lab, _ in field if lab.file.startswith(src))]
                                 for src in ("sisimai", "crisp")},
        "listed_but_not_hard": listed_not_hard,
        "crisp_permanent": [sum(1 for lab, ours in crisp if ours == lab.hard), len(crisp)],
        "crisp_permanent_5xx": [sum(1 for lab, ours in crisp_5xx if ours == lab.hard), len(crisp_5xx)],
        "failures": {k: dict(v.most_common()) for k, v in fails.items()},
    }


WORLD = bounce_corpus.CORPUS / "world"


def evaluate_world(corpus: Path = WORLD) -> dict:
    """Per message of the world set: (entry, the lines `relay dsn parse` prints for it)."""
    import yaml
    entries = yaml.safe_load((corpus / "labels.yaml").read_text(encoding="utf-8"))
    policies = shipped_policies()
    return {"results": [(entry, records(parse_bounce((corpus / entry["file"]).read_bytes()), entry["file"], policies))
                        for entry in entries]}


def _names(record: dict) -> set[str]:
    return {a.lower() for a in (record.get("recipient"), record.get("original_recipient")) if a}


def world_figures(results) -> dict:
    rcpt_labelled = rcpt_right = status_right = 0
    spurious: list[tuple[str, str]] = []
    false_failures: list[str] = []
    misreads: list[str] = []
    hard_judged = hard_right = 0
    hard_wrong: list[str] = []
    hard_fp = hard_listed = 0
    listed_not_hard: list[str] = []
    for entry, rows in results:
        labels = entry["recipients"]
        if entry["kind"] == "none":
            if rows:
                false_failures.append(entry["file"])
            continue
        if entry["kind"] == "delay":
            if any((r.get("classification") or {}).get("permanent") for r in rows):
                false_failures.append(entry["file"])
            continue
        wanted = {lab["recipient"].lower() for lab in labels if lab["recipient"]}
        for row in rows:
            if not (_names(row) & wanted):
                spurious.append((entry["file"], row["recipient"]))
        for lab in labels:
            if not lab["recipient"]:
                continue
            rcpt_labelled += 1
            row = next((r for r in rows if lab["recipient"].lower() in _names(r)), None)
            if row is not None:
                rcpt_right += 1
            if row is not None and row["status"] == lab["status"]:
                status_right += 1
            if "hard" in lab:
                hard_judged += 1
                ours = bool(row is not None and row.get("hard"))
                if not lab["hard"] and row is not None and \
                        (row.get("classification") or {}).get("bounce_list") == "list":
                    listed_not_hard.append(f"{entry['file']} {lab['recipient']} ({lab.get('hard_why') or ''}) "
                                           f"| ours hard={row.get('hard')} "
                                           f"{(row.get('classification') or {}).get('category')}")
                if ours == lab["hard"]:
                    hard_right += 1
                else:
                    listed = row is not None and (row.get("classification") or {}).get("bounce_list") == "list"
                    hard_fp += ours
                    hard_listed += ours and listed
                    hard_wrong.append(f"{entry['file']} {lab['recipient']} label hard={lab['hard']} "
                                      f"({lab.get('hard_why') or ''}) | ours "
                                      + (json.dumps({"hard": row.get("hard"), "stage": row.get("stage"),
                                                     "status": row["status"],
                                                     "category": (row.get("classification") or {}).get("category"),
                                                     "bounce_list": (row.get("classification") or {}).get("bounce_list"),
                                                     "diagnostic": (row["diagnostic"] or "")[:120]}) if row else "none"))
            if row is None or row["status"] != lab["status"]:
                misreads.append(f"{entry['file']} {lab['recipient']} label status={lab['status']} | ours "
                                + (json.dumps({"status": row["status"], "code": row["code"],
                                               "diagnostic": (row["diagnostic"] or "")[:100]}) if row else "none"))
    bounces = sum(1 for e, _ in results if e["kind"] == "bounce")
    not_failures = len(results) - bounces
    return {
        "messages": len(results), "bounces": bounces, "not_failures": not_failures,
        "families": len({e["family"] for e, _ in results}),
        "recipient_accuracy": round(rcpt_right / rcpt_labelled, 4), "recipient_right": rcpt_right,
        "recipient_labelled": rcpt_labelled,
        "status_accuracy": round(status_right / rcpt_labelled, 4), "status_right": status_right,
        "spurious_recipients": len(spurious), "spurious_in_messages": len({f for f, _ in spurious}),
        "false_failures": len(false_failures),
        "hard_agreement": round(hard_right / hard_judged, 4) if hard_judged else None,
        "hard_right": hard_right, "hard_judged": hard_judged,
        "hard_false_positives": hard_fp, "hard_listed_not_hard": hard_listed,
        "listed_not_hard": len(listed_not_hard),
        "details": {"spurious": spurious, "false_failures": false_failures, "misreads": misreads,
                    "hard": hard_wrong, "listed": listed_not_hard},
    }


def main_world(show_failures: bool, match: list[str] | None = None) -> int:
    results = evaluate_world()["results"]
    if match:
        results = [(e, rows) for e, rows in results if any(fnmatch.fnmatch(e["file"], m) for m in match)]
    f = world_figures(results)
    print(f"world    messages {f['messages']} ({f['bounces']} bounces, {f['not_failures']} not failures; "
          f"{f['families']} MTA families)  right recipient {f['recipient_accuracy']:.2%} "
          f"({f['recipient_right']}/{f['recipient_labelled']})  right status {f['status_accuracy']:.2%} "
          f"({f['status_right']}/{f['recipient_labelled']})  spurious recipients {f['spurious_recipients']} "
          f"(in {f['spurious_in_messages']} bounces)  false failures {f['false_failures']}/{f['not_failures']}",
          file=sys.stderr)
    if f["hard_judged"]:
        print(f"world    hard agreement {f['hard_agreement']:.2%} ({f['hard_right']}/{f['hard_judged']})  "
              f"ours hard, label not {f['hard_false_positives']} (listed at once {f['hard_listed_not_hard']})  "
              f"listed at once, label not hard {f['listed_not_hard']}",
              file=sys.stderr)
    details = f.pop("details")
    if show_failures:
        for line in details["misreads"]:
            print("  misread  " + line, file=sys.stderr)
        for file, address in details["spurious"]:
            print(f"  spurious {file} {address}", file=sys.stderr)
        for file in details["false_failures"]:
            print(f"  false failure {file}", file=sys.stderr)
        for line in details["hard"]:
            print("  hard     " + line, file=sys.stderr)
        for line in details["listed"]:
            print("  listed   " + line, file=sys.stderr)
    print(json.dumps({"bench": "dsn", "parts": {"world": f}}))
    return 0


HARD_REASONS = frozenset({"userunknown", "hostunknown", "hasmoved", "notaccept"})


def reason_rows(world: bool) -> list[tuple[str, str, str, bool, dict | None]]:
    """(file, recipient, labelled reason, hard by that reason, our record) for every labelled recipient
    with a reason: the tune part's sisimai labels (hard: the label's, sisimai's HardBounce of that
    reason: a temporary NotAccept is not hard), or the world labels whose hard_why names sisimai's
    reason (hard: the reason is one of HARD_REASONS)."""
    import re
    out = []
    if world:
        for entry, rows in evaluate_world()["results"]:
            if entry["kind"] != "bounce":
                continue
            for lab in entry["recipients"]:
                named = re.search(r"sisimai: ([a-z]+)", lab.get("hard_why") or "")
                if not lab["recipient"] or not named:
                    continue
                row = next((r for r in rows if lab["recipient"].lower() in _names(r)), None)
                out.append((entry["file"], lab["recipient"], named.group(1), named.group(1) in HARD_REASONS, row))
        return out
    for part, lab, rec in evaluate()["results"]:
        if part == "tune" and lab.kind == "bounce" and lab.file.startswith("sisimai-") and lab.reason:
            out.append((lab.file, lab.recipient, lab.reason, lab.hard, rec))
    return out


def main_reasons(world: bool) -> int:
    rows = reason_rows(world)
    table: dict[str, Counter] = defaultdict(Counter)
    crossed = []
    for file, recipient, reason, reason_hard, rec in rows:
        category = ((rec or {}).get("classification") or {}).get("category") if rec else "(not found)"
        hard = bool(rec and rec.get("hard"))
        table[reason][f"{category}{' hard' if hard else ''}"] += 1
        if hard != reason_hard:
            crossed.append(f"  {file} {recipient} reason={reason} | ours {category} hard={hard} stage="
                           f"{(rec or {}).get('stage')} status={(rec or {}).get('status')} "
                           f"remote_mta={(rec or {}).get('remote_mta')} {((rec or {}).get('diagnostic') or '')[:100]!r}")
    name = "world" if world else "tune"
    agree = len(rows) - len(crossed)
    print(f"{name}: {len(rows)} recipients with a labelled reason; ours hard == the reason's: "
          f"{agree}/{len(rows)}", file=sys.stderr)
    for reason in sorted(table):
        print(f"  {reason:16} " + ", ".join(f"{k} {v}" for k, v in table[reason].most_common()), file=sys.stderr)
    print(f"{name}: hard-crossing readings:", file=sys.stderr)
    for line in crossed:
        print(line, file=sys.stderr)
    print(json.dumps({"bench": "dsn-reasons", "part": name, "recipients": len(rows), "agree": agree,
                      "table": {k: dict(v) for k, v in table.items()}}))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["tune", "holdout", "all"], help="only this part (default: all three)")
    parser.add_argument("--failures", action="store_true", help="list every wrong recipient on stderr")
    parser.add_argument("--world", action="store_true",
                        help="read the independent world set (tests/data/bounces/world) instead")
    parser.add_argument("--match", action="append", metavar="GLOB",
                        help="with --world: only the files whose name matches (repeatable), e.g. 'phpbh-*'")
    parser.add_argument("--reasons", action="store_true",
                        help="our reading against the labelled reason: the tune part (or --world) only")
    args = parser.parse_args()
    if args.reasons:
        if args.part not in (None, "tune"):
            parser.error("--reasons reads the tune part (or --world) only, never the holdout")
        return main_reasons(args.world)
    if args.world:
        return main_world(args.failures, args.match)
    evaluation = evaluate()
    results = evaluation["results"]
    names = [args.part] if args.part else ["tune", "holdout", "all"]
    parts = {name: figures(results, name) for name in names}
    for name, f in parts.items():
        print(f"{name:8} recipients {f['recipients']:4}  right recipient {f['recipient_accuracy']:.2%} "
              f"({f['recipient_right']}/{f['recipient_labelled']})  right status {f['status_accuracy']:.2%}  "
              f"hard agreement " + (f"{f['hard_agreement']:.2%} ({f['hard_right']}/{f['hard_judged']}; "
                                    f"{f['hard_not_judged']} not judged: crisp could not tell; "
                                    f"by the listing decision, the definition before 2026-12-01: "
                                    f"{f['hard_agreement_listing']:.2%} "
                                    f"({f['hard_listing_right']}/{f['hard_listing_judged']}); "
                                    f"strict list: {f['hard_agreement_list']:.2%}, "
                                    f"listed but not hard: {f['listed_but_not_hard']}; "
                                    f"`hard` field: {f['hard_agreement_field']:.2%} "
                                    f"({f['hard_field_right']}/{f['hard_field_judged']}; sisimai "
                                    f"{f['hard_field_by_source']['sisimai'][0]}/{f['hard_field_by_source']['sisimai'][1]}, "
                                    f"crisp {f['hard_field_by_source']['crisp'][0]}/{f['hard_field_by_source']['crisp'][1]}); "
                                    f"crisp `permanent` == crisp label: {f['crisp_permanent'][0]}/{f['crisp_permanent'][1]}, "
                                    f"with a 5xx code {f['crisp_permanent_5xx'][0]}/{f['crisp_permanent_5xx'][1]})"
                                    if f["hard_agreement"] is not None else "n/a"), file=sys.stderr)
        for kind, fams in f["failures"].items():
            print(f"           wrong {kind}: " + ", ".join(f"{k} {v}" for k, v in fams.items()), file=sys.stderr)
    if args.failures:
        for part, lab, rec in results:
            if args.part and args.part != "all" and part != args.part:
                continue
            ours = hard_decision(rec, lab)
            ours_listing = hard_decision_listing(rec, lab)
            field_wrong = lab.kind == "bounce" and (rec is not None and rec["hard"]) != lab.hard
            if rec is None or rec["status"] != expected_status(lab) or field_wrong or (
                    lab.kind == "bounce" and ((ours is not None and ours != lab.hard)
                                              or (ours_listing is not None and ours_listing != lab.hard))):
                print(f"{part:7} {lab.file} {lab.recipient} label status={lab.status} hard={lab.hard} "
                      f"reason={lab.reason} | ours " + (json.dumps({k: rec[k] for k in ("recipient", "status")}
                                                                  | {"hard": rec["hard"],
                                                                     "bounce_list": (rec.get("classification") or {}).get("bounce_list"),
                                                                     "category": (rec.get("classification") or {}).get("category"),
                                                                     "hard_agrees": None if lab.kind != "bounce" or ours is None else ours == lab.hard,
                                                                     "listing_def_agrees": None if lab.kind != "bounce" or ours_listing is None else ours_listing == lab.hard,
                                                                     "diagnostic": (rec["diagnostic"] or "")[:120]})
                                                        if rec else "none"), file=sys.stderr)
    print(json.dumps({"bench": "dsn", "parts": parts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
