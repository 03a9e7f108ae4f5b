"""review14: the bounces_in listener faces the Internet. Through a running relay: it has its own connection
budget (F1) and its own message size (F3), apart from the relay listeners'; and without a VERP key a bounce,
which anyone can forge, never lists an address at once and by default never touches the bounce list (F2).
`relay check-config` says so."""

from __future__ import annotations

import select
import socket
import subprocess
import sys
import time

import pytest

from tests.support.processes import wait_until
from tests.support.smtp_client import RawSMTP, send_message
from tests.test_bounces_in import BOUNCE_DOMAIN, dsn_for, rcpt_reply


def start_intake(relay_factory, upstream, **bounces_in):
    relay = relay_factory(upstream.port, bounces_in={"listen": "127.0.0.1:0", "domains": [BOUNCE_DOMAIN],
                                                     **bounces_in.pop("intake", {})}, **bounces_in)
    relay.intake_port = relay.bound[1][1]
    return relay


def greeting(host: str, port: int, source: str = "127.0.0.1") -> tuple[socket.socket, bytes]:
    sock = socket.create_connection((host, port), timeout=10, source_address=(source, 0))
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return sock, data


def test_a_full_bounces_in_listener_leaves_the_relay_listener_its_own_connections(upstream, relay_factory):
    # F1: the intake shared limits.max_connections with the relay listeners; outside hosts holding intake
    # connections had the operator's own MTA told "421 4.7.0 Too many connections to this relay".
    relay = start_intake(relay_factory, upstream, limits={"max_connections": 3, "max_connections_per_client": 3})
    held = []
    try:
        for source in ("127.0.0.3", "127.0.0.3", "127.0.0.4"):
            sock, text = greeting(relay.host, relay.intake_port, source)
            held.append(sock)
            assert text.startswith(b"220 "), text
        sock, text = greeting(relay.host, relay.port)
        held.append(sock)
        assert text.startswith(b"220 "), text  # was 421 4.7.0 Too many connections to this relay
        with RawSMTP(relay.host, relay.port) as c:
            c.cmd("EHLO client.test")
            assert send_message(c, "a@sender.test", ["b@example.com"], b"Subject: x\r\n\r\nx\r\n")[-1][0] == 250
    finally:
        for sock in held:
            sock.close()


def test_the_bounces_in_listener_has_its_own_connection_limits(upstream, relay_factory):
    relay = start_intake(relay_factory, upstream, intake={"max_connections": 3, "max_connections_per_client": 2})
    held = []
    try:
        for source in ("127.0.0.3", "127.0.0.3"):
            sock, text = greeting(relay.host, relay.intake_port, source)
            held.append(sock)
            assert text.startswith(b"220 "), text
        sock, text = greeting(relay.host, relay.intake_port, "127.0.0.3")
        held.append(sock)
        assert text.startswith(b"421 4.7.0 Too many connections from 127.0.0.3 (at most 2)"), text
        sock, text = greeting(relay.host, relay.intake_port, "127.0.0.4")
        held.append(sock)
        assert text.startswith(b"220 "), text
        sock, text = greeting(relay.host, relay.intake_port, "127.0.0.5")
        held.append(sock)
        assert text.startswith(b"421 4.7.0 Too many connections"), text
        # The relay listener keeps its own (limits.max_connections: 1000).
        sock, text = greeting(relay.host, relay.port)
        held.append(sock)
        assert text.startswith(b"220 "), text
    finally:
        for sock in held:
            sock.close()


def test_the_bounces_in_listener_has_its_own_message_size(upstream, relay_factory):
    # F3: the intake took limits.max_message_size (35 MiB) per connection, held in memory while DATA
    # arrived, from anyone. Its own default is 10 MiB, advertised in EHLO and enforced with 552 5.3.4.
    relay = start_intake(relay_factory, upstream)
    with RawSMTP(relay.host, relay.intake_port) as c:
        code, text = c.cmd("EHLO mta.example")
        assert "250-SIZE 10485760" in text, text
    with RawSMTP(relay.host, relay.port) as c:
        assert "250-SIZE 36700160" in c.cmd("EHLO client.test")[1]

    relay = start_intake(relay_factory, upstream, intake={"max_message_size": 4000})
    return_path = f"bounce@{BOUNCE_DOMAIN}"
    with RawSMTP(relay.host, relay.intake_port) as c:
        assert "250-SIZE 4000" in c.cmd("EHLO mta.example")[1]
        code, text = c.cmd("MAIL FROM:<> SIZE=5000")
        assert text.startswith("552 5.3.4 "), text
        big = dsn_for(return_path) + b"\r\n" + (b"x" * 70 + b"\r\n") * 80
        replies = send_message(c, "", [return_path], big)
        assert replies[-1][1].startswith("552 5.3.4 "), replies
        assert send_message(c, "", [return_path], dsn_for(return_path))[-1][0] == 250


