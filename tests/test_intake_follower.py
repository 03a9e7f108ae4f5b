"""Following a log file across logrotate (rename and copytruncate) and across restarts."""

from __future__ import annotations

import os

from relay.intake.follower import CursorFile, FileFollower, journal_command, journal_line


def texts(lines):
    return [t for t, _ in lines]


def last_position(lines):
    return [p for _, p in lines if p is not None][-1].as_dict()


def test_starts_at_the_end_and_reads_only_complete_lines(tmp_path):
    log = tmp_path / "mail.log"
    log.write_text("old 1\nold 2\nhalf")
    f = FileFollower(log)
    assert f.poll() == []
    with open(log, "a") as w:
        w.write(" written\nnew 1\nnew")
    assert texts(f.poll()) == ["half written", "new 1"]  # the line cut at start is whole when it ends
    with open(log, "a") as w:
        w.write(" 2\n")
    assert texts(f.poll()) == ["new 2"]


def test_a_missing_file_is_read_from_its_start_once_it_appears(tmp_path):
    log = tmp_path / "mail.log"
    f = FileFollower(log)
    assert f.poll() == []
    log.write_text("first\n")
    assert texts(f.poll()) == ["first"]


def test_rename_rotation_reads_the_old_files_tail_and_the_new_file(tmp_path):
    log = tmp_path / "mail.log"
    log.write_text("")
    f = FileFollower(log, drain_seconds=0)
    old = open(log, "a", buffering=1)
    old.write("a\n")
    assert texts(f.poll()) == ["a"]
    os.rename(log, tmp_path / "mail.log.1")
    old.write("b\n")  # the writer has not reopened yet
    assert texts(f.poll()) == ["b"]
    log.write_text("c\n")
    old.write("d\n")  # still late
    got = texts(f.poll())
    assert sorted(got) == ["c", "d"]
    old.close()
    assert f.poll() == [] and f.rotations == 1
    with open(log, "a") as w:
        w.write("e\n")
    assert texts(f.poll()) == ["e"]


def test_copytruncate(tmp_path):
    log = tmp_path / "mail.log"
    log.write_text("")
    f = FileFollower(log)
    with open(log, "a") as w:
        w.write("one\ntwo\n")
    assert texts(f.poll()) == ["one", "two"]
    with open(log, "r+") as w:
        w.truncate(0)
    with open(log, "a") as w:
        w.write("three\n")
    assert texts(f.poll()) == ["three"]
    assert f.rotations == 1


def test_resume_continues_after_the_last_line_read(tmp_path):
    log = tmp_path / "mail.log"
    log.write_text("")
    f = FileFollower(log)
    with open(log, "a") as w:
        w.write("one\ntwo\n")
    cursor = CursorFile(tmp_path / "state")
    cursor.save(last_position(f.poll()))
    f.close()
    with open(log, "a") as w:
        w.write("three\n")
    g = FileFollower(log, cursor.load())
    assert texts(g.poll()) == ["three"]


def test_resume_after_a_rotation_while_stopped_finishes_the_old_file_first(tmp_path):
    log = tmp_path / "mail.log"
    log.write_text("")
    f = FileFollower(log, drain_seconds=0)
    with open(log, "a") as w:
        w.write("one\n")
    position = last_position(f.poll())
    f.close()
    with open(log, "a") as w:
        w.write("two\n")
    os.rename(log, tmp_path / "mail.log.1")
    log.write_text("three\n")
    g = FileFollower(log, position, drain_seconds=0)
    assert texts(g.poll()) == ["two", "three"]


def test_resume_after_a_rotation_whose_old_file_is_gone(tmp_path):
    log = tmp_path / "mail.log"
    log.write_text("")
    f = FileFollower(log)
    with open(log, "a") as w:
        w.write("one\n")
    position = last_position(f.poll())
    f.close()
    os.unlink(log)
    log.write_text("two\n")
    g = FileFollower(log, position)
    assert texts(g.poll()) == ["two"]


