"""The relay's session logic, independent of the SMTP library.

The aiosmtpd adapter (smtp.py) calls these methods for each client command
and sends back the Reply it gets. Each command runs the pipeline of policy
steps; the last step is the upstream, so the client's reply is the upstream's
own (lockstep) unless a step refused first.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import replace
from typing import Any, Coroutine

from .address import ascii_reply, fold, literal_problem, mailbox_problem, printable, shown, unsendable
from .decision import V_ACCEPT, V_CONTINUE, Decision, Reply, Verdict
from .events import make_event
from .outcomes import Outcomes
from .pipeline import Message, Pipeline, Session, Transaction, new_id
from .maildata import crlf_normalise, crlf_normalised, header_refusal

log = logging.getLogger("relay.service")

# What a deferred event says of a message whose final dot the next hop had when the relay had to stop
# waiting for its reply (shutdown: RelayService.cut).
UNKNOWN_OUTCOME = "unknown: the upstream had the whole message"
# What the deferred event of a client gone after its final dot says (RelayService.disconnected); never sent.
CLIENT_GONE_AFTER_DOT = Reply.make(
    451, "4.4.2", "The client closed the connection after its final dot, before the upstream answered: the "
                  "message may have been delivered", cause="client-gone-after-dot")

# From this size on the message is made ready (line endings, a DKIM body hash started in a thread)
# while the upstream's answer to DATA is awaited; below it, after: see RelayService.data.
HEAD_START_BYTES = 64 * 1024

# Beyond the bounce list's own write deadline, for an outcome being recorded to be written (its events).
RECORDING_MARGIN = 1.0


# RFC 5322 3.6.8: field-name = 1*ftext (printable US-ASCII but ":"), then ":"; 4.5.3 (obsolete syntax, which
# a reader must still take) allows white space before the colon.
_FIELD_START = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:")


def _first_line_starts_body(data: bytes) -> bool:
    """The message's first line cannot be in a header section: a continuation line with something in it
    (RFC 5322 2.2.3: SP or HTAB first, and not white space alone), or a line with text that is no header
    field (no field name and colon, RFC 5322 3.6.8, e.g. "hello world"). An empty first line already
    ends the (empty) header section; a line of white space alone adds nothing to the field it folds into."""
    end = data.find(b"\n")
    first = (data if end < 0 else data[:end]).rstrip(b"\r")
    if not first.strip():
        return False
    if first[:1] in (b" ", b"\t"):
        return True
    return not _FIELD_START.match(first)


class RelayService:
    def __init__(self, settings, policies, pipeline: Pipeline, outcomes: Outcomes, metrics=None):
        self.settings = settings
        self.policies = policies
        self.pipeline = pipeline
        self.outcomes = outcomes
        self.metrics = metrics
        self.sessions: dict[str, Session] = {}
        self._txns: dict[str, Transaction] = {}
        # The pipeline each open transaction started with: a reload replaces self.pipeline, and the
        # old one is closed only when the last transaction holding it has ended.
        self._txn_pipeline: dict[str, Pipeline] = {}
        self._endings: set[asyncio.Task] = set()  # transaction ends under way (see _end)
        # Per transaction id, its command under way (MAIL, RCPT, DATA: RelayService._settle): a task of the
        # service's own, so that once the command's outcome is known (the next hop's refusal, its answer
        # to the final dot), the client going away cannot cut the recording of that outcome short.
        self._concluding: dict[str, asyncio.Task] = {}
        # Per session id, the transaction of the client's command under way (_settle) until that command has
        # its reply: still open, or already ended by the command (its final dot answered, the transaction
        # ended, the reply on its way to the client over the next turns of the loop), or the one a MAIL is
        # opening (in _txns only once the MAIL is accepted: a MAIL's refusal being recorded is waited for at
        # shutdown as a RCPT's is, recording(), and cut() gives it up alike). See answering().
        self._answering: dict[str, Transaction] = {}
        self.users = None  # the AUTH users (relay.users.Users), replaced on reload

    def count(self, name: str, **labels) -> None:
        if self.metrics is not None:
            self.metrics.inc(name, **labels)

    # -- connection ---------------------------------------------------------

    async def connect(self, peer_ip: str, peer_port: int) -> tuple[Session, Reply | None]:
        session = Session(id=new_id(), peer_ip=peer_ip, peer_port=peer_port,
                          trusted_network=self.settings.clients.trusted(peer_ip))
        self.sessions[session.id] = session
        self.count("relay_connections_total")
        if not session.trusted_network and self.settings.clients.users_file is None:
            # Nobody outside clients.networks can ever relay here (no AUTH configured): say so at once
            # (RFC 5321 3.1: a 554 greeting).
            reply = Reply.make(554, "5.7.1", f"{peer_ip} may not relay through {self.settings.hostname}: "
                                             f"not in clients.networks", cause="relay-access-denied")
            await self.outcomes.refused(None, session, "connect", [], Decision(Verdict.REJECT, reply,
                                                                              "policy_rejected"))
            return session, reply
        with self.pipeline.in_use() as pipeline:
            decision = await pipeline.connect(session)
        if decision.verdict in (Verdict.REJECT, Verdict.DEFER):
            await self.outcomes.refused(None, session, "connect", [], decision)
            return session, decision.reply
        return session, None

    async def helo(self, session: Session, name: str, esmtp: bool = True) -> Reply | None:
        """HELO/EHLO: the open transaction ends (RFC 5321 4.1.4); a name that could smuggle bytes
        into our Received: header (CR, LF, NUL, any control, or bytes that are not UTF-8) is refused.
        `esmtp`: it was EHLO (or LHLO), not HELO."""
        await self.reset(session)
        why = unsendable(name)
        if why is None:
            session.helo = name
            session.esmtp = esmtp
            return None
        reply = Reply.make(501, "5.5.4", f"Bad HELO/EHLO name \"{printable(name[:100])}\": {why}; "
                                         f"send a domain name or an address literal (RFC 5321 4.1.1.1)")
        await self.outcomes.refused(None, session, "helo", [], Decision(Verdict.REJECT, reply))
        return reply

    def in_transaction(self, session: Session | None) -> bool:
        return session is not None and session.id in self._txns

    def transaction(self, session: Session | None) -> Transaction | None:
        """The session's open transaction (LMTP reads the per-recipient answers its steps left in it)."""
        return self._txns.get(session.id) if session is not None else None

    def answering(self, session: Session | None) -> Transaction | None:
        """The session's open transaction, or, while the client's command that ended it has not had its reply
        yet, the transaction it ended. A DATA ends its transaction (_end: out of _txns at once) before the
        command returns the next hop's answer to the client, one or more turns of the loop later (the
        steps' resets, the task and shield hand-overs): a shutdown that took that session for one in no
        transaction cut it off with a bare 421 after the next hop's 250, and the client sent the message
        again (a second delivery, RFC 1047). The shutdown reads the transaction's state here
        (relay/server.py _drain_deadline)."""
        if session is None:
            return None
        return self._txns.get(session.id) or self._answering.get(session.id)

    async def disconnect(self, session: Session) -> None:
        self.disconnected(session)

    def disconnected(self, session: Session) -> None:
        """The client connection is gone (QUIT, drop, shutdown): its transaction ends in a task
        the service owns, so that nothing of it is lost with the connection's handler."""
        txn = self._txns.get(session.id)
        # A transaction whose command under way has its outcome (a refusal, the answer to the final dot) is
        # left to that command, which records it and ends the transaction (_abandon).
        if txn is not None and self._abandon(txn):
            if txn.awaiting_dot_reply:
                # Gone after its final dot went upstream, before the upstream answered: the upstream
                # connection closes with it, and the upstream may have queued the message all the same
                # (RFC 1047: the client, told nothing, sends it again). Recorded as the shutdown's cut
                # after the dot is, its outcome unknown, never as if nothing had gone (no event at all).
                self._txns.pop(session.id, None)
                log.warning("session %s: the client went away after its final dot, before the upstream "
                            "answered; transaction %s deferred, outcome %s", session.id, txn.id, UNKNOWN_OUTCOME)
                task = asyncio.get_running_loop().create_task(self._record_cut(
                    txn, session, "data", list(txn.rcpts), CLIENT_GONE_AFTER_DOT, {"outcome": UNKNOWN_OUTCOME}),
                    name=f"deferral of transaction {txn.id} (session {session.id}, client gone)")
                self._endings.add(task)
                task.add_done_callback(self._endings.discard)
            else:
                self._end(txn)
        self.sessions.pop(session.id, None)

    def _abandon(self, txn: Transaction) -> bool:
        """The client is gone or cut off: stop the transaction's command under way where it is, unless its
        outcome is known (Transaction.decided: the next hop's refusal was read, or its answer to the final
        dot; or the steps decided). Then the command goes on: it records that outcome (never taken for
        unknown, never a refusal's event, count or listing lost with the client) and ends the transaction
        (Transaction.left). Decided here, synchronously, for the caller and the command alike: a command
        cancelled now can no longer take the reply (the cancellation reaches it before the reply does).
        False: it goes on."""
        conclusion = self._concluding.get(txn.id)
        if conclusion is not None and not conclusion.done():
            if txn.decided:
                txn.left = True
                return False
            conclusion.cancel()
        return True

    def recording(self, session: Session | None) -> bool:
        """Whether the session's transaction has its outcome (Transaction.decided: the next hop's refusal,
        its answer to the final dot) and its command is recording it: its reply to the client is the real
        one, due once the events and the bounce list's write are done (the store's own deadline)."""
        txn = self.answering(session)
        if txn is None or not txn.decided:
            return False
        conclusion = self._concluding.get(txn.id)
        if conclusion is None or conclusion.done():
            # Recorded, and its reply on its way to the client over the next turns of the loop (the shield's
            # hand-over to the client's command, answering()): a shutdown's look in those turns that took the
            # session for one with nothing due cut it off with a bare 421 in place of that reply (a 550 at MAIL
            # or RCPT, which the client then tries again; at the dot, "may have been delivered").
            return session is not None and self._answering.get(session.id) is txn
        return True

    def recording_seconds(self) -> float:
        """How long an outcome being recorded may take at most: the bounce list's own write deadline (its
        lock, SQLite's busy_timeout or PostgreSQL's lock_timeout), and a margin for the events."""
        return getattr(self.outcomes.store, "write_deadline", 5.0) + RECORDING_MARGIN

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for the transaction ends under way (shutdown: before the pool, store and sinks close), for
        `timeout` seconds at most (by default recording_seconds()): each is bounded by the store's or the
        upstream's deadline, but none may hang the shutdown (review-int2 F8). What is still under way then
        is logged, then cancelled: the store is about to close under it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.recording_seconds() if timeout is None else timeout)
        while self._endings:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await asyncio.wait(list(self._endings), timeout=remaining)
        if not self._endings:
            return
        left = sorted(task.get_name() for task in self._endings)
        log.error("stopping: %d transaction end(s) still under way after %g s, abandoned (their events so far "
                  "are written; what they were still recording is not): %s", len(left),
                  self.recording_seconds() if timeout is None else timeout, ", ".join(left)[:2000])
        for task in list(self._endings):
            task.cancel()
        # One turn for the cancellations to land (a SQLite write rolls back in its thread), never a wait.
        if self._endings:
            await asyncio.wait(list(self._endings), timeout=RECORDING_MARGIN)

    # -- transaction --------------------------------------------------------

    async def mail(self, session: Session, sender: str, options: list[str]) -> Reply:
        txn = Transaction(session=session, id=new_id(), mail_from=sender, mail_options=list(options))
        txn.notes["stage"] = "mail"
        problem = address_problem(sender, "sender", smtputf8=_smtputf8(options))
        # An address no upstream could be sent is refused here, before the upstream transaction
        # exists, so that it cannot break a connection other commands depend on.
        pipeline = self.pipeline
        pipeline.hold()  # until the transaction ends, whatever a reload does meanwhile
        self._txn_pipeline[txn.id] = pipeline
        return await self._settle(txn, self._mail(session, txn, pipeline, problem))

    async def _mail(self, session: Session, txn: Transaction, pipeline: Pipeline, problem: Reply | None) -> Reply:
        try:
            decision = Decision(Verdict.REJECT, problem) if problem else await pipeline.mail(txn)
        except BaseException as exc:  # cancelled (the client hung up): the transaction still ends
            if isinstance(exc, asyncio.CancelledError):
                self._given_up(txn, session, "mail", [])
            self._end(txn)
            raise
        if decision.verdict is V_CONTINUE:  # no step answered: a wiring bug, never a silent 250
            decision = Decision(Verdict.DEFER, Reply.make(451, "4.3.0", "Temporary local problem", cause="local-error"))
        txn.decide(decision.reply)
        if decision.verdict is V_ACCEPT:
            if txn.left:  # the client is gone: nobody will use the transaction
                self._end(txn)
            else:
                self._txns[session.id] = txn
            return decision.reply
        try:
            await self._record_refusal(txn, session, decision.stage or "mail", [], decision)
        finally:
            await self._end(txn)
        return decision.reply

    async def rcpt(self, session: Session, recipient: str, options: list[str]) -> Reply:
        txn = self._txns.get(session.id)
        if txn is None:
            return Reply.make(503, "5.5.1", "Need MAIL command first")
        # Every accepted RCPT counts towards max_recipients, a duplicate too, as every one counts
        # towards Postfix's smtpd_recipient_limit: uncounted, a client could repeat one RCPT for ever,
        # each restarting the idle deadline, and hold its slot and its upstream connection (review14 F4).
        if len(txn.rcpts) + txn.duplicate_rcpts >= self.settings.limits.max_recipients:
            # RFC 5321 4.5.3.1.8: 452 tells the client to send the rest in another transaction.
            reply = Reply.make(452, "4.5.3", f"Too many recipients (at most "
                                             f"{self.settings.limits.max_recipients} per message)",
                               cause="too-many-recipients")
            await self.outcomes.refused(txn, session, "rcpt", [recipient], Decision(Verdict.DEFER, reply))
            return reply
        key = same_mailbox_key(recipient)
        if any(same_mailbox_key(r) == key for r in txn.rcpts):
            # RFC 5321 allows a server to accept a duplicate; sent on, the upstream delivered the
            # message twice. Collapsed as Postfix does: the same 250, no second upstream RCPT.
            txn.duplicate_rcpts += 1
            return Reply.make(250, "2.1.5", f"Duplicate recipient <{shown(recipient)}>: already "
                                            f"accepted in this transaction, delivered once")
        txn.notes["stage"] = "rcpt"
        problem = address_problem(recipient, "recipient", smtputf8=_smtputf8(txn.mail_options))
        return await self._settle(txn, self._rcpt(session, txn, recipient, problem))

    async def _rcpt(self, session: Session, txn: Transaction, recipient: str, problem: Reply | None) -> Reply:
        try:
            try:
                decision = (Decision(Verdict.REJECT, problem) if problem
                            else await self._txn_pipeline[txn.id].rcpt(txn, recipient))
            except asyncio.CancelledError:
                self._given_up(txn, session, "rcpt", [recipient])
                raise
            if decision.verdict is V_CONTINUE:
                decision = Decision(Verdict.DEFER, Reply.make(451, "4.3.0", "Temporary local problem",
                                                              cause="local-error"))
            txn.decide(decision.reply)
            if decision.verdict is V_ACCEPT:
                txn.rcpts.append(recipient)
                return decision.reply
            try:
                await self._record_refusal(txn, session, decision.stage or "rcpt", [recipient], decision)
            finally:
                if decision.reply.code == 421 and txn.rcpts:
                    # RFC 5321 3.8: a 421 (the next hop's, relayed) closes the channel, and the SMTP layer closes
                    # the client's after it: the transaction ends for the recipients it had accepted too, and the
                    # client defers them with the rest. Their events were lost (the disconnect writes none). The
                    # reply answered this recipient's RCPT, not theirs: for them it is the session's end, never a
                    # word about their addresses (Outcomes.session_closed). In a `finally`: nothing in it waits,
                    # and a recording cancelled in Outcomes.refused (a shutdown's give-up, or drain() past its
                    # bound with the client gone) still queues them after the refusal's own event; cut() leaves
                    # them to this command then (review of int2, 2026-12-02, F1: they had no event at all).
                    self.outcomes.session_closed(txn, session, decision.stage or "rcpt", recipient,
                                                 list(txn.rcpts), decision)
            return decision.reply
        finally:
            if txn.left:
                # The client went away while this was recorded (_abandon left the transaction to it).
                self._end(txn)

    async def data_start(self, session: Session) -> None:
        """The client was told 354 and its message is arriving (the upstream is asked for DATA only
        once it is complete: see UpstreamStep.on_data_start)."""
        txn = self._txns.get(session.id)
        if txn is not None and txn.rcpts:
            txn.notes["stage"] = "data"

    async def data(self, session: Session, content: bytes, dot_lines: bool = True, crlf_only: bool = False) -> Reply:
        """The message at the final dot. `dot_lines`: whether a line of `content` may start with "."
        (the SMTP layer saw none: False, and the way out needs no look for one). `crlf_only`: the
        SMTP layer saw every line ending of it as it came, and each is a CRLF (no pass over the
        whole message again here, holding the loop 10-15 ms for 10 MiB)."""
        txn = self._txns.get(session.id)
        if txn is None or not txn.rcpts:
            return Reply.make(503, "5.5.1", "Need RCPT command first")
        txn.notes["stage"] = "data"
        refusal = header_refusal(content, crlf_only)
        if refusal is not None:
            # Before the upstream hears of the message, and before any step reads the header.
            reply = replace(Reply.parse(refusal, source="relay"), cause="header-too-large")
            await self.data_refused(session, reply)
            return reply
        return await self._settle(txn, self._data(session, txn, content, dot_lines, crlf_only))

    async def _data(self, session: Session, txn: Transaction, content: bytes, dot_lines: bool,
                    crlf_only: bool) -> Reply:
        """The rest of DATA: the DATA command, the message and its final dot to the next hop, the answer
        recorded, the transaction's end. Once the next hop has answered the final dot, that answer is the
        client's, whatever fails after it: aiosmtpd answers an exception 451, and after the next hop's 250
        the client sent the message again, a second delivery (review-int4 F7)."""
        try:
            return await self._data_steps(session, txn, content, dot_lines, crlf_only)
        except asyncio.CancelledError:
            self._given_up(txn, session, "data", list(txn.rcpts))  # ended by _concluded (txn.left) or the cut
            raise
        except Exception:
            reply = txn.dot_reply
            if reply is None:
                raise
            log.error("session %s: transaction %s: a failure after the next hop answered the final dot (%s); "
                      "the client is given that answer all the same", session.id, txn.id,
                      printable(reply.wire_lines()[0])[:120], exc_info=True)
            if txn.id in self._txn_pipeline:  # it failed before the transaction ended: ended here
                try:
                    await self._end(txn)
                except Exception:
                    log.exception("session %s: transaction %s: its end failed too", session.id, txn.id)
            return reply

    async def _data_steps(self, session: Session, txn: Transaction, content: bytes, dot_lines: bool,
                          crlf_only: bool) -> Reply:
        pipeline = self._txn_pipeline[txn.id]
        if len(content) < HEAD_START_BYTES:
            # A small message: nothing to make ready is worth a head start (no thread hashes a body
            # this size, its line endings take microseconds), and the task, the extra turn of the
            # loop and the cancel of the overlap below would cost more than they save. DATA goes
            # upstream first all the same.
            decision = await pipeline.data_start(txn)
            message = self._message(txn, content, content if crlf_only else crlf_normalise(content), dot_lines)
        else:
            # DATA goes upstream first, and the message is made ready (line endings, the DKIM body hash
            # in a thread) while the 354 is on its way: for a large message the two waits overlap
            # instead of adding up. sleep(0) lets the task write DATA first. Line endings are made
            # CRLF a piece at a time, the loop turning in between, so that other sessions go on
            # meanwhile (30 MB of bare LF held it ~1 s in one go: issue #15).
            started = asyncio.ensure_future(pipeline.data_start(txn))
            try:
                await asyncio.sleep(0)
                data = content if crlf_only else await crlf_normalised(content, dirty=True)
                message = self._message(txn, content, data, dot_lines)
                if not _refused(started):  # no head start for work nobody will need
                    pipeline.prepare_data(txn, message)
                decision = await started
            finally:
                started.cancel()  # only if this command itself was cancelled before DATA was answered
        if decision.verdict is V_CONTINUE:
            # Undecided until the next hop answers the final dot (Transaction.dot_answered): before that,
            # a client gone leaves the outcome unknown (disconnected()).
            decision = await pipeline.data_ready(txn, message)
        else:
            txn.decide()  # the DATA command's own refusal (or the steps'): recorded whoever is left
        if decision.verdict is V_CONTINUE:
            decision = Decision(Verdict.DEFER, Reply.make(451, "4.3.0", "Temporary local problem", cause="local-error"))
        if txn.decided:
            txn.answer = decision.reply  # the client's reply for the known outcome (Transaction.answer)
        if decision.verdict is V_ACCEPT:
            self.count("relay_messages_total", result="accepted")
        else:
            self.count("relay_messages_total", result=decision.verdict.value)
            await self._record_refusal(txn, session, "data", list(txn.rcpts), decision)
        await self._end(txn)
        return decision.reply

    async def _settle(self, txn: Transaction, command: Coroutine[Any, Any, Reply]) -> Reply:
        """Run `command`, the rest of a MAIL, RCPT or DATA of `txn` (the steps, the next hop, the outcome
        recorded), in a task of the service's own, which the client's command awaits without its
        cancellation reaching it. The client going away (aiosmtpd cancels the command) or a shutdown's
        cut stops it only while its outcome is not known (_abandon). Once it is (the next hop's refusal
        read, its answer to the final dot), its events are written, the bounce list counts or lists, and
        the transaction ends as that outcome says, the client there to hear it or not: a client gone while
        the list's lock was held lost them (review F2, then at MAIL, RCPT and the DATA command). drain()
        waits for it (_endings)."""
        txn.decided = False
        txn.answer = None
        conclusion = asyncio.get_running_loop().create_task(
            command, name=f"{txn.notes.get('stage', 'mail')} of transaction {txn.id} (session {txn.session.id})")
        self._concluding[txn.id] = conclusion
        self._endings.add(conclusion)
        conclusion.add_done_callback(lambda task, txn=txn: self._concluded(txn, task))
        session_id = txn.session.id
        self._answering[session_id] = txn
        try:
            return await asyncio.shield(conclusion)
        except asyncio.CancelledError:
            # Unless decided, the command is cancelled (disconnected() or cut() did already). If it goes
            # on, drain() waits for it (_endings). Nobody awaits it now: a failure of its own is logged.
            if not conclusion.done():
                self._abandon(txn)
            conclusion.add_done_callback(_log_failure)
            raise
        finally:
            # Here, in the client's command itself: from the return to the reply's write (RelaySMTP.push)
            # nothing awaits, so no shutdown's look falls between the two (answering()).
            if self._answering.get(session_id) is txn:
                del self._answering[session_id]

    def _concluded(self, txn: Transaction, conclusion: asyncio.Task) -> None:
        self._endings.discard(conclusion)
        if self._concluding.get(txn.id) is conclusion:
            del self._concluding[txn.id]
        if txn.left and txn.id in self._txn_pipeline and (conclusion.cancelled() or conclusion.exception()):
            # The client is gone and left the transaction to this command (_abandon), which failed
            # before it ended it: nobody else will. Ended here, or its upstream connection, its pipeline
            # and its slot in drain() stayed taken for good (review-int2 F1).
            self._end(txn)

    @staticmethod
    def _message(txn: Transaction, content: bytes, data, dot_lines: bool) -> Message:
        """The message as it goes on, its headers noted on the transaction. `data`: `content` with its
        line endings made CRLF (itself when they were)."""
        # A bare CR or LF made into CRLF starts a new line, which may start with ".".
        dot_lines = dot_lines or data is not content
        if _first_line_starts_body(data):
            # The first line is a continuation line with no field before it to continue (RFC 5322
            # 2.2.3): the fields the steps prepend (Received, Authentication-Results, DKIM-Signature)
            # would take it as the end of the topmost of them, and a client could extend the relay's own
            # trace field (RFC 5321 4.4), e.g. with "; Thu, 01 Jan 1970 ..." as its date or "(authenticated
            # as ...)". Or it is text that is no header field ("hello world"): after the prepended fields
            # it sat inside the header section, a malformed line there that readers take as the end of
            # the header section, or not, each its own way. Either way the message has no header section
            # (RFC 5322 2.1: only fields precede the empty line): an empty line first makes all of it the
            # body, as it can only be read (Postfix's cleanup does the same: a first line that is no
            # header starts the body, and it puts the empty line before it). A first line of nothing but
            # white space adds nothing to the field it folds into, and the header fields after it stay
            # the message's own (review-int2 F3: they became body, From and Message-ID with them).
            data = b"\r\n" + data
        message = Message(data, dot_lines=dot_lines)
        txn.headers = {}
        for name, value in message.headers():
            txn.headers.setdefault(name.lower(), value)
        return message

    async def refused_before(self, session: Session, stage: str, address: str, reply: Reply) -> None:
        """The SMTP layer refused a MAIL or RCPT (`stage`) before it reached the service: a path that is
        no address (553), a declared SIZE= over limits.max_message_size (552, RFC 1870 6.1). The client
        saw the refusal, so it is recorded as the service's own refusal of the same would be: a
        policy_rejected event, classified by the reply's cause (relay-replies.yaml). A MAIL refused
        opens no transaction: the event is written at once, with the sender the client gave."""
        decision = Decision(Verdict.REJECT, reply, "policy_rejected")
        if stage == "mail":
            txn = Transaction(session=session, id=new_id(), mail_from=address)
            txn.notes["stage"] = "mail"
            await self.outcomes.refused(txn, session, "mail", [], decision)
            record_end(self.outcomes, txn)
            return
        txn = self._txns.get(session.id)
        if txn is not None:  # (a RCPT without MAIL is aiosmtpd's 503, a protocol error: no event)
            await self.outcomes.refused(txn, session, "rcpt", [address], decision)

    async def data_refused(self, session: Session, reply: Reply) -> None:
        """The SMTP layer refused the message data (RFC 5321 4.5.3.1: size, line length; NUL)."""
        txn = self._txns.get(session.id)
        if txn is None:
            return
        txn.notes["stage"] = "data"
        if reply.cause is None:
            reply = replace(reply, cause="message-too-large" if reply.code == 552 else "message-refused-locally")
        await self.outcomes.refused(txn, session, "data", list(txn.rcpts),
                                    Decision(Verdict.REJECT, reply, "policy_rejected"))
        await self._end(txn)

    async def closing(self, session: Session, reply: Reply) -> None:
        """The SMTP layer is closing the connection with `reply` (a 421: a deadline passed). An open
        transaction ends with its refusal recorded; between transactions there is nothing to record."""
        txn = self._txns.get(session.id)
        if txn is None:
            return
        stage = txn.notes.get("stage", "mail")
        recipients = list(txn.rcpts) if stage in ("rcpt", "data") else []
        await self.outcomes.refused(txn, session, stage, recipients, Decision(Verdict.DEFER, reply, "deferred"))
        await self._end(txn)

    async def _record_refusal(self, txn: Transaction, session: Session, stage: str, recipients: list[str],
                              decision: Decision) -> None:
        """Outcomes.refused for the command's own known outcome, marked on the transaction while it runs
        (Transaction.recording_refusal): a shutdown's give-up (cut) cancels the command only in here,
        where the events are queued whatever the cancellation stops (review-int2 F1)."""
        txn.recording_refusal = True
        try:
            await self.outcomes.refused(txn, session, stage, recipients, decision)
        finally:
            txn.recording_refusal = False

    def _given_up(self, txn: Transaction, session: Session, stage: str, recipients: list[str]) -> None:
        """The command is cancelled after the next hop's refusal was read and before it was returned, in a
        watcher's write (Transaction.unrecorded_refusal): a shutdown's drain past its own bound (drain()). The
        refusal's events are queued all the same, without the bounce list (Outcomes.refused_unrecorded: its
        update marked as not done, the address logged and counted), and, after a 421 to a RCPT, the deferral
        of the recipients accepted before (Outcomes.session_closed); the transaction's end writes them. On
        int4 they were lost, logged only as "abandoned" (review-int2 F1, option b). Nothing here waits."""
        decision, txn.unrecorded_refusal = txn.unrecorded_refusal, None
        if decision is None:
            return
        stage = decision.stage or stage
        log.error("stopping: transaction %s (session %s) was cancelled while recording its refusal at %s (%s): "
                  "its events are written, what the refusal made the relay write is not", txn.id, session.id,
                  stage.upper(), printable(decision.reply.wire_lines()[0])[:120])
        try:
            self.outcomes.refused_unrecorded(txn, session, stage, recipients, decision)
            others = [r for r in txn.rcpts if r not in recipients]
            if decision.reply.code == 421 and others:
                self.outcomes.session_closed(txn, session, stage, recipients[0] if recipients else "", others,
                                             decision)
        except Exception:
            log.exception("transaction %s: the events of its refusal could not be queued", txn.id)

    def cut(self, session: Session, reply: Reply, give_up: bool = False) -> asyncio.Future | None:
        """Shutdown ends the session in the middle of its transaction (the drain is over, RFC 5321
        3.8's 421 `reply` goes to the client): the transaction ends deferred, its recipients'
        events written. Taken out at once, before any await, so that nothing else ends it a second
        time (not the command under way, cancelled by the caller, not disconnected()); recorded in
        a task the service owns (drain() waits for it). The caller may await the result.

        `give_up`: the command under way has its outcome and is still recording it past the store's own
        deadline (RelayServer.stop, recording_seconds()), and the caller tells the client that outcome's
        reply (Transaction.answer) before `reply`. The recording is cancelled where it is when it is inside
        Outcomes.refused (Transaction.recording_refusal): its events are written all the same, their bounce
        list update marked as not done. Anywhere else (a watcher's write after the outcome was read) the
        command goes on, and records its outcome when it can. After the final dot the transaction ends with
        it; after a MAIL or RCPT the rest of the transaction (the recipients accepted before) is cut as any
        other, once the command has let go (at RCPT they had no event when it went on as for a client gone)."""
        txn = self._txns.get(session.id)
        if txn is None:
            # The command under way when no transaction is open: a MAIL's (none opened yet), or a DATA's
            # whose transaction ended (_end) while its conclusion still runs, until its reply went out.
            # Only a MAIL's refusal is cancelled below: the DATA's _record_refusal ran before its _end, so
            # its recording_refusal is False by then (review-int2, nit).
            opening = self._answering.get(session.id)
            conclusion = self._concluding.get(opening.id) if opening is not None else None
            if give_up and conclusion is not None and opening.decided and not conclusion.done():
                # A MAIL's refusal still recorded past the store's deadline: no transaction was opened, and
                # the MAIL ends the one it tried once its refusal's events are queued (_mail). For the DATA
                # above nothing is cancelled, and `left` changes nothing: its pipeline is already popped.
                if opening.recording_refusal:
                    conclusion.cancel()
                opening.left = True
                return asyncio.shield(conclusion)
            return None
        conclusion = self._concluding.get(txn.id)
        after = None
        if give_up and txn.decided and conclusion is not None and not conclusion.done():
            if txn.recording_refusal:
                conclusion.cancel()
            # Else it goes on (a watcher's write: cancelled there, the refusal's events were lost) and records
            # its outcome when it can, drain() bounding it; the cut below still waits for it, then defers the
            # recipients accepted before, as it would have had it been cancelled: they were told the 421 too.
            # Unless the next hop's 421 closed their transaction: the command defers them itself then
            # (Outcomes.session_closed), cancelled or not (_rcpt), and ends the transaction as after the
            # final dot; deferred by the cut as well, they had two events each.
            if txn.notes.get("stage") == "data" or (txn.answer is not None and txn.answer.code == 421):
                txn.left = True  # the message's outcome is the command's: it ends the transaction (_concluded)
                return asyncio.shield(conclusion)
            del self._concluding[txn.id]  # the command no longer ends the transaction: the cut below does
            after = conclusion
        elif not self._abandon(txn):
            # The next hop has answered the final dot: its answer is the outcome, recorded by the
            # command's conclusion (never a cut, nor "unknown"), which the caller may await.
            return asyncio.shield(self._concluding[txn.id]) if txn.id in self._concluding else None
        del self._txns[session.id]
        stage = txn.notes.get("stage", "mail")
        recipients = list(txn.rcpts) if stage in ("rcpt", "data") else []
        detail = {}
        if txn.awaiting_dot_reply:
            # The next hop had the whole message and its final dot and had not answered: it may have
            # delivered it, and the client's retry is then a second delivery. Nobody can know which.
            detail["outcome"] = UNKNOWN_OUTCOME
        log.warning("stopping: session %s cut off after the drain, transaction %s deferred (%s) at stage %s%s",
                    session.id, txn.id, printable(reply.wire_lines()[0])[:120], stage,
                    (f", recipients {', '.join(printable(r) for r in recipients)[:1000]}" if recipients else "")
                    + (f"; outcome {UNKNOWN_OUTCOME}" if detail else ""))
        task = asyncio.get_running_loop().create_task(self._record_cut(txn, session, stage, recipients, reply,
                                                                       detail, after),
                                                      name=f"cut of transaction {txn.id} (session {session.id})")
        self._endings.add(task)
        task.add_done_callback(self._endings.discard)
        return asyncio.shield(task)

    async def _record_cut(self, txn: Transaction, session: Session, stage: str, recipients: list[str],
                          reply: Reply, detail: dict, after: asyncio.Task | None = None) -> None:
        decision = Decision(Verdict.DEFER, reply, "deferred", detail)
        try:
            if after is not None:
                # The command given up (cut(give_up=True)) queues its own events as it stops: first.
                try:
                    await asyncio.wait([after])
                except asyncio.CancelledError:
                    # The drain's bound is over (drain() cancels both): the command, cancelled too, queues its
                    # refusal's events as that lands (_given_up), a turn or so; then this cut's own, without
                    # the bounce list. Cancelled here, the recipients it defers had no event, nor had the
                    # refusal when its cancellation landed after the transaction's end.
                    after.cancel()
                    await asyncio.wait([after], timeout=RECORDING_MARGIN)
                    self.outcomes.refused_unrecorded(txn, session, stage, recipients, decision)
                    raise
            await self.outcomes.refused(txn, session, stage, recipients, decision)
        finally:
            await self._end(txn)

    async def reset(self, session: Session) -> None:
        """RSET, QUIT or a new EHLO: the open transaction ends (without waiting on the upstream)."""
        txn = self._txns.get(session.id)
        if txn is not None:
            await self._end(txn)

    def _end(self, txn: Transaction) -> asyncio.Future:
        """End a transaction. Its events are written at once, before any await, so that neither a
        client that hangs up nor a cancelled handler can lose them; the steps' on_reset (the
        upstream connection going back to the pool) then runs at once when no step needs to wait
        for it (Pipeline.reset_now: the usual case), else in a task the service owns and drain()
        finishes. The caller may await the result: shielded, so cancelling the caller never
        cancels the end."""
        self._txns.pop(txn.session.id, None)
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        done.set_result(None)
        # Taken out at once: a transaction ends once, whoever asks again (review-int4 F7: a second end
        # was kept off only by the order of the loop's callbacks).
        pipeline = self._txn_pipeline.pop(txn.id, None)
        if pipeline is None:
            return done
        try:
            record_end(self.outcomes, txn)
        finally:
            # What the steps hold (the upstream connection, the pipeline) is given back even when writing
            # the events failed.
            if pipeline.reset_now(txn):
                # Every step gave back what it held without waiting (the upstream connection to the
                # pool): no task, and nothing left for drain().
                pipeline.let_go()
            else:
                task = loop.create_task(self._reset_steps(txn, pipeline),
                                        name=f"end of transaction {txn.id} (session {txn.session.id})")
                self._endings.add(task)
                task.add_done_callback(self._endings.discard)
                done = asyncio.shield(task)
        return done

    @staticmethod
    async def _reset_steps(txn: Transaction, pipeline: Pipeline) -> None:
        try:
            await pipeline.reset(txn)
        finally:
            pipeline.let_go()


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the end of a transaction the client left failed", exc_info=task.exception())


