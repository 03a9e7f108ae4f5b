"""Correlation by queue id: what cleanup, qmgr and the delivery agents each log about one message.

cleanup logs the Message-ID, qmgr the envelope sender (again at every retry, when the message
re-enters the active queue), a delivery agent one result line per recipient, and qmgr `removed`
when the queue file is gone. A delivery result carries what was seen of its message before it.

Memory is bounded: a queue id whose lines never complete (a log that starts in the middle, a
message deleted with postsuper, lines lost by syslog) is forgotten when `max_entries` newer ones
arrive (least recently seen first) or when it was last seen longer ago than `max_age` in log time.
qmgr logs the sender again at each retry, so a deferred message that outlives its entry gets it
back at its next attempt.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from .postfix_log import DEFERRALS, Delivery, Expired, LogLine, MessageId, Removed, Sender, parse_record

# Postfix keeps a message at most maximal_queue_lifetime (default 5 days): a day more covers it.
DEFAULT_MAX_AGE = 6 * 86400.0
DEFAULT_MAX_ENTRIES = 100_000


@dataclass
class QueueEntry:
    sender: str | None = None
    message_id: str | None = None
    size: int | None = None
    last_seen: float = 0.0  # log time (epoch seconds) of the newest line about it
    # Recipients whose latest result is a deferral, with that result: when qmgr gives the message up
    # (status=expired names no recipient), these are the recipients it failed for.
    deferred: dict[str, "DeliveryResult"] = field(default_factory=dict)


@dataclass(frozen=True)
class DeliveryResult:
    """One recipient's result with what is known of its message."""

    line: LogLine
    delivery: Delivery
    sender: str | None  # None: the sender's line was not seen (or was forgotten)
    message_id: str | None
    size: int | None = None

    @property
    def queue_id(self) -> str:
        return self.delivery.queue_id


@dataclass(frozen=True)
class ExpiredResult:
    """qmgr gave up on a message (maximal_queue_lifetime, or postsuper -e)."""

    line: LogLine
    expired: Expired
    message_id: str | None
    pending: tuple[DeliveryResult, ...] = ()  # each recipient still deferred, with its last deferral


class QueueTracker:
    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, max_age: float = DEFAULT_MAX_AGE):
        self.max_entries = max_entries
        self.max_age = max_age
        self._entries: OrderedDict[tuple[str, str, str], QueueEntry] = OrderedDict()
        self.forgotten = 0  # entries dropped by the caps, not by `removed`

    def __len__(self) -> int:
        return len(self._entries)

    def feed(self, line: LogLine) -> DeliveryResult | ExpiredResult | None:
        """Take one line; a delivery or expiry result when the line is one."""
        if not line.is_postfix:
            return None
        record = parse_record(line.text, line.service)
        if record is None:
            return None
        now = line.time.timestamp() if line.time else None
        # Queue ids are unique within one Postfix instance only: a central log holds several hosts, and
        # one host several instances (postmulti), each with its own syslog_name ("postfix-out/smtp").
        key = (line.host, line.program.split("/", 1)[0], record.queue_id)
        if isinstance(record, Removed):
            self._entries.pop(key, None)
            return None
        entry = self._touch(key, now)
        if isinstance(record, MessageId):
            entry.message_id = record.message_id
        elif isinstance(record, Sender):
            entry.sender = record.sender
            entry.size = record.size
        elif isinstance(record, Delivery):
            result = DeliveryResult(line, record, entry.sender, entry.message_id, entry.size)
            if record.status in DEFERRALS:  # softbounce too: still in the queue, expiry may follow
                entry.deferred[record.recipient] = result
            else:
                entry.deferred.pop(record.recipient, None)
            return result
        elif isinstance(record, Expired):
            entry.sender = record.sender
            pending = tuple(entry.deferred.values())
            entry.deferred.clear()
            return ExpiredResult(line, record, entry.message_id, pending)
        return None

    def _touch(self, key: tuple[str, str, str], now: float | None) -> QueueEntry:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = QueueEntry()
            self._evict(now)
        else:
            self._entries.move_to_end(key)
        if now is not None:
            entry.last_seen = now
        return entry

    def _evict(self, now: float | None) -> None:
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.forgotten += 1
        if now is None:
            return
        # Oldest first: stop at the first one still young enough.
        while self._entries:
            qid, entry = next(iter(self._entries.items()))
            if not entry.last_seen or now - entry.last_seen <= self.max_age:
                break
            self._entries.popitem(last=False)
            self.forgotten += 1
