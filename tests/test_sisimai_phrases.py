"""sisimai's phrase lists per bounce reason, as replies (tests/data/sisimai_phrases/): a check of
how our rules generalise beyond the texts they were tuned on. Each phrase must get a category
that carries its sisimai reason's meaning (mapping.yaml), the listing decision and the `hard`
field the mapping gives; above all, no phrase of a reason that is not about the address's
existence may list it. Strict xfails carry their reason in mapping.yaml."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from relay.classify import CATEGORIES
from tests.support.corpus import BOUNCE_LIST, STAGES, load_shipped_policies

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts" / "corpus"))
import sisimai_phrases  # noqa: E402

ENTRIES = sisimai_phrases.load()
POLICIES = load_shipped_policies()


def test_replies_are_built_from_the_phrase_lists_and_the_mapping():
    # replies.yaml is generated: a hand edit there (or a mapping change not rebuilt) fails here.
    assert sisimai_phrases.build() == ENTRIES
    assert len(ENTRIES) >= 500
    for e in ENTRIES:
        assert e["category"] in CATEGORIES and set(e["also"]) <= CATEGORIES
        assert e["bounce_list"] in BOUNCE_LIST and e["stage"] in STAGES | {None}
        assert e["source"].startswith("go-sisimai reason/why-")


def _params():
    for i, e in enumerate(ENTRIES):
        marks = [pytest.mark.xfail(strict=True, reason=e["xfail"])] if e.get("xfail") else []
        yield pytest.param(e, id=f"{i:03d}-{e['reason']}-{e['reply'][:40]}", marks=marks)


@pytest.mark.parametrize("entry", _params())
def test_phrase_gets_the_mapped_verdict(entry):
    j = sisimai_phrases.verdict(POLICIES, entry)
    c = j.classification
    assert c.category in [entry["category"], *entry["also"]], (c.category, c.rule)
    assert j.bounce_list == entry["bounce_list"], (j.bounce_list, c.rule)
    assert j.hard is entry["hard"], (j.hard, c.rule)


def test_no_phrase_lists_an_address_its_reason_does_not_condemn():
    # The worst error (BRIEF): a good address on the list. Whatever the categories, only
    # reasons whose mapping lists may list, xfails included.
    listed = [e["reply"] for e in ENTRIES
              if e["bounce_list"] != "list" and sisimai_phrases.verdict(POLICIES, e).bounce_list == "list"]
    assert listed == []