def _refused(started: asyncio.Future) -> bool:
    """Whether the start of DATA has already ended the message (a refusal, a failure)."""
    if not started.done():
        return False
    return started.cancelled() or started.exception() is not None or started.result().verdict is not V_CONTINUE


def record_end(outcomes: Outcomes, txn: Transaction) -> None:
    """A transaction is over: its warnings become events, and its events are emitted. Nothing here
    awaits, so a caller that is cancelled afterwards (a client gone) cannot lose them."""
    for warning in txn.notes.pop("warnings", []):
        event = make_event("warning", txn.notes.get("stage", "mail"), sender=txn.mail_from,
                           session_id=txn.session.id, transaction_id=txn.id, **warning)
        txn.notes.setdefault("events", []).append(event)
    outcomes.finish(txn)


async def end_transaction(pipeline: Pipeline, outcomes: Outcomes, txn: Transaction) -> None:
    """A transaction is over (any way in: SMTP session or milter): its events are emitted first
    (record_end), then steps release what they hold."""
    record_end(outcomes, txn)
    await pipeline.reset(txn)


# RFC 5321 4.1.2: the local part is a dot-string or a Quoted-string, which may hold spaces, "@" and
# brackets (qtextSMTP, quoted-pairSMTP): '"john doe"@example.com' is one mailbox. A dot-string holds
# no DQUOTE (atext), nor does a domain ('"a@b.test"' is a quote never closed, not a domain); a
# Quoted-string may be empty (*QcontentSMTP): '""@example.com'.
_ADDRESS = re.compile(r'^(?:"(?:[^"\\]|\\.)*"|[^\s<>@"]+)@[^\s<>@"]+$')


