"""Config loading: the shipped example is valid; every error names file, key and why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from relay.config import load_settings, parse_duration, parse_endpoint
from relay.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def problems(tmp_path, text: str) -> list[str]:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    return [f"{p.key}: {p.why}" for p in err.value.problems]


def test_shipped_example_is_valid():
    settings = load_settings(REPO / "config.yaml")
    assert settings.listen[0].endpoint.port == 2525
    assert settings.upstream.starttls == "required"
    assert settings.clients.trusted("127.0.0.1") and not settings.clients.trusted("192.0.2.1")
    assert settings.bounce_list == f"sqlite:///{REPO / 'var' / 'bounces.db'}"


def test_defaults_of_a_minimal_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("hostname: relay.example.com\n")
    s = load_settings(path)
    assert s.listen == () and s.upstream is None and s.milter is None
    assert s.limits.max_message_size == 36700160 and s.limits.max_recipients == 100
    assert s.limits.max_connections == 1000 and s.limits.timeout == 300
    assert [e.kind for e in s.events] == ["stdout"]
    assert s.clients.trusted("::1") and s.clients.trusted("127.0.0.2") and not s.clients.trusted("10.0.0.1")
    assert s.clients.trusted("::ffff:127.0.0.1")  # IPv4-mapped loopback


def test_every_error_is_reported_with_its_key(tmp_path):
    found = problems(tmp_path, """
