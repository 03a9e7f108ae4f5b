"""The last step: each command goes to the upstream and its reply comes back verbatim.

Every reply the upstream sends is also reported to the step's watchers (traffic shaping reacts
to throttling and decays on success): `await watcher.upstream_replied(txn, stage, rcpt, reply)`
returns None or event fields for the reply's event (what the reply made the watcher do). A
watcher's failure is logged and never changes what the client is told.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from ..decision import CONTINUE, Decision, Reply, Verdict, relay_upstream
from ..pipeline import Message, Step, Transaction
from ..upstream import UpstreamConnection, UpstreamError, UpstreamPool

log = logging.getLogger("relay.upstream")


def _deferred(exc: UpstreamError) -> Decision:
    return Decision(Verdict.DEFER if not exc.reply.permanent else Verdict.REJECT, exc.reply,
                    "deferred" if not exc.reply.permanent else None,
                    {"upstream": exc.upstream} if exc.upstream else {})


def mail_options(txn: Transaction, conn) -> list[str]:
    # SIZE is advisory and dropped when the upstream does not offer it (RFC 1870); BODY and
    # SMTPUTF8 are always passed on, so that an upstream without 8BITMIME or SMTPUTF8 refuses
    # in its own words rather than receiving 8-bit data it did not agree to.
    return [o for o in txn.mail_options if not o.upper().startswith("SIZE=") or conn.supports("size")]


async def open_transaction(pool: UpstreamPool, txn: Transaction, suits=None, connect=None, heard=None,
                           rcpt: str | None = None) -> tuple[Decision, UpstreamConnection | None]:
    """A connection from `pool` with the transaction's MAIL accepted on it, or the reason why not
    (the upstream's refusal, or ours when it cannot be reached). `suits` and `connect` go to
    UpstreamPool.acquire(); `heard(txn, "mail", rcpt, reply)` hears the reply to MAIL (`rcpt`: the
    recipient whose RCPT opens the transaction, in MX delivery)."""
    while True:
        try:
            conn = await pool.acquire(suits, connect)
        except UpstreamError as exc:
            if exc.reply.source == "upstream":
                # The upstream's own refusal of its greeting or EHLO (a 554 at connect): the session's,
                # before any MAIL was sent, never the sender's (its event's stage says so).
                return replace(_deferred(exc), stage="connect"), None
            return _deferred(exc), None
        txn.notes["upstream"] = conn.describe()
        reused = conn.reused
        try:
            reply = await conn.mail(txn.return_path or txn.mail_from, mail_options(txn, conn),
                                    timeout=pool.first_command_timeout if reused else None)
        except UpstreamError as exc:
            pool.release(conn)
            if reused:
                # A pooled connection that died while idle (closed, silent, or out of step):
                # nothing of this transaction was accepted, so another connection may try.
                continue
            return _deferred(exc), None
        if reused and reply.code == 421:
            pool.release(conn)  # closed: the server was closing an idle channel
            continue
        decision = await heard(txn, "mail", rcpt, reply) if heard is not None else relay_upstream(reply)
        if not reply.positive:
            pool.release(conn)
            return decision, None
        return decision, conn


class UpstreamStep(Step):
    name = "upstream"

    def __init__(self, pool: UpstreamPool, watchers=()):
        self.pool = pool
        self.watchers = tuple(watchers)

    async def _heard(self, txn: Transaction, stage: str, rcpt: str | None, reply: Reply) -> Decision:
        """The upstream's reply as the client's, with what the watchers made of it for its event."""
        if not reply.positive:
            # Before anything else may wait: a refusal read is the command's outcome, recorded even if
            # the client goes away now (RelayService._settle); the client's reply, if a shutdown cannot wait
            # for that recording (Transaction.answer).
            txn.decide(reply)
        detail: dict = {}
        for watcher in self.watchers:
            try:
                detail.update(await watcher.upstream_replied(txn, stage, rcpt, reply) or {})
            except asyncio.CancelledError:
                if not reply.positive:
                    # The command is cancelled in a watcher's write (the shaping reaction's hold), after the
                    # refusal was read: a shutdown's drain past its own bound. The refusal as it would have
                    # been returned, with what the watchers made of it so far, for the command to queue its
                    # events as it stops (RelayService._given_up): the client was told it.
                    txn.unrecorded_refusal = self._decision(reply, detail, stage)
                raise
            except Exception:
                log.exception("watcher %s failed on the reply to %s (transaction %s)",
                              type(watcher).__name__, stage.upper(), txn.id)
        return self._decision(reply, detail)

    @staticmethod
    def _decision(reply: Reply, detail: dict, stage: str | None = None) -> Decision:
        decision = relay_upstream(reply)
        if detail:
            decision = replace(decision, detail={**decision.detail, **detail})
        return replace(decision, stage=stage) if stage is not None else decision

    async def on_mail(self, txn: Transaction) -> Decision:
        decision, conn = await open_transaction(self.pool, txn, heard=self._heard)
        if conn is not None:
            txn.notes["upstream_conn"] = conn
        return decision

    async def on_rcpt(self, txn: Transaction, rcpt: str) -> Decision:
        conn = txn.notes.get("upstream_conn")
        if conn is None:
            return Decision(Verdict.DEFER, Reply.make(451, "4.3.0", "No upstream transaction", cause="local-error"), "deferred")
        try:
            reply = await conn.rcpt(rcpt)
        except UpstreamError as exc:
            return _deferred(exc)
        return await self._heard(txn, "rcpt", rcpt, reply)

    async def on_data_start(self, txn: Transaction) -> Decision:
        """The message is complete: DATA goes upstream before any step hashes or signs it, so
        that a refused DATA costs no more work and reaches the client at once."""
        conn = txn.notes.get("upstream_conn")
        if conn is None:
            return Decision(Verdict.DEFER, Reply.make(451, "4.3.0", "No upstream transaction", cause="local-error"),
                            "deferred")
        try:
            reply = await conn.start_data()
        except UpstreamError as exc:
            return _deferred(exc)
        return CONTINUE if reply.code == 354 else await self._heard(txn, "data", None, reply)

    async def on_data(self, txn: Transaction, message: Message) -> Decision:
        conn = txn.notes.get("upstream_conn")
        if conn is None:
            return Decision(Verdict.DEFER, Reply.make(451, "4.3.0", "No upstream transaction", cause="local-error"), "deferred")
        try:
            reply = await conn.data(message.chunks(), dot_lines=message.dot_lines, sent=txn.dot_sent)
        except UpstreamError as exc:
            return _deferred(exc)
        # Before anything else may wait: from here the outcome is this reply's, and the service records
        # it even if the client goes away now (RelayService.data).
        txn.dot_answered(reply)
        return await self._heard(txn, "data", None, reply)

    async def on_reset(self, txn: Transaction) -> None:
        self.reset_now(txn)

    def reset_now(self, txn: Transaction) -> None:
        conn = txn.notes.pop("upstream_conn", None)
        if conn is not None:
            self.pool.release(conn)  # the connection knows whether its transaction needs a RSET
