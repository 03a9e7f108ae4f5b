"""A policy file's `version:` is its format: 1, or left out. Any other value was accepted in silence
(check-config said OK for `version: 2`), so a file written for another format was read as this one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BASE = "hostname: relay.example.com\n"

# A minimal valid body of each policy file: every one has the same optional `version:` key (suppression.yaml,
# domains.yaml and tls.yaml once refused it, the last two reading it as a domain named "version").
BODIES = {
    "routes.yaml": "default: smarthost\n",
    "shaping.yaml": "default: {limits: {connections: 5}}\n",
    "relay-replies.yaml": "causes: {}\ndefault: {category: other, meaning: m, advice: a}\n",
    "bounce-rules.local.yaml": "rules:\n  - {id: local-one, code: '550', match: 'local words', category: other,\n"
                               "     meaning: m, advice: a}\n",
    "suppression.yaml": "permanent: {unknown_recipient: {list_after: 1}}\n",
    "domains.yaml": "example.com: {spf: 'off'}\n",
    "tls.yaml": "example.com: required\n",
}


def check(tmp_path: Path, name: str, version_line: str) -> subprocess.CompletedProcess:
    policies = tmp_path / "pol"
    policies.mkdir(exist_ok=True)
    (policies / name).write_text(version_line + BODIES[name])
    config = tmp_path / "c.yaml"
    config.write_text(BASE + f"policies: {policies}\n")
    return subprocess.run([sys.executable, "-m", "relay", "check-config", "-c", str(config)], capture_output=True,
                          text=True, timeout=60, cwd=REPO)


CASES = [(name, "version: 2\n", "2") for name in sorted(BODIES)] + \
    [("routes.yaml", line, shown) for line, shown in [("version: '1'\n", "'1'"), ("version: true\n", "True"),
                                                      ("version: 1.0\n", "1.0"), ("version: v1\n", "'v1'")]]


@pytest.mark.parametrize("name, line, shown", CASES)
def test_a_version_other_than_1_is_refused_naming_file_and_key(tmp_path, name, line, shown):
    out = check(tmp_path, name, line)
    assert out.returncode == 1, out.stdout + out.stderr
    assert (f"{tmp_path / 'pol' / name}: version: {shown} is not a policy format this relay reads: write "
            f"`version: 1` (the only one) or leave the key out") in out.stdout + out.stderr, out.stdout + out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("name, line", [(name, "version: 1\n") for name in sorted(BODIES)] +
                         [(name, "") for name in sorted(BODIES)] + [("routes.yaml", "version:\n")])
def test_version_1_or_none_still_loads(tmp_path, name, line):
    out = check(tmp_path, name, line)
    assert out.returncode == 0, out.stdout + out.stderr
