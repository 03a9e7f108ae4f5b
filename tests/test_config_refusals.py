"""Configs that must be refused, through the real CLI (`relay check-config`, `relay serve`): each
error names the file, the key (or line) and why, with no traceback, hang or crash."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from relay.policies import load_policies
from relay.config import load_settings
from tests.support.smtp_client import RawSMTP

BASE = "listen: [{address: '127.0.0.1:2525'}]\nupstream: {host: 127.0.0.1, port: 2587, starttls: 'off'}\n"


def check_config(tmp_path: Path, text: str, name: str = "c.yaml") -> subprocess.CompletedProcess:
    path = tmp_path / name
    path.write_text(text)
    return subprocess.run([sys.executable, "-m", "relay", "check-config", "-c", str(path)],
                          capture_output=True, text=True, timeout=60)


def refused(tmp_path: Path, text: str) -> str:
    out = check_config(tmp_path, text)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    return out.stdout


ALIAS_BOMB = "".join(
    [f"hostname: relay.example.com\n{BASE}", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n']
    + [f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi")]
    + ["limits: {timeout: *i}\n"])


def test_a_yaml_alias_bomb_is_refused_before_it_is_expanded(tmp_path):
    out = refused(tmp_path, ALIAS_BOMB)
    assert "c.yaml: line" in out and "expand to more than" in out and "alias" in out


def test_an_alias_bomb_in_a_policy_file_is_refused_the_same_way(tmp_path):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "domains.yaml").write_text(ALIAS_BOMB.replace(f"hostname: relay.example.com\n{BASE}", "")
                                           .replace("limits: {timeout: *i}", "example.com: {spf: *i}"))
    out = refused(tmp_path, f"hostname: relay.example.com\npolicies: {policies}\n")
    assert "domains.yaml: line" in out and "expand to more than" in out


@pytest.mark.parametrize("nesting", ["flow", "block"])
def test_a_document_nested_thousands_deep_is_refused_with_its_line_not_a_traceback(tmp_path, nesting):
    # PyYAML composes recursively: the old code died with "RecursionError: maximum recursion depth
    # exceeded" and a traceback, for a config and for a policy file alike.
    deep = ("x: " + "[" * 100_000 + "]" * 100_000 + "\n" if nesting == "flow"
            else "x:\n" + "".join(" " * i + "k:\n" for i in range(1, 1400)))  # 1,400 levels in 0.98 MB
    out = refused(tmp_path, f"hostname: relay.example.com\n{BASE}{deep}")
    assert "c.yaml: line" in out and "nested too deeply" in out
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "domains.yaml").write_text(deep.replace("x:", "example.com:", 1))
    out = refused(tmp_path, f"hostname: relay.example.com\npolicies: {policies}\n")
    assert "domains.yaml: line" in out and "nested too deeply" in out


def test_ordinary_anchors_are_still_fine(tmp_path):
    out = check_config(tmp_path, "hostname: relay.example.com\nclients: {networks: &nets ['127.0.0.0/8']}\n"
                                 "correlation: {headers: [X-A], sender_patterns: []}\n")
    assert out.returncode == 0, out.stdout
    # The shipped rules use anchors for their shared texts.
    load_policies(load_settings(tmp_path / "c.yaml"))


def test_a_duplicate_key_names_the_key_and_both_lines(tmp_path):
    out = refused(tmp_path, "hostname: relay.example.com\nclients:\n  networks: ['127.0.0.0/8']\n"
                            "limits: {timeout: 30}\nclients:\n  networks: ['10.0.0.0/8']\n")
    assert "c.yaml: line 5: duplicate key 'clients' (first at line 2)" in out


def test_a_duplicate_key_in_a_policy_file_is_refused(tmp_path):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "domains.yaml").write_text("example.com: {spf: reject}\nexample.com: {spf: 'off'}\n")
    out = refused(tmp_path, f"hostname: relay.example.com\npolicies: {policies}\n")
    assert "domains.yaml: line 2: duplicate key 'example.com' (first at line 1)" in out


@pytest.mark.parametrize("networks", [["0.0.0.0/1", "128.0.0.0/1"], ["::/1", "8000::/1"],
                                      ["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2", "192.0.0.0/2"],
                                      ["8.0.0.0/8"], ["2000::/3"]])
def test_networks_that_together_trust_the_internet_are_refused(tmp_path, networks):
    out = refused(tmp_path, f"hostname: relay.example.com\nclients: {{networks: {networks}}}\n")
    assert "clients.networks: together these networks trust" in out and "open relay" in out


def test_private_networks_and_a_small_public_one_are_fine(tmp_path):
    out = check_config(tmp_path, "hostname: relay.example.com\nclients: {networks: ['10.0.0.0/8', "
                                 "'172.16.0.0/12', '192.168.0.0/16', '127.0.0.0/8', '::1/128', 'fc00::/7', "
                                 "'198.51.100.0/24', '203.0.113.0/24', '192.0.2.0/24', '2001:db8::/32']}\n")
    assert out.returncode == 0, out.stdout


@pytest.mark.parametrize("hostname, why", [("''", "must not be empty"), ("relay", "single label"),
                                           ("'   '", "must not be empty"), ("'[300.1.1.1]'", "address literal")])
def test_a_hostname_that_is_no_fqdn_is_refused(tmp_path, hostname, why):
    out = refused(tmp_path, f"hostname: {hostname}\n")
    assert "c.yaml: hostname: " in out and why in out


def test_an_address_literal_is_a_valid_hostname(tmp_path):
    assert check_config(tmp_path, "hostname: '[192.0.2.1]'\n").returncode == 0
    assert check_config(tmp_path, "hostname: '[IPv6:2001:db8::1]'\n").returncode == 0


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "0.0001ms", "0", "100d"])
def test_timeouts_out_of_bounds_are_refused(tmp_path, value):
    out = refused(tmp_path, f"hostname: relay.example.com\nlimits: {{timeout: {value}}}\n"
                            f"upstream: {{host: smtp.example.com, command_timeout: {value}}}\n")
    assert "limits.timeout: " in out and "upstream.command_timeout: " in out


def test_upstream_password_in_clear_is_refused_unless_allowed(tmp_path):
    (tmp_path / "secret").write_text("pw\n")
    for mode in ("'off'", "opportunistic"):
        out = refused(tmp_path, f"hostname: relay.example.com\nupstream: {{host: smtp.example.com, "
                                f"starttls: {mode}, username: u, password_file: secret}}\n")
        assert "upstream.starttls: " in out and "password in clear" in out and "allow_plaintext_auth" in out
    ok = check_config(tmp_path, "hostname: relay.example.com\nupstream: {host: 127.0.0.1, starttls: 'off', "
                                "username: u, password_file: secret, allow_plaintext_auth: true}\n")
    assert ok.returncode == 0, ok.stdout


def test_serve_refuses_a_bad_config_with_the_same_words(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(ALIAS_BOMB)
    out = subprocess.run([sys.executable, "-m", "relay", "serve", "-c", str(path)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1 and "expand to more than" in out.stderr and "Traceback" not in out.stderr


# -- operator regexes: classification is bounded in time whatever the rules ------------------------

CATASTROPHIC_RULE = """rules:
  - id: local-aaa
    code: 550
    match: '(a+)+$'
    category: unknown_recipient
    meaning: The mailbox does not exist.
    advice: Remove it.
