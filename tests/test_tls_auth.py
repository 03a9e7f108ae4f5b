"""STARTTLS and AUTH on both sides: clients may AUTH only after STARTTLS, never relay unauthenticated
from outside clients.networks; the upstream gets STARTTLS and AUTH as configured."""

from __future__ import annotations

import base64
import socket
import ssl
import time

import pytest

from relay.users import hash_password
from tests.support.smtp_client import RawSMTP, send_message
from tests.support.tls import make_cert, server_context
from tests.support.upstream import FakeUpstream

BODY = b"From: a@sender.test\r\nSubject: tls\r\n\r\nhi\r\n"


class TLSClient(RawSMTP):
    def starttls(self, cafile) -> None:
        code, _ = self.cmd("STARTTLS")
        assert code == 220
        ctx = ssl.create_default_context(cafile=str(cafile))
        self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")
        self.buf = b""

    def ehlo_over_tls(self, cafile) -> None:
        """EHLO, STARTTLS, and EHLO again (RFC 3207 4.2: the session starts afresh over TLS)."""
        self.cmd("EHLO client.test")
        self.starttls(cafile)
        self.cmd("EHLO client.test")


@pytest.fixture
def cert(tmp_path):
    return make_cert(tmp_path)


@pytest.fixture
def auth_relay(tmp_path, cert, upstream, relay_factory):
    users = tmp_path / "users"
    users.write_text(f"# relay users\nalice:{hash_password('s3cret pass')}:sender.test\n")
    crt, key = cert
    # 127.0.0.1 is outside clients.networks here, so the test client is an outsider that must log in.
    return relay_factory(upstream.port, listen=[{"address": "127.0.0.1:0", "tls": {"cert": str(crt), "key": str(key)}}],
                         clients={"networks": ["10.0.0.0/8"], "users_file": str(users)})


def plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def test_auth_is_offered_only_after_starttls(auth_relay, cert):
    with TLSClient(auth_relay.host, auth_relay.port) as c:
        code, text = c.cmd("EHLO client.test")
        assert "250-STARTTLS" in text and "AUTH" not in text
        code, text = c.cmd("AUTH PLAIN " + plain("alice", "s3cret pass"))
        assert code >= 500  # not before TLS
        c.starttls(cert[0])
        code, text = c.cmd("EHLO client.test")
        assert "AUTH LOGIN PLAIN" in text and "STARTTLS" not in text


def test_outsider_without_auth_is_refused_before_upstream(auth_relay, upstream, cert):
    with TLSClient(auth_relay.host, auth_relay.port) as c:
        assert c.greeting[0] == 220
        c.cmd("EHLO client.test")
        code, text = c.cmd("MAIL FROM:<a@sender.test>")
        assert code == 554 and text.startswith("554 5.7.1 Relay access denied")
        c.starttls(cert[0])
        c.cmd("EHLO client.test")
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 554  # TLS alone is not enough
        assert c.cmd("AUTH PLAIN " + plain("alice", "wrong"))[0] == 535
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 554
    assert upstream.connections == 0


def test_authenticated_client_relays_over_tls(auth_relay, upstream, cert):
    with TLSClient(auth_relay.host, auth_relay.port) as c:
        c.ehlo_over_tls(cert[0])
        assert c.cmd("AUTH PLAIN " + plain("alice", "s3cret pass"))[0] == 235
        assert send_message(c, "a@sender.test", ["b@example.com"], BODY)[-1][0] == 250
    (msg,) = upstream.wait_for_messages(1)
    assert b"with ESMTPSA" in msg.data.split(b"\r\n\r\n")[0]


