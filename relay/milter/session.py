"""One MTA connection in milter mode, mapped onto the pipeline's Session and Transaction.

The same policy steps as relay mode run here, without relay mode's own policy (service.py:
554 to peers outside clients.networks, 451 when no upstream answers): in milter mode the MTA
decides who may send and delivers the mail itself. Deciding who may send is not vouching for
it: the outbound steps sign only for our clients (Session.may_relay; docs/milter.md "Who is vouched
for"). A step that says nothing (CONTINUE) lets the MTA go on; a refusal becomes the MTA's reply
to its client, with our code, enhanced code and text, and the same event as in relay mode.

What steps do to the message at end of DATA becomes header modifications in the MTA's copy:
prepended fields (DKIM-Signature, Authentication-Results) are inserted at the top
(SMFIR_INSHEADER, index 0) and removed fields are deleted by name and occurrence
(SMFIR_CHGHEADER with an empty value).

On milter.non_smtpd_listen (Postfix's non_smtpd_milters: mail submitted with sendmail(1)), the MTA cannot
refuse one recipient: a recipient a step refuses at RCPT is kept aside and removed at end of message
(SMFIR_DELRCPT), with the same event, and the message goes on to the others; when no recipient is left,
the message is refused at end of message, so that the sender hears of it (see docs/milter.md).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, replace

from ..decision import Decision, Reply, Verdict
from ..outcomes import Outcomes
from ..pipeline import Message, Pipeline, Session, Step, Transaction, new_id
from ..service import end_transaction
from ..maildata import MAX_HEADER_BYTES, MAX_HEADER_FIELDS, crlf_normalised
from . import codec

log = logging.getLogger("relay.milter")

# Postfix waits milter_command_timeout (30 s) for a reply to connect..rcpt and
# milter_content_timeout (300 s) for header..end of message; answer well inside both, so that
# the MTA hears our temporary failure rather than applying milter_default_action.
COMMAND_DEADLINE = 25.0
CONTENT_DEADLINE = 240.0

# What one transaction may hold of recipients. A packet may be 1 MiB, and every recipient was kept: a
# peer sending RCPT after RCPT grew the process without bound. RFC 5321 4.5.3.1.3: a path is at most
# 256 octets; Postfix's own smtpd_recipient_limit is 1000 by default, so its refusal normally comes first.
MAX_PATH_OCTETS = 256
MAX_RECIPIENTS = 1000

# Which pipeline hook can refuse at which milter stage; a stage whose hook no step overrides
# never refuses, so the MTA is told not to wait for a reply there (SMFIP_NR_*).
_STAGE_HOOKS = {"connect": "on_connect", "mail": "on_mail", "rcpt": "on_rcpt"}

# Macros asked for at each stage (SMFIF_SETSYMLIST). Postfix's defaults lack {client_addr};
# `i` (the queue id) goes into events so that they match the MTA's log lines.
WANTED_MACROS = {
    codec.SMFIM_CONNECT: "j {daemon_name} {client_addr} {client_port} {client_name}",
    codec.SMFIM_HELO: "{tls_version} {cipher}",
    codec.SMFIM_ENVFROM: "i {auth_type} {auth_authen} {mail_addr}",
    codec.SMFIM_ENVRCPT: "i {rcpt_addr}",
    codec.SMFIM_EOM: "i",
}


def hooks_used(pipeline: Pipeline) -> set[str]:
    """The hooks that some step of `pipeline` overrides."""
    return {hook for hook in _STAGE_HOOKS.values()
            if any(getattr(type(step), hook) is not getattr(Step, hook) for step in pipeline.steps)}


@dataclass(frozen=True)
class HeaderChange:
    """One change to the MTA's copy at end of message: insert (index 0 = top) or delete occurrence
    `index` of the header field `name`; or "delrcpt": remove the envelope recipient `name` (as the MTA
    gave it at RCPT, "<a@b>")."""

    action: str  # "insert" | "delete" | "delrcpt"
    index: int
    name: str
    value: str = ""


@dataclass(frozen=True)
class Removal:
    """A recipient refused at RCPT on a session whose MTA cannot refuse one recipient: removed at end of
    message. `arg` is the recipient as the MTA gave it (what SMFIR_DELRCPT names), `recipient` the address."""

    arg: str
    recipient: str
    decision: Decision


# More than this many removed recipients are summarised in the refusal of a message none is left of:
# the reply becomes the text of the bounce to the sender, one line per recipient.
MAX_REPLY_RECIPIENTS = 10


def _path(arg: str) -> str:
    """'<a@b>' -> 'a@b'; '<>' -> '' (the null path)."""
    arg = arg.strip()
    if arg.startswith("<") and arg.endswith(">"):
        return arg[1:-1]
    return arg


_FOLD = re.compile(r"\r\n")


class MilterSession:
    """The state of one milter connection: macros, the client session, the open transaction,
    and the message as it arrives (bounded by limits.max_message_size)."""

    def __init__(self, server, leading_space: bool = False, remove_refused: bool = False,
                 local_submission: bool = False):
        self.server = server  # settings, pipeline and outcomes: read at each use (SIGHUP replaces them)
        self.leading_space = leading_space  # SMFIP_HDR_LEADSPC: header values keep their leading blank
        # The MTA cannot refuse one recipient (Postfix's non_smtpd_milters, SMFIF_DELRCPT agreed): a
        # recipient refused at RCPT is removed at end of message instead.
        self.remove_refused = remove_refused
        # On milter.non_smtpd_listen: every session is a sendmail(1) submission on this host, which the
        # outbound steps vouch for (signed) whatever stand-in client address Postfix names.
        self.local_submission = local_submission
        self._removed: list[Removal] = []
        self.macros: dict[str, dict[str, str]] = {}
        self.session: Session | None = None
        self.txn: Transaction | None = None
        # The pipeline the open transaction started with, held until it ends: a reload replaces the
        # server's, and the old one closes after its last transaction (review-20 F9: it was closed at
        # once, and a message at end of message failed on the closed SPF thread pool with a 451).
        self._txn_pipeline: Pipeline | None = None
        self._header = bytearray()
        self._body: list[bytes] = []
        self._size = 0
        self._too_big = False
        self._header_fields = 0
        self._header_too_big = False

    @property
    def settings(self):
        return self.server.settings

    @property
    def pipeline(self) -> Pipeline:
        return self._txn_pipeline or self.server.pipeline

    @property
    def outcomes(self) -> Outcomes:
        return self.server.outcomes

    # -- macros -------------------------------------------------------------------------------

    _STAGE_ORDER = "ENLTRMHC"  # latest stage first: a later stage's value wins

    def macro(self, name: str) -> str | None:
        for stage in self._STAGE_ORDER:
            values = self.macros.get(stage)
            if values and name in values:
                return values[name]
        return None

    def set_macros(self, stage: str, values: dict[str, str]) -> None:
        self.macros[stage] = values

    # -- connection ---------------------------------------------------------------------------

    async def connect(self, cmd: codec.Connect) -> Reply | None:
        if self.session is not None:
            await self.close()
        if cmd.family in "46":
            ip, port = cmd.address, cmd.port
        else:  # a UNIX socket or unknown: the MTA may still say who its client is
            ip = self.macro("{client_addr}") or cmd.address or "unknown"
            port = int(self.macro("{client_port}") or 0) if (self.macro("{client_port}") or "").isdigit() else 0
        # Who the client is decides what the outbound steps vouch for (Session.may_relay): its address
        # inside clients.networks, a login ({auth_authen}, read at MAIL), or a local submission. Postfix's
        # smtpd_milters also see the world's mail on port 25 (review26 F1: it was all DKIM-signed).
        self.session = Session(id=new_id(), peer_ip=ip, peer_port=port,
                               trusted_network=self.settings.clients.trusted(ip),
                               local_submission=self.local_submission)
        with self.server.pipeline.in_use() as pipeline:
            decision = await self._run(pipeline.connect(self.session), COMMAND_DEADLINE, "connect")
        if decision.verdict in (Verdict.REJECT, Verdict.DEFER):
            await self.outcomes.refused(None, self.session, "connect", [], decision)
            return decision.reply
        return None

    def _ensure_session(self) -> Session:
        if self.session is None:  # an MTA told not to send connect (never us) or out of order
            ip = self.macro("{client_addr}") or "unknown"
            self.session = Session(id=new_id(), peer_ip=ip, peer_port=0,
                                   trusted_network=self.settings.clients.trusted(ip),
                                   local_submission=self.local_submission)
        return self.session

    def helo(self, name: str) -> None:
        self._ensure_session().helo = name

    # -- transaction --------------------------------------------------------------------------

    async def mail(self, args: tuple[str, ...]) -> Reply | None:
        if self.txn is not None:  # a new MAIL without abort: the previous transaction is over
            await self.end_transaction()
        session = self._ensure_session()
        session.auth_user = self.macro("{auth_authen}") or None
        session.tls = self.macro("{tls_version}") or None
        sender = _path(args[0]) if args else (self.macro("{mail_addr}") or "")
        txn = Transaction(session=session, id=new_id(), mail_from=sender, mail_options=list(args[1:]))
        txn.notes["stage"] = "mail"
        self.txn = txn
        self._txn_pipeline = self.server.pipeline
        self._txn_pipeline.hold()
        decision = await self._run(self.pipeline.mail(txn), COMMAND_DEADLINE, f"MAIL (transaction {txn.id})")
        if decision.verdict in (Verdict.REJECT, Verdict.DEFER):
            await self.outcomes.refused(txn, session, "mail", [], decision)
            await self.end_transaction()
            return decision.reply
        return None

    async def rcpt(self, args: tuple[str, ...], can_refuse: bool = True) -> Reply | None:
        """`can_refuse`: whether the MTA waits for our reply at RCPT (no SMFIP_NR_RCPT agreed); if not,
        a recipient past the bounds is only not kept."""
        if self.txn is None:
            await self.mail((f"<{self.macro('{mail_addr}') or ''}>",))
            if self.txn is None:
                return None  # the sender was refused: the MTA heard it at MAIL
        txn = self.txn
        recipient = _path(args[0]) if args else (self.macro("{rcpt_addr}") or "")
        bound = None
        if len(recipient.encode("utf-8", "surrogateescape")) > MAX_PATH_OCTETS:
            bound = Reply.make(501, "5.1.3", f"Recipient address longer than {MAX_PATH_OCTETS} octets "
                                             f"(RFC 5321 4.5.3.1.3)")
        elif len(txn.rcpts) + len(self._removed) >= MAX_RECIPIENTS:
            # RFC 5321 4.5.3.1.8: 452 tells the client to send the rest in another transaction.
            bound = Reply.make(452, "4.5.3", f"Too many recipients (at most {MAX_RECIPIENTS} per message)",
                               cause="too-many-recipients")
        if bound is not None:
            if not can_refuse:
                return None
            verdict = Verdict.DEFER if bound.code < 500 else Verdict.REJECT
            await self.outcomes.refused(txn, txn.session, "rcpt", [recipient], Decision(verdict, bound))
            return bound
        txn.notes["stage"] = "rcpt"
        decision = await self._run(self.pipeline.rcpt(txn, recipient), COMMAND_DEADLINE,
                                   f"RCPT (transaction {txn.id})")
        if decision.verdict is Verdict.REJECT and self.remove_refused:
            # Its event is written at end of message, when the MTA removes it: a message aborted before
            # then went to nobody, and a refusal no one saw is not recorded (nor is one that did not happen).
            self._removed.append(Removal(args[0] if args else f"<{recipient}>", recipient, decision))
            return None
        if decision.verdict in (Verdict.REJECT, Verdict.DEFER):
            # A temporary refusal (the bounce list could not be read) stays one on every session: on a
            # sendmail(1) submission Postfix then defers the whole message, which is right while we do
            # not know whether a recipient is listed.
            await self.outcomes.refused(txn, txn.session, "rcpt", [recipient], decision)
            return decision.reply
        txn.rcpts.append(recipient)
        return None

    def header(self, name: str, value: str) -> None:
        if self._header_too_big:
            return  # refused at end of message; nothing more of the header is kept
        value = value if self.leading_space else " " + value
        # The MTA folds with bare LF (libmilter's convention); crlf_normalised restores CRLF at the end.
        field = name.encode("utf-8", "surrogateescape") + b":" + value.encode("utf-8", "surrogateescape") + b"\r\n"
        # The header section's bounds of relay mode (maildata.header_refusal: 256 KiB, 1,000 fields): every
        # step reads the header on the event loop, and an MTA passes on whatever its client sent (Postfix's
        # header_size_limit cuts, Sendmail's MaxHeadersLength may be 0, for no limit).
        self._header_fields += 1
        if self._header_fields > MAX_HEADER_FIELDS or len(self._header) + len(field) > MAX_HEADER_BYTES:
            self._header_too_big = True
            self._header.clear()
            return
        self._add(field, header=True)

    def body(self, data: bytes) -> None:
        self._add(data, header=False)

    def _add(self, data: bytes, header: bool) -> None:
        self._size += len(data)
        if self._size > self.settings.limits.max_message_size:
            if not self._too_big:
                self._too_big = True
                self._header.clear()
                self._body.clear()
            return  # memory stays bounded: nothing more is kept of this message
        if header:
            self._header += data
        else:
            self._body.append(data)

    async def end_of_message(self) -> tuple[Reply | None, list[HeaderChange]]:
        if self.txn is None:
            self._reset_message()
            return None, []
        txn = self.txn
        txn.notes["stage"] = "data"
        removed, self._removed = self._removed, []
        if self._too_big:
            limit = self.settings.limits.max_message_size
            reply = Reply.make(552, "5.3.4", f"Message too big for this relay's milter (limit {limit} bytes)",
                               cause="message-too-large")
            await self.outcomes.refused(txn, txn.session, "data", list(txn.rcpts),
                                        Decision(Verdict.REJECT, reply, "policy_rejected"))
            await self._record_removed(txn, removed, "message_refused")
            await self.end_transaction()
            return reply, []
        if self._header_too_big:
            # As relay mode answers at the final dot (maildata.header_refusal), before any step reads it.
            reply = Reply.make(552, "5.3.4", f"Message header too big for this relay's milter (at most "
                                             f"{MAX_HEADER_BYTES} bytes and {MAX_HEADER_FIELDS} fields)",
                               cause="header-too-large")
            await self.outcomes.refused(txn, txn.session, "data", list(txn.rcpts),
                                        Decision(Verdict.REJECT, reply, "policy_rejected"))
            await self._record_removed(txn, removed, "message_refused")
            await self.end_transaction()
            return reply, []
        # A piece at a time, the loop turning in between (issue #15: a 30 MB body of bare LF held it ~1 s).
        data = await crlf_normalised(bytes(self._header) + b"\r\n" + b"".join(self._body))
        self._reset_message()
        message = Message(data)
        txn.headers = {}
        for name, value in message.headers():
            txn.headers.setdefault(name.lower(), value)
        if removed and not txn.rcpts:
            # Every recipient was refused. Removing them all would leave Postfix a message for nobody,
            # which it drops without a word to the sender; discarding it (SMFIR_DISCARD) drops it too.
            # Refused at end of message, Postfix's cleanup returns a sendmail(1) submission to its sender
            # with our reply as the reason (a 5xx there is a bounce, cleanup_milter.c's CLEANUP_STAT_CONT),
            # as an SMTP client hears 550 for each recipient: the mail is not lost without a word.
            reply = _all_refused_reply(removed)
            log.info("milter: message %s submitted without SMTP refused: every recipient refused (%s)",
                     self.macro("i") or txn.id, ", ".join(r.recipient for r in removed[:MAX_REPLY_RECIPIENTS]))
            await self._record_removed(txn, removed, "message_refused")
            await self.end_transaction()
            return reply, []
        decision = await self._run(self.pipeline.data(txn, message), CONTENT_DEADLINE,
                                   f"end of message (transaction {txn.id})")
        if decision.verdict in (Verdict.REJECT, Verdict.DEFER):
            await self.outcomes.refused(txn, txn.session, "data", list(txn.rcpts), decision)
            await self._record_removed(txn, removed, "message_refused")
            await self.end_transaction()
            return decision.reply, []
        changes = [HeaderChange("delrcpt", 0, r.arg) for r in removed] + self.header_changes(message)
        for r in removed:
            log.info("milter: %s removed from message %s submitted without SMTP (%s)", r.recipient,
                     self.macro("i") or txn.id, r.decision.reply.lines[0] if r.decision.reply else "refused")
        await self._record_removed(txn, removed, "recipient_removed")
        await self.end_transaction()
        return None, changes

    async def _record_removed(self, txn: Transaction, removed: list[Removal], action: str) -> None:
        """The refusal event of each recipient kept aside at RCPT (the same event as a refusal at RCPT on
        milter.listen), with `milter_action`: recipient_removed (SMFIR_DELRCPT, the message went on to
        the others) or message_refused (the whole message was refused at end of message)."""
        for r in removed:
            decision = replace(r.decision, detail={**r.decision.detail, "milter_action": action})
            await self.outcomes.refused(txn, txn.session, "rcpt", [r.recipient], decision)

    def header_changes(self, message: Message) -> list[HeaderChange]:
        """Deletions first, last occurrence first, so that no deletion moves the index of another
        (and before any insertion, which could add a field of the same name); then insertions at
        the top, last field first, so that they end up in the order the steps prepended them."""
        changes: list[HeaderChange] = []
        headers = message.headers()
        for i in sorted(message.removed_headers, reverse=True):
            name = headers[i][0]
            occurrence = sum(1 for n, _ in headers[: i + 1] if n.lower() == name.lower())
            changes.append(HeaderChange("delete", occurrence, name))
        for raw in reversed(message.added_headers):
            name, _, value = raw.decode("utf-8", "surrogateescape").partition(":")
            value = _FOLD.sub("\n", value.removesuffix("\r\n"))
            if not self.leading_space:
                value = value.removeprefix(" ")
            changes.append(HeaderChange("insert", 0, name, value))
        return changes

    async def abort(self) -> None:
        """The MTA's client reset or the MTA gave up on this message (SMFIC_ABORT)."""
        await self.end_transaction()

    async def end_transaction(self) -> None:
        self._reset_message()
        self._removed = []  # not removed (aborted, or a new MAIL): the MTA took this message for no one
        txn, self.txn = self.txn, None
        pipeline, self._txn_pipeline = self._txn_pipeline, None
        queue_id = self.macro("i")
        for stage in "MRTLNE":
            self.macros.pop(stage, None)
        try:
            if txn is None:
                return
            if queue_id:
                for event in txn.notes.get("events", []):
                    event.setdefault("queue_id", queue_id)
            await end_transaction(pipeline or self.server.pipeline, self.outcomes, txn)
        finally:
            if pipeline is not None:
                pipeline.let_go()

    def _reset_message(self) -> None:
        self._header = bytearray()
        self._body = []
        self._size = 0
        self._too_big = False
        self._header_fields = 0
        self._header_too_big = False

    async def close(self) -> None:
        """The connection ends (SMFIC_QUIT, a drop), or a new one starts on it (SMFIC_QUIT_NC)."""
        await self.end_transaction()
        self.session = None
        self.macros.clear()

    # -- helpers ------------------------------------------------------------------------------

    async def _run(self, coro, deadline: float, what: str) -> Decision:
        try:
            async with asyncio.timeout(deadline):  # no extra task per command, unlike wait_for
                return await coro
        except TimeoutError:
            log.error("milter: %s took longer than %.0f s; answering 451 before the MTA gives up", what, deadline)
            return Decision(Verdict.DEFER, Reply.make(451, "4.3.0", "Temporary local problem (policy check "
                                                                    "timed out), please try again later",
                                                      cause="local-error"),
                            "deferred")


def _all_refused_reply(removed: list[Removal]) -> Reply:
    """The refusal of a message every recipient of which was refused: one recipient's own reply, or one
    line per recipient (the first line of each reply, at most MAX_REPLY_RECIPIENTS of them)."""
    replies = [r.decision.reply for r in removed if r.decision.reply is not None]
    if len(replies) == 1:
        return replies[0]
    enhanced = {reply.enhanced for reply in replies}
    # RFC 3463: X.7.1 "delivery not authorized" when the recipients' own codes differ (the bounce list is
    # this relay's policy, as in relay/steps/bounce_list.py).
    code = enhanced.pop() if len(enhanced) == 1 and None not in enhanced else "5.7.1"
    lines = [f"Every recipient of this message is refused ({len(removed)}):"]
    for reply in replies[:MAX_REPLY_RECIPIENTS]:
        first = reply.lines[0]
        if reply.enhanced and first.startswith(reply.enhanced):
            first = first[len(reply.enhanced):].lstrip()
        lines.append(first)
    if len(replies) > MAX_REPLY_RECIPIENTS:
        lines.append(f"and {len(replies) - MAX_REPLY_RECIPIENTS} more")
    return Reply.make(550, code, "\n".join(lines), cause=replies[0].cause)
