"""The `bounces_in` listener: SMTP (or LMTP, `bounces_in.protocol: lmtp`: relay/smtp.py RelayLMTP) for bounce
messages and complaints addressed to the bounce domains.

It is the relay's own SMTP service (smtp.py, service.py) with a pipeline of one step, `BounceIntake`:
- RCPT: only addresses in `bounces_in.domains`; anything else is `550 5.7.1` (never an open relay).
  With a VERP key, the local part must carry a valid token (relay/intake/verp.py): a forged, altered
  or expired return path is `550 5.7.1` too. `postmaster` is accepted (RFC 5321 4.5.1), but when tokens
  are in use a message only to it is never read (no parse: review23 F1) and never touches the bounce list.
  Without a key nothing authenticates a bounce: by default (`unsigned: never`) each is recorded as
  events only; `unsigned: count` lets it count towards listing, never list at once (review14 F2).
- DATA: the message is parsed (relay/intake/dsn.py, off the event loop, one at a time, and one client's
  one at a time) and every failed recipient
  goes through the funnel (`Outcomes.observe`): a `bounced` event per failed recipient (`deferred`
  for a DSN's `Action: delayed`), a `complained` event per ARF report. 250 is said only after every
  observation was recorded; a store failure answers 451 so that the reporting MTA tries again, and
  then nothing of the report goes to the event stream but the bounce list's own changes. Every
  failure is recorded with the identity of the message it is about (`message_key`): the retry of a
  report, or a second report about the same message, never counts a failure twice (review12 F3).
- The listener's own refusals (a RCPT to a foreign domain, a forged return path, its 451s) are
  not delivery events: they are logged and counted (`relay_bounces_in_refusals_total`), never sent to
  the application's event stream (`IntakeOutcomes`, review12 F7).
- With a token, only a failed (or complained-of) recipient that was a recipient of the token's
  transaction is observed (the store's `verp_recipients`, written by relay/steps/verp.py when the next
  hop accepted the message): the token proves the transaction, not the addresses a report names, and
  every recipient of the message saw it. The others are logged and named in the 250's count; a store
  that cannot say is a 451 (never a listing on a guess).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import time
import unicodedata
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from ..address import fold, is_valid, normalise, printable
from ..config import Clients
from ..decision import Decision, Reply, Verdict, accept, defer, reject
from ..events import make_event
from ..outcomes import Observation, message_key
from ..pipeline import Message, Pipeline, Step, Transaction
from ..smtp import client_key
from ..store.base import verp_keep_days
from .dsn import MAX_STATUS_BLOCKS, BounceReport, FailedRecipient, ParseDeadline, parse_bounce
from .verp import VerpCodec, VerpError, VerpToken

log = logging.getLogger("relay.intake.bounces_in")

PARSE_DEADLINE = 30.0  # seconds from DATA's end to the parse's answer (waiting for the parser included)
# Seconds one parse may run. A real bounce takes milliseconds (one returning a 30 MB original: ~1.5 s);
# a hostile one, tens of seconds (hundreds of thousands of status blocks in 35 MB, most of it in the
# standard library's MIME parser, before the MAX_STATUS_BLOCKS cut). The parser checks its deadline
# between chunks, blocks and recipients and gives up, so the one parser thread is free again for the
# bounces behind it.
PARSE_BUDGET = 10.0
# Extra wait past PARSE_DEADLINE for the parser's own answer (it checks its deadline a few ms apart).
_GRACE = 2.0
# One parse at a time, in a thread of its own: a thread cannot be stopped, and in the default executor
# a few slow bounces took every thread that the bounce list's queries and DKIM's digests wait for, and
# a core each. Here they hold up only other bounces, and each for at most PARSE_BUDGET.
_PARSER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-bounce-parse")
# The warning events one report may make of the addresses it names that were not recipients of its
# transaction (the rest are counted in the log line and the reply).
MAX_IGNORED_EVENTS = 10
# LMTP reports answered in part remembered for their retry (BounceIntake._told_once): a set of at most
# MAX_STATUS_BLOCKS addresses each.
MAX_PARTLY_DEFERRED = 1000
_EVERYONE = Clients(networks=(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")))


class BounceIntake(Step):
    name = "bounces_in"

    def __init__(self, settings, outcomes):
        self.settings = settings
        self.bounces = settings.bounces_in
        self.outcomes = outcomes
        self.codec = VerpCodec(self.bounces.key) if self.bounces.key else None
        self._turns: dict[str, list] = {}  # client_key -> [its lock, bounces holding or awaiting it]
        # LMTP reports answered in part (some recipients 250, some 451): sha256 of the message -> the
        # addresses the retry must not warn about (see _told_once). Oldest first, at most MAX_PARTLY_DEFERRED.
        self._partly_deferred: OrderedDict[bytes, set[str]] = OrderedDict()

    @contextlib.asynccontextmanager
    async def _turn_of(self, ip: str):
        """The turn of client `ip` (its IPv6 /64: smtp.client_key) at the parser: one at a time."""
        key = client_key(ip)
        entry = self._turns.setdefault(key, [asyncio.Lock(), 0])
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                self._turns.pop(key, None)

    async def on_mail(self, txn: Transaction) -> Decision:
        # Bounces come from the null sender (RFC 5321 4.5.5), complaints from a feedback address:
        # any sender may report; what it may report about is decided at RCPT.
        txn.notes["bounce_tokens"] = {}
        return accept(Reply.make(250, "2.1.0", "Sender OK"))

    async def on_rcpt(self, txn: Transaction, rcpt: str) -> Decision:
        local, at, domain = rcpt.rpartition("@")
        if rcpt.lower() == "postmaster" or (at and local.lower() == "postmaster" and self.bounces.accepts(domain)):
            txn.notes["bounce_tokens"][rcpt] = None
            return accept(Reply.make(250, "2.1.5", "Recipient OK"))
        if not at or not self.bounces.accepts(domain):
            return reject(550, "5.7.1", f"<{rcpt}>: relaying denied: this server takes mail for its bounce "
                                        f"domains only", kind="policy_rejected")
        token = None
        if self.codec is not None:
            try:
                token = self.codec.verify(rcpt)
            except VerpError as exc:
                return reject(550, "5.7.1", f"<{rcpt}>: not a return path of ours: {exc}", kind="policy_rejected")
        txn.notes["bounce_tokens"][rcpt] = token
        return accept(Reply.make(250, "2.1.5", "Recipient OK"))

    async def on_data(self, txn: Transaction, message: Message) -> Decision:
        raw = message.original
        tokens: dict[str, VerpToken | None] = txn.notes.get("bounce_tokens", {})
        token = next((t for t in tokens.values() if t is not None), None)
        if self.codec is not None and token is None:
            # Only postmaster was addressed (RFC 5321 4.5.1: taken from anyone, no token): nothing of it
            # is ever acted on, so it is not read. Parsed, it cost up to PARSE_BUDGET of the one parser
            # thread, and ten connections of 10 MB multiparts held every real bounce behind them past
            # PARSE_DEADLINE (451) (review23 F1).
            log.info("bounce to postmaster without a VERP token (transaction %s, %d octets, Message-ID %s): "
                     "not read, not recorded", txn.id, len(raw),
                     printable((txn.headers or {}).get("message-id") or "none")[:200])
            return accept(Reply.make(250, "2.0.0", "Received (postmaster: not recorded)"))
        deadline = time.monotonic() + PARSE_DEADLINE
        try:
            async with asyncio.timeout(PARSE_DEADLINE + _GRACE):
                # One client's bounces are read one at a time (the others wait here, on the loop, within
                # the same deadline): the parser's queue holds at most one of each client's, so that no
                # client, whatever its connections, can put every other client's bounces behind its own.
                async with self._turn_of(txn.session.peer_ip):
                    report = await asyncio.get_running_loop().run_in_executor(
                        _PARSER, parse_bounce, raw, deadline, PARSE_BUDGET)
        except (ParseDeadline, TimeoutError) as exc:
            if isinstance(exc, ParseDeadline) and exc.ran >= PARSE_BUDGET:
                # The message itself costs more than a parse may take, and would cost it again on every
                # retry: RFC 5321 4.2.1 makes that a 5yz ("the SMTP client SHOULD NOT repeat the exact
                # request"); a 4yz would have the reporting MTA resend it for days (4.5.4.1), holding the
                # parser PARSE_BUDGET each time. A bounce (sent from <>) refused is dropped by its
                # sender, never bounced back (4.5.5). RFC 3463 5.6.0: something in the content.
                log.warning("bounce not read in %.1f s of parsing (transaction %s, %d octets): refused",
                            exc.ran, txn.id, len(raw))
                return reject(554, "5.6.0", f"Bounce too costly to read (not parsed in {PARSE_BUDGET:g} s): "
                                            f"not accepted", kind="policy_rejected")
            # It waited for other bounces and had too little time of its own (or its answer did not
            # come within the grace): a retry will do.
            log.warning("bounce not read within %s s (transaction %s): deferred", PARSE_DEADLINE, txn.id)
            return defer(451, "4.3.0", "Bounce not read in time: try again later", kind="deferred")
        except (RecursionError, MemoryError, ValueError, LookupError, TypeError) as exc:
            # The standard library's MIME parser gives up on some hostile or broken structures (a
            # multipart nested a thousand deep: RecursionError). The same bytes would fail again
            # on every retry, so a 451 would only have the reporting MTA resend them for days;
            # a bounce (sent from <>) refused 5xx is dropped by its sender (RFC 5321 4.5.5).
            log.warning("bounce could not be read (transaction %s): %s: %s", txn.id, type(exc).__name__,
                        str(exc)[:200])
            return reject(554, "5.6.0", f"Message could not be read as a bounce or report ({type(exc).__name__})",
                          kind="policy_rejected")
        cut = ""
        if report.blocks_not_read:
            log.warning("bounce (transaction %s) has %d recipient blocks past the first %d: not read",
                        txn.id, report.blocks_not_read, MAX_STATUS_BLOCKS)
            cut = f"; {report.blocks_not_read} recipient blocks past the first {MAX_STATUS_BLOCKS} not read"
        ignored = ""
        targets: list[tuple[FailedRecipient, str | None, VerpToken | None, int]] = [
            (failed, None, token, 0) for failed in report.recipients]
        strangers: list[dict] = []  # the warning events of the addresses ignored (emitted with the 250)
        if token is not None:
            # The token authenticates the transaction, not the addresses the report names: anyone who
            # received the message saw its return path. Only its recipients may be acted on. A report
            # sent to several return paths (one MTA's DSN for messages of two transactions) is checked
            # against each of their transactions.
            by_transaction = {t.transaction_id: t for t in tokens.values() if t is not None}
            try:
                targets, strangers = await self._recipients_of(list(by_transaction.values()), report)
            except Exception as exc:
                # Never a listing on a guess, never a bounce dropped in silence: the reporting MTA
                # tries again (RFC 5321 4.2.1: 4yz is transient).
                log.warning("bounce for transaction %s: the transaction's recipients could not be looked up "
                            "(%s: %s): deferred", ", ".join(by_transaction), type(exc).__name__, str(exc)[:300])
                return defer(451, "4.3.0", "Bounce read, but its transaction's recipients could not be checked: "
                                           "try again later", kind="deferred")
            if len(targets) < len(report.recipients):
                ignored = f"; {len(report.recipients) - len(targets)} not recipients of that transaction: ignored"
        made: list[list[dict]] = []  # each observation's events (not emitted yet)
        try:
            observations, owners = await self._observe(report, targets, token, txn, made)
        except asyncio.CancelledError:
            # A stop cut this session while the report was being recorded (the drain's end): the reporting
            # MTA is told 421 (RelaySMTP.cut), never 250, and sends the report again. As for a 451, the
            # bounce list's changes already made are told now (the one being recorded tells its own:
            # Outcomes.observe), the report's own events wait for that retry.
            self._emit_list_changes(made)
            raise
        except Exception as exc:
            # Not the bounce list failing (observe says so with bounce_list "error": 451 below): a defect
            # in reading or judging this report (review19 F5: a lone surrogate from charset=utf-7 made
            # the provider lookup raise). Deferred, not refused: a refused bounce (sent from <>) is
            # dropped by its sender (RFC 5321 4.5.5), and with it the failure it reports; deferred, the
            # reporting MTA keeps it for days (4.5.4.1) and a relay with the defect fixed records it.
            # One line that says what failed and where, never a traceback.
            self._emit_list_changes(made)  # done already: told either way, as for a 451
            log.error("bounce (transaction %s, message %s) could not be recorded: %s: %s (in %s); deferred "
                      "(451 4.3.0), nothing of it recorded but the bounce list's changes: a defect of the relay, "
                      "please report it", txn.id, printable(report.message_id or "unknown")[:200],
                      type(exc).__name__, printable(str(exc))[:300], _raised_in(exc))
            return defer(451, "4.3.0", f"Bounce read, but it could not be recorded ({type(exc).__name__}): "
                                       f"try again later", kind="deferred")
        failed_owners = {owner for owner, events in zip(owners, made)
                         if any(e.get("bounce_list") == "error" for e in events)}
        what = {"bounce": "failure(s)", "feedback": "complaint(s)"}.get(report.kind)
        if self.bounces.protocol == "lmtp":
            decision = self._answer_each(txn, tokens, report, owners, made, failed_owners, what, ignored + cut)
            if decision.verdict is Verdict.ACCEPT:
                for event in self._told_once(raw, targets, strangers, partly=bool(failed_owners)):
                    self.outcomes.emit(event)
            return decision
        if failed_owners:
            self._emit_list_changes(made)
            log.warning("bounce (transaction %s): the bounce list could not be updated: deferred (451), its "
                        "events not emitted; the reporting MTA's retry records it", txn.id)
            return defer(451, "4.3.0", "Bounce read, but the bounce list could not be updated: try again later",
                         kind="deferred")
        for events in [*made, strangers]:
            for event in events:
                self.outcomes.emit(event)
        text = (f"Recorded {len(observations)} {what}" if what else "Received: not a bounce, nothing recorded") + \
            ignored + cut
        return accept(Reply.make(250, "2.0.0", text))

    def _told_once(self, raw: bytes, targets: list, strangers: list[dict], partly: bool) -> list[dict]:
        """The `verp_recipient` warnings of an LMTP attempt that were not told at an earlier attempt of
        the same message. A report delivered to several return paths and answered in part (one
        recipient's recording failed: 451 for it alone, RFC 2033 4.2) comes back to that return path
        alone: its transaction is then the only one the report is checked against, so an address
        matched to another return path's transaction the first time (already recorded there) read as
        "not a recipient: forged or misdirected", and an address that was no recipient of any was
        warned about twice. The first attempt remembers both kinds (by the message's digest: the
        reporting MTA sends the same queued message again); a retry leaves them out.

        Remembered in this process only, at most MAX_PARTLY_DEFERRED messages: a retry taken by another
        worker, or after a reload or restart, may warn again (a warning more, never a listing)."""
        if not partly and not self._partly_deferred:
            # Nothing to look up nor to remember: no hash of the whole report (up to
            # bounces_in.max_message_size) on the event loop for every report.
            return strangers
        digest = hashlib.sha256(raw).digest()
        told = self._partly_deferred.get(digest)
        fresh = [e for e in strangers if told is None or fold(e["recipient"]) not in told]
        if partly:
            told = self._partly_deferred.pop(digest, set())
            told.update(fold(failed.original_recipient or failed.recipient or "") for failed, *_ in targets)
            told.update(fold(e["recipient"]) for e in fresh)
            self._partly_deferred[digest] = told
            while len(self._partly_deferred) > MAX_PARTLY_DEFERRED:
                self._partly_deferred.popitem(last=False)
        elif told is not None:
            del self._partly_deferred[digest]  # every recipient answered: no retry of it will come
        return fresh

    async def _observe(self, report: BounceReport, targets, token: VerpToken | None, txn: Transaction,
                       made: list[list[dict]]) -> tuple[list[Observation], list[str | None]]:
        """Every failure of `report` through the funnel, each one's events appended to `made` (not
        emitted); returns the observations and the transaction each was matched to (None: no token):
        in LMTP, the recipient of that return path is answered for it (RFC 2033 4.2)."""
        made_of = [(self._observation(report, failed, of, address, shared), of)
                   for failed, address, of, shared in targets]
        made_of = [(obs, of) for obs, of in made_of if obs is not None]
        message = self._message_of(report, token, txn)
        observations = _once_per_address([replace(obs, message=message) for obs, _ in made_of])
        owners = [of.transaction_id if of is not None else None for _, of in made_of]
        # 250 only once every failure is recorded, and 451 with nothing to retry twice (review12 F3): a
        # list held by another process is an error now, never a background retry as well (the
        # reporting MTA's retry is the retry: RFC 5321 4.2.1, 4yz). What a first attempt did record
        # is recorded under the report's message (`message`), so the retry does not count it again.
        # The report's own events wait for the answer: the application hears of a bounce once, with
        # the 250; the bounce list's changes (a listing made, the breaker's) happened, and are told
        # either way.
        for obs in observations:
            made.append(await self.outcomes.observe(obs, emit=False, retry_later=False))
        return observations, owners

    def _emit_list_changes(self, made: list[list[dict]]) -> None:
        """Of a report not recorded (deferred), the events of the bounce list's changes already made:
        they stand, and are told either way (_list_change)."""
        for events in made:
            for event in events:
                if _list_change(event):
                    self.outcomes.emit(event)

    def _answer_each(self, txn: Transaction, tokens: dict, report: BounceReport, owners: list, made: list,
                     failed_owners: set, what: str | None, tail: str) -> Decision:
        """LMTP (RFC 2033 4.2): after the final dot, one reply per recipient, each about the delivery to
        that recipient alone. A recipient is a return path; its failures are those matched to its
        transaction (without tokens, every failure is every recipient's: one report, one answer). A
        recipient whose failures were all recorded gets 250 and its events are emitted; one whose
        recording failed gets its own 451 (the reporting MTA retries that recipient only, and its
        events wait for that retry, but the bounce list's changes that were made are told now); a
        postmaster without a token, when tokens are in use, is not recorded (alone, not even read)."""
        def owner_of(rcpt: str):
            token = tokens.get(rcpt)
            return token.transaction_id if token is not None else None

        for owner, events in zip(owners, made):
            for event in events:
                if owner not in failed_owners or _list_change(event):
                    self.outcomes.emit(event)
        replies: dict[str, Reply] = {}
        for rcpt in txn.rcpts:
            owner = owner_of(rcpt)
            if self.codec is not None and owner is None:
                replies[rcpt] = Reply.make(250, "2.0.0", "Received (postmaster: not recorded)" + tail)
            elif owner in failed_owners:
                log.warning("bounce (transaction %s) for <%s>: the bounce list could not be updated: deferred "
                            "(451) for this recipient, its events not emitted", txn.id, printable(rcpt)[:300])
                replies[rcpt] = Reply.make(451, "4.3.0", "Bounce read, but the bounce list could not be "
                                                         "updated: try again later")
            else:
                count = sum(1 for o in owners if owner is None or o == owner)
                replies[rcpt] = Reply.make(250, "2.0.0", (f"Recorded {count} {what}" if what else
                                                          "Received: not a bounce, nothing recorded") + tail)
        txn.replies_by_recipient = replies
        accepted = [r for r in replies.values() if r.positive]
        if not accepted:
            return Decision(Verdict.DEFER, next(iter(replies.values())), "deferred")
        return accept(accepted[0])

    @staticmethod
    def _message_of(report: BounceReport, token: VerpToken | None, txn: Transaction) -> str | None:
        """The identity of the message a report is about, for counting (outcomes.message_key): the VERP
        transaction it came back to; else the returned message's Message-ID; else the original envelope
        id (RFC 3461 ENVID); else the report's own Message-ID (the same report delivered again). A
        report that carries none of them counts each time (nothing tells its retry from another)."""
        if token is not None:
            return message_key("verp", token.transaction_id)
        return (message_key("message-id", report.message_id)
                or message_key("envid", report.original_envelope_id)
                or message_key("report", (txn.headers or {}).get("message-id")))

    async def _recipients_of(self, tokens: list[VerpToken], report: BounceReport
                             ) -> tuple[list[tuple[FailedRecipient, str, VerpToken, int]], list[dict]]:
        """The failures (or complaints) of `report` about a recipient of one of the tokens' transactions,
        each with the address that matched (the one to act on), that transaction's token and how many
        recipients that transaction had; and a `warning` event (not emitted) for each address ignored.

        An alias or forward rewrites the address: the DSN's Final-Recipient is then the rewritten one and
        its Original-Recipient ours (RFC 3464 2.3.1, 2.3.2), so either may match. Original-Recipient is
        preferred when both do; when only the Final-Recipient matches, that is the address acted on (an
        Original-Recipient naming someone else must never be what gets listed). The comparison is the
        bounce list's (relay.store.base.recipient_digest: local part case-insensitive too).

        An Original-Recipient that reads two ways (FailedRecipient.original_readings: as written, and
        xtext-decoded, RFC 3461 4) offers both, the likelier first. When only one is a recipient of the
        transaction, that is the one acted on; when both are, the likelier is named and nothing is listed
        (_observation): either may be the mailbox that failed."""
        def named(failed: FailedRecipient) -> list[str]:
            # Each name as written first, then in its other canonical form (_spellings): the one the
            # transaction holds is the address the relay sent, and the one acted on.
            return [s for a in (*failed.original_spellings(), failed.recipient, failed.final_recipient)
                    if a and is_valid(a) for s in _spellings(a) if is_valid(s)]

        def resolved(failed: FailedRecipient, theirs) -> FailedRecipient:
            # An Original-Recipient read two ways of which only one was sent to is that one.
            if not failed.original_readings:
                return failed
            sent = [r for r in failed.original_readings if any(s in theirs for s in _spellings(r))]
            if len(sent) != 1:
                return failed
            if failed.final_recipient is None and failed.recipient in failed.original_readings:
                # No Final-Recipient (RFC 3464 2.3.2 requires one; not every MTA writes it): the recipient
                # was the likelier reading, and the one sent to is the failed address (review-int2 F7:
                # else taken for an alias of it, and never listed).
                return replace(failed, recipient=sent[0], original_recipient=sent[0], original_readings=())
            return replace(failed, original_recipient=sent[0], original_readings=())

        candidates = {a for failed in report.recipients for a in named(failed)}
        known = [(token, *await self.outcomes.store.verp_transaction(token.transaction_id, candidates))
                 for token in tokens]
        kept, strangers = [], []
        for failed in report.recipients:
            match = next(((a, token, total, theirs) for token, theirs, total in known for a in named(failed)
                          if a in theirs), None)
            if match is None:
                strangers.append(failed)
            else:
                kept.append((resolved(failed, match[3]), *match[:3]))
        if not strangers:
            return kept, []
        # One line a bounce, however many it names (a forged one may name thousands); the addresses
        # printable (relay.address.printable: no control characters from a hostile report).
        names = [failed.original_recipient or failed.recipient or "" for failed in strangers]
        shown = ", ".join(printable(a)[:100] for a in names[:10])
        more = f" and {len(names) - 10} more" if len(names) > 10 else ""
        log.warning("bounce for transaction %s names %d address(es) that were not recipients of that "
                    "transaction (forged or misdirected): ignored: %s%s",
                    ", ".join(t.transaction_id for t in tokens), len(strangers), shown, more)
        # The application hears of it too, tied to its transaction (the token is authentic: the report
        # is about its message), at most MAX_IGNORED_EVENTS a report: a forged report naming every
        # customer is one log line, not thousands of events.
        token, _, total = next(((t, theirs, n) for t, theirs, n in known if n), known[0])
        events = []
        for failed, name in list(zip(strangers, names))[:MAX_IGNORED_EVENTS]:
            if total:
                result = "not_a_recipient"
                text = (f"A bounce to this transaction's return path names {printable(name)[:300]}, which was not "
                        f"one of its {total} recipient(s): forged or misdirected; ignored, never on the bounce list.")
            else:
                result = "recipients_unknown"
                text = ("A bounce to this transaction's return path names an address, but no recipient of the "
                        "transaction is on record (sent before the recording, its write failed, or past "
                        f"{verp_keep_days()} days): ignored, never on the bounce list.")
            verp = {**token.as_fields(), "recipients": total}
            dsn = {k: v for k, v in {"action": failed.action, "status": failed.status,
                                     "diagnostic_code": failed.diagnostic, "remote_mta": failed.remote_mta,
                                     "reporting_mta": report.reporting_mta,
                                     "original_recipient": failed.original_recipient,
                                     "original_recipient_readings": list(failed.original_readings) or None,
                                     "final_recipient": failed.final_recipient}.items() if v is not None}
            events.append(make_event("warning", "data", recipient=name, sender=token.sender,
                                     message_id=report.message_id, check="verp_recipient", result=result,
                                     text=text, transaction_id=token.transaction_id, verp=verp, dsn=dsn,
                                     ignored_in_report=len(strangers),
                                     **({"feedback_type": failed.feedback_type} if failed.feedback_type else {})))
        return kept, events

    def _observation(self, report: BounceReport, failed: FailedRecipient, token: VerpToken | None,
                     address: str | None = None, shared: int = 0) -> Observation | None:
        # The address to act on is the one we sent to: with a VERP token, the one that was a recipient of
        # the transaction (`address`, _recipients_of); without, Original-Recipient when the reporting MTA
        # kept it (RFC 3464 2.3.1), else the address that failed.
        recipient = address or failed.original_recipient or failed.recipient
        if not recipient:
            return None
        if not is_valid(recipient):
            # Not an address we could have sent to (a local part over 64 octets, a broken domain):
            # nothing on the bounce list can stand for it, and a 451 would only bring it back.
            log.info("bounce names %s, not a valid address: not recorded", printable(recipient)[:300])
            return None
        if report.kind == "feedback":
            kind = "complained"
        elif failed.action == "delayed" or failed.final is False:
            kind = "deferred"  # a delay warning: the remote still tries
        else:
            kind = "bounced"
        sender = token.sender if token is not None and token.sender else self._original_sender(report)
        fields: dict = {"dsn": {k: v for k, v in {
            "action": failed.action, "status": failed.status, "reported_status": failed.reported_status,
            "diagnostic_code": failed.diagnostic, "diagnostic_type": failed.diagnostic_type,
            "remote_mta": failed.remote_mta, "reporting_mta": report.reporting_mta,
            "original_recipient": failed.original_recipient, "final_recipient": failed.final_recipient,
            "original_recipient_readings": list(failed.original_readings) or None,
            "actual_recipient": failed.actual_recipient,
            "recipients_not_read": report.blocks_not_read or None,
        }.items() if v is not None}}
        if failed.remote_mta:
            fields["remote_mta"] = failed.remote_mta
        if failed.feedback_type:
            fields["feedback_type"] = failed.feedback_type
        if token is not None:
            fields["verp"] = token.as_fields()
            fields["transaction_id"] = token.transaction_id
            if shared:
                fields["verp"]["recipients"] = shared
        fields.update(self._correlation(report, sender))
        # Without a token nothing says the report is about mail of ours: anyone can send one naming any
        # address. It never lists at once; by default it never touches the bounce list (review14 F2).
        at_most = "list" if token is not None else self.bounces.unsigned
        failed_address = failed.final_recipient or failed.recipient
        if kind != "complained" and failed_address and \
                _key(recipient) not in {_key(s) for s in _spellings(failed_address)}:
            # The address that failed is not the one we sent to: an alias or a forward expanded ours
            # (RFC 3464 2.3.1/2.3.2: Original-Recipient ours, Final-Recipient the member). A report
            # cannot tell a forward to one mailbox from one member of a list of many, and one member
            # gone says nothing of the alias the sender mailed: every later mail to it would bounce
            # for that member again, so even counting would list it in the end (review-12 F2). The
            # event is written; the bounce list is left alone (docs/bounces-in.md).
            log.info("bounce for %s is a failure of %s (an alias or forward expanded it): not recorded on the "
                     "bounce list", printable(recipient)[:300], printable(failed_address)[:300])
            at_most = "never"
        elif failed.original_readings and _key(recipient) in {_key(r) for r in failed.original_readings}:
            # The Original-Recipient reads two ways (as written and xtext-decoded, RFC 3461 4) and nothing
            # said which: no Final-Recipient named either, and the transaction (if a token tells it) had
            # both as recipients, or none is known. The event names the likelier; the bounce list is left
            # alone, for a good address listed is the worst error (issue 13): a mailbox really gone
            # fails again, and that failure will say.
            log.info("bounce for %s: its Original-Recipient reads as %s too (xtext, RFC 3461 4), and nothing "
                     "says which: not recorded on the bounce list", printable(recipient)[:300],
                     " or ".join(printable(r)[:300] for r in failed.original_readings if r != recipient))
            at_most = "never"
        if token is not None and shared > 1 and at_most == "list":
            # The return path was sent to `shared` recipients: each of them saw it (Return-Path, a reply
            # to it) and can mail a "bounce" naming any other (often in To: or Cc:). The token proves the
            # message, not which recipient failed. So such a report never lists at once
            # (suppression.yaml `shared_return_path:`, by default the second failure within 30 days
            # lists, and that entry expires after 30 days): one count per message (its VERP
            # transaction), however many reports come to it, so the listing needs a failure from
            # another message or a live refusal; and it is never domain evidence. A mailbox that is
            # really gone fails again at the next message; a good address listed is the worst error
            # this product can make (issue 13).
            at_most = "shared"
            fields["reason"] = (f"the return path was shared by {shared} recipients, any of whom could have "
                                f"sent this report: it never lists at once (suppression.yaml shared_return_path)")
        return Observation(kind=kind, stage=failed.stage, recipient=recipient, reply=failed.reply(),
                           sender=sender, message_id=report.message_id, fields=fields,
                           aliases=failed.aliases(recipient), return_path=token.return_path if token is not None else "",
                           at_most=at_most)

    def _original_sender(self, report: BounceReport) -> str:
        sender = report.original_sender or ""
        # X-Postfix-Sender of a VERP'd message is our own return path, not the sender.
        if sender and self.bounces.accepts(sender.rpartition("@")[2]):
            return ""
        return sender

    def _correlation(self, report: BounceReport, sender: str) -> dict:
        """The same correlation fields as the transaction's own events (outcomes.py): the returned
        message's In-Reply-To, References, Subject hash and `correlation.headers`, and the named groups
        of `correlation.sender_patterns` over the original sender."""
        out: dict = {}
        for name in ("in-reply-to", "references"):
            value = report.original_header(name)
            if value is not None:
                out[name.replace("-", "_")] = value
        subject = report.original_header("subject")
        if subject is not None:
            out["subject_sha256"] = hashlib.sha256(subject.encode("utf-8", "surrogateescape")).hexdigest()
        found = {}
        for wanted in self.settings.correlation.headers:
            value = report.original_header(wanted)
            if value is not None:
                found[wanted] = value
        if found:
            out["correlation"] = found
        for pattern in self.settings.correlation.sender_patterns:
            m = pattern.search(sender or "")
            if m:
                out.update({k: v for k, v in m.groupdict().items() if v is not None})
        return out


def _key(address: str) -> str:
    """An address as the bounce list compares it (relay.address.normalise), or as written when it is
    none."""
    try:
        return normalise(address)  # already folded: a further lower() would merge U+212A with "k"
    except ValueError:
        return fold(address)


def _spellings(address: str) -> list[str]:
    """`address` as written, then its NFC and NFD forms where they differ (Unicode canonical
    equivalence, UAX #15): one text, in the composed or decomposed form. An SMTPUTF8 local part the
    relay sent composed ("j\u00f6rg") comes back from some reporting MTAs decomposed ("jo\u0308rg"): read
    as another address, the failure was a verp_recipient warning, never recorded. RFC 6530 10.1 and
    RFC 6532 3.1 ask for NFC but a receiver cannot count on it. Only sequences are composed or
    decomposed: an address holding a character that NFC replaces on its own (a canonical singleton:
    U+212A KELVIN SIGN becomes "K", U+2126 OHM SIGN omega; a composition exclusion) is only as
    written, as distinct from the other spelling as the bounce list keeps them (relay.address, review24
    F2): the KELVIN SIGN's failure must never list kate@."""
    if address.isascii():
        return [address]
    if any(unicodedata.normalize("NFC", c) != c for c in address):
        return [address]
    return list(dict.fromkeys((address, unicodedata.normalize("NFC", address),
                               unicodedata.normalize("NFD", address))))


def _once_per_address(observations: list[Observation]) -> list[Observation]:
    """One report is one failure of an address, however many of its blocks name it (an alias's two
    members under one Original-Recipient, a block repeated with another text): only the first that
    may touch the bounce list does; the others' events are still written (review-12 F2)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for obs in observations:
        key = (obs.kind, _key(obs.recipient))
        if obs.at_most != "never" and key in seen:
            obs = replace(obs, at_most="never")
        if obs.at_most != "never":
            seen.add(key)
        out.append(obs)
    return out


def _raised_in(exc: BaseException) -> str:
    """Where `exc` was raised, as file:line (function), for a log line that stands for a traceback."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "unknown"
    code = tb.tb_frame.f_code
    return f"{code.co_filename.rpartition('/relay/')[2] or code.co_filename}:{tb.tb_lineno} ({code.co_name})"


def _list_change(event: dict) -> bool:
    """An event that tells of a change the bounce list made (emitted even when the report is deferred:
    the change stands)."""
    return event["kind"] in ("bounce_listed", "bounce_unlisted") or (
        event["kind"] == "warning" and event.get("check") == "breaker")


class IntakeOutcomes:
    """The funnel as the bounce intake's SMTP service sees it: the listener's own refusals (a RCPT to a
    domain that is no bounce domain, a forged or expired return path, a bounce not read in time, the
    451 of a busy list) are about whoever connected to the bounce MX (spam, probes, a reporting MTA's
    retry), not about a delivery of the application's mail. DESIGN.md's event kinds are delivery
    results (`policy_rejected`: "refused by our own policy" of a message sent through the relay), so
    they are logged and counted (`relay_bounces_in_refusals_total`), never emitted as events (review12
    F7). Everything else is the relay's Outcomes: the reports' own events (`bounced`, `complained`,
    `bounce_listed`) are emitted by BounceIntake through it."""

    def __init__(self, outcomes, metrics=None):
        self._outcomes = outcomes
        self._metrics = metrics

    def __getattr__(self, name):
        return getattr(self._outcomes, name)

    async def refused(self, txn, session, stage, recipients, decision) -> None:
        reply = decision.reply
        code = reply.code if reply is not None else 451
        text = reply.text.split("\n")[0] if reply is not None else "Temporary local problem"
        log.info("bounces_in refused %s from %s (session %s%s): %s", stage, session.peer_ip, session.id,
                 f", transaction {txn.id}" if txn is not None else "", printable(text)[:300])
        if self._metrics is not None:
            self._metrics.inc("relay_bounces_in_refusals_total", stage=stage, code=f"{code // 100}xx")

    def finish(self, txn) -> None:
        # The intake's transactions queue no delivery events (refused() emits none; BounceIntake emits
        # a report's own): whatever a step queued is an operator's matter, logged.
        for event in txn.notes.pop("events", None) or ():
            log.info("bounces_in (transaction %s): %s %s", txn.id, event.get("kind"),
                     printable(str(event.get("text") or event.get("reply") or ""))[:300])


def intake_settings(settings):
    """The settings the intake's SMTP service runs with: every peer may connect (bounces come from
    anywhere); what it may send is decided at RCPT by the bounce domains, never by `clients`. The
    message size is bounces_in's own (advertised in EHLO SIZE, 552 5.3.4 past it): each connection may
    hold that much in memory, and a listener open to everyone must not hold limits.max_message_size
    in each (review14 F3)."""
    limits = replace(settings.limits, max_message_size=settings.bounces_in.max_message_size)
    return replace(settings, clients=_EVERYONE, limits=limits)


def build_intake(settings, policies, outcomes, metrics=None):
    """The RelayService of the bounces_in listener."""
    from ..service import RelayService

    return RelayService(intake_settings(settings), policies, intake_pipeline(settings, outcomes),
                        IntakeOutcomes(outcomes, metrics), metrics)


def intake_pipeline(settings, outcomes) -> Pipeline:
    return Pipeline([BounceIntake(settings, outcomes)])
