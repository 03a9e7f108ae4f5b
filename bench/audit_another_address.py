"""Issue #8 audit: every way a reply lists a recipient at once when it names no recipient address of the
transaction but names another address, and every at-once listing whose category is not unknown_recipient
or syntax_error. Reads the training corpus (tests/data/corpus/train), the DSN corpus's tune part (the
fixed split of bench/bounce_corpus.py; held-out files are never opened) and the DSN world set.

    PYTHONPATH=$PWD python3 bench/audit_another_address.py [--examples N]

Three measures:
- as judged: the corpus bench's own judgement (its recipients are the addresses the reply names), and
  `relay dsn parse`'s records (Final-Recipient, its aliases and the report's original sender);
- counterfactual (training corpus): each reply that names an address, judged with a recipient it does not
  name (nobody@recipient.invalid), at its labelled stage and at an unknown stage: the forms of text that
  would list a recipient they do not speak of, were the address in them another's.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bounce_corpus  # noqa: E402
from relay.address import addresses_in  # noqa: E402
from relay.classify import unwrapped_text  # noqa: E402
from relay.decision import Reply  # noqa: E402
from relay.intake.dsn import parse_bounce  # noqa: E402
from relay.policies import (_ADDRESS_FORM, _same_mailbox, about_another_address,  # noqa: E402
                            leading_address, names_the_recipient, shipped_policies)
from tests.support.corpus import judge as corpus_judge, load_part  # noqa: E402

IMMEDIATE = ("unknown_recipient", "syntax_error")
NOBODY = "nobody@recipient.invalid"


def path_of(text: str, stage, recipients, aliases, sender, category) -> str:
    """Why a reply that names no recipient but another address is judged the recipient's."""
    known = [a for a in (*recipients, *aliases) if a]
    lead = leading_address(text)
    if lead is None:
        return "another address named, not leading (no rule needs the recipient named)"
    if lead == "":
        return "leads with <> (null reverse-path)"
    if _same_mailbox(lead, known):
        return "leads with the recipient spelt another way"
    if about_another_address(text, recipients, aliases, sender):
        if stage is None and category not in _ADDRESS_FORM:
            return "unknown stage, leads with another address, a mailbox category (_judged's forward exception)"
        return f"leads with another address at stage {stage} (about_another_address true, yet listed)"
    if "recipient address rejected" in text.lower():
        return "leads with another address, 'Recipient address rejected' (Postfix says it of RCPT TO only)"
    return "leads with an address sharing the recipient's local part or domain (read as the recipient's)"


class Tally:
    def __init__(self, name):
        self.name, self.judged, self.listed = name, 0, 0
        self.paths, self.other_category = Counter(), Counter()
        self.examples: dict[str, list[str]] = {}
        self.another_hits = 0

    def add(self, text, stage, recipients, aliases, sender, judgement, where):
        self.judged += 1
        c = judgement.classification
        known = [a for a in (*recipients, *aliases) if a]
        lead = leading_address(text)
        if (stage is None and c.category not in _ADDRESS_FORM and lead is not None and recipients
                and about_another_address(text, recipients, aliases, sender)):
            self.another_hits += 1
        if judgement.bounce_list != "list":
            return
        self.listed += 1
        if c.category not in IMMEDIATE:
            key = f"{c.category} ({c.rule})"
            self.other_category[key] += 1
            self.examples.setdefault(key, []).append(f"{where}: {text[:140]!r}")
        if names_the_recipient(text, recipients, aliases):
            return
        if any(a.lower() in text.lower() for a in known):
            return  # the recipient inside a longer run (X.400 "dda:SMTP=a@x", Sendmail's "a@x...User")
        others = [a for a in addresses_in(text) if not _same_mailbox(a, known)]
        if not others:
            return
        key = path_of(text, stage, recipients, aliases, sender, c.category)
        self.paths[key] += 1
        self.examples.setdefault(key, []).append(f"{where} stage={stage} {c.category} ({c.rule}): {text[:140]!r}")

    def show(self, examples: int):
        print(f"\n## {self.name}: {self.judged} judged, {self.listed} listed at once; "
              f"unknown stage, another address leads, category not of an address's form: reached {self.another_hits} times")
        print(f"- listed at once although naming no recipient but another address: {sum(self.paths.values())}")
        for key, n in self.paths.most_common():
            print(f"  - {n:4}  {key}")
            for line in self.examples[key][:examples]:
                print(f"          {line}")
        print(f"- listed at once with a category other than {'/'.join(IMMEDIATE)}: {sum(self.other_category.values())}")
        for key, n in self.other_category.most_common():
            print(f"  - {n:4}  {key}")
            for line in self.examples[key][:examples]:
                print(f"          {line}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=3)
    args = parser.parse_args()
    policies = shipped_policies()
    from relay.commands.dsn import judge as dsn_judge

    # The training corpus as the bench judges it.
    train = load_part("train")
    bench = Tally("training corpus, as the bench judges it (recipients: the addresses the reply names)")
    import re
    address = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
    for entry in train:
        reply = Reply.parse(entry["reply"])
        text = unwrapped_text(reply)
        recipients = tuple(dict.fromkeys(address.findall(text)))
        j = policies.judge(reply, stage=entry.get("stage"), recipients=recipients)
        bench.add(text, entry.get("stage"), recipients, (), None, j, entry["_file"])
    bench.show(args.examples)

    # Counterfactual: a recipient the reply does not name.
    for label, stage_of in (("its labelled stage", lambda e: e.get("stage")), ("unknown stage", lambda e: None)):
        cf = Tally(f"training corpus, counterfactual: recipient {NOBODY}, {label} (replies naming an address)")
        for entry in train:
            reply = Reply.parse(entry["reply"])
            text = unwrapped_text(reply)
            if not list(addresses_in(text)):
                continue
            j = policies.judge(reply, stage=stage_of(entry), recipients=(NOBODY,))
            cf.add(text, stage_of(entry), (NOBODY,), (), None, j,
                   f"{entry['_file']} label={entry['bounce_list']}")
        cf.show(args.examples)

    # The DSN corpus: tune part only (held-out files never parsed), and the world set.
    import yaml
    entries = bounce_corpus.load_labels()
    parts = bounce_corpus.split(entries)
    sets = (("DSN tune part", bounce_corpus.CORPUS, [e for e in entries if parts[e["file"]] == "tune"]),
            ("DSN world set", bounce_corpus.CORPUS / "world",
             yaml.safe_load((bounce_corpus.CORPUS / "world" / "labels.yaml").read_text(encoding="utf-8"))))
    for name, corpus, chosen in sets:
        t = Tally(f"{name} ({len(chosen)} messages), `relay dsn parse` records")
        for entry in chosen:
            report = parse_bounce((corpus / entry["file"]).read_bytes())
            if report.kind != "bounce":
                continue
            for failed in report.recipients:
                rcpt = failed.recipient
                j = dsn_judge(policies, failed, report.original_sender)
                text = unwrapped_text(failed.reply())
                t.add(text, failed.stage, [rcpt] if rcpt else [], failed.aliases(rcpt) if rcpt else (),
                      report.original_sender, j, entry["file"])
        t.show(args.examples)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
