"""The end of a transaction, through a running relay: nothing of it may be lost to a client that hangs
up, half-closes, or to a reload or shutdown, and no client waits on the upstream for what is ours."""

from __future__ import annotations

import logging
import socket
import threading

from tests.support.relay_proc import RunningRelay, write_config
from tests.support.smtp_client import RawSMTP

BODY = b"From: a@sender.test\r\nTo: b@example.com\r\nSubject: hello\r\nMessage-ID: <m1@sender.test>\r\n\r\nHi.\r\n"


def client(relay) -> RawSMTP:
    c = RawSMTP(relay.host, relay.port)
    assert c.cmd("EHLO client.test")[0] == 250
    return c


def kinds(events) -> list[str]:
    return sorted(e["kind"] for e in events)


def test_quit_without_waiting_for_221_keeps_every_event(relay, upstream):
    upstream.rset_delay = 1.0  # the upstream RSET is still under way when the client is gone
    c = client(relay)
    assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
    assert c.cmd("RCPT TO:<nosuchuser@gmail.test>")[0] == 550
    c.send("QUIT\r\n")
    c.close()
    assert kinds(relay.events(wait_for=2)) == ["bounce_listed", "rejected"]


def test_rset_quit_and_ehlo_do_not_wait_for_the_upstream_rset(upstream, relay_factory):
    # An upstream RSET that takes 20 s (longer than this client waits) must not hold our replies.
    relay = relay_factory(upstream.port, upstream={"command_timeout": 30})
    upstream.rset_delay = 20.0
    with client(relay) as c:
        for command, code in (("RSET", 250), ("EHLO client.test", 250), ("QUIT", 221)):
            assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
            assert c.cmd("RCPT TO:<b@example.com>")[0] == 250
            assert c.cmd(command)[0] == code
    # The RSETs still waiting upstream end now, not in 20 s: the relay's stop (teardown) waits for them.
    upstream.drop_connections()


def test_a_client_half_close_gets_its_final_reply_and_one_delivery(relay, upstream, caplog):
    caplog.set_level(logging.WARNING)
    upstream.slow_seconds = 1.0  # the final reply comes after the client shut its side
    c = client(relay)
    assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
    assert c.cmd("RCPT TO:<slowdata@example.com>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(BODY + b".\r\nQUIT\r\n")  # pipelined (RFC 2920), and nothing more to say
    c.sock.shutdown(socket.SHUT_WR)
    assert c.reply()[0] == 250
    assert c.reply()[0] == 221  # the QUIT sent before the end of input is answered too
    assert c.closed()
    c.close()
    assert len(upstream.wait_for_messages(1)) == 1
    # The client's end of input after the reply is the session's end, not an error in a command.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_shutdown_writes_the_events_of_transactions_it_cuts_off(tmp_path, upstream, monkeypatch):
    import relay.server

    monkeypatch.setattr(relay.server, "DRAIN_SECONDS", 0.5)
    running = RunningRelay(write_config(tmp_path, upstream.port))
    upstream.rset_delay = 2.0
    c = client(running)
    assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
    assert c.cmd("RCPT TO:<nosuchuser@gmail.test>")[0] == 550
    running.stop()  # the client is mid-transaction: told 421 after the drain, its events still written
    assert c.reply() == (421, "421 4.3.2 Relay shutting down, try again later")
    c.close()
    # ... and the cut itself is recorded, as a deadline's 421 is (RelayService.closing): the transaction
    # deferred (no recipient of it was accepted, so the event names none).
    events = running.events()
    assert kinds(events) == ["bounce_listed", "deferred", "rejected"]
    deferred = next(e for e in events if e["kind"] == "deferred")
    assert (deferred["stage"], deferred["recipient"], deferred["reply"]["code"]) == ("rcpt", "", 421)


def test_reload_lets_sessions_under_way_finish_with_their_steps(tmp_path, upstream):
    # SPF checks of 12 domains wait on a DNS server that never answers; a reload while they are queued
    # in the old pipeline's 8 threads must not cut them off: every client gets a reply, every message goes.
    silent_dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent_dns.bind(("127.0.0.1", 0))
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "domains.yaml").write_text('"*":\n  spf: warn\n')
    running = RunningRelay(write_config(
        tmp_path, upstream.port, egress_ips=["192.0.2.25"], policies=str(policies),
        resolver={"nameservers": [f"127.0.0.1:{silent_dns.getsockname()[1]}"], "timeout": 1}))
    results: list = []

    def session(i: int) -> None:
        try:
            with client(running) as c:
                replies = [c.cmd(f"MAIL FROM:<a@d{i}.sender.test>"), c.cmd("RCPT TO:<b@example.com>"),
                           c.cmd("DATA")]
                c.send(BODY + b".\r\n")
                replies.append(c.reply())
                results.append([code for code, _ in replies])
        except Exception as exc:  # a connection closed without a reply
            results.append(repr(exc))

    threads = [threading.Thread(target=session, args=(i,)) for i in range(12)]
    try:
        for t in threads:
            t.start()
        threading.Event().wait(0.5)
        assert running.reload()
        for t in threads:
            t.join(60)
        assert results == [[250, 250, 354, 250]] * 12
        assert len(upstream.wait_for_messages(12)) == 12
    finally:
        running.stop()
        silent_dns.close()