def test_resume_after_copytruncate_while_stopped_reads_from_the_start(tmp_path):
    log = tmp_path / "mail.log"
    log.write_text("")
    f = FileFollower(log)
    with open(log, "a") as w:
        w.write("Nov 29 10:00:00 one\n")
    position = last_position(f.poll())
    f.close()
    with open(log, "r+") as w:
        w.truncate(0)
    with open(log, "a") as w:
        w.write("Nov 29 11:00:00 two, longer than what was read before\n")  # same inode, bigger: the head differs
    g = FileFollower(log, position)
    assert texts(g.poll()) == ["Nov 29 11:00:00 two, longer than what was read before"]


def test_an_unreadable_cursor_starts_afresh(tmp_path):
    cursor = CursorFile(tmp_path)
    cursor.path.write_text("{not json")
    assert cursor.load() is None


def test_journal_command_and_records():
    assert journal_command(None) == ["journalctl", "-o", "json", "--no-pager", "--all", "SYSLOG_FACILITY=2", "-f",
                                     "-n", "all"]
    # -n all: following, journalctl printed 10 entries after the cursor, then waited (review30 D5)
    assert journal_command("s=abc")[-4:] == ["--after-cursor", "s=abc", "-n", "all"]
    line = journal_line({"MESSAGE": "ABCDEF123: removed", "SYSLOG_IDENTIFIER": "postfix/qmgr", "SYSLOG_PID": "12",
                         "_HOSTNAME": "mx", "__REALTIME_TIMESTAMP": "1764415481000000", "__CURSOR": "s=1"})
    assert (line.program, line.pid, line.host, line.text) == ("postfix/qmgr", 12, "mx", "ABCDEF123: removed")
    assert line.time.timestamp() == 1764415481
    # A field given twice comes as an array: no host, not a TypeError in the tracker (review30)
    twice = journal_line({"MESSAGE": "ABCDEF123: removed", "SYSLOG_IDENTIFIER": "postfix/qmgr", "_HOSTNAME": ["a", "b"]})
    assert twice.host == ""
    raw = journal_line({"MESSAGE": list("héllo".encode()), "SYSLOG_IDENTIFIER": "postfix/smtp"})
    assert raw.text == "héllo" and raw.time is None


def test_resume_after_a_rotation_that_compressed_the_old_file(tmp_path):
    import gzip

    log = tmp_path / "mail.log"
    log.write_text("")
    f = FileFollower(log, drain_seconds=0)
    with open(log, "a") as w:
        w.write("Nov 29 10:00:00 one\n")
    position = last_position(f.poll())
    f.close()
    with open(log, "a") as w:
        w.write("Nov 29 10:00:01 two\n")
    (tmp_path / "mail.log.20261129-100002.gz").write_bytes(gzip.compress(log.read_bytes()))
    log.unlink()
    log.write_text("Nov 29 10:00:03 three\n")
    g = FileFollower(log, position, drain_seconds=0)
    assert texts(g.poll()) == ["Nov 29 10:00:01 two", "Nov 29 10:00:03 three"]


def test_resume_after_copytruncate_while_stopped_finishes_the_copy(tmp_path):
    import shutil

    log = tmp_path / "mail.log"
    log.write_text("")
    f = FileFollower(log, drain_seconds=0)
    with open(log, "a") as w:
        w.write("Nov 29 10:00:00 one\n")
    position = last_position(f.poll())
    f.close()
    with open(log, "a") as w:
        w.write("Nov 29 10:00:01 two\n")
    shutil.copyfile(log, tmp_path / "mail.log.1")
    with open(log, "r+") as w:
        w.truncate(0)
    with open(log, "a") as w:
        w.write("Nov 29 10:00:03 three\n")
    g = FileFollower(log, position, drain_seconds=0)
    assert texts(g.poll()) == ["Nov 29 10:00:01 two", "Nov 29 10:00:03 three"]


