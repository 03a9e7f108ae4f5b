"""Milter mode with a real Postfix (a private instance, as bench/ runs it) in front of us.

Postfix receives over SMTP, asks the relay's milter (over TCP and over a UNIX socket), and
delivers to smtp-sink, which keeps every message; Mail::DKIM checks the signatures.
"""

from __future__ import annotations

import shutil
import smtplib
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from relay.dkim import generate_key, private_key_pem, public_key_record
from tests.support.dkim_verify import mail_dkim
from tests.support.peers import PostfixInstance, Sink
from tests.support.relay_proc import RunningRelay, write_config

REPO = Path(__file__).resolve().parent.parent

SIGNED = ("From: Support <support@signed.test>\r\nTo: b@example.com\r\nSubject: Gr\u00fc\u00dfe\r\n"
          "Message-ID: <m1@signed.test>\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n"
          "X-Folded: first part\r\n\tsecond part\r\n\r\n"
          ".leading dot\r\nBody line\r\n").encode()


def sink_messages(sink: Sink, count: int, timeout: float = 60) -> list[bytes]:
    # The counter moves at the end of each message; a dump file exists (partly written) before that.
    sink.wait_for(count, timeout)
    files = sorted(p for p in sink.dump_dir.iterdir() if p.is_file())
    # smtp-sink writes LF line ends and prepends its own X-* and Received fields (never signed).
    return [p.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for p in files]


@pytest.fixture
def policies(tmp_path, dns):
    key = generate_key("rsa", 2048)
    key_path = tmp_path / "signed.test.s1.key"
    key_path.write_bytes(private_key_pem(key))
    key_path.chmod(0o600)
    dns.zone.txt("s1._domainkey.signed.test", public_key_record(key))
    directory = tmp_path / "policies"
    shutil.copytree(REPO / "policies", directory)
    (directory / "domains.yaml").write_text(yaml.safe_dump({
        "signed.test": {"dkim": [{"selector": "s1", "key": str(key_path)}]},
    }))
    return directory


