"""`relay db migrate|status`, and what the relay says about a database it cannot use: through the real
CLI (subprocesses), on real SQLite files and a real PostgreSQL schema."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from relay.store.schema import LATEST
from tests.support import pg

ROOT = Path(__file__).resolve().parent.parent

# Installed as sitecustomize for one subprocess: Python without the postgresql extra.
NO_ASYNCPG = '''
import sys

class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name == "asyncpg" or name.startswith("asyncpg."):
            raise ModuleNotFoundError("No module named 'asyncpg'", name="asyncpg")
        return None

sys.meta_path.insert(0, _NotInstalled())
'''


def relay(*args: str, env_path: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(([str(env_path)] if env_path else []) + [str(ROOT)])
    return subprocess.run([sys.executable, "-m", "relay", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def config(tmp_path: Path, bounce_list: str, extra: str = "") -> Path:
    path = tmp_path / "relay.yaml"
    path.write_text(f"hostname: relay.test\nbounce_list: '{bounce_list}'\n{extra}")
    return path


def test_migrate_then_status_on_postgresql(tmp_path, pg_url):
    url, schema = pg_url
    cfg = config(tmp_path, url)
    before = relay("db", "status", "-c", str(cfg))
    assert before.returncode == 1 and f"version 0, this relay {LATEST} (behind" in before.stdout
    first = relay("db", "migrate", "-c", str(cfg))
    assert first.returncode == 0, first.stderr
    assert [line.split(": applied ")[1].split()[0] for line in first.stdout.splitlines()] == \
        [str(v) for v in range(1, LATEST + 1)]
    again = relay("db", "migrate", "-c", str(cfg))
    assert again.returncode == 0 and f"at version {LATEST} already" in again.stdout
    after = relay("db", "status", "-c", str(cfg))
    assert after.returncode == 0 and "(up to date)" in after.stdout, after.stdout


def test_status_changes_nothing_and_names_a_newer_sqlite_list(tmp_path):
    path = tmp_path / "b.db"
    cfg = config(tmp_path, f"sqlite:///{path}")
    assert relay("db", "status", "-c", str(cfg)).returncode == 1
    assert not path.exists()  # status created nothing
    assert relay("db", "migrate", "-c", str(cfg)).returncode == 0
    db = sqlite3.connect(path)
    db.execute("INSERT INTO relay_schema_version VALUES (?, 'from the future', 0)", (LATEST + 1,))
    db.commit()
    db.close()
    status = relay("db", "status", "-c", str(cfg))
    assert status.returncode == 1 and "newer than this relay" in status.stdout
    migrate = relay("db", "migrate", "-c", str(cfg))
    assert migrate.returncode == 2 and "newer than this relay knows" in migrate.stderr
    check = relay("check-config", "-c", str(cfg))
    assert check.returncode == 1 and "upgrade this relay" in check.stdout and "Traceback" not in check.stderr


def test_serve_refuses_a_postgresql_list_a_newer_relay_migrated(tmp_path, pg_url):
    url, schema = pg_url
    cfg = config(tmp_path, url)
    assert relay("db", "migrate", "-c", str(cfg)).returncode == 0
    with psycopg.connect(pg._conninfo(), autocommit=True) as conn:
        conn.execute(f"INSERT INTO \"{schema}\".relay_schema_version (version, description) "
                     f"VALUES ({LATEST + 1}, 'from the future')")
    out = relay("serve", "-c", str(cfg), timeout=30)
    assert out.returncode == 1
    assert f"schema version {LATEST + 1} is newer than this relay knows ({LATEST})" in out.stderr
    assert "Traceback" not in out.stderr


def test_without_the_postgresql_extra_check_config_says_which_extra_to_install(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_ASYNCPG)
    url = "postgresql://relay:secret@127.0.0.1:5432/relay"
    cfg = config(tmp_path, url)
    out = relay("check-config", "-c", str(cfg), env_path=site)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "bounce_list" in out.stdout and "pip install '/path/to/relay[postgresql]'" in out.stdout
    assert "secret" not in out.stdout and "Traceback" not in out.stdout + out.stderr
    # And serve refuses to start with the same words, rather than fail at the first RCPT.
    served = relay("serve", "-c", str(cfg), env_path=site, timeout=30)
    assert served.returncode == 1 and "pip install '/path/to/relay[postgresql]'" in served.stderr
    assert "Traceback" not in served.stderr
    # The same config where the driver is installed is fine (check-config makes no connection).
    assert relay("check-config", "-c", str(cfg)).returncode == 0
