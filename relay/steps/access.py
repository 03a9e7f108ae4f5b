"""Who may relay: clients inside clients.networks, or authenticated over TLS. No open relay."""

from __future__ import annotations

from ..decision import CONTINUE, Decision, reject
from ..pipeline import Step, Transaction


class AccessStep(Step):
    name = "access"

    async def on_mail(self, txn: Transaction) -> Decision:
        session = txn.session
        if session.may_relay:
            return CONTINUE
        # Refused before any upstream connection: nothing of this session reaches the upstream.
        return reject(554, "5.7.1", f"Relay access denied: {session.peer_ip} is not in clients.networks "
                                    f"and has not authenticated", kind="policy_rejected", cause="relay-access-denied")
