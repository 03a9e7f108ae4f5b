"""The Received: trace header (RFC 5321 4.4), added on top of the message."""

from __future__ import annotations

from email.utils import formatdate

from ..decision import CONTINUE, Decision
from ..pipeline import Message, Step, Transaction


def _protocol(session) -> str:
    # RFC 3848: ESMTP with S for TLS and A for authenticated.
    return "ESMTP" + ("S" if session.tls else "") + ("A" if session.auth_user else "")


class ReceivedStep(Step):
    name = "received"

    def __init__(self, hostname: str):
        self.hostname = hostname

    async def on_data(self, txn: Transaction, message: Message) -> Decision:
        s = txn.session
        helo = (s.helo or "unknown").encode("ascii", "replace").decode()[:100]
        ip = s.peer_ip if ":" not in s.peer_ip else f"IPv6:{s.peer_ip}"
        # No "for <rcpt>" with several recipients: it would disclose Bcc recipients to each other.
        for_clause = f"\r\n\tfor <{txn.rcpts[0]}>" if len(txn.rcpts) == 1 else ""
        tls = f"\r\n\t(using {s.tls})" if s.tls else ""
        header = (f"Received: from {helo} ([{ip}])\r\n\tby {self.hostname} (relay) with {_protocol(s)} "
                  f"id {txn.id}{tls}{for_clause};\r\n\t{formatdate(localtime=False, usegmt=True)}")
        message.prepend(header.encode("utf-8", "replace"))
        return CONTINUE
