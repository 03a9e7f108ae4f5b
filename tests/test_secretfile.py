"""Secret files (relay/secretfile.py): `upstream.password_file`, `events[].secret_file`,
`bounces_in.key_file` and a DKIM `key:` of domains.yaml, through `relay check-config`, `relay serve`
and a reload of a running relay (review20 F3, F6, F7)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from relay.dkim import generate_key, private_key_pem

PASSWORD = "S3cretPassw0rd-do-not-log"
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VERP = "c29tZ/XJhbmRvbWtleWJ5dGVz+x=="
PEM = private_key_pem(generate_key("ed25519")).decode()          # three lines
LONG_PEM = private_key_pem(generate_key("rsa", 2048)).decode()   # 1.7 KB: too long for a file name


def write(tmp_path: Path, *, password_file=None, secret_file=None, key_file=None, dkim_key=None,
          username="bob") -> Path:
    """A config with the secret keys given (and a policy directory whose domains.yaml names `dkim_key`)."""
    config: dict = {"hostname": "relay.example.com", "listen": [{"address": "127.0.0.1:0"}],
                    "upstream": {"host": "127.0.0.1", "port": 2587, "starttls": "off"},
                    "bounce_list": f"sqlite:///{tmp_path / 'bounces.db'}"}
    if password_file is not None:
        config["upstream"].update(username=username, password_file=password_file, allow_plaintext_auth=True)
    if secret_file is not None:
        config["events"] = [{"webhook": "https://hooks.example/", "spool_dir": str(tmp_path / "spool"),
                             "secret_file": secret_file}]
    if key_file is not None:
        config["bounces_in"] = {"domains": ["bounces.example.com"], "key_file": key_file}
    if dkim_key is not None:
        policies = tmp_path / "policies"
        policies.mkdir(exist_ok=True)
        (policies / "domains.yaml").write_text(yaml.safe_dump(
            {"signed.example": {"dkim": [{"selector": "s1", "key": dkim_key}]}}))
        config["policies"] = str(policies)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def relay_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "relay", *args], capture_output=True, text=True, timeout=timeout)


def refused(path: Path) -> str:
    out = relay_cli("check-config", "-c", str(path))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr, out.stderr
    return out.stdout + out.stderr


# -- F6: a secret written where its path belongs is never echoed ------------------------------------

@pytest.mark.parametrize("key, value", [
    ("password_file", PASSWORD), ("password_file", LONG_PEM), ("secret_file", WHSEC), ("key_file", VERP),
    ("dkim_key", PEM), ("dkim_key", LONG_PEM), ("key_file", "/" + VERP)],
    ids=["password", "password-pem", "whsec", "verp", "dkim-pem", "dkim-long-pem", "verp-slash"])
def test_a_secret_written_where_its_path_belongs_is_not_echoed(tmp_path, key, value):
    # The old code printed "file /etc/relay/S3cretPassw0rd! does not exist", the PEM block, the
    # whsec_ secret and the VERP key to stderr (and to the journal at a reload).
    out = refused(write(tmp_path, **{key: value}))
    secret_lines = [line for line in value.splitlines() if len(line) > 8 and "-----" not in line]
    assert not any(line in out for line in [value, *secret_lines]), out
    assert "the value is not shown" in out, out
    name = {"dkim_key": "signed.example.dkim[0].key", "password_file": "upstream.password_file",
            "secret_file": "events[0].secret_file", "key_file": "bounces_in.key_file"}[key]
    assert f": {name}: " in out, out


def test_serve_and_a_reload_do_not_echo_a_pasted_secret_either(tmp_path, upstream, relay_factory, caplog):
    out = relay_cli("serve", "-c", str(write(tmp_path, password_file=PASSWORD)))
    assert out.returncode != 0 and "upstream.password_file: no such file in " in out.stderr, out.stderr
    assert PASSWORD not in out.stdout + out.stderr
    relay = relay_factory(upstream.port)
    data = yaml.safe_load(relay.config_path.read_text())
    data["upstream"].update(username="bob", password_file=PASSWORD, allow_plaintext_auth=True)
    relay.config_path.write_text(yaml.safe_dump(data))
    assert relay.reload() is False
    said = [r.getMessage() for r in caplog.records if "reload refused" in r.getMessage()]
    assert any("upstream.password_file: no such file in " in m for m in said), caplog.text
    assert PASSWORD not in caplog.text


def test_a_missing_secret_file_written_as_a_path_is_named(tmp_path):
    # A path (absolute, with a directory, or a file name with an extension) is not a secret: the error
    # names it so that the operator can see the typo.
    (tmp_path / "etc").mkdir()
    out = refused(write(tmp_path, password_file=str(tmp_path / "etc" / "smarthost.pw")))
    out += refused(write(tmp_path, dkim_key="/nonexistent/dkim.key"))
    assert f"upstream.password_file: file {tmp_path / 'etc' / 'smarthost.pw'} does not exist" in out, out
    assert "signed.example.dkim[0].key: file /nonexistent/dkim.key does not exist" in out, out


# -- F7: a secret file that is not a regular file, or too large, is refused at once -----------------

@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom", "fifo"])
def test_a_secret_file_that_is_a_device_or_a_fifo_is_refused_not_read_for_ever(tmp_path, target):
    # The old code read bounces_in.key_file and events[].secret_file to their end: /dev/zero grew
    # without bound, a FIFO blocked; check-config (and start, and a reload on the event loop) hung.
    if target == "fifo":
        target = str(tmp_path / "fifo")
        os.mkfifo(target)
        why = "is a FIFO (named pipe), not a regular file"
    else:
        why = "is a character device (such as /dev/zero), not a regular file"
    # (the policies are checked once the config is valid: the DKIM key on its own)
    out = refused(write(tmp_path, password_file=target, secret_file=target, key_file=target))
    out += refused(write(tmp_path, dkim_key=target))
    for name in ("upstream.password_file", "events[0].secret_file", "bounces_in.key_file",
                 "signed.example.dkim[0].key"):
        assert f": {name}: file {target} {why}" in out, out


def test_a_secret_file_far_larger_than_a_secret_is_refused_from_its_size(tmp_path):
    from relay.secretfile import KEY_MAX_BYTES, SECRET_MAX_BYTES

    big = tmp_path / "big.log"
    big.write_bytes(b"x" * (KEY_MAX_BYTES + 1))
    out = refused(write(tmp_path, password_file=str(big), secret_file=str(big), key_file=str(big)))
    out += refused(write(tmp_path, dkim_key=str(big)))
    for name, limit in (("upstream.password_file", SECRET_MAX_BYTES), ("events[0].secret_file", SECRET_MAX_BYTES),
                        ("bounces_in.key_file", SECRET_MAX_BYTES), ("signed.example.dkim[0].key", KEY_MAX_BYTES)):
        assert f": {name}: file {big}: too large: over {limit} bytes" in out, out


def test_a_reload_with_a_webhook_secret_file_on_dev_zero_is_refused_at_once(tmp_path, upstream, relay_factory, caplog):
    good = tmp_path / "hook.secret"
    good.write_text("whsec_" + base64.b64encode(os.urandom(32)).decode() + "\n")
    events = [{"webhook": "https://hooks.example/", "spool_dir": str(tmp_path / "spool"), "secret_file": str(good)}]
    relay = relay_factory(upstream.port, events=events)
    data = yaml.safe_load(relay.config_path.read_text())
    data["events"][0]["secret_file"] = "/dev/zero"
    relay.config_path.write_text(yaml.safe_dump(data))
    assert relay.reload() is False
    assert any("events[0].secret_file: file /dev/zero is a character device" in r.getMessage()
               for r in caplog.records), caplog.text


# -- F3: the upstream password is read and checked at load -------------------------------------------

@pytest.mark.parametrize("content, why", [
    (b"s3cr\xe9t\n", "not UTF-8 text (byte 4); save the file as UTF-8"),
    (b"\n", "the file is empty: write the password in it"),
    (b"first\nsecond\n", "holds more than one line: write the password alone on one line")],
    ids=["latin-1", "empty", "two-lines"])
def test_an_upstream_password_file_the_relay_cannot_use_fails_check_config(tmp_path, content, why):
    # The old check-config said OK (it checked only that a file was there) and the relay started;
    # a Latin-1 file then failed every MAIL with 451 and a traceback, an empty one logged in with "".
    pw = tmp_path / "smarthost.pw"
    pw.write_bytes(content)
    out = refused(write(tmp_path, password_file=str(pw)))
    assert f": upstream.password_file: file {pw}: {why}" in out, out
    assert "s3cr" not in out and "second" not in out
    out = relay_cli("serve", "-c", str(tmp_path / "c.yaml"))
    assert out.returncode != 0 and f"upstream.password_file: file {pw}: {why}" in out.stderr, out.stderr


def test_the_password_is_kept_out_of_the_settings_repr(tmp_path):
    from relay.config import load_settings

    pw = tmp_path / "smarthost.pw"
    pw.write_text(f"  {PASSWORD}\n")
    settings = load_settings(write(tmp_path, password_file=str(pw)))
    assert settings.upstream.password == PASSWORD
    assert PASSWORD not in repr(settings)


def test_a_missing_password_file_is_one_error_not_also_username_and_password_file_go_together(tmp_path):
    # The old code added "upstream.password_file: username and password_file go together" although
    # both were given (the failed read left password_file None and the pair check ran on that).
    missing = tmp_path / "etc-relay" / "smarthost.pw"
    (tmp_path / "etc-relay").mkdir()
    out = refused(write(tmp_path, password_file=str(missing)))
    assert [line for line in out.splitlines() if line.startswith("error: ")] == [
        f"error: {tmp_path / 'c.yaml'}: upstream.password_file: file {missing} does not exist"], out
    # the pair check itself is still there
    path = write(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["upstream"]["username"] = "bob"
    path.write_text(yaml.safe_dump(data))
    assert "upstream.password_file: username and password_file go together" in refused(path)
