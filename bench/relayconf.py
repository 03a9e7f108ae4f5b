"""What the relay needs for a bench run: a DKIM key, a policies dir signing bench.example, a bounce
list of N entries, and a config per scenario (generated, or the user's with ports redirected)."""

from __future__ import annotations

import base64
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import yaml

from systems import DOMAIN, REPO, SELECTOR


def _relay_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def make_key(keydir: Path) -> tuple[Path, str, str]:
    """An RSA-2048 key for DOMAIN/SELECTOR. Returns (pem path, TXT record value, how it was made).

    `relay dkim keygen` when the relay has it, else `cryptography` (PKCS#1 PEM, which OpenDKIM,
    dkimpy and the relay all read)."""
    keydir.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run([sys.executable, "-m", "relay", "dkim", "keygen", DOMAIN, SELECTOR, "--out", str(keydir)],
                           cwd=str(REPO), env=_relay_env(), capture_output=True, text=True, timeout=60)
        pems = sorted(keydir.glob("*.pem")) + sorted(keydir.glob("*.key")) + sorted(keydir.glob("*.private"))
        if r.returncode == 0 and pems:
            pem = next((p for p in pems if "priv" in p.name or p.suffix in (".pem", ".key")), pems[0])
            return pem, _txt_from_pem(pem), "relay dkim keygen"
    except (OSError, subprocess.TimeoutExpired):
        pass
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = keydir / f"{SELECTOR}.{DOMAIN}.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.NoEncryption()))
    os.chmod(pem, 0o600)
    return pem, _txt_from_pem(pem), "cryptography"


def _txt_from_pem(pem: Path) -> str:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pem.read_bytes(), password=None)
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    kind = "rsa" if key.__class__.__name__.lower().startswith("_rsa") or "RSA" in type(key).__name__ else "ed25519"
    if kind == "ed25519":
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    return f"v=DKIM1; k=rsa; p={base64.b64encode(spki).decode()}"


def make_policies(poldir: Path, key: Path) -> Path:
    """A policies dir whose domains.yaml signs DOMAIN; the other policy files fall back to the shipped ones."""
    poldir.mkdir(parents=True, exist_ok=True)
    (poldir / "domains.yaml").write_text(yaml.safe_dump(
        {DOMAIN: {"dkim": [{"selector": SELECTOR, "key": str(key)}], "spf": "off"}}, sort_keys=False))
    return poldir


def bounce_address(i: int) -> str:
    return f"user{i}@bounced{i % 997}.example"


def build_bounce_db(path: Path, entries: int) -> dict:
    """A bounce list of `entries` addresses in the relay's own SQLite schema.

    The schema comes from the relay: `relay.store.open_store()` creates the file; rows go in with one
    executemany (the store's put_many() goes row by row, ~10x slower for a million)."""
    t0 = time.monotonic()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    how = "relay.store.open_store + executemany"
    sys.path.insert(0, str(REPO))
    try:
        import asyncio

        from relay.store import open_store

        store = open_store("sqlite:///" + str(path))
        close = getattr(store, "close", None)
        if close is not None:
            res = close()
            if asyncio.iscoroutine(res):
                asyncio.run(res)
    except ImportError as exc:
        raise RuntimeError(f"relay.store is not importable ({exc}); cannot build the bounce list") from None
    db = sqlite3.connect(str(path))
    cols = db.execute("PRAGMA table_info(relay_bounces)").fetchall()
    if not cols:
        raise RuntimeError(f"{path}: the relay created no relay_bounces table; schema changed?")
    names = [c[1] for c in cols]
    now = time.time()
    known = {"address": None, "category": "unknown_recipient",
             "reply": "550-5.1.1 The email account that you tried to reach does not exist.\n550 5.1.1 bench",
             "rule": "bench", "first_seen": now, "last_seen": now, "count": 1, "source": "auto", "note": "bench",
             "expires_at": None}
    fill = []
    for cid, name, ctype, notnull, default, pk in cols:
        if name in known:
            fill.append(known[name])
        elif notnull and default is None:
            fill.append(0 if "INT" in (ctype or "").upper() or "REAL" in (ctype or "").upper() else "")
        else:
            fill.append(None)
    ai = names.index("address")
    sql = f"INSERT INTO relay_bounces ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    db.execute("PRAGMA synchronous = OFF")
    db.execute("BEGIN")

    def rows():
        row = list(fill)
        for i in range(entries):
            row[ai] = bounce_address(i)
            yield tuple(row)

    db.executemany(sql, rows())
    db.execute("COMMIT")
    n = db.execute("SELECT count(*) FROM relay_bounces").fetchone()[0]
    db.close()
    return {"entries": n, "seconds": round(time.monotonic() - t0, 2), "how": how, "path": str(path)}


