"""policies/domains.yaml: per-domain DKIM keys and SPF mode, every problem named."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from relay import dkim as dkimlib
from relay.config import SHIPPED_POLICIES
from relay.domains import DomainPolicies, load_default
from relay.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    rsa_key, ed_key = dkimlib.generate_key("rsa", 2048), dkimlib.generate_key("ed25519")
    (d / "rsa.key").write_bytes(dkimlib.private_key_pem(rsa_key))
    (d / "ed.key").write_bytes(dkimlib.private_key_pem(ed_key))
    # PKCS#1 ("BEGIN RSA PRIVATE KEY"), as opendkim-genkey writes it.
    (d / "pkcs1.key").write_bytes(rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    (d / "public.pem").write_bytes(rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (d / "encrypted.key").write_bytes(rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))
    (d / "ec.key").write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (d / "garbage.key").write_text("this is not a key\n")
    short = subprocess.run(["openssl", "genrsa", "512"], capture_output=True)
    if short.returncode == 0 and b"PRIVATE KEY" in short.stdout:
        (d / "short.key").write_bytes(short.stdout)
    for key_file in d.iterdir():
        key_file.chmod(0o600)  # the relay refuses a key other users can read (review27 F3)
    (d / "adir.key").mkdir()
    return d


def load(tmp_path: Path, text: str) -> DomainPolicies:
    path = tmp_path / "domains.yaml"
    path.write_text(text)
    return DomainPolicies.from_file(path)


def problems(tmp_path: Path, text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    for p in info.value.problems:
        assert p.file == str(tmp_path / "domains.yaml")
    return {p.key: p.why for p in info.value.problems}


def test_shipped_file_has_no_active_entries():
    shipped = SHIPPED_POLICIES / "domains.yaml"
    assert shipped.is_file()
    assert "dkim:" in shipped.read_text()  # the commented example is there
    policies = load_default()
    assert len(policies) == 0
    assert policies.get("example.com") is None


def test_full_entry(tmp_path, keys):
    p = load(tmp_path, f"""
Example.COM:
  dkim:
    - {{selector: s2026, key: {keys}/rsa.key}}
    - selector: e2026
      key: {keys}/ed.key
      algorithm: ed25519-sha256
      canonicalization: simple/relaxed
      expire: 7d
      headers: [From, To, Subject]
  dkim_required: true
  spf: reject
""")
    policy = p.get("example.com")
    assert policy is not None and policy is p.get("EXAMPLE.com.")
    assert policy.domain == "example.com" and policy.spf == "reject" and policy.dkim_required
    rsa_key, ed_key = policy.dkim
    assert (rsa_key.selector, rsa_key.algorithm, rsa_key.canonicalization) == ("s2026", "rsa-sha256", "relaxed/relaxed")
    assert rsa_key.headers == dkimlib.DEFAULT_HEADERS and rsa_key.expire is None
    assert (ed_key.selector, ed_key.algorithm, ed_key.canonicalization) == ("e2026", "ed25519-sha256", "simple/relaxed")
    assert ed_key.expire == 7 * 86400 and ed_key.headers == ("From", "To", "Subject")
    assert ed_key.source == f"{keys}/ed.key"


def test_defaults_no_entry_and_wildcard(tmp_path, keys):
    p = load(tmp_path, "plain.example: {}\nwarned.example: {spf: warn}\noff.example: {spf: off}\n")
    assert p.get("plain.example").spf == "off" and p.get("plain.example").dkim == ()
    assert not p.get("plain.example").dkim_required
    assert p.get("warned.example").spf == "warn"
    assert p.get("off.example").spf == "off"  # YAML 1.1 reads a bare off as false
    assert p.get("other.example") is None and p.get(None) is None

    p = load(tmp_path, f'own.example: {{spf: reject}}\n"*": {{spf: tempfail, dkim: [{{selector: s1, key: {keys}/rsa.key}}]}}\n')
    assert p.get("own.example").spf == "reject" and p.get("own.example").dkim == ()
    fallback = p.get("Other.Example")
    assert fallback.domain == "other.example" and fallback.spf == "tempfail" and fallback.from_wildcard
    assert [k.selector for k in fallback.dkim] == ["s1"]
    assert p.domains == ["own.example"]


def test_idn_domains_match_either_spelling(tmp_path):
    p = load(tmp_path, "bücher.example: {spf: warn}\n")
    assert p.get("xn--bcher-kva.example").spf == "warn"
    assert p.get("BÜCHER.example").spf == "warn"
    assert p.get("not a domain") is None


def test_relative_key_path_is_relative_to_the_file(tmp_path, keys):
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / "rsa.key").write_bytes((keys / "pkcs1.key").read_bytes())
    (tmp_path / "k" / "rsa.key").chmod(0o600)
    p = load(tmp_path, "example.com: {dkim: [{selector: s1, key: k/rsa.key}]}\n")
    assert p.get("example.com").dkim[0].source == str(tmp_path.resolve() / "k" / "rsa.key")


def test_every_key_problem_is_reported_with_file_and_key(tmp_path, keys):
    found = problems(tmp_path, f"""
