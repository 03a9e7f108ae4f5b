"""MAIL: the envelope sender goes upstream as a VERP return path on the sender domain's bounce domain
(domains.yaml `verp:`), so that later bounces come to `bounces_in` tied to this transaction.

The return path's token authenticates the transaction (relay/intake/verp.py), not its recipients: anyone
who received the message saw it, and could mail a "bounce" to it naming any address. So when the next
hop says 250 to the final dot (the upstream step reports every reply to its watchers, this step among
them), the recipients it accepted are recorded in the bounce list's store (`VerpRecipients`, table
`verp_recipients`), before the client hears its 250; `bounces_in` acts on a bounce only for those.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..decision import CONTINUE, Decision, Reply
from ..errors import ConfigError, Problem
from ..intake.verp import VerpCodec
from ..pipeline import Step, Transaction

log = logging.getLogger("relay.verp")

# Rows one write takes at most (the rest wait for the next): a write holds the store's write lock (and
# in PostgreSQL a pooled connection), so a backlog of thousands of messages is written in several short
# transactions, not one long one that other writers (a listing) would wait for.
BATCH_ROWS = 1000


class VerpRecipients:
    """Records the recipients of VERP transactions, several transactions to one write (group commit).

    A transaction waits for its rows to be committed (its client's 250 comes after: a bounce arriving
    the next second finds them, and a crash of the relay cannot lose them), but it never starts a commit of
    its own while one is under way: the transactions that end meanwhile go together in the next one. At
    a few messages a second each has its own commit (nothing else waits); under load one commit serves
    many messages. The process's own (relay.server.Resources): every pipeline a reload builds shares it.
    """

    def __init__(self, store):
        self.store = store
        self._pending: list[tuple[list[tuple[str, str, int]], asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None
        self.writes = 0  # commits made (tests, bench: how many messages shared one)
        self.rows = 0

    async def record(self, transaction_id: str, recipients: list[str], day: int) -> None:
        """Return once the rows are committed; raises the store's error when they could not be."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        # Retrieved here, so that a waiter cancelled meanwhile (its client gone) leaves no "exception
        # never retrieved" behind; the write itself goes on (shield below).
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._pending.append(([(transaction_id, r, day) for r in recipients], done))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        await asyncio.shield(done)

    async def _flush(self) -> None:
        while self._pending:
            batch, rows = [], []
            while self._pending and (not rows or len(rows) + len(self._pending[0][0]) <= BATCH_ROWS):
                entry = self._pending.pop(0)
                batch.append(entry)
                rows.extend(entry[0])
            try:
                await self._write(rows)
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def _write(self, rows) -> None:
        from ..store.base import StoreError

        try:
            await self.store.record_verp_recipients(rows)
        except StoreError as exc:
            # Once more: a pooled PostgreSQL connection closed by a restart fails the first use only
            # (its siblings are replaced then), and an SQLite lock held a moment too long frees.
            log.warning("recording the recipients of %d VERP message(s) failed once, trying again: %s",
                        len({r[0] for r in rows}), exc)
            await self.store.record_verp_recipients(rows)
        self.writes += 1
        self.rows += len(rows)

    async def close(self) -> None:
        """Let the write under way (and those queued behind it) finish: before the store closes."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.gather(self._flusher, return_exceptions=True)


class VerpStep(Step):
    name = "verp"

    def __init__(self, settings, policies, recipients: VerpRecipients | None = None):
        self.domains = policies.domains
        bounces = settings.bounces_in
        self.codec = VerpCodec(bounces.key) if bounces is not None and bounces.key else None
        self.recipients = recipients

    async def on_mail(self, txn: Transaction) -> Decision:
        sender = txn.mail_from
        if not sender or "@" not in sender or self.codec is None:
            return CONTINUE  # the null sender is a bounce itself: never rewritten (RFC 5321 4.5.5)
        policy = self.domains.get(sender.rpartition("@")[2])
        if policy is None or policy.verp is None:
            return CONTINUE
        now = time.time()
        txn.return_path = self.codec.return_path(sender, txn.id, policy.verp, now=now)
        txn.notes["verp_day"] = int(now // 86400)  # the token's day: its recipients are kept as long as it
        return CONTINUE

    # -- a watcher of the upstream step (relay/steps/upstream.py) ------------------------------------

    async def upstream_replied(self, txn: Transaction, stage: str, rcpt: str | None, reply: Reply) -> dict | None:
        # Only the 250 to the final dot is acceptance (RFC 5321 4.1.1.4); the recipients are those the
        # next hop accepted at RCPT (lockstep: txn.rcpts holds no other), every one of whom the 250 covers.
        if (stage != "data" or reply.code != 250 or reply.source != "upstream" or txn.return_path is None
                or self.recipients is None):
            return None
        recipients = list(txn.rcpts)
        try:
            await self.recipients.record(txn.id, recipients, txn.notes.get("verp_day") or int(time.time() // 86400))
        except Exception as exc:
            # The next hop has the message: the client must hear 250 (a 4xx would have it sent twice).
            # What is lost is the right of later bounces to name these recipients: bounces_in ignores
            # them (logged there), it never lists on a guess.
            log.error("transaction %s: the message was accepted, but its %d recipient(s) could not be recorded "
                      "for its bounces: a bounce to its return path will be ignored (%s: %s)", txn.id,
                      len(recipients), type(exc).__name__, exc)
        return None


def verp_problems(settings, policies) -> list[Problem]:
    """A sender domain with `verp:` needs `bounces_in` with a key and that bounce domain: without them
    the return path could not be made, or its bounces would be refused."""
    problems = []
    source = getattr(policies.domains, "source", "domains.yaml")
    bounces = settings.bounces_in
    for domain in policies.domains.domains:
        policy = policies.domains.get(domain)
        if policy is None or policy.verp is None:
            continue
        where = f"{domain}.verp"
        if bounces is None or not bounces.key:
            problems.append(Problem(source, where, "needs bounces_in.key_file in the config (the key of the "
                                                   "return paths' tokens)"))
        elif not bounces.accepts(policy.verp):
            problems.append(Problem(source, where, f"{policy.verp} is not one of bounces_in.domains "
                                                   f"({', '.join(bounces.domains)})"))
    return problems


def check_verp(settings, policies) -> None:
    problems = verp_problems(settings, policies)
    if problems:
        raise ConfigError(problems)
