"""The ordered policy steps and the state they see.

A step is a small object with one job and any of the hooks below. Hooks return
a Decision; CONTINUE passes to the next step. An exception escaping a step is
a bug or an outside failure (DNS, database): the pipeline logs it with the
transaction id and answers `451 4.3.0`, never a silent pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from .decision import CONTINUE, V_CONTINUE, Decision, Reply, defer

log = logging.getLogger("relay.pipeline")


_FIELD_END = re.compile(rb"\r\n(?![ \t])")  # a CRLF not followed by WSP ends a field (RFC 5322 2.2.3)
_UNFOLD = re.compile(r"\r\n[ \t]")


def new_id() -> str:
    return secrets.token_hex(8)


@dataclass
class Session:
    """One client connection."""

    id: str
    peer_ip: str
    peer_port: int
    helo: str | None = None
    # The client greeted with EHLO (or LHLO), not HELO: RFC 5321 4.4's "ESMTP", not "SMTP", in Received.
    esmtp: bool = True
    tls: str | None = None  # TLS version once STARTTLS completed, e.g. "TLSv1.3"
    auth_user: str | None = None
    trusted_network: bool = False  # peer is inside clients.networks
    # Milter mode: a session on milter.non_smtpd_listen, mail submitted on this host with sendmail(1)
    # (Postfix's non_smtpd_milters), which the operator vouches for as for clients.networks.
    local_submission: bool = False
    # The sender domains this session may use (MAIL FROM, and the From: domain DKIM signs for):
    # None when not restricted (clients.networks; the MTA's own clients in milter mode), else an
    # AUTH user's domains from the users file ({"*"}: any). See relay.users.may_use.
    sender_domains: frozenset[str] | None = None

    @property
    def may_relay(self) -> bool:
        """Whether this client is ours: inside clients.networks, logged in, or a local submission.
        Relay mode refuses anyone else; in milter mode the MTA also passes on the world's mail (port 25),
        which the outbound steps must not vouch for (DKIM signing, the SPF pre-flight)."""
        return self.trusted_network or self.auth_user is not None or self.local_submission


class DotReply(enum.Enum):
    """The next hop's reply to a transaction's final dot."""

    NOT_SENT = "not sent"  # the final dot has not gone to the next hop (nothing can have been delivered)
    AWAITED = "awaited"  # it went; the next hop may accept the message at any moment
    ANSWERED = "answered"  # the next hop's reply came: the transaction's outcome is known


@dataclass
class Transaction:
    """One MAIL..DATA (or MAIL..RSET) transaction."""

    session: Session
    id: str
    mail_from: str
    mail_options: list[str] = field(default_factory=list)
    rcpts: list[str] = field(default_factory=list)  # accepted recipients
    # RCPTs of a mailbox already accepted in this transaction: answered 250 and collapsed, never sent
    # on, and still counted towards limits.max_recipients (relay/service.py, review14 F4).
    duplicate_rcpts: int = 0
    started: float = field(default_factory=time.time)
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased name -> value, once DATA was seen
    notes: dict[str, Any] = field(default_factory=dict)  # steps' scratch space
    # The envelope sender sent upstream when a step chose another one (VERP, steps/verp.py);
    # None: mail_from goes upstream unchanged. Events keep mail_from as the sender.
    return_path: str | None = None
    # LMTP (RFC 2033 4.2): the reply a step chose for each accepted recipient (the bounce listener's
    # BounceIntake), keyed by the address as given at RCPT; a recipient without one gets the message's
    # reply (relay/smtp.py LmtpHandler). Empty for SMTP: one reply for the message.
    replies_by_recipient: dict[str, Reply] = field(default_factory=dict)
    # The event-loop time by which the next hop's reply to the final dot is due (upstream.data_timeout
    # after the dot), set once the whole message and its dot have gone out (dot_sent); None before. From
    # then on the next hop may have accepted the message, so a shutdown waits for that reply rather than
    # cut it off (relay/server.py _drain_deadline). It stays set once the reply came.
    dot_reply_due: float | None = None
    # Where the next hop's reply to the final dot stands (RFC 5321 4.1.1.4): only while it is AWAITED is
    # the outcome unknown, and a client gone or a shutdown's cut recorded as such. Once ANSWERED, the
    # reply decides the outcome and its events are written whatever becomes of the client (review F2:
    # a client gone in the milliseconds between the reply and the transaction's end got "outcome
    # unknown", and a refusal's own event was lost with the cancelled command).
    dot: DotReply = DotReply.NOT_SENT
    # The next hop's reply to the final dot, once ANSWERED: the client's reply whatever fails after it
    # (RelayService._data). After a 250 the next hop has the message: a 451 for a failure of our own
    # recording it would have the client send it again, a second delivery (review-int4 F7).
    dot_reply: Reply | None = None
    # Whether the outcome of the command under way (MAIL, RCPT, DATA, the final dot) is known: a refusal
    # read from the next hop (or the answer to the final dot), or the steps' decision. From then on the
    # command records it whatever becomes of the client (RelayService._settle): a client gone while a
    # refusal was being recorded (the bounce list's lock held) lost its event and its count or listing.
    # Cleared as each command starts (RelayService._settle).
    decided: bool = False
    # The reply the client is due for that known outcome (the next hop's refusal, its answer to the final
    # dot), once the command has it: a shutdown that can no longer wait for the outcome's recording gives
    # the client this, never a 421 in its place (RelayServer.stop, review-int4's drain note).
    answer: Reply | None = None
    # The client went away, or was cut off, while a command whose outcome was known was recording it:
    # that command ends the transaction once it has (RelayService._abandon).
    left: bool = False
    # The command under way is inside Outcomes.refused (RelayService._record_refusal): the one place a
    # shutdown past the store's deadline may cancel it (RelayService.cut give_up), because there the
    # refusal's events are queued all the same. Elsewhere after the outcome is known (the watchers: the
    # shaping reaction's or the VERP record's write to the same store) a cancellation would have lost them.
    recording_refusal: bool = False
    # The next hop's refusal as the command under way would have returned it, when a cancellation reached
    # the command after it was read (Transaction.decided) and before it was returned: in a watcher's write
    # (UpstreamStep._heard), which a shutdown's drain cancels past its own bound (RelayService.drain). The
    # command then queues its events without the bounce list (RelayService._given_up): the client was told
    # that refusal, and its event is never lost with the write (review-int2 F1, option b).
    unrecorded_refusal: Decision | None = None

    def decide(self, reply: Reply | None = None) -> None:
        """The outcome of the command under way is known (see `decided`); `reply`, the client's reply for it
        when known (see `answer`)."""
        self.decided = True
        if reply is not None:
            self.answer = reply

    def dot_sent(self, due: float) -> None:
        """The whole message and its final dot went to the next hop; its reply is due by `due`."""
        self.dot_reply_due = due
        self.dot = DotReply.AWAITED

    def dot_answered(self, reply: Reply | None = None) -> None:
        """The next hop's reply to the final dot arrived (whatever it says)."""
        if self.dot is DotReply.AWAITED:
            self.dot = DotReply.ANSWERED
            self.dot_reply = reply
            self.decide(reply)

    @property
    def awaiting_dot_reply(self) -> bool:
        """The final dot went out and its reply has not come: the message may be delivered or not."""
        return self.dot is DotReply.AWAITED