"""


def test_a_backtracking_operator_rule_is_compiled_to_run_in_linear_time(tmp_path, upstream, relay_factory):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "bounce-rules.local.yaml").write_text(CATASTROPHIC_RULE)
    assert check_config(tmp_path, f"hostname: relay.example.com\npolicies: {policies}\n").returncode == 0
    # The upstream answers a RCPT with 34 a's and a b: Python's backtracking engine would take
    # minutes for such a reply (2^34 ways to split the a's), on the event loop: the client would time out.
    upstream.rcpt_replies["victim"] = "550 5.1.1 " + "a" * 34 + "b"
    upstream.rcpt_replies["gone"] = "550 5.1.1 user aaa"
    relay = relay_factory(upstream.port, policies=str(policies))
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        assert c.cmd("RCPT TO:<victim@example.com>")[0] == 550
        assert c.cmd("RCPT TO:<gone@example.com>")[0] == 550
    events = relay.events(wait_for=2)
    by_rcpt = {e["recipient"]: e for e in events if e["kind"] == "rejected"}
    assert by_rcpt["gone@example.com"]["classification"]["rule"] == "local-aaa"  # RE2 ran the rule
    assert by_rcpt["victim@example.com"]["classification"]["rule"] != "local-aaa"


def test_an_operator_rule_that_needs_backtracking_is_refused_at_load(tmp_path):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "bounce-rules.local.yaml").write_text(CATASTROPHIC_RULE.replace("'(a+)+$'", r"'(a)\1x'"))
    out = refused(tmp_path, f"hostname: relay.example.com\npolicies: {policies}\n")
    assert "bounce-rules.local.yaml: rules[0].match: " in out and "needs backtracking" in out


def test_a_copy_of_the_shipped_rules_in_an_operator_directory_still_loads(tmp_path):
    from relay.config import SHIPPED_POLICIES

    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "bounce-rules.yaml").write_text((SHIPPED_POLICIES / "bounce-rules.yaml").read_text())
    out = check_config(tmp_path, f"hostname: relay.example.com\npolicies: {policies}\n")
    assert out.returncode == 0, out.stdout


PADDING = "# " + "x" * 98 + "\n"  # one 101-byte comment line


def test_a_config_or_policy_file_over_max_file_bytes_is_refused_from_its_size(tmp_path):
    # PyYAML reads about 1.4 MB a second: a 50 MB file took 36 s (and 175 MB) before its error, at
    # load and at every reload. Now the size alone refuses it, with the usual one-line error.
    from relay.yamlfile import MAX_FILE_BYTES

    big = PADDING * (MAX_FILE_BYTES // len(PADDING) + 1)
    out = refused(tmp_path, f"hostname: relay.example.com\n{BASE}{big}")
    assert out.splitlines()[0] == (f"error: {tmp_path / 'c.yaml'}: (file): too large: over {MAX_FILE_BYTES} bytes "
                                   "(MAX_FILE_BYTES); no config or policy file needs that much")
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "domains.yaml").write_text("example.com: {dkim_required: true}\n" + big)
    out = refused(tmp_path, f"hostname: relay.example.com\n{BASE}policies: {policies}\n")
    assert "domains.yaml: (file): too large" in out
    # Just under the limit is read as before.
    (policies / "domains.yaml").write_text("example.com: {dkim_required: true}\n" + big[:MAX_FILE_BYTES - 100])
    assert check_config(tmp_path, f"hostname: relay.example.com\n{BASE}policies: {policies}\n").returncode == 0


def test_a_policy_file_grown_past_max_file_bytes_fails_the_reload_and_the_old_policy_runs_on(
        tmp_path, upstream, relay_factory, caplog):
    from relay.yamlfile import MAX_FILE_BYTES
    from tests.support.smtp_client import send_message

    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "domains.yaml").write_text("required.example: {dkim_required: true}\n")
    relay = relay_factory(upstream.port, policies=str(policies))
    (policies / "domains.yaml").write_text("{}\n" + PADDING * (MAX_FILE_BYTES // len(PADDING) + 1))
    assert relay.reload() is False
    assert any("domains.yaml: (file): too large" in r.getMessage() for r in caplog.records)
    with RawSMTP(relay.host, relay.port) as c:
        assert c.cmd("EHLO client.test")[0] == 250
        replies = send_message(c, "x@required.example", ["bob@example.org"],
                               b"From: x@required.example\r\nSubject: s\r\n\r\nhi\r\n")
    assert replies[-1][1].startswith("550 5.7.1 "), replies  # the old policy: this domain must be signed


def test_a_users_file_over_max_file_bytes_is_refused_from_its_size(tmp_path):
    # The AUTH users file is read at start and at every reload, like the config: with no limit, a
    # users file of any size was read whole (and each line parsed) before anything was said.
    from relay.users import hash_password
    from relay.yamlfile import MAX_FILE_BYTES

    users = tmp_path / "users"
    line = f"alice:{hash_password('pw', 1000)}:sender.test\n"
    users.write_text(line + PADDING * (MAX_FILE_BYTES // len(PADDING) + 1))
    out = refused(tmp_path, f"hostname: relay.example.com\n{BASE}clients: {{users_file: {users}}}\n")
    assert out.splitlines()[0] == (f"error: {users}: (file): too large: over {MAX_FILE_BYTES} bytes "
                                   "(MAX_FILE_BYTES); no config or policy file needs that much")
    users.write_text(line + PADDING * ((MAX_FILE_BYTES - len(line)) // len(PADDING)))  # just under: read
    assert check_config(tmp_path, f"hostname: relay.example.com\n{BASE}clients: {{users_file: {users}}}\n"
                        ).returncode == 0


def test_every_flag_that_is_not_true_or_false_is_refused_alike(tmp_path):
    # Seven policy flags in four loaders (bounce rules, tls.yaml, shaping.yaml, domains.yaml) each
    # checked "true or false" by hand; one helper now (errors.Problems.check_bool). The operator's
    # lines must stay what they were: file, key, and the value as given.
    policies = tmp_path / "policies"
    policies.mkdir()
    rules = policies / "bounce-rules.ops.yaml"
    rules.write_text("rules:\n"
                     "  - {id: ops-1, match: 'x', category: unknown_recipient, meaning: m., advice: a.,\n"
                     "     permanent: 'yes', names_recipient: 1, unconfirmed: 'no'}\n")
    tls = policies / "tls.yaml"
    tls.write_text("example.com: {level: opportunistic, dane: 'on', mta_sts: [true]}\n")
    shaping = policies / "shaping.yaml"
    shaping.write_text("mx_lookup: 'true'\n"
                       "reactions:\n"
                       "  - {id: r1, enhanced: '4.7.28', reason: unusual rate, hold: {for: 15m},"
                       " per_sender_domain: 'y'}\n")
    domains = policies / "domains.yaml"
    domains.write_text("example.com: {spf: 'off', dkim_required: 0}\n")
    out = refused(tmp_path, f"hostname: r.example\npolicies: {policies}\n")
    lines = set(out.splitlines())
    for expected in (f"error: {rules}: rules[0].permanent: expected true or false, got 'yes'",
                     f"error: {rules}: rules[0].names_recipient: expected true or false, got 1",
                     f"error: {rules}: rules[0].unconfirmed: expected true or false, got 'no'",
                     f"error: {tls}: example.com.dane: expected true or false, got 'on'",
                     f"error: {tls}: example.com.mta_sts: expected true or false, got [True]",
                     f"error: {shaping}: mx_lookup: expected true or false, got 'true'",
                     f"error: {shaping}: reactions[0].per_sender_domain: expected true or false, got 'y'",
                     f"error: {domains}: example.com.dkim_required: expected true or false, got 0"):
        assert expected in lines, out
    assert sum("expected true or false" in line for line in lines) == 8, out


UNBUILDABLE = ["2026-11-31", "2026-13-01", "2026-11-20T25:00:00Z", "!!int abc", "!!int 0x", "!!float x",
               "!!bool maybe", "!!timestamp foo"]


@pytest.mark.parametrize("value", UNBUILDABLE)
def test_an_impossible_date_or_a_bad_explicit_tag_is_refused_with_its_line_not_a_traceback(tmp_path, value):
    # PyYAML reads every YYYY-MM-DD plain scalar as a date and raises a bare ValueError for an
    # impossible one (KeyError for !!bool maybe, AttributeError for !!timestamp foo): the old code
    # printed a 15-frame traceback for a warm-up start date typed 2026-11-31 (review20 F2).
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "shaping.yaml").write_text("version: 1\nwarmup:\n  plans: {p: [{day: 1, per_day: 5}]}\n"
                                           f"  senders: {{example.com: {{plan: p, start: {value}}}}}\n")
    out = refused(tmp_path, f"hostname: relay.example.com\n{BASE}policies: {policies}\n")
    assert out.splitlines()[0].startswith(f"error: {policies / 'shaping.yaml'}: line 4: "), out
    assert "is not a valid" in out
    # the config file itself, the same way
    out = refused(tmp_path, f"hostname: relay.example.com\n{BASE}correlation: {{headers: [{value}]}}\n")
    assert out.splitlines()[0].startswith(f"error: {tmp_path / 'c.yaml'}: line 4: "), out


def test_a_valid_date_still_loads_as_a_warmup_start(tmp_path):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "shaping.yaml").write_text("version: 1\nwarmup:\n  plans: {p: [{day: 1, per_day: 5}]}\n"
                                           "  senders: {example.com: {plan: p, start: 2026-11-30}}\n")
    out = check_config(tmp_path, f"hostname: relay.example.com\n{BASE}policies: {policies}\n")
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_reload_with_an_impossible_date_is_refused_with_the_line_and_no_traceback(
        tmp_path, upstream, relay_factory, caplog):
    policies = tmp_path / "policies"
    policies.mkdir()
    relay = relay_factory(upstream.port, policies=str(policies))
    (policies / "shaping.yaml").write_text("version: 1\nwarmup:\n  plans: {p: [{day: 1, per_day: 5}]}\n"
                                           "  senders: {example.com: {plan: p, start: 2026-11-31}}\n")
    assert relay.reload() is False
    assert not [r.getMessage() for r in caplog.records if r.exc_info]
    assert any(f"{policies / 'shaping.yaml'}: line 4: '2026-11-31' is not a valid date or time: day is out "
               "of range for month" in r.getMessage() for r in caplog.records), caplog.text


OPERATOR_POLICY_FILES = ["domains.yaml", "tls.yaml", "suppression.yaml", "routes.yaml", "shaping.yaml",
                         "bounce-rules.yaml", "relay-replies.yaml", "bounce-rules.ops.yaml"]


def _unusable(path: Path, kind: str, tmp_path: Path) -> str:
    """Put something that is not a regular file at `path`; what the error says about it."""
    if kind == "dangling symlink":
        target = tmp_path / "moved-away" / path.name
        path.symlink_to(target)
        return f"is a dangling symlink (its target {target} does not exist)"
    if kind == "directory":
        path.mkdir()
        return "is a directory"
    os.mkfifo(path)
    return "is a FIFO (named pipe), not a regular file"


@pytest.mark.parametrize("kind", ["dangling symlink", "directory", "fifo"])
def test_an_operator_policy_file_that_is_not_a_regular_file_is_an_error_not_the_shipped_file(tmp_path, kind):
    # The old code took anything that was not a regular file for "no operator file" and loaded the
    # shipped one instead: check-config said OK, serve started, and a domains.yaml swapped for a
    # dangling link dropped every dkim_required (review20 F1). Only nothing at the name means that.
    policies = tmp_path / "policies"
    policies.mkdir()
    why = {name: _unusable(policies / name, kind, tmp_path) for name in OPERATOR_POLICY_FILES}
    out = refused(tmp_path, f"hostname: relay.example.com\n{BASE}policies: {policies}\n")
    for name in OPERATOR_POLICY_FILES:
        assert f"error: {policies / name}: (file): {why[name]}" in out.splitlines(), out


def test_an_operator_config_that_is_a_fifo_is_refused_at_once(tmp_path):
    os.mkfifo(tmp_path / "c.yaml")
    out = subprocess.run([sys.executable, "-m", "relay", "check-config", "-c", str(tmp_path / "c.yaml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"error: {tmp_path / 'c.yaml'}: (file): is a FIFO (named pipe), not a regular file" in out.stdout


@pytest.mark.parametrize("kind", ["dangling symlink", "directory", "fifo"])
def test_a_reload_with_domains_yaml_not_a_regular_file_keeps_the_running_policy(
        tmp_path, upstream, relay_factory, caplog, kind):
    # Through a running relay: the old code accepted the reload with the shipped (empty) domains.yaml,
    # and mail of a dkim_required domain went out unsigned with 250 (review20 F1).
    from tests.support.smtp_client import send_message

    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "domains.yaml").write_text("required.example: {dkim_required: true}\n")
    relay = relay_factory(upstream.port, policies=str(policies))
    (policies / "domains.yaml").unlink()
    why = _unusable(policies / "domains.yaml", kind, tmp_path)
    assert relay.reload() is False
    assert any(f"{policies / 'domains.yaml'}: (file): {why}" in r.getMessage() for r in caplog.records), caplog.text
    with RawSMTP(relay.host, relay.port) as c:
        assert c.cmd("EHLO client.test")[0] == 250
        replies = send_message(c, "x@required.example", ["bob@example.org"],
                               b"From: x@required.example\r\nSubject: s\r\n\r\nhi\r\n")
    assert replies[-1][1].startswith("550 5.7.1 "), replies  # the old policy: this domain must be signed
    assert upstream.messages == []


def test_a_policy_file_missing_altogether_still_means_the_shipped_one(tmp_path):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "domains.yaml").write_text("example.com: {dkim_required: true}\n")
    out = check_config(tmp_path, f"hostname: relay.example.com\n{BASE}policies: {policies}\n")
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("under", [False, True])
def test_a_spool_dir_through_a_dangling_symbolic_link_is_refused_by_the_config_check(tmp_path, under):
    # A webhook spool on a volume not mounted: the link is there, its target is not. The check passed it
    # (a missing directory is created at start), and each worker then died on mkdir (FileExistsError) with
    # a traceback; as the spool itself or as a directory on the way to it.
    (tmp_path / "spool").symlink_to(tmp_path / "mnt" / "volume")
    spool = tmp_path / "spool" / "hooks" if under else tmp_path / "spool"
    out = refused(tmp_path, f"hostname: relay.example.com\n{BASE}"
                            f"events: [{{webhook: 'https://app.example/h', spool_dir: '{spool}'}}]\n")
    why = (f"{tmp_path / 'spool'} is a symbolic link to {tmp_path / 'mnt' / 'volume'}, which does not exist (a "
           f"volume not mounted?)" + (f", so {spool} cannot be created" if under else ""))
    assert f"c.yaml: events[0].spool_dir: {why}" in out, out
