"""Issue 13: a bounce to a valid VERP return path is acted on only for the recipients of its transaction.

The token authenticates the transaction (sender, id, day), not the addresses a report names: anyone who
received a message from a VERP sender saw its return path and could mail "bounces" to it for 30 days
naming any address (all of the sender's customers). The relay records the recipients the next hop
accepted at the 250 to the final dot (relay/steps/verp.py) and bounces_in ignores every other address
(relay/intake/bounces_in.py). Through a running relay, with real SQLite and PostgreSQL stores."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time

import psycopg
import pytest

from relay.intake.verp import VerpCodec
from relay.store import open_store
from tests.support import pg
from tests.support.smtp_client import RawSMTP, send_message
from tests.test_bounces_in import (BOUNCE_DOMAIN, KEY, ORIGINAL, dsn_for, mail_bounce, rcpt_reply, relay_one,
                                   start_verp_relay)


def dsn_naming(return_path: str, *blocks: tuple[str, str | None]) -> bytes:
    """A Postfix-style DSN with one failed block per (final recipient, original recipient or None)."""
    body = "".join(
        f"Final-Recipient: rfc822; {final}\r\n" + (f"Original-Recipient: rfc822;{orig}\r\n" if orig else "")
        + f"Action: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.dest.example\r\n"
          f"Diagnostic-Code: smtp; 550 5.1.1 <{final}>: Recipient address rejected: User unknown\r\n\r\n"
        for final, orig in blocks)
    return (f"From: MAILER-DAEMON@smarthost.example\r\nTo: {return_path}\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
            f"--B\r\nContent-Type: text/plain\r\n\r\nThis is the mail system at host smarthost.example.\r\n"
            f"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
            f"Reporting-MTA: dns; smarthost.example\r\n\r\n{body}"
            f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\n").encode() + ORIGINAL.split(b"\r\n\r\n")[0] + \
        b"\r\n--B--\r\n"


def arf_for(return_path: str, rcpt: str) -> bytes:
    return (f"From: feedback@isp.example\r\nTo: {return_path}\r\nSubject: complaint\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=feedback-report; boundary=F\r\n\r\n"
            f"--F\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n"
            f"--F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: isp/1\r\n"
            f"Version: 1\r\nOriginal-Rcpt-To: <{rcpt}>\r\n\r\n"
            f"--F\r\nContent-Type: text/rfc822-headers\r\n\r\n").encode() + ORIGINAL.split(b"\r\n\r\n")[0] + \
        b"\r\n--F--\r\n"


def listed(relay) -> set[str]:
    return {e["recipient"] for e in relay.events() if e["kind"] == "bounce_listed"}


@pytest.fixture
def verp_relay(tmp_path, upstream, relay_factory):
    return start_verp_relay(tmp_path, upstream, relay_factory)


def test_a_forged_bounce_with_a_real_return_path_naming_another_address_lists_nobody(verp_relay, upstream, caplog):
    # alice@ got a message, so she has its return path: her "bounce" for the sender's other customers
    # was read as theirs, and each went on the bounce list (failed on main at 2984922).
    caplog.set_level(logging.WARNING, logger="relay.intake.bounces_in")
    return_path = relay_one(verp_relay, upstream)
    code, text = mail_bounce(verp_relay, return_path, dsn_for(return_path, rcpt="bob@dest.example"))[-1]
    assert code == 250, text
    assert text == "250 2.0.0 Recorded 0 failure(s); 1 not recipients of that transaction: ignored"
    assert rcpt_reply(verp_relay, "bob@dest.example") == 250  # not listed: the relay still sends to bob
    assert not [e for e in verp_relay.events(timeout=0.5) if e["kind"] in ("bounced", "bounce_listed")]
    [warning] = [r.getMessage() for r in caplog.records if "not recipients" in r.getMessage()]
    assert "bob@dest.example" in warning and VerpCodec(KEY).verify(return_path).transaction_id in warning

    # A text bounce (no status part) is held to the same rule.
    text_bounce = (f"From: MAILER-DAEMON@smarthost.example\r\nTo: {return_path}\r\nSubject: Undelivered Mail\r\n\r\n"
                   f"I'm sorry to have to inform you that your message could not\r\nbe delivered to one or more "
                   f"recipients.\r\n\r\n<carol@dest.example>: host mx.dest.example[192.0.2.1] said: 550 5.1.1 "
                   f"User unknown (in reply to RCPT TO command)\r\n").encode()
    code, text = mail_bounce(verp_relay, return_path, text_bounce)[-1]
    assert (code, text) == (250, "250 2.0.0 Recorded 0 failure(s); 1 not recipients of that transaction: ignored")
    assert rcpt_reply(verp_relay, "carol@dest.example") == 250
    assert listed(verp_relay) == set()


def test_the_real_recipient_is_listed_and_the_others_the_bounce_names_are_not(verp_relay, upstream):
    # The recipient's address comes back in another case (many MTAs fold or restore it): still hers.
    return_path = relay_one(verp_relay, upstream, rcpt="Alice@Dest.Example")
    message = dsn_naming(return_path, ("bob@dest.example", None), ("alice@dest.example", None),
                         ("ceo@example.com", None))
    code, text = mail_bounce(verp_relay, return_path, message)[-1]
    assert (code, text) == (250, "250 2.0.0 Recorded 1 failure(s); 2 not recipients of that transaction: ignored")
    events = verp_relay.events(wait_for=4)
    # The others: a warning event each, naming them and why (issue 13), never a listing.
    assert [(e["kind"], e["recipient"]) for e in events] == [("bounced", "alice@dest.example"),
                                                            ("bounce_listed", "alice@dest.example"),
                                                            ("warning", "bob@dest.example"),
                                                            ("warning", "ceo@example.com")]
    assert {e.get("result") for e in events[2:]} == {"not_a_recipient"}
    assert rcpt_reply(verp_relay, "alice@dest.example") == 550
    assert rcpt_reply(verp_relay, "bob@dest.example") == 250
    assert rcpt_reply(verp_relay, "ceo@example.com") == 250


def test_a_bounce_for_one_recipient_of_a_multi_recipient_transaction_counts_that_one(verp_relay, upstream):
    # Any of the three could have written it: it counts, never lists at once (issue 13,
    # tests/test_bounces_in_shared.py).
    return_path = relay_one(verp_relay, upstream, rcpts=["alice@dest.example", "bob@dest.example",
                                                         "carol@other.example"])
    code, text = mail_bounce(verp_relay, return_path, dsn_for(return_path, rcpt="bob@dest.example"))[-1]
    assert (code, text) == (250, "250 2.0.0 Recorded 1 failure(s)")
    events = verp_relay.events(wait_for=1)
    assert [(e["kind"], e["recipient"]) for e in events] == [("bounced", "bob@dest.example")]
    assert events[0]["transaction_id"] == VerpCodec(KEY).verify(return_path).transaction_id
    assert events[0]["verp"]["recipients"] == 3 and "shared by 3 recipients" in events[0]["reason"]
    assert [rcpt_reply(verp_relay, r) for r in ("alice@dest.example", "bob@dest.example", "carol@other.example")] \
        == [250, 250, 250]


def test_original_or_final_recipient_may_match_and_the_matching_one_is_acted_on_a_forwards_never_listed(
        verp_relay, upstream):
    # Two messages, each bounced the same way: the return path is shared by both recipients, so a
    # failure only counts (issue 13) and dave is listed at the second.
    for nth in (1, 2):
        return_path = relay_one(verp_relay, upstream, rcpts=["alias@dest.example", "dave@dest.example"], nth=nth)
        message = dsn_naming(return_path,
                             # A forward: the final address is the rewritten one, the original is ours.
                             ("alias.target@elsewhere.example", "alias@dest.example"),
                             # An Original-Recipient naming someone else, over our recipient's
                             # Final-Recipient: what is listed is the recipient, never the address the
                             # report slipped in.
                             ("dave@dest.example", "victim@dest.example"))
        code, text = mail_bounce(verp_relay, return_path, message)[-1]
        assert (code, text) == (250, "250 2.0.0 Recorded 2 failure(s)")
    bounced = [e for e in verp_relay.events(wait_for=5) if e["kind"] == "bounced"]
    assert sorted(e["recipient"] for e in bounced) == ["alias@dest.example"] * 2 + ["dave@dest.example"] * 2
    dave = next(e for e in bounced if e["recipient"] == "dave@dest.example")
    assert dave["dsn"]["original_recipient"] == "victim@dest.example"  # the report as it was, in the event
    # The forward's failure is its target's: one member of an alias (or a forward) gone says nothing of
    # the address the sender mailed, which is not listed (review-12 F2, docs/bounces-in.md).
    assert listed(verp_relay) == {"dave@dest.example"}
    assert rcpt_reply(verp_relay, "victim@dest.example") == 250
    assert rcpt_reply(verp_relay, "alias@dest.example") == 250


def test_the_bounced_event_carries_sendmails_actual_recipient(verp_relay, upstream):
    # Sendmail's X-Actual-Recipient names the address an alias or .forward made of ours, and the remote
    # reply names that one: the event must carry it, or the reply looks unexplained (relay dsn parse
    # prints it too, docs/bounces-in.md).
    return_path = relay_one(verp_relay, upstream, rcpt="erin@dest.example")
    message = dsn_naming(return_path, ("forwarded.erin@elsewhere.example", "erin@dest.example")).replace(
        b"Action: failed\r\n", b"X-Actual-Recipient: rfc822; forwarded.erin@elsewhere.example\r\nAction: failed\r\n")
    code, text = mail_bounce(verp_relay, return_path, message)[-1]
    assert (code, text) == (250, "250 2.0.0 Recorded 1 failure(s)")
    bounced = [e for e in verp_relay.events(wait_for=2) if e["kind"] == "bounced"]
    assert [e["recipient"] for e in bounced] == ["erin@dest.example"]
    assert bounced[0]["dsn"]["actual_recipient"] == "forwarded.erin@elsewhere.example"
    assert bounced[0]["dsn"]["original_recipient"] == "erin@dest.example"


def test_a_complaint_counts_only_for_a_recipient_of_the_transaction(verp_relay, upstream):
    return_path = relay_one(verp_relay, upstream, rcpt="carol@isp.example")
    code, text = mail_bounce(verp_relay, return_path, arf_for(return_path, "dan@isp.example"))[-1]
    assert (code, text) == (250, "250 2.0.0 Recorded 0 complaint(s); 1 not recipients of that transaction: ignored")
    code, text = mail_bounce(verp_relay, return_path, arf_for(return_path, "carol@isp.example"))[-1]
    assert (code, text) == (250, "250 2.0.0 Recorded 1 complaint(s)")
    complaints = [e for e in verp_relay.events(wait_for=1) if e["kind"] == "complained"]
    assert [e["recipient"] for e in complaints] == ["carol@isp.example"]


def test_a_bounce_is_deferred_when_the_store_cannot_say_who_the_recipients_were(verp_relay, upstream):
    # The table is gone from under the relay (a damaged or restored file): no listing on a guess and
    # no bounce dropped, but a 451 that has the reporting MTA try again.
    return_path = relay_one(verp_relay, upstream)
    db = sqlite3.connect(str(verp_relay.settings.bounce_list.partition(":///")[2]))
    db.execute("DROP TABLE relay_verp_recipients")
    db.close()
    code, text = mail_bounce(verp_relay, return_path, dsn_for(return_path))[-1]
    assert code == 451 and text.startswith("451 4.3.0 Bounce read, but its transaction's recipients could not be "
                                           "checked"), text
    assert not [e for e in verp_relay.events(timeout=0.5) if e["kind"] in ("bounced", "bounce_listed")]
    assert rcpt_reply(verp_relay) == 250


def test_a_send_whose_recipients_could_not_be_recorded_is_still_accepted_and_its_bounces_ignored(
        verp_relay, upstream, caplog):
    # The next hop said 250: the client must hear 250 (a 4xx would have the message sent twice). The
    # store refuses the write (a trigger standing in for a full disk): logged, and a later bounce
    # naming the recipient is not acted on, never listed on a guess.
    caplog.set_level(logging.ERROR, logger="relay.verp")
    db = sqlite3.connect(str(verp_relay.settings.bounce_list.partition(":///")[2]))
    db.execute("CREATE TRIGGER full BEFORE INSERT ON relay_verp_recipients BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    db.close()
    return_path = relay_one(verp_relay, upstream)  # asserts the 250
    assert any("could not be recorded" in r.getMessage() for r in caplog.records)
    code, text = mail_bounce(verp_relay, return_path, dsn_for(return_path))[-1]
    assert (code, text) == (250, "250 2.0.0 Recorded 0 failure(s); 1 not recipients of that transaction: ignored")
    assert rcpt_reply(verp_relay) == 250


def test_recipients_are_recorded_several_transactions_to_a_commit(tmp_path):
    # Group commit: transactions that end while a write is under way (here: in the same turn of the
    # loop) share the next one, so a busy relay does not commit once per message.
    from relay.steps.verp import VerpRecipients

    async def run():
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        try:
            recorder = VerpRecipients(store)
            day = int(__import__("time").time() // 86400)
            await asyncio.gather(*(recorder.record(f"{i:016x}", [f"u{i}@dest.example", "Same@Dest.example"], day)
                                   for i in range(10)))
            assert (recorder.writes, recorder.rows) == (1, 20)
            assert await store.verp_recipients(f"{3:016x}", ["U3@DEST.EXAMPLE", "u4@dest.example",
                                                             "same@dest.example"]) == {"U3@DEST.EXAMPLE",
                                                                                       "same@dest.example"}
        finally:
            await store.close()

    asyncio.run(run())


async def _expiry(store, insert_old) -> None:
    """`insert_old(rows)` puts (transaction_id, digest, day) rows in the table behind the store's back:
    written through the store, rows this old would be deleted by their own write."""
    import time

    from relay.store.base import recipient_digest, verp_keep_days

    today = int(time.time() // 86400)
    keep = verp_keep_days()
    old = today - keep - 1  # a day past the last one a token is accepted (and its margin)
    insert_old([(f"{i:016x}", recipient_digest(f"a{i}@x.example"), old) for i in range(500)])
    assert len(await _digests(store, old)) == 500
    await store.record_verp_recipients([("00000000000000ff", "edge@x.example", today - keep)])
    # Each write deletes at most twice what it adds and VERP_EXPIRE_MIN: 202 of the 500.
    assert len(await _digests(store, old)) == 500 - 202
    await store.record_verp_recipients([("0000000000000100", "new@x.example", today)])
    assert len(await _digests(store, old)) == 500 - 404
    assert await store.verp_recipients("00000000000000ff", ["edge@x.example"]) == {"edge@x.example"}
    await store.purge(failures_older_than=86400)  # the sweep takes the rest
    assert await _digests(store, old) == set()
    assert await store.verp_recipients("00000000000000ff", ["edge@x.example"]) == {"edge@x.example"}


async def _digests(store, day: int) -> set:
    found = set()
    for i in range(500):
        found |= await store.verp_recipients(f"{i:016x}", [f"a{i}@x.example"])
    return found


def test_rows_past_the_tokens_age_are_deleted_on_writes_and_by_the_sweep_sqlite(tmp_path):
    async def run():
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")

        def insert_old(rows):
            with sqlite3.connect(str(tmp_path / "b.db")) as db:
                db.executemany("INSERT INTO relay_verp_recipients (transaction_id, recipient, day) VALUES (?, ?, ?)", rows)

        try:
            await _expiry(store, insert_old)
        finally:
            await store.close()

    asyncio.run(run())


def test_rows_past_the_tokens_age_are_deleted_on_writes_and_by_the_sweep_postgresql(pg_url):
    async def run():
        store = open_store(pg_url[0])
        await store.migrate()

        def insert_old(rows):
            with psycopg.connect(pg._conninfo(), autocommit=True) as conn, conn.cursor() as cur:
                cur.executemany(f'INSERT INTO "{pg_url[1]}".relay_verp_recipients VALUES (%s, %s, %s)', rows)

        try:
            await _expiry(store, insert_old)
        finally:
            await store.close()

    asyncio.run(run())


# -- several relays sharing PostgreSQL ---------------------------------------------------------------------

def _pg_relay(tmp_path, upstream, relay_factory, url, name):
    directory = tmp_path / name
    directory.mkdir()
    return start_verp_relay(directory, upstream, relay_factory, bounce_list=url,
                            events=[{"jsonl": str(directory / "events.jsonl")}])


def test_a_bounce_to_another_relay_sharing_postgresql_is_checked_against_the_shared_table(
        tmp_path, upstream, relay_factory, pg_url):
    url, _ = pg_url
    sender = _pg_relay(tmp_path, upstream, relay_factory, url, "a")
    other = _pg_relay(tmp_path, upstream, relay_factory, url, "b")
    return_path = relay_one(sender, upstream, rcpts=["bob@dest.example"])
    message = dsn_naming(return_path, ("bob@dest.example", None), ("mallory-target@dest.example", None))
    code, text = mail_bounce(other, return_path, message)[-1]
    assert (code, text) == (250, "250 2.0.0 Recorded 1 failure(s); 1 not recipients of that transaction: ignored")
    assert [(e["kind"], e["recipient"]) for e in other.events(wait_for=3)] == [
        ("bounced", "bob@dest.example"), ("bounce_listed", "bob@dest.example"),
        ("warning", "mallory-target@dest.example")]
    # One list: the sending relay refuses bob now. Its lookup cache heard "not listed" for bob at the
    # send and drops it when PostgreSQL's NOTIFY arrives (relay/store/pg_cache.py): milliseconds on a
    # quiet machine, later on a loaded one, so the sending relay is asked until a bound.
    deadline = time.monotonic() + 10
    while (code := rcpt_reply(sender, "bob@dest.example")) != 550 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert code == 550
    assert rcpt_reply(sender, "mallory-target@dest.example") == 250


def test_a_bounce_is_deferred_while_postgresql_does_not_answer(tmp_path, upstream, relay_factory, pg_url):
    url, schema = pg_url
    relay = _pg_relay(tmp_path, upstream, relay_factory, url, "a")
    return_path = relay_one(relay, upstream)
    # Another session takes the table and does not let go: the lookup would wait for ever.
    with psycopg.connect(pg._conninfo(), autocommit=False) as holder:
        holder.execute(f'LOCK TABLE "{schema}"."relay_verp_recipients" IN ACCESS EXCLUSIVE MODE')
        code, text = mail_bounce(relay, return_path, dsn_for(return_path), timeout=30)[-1]
        holder.rollback()
    assert code == 451 and text.startswith("451 4.3.0 "), text
    assert not [e for e in relay.events(timeout=0.5) if e["kind"] in ("bounced", "bounce_listed")]
    # Once it answers, the reporting MTA's retry is recorded.
    assert mail_bounce(relay, return_path, dsn_for(return_path))[-1][0] == 250
    events = relay.events(wait_for=3)
    # The intake's own 451 is logged and counted, not a `deferred` event of the application's mail
    # (review12 F7); the bounce is told once, with the 250 that recorded it.
    assert [e["kind"] for e in events] == ["bounced", "bounce_listed"]
    counters = relay.server.metrics.counters
    assert counters[("relay_bounces_in_refusals_total", (("code", "4xx"), ("stage", "data")))] == 1


def test_postmaster_without_a_token_is_still_never_acted_on(verp_relay, upstream):
    return_path = relay_one(verp_relay, upstream)
    code, text = mail_bounce(verp_relay, "postmaster@" + BOUNCE_DOMAIN, dsn_for(return_path))[-1]
    assert (code, text) == (250, "250 2.0.0 Received (postmaster: not recorded)")
    assert rcpt_reply(verp_relay) == 250
    with RawSMTP(verp_relay.host, verp_relay.port) as c:  # the relay itself is unchanged
        c.cmd("EHLO client.test")
        assert c.cmd("NOOP")[0] == 250


def test_a_bounce_sent_to_two_return_paths_is_checked_against_both_transactions(verp_relay, upstream):
    # One reporting MTA's DSN for messages of two transactions may go to both return paths at once.
    # It was checked against the first token's transaction only: bob@, a recipient of the second,
    # was "not a recipient", the 250 told the MTA not to retry, and his listing was missed.
    to_alice = relay_one(verp_relay, upstream, rcpt="alice@dest.example", nth=1)
    to_bob = relay_one(verp_relay, upstream, rcpt="bob@dest.example", nth=2)
    assert to_alice != to_bob
    with RawSMTP(verp_relay.host, verp_relay.intake_port, timeout=15) as c:
        c.cmd("EHLO smarthost.example")
        replies = send_message(c, "", [to_alice, to_bob],
                               dsn_naming(to_alice, ("bob@dest.example", None), ("carol@dest.example", None)))
    assert replies[-1] == (250, "250 2.0.0 Recorded 1 failure(s); 1 not recipients of that transaction: ignored")
    [bounced] = [e for e in verp_relay.events(wait_for=2) if e["kind"] == "bounced"]
    assert bounced["recipient"] == "bob@dest.example"
    assert bounced["transaction_id"] == VerpCodec(KEY).verify(to_bob).transaction_id
    assert rcpt_reply(verp_relay, "bob@dest.example") == 550 and rcpt_reply(verp_relay, "carol@dest.example") == 250