def test_a_restarted_follower_still_knows_the_sender_of_a_message_accepted_before(tmp_path):
    """qmgr logged the sender before the restart, the result comes after: the event still has it."""
    import asyncio
    import json

    from relay.config import load_settings
    from relay.intake.follower import PostfixLogFollower
    from relay.outcomes import open_outcomes
    from relay.policies import load_policies

    log = tmp_path / "maillog"
    log.write_text("")
    config = tmp_path / "relay.yaml"
    config.write_text(f"hostname: r.test\nbounce_list: sqlite:///b.db\nevents: [{{jsonl: events.jsonl}}]\n"
                      f"postfix_log: {{path: {log}, state_directory: state}}\n")
    settings = load_settings(config)

    async def follow_until_idle():
        outcomes, close = await open_outcomes(settings, load_policies(settings))
        follower = PostfixLogFollower(settings, outcomes, poll_interval=0.05)
        await follower.start()
        try:
            await asyncio.wait_for(follower.idle.wait(), 10)
        finally:
            await follower.stop()
            await close()

    asyncio.run(follow_until_idle())
    with open(log, "a") as w:
        w.write("Nov 29 11:24:41 pb postfix/cleanup[1]: A57A320C3C7: message-id=<m1@sender.test>\n"
                "Nov 29 11:24:41 pb postfix/qmgr[2]: A57A320C3C7: from=<bounces+c7@sender.test>, size=340, nrcpt=1 "
                "(queue active)\n")
    asyncio.run(follow_until_idle())
    with open(log, "a") as w:
        w.write("Nov 29 11:30:00 pb postfix/smtp[3]: A57A320C3C7: to=<gone@gmail.test>, relay=mx[192.0.2.1]:25, "
                "delay=0.1, delays=0/0/0/0.1, dsn=5.1.1, status=bounced (host mx[192.0.2.1] said: 550 5.1.1 "
                "no such user (in reply to RCPT TO command))\n")
    asyncio.run(follow_until_idle())
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    (rejected,) = [e for e in events if e["kind"] == "rejected"]
    assert rejected["sender"] == "bounces+c7@sender.test" and rejected["message_id"] == "<m1@sender.test>"
    assert [e["recipient"] for e in events if e["kind"] == "bounce_listed"] == ["gone@gmail.test"]


def test_a_long_backlog_comes_in_several_polls(tmp_path):
    log = tmp_path / "mail.log"
    log.write_text("")
    f = FileFollower(log)
    line = "x" * 99 + "\n"
    with open(log, "a") as w:
        w.write(line * 60000)  # 6 MB: more than one poll reads
    first = f.poll()
    assert 0 < len(first) < 60000
    rest = []
    while True:
        more = f.poll()
        if not more:
            break
        rest += more
    assert len(first) + len(rest) == 60000
    assert last_position(first + rest)["offset"] == 6_000_000


# -- a log replaced by a copy of itself (review18 F4) ----------------------------------------------
# `sed -i` on the log writes a new file with the same lines and renames it over the log; a copy put
# back (moved, or copied into the file) is the same. Before, the new file was read from its start as
# after a rotation: every line's events were written again. Now a replacement is read from the first
# byte where it differs from what was read (docs/postfix-log.md, "Following, rotation, restarts").

def _bounce(n: int, recipient: str) -> str:
    return (f"Nov 29 11:30:{n:02d} pb postfix/smtp[3{n:02d}]: A57A320C{n:03d}: to=<{recipient}>, "
            f"relay=mx[192.0.2.1]:25, delay=0.1, delays=0/0/0/0.1, dsn=5.1.1, status=bounced (host "
            f"mx[192.0.2.1] said: 550 5.1.1 no such user (in reply to RCPT TO command))\n")


def _postfix_log_relay(tmp_path):
    from tests.support.relay_proc import RunningRelay, write_config

    log = tmp_path / "mail.log"
    if not log.exists():
        log.write_text("")
    config = write_config(tmp_path, 0, listen=None, upstream=None,
                          postfix_log={"path": str(log), "state_directory": str(tmp_path / "state")})
    return log, RunningRelay(config)


def _wait_idle(relay) -> None:
    import asyncio

    async def idle():
        follower = relay.server.follower
        follower.idle.clear()
        await asyncio.wait_for(follower.idle.wait(), 30)
    relay.call(idle(), timeout=40)


def _rejected_once_there(relay, recipients: list[str]) -> list[str]:
    """The rejected events' recipients once each of `recipients` has one (or 60 s passed), and the
    follower has read everything since."""
    import time

    deadline = time.time() + 60
    while True:
        got = [e["recipient"] for e in relay.events() if e["kind"] == "rejected"]
        if all(r in got for r in recipients) or time.time() > deadline:
            break
        time.sleep(0.05)
    _wait_idle(relay)
    return [e["recipient"] for e in relay.events() if e["kind"] == "rejected"]


