"""Postfix's delivery results -> the funnel's input (`outcomes.Observation`).

Only failures become observations: `deferred` (Postfix will try again), and `bounced` and
`undeliverable` (Postfix gave up, or an address verification probe found the address undeliverable).
`sent` and `deliverable` are successes and produce nothing.

The reply is the remote server's own, rebuilt line by line, when one answered (`host H said: ...`,
`host H refused to talk to me: ...`). When no server answered, the text is Postfix's own (a DNS
failure, a connection that timed out, `unknown user` from local delivery): the reply then has no
code (0), its text is Postfix's DSN status and words (`5.4.4 Host or domain name not found. ...`),
and `postfix.said_by` is null, so that nobody mistakes it for a provider's words. Classification,
attribution, the bounce list and the event are the funnel's.
"""

from __future__ import annotations

from typing import Any

from ..decision import Reply
from .correlate import DeliveryResult, ExpiredResult, QueueTracker
from .postfix_log import Delivery, LogLine

# verify(8) logs "undeliverable-but-not-cached" for a probe's failure when
# address_verify_negative_cache is off: the same finding as "undeliverable", only not remembered.
# `softbounce` (soft_bounce = yes: a bounce Postfix keeps and retries) is a deferral of the message; what
# the failure means (and whether the address is listed) is the reply's to tell, as for a `bounced` line.
FAILED = {"deferred": "deferred", "softbounce": "deferred", "bounced": "rejected", "undeliverable": "rejected",
          "undeliverable-but-not-cached": "rejected"}


def postfix_reply(delivery: Delivery) -> Reply:
    """The reply of a result no server answered: Postfix's DSN status and its own words, with no
    reply code (0: nobody sent one)."""
    dsn = delivery.dsn or ""
    if delivery.status == "softbounce" and dsn[:1] == "4":
        # soft_bounce = yes logs a bounce's status with its first digit made 4 (5.1.1 -> 4.1.1): the failure
        # Postfix itself found (unknown user, a forwarding loop) was permanent.
        dsn = "5" + dsn[1:]
    text = delivery.detail.postfix_text or delivery.detail.text or delivery.status
    return Reply(0, (f"{dsn} {text}" if dsn[:1] in ("4", "5") else text,), "mta-log")


def observation_fields(result: DeliveryResult, settings=None) -> dict[str, Any]:
    d = result.delivery
    line = result.line
    fields: dict[str, Any] = {"queue_id": d.queue_id}
    if d.relay is not None:
        fields["relay"] = d.relay.as_dict()
        if d.relay.port is not None and d.relay.name:
            # DESIGN.md's event contract: `upstream: {host, port}`, the next hop that answered, as a live
            # event names it; here the host Postfix talked to (relay=host[ip]:port). Not for relay=none,
            # local or a UNIX socket: no host and port to name. The provider breaker reads `relay`, by
            # the event's source (Outcomes._provider), not this field.
            fields["upstream"] = {"host": d.relay.name, "port": d.relay.port, "ip": d.relay.ip}
    if d.delay is not None:
        fields["delay"] = d.delay
    if d.delays is not None and len(d.delays) == 4:
        # postconf(5) delay_logging_resolution_limit: before the queue manager, in the queue
        # manager, connection setup, transmission.
        fields["delays"] = dict(zip(("before_queue_manager", "in_queue_manager", "connection_setup",
                                     "transmission"), d.delays))
    if d.dsn:
        fields["dsn"] = {"status": d.dsn}
    if result.size is not None:
        fields["size"] = result.size
    fields["postfix"] = {
        "status": d.status,
        "program": line.program,
        "host": line.host or None,
        "log_time": line.time.isoformat() if line.time else None,
        "said_by": d.detail.host if d.detail.reply is not None else None,
        "command": d.detail.command,
        "orig_recipient": d.orig_recipient,
        "suspended": d.detail.suspended,
        "detail": d.detail.text,
    }
    if settings is not None and result.sender:
        for pattern in settings.correlation.sender_patterns:
            m = pattern.search(result.sender)
            if m:
                fields.update({k: v for k, v in m.groupdict().items() if v is not None})
    return fields