class MilterRig:
    """Sink <- Postfix <- client; Postfix -> the relay's milter."""

    def __init__(self, tmp_path: Path, dns, policies: Path, socket: str, mode: str = "outbound",
                 non_smtpd: bool = False, **overrides):
        self.postfix = None
        self.relay = None
        self.sink = None
        self.root = None
        self.non_smtpd = non_smtpd  # milter.non_smtpd_listen, and Postfix's non_smtpd_milters pointed at it
        try:
            self._start(tmp_path, dns, policies, socket, mode, overrides)
        except BaseException:
            self.stop()  # a failed start leaves no smtp-sink, relay or Postfix running, nor its directory
            raise

    def _start(self, tmp_path, dns, policies, socket, mode, overrides) -> None:
        # Not under pytest's base temp dir: every pytest run started meanwhile (other suites on
        # this machine) resets that one to 0700, and Postfix's users and smtp-sink (as nobody)
        # could no longer reach it.
        self.root = Path(tempfile.mkdtemp(prefix="relay-milter-postfix-"))
        self.root.chmod(0o755)
        self.sink = Sink(self.root, dump=True)
        root = self.root / "postfix"
        if socket == "unix":
            # The instance makes its root traversable for Postfix's users (after the relay opened its
            # store, which keeps its own directory private); the socket lives there.
            root.mkdir()
            milter = {"listen": f"unix:{root / 'milter.sock'}", "socket_mode": "0660", "socket_group": "postfix"}
        else:
            milter = {"listen": "127.0.0.1:0"}
        milter["mode"] = mode
        if self.non_smtpd:
            milter["non_smtpd_listen"] = "127.0.0.1:0"
        config = write_config(tmp_path, 1, listen=[], upstream=None, milter=milter, policies=str(policies),
                              resolver={"nameservers": [dns.nameserver]}, **overrides)
        self.relay = RunningRelay(config)
        self.postfix = PostfixInstance(root, sink_port=self.sink.port, milter_port=self.relay.milter_port,
                                       max_size=10 << 20,
                                       milter=f"unix:{root / 'milter.sock'}" if socket == "unix" else None,
                                       non_smtpd_milter=f"inet:127.0.0.1:{self.relay.milter_non_smtpd_port}"
                                       if self.non_smtpd else None)
        self.postfix.start()

    def stop(self) -> None:
        try:
            if self.postfix is not None:
                self.postfix.stop()
        finally:
            try:
                if self.relay is not None:
                    self.relay.stop()
            finally:
                if self.sink is not None:
                    self.sink.stop()
                if self.root is not None:
                    shutil.rmtree(self.root, ignore_errors=True)

    def smtp(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.postfix.port, timeout=60)

    def sendmail(self, sender: str, recipients: list[str], message: bytes) -> subprocess.CompletedProcess:
        """Postfix's own sendmail(1) (postdrop -> maildrop -> pickup -> cleanup, non_smtpd_milters)."""
        return subprocess.run(["sendmail", "-C", str(self.postfix.etc), "-f", sender, "--", *recipients],
                              input=message, capture_output=True, timeout=60)

    def wait_queue_empty(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while self.postfix.queue_count() and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.postfix.queue_count()

    def maillog(self) -> str:
        return self.postfix.maillog.read_text(errors="replace") if self.postfix.maillog.is_file() else ""


@pytest.fixture(params=["tcp", "unix"])
def rig(request, tmp_path, dns, policies):
    r = MilterRig(tmp_path, dns, policies, request.param)
    yield r
    r.stop()


def test_bounce_listed_recipient_is_refused_by_postfix_at_rcpt_with_our_text(rig):
    rig.relay.call(rig.relay.server.resources.store.add(
        "gone@example.com", category="unknown_recipient",
        reply="550-5.1.1 The email account that you tried to reach does not exist.", rule="gmail-nosuchuser"))
    with rig.smtp() as s:
        s.ehlo("client.test")
        assert s.mail("a@sender.test")[0] == 250
        code, text = s.rcpt("gone@example.com")
        assert code == 550, text
        text = text.decode()
        assert text.startswith("5.1.1 <gone@example.com> is on this relay's bounce list since"), text
        assert "Original reply: 550 5.1.1 The email account that you tried to reach does not exist." in text
        # The other recipient of the same transaction still goes through.
        assert s.rcpt("ok@example.com")[0] == 250
        assert s.data(b"Subject: t\r\n\r\nhello\r\n")[0] == 250
    events = rig.relay.events(wait_for=1)
    (event,) = [e for e in events if e["kind"] == "suppressed"]
    assert event["stage"] == "rcpt" and event["recipient"] == "gone@example.com"
    assert event["reply"]["code"] == 550 and event["reply"]["enhanced"] == "5.1.1"
    assert event["sender"] == "a@sender.test"
    (msg,) = sink_messages(rig.sink, 1)
    assert b"hello" in msg


def test_message_from_a_signing_domain_leaves_postfix_signed(rig, dns):
    with rig.smtp() as s:
        s.sendmail("bounces@signed.test", ["b@example.com"], SIGNED)
    (msg,) = sink_messages(rig.sink, 1)
    assert b"DKIM-Signature: v=1; a=rsa-sha256" in msg
    assert b"d=signed.test" in msg
    result = mail_dkim(msg, dns.port)
    assert result.all_pass, result


def test_several_messages_on_one_session_are_each_signed_or_not(rig, dns):
    with rig.smtp() as s:
        s.sendmail("bounces@signed.test", ["b@example.com"], SIGNED.replace(b"<m1@", b"<m2@"))
        s.sendmail("a@other.test", ["b@example.com"], b"From: a@other.test\r\nSubject: x\r\n\r\nplain\r\n")
        s.sendmail("bounces@signed.test", ["c@example.com"], SIGNED.replace(b"<m1@", b"<m3@"))
    msgs = sink_messages(rig.sink, 3)
    assert len(msgs) == 3
    signed = [m for m in msgs if b"DKIM-Signature:" in m]
    assert len(signed) == 2 and all(mail_dkim(m, dns.port).all_pass for m in signed)
    assert [m for m in msgs if b"plain" in m and b"DKIM-Signature:" not in m]


@pytest.fixture
def inbound(tmp_path, dns, policies):
    r = MilterRig(tmp_path, dns, policies, "tcp", mode="inbound", clients={"networks": ["10.0.0.0/8"]})
    yield r
    r.stop()


def test_inbound_mail_gets_authentication_results(inbound, dns):
    from relay.dkim import DkimKey, load_private_key, sign

    dns.zone.txt("sender.example", "v=spf1 ip4:127.0.0.1 -all")
    key_pem = (inbound.relay.settings.policies / "domains.yaml")  # the signing key of signed.test
    key_path = Path(yaml.safe_load(key_pem.read_text())["signed.test"]["dkim"][0]["key"])
    key = DkimKey("s1", load_private_key(key_path.read_bytes()))
    signed = sign(SIGNED, key, "signed.test") + SIGNED
    forged = b"Authentication-Results: relay.test; dkim=pass header.d=evil.test\r\n"
    with inbound.smtp() as s:
        s.sendmail("someone@sender.example", ["b@example.com"], forged + signed)
    (msg,) = sink_messages(inbound.sink, 1)
    headers = msg.split(b"\r\n\r\n", 1)[0].decode()
    ar = [line for line in headers.replace("\r\n\t", " ").replace("\r\n ", " ").split("\r\n")
          if line.startswith("Authentication-Results: relay.test")]
    assert len(ar) == 1, headers  # ours; the forged one claiming our name was removed (RFC 8601 5)
    assert "dkim=pass" in ar[0] and "header.d=signed.test" in ar[0], ar[0]
    assert "spf=pass" in ar[0] and "smtp.mailfrom=sender.example" in ar[0], ar[0]
    assert "evil.test" not in headers


# -- non_smtpd_milters: mail submitted with sendmail(1) -------------------------------------------------

SUBMITTED = (b"From: App <app@sender.test>\nTo: gone@example.com, ok@example.com\nSubject: report\n"
             b"Message-ID: <sub1@sender.test>\n\nsubmitted with sendmail(1)\n")


@pytest.fixture
def non_smtpd(tmp_path, dns, policies):
    r = MilterRig(tmp_path, dns, policies, "tcp", non_smtpd=True)
    r.relay.call(r.relay.server.resources.store.add(
        "gone@example.com", category="unknown_recipient",
        reply="550-5.1.1 The email account that you tried to reach does not exist.", rule="gmail-nosuchuser"))
    yield r
    r.stop()


def _rcpts(msg: bytes) -> list[str]:
    """The recipients smtp-sink was given (its X-Rcpt-Args fields)."""
    import re
    head = msg.split(b"\r\n\r\n", 1)[0]
    return [r.decode() for r in re.findall(rb"X-Rcpt-Args: <([^>]*)>", head)]


def test_sendmail_submission_to_a_listed_and_a_good_recipient_delivers_the_good_one(non_smtpd):
    # Pointed at milter.listen, Postfix held this whole message in its maildrop ("milter configuration
    # error: can't reject recipient in non-smtpd(8) submission"), the good recipient's copy included.
    done = non_smtpd.sendmail("app@sender.test", ["gone@example.com", "ok@example.com"], SUBMITTED)
    assert done.returncode == 0, done.stderr
    (msg,) = sink_messages(non_smtpd.sink, 1)
    assert b"submitted with sendmail(1)" in msg
    assert _rcpts(msg) == ["ok@example.com"], msg[:600]
    assert non_smtpd.wait_queue_empty() == 0, non_smtpd.maillog()  # nothing stays in the maildrop
    assert "can't reject recipient" not in non_smtpd.maillog()
    (event,) = [e for e in non_smtpd.relay.events(wait_for=1) if e["kind"] == "suppressed"]
    assert event["recipient"] == "gone@example.com" and event["milter_action"] == "recipient_removed"
    assert event["reply"]["enhanced"] == "5.1.1" and event["sender"] == "app@sender.test"
    assert event["message_id"] == "<sub1@sender.test>"
    assert event["queue_id"] and event["queue_id"] in non_smtpd.maillog()  # matches Postfix's log lines


def test_sendmail_submission_to_listed_recipients_only_is_returned_to_its_sender(non_smtpd):
    done = non_smtpd.sendmail("app@sender.test", ["gone@example.com"], SUBMITTED)
    assert done.returncode == 0, done.stderr
    # Postfix returns the message to its sender (here also relayed to the sink) with our reason: not
    # held in the maildrop, not dropped without a word.
    (bounce,) = sink_messages(non_smtpd.sink, 1)
    assert _rcpts(bounce) == ["app@sender.test"], bounce[:600]
    text = bounce.decode(errors="replace")
    assert "is on this relay's bounce list" in text and "gone@example.com" in text, text[:3000]
    assert non_smtpd.wait_queue_empty() == 0, non_smtpd.maillog()
    (event,) = [e for e in non_smtpd.relay.events(wait_for=1) if e["kind"] == "suppressed"]
    assert event["recipient"] == "gone@example.com" and event["milter_action"] == "message_refused"


def test_smtp_mail_on_the_same_postfix_is_still_refused_at_rcpt(non_smtpd):
    with non_smtpd.smtp() as s:
        s.ehlo("client.test")
        assert s.mail("a@sender.test")[0] == 250
        code, text = s.rcpt("gone@example.com")
        assert code == 550 and b"is on this relay's bounce list" in text, text
        assert s.rcpt("ok@example.com")[0] == 250
        assert s.data(b"Subject: t\r\n\r\nhello\r\n")[0] == 250
    (msg,) = sink_messages(non_smtpd.sink, 1)
    assert _rcpts(msg) == ["ok@example.com"]
    (event,) = [e for e in non_smtpd.relay.events(wait_for=1) if e["kind"] == "suppressed"]
    assert event["stage"] == "rcpt" and "milter_action" not in event


FORGED = (b"From: CEO <ceo@signed.test>\r\nTo: b@example.com\r\nSubject: wire the money\r\n"
          b"Message-ID: <forged1@evil.test>\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n\r\npay now\r\n")


def test_an_outsiders_forgery_of_our_domain_leaves_postfix_unsigned_and_ours_signed(tmp_path, dns, policies):
    # review26 F1: smtpd_milters cover port 25, where the world delivers. The test client on 127.0.0.1
    # is outside clients.networks here and does not log in: it stands for a host on the internet, and
    # its From: ceo@signed.test left Postfix with a valid signature of signed.test. It passes unsigned
    # (not refused: inbound mail goes through the same smtpd). A sendmail(1) submission on the
    # non_smtpd_listen socket, from the same host, is ours and is signed.
    rig = MilterRig(tmp_path, dns, policies, "tcp", non_smtpd=True, clients={"networks": ["192.0.2.0/24"]})
    try:
        with rig.smtp() as s:
            s.sendmail("anyone@evil.test", ["b@example.com"], FORGED)
        (forged,) = sink_messages(rig.sink, 1)
        assert b"wire the money" in forged
        assert b"DKIM-Signature" not in forged, forged[:900]
        assert mail_dkim(forged, dns.port).overall != "pass"
        done = rig.sendmail("app@signed.test", ["c@example.com"],
                            FORGED.replace(b"<forged1@evil.test>", b"<local1@signed.test>").replace(b"\r\n", b"\n"))
        assert done.returncode == 0, done.stderr
        local = [m for m in sink_messages(rig.sink, 2) if b"<local1@signed.test>" in m]
        assert len(local) == 1 and b"DKIM-Signature" in local[0], local
        result = mail_dkim(local[0], dns.port)
        assert result.all_pass, result
    finally:
        rig.stop()


def test_a_client_inside_clients_networks_is_signed_through_postfix(tmp_path, dns, policies):
    rig = MilterRig(tmp_path, dns, policies, "tcp", clients={"networks": ["192.0.2.0/24", "127.0.0.1/32"]})
    try:
        with rig.smtp() as s:
            s.sendmail("ceo@signed.test", ["b@example.com"], FORGED)
        (msg,) = sink_messages(rig.sink, 1)
        result = mail_dkim(msg, dns.port)
        assert result.all_pass and result.overall == "pass", result
    finally:
        rig.stop()


@pytest.mark.parametrize("rcpt", ["go\\ne@example.com", "\\g\\o\\n\\e@Example.COM"])
def test_a_listed_address_spelled_with_quoted_pairs_is_refused_through_postfix(tmp_path, dns, policies, rcpt):
    # Postfix reads a backslash outside quotes as quoting the next character and delivered
    # RCPT TO:<go\ne@example.com> to the listed gone@example.com; the milter could not read the address
    # and let it through (review26 F3).
    rig = MilterRig(tmp_path, dns, policies, "tcp")
    try:
        rig.relay.call(rig.relay.server.resources.store.add("gone@example.com", category="unknown_recipient",
                                                             reply="550 5.1.1 no such user", rule="test"))
        with rig.smtp() as s:
            s.ehlo("client.test")
            assert s.mail("a@sender.test")[0] == 250
            code, text = s.rcpt(f"<{rcpt}>")
            assert code == 550, text
            assert text.decode().startswith("5.1.1 <gone@example.com> is on this relay's bounce list since"), text
            assert s.rcpt("ok@example.com")[0] == 250
            assert s.data(b"Subject: t\r\n\r\nhello\r\n")[0] == 250
        (msg,) = sink_messages(rig.sink, 1)
        assert b"X-Rcpt-Args: <ok@example.com>" in msg and b"gone@" not in msg.split(b"\r\n\r\n")[0]
    finally:
        rig.stop()


def test_an_address_the_milter_cannot_read_is_refused_precisely_through_postfix(tmp_path, dns, policies):
    # What cannot be read cannot be checked against the list: refused (553 5.1.3, the client's syntax),
    # never let through and never listed. Bare local parts (postmaster) are the MTA's own business.
    rig = MilterRig(tmp_path, dns, policies, "tcp")
    try:
        with rig.smtp() as s:
            s.ehlo("client.test")
            assert s.mail("a@sender.test")[0] == 250
            code, text = s.rcpt("<gone\\@example.com>")
            assert code == 553, text
            assert text.decode().startswith("5.1.3 Recipient address <gone\\@example.com> cannot be read, so this "
                                            "relay cannot tell whether it is on its bounce list"), text
        events = [e for e in rig.relay.events(wait_for=1) if e.get("recipient") == "gone\\@example.com"]
        assert [e["kind"] for e in events] == ["policy_rejected"], events
        assert events[0]["classification"]["category"] == "syntax_error"
        assert rig.relay.call(rig.relay.server.resources.store.count()) == 0
    finally:
        rig.stop()


# -- a slow DATA phase (review30 D1) ----------------------------------------------------------------

def _slow_session(port: int, sender: bytes, rcpt: bytes, message: bytes, pause: float, pieces: int) -> bytes:
    """An SMTP client whose DATA takes `pieces` pauses of `pause` seconds (each well within Postfix's
    smtpd_timeout); the reply to its final dot."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=60) as s, s.makefile("rwb") as f:
        def reply() -> bytes:
            lines = []
            while True:
                line = f.readline()
                lines.append(line)
                if line[3:4] != b"-":
                    return b"".join(lines)

        reply()
        for command in (b"EHLO client.test", b"MAIL FROM:<%s>" % sender, b"RCPT TO:<%s>" % rcpt, b"DATA"):
            f.write(command + b"\r\n")
            f.flush()
            assert reply()[:1] in (b"2", b"3")
        head, body = message.split(b"\r\n\r\n", 1)
        f.write(head + b"\r\n\r\n")
        f.flush()
        for i in range(pieces):
            time.sleep(pause)
            f.write(b"line %d\r\n" % i)
            f.flush()
        f.write(body + b".\r\n")
        f.flush()
        end = reply()
        f.write(b"QUIT\r\n")
        f.flush()
        return end


def test_a_data_phase_longer_than_limits_timeout_is_signed_not_tempfailed(tmp_path, dns, policies):
    # Postfix says nothing to the milter between RCPT and the end of the message (SMFIP_NODATA): the
    # milter closed the connection after limits.timeout of that silence, and the client's final dot got
    # 451 4.7.1 (milter_default_action = tempfail), for ever for a long message on a slow link.
    rig = MilterRig(tmp_path, dns, policies, "tcp", limits={"timeout": 2})
    try:
        end = _slow_session(rig.postfix.port, b"bounces@signed.test", b"b@example.com", SIGNED, pause=1.5, pieces=3)
        assert end.startswith(b"250"), (end, rig.maillog()[-2000:])
        (msg,) = sink_messages(rig.sink, 1)
        assert b"line 2" in msg
        result = mail_dkim(msg, dns.port)
        assert result.all_pass, result
    finally:
        rig.stop()


def test_an_inbound_slow_data_phase_still_removes_a_forged_authentication_results(tmp_path, dns, policies):
    # With milter_default_action = accept (the advice for an inbound milter), a slow DATA phase had the
    # message delivered without the milter: the sender's forged Authentication-Results in our name
    # reached the mailbox (RFC 8601 5: it must be removed).
    rig = MilterRig(tmp_path, dns, policies, "tcp", mode="inbound", clients={"networks": ["10.0.0.0/8"]},
                    limits={"timeout": 2})
    try:
        rig.postfix._postconf({"milter_default_action": "accept"})
        rig.postfix._postfix("reload")
        forged = (b"Authentication-Results: relay.test; dkim=pass header.d=bank.example\r\n"
                  b"From: ceo@bank.example\r\nSubject: pay\r\n\r\npay now\r\n")
        end = _slow_session(rig.postfix.port, b"someone@sender.example", b"b@example.com", forged,
                            pause=1.5, pieces=3)
        assert end.startswith(b"250"), end
        (msg,) = sink_messages(rig.sink, 1)
        headers = msg.split(b"\r\n\r\n", 1)[0]
        assert b"header.d=bank.example" not in headers, headers
        assert b"Authentication-Results: relay.test;" in headers, headers  # ours
    finally:
        rig.stop()
