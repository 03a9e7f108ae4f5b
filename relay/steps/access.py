"""Who may relay: clients inside clients.networks, or authenticated over TLS. No open relay.

An authenticated outsider may send only from the sender domains its line in the users file
names (relay.users): a password is a key to one sender's mail, not to every domain this relay
signs and vouches for.
"""

from __future__ import annotations

import logging

from ..decision import CONTINUE, Decision, reject
from ..pipeline import Step, Transaction
from ..users import may_use

log = logging.getLogger("relay.access")


class AccessStep(Step):
    name = "access"

    async def on_mail(self, txn: Transaction) -> Decision:
        session = txn.session
        if not session.may_relay:
            # Refused before any upstream connection: nothing of this session reaches the upstream.
            return reject(554, "5.7.1", f"Relay access denied: {session.peer_ip} is not in clients.networks "
                                        f"and has not authenticated", kind="policy_rejected",
                          cause="relay-access-denied")
        allowed = session.sender_domains
        if allowed is None or txn.mail_from == "":  # unrestricted, or the null sender of a bounce
            return CONTINUE
        domain = txn.mail_from.rpartition("@")[2]
        if may_use(allowed, domain):
            return CONTINUE
        log.warning("login %r may not send from %s (its domains: %s)", session.auth_user, domain,
                    ", ".join(sorted(allowed)))
        # Postfix's wording for the same check (smtpd_sender_login_maps).
        return reject(553, "5.7.1", f"<{txn.mail_from}>: Sender address rejected: not owned by user "
                                    f"{session.auth_user}", kind="policy_rejected",
                      cause="sender-not-owned")