def test_sed_i_on_the_followed_log_does_not_write_its_events_again(tmp_path):
    import subprocess

    log, relay = _postfix_log_relay(tmp_path)
    try:
        _wait_idle(relay)  # the first start follows from the end
        with open(log, "a") as w:
            w.write(_bounce(1, "first@gmail.test") + "Nov 29 11:30:02 pb postfix/qmgr[2]: A57A320C001: removed\n")
        assert _rejected_once_there(relay, ["first@gmail.test"]) == ["first@gmail.test"]
        inode = log.stat().st_ino
        subprocess.run(["sed", "-i", "-e", "s/ removed$/ removed/", str(log)], check=True)
        assert log.stat().st_ino != inode  # sed -i put a new file in the log's place
        with open(log, "a") as w:
            w.write(_bounce(3, "second@gmail.test"))
        rejected = _rejected_once_there(relay, ["second@gmail.test"])
    finally:
        relay.stop()
    assert rejected == ["first@gmail.test", "second@gmail.test"]


def test_a_copy_moved_back_while_the_writer_still_appends_to_the_old_file(tmp_path):
    # A syslog daemon keeps writing to the file it has open until it is told to reopen: the line it
    # writes after the copy was taken goes to the old file (read from there), and what it writes once
    # reopened goes to the copy, after the old lines.
    import shutil

    log, relay = _postfix_log_relay(tmp_path)
    try:
        _wait_idle(relay)
        writer = open(log, "a", buffering=1)
        writer.write(_bounce(1, "first@gmail.test"))
        assert _rejected_once_there(relay, ["first@gmail.test"]) == ["first@gmail.test"]
        shutil.copyfile(log, tmp_path / "mail.log.copy")
        writer.write(_bounce(2, "late@gmail.test"))  # the old file, after the copy was taken
        (tmp_path / "mail.log.copy").rename(log)
        assert sorted(_rejected_once_there(relay, ["late@gmail.test"])) == ["first@gmail.test", "late@gmail.test"]
        writer.close()
        with open(log, "a") as reopened:
            reopened.write(_bounce(3, "third@gmail.test"))
        rejected = _rejected_once_there(relay, ["third@gmail.test"])
    finally:
        relay.stop()
    assert sorted(rejected) == ["first@gmail.test", "late@gmail.test", "third@gmail.test"]


def test_a_copy_put_back_while_relay_was_stopped_is_read_on_from_the_cursor(tmp_path):
    import subprocess

    log, relay = _postfix_log_relay(tmp_path)
    try:
        _wait_idle(relay)
        with open(log, "a") as w:
            w.write(_bounce(1, "first@gmail.test"))
        assert _rejected_once_there(relay, ["first@gmail.test"]) == ["first@gmail.test"]
    finally:
        relay.stop()
    subprocess.run(["sed", "-i", "-e", "s/ 550 / 550 /", str(log)], check=True)
    with open(log, "a") as w:
        w.write(_bounce(2, "second@gmail.test"))
    log, relay = _postfix_log_relay(tmp_path)
    try:
        rejected = _rejected_once_there(relay, ["second@gmail.test"])
    finally:
        relay.stop()
    # The events file holds both runs' events: first once, second once.
    assert rejected == ["first@gmail.test", "second@gmail.test"]


def test_a_copy_written_back_into_the_same_file_is_waited_for_and_not_read_again(tmp_path):
    # `cp saved mail.log`: the same inode, emptied, then written again; a poll can come half-way.
    log = tmp_path / "mail.log"
    log.write_text("")
    f = FileFollower(log)
    lines = [_bounce(n, f"r{n}@gmail.test") for n in range(1, 4)]  # more than HEAD_BYTES in all
    with open(log, "a") as w:
        w.write("".join(lines))
    assert len(f.poll()) == 3
    whole = log.read_bytes()
    with open(log, "r+b") as w:
        w.truncate(0)
        w.write(whole[:100])  # the copy has only begun
    assert f.poll() == []
    with open(log, "ab") as w:
        w.write(whole[100:] + _bounce(4, "new@gmail.test").encode())
    assert texts(f.poll()) == [_bounce(4, "new@gmail.test").rstrip("\n")]


