"""The labelled bounce corpus (tests/data/bounces, 483 real emails): every labelled recipient, and the
targets of issue 13 over the whole corpus. The figures and their definitions: bench/bench_dsn.py."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import bench_dsn  # noqa: E402
import bounce_corpus  # noqa: E402

# Recipients the parser gets wrong today, each with why. xfail(strict): one that starts passing fails
# the suite, so that this list only ever shrinks.
KNOWN_MISSES = {
    "crisp-550_5_4_1_no_such_recipient_variant_1.txt#0": "the redacted report lists mam@ and quotes the 550 on "
        "the line of mama@ (a redaction typo): another address's reply, never borrowed (review-12 F1)",
    "sisimai-lhost-amazonses-17.eml#0": "Status 4.4.7 (expired); the label takes 4.4.2 from the text",
    "sisimai-lhost-amazonworkmail-05.eml#0": "Status 4.4.7 (expired); the label takes 4.4.2 from the text",
    "sisimai-lhost-exim-03.eml#0": "held-out email, not investigated (the holdout is not tuned on)",
    "sisimai-lhost-fml-02.eml#0": "held-out email, not investigated (the holdout is not tuned on)",
    "sisimai-lhost-fml-03.eml#0": "a mailing list's loop alert: names the list, not a failed recipient",
    "sisimai-lhost-opensmtpd-06.eml#0": "label is sisimai's own code; the DSN says 4.4.7",
    "sisimai-lhost-opensmtpd-10.eml#0": "held-out email, not investigated (the holdout is not tuned on)",
    "sisimai-lhost-opensmtpd-15.eml#0": "label is sisimai's own code; the DSN says 4.4.7",
    "sisimai-lhost-opensmtpd-16.eml#0": "held-out email, not investigated (the holdout is not tuned on)",
    "sisimai-lhost-sendmail-18.eml#0": "held-out email, not investigated (the holdout is not tuned on)",
    "sisimai-lhost-verizon-02.eml#0": "held-out email, not investigated (the holdout is not tuned on)",
}


@functools.cache
def evaluation():
    return bench_dsn.evaluate()


def _cases():
    out = []
    for label in bounce_corpus.recipients(bounce_corpus.load_labels()):
        key = f"{label.file}#{label.index}"
        marks = [pytest.mark.xfail(reason=KNOWN_MISSES[key], strict=True)] if key in KNOWN_MISSES else []
        out.append(pytest.param(key, id=key, marks=marks))
    return out


@pytest.mark.parametrize("key", _cases())
def test_labelled_recipient(key):
    file, index = key.rsplit("#", 1)
    [(label, record)] = [(lab, rec) for _, lab, rec in evaluation()["results"]
                         if lab.file == file and lab.index == int(index)]
    if label.recipient is not None:
        assert record is not None, f"{label.recipient} not found; found {evaluation()['records'][file]}"
        assert record["recipient"].lower() == label.recipient.lower()
    assert record is not None
    assert record["status"] == bench_dsn.expected_status(label)
    if label.kind == "feedback":
        assert record["feedback_type"] == label.feedback_type
        assert record["classification"] is None


def test_known_misses_are_labelled_recipients():
    keys = {f"{lab.file}#{lab.index}" for lab in bounce_corpus.recipients(bounce_corpus.load_labels())}
    assert set(KNOWN_MISSES) <= keys


def test_targets_over_the_whole_corpus():
    figures = bench_dsn.figures(evaluation()["results"], "all")
    assert figures["recipient_accuracy"] >= 0.98
    assert figures["status_accuracy"] >= 0.95


def test_hard_agreement_does_not_regress():
    # Issue 13's target is 95%; today's figures (all parts) are 92.4% by the label's meaning, 88.7% by
    # the listing-decision definition used before 2026-12-01 and 85.7% for the `hard` field on every
    # file; docs/bounces-in.md and docs/benchmarks.md say why (crisp's label means "permanent";
    # sisimai's `filtered` where the message carries no evidence; the same reply labelled both ways).
    # This guards what is reached; it is not the target. Branch dsn-sisimai (`hard` is sisimai's
    # HardBounce with its Filtered convention for a "no such user" of unknown stage): 97.55%, the
    # listing definition unchanged, the field 90.93%, sisimai 407/419 (holdout 94.81%: not reached).
    # Branch sisimai-hard (sisimai's rule as its source has it: policies.sisimai_hard): tune unchanged
    # (332/336), all 97.35% (477/490): one holdout recipient fewer agrees, seen only as this figure
    # (the holdout was not read; docs/bounces-in.md, "Branch sisimai-hard").
    figures = bench_dsn.figures(evaluation()["results"], "all")
    assert figures["hard_agreement"] >= 0.9735
    assert figures["hard_agreement_listing"] >= 0.887
    assert figures["hard_agreement_field"] >= 0.9073  # sisimai-hard: the same one recipient
    assert figures["hard_field_by_source"]["sisimai"][0] >= 406
    assert figures["listed_but_not_hard"] <= 21


def _tune_result(file: str):
    [(part, label, record)] = [r for r in evaluation()["results"] if r[1].file == file]
    assert part == "tune"
    return label, record


def test_hard_agreement_compares_the_label_with_the_field_of_the_same_meaning():
    # sisimai's `suspend` is not a HardBounce, and a disabled mailbox is not `hard` for us either; it
    # counts towards listing (suppression.yaml), which the definition before 2026-12-01 scored as hard.
    label, record = _tune_result("sisimai-rhost-google-01.eml")
    assert label.reason == "suspend" and not label.hard
    assert record["classification"]["bounce_list"] == "count" and record["hard"] is False
    assert bench_dsn.hard_decision(record, label) is False
    assert bench_dsn.hard_decision_listing(record, label) is True
    # A DNS lookup that failed (sisimai `networkerror`) counts towards a domain's listing; not hard.
    label, record = _tune_result("sisimai-lhost-postfix-17.eml")
    assert label.reason == "networkerror" and not label.hard
    assert bench_dsn.hard_decision(record, label) is False
    assert bench_dsn.hard_decision_listing(record, label) is True


def test_crisp_cannot_tell_is_not_judged():
    # crisp labels a Postfix report that gave up after connection timeouts neither permanent nor
    # temporary (its "cannot tell", the corpus README): nothing to agree with.
    label, record = _tune_result("crisp-unknown_server_timeout_variant_2.txt")
    assert not label.hard and label.temporary is False
    assert bench_dsn.hard_decision(record, label) is None
    # A crisp label that says something is judged against classification.permanent.
    label, record = _tune_result("crisp-550_5_7_1_spam_content.txt")
    assert label.hard and bench_dsn.hard_decision(record, label) is True


def test_split_is_fixed():
    parts = bounce_corpus.split(bounce_corpus.load_labels())
    assert sum(1 for p in parts.values() if p == "holdout") == 154
    assert parts["sisimai-lhost-postfix-01.eml"] == bounce_corpus.split(bounce_corpus.load_labels())["sisimai-lhost-postfix-01.eml"]


def test_every_crisp_5xx_is_permanent():
    # crisp's label is its `permanent` (a 5xx), not "the address does not exist": our
    # classification.permanent must agree wherever the label carries a 5xx code.
    figures = bench_dsn.figures(evaluation()["results"], "all")
    right, judged = figures["crisp_permanent_5xx"]
    assert judged > 0 and right == judged
