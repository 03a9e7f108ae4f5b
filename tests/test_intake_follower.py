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
    assert journal_command("s=abc")[-2:] == ["--after-cursor", "s=abc"]
    line = journal_line({"MESSAGE": "ABCDEF123: removed", "SYSLOG_IDENTIFIER": "postfix/qmgr", "SYSLOG_PID": "12",
                         "_HOSTNAME": "mx", "__REALTIME_TIMESTAMP": "1764415481000000", "__CURSOR": "s=1"})
    assert (line.program, line.pid, line.host, line.text) == ("postfix/qmgr", 12, "mx", "ABCDEF123: removed")
    assert line.time.timestamp() == 1764415481
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
