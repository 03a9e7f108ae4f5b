"""The last step: each command goes to the upstream and its reply comes back verbatim."""

from __future__ import annotations

from ..decision import Decision, Reply, Verdict, relay_upstream
from ..pipeline import Message, Step, Transaction
from ..upstream import UpstreamError, UpstreamPool



def _deferred(exc: UpstreamError) -> Decision:
    return Decision(Verdict.DEFER if not exc.reply.permanent else Verdict.REJECT, exc.reply,
                    "deferred" if not exc.reply.permanent else None)


class UpstreamStep(Step):
    name = "upstream"

    def __init__(self, pool: UpstreamPool):
        self.pool = pool

    async def on_mail(self, txn: Transaction) -> Decision:
        for attempt in (1, 2):
            try:
                conn = await self.pool.acquire()
            except UpstreamError as exc:
                return _deferred(exc)
            txn.notes["upstream"] = {"host": conn.target.host, "port": conn.target.port, "ip": conn.ip,
                                     "tls": conn.tls}
            reused = conn.transactions > 0
            try:
                reply = await conn.mail(txn.return_path or txn.mail_from, self._options(txn, conn))
            except UpstreamError as exc:
                # A pooled connection the server closed while idle: nothing was sent, try a fresh one.
                if reused and attempt == 1:
                    continue
                return _deferred(exc)
            txn.notes["upstream_conn"] = conn
            txn.notes["upstream_clean"] = not reply.positive
            return relay_upstream(reply)
        raise AssertionError("unreachable")

    @staticmethod
    def _options(txn: Transaction, conn) -> list[str]:
        # SIZE is advisory and dropped when the upstream does not offer it (RFC 1870); BODY and
        # SMTPUTF8 are always passed on, so that an upstream without 8BITMIME or SMTPUTF8 refuses
        # in its own words rather than receiving 8-bit data it did not agree to.
        return [o for o in txn.mail_options if not o.upper().startswith("SIZE=") or conn.supports("size")]

    async def on_rcpt(self, txn: Transaction, rcpt: str) -> Decision:
        conn = txn.notes.get("upstream_conn")
        if conn is None:
            return Decision(Verdict.DEFER, Reply.make(451, "4.3.0", "No upstream transaction", cause="local-error"), "deferred")
        try:
            return relay_upstream(await conn.rcpt(rcpt))
        except UpstreamError as exc:
            return _deferred(exc)

    async def on_data_start(self, txn: Transaction) -> None:
        conn = txn.notes.get("upstream_conn")
        if conn is not None:
            conn.begin_data()

    async def on_data(self, txn: Transaction, message: Message) -> Decision:
        conn = txn.notes.get("upstream_conn")
        if conn is None:
            return Decision(Verdict.DEFER, Reply.make(451, "4.3.0", "No upstream transaction", cause="local-error"), "deferred")
        try:
            reply = await conn.data(message.chunks())
        except UpstreamError as exc:
            return _deferred(exc)
        # The reply to the final dot ends the upstream transaction, whatever it was (RFC 5321 3.3);
        # a refused DATA command leaves it open, to be reset before reuse.
        txn.notes["upstream_clean"] = conn.data_completed
        return relay_upstream(reply)

    async def on_reset(self, txn: Transaction) -> None:
        conn = txn.notes.pop("upstream_conn", None)
        if conn is not None:
            await self.pool.release(conn, clean=txn.notes.get("upstream_clean", False))
