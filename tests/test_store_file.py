"""The SQLite bounce-list file as operators meet it under a running relay: another process holding its
write lock, the file deleted, the file corrupted. Real processes, real sockets, the real CLI.

The client reads below have a deadline (RawSMTP's timeout) shorter than SQLite's old 5 s busy wait:
that is a bound on a hang, not a speed measurement."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.support.smtp_client import RawSMTP

# Holds the list's write lock (as a `relay bounces import`, a backup tool or an operator's sqlite3
# shell in a transaction would) until its stdin closes.
LOCK_HOLDER = textwrap.dedent("""
    import sqlite3, sys
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO relay_bounce_failures (address, category, at) VALUES ('x@y', 'other', 0)")
    print("locked", flush=True)
    sys.stdin.read()
""")


class LockHolder:
    def __init__(self, path: Path):
        self.proc = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


def cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "relay", "bounces", *args, "-c", str(config)],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def relay(upstream, relay_factory):
    return relay_factory(upstream.port, limits={"timeout": 30})


def db_path(relay) -> Path:
    return Path(relay.settings.bounce_list.removeprefix("sqlite:///"))


def test_a_write_waiting_for_the_lock_does_not_freeze_other_sessions(relay):
    """A refused RCPT lists the address (a write) while another process holds the write lock:
    another client's session goes on meanwhile, and the listing is done once the lock is free."""
    holder = LockHolder(db_path(relay))
    try:
        with RawSMTP(relay.host, relay.port) as a, RawSMTP(relay.host, relay.port, timeout=3) as b:
            a.cmd("EHLO a.test")
            b.cmd("EHLO b.test")
            assert a.cmd("MAIL FROM:<s@sender.test>")[0] == 250
            a.send("RCPT TO:<nosuchuser@example.com>\r\n")  # 550 upstream -> record_failure waits for the lock
            for n in range(3):
                assert b.cmd("NOOP")[0] == 250
            assert b.cmd("MAIL FROM:<s@sender.test>")[0] == 250
            assert b.cmd("RCPT TO:<ok@example.com>")[0] == 250
            assert a.reply()[0] == 550
    finally:
        holder.release()


def test_a_write_that_never_gets_the_lock_is_logged_and_retried(relay, caplog):
    holder = LockHolder(db_path(relay))
    try:
        with RawSMTP(relay.host, relay.port) as a:
            a.cmd("EHLO a.test")
            a.cmd("MAIL FROM:<s@sender.test>")
            assert a.cmd("RCPT TO:<nosuchuser@example.com>")[0] == 550
    finally:
        holder.release()
    assert "is locked by another process" in caplog.text
    # Once the lock is free, the listing that could not be written is written, and announced.
    deadline = time.monotonic() + 30
    while cli(relay.config_path, "check", "nosuchuser@example.com").returncode == 0:
        assert time.monotonic() < deadline, "the held-up listing was never written"
        time.sleep(0.5)
    listed = [e for e in relay.events(wait_for=2, timeout=10) if e["kind"] == "bounce_listed"]
    assert [e["recipient"] for e in listed] == ["nosuchuser@example.com"]


def test_the_cli_says_clearly_when_the_list_is_locked(relay):
    holder = LockHolder(db_path(relay))
    try:
        out = cli(relay.config_path, "add", "x@example.com", "--reason", "test")
    finally:
        holder.release()
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "locked by another process" in out.stderr and str(db_path(relay)) in out.stderr
    assert cli(relay.config_path, "add", "x@example.com", "--reason", "test").returncode == 0


def test_a_deleted_list_file_is_noticed_and_cli_listings_are_refused(relay, upstream):
    path = db_path(relay)
    with RawSMTP(relay.host, relay.port) as c:  # the relay has the file open
        c.cmd("EHLO c.test")
        c.cmd("MAIL FROM:<s@sender.test>")
        assert c.cmd("RCPT TO:<later@example.com>")[0] == 250
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    assert cli(relay.config_path, "add", "later@example.com", "--reason", "complaint").returncode == 0
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO c.test")
        c.cmd("MAIL FROM:<s@sender.test>")
        code, text = c.cmd("RCPT TO:<later@example.com>")
    assert code == 550 and "bounce list" in text