@pytest.mark.parametrize("param", ["AUTH=<>", "AUTH=alice+40sender.test", "auth=<>"])
def test_the_auth_parameter_of_mail_is_taken_where_auth_is_offered(auth_relay, upstream, cert, param):
    # RFC 4954 3 (5) and 5: where EHLO offers AUTH, MAIL FROM may carry AUTH=<mailbox> (xtext) or
    # AUTH=<> (submitter unknown), as clients that logged in send it. It was 555 "parameters not
    # recognized": a logged-in client's every message refused for good. It is not passed on (the
    # next hop may not offer AUTH; RFC 4954 5: a relay that does not vouch for the mailbox need not).
    with TLSClient(auth_relay.host, auth_relay.port) as c:
        c.ehlo_over_tls(cert[0])
        assert c.cmd("AUTH PLAIN " + plain("alice", "s3cret pass"))[0] == 235
        code, text = c.cmd("MAIL FROM:<a@sender.test> AUTH=a+zz")  # "+" starts two upper-case hex digits
        assert text.startswith("501 5.5.4 Syntax error in AUTH=a+zz"), text
        code, text = c.cmd(f"MAIL FROM:<a@sender.test> SIZE=100 {param}")
        assert code == 250, text
        assert c.cmd("RCPT TO:<b@example.com>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(BODY + b".\r\n")
        assert c.reply()[0] == 250
    (msg,) = upstream.wait_for_messages(1)
    assert msg.mail_options == ["SIZE=100"]


def test_the_auth_parameter_of_mail_is_refused_where_auth_is_not_offered(relay, upstream):
    # No users file here: EHLO offers no AUTH, and the parameter is unknown (RFC 5321 4.1.1.11: 555).
    with RawSMTP(relay.host, relay.port) as c:
        assert "AUTH" not in c.cmd("EHLO client.test")[1]
        assert c.cmd("MAIL FROM:<a@sender.test> AUTH=<>")[1].startswith("555 5.5.4 ")


def test_auth_inside_a_mail_transaction_is_refused_503(tmp_path, cert, upstream, relay_factory):
    # RFC 4954 4: "An AUTH command issued during a mail transaction MUST be rejected with a 503
    # reply." A client of clients.networks (no login needed) could open a transaction, then log in
    # in its middle (235), and the message went as the user's ("with ESMTPSA").
    users = tmp_path / "users"
    users.write_text(f"alice:{hash_password('s3cret pass')}:sender.test\n")
    crt, key = cert
    relay = relay_factory(upstream.port, listen=[{"address": "127.0.0.1:0", "tls": {"cert": str(crt), "key": str(key)}}],
                          clients={"networks": ["127.0.0.0/8"], "users_file": str(users)})
    with TLSClient(relay.host, relay.port) as c:
        c.ehlo_over_tls(crt)
        assert c.cmd("MAIL FROM:<a@other.test>")[0] == 250
        code, text = c.cmd("AUTH PLAIN " + plain("alice", "s3cret pass"))
        assert text.startswith("503 5.5.1 ") and "transaction" in text, text
        assert c.cmd("RCPT TO:<b@example.com>")[0] == 250  # the transaction goes on, unchanged
        assert c.cmd("DATA")[0] == 354
        c.send(BODY + b".\r\n")
        assert c.reply()[0] == 250
        assert c.cmd("AUTH PLAIN " + plain("alice", "s3cret pass"))[0] == 235  # between transactions: fine
    (msg,) = upstream.wait_for_messages(1)
    assert b"with ESMTPS " in msg.data.split(b"\r\n\r\n")[0]


def test_auth_login_mechanism(auth_relay, upstream, cert):
    with TLSClient(auth_relay.host, auth_relay.port) as c:
        c.ehlo_over_tls(cert[0])
        assert c.cmd("AUTH LOGIN")[0] == 334
        assert c.cmd(base64.b64encode(b"alice").decode())[0] == 334
        assert c.cmd(base64.b64encode(b"s3cret pass").decode())[0] == 235


@pytest.fixture
def tls_upstream(cert):
    server = FakeUpstream(tls_context=server_context(*cert), require_starttls=True,
                          auth={"relayuser": "Tr0ub4dor-up"}).start()
    yield server
    server.stop()


def test_upstream_starttls_required_and_auth_from_password_file(tmp_path, cert, tls_upstream, relay_factory):
    secret = tmp_path / "upstream-secret"
    secret.write_text("Tr0ub4dor-up\n")
    relay = relay_factory(tls_upstream.port, upstream={"starttls": "required", "ca_file": str(cert[0]),
                                                       "username": "relayuser", "password_file": str(secret)})
    relay.settings  # noqa: B018 - config loaded with the secret's path, never its content
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        assert send_message(c, "a@sender.test", ["b@example.com"], BODY)[-1][0] == 250
    assert len(tls_upstream.wait_for_messages(1)) == 1
    assert "Tr0ub4dor-up" not in relay.config_path.read_text()


def test_upstream_wrong_password_is_a_clear_451(tmp_path, cert, tls_upstream, relay_factory):
    secret = tmp_path / "upstream-secret"
    secret.write_text("nope\n")
    relay = relay_factory(tls_upstream.port, upstream={"starttls": "required", "ca_file": str(cert[0]),
                                                       "username": "relayuser", "password_file": str(secret)})
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        code, text = c.cmd("MAIL FROM:<a@sender.test>")
    assert code == 451 and text.startswith("451 4.7.0 The relay could not log in to upstream")
    assert "nope" not in text


def test_upstream_without_starttls_when_required_is_refused_in_clear(upstream, relay_factory):
    relay = relay_factory(upstream.port, upstream={"starttls": "required"})
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        code, text = c.cmd("MAIL FROM:<a@sender.test>")
    assert code == 451 and text.startswith("451 4.7.5 ") and "STARTTLS" in text
    assert upstream.commands == []  # nothing was sent in clear


@pytest.mark.parametrize("refusal", [b"554 5.7.0 TLS not available\r\n",
                                     b"454 4.7.0 TLS not available due to temporary reason\r\n",
                                     b"502 5.5.1 STARTTLS command unknown\r\n"], ids=["554", "454", "502"])
def test_an_upstream_refusing_starttls_when_required_is_the_relays_451_not_its_refusal(relay_factory, refusal):
    # upstream.starttls: required, and the upstream offers STARTTLS but refuses it. Its 554 reached the client
    # as the reply to MAIL (a permanent refusal, scope message): the client bounced a message that only the
    # relay's TLS path had failed. It is the relay's own failure to meet its policy: 451 4.7.5, scope relay,
    # with the upstream's words, and nothing is sent in clear. (The 502 was told as "does not offer STARTTLS".)
    from tests.support.scripted_upstream import ScriptedUpstream

    up = ScriptedUpstream().start()
    try:
        up.reset(EHLO=b"250-scripted.test\r\n250-STARTTLS\r\n250 SIZE 100000000\r\n", STARTTLS=refusal)
        relay = relay_factory(up.port, upstream={"starttls": "required"})
        with RawSMTP(relay.host, relay.port) as c:
            c.cmd("EHLO client.test")
            code, text = c.cmd("MAIL FROM:<a@sender.test>")
        said = refusal.decode().strip()
        assert (code, text) == (451, f"451 4.7.5 Upstream 127.0.0.1:{up.port} refused STARTTLS ({said}) and "
                                     f"upstream.starttls is required; not sending in clear")
        assert [bytes(r) for r in up.received] == [b"EHLO relay.test\r\nSTARTTLS\r\n"]  # nothing in clear
        (event,) = relay.events(wait_for=1)
        assert (event["kind"], event["reply"]["source"]) == ("deferred", "relay")
        c = event["classification"]
        assert (c["rule"], c["scope"], c["permanent"]) == ("relay:upstream-starttls-refused", "relay", False)
    finally:
        up.stop()


def test_opportunistic_starttls_falls_back_to_clear(upstream, relay_factory):
    relay = relay_factory(upstream.port, upstream={"starttls": "opportunistic"})
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        assert send_message(c, "a@sender.test", ["b@example.com"], BODY)[-1][0] == 250


def test_reloaded_users_file_applies_at_the_next_login(auth_relay, upstream, cert, tmp_path):
    (tmp_path / "users").write_text(f"alice:{hash_password('new pass')}:sender.test\n")
    assert auth_relay.reload()
    for password, expected in (("s3cret pass", 535), ("new pass", 235)):
        with TLSClient(auth_relay.host, auth_relay.port) as c:
            c.ehlo_over_tls(cert[0])
            assert c.cmd("AUTH PLAIN " + plain("alice", password))[0] == expected


def test_opportunistic_starttls_encrypts_without_verifying_the_certificate(cert, relay_factory):
    """RFC 7435: opportunistic TLS takes a self-signed or unknown certificate rather than fail
    (`required` verifies it)."""
    server = FakeUpstream(tls_context=server_context(*cert), require_starttls=True).start()
    try:
        relay = relay_factory(server.port, upstream={"starttls": "opportunistic"})  # no ca_file: unknown CA
        with RawSMTP(relay.host, relay.port) as c:
            c.cmd("EHLO client.test")
            assert send_message(c, "a@sender.test", ["b@example.com"], BODY)[-1][0] == 250
        assert len(server.wait_for_messages(1)) == 1
        strict = relay_factory(server.port, upstream={"starttls": "required"})
        with RawSMTP(strict.host, strict.port) as c:
            c.cmd("EHLO client.test")
            code, text = c.cmd("MAIL FROM:<a@sender.test>")
        assert code == 451 and "TLS" in text
    finally:
        server.stop()


def test_starttls_inside_tls_is_refused_and_the_session_goes_on(auth_relay, upstream, cert):
    # RFC 3207 4.2: no second STARTTLS once TLS is up; it used to answer 220 and leave the client
    # and the relay reading different layers.
    with TLSClient(auth_relay.host, auth_relay.port) as c:
        c.ehlo_over_tls(cert[0])
        code, text = c.cmd("STARTTLS")
        assert text.startswith("503 5.5.1 ") and "TLS already active" in text, text
        assert c.cmd("AUTH PLAIN " + plain("alice", "s3cret pass"))[0] == 235
        assert c.cmd("AUTH PLAIN " + plain("alice", "s3cret pass"))[1].startswith("503 5.5.1 Already authenticated")
        assert send_message(c, "a@sender.test", ["b@example.com"], BODY)[-1][0] == 250
    assert len(upstream.wait_for_messages(1)) == 1


def test_commands_pipelined_with_starttls_are_discarded(auth_relay, upstream, cert):
    # RFC 3207 4.2 (CVE-2011-0411): plaintext sent in the same packet as STARTTLS is not read
    # as commands of the TLS session.
    with TLSClient(auth_relay.host, auth_relay.port) as c:
        c.cmd("EHLO client.test")
        c.send("STARTTLS\r\nAUTH PLAIN " + plain("alice", "s3cret pass") + "\r\n")
        assert c.reply()[0] == 220
        ctx = ssl.create_default_context(cafile=str(cert[0]))
        c.sock = ctx.wrap_socket(c.sock, server_hostname="localhost")
        c.buf = b""
        assert c.cmd("NOOP")[0] == 250  # the first reply in TLS: none for the injected AUTH
        c.cmd("EHLO client.test")
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 554  # not logged in
    assert upstream.connections == 0


@pytest.mark.parametrize("challenged", [False, True], ids=["inline", "after-334"])
def test_auth_plain_as_another_identity_is_refused(auth_relay, upstream, cert, challenged):
    # RFC 4616 2: "authzid NUL authcid NUL passwd"; acting as another identity must fail.
    other = base64.b64encode(b"bob\0alice\0s3cret pass").decode()
    with TLSClient(auth_relay.host, auth_relay.port) as c:
        c.ehlo_over_tls(cert[0])
        if challenged:
            assert c.cmd("AUTH PLAIN")[0] == 334
            code, text = c.cmd(other)
        else:
            code, text = c.cmd("AUTH PLAIN " + other)
        assert text.startswith("535 5.7.8 ") and "RFC 4616" in text, text
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 554  # not logged in
        same = base64.b64encode(b"alice\0alice\0s3cret pass").decode()  # authzid = login: allowed
        assert c.cmd("AUTH PLAIN " + same)[0] == 235
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
    assert upstream.connections == 1


def test_a_failed_tls_handshake_closes_the_connection_without_an_error_in_the_log(auth_relay, cert, caplog):
    # A client that sends something other than a TLS ClientHello after 220 (a scanner, a broken client):
    # its failure, told in one line, not "an error in an SMTP command" with a traceback.
    import logging

    caplog.set_level(logging.INFO)
    with TLSClient(auth_relay.host, auth_relay.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd("STARTTLS")[0] == 220
        c.send(b"\x16\x09\x09 not a client hello\r\n" * 20)
        assert c.closed()
    with TLSClient(auth_relay.host, auth_relay.port) as c:  # the next client is served
        c.cmd("EHLO client.test")
        c.starttls(cert[0])
        assert c.cmd("EHLO client.test")[0] == 250
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []
    assert any("TLS handshake failed" in r.getMessage() and "WRONG_VERSION_NUMBER" in r.getMessage()
               for r in caplog.records)



def test_a_client_that_stalls_its_tls_handshake_gives_its_connection_slot_back(cert, upstream, relay_factory, caplog):
    # STARTTLS, then no handshake (or half a ClientHello) until the idle deadline: asyncio's TLS layer
    # woke the handshake's waiter as if it had succeeded and never reported the connection lost, so the
    # slot stayed taken for ever (and a shutdown waited 5 s for it). Two such clients used to lock their
    # address out for good.
    import logging
    import time

    caplog.set_level(logging.INFO)
    crt, key = cert
    relay = relay_factory(upstream.port, listen=[{"address": "127.0.0.1:0", "tls": {"cert": str(crt), "key": str(key)}}],
                          limits={"timeout": 1, "max_connections_per_client": 2})
    stalled = [TLSClient(relay.host, relay.port) for _ in range(2)]
    for c, start in zip(stalled, (b"", b"\x16\x03\x01\x02\x00\x01")):
        c.cmd("EHLO client.test")
        assert c.cmd("STARTTLS")[0] == 220
        c.send(start)
    deadline = time.monotonic() + 15
    while relay.server.counter.active and time.monotonic() < deadline:
        time.sleep(0.05)
    assert relay.server.counter.active == 0 and not relay.server.service.sessions
    with TLSClient(relay.host, relay.port) as again:
        assert again.greeting[0] == 220, again.greeting
        again.starttls(cert[0])
        assert again.cmd("EHLO client.test")[0] == 250
    for c in stalled:
        c.close()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []
    assert sum("TLS handshake failed: ConnectionAbortedError" in r.getMessage() for r in caplog.records) == 2


def test_a_shutdown_does_not_wait_on_a_stalled_tls_handshake(cert, upstream, relay_factory, caplog):
    import logging
    import time

    caplog.set_level(logging.INFO)
    crt, key = cert
    relay = relay_factory(upstream.port, listen=[{"address": "127.0.0.1:0", "tls": {"cert": str(crt), "key": str(key)}}])
    with TLSClient(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd("STARTTLS")[0] == 220
        started = time.monotonic()
        relay.stop()
        assert time.monotonic() - started < 4  # it waited 5 s for the connection to go, then reset it
    # An AttributeError from asyncio's TLS transport, closed twice, was logged with its traceback.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []

def test_help_lists_auth_only_where_ehlo_offers_it(auth_relay, relay, cert):
    # RFC 4954 4: AUTH only over TLS here, and not at all without a users file; HELP said AUTH anyway.
    with TLSClient(relay.host, relay.port) as c:  # no users file
        c.cmd("EHLO client.test")
        assert "AUTH" not in c.cmd("HELP")[1].split(":", 1)[1].split()
    with TLSClient(auth_relay.host, auth_relay.port) as c:
        c.cmd("EHLO client.test")
        assert "AUTH" not in c.cmd("HELP")[1].split(":", 1)[1].split()
        c.starttls(cert[0])
        code, text = c.cmd("EHLO client.test")
        assert "AUTH" in text
        assert "AUTH" in c.cmd("HELP")[1].split(":", 1)[1].split()


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
def test_an_answer_to_a_challenge_longer_than_a_line_is_refused_whole(auth_relay, upstream, cert, caplog, mechanism):
    # aiosmtpd read the answer to 334 with readline(), which raised on a 100 KiB line: a traceback, a
    # 451, and the rest of the line read as commands (each later reply one command late).
    import logging

    caplog.set_level(logging.WARNING)
    with TLSClient(auth_relay.host, auth_relay.port) as c:
        c.ehlo_over_tls(cert[0])
        assert c.cmd("AUTH " + mechanism)[0] == 334
        code, text = c.cmd("QUFB" * 25600)
        assert text.startswith("500 5.5.6 Authentication exchange line is too long"), text
        assert c.cmd("NOOP") == (250, "250 2.0.0 OK")
        assert c.cmd("AUTH PLAIN " + plain("alice", "s3cret pass"))[0] == 235
        assert send_message(c, "a@sender.test", ["b@example.com"], BODY)[-1][0] == 250
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []


@pytest.mark.parametrize("line, answer, expected", [
    ("AUTH PLAIN =", None, "501 5.5.2 Empty PLAIN response"),  # RFC 4954 4: "=" is an empty response
    ("AUTH PLAIN", "*", "501 5.7.0 Authentication cancelled"),  # RFC 4954 4: the client cancels
    ("AUTH LOGIN", "*", "501 5.7.0 Authentication cancelled"),
    ("AUTH PLAIN", "not base64!", "501 5.5.2 Cannot decode the response"),
])
def test_odd_auth_answers_get_a_precise_reply(auth_relay, cert, line, answer, expected):
    with TLSClient(auth_relay.host, auth_relay.port) as c:
        c.ehlo_over_tls(cert[0])
        code, text = c.cmd(line)
        if answer is not None:
            assert code == 334
            code, text = c.cmd(answer)
        assert text.startswith(expected), text
        assert c.cmd("NOOP")[0] == 250
        assert c.cmd("AUTH PLAIN " + plain("alice", "s3cret pass"))[0] == 235


def test_ehlo_offers_only_the_mechanisms_there_are_and_others_get_504(auth_relay, cert, caplog):
    # aiosmtpd takes every attribute named auth_* (of the protocol and of the handler) for a SASL
    # mechanism: the relay's own flags were offered as "AUTH LOGIN PLAIN enabled offered", and
    # "AUTH enabled" called a bool (a traceback and a 451).
    import logging

    caplog.set_level(logging.WARNING)
    with TLSClient(auth_relay.host, auth_relay.port) as c:
        c.cmd("EHLO client.test")
        c.starttls(cert[0])
        code, text = c.cmd("EHLO client.test")
        assert "250-AUTH LOGIN PLAIN\r\n" in text, text
        for line in ("AUTH enabled", "AUTH offered", "AUTH ENABLED =", "AUTH CRAM-MD5", "AUTH XOAUTH2"):
            assert c.cmd(line) == (504, "504 5.5.4 Unrecognized authentication type"), line
        assert c.cmd("AUTH PLAIN " + plain("alice", "s3cret pass"))[0] == 235
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []


def test_mechanism_names_are_not_case_sensitive(auth_relay, upstream, cert):
    # RFC 5321 2.4; aiosmtpd compared "plain" with "PLAIN" and said 504.
    with TLSClient(auth_relay.host, auth_relay.port) as c:
        c.ehlo_over_tls(cert[0])
        assert c.cmd("AUTH login")[0] == 334
        assert c.cmd("*")[0] == 501  # cancelled (RFC 4954 4)
        assert c.cmd("AUTH plain " + plain("alice", "s3cret pass"))[0] == 235


def test_auth_where_there_are_no_logins_is_not_implemented(cert, upstream, relay_factory):
    # Without a users file EHLO offers no AUTH, yet AUTH was answered as a login attempt: 538
    # "Encryption required" in clear (STARTTLS then gave no AUTH either) and, over TLS, the
    # credentials read and "535 credentials invalid" (three of them closed the connection).
    crt, key = cert
    relay = relay_factory(upstream.port, listen=[{"address": "127.0.0.1:0", "tls": {"cert": str(crt), "key": str(key)}}])
    with TLSClient(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        for line in ("AUTH PLAIN " + plain("alice", "s3cret pass"), "AUTH LOGIN", "AUTH"):
            assert c.cmd(line)[1].startswith("502 5.5.1 "), line
        c.starttls(cert[0])
        assert "AUTH" not in c.cmd("EHLO client.test")[1]
        for _ in range(4):
            code, text = c.cmd("AUTH PLAIN " + plain("alice", "s3cret pass"))
            assert text.startswith("502 5.5.1 ") and "AUTH" in text, text
        assert c.cmd("AUTH LOGIN")[1].startswith("502 5.5.1 ")  # no 334: nothing more is read as an answer
        assert send_message(c, "a@sender.test", ["b@example.com"], BODY)[-1][0] == 250


class _TLSOverBIO:
    """A TLS client on memory BIOs over a plain socket, so that it can close its side the two ways a
    client does (a TCP FIN, or a TLS close_notify alone: TLS 1.3's half-close, RFC 8446 6.1) and still
    read what the server says after."""

    def __init__(self, relay, cafile):
        self.sock = socket.create_connection((relay.host, relay.port), timeout=15)
        plain = RawSMTP.__new__(RawSMTP)
        plain.sock, plain.buf = self.sock, b""
        plain.reply()
        assert plain.cmd("EHLO client.test")[0] == 250 and plain.cmd("STARTTLS")[0] == 220
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        context = ssl.create_default_context(cafile=str(cafile))
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self.incoming.write(self.sock.recv(65536))
        self._flush()

    def _flush(self) -> None:
        if self.outgoing.pending:
            self.sock.sendall(self.outgoing.read())

    def send_and_close(self, data: bytes, how: str) -> None:
        self.tls.write(data)
        if how == "close_notify":
            try:
                self.tls.unwrap()  # sends close_notify; the server's comes later
            except ssl.SSLWantReadError:
                pass
        self._flush()
        if how == "fin":
            self.sock.shutdown(socket.SHUT_WR)

    def read_all(self) -> bytes:
        got = b""
        while True:
            data = self.sock.recv(65536)
            if not data:
                return got
            self.incoming.write(data)
            try:
                while chunk := self.tls.read(65536):
                    got += chunk
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                pass

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("how", ["fin", "close_notify"])
def test_a_client_that_half_closes_over_tls_after_a_pipelined_session_gets_every_reply(
        tmp_path, cert, upstream, relay_factory, caplog, how):
    # The plaintext path already answered every command a client sent before its end of input; over
    # TLS, asyncio's TLS layer closed the connection at the client's FIN or close_notify: the client
    # got the EHLO's reply (FIN) or nothing at all (close_notify), and never learnt whether its message
    # went.
    import logging

    caplog.set_level(logging.WARNING)
    crt, key = cert
    relay = relay_factory(upstream.port, listen=[{"address": "127.0.0.1:0", "tls": {"cert": str(crt), "key": str(key)}}])
    body = b"From: a@sender.test\r\nTo: b@example.com\r\nSubject: tls\r\nMessage-ID: <hc@sender.test>\r\n\r\nhi\r\n"
    for round_ in range(2):
        c = _TLSOverBIO(relay, crt)
        try:
            c.send_and_close(b"EHLO client.test\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<b@example.com>\r\n"
                             b"RCPT TO:<nosuchuser@example.com>\r\nDATA\r\n" + body + b".\r\nQUIT\r\n", how)
            said = c.read_all()
        finally:
            c.close()
        codes = [int(line[:3]) for line in said.split(b"\r\n") if line[3:4] == b" "]
        assert codes == [250, 250, 250, 550, 354, 250, 221], (round_, said)
    assert len(upstream.wait_for_messages(2)) == 2
    deadline = time.time() + 5
    while relay.server.service.sessions and time.time() < deadline:
        time.sleep(0.02)
    assert not relay.server.service.sessions
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_starttls_inside_a_mail_transaction_is_refused_and_the_transaction_goes_on(tmp_path, cert, upstream,
                                                                                   relay_factory):
    # review14 L4: STARTTLS after MAIL and RCPT (both already sent upstream) was answered 220, and the
    # transaction and its upstream connection stayed open across the handshake. RFC 3207 4.2: both sides
    # discard what they knew; Postfix answers 503 5.5.1 while a MAIL transaction is in progress. The
    # transaction itself is untouched; after it, STARTTLS works.
    crt, key = cert
    relay = relay_factory(upstream.port, listen=[{"address": "127.0.0.1:0", "tls": {"cert": str(crt), "key": str(key)}}])
    with TLSClient(relay.host, relay.port) as c:
        assert "250-STARTTLS" in c.cmd("EHLO client.test")[1]
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        assert c.cmd("RCPT TO:<b@example.com>")[0] == 250
        code, text = c.cmd("STARTTLS")
        assert text.startswith("503 5.5.1 ") and "MAIL transaction in progress" in text, text
        assert c.cmd("DATA")[0] == 354
        assert c.cmd(BODY + b".")[0] == 250
        c.starttls(crt)  # between transactions: 220 and the handshake
        assert c.cmd("EHLO client.test")[0] == 250
        assert send_message(c, "a@sender.test", ["c@example.com"], BODY)[-1][0] == 250
    assert [m.rcpt_tos for m in upstream.wait_for_messages(2)] == [["b@example.com"], ["c@example.com"]]


def test_upstream_password_is_read_at_load_and_a_reload_with_a_bad_file_keeps_it(
        tmp_path, cert, tls_upstream, relay_factory, caplog):
    # The old code read password_file at the first upstream connection: a file in Latin-1 (or gone)
    # passed check-config and start, then every MAIL got 451 4.3.0 and a logged traceback (review20 F3).
    secret = tmp_path / "upstream-secret"
    secret.write_text("Tr0ub4dor-up\n")
    relay = relay_factory(tls_upstream.port, upstream={"starttls": "required", "ca_file": str(cert[0]),
                                                       "username": "relayuser", "password_file": str(secret)})
    secret.write_bytes(b"Tr0ub4dor-\xe9\n")  # rewritten by an editor saving Latin-1, after the start
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        assert send_message(c, "a@sender.test", ["b@example.com"], BODY)[-1][0] == 250
    assert len(tls_upstream.wait_for_messages(1)) == 1
    assert relay.reload() is False
    assert any(f"upstream.password_file: file {secret}: not UTF-8 text (byte 10)" in r.getMessage()
               for r in caplog.records), caplog.text
    assert not any(r.exc_info for r in caplog.records)
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        assert send_message(c, "a@sender.test", ["b@example.com"], BODY)[-1][0] == 250


def test_upstream_ca_file_replaced_by_garbage_at_run_time_is_refused_at_reload_and_mail_still_goes(
        tmp_path, cert, tls_upstream, relay_factory, caplog):
    # The old code built the smarthost's TLS context at every connection: a ca_file overwritten with
    # garbage after the start made every new session a logged traceback and an anonymous
    # "451 4.3.0 Temporary local problem"; now the context is the one built at load, and a reload
    # that cannot load the file is refused, naming the key, with the running context kept.
    ca = tmp_path / "smarthost-ca.pem"
    ca.write_bytes(cert[0].read_bytes())
    relay = relay_factory(tls_upstream.port, upstream={"starttls": "required", "ca_file": str(ca),
                                                       "username": "relayuser", "password_file": _secret(tmp_path)})
    ca.write_text("garbage, not a PEM bundle\n")
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        assert send_message(c, "a@sender.test", ["b@example.com"], BODY)[-1][0] == 250
    assert relay.reload() is False
    assert any(f"reload refused, keeping the running config: {relay.config_path}: upstream.ca_file: "
               f"no certificate in {ca}" in r.getMessage() for r in caplog.records), caplog.text
    tls_upstream.drop_connections()  # the next message needs a new connection, with the kept context
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        assert send_message(c, "a@sender.test", ["c@example.com"], BODY)[-1][0] == 250
    assert len(tls_upstream.wait_for_messages(2)) == 2
    assert not any(r.exc_info for r in caplog.records if r.name.startswith("relay")), caplog.text


def test_upstream_ca_file_renewed_in_place_is_trusted_from_the_next_reload(
        tmp_path, cert, tls_upstream, relay_factory, caplog):
    # SIGHUP builds the smarthost's context again from the same path: a bundle renewed in place is
    # used from then on. A CA that does not sign the smarthost is a TLS failure at connection, which
    # the client gets as a clean 451 4.7.5 with an event, never a traceback.
    ca = tmp_path / "smarthost-ca.pem"
    ca.write_bytes(cert[0].read_bytes())
    relay = relay_factory(tls_upstream.port, upstream={"starttls": "required", "ca_file": str(ca)})
    other = tmp_path / "other"
    other.mkdir()
    ca.write_bytes(make_cert(other)[0].read_bytes())  # a valid PEM, of another CA
    assert relay.reload() is True
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        code, text = c.cmd("MAIL FROM:<a@sender.test>")
    assert code == 451 and text.startswith(f"451 4.7.5 TLS with upstream 127.0.0.1:{tls_upstream.port} failed"), text
    event = relay.events(wait_for=1)[-1]
    assert event["reply"]["code"] == 451 and event["reply"]["enhanced"] == "4.7.5", event
    ca.write_bytes(cert[0].read_bytes())
    assert relay.reload() is True
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        assert send_message(c, "a@sender.test", ["b@example.com"], BODY)[-1][0] == 250
    assert not any(r.exc_info for r in caplog.records if r.name.startswith("relay")), caplog.text


def _secret(tmp_path) -> str:
    secret = tmp_path / "upstream-secret"
    secret.write_text("Tr0ub4dor-up\n")
    return str(secret)


@pytest.mark.parametrize("refusal", ["451 4.3.2 System not accepting network messages, try later",
                                     "454 4.7.0 Too many connections from your host",
                                     "421 4.7.0 smtp.upstream.test Service not available, closing channel"])
def test_a_refusal_of_the_ehlo_after_starttls_with_a_login_is_the_smarthosts_reply(
        tmp_path, cert, tls_upstream, relay_factory, refusal):
    # With upstream.username set, aiosmtplib's login greeted by itself after STARTTLS and took a 4xx to
    # EHLO as a cue for HELO: the login then found no AUTH, and the client got the relay's "451 4.4.1
    # Upstream ... is unreachable" instead of the smarthost's own reply (a 421 already reached it: the
    # library closes the connection then, so no HELO could follow).
    tls_upstream.ehlo_after_tls_reply = refusal
    relay = relay_factory(tls_upstream.port, upstream={"starttls": "required", "ca_file": str(cert[0]),
                                                       "username": "relayuser", "password_file": _secret(tmp_path)})
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        code, text = c.cmd("MAIL FROM:<a@sender.test>")
    assert (code, text) == (int(refusal[:3]), refusal)
    assert tls_upstream.messages == []
    event = relay.events(wait_for=1)[-1]
    assert event["reply"]["source"] == "upstream" and event["reply"]["code"] == int(refusal[:3]), event


@pytest.mark.parametrize("length", [600, 5000])
def test_an_auth_command_longer_than_a_line_gets_5_5_6(auth_relay, cert, length):
    # RFC 4954 4 keeps AUTH within RFC 5321's 512 octets (a longer initial response goes after an empty 334),
    # and RFC 4954 6 names the reply: 500 5.5.6 Authentication Exchange line is too long (it was 500 5.5.2,
    # a plain command line's). 600: read whole, then found too long; 5000: past the reader's own limit.
    with TLSClient(auth_relay.host, auth_relay.port) as c:
        c.ehlo_over_tls(cert[0])
        line = "AUTH PLAIN " + "QUFB" * ((length - 11) // 4)
        assert c.cmd(line) == (500, "500 5.5.6 Authentication exchange line is too long (RFC 4954 6)")
        assert c.cmd("NOOP " + "x" * 600) == (500, "500 5.5.2 Command line too long")  # any other: as before
        assert c.cmd("NOOP") == (250, "250 2.0.0 OK")
        assert c.cmd("AUTH PLAIN " + plain("alice", "s3cret pass"))[0] == 235


def test_the_listeners_tls_context_refuses_client_renegotiation(auth_relay, cert):
    # A client-initiated renegotiation costs the server a handshake for a few bytes (CVE-2011-1473). OpenSSL 3
    # refuses it by default, 1.1.1 did not; the option is set on the context the listener uses whatever
    # Python links (no client on this machine can renegotiate to show it on the wire: OpenSSL 3 everywhere).
    import ssl

    with TLSClient(auth_relay.host, auth_relay.port) as c:
        c.ehlo_over_tls(cert[0])
        (server_side,) = [p for p in auth_relay.server.counter.protocols if p.session.ssl]
        tls = server_side.session.ssl["ssl_object"]
        assert tls.context is server_side.tls_context
        assert tls.context.options & ssl.OP_NO_RENEGOTIATION