def test_a_shorter_file_that_starts_as_the_old_one_is_read_from_its_start_once_it_stops_growing(tmp_path):
    # Neither a copy of what was read (shorter) nor a new log (the same first lines): read again, as
    # before, rather than risk a line never read.
    log = tmp_path / "mail.log"
    log.write_text("")
    f = FileFollower(log, drain_seconds=0)
    lines = [_bounce(n, f"r{n}@gmail.test") for n in range(1, 5)]
    with open(log, "a") as w:
        w.write("".join(lines))
    assert len(f.poll()) == 4
    with open(log, "r+") as w:
        w.truncate(0)
        w.write("".join(lines[:3]))
    assert f.poll() == []  # it may still be growing
    assert len(f.poll()) == 3  # it did not grow


def test_a_new_log_created_empty_after_a_rename_is_read_from_its_start(tmp_path):
    log = tmp_path / "mail.log"
    log.write_text("")
    f = FileFollower(log, drain_seconds=0)
    with open(log, "a") as w:
        w.write(_bounce(1, "a@gmail.test"))
    assert len(f.poll()) == 1
    os.rename(log, tmp_path / "mail.log.1")
    log.write_text("")
    assert f.poll() == []
    with open(log, "a") as w:
        w.write(_bounce(2, "b@gmail.test"))
    assert texts(f.poll()) == [_bounce(2, "b@gmail.test").rstrip("\n")]
    assert f.rotations == 1


def test_a_cursor_computed_when_asked_is_the_one_read_from_the_file(tmp_path):
    # Only an observation's line and a batch's last need their cursor: each line's is computed when
    # asked, from the bytes read (the first lines of the file, lines across reads of READ_BYTES, a line
    # longer than the head), and is the one _OpenFile.position reads back from the file itself.
    import random

    from relay.intake.follower import READ_BYTES

    rng = random.Random(7)
    log = tmp_path / "mail.log"
    log.write_bytes(b"")
    f = FileFollower(log)
    lines = ["a", "bb", "x" * 300] + ["line %d %s" % (n, "y" * rng.randrange(0, 400)) for n in range(12_000)]
    with open(log, "a") as w:
        w.write("\n".join(lines) + "\n")
    assert log.stat().st_size > 2 * READ_BYTES
    got = []
    while True:
        batch = f.poll()
        if not batch:
            break
        got.extend(batch)
    assert [t for t, _ in got] == lines
    for _, lazy in got[:50] + got[-50:] + got[::97]:
        assert lazy.as_dict() == f.current.position(lazy.offset).as_dict(), lazy.offset


# -- a log growing by garbage without a newline (review26 F4) ---------------------------------------

LIMIT = 64 * 1024  # relay.intake.follower.MAX_LINE
DELIVERY = ("Dec  1 10:00:00 mx postfix/smtp[123]: 4F9D21C2E: to=<a@example.com>, relay=none, delay=1, "
            "dsn=4.4.1, status=deferred (connect to example.com[192.0.2.1]:25: Connection refused)\n")


def test_a_run_of_nuls_without_a_newline_is_never_held_whole_and_is_skipped_to_its_newline(tmp_path):
    # What a crash or a filesystem's recovery leaves in a log: the whole run was kept as the pending line
    # and copied again at every 1 MiB read (256 MiB: 1 GB and 42 s), then handed on as one line.
    log = tmp_path / "mail.log"
    log.write_text(DELIVERY)
    f = FileFollower(log)
    assert f.poll() == []
    with open(log, "ab") as w:
        w.write(b"\0" * (12 << 20))
    for _ in range(8):  # a poll reads about 4 MiB: three of them pass the run
        assert f.poll() == []
        assert len(f.current.pending) <= LIMIT  # never more than one line's worth kept
    assert getattr(f, "lines_cut", None) == 1
    with open(log, "a") as w:
        w.write("\n" + DELIVERY)
    lines = f.poll()
    assert texts(lines) == [DELIVERY.rstrip("\n")]
    assert last_position(lines)["offset"] == log.stat().st_size
    assert f.lines_cut == 1


