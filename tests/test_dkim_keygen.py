"""`relay dkim keygen`: the key file, and the printed record working in DNS."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from dnslib import TXT

from relay import dkim as dkimlib
from relay.domains import DomainPolicies
from tests.support import dkim_verify

REPO = Path(__file__).resolve().parent.parent

MESSAGE = (b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: keygen test\r\n"
           b"Date: Thu, 26 Nov 2026 18:00:00 +0000\r\nMessage-ID: <k1@example.com>\r\n\r\nHello.\r\n")


def relay(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "relay", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


def printed_record(stdout: str) -> tuple[str, list[str]]:
    """(name, the quoted strings) from the `name:` and `value:` lines."""
    name = re.search(r"^\s*name:\s+(\S+)$", stdout, re.M).group(1)
    value_line = re.search(r"^\s*value:\s+(.+)$", stdout, re.M).group(1)
    strings = re.findall(r'"([^"]*)"', value_line)
    assert value_line.strip() == " ".join(f'"{s}"' for s in strings)  # nothing but quoted strings
    return name, strings


def publish_strings(dns, name: str, strings: list[str]) -> None:
    """Serve the TXT record as printed: one character-string per quoted string."""
    zone = dns.zone
    with zone.lock:
        zone.records.setdefault((zone._key(name), "TXT"), []).append(TXT([s.encode() for s in strings]))


def yaml_snippet(stdout: str) -> str:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Add to domains.yaml"))
    return "\n".join(lines[start + 1:]) + "\n"


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_keygen_record_verifies_a_signed_message(dns, tmp_path, kind):
    out = tmp_path / "keys"
    args = ["dkim", "keygen", "example.com", "k2026", "--out", str(out)]
    if kind == "ed25519":
        args += ["--type", "ed25519"]
    result = relay(*args)
    assert result.returncode == 0, result.stderr
    key_file = out / "example.com.k2026.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    private_key = dkimlib.load_private_key(key_file.read_bytes())
    assert dkimlib.key_algorithm(private_key) == ("rsa-sha256" if kind == "rsa" else "ed25519-sha256")

    name, strings = printed_record(result.stdout)
    assert name == "k2026._domainkey.example.com"
    assert all(len(s.encode()) <= 255 for s in strings)
    assert len(strings) == (2 if kind == "rsa" else 1)  # RSA-2048's record does not fit one string
    assert "".join(strings) == dkimlib.public_key_record(private_key)
    assert f'k2026._domainkey.example.com. 3600 IN TXT ( {" ".join(chr(34) + s + chr(34) for s in strings)} )' \
        in result.stdout
    publish_strings(dns, name, strings)

    # The printed domains.yaml lines load as they are and sign with the new key.
    (tmp_path / "domains.yaml").write_text(yaml_snippet(result.stdout))
    policy = DomainPolicies.from_file(tmp_path / "domains.yaml").get("example.com")
    assert [k.selector for k in policy.dkim] == ["k2026"]
    message = dkimlib.sign(MESSAGE, policy.dkim[0], "example.com") + MESSAGE
    assert dkim_verify.dkimpy(message, dns.port) == [True]
    if kind == "rsa":
        verdict = dkim_verify.mail_dkim(message, dns.port)
        assert verdict.all_pass and verdict.signatures[0].selector == "k2026", verdict


def test_keygen_rsa_bits_and_idn(tmp_path):
    result = relay("dkim", "keygen", "Bücher.example", "s1", "--bits", "3072", "--out", str(tmp_path), "-c",
                   "/nonexistent/config.yaml")
    assert result.returncode == 0, result.stderr
    key = dkimlib.load_private_key((tmp_path / "xn--bcher-kva.example.s1.key").read_bytes())
    assert key.key_size == 3072
    assert "s1._domainkey.xn--bcher-kva.example" in result.stdout


def test_keygen_refuses_to_overwrite(tmp_path):
    assert relay("dkim", "keygen", "example.com", "s1", "--out", str(tmp_path)).returncode == 0
    before = (tmp_path / "example.com.s1.key").read_bytes()
    result = relay("dkim", "keygen", "example.com", "s1", "--type", "ed25519", "--out", str(tmp_path))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "already exists" in result.stderr
    assert (tmp_path / "example.com.s1.key").read_bytes() == before


@pytest.mark.parametrize("args, why", [
    (["not a domain", "s1"], "is not a domain name"),
    (["example.com", "bad selector"], "is not a selector"),
    (["example.com", "s1", "--type", "ed25519", "--bits", "2048"], "--bits applies to RSA keys only"),
    (["example.com", "s1", "--bits", "512"], "choose 1024 to 4096"),
])
def test_keygen_errors_are_one_line(tmp_path, args, why):
    result = relay("dkim", "keygen", *args, "--out", str(tmp_path / "k"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and why in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "k").exists() or not any((tmp_path / "k").iterdir())


def test_keygen_out_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    result = relay("dkim", "keygen", "example.com", "s1", "--out", str(tmp_path / "file"))
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
