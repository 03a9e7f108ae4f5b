"""One bounce-list key for an address in any Unicode normalization form (RFC 6530 10.1: NFC).

`jörg@` typed as one code point (U+00F6, NFC) and as `o` + U+0308 COMBINING DIAERESIS (NFD, as macOS
and some web forms produce it) is one mailbox. The key had no normalization: an address listed in one
form was neither refused in the other (the suppression missed) nor removed by the operator naming it
in the other. Through the CLI and a running relay, on SQLite and PostgreSQL, and the migration that
rewrites keys an older relay stored in another form.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import pytest

from relay.store import open_store
from relay.store.schema import LATEST
from tests.support import pg
from tests.support.smtp_client import RawSMTP

ROOT = Path(__file__).resolve().parent.parent
NFC = unicodedata.normalize("NFC", "jörg@bücher.example")
NFD = unicodedata.normalize("NFD", NFC)
assert NFC != NFD
# The key an older relay stored for the NFD spelling: its domain in A-labels, its local part as given.
OLD_KEY = unicodedata.normalize("NFD", "jörg") + "@xn--bcher-kva.example"
KEY = "jörg@xn--bcher-kva.example"  # NFC


@pytest.fixture(params=["sqlite", "postgresql"])
def list_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/b.db"
    else:
        url, schema = pg.isolated_url()
        yield url
        pg.drop(schema)


def cli(config: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "relay", "bounces", *argv, "-c", str(config)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def write_config(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "relay.yaml"
    config.write_text(f"hostname: relay.test\nbounce_list: '{url}'\nevents: [{{jsonl: {tmp_path}/e.jsonl}}]\n",
                      encoding="utf-8")
    return config


def test_an_address_listed_in_one_form_is_found_and_removed_in_the_other(list_url, tmp_path):
    config = write_config(tmp_path, list_url)
    added = cli(config, "add", NFC, "--reason", "bounced")
    assert added.returncode == 0, added.stderr
    assert cli(config, "check", NFD).returncode == 1  # listed
    removed = cli(config, "remove", NFD, "--reason", "the mailbox works again")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert cli(config, "check", NFC).returncode == 0  # not listed
    assert cli(config, "list", "--json").stdout.strip() in ("", "[]")


def test_a_running_relay_refuses_the_other_form_of_a_listed_address(relay):
    added = cli(relay.config_path, "add", NFD, "--reason", "bounced")
    assert added.returncode == 0, added.stderr
    with RawSMTP(relay.host, relay.port) as c:
        assert c.cmd("EHLO client.test")[0] == 250
        assert c.cmd("MAIL FROM:<a@sender.test> SMTPUTF8")[0] == 250
        code, text = c.cmd(f"RCPT TO:<{NFC}>".encode("utf-8"))
        c.cmd("QUIT")
    assert code == 550 and "bounce list" in text, text
    (event,) = [e for e in relay.events(wait_for=1) if e["kind"] == "suppressed"]
    assert unicodedata.normalize("NFC", event["recipient"]) == NFC


def test_kelvin_sign_is_not_folded_into_ascii_k(list_url, tmp_path):
    # NFC maps U+212A KELVIN SIGN to ASCII "K" (a canonical singleton), which the key's case folding
    # then makes "k": a refusal of "\u212aate@x" would list the good "kate@x" (review24 F2).
    config = write_config(tmp_path, list_url)
    assert cli(config, "add", "\u212aate@example.com", "--reason", "bounced").returncode == 0
    assert cli(config, "check", "kate@example.com").returncode == 0
    assert cli(config, "check", "Kate@example.com").returncode == 0
    assert cli(config, "check", "\u212aate@example.com").returncode == 1


def _as_written_by_an_older_relay_sqlite(path: Path, rows: list[tuple[str, float | None]]) -> None:
    """Rows keyed as a relay before migration 9 wrote them (in the form given), and the file at
    version 8."""
    db = sqlite3.connect(path, isolation_level=None)
    now = time.time()
    for key, expires in rows:
        db.execute("INSERT INTO relay_bounces (address, category, reply, rule, first_seen, last_seen, count, source,"
                   " note, expires_at) VALUES (?, 'unknown_recipient', '550 5.1.1', 'r', ?, ?, 1, 'auto', '', ?)",
                   (key, now, now, expires))
    db.execute("INSERT INTO relay_bounce_failures (address, category, at) VALUES (?, 'unknown_recipient', ?)",
               (rows[0][0], now))
    db.execute("DELETE FROM relay_schema_version WHERE version >= 9")
    db.execute("PRAGMA user_version = 8")
    db.close()


def _as_written_by_an_older_relay_postgresql(schema: str, rows: list[tuple[str, float | None]]) -> None:
    import psycopg

    with psycopg.connect(pg._conninfo(), autocommit=True) as conn:
        for key, expires in rows:
            conn.execute(f'INSERT INTO "{schema}".relay_bounces (address, category, reply, rule, first_seen, last_seen,'
                         " count, source, note, expires_at) VALUES (%s, 'unknown_recipient', '550 5.1.1', 'r', now(),"
                         " now(), 1, 'auto', '', CASE WHEN %s::float8 IS NULL THEN NULL ELSE to_timestamp(%s) END)",
                         (key, expires, expires))
        conn.execute(f'INSERT INTO "{schema}".relay_bounce_failures (address, category, at)'
                     " VALUES (%s, 'unknown_recipient', now())", (rows[0][0],))
        conn.execute(f'DELETE FROM "{schema}".relay_schema_version WHERE version >= 9')


def _migrated(url: str) -> None:
    async def opened():
        store = open_store(url)
        try:
            await store.migrate()
            assert await store.schema_version() == LATEST
        finally:
            await store.close()
    asyncio.run(opened())


def test_keys_an_older_relay_stored_in_another_form_are_rewritten_by_migration_9(list_url, tmp_path):
    _migrated(list_url)
    later = time.time() + 86400
    # ann's two spellings both listed: the one that never expires stays.
    ann_nfd = unicodedata.normalize("NFD", "ännchen@x.example")
    rows = [(OLD_KEY, None), (ann_nfd, None), (unicodedata.normalize("NFC", ann_nfd), later)]
    if list_url.startswith("sqlite"):
        _as_written_by_an_older_relay_sqlite(tmp_path / "b.db", rows)
    else:
        _as_written_by_an_older_relay_postgresql(list_url.split("schema=")[1].split("&")[0], rows)
    config = write_config(tmp_path, list_url)
    assert cli(config, "check", NFC).returncode == 1  # the CLI opens the list: migrated to 9
    listed = cli(config, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    entries = json.loads(listed.stdout)
    assert sorted(e["address"] for e in entries) == sorted([KEY, unicodedata.normalize("NFC", "ännchen@x.example")])
    (ann,) = [e for e in entries if e["address"].startswith("ä")]
    assert ann["expires_at"] is None
    removed = cli(config, "remove", NFD, "--reason", "the mailbox works again")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert cli(config, "check", NFC).returncode == 0
