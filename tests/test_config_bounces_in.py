"""The `bounces_in:` section of the config, and the VERP settings of domains.yaml that depend on it."""

from __future__ import annotations

import pytest

from relay.cli import main
from relay.config import load_settings
from relay.errors import ConfigError


def load(tmp_path, section: str):
    path = tmp_path / "relay.yaml"
    path.write_text("hostname: relay.example.com\n" + section)
    return load_settings(path)


def problems(tmp_path, section: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, section)
    return [f"{p.key}: {p.why}" for p in exc.value.problems]


def test_the_contract_example(tmp_path):
    s = load(tmp_path, 'bounces_in:\n  listen: "127.0.0.1:2526"\n  domains: [Bounces.Example.com]\n')
    assert str(s.bounces_in.listen) == "127.0.0.1:2526"
    assert s.bounces_in.domains == ("bounces.example.com",)
    assert s.bounces_in.accepts("BOUNCES.example.com") and not s.bounces_in.accepts("example.com")
    assert s.bounces_in.key == b""


def test_absent_by_default(tmp_path):
    assert load(tmp_path, "").bounces_in is None


def test_key_file_is_read_relative_to_the_config(tmp_path):
    (tmp_path / "verp.key").write_bytes(b"x" * 32 + b"\n")
    s = load(tmp_path, "bounces_in: {domains: [b.example.com], key_file: verp.key}\n")
    assert s.bounces_in.key == b"x" * 32


def test_every_problem_named(tmp_path):
    (tmp_path / "short.key").write_bytes(b"short")
    found = problems(tmp_path, "bounces_in: {listen: nowhere, domains: ['not a domain'], key_file: short.key, "
                               "extra: 1}\n")
    assert any(f.startswith("bounces_in.listen:") for f in found)
    assert any(f.startswith("bounces_in.domains[0]:") for f in found)
    assert any(f.startswith("bounces_in.key_file:") and "5 bytes" in f for f in found)
    assert any("extra" in f for f in found)
    found = problems(tmp_path, "bounces_in: {key_file: missing.key}\n")
    assert any(f.startswith("bounces_in.domains:") for f in found)
    assert any(f.startswith("bounces_in.key_file: no such file in ") for f in found), found


def test_check_config_reports_verp_without_a_key(tmp_path, capsys):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "domains.yaml").write_text("example.com: {verp: bounces.example.com}\n")
    config = tmp_path / "relay.yaml"
    config.write_text(f"hostname: relay.example.com\npolicies: {policies}\n")
    assert main(["check-config", "-c", str(config)]) == 1
    out = capsys.readouterr().out
    assert "example.com.verp" in out and "bounces_in.key_file" in out


def test_verp_domain_must_be_a_domain(tmp_path):
    from relay.domains import DomainPolicies

    with pytest.raises(ConfigError) as exc:
        DomainPolicies.from_dict({"example.com": {"verp": "not a domain!"}}, "domains.yaml")
    assert exc.value.problems[0].key == "example.com.verp"


def test_a_key_file_of_the_wrong_type_is_one_error(tmp_path):
    # The key was read twice (once for the unsigned check, once for the file): two identical errors.
    found = problems(tmp_path, 'bounces_in: {listen: "127.0.0.1:2526", domains: [b.example.com], key_file: 5}')
    assert found == ["bounces_in.key_file: expected str, got int 5"], found
