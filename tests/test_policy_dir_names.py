"""A file in the policy directory whose name the relay does not read (review27 F1).

A policy file missing from the operator's directory falls back to the shipped one, so a misspelt
name (`supression.yaml`) or the other common YAML suffix (`bounce-rules.local.yml`) was ignored
without a word: check-config said OK and the shipped policy listed the addresses the operator meant
to keep off the list. Every `*.yaml` / `*.yml` there must be a name the relay reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from relay.config import SHIPPED_POLICIES
from relay.policies import load_policies
from types import SimpleNamespace


def relay_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "relay", *args], capture_output=True, text=True, timeout=60)


def operator_dir(tmp_path: Path) -> tuple[Path, Path]:
    policies = tmp_path / "policies"
    policies.mkdir()
    config = tmp_path / "c.yaml"
    config.write_text(f"hostname: relay.example.com\npolicies: {policies}\n")
    return policies, config


LOCAL_RULE = ("rules:\n  - id: mine\n    match: 'NoSuchUser'\n    category: other\n"
              "    meaning: m\n    advice: a\n")


def test_a_misspelt_policy_file_fails_check_config_with_the_name_it_meant(tmp_path):
    policies, config = operator_dir(tmp_path)
    (policies / "supression.yaml").write_text("permanent:\n  unknown_recipient: {list_after: off}\n")
    (policies / "bounce-rules.local.yml").write_text(LOCAL_RULE)
    out = relay_cli("check-config", "-c", str(config))
    assert out.returncode == 1, out.stdout + out.stderr
    text = out.stdout + out.stderr
    assert "Traceback" not in text
    assert "supression.yaml: (file name): not a policy file" in text
    assert "did you mean suppression.yaml?" in text
    assert "bounce-rules.local.yml: (file name)" in text and "did you mean bounce-rules.local.yaml?" in text
    assert "domains.yaml" in text and "bounce-rules.NAME.yaml" in text  # the names it does read
    # The commands that load the policies refuse it too, rather than judge with the shipped file.
    out = relay_cli("classify", "-c", str(config), "550 5.1.1 NoSuchUser")
    assert out.returncode != 0 and "did you mean suppression.yaml?" in out.stdout + out.stderr


def test_the_right_names_load_and_take_effect(tmp_path):
    policies, config = operator_dir(tmp_path)
    (policies / "suppression.yaml").write_text("permanent:\n  unknown_recipient: {list_after: off}\n")
    (policies / "bounce-rules.local.yaml").write_text(LOCAL_RULE)
    (policies / ".suppression.yaml.swp").write_text("editor state\n")  # a dot file is not the operator's policy
    (policies / "README.txt").write_text("notes\n")  # not YAML: not a policy file by its name
    assert relay_cli("check-config", "-c", str(config)).returncode == 0


def test_an_operator_file_of_its_own_name_is_left_alone_and_said_not_read(tmp_path, caplog):
    # DESIGN.md: operators may add files of their own beside the shipped ones. Only a name close to
    # one the relay reads is taken for a misspelling; any other is said not to be read, not refused.
    policies, config = operator_dir(tmp_path)
    (policies / "our-notes.yaml").write_text("owner: postmaster\n")
    (policies / "notes.yaml").write_text("owner: postmaster\n")
    (policies / "inventory.yml").write_text("- mx1\n")
    assert relay_cli("check-config", "-c", str(config)).returncode == 0
    with caplog.at_level("WARNING", logger="relay.policies"):
        load_policies(SimpleNamespace(policies=policies))
    assert any("our-notes.yaml: not a policy file the relay reads" in r.getMessage() for r in caplog.records)


def test_the_shipped_policy_directory_has_no_stray_yaml():
    load_policies(SimpleNamespace(policies=SHIPPED_POLICIES))  # raises ConfigError naming a stray file


def test_a_reload_with_a_misspelt_policy_file_is_refused_and_the_old_policy_runs_on(
        tmp_path, upstream, relay_factory, caplog):
    from tests.support.smtp_client import RawSMTP, send_message

    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "domains.yaml").write_text("required.example: {dkim_required: true}\n")
    relay = relay_factory(upstream.port, policies=str(policies))
    (policies / "domain.yaml").write_text("{}\n")
    assert relay.reload() is False
    assert any("domain.yaml: (file name): not a policy file" in r.getMessage()
               and "did you mean domains.yaml?" in r.getMessage() for r in caplog.records)
    with RawSMTP(relay.host, relay.port) as c:
        assert c.cmd("EHLO client.test")[0] == 250
        replies = send_message(c, "x@required.example", ["bob@example.org"],
                               b"From: x@required.example\r\nSubject: s\r\n\r\nhi\r\n")
    assert replies[-1][1].startswith("550 5.7.1 "), replies  # the old policy: this domain must be signed
