"""Verify mail that arrives already signed, and record it in Authentication-Results.

At end of DATA:

1. Authentication-Results fields that claim our authserv-id (settings.hostname)
   are marked for removal (`message.removed_headers`): RFC 8601 5 requires an
   MTA to delete such fields arriving from outside before adding its own, since
   only we may speak in our name. Fields of other authserv-ids are kept.
2. Every DKIM-Signature already on the message is verified (RFC 6376 6).
3. With `check_client_spf`, the connecting client's IP is checked against the
   envelope sender's SPF record (RFC 7208), or the HELO name's with a null
   sender (RFC 7208 2.3). Off by default: in relay mode the clients are the
   operator's own MTAs and applications, whose IPs are not supposed to be in
   the sender's SPF record (our egress IPs are; the spf step checks those). It
   means something in milter mode, where the MTA in front receives mail from
   the world. Even then, trusted and authenticated clients (submission) are not
   checked: their IP says nothing about the domain.
4. When there was something to report (a signature, or an SPF check), one
   `Authentication-Results: <hostname>; ...` field is prepended (RFC 8601 2.2).
   Nothing verified, nothing added: an A-R with only "none" tells a reader
   nothing and costs a header.

This step never refuses: verification results are information for whoever
receives the message next (RFC 8601 4), not a policy of ours. DNS trouble
shows up as `temperror` in the header.
"""

from __future__ import annotations

import logging

from ..authres import MethodResult, forged_indexes, format_header, verify_dkim
from ..decision import CONTINUE, Decision
from ..pipeline import Message, Step, Transaction
from ..spf import SpfChecker
from .spf_check import sender_domain

log = logging.getLogger("relay.steps.auth_results")


class AuthResultsStep(Step):
    name = "auth_results"

    def __init__(self, settings, policies, resolver, check_client_spf: bool = False,
                 checker: SpfChecker | None = None):
        self.settings = settings
        self.policies = policies  # not consulted today: verification is the same for every domain
        self.resolver = resolver
        self.authserv_id = settings.hostname
        self.check_client_spf = check_client_spf
        self._own_checker = False
        self.checker = checker
        if check_client_spf and checker is None:
            self.checker = SpfChecker(resolver, settings.hostname, cache_size=settings.resolver.cache_size)
            self._own_checker = True

    async def on_data(self, txn: Transaction, message: Message) -> Decision:
        forged = forged_indexes(message.headers(), self.authserv_id)
        if forged:
            message.removed_headers.update(forged)
            log.info("transaction %s: removing %d Authentication-Results claiming %s (RFC 8601 5)",
                     txn.id, len(forged), self.authserv_id)

        results: list[MethodResult] = []
        if any(name.lower() == "dkim-signature" for name, _ in message.headers()):
            results.extend(await verify_dkim(message.original, self.resolver))
        spf = await self._client_spf(txn)
        if spf is not None:
            results.append(spf)

        txn.notes["auth_results"] = {"removed_forged": len(forged), "results": [r.as_dict() for r in results]}
        if results:
            message.prepend(format_header(self.authserv_id, results))
        return CONTINUE

    async def _client_spf(self, txn: Transaction) -> MethodResult | None:
        session = txn.session
        if not self.check_client_spf or session.may_relay:
            return None
        domain = sender_domain(txn.mail_from)
        if domain is not None:
            identity, prop = domain, "smtp.mailfrom"
        elif (txn.mail_from or "").strip() in ("", "<>") and session.helo:
            # RFC 7208 2.3: with a null sender the HELO identity is checked.
            identity, prop = session.helo.strip().rstrip(".").lower(), "smtp.helo"
        else:
            return None
        try:
            r = await self.checker.check(identity, session.peer_ip, helo=session.helo)
        except ValueError:  # the peer is not an IP address (a unix socket in milter mode)
            return None
        reason = r.explanation if r.result in ("permerror", "temperror") else None
        return MethodResult("spf", r.result, reason, ((prop, identity),),
                            detail={"ip": r.ip, "record": r.record})

    async def close(self) -> None:
        if self._own_checker and self.checker is not None:
            self.checker.close()
