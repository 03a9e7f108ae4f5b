"""Following the systemd journal with the real journalctl: entries written into a journal file by
systemd-journal-remote (the journal's own writer), read with `journalctl --directory` (postfix_log:
{journal: true, journal_directory: ...}), resumed from the journal's cursor after a restart."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import subprocess
import time
from pathlib import Path

import pytest

from relay.config import load_settings
from relay.intake.follower import PostfixLogFollower
from relay.outcomes import open_outcomes
from relay.policies import load_policies

JOURNAL_REMOTE = Path("/lib/systemd/systemd-journal-remote")


def write_journal(directory: Path, entries: list[tuple[str, str]]) -> None:
    """Append entries (SYSLOG_IDENTIFIER, MESSAGE) to DIRECTORY/postfix.journal in the journal export format."""
    now = int(time.time() * 1e6)
    export = "".join(
        f"__REALTIME_TIMESTAMP={now + i}\n__MONOTONIC_TIMESTAMP={now + i}\n"
        f"_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=mx.test\nSYSLOG_FACILITY=2\n"
        f"SYSLOG_IDENTIFIER={ident}\nSYSLOG_PID={100 + i}\nMESSAGE={message}\n\n"
        for i, (ident, message) in enumerate(entries))
    out = subprocess.run([str(JOURNAL_REMOTE), "-o", str(directory / "postfix.journal"), "-"], input=export,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr


def bounce(qid: str, rcpt: str) -> list[tuple[str, str]]:
    return [("postfix/cleanup", f"{qid}: message-id=<{qid}@sender.test>"),
            ("postfix/qmgr", f"{qid}: from=<a@sender.test>, size=300, nrcpt=1 (queue active)"),
            ("postfix/smtp", f"{qid}: to=<{rcpt}>, relay=mx[192.0.2.1]:25, delay=0.1, delays=0/0/0/0.1, dsn=5.1.1, "
                             f"status=bounced (host mx[192.0.2.1] said: 550-5.1.1 The email account that you tried "
                             f"to reach does not exist. 550 5.1.1 Please check. - gsmtp (in reply to RCPT TO command))"),
            ("postfix/qmgr", f"{qid}: removed")]


def test_the_journal_is_followed_and_resumed_from_its_cursor(tmp_path):
    journal = tmp_path / "journal"
    journal.mkdir()
    write_journal(journal, bounce("A1B2C3D4E5", "old@gmail.test"))  # before the first start: not read
    config = tmp_path / "relay.yaml"
    config.write_text(f"hostname: r.test\nbounce_list: sqlite:///b.db\nevents: [{{jsonl: events.jsonl}}]\n"
                      f"postfix_log: {{journal: true, journal_directory: {journal}, state_directory: state}}\n")
    settings = load_settings(config)

    async def follow(write=None):
        outcomes, close = await open_outcomes(settings, load_policies(settings))
        follower = PostfixLogFollower(settings, outcomes, poll_interval=0.5)
        await follower.start()
        try:
            await asyncio.wait_for(follower.idle.wait(), 20)  # journalctl is running and has caught up
            if write:
                await asyncio.to_thread(write)
                deadline = time.monotonic() + 20
                while follower.observed < 1 and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                follower.idle.clear()
                await asyncio.wait_for(follower.idle.wait(), 20)
        finally:
            await follower.stop()
            await close()

    asyncio.run(follow(lambda: write_journal(journal, bounce("B1B2C3D4E5", "first@gmail.test"))))
    write_journal(journal, bounce("C1B2C3D4E5", "second@gmail.test"))  # while stopped
    asyncio.run(follow())
    asyncio.run(follow())  # nothing new: nothing read twice

    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    rejected = [e for e in events if e["kind"] == "rejected"]
    assert [e["recipient"] for e in rejected] == ["first@gmail.test", "second@gmail.test"]
    assert rejected[0]["reply"]["text"] == ("550-5.1.1 The email account that you tried to reach does not exist.\n"
                                            "550 5.1.1 Please check. - gsmtp")
    assert rejected[0]["sender"] == "a@sender.test" and rejected[0]["message_id"] == "<B1B2C3D4E5@sender.test>"
    assert rejected[0]["postfix"]["program"] == "postfix/smtp" and rejected[0]["postfix"]["host"] == "mx.test"
    assert [e["recipient"] for e in events if e["kind"] == "bounce_listed"] == ["first@gmail.test", "second@gmail.test"]
    assert json.loads((tmp_path / "state" / "postfix-log.cursor").read_text())["kind"] == "journal"


def test_journal_without_journalctl_stops_serve_with_one_line(tmp_path, monkeypatch):
    config = tmp_path / "relay.yaml"
    config.write_text("hostname: r.test\nbounce_list: sqlite:///b.db\npostfix_log: {journal: true, state_directory: s}\n")
    monkeypatch.setenv("PATH", str(tmp_path))  # a system without systemd: no journalctl anywhere
    settings = load_settings(config)

    async def start():
        outcomes, close = await open_outcomes(settings, load_policies(settings))
        try:
            await PostfixLogFollower(settings, outcomes).start()
        finally:
            await close()

    with pytest.raises(OSError, match="journalctl was not found"):
        asyncio.run(start())


def journal_settings(tmp_path, monkeypatch, journalctl: str):
    """Settings of a relay following the journal, with `journalctl` (a script's text) first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "journalctl"
    fake.write_text(journalctl)
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    config = tmp_path / "relay.yaml"
    config.write_text("hostname: r.test\nbounce_list: sqlite:///b.db\n"
                      "postfix_log: {journal: true, state_directory: state}\n")
    return load_settings(config)


def test_stopping_while_journalctl_streams_lines_returns(tmp_path, monkeypatch):
    """stop() cancels the reading task while a line is on its way: the cancellation must win, not
    the line (a busy mail server's journal always has the next line on its way)."""
    flowing = tmp_path / "flowing"
    entry = json.dumps({"__CURSOR": "c1", "SYSLOG_IDENTIFIER": "postfix/qmgr", "MESSAGE": "A1B2C3D4E5: removed",
                        "_HOSTNAME": "mx.test", "__REALTIME_TIMESTAMP": "1700000000000000"})
    # Following (-f), it writes entries without pause while FLOWING exists, and nothing after.
    settings = journal_settings(tmp_path, monkeypatch,
                                f"#!{sys.executable}\nimport os, sys, time\nline = {entry!r} + '\\n'\n"
                                f"if '-f' not in sys.argv:\n    print(line, end='')\n    sys.exit(0)\n"
                                f"while True:\n    if os.path.exists({str(flowing)!r}):\n"
                                f"        sys.stdout.write(line * 50)\n        sys.stdout.flush()\n"
                                f"    else:\n        time.sleep(0.05)\n")

    async def start_and_stop() -> int:
        outcomes, close = await open_outcomes(settings, load_policies(settings))
        hung = 0
        try:
            for _ in range(5):
                flowing.touch()
                follower = PostfixLogFollower(settings, outcomes, poll_interval=0.5)
                taken = [0]
                hand_over = follower._hand_over

                async def counting_hand_over(line, position, taken=taken, hand_over=hand_over):
                    taken[0] += 1
                    await hand_over(line, position)

                follower._hand_over = counting_hand_over
                await follower.start()
                await asyncio.sleep(0.2)  # entries are flowing
                stopping = asyncio.ensure_future(follower.stop())
                try:
                    await asyncio.wait_for(asyncio.shield(stopping), 5)
                except asyncio.TimeoutError:
                    # Slow, or lost? A stop() that is only slow (a loaded machine's fsync of the cursor
                    # file, a child being reaped) has left the reading loop and takes no line any more; it
                    # gets its time (stop()'s own deadlines sum to 30 s). A lost cancellation reads on.
                    # (Not done after 125 s, twice under load: Process.wait() waiting for the end of a
                    # paused stdout, see test_stop_returns_when_journalctl_is_far_ahead_of_the_follower.)
                    seen = taken[0]
                    await asyncio.sleep(1)
                    if taken[0] == seen:
                        await asyncio.wait_for(asyncio.shield(stopping), 120)
                        continue
                    # The cancellation was lost: dry the stream up and cancel until one lands, to end
                    # the test (the lines already read ahead are still being taken).
                    hung += 1
                    flowing.unlink()
                    while not stopping.done() and follower._task is not None:
                        follower._task.cancel()
                        await asyncio.sleep(0.05)
                    await stopping
        finally:
            await close()
        return hung

    assert asyncio.run(start_and_stop()) == 0


def test_stopping_while_the_first_start_asks_for_the_newest_entry_ends_that_journalctl(tmp_path, monkeypatch):
    """The first start asks `journalctl -n 1` for the newest mail entry; stop() while it has not
    answered (a journal being rotated, a slow disk) cancelled the wait, and the journalctl was left
    running, never reaped (its transport closed only when garbage collected, after the loop)."""
    pid_file = tmp_path / "tail.pid"
    settings = journal_settings(tmp_path, monkeypatch, f"#!{sys.executable}\nimport os, time\n"
                                f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)\n")

    async def start_and_stop() -> int:
        outcomes, close = await open_outcomes(settings, load_policies(settings))
        try:
            follower = PostfixLogFollower(settings, outcomes, poll_interval=0.5)
            await follower.start()
            for _ in range(200):  # the fake journalctl has started and is waiting
                if pid_file.exists() and pid_file.read_text():
                    break
                await asyncio.sleep(0.05)
            await asyncio.wait_for(follower.stop(), 10)
            return int(pid_file.read_text())
        finally:
            await close()

    pid = asyncio.run(start_and_stop())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return  # ended and reaped
    os.kill(pid, 9)
    pytest.fail(f"journalctl -n 1 (pid {pid}) was still running after stop()")


# -- stop() is bounded: journalctl ended and reaped, the cursor saved or given up, every wait with a deadline

def gone(pid: int) -> bool:
    """Not running: reaped, or a zombie waiting for a reaper that is not relay (an orphan's init)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


# The body of a fake journalctl that says it is ready, then writes a line every 50 ms for ever.
STREAMS_FOR_EVER = """
open(os.path.join(here, 'READY'), 'w').close()
while True:
    os.write(1, line)
    time.sleep(0.05)
"""


def stop_with_a_stuck_save(tmp_path, monkeypatch, journalctl_body: str, tune=None):
    """Starts a follower on a fake journalctl (`journalctl_body`, Python, following: the entry to write
    is `line`, this directory `here`) with a cursor already saved, and a cursor save that does not
    return until released; stop()s it once the first save is stuck and the fake says it is ready
    (touches READY). Returns (stop() finished within 60 s, the fake's pid, its descendant's pid if any)."""
    import threading

    entry = json.dumps({"__CURSOR": "c1", "SYSLOG_IDENTIFIER": "postfix/qmgr", "MESSAGE": "A1B2C3D4E5: removed",
                        "_HOSTNAME": "mx.test", "__REALTIME_TIMESTAMP": "1700000000000000"})
    body = "\n".join(f"    {row}" for row in journalctl_body.strip("\n").splitlines())
    settings = journal_settings(tmp_path, monkeypatch,
                                f"#!{sys.executable}\nimport os, subprocess, sys, time\n"
                                f"here = {str(tmp_path)!r}\nline = ({entry!r} + '\\n').encode()\n"
                                f"if '-f' not in sys.argv:\n    sys.exit(0)\n"  # the warm-up's reading back: none
                                f"open(os.path.join(here, 'journalctl.pid'), 'w').write(str(os.getpid()))\n"
                                f"if True:\n{body}\n")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "postfix-log.cursor").write_text(json.dumps({"kind": "journal", "cursor": "c0"}))
    stuck, release = threading.Event(), threading.Event()

    def stuck_save(data):  # an fsync that does not return (a hung disk, an NFS state directory)
        stuck.set()
        release.wait(600)

    async def start_and_stop() -> bool:
        outcomes, close = await open_outcomes(settings, load_policies(settings))
        follower = PostfixLogFollower(settings, outcomes, poll_interval=0.5)
        if tune:
            tune(follower)
        follower.cursor.save = stuck_save
        try:
            await follower.start()
            for _ in range(600):
                if stuck.is_set() and (tmp_path / "READY").exists():
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail("the follower's first save or the fake journalctl's READY never came")
            stopping = asyncio.ensure_future(follower.stop())
            await asyncio.sleep(0)  # stop() has cancelled the reading task
            if not (tune and getattr(tune, "keep_stuck", False)):
                release.set()
            # A generous bound (stop()'s own deadlines sum to 30 s), and not wait_for(): a stop() that
            # swallows the cancellation that wait_for() sends at its timeout looks like one that returned.
            await asyncio.wait({stopping}, timeout=60)
            if stopping.done():
                stopping.result()
                return True
            stopping.cancel()
            await asyncio.wait({stopping}, timeout=10)
            return False
        finally:
            if not getattr(tune, "never_released", False):
                release.set()
            await close()

    # Released in 60 s at the latest, so that a run that waits for the stuck save ends (and says so).
    threading.Timer(60, release.set).start()
    stopped = asyncio.run(start_and_stop())
    if getattr(tune, "never_released", False):
        tune.released_before_exit = release.is_set()
    pid = int((tmp_path / "journalctl.pid").read_text())
    child = tmp_path / "descendant.pid"
    return stopped, pid, int(child.read_text()) if child.exists() else None


def test_stop_returns_when_journalctl_is_far_ahead_of_the_follower(tmp_path, monkeypatch):
    """The CI hang (a full suite on a loaded machine, stop() not done after 125 s): journalctl writes
    faster than the follower takes lines, the follower waits on a slow cursor save, and the stdout
    reader, more than twice its limit (2 x 4 MiB) read ahead, stops reading. stop() killed journalctl,
    read stderr to its end and awaited Process.wait(), which in Python 3.11 also waits for stdout's end,
    never seen by a paused reader, when the exit is reported after wait() began. Under load that order
    is chance (stderr's end and the child watcher's thread race); here the fake's stderr is closed from
    the start, so that it is the order every time."""
    stopped, pid, _ = stop_with_a_stuck_save(tmp_path, monkeypatch, """
os.close(2)
written, chunk = 0, line * 300
while True:
    written += os.write(1, chunk)
    if written > 8 << 20:  # the reader is near twice its 4 MiB limit (the rest is in the pipe): it pauses
        open(os.path.join(here, 'READY'), 'w').close()
""")
    assert stopped, "stop() did not return within 60 s"
    assert gone(pid), f"journalctl (pid {pid}) was still running after stop()"


def test_stop_returns_when_a_descendant_of_journalctl_holds_its_pipes(tmp_path, monkeypatch):
    """journalctl's pipes held open by a process it started (a pager, a helper): stop() killed
    journalctl and read its stderr to an end that came only when that process ended. journalctl runs
    in a session of its own, and its whole group is ended."""
    stopped, pid, child = stop_with_a_stuck_save(tmp_path, monkeypatch, """
sleeper = subprocess.Popen(['sleep', '600'])
open(os.path.join(here, 'descendant.pid'), 'w').write(str(sleeper.pid))
""" + STREAMS_FOR_EVER)
    try:
        assert stopped, "stop() did not return within 60 s"
        assert gone(pid), f"journalctl (pid {pid}) was still running after stop()"
        assert gone(child), f"journalctl's descendant (pid {child}) was still running after stop()"
    finally:
        if not gone(child):
            os.kill(child, 9)


def test_stop_returns_when_a_daemonised_descendant_holds_journalctls_pipes(tmp_path, monkeypatch, caplog):
    """A descendant in a session of its own (outside journalctl's group: not ended with it) holds the
    pipes: after END_SECONDS the pipes are closed on relay's side, journalctl is reaped, stop() returns."""
    stopped, pid, child = stop_with_a_stuck_save(tmp_path, monkeypatch, """
sleeper = subprocess.Popen(['sleep', '600'], start_new_session=True)
open(os.path.join(here, 'descendant.pid'), 'w').write(str(sleeper.pid))
""" + STREAMS_FOR_EVER)
    try:
        assert stopped, "stop() did not return within 60 s"
        assert gone(pid), f"journalctl (pid {pid}) was still running after stop()"
        assert "a pipe of it stayed open" in caplog.text
    finally:
        if not gone(child):
            os.kill(child, 9)


def test_stop_returns_when_the_last_cursor_save_does_not(tmp_path, monkeypatch, caplog):
    """The last save in stop() never returns (the disk hangs): stop() gives up after SAVE_SECONDS,
    says so, and has ended journalctl."""

    def tune(follower):
        follower.SAVE_SECONDS = 1.0

    tune.keep_stuck = True
    stopped, pid, _ = stop_with_a_stuck_save(tmp_path, monkeypatch, STREAMS_FOR_EVER, tune=tune)
    assert stopped, "stop() did not return within 60 s"
    assert gone(pid), f"journalctl (pid {pid}) was still running after stop()"
    assert "the Postfix log cursor could not be saved within 1 s" in caplog.text


def test_a_stuck_cursor_save_does_not_hold_the_process_exit(tmp_path, monkeypatch):
    """stop() returned, but a save of the reading task that stop() cancelled went on in the default
    executor, and asyncio.run() waits for that executor's threads at exit (with no limit in 3.11):
    the relay did not exit until the disk answered. The save runs in a daemon thread of its own."""

    def tune(follower):
        follower.SAVE_SECONDS = 1.0

    tune.keep_stuck = tune.never_released = True
    stopped, pid, _ = stop_with_a_stuck_save(tmp_path, monkeypatch, STREAMS_FOR_EVER, tune=tune)
    assert stopped, "stop() did not return within 60 s"
    assert not tune.released_before_exit, "asyncio.run() waited for the stuck save (released by the 60 s timer)"
    assert gone(pid), f"journalctl (pid {pid}) was still running after stop()"


def test_asyncio_processes_still_have_the_private_transport_the_follower_closes():
    # relay/intake/follower.py _ended closes a Process's pipes through Process._transport (there is no
    # public way); when asyncio renames it, this fails rather than the follower leaving pipes open.
    async def go():
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass", stdout=asyncio.subprocess.PIPE)
        try:
            assert callable(getattr(getattr(proc, "_transport", None), "close", None))
        finally:
            await proc.communicate()

    asyncio.run(go())


def _journal_relay(tmp_path):
    journal = tmp_path / "journal"
    journal.mkdir()
    write_journal(journal, [("postfix/qmgr", "AAAA000001: removed")])
    config = tmp_path / "relay.yaml"
    config.write_text(f"hostname: r.test\nbounce_list: sqlite:///b.db\nevents: [{{jsonl: events.jsonl}}]\n"
                      f"postfix_log: {{journal: true, journal_directory: {journal}, state_directory: state}}\n")
    return journal, load_settings(config)


def _follow_until_idle(settings) -> None:
    """Start a follower, let it read what the journal holds (no write meanwhile), stop it."""
    async def follow():
        outcomes, close = await open_outcomes(settings, load_policies(settings))
        follower = PostfixLogFollower(settings, outcomes, poll_interval=0.5)
        await follower.start()
        try:
            await asyncio.wait_for(follower.idle.wait(), 30)
        finally:
            await follower.stop()
            await close()

    asyncio.run(follow())


def _events(tmp_path) -> list[dict]:
    path = tmp_path / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_message_queued_before_a_restart_keeps_its_sender_and_message_id(tmp_path):
    # review30 D2: file mode reads the log before its resume point again for correlation; journal mode
    # did not, and a result logged after a restart came without the sender, Message-ID and VERP fields
    # of a message whose cleanup and qmgr lines came before it.
    journal, settings = _journal_relay(tmp_path)
    _follow_until_idle(settings)  # the first start: the cursor is the journal's newest entry
    entries = bounce("B1B2C3D4E5", "first@gmail.test")
    write_journal(journal, entries[:2])  # message-id=, from=
    _follow_until_idle(settings)  # read live; then relay stops (an upgrade, a restart)
    write_journal(journal, entries[2:])  # its result, while relay is stopped
    _follow_until_idle(settings)
    (rejected,) = [e for e in _events(tmp_path) if e["kind"] == "rejected"]
    assert rejected["recipient"] == "first@gmail.test"
    assert rejected["sender"] == "a@sender.test", rejected
    assert rejected["message_id"] == "<B1B2C3D4E5@sender.test>", rejected


def test_a_backlog_of_more_than_ten_entries_is_read_without_a_further_write(tmp_path):
    # review30 D5: journalctl -f --after-cursor printed 10 entries, then waited for the journal to change.
    journal, settings = _journal_relay(tmp_path)
    _follow_until_idle(settings)
    backlog = []
    for i in range(20):
        backlog += bounce(f"B{i:04d}C3D4E5", f"user{i}@gmail.test")
    write_journal(journal, backlog)  # while relay is stopped: 80 entries, 20 bounces
    _follow_until_idle(settings)
    rejected = [e["recipient"] for e in _events(tmp_path) if e["kind"] == "rejected"]
    assert rejected == [f"user{i}@gmail.test" for i in range(20)], rejected