def test_lines_up_to_the_limit_are_handed_on_and_longer_ones_skipped_whole(tmp_path):
    MAX_LINE = LIMIT
    log = tmp_path / "mail.log"
    log.write_text("")
    f = FileFollower(log)
    with open(log, "a") as w:
        w.write("a" * MAX_LINE + "\n" + "b" * (MAX_LINE + 1) + "\n" + "c" * 10)
    assert [len(t) for t in texts(f.poll())] == [MAX_LINE]
    assert f.lines_cut == 1
    with open(log, "a") as w:
        w.write("c" * (MAX_LINE - 10) + "\nafter\n")  # a line grown across reads, still within the limit
    assert [t[:1] + str(len(t)) for t in texts(f.poll())] == [f"c{MAX_LINE}", "a5"]
    with open(log, "a") as w:
        w.write("d" * 100)
    assert f.poll() == []
    with open(log, "a") as w:
        w.write("d" * MAX_LINE)  # now past the limit without its newline: dropped, counted once
    assert f.poll() == [] and f.current.pending == b"" and f.lines_cut == 2
    with open(log, "a") as w:
        w.write("d" * 5 + "\nlast\n")
    lines = f.poll()
    assert texts(lines) == ["last"] and last_position(lines)["offset"] == log.stat().st_size
    assert f.lines_cut == 2


def test_cursors_around_skipped_lines_are_the_ones_read_from_the_file(tmp_path):
    # Skipped bytes are not kept: a cursor after them (a short line just past a long run, a file's first
    # lines after one) is still the one _OpenFile.position reads back from the file.
    log = tmp_path / "mail.log"
    log.write_bytes(b"")
    f = FileFollower(log)
    with open(log, "ab") as w:
        w.write(b"\0" * 100_000 + b"\nab\ncd\n" + b"e" * (3 << 20) + b"\nf\n" + b"g" * 70_000)
    got = []
    for _ in range(4):
        got += f.poll()
    with open(log, "ab") as w:
        w.write(b"g\nh\n")
    got += f.poll()
    assert [t for t, _ in got] == ["ab", "cd", "f", "h"] and f.lines_cut == 3
    for _, lazy in got:
        assert lazy.as_dict() == f.current.position(lazy.offset).as_dict(), lazy.offset


# -- lines drained from a rotated file move the cursor (review30 D4) ---------------------------------

def test_lines_written_into_a_just_rotated_log_are_not_read_again_after_a_restart(tmp_path):
    # logrotate's `create`: rename, create the new empty log, then HUP syslog in postrotate; syslog
    # writes on into the renamed file meanwhile. Those lines carried no cursor: after a restart before
    # the new log's first line, the old file was found by its inode and they were read again (their
    # events, webhooks included, written twice).
    import time

    (tmp_path / "mail.log").write_text("Nov 29 11:29:59 pb postfix/qmgr[2]: A57A320C000: removed\n")
    log, relay = _postfix_log_relay(tmp_path)
    try:
        _wait_idle(relay)
        syslog = open(log, "a", buffering=1)  # the writer's open descriptor
        os.rename(log, tmp_path / "mail.log.1")
        log.write_text("")
        deadline = time.monotonic() + 30
        while relay.server.follower._follower.rotations < 1 and time.monotonic() < deadline:
            time.sleep(0.05)  # the follower has seen the new file
        assert relay.server.follower._follower.rotations == 1
        syslog.write(_bounce(2, "late@gmail.test"))
        syslog.close()
        assert _rejected_once_there(relay, ["late@gmail.test"]) == ["late@gmail.test"]
    finally:
        relay.stop()
    log, relay = _postfix_log_relay(tmp_path)  # restarted before the new log's first line
    try:
        _wait_idle(relay)
        with open(log, "a") as w:
            w.write(_bounce(3, "next@gmail.test"))
        rejected = _rejected_once_there(relay, ["next@gmail.test"])
    finally:
        relay.stop()
    assert rejected == ["late@gmail.test", "next@gmail.test"]


def test_lines_of_a_rotated_file_read_after_a_restart_move_the_cursor_also_when_it_was_compressed(tmp_path):
    import gzip

    log = tmp_path / "mail.log"
    log.write_text("")
    f = FileFollower(log, drain_seconds=0)
    with open(log, "a") as w:
        w.write("Nov 29 10:00:00 one\n")
    position = last_position(f.poll())
    f.close()
    with open(log, "a") as w:
        w.write("Nov 29 10:00:01 two\n")
    (tmp_path / "mail.log.1.gz").write_bytes(gzip.compress(log.read_bytes()))
    log.unlink()
    log.write_text("")
    g = FileFollower(log, position, drain_seconds=0)
    assert texts(lines := g.poll()) == ["Nov 29 10:00:01 two"]
    position = last_position(lines)  # the compressed file's, after "two"
    g.close()
    h = FileFollower(log, position, drain_seconds=0)  # restarted again before the new log's first line
    assert h.poll() == []
    with open(log, "a") as w:
        w.write("Nov 29 10:00:03 three\n")
    assert texts(h.poll()) == ["Nov 29 10:00:03 three"]