_PATH_KEYS = [("policies",), ("upstream", "ca_file"), ("upstream", "password_file"), ("clients", "users_file")]


class ConfigFactory:
    """Writes one relay config per scenario. Generated (the default) or based on the user's file:
    the user's file keeps everything it says except where the bench must point: the listener (a free
    port, no TLS since smtp-source speaks none), the upstream (the sink, no STARTTLS), and the milter."""

    def __init__(self, workdir: Path, base: Path | None, bounce_db: Path | None, policies: Path | None,
                 events: Path, min_connections: int = 2100):
        self.workdir = Path(workdir)
        self.base_path = Path(base).resolve() if base else None
        self.bounce_db = bounce_db
        self.policies = policies
        self.events = events
        self.min_connections = min_connections
        self.overrides: list[str] = []
        self._n = 0
        if self.base_path:
            self.base = yaml.safe_load(self.base_path.read_text()) or {}
            self._absolutise(self.base, self.base_path.parent)
        else:
            self.base = self._generated()

    def _generated(self) -> dict:
        cfg = {
            "hostname": "relay-bench.example",
            "clients": {"networks": ["127.0.0.0/8"]},
            "limits": {"max_connections": self.min_connections, "max_message_size": 40 * 1024 * 1024},
            "events": [{"jsonl": str(self.events)}],
        }
        if self.bounce_db:
            cfg["bounce_list"] = "sqlite:///" + str(self.bounce_db)
        if self.policies:
            cfg["policies"] = str(self.policies)
        return cfg

    @staticmethod
    def _absolutise(cfg: dict, base: Path) -> None:
        def fix(v):
            return v if v is None or Path(v).is_absolute() else str(base / v)
        for keys in _PATH_KEYS:
            d = cfg
            for k in keys[:-1]:
                d = d.get(k) if isinstance(d, dict) else None
            if isinstance(d, dict) and isinstance(d.get(keys[-1]), str):
                d[keys[-1]] = fix(d[keys[-1]])
        bl = cfg.get("bounce_list")
        if isinstance(bl, str) and bl.startswith("sqlite:///") and not bl.startswith("sqlite:////"):
            cfg["bounce_list"] = "sqlite:///" + str(base / bl[len("sqlite:///"):])
        for item in cfg.get("events") or []:
            if isinstance(item, dict) and isinstance(item.get("jsonl"), str):
                item["jsonl"] = fix(item["jsonl"])

    def __call__(self, sink_port: int, listen_port: int | None, milter_port: int | None,
                 workers: int | None = None, mx_nameserver: str | None = None) -> Path:
        """`mx_nameserver`: deliver in mode mx, the MX found through this DNS server on the sink's port."""
        import copy

        cfg = copy.deepcopy(self.base)
        notes = []
        if listen_port:
            cfg["listen"] = [{"address": f"127.0.0.1:{listen_port}"}]
        else:
            cfg["listen"] = []
        cfg.pop("metrics", None)
        if milter_port:
            cfg["milter"] = {"listen": f"127.0.0.1:{milter_port}"}
            if not listen_port:
                # One process per core, as OpenDKIM runs a thread per connection on every core.
                cfg["workers"] = os.cpu_count() or 1
        else:
            cfg.pop("milter", None)
        up = dict(cfg.get("upstream") or {})
        if mx_nameserver:
            for key in ("host", "username", "password_file", "allow_plaintext_auth", "tls_verify", "mx_port"):
                up.pop(key, None)
            # As many connections to the one destination as the smarthost pool allows (a fair comparison;
            # the default, 10, is what a real provider is offered).
            up.update({"mode": "mx", "port": sink_port, "starttls": "off",
                       "connections_per_destination": up.get("pool_size", 50),
                       "mx_internal_networks": ["127.0.0.0/8"]})  # the sink is on loopback
            cfg["resolver"] = {"nameservers": [mx_nameserver], "timeout": 5}
        else:
            up.update({"host": "127.0.0.1", "port": sink_port, "starttls": "off"})
            up.pop("mode", None)
        cfg["upstream"] = up
        limits = dict(cfg.get("limits") or {})
        if limits.get("max_connections", 1000) < self.min_connections:
            notes.append(f"limits.max_connections raised from {limits.get('max_connections', 1000)} "
                         f"to {self.min_connections} for the idle-sessions figure")
            limits["max_connections"] = self.min_connections
        if limits.get("max_message_size", 36700160) < 30 * 1024 * 1024:
            notes.append("limits.max_message_size raised to 40 MiB for the 25 MB message figure")
            limits["max_message_size"] = 40 * 1024 * 1024
        cfg["limits"] = limits
        if workers is not None:
            cfg["workers"] = workers
        if self.base_path and notes:
            for n in notes:
                if n not in self.overrides:
                    self.overrides.append(n)
        self._n += 1
        path = self.workdir / f"relay-{self._n}.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return path
