"""The Received: trace header (RFC 5321 4.4), added on top of the message."""

from __future__ import annotations

import functools
import re
import time
from email.utils import formatdate

from ..address import helo_domain
from ..decision import CONTINUE, Decision
from ..pipeline import Message, Step, Transaction

# RFC 5322 3.2.2 ctext: printable ASCII but "(", ")" and "\"; anything else in a comment becomes "?".
_NOT_CTEXT = re.compile(r"[^\x21-\x27\x2a-\x5b\x5d-\x7e ]")


def _protocol(session, mail_options) -> str:
    """The WITH clause's protocol (RFC 5321 4.4: Protocol = "ESMTP" / "SMTP" / a registered one)."""
    # RFC 3848: S for TLS, A for authenticated (AUTH needs EHLO). STARTTLS is itself a service extension,
    # and only ESMTPS is registered for it: a HELO session over TLS is ESMTPS too.
    suffix = ("S" if session.tls else "") + ("A" if session.auth_user else "")
    if any(option.upper() == "SMTPUTF8" for option in mail_options):
        # RFC 6531 3.7.3: a transaction that used SMTPUTF8 takes the UTF8SMTP values (UTF8SMTP, UTF8SMTPS,
        # UTF8SMTPA, UTF8SMTPSA) that RFC 6531 registers (IANA "Mail Transmission Types").
        return "UTF8SMTP" + suffix
    if not session.esmtp and not suffix:
        return "SMTP"  # greeted with HELO: no service extension (RFC 5321 4.4)
    return "ESMTP" + suffix


@functools.lru_cache(maxsize=1024)
def from_clause(helo: str | None, peer_ip: str) -> str:
    """RFC 5321 4.4 From-domain: the HELO name when it is a Domain or an address-literal, then
    the TCP-info (the client's address-literal). Any other HELO text is shown only inside a
    comment, with everything but printable ASCII replaced: no byte the client chose can end the
    header or start a new one."""
    literal = f"[IPv6:{peer_ip}]" if ":" in peer_ip else f"[{peer_ip}]"
    domain = helo_domain(helo) if helo else None
    if domain is not None:
        return f"from {domain} ({literal})"
    if not helo:
        return f"from {literal} ({literal})"
    return f"from {literal} ({literal})\r\n\t(helo={_NOT_CTEXT.sub('?', helo[:100])})"


_date: tuple[int, str] = (0, "")


def _date_now() -> str:
    """RFC 5322 3.3 date-time of now, in GMT: whole seconds, so made once a second."""
    global _date
    second = int(time.time())
    if _date[0] != second:
        _date = (second, formatdate(second, localtime=False, usegmt=True))
    return _date[1]


class ReceivedStep(Step):
    name = "received"

    def __init__(self, hostname: str):
        self.hostname = hostname

    async def on_data(self, txn: Transaction, message: Message) -> Decision:
        s = txn.session
        # No "for <rcpt>" with several recipients: it would disclose Bcc recipients to each other.
        for_clause = f"\r\n\tfor <{txn.rcpts[0]}>" if len(txn.rcpts) == 1 else ""
        tls = f"\r\n\t(using {s.tls})" if s.tls else ""
        header = (f"Received: {from_clause(s.helo, s.peer_ip)}\r\n\tby {self.hostname} (relay) with {_protocol(s, txn.mail_options)} "
                  f"id {txn.id}{tls}{for_clause};\r\n\t{_date_now()}")
        message.prepend(header.encode("utf-8", "replace"))
        return CONTINUE