class Message:
    """The message at end of DATA: CRLF-normalised bytes, plus headers steps prepend.

    Steps must not rewrite `body`; they add header lines with `prepend()` (the
    DKIM signature, Authentication-Results, Received), which go on top in the
    order prepended last-first, as each hop adds its trace on top (RFC 5321 4.4).
    """

    def __init__(self, data: bytes, dot_lines: bool = True):
        self.original = data
        # Whether a line of `original` may start with "." (RFC 5321 4.5.2: the way out doubles it);
        # False when the SMTP layer saw none, so that nobody looks through the message for one again.
        self.dot_lines = dot_lines
        self._prepended: list[bytes] = []
        self._headers: list[tuple[str, str]] | None = None
        self.removed_headers: set[int] = set()  # indexes in original headers to drop
        self.prepared: dict[str, Any] = {}  # work a step started in prepare_data, by step name

    def prepend(self, header: bytes) -> None:
        if not header.endswith(b"\r\n"):
            header += b"\r\n"
        if header.startswith(b".") or b"\n." in header:
            self.dot_lines = True
        self._prepended.insert(0, header)

    @property
    def added_headers(self) -> list[bytes]:
        """The fields steps prepended, top first, each ending in CRLF (milter mode inserts them
        into the MTA's copy instead of sending the assembled message)."""
        return list(self._prepended)

    @property
    def header_block(self) -> bytes:
        if self.original.startswith(b"\r\n"):
            # RFC 5322 2.1: the first empty line ends the header section, here the very first line: no
            # fields at all (as relay.dkim.body_offset signs it). Taking the body's lines for fields let a
            # step remove one and dropped the empty line: the body became the header (review-20 F5).
            return b""
        # A plain find (memchr-based), not a regex: a message with no empty line would otherwise be
        # scanned to its end byte by byte.
        end = self.original.find(b"\r\n\r\n")
        return self.original[:end + 2] if end >= 0 else self.original

    def _fields(self) -> list[bytes]:
        """The raw header fields (folded lines kept together), without their final CRLF.
        Lines without a colon are not fields (RFC 5322 2.2) and are left out."""
        return [raw for raw in _FIELD_END.split(self.header_block) if b":" in raw]

    def headers(self) -> list[tuple[str, str]]:
        """(name, unfolded value) of the original header, in order; the index of a field here is
        what `removed_headers` refers to."""
        if self._headers is None:
            out: list[tuple[str, str]] = []
            for raw in self._fields():
                name, _, value = raw.partition(b":")
                text = value.decode("utf-8", "replace")
                if "\r\n" in text:  # folded (RFC 5322 2.2.3)
                    text = _UNFOLD.sub(" ", text)
                out.append((name.decode("ascii", "replace").strip(), text.strip()))
            self._headers = out
        return self._headers

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for n, v in self.headers():
            if n.lower() == lname:
                return v
        return None

    def chunks(self) -> list[bytes]:
        """What goes upstream, in pieces that each start a line: prepended headers, then the
        original less removed fields. Kept in pieces so that a large message is not copied."""
        if not self.removed_headers:
            return [*self._prepended, self.original]
        block = self.header_block
        kept = [f + b"\r\n" for i, f in enumerate(self._fields()) if i not in self.removed_headers]
        return [*self._prepended, *kept, memoryview(self.original)[len(block):]]

    def assembled(self) -> bytes:
        return b"".join(self.chunks())


