"""A DKIM private key that others can read or write is refused at load (review27 F3), through the CLI.

A key other users can read is a key they can sign the domain's mail with; one the group or others can
write is one they can replace. OpenDKIM refuses both; `relay check-config` passed them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from relay import dkim as dkimlib


def check_config(tmp_path, mode: int) -> subprocess.CompletedProcess:
    policies = tmp_path / "policies"
    policies.mkdir(exist_ok=True)
    key = tmp_path / "k.key"
    key.write_bytes(dkimlib.private_key_pem(dkimlib.generate_key("ed25519")))
    key.chmod(mode)
    (policies / "domains.yaml").write_text("example.com:\n  dkim:\n    - {selector: s1, key: ../k.key}\n")
    config = tmp_path / "c.yaml"
    config.write_text(f"hostname: relay.example.com\npolicies: {policies}\n")
    return subprocess.run([sys.executable, "-m", "relay", "check-config", "-c", str(config)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("mode, why", [
    (0o666, "other users can write it"), (0o620, "the group can write it"), (0o602, "other users can write it")])
def test_a_key_others_can_write_fails_check_config(tmp_path, mode, why):
    out = check_config(tmp_path, mode)
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert "Traceback" not in text
    assert f"domains.yaml: example.com.dkim[0].key: file {tmp_path}/policies/../k.key: mode {mode:04o}: " in text
    assert why in text and "chmod 0600" in text


@pytest.mark.parametrize("mode", [0o644, 0o604])
def test_a_key_others_can_read_passes_with_a_warning(tmp_path, mode):
    # Refused, it stopped a relay whose key a tool wrote under umask 022 (review27-fix refused it).
    out = check_config(tmp_path, mode)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert f"mode {mode:04o}: other users can read it" in text and "chmod 0600" in text


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o400, 0o440])
def test_the_documented_modes_pass(tmp_path, mode):
    out = check_config(tmp_path, mode)
    assert out.returncode == 0, out.stdout + out.stderr