def mail_forged_bounce(relay, rcpt: str = "ceo@important.test", nth: int = 1) -> list[tuple[int, str]]:
    """A bounce without a token, about the `nth` message (its returned Message-ID): one message's
    bounces count once (review12 F11)."""
    with RawSMTP(relay.host, relay.intake_port) as c:
        c.cmd("EHLO attacker.example")
        return send_message(c, "", [f"anything@{BOUNCE_DOMAIN}"],
                            dsn_for(f"anything@{BOUNCE_DOMAIN}", rcpt=rcpt).replace(b"<m-1@", f"<m-{nth}@".encode()))


def test_without_a_key_a_forged_bounce_is_an_event_and_never_lists(upstream, relay_factory, caplog):
    # F2: without bounces_in.key_file one forged DSN from anywhere listed any address, for good, and
    # nothing warned. `relay serve` now warns at start.
    import logging

    caplog.set_level(logging.WARNING, logger="relay.server")
    relay = start_intake(relay_factory, upstream)
    assert any("bounces_in has no key_file" in r.getMessage() for r in caplog.records), caplog.text
    for n in (1, 2, 3):
        replies = mail_forged_bounce(relay)
        assert replies[-1][0] == 250, replies
        events = relay.events(wait_for=n)
        assert [e["kind"] for e in events] == ["bounced"] * n, events
        assert events[-1]["recipient"] == "ceo@important.test" and "bounce_list" not in events[-1]
        assert events[-1]["classification"]["category"] == "unknown_recipient"
        assert rcpt_reply(relay, "ceo@important.test") == 250


def test_without_a_key_unsigned_count_counts_a_bounce_and_never_lists_at_once(upstream, relay_factory):
    # The operator's explicit choice: a bounce without a token counts (suppression.yaml `unconfirmed:`,
    # the second within 30 days lists), as an unconfirmed claim; a "no such user" never lists at once.
    relay = start_intake(relay_factory, upstream, intake={"unsigned": "count"})
    assert mail_forged_bounce(relay)[-1][0] == 250
    assert [e["kind"] for e in relay.events(wait_for=1)] == ["bounced"]
    assert rcpt_reply(relay, "ceo@important.test") == 250
    assert mail_forged_bounce(relay, nth=2)[-1][0] == 250  # a bounce of another message
    events = relay.events(wait_for=3)
    assert [e["kind"] for e in events] == ["bounced", "bounced", "bounce_listed"], events
    assert events[1]["bounce_list"] == "listed" and events[2]["entry"]["count"] == 2
    assert rcpt_reply(relay, "ceo@important.test") == 550


def test_without_a_key_unsigned_count_never_makes_a_bounce_domain_evidence(tmp_path, upstream, relay_factory):
    # review15 F6: with `unsigned: count`, two forged "no such domain" bounces seen `seen_again_after`
    # apart listed the whole domain (`@gmail.com`: everyone there refused at RCPT for 30 days).
    import time
    from pathlib import Path

    policies = tmp_path / "policies"
    policies.mkdir()
    shipped = (Path(__file__).parent.parent / "policies" / "suppression.yaml").read_text()
    assert "seen_again_after: 1h" in shipped
    (policies / "suppression.yaml").write_text(shipped.replace("seen_again_after: 1h", "seen_again_after: 1s"))
    relay = start_intake(relay_factory, upstream, intake={"unsigned": "count"}, policies=str(policies))
    nxdomain = ("Host or domain name not found. Name service error for name=important.test type=MX: "
                "Host not found")
    for nth, rcpt in enumerate(("ceo@important.test", "cfo@important.test"), 1):
        if nth > 1:
            time.sleep(1.2)  # past seen_again_after: a second sighting listed the domain
        with RawSMTP(relay.host, relay.intake_port) as c:
            c.cmd("EHLO attacker.example")
            replies = send_message(c, "", [f"anything@{BOUNCE_DOMAIN}"],
                                   dsn_for(f"anything@{BOUNCE_DOMAIN}", rcpt=rcpt, status="5.1.2",
                                           diagnostic=nxdomain))
        assert replies[-1][0] == 250, replies
    events = relay.events(wait_for=3, timeout=3)  # was a third: bounce_listed @important.test
    assert [e["kind"] for e in events] == ["bounced", "bounced"], events
    assert all(e["classification"]["category"] == "routing_dns" for e in events), events
    assert rcpt_reply(relay, "coo@important.test") == 250  # was 550: @important.test listed


