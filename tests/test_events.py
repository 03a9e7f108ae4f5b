"""Delivery-error events and the bounce list, through a running relay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.support.smtp_client import RawSMTP, send_message
from tests.support.upstream import GMAIL_MAILBOX_FULL, GMAIL_NO_SUCH_USER, GMAIL_RATE_LIMIT, closed_port

SCHEMA = json.loads((Path(__file__).parent.parent / "relay" / "schema" / "event.schema.json").read_text())
BODY = (b"From: Support <support@sender.test>\r\nTo: b@example.com\r\nSubject: Re: your ticket\r\n"
        b"Message-ID: <reply-42@sender.test>\r\nIn-Reply-To: <q-41@example.com>\r\n"
        b"References: <q-40@example.com> <q-41@example.com>\r\nX-Conversation-Id: conv-1234\r\n\r\nHello.\r\n")


def valid(event: dict) -> dict:
    jsonschema.validate(event, SCHEMA)
    return event


def transact(relay, sender, rcpts, body=BODY):
    """One transaction; it stops at a 421, after which the relay closes the connection (RFC 5321 3.8)."""
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        replies = [c.cmd(f"MAIL FROM:<{sender}>")]
        for rcpt in rcpts:
            replies.append(c.cmd(f"RCPT TO:<{rcpt}>"))
            if replies[-1][0] == 421:
                assert c.closed()
                return replies
        replies.append(c.cmd("DATA"))
        if replies[-1][0] == 354:
            c.send(body + b".\r\n")
            replies.append(c.reply())
        c.cmd("QUIT")
    return replies


def by_kind(events, kind):
    return [e for e in events if e["kind"] == kind]


@pytest.fixture
def relay(upstream, relay_factory):
    return relay_factory(upstream.port, correlation={
        "headers": ["X-Conversation-Id"],
        "sender_patterns": [r"^bounces\+(?P<conversation_id>[^@]+)@"]})


def test_hard_bounce_event_listing_and_local_refusal(relay, upstream):
    replies = transact(relay, "bounces+conv-1234@sender.test", ["nosuchuser@gmail.test", "ok@example.com"])
    assert replies[1] == (550, GMAIL_NO_SUCH_USER)
    events = relay.events(wait_for=2)
    (rejected,) = by_kind(events, "rejected")
    valid(rejected)
    assert rejected["stage"] == "rcpt" and rejected["action"] == "bounce"
    assert rejected["recipient"] == "nosuchuser@gmail.test"
    assert rejected["reply"] == {"code": 550, "enhanced": "5.1.1", "text": GMAIL_NO_SUCH_USER.replace("\r\n", "\n"),
                                 "source": "upstream"}
    assert rejected["classification"]["category"] == "unknown_recipient"
    assert rejected["classification"]["permanent"] is True
    assert rejected["upstream"]["host"] == "127.0.0.1" and rejected["upstream"]["port"] == upstream.port
    # The RCPT refusal came before DATA, yet the event carries what the message said.
    assert rejected["message_id"] == "<reply-42@sender.test>"
    assert rejected["in_reply_to"] == "<q-41@example.com>"
    assert rejected["references"] == "<q-40@example.com> <q-41@example.com>"
    assert rejected["correlation"] == {"X-Conversation-Id": "conv-1234"}
    assert rejected["conversation_id"] == "conv-1234"
    assert rejected["client"]["ip"] == "127.0.0.1" and rejected["client"]["helo"] == "client.test"
    assert "Hello." not in json.dumps(events)  # never the body
    (listed,) = by_kind(events, "bounce_listed")
    valid(listed)
    assert listed["recipient"] == "nosuchuser@gmail.test" and listed["actor"] == "relay"

    # The next message to the address (in another case) is refused here; the upstream never sees it.
    before = [c for c in upstream.commands if c.startswith("RCPT")]
    replies = transact(relay, "bounces+conv-9@sender.test", ["NoSuchUser@Gmail.TEST"])
    code, text = replies[1]
    assert code == 550 and text.startswith("550-5.1.1 <nosuchuser@gmail.test>") and "bounce list" in text
    assert "does not exist" in text  # the original reply, so the sender sees why
    assert [c for c in upstream.commands if c.startswith("RCPT")] == before
    (suppressed,) = by_kind(relay.events(wait_for=3), "suppressed")
    valid(suppressed)
    assert suppressed["reply"]["source"] == "relay" and suppressed["action"] == "bounce"
    # DESIGN.md: `bounce_list` on an event that consulted the list.
    assert suppressed["bounce_list"] == "listed" and suppressed["entry"]["address"] == "nosuchuser@gmail.test"
    assert suppressed["conversation_id"] == "conv-9"


def test_deferral_is_an_event_but_not_a_listing(relay, upstream):
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        assert c.cmd("RCPT TO:<ratelimit@gmail.test>") == (421, GMAIL_RATE_LIMIT)
        # 421 means the upstream closes the connection (RFC 5321 3.8), and so does the relay.
        assert c.closed()
    events = [valid(e) for e in relay.events(wait_for=1)]
    assert [e["kind"] for e in events] == ["deferred"]
    deferred = events[0]
    assert deferred["kind"] == "deferred" and deferred["action"] == "retry"
    assert deferred["classification"]["category"] == "rate_limited"
    assert deferred["classification"]["permanent"] is False
    assert deferred["reply"]["text"].count("\n") == 4  # all five lines, verbatim
    assert transact(relay, "a@sender.test", ["ratelimit@gmail.test"])[1][0] == 421  # still asks upstream


def test_mailbox_full_at_data_is_rejected_not_listed(relay, upstream):
    replies = transact(relay, "a@sender.test", ["full@gmail.test"])
    assert replies[-1] == (552, GMAIL_MAILBOX_FULL)
    (event,) = relay.events(wait_for=1)
    valid(event)
    assert event["kind"] == "rejected" and event["stage"] == "data"
    assert event["classification"]["category"] == "mailbox_full"
    assert transact(relay, "a@sender.test", ["full@gmail.test"])[1][0] == 250  # not on the list by default


def test_unreachable_upstream_is_a_deferred_event_from_the_relay(upstream, relay_factory):
    relay = relay_factory(closed_port())
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 451
    (event,) = relay.events(wait_for=1)
    valid(event)
    assert event["kind"] == "deferred" and event["stage"] == "mail"
    assert event["reply"]["source"] == "relay" and event["reply"]["enhanced"] == "4.4.1"


def test_operator_removal_takes_effect_without_reload_and_is_audited(relay, upstream):
    transact(relay, "a@sender.test", ["nosuchuser@gmail.test"])
    relay.events(wait_for=2)
    cli = [sys.executable, "-m", "relay", "bounces"]
    cfg = ["-c", str(relay.config_path)]
    out = subprocess.run(cli + ["check", "nosuchuser@gmail.test"] + cfg, capture_output=True, text=True)
    assert out.returncode == 1, out.stderr
    out = subprocess.run(cli + ["remove", "nosuchuser@gmail.test", "--reason", "typo fixed by customer"] + cfg,
                         capture_output=True, text=True, env={**os.environ, "USER": "alice"})
    assert out.returncode == 0, out.stderr
    unlisted = by_kind(relay.events(wait_for=3), "bounce_unlisted")
    assert len(unlisted) == 1
    valid(unlisted[0])
    assert unlisted[0]["reason"] == "typo fixed by customer" and unlisted[0]["actor"] == "alice"
    # No reload: the next RCPT goes to the upstream again (which still refuses it).
    before = len([c for c in upstream.commands if c.startswith("RCPT")])
    assert transact(relay, "a@sender.test", ["nosuchuser@gmail.test"])[1] == (550, GMAIL_NO_SUCH_USER)
    assert len([c for c in upstream.commands if c.startswith("RCPT")]) == before + 1


def test_full_disk_sink_never_blocks_mail(upstream, relay_factory, caplog):
    relay = relay_factory(upstream.port, events=[{"jsonl": "/dev/full"}])
    for _ in range(3):
        assert transact(relay, "a@sender.test", ["nosuchuser@gmail.test", "ok@example.com"])[-1][0] == 250
    assert len(upstream.wait_for_messages(3)) == 3
    relay.server.sinks.flush(5)  # the jsonl sink writes (and fails) from its own thread
    assert relay.server.sinks.failures["jsonl:/dev/full"] >= 3
    assert "event sink jsonl:/dev/full failed" in caplog.text
    assert "relay_event_sink_failures_total" in relay.server.metrics.render()


def test_jsonl_sink_follows_logrotate(relay, upstream):
    transact(relay, "a@sender.test", ["ratelimit@gmail.test"])
    relay.events(wait_for=1)
    rotated = relay.events_path.with_suffix(".1")
    relay.events_path.rename(rotated)
    relay.reload()  # what logrotate's postrotate does: systemctl reload relay (SIGHUP)
    transact(relay, "a@sender.test", ["ratelimit@gmail.test"])
    assert len(relay.events(wait_for=1)) == 1  # the new file
    assert len(rotated.read_text().splitlines()) == 1


def test_events_tail_shows_a_readable_line(relay, upstream):
    transact(relay, "a@sender.test", ["nosuchuser@gmail.test"])
    relay.events(wait_for=2)
    out = subprocess.run([sys.executable, "-m", "relay", "events", "tail", "-c", str(relay.config_path),
                          "--kind", "rejected"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    (line,) = out.stdout.splitlines()
    assert "rejected" in line and "nosuchuser@gmail.test" in line and "550 5.1.1" in line
    assert "unknown_recipient" in line and "The email account that you tried to reach does not exist" in line
    out = subprocess.run([sys.executable, "-m", "relay", "events", "tail", "-c", str(relay.config_path), "--json"],
                         capture_output=True, text=True, timeout=30)
    assert [json.loads(x)["kind"] for x in out.stdout.splitlines()] == ["rejected", "bounce_listed"]


def test_each_listing_emits_one_bounce_listed_event(upstream, relay_factory):
    relay = relay_factory(upstream.port)
    transact(relay, "a@sender.test", ["nosuchuser@gmail.test"])
    relay.events(wait_for=2)
    subprocess.run([sys.executable, "-m", "relay", "bounces", "remove", "nosuchuser@gmail.test", "--reason",
                    "retest", "-c", str(relay.config_path)], check=True, capture_output=True)
    transact(relay, "a@sender.test", ["nosuchuser@gmail.test"])
    kinds = [e["kind"] for e in relay.events(wait_for=5)]
    assert kinds == ["rejected", "bounce_listed", "bounce_unlisted", "rejected", "bounce_listed"]


def test_sighup_applies_a_changed_events_section(upstream, relay_factory, tmp_path):
    relay = relay_factory(upstream.port)
    transact(relay, "a@sender.test", ["ratelimit@gmail.test"])
    assert len(relay.events(wait_for=1)) == 1
    new_path = tmp_path / "elsewhere" / "events.jsonl"
    config = yaml.safe_load(relay.config_path.read_text())
    config["events"] = [{"jsonl": str(new_path)}]
    relay.config_path.write_text(yaml.safe_dump(config))
    assert relay.reload()
    transact(relay, "a@sender.test", ["ratelimit@gmail.test"])
    # The new sink's thread writes the line after it opened (created) the file: wait for a whole line,
    # not for the file to exist (it was read empty under load).
    deadline = time.time() + 5
    lines: list[str] = []
    while time.time() < deadline and not lines:
        relay.server.sinks.flush(1)
        lines = new_path.read_text().split("\n")[:-1] if new_path.exists() else []
        time.sleep(0.02)
    assert [json.loads(x)["kind"] for x in lines] == ["deferred"]
    assert len(relay.events()) == 1  # the old file got nothing more


def test_jsonl_sink_writes_text_that_came_as_bytes_that_are_not_utf8(tmp_path):
    from relay.events import EventSinks, JsonlSink, make_event

    path = tmp_path / "events.jsonl"
    sinks = EventSinks([JsonlSink(str(path))])
    # aiosmtpd and aiosmtplib keep bytes that are not UTF-8 as lone surrogates (surrogateescape).
    sinks.emit(make_event("rejected", "rcpt", sender="m\udce4rta@sender.test", recipient="b@example.com"))
    sinks.close()
    assert sinks.failures == {}
    (event,) = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert event["sender"] == "märta@sender.test"  # the byte 0xE4 read as ISO 8859-1


# --- review19: the sinks under a full disk, a stdout nobody reads, odd line ends, a root command ----

def test_a_listing_made_before_a_defect_raised_in_a_session_is_told_by_its_event(relay, upstream, monkeypatch):
    # The upstream's "no such user" lists the address; a defect raised after it in the same refusal's
    # way through the funnel (here where the domain's evidence is weighed). The listing stands (the
    # next RCPT is refused from the list): its bounce_listed event went with the exception.
    from relay.outcomes import Outcomes

    async def broken(self, *args, **kwargs):
        raise RuntimeError("a defect")

    monkeypatch.setattr(Outcomes, "_domain_evidence", broken)
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        c.cmd("MAIL FROM:<a@sender.test>")
        assert c.cmd("RCPT TO:<nosuchuser@gmail.test>")[0] == 451  # the defect: the client retries
        c.cmd("QUIT")
    monkeypatch.undo()
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        c.cmd("MAIL FROM:<a@sender.test>")
        code, text = c.cmd("RCPT TO:<nosuchuser@gmail.test>")
        assert code == 550 and "bounce list" in text, text  # listed
        c.cmd("QUIT")
    events = relay.events(wait_for=2)
    assert [(e["kind"], e["recipient"]) for e in events] == [("bounce_listed", "nosuchuser@gmail.test"),
                                                               ("suppressed", "nosuchuser@gmail.test")], events


def test_events_tail_shows_an_event_whose_message_id_holds_a_unicode_line_separator(relay, upstream):
    # U+2028 is valid in a header (RFC 6532) and ends a line for Unicode-aware readers (str.splitlines).
    body = ("From: a@sender.test\r\nTo: nosuchuser@gmail.test\r\nSubject: hi\r\n"
            "Message-ID: <one\u2028two\u0085three@sender.test>\r\n\r\nhello\r\n").encode("utf-8")
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        replies = send_message(c, "a@sender.test", ["nosuchuser@gmail.test", "ok@example.com"], body)
        c.cmd("QUIT")
    assert replies[1][0] == 550  # the client saw the refusal
    events = relay.events(wait_for=2)
    assert [e["kind"] for e in events] == ["rejected", "bounce_listed"]
    assert events[0]["message_id"] == "<one\u2028two\u0085three@sender.test>"  # the same value, escaped
    assert len(relay.events_path.read_text().splitlines()) == 2  # a line for each, however one splits
    out = subprocess.run([sys.executable, "-m", "relay", "events", "tail", "-c", str(relay.config_path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "nosuchuser@gmail.test" in out.stdout, out.stdout



def test_events_tail_reads_a_file_an_older_relay_wrote_with_raw_line_separators(tmp_path):
    path = tmp_path / "events.jsonl"
    raw = json.dumps({"kind": "rejected", "recipient": "jane@example.com", "message_id": "<a\u2028b\u0085c@x>"},
                     ensure_ascii=False)
    path.write_text(raw + "\n", encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "relay", "events", "tail", "--file", str(path), "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["recipient"] for line in out.stdout.splitlines()] == ["jane@example.com"]


def _full_disk_between(tmp_path, between):
    """An event the disk refuses half-way (RLIMIT_FSIZE makes the kernel do a short write, then EFBIG,
    as a disk that fills up does), then `between(sinks, path)` while the disk is still full, then space
    comes back and one more event goes: (the sinks, the recipients of the lines that can be read)."""
    import resource
    import signal

    from relay.events import EventSinks, JsonlSink, make_event

    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    path = tmp_path / "events.jsonl"
    sinks = EventSinks([JsonlSink(str(path))])
    try:
        sinks.emit(make_event("rejected", "rcpt", recipient="first@example.com"))
        resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 100, hard))
        sinks.emit(make_event("rejected", "rcpt", recipient="second@example.com", note="x" * 500))
        sinks = between(sinks, path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)
    sinks.emit(make_event("rejected", "rcpt", recipient="third@example.com"))
    sinks.close()
    readable = []
    for line in path.read_bytes().split(b"\n")[:-1]:
        try:
            readable.append(json.loads(line)["recipient"])
        except ValueError:
            pass
    return sinks, readable


def test_an_event_cut_by_a_full_disk_does_not_take_the_next_one_after_a_restart(tmp_path):
    from relay.events import EventSinks, JsonlSink

    def restart(sinks, path):
        sinks.close()
        return EventSinks([JsonlSink(str(path))])

    sinks, readable = _full_disk_between(tmp_path, restart)
    assert sinks.failures == {}  # the third event was reported written, and it can be read
    assert readable == ["first@example.com", "third@example.com"]


def test_an_event_cut_by_a_full_disk_does_not_take_the_next_one_after_a_reopen(tmp_path):
    def reopen(sinks, path):
        sinks.reopen()  # SIGHUP, or logrotate seen by the inode check
        return sinks

    sinks, readable = _full_disk_between(tmp_path, reopen)
    assert readable == ["first@example.com", "third@example.com"]
    assert sinks.failures == {f"jsonl:{tmp_path / 'events.jsonl'}": 1}  # the second, and only it


def test_an_event_counted_as_dropped_by_a_full_disk_is_not_written_later(tmp_path):
    sinks, readable = _full_disk_between(tmp_path, lambda sinks, path: sinks)
    # The count says one event was dropped: it must be the one that cannot be read, not one written
    # whole later from a buffer when space came back.
    assert sinks.failures == {f"jsonl:{tmp_path / 'events.jsonl'}": 1}
    assert readable == ["first@example.com", "third@example.com"]



def test_a_root_commands_events_file_belongs_to_its_directorys_owner_and_the_relay_goes_on_writing():
    import shutil
    import tempfile

    if os.geteuid() != 0:
        pytest.fail("needs root (as the tests run here and in CI) to run a command as root and the relay as another user")
    nobody = 65534
    base = Path(tempfile.mkdtemp(prefix="relay-events-owner-"))
    try:
        os.chmod(base, 0o755)
        logs = base / "log"  # LogsDirectory=relay: the relay's user owns it
        logs.mkdir()
        os.chown(logs, nobody, nobody)
        config = base / "relay.yaml"
        config.write_text(yaml.safe_dump({"hostname": "relay.test", "bounce_list": f"sqlite:///{base / 'b.db'}",
                                          "events": [{"jsonl": str(logs / "events.jsonl")}]}))
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        added = subprocess.run([sys.executable, "-m", "relay", "bounces", "add", "bad@example.org", "--reason", "test",
                                "-c", str(config)], capture_output=True, text=True, env=env, timeout=60)
        assert added.returncode == 0, added.stderr
        assert (logs / "events.jsonl").stat().st_uid == nobody
        # The relay, as its own user, writes the next event with the sink it uses.
        relay_side = ("import os\nfrom relay.events import EventSinks, JsonlSink, make_event\n"
                      f"os.setgid({nobody}); os.setuid({nobody})\n"
                      f"sinks = EventSinks([JsonlSink({str(logs / 'events.jsonl')!r})])\n"
                      "sinks.emit(make_event('rejected', 'rcpt', recipient='jane@example.org'))\n"
                      "sinks.close()\nprint(sinks.failures)\n")
        out = subprocess.run([sys.executable, "-c", relay_side], capture_output=True, text=True, env=env, timeout=60)
        assert out.stdout.strip() == "{}", out.stdout + out.stderr
        written = [json.loads(line) for line in (logs / "events.jsonl").read_text().splitlines()]
        assert [(e["kind"], e["recipient"]) for e in written] == [("bounce_listed", "bad@example.org"),
                                                                   ("rejected", "jane@example.org")]
    finally:
        shutil.rmtree(base)



def test_a_stdout_nobody_reads_stops_no_mail_and_loses_no_event_at_sigterm(tmp_path, upstream):
    # The default sink is stdout (journald's stream under systemd). When its reader stalls (journald
    # busy, `relay serve | slow-consumer`), the pipe fills: the relay must go on serving mail, and a
    # SIGTERM must still stop it, writing what it holds once the reader reads again.
    import signal

    config = tmp_path / "relay.yaml"
    config.write_text(yaml.safe_dump({
        "hostname": "relay.test", "workers": 1, "listen": [{"address": "127.0.0.1:0"}],
        "upstream": {"host": "127.0.0.1", "port": upstream.port, "starttls": "off"},
        "bounce_list": f"sqlite:///{tmp_path / 'b.db'}"}))  # no `events:`: the default, stdout
    with open(tmp_path / "stderr", "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "relay", "serve", "-c", str(config)],
                                stdout=subprocess.PIPE, stderr=stderr)  # stdout: not read until the end
    try:
        port = None
        deadline = time.time() + 30
        while port is None and time.time() < deadline:
            found = [line for line in (tmp_path / "stderr").read_text().splitlines() if "listening on 127.0.0.1:" in line]
            if found:
                port = int(found[0].rsplit(":", 1)[1].split()[0])
            time.sleep(0.05)
        assert port is not None, (tmp_path / "stderr").read_text()
        refused = 0
        for n in range(40):  # 320 deferred events, ~500 bytes each: far more than a pipe holds (64 KiB)
            with RawSMTP("127.0.0.1", port, timeout=20) as c:
                c.cmd("EHLO client.test")
                c.cmd("MAIL FROM:<a@sender.test>")
                for i in range(8):
                    assert c.cmd(f"RCPT TO:<tempfail@d{n}x{i}.test>")[0] == 451
                    refused += 1
                c.cmd("QUIT")
        with RawSMTP("127.0.0.1", port, timeout=20) as c:  # a new client still gets its banner
            assert c.cmd("EHLO client.test")[0] == 250
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)  # the reader comes back: what the relay held is written
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, (tmp_path / "stderr").read_text()[-3000:]
    events = [json.loads(line) for line in out.decode().splitlines()]
    assert [e["kind"] for e in events] == ["deferred"] * refused


def test_a_queued_sink_that_does_not_keep_up_drops_new_events_and_a_stop_counts_what_it_lost(caplog):
    import threading

    from relay.events import EventSinks, QueuedSink, Sink, make_event

    release, written = threading.Event(), []

    class Stalled(Sink):  # a stdout nobody reads: the write blocks until released
        name = "stalled"

        def write(self, line: str) -> None:
            release.wait()
            written.append(json.loads(line)["recipient"])

    sinks = EventSinks([])
    queued = QueuedSink(Stalled(), sinks._failed, capacity=3)
    sinks.sinks.append(queued)
    for i in range(5):
        sinks.emit(make_event("rejected", "rcpt", recipient=f"u{i}@example.com"))  # returns at once
    assert sinks.failures == {"stalled": 2}  # three wait (one inside the write), the two after are dropped
    assert "events are being dropped: 3 events wait to be written to stalled" in caplog.text
    queued.stop(seconds=0.2)
    queued.close()  # the write is still blocked: the three are lost, and counted
    assert sinks.failures == {"stalled": 5} and "3 event(s) not written within" in caplog.text
    release.set()


def test_a_queued_sink_writes_everything_it_holds_when_its_reader_comes_back_before_the_stop_ends():
    import threading

    from relay.events import EventSinks, QueuedSink, Sink, make_event

    release, written = threading.Event(), []

    class Slow(Sink):
        name = "slow"

        def write(self, line: str) -> None:
            release.wait()
            written.append(json.loads(line)["recipient"])

    sinks = EventSinks([])
    sinks.sinks.append(QueuedSink(Slow(), sinks._failed))
    for i in range(100):
        sinks.emit(make_event("rejected", "rcpt", recipient=f"u{i}@example.com"))
    sinks.sinks[0].stop()
    release.set()
    sinks.close()
    assert sinks.failures == {} and written == [f"u{i}@example.com" for i in range(100)]


# --- review28 ---------------------------------------------------------------------------------------

def _relay_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    return subprocess.run([sys.executable, "-m", "relay", *args], capture_output=True, text=True, timeout=60,
                          env=env, **kw)


def test_events_tail_follow_shows_what_the_relay_wrote_around_a_logrotate(tmp_path):
    # review28 F3: when the path named a new file, tail -f switched to it without reading what had been
    # appended to the old one since its last read: the relay goes on writing there until it notices
    # the rename (every second) or postrotate's SIGHUP comes.
    import threading

    from relay.events import EventSinks, JsonlSink, make_event

    path = tmp_path / "events.jsonl"
    sink = JsonlSink(str(path))
    sink.CHECK_EVERY = 3600  # this relay notices the rename at the SIGHUP only (the 1-s check may come later)
    sinks = EventSinks([sink])

    def event(name):
        sinks.emit(make_event("rejected", "rcpt", recipient=f"{name}@example.com"))

    event("before-rotate")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    tail = subprocess.Popen([sys.executable, "-m", "relay", "events", "tail", "-f", "--file", str(path)],
                            stdout=subprocess.PIPE, text=True, env=env)
    shown: list[str] = []
    wanted = ["before-rotate", "busy-before-rotate", "written-just-after-rotate", "after-reopen"]
    everything = threading.Event()

    def read():
        for line in tail.stdout:
            shown.extend(name for name in wanted if f" {name}@example.com " in line)
            if set(shown) == set(wanted):
                everything.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while "before-rotate" not in shown and time.monotonic() < deadline:
            time.sleep(0.02)
        assert shown == ["before-rotate"]  # it shows the file and follows it now
        event("busy-before-rotate")  # a busy relay: an event just before the rotation
        path.rename(tmp_path / "events.jsonl.1")  # logrotate with `create`
        path.touch()
        event("written-just-after-rotate")  # still to the renamed file: the relay has not noticed
        sinks.reopen()  # postrotate: systemctl reload relay
        event("after-reopen")
        everything.wait(30)
    finally:
        tail.kill()
        tail.wait()
        sinks.close()
    assert sorted(shown) == sorted(wanted)  # each once


def test_events_tail_follow_shows_an_event_half_written_when_it_started(tmp_path):
    # review-int2 F5: the file's last line had no "\n" yet when `events tail -f` started (the relay was
    # writing it): the past events tried it as JSON and dropped it, and following began in its middle, so
    # the rest of it was a fragment too and that event was never shown at all.
    import threading

    from relay.events import make_event

    path = tmp_path / "events.jsonl"
    first, cut, third = (_json_bytes(make_event("rejected", "rcpt", recipient=f"{name}@example.com"))
                         for name in ("first", "cut", "third"))
    half = len(cut) // 2
    path.write_bytes(first + cut[:half])  # "first" whole, "cut" half-written
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    tail = subprocess.Popen([sys.executable, "-m", "relay", "events", "tail", "-f", "--file", str(path)],
                            stdout=subprocess.PIPE, text=True, env=env)
    shown: list[str] = []
    seen_first, seen_third = threading.Event(), threading.Event()

    def read():
        for line in tail.stdout:
            for name, seen in (("first", seen_first), ("cut", None), ("third", seen_third)):
                if f" {name}@example.com " in line:
                    shown.append(name)
                    if seen is not None:
                        seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert seen_first.wait(30)  # the past events are shown: the file's size was taken before
        with path.open("ab") as fh:
            fh.write(cut[half:])  # the relay finishes the line
            fh.write(third)
        assert seen_third.wait(30)
    finally:
        tail.kill()
        tail.wait()
    assert shown == ["first", "cut", "third"]


def _torn_inside_a_character(tmp_path) -> Path:
    """The real JsonlSink under a full disk (RLIMIT_FSIZE: a short write, then EFBIG) that cuts an event
    inside a two-byte "ä"; then space comes back and one more event goes (docs/events.md "A full disk")."""
    import resource
    import signal

    from relay.events import EventSinks, JsonlSink, make_event

    path = tmp_path / "events.jsonl"
    reply = {"code": 550, "enhanced": "5.1.1", "text": "550 5.1.1 Empfänger unbekannt " + "ä" * 300}
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    sinks = EventSinks([JsonlSink(str(path))])
    try:
        sinks.emit(make_event("rejected", "rcpt", recipient="first@example.com", reply=reply))
        size = path.stat().st_size
        torn = make_event("rejected", "rcpt", recipient="second@example.com", reply=reply)
        cut = _json_bytes(torn).index("ä".encode()) + 1  # after the first of its two bytes
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + cut, hard))
        sinks.emit(torn)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)
    sinks.emit(make_event("rejected", "rcpt", recipient="third@example.com", reply=reply))
    sinks.close()
    assert sinks.failures == {f"jsonl:{path}": 1}
    data = path.read_bytes()
    assert len(data) > size + cut
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return path
    raise AssertionError("the cut did not fall inside a character")


def _json_bytes(event: dict) -> bytes:
    from relay.events import _json_line

    return _json_line(event).encode("utf-8")


def test_events_tail_skips_a_line_a_full_disk_cut_inside_a_character(tmp_path):
    # review28 F4: the file was read as strict UTF-8: one cut character made the whole file unreadable
    # (a traceback, exit 1), although the docs say readers skip the torn line.
    path = _torn_inside_a_character(tmp_path)
    for extra in ([], ["--json"], ["-n", "1"]):
        out = _relay_cli("events", "tail", "--file", str(path), *extra)
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
        shown = [r for r in ("first", "second", "third") if f"{r}@example.com" in out.stdout]
        assert shown == (["third"] if extra == ["-n", "1"] else ["first", "third"])


def test_events_tail_skips_lines_that_are_json_but_no_event(tmp_path):
    path = tmp_path / "events.jsonl"
    good = json.dumps({"kind": "rejected", "recipient": "jane@example.com", "reply": {"code": 550, "text": "no"}})
    path.write_text("\n".join(["null", "[1, 2]", "42", '"text"', good,
                               json.dumps({"kind": "rejected", "recipient": "str@example.com", "reply": "550 no",
                                           "classification": ["x"]}),
                               json.dumps({"kind": "rejected", "recipient": ["not", "a", "string"]})]) + "\n")
    for extra in ([], ["--recipient", "jane@example.com"], ["--kind", "rejected"], ["--json"]):
        out = _relay_cli("events", "tail", "--file", str(path), *extra)
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
        assert "jane@example.com" in out.stdout
    out = _relay_cli("events", "tail", "--file", str(path))
    assert "str@example.com" in out.stdout  # its odd reply and classification are shown as nothing
    assert len(out.stdout.splitlines()) == 3  # the three objects; null, a list, a number, a string skipped


def test_a_jsonl_path_the_relay_cannot_write_fails_check_config_and_serve(tmp_path):
    # review28 F5: it passed both, and every event was then dropped ("[Errno 21] Is a directory").
    (tmp_path / "events.jsonl").mkdir()
    config = tmp_path / "relay.yaml"
    config.write_text(yaml.safe_dump({"hostname": "relay.test", "listen": [{"address": "127.0.0.1:0"}],
                                      "clients": {"networks": ["127.0.0.0/8"]},
                                      "upstream": {"host": "127.0.0.1", "port": closed_port(), "starttls": "off"},
                                      "bounce_list": f"sqlite:///{tmp_path / 'bl.db'}",
                                      "events": [{"jsonl": "events.jsonl"}]}))
    why = f"{config}: events[0].jsonl: {tmp_path / 'events.jsonl'} is a directory"
    out = _relay_cli("check-config", "-c", str(config))
    assert out.returncode == 1 and why in out.stdout, out.stdout
    out = _relay_cli("serve", "-c", str(config))
    assert out.returncode != 0 and why in out.stdout + out.stderr
    assert "Traceback" not in out.stderr