def test_a_list_deleted_with_nothing_recreating_it_is_recreated(relay):
    path = db_path(relay)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO c.test")
        c.cmd("MAIL FROM:<s@sender.test>")
        assert c.cmd("RCPT TO:<nosuchuser@example.com>")[0] == 550
    assert path.exists()
    out = cli(relay.config_path, "check", "nosuchuser@example.com")
    assert out.returncode == 1 and "listed" in out.stdout


def test_a_corrupted_list_is_explained_by_serve_and_check_config(tmp_path):
    db = tmp_path / "bounces.db"
    db.write_bytes(b"this is not a database, it was overwritten by mistake\n" * 200)
    config = tmp_path / "c.yaml"
    config.write_text(f"hostname: relay.example.com\nbounce_list: sqlite:///{db}\n"
                      "listen: [{address: '127.0.0.1:0'}]\nupstream: {host: 127.0.0.1, starttls: required}\n")
    for command in ("serve", "check-config"):
        out = subprocess.run([sys.executable, "-m", "relay", command, "-c", str(config)], capture_output=True,
                             text=True, timeout=60)
        text = out.stdout + out.stderr
        assert out.returncode == 1 and "Traceback" not in text, text
        assert f"{db}" in text and "not a bounce list database" in text and "move it aside" in text


def _open_at_once(path: str, barrier, results) -> None:
    from relay.store.sqlite import SQLiteBounceStore

    barrier.wait()
    try:
        SQLiteBounceStore(path)
        results.put("ok")
    except Exception as exc:  # what a worker that fails to start would have said
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_opening_a_new_file_at_once_all_open_it(tmp_path):
    # A relay's workers start together on a list that does not exist yet; turning on WAL mode can
    # be refused at once (no busy wait) to the one that comes second. Each must open it.
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    outcomes = []
    for n in range(40):
        barrier, results = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_open_at_once, args=(str(tmp_path / f"{n}.db"), barrier, results))
                 for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        outcomes += [results.get(timeout=5) for _ in procs]
    assert [o for o in outcomes if o != "ok"] == []


def test_opening_waits_while_another_process_creates_the_list(tmp_path):
    # Several workers (or relays) start at once on one new file: the first creates the tables in one
    # write transaction, which on a loaded machine outlasts a write's 2 s deadline; the others must
    # wait for it, not fail to start.
    from relay.store.sqlite import SQLiteBounceStore

    path = tmp_path / "bounces.db"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sqlite3, sys, time
        db = sqlite3.connect(sys.argv[1], isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("BEGIN IMMEDIATE")
        db.execute("CREATE TABLE starting (x)")
        print("locked", flush=True)
        time.sleep(3.5)
        db.execute("COMMIT")
    """), str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        store = SQLiteBounceStore(path)  # the old open gave up after 2 s: StoreBusy
        assert asyncio.run(store.get("a@example.com")) is None  # created, migrated and usable
        asyncio.run(store.close())
    finally:
        holder.wait(10)


async def test_a_reopen_cancelled_midway_that_then_fails_logs_nothing(tmp_path):
    # The relay stopping while the sampler's count reopened a list whose path had become a directory:
    # the reopen failed in the worker thread after its caller was gone, and asyncio logged "Future
    # exception was never retrieved" into the relay's output.
    import threading

    from relay.store.sqlite import SQLiteBounceStore

    path = tmp_path / "bounces.db"
    store = SQLiteBounceStore(path)
    path.unlink()
    path.mkdir()  # the next use reopens, and the open fails
    loop = asyncio.get_running_loop()
    logged = []
    loop.set_exception_handler(lambda _loop, context: logged.append(context))
    busy = threading.Event()
    store._worker.submit(busy.wait)  # the worker thread is taken: the reopen waits its turn there
    counting = asyncio.ensure_future(store.count())
    deadline = time.monotonic() + 20
    while store._worker._work_queue.qsize() == 0:  # the reopen is queued behind it
        assert time.monotonic() < deadline, "the reopen never reached the worker"
        await asyncio.sleep(0.01)
    counting.cancel()
    await asyncio.gather(counting, return_exceptions=True)
    del counting  # its CancelledError's traceback holds the frame that holds the reopen's future
    busy.set()
    await loop.run_in_executor(store._worker, lambda: None)  # the reopen has failed by now
    await asyncio.sleep(0)  # its outcome reaches the loop
    import gc
    gc.collect()
    loop.set_exception_handler(None)
    assert [c["message"] for c in logged] == []
    await store.close()