class Step:
    """Base with no-op hooks; subclasses override what they need."""

    name = "step"

    async def on_connect(self, session: Session) -> Decision:
        return CONTINUE

    async def on_mail(self, txn: Transaction) -> Decision:
        return CONTINUE

    async def on_rcpt(self, txn: Transaction, rcpt: str) -> Decision:
        return CONTINUE

    def after_rcpt(self, txn: Transaction, rcpt: str) -> None:
        """The RCPT's reply is decided, whatever it is and whichever step gave it (or the command was
        cancelled: the client went away): a step that took something at on_rcpt for `rcpt` and has not
        heard it used gives it back here (traffic shaping's place in a rate limit, review32 #1). Must
        not wait: it runs as the command ends, cancelled or not."""

    async def on_data_start(self, txn: Transaction) -> Decision:
        """The client's message is complete, before any step's on_data: a verdict here (the
        upstream refusing DATA) answers the message without the work of the other steps."""
        return CONTINUE

    def prepare_data(self, txn: Transaction, message: Message) -> None:
        """The message while on_data_start is still waiting (on the upstream's 354), when it is large
        enough for a head start to pay (RelayService.data): a step may
        start work that on_data will need, in the background (the DKIM body hash). Must not block
        and must not decide anything: on_data may never come (DATA refused), and when it does, it
        must do the work itself if what was started here is not there or failed."""

    async def on_data(self, txn: Transaction, message: Message) -> Decision:
        return CONTINUE

    async def on_reset(self, txn: Transaction) -> None:
        """The transaction ended (after DATA, or without: RSET, QUIT, drop)."""

    # A step whose on_reset never waits may also define `reset_now(txn)`, the same work as a plain
    # call: when every step with an on_reset has one, a transaction's end needs no task of its own
    # (Pipeline.reset_now, RelayService._end).

    async def close(self) -> None:
        """Release resources when the pipeline is replaced or the server stops."""


_HOOKS = ("on_connect", "on_mail", "on_rcpt", "after_rcpt", "on_data_start", "prepare_data", "on_data", "on_reset", "close")


