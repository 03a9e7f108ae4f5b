"""The corpus of real replies (tests/data/corpus/): its shape, its split, and the
rules measured on it. See tests/data/corpus/README.md."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from relay.classify import CATEGORIES, effective_enhanced
from relay.decision import Reply
from tests.support.corpus import BOUNCE_LIST, ENTRY_KEYS, SCOPES, STAGES, load_part

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts" / "corpus"))
from split import near_duplicate_key  # noqa: E402

TRAIN = load_part("train")
HELD_OUT = load_part("heldout")
ALL = TRAIN + HELD_OUT
KNOWN_CATEGORIES = CATEGORIES | {"protocol_error"}


def _permanent(text: str) -> bool:
    reply = Reply.parse(text)
    if 400 <= reply.code < 600:
        return reply.code >= 500
    enhanced = effective_enhanced(reply)
    return reply.code == 0 and bool(enhanced) and enhanced[0] == "5"


def test_corpus_is_large_distinct_and_sourced():
    assert len(ALL) >= 1000
    texts = [" ".join(entry["reply"].lower().split()) for entry in ALL]
    assert len(set(texts)) == len(texts), "the same reply twice"
    assert len(HELD_OUT) >= 150


@pytest.mark.parametrize("entry", ALL, ids=lambda e: f"{e['_file']}:{e['reply'][:50]}")
def test_entry_is_well_formed(entry):
    assert set(entry) - {"_file"} == ENTRY_KEYS
    assert entry["category"] in KNOWN_CATEGORIES
    assert entry["scope"] in SCOPES
    assert entry["bounce_list"] in BOUNCE_LIST
    assert entry["stage"] is None or entry["stage"] in STAGES
    assert entry["source"] and entry["provider"]
    assert entry["permanent"] is _permanent(entry["reply"])
    # The listing label follows from the others by one rule (README, "Format").
    if not entry["permanent"] or entry["scope"] != "recipient":
        expected = "never"
    elif entry["category"] in ("unknown_recipient", "mailbox_disabled", "syntax_error"):
        expected = "list"
    elif entry["category"] in ("routing_dns", "other"):
        expected = "count"
    else:
        expected = "never"
    assert entry["bounce_list"] == expected


def test_held_out_part_shares_no_near_duplicate_with_training():
    train_keys = {near_duplicate_key(entry["reply"]) for entry in TRAIN}
    assert not [entry["reply"] for entry in HELD_OUT if near_duplicate_key(entry["reply"]) in train_keys]