def _when(line: LogLine) -> float | None:
    """The time of a log line (Unix time): counting windows and expiry run from it (review12 F6)."""
    return line.time.timestamp() if line.time is not None else None


def _message(line: LogLine, queue_id: str) -> str | None:
    """The message a result is about, for counting (outcomes.message_key): Postfix's queue file, by the
    host that logged it and its queue id. Every retry of a queue file (soft_bounce = yes keeps a 5xx in
    the queue and retries it; a 4xx then a 5xx) is the same message, one count (review12 F11)."""
    from ..outcomes import message_key

    return message_key("postfix", f"{line.host}/{queue_id}" if queue_id else None)


def observation_for(result: DeliveryResult, settings=None):
    """The Observation for one delivery result, or None for a success."""
    from ..outcomes import Observation

    d = result.delivery
    kind = FAILED.get(d.status)
    if kind is None:
        return None
    reply = d.detail.reply or postfix_reply(d)
    return Observation(kind=kind, stage=d.detail.stage, recipient=d.recipient, reply=reply,
                       sender=result.sender or "", message_id=result.message_id,
                       fields=observation_fields(result, settings),
                       aliases=(d.orig_recipient,) if d.orig_recipient else (),
                       time=_when(result.line), message=_message(result.line, d.queue_id))


def expired_observations(result: ExpiredResult, settings=None) -> list:
    """One `rejected` observation per recipient still deferred when qmgr gave the message up.

    qmgr's `status=expired, returned to sender` names no recipient and no reason: Postfix returns the
    message to its sender with the last deferral of each recipient. The observation says so in
    Postfix's terms (RFC 3463 X.4.7, delivery time expired) with that last deferral as the reason, so
    the rules class it as `expired` (the sending side gave up: it never lists the address) while the
    event still shows what the provider last said."""
    from ..outcomes import Observation

    out = []
    for last in result.pending:
        d = last.delivery
        reason = (d.detail.reply.text.replace("\n", " ") if d.detail.reply is not None
                  else postfix_reply(d).text)
        reply = Reply(0, (f"5.4.7 message expired in the queue ({result.expired.status}, returned to sender); "
                          f"last attempt: {reason}",), "mta-log")
        fields = observation_fields(last, settings)
        fields["postfix"] = {**fields["postfix"], "status": result.expired.status,
                             "log_time": result.line.time.isoformat() if result.line.time else None,
                             "last_deferral": d.detail.text}
        out.append(Observation(kind="rejected", stage=d.detail.stage, recipient=d.recipient, reply=reply,
                               sender=result.expired.sender or last.sender or "",
                               message_id=result.message_id or last.message_id, fields=fields,
                               time=_when(result.line), message=_message(last.line, d.queue_id)))
    return out


class PostfixLogIntake:
    """Lines in, observations out, for the follower and `relay postfix-log import` alike."""

    def __init__(self, settings, max_queue_ids: int | None = None):
        self.settings = settings
        conf = getattr(settings, "postfix_log", None)
        self.tracker = QueueTracker(max_entries=max_queue_ids or (conf.max_queue_ids if conf else 100_000))
        self.lines = 0
        self.results = 0

    def take(self, line: LogLine | None) -> list:
        """The observations this line makes: none, one for a failed delivery, or one per recipient
        still deferred when the message expired."""
        if line is None:
            return []
        self.lines += 1
        result = self.tracker.feed(line)
        if isinstance(result, ExpiredResult):
            self.results += len(result.pending)
            return expired_observations(result, self.settings)
        if not isinstance(result, DeliveryResult):
            return []
        self.results += 1
        obs = observation_for(result, self.settings)
        return [obs] if obs is not None else []