class Pipeline:
    def __init__(self, steps: Iterable[Step]):
        self.steps = list(steps)
        # Per hook, the steps that have one of their own: the base class's no-op hooks would cost a
        # coroutine each (about 30 a message for a default pipeline) to say CONTINUE.
        self._hooked = {hook: [step for step in self.steps if getattr(type(step), hook, None) is not getattr(Step, hook)]
                        for hook in _HOOKS}
        # Whether every step that resets something can do it without waiting (reset_now).
        self._resets_now = all(callable(getattr(step, "reset_now", None)) for step in self._hooked["on_reset"])
        self._users = 0  # transactions and commands using this pipeline now
        self._retired = False
        self._idle: asyncio.Event | None = None

    # -- lifetime: a reload retires a pipeline, which closes once nothing uses it ---------------

    def hold(self) -> None:
        self._users += 1

    def let_go(self) -> None:
        self._users -= 1
        if self._users == 0 and self._idle is not None:
            self._idle.set()

    @contextlib.contextmanager
    def in_use(self):
        self.hold()
        try:
            yield self
        finally:
            self.let_go()

    async def retire(self) -> None:
        """Close once the last transaction and command using this pipeline are done (SIGHUP:
        sessions under way finish with the steps they started with)."""
        self._retired = True
        if self._users:
            self._idle = asyncio.Event()
            await self._idle.wait()
        await self.close()

    async def _run(self, hook: str, txn_id: str, *args) -> Decision:
        for step in self._hooked[hook]:
            try:
                decision = await getattr(step, hook)(*args)
            except asyncio.CancelledError:
                if _being_cancelled():
                    raise  # this command itself is cancelled (the client went away, shutdown)
                # Something the step waited on was cancelled under it (an executor shut down):
                # a failure of the step like any other, and the client still gets a reply.
                log.error("step %s was cancelled in %s (transaction %s)", step.name, hook, txn_id)
                return defer(451, "4.3.0", "Temporary local problem, please try again later",
                             kind="deferred", cause="local-error", step=step.name)
            except Exception:
                log.exception("step %s failed in %s (transaction %s)", step.name, hook, txn_id)
                return defer(451, "4.3.0", "Temporary local problem, please try again later",
                             kind="deferred", cause="local-error", step=step.name)
            if decision.verdict is not V_CONTINUE:
                return decision
        return CONTINUE

    async def connect(self, session: Session) -> Decision:
        return await self._run("on_connect", session.id, session)

    async def mail(self, txn: Transaction) -> Decision:
        return await self._run("on_mail", txn.id, txn)

    async def rcpt(self, txn: Transaction, rcpt: str) -> Decision:
        try:
            return await self._run("on_rcpt", txn.id, txn, rcpt)
        finally:
            for step in self._hooked["after_rcpt"]:
                try:
                    step.after_rcpt(txn, rcpt)
                except Exception:
                    log.exception("step %s failed in after_rcpt (transaction %s)", step.name, txn.id)

    async def data(self, txn: Transaction, message: Message) -> Decision:
        decision = await self.data_start(txn)
        if decision.verdict is not V_CONTINUE:
            return decision
        return await self.data_ready(txn, message)

    # The message in two halves, for a caller that prepares the message while the first runs
    # (RelayService.data): on_data_start, then (prepare_data, and) on_data.

    async def data_start(self, txn: Transaction) -> Decision:
        return await self._run("on_data_start", txn.id, txn)

    def prepare_data(self, txn: Transaction, message: Message) -> None:
        for step in self._hooked["prepare_data"]:
            try:
                step.prepare_data(txn, message)
            except Exception:
                # Only a head start lost: the step's on_data does the work itself.
                log.exception("step %s failed in prepare_data (transaction %s)", step.name, txn.id)

    async def data_ready(self, txn: Transaction, message: Message) -> Decision:
        return await self._run("on_data", txn.id, txn, message)

    async def _notify(self, hook: str, what: str, *args) -> None:
        """A hook with no verdict, on every step; one step's failure does not stop the others."""
        for step in self._hooked[hook]:
            try:
                await getattr(step, hook)(*args)
            except asyncio.CancelledError:
                if _being_cancelled():
                    raise
                log.error("step %s was cancelled in %s (%s)", step.name, hook, what)
            except Exception:
                log.exception("step %s failed in %s (%s)", step.name, hook, what)

    async def reset(self, txn: Transaction) -> None:
        await self._notify("on_reset", f"transaction {txn.id}", txn)

    def reset_now(self, txn: Transaction) -> bool:
        """reset() without an await, when every step can (see Step.on_reset); False when one
        cannot, and nothing was done: the caller awaits reset() instead."""
        if not self._resets_now:
            return False
        for step in self._hooked["on_reset"]:
            try:
                step.reset_now(txn)
            except Exception:
                log.exception("step %s failed in on_reset (transaction %s)", step.name, txn.id)
        return True

    async def close(self) -> None:
        await self._notify("close", "closing")


def _being_cancelled() -> bool:
    """Whether the running task itself was asked to stop (Python 3.11 Task.cancelling()), as
    opposed to a CancelledError coming out of a future someone else cancelled."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0