def same_mailbox_key(address: str) -> str:
    """What two recipients have in common when they are one mailbox: the domain in any case, the
    local part exactly as written (RFC 5321 2.4: only the destination host may read it otherwise)."""
    local, at, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}" if at else fold(address)  # a bare "postmaster" (RFC 5321 4.5.1)


def _smtputf8(options: list[str]) -> bool:
    return any(option.upper() == "SMTPUTF8" for option in options)


def address_problem(address: str, role: str = "recipient", smtputf8: bool = True) -> Reply | None:
    """RFC 5321 4.1.2 Mailbox: local-part "@" domain. Refuse what no upstream could route, and what
    could not be sent on verbatim (a control character or bytes that are not UTF-8 would end the
    command line early or make the client library refuse, which costs the upstream connection).
    The empty (null) sender and a bare "postmaster" recipient (4.1.1.3) are valid."""
    if address == "" or (role == "recipient" and address.lower() == "postmaster"):
        return None
    # RFC 3463 3.2: X.1.3 is a bad destination address's syntax, X.1.7 a bad sender address's.
    # A recipient's is classified syntax_error (relay-replies.yaml), which never lists: the client's
    # mistake. A sender's keeps the default (docs/events.md: syntax_error is the recipient's only).
    enhanced = "5.1.3" if role == "recipient" else "5.1.7"
    cause = "address-syntax" if role == "recipient" else None
    if role == "recipient" and address == "<>":
        # RFC 5321 4.1.2: Reverse-path = Path / "<>", Forward-path = Path: the null path is the
        # sender of a bounce (4.5.5), never a recipient. A syntax error in the argument (4.2.2: 501).
        return Reply.make(501, enhanced, "The null path <> is not a recipient: only MAIL FROM may carry it "
                                         "(RFC 5321 4.1.2)", cause=cause)
    why = unsendable(address)
    if why is not None:
        # RFC 5321 4.2.2: 501, a syntax error in the argument.
        return Reply.make(501, enhanced, ascii_reply(f"Bad {role} address <{shown(address)}>: {why} "
                                                     f"(RFC 5321 4.1.2, RFC 6531 3.3)"), cause=cause)
    if not smtputf8 and not address.isascii():
        # RFC 6531 3.4: a non-ASCII address may be used only in a transaction whose MAIL FROM
        # carried SMTPUTF8; passed on without it, the next hop would read it as RFC 5321 syntax.
        # 553 with X.6.7, "non-ASCII addresses not permitted for that sender/recipient" (RFC 6531).
        # The address is shown in ASCII (backslash escapes): this client did not ask for SMTPUTF8, so
        # its replies are ASCII (RFC 6531 3.7.4). Every refusal of an address here is (ascii_reply):
        # ASCII is right for any client, and one that did not ask for SMTPUTF8 must get nothing else.
        text = f"Non-ASCII {role} address <{shown(address)}> needs SMTPUTF8 on MAIL FROM (RFC 6531 3.4)"
        return Reply.make(553, "5.6.7", ascii_reply(text))
    if len(address) > 320:
        # RFC 5321 4.5.3.1.1-2: a local part of at most 64 octets, a domain of at most 255.
        return Reply.make(553, enhanced, ascii_reply(f"Address <{shown(address)}> is longer than 320 characters "
                                                     f"(RFC 5321 4.5.3.1.1-2: a local part of 64, a domain of 255)"),
                          cause=cause)
    if not _ADDRESS.match(address):
        return Reply.make(553, enhanced, ascii_reply(f"Malformed address <{shown(address)}>: expected "
                                                     f"local-part@domain"), cause=cause)
    why = mailbox_problem(address, sender=role == "sender")
    if why is not None:
        # RFC 5321 4.1.2 (review23 F5): refused here in every mode, never passed to a smarthost that
        # may take it and bounce later. Written in ASCII (backslash escapes), as a domain no IDNA 2008
        # name can have may be anything: a reply is ASCII unless SMTPUTF8 was asked for (RFC 6531 3.7.4).
        text = f"Malformed address <{shown(address)}>: {why[:200]}"
        return Reply.make(553, enhanced, ascii_reply(text), cause=cause)
    domain = address.rpartition("@")[2]
    if domain.startswith("["):
        # RFC 5321 4.1.3: what is between the brackets must be an address; passed on, [300.1.1.1] or
        # [IPv6:zz] is refused by the next hop at best (in MX mode: RouteError), accepted and bounced
        # later at worst.
        why = literal_problem(domain[1:-1]) if domain.endswith("]") else "its address literal is never closed"
        if why is not None:
            return Reply.make(553, enhanced, ascii_reply(f"Malformed address <{shown(address)}>: {why[:160]}"),
                              cause=cause)
    return None
