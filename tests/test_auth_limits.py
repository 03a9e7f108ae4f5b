"""AUTH against a running relay: the password hash never runs on the event loop, and failed logins
are limited per connection (421 and close) and per client address (454, without hashing)."""

from __future__ import annotations

import base64
import select
import threading

import pytest

from relay.users import hash_password
from tests.support.smtp_client import RawSMTP
from tests.support.tls import make_cert
from tests.test_tls_auth import TLSClient, plain

@pytest.fixture
def cert(tmp_path):
    return make_cert(tmp_path)


def start(tmp_path, cert, upstream, relay_factory, iterations: int = 1000):
    users = tmp_path / "users"
    users.write_text(f"alice:{hash_password('s3cret pass', iterations)}\n")
    crt, key = cert
    # 127.0.0.1 is trusted here (so a second client can relay without AUTH), and AUTH is offered.
    return relay_factory(upstream.port, listen=[{"address": "127.0.0.1:0", "tls": {"cert": str(crt), "key": str(key)}}],
                         clients={"networks": ["127.0.0.0/8"], "users_file": str(users)})


def tls_client(relay, cert) -> TLSClient:
    c = TLSClient(relay.host, relay.port)
    c.cmd("EHLO client.test")
    c.starttls(cert[0])
    c.cmd("EHLO client.test")
    return c


def test_password_hashing_does_not_stall_other_sessions(tmp_path, cert, upstream, relay_factory, monkeypatch):
    # The hash is held in flight until the other session has been served, so what is checked is the
    # order (another session answered while a hash runs), not how fast this machine hashes. Before, a
    # hash of 6,000,000 PBKDF2 iterations (5 s on an idle machine) had to end within the client's 15 s
    # timeout, and a loaded one (load average ~10 on 2 cores) missed it.
    from relay.users import Users

    hashing, release = threading.Event(), threading.Event()
    verify = Users.verify

    def held_verify(self, name: str, password: str) -> bool:
        hashing.set()
        release.wait(120)  # only a guard against a test that never lets go: `finally` below does
        return verify(self, name, password)

    monkeypatch.setattr(Users, "verify", held_verify)
    relay = start(tmp_path, cert, upstream, relay_factory)
    try:
        with tls_client(relay, cert) as slow, RawSMTP(relay.host, relay.port) as other:
            other.cmd("EHLO other.test")
            slow.send("AUTH PLAIN " + plain("alice", "wrong") + "\r\n")
            assert hashing.wait(30), "the login was never hashed"
            # A hash on the event loop holds the loop until it is released: these get no reply (the
            # client's timeout ends the test).
            for _ in range(3):
                assert other.cmd("NOOP")[0] == 250
            assert other.cmd("MAIL FROM:<a@sender.test>")[0] == 250
            assert not readable(slow), "the login was answered before its hash ended"
            release.set()
            assert slow.reply()[0] == 535
    finally:
        release.set()


def readable(client) -> bool:
    """Whether a reply from the relay is waiting on `client`'s connection, without waiting for one."""
    pending = getattr(client.sock, "pending", lambda: 0)()  # decrypted bytes already read (TLS)
    return bool(client.buf or pending or select.select([client.sock], [], [], 0)[0])


def test_three_failed_logins_close_the_connection(tmp_path, cert, upstream, relay_factory):
    relay = start(tmp_path, cert, upstream, relay_factory)
    with tls_client(relay, cert) as c:
        assert c.cmd("AUTH PLAIN " + plain("alice", "guess1"))[0] == 535
        assert c.cmd("AUTH LOGIN")[0] == 334
        assert c.cmd(base64.b64encode(b"alice").decode())[0] == 334
        assert c.cmd(base64.b64encode(b"guess2").decode())[0] == 535
        code, text = c.cmd("AUTH PLAIN " + plain("alice", "guess3"))
        assert code == 421 and text.startswith("421 4.7.0")
        assert c.closed()


def test_a_guessing_address_is_refused_without_hashing_even_the_right_password(tmp_path, cert, upstream,
                                                                                relay_factory):
    relay = start(tmp_path, cert, upstream, relay_factory)
    for _ in range(5):  # ten failures from 127.0.0.1 over five connections
        with tls_client(relay, cert) as c:
            assert c.cmd("AUTH PLAIN " + plain("alice", "guess"))[0] == 535
            assert c.cmd("AUTH PLAIN " + plain("nobody", "guess"))[0] == 535
    with tls_client(relay, cert) as c:
        code, text = c.cmd("AUTH PLAIN " + plain("alice", "s3cret pass"))
        assert code == 454 and text.startswith("454 4.7.0") and "Too many failed logins" in text