# --- the end of DATA, on the service itself: what overlaps with the upstream's 354 ---------------

class _Outcomes:
    """What RelayService asks of its outcomes at the end of DATA, recorded."""

    def __init__(self):
        self.refused_with: list = []

    async def refused(self, txn, session, stage, recipients, decision):
        self.refused_with.append((stage, decision.reply.code))

    def finish(self, txn):
        pass


def _service(step):
    from types import SimpleNamespace

    from relay.pipeline import Pipeline
    from relay.service import RelayService

    settings = SimpleNamespace(clients=SimpleNamespace(trusted=lambda ip: True, users_file=None),
                               limits=SimpleNamespace(max_recipients=10), hostname="relay.test")
    return RelayService(settings, None, Pipeline([step]), _Outcomes())


class _UpstreamLike:
    """A last step that answers MAIL and RCPT at once, holds DATA until told (the upstream's 354),
    and records what happened in which order."""

    name = "upstream-like"

    def __init__(self, data_reply=None):
        from relay.pipeline import Step

        self.seen: list[str] = []
        self.go_ahead = None  # asyncio.Event, made on the loop
        self.data_reply = data_reply  # a Reply refusing DATA, or None for 354
        self._base = Step()

    def __getattr__(self, hook):  # every other hook: the base step's no-op
        return getattr(self._base, hook)

    async def on_mail(self, txn):
        from relay.decision import Reply, accept
        return accept(Reply.make(250, "2.1.0", "OK"))

    async def on_rcpt(self, txn, rcpt):
        from relay.decision import Reply, accept
        return accept(Reply.make(250, "2.1.5", "OK"))

    async def on_data_start(self, txn):
        from relay.decision import CONTINUE, Decision, Verdict
        self.seen.append("DATA sent")
        if self.data_reply is not None:
            return Decision(Verdict.REJECT, self.data_reply)
        await self.go_ahead.wait()
        self.seen.append("354")
        return CONTINUE

    def prepare_data(self, txn, message):
        self.seen.append("prepared " + ("CRLF" if b"\n" not in message.original.replace(b"\r\n", b"") else "raw"))
        self.go_ahead.set()  # the 354 comes while the message is being made ready

    async def on_data(self, txn, message):
        from relay.decision import Reply, accept
        self.seen.append("on_data")
        return accept(Reply.make(250, "2.0.0", "queued"))


async def _send(service, content: bytes):
    session, refusal = await service.connect("127.0.0.1", 1)
    assert refusal is None
    assert (await service.mail(session, "a@sender.test", [])).code == 250
    assert (await service.rcpt(session, "b@example.com", [])).code == 250
    return await service.data(session, content)


