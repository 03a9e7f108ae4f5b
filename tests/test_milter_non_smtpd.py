"""milter.non_smtpd_listen: the socket for Postfix's non_smtpd_milters (mail submitted with sendmail(1)).

Postfix cannot refuse one recipient of such mail (cleanup defers the whole message: "milter configuration
error: can't reject recipient in non-smtpd(8) submission"), so on this socket a bounce-listed recipient is
not refused at RCPT but removed at end of message (SMFIR_DELRCPT), with the same `suppressed` event; a
message none of whose recipients is left is refused at end of message. milter.listen is unchanged. These
tests speak the MTA's side over a real loopback socket to a running relay; tests/test_milter_postfix.py
does the same through a real Postfix and sendmail(1).
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from relay.milter import codec
from tests.support.milter_client import MilterClient, pack, z
from tests.test_milter import milter_factory, miltertest, signing_policies  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((REPO / "relay" / "schema" / "event.schema.json").read_text())

# What Postfix's cleanup sends for a sendmail(1) submission: its stand-in client (cleanup_milter.c).
STAND_IN_CLIENT = z("localhost") + b"4" + struct.pack("!H", 0) + z("127.0.0.1")


@pytest.fixture
def relay(milter_factory):  # noqa: F811
    r = milter_factory(non_smtpd_listen="127.0.0.1:0")
    for address in ("gone@example.com", "left@example.com"):
        r.call(r.server.resources.store.add(address, category="unknown_recipient",
                                             reply="550 5.1.1 no such user", rule="test"))
    return r


def _submission(c: MilterClient, recipients: list[str], queue_id: str = "QNS1") -> list[tuple[bytes, bytes]]:
    """One message as cleanup sends it for sendmail(1); returns the RCPT replies, then the end-of-message ones."""
    c.send(b"D", b"C" + z("j", "mta.test", "{daemon_name}", "cleanup"))
    c.send(b"C", STAND_IN_CLIENT)
    c.send(b"H", z("localhost"))
    c.send(b"D", b"M" + z("i", queue_id))
    c.send(b"M", z("<app@sender.test>"))
    replies = []
    for rcpt in recipients:
        c.send(b"R", z(f"<{rcpt}>"))
        replies.append(c.read())
    c.send(b"L", z("From", " app@sender.test"))
    c.send(b"L", z("Message-ID", " <ns1@sender.test>"))
    c.send(b"L", z("Subject", " hello"))
    c.send(b"B", b"hello\r\n")
    c.send(b"E")
    return replies + c.until_final()


def test_non_smtpd_socket_asks_to_remove_recipients_and_the_main_socket_does_not(relay):
    with MilterClient("127.0.0.1", relay.milter_non_smtpd_port) as c:
        _, actions, protocol = c.negotiate()
    assert actions & codec.SMFIF_DELRCPT
    assert not protocol & codec.SMFIP_NR_RCPT  # the bounce list still looks at every RCPT
    with MilterClient("127.0.0.1", relay.milter_port) as c:
        _, actions, _ = c.negotiate()
    assert actions == codec.SMFIF_ADDHDRS | codec.SMFIF_CHGHDRS | codec.SMFIF_SETSYMLIST  # unchanged


def test_a_listed_recipient_is_removed_at_end_of_message_and_the_others_go_on(relay):
    with MilterClient("127.0.0.1", relay.milter_non_smtpd_port) as c:
        c.negotiate()
        replies = _submission(c, ["gone@example.com", "ok@example.com"])
    # Neither recipient refused at RCPT (Postfix would hold the whole message), the listed one removed
    # by the address the MTA gave, and the message accepted for the other.
    assert replies[:2] == [(b"c", b""), (b"c", b"")], replies
    assert (b"-", b"<gone@example.com>\0") in replies[2:], replies
    assert replies[-1] == (b"c", b"")
    (event,) = relay.events(wait_for=1)
    assert event["kind"] == "suppressed" and event["recipient"] == "gone@example.com"
    assert event["stage"] == "rcpt" and event["bounce_list"] == "listed"
    assert event["milter_action"] == "recipient_removed"
    assert event["reply"]["text"].startswith("550-5.1.1 <gone@example.com> is on this relay's bounce list")
    assert event["queue_id"] == "QNS1" and event["message_id"] == "<ns1@sender.test>"
    assert event["sender"] == "app@sender.test"
    jsonschema.validate(event, SCHEMA)


def test_a_message_every_recipient_of_which_is_listed_is_refused_at_end_of_message(relay):
    with MilterClient("127.0.0.1", relay.milter_non_smtpd_port) as c:
        c.negotiate()
        replies = _submission(c, ["gone@example.com"], queue_id="QNS2")
        # Not removed (Postfix would be left with a message for nobody) and not discarded: refused, so
        # that Postfix returns it to its sender with our text.
        assert replies[0] == (b"c", b"")
        assert [cmd for cmd, _ in replies[1:]] == [b"y"], replies
        text = replies[-1][1].rstrip(b"\0").decode()
        assert text.startswith("550-5.1.1 <gone@example.com> is on this relay's bounce list since"), text
        # Two listed recipients: one line for each, under one code.
        replies = _submission(c, ["gone@example.com", "left@example.com"], queue_id="QNS3")
        text = replies[-1][1].rstrip(b"\0").decode()
        assert replies[-1][0] == b"y"
        assert text.split("\r\n") == [
            "550-5.1.1 Every recipient of this message is refused (2):",
            f"550-5.1.1 <gone@example.com> is on this relay's bounce list since {_today()} (unknown_recipient)",
            f"550 5.1.1 <left@example.com> is on this relay's bounce list since {_today()} (unknown_recipient)"]
    events = relay.events(wait_for=3)
    assert [(e["recipient"], e["queue_id"], e["milter_action"]) for e in events] == [
        ("gone@example.com", "QNS2", "message_refused"), ("gone@example.com", "QNS3", "message_refused"),
        ("left@example.com", "QNS3", "message_refused")]
    assert all(e["kind"] == "suppressed" for e in events)


def _today() -> str:
    import datetime
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


def test_an_aborted_submission_writes_no_event_for_a_recipient_it_never_removed(relay):
    with MilterClient("127.0.0.1", relay.milter_non_smtpd_port) as c:
        c.negotiate()
        c.send(b"C", STAND_IN_CLIENT)
        c.send(b"M", z("<app@sender.test>"))
        c.send(b"R", z("<gone@example.com>"))
        assert c.read() == (b"c", b"")
        c.send(b"A")
        # The next message on the connection starts clean: nothing of the first is removed from it.
        replies = _submission(c, ["ok@example.com"])
    assert not [r for r in replies if r[0] == b"-"] and replies[-1] == (b"c", b"")
    assert relay.events(timeout=1) == []


def test_an_mta_that_cannot_remove_recipients_still_hears_the_refusal_at_rcpt(relay, caplog):
    with MilterClient("127.0.0.1", relay.milter_non_smtpd_port) as c:
        _, actions, _ = c.negotiate(actions=codec.SMFIF_ADDHDRS | codec.SMFIF_CHGHDRS | codec.SMFIF_SETSYMLIST)
        assert not actions & codec.SMFIF_DELRCPT
        c.send(b"C", STAND_IN_CLIENT)
        c.send(b"M", z("<app@sender.test>"))
        c.send(b"R", z("<gone@example.com>"))
        cmd, data = c.read()
    # Never a listed address let through because it could not be removed.
    assert cmd == b"y" and data.startswith(b"550-5.1.1 <gone@example.com>")


def test_the_main_socket_still_refuses_a_listed_recipient_at_rcpt_from_the_same_stand_in_client(relay):
    # Postfix's stand-in client (localhost, 127.0.0.1, port 0) is no signal: miltertest and any local client
    # look the same. Only the socket decides.
    with MilterClient("127.0.0.1", relay.milter_port) as c:
        c.negotiate()
        c.send(b"C", STAND_IN_CLIENT)
        c.send(b"M", z("<app@sender.test>"))
        c.send(b"R", z("<gone@example.com>"))
        cmd, data = c.read()
        assert cmd == b"y" and data.startswith(b"550-5.1.1 <gone@example.com> is on this relay's bounce list")
        c.send(b"R", z("<ok@example.com>"))
        assert c.read() == (b"c", b"")
        c.send(b"L", z("From", " app@sender.test"))
        c.send(b"E")
        replies = c.until_final()
    assert not [r for r in replies if r[0] == b"-"] and replies[-1] == (b"c", b"")
    (event,) = relay.events(wait_for=1)
    assert event["kind"] == "suppressed" and "milter_action" not in event


def test_miltertest_on_the_main_socket_is_unchanged_when_non_smtpd_listen_is_set(tmp_path, relay):
    out = miltertest(tmp_path, relay.milter_port, """
