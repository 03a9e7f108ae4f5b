"""What a refusal leads to: a classification, perhaps a bounce-list entry, and an event.

Refusals are classified and acted on (bounce list) at once, but their events
wait for the end of the transaction, so that a RCPT refusal can carry the
message's Message-ID, In-Reply-To and correlation headers once DATA was seen.
"""

from __future__ import annotations

import hashlib
import logging
import time

from .decision import Decision, Reply, Verdict
from .events import make_event
from .pipeline import Session, Transaction

log = logging.getLogger("relay.outcomes")


def _kind(decision: Decision) -> str:
    if decision.kind:
        return decision.kind
    reply = decision.reply
    if reply is not None and reply.source == "relay" and decision.verdict is Verdict.REJECT:
        return "policy_rejected"
    return "rejected" if decision.verdict is Verdict.REJECT else "deferred"


class Outcomes:
    def __init__(self, policies, store, sinks, settings, metrics=None):
        self.policies = policies
        self.store = store
        self.sinks = sinks
        self.settings = settings
        self.metrics = metrics

    async def refused(self, txn: Transaction | None, session: Session, stage: str, recipients: list[str],
                      decision: Decision) -> None:
        """Record one refusal of `recipients` (or of the whole transaction when empty)."""
        reply = decision.reply or Reply.make(451, "4.3.0", "Temporary local problem")
        kind = _kind(decision)
        classification = self.policies.classifier.classify(reply)
        for rcpt in recipients or [""]:
            fields = dict(decision.detail)
            listed = None
            # Every upstream refusal of a recipient is counted; policies/suppression.yaml decides
            # which of them (by category and permanence) put the address on the list.
            if rcpt and reply.source == "upstream" and stage in ("rcpt", "data") and kind in ("rejected", "deferred"):
                listed = await self._maybe_list(txn, session, stage, rcpt, reply, classification)
                if listed is not None:
                    fields["bounce_list"] = "listed" if listed else "error"
            self._queue(txn, self._event(kind, stage, txn, session, rcpt, reply, classification, fields))
            if listed:
                self._queue(txn, listed)

    def _queue(self, txn: Transaction | None, event: dict) -> None:
        if txn is None:
            self.emit(event)
        else:
            txn.notes.setdefault("events", []).append(event)

    async def _maybe_list(self, txn, session, stage, rcpt, reply, classification) -> dict | None | bool:
        """The bounce_listed event if this failure listed the address, None if not, False on a store error."""
        try:
            entry = await self.store.record_failure(
                rcpt, category=classification.category, permanent=classification.permanent,
                reply_text=reply.text, rule=classification.rule, policy=self.policies.suppression)
        except Exception:
            # The refusal itself already reached the client; a store outage must not hide it.
            log.exception("could not record failure of %s on the bounce list", rcpt)
            return False
        if entry is None or not entry.listed_now:
            return None  # not listed, or listed already: one bounce_listed event per listing
        return self._event("bounce_listed", stage, txn, session, rcpt, reply, classification,
                           {"actor": "relay", "reason": f"{classification.category} ({classification.rule})",
                            "entry": entry.as_dict()})

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
        enrich = self._enrichment(txn)
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
        return out

    def emit(self, event: dict) -> None:
        self.sinks.emit(event)
        if self.metrics is not None:
            self.metrics.inc("relay_events_total", kind=event["kind"])
