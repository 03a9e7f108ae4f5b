"""`relay bounces ...` against a real SQLite list, real event files, a real upstream on loopback."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from relay.cli import main
from relay.store import open_store
from relay.suppression import SuppressionPolicy
from tests.support.upstream import closed_port

ROOT = Path(__file__).resolve().parent.parent
POLICY = SuppressionPolicy.from_dict({"permanent": {"unknown_recipient": {"list_after": 1}}})
GMAIL = ("550-5.1.1 The email account that you tried to reach does not exist.\n"
         "550 5.1.1 https://support.google.com/mail/?p=NoSuchUser")


class FakeUpstream:
    """A loopback SMTP server that refuses RCPT for the addresses in `refuse` or, when `known` is
    given, for every address not in it (an upstream that verifies recipients)."""

    def __init__(self, refuse: set[str] = frozenset(), known: set[str] | None = None):
        self.refuse = refuse
        self.known = known
        self.rcpts: list[str] = []
        self.commands: list[str] = []
        self.connections = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._session, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    async def _session(self, reader, writer) -> None:
        writer.write(b"220 upstream.test ESMTP\r\n")
        self.connections += 1
        while line := await reader.readline():
            cmd = line.decode().strip()
            self.commands.append(cmd)
            verb = cmd[:4].upper()
            if verb == "EHLO":
                writer.write(b"250-upstream.test\r\n250 8BITMIME\r\n")
            elif verb == "RCPT":
                rcpt = cmd.split(":", 1)[1].strip().strip("<>").lower()
                self.rcpts.append(rcpt)
                refused = rcpt in self.refuse or (self.known is not None and rcpt not in self.known)
                writer.write(b"550 5.1.1 <%s>: user unknown\r\n" % rcpt.encode() if refused
                             else b"250 2.1.5 OK\r\n")
            elif verb == "QUIT":
                writer.write(b"221 2.0.0 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 2.0.0 OK\r\n")
            await writer.drain()
        writer.close()

    def __enter__(self):
        self.thread.start()
        self.ready.wait(5)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def env(tmp_path):
    """A config with a SQLite list and a JSON-lines event file; `upstream_port` adds an upstream."""

    class Env:
        dir = tmp_path
        db = tmp_path / "var" / "bounces.db"
        events_file = tmp_path / "events.jsonl"
        config = tmp_path / "relay.yaml"

        def write(self, upstream_port: int | None = None) -> None:
            text = (f"hostname: relay.test\nbounce_list: \"sqlite:///{self.db}\"\n"
                    f"events:\n  - jsonl: {self.events_file}\n")
            if upstream_port:
                text += f"upstream: {{host: 127.0.0.1, port: {upstream_port}, starttls: \"off\"}}\n"
            self.config.write_text(text)

        def run(self, *argv: str) -> int:
            return main(["bounces", *argv, "-c", str(self.config)])

        def events(self) -> list[dict]:
            if not self.events_file.exists():
                return []
            return [json.loads(line) for line in self.events_file.read_text().splitlines()]

        async def seed(self, *addresses: str) -> None:
            store = open_store(f"sqlite:///{self.db}")
            for a in addresses:
                await store.record_failure(a, category="unknown_recipient", permanent=True, reply_text=GMAIL,
                                           rule="gmail-no-such-user", policy=POLICY)
            await store.close()

    e = Env()
    e.write()
    return e


def test_add_check_show_remove_with_audited_events(env, capsys, monkeypatch):
    monkeypatch.setenv("SUDO_USER", "alice")
    assert env.run("add", "Ops@Example.COM", "--reason", "customer asked", "--category", "mailbox_disabled") == 0
    assert "ops@example.com: listed" in capsys.readouterr().out

    assert env.run("check", "OPS@example.com") == 1
    out = capsys.readouterr().out
    assert "ops@example.com: listed since" in out and "mailbox_disabled" in out and "customer asked" in out

    assert env.run("show", "ops@example.com", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["address"], shown["source"], shown["note"]) == ("ops@example.com", "operator", "customer asked")

    assert env.run("remove", "ops@example.com", "--reason", "mailbox re-enabled") == 0
    assert env.run("check", "ops@example.com") == 0
    assert "not listed" in capsys.readouterr().out

    listed, unlisted = env.events()
    assert listed["kind"] == "bounce_listed" and listed["recipient"] == "ops@example.com"
    assert (listed["actor"], listed["reason"], listed["action"], listed["stage"]) == (
        "alice", "customer asked", "listed", "operator")
    assert unlisted["kind"] == "bounce_unlisted" and unlisted["reason"] == "mailbox re-enabled"
    assert unlisted["actor"] == "alice" and unlisted["action"] == "unlisted"


def test_remove_needs_a_reason_and_an_entry(env, capsys):
    with pytest.raises(SystemExit) as exit_:
        env.run("remove", "a@example.com")
    assert exit_.value.code == 2 and "--reason" in capsys.readouterr().err
    assert env.run("remove", "a@example.com", "--reason", "  ") == 2
    assert env.run("remove", "a@example.com", "--reason", "fixed") == 1
    assert "not on the bounce list" in capsys.readouterr().err
    assert env.events() == []  # nothing changed, nothing announced


def test_show_and_check_of_an_auto_entry(env, capsys):
    asyncio.run(env.seed("gone@example.com"))
    assert env.run("show", "gone@example.com") == 0
    out = capsys.readouterr().out
    assert "unknown_recipient (rule gmail-no-such-user)" in out and "550-5.1.1 The email account" in out
    assert env.run("check", "gone@example.com") == 1
    assert "550 5.1.1 The email account that you tried to reach does not exist." in capsys.readouterr().out
    assert env.run("show", "other@example.com") == 1


def test_list_text_and_json(env, capsys):
    asyncio.run(env.seed("b@example.com", "a@example.com"))
    assert env.run("list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ADDRESS") and lines[1].startswith("a@example.com") and len(lines) == 3
    assert env.run("list", "--json") == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["address"] for e in entries] == ["a@example.com", "b@example.com"]
    assert entries[0]["reply"] == GMAIL


def test_list_json_of_an_empty_list(env, capsys):
    assert env.run("list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []


def test_csv_round_trip(env, capsys, tmp_path):
    asyncio.run(env.seed("a@example.com", "jörg@bücher.example"))
    assert env.run("add", "b@example.com", "--reason", 'said "no", twice') == 0
    exported = tmp_path / "out.csv"
    assert env.run("export", str(exported)) == 0
    assert "exported 3 entries" in capsys.readouterr().out
    assert env.run("export", "-") == 0  # stdout
    out = capsys.readouterr().out
    assert out == exported.read_bytes().decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["address"] for r in rows] == ["a@example.com", "b@example.com", "jörg@xn--bcher-kva.example"]
    assert rows[0]["reply"] == GMAIL  # multi-line replies survive CSV quoting
    assert rows[1]["note"] == 'said "no", twice'

    # Into an empty list elsewhere: the same entries, field for field.
    env.config.write_text(env.config.read_text().replace(str(env.db), str(tmp_path / "second" / "bounces.db")))
    assert env.run("import", str(exported)) == 0
    assert "imported 3 of 3" in capsys.readouterr().out
    assert env.run("export") == 0
    assert capsys.readouterr().out == out
    imported = [e for e in env.events() if e["reason"] == "import from out.csv"]
    assert {e["recipient"] for e in imported} == {r["address"] for r in rows}
    assert all(e["kind"] == "bounce_listed" for e in imported)


def test_import_minimal_csv_and_bad_rows(env, capsys, tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("address,note\nFirst@Example.com,from the old system\n\nsecond@example.com,\n")
    assert env.run("import", str(good), "--reason", "migration") == 0
    assert env.run("check", "first@example.com") == 1
    assert env.run("check", "second@example.com") == 1
    capsys.readouterr()

    bad = tmp_path / "bad.csv"
    bad.write_text("address\nthird@example.com\nnot an address\n")
    assert env.run("import", str(bad)) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {bad}: line 3: invalid address 'not an address'") and "\n" not in err
    assert env.run("check", "third@example.com") == 0  # nothing of a bad file is imported

    # A file that is not the CSV import takes (no row of it can be read) is an error, exit 2; a bad
    # row of a good file is the answer "no", exit 1 (docs/bounce-list.md, review27 F4).
    for text, why, status in [("email\na@example.com\n", "header must name 'address'", 2),
                              ("address,colour\na@example.com,red\n", "unknown: 'colour'", 2),
                              ("", "empty file", 2),
                              ("address,source\na@example.com,robot\n", "source must be one of", 1),
                              ("address,count\na@example.com,many\n", "count must be a whole number", 1),
                              # review32: accepted without a word before
                              ("address,count\na@example.com,-3\n", "line 2: count must be 0 or more, got '-3'", 1),
                              ("address,expires_at\nb@example.com,2020-01-01T00:00:00Z\n",
                               "line 2: expires_at 2020-01-01T00:00:00Z has passed: the entry would never be listed", 1),
                              ("address,first_seen\na@example.com,yesterday\n", "bad time", 1),
                              ("address\na@example.com,extra\n", "more fields than the header has", 1)]:
        bad.write_text(text)
        assert env.run("import", str(bad)) == status, text
        assert why in capsys.readouterr().err
    assert env.run("import", str(tmp_path / "missing.csv")) == 2
    assert "cannot read" in capsys.readouterr().err
    bad.write_bytes(b"address\n\xff\xfe@example.com\n")
    assert env.run("import", str(bad)) in (1, 2)
    assert "error:" in capsys.readouterr().err


def test_errors_are_one_line_never_a_traceback(env, tmp_path):
    (tmp_path / "blocked").write_text("")
    env.config.write_text(f"hostname: relay.test\nbounce_list: \"sqlite:///{tmp_path}/blocked/b.db\"\n")
    r = subprocess.run([sys.executable, "-m", "relay", "bounces", "check", "a@example.com", "-c", str(env.config)],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("error: cannot open bounce list") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1

    env.config.write_text("hostname: relay.test\nbounce_list: \"postgresql://postgres@127.0.0.1:1/test\"\n")
    r = subprocess.run([sys.executable, "-m", "relay", "bounces", "list", "-c", str(env.config)],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("error: cannot connect to bounce list") and "Traceback" not in r.stderr

    env.write()
    r = subprocess.run([sys.executable, "-m", "relay", "bounces", "check", "no at sign", "-c", str(env.config)],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2 and "no '@'" in r.stderr and "Traceback" not in r.stderr


def test_config_is_required(env, capsys):
    assert main(["bounces", "list"]) == 2
    assert "-c/--config" in capsys.readouterr().err


def test_unknown_category_is_refused(env, capsys):
    assert env.run("add", "a@example.com", "--reason", "r", "--category", "nonsense") == 2
    assert "unknown category 'nonsense'" in capsys.readouterr().err


async def test_a_cli_process_change_is_seen_by_the_running_relay_store(env):
    server_store = open_store(f"sqlite:///{env.db}")  # what `relay serve` holds open
    try:
        assert await server_store.get("live@example.com") is None
        subprocess.run([sys.executable, "-m", "relay", "bounces", "add", "live@example.com", "--reason", "test",
                        "-c", str(env.config)], check=True, cwd=ROOT, timeout=60, capture_output=True)
        assert (await server_store.get("LIVE@example.com")).note == "test"
        subprocess.run([sys.executable, "-m", "relay", "bounces", "remove", "live@example.com", "--reason", "fixed",
                        "-c", str(env.config)], check=True, cwd=ROOT, timeout=60, capture_output=True)
        assert await server_store.get("live@example.com") is None
    finally:
        await server_store.close()


def test_recheck_reports_and_removes_what_the_upstream_accepts(env, capsys):
    asyncio.run(env.seed("fixed@example.com", "still-gone@example.com"))
    with FakeUpstream(known={"fixed@example.com"}) as upstream:
        env.write(upstream_port=upstream.port)
        assert env.run("recheck", "--pace", "0") == 0
        out = capsys.readouterr().out
        assert "fixed@example.com: accepted now (250 2.1.5 OK)" in out
        assert "still-gone@example.com: still refused (550 5.1.1" in out
        assert env.run("check", "fixed@example.com") == 1  # without --remove nothing changes
        assert env.events() == []

        assert env.run("recheck", "Fixed@example.com", "still-gone@example.com", "--remove", "--pace", "0") == 0
        assert "fixed@example.com: accepted now (250 2.1.5 OK): removed" in capsys.readouterr().out
        probes = [r for r in upstream.rcpts if r.startswith("relay-recheck-")]
        assert set(upstream.rcpts) - set(probes) == {"fixed@example.com", "still-gone@example.com"}
    assert env.run("check", "fixed@example.com") == 0
    assert env.run("check", "still-gone@example.com") == 1
    (event,) = env.events()
    assert (event["kind"], event["recipient"], event["reason"]) == (
        "bounce_unlisted", "fixed@example.com", "recheck: upstream accepts the address now")
    assert event["reply"]["code"] == 250


def test_recheck_asks_like_a_careful_mta(env, capsys):
    """One connection, a real sender, a probe of a made-up address first, then several RCPTs in
    one transaction; no DATA."""
    listed = [f"user{n}@example.com" for n in range(5)] + ["a@example.org", "b@example.org"]
    asyncio.run(env.seed(*listed))
    with FakeUpstream(known={"user1@example.com", "a@example.org"}) as upstream:
        env.write(upstream_port=upstream.port)
        assert env.run("recheck", "--pace", "0") == 0
    assert upstream.connections == 1
    mails = [c for c in upstream.commands if c.upper().startswith("MAIL")]
    assert mails and all(m == "MAIL FROM:<postmaster@relay.test>" for m in mails)
    assert len(mails) == 2  # one transaction per domain: all of a domain's RCPTs in it
    rcpts = [c.split(":", 1)[1].strip("<> ") for c in upstream.commands if c.upper().startswith("RCPT")]
    groups: list[list[str]] = []
    for rcpt in rcpts:
        if rcpt.startswith("relay-recheck-"):  # each transaction opens with its probe
            groups.append([rcpt])
        else:
            groups[-1].append(rcpt)
    by_domain = {g[0].rpartition("@")[2]: g[1:] for g in groups}
    assert by_domain == {"example.com": listed[:5], "example.org": listed[5:]}
    assert not any(c.upper().startswith("DATA") for c in upstream.commands)
    out = capsys.readouterr().out
    assert "user1@example.com: accepted now" in out and "a@example.org: accepted now" in out
    assert "user0@example.com: still refused (550 5.1.1" in out


def test_recheck_removes_nothing_when_the_upstream_accepts_everything(env, capsys):
    asyncio.run(env.seed("gone@example.com", "also-gone@example.com"))
    with FakeUpstream() as upstream:  # a smarthost that takes every RCPT, as most do
        env.write(upstream_port=upstream.port)
        assert env.run("recheck", "--remove", "--pace", "0", "--sender", "ops@sender.test") == 0
    out = capsys.readouterr().out
    assert "gone@example.com: not judged: it accepted relay-recheck-" in out and "nothing removed" in out
    assert env.run("check", "gone@example.com") == 1 and env.run("check", "also-gone@example.com") == 1
    assert env.events() == []
    assert "MAIL FROM:<ops@sender.test>" in upstream.commands


def test_recheck_with_an_unreachable_upstream_keeps_the_list(env, capsys):
    asyncio.run(env.seed("gone@example.com"))
    env.write(upstream_port=1)
    # review-17 F4: nothing was asked, so nothing was found "still refused"; the run is an error.
    assert env.run("recheck", "--remove", "--pace", "0") == 2
    captured = capsys.readouterr()
    assert "gone@example.com: not asked (451" in captured.out and "still refused" not in captured.out
    assert "1 address(es) not asked" in captured.err
    assert env.run("check", "gone@example.com") == 1


def test_recheck_needs_an_upstream(env, capsys):
    assert env.run("recheck") == 2
    assert "needs an upstream" in capsys.readouterr().err


def test_with_events_on_stdout_the_command_never_prints_an_event_as_its_output(env, capsys):
    # `events: stdout` is the relay's own output (its journal); this command's stdout is the operator's
    # terminal or a pipe (`export -`), where an event line would pass for part of the command's output.
    env.config.write_text(f"hostname: relay.test\nbounce_list: \"sqlite:///{env.db}\"\nevents: [{{stdout: true}}]\n")
    assert env.run("add", "ops@example.com", "--reason", "asked") == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("ops@example.com: listed") and "bounce_listed" not in captured.out
    assert "not added to the event stream" in captured.err and '"kind":"bounce_listed"' in captured.err
    assert env.run("export", "-") == 0
    assert "bounce_listed" not in capsys.readouterr().out


def test_journal_sink_sends_the_event_with_the_relays_identifier(tmp_path):
    import socket

    from relay.events import JournalSink

    path = str(tmp_path / "journal.socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as journal:
        journal.bind(path)
        JournalSink(path).write('{"kind":"bounce_listed"}\n')
        fields = dict(line.split("=", 1) for line in journal.recv(65536).decode().splitlines())
    assert fields == {"SYSLOG_IDENTIFIER": "relay", "PRIORITY": "6", "MESSAGE": '{"kind":"bounce_listed"}'}


def test_events_queued_for_a_slow_webhook_are_delivered_before_the_command_exits(env, tmp_path):
    import http.server
    import time

    received = []

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            time.sleep(0.8)
            received.extend(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["data"]["events"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env.config.write_text(f"hostname: relay.test\nbounce_list: \"sqlite:///{env.db}\"\n"
                              f"events: [{{webhook: \"http://127.0.0.1:{server.server_port}/events\", "
                              f"spool_dir: {tmp_path / 'spool'}}}]\n")
        rows = tmp_path / "import.csv"
        rows.write_text("address,category\n" + "".join(f"u{i}@example.com,unknown_recipient\n" for i in range(8)))
        assert env.run("import", str(rows), "--reason", "migrated") == 0
        assert sorted(e["recipient"] for e in received) == sorted(f"u{i}@example.com" for i in range(8))
    finally:
        server.shutdown()


@pytest.fixture(params=["sqlite", "postgresql"])
def list_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/big.db"
    else:
        from tests.support import pg

        url, schema = pg.isolated_url()
        yield url
        pg.drop(schema)


def test_import_and_export_stream_in_batches_with_progress_on_stderr(list_url, tmp_path):
    rows = 2500  # more than two batches (IMPORT_BATCH), and an address twice across batches
    source = tmp_path / "in.csv"
    with source.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["address", "category", "note", "first_seen"])
        for i in range(rows):
            w.writerow([f"u{i:05d}@example.com", "unknown_recipient", f"n{i}", "2026-11-01T10:00:00Z"])
        w.writerow(["U00007@Example.com", "mailbox_disabled", "the later row wins", "2026-11-02T10:00:00Z"])
    config = tmp_path / "relay.yaml"
    config.write_text(f"hostname: relay.test\nbounce_list: '{list_url}'\nevents: [{{jsonl: {tmp_path}/e.jsonl}}]\n")

    def relay(*argv):
        return subprocess.run([sys.executable, "-m", "relay", "bounces", *argv, "-c", str(config)],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)

    imported = relay("import", str(source), "--progress")
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == f"imported {rows + 1} of {rows + 1} entries from {source}"
    last = imported.stderr.strip().splitlines()[-1]
    assert last.startswith(f"importing [{'#' * 24}] 100% {rows + 1:,}/{rows + 1:,}"), imported.stderr
    assert "checking 2,501" in imported.stderr
    assert len((tmp_path / "e.jsonl").read_text().splitlines()) == rows + 1  # one bounce_listed per row

    out = tmp_path / "out.csv"
    exported = relay("export", str(out), "--progress")
    assert exported.returncode == 0 and exported.stdout.strip() == f"exported {rows} entries to {out}"
    assert exported.stderr.strip().splitlines()[-1].startswith(f"exporting [{'#' * 24}] 100% {rows:,}/{rows:,}")
    got = list(csv.DictReader(out.open(newline="")))
    assert [r["address"] for r in got] == [f"u{i:05d}@example.com" for i in range(rows)]
    assert (got[7]["category"], got[7]["note"]) == ("mailbox_disabled", "the later row wins")
    quiet = relay("export", "-")  # not a terminal: no progress unless asked, and stdout is only the CSV
    assert quiet.stderr == "" and quiet.stdout.replace("\r\n", "\n") == out.read_text()


BREAKER_POLICY = SuppressionPolicy.from_dict({"permanent": {"unknown_recipient": {"list_after": 1}},
                                              "breaker": {"distinct_addresses": 2, "within": "10m"}})


def test_remove_of_a_held_address_discards_its_held_listing_so_a_confirm_does_not_list_it(env, capsys):
    """review24 F3: `remove` of an address a breaker held said "not on the bounce list; nothing removed"
    (exit 1) and left it held, so the operator's later `confirm DOMAIN` listed the address they had just
    said was good."""
    async def seed():
        store = open_store(f"sqlite:///{env.db}")
        for a in ("a@x.test", "b@x.test", "c@x.test", "d@x.test"):
            await store.record_failure(a, category="unknown_recipient", permanent=True, reply_text=GMAIL,
                                       rule="r", policy=BREAKER_POLICY)
        assert [e.address for e in await store.held("x.test")] == ["a@x.test", "b@x.test", "c@x.test", "d@x.test"]
        await store.close()

    asyncio.run(seed())
    assert env.run("remove", "a@x.test", "--reason", "mailbox fixed, customer confirmed") == 0
    out = capsys.readouterr().out
    assert "a@x.test: not on the bounce list; its listing held by the circuit breaker of x.test discarded too" in out
    assert env.run("confirm", "x.test", "--reason", "outage was real") == 0
    assert "3 held listing(s) confirmed" in capsys.readouterr().out
    assert env.run("check", "a@x.test") == 0
    assert "a@x.test: not listed" in capsys.readouterr().out
    assert env.run("check", "b@x.test") == 1


def test_remove_of_a_listed_address_also_held_discards_both(env, capsys):
    async def seed():
        store = open_store(f"sqlite:///{env.db}")
        for a in ("a@x.test", "b@x.test", "c@x.test"):
            await store.record_failure(a, category="unknown_recipient", permanent=True, reply_text=GMAIL,
                                       rule="r", policy=BREAKER_POLICY)
        await store.add("a@x.test", note="the operator's own")  # listed by the operator while held
        await store.close()

    asyncio.run(seed())
    assert env.run("remove", "a@x.test", "--reason", "fixed") == 0
    assert "a@x.test: removed; its listing held by the circuit breaker of x.test discarded too: fixed" in \
        capsys.readouterr().out
    assert env.run("confirm", "x.test", "--reason", "real") == 0
    assert env.run("check", "a@x.test") == 0


def test_remove_of_an_address_refused_through_its_domains_entry_names_that_entry(env, capsys):
    """review24 F6: `remove user@d` said only "not on the bounce list; nothing removed" while `check`
    said it was listed through @d and every RCPT to it was refused."""
    assert env.run("add", "@dom.test", "--reason", "domain gone") == 0
    capsys.readouterr()
    assert env.run("remove", "User@dom.test", "--reason", "customer says it works") == 1
    err = capsys.readouterr().err
    assert ("user@dom.test is not on the bounce list itself; nothing removed; mail to it is still refused "
            "through its domain's entry @dom.test (relay bounces remove @dom.test --reason R") in err
    assert env.run("check", "user@dom.test") == 1  # unchanged: the domain's entry was not touched
    assert env.run("remove", "@dom.test", "--reason", "domain back") == 0
    assert env.run("check", "user@dom.test") == 0


@pytest.mark.parametrize("action", [["check", "a@x.test"], ["show", "a@x.test"],
                                    ["remove", "a@x.test", "--reason", "r"], ["list"]])
@pytest.mark.parametrize("config", ["missing", "broken"])
def test_a_config_error_exits_2_never_1_which_is_an_answer(env, capsys, tmp_path, action, config):
    """review24 F8: a config that could not be read exited 1, which `check` defines as "listed" and
    show/remove as "not listed": a script read a typo in -c as an answer about the address."""
    path = tmp_path / ("nonexistent.yaml" if config == "missing" else "broken.yaml")
    if config == "broken":
        path.write_text("hostname: relay.test\nbounce_list: 42\nno_such_key: 1\n")
    assert _status(["bounces", *action, "-c", str(path)]) == 2
    assert "error:" in capsys.readouterr().err


def test_db_and_shaping_config_errors_exit_2(tmp_path, capsys):
    missing = str(tmp_path / "nonexistent.yaml")
    assert _status(["db", "status", "-c", missing]) == 2
    assert _status(["shaping", "list", "-c", missing]) == 2


def _status(argv: list[str]) -> int:
    """The exit status `relay ARGV` ends with, returned or raised (SystemExit) as the command does."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_a_change_whose_audit_event_could_not_be_stored_exits_2_and_says_so(env, tmp_path):
    """review24 F7: with the events database down, `add` printed "listed", waited 35 s, logged "1 event(s)
    not stored" and exited 0: a script took a change without its audit record for a success."""
    env.config.write_text(f"hostname: relay.test\nbounce_list: \"sqlite:///{env.db}\"\n"
                          f"events:\n  - jsonl: {env.events_file}\n"
                          f"  - postgresql: \"postgresql://postgres@127.0.0.1:{closed_port()}/test\"\n")
    out = subprocess.run([sys.executable, "-m", "relay", "bounces", "add", "q@x.test", "--reason", "test pg down",
                          "-c", str(env.config)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 2, out
    assert "q@x.test: listed" in out.stdout  # the change is made
    assert ("error: the change is made, but 1 of its audit event(s) could not be stored (1 in postgresql:"
            in out.stderr), out.stderr
    assert "Traceback" not in out.stderr
    assert [e["kind"] for e in env.events()] == ["bounce_listed"]  # the file sink has it


def test_the_documented_exit_status_of_import_names_the_header_error():
    # The doc said a wrong header (exit 2) was "a bad row" (exit 1) by omission (review27 F4): the
    # exit-status paragraph must say which import errors are 2.
    doc = (ROOT / "docs" / "bounce-list.md").read_text()
    paragraph = doc[doc.index("Exit status: 0 done"):]
    paragraph = " ".join(paragraph[:paragraph.index("\n\n")].split())
    two = paragraph[paragraph.index("2 an error"):]
    assert "header" in two and "`address` column" in two
