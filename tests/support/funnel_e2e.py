"""What the end-to-end tests of the bounce list's safeguards (circuit breaker, domain entries) do to a
running relay: send one message in a session of its own, and run the `relay bounces` CLI on its config."""

from __future__ import annotations

import subprocess
import sys

from tests.support.smtp_client import RawSMTP, send_message

BODY = b"From: App <app@sender.test>\r\nSubject: hi\r\nMessage-ID: <m1@sender.test>\r\n\r\nHi.\r\n"


def send(relay, rcpts):
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        replies = send_message(c, "app@sender.test", rcpts, BODY)
        c.cmd("QUIT")
    return replies


def bounces(relay, *argv):
    r = subprocess.run([sys.executable, "-m", "relay", "bounces", *argv, "-c", str(relay.config_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode in (0, 1), r.stderr
    return r
