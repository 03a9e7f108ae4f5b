"""`relay serve` as a process: signals, reloads, draining."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.support.peers import free_port
from tests.support.processes import children, wait_until
from tests.support.smtp_client import RawSMTP, send_message
from tests.support.upstream import GMAIL_NO_SUCH_USER

REPO = Path(__file__).resolve().parent.parent
BODY = b"From: a@sender.test\r\nSubject: s\r\n\r\nhi\r\n"
# Each `relay serve` builds the nearest-reply reader before it listens (~1 s of CPU, several on a loaded
# machine); nothing here is classified by it (tests/test_nearest.py tests it): `nearest_fallback: false`.
NO_NEAREST = {"nearest_fallback": False}


def wait_port(port: int, proc, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("relay did not listen")


class StderrSoFar:
    """What a running relay wrote to its stderr pipe so far, read without blocking."""

    def __init__(self, proc):
        self._fd = proc.stderr.fileno()
        os.set_blocking(self._fd, False)
        self._text = ""

    def read(self) -> str:
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                return self._text
            if not chunk:
                return self._text
            self._text += chunk.decode(errors="replace")


def start(tmp_path, upstream_port, **extra):
    """`relay serve` on 127.0.0.1:0 (a port picked here and bound later could be taken meanwhile by
    another process on the machine): (process, the port it listens on, config path). What it wrote
    to stderr so far: proc.stderr_so_far.read()."""
    config = {"hostname": "relay.test", "listen": [{"address": "127.0.0.1:0"}],
              "upstream": {"host": "127.0.0.1", "port": upstream_port, "starttls": "off"},
              "bounce_list": f"sqlite:///{tmp_path / 'b.db'}", "events": [{"jsonl": str(tmp_path / "e.jsonl")}],
              **NO_NEAREST, **extra}
    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump(config))
    # Ready as systemd hears it: with several workers the port opens when the first one listens, and
    # a signal sent before the others listen reaches them only once they do.
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(tmp_path / "notify.sock"))
        notify.settimeout(0.1)
        proc = subprocess.Popen([sys.executable, "-m", "relay", "serve", "-c", str(path)], stderr=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
        proc.stderr_so_far = StderrSoFar(proc)
        deadline = time.time() + 60
        while True:
            try:
                assert notify.recv(100) == b"READY=1"
                break
            except socket.timeout:
                if proc.poll() is not None or time.time() > deadline:
                    proc.kill()
                    proc.wait()
                    raise AssertionError(f"relay not ready (exit {proc.returncode}):\n"
                                         f"{proc.stderr_so_far.read()}") from None
    try:
        port = int(logged(proc, r"listening on 127\.0\.0\.1:(\d+)"))
    except AssertionError:
        proc.kill()
        proc.wait()
        raise
    return proc, port, path


def logged(proc, pattern: str, timeout: float = 30) -> str:
    """The first group of `pattern` in what the relay logged, waited for: log lines are written by a
    thread behind a queue (relay/logqueue.py), so one may follow READY=1 or a reply by a moment."""
    found = wait_until(lambda: re.search(pattern, proc.stderr_so_far.read()), timeout)
    return found.group(1)


def test_sigterm_drains_and_exits_zero(tmp_path, upstream):
    proc, port, _ = start(tmp_path, upstream.port)
    try:
        idle = RawSMTP("127.0.0.1", port)
        idle.cmd("EHLO idle.test")
        busy = RawSMTP("127.0.0.1", port)
        busy.cmd("EHLO busy.test")
        busy.cmd("MAIL FROM:<a@sender.test>")
        busy.cmd("RCPT TO:<b@example.com>")
        proc.send_signal(signal.SIGTERM)
        assert idle.reply()[1].startswith("421 4.3.2 ")  # told at once, between transactions
        # The transaction in flight may finish; its message is delivered, then the client is told 421.
        assert busy.cmd("DATA")[0] == 354
        busy.send(BODY + b".\r\n")
        assert busy.reply()[0] == 250
        assert busy.reply()[1].startswith("421 4.3.2 ")
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(upstream.wait_for_messages(1)) == 1
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # no longer listening


def test_sighup_with_broken_policy_keeps_the_running_one(tmp_path, upstream):
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    proc, port, _ = start(tmp_path, upstream.port, policies=str(policies))
    try:
        local = policies / "bounce-rules.local.yaml"
        local.write_text("rules:\n  - id: local-nosuchuser\n    match: 'NoSuchUser'\n    category: other\n"
                         "    meaning: Local rule.\n    advice: Local advice.\n")
        serving = len(children(proc.pid)) or 1  # the workers, or the process itself
        stderr = proc.stderr_so_far
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: stderr.read().count("reloaded config and policies") == serving)
        local.write_text("rules:\n  - id: [broken\n")
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: stderr.read().count("reload refused, keeping the running config") >= serving)
        with RawSMTP("127.0.0.1", port) as c:
            c.cmd("EHLO c.test")
            assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
            assert c.cmd("RCPT TO:<nosuchuser@gmail.test>") == (550, GMAIL_NO_SUCH_USER)
            c.cmd("QUIT")
        deadline = time.time() + 10
        events = []
        while time.time() < deadline and not events:
            events = [line for line in (tmp_path / "e.jsonl").read_text().splitlines()] if (tmp_path / "e.jsonl").exists() else []
            time.sleep(0.1)
        import json
        rejected = [json.loads(x) for x in events if json.loads(x)["kind"] == "rejected"]
        assert rejected[0]["classification"]["rule"] == "local-nosuchuser"  # the good reload is in force
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    stderr = stderr.read() + proc.stderr.read()
    assert "reload refused, keeping the running config" in stderr and "bounce-rules.local.yaml" in stderr
    assert "reloaded config and policies" in stderr


def test_serve_refuses_a_port_in_use_clearly(tmp_path, upstream):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = tmp_path / "c.yaml"
        cfg.write_text(yaml.safe_dump({"hostname": "r.test", "listen": [{"address": f"127.0.0.1:{port}"}],
                                       "upstream": {"host": "127.0.0.1", "port": upstream.port, "starttls": "off"},
                                       "bounce_list": f"sqlite:///{tmp_path / 'b.db'}"}))
        out = subprocess.run([sys.executable, "-m", "relay", "serve", "-c", str(cfg)], capture_output=True,
                             text=True, timeout=30)
    assert out.returncode == 1 and "error: cannot start:" in out.stderr and "Traceback" not in out.stderr


def test_relay_keeps_serving_after_a_client_vanishes_mid_data(tmp_path, upstream):
    proc, port, _ = start(tmp_path, upstream.port)
    try:
        gone = RawSMTP("127.0.0.1", port)
        gone.cmd("EHLO gone.test")
        gone.cmd("MAIL FROM:<a@sender.test>")
        gone.cmd("RCPT TO:<b@example.com>")
        gone.cmd("DATA")
        gone.send(b"Subject: half\r\n\r\nhalf a mess")
        gone.close()
        time.sleep(0.3)
        with RawSMTP("127.0.0.1", port) as c:
            c.cmd("EHLO c.test")
            assert send_message(c, "a@sender.test", ["b@example.com"], BODY)[-1][0] == 250
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    msgs = upstream.wait_for_messages(1)
    assert len(msgs) == 1 and b"half a mess" not in msgs[0].data


def test_milter_only_config_serves_the_milter_and_stops_on_sigterm(tmp_path):
    port = free_port()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"hostname": "r.test", "milter": {"listen": f"127.0.0.1:{port}"},
                                   "bounce_list": f"sqlite:///{tmp_path / 'b.db'}"}))
    proc = subprocess.Popen([sys.executable, "-m", "relay", "serve", "-c", str(cfg)], stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        wait_port(port, proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert f"milter (outbound) listening on 127.0.0.1:{port}" in err and "Traceback" not in err


def test_metrics_endpoint_counts_messages_and_events(tmp_path, upstream):
    import urllib.request

    # One process: each worker counts its own until metrics aggregate across workers (docs/internals.md).
    proc, port, _ = start(tmp_path, upstream.port, metrics={"listen": "127.0.0.1:0"}, workers=1)
    metrics_port = int(logged(proc, r"metrics on http://127\.0\.0\.1:(\d+)/"))
    try:
        with RawSMTP("127.0.0.1", port) as c:
            c.cmd("EHLO c.test")
            send_message(c, "a@sender.test", ["b@example.com", "nosuchuser@gmail.test"], BODY)
            c.cmd("QUIT")
        time.sleep(0.3)
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert 'relay_messages_total{result="accepted"} 1' in text
    assert 'relay_events_total{kind="rejected"} 1' in text
    assert "relay_active_sessions" in text


@pytest.mark.parametrize("workers", [1, 2])
def test_a_reload_is_told_to_systemd_with_its_outcome(tmp_path, upstream, workers):
    """sd_notify(3): SIGHUP put RELOADING=1 (with MONOTONIC_USEC) and, once the files were read, READY=1 with
    a STATUS= saying whether the new config runs or why the old one does. Before, systemd heard nothing:
    `systemctl status relay` showed the unit active and nothing of a reload that was refused."""
    config = tmp_path / "relay.yaml"
    settings = {"hostname": "relay.test", "listen": [{"address": "127.0.0.1:0"}],
                "upstream": {"host": "127.0.0.1", "port": upstream.port, "starttls": "off"},
                "bounce_list": f"sqlite:///{tmp_path / 'b.db'}", "workers": workers}
    config.write_text(yaml.safe_dump(settings))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(tmp_path / "notify.sock"))
        notify.settimeout(60)
        proc = subprocess.Popen([sys.executable, "-m", "relay", "serve", "-c", str(config)], cwd=str(REPO),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(REPO), "NOTIFY_SOCKET": str(notify.getsockname())})
        try:
            def next_message() -> bytes:
                while True:
                    message = notify.recv(4096)
                    if not message.startswith((b"WATCHDOG=", b"STATUS=All")):
                        return message

            assert next_message() == b"READY=1"
            proc.send_signal(signal.SIGHUP)
            reloading = next_message()
            assert re.fullmatch(rb"RELOADING=1\nMONOTONIC_USEC=\d+", reloading), reloading
            assert next_message() == b"READY=1\nSTATUS=Running; the config was reloaded"

            config.write_text(yaml.safe_dump({**settings, "bogus_key": 1}))
            proc.send_signal(signal.SIGHUP)
            assert next_message().startswith(b"RELOADING=1\n")
            refused = next_message().decode()
            assert refused.startswith("READY=1\nSTATUS=Running the previous config: the reload was refused: "), refused
            assert "bogus_key: unknown key" in refused and refused.count("\n") == 1, refused
            proc.send_signal(signal.SIGTERM)
            assert next_message() == b"STOPPING=1"
            assert proc.wait(60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "Traceback" not in proc.stderr.read()
