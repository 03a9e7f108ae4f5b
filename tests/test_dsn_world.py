"""The second, independent bounce set (tests/data/bounces/world: 497 real files from the test data of
flufl.bounce, bounce_email, Mail-DeliveryStatus-BounceParser, mail-parser, baunsu, PHP-Bounce-Handler,
flanker, the mail gem, MimeKit, CPython, bounceHammer, MailBounceDetector, deliveryboy,
tmail_bouncer, Zoon's PHP-Bounce-Handler fork, froide, KumoMTA, Chatwoot, talon, RIPE NCC whois and
CwsMailBounceHandler, and texts from
public GitHub threads, labelled by reading them; sources in its README.md).
The figures and their definitions: bench/bench_dsn.py --world."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import bench_dsn  # noqa: E402

# What the parser still gets wrong, each with why. xfail(strict): one that starts passing fails the
# suite, so that these lists only ever shrink.
KNOWN_MISSES = {
    "bp-warning-5.msg#0": "an Exim autoreply router's refusal, sent as Auto-Submitted: auto-replied, is taken for an auto-reply",
    "ghissue-roundcube-roundcubemail-9442.txt#0": "Exim's DSN fields pasted into Markdown: 'Status: 5.0.0_' (an "
    "italics mark closes it) is not read as the status; its prose reason 'retry timeout exceeded' is read",
    "ghissue-bwya77-O365-Admin-Center-12.txt#0": "Office 365's NDR cut before its diagnostic part: the status "
    "5.1.10 is read from its help text ('Fix email delivery issues for error code 5.1.10 in Office 365'), which the "
    "label does not take for the report's status (null)",
}
KNOWN_SPURIOUS = {
    "flufl-llnl_01.txt": "the directory's help text names other people's addresses",
    "flufl-yale_01.txt": "the directory's help text gives example addresses; the recipient is named only as a local part",
    "bounceemail-tt_bounce_06.eml": "the remote reply names the blocklist's contact address",
    "bounceemail-tt_bounce_11.eml": "Exchange 5.5 names the recipient by display name only; the summary's To is taken",
}


@functools.cache
def results():
    return bench_dsn.evaluate_world()["results"]


def _entries():
    return [e for e, _ in results()]


def _recipient_cases():
    out = []
    for entry in _entries():
        if entry["kind"] != "bounce":
            continue
        for n, label in enumerate(entry["recipients"]):
            if label["recipient"] is None:
                continue
            key = f"{entry['file']}#{n}"
            marks = [pytest.mark.xfail(reason=KNOWN_MISSES[key], strict=True)] if key in KNOWN_MISSES else []
            out.append(pytest.param(key, id=key, marks=marks))
    return out


def _message_cases(kinds):
    out = []
    for entry in _entries():
        if entry["kind"] not in kinds:
            continue
        reason = KNOWN_SPURIOUS.get(entry["file"])
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
        out.append(pytest.param(entry["file"], id=entry["file"], marks=marks))
    return out


def _rows(file):
    [(entry, rows)] = [(e, r) for e, r in results() if e["file"] == file]
    return entry, rows


@pytest.mark.parametrize("key", _recipient_cases())
def test_labelled_recipient_and_status(key):
    file, index = key.rsplit("#", 1)
    entry, rows = _rows(file)
    label = entry["recipients"][int(index)]
    row = next((r for r in rows if label["recipient"].lower() in bench_dsn._names(r)), None)
    assert row is not None, f"{label['recipient']} not found in {rows}"
    assert row["status"] == label["status"]


@pytest.mark.parametrize("file", _message_cases({"bounce"}))
def test_bounce_names_no_other_address(file):
    entry, rows = _rows(file)
    wanted = {lab["recipient"].lower() for lab in entry["recipients"] if lab["recipient"]}
    assert [r["recipient"] for r in rows if not (bench_dsn._names(r) & wanted)] == []


@pytest.mark.parametrize("file", _message_cases({"none", "delay"}))
def test_non_failure_is_not_a_permanent_failure(file):
    entry, rows = _rows(file)
    if entry["kind"] == "none":
        assert rows == []
    else:
        assert not any((r.get("classification") or {}).get("permanent") for r in rows)


def test_known_lists_name_labelled_things():
    files = {e["file"] for e in _entries()}
    assert {k.rsplit("#", 1)[0] for k in KNOWN_MISSES} <= files
    assert set(KNOWN_SPURIOUS) <= files


def test_world_figures_do_not_regress():
    # Before this set was read (commit 1c33ade): 94.00% / 92.67%, 18 spurious in 11 bounces, 1 false
    # failure.
    # With Mail-DeliveryStatus-BounceParser's 126 messages added (branch dsn-world2, before its parser
    # changes): 98.50% / 98.12%, 13 spurious in 8 bounces, 1 false failure; after them 98.87% / 98.50%,
    # 9 in 4, none; with mail-parser's 11 files and the X400-Supplementary-Info rule 98.88% / 98.88%.
    # With 60 more files (branch dsn-world3): 99.06% / 99.06%, 9 in 4, 1 false failure (a Sendmail
    # return receipt, "Action: relayed (to non-DSN-aware mailer)"); after its fix, none.
    # With 35 more (bounceHammer, MailBounceDetector, deliveryboy, tmail_bouncer; the second branch
    # named dsn-world3): 99.14% / 99.14% (345/348), 9 in 4, none; the 35 alone 100% / 100%, none.
    # With 6 more (Zoon's fork, MimeKit): 99.15% / 99.15% (350/353), 9 in 4, none; the 41 alone 100%.
    # With 43 more (branch dswrld: froide, KumoMTA, Chatwoot, talon, GitHub threads; before its parser
    # changes): 97.64% / 97.64% (373/382), 9 in 4, none; the 43 alone 79.31% (23/29), none spurious.
    # After them (failure and delay words in the usual templates' languages, Gmail's "wasn't
    # delivered", a role address given its own refusal): 99.74% / 99.74% (381/382), 9 in 4, none;
    # the 43 alone 100% (29/29); sina's Chinese-only bounce is read since.
    # With 17 more (GitHub threads; the third branch named dsn-world3, before its parser changes):
    # 99.25% / 98.49% (395/398, 392/398), 11 in 6, none; the 17 alone 87.50% / 68.75% (14/16, 11/16),
    # 2 spurious in 2 (a forwarded bounce's "An:" sender, listed at once; a remote's alias target).
    # After them: 99.75% / 99.50% (397/398, 396/398), 9 in 4, none; the 17 alone 100% / 93.75%.
    # With 23 more (branch dsn-world4: GitHub threads, RIPE NCC whois; labels committed before any run):
    # 99.04% / 98.55% (411/415, 409/415), 10 in 5, none; the 23 alone 82.35% / 76.47% (14/17, 13/17),
    # 1 spurious (the sender, named only in the reply "<x> sender rejected"). After its fixes (a
    # recipient line pasted as the first line is no header field, "host h said: 5xx" is a report without
    # the template's failure words, an address a reply calls the sender is none): 99.76% / 99.28%
    # (414/415, 412/415), 9 in 4, none; the 23 alone 100% / 94.12% (17/17, 16/17). The status figure is
    # below the 452 files' 99.50% only by the new files' one miss (bwya77, KNOWN_MISSES); the 452 files'
    # own records are unchanged.
    # With 7 more (dsn-world4's second batch, labels committed before any run): the 7 alone 55.56% /
    # 55.56% (5/9), 3 spurious in 2 (Markdown bold read into two addresses, a run-on word). After its
    # fixes (Markdown emphasis is not part of an address; an address whose own line says the message
    # could not be delivered to it keeps that failure; Exchange's German "wurde nicht in x gefunden"):
    # the 7 alone 88.89% / 88.89% (8/9), 1 spurious in 1; all 482 files 99.53% / 99.06% (422/424,
    # 420/424), 10 in 5 (the new one KNOWN_SPURIOUS: a run-on word, no one's address), none.
    # With 5 more (dsn-world5, branch dsn-hard3; labels committed before any run): the 5 alone 75.00% /
    # 75.00% (3/4), none spurious, hard 4/4 (one by the missed address, labelled not hard); all 487
    # files 99.30% / 98.83% (425/428, 423/428), 10 in 5, none. After its fix (a full mailbox said in
    # German or French, pasted with its recipient line alone, makes a text a report): the 5 alone 100%
    # (4/4); all 99.53% / 99.07% (426/428, 424/428), 10 in 5, none.
    # With 10 more (branch dsnworld3: CwsMailBounceHandler, GitHub threads; labels committed before any
    # run): the 10 alone 57.14% / 57.14% (4/7), 2 spurious in 2, none; all 497 files 98.85% / 98.39%
    # (430/435, 428/435), 12 in 7, none. After its fixes (a mail program's forward separator and header
    # block above a report are not the returned message's copy; Gmail's "because" run into the address is
    # not its domain, which also reads ghissue-ombegov-policy-v2-138; a local part of asterisks is a
    # mask; "<a@x>:" alone with a 5yz under it is a report): the 10 alone 100% / 100% (7/7), none
    # spurious; all 99.77% / 99.31% (434/435, 432/435), 9 in 4, none.
    figures = bench_dsn.world_figures(results())
    assert figures["recipient_accuracy"] >= 0.9977
    assert figures["status_accuracy"] >= 0.9931
    assert figures["spurious_in_messages"] <= 4
    assert figures["false_failures"] == 0


def test_world_hard_agreement_does_not_regress():
    # The `hard` labels (branch dsn-world-hard: written by reading each message, committed before any
    # measurement; the set's README says how). First pass, main 5b9901f's parser: 94.24% (360/382),
    # ours hard where the label is not 2 (neither listed at once). Older Postfix's "Malformed name
    # server reply" read as a DNS failure, not "no such domain": 94.50% (361/382), 1. A domain
    # failure given up after hours of retries not "no such domain" either: 94.76% (362/382), 0.
    # A version number in a quoted subject ("Mailman 2.0.12") no longer kept the report's status
    # from going first: 95.03% (363/382), 0. A gateway's "scanned for all viruses" footer no longer
    # the reason over Status 5.1.1: 95.29% (364/382), 0. Review-6 F2: a report's own Status 5.1.1
    # over a vague "550 <a> recipient rejected" is unconfirmed, not hard: bp-cox-via-sendmail.unknown
    # (labelled hard on that Status alone) no longer agrees: 95.03% (363/382), 0. Review-6 F5/F6:
    # two labels that contradicted the README's conventions changed (bp-rcpt-dne.msg false -> true,
    # bp-cox-via-sendmail.unknown.msg true -> false): 95.03% (363/382), 0 (with the parser before F2:
    # 94.76%, ours hard label not 1, listed at once 1).
    # With 17 more (the third branch named dsn-world3; labels written and committed before any run):
    # first pass 94.72% (377/398), 0, listed at once label not hard 0; the 17 alone 87.50% (14/16).
    # After its fixes (a Postfix reply pasted without indentation read to its "(in reply to ...)",
    # Postfix's own failure line of a role address, a report quoted with "> "): 95.23% (379/398), 0.
    # With 23 more (branch dsn-world4, 17 labelled addresses, 10 hard): first pass 95.18% (395/415), 0,
    # listed at once label not hard 0; the 23 alone 94.12% (16/17). After its fixes: 95.42% (396/415),
    # 0, 0; the 23 alone 100% (17/17). With its second batch of 7 (9 labelled addresses, 6 hard): the 7
    # alone 55.56% (5/9) first, 88.89% (8/9) after; all 95.28% (404/424), 0, 0.
    # Branch dsn-hard3: a "no such user" under X.7.1 at RCPT is hard (5 labels), and so is the server's
    # own X.1.0 refusing the address where no rule reads the words (2): 96.93% (411/424), 0, 0.
    # With dsn-world5's 5 (4 labelled addresses, 2 hard): first pass 96.96% (415/428), 0, 0; the 5 alone
    # 100% (4/4); after its fix the same.
    # Branch dsn-sisimai: `hard` is sisimai's HardBounce with its Filtered convention (a "no such user"
    # of unknown stage without X.1.x is not hard); these labels are a reader's meaning that ignores
    # the stage (the set's README), and disagree on 30 such lines (FILTERED_BY_CONVENTION, below):
    # 89.95% (385/428), 0, 0. The other disagreements stay the 13 of before.
    # Branch sisimai-hard: sisimai's UserUnknown as its source has it (policies.sisimai_hard): a
    # status 5.1.0/5.1.1/5.1.3 is UserUnknown whoever wrote it and at any stage unless the words name
    # another reason, so the report's Status 5.1.1 over bp-cox-via-sendmail.unknown.msg's vague "550
    # <a> recipient rejected" at RCPT is hard (the label, review-6 F6, reads the reply alone; the
    # bounce list still only counts it): 89.72% (384/428), ours hard label not 1 (that line), listed 0.
    # With branch dsnworld3's 10 (7 labelled addresses, 4 hard): first pass 88.97% (387/435), 1, 0; the 10
    # alone 42.86% (3/7: two addresses missed, two Yahoo "This user doesn't have a ... account" of unknown
    # stage, FILTERED_BY_CONVENTION). After its fixes: 89.66% (390/435), 1, 0; the 10 alone 71.43% (5/7).
    # Branch dsn-reason: sisimai's receiving-host tables (bounce-rules.yaml sisimai_rhost) read Yahoo's
    # "dd This user doesn't have a ... account" from a .yahoodns.net host (baunsu-bounce_yahoo,
    # ghissue-netneutrality) and KDDI's "<a>: user unknown" (bouncehammer-06) as UserUnknown at any
    # stage: 90.34% (393/435), 1, 0.
    figures = bench_dsn.world_figures(results())
    assert figures["hard_judged"] == 435
    assert figures["hard_agreement"] >= 0.9034
    assert figures["hard_false_positives"] <= len(SISIMAI_STATUS_OVER_THE_WORDS)
    # review-6 F8: hard_listed_not_hard only counts among hard false positives, so it cannot fail
    # once they are 0; a listing of an address whose label is not hard is counted whatever our `hard`.
    assert figures["listed_not_hard"] == 0


# The world lines where the label (a reader's meaning) says hard and `hard` (sisimai's) says Filtered:
# a "no such user" whose report names no command, without X.1.x (docs/bounces-in.md, "Branch
# dsn-sisimai"). A reading of the stage that the parser learns may take lines out; none may come in.
FILTERED_BY_CONVENTION = frozenset({
    "flufl-bounce_02.txt", "flufl-simple_05.txt", "flufl-simple_06.txt", "flufl-simple_13.txt",
    "flufl-simple_23.txt", "flufl-simple_25.txt", "flufl-simple_26.txt", "flufl-simple_27.txt",
    "flufl-simple_29.txt", "flufl-simple_36.txt", "flufl-simple_39.txt", "flufl-simple_41.txt",
    "flufl-yahoo_10.txt", "bounceemail-tt_bounce_05.eml", "bounceemail-tt_bounce_22.eml",
    "bp-iis-multiple-bounce.msg", "bp-novell-with-rhs.msg", "bp-warning-3.msg", "mimekit-delivery-status2.txt",
    "mbd-bounce_unknown_status.eml", "zoonru-fixture_bounce_007.eml", "ghissue-PDP-10-its-1513.txt",
    "ghissue-littleyoda-hibiscus.depotviewer-67.txt", "ghissue-jsdelivr-jsdelivr-18728.txt",
    "ripewhois-permanentFailureMessageRfc822Real.mail", "ghissue-fschulze-jumpnbump-3.txt",
    # branch dsnworld3's new data (labels written before any run; as flufl-simple_05/06's Yahoo texts):
    # (ghissue-netneutrality-savetheinternet.in-161.txt left it with branch dsn-reason: its Remote-MTA is
    # Yahoo's .yahoodns.net host, whose sisimai table reads the words as UserUnknown at any stage.)
    "cws-bounce_511_058.eml"})


# The world lines where the label (the reply's words alone) says not hard and `hard` (sisimai's) says
# UserUnknown by the status: the report's Status 5.1.1 over a vague reply at RCPT (branch sisimai-hard).
SISIMAI_STATUS_OVER_THE_WORDS = frozenset({"bp-cox-via-sendmail.unknown.msg"})


def test_world_hard_disagreements_are_the_convention_or_the_old_ones():
    convention = other = by_status = 0
    for entry, rows in results():
        if entry.get("kind") != "bounce":
            continue
        for lab in entry.get("recipients") or []:
            if not lab.get("recipient") or "hard" not in lab:
                continue
            row = next((r for r in rows if lab["recipient"].lower() in bench_dsn._names(r)), None)
            ours = bool(row is not None and row.get("hard"))
            if ours == lab["hard"]:
                continue
            if (entry["file"] in FILTERED_BY_CONVENTION and lab["hard"] and row is not None
                    and row["stage"] is None and row["classification"]["category"] == "unknown_recipient"):
                convention += 1
            elif (entry["file"] in SISIMAI_STATUS_OVER_THE_WORDS and not lab["hard"] and row is not None
                  and row["status"] == "5.1.1" and row["classification"]["bounce_list"] != "list"):
                by_status += 1
            else:
                other += 1
    # 30, and 2 more with branch dsnworld3's new files (new data, not a change); 31 since branch
    # dsn-reason (ghissue-netneutrality: Yahoo's table), whose tables also took baunsu-bounce_yahoo and
    # bouncehammer-06 out of the 13 others.
    assert convention <= 31
    assert by_status <= 1
    assert other <= 11


def test_a_listing_the_label_calls_not_hard_counts_whatever_our_hard_says():
    # review-6 F8: a report listed at once (bounce_list `list`) with `hard` false, for an address the
    # label calls not hard, is the worst error and is counted; one only counted (`count`) is not.
    def row(address, bounce_list):
        return {"recipient": address, "status": "5.1.1", "hard": False,
                "classification": {"category": "unknown_recipient", "bounce_list": bounce_list}}
    entry = {"file": "x.eml", "kind": "bounce", "family": "x", "recipients": [
        {"recipient": "ann@b.example", "status": "5.1.1", "hard": False},
        {"recipient": "bob@b.example", "status": "5.1.1", "hard": False}]}
    figures = bench_dsn.world_figures([(entry, [row("ann@b.example", "list"), row("bob@b.example", "count")])])
    assert (figures["listed_not_hard"], figures["hard_false_positives"], figures["hard_listed_not_hard"]) == (1, 0, 0)