async def test_data_goes_upstream_before_the_message_is_made_ready():
    # A large message's line endings and DKIM body hash take tens of milliseconds: they are done while
    # the upstream's 354 is on its way, not after it, and the steps' on_data still comes after the 354.
    import asyncio

    from relay.service import HEAD_START_BYTES

    step = _UpstreamLike()
    step.go_ahead = asyncio.Event()
    large = b"Subject: s\n\n" + b"bare LF\n" * (HEAD_START_BYTES // 8 + 1)
    reply = await asyncio.wait_for(_send(_service(step), large), 10)  # hangs if not
    assert reply.code == 250
    assert step.seen == ["DATA sent", "prepared CRLF", "354", "on_data"]


async def test_a_small_message_is_made_ready_after_the_354_without_a_head_start():
    # Below HEAD_START_BYTES nothing is worth overlapping with the wait for the 354 (and the task that
    # would overlap it costs more than it saves): DATA still goes first, then the message is made
    # ready (CRLF line endings) and the steps' on_data get it.
    import asyncio

    step = _UpstreamLike()
    step.go_ahead = asyncio.Event()
    step.go_ahead.set()
    seen = []
    original_on_data = step.on_data

    async def on_data(txn, message):
        seen.append(bytes(message.original))
        return await original_on_data(txn, message)

    step.on_data = on_data
    reply = await asyncio.wait_for(_send(_service(step), b"Subject: s\n\nbare LF\n"), 10)
    assert reply.code == 250
    assert step.seen == ["DATA sent", "354", "on_data"]
    assert seen == [b"Subject: s\r\n\r\nbare LF\r\n"]


async def test_data_refused_upstream_prepares_nothing_and_is_the_reply():
    from relay.decision import Reply

    step = _UpstreamLike(data_reply=Reply.make(554, "5.7.1", "no thanks", source="upstream"))
    service = _service(step)
    reply = await _send(service, b"Subject: s\r\n\r\nhi\r\n")
    assert reply.code == 554 and step.seen == ["DATA sent"]
    assert service.outcomes.refused_with == [("data", 554)]


# -- addresses: RFC 5321 4.1.2 quoted local parts, RFC 6531 SMTPUTF8 --------------------------------

def test_a_quoted_local_part_with_a_space_is_a_mailbox(relay, upstream):
    # RFC 5321 4.1.2: Local-part = Dot-string / Quoted-string; qtextSMTP includes SP.
    with client(relay) as c:
        assert c.cmd('MAIL FROM:<"john doe"@sender.test>')[0] == 250
        assert c.cmd('RCPT TO:<"jane doe"@example.com>')[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(BODY + b".\r\n")
        assert c.reply()[0] == 250
    (msg,) = upstream.wait_for_messages(1)
    assert msg.mail_from == '"john doe"@sender.test' and msg.rcpt_tos == ['"jane doe"@example.com']


def test_a_non_ascii_address_without_smtputf8_is_refused_5_6_7(relay, upstream):
    # RFC 6531 3.4: non-ASCII in a path only in a transaction whose MAIL FROM says SMTPUTF8.
    with client(relay) as c:
        code, text = c.cmd("MAIL FROM:<jörg@sender.test>".encode())
        assert text.startswith("553 5.6.7 Non-ASCII sender address"), text
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        for rcpt in ("jörg@example.com", "b@bücher.example"):
            code, text = c.cmd(f"RCPT TO:<{rcpt}>".encode())
            assert text.startswith("553 5.6.7 Non-ASCII recipient address"), text
        assert c.cmd("RCPT TO:<b@example.com>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(BODY + b".\r\n")
        assert c.reply()[0] == 250
    (msg,) = upstream.wait_for_messages(1)
    assert msg.mail_from == "a@sender.test" and msg.rcpt_tos == ["b@example.com"]
    assert all(cmd.isascii() for cmd in upstream.commands)


def test_a_client_that_half_closes_after_a_command_gets_its_reply_and_no_error_is_logged(relay, upstream, caplog):
    # The client's end of input while its command waits on the upstream: the reply still goes, then the
    # session ends; the end of input after it is not "an error in an SMTP command" (and no 451 is written).
    caplog.set_level(logging.WARNING)
    for tail in (b"", b"NOOP"):  # nothing more, or a last command cut off without its CRLF
        c = client(relay)
        c.send(b"MAIL FROM:<a@sender.test>\r\n" + tail)
        c.sock.shutdown(socket.SHUT_WR)
        assert c.reply()[0] == 250
        assert c.closed()
        assert c.buf == b""
        c.close()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_address_problem_takes_no_quote_outside_a_quoted_local_part():
    # The second line of defence behind smtp.path_problem: its dot-string branch took a leading '"',
    # so '"a@b.test"' (a quote never closed, as aiosmtpd's parser hands it on) passed with
    # 'b.test"' for a domain. RFC 5321 4.1.2: atext and domains hold no DQUOTE; a Quoted-string
    # may be empty.
    from relay.service import address_problem

    for address in ('"a@b.test"', 'a"b@b.test', 'a@b.test"', '"h"i@b.test'):
        problem = address_problem(address)
        assert problem is not None and problem.code == 553 and str(problem.enhanced) == "5.1.3", address
    for address in ('""@b.test', '"john doe"@b.test', '"a\\"b"@b.test', '"e@f"@b.test', 'a@b.test'):
        assert address_problem(address) is None, address


def test_a_reload_reads_config_and_policies_while_sessions_are_served(relay, monkeypatch):
    # review-20 F4: a SIGHUP read the config, every policy file and every DKIM key on the event loop:
    # every session waited (1-2 s with 20 keys, 41 s with 1,000). The read is held open here (a seam
    # in the real server: the reading waits for the test) while a client is served.
    import asyncio

    import relay.server as server_module

    reading, release = threading.Event(), threading.Event()
    real = server_module.load_policies

    def held_open(settings):
        reading.set()
        release.wait(30)
        return real(settings)

    monkeypatch.setattr(server_module, "load_policies", held_open)
    reloaded = asyncio.run_coroutine_threadsafe(relay.server.reload(), relay.loop)
    try:
        assert reading.wait(10)
        c = RawSMTP(relay.host, relay.port, timeout=5)
        try:
            assert c.cmd("EHLO client.test")[0] == 250
            assert c.cmd("NOOP")[0] == 250
        finally:
            c.close()
    finally:
        release.set()
    assert reloaded.result(30) is True
