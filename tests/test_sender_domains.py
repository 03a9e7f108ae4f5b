"""An AUTH user sends only from its own domains, and DKIM signs only what the session may use: a
running relay with STARTTLS and AUTH, a users file with DOMAINS, real keys, the upstream's capture."""

from __future__ import annotations

import pytest

from relay import dkim as dkimlib
from relay.users import hash_password
from tests.support.smtp_client import RawSMTP, send_message
from tests.support.tls import make_cert
from tests.test_tls_auth import TLSClient, plain


@pytest.fixture
def cert(tmp_path):
    return make_cert(tmp_path)


@pytest.fixture
def relay(tmp_path, cert, upstream, relay_factory):
    policies = tmp_path / "policies"
    policies.mkdir()
    key = policies / "rsa.key"
    key.write_bytes(dkimlib.private_key_pem(dkimlib.generate_key("rsa", 2048)))
    key.chmod(0o600)  # the relay refuses a key other users can read (review27 F3)
    (policies / "domains.yaml").write_text("sender.test: {dkim: [{selector: s1, key: rsa.key}]}\n"
                                           "victim.test: {dkim: [{selector: s1, key: rsa.key}]}\n"
                                           "strict.test: {dkim: [{selector: s1, key: rsa.key}], dkim_required: true}\n")
    users = tmp_path / "users"
    users.write_text(f"alice:{hash_password('pw', 1000)}:sender.test\n"
                     f"nodomains:{hash_password('pw', 1000)}\n")
    crt, key_ = cert
    # Trusted: 127.0.0.2 only. The test client on 127.0.0.1 is an outsider that must log in.
    return relay_factory(upstream.port, listen=[{"address": "127.0.0.1:0", "tls": {"cert": str(crt), "key": str(key_)}}],
                         clients={"networks": ["127.0.0.2/32"], "users_file": str(users)}, policies=str(policies))


def login(relay, cert, user: str) -> TLSClient:
    c = TLSClient(relay.host, relay.port)
    c.cmd("EHLO client.test")
    c.starttls(cert[0])
    c.cmd("EHLO client.test")
    assert c.cmd("AUTH PLAIN " + plain(user, "pw"))[0] == 235
    return c


def message(author: str) -> bytes:
    return f"From: {author}\r\nTo: b@example.com\r\nSubject: s\r\n\r\nhello\r\n".encode()


def test_a_user_sends_from_its_own_domain_signed(relay, cert, upstream):
    with login(relay, cert, "alice") as c:
        assert send_message(c, "app@sender.test", ["b@example.com"], message("app@sender.test"))[-1][0] == 250
        assert send_message(c, "", ["b@example.com"], message("app@sender.test"))[-1][0] == 250  # a bounce
    (first, second) = upstream.wait_for_messages(2)
    assert b"d=sender.test" in first.data.split(b"\r\n\r\n")[0]


def test_mail_from_another_domain_is_refused(relay, cert, upstream):
    with login(relay, cert, "alice") as c:
        code, text = c.cmd("MAIL FROM:<ceo@victim.test>")
        assert code == 553 and text.startswith("553 5.7.1 <ceo@victim.test>: Sender address rejected: not owned")
    assert not any(cmd.startswith("MAIL") for cmd in upstream.commands)


def test_a_user_line_without_domains_keeps_sending_as_before_domains_existed(relay, cert, upstream):
    # An upgrade must not turn a working submission into permanent 553s (the client MTA would
    # bounce its users' mail): a line in the old NAME:HASH format may use any sender domain.
    with login(relay, cert, "nodomains") as c:
        assert send_message(c, "app@sender.test", ["b@example.com"], message("app@sender.test"))[-1][0] == 250
    (msg,) = upstream.wait_for_messages(1)
    assert b"d=sender.test" in msg.data.split(b"\r\n\r\n")[0]


def test_check_config_warns_about_a_user_without_domains(tmp_path):
    import subprocess
    import sys

    users = tmp_path / "users"
    users.write_text(f"alice:{hash_password('pw', 1000)}:sender.test\nold:{hash_password('pw', 1000)}\n")
    config = tmp_path / "relay.yaml"
    config.write_text(f"hostname: relay.example.com\nclients: {{users_file: {users}}}\n")
    r = subprocess.run([sys.executable, "-m", "relay", "check-config", "-c", str(config)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "user old names no sender domains" in r.stdout and "user alice" not in r.stdout


def test_a_user_is_never_signed_for_a_from_domain_it_does_not_own(relay, cert, upstream):
    with login(relay, cert, "alice") as c:
        replies = send_message(c, "app@sender.test", ["b@example.com"], message("ceo@victim.test"))
        assert replies[-1][0] == 250  # relayed, but not vouched for
        replies = send_message(c, "app@sender.test", ["b@example.com"], message("ceo@strict.test"))
        assert replies[-1][0] == 550 and "may not send as strict.test" in replies[-1][1]
    (msg,) = upstream.wait_for_messages(1)
    assert b"DKIM-Signature" not in msg.data.split(b"\r\n\r\n")[0]


def test_a_trusted_network_client_may_use_any_configured_domain(relay, upstream):
    with RawSMTP(relay.host, relay.port, source="127.0.0.2") as c:
        c.cmd("EHLO client.test")
        assert send_message(c, "app@victim.test", ["b@example.com"], message("ceo@victim.test"))[-1][0] == 250
    (msg,) = upstream.wait_for_messages(1)
    assert b"d=victim.test" in msg.data.split(b"\r\n\r\n")[0]


def test_users_hash_writes_the_domains(tmp_path):
    import subprocess
    import sys

    from relay.users import Users

    out = subprocess.run([sys.executable, "-m", "relay", "users", "hash", "app", "--domains", "Example.com, x.org"],
                         input="pw\n", capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    assert line.startswith("app:pbkdf2_sha256$") and line.endswith(":example.com,x.org")
    (tmp_path / "users").write_text(line + "\n")
    users = Users.from_file(tmp_path / "users")
    assert users.verify("app", "pw") and users.domains_of("app") == {"example.com", "x.org"}
    bare = subprocess.run([sys.executable, "-m", "relay", "users", "hash", "app"], input="pw\n",
                          capture_output=True, text=True, timeout=60)
    assert bare.returncode == 0 and "may send from any domain" in bare.stderr
