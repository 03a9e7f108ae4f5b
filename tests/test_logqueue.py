"""`relay serve`'s log lines are written by a thread of their own (relay/logqueue.py): a stderr nobody
reads (the journal stalled, a pipe whose reader stopped) never holds the event loop, and so never a
session; lines that do not fit are dropped and counted, never waited for."""

from __future__ import annotations

import fcntl
import logging
import signal
import subprocess
import sys
import threading

import yaml

from relay.events import Sink
from relay.logqueue import QueuedLogHandler
from tests.support.smtp_client import RawSMTP, send_message

F_SETPIPE_SZ = 1031  # fcntl(2), Linux: the pipe's capacity
BODY = b"From: a@sender.test\r\nTo: ok@example.com\r\nSubject: hi\r\n\r\nhello\r\n"


def test_a_stderr_nobody_reads_holds_no_session(tmp_path, upstream):
    # stderr is a pipe read only until the relay says where it listens, then never; a pipe of one
    # page fills within the first few dozen sessions. Written on the event loop, the write that found
    # the pipe full blocked the loop: the next session waited for ever (the client's 30 s timeout).
    # Now mail goes on; the lines wait in the queue (or are dropped, counted).
    config = tmp_path / "relay.yaml"
    config.write_text(yaml.safe_dump({
        "hostname": "relay.test", "workers": 1, "listen": [{"address": "127.0.0.1:0"}],
        "upstream": {"host": "127.0.0.1", "port": upstream.port, "starttls": "off"},
        "bounce_list": f"sqlite:///{tmp_path / 'b.db'}", "events": [{"jsonl": str(tmp_path / "events.jsonl")}]}))
    proc = subprocess.Popen([sys.executable, "-m", "relay", "serve", "-c", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        fcntl.fcntl(proc.stderr.fileno(), F_SETPIPE_SZ, 4096)
        port, seen = None, []
        while port is None:
            line = proc.stderr.readline().decode("utf-8", "replace")
            assert line, "".join(seen)
            seen.append(line)
            if "listening on 127.0.0.1:" in line:
                port = int(line.rsplit(":", 1)[1].split()[0])
        # From here on nobody reads stderr. Each session ends with a BDAT (CHUNKING is not offered),
        # which the relay logs at INFO (~120 bytes) before it closes the connection.
        for n in range(100):
            with RawSMTP("127.0.0.1", port, timeout=30) as c:
                assert c.cmd("EHLO client.test")[0] == 250
                replies = send_message(c, "a@sender.test", ["ok@example.com"], BODY)
                assert replies[-1][0] == 250, (n, replies)
                assert c.cmd("BDAT 1 LAST")[0] == 502
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)  # the reader comes back: what the relay held is written
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(seen) + err.decode("utf-8", "replace")
    assert proc.returncode == 0, text[-3000:]
    assert "stopping: draining sessions" in text, text[-3000:]  # logged while stderr was full, written


class Stalled(Sink):
    """A stderr nobody reads: each write blocks until released."""

    name = "stalled"

    def __init__(self):
        self.release = threading.Event()
        self.lines: list[str] = []

    def write(self, line: str) -> None:
        self.release.wait()
        self.lines.append(line)


def test_lines_that_do_not_fit_are_dropped_counted_and_told_by_the_next_line_written():
    sink = Stalled()
    handler = QueuedLogHandler(sink, capacity=3)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger("test.logqueue.stalled")
    log.propagate = False
    log.addHandler(handler)
    try:
        for i in range(6):
            log.warning("line %d", i)  # returns at once: three wait (one inside the write), three dropped
        assert handler.dropped == 3
        sink.release.set()
        assert handler.wait_written(30)
        log.warning("after")
        assert handler.wait_written(30)
    finally:
        log.removeHandler(handler)
        handler.close()
    assert sink.lines == ["WARNING line 0\n", "WARNING line 1\n", "WARNING line 2\n",
                          "3 log line(s) dropped: stderr did not take them fast enough (its reader stalled)\n",
                          "WARNING after\n"]


def test_a_close_gives_up_on_a_stderr_that_never_reads_and_counts_what_it_held():
    sink = Stalled()
    handler = QueuedLogHandler(sink, capacity=10, stop_seconds=0.2)
    handler.setFormatter(logging.Formatter("%(message)s"))
    record = logging.LogRecord("test", logging.WARNING, __file__, 1, "held %d", (1,), None)
    for _ in range(4):
        handler.handle(record)
    handler.close()  # returns although the write never does
    assert handler.dropped == 4
    sink.release.set()


def test_a_line_that_cannot_be_formatted_is_told_without_its_arguments():
    # logging.Handler.handleError printed the traceback with "Arguments: (...)" to stderr from the
    # caller's thread; an argument may be anything (a password a caller should never have passed).
    sink = Stalled()
    sink.release.set()
    handler = QueuedLogHandler(sink)
    record = logging.LogRecord("relay.test", logging.ERROR, __file__, 1, "login %s failed %d", ("s3cret-pw",), None)
    handler.handle(record)
    assert handler.wait_written(30)
    handler.close()
    assert len(sink.lines) == 1 and "s3cret-pw" not in sink.lines[0], sink.lines
    assert sink.lines[0].startswith("logging error: TypeError formatting a ERROR line of relay.test"), sink.lines