hostname: "not a host!"
listen: [{address: "127.0.0.1"}]
clients: {networks: ["0.0.0.0/0", "banana"], bogus: 1}
upstream: {host: smtp.x, starttls: sometimes, port: 0, username: u}
limits: {max_recipients: 0, timeout: "5 fortnights"}
egress_ips: ["300.1.1.1"]
events: [{jsonl: a, stdout: true}, {webhook: "ftp://x"}]
resolver: {nameservers: ["[::1"]}
correlation: {headers: ["Bad Header"], sender_patterns: ["(", "^nogroup"]}
frobnicate: true
""")
    keys = [p.split(":")[0] for p in found]
    for key in ["hostname", "listen[0].address", "clients.bogus", "clients.networks[0]", "clients.networks[1]",
                "upstream.starttls", "upstream.port", "upstream.password_file", "limits.max_recipients",
                "limits.timeout", "egress_ips[0]", "events[0]", "events[1].webhook", "resolver.nameservers[0]",
                "correlation.headers[0]", "correlation.sender_patterns[0]", "correlation.sender_patterns[1]",
                "frobnicate"]:
        assert key in keys, (key, found)
    assert any("open relay" in p for p in found)


def test_listen_requires_upstream(tmp_path):
    assert problems(tmp_path, "hostname: r.example\nlisten: [{address: '127.0.0.1:25'}]\n") == [
        "upstream: is required when `listen` names a listener"]


def test_invalid_yaml_names_line(tmp_path):
    (found,) = problems(tmp_path, "hostname: r.example\nlisten: [\n")
    assert found.startswith("line ") and "not valid YAML" in found


def test_bare_off_is_read_as_off(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("hostname: r.example\nupstream: {host: h.example, starttls: off}\n")
    assert load_settings(path).upstream.starttls == "off"


@pytest.mark.parametrize("text,seconds", [(30, 30.0), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("2d", 172800.0)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_endpoints():
    assert parse_endpoint("[::1]:2525").host == "::1"
    assert parse_endpoint("127.0.0.1:53").port == 53
    assert parse_endpoint("ns.example", default_port=53).port == 53
    with pytest.raises(ValueError):
        parse_endpoint("127.0.0.1:99999")


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "relay", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd)


def test_check_config_ok_and_errors(tmp_path):
    ok = run_cli("check-config", "-c", str(REPO / "config.yaml"))
    assert ok.returncode == 0 and ok.stdout.strip().endswith("OK"), ok.stdout + ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("hostname: r.example\nlimits: {max_recipients: -3}\nnope: 1\n")
    out = run_cli("check-config", "-c", str(bad))
    assert out.returncode == 1
    assert f"error: {bad}: limits.max_recipients: must be positive, got -3" in out.stdout
    assert f"error: {bad}: nope: unknown key" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


def test_a_bounce_list_url_of_another_scheme_is_refused_without_its_password(tmp_path):
    # The message of a refused reload also goes to systemd's STATUS= (`systemctl status`, any local user).
    cfg = tmp_path / "c.yaml"
    cfg.write_text("hostname: r.example\nbounce_list: 'postgresql+psycopg://relay:S3cret@db.example/relay'\n")
    out = run_cli("check-config", "-c", str(cfg))
    assert out.returncode == 1
    assert "bounce_list" in out.stdout and "expected sqlite:///PATH or postgresql://" in out.stdout, out.stdout
    assert "S3cret" not in out.stdout + out.stderr and "db.example/relay" in out.stdout, out.stdout


def test_check_config_reports_policy_errors_too(tmp_path):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "suppression.yaml").write_text("surprise: 1\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"hostname: r.example\npolicies: {policies}\n")
    out = run_cli("check-config", "-c", str(cfg))
    assert out.returncode == 1
    assert str(policies / "suppression.yaml") in out.stdout and "surprise" in out.stdout


def test_missing_config_file_is_one_clear_line(tmp_path):
    out = run_cli("serve", "-c", str(tmp_path / "nope.yaml"))
    assert out.returncode == 1
    assert "nope.yaml: (file): cannot read" in out.stderr and "Traceback" not in out.stderr


def test_mx_mode_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("hostname: r.example\nlisten: [{address: '127.0.0.1:2525'}]\nupstream: {mode: mx}\n")
    up = load_settings(path).upstream
    assert (up.mode, up.host, up.port, up.mx_port, up.starttls, up.tls_verify) == ("mx", None, 25, 25, "opportunistic",
                                                                                  False)
    assert (up.connections_per_destination, up.messages_per_connection, up.pool_size) == (10, 100, 50)
    out = run_cli("check-config", "-c", str(path))
    assert out.returncode == 0 and out.stdout.strip().endswith(": OK"), out.stdout + out.stderr


def test_mx_mode_refuses_what_has_no_meaning_there(tmp_path):
    (tmp_path / "secret").write_text("pw\n")
    found = problems(tmp_path, "hostname: r.example\nupstream: {mode: mx, host: smtp.example.com, mx_port: 2525, "
                               "username: u, password_file: secret, connections_per_destination: 0, "
                               "tls_verify: true}\n")
    keys = sorted(f.split(":")[0] for f in found)
    assert keys == ["upstream.connections_per_destination", "upstream.host", "upstream.mx_port",
                    "upstream.tls_verify", "upstream.username"], found
    assert any("policies/tls.yaml" in f for f in found)
    assert any("routes.yaml" in f for f in found)  # how to mix a smarthost with MX delivery
    found = problems(tmp_path, "hostname: r.example\nupstream: {mode: sideways, host: h.example}\n")
    assert found == ["upstream.mode: 'sideways' is not one of smarthost, mx"]


@pytest.mark.parametrize("starttls", ["opportunistic", "'off'"])
def test_tls_verify_true_with_a_smarthost_tls_that_never_checks_it_is_refused_at_load(tmp_path, starttls):
    """review25 F4: `tls_verify: true` with `starttls: opportunistic` was accepted and did nothing: the
    message went over a session whose certificate (self-signed, another name) nobody checked. Refused
    by check-config (and so by serve) with the file, the key and why, as mode mx refuses it."""
    path = tmp_path / "c.yaml"
    path.write_text("hostname: r.example\nlisten: [{address: '127.0.0.1:2525'}]\n"
                    f"upstream: {{host: smtp.example.com, starttls: {starttls}, tls_verify: true}}\n")
    out = run_cli("check-config", "-c", str(path))
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stdout + out.stderr
    mode = starttls.strip("'")
    assert f"{path}: upstream.tls_verify: true has no effect with `starttls: {mode}`" in out.stdout + out.stderr
    assert "use `starttls: required`" in out.stdout + out.stderr
    # What stays valid: the checks asked for where they happen, or said to be off; the default (true)
    # given nowhere is no contradiction.
    for upstream in (f"{{host: smtp.example.com, starttls: {starttls}, tls_verify: false}}",
                     f"{{host: smtp.example.com, starttls: {starttls}}}",
                     "{host: smtp.example.com, starttls: required, tls_verify: true}"):
        path.write_text(f"hostname: r.example\nupstream: {upstream}\n")
        load_settings(path)


def test_smarthost_mode_keeps_its_defaults_and_has_an_mx_port_for_routed_domains(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("hostname: r.example\nupstream: {host: smtp.example.com, mx_port: 2525}\n")
    up = load_settings(path).upstream
    assert (up.mode, up.port, up.starttls, up.tls_verify, up.mx_port) == ("smarthost", 587, "required", True, 2525)


def test_milter_section(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("hostname: r.example\nmilter: {listen: '127.0.0.1:8892'}\n")
    m = load_settings(path).milter
    assert (m.endpoint.host, m.endpoint.port, m.path, m.mode) == ("127.0.0.1", 8892, None, "outbound")
    path.write_text("hostname: r.example\nmilter: {listen: 'unix:milter.sock', mode: inbound, "
                    "socket_mode: '0600', socket_group: root}\n")
    m = load_settings(path).milter
    assert m.path == tmp_path / "milter.sock" and m.endpoint is None
    assert (m.mode, m.socket_mode, m.socket_group) == ("inbound", 0o600, "root")
    assert str(m) == f"unix:{tmp_path / 'milter.sock'}"
    assert m.idle_timeout == 7210  # libmilter's default (review30 D1)
    path.write_text("hostname: r.example\nmilter: {listen: '127.0.0.1:8892', idle_timeout: 1h}\n")
    assert load_settings(path).milter.idle_timeout == 3600


def test_milter_section_errors(tmp_path):
    found = problems(tmp_path, """