def test_a_good_login_still_works_and_is_remembered(tmp_path, cert, upstream, relay_factory):
    relay = start(tmp_path, cert, upstream, relay_factory)
    for _ in range(2):
        with tls_client(relay, cert) as c:
            assert c.cmd("AUTH PLAIN " + plain("alice", "s3cret pass"))[0] == 235
            assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250


USER_B64, PASSWORD_B64 = base64.b64encode(b"alice").decode(), base64.b64encode(b"s3cret pass").decode()


@pytest.mark.parametrize("case", ["clear-538", "no-users-502", "in-transaction-503", "after-helo-500",
                                  "logged-in-503", "unknown-mechanism-504"])
def test_credentials_pipelined_behind_a_refused_auth_are_never_logged_nor_echoed(
        tmp_path, cert, upstream, relay_factory, caplog, case):
    # review23 F3: a client that pipelines AUTH LOGIN's exchange without waiting for the 334s, on an
    # AUTH the relay refuses before the exchange, has its base64 login and password read as command
    # lines: aiosmtpd logged each at WARNING ("unrecognised: CZNJCMV0IHBHC3M=", the password with its
    # case folded: a few thousand guesses from clear text) and the 500 echoed it. Every refusal path.
    import logging

    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="mail.log")  # aiosmtpd's every line, as `--log-level DEBUG` has it
    if case == "no-users-502":
        relay = relay_factory(upstream.port, clients={"networks": ["127.0.0.0/8"]})
    else:
        relay = start(tmp_path, cert, upstream, relay_factory)
    c = tls_client(relay, cert) if case in ("logged-in-503", "unknown-mechanism-504") else RawSMTP(relay.host, relay.port)
    with c:
        if case == "after-helo-500":
            assert c.cmd("HELO client.test")[0] == 250
        elif not isinstance(c, TLSClient):
            assert c.cmd("EHLO client.test")[0] == 250
        if case == "in-transaction-503":
            assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        if case == "logged-in-503":
            assert c.cmd("AUTH PLAIN " + plain("alice", "s3cret pass"))[0] == 235
        mechanism = "FOO" if case == "unknown-mechanism-504" else "LOGIN"
        c.send(f"AUTH {mechanism}\r\n{USER_B64}\r\n{PASSWORD_B64}\r\n")
        refusal = c.reply()
        assert refusal[0] == {"clear-538": 538, "no-users-502": 502, "in-transaction-503": 503, "after-helo-500": 500,
                              "logged-in-503": 503, "unknown-mechanism-504": 504}[case], refusal
        replies = [c.reply(), c.reply()]
        assert [code for code, _ in replies] == [500, 500], replies
        assert c.cmd("NOOP")[0] == 250
    said = " ".join(text for _, text in [refusal, *replies]).upper()
    assert USER_B64.upper() not in said and PASSWORD_B64.upper() not in said, said
    logged = [r.getMessage().upper() for r in caplog.records]
    leaks = [m for m in logged if USER_B64.upper() in m or PASSWORD_B64.upper() in m or "S3CRET" in m]
    assert not leaks, leaks
    # Pins aiosmtpd's warning for an unknown verb (smtp._UNRECOGNISED_FORMAT): shown redacted, so a
    # change of its wording in the library breaks this test rather than the redaction going quiet.
    assert sum("UNRECOGNISED: (NOT SHOWN: " in m for m in logged) == 2, [m for m in logged if "UNRECOG" in m]



def held_checks(monkeypatch):
    """Users.check held until the returned event is set: (names whose check began, the event)."""
    import asyncio

    from relay.users import Users

    started, release = [], threading.Event()
    check = Users.check

    async def held_check(self, name: str, password: str) -> bool:
        started.append(name)
        while not release.is_set():
            await asyncio.sleep(0.01)
        return await check(self, name, password)

    monkeypatch.setattr(Users, "check", held_check)
    return started, release