def check_config(tmp_path, bounces_in: str) -> tuple[int, str]:
    (tmp_path / "verp.key").write_bytes(b"k" * 32)
    config = tmp_path / "relay.yaml"
    config.write_text(f"hostname: relay.test\nbounce_list: \"sqlite:///{tmp_path}/b.db\"\nbounces_in: {bounces_in}\n")
    proc = subprocess.run([sys.executable, "-m", "relay", "check-config", "-c", str(config)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("bounces_in, rc, said", [
    ("{listen: '127.0.0.1:2526', domains: [b.example]}", 0,
     "warning: bounces_in has no key_file: anyone who can reach 127.0.0.1:2526 can mail a bounce naming any "
     "address, so bounces there are recorded as events but never touch the bounce list"),
    ("{listen: '127.0.0.1:2526', domains: [b.example], unsigned: count}", 0,
     "warning: bounces_in has no key_file and unsigned: count"),
    ("{listen: '127.0.0.1:2526', domains: [b.example], key_file: verp.key}", 0, None),
    ("{listen: '127.0.0.1:2526', domains: [b.example], unsigned: list}", 1,
     "bounces_in.unsigned: expected never or count, got 'list'"),
    ("{listen: '127.0.0.1:2526', domains: [b.example], key_file: verp.key, unsigned: count}", 1,
     "bounces_in.unsigned: applies only without key_file"),
    ("{listen: '127.0.0.1:2526', domains: [b.example], key_file: verp.key, max_connections: 5, "
     "max_connections_per_client: 6}", 1, "bounces_in.max_connections_per_client: 6 is more than"),
    ("{listen: '127.0.0.1:2526', domains: [b.example], key_file: verp.key, max_message_size: 0}", 1,
     "bounces_in.max_message_size:"),
])
def test_check_config_warns_of_a_bounces_in_without_a_key(tmp_path, bounces_in, rc, said):
    code, out = check_config(tmp_path, bounces_in)
    assert code == rc, out
    if said is None:
        assert "warning" not in out, out
    else:
        assert said in out, out


def test_stopping_tells_an_idle_bounces_in_connection_421(upstream, relay_factory):
    # The drain at SIGTERM walks the intake's connections too, now that they are counted apart.
    relay = start_intake(relay_factory, upstream)
    with RawSMTP(relay.host, relay.intake_port) as c:
        assert c.cmd("EHLO mta.example")[0] == 250
        relay.begin_stop().result(30)
        code, text = c.reply()
        assert text.startswith("421 4.3.2 Relay shutting down"), text
        assert c.closed()


def costly_bounce(to: str, parts: int = 30_000) -> bytes:
    """A multipart of many small parts (~2.3 MB): about 1.5 s of the one parser thread, under its budget."""
    return (f"From: MAILER-DAEMON@mx.example\r\nTo: {to}\r\nSubject: Undelivered\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n").encode() + b"".join(
        b"--B\r\nContent-Type: text/plain\r\n\r\n550 5.1.1 <u%d@dest.example> no such user\r\n" % i
        for i in range(parts)) + b"--B--\r\n"


def open_data(relay, source: str, rcpt: str, helo: str = "mx.example") -> RawSMTP:
    """A connection from `source` to the intake, told 354 for one message to `rcpt`."""
    c = RawSMTP(relay.host, relay.intake_port, timeout=120, source=source)
    assert c.cmd(f"EHLO {helo}")[0] == 250
    assert c.cmd("MAIL FROM:<>")[0] == 250
    assert c.cmd(f"RCPT TO:<{rcpt}>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    return c


def flood_with_one_behind(relay, sources: list[str], rcpt: str, message: bytes, return_path: str
                          ) -> tuple[list[RawSMTP], RawSMTP]:
    """Costly `message`s to `rcpt`, one from each of `sources`, and a real bounce from 127.0.0.2 to
    `return_path` ended right behind them (on the old code: in the parser's queue behind them all);
    every final reply unread."""
    import select

    flooders = [open_data(relay, source, rcpt) for source in sources]
    real = open_data(relay, "127.0.0.2", return_path, helo="smarthost.example")
    for c in flooders:
        c.send(message + b".\r\n")

    def flood_under_way() -> bool:
        # Each flood message was received whole and is with the intake (its DATA handler running: reading
        # it, or waiting to), or was answered already.
        in_handler = sum(1 for p in list(relay.server.intake_counter.protocols) if p._in_handler)
        answered = select.select([c.sock for c in flooders], [], [], 0)[0]
        return in_handler + len(answered) >= len(flooders)

    wait_until(flood_under_way, timeout=60)
    real.send(dsn_for(return_path) + b".\r\n")
    return flooders, real


@pytest.fixture
def short_parse_deadline(monkeypatch):
    # The parser's deadlines scaled down (30 s and 10 s in service), so that a flood that starves the
    # parser does it in seconds: a real bounce queued behind it gets 451 "not read in time".
    import relay.intake.bounces_in as bounces_in

    monkeypatch.setattr(bounces_in, "PARSE_DEADLINE", 10.0)
    monkeypatch.setattr(bounces_in, "PARSE_BUDGET", 3.0)


def test_a_postmaster_flood_is_not_read_and_never_holds_up_a_real_bounce(tmp_path, upstream, relay_factory,
                                                                         short_parse_deadline):
    # review23 F1: mail to postmaster@ without a VERP token (taken from anyone, RFC 5321 4.5.1) is never
    # acted on, but was parsed in the one parser thread first: costly multiparts from ten clients held a
    # real bounce behind them past the parse deadline (451). It is not read at all now.
    from tests.test_bounces_in import relay_one, start_verp_relay

    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    return_path = relay_one(relay, upstream)
    flooders, real = flood_with_one_behind(relay, [f"127.0.0.{10 + i}" for i in range(10)],
                                           f"postmaster@{BOUNCE_DOMAIN}", costly_bounce(f"postmaster@{BOUNCE_DOMAIN}"),
                                           return_path)
    try:
        assert real.reply() == (250, "250 2.0.0 Recorded 1 failure(s)")
        assert [c.reply() for c in flooders] == [(250, "250 2.0.0 Received (postmaster: not recorded)")] * 10
    finally:
        for c in [*flooders, real]:
            c.close()
    assert [e["recipient"] for e in relay.events(wait_for=2) if e["kind"] == "bounced"] == ["alice@dest.example"]


def test_one_clients_costly_bounces_never_hold_up_another_clients_bounce(tmp_path, upstream, relay_factory,
                                                                        short_parse_deadline):
    # review23 F1: a recipient of one message holds a valid return path (a VERP token); from one address
    # and ten connections it sends costly bounces to it. Its bounces are read one at a time, so another
    # client's real bounce waits for one of them at most, never for the whole flood (old: 451).
    from tests.test_bounces_in import relay_one, start_verp_relay

    relay = start_verp_relay(tmp_path, upstream, relay_factory)
    own = relay_one(relay, upstream, rcpt="mallory@dest.example", nth=1)
    return_path = relay_one(relay, upstream, nth=2)
    flooders, real = flood_with_one_behind(relay, ["127.0.0.1"] * 10, own, costly_bounce(own), return_path)
    try:
        assert real.reply() == (250, "250 2.0.0 Recorded 1 failure(s)")
        flood_codes = [c.reply()[0] for c in flooders]
        assert set(flood_codes) <= {250, 451, 554}, flood_codes  # its own: read in turn, or not in time
    finally:
        for c in [*flooders, real]:
            c.close()
    bounced = [e for e in relay.events(wait_for=2) if e["kind"] == "bounced"]
    assert [e["recipient"] for e in bounced] == ["alice@dest.example"]


def test_a_busy_bounces_in_listener_gives_idle_sessions_the_stress_timeout_and_only_its_own(upstream, relay_factory):
    # With 10 connections an address and one NOOP every limits.timeout - 1 s (each restarting the idle time),
    # five addresses held every slot of the listener (50) for hours. As Postfix's smtpd_timeout under
    # stress: at 80 % of its slots (4 of 5 here), its idle sessions get limits.stress_timeout. The relay
    # listener has its own slots, and is not under stress: its idle client is left alone.
    relay = start_intake(relay_factory, upstream, intake={"max_connections": 5, "max_connections_per_client": 5},
                         limits={"timeout": 60, "stress_timeout": 1})
    ours = RawSMTP(relay.host, relay.port)
    assert ours.cmd("EHLO client.test")[0] == 250
    held = []
    for source in ("127.0.0.3", "127.0.0.4", "127.0.0.5"):
        c = RawSMTP(relay.host, relay.intake_port, source=source)
        assert c.cmd("EHLO mta.example")[0] == 250
        held.append(c)
    time.sleep(2)  # past the stress timeout, below the mark: nobody is cut
    assert [c.cmd("NOOP")[0] for c in held] == [250, 250, 250]
    held.append(RawSMTP(relay.host, relay.intake_port, source="127.0.0.6"))  # the 4th: the mark
    ready, _, _ = select.select([c.sock for c in held], [], [], 20)  # the first idle past the stress timeout
    assert len(ready) >= 1, "nobody was cut: the listener stayed full of idle sessions"
    (cut,) = [c for c in held if c.sock is ready[0]]
    assert cut.reply()[1] == "421 4.4.2 relay.test Idle for more than 1 s while this relay is busy, closing the connection"
    assert cut.closed()
    # One cut is enough: the listener is below the mark again, and the others are left their limits.timeout.
    assert [c.cmd("NOOP")[0] for c in held if c is not cut] == [250, 250, 250]
    assert ours.cmd("NOOP")[0] == 250  # idle as long on the relay listener, which is not busy
    for c in (*held, ours):
        c.close()
    counters = relay.server.metrics.counters
    assert counters[("relay_connections_closed_total", (("limit", "stress_timeout"),))] == 1
