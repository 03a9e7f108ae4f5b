"""Refuse bounce-listed recipients at RCPT, before anything reaches the upstream.

The refusal is permanent (550): the address is listed because the receiver said,
permanently, that it cannot take mail for it, and the client MTA must not queue
and retry (a 4xx would make it retry for days against a list that will not
change by itself). The text names the list, the date and the receiver's original
reply, so whoever reads the bounce knows why and what to fix.
"""

from __future__ import annotations

from ..decision import CONTINUE, Decision, Reply, reject
from ..address import NeverListed, ascii_reply, delivered_as, shown
from ..pipeline import Step, Transaction
from ..store import BounceStore

# RFC 3463: X.1.1 "bad destination mailbox address" where the receiver said the
# mailbox does not exist or is gone; otherwise X.7.1 "delivery not authorized",
# since it is our own policy (the list) that refuses.
ENHANCED_BY_CATEGORY = {"unknown_recipient": "5.1.1", "mailbox_disabled": "5.1.1"}
ENHANCED_DEFAULT = "5.7.1"
# A listed domain (`@example.com`, it does not exist): X.1.2 "bad destination system address".
ENHANCED_DOMAIN = "5.1.2"

# RFC 5321 4.5.3.1.5: a reply line is at most 512 octets with its code and CRLF;
# keep well below, the original reply is a reminder, not the record.
MAX_ORIGINAL = 200


def original_first_line(reply_text: str) -> str:
    """'550-5.1.1 The account...\\n550 5.1.1 ...' -> '550 5.1.1 The account...' (short, ASCII)."""
    if not reply_text.strip():
        return ""
    parsed = Reply.parse(reply_text)
    first = next((line for line in parsed.lines if line.strip()), "")
    text = f"{parsed.code} {first}" if parsed.code else first
    # The reply goes out in an SMTP reply line: printable ASCII only (RFC 5321 4.2).
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in text).strip()
    return text if len(text) <= MAX_ORIGINAL else text[: MAX_ORIGINAL - 3] + "..."


class BounceListStep(Step):
    name = "bounce_list"

    def __init__(self, store: BounceStore):
        self.store = store  # not owned: see the note at the end of the class

    async def on_rcpt(self, txn: Transaction, rcpt: str) -> Decision:
        # As the MTA will deliver it: Postfix reads `go\\ne@example.com` as gone@example.com (review26 F3).
        try:
            key = delivered_as(rcpt)
        except NeverListed:
            # Read whole, and no list key can be it (`""@example.com`, RFC 5321 4.1.2; a domain that is no
            # domain name, which MX mode's delivery step refuses in its own words).
            return CONTINUE
        except ValueError as exc:
            if "@" not in rcpt:
                # A bare local part (`postmaster`, RFC 5321 4.1.1.3): the MTA's own mailbox, in its own
                # domain; what it is the MTA says (relay mode refuses anything else without an @).
                return CONTINUE
            # An address that cannot be read cannot be checked: refused rather than let through, since
            # the MTA may read it as a listed address. Never listed for it (syntax_error, the client's
            # mistake): only this check fails closed.
            return reject(553, "5.1.3", f"Recipient address <{ascii_reply(shown(rcpt))}> cannot be read, so "
                                        f"this relay cannot tell whether it is on its bounce list: "
                                        f"{ascii_reply(shown(_why(exc, rcpt), 200))} (RFC 5321 4.1.2)",
                          kind="policy_rejected", cause="address-syntax")
        # A store error propagates: the pipeline answers 451 4.3.0 rather than letting
        # a listed address through because the list could not be read.
        entry = await self.store.get(key)
        if entry is None:
            return CONTINUE
        if entry.address.startswith("@"):
            enhanced = ENHANCED_DOMAIN
            lines = [f"<{ascii_reply(rcpt)}>: the domain {entry.address[1:]} is on this relay's bounce list "
                     f"since {entry.first_seen.date().isoformat()} ({entry.category}: it does not exist)"]
        else:
            enhanced = ENHANCED_BY_CATEGORY.get(entry.category, ENHANCED_DEFAULT)
            lines = [f"<{ascii_reply(entry.address)}> is on this relay's bounce list since "
                     f"{entry.first_seen.date().isoformat()} ({entry.category})"]
        original = original_first_line(entry.reply)
        if original:
            lines.append(f"Original reply: {original}")
        # DESIGN.md's event contract: `bounce_list` on an event that changed or consulted the list.
        return reject(550, enhanced, "\n".join(lines), kind="suppressed", cause="bounce-listed",
                      bounce_list="listed", entry=entry.as_dict())

    # No close(): the store is shared (the upstream step records failures in it, and a
    # reloaded pipeline keeps using it); whoever opened it closes it.


def _why(exc: ValueError, rcpt: str) -> str:
    """The reader's reason without its repetition of the address (the reply names it once)."""
    text = str(exc)
    prefix = f"invalid address {rcpt!r}: "
    return text[len(prefix):] if text.startswith(prefix) else text
