"""The one funnel: reply -> classification -> attribution -> suppression -> event.

Every delivery result goes through here, whatever its way in (DESIGN.md): a live
SMTP session calls `refused()`; ways in without one (the Postfix log, DSNs, ARF
reports) hand an `Observation` to `observe()`.

A live session's refusals are classified and acted on (bounce list) at once, but
their events wait for the end of the transaction, so that a RCPT refusal can
carry the message's Message-ID, In-Reply-To and correlation headers once DATA
was seen.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Callable, Mapping

from .address import domain_of, is_valid, printable
from .decision import Decision, Reply, Verdict
from .events import bounded_fields, make_event
from .pipeline import Session, Transaction
from .store.base import StoreBusy
from .suppression import format_duration

log = logging.getLogger("relay.outcomes")

# Seconds between attempts to record a failure the bounce list's lock held up (about 10 minutes in all).
RECORD_RETRY_DELAYS = (1, 2, 5, 10, 30, 60, 120, 180, 200)

# The cause whose entry in relay-replies.yaml classifies, for the recipients a transaction had accepted, the
# next hop's 421 to another recipient's RCPT when that reply is about that recipient (Outcomes.session_closed).
SESSION_CLOSED = "upstream-closed-session"

# An event's `bounce_list_error` when the recording of its refusal was given up before the list's update was done
# (Outcomes._stopped).
STOPPED_RECORDING = ("the relay was shutting down and stopped waiting for the bounce list (past its deadline): "
                     "this refusal was not counted or listed")

OBSERVATION_KINDS = ("rejected", "deferred", "bounced", "complained")
# Events that report a refusal (and carry its classification), counted by relay_refusals_total.
REFUSAL_KINDS = ("rejected", "deferred", "suppressed", "policy_rejected", "bounced", "complained")

# Refusals about our side of the conversation: nobody's address is at fault, but the
# operator has something to fix (DESIGN.md: "an operator warning").
WARNED_SCOPES = {
    "sender": "The next hop refused the envelope sender or its authentication, not the recipients: "
              "no address was put on the bounce list. Fix the sender (see the classification's advice).",
    "session": "The next hop refused this relay's session (its HELO name, IP, rate or SMTP dialogue), "
               "not the recipients: no address was put on the bounce list. See the classification's advice.",
}


@dataclass(frozen=True)
class Observation:
    """One delivery result seen without a live SMTP session (the funnel's input for
    the Postfix log, DSNs and ARF reports)."""

    kind: str  # "rejected" | "deferred" | "bounced" | "complained"
    stage: str | None  # "connect" | "helo" | "mail" | "rcpt" | "data" | None (unknown)
    recipient: str
    reply: Reply  # Reply.source is "mta-log" or "dsn"
    sender: str = ""
    message_id: str | None = None
    # Extra event fields: queue_id, relay {host, ip, port}, delay, remote_mta,
    # dsn {action, status, ...}, feedback_type, VERP/correlation fields.
    fields: Mapping[str, Any] = field(default_factory=dict)
    # Other addresses the report gives for `recipient` (a DSN's Original- and Final-Recipient,
    # Postfix's orig_to): a reply naming one of them is about the recipient (Policies.judge).
    aliases: tuple[str, ...] = ()
    # The envelope sender the remote server saw when it is not `sender` (the VERP return path of a
    # VERP'd send): a reply that leads with it is the sender's (Policies.judge), as a live
    # transaction's return path is (record()).
    return_path: str = ""
    # The most this result may do to the bounce list: "list" (as judged), "count" (a listing at once
    # only counts, SuppressionPolicy.counting_rule), "shared" (a report to a VERP return path several
    # recipients were sent: SuppressionPolicy.shared_rule, never domain evidence) or "never" (events
    # only). A report nothing
    # authenticates (a bounce without a VERP token: bounces_in `unsigned:`) is never "list": anyone
    # can mail one naming any address (review14 F2).
    at_most: str = "list"
    # When the result happened (Unix time), when the way in knows it and it is not now: a Postfix log
    # line's own time. Counting windows and a listing's expiry run from it (review12 F6): an old log
    # imported today is judged as it happened, not as if every line were of the import's second.
    time: float | None = None
    # Which message the result is about (message_key()): a result about a message already counted is
    # not counted again (review12 F3, F11). None: unknown.
    message: str | None = None

    def senders(self) -> tuple[str, ...]:
        """The envelope sender addresses this result is judged with (Policies.judge's `sender`): the
        return path the remote server saw and the original sender it stands for. Both: a reply that
        leads with either is the sender's (a sender verification of the VERP address; a filter that
        checked the From, or a forwarder that resends with the original sender). The return path alone
        lost the original sender, and with it the rule that an address equal to the sender is the
        sender's even when it shares the recipient's domain or local part (review7 F1). One helper for
        the funnel (Outcomes.observe) and `relay postfix-log --dry-run` (review7 F4)."""
        return tuple(dict.fromkeys(a for a in (self.return_path, self.sender) if a))

    def forwarded_elsewhere(self) -> bool:
        """A bounce report gives the recipient under an address at another domain (a forward or alias
        onward: Final-Recipient or X-Actual-Recipient elsewhere): the domain a "no such domain" speaks
        of may be that one, not the recipient's (review-9 N1). Only a DSN's: the Postfix log's
        `orig_to` is the address before the relay's own rewriting, and its `to=`, the recipient, is
        the one the refusal is about (review-10 N2). Domains compared in A-labels (review-10 N3)."""
        if self.reply.source != "dsn":
            return False
        domain = domain_of(self.recipient)
        return any(domain_of(a) != domain for a in self.aliases if "@" in a)

    def __post_init__(self):
        if self.kind not in OBSERVATION_KINDS:
            raise ValueError(f"unknown observation kind {self.kind!r}; expected one of {', '.join(OBSERVATION_KINDS)}")


def message_key(namespace: str, value: str | None) -> str | None:
    """The identity of a message for the bounce list's counting (store.record_failure's `message`):
    a digest of where it comes from and its id there (`message-id` and the Message-ID header, `postfix`
    and host/queue id, `verp` and the transaction id), or None when there is no id. A digest: the table
    needs only equality, and the ids stay out of it. Message-IDs compared without their angle brackets
    and surrounding space (RFC 5322 3.6.4: the id is what is inside)."""
    if value is None:
        return None
    value = value.strip()
    if namespace == "message-id":
        value = value.strip("<>").strip()
    if not value:
        return None
    return hashlib.sha256(f"{namespace}:{value}".encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _kind(decision: Decision) -> str:
    if decision.kind:
        return decision.kind
    reply = decision.reply
    if reply is not None and reply.source == "relay" and decision.verdict is Verdict.REJECT:
        return "policy_rejected"
    return "rejected" if decision.verdict is Verdict.REJECT else "deferred"


def _listing(kind: str, judgement, rcpt: str) -> bool:
    """Whether a refusal of `rcpt` (an event of `kind`) touches its record on the bounce list: only one judged
    to be about that recipient (policies/suppression.yaml decides whether it counts or lists)."""
    return bool(rcpt) and kind in ("rejected", "deferred") and judgement.concerns(rcpt)


def _from_a_host_of_a_resolved_domain(txn: Transaction | None, reply: Reply) -> bool:
    """Whether `reply` is an upstream's in MX mode: the relay resolved the recipient's domain (its MX,
    or its address as the implicit MX, RFC 5321 5.1) and connected to what DNS gave, so the domain
    exists. That host's word that the domain does not exist ("Recipient address rejected: Domain not
    found" from a Postfix MX whose own resolver fails, or its address-verification probe's "Host or
    domain name not found") is its own trouble, never evidence for an @domain entry (review-13's open
    question: two such refusals an hour apart listed a domain the relay had just resolved). What the
    relay's own DNS lookup says is a relay reply (relay-replies.yaml), and a smarthost's word (a
    smarthost resolves the domain itself) stays evidence. Every recipient of an MX transaction went
    through its own domain's lookup first (steps/delivery.py: another MX set is a new transaction)."""
    if txn is None or reply.source != "upstream":
        return False
    delivery = txn.notes.get("delivery")
    return delivery is not None and tuple(getattr(delivery, "key", ()))[:1] == ("mx",)