check(mt.negotiate(conn, nil, nil, nil), "negotiate")
if mt.test_action(conn, SMFIF_DELRCPT) then error("DELRCPT asked for on the main socket") end
check(mt.conninfo(conn, "localhost", "127.0.0.1"), "conninfo")
check(mt.mailfrom(conn, "<a@sender.test>"), "mail")
check(mt.rcptto(conn, "<gone@example.com>"), "rcpt gone")
reply(SMFIR_REPLYCODE, "bounce-listed recipient not refused at RCPT")
""")
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stdout + out.stderr


def test_miltertest_on_the_non_smtpd_socket_sees_the_recipient_removed(tmp_path, relay):
    out = miltertest(tmp_path, relay.milter_non_smtpd_port, """
check(mt.negotiate(conn, nil, nil, nil), "negotiate")
if not mt.test_action(conn, SMFIF_DELRCPT) then error("DELRCPT not asked for") end
check(mt.conninfo(conn, "localhost", "127.0.0.1"), "conninfo")
check(mt.mailfrom(conn, "<a@sender.test>"), "mail")
check(mt.rcptto(conn, "<gone@example.com>"), "rcpt gone")
reply(SMFIR_CONTINUE, "listed recipient refused at RCPT")
check(mt.rcptto(conn, "<ok@example.com>"), "rcpt ok")
reply(SMFIR_CONTINUE, "rcpt ok")
check(mt.header(conn, "From", " a@sender.test"), "header")
check(mt.eom(conn), "eom")
reply(SMFIR_CONTINUE, "eom reply")
if not mt.eom_check(conn, MT_RCPTDELETE, "<gone@example.com>") then error("gone@ not removed") end
""")
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stdout + out.stderr


def test_delrcpt_is_encoded_as_libmilter_expects():
    assert codec.delrcpt("<a@b.example>") == pack(b"-", b"<a@b.example>\0")


def _problems(tmp_path, text: str) -> list[str]:
    from relay.config import load_settings
    from relay.errors import ConfigError
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    return [f"{p.key}: {p.why}" for p in err.value.problems]


def test_config_non_smtpd_listen(tmp_path):
    from relay.config import load_settings
    path = tmp_path / "c.yaml"
    path.write_text("hostname: r.example\nmilter: {listen: '127.0.0.1:8892', non_smtpd_listen: '127.0.0.1:8893'}\n")
    m = load_settings(path).milter
    assert (m.non_smtpd_endpoint.host, m.non_smtpd_endpoint.port, m.non_smtpd_path) == ("127.0.0.1", 8893, None)
    assert m.has_non_smtpd and str(m.non_smtpd()) == "127.0.0.1:8893" and str(m) == "127.0.0.1:8892"
    path.write_text("hostname: r.example\nmilter: {listen: '127.0.0.1:8892', non_smtpd_listen: 'unix:ns.sock', "
                    "socket_mode: '0660'}\n")
    m = load_settings(path).milter
    assert m.non_smtpd_path == tmp_path / "ns.sock" and m.non_smtpd().socket_mode == 0o660
    path.write_text("hostname: r.example\nmilter: {listen: '127.0.0.1:8892'}\n")
    assert not load_settings(path).milter.has_non_smtpd


def test_config_non_smtpd_listen_errors(tmp_path):
    assert _problems(tmp_path, "hostname: r.example\nmilter: {listen: '127.0.0.1:8892', "
                               "non_smtpd_listen: '127.0.0.1:8892'}\n") == [
        "milter.non_smtpd_listen: 127.0.0.1:8892 is milter.listen too; give Postfix's non_smtpd_milters a socket "
        "of its own (every session on it is taken for a sendmail(1) submission)"]
    assert _problems(tmp_path, "hostname: r.example\nmilter: {listen: '127.0.0.1:8892', mode: inbound, "
                               "non_smtpd_listen: '127.0.0.1:8893'}\n") == [
        "milter.non_smtpd_listen: applies only to mode outbound (mode is inbound): it is for mail submitted on "
        "this host with sendmail(1)"]
    assert _problems(tmp_path, "hostname: r.example\nmilter: {listen: '127.0.0.1:8892', non_smtpd_listen: 'x'}\n") == [
        "milter.non_smtpd_listen: 'x' has no port (write host:port); or unix:PATH for a UNIX socket"]
    assert _problems(tmp_path, "hostname: r.example\nmilter: {listen: '127.0.0.1:8892', non_smtp_listen: "
                               "'127.0.0.1:8893'}\n")[0].startswith("milter.non_smtp_listen:")


def test_check_config_names_what_each_milter_socket_is_for(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("hostname: r.example\nmilter: {listen: '127.0.0.1:8892', non_smtpd_listen: '127.0.0.1:8893'}\n")
    out = subprocess.run([sys.executable, "-m", "relay", "check-config", "-c", str(path)], capture_output=True,
                         text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "smtpd_milters = inet:127.0.0.1:8892" in out.stdout
    assert "non_smtpd_milters = inet:127.0.0.1:8893" in out.stdout
    # Every session on that socket is taken for a local submission and signed: on TCP, any local process's.
    assert "warning: milter.non_smtpd_listen is TCP (127.0.0.1:8893): any process on this host can connect" in out.stdout
    path.write_text(f"hostname: r.example\nmilter: {{listen: '127.0.0.1:8892', non_smtpd_listen: "
                    f"'unix:{tmp_path}/ns.sock', socket_group: postfix, socket_mode: '0660'}}\n")
    out = subprocess.run([sys.executable, "-m", "relay", "check-config", "-c", str(path)], capture_output=True,
                         text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"non_smtpd_milters = unix:{tmp_path}/ns.sock" in out.stdout and "warning" not in out.stdout


def test_workers_serve_both_sockets_and_remove_them_at_stop(tmp_path, signing_policies):  # noqa: F811
    # relay serve with several workers: the parent binds both milter sockets once (relay/workers.py), each
    # worker serves both, and the UNIX ones are removed when the relay stops.
    import signal
    import socket as socketlib

    import yaml

    from tests.support.processes import children, wait_until

    main, second = tmp_path / "m.sock", tmp_path / "ns.sock"
    config = tmp_path / "workers.yaml"
    config.write_text(yaml.safe_dump({
        "hostname": "relay.test", "bounce_list": f"sqlite:///{tmp_path / 'b.db'}", "workers": 2,
        "events": [{"jsonl": str(tmp_path / "events.jsonl")}], "policies": str(signing_policies),
        "milter": {"listen": f"unix:{main}", "non_smtpd_listen": f"unix:{second}", "socket_mode": "0600"}}))
    proc = subprocess.Popen([sys.executable, "-m", "relay", "serve", "-c", str(config)], cwd=str(REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def actions(path: Path) -> int:
        with socketlib.socket(socketlib.AF_UNIX) as s:
            s.settimeout(20)
            s.connect(str(path))
            s.sendall(pack(b"O", struct.pack("!III", 6, 0x1FF, 0x1FFFFF)))
            data = s.recv(4096)
        return struct.unpack("!I", data[9:13])[0]

    def listening() -> bool:
        for path in (main, second):
            with socketlib.socket(socketlib.AF_UNIX) as s:
                if s.connect_ex(str(path)) != 0:
                    return False
        return True

    try:
        wait_until(lambda: len(children(proc.pid)) == 2)
        wait_until(listening)
        assert oct(second.stat().st_mode & 0o777) == "0o600"
        for _ in range(6):  # whichever worker takes the connection
            assert actions(second) & codec.SMFIF_DELRCPT
            assert not actions(main) & codec.SMFIF_DELRCPT
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert "Traceback" not in err, err
    assert not main.exists() and not second.exists()
