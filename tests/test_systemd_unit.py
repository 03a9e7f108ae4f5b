"""systemd/relay.service, checked by systemd itself (`systemd-analyze verify`), and kept in step with
docs/install.md."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "relay.service"
INSTALLED = "/opt/relay/bin/relay"  # where docs/install.md puts the program

ANALYZE = shutil.which("systemd-analyze")


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (Debian package systemd): "
                                            "the unit is NOT verified on this machine")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    # verify also checks that each command exists and is executable: the program is not installed
    # under /opt here, so the unit is checked with its path pointing at this checkout's relay.
    program = tmp_path / "relay"
    program.write_text(f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m relay \"$@\"\n")
    program.chmod(0o755)
    unit = tmp_path / "relay.service"
    text = UNIT.read_text()
    assert INSTALLED in text
    unit.write_text(text.replace(INSTALLED, str(program)))
    out = subprocess.run([ANALYZE, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"}, cwd=tmp_path)
    # Any complaint about our unit (an unknown key, a bad value, a missing program) fails; lines about
    # other units of this machine are not ours to judge.
    ours = [line for line in (out.stdout + out.stderr).splitlines() if "relay.service" in line]
    assert out.returncode == 0 and ours == [], out.stdout + out.stderr


def test_the_unit_runs_what_docs_install_installs():
    unit = UNIT.read_text()
    install = (ROOT / "docs" / "install.md").read_text()
    commands = re.findall(r"^Exec\w+=(\S+)", unit, re.M)
    assert commands[:2] == [INSTALLED, INSTALLED] and "python3 -m venv /opt/relay" in install
    assert re.search(r"^User=relay$", unit, re.M) and "adduser --system --group" in install
    assert "-c /etc/relay/config.yaml" in unit and "/etc/relay/config.yaml" in install