def test_once_the_new_log_was_read_a_line_of_the_old_one_leaves_the_cursor_on_the_new_one(tmp_path):
    log = tmp_path / "mail.log"
    log.write_text("")
    f = FileFollower(log, drain_seconds=60)
    writer = open(log, "a", buffering=1)
    os.rename(log, tmp_path / "mail.log.1")
    log.write_text("")
    assert f.poll() == []
    with open(log, "a") as w:
        w.write("Nov 29 10:00:02 new\n")
    writer.write("Nov 29 10:00:03 old, late\n")
    writer.close()
    lines = f.poll()
    assert texts(lines) == ["Nov 29 10:00:03 old, late", "Nov 29 10:00:02 new"]
    assert lines[0][1] is not None  # nothing of the new log read yet when it was read
    writer = open(tmp_path / "mail.log.1", "a")
    writer.write("Nov 29 10:00:04 old, later\n")
    writer.close()
    (late,) = f.poll()
    assert late[1] is None  # the cursor stays on the new log: a restart does not read it again
    position = last_position(lines)
    f.close()
    g = FileFollower(log, position, drain_seconds=0)
    assert g.poll() == []


def test_a_result_being_recorded_when_the_relay_stops_has_its_event_and_is_not_read_again(tmp_path, monkeypatch):
    """The follower hands a 550 5.1.1 from Postfix's log to the funnel while the bounce list is locked by
    another process, and the relay stops (SIGTERM) meanwhile: the follower's task is cancelled in the bounce
    list's write. Its cursor was saved past the line first (a crash must not record a line twice), so the
    restart never reads it again, and the result's event, made only after the write, was lost: no event at
    all. Now the event is written as the follower stops, `bounce_list: error` with why (its failure neither
    counted nor listed; the address is logged), and the restart does not write it a second time."""
    import json

    from relay.store.sqlite import SQLiteBounceStore
    from tests.support.client_gone import bounce_list_locked
    from tests.support.processes import wait_until

    # The relay's write waits up to 30 s for the lock (2 s by default), however loaded this machine is.
    monkeypatch.setitem(SQLiteBounceStore.__init__.__kwdefaults__, "write_timeout", 30.0)
    log, relay = _postfix_log_relay(tmp_path)
    try:
        _wait_idle(relay)  # the first start follows from the end
        follower = relay.server.follower
        with bounce_list_locked(tmp_path, monkeypatch):
            line = _bounce(1, "held@gmail.test")
            with open(log, "a") as w:
                w.write(line)
            size = log.stat().st_size
            # The line's position is saved (the follower then records its result, and waits for the list).
            wait_until(lambda: (follower._saved or {}).get("offset") == size)
            stopping = relay.begin_stop()
            # The list stays held until the follower has stopped (its event written, on main never).
            wait_until(lambda: follower._task is None and any(e["kind"] == "rejected" for e in relay.events()),
                       timeout=30)
        stopping.result(60)
    finally:
        relay.stop()
    events = relay.events()
    # On main (63b3368): [].
    assert [(e["kind"], e["recipient"]) for e in events] == [("rejected", "held@gmail.test")], events
    assert events[0]["bounce_list"] == "error" and "stopped waiting" in events[0]["bounce_list_error"], events[0]
    assert json.loads((tmp_path / "state" / "postfix-log.cursor").read_text())["offset"] == size
    log, relay = _postfix_log_relay(tmp_path)  # the list is free now
    try:
        _wait_idle(relay)
        with open(log, "a") as w:
            w.write(_bounce(2, "next@gmail.test"))
        rejected = _rejected_once_there(relay, ["next@gmail.test"])
    finally:
        relay.stop()
    assert rejected == ["held@gmail.test", "next@gmail.test"]  # held@ once: not read again