class Outcomes:
    def __init__(self, policies, store, sinks, settings, metrics=None):
        self.policies = policies
        self.store = store
        self.sinks = sinks
        self.settings = settings
        self.metrics = metrics
        self._retries: set[asyncio.Task] = set()  # failures waiting for the bounce list's lock

    async def refused(self, txn: Transaction | None, session: Session, stage: str, recipients: list[str],
                      decision: Decision) -> None:
        """Record one refusal of `recipients` (or of the whole transaction when empty)."""
        reply, kind, judgement, classification, message = self._refusal(txn, session, stage, recipients, decision)
        domains_seen: set[str] = set()
        # Set when the recording is given up (cancelled: a shutdown past the store's deadline, RelayServer.stop):
        # the refusal's events are queued all the same, their list update marked as not done, and the
        # cancellation goes on once they are. The client saw this refusal: its event is never lost with
        # the bounce list's update (docs/events.md, `bounce_list_error`).
        stopped: asyncio.CancelledError | None = None
        for rcpt in recipients or [""]:
            fields = dict(decision.detail)
            follow: list[dict] = []
            # Only a refusal judged to be about this recipient touches its record;
            # policies/suppression.yaml decides (by category and permanence) whether it lists.
            def make(kind_, recipient, extra):
                return self._event(kind_, stage, txn, session, recipient, reply, classification, extra)

            try:
                # Only a refusal about this recipient touches its record (_list_refusal): none other is
                # marked as not recorded, nor its address logged as one the list may be missing (review-int2 F4).
                listing = _listing(kind, judgement, rcpt)
                if stopped is None:
                    try:
                        await self._list_refusal(make, txn, rcpt, kind, reply, judgement, fields, follow,
                                                 domains_seen, message)
                    except asyncio.CancelledError as exc:
                        stopped = exc
                        if listing and "bounce_list" not in fields:
                            self._stopped(fields, rcpt)
                elif listing:
                    self._stopped(fields, rcpt)
                self._queue(txn, self._event(kind, stage, txn, session, rcpt, reply, classification, fields))
            except Exception:
                self._told_on_defect(follow)
                raise
            for event in follow:
                self._queue(txn, event)
        if stopped is not None:
            raise stopped

    def refused_unrecorded(self, txn: Transaction | None, session: Session, stage: str, recipients: list[str],
                           decision: Decision) -> None:
        """refused() for a refusal whose recording is given up before it began: the command was cancelled
        after the refusal was read, in a watcher's write (the shaping reaction's hold), by a shutdown's drain
        past its own bound (RelayService._given_up). Its events are queued as refused() queues those of a
        recording cancelled half-way, each list update of a recipient's marked as not done; nothing here
        waits, so that no cancellation can come between the refusal and its events."""
        reply, kind, judgement, classification, _ = self._refusal(txn, session, stage, recipients, decision)
        for rcpt in recipients or [""]:
            fields = dict(decision.detail)
            if _listing(kind, judgement, rcpt):
                self._stopped(fields, rcpt)
            self._queue(txn, self._event(kind, stage, txn, session, rcpt, reply, classification, fields))

    def _refusal(self, txn, session, stage, recipients, decision):
        """What refused() and refused_unrecorded() make of a refusal before its recipients: the reply, the
        event's kind, the funnel's judgement and classification (its operator warning queued), the message."""
        reply = decision.reply or Reply.make(451, "4.3.0", "Temporary local problem", cause="local-error")
        kind = _kind(decision)
        judgement = self._judge(reply, stage, recipients, sender=(txn.return_path or txn.mail_from) if txn is not None else None)
        classification = judgement.classification
        if judgement.scope in WARNED_SCOPES and classification.permanent:
            # Temporary ones (greylisting, rate limits, a busy server) are the next hop's
            # passing state, retried by the client MTA; a permanent one needs the operator.
            self._warn(txn, session, stage, reply, classification)
        # The message, once DATA was seen: a client MTA's retry of it (its own soft_bounce, a 4xx then a
        # 5xx) is the same message, not another refusal (review12 F11). A refusal at RCPT has no message
        # yet: each counts (docs/bounce-list.md).
        message = message_key("message-id", txn.headers.get("message-id")) if txn is not None and txn.headers else None
        return reply, kind, judgement, classification, message

    async def _list_refusal(self, make, txn, rcpt, kind, reply, judgement, fields, follow, domains_seen,
                            message) -> None:
        """What one refusal of `rcpt` does to the bounce list (its failure counted or listed, its domain's
        evidence): `fields` gets the event's `bounce_list`, `follow` the events that follow it, each as
        soon as it is known (a cancellation half-way keeps what was done)."""
        if _listing(kind, judgement, rcpt):
            upstream = fields.get("upstream") or (txn.notes.get("upstream") if txn is not None else None)
            status, listed = await self._suppress_refusal(make, rcpt, judgement, reply.text,
                                                          self._provider(reply.text, self._live_host(upstream)),
                                                          message=message)
            follow += listed
            if status is not None:
                fields["bounce_list"] = status
        domain = rcpt.rpartition("@")[2].lower()
        if (rcpt and kind in ("rejected", "deferred") and judgement.about(rcpt) and not judgement.another
                and domain not in domains_seen and not _from_a_host_of_a_resolved_domain(txn, reply)):
            domains_seen.add(domain)  # one reply is one sighting of a domain
            # Dated by when DNS gave the answer the reply reports (the relay's own NXDOMAIN or null MX
            # reply): read back from the resolver's cache, it is the sighting it was when fetched.
            follow += (await self._domain_evidence(make, rcpt, reply, judgement.classification,
                                                   now=reply.answered_at, message=message))[0]

    def _stopped(self, fields: dict, rcpt: str) -> None:
        """The recording of a refusal of `rcpt` was given up before its bounce list update was done (a
        shutdown past the store's deadline): its event says so, the log names the address (an operator may
        add it by hand: `relay bounces add`), and relay_bounce_list_unrecorded_total{why="stopped"} counts it."""
        fields["bounce_list"] = "error"
        fields["bounce_list_error"] = STOPPED_RECORDING
        log.error("the failure of %s was never recorded on the bounce list: the relay stopped waiting for the "
                  "list's update (past its deadline) while shutting down", printable(rcpt)[:330])
        self._unrecorded("stopped")

    def session_closed(self, txn: Transaction, session: Session, stage: str, refused: str,
                       recipients: list[str], decision: Decision) -> None:
        """The next hop closed the session (a 421, RFC 5321 3.8) in its reply to the RCPT of `refused`
        (whose own event refused() wrote), and with it the transaction of `recipients`, accepted before:
        a deferred event each, with that reply, the words that ended their transaction (the client saw
        them and defers them with it). It answered no command of theirs: it is about them only as far as
        it is about the session, the sender or the message (judged as the reply to `refused`'s RCPT,
        that judgement is theirs too). What it says of a recipient's address is `refused`'s alone: for
        them it is the session's end, scope session (relay-replies.yaml `upstream-closed-session`),
        never the text of another's refusal read as their own. Either way it never touches the bounce
        list, its counts and its breakers, nor a domain's evidence (review F5: a "421 4.1.1 <b@x>: ...
        User unknown" to b's RCPT was recorded as a@x's own, counted towards listing a@x under a
        `temporary:` rule, and as a second "unknown" address at x for the domain's breaker). Nothing here
        waits: a command cancelled as it stops calls it too (RelayService._given_up)."""
        reply = decision.reply
        kind = _kind(decision)
        judgement = self._judge(reply, stage, [refused], sender=txn.return_path or txn.mail_from)
        classification = judgement.classification
        if judgement.scope == "recipient":
            from .classify import default_relay_replies

            relay_replies = getattr(self.policies, "relay_replies", None) or default_relay_replies()
            if SESSION_CLOSED not in relay_replies.causes:
                # An operator's relay-replies.yaml from before this entry: its `default:` is about a refusal
                # of the relay's own ("The relay itself refused this command"), which this is not.
                relay_replies = default_relay_replies()
            ended = relay_replies.classify(Reply(reply.code, reply.lines, "relay", SESSION_CLOSED))
            classification = replace(ended, scope="session")
        for rcpt in recipients:
            self._queue(txn, self._event(kind, stage, txn, session, rcpt, reply, classification, dict(decision.detail)))

    def _judge(self, reply, stage, recipients, aliases=(), sender=None):
        if self.metrics is None:
            return self.policies.judge(reply, stage, recipients, aliases, sender)
        with self.metrics.time("relay_classification_seconds"):
            return self.policies.judge(reply, stage, recipients, aliases, sender)

    def _warn(self, txn, session, stage, reply, classification) -> None:
        """One operator warning per transaction and rule (a sender refusal repeated at every
        RCPT is one problem, not fifty)."""
        key = (classification.scope, classification.rule)
        if txn is not None:
            seen = txn.notes.setdefault("scope_warnings", set())
            if key in seen:
                return
            seen.add(key)
        self._count_warning(classification.scope)
        self._queue(txn, self._event("warning", stage, txn, session, "", reply, classification,
                                     {"check": "attribution", "result": classification.scope,
                                      "text": WARNED_SCOPES[classification.scope]}))

    def _count_warning(self, scope: str) -> None:
        if self.metrics is not None:
            self.metrics.inc("relay_operator_warnings_total", scope=scope)

    async def observe(self, obs: Observation, *, emit: bool = True, retry_later: bool = True) -> list[dict]:
        """Classify, attribute, apply suppression and emit the event(s) of one result seen
        without a live session; returns the events emitted (the kind's event, plus
        bounce_listed when it listed the address). The kind's event carries `bounce_list: error`
        when the list could not be updated.

        `emit=False`: return the events without emitting them (the caller decides: the bounce
        intake emits a report's events only with its 250). `retry_later=False`: a list held by
        another process is an error now, never retried in the background (the bounce intake answers
        451 and the reporting MTA's retry is the retry: review12 F3)."""
        fields = dict(obs.fields)
        # Never in the future: a log line stamped ahead of this clock (a day's slack for zones) is now.
        now = min(obs.time, time.time()) if obs.time is not None else None
        emitted: list[dict] = []
        stage = obs.stage or "data"  # the schema's stage is required; a report after the fact is about delivery
        base = {"sender": obs.sender, "message_id": obs.message_id, "attempt_time": fields.pop("attempt_time", None)}
        classification = None
        if obs.kind != "complained":
            judgement = self._judge(obs.reply, obs.stage, [obs.recipient] if obs.recipient else [], obs.aliases,
                                    obs.senders() or None)
            classification = judgement.classification

        def make(kind, recipient, extra):
            return make_event(kind, stage, reply=obs.reply, classification=classification, recipient=recipient,
                              **base, **extra)

        status, follow = None, []
        stopped: asyncio.CancelledError | None = None
        # True while the recipient's own list update (_suppress) is under way: a cancellation that lands there
        # leaves its outcome unknown. One that lands elsewhere (the domain's evidence, after that update
        # returned its status, or for a result that never concerned the recipient) is no missed count or
        # listing of the address (review of int2, 2026-12-02, F2).
        updating = False
        try:
            try:
                if obs.at_most == "never":
                    pass  # events only: nothing vouches for what the report says (Observation.at_most)
                elif obs.kind == "complained":
                    # By the report's Feedback-Type (suppression.yaml `complaints.feedback_types`): a
                    # "not-spam" (RFC 6430) or "auth-failure" (RFC 6591, the sender's authentication) report
                    # is no complaint of the recipient's (review-12 F10).
                    rule = self.policies.suppression.complaint_rule(fields.get("feedback_type"))
                    if obs.at_most == "count" and rule is not None:
                        rule = self.policies.suppression.counting_rule(rule)
                    elif obs.at_most == "shared":
                        rule = self.policies.suppression.shared_rule(rule)
                    if rule is not None and obs.recipient:
                        updating = True
                        status, follow = await self._suppress(
                            make, obs.recipient, rule.category, True, obs.reply.text, "complaint",
                            f"complaint ({fields.get('feedback_type') or 'abuse'})", rule,
                            now=now, message=obs.message, retry_later=retry_later)
                        updating = False
                elif obs.recipient and judgement.concerns(obs.recipient):
                    if obs.at_most == "count" and judgement.bounce_list == "list":
                        c = judgement.classification
                        suppression = self.policies.suppression
                        judgement = replace(judgement, bounce_list="count", suppression_rule=(
                            suppression.counting_rule(suppression.rule_for(c.category, c.permanent))))
                    elif obs.at_most == "shared":
                        # A report to a VERP return path several recipients were sent (any of them could
                        # have written it: issue 13): suppression.yaml `shared_return_path:`, over the rule
                        # the judgement chose (an unconfirmed claim's count stays when it asks more).
                        c = judgement.classification
                        suppression = self.policies.suppression
                        rule = suppression.shared_rule(judgement.suppression_rule
                                                       or suppression.rule_for(c.category, c.permanent))
                        judgement = replace(judgement, bounce_list="never" if rule is None else "count",
                                            suppression_rule=rule)
                    if judgement.concerns(obs.recipient):  # `shared_return_path: off`: never
                        updating = True
                        status, follow = await self._suppress_refusal(
                            make, obs.recipient, judgement, obs.reply.text,
                            self._provider(obs.reply.text, self._reported_host(obs.reply.source, fields)),
                            now=now, message=obs.message, retry_later=retry_later)
                        updating = False
                # Domain evidence only from a report something vouches for (at_most "list"): a whole domain on
                # the list refuses everyone there, and bounces without a VERP token can be forged at will
                # (review15 F6: two forged "Host or domain name not found" bounces under `unsigned: count`
                # listed @gmail.com).
                if (obs.at_most == "list" and obs.kind != "complained" and obs.recipient
                        and judgement.about(obs.recipient)
                        and not judgement.another  # what it says may be of another address's domain (review7 F2)
                        and not obs.forwarded_elsewhere()):
                    more, failed = await self._domain_evidence(make, obs.recipient, obs.reply, classification,
                                                               now=now, message=obs.message)
                    follow += more
                    if failed and status in (None, "counted"):
                        # The sighting was not recorded: the list could not be updated (the bounce intake answers
                        # 451 for it, and the retry's count of the address is not a second one: one per message).
                        status = "error"
            except asyncio.CancelledError as exc:
                # A stop (the follower's, or the bounce listener's cut) while the bounce list's write was under
                # way: the result's events are made all the same, its list update marked as not done (as
                # refused() does for a live session's), and the cancellation goes on once they are out.
                stopped = exc
            if stopped is not None and updating:
                self._stopped(fields, obs.recipient)
            elif status is not None:
                fields["bounce_list"] = status
            emitted.append(make(obs.kind, obs.recipient, fields))
            if classification is not None and classification.scope in WARNED_SCOPES and classification.permanent:
                self._count_warning(classification.scope)
                emitted.append(make_event("warning", stage, reply=obs.reply, classification=classification,
                                          check="attribution", result=classification.scope,
                                          text=WARNED_SCOPES[classification.scope], recipient=obs.recipient,
                                          **base))
            emitted.extend(follow)
        except Exception:
            self._told_on_defect(follow)
            raise
        if stopped is not None:
            # Written, whatever the caller would have done with them: the Postfix log follower saved its cursor
            # past this line before, and its restart does not read it again. A caller that emits only with its
            # answer (the bounce intake, `emit=False`) gives none now (the reporting MTA, told no 250, sends the
            # report again): of its events only the bounce list's changes made, which stand (_told_on_defect).
            if emit:
                for event in emitted:
                    self.emit(event)
            else:
                self._told_on_defect(follow)
            raise stopped
        if emit:
            for event in emitted:
                self.emit(event)
        return emitted

    def _told_on_defect(self, changes: list[dict]) -> None:
        """A defect raised after the bounce list changed (a listing made, a breaker tripped) for one
        result: the change stands, so its events are emitted now, whether or not the caller would have
        emitted them (the bounce intake tells a report's list changes either way: _emit_list_changes; a
        live session's would have waited for the transaction's end), and the caller reports the defect.
        Without this the listing was made and nobody heard of it (its event went with the exception)."""
        for event in changes:
            self.emit(event)

    async def _suppress_refusal(self, make, rcpt, judgement, reply_text,
                                provider: str | None = None, **how) -> tuple[str | None, list[dict]]:
        """_suppress for a refusal the funnel judged to concern `rcpt`: by its classification, and
        by the suppression rule the judgement chose (an unconfirmed claim's, or the category's)."""
        c = judgement.classification
        return await self._suppress(make, rcpt, c.category, c.permanent, reply_text, c.rule,
                                    f"{c.category} ({c.rule})", judgement.suppression_rule, provider, **how)

    def _provider(self, reply_text: str, host: str | None) -> str | None:
        """The refusing provider (suppression.yaml `provider_breaker:`), or None when not known.

        `host`: the host that answered, where the way in knows it (_live_host, _reported_host). Else a
        host the reply itself names (`named_by`: a smarthost relaying a remote's words, "host H[ip]
        said:")."""
        breaker = self.policies.suppression.provider_breaker
        if breaker is None:
            return None
        found = breaker.provider_of(host) if host else None
        return found or breaker.provider_of(breaker.named_host(reply_text))

    @staticmethod
    def _live_host(upstream: Mapping | None) -> str | None:
        """The host a live session's refusal came from, as the provider breaker reads it: the MX host
        the delivery talked to (`route: mx`, set by relay/delivery/pool.py when that route was taken),
        never a smarthost: it answers for every destination, and holding everything it refuses would be
        a breaker for all mail."""
        if upstream and upstream.get("route") == "mx":
            return upstream.get("host") or upstream.get("ip")
        return None

    @staticmethod
    def _reported_host(source: str, fields: Mapping) -> str | None:
        """The host that refused, as a result seen after the fact reports it, by the way in (the reply's
        source), never by which fields the event happens to carry: the Postfix log's relay=host[ip]
        (`relay`; the event's `upstream` names the same host for readers, DESIGN.md, and has no
        `route`: read as a live one it would be taken for a smarthost), a DSN's Remote-MTA."""
        if source == "mta-log":
            relay = fields.get("relay") or {}
            return relay.get("host") or relay.get("ip") or None
        if source == "dsn":
            return fields.get("remote_mta") or None
        return None

    async def _suppress(self, make, rcpt, category, permanent, reply_text, rule_id, reason,
                        suppression_rule=None, provider: str | None = None, *, now: float | None = None,
                        message: str | None = None, retry_later: bool = True) -> tuple[str | None, list[dict]]:
        """Record one failure of `rcpt` on the bounce list. Returns the event's `bounce_list`
        value (listed, held, pending, error, or None when the list did not change) and the events
        that follow the failure's own: bounce_listed; or, when the circuit breaker trips, its
        warning and a bounce_unlisted for each earlier listing it moved to the held table."""
        if not is_valid(rcpt):
            # Not an address (an empty domain label, a bad address literal, a local part over RFC 5321
            # 4.5.3.1.1's 64 octets): the relay lets the next hop judge what it cannot tell is no
            # address, and the next hop's refusal names no key the list could hold. Not a store error.
            log.info("%s is not an address the bounce list can hold: its refusal is not recorded", printable(rcpt)[:330])
            return None, []
        failure = dict(category=category, permanent=permanent, reply_text=reply_text, rule=rule_id,
                       policy=self.policies.suppression, suppression_rule=suppression_rule, message=message)
        if provider:
            failure["provider"] = provider
        try:
            entry = await self.store.record_failure(rcpt, now=now, **failure)
        except StoreBusy as exc:
            if not retry_later:
                # The caller's answer makes the sender retry (the bounce intake's 451): a background
                # record as well would count the failure twice (review12 F3).
                log.warning("%s; the failure of %s is not recorded now (the sender is asked to retry)", exc, rcpt)
                return "error", []
            # Another process holds the list past the deadline: the failure is not lost, it is
            # recorded once the lock is free (and its events emitted then).
            log.warning("%s; the failure of %s is recorded in the background", exc, rcpt)
            self._record_later(make, rcpt, failure, reason, now if now is not None else time.time())
            return "error", []
        except Exception:
            # The refusal itself already reached the client; a store outage must not hide it.
            log.exception("could not record failure of %s on the bounce list", rcpt)
            self._unrecorded("error")
            return "error", []
        return self._recorded(make, rcpt, entry, reason)

    def _unrecorded(self, why: str) -> None:
        """Count a failure that never reached the bounce list: a missed listing must be alertable from
        /metrics, not only read in a log (review24 F10)."""
        if self.metrics is not None:
            self.metrics.inc("relay_bounce_list_unrecorded_total", why=why)

    def _recorded(self, make, rcpt, entry, reason) -> tuple[str | None, list[dict]]:
        # DESIGN.md's event contract: `bounce_list` on an event that changed or consulted the list. A failure
        # that reached record_failure was counted (towards a listing, or on the listing that holds the
        # address already): `counted`, never silence (a reader could not tell it from a refusal that
        # never touches the list). `listed`/`held` when it listed (or the breaker held the listing).
        if entry is None:
            return "counted", []
        if entry.listed_now and not entry.active():
            # Listed as of an old log line's time, and expired since (relay postfix-log import of an
            # archive): the list refuses nothing, so nobody is told it was listed.
            log.info("%s would have been listed at %s until %s: expired already, not listed", rcpt,
                     entry.first_seen.isoformat(), entry.expires_at.isoformat())
            return "counted", []
        if entry.listed_now:
            return "listed", [make("bounce_listed", rcpt, {"actor": "relay", "reason": reason,
                                                           "entry": entry.as_dict()})]
        if not entry.held_now:
            return "counted", []  # listed already (its count and last_seen updated): one bounce_listed per listing
        return "held", self._trip_events(make, entry)

    def _trip_events(self, make, entry) -> list[dict]:
        """The events of the breakers `entry` tripped now (_breaker_tripped, one set per trip)."""
        return [event for kind, name, moved in entry.trips
                for event in self._breaker_tripped(make, entry, kind, name, moved)]

    async def _domain_evidence(self, make, rcpt, reply, classification, *, now: float | None = None,
                               message: str | None = None) -> tuple[list[dict], bool]:
        """A permanent refusal of `rcpt` that says its domain does not exist is one sighting;
        seen again after the policy's delay, the domain goes on the list (`@domain`). A second
        sighting of the same message is no confirmation (`message`: store.record_domain_evidence).
        Returns the events and whether the sighting could not be recorded (a store error)."""
        rule = self.policies.suppression.domains
        if (rule is None or not classification.permanent or not rule.counts_category(classification.category)
                or not rule.says_no_such_domain(reply.text, rcpt)
                or not is_valid(rcpt)):  # no address, no domain to hold (_suppress)
            return [], False
        try:
            entry = await self.store.record_domain_evidence(rcpt, reply_text=reply.text, rule=classification.rule,
                                                            policy=rule, now=now, message=message)
        except Exception:
            log.exception("could not record that the domain of %s does not exist", rcpt)
            self._unrecorded("error")
            return [], True
        if entry is not None and entry.held_now:
            # The breaker on domain listings holds it (suppression.yaml `domains: breaker:`): the operator
            # warning when it tripped now, and a bounce_unlisted for each listing it took back.
            return self._trip_events(make, entry), False
        if entry is None or not entry.listed_now:
            return [], False
        if not entry.active():
            return [], False  # listed as of an old log line, expired since (_recorded)
        return [make("bounce_listed", entry.address, {
            "actor": "relay", "reason": f"the domain does not exist ({classification.rule}), seen again after "
                                        f"{format_duration(rule.seen_again_after)} or more",
            "entry": entry.as_dict()})], False

    def _breaker_tripped(self, make, entry, kind: str, name: str, moved: tuple[str, ...]) -> list[dict]:
        """A breaker tripped (`kind` domain or provider): the operator warning, its metric, and a
        bounce_unlisted for each earlier listing it took back."""
        if self.metrics is not None:
            self.metrics.inc("relay_breaker_trips_total")
        if kind == "domain":
            breaker = self.policies.suppression.breaker
            text = (f"More than {breaker.distinct_addresses} addresses at {name} were refused as unknown within "
                    f"{format_duration(breaker.within)}: the receiver may be misreporting (an outage). Listings at "
                    f"{name} are held, not made, until you confirm them (relay bounces confirm {name} --reason R) "
                    f"or discard them (relay bounces discard {name} --reason R); see relay bounces held.")
            what = {"domain": name}
        elif kind == "domains":
            breaker = self.policies.suppression.domains.breaker
            text = (f"More than {breaker.distinct_domains} domains were found not to exist (NXDOMAIN or a null MX, "
                    f"each seen twice) within {format_duration(breaker.within)}: that is the relay's DNS failing (a "
                    f"resolver that does not see the public DNS), not so many domains gone. Their listings are held, "
                    f"not made, until you confirm them (relay bounces confirm DOMAIN --reason R) or discard them "
                    f"(relay bounces discard DOMAIN --reason R); see relay bounces held. Check resolver.nameservers.")
            what = {"breaker": "domains"}
        else:
            breaker = self.policies.suppression.provider_breaker
            text = (f"More than {breaker.distinct_addresses} addresses refused by the provider {name} (its mail "
                    f"servers, whatever the recipients' domains) were refused as unknown within "
                    f"{format_duration(breaker.within)}: the provider may be misreporting (an outage). Listings "
                    f"it refuses are held, not made, until you confirm them (relay bounces confirm --provider "
                    f"{name} --reason R) or discard them (relay bounces discard --provider {name} --reason R); "
                    f"see relay bounces held --provider {name}.")
            what = {"provider": name}
        held = sorted({*moved, entry.address})
        events = [make("warning", "", {"check": "breaker", "result": "tripped", **what, "held": held, "text": text})]
        label = {"domain": name, "domains": "domain listings"}.get(kind, f"the provider {name}")
        for address in moved:
            events.append(make("bounce_unlisted", address, {
                "actor": "relay", "reason": f"circuit breaker tripped for {label}: held for the operator"}))
        return events

    def _record_later(self, make, rcpt: str, failure: dict, reason: str, at: float) -> None:
        async def retry() -> None:
            for delay in RECORD_RETRY_DELAYS:
                try:
                    await asyncio.sleep(delay)
                except asyncio.CancelledError:
                    log.error("the failure of %s was never recorded on the bounce list: the relay stopped "
                              "while the list was locked (reply: %s)", rcpt, failure["reply_text"].split("\n")[0])
                    self._unrecorded("stopped")
                    raise
                try:
                    entry = await self.store.record_failure(rcpt, now=at, **failure)  # `message` in failure
                except StoreBusy:
                    continue
                except Exception:
                    log.exception("could not record failure of %s on the bounce list", rcpt)
                    self._unrecorded("error")
                    return
                log.info("recorded the failure of %s on the bounce list after waiting for its lock", rcpt)
                for event in self._recorded(make, rcpt, entry, reason)[1]:
                    self.emit(event)
                return
            log.error("gave up recording the failure of %s on the bounce list: it stayed locked", rcpt)
            self._unrecorded("gave_up")

        task = asyncio.get_running_loop().create_task(retry())
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    def _queue(self, txn: Transaction | None, event: dict) -> None:
        if txn is None:
            self.emit(event)
        else:
            txn.notes.setdefault("events", []).append(event)

    def _event(self, kind, stage, txn, session, rcpt, reply, classification, fields) -> dict:
        extra = {
            "client": {"ip": session.peer_ip, "port": session.peer_port, "helo": session.helo,
                       "tls": session.tls, "auth_user": session.auth_user},
            "transaction_id": txn.id if txn else None,
            "attempt_time": txn.started if txn else time.time(),
        }
        up = txn.notes.get("upstream") if txn else None
        if up:
            extra["upstream"] = up
        extra.update(fields)
        return make_event(kind, stage, sender=txn.mail_from if txn else "", recipient=rcpt,
                          session_id=session.id, reply=reply, classification=classification, **extra)

    def finish(self, txn: Transaction) -> None:
        """Emit the transaction's events, enriched with what was seen of the message."""
        events = txn.notes.pop("events", None)
        if not events:
            return
        # What the message's header adds is the client's text: cut as make_event cuts the rest.
        enrich = bounded_fields(self._enrichment(txn))
        for event in events:
            for key, value in enrich.items():
                if event.get(key) is None:
                    event[key] = value
            self.emit(event)

    def _enrichment(self, txn: Transaction) -> dict:
        out: dict = {}
        headers = txn.headers
        if headers:
            out["message_id"] = headers.get("message-id")
            out["in_reply_to"] = headers.get("in-reply-to")
            out["references"] = headers.get("references")
            subject = headers.get("subject")
            if subject is not None:
                # Subject lines can carry personal data: a hash still lets the sender match messages.
                out["subject_sha256"] = hashlib.sha256(subject.encode("utf-8", "surrogateescape")).hexdigest()
            wanted = {h.lower(): h for h in self.settings.correlation.headers}
            found = {wanted[k]: v for k, v in headers.items() if k in wanted}
            if found:
                out["correlation"] = found
        for pattern in self.settings.correlation.sender_patterns:
            m = pattern.search(txn.mail_from or "")
            if m:
                out.update({k: v for k, v in m.groupdict().items() if v is not None})
        for key in ("spf", "dkim"):
            if key in txn.notes:
                out[key] = txn.notes[key]
        if txn.return_path:
            out["return_path"] = txn.return_path  # the VERP address later bounces come back to
        return out

    def emit(self, event: dict) -> None:
        self.sinks.emit(event)
        if self.metrics is not None:
            self._count(event)

    def _count(self, event: dict) -> None:
        kind = event["kind"]
        self.metrics.inc("relay_events_total", kind=kind)
        classification = event.get("classification")
        if kind not in REFUSAL_KINDS or not classification:
            return
        reply = event.get("reply") or {}
        self.metrics.inc("relay_refusals_total", kind=kind, category=classification.get("category") or "other",
                         scope=classification.get("scope") or "relay", source=reply.get("source") or "relay")
        recipient = event.get("recipient") or ""
        if "@" in recipient:
            # The domain only, never the address (docs/metrics.md); bounded in number by the metric.
            self.metrics.inc("relay_destination_refusals_total", kind=kind,
                             destination=recipient.rpartition("@")[2].lower())


async def open_outcomes(settings, policies, metrics=None) -> tuple[Outcomes, Callable[[], Awaitable[None]]]:
    """An Outcomes for use outside a running server (`relay postfix-log import`, `relay dsn`):
    the configured bounce list and event sinks, and the coroutine function that closes them.

        outcomes, close = await open_outcomes(settings, policies)
        try: ... await outcomes.observe(obs) ...
        finally: await close()
    """
    from .events import EventSinks
    from .store import open_store

    store = open_store(settings.bounce_list)
    sinks = EventSinks.for_command(settings)  # a command: not the relay's stdout (docs/events.md)

    async def close() -> None:
        try:
            await store.close()
        finally:
            sinks.close()

    return Outcomes(policies, store, sinks, settings, metrics), close