hostname: r.example
milter: {listen: "unix:/nonexistent-dir/m.sock", mode: sideways, socket_mode: "rwx", socket_group: nosuchgroup-x, x: 1}
""")
    keys = sorted(p.split(":")[0] for p in found)
    assert keys == ["milter.listen", "milter.mode", "milter.socket_group", "milter.socket_mode", "milter.x"], found
    assert problems(tmp_path, "hostname: r.example\nmilter: {listen: '127.0.0.1:1', socket_mode: '0660'}\n") == [
        "milter.socket_mode: applies only to a UNIX socket (listen: unix:PATH)"]
    for bad in ("0", "2d", "soon"):
        (found,) = problems(tmp_path, f"hostname: r.example\nmilter: {{listen: '127.0.0.1:1', idle_timeout: {bad}}}\n")
        assert found.startswith("milter.idle_timeout: "), found
    assert problems(tmp_path, "hostname: r.example\nmilter: {listen: 'nohost'}\n") == [
        "milter.listen: 'nohost' has no port (write host:port); or unix:PATH for a UNIX socket"]


def test_connection_and_deadline_limits(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("hostname: relay.example.com\n")
    d = load_settings(path).limits
    assert (d.max_connections_per_client, d.data_timeout, d.unauthenticated_timeout) == (50, 300, 60)
    path.write_text("hostname: relay.example.com\nlimits: {max_connections_per_client: 5, data_timeout: 2m, "
                    "unauthenticated_timeout: 10s}\n")
    s = load_settings(path).limits
    assert (s.max_connections_per_client, s.data_timeout, s.unauthenticated_timeout) == (5, 120, 10)
    found = problems(tmp_path, "hostname: r.example\nlimits: {max_connections: 10, max_connections_per_client: 20, "
                               "data_timeout: 0, unauthenticated_timeout: soon}\n")
    assert any(p.startswith("limits.max_connections_per_client: 20 is more than limits.max_connections") for p in found)
    assert any(p.startswith("limits.data_timeout: ") for p in found)
    assert any(p.startswith("limits.unauthenticated_timeout: ") for p in found)



def test_stress_timeout(tmp_path):
    # Postfix's smtpd_timeout = ${stress?{10}:{300}}s: 10 s by default, never longer than limits.timeout.
    path = tmp_path / "c.yaml"
    path.write_text("hostname: relay.example.com\n")
    assert load_settings(path).limits.stress_timeout == 10
    path.write_text("hostname: relay.example.com\nlimits: {timeout: 2s}\n")  # shorter: limits.timeout holds
    assert (load_settings(path).limits.timeout, load_settings(path).limits.stress_timeout) == (2, 10)
    path.write_text("hostname: relay.example.com\nlimits: {stress_timeout: 30s}\n")
    assert load_settings(path).limits.stress_timeout == 30
    found = problems(tmp_path, "hostname: r.example\nlimits: {timeout: 20s, stress_timeout: 1m}\n")
    assert found == ["limits.stress_timeout: 60 s is more than limits.timeout (20 s): the idle time allowed when "
                     "the listener is busy can only be shorter"], found
    found = problems(tmp_path, "hostname: r.example\nlimits: {stress_timeout: 0}\n")
    assert len(found) == 1 and found[0].startswith("limits.stress_timeout: "), found


def test_error_limits(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("hostname: relay.example.com\n")
    d = load_settings(path).limits
    assert (d.error_limit, d.soft_error_limit, d.error_delay) == (20, 10, 1.0)  # Postfix's defaults
    path.write_text("hostname: relay.example.com\nlimits: {error_limit: 5, soft_error_limit: 0, error_delay: 500ms}\n")
    s = load_settings(path).limits
    assert (s.error_limit, s.soft_error_limit, s.error_delay) == (5, 0, 0.5)
    found = problems(tmp_path, "hostname: r.example\nlimits: {error_limit: 0, soft_error_limit: -1, error_delay: 1m}\n")
    assert sorted(found) == ["limits.error_delay: '1m' is outside 0 s .. 10 s",
                             "limits.error_limit: must be positive, got 0",
                             "limits.soft_error_limit: must be 0 or more, got -1"], found
    found = problems(tmp_path, "hostname: r.example\nlimits: {error_limit: 5, soft_error_limit: 6, error_limits: 3}\n")
    assert any(p.startswith("limits.soft_error_limit: 6 is more than limits.error_limit (5)") for p in found), found
    assert any(p.startswith("limits.error_limits: unknown key") for p in found), found

def test_postfix_log_section(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("hostname: relay.example.com\npostfix_log: {path: mail.log, state_directory: state}\n")
    s = load_settings(path)
    assert s.postfix_log.path == tmp_path / "mail.log" and s.postfix_log.state_directory == tmp_path / "state"
    assert not s.postfix_log.journal and s.postfix_log.max_queue_ids == 100_000
    path.write_text("hostname: relay.example.com\npostfix_log: {journal: true}\n")
    assert load_settings(path).postfix_log.journal


def test_postfix_log_errors(tmp_path):
    (tmp_path / "afile").write_text("")
    assert problems(tmp_path, "hostname: r.example\npostfix_log: {}\n") == [
        "postfix_log: name the log to follow: path: /var/log/mail.log, or journal: true"]
    assert problems(tmp_path, "hostname: r.example\npostfix_log: {path: /x, journal: true, colour: red}\n") == [
        "postfix_log.colour: unknown key; expected one of: journal, journal_directory, max_queue_ids, path, "
        "state_directory",
        "postfix_log.journal: path and journal: true exclude each other; follow one of them"]
    assert problems(tmp_path, f"hostname: r.example\npostfix_log: {{path: {tmp_path}, state_directory: afile}}\n") == [
        f"postfix_log.path: {tmp_path} is not a file", f"postfix_log.state_directory: {tmp_path / 'afile'} is not a directory"]
    assert problems(tmp_path, "hostname: r.example\npostfix_log: {path: /x, journal_directory: /}\n") == [
        "postfix_log.journal_directory: applies only with journal: true"]
    assert problems(tmp_path, "hostname: r.example\npostfix_log: {journal: true, journal_directory: nope}\n") == [
        f"postfix_log.journal_directory: directory {tmp_path / 'nope'} does not exist"]


def test_mta_sts_port_defaults_to_443_and_is_checked(tmp_path):
    path = tmp_path / "relay.yaml"
    path.write_text("hostname: r.example\nupstream: {mode: mx}\n")
    assert load_settings(path).upstream.mta_sts_port == 443  # RFC 8461 3.3
    path.write_text("hostname: r.example\nupstream: {mode: mx, mta_sts_port: 8443}\n")
    assert load_settings(path).upstream.mta_sts_port == 8443
    found = problems(tmp_path, "hostname: r.example\nupstream: {mode: mx, mta_sts_port: 70000}\n")
    assert len(found) == 1 and found[0].startswith("upstream.mta_sts_port: ") and "out of range" in found[0]


def test_metrics_section(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("hostname: relay.example.com\nmetrics: {listen: '127.0.0.1:9325', ready_timeout: 500ms, "
                    "bounce_list_interval: 5m}\n")
    m = load_settings(path).metrics
    assert (m.host, m.port, m.ready_timeout, m.bounce_list_interval) == ("127.0.0.1", 9325, 0.5, 300.0)
    path.write_text("hostname: relay.example.com\nmetrics: {listen: '127.0.0.1:9325'}\n")
    m = load_settings(path).metrics
    assert (m.ready_timeout, m.bounce_list_interval) == (2.0, 60.0)


def test_metrics_problems_name_their_keys(tmp_path):
    found = problems(tmp_path, "hostname: relay.example.com\nmetrics: {ready_timeout: 5m, bounce_list_interval: "
                               "0.5, port: 9325}\n")
    assert found == ["metrics.port: unknown key; expected one of: bounce_list_interval, listen, ready_timeout",
                     "metrics.listen: is required",
                     "metrics.ready_timeout: '5m' is outside 0.1 s .. 60 s",
                     "metrics.bounce_list_interval: 0.5 is outside 1 s .. 86400 s"], found


# A path the OS refuses whatever the disk holds: a NUL byte (no POSIX name holds one; Python
# refuses it before asking), a component past NAME_MAX (ENAMETOOLONG). Each is the file, the
# key and the OS's reason, never a traceback from open() or is_file().
_PATH_KEYS = {
    "clients.users_file": "clients: {{users_file: {v}}}",
    "events[0].jsonl": "events: [{{jsonl: {v}}}]",
    "events[0].secret_file": "events: [{{webhook: 'https://hook.example/x', secret_file: {v}}}]",
    "events[0].spool_dir": "events: [{{webhook: 'https://hook.example/x', spool_dir: {v}}}]",
    "bounces_in.key_file": "bounces_in: {{domains: [bounces.example.com], key_file: {v}}}",
    "bounce_list": "bounce_list: {v}",
    "policies": "policies: {v}",
    "upstream.ca_file": "upstream: {{host: smtp.example, ca_file: {v}}}",
}


def _path_problem(tmp_path, key: str, value: str) -> str:
    path = tmp_path / "c.yaml"
    value = f"sqlite:///{value}" if key == "bounce_list" else value
    path.write_text("hostname: r.example\n" + _PATH_KEYS[key].format(v=f'"{value}"') + "\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    (problem,) = [p for p in err.value.problems if p.key == key]
    assert problem.file == str(path)
    return problem.why


@pytest.mark.parametrize("key", sorted(_PATH_KEYS))
def test_a_path_with_a_nul_byte_is_a_problem_of_its_key(tmp_path, key):
    assert "contains a NUL byte" in _path_problem(tmp_path, key, "sec\\0ret")


@pytest.mark.parametrize("key", sorted(_PATH_KEYS))
def test_a_path_the_os_finds_too_long_is_a_problem_of_its_key(tmp_path, key):
    assert "file name too long" in _path_problem(tmp_path, key, "x" * 5000)


def test_serve_with_an_unusable_path_exits_with_the_problem_not_a_traceback(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text('hostname: r.example\nevents: [{webhook: "https://hook.example/x", secret_file: "a\\0b"}]\n')
    out = run_cli("serve", "-c", str(cfg))
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"error: {cfg}: events[0].secret_file: " in out.stderr and "contains a NUL byte" in out.stderr
    assert "Traceback" not in out.stdout + out.stderr


def test_a_milter_socket_path_longer_than_sun_path_is_refused_by_check_config(tmp_path):
    # Before, check-config passed it and `serve` failed only at bind ("AF_UNIX path too long").
    deep = tmp_path / ("d" * 60)
    deep.mkdir()
    sock = deep / ("s" * 60 + ".sock")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"hostname: r.example\nmilter: {{listen: 'unix:{sock}', socket_mode: '0660'}}\n")
    out = run_cli("check-config", "-c", str(cfg))
    assert out.returncode == 1, out.stdout + out.stderr
    assert (f"milter.listen: the socket path {sock} is {len(str(sock))} bytes long; a UNIX socket's path may "
            f"hold at most 107") in out.stdout
    assert "socket_mode" not in out.stdout and "Traceback" not in out.stdout + out.stderr


def test_resolver_failure_ttl(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("hostname: relay.example.com\nresolver: {failure_ttl: 2m}\n")
    assert load_settings(path).resolver.failure_ttl == 120.0
    path.write_text("hostname: relay.example.com\n")
    assert load_settings(path).resolver.failure_ttl == 30.0
    assert problems(tmp_path, "hostname: relay.example.com\nresolver: {failure_ttl: 10m}\n") == [
        "resolver.failure_ttl: '10m' is outside 0 s .. 300 s"]


def test_resolver_cache_caps_and_control_name(tmp_path):
    # RFC 2308 5: a configured maximum for negative answers (review21 F1); the control name asked before
    # an NXDOMAIN is believed (review21 F4).
    path = tmp_path / "c.yaml"
    path.write_text("hostname: relay.example.com\n")
    r = load_settings(path).resolver
    assert (r.max_negative_ttl, r.max_ttl, r.control_name) == (900.0, 86400.0, None)
    path.write_text("hostname: relay.example.com\n"
                    "resolver: {max_negative_ttl: 5m, max_ttl: 1h, control_name: example.org.}\n")
    r = load_settings(path).resolver
    assert (r.max_negative_ttl, r.max_ttl, r.control_name) == (300.0, 3600.0, "example.org")
    assert problems(tmp_path, "hostname: relay.example.com\nresolver: {max_negative_ttl: 2h, max_ttl: 2d}\n") == [
        "resolver.max_negative_ttl: '2h' is outside 0 s .. 3600 s", "resolver.max_ttl: '2d' is outside 0 s .. 86400 s"]
    for bad in ("a..b", "''", "'[192.0.2.1]'"):
        found = problems(tmp_path, f"hostname: relay.example.com\nresolver: {{control_name: {bad}}}\n")
        assert len(found) == 1 and found[0].startswith("resolver.control_name: "), (bad, found)


def test_the_mx_hosts_and_addresses_tried_are_bounded_settings(tmp_path):
    # RFC 5321 5.1: a configurable limit. None at all (0) would try nothing; past 100 a zone's owner chooses
    # again how many lookups and connections each recipient costs.
    path = tmp_path / "c.yaml"
    path.write_text("hostname: r.example\nupstream: {mode: mx, mx_max_hosts: 3, mx_max_addresses: 100}\n")
    up = load_settings(path).upstream
    assert (up.mx_max_hosts, up.mx_max_addresses) == (3, 100)
    path.write_text("hostname: r.example\nupstream: {mode: mx}\n")
    up = load_settings(path).upstream
    assert (up.mx_max_hosts, up.mx_max_addresses) == (10, 10)
    found = problems(tmp_path, "hostname: r.example\nupstream: {mode: mx, mx_max_hosts: 0, mx_max_addresses: 101}\n")
    assert sorted(found) == ["upstream.mx_max_addresses: must be from 1 to 100, got 101",
                             "upstream.mx_max_hosts: must be from 1 to 100, got 0"], found
    found = problems(tmp_path, "hostname: r.example\nupstream: {mode: mx, mx_max_hosts: many}\n")
    assert len(found) == 1 and found[0].startswith("upstream.mx_max_hosts: "), found