def test_logins_in_flight_at_once_count_towards_the_address_limit(tmp_path, cert, upstream, relay_factory,
                                                                  monkeypatch, caplog):
    """FailedLogins lets an address fail 10 times a minute, then refuses it 454 without hashing. The
    failures were counted only once hashed, and every attempt made meanwhile passed the check: a guesser
    that sends its AUTHs over parallel connections at once (50 are allowed per client address) had
    every one of them hashed (50 guesses and 50 PBKDF2 runs a round, not 10). Here the 11th attempt
    arrives while 10 are being hashed: it waits for their verdicts, and, all 10 wrong, is refused
    454 without being hashed."""
    import logging

    from tests.support.processes import wait_until

    caplog.set_level(logging.DEBUG, logger="mail.log")  # aiosmtpd logs each command line as it reads it
    started, release = held_checks(monkeypatch)
    relay = start(tmp_path, cert, upstream, relay_factory)
    clients = [tls_client(relay, cert) for _ in range(11)]
    try:
        for n, c in enumerate(clients[:10], 1):
            c.send("AUTH PLAIN " + plain("alice", f"guess{n}") + "\r\n")
            assert wait_until(lambda: len(started) == n, timeout=30), started
        clients[10].send("AUTH PLAIN " + plain("alice", "guess11") + "\r\n")

        def auth_lines_read() -> int:
            return sum(1 for r in caplog.records if r.name == "mail.log" and ">>" in r.msg
                       and "AUTH" in r.getMessage())
        assert wait_until(lambda: auth_lines_read() == 11, timeout=30)  # the relay has read the 11th
        release.set()
        assert [c.reply()[0] for c in clients[:10]] == [535] * 10
        code, text = clients[10].reply()
        assert code == 454 and "Too many failed logins" in text, text
        assert len(started) == 10  # the 11th never reached the password check
    finally:
        release.set()
        for c in clients:
            c.close()


def test_an_honest_client_logging_in_on_many_connections_at_once_is_never_refused(
        tmp_path, cert, upstream, relay_factory, monkeypatch):
    """The other side of the limit on logins in flight: 12 right passwords at once (Postfix opens up
    to 20 connections to a next hop) are all accepted, those past the 10th once a verdict is in."""
    from tests.support.processes import wait_until

    started, release = held_checks(monkeypatch)
    relay = start(tmp_path, cert, upstream, relay_factory)
    clients = [tls_client(relay, cert) for _ in range(12)]
    try:
        for c in clients:
            c.send("AUTH PLAIN " + plain("alice", "s3cret pass") + "\r\n")
        assert wait_until(lambda: len(started) >= 10, timeout=30)  # 10 in flight (before the fix: 12)
        release.set()
        assert [c.reply()[0] for c in clients] == [235] * 12
        for c in clients:
            assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
    finally:
        release.set()
        for c in clients:
            c.close()


def test_a_login_whose_check_queues_under_stress_is_not_cut_as_idle(tmp_path, cert, upstream, relay_factory,
                                                                    monkeypatch):
    """Two outsiders log in at once on a listener at its stress mark (limits.stress_timeout 1 s). Their
    checks queue (the hashing pool's two threads under a flood of logins; here each check waits 3 s): that
    wait is the relay's, not the client's idle time, yet one of the two was cut with "421 4.4.2 ... Idle for
    more than 1 s while this relay is busy" (review-int4 F3)."""
    import asyncio

    import relay.users

    check = relay.users.Users.check

    async def queued(self, name, password):
        await asyncio.sleep(3)
        return await check(self, name, password)

    monkeypatch.setattr(relay.users.Users, "check", queued)
    users = tmp_path / "users"
    users.write_text(f"alice:{hash_password('s3cret pass', iterations=1000)}:sender.test\n")
    crt, key = cert
    relay_ = relay_factory(upstream.port, listen=[{"address": "127.0.0.1:0", "tls": {"cert": str(crt), "key": str(key)}}],
                           clients={"networks": ["10.0.0.0/8"], "users_file": str(users)},
                           limits={"max_connections": 2, "timeout": 60, "stress_timeout": 1})
    replies = {}

    def login(i):
        with TLSClient(relay_.host, relay_.port, timeout=20) as c:
            c.ehlo_over_tls(crt)
            replies[i] = c.cmd("AUTH PLAIN " + plain("alice", "s3cret pass"))

    threads = [threading.Thread(target=login, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [replies[i][0] for i in range(2)] == [235, 235], replies