example.com:
  dkim:
    - {{selector: s1, key: /nonexistent/dkim.key}}
    - {{selector: s2, key: {keys}/garbage.key}}
    - {{selector: s3, key: {keys}/public.pem}}
    - {{selector: s4, key: {keys}/encrypted.key}}
    - {{selector: s5, key: {keys}/ec.key}}
    - {{selector: s6, key: {keys}/adir.key}}
    - {{key: {keys}/rsa.key}}
    - {{selector: "bad selector", key: {keys}/rsa.key}}
    - {{selector: s9}}
    - {{selector: s10, key: {keys}/rsa.key, algorithm: ed25519-sha256}}
    - {{selector: s11, key: {keys}/rsa.key, canonicalization: relaxed}}
    - {{selector: s12, key: {keys}/rsa.key, headers: [To, Subject]}}
    - {{selector: s13, key: {keys}/rsa.key, expire: soon}}
    - {{selector: s14, key: {keys}/rsa.key, colour: blue}}
    - {{selector: s15, key: {keys}/rsa.key, algorithm: dsa-sha1}}
    - {{selector: s1, key: {keys}/rsa.key}}
    - just-a-string
""")
    assert found["example.com.dkim[0].key"] == "file /nonexistent/dkim.key does not exist"
    assert found["example.com.dkim[1].key"].startswith(f"file {keys}/garbage.key: not a PEM private key")
    assert "is a public key, not a PEM private key" in found["example.com.dkim[2].key"]
    assert "encrypted" in found["example.com.dkim[3].key"]
    assert "an ECDSA key cannot sign DKIM" in found["example.com.dkim[4].key"]
    assert found["example.com.dkim[5].key"] == f"file {keys}/adir.key is a directory"
    assert found["example.com.dkim[6].selector"].startswith("is required")
    assert "is not a selector" in found["example.com.dkim[7].selector"]
    assert found["example.com.dkim[8].key"].startswith("is required")
    assert "holds a rsa-sha256 key" in found["example.com.dkim[9].algorithm"]
    assert "expected HEADER/BODY" in found["example.com.dkim[10].canonicalization"]
    assert "must include From" in found["example.com.dkim[11].headers"]
    assert "duration" in found["example.com.dkim[12].expire"]
    assert found["example.com.dkim[13].colour"].startswith("unknown key")
    assert "is not one of rsa-sha256, ed25519-sha256" in found["example.com.dkim[14].algorithm"]
    assert "listed twice" in found["example.com.dkim[15].selector"]
    assert "expected a mapping" in found["example.com.dkim[16]"]
    assert len(found) == 17


def test_short_rsa_key_is_refused(tmp_path, keys):
    if not (keys / "short.key").exists():
        pytest.skip("openssl here does not make 512-bit keys")
    found = problems(tmp_path, f"example.com: {{dkim: [{{selector: s1, key: {keys}/short.key}}]}}\n")
    assert "512 bits is too short" in found["example.com.dkim[0].key"]


def test_domain_level_problems(tmp_path, keys):
    found = problems(tmp_path, f"""
example.com: {{spf: maybe, dkim_required: yes please, colour: blue, dkim: {keys}/rsa.key}}
Example.com: {{spf: warn}}
"bad domain!": {{spf: warn}}
list.example: [1, 2]
""")
    assert "'maybe' is not one of reject, tempfail, warn, off" == found["example.com.spf"]
    assert "expected true or false" in found["example.com.dkim_required"]
    assert found["example.com.colour"].startswith("unknown key")
    assert "expected a list of keys" in found["example.com.dkim"]
    assert "same domain as 'example.com'" in found["Example.com"]
    assert found["bad domain!"].startswith("not a domain name")
    assert "expected a mapping" in found["list.example"]


def test_file_level_problems(tmp_path):
    assert "(top level)" in problems(tmp_path, "- a\n- b\n")
    found = problems(tmp_path, "example.com: {spf: [\n")
    assert any(k.startswith("line ") and "not valid YAML" in v for k, v in found.items())
    with pytest.raises(ConfigError) as info:
        DomainPolicies.from_file(tmp_path / "missing.yaml")
    assert info.value.problems[0].key == "(file)" and "cannot read" in info.value.problems[0].why
    assert len(load(tmp_path, "# nothing\n")) == 0
    (tmp_path / "latin1.yaml").write_bytes("example.com: {spf: warn}  # café\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        DomainPolicies.from_file(tmp_path / "latin1.yaml")
    assert "not UTF-8" in info.value.problems[0].why


def test_unreadable_key_says_permission_denied(keys):
    # root reads any file, so load as `nobody` in a child process when we are root.
    # Not under pytest's tmp directory: that is 0700, and nobody could not reach it.
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        base.chmod(0o755)
        secret = base / "secret.key"
        secret.write_bytes((keys / "rsa.key").read_bytes())
        secret.chmod(0o000)
        policy = base / "domains.yaml"
        policy.write_text(f"example.com: {{dkim: [{{selector: s1, key: {secret}}}]}}\n")
        policy.chmod(0o644)
        code = ("import sys; from relay.domains import DomainPolicies\n"
                "from relay.errors import ConfigError\n"
                "try:\n    DomainPolicies.from_file(sys.argv[1])\n"
                "except ConfigError as e:\n    print(e)\n")
        command = [sys.executable, "-c", code, str(policy)]
        if os.geteuid() == 0:
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        out = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == f"{policy}: example.com.dkim[0].key: file {secret}: cannot read: permission denied", \
        out.stderr
