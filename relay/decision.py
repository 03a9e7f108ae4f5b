"""SMTP replies and the verdicts that policy steps return.

A step never raises to refuse: it returns a Decision (Haraka's OK/DENY/DENYSOFT
shape). CONTINUE hands the command to the next step; ACCEPT, REJECT and DEFER
end the command with `reply`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

# RFC 3463: class.subject.detail, at the start of the reply text.
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")
_LINE = re.compile(r"^(\d{3})([ -]?)(.*)$")


# RFC 5321 4.5.3.1.5: a reply line is at most 512 octets with its code, the separator and CRLF.
_FOLD_AT = 512 - 4 - 2


def _octets(text: str) -> int:
    return len(text.encode("utf-8", "replace"))  # never raises, even on a lone surrogate


def _folded(line: str) -> list[str]:
    """One reply line's text as lines of at most _FOLD_AT octets ("More information may be conveyed
    through multiple-line replies", RFC 5321 4.5.3.1.5): cut at the last space that fits, else
    between two characters, and each continuation carries the line's enhanced code (RFC 2034 4).
    One pass over the line's octets."""
    m = _ENHANCED.match(line)
    prefix = f"{m.group(0)} " if m else ""
    data = line.encode("utf-8", "replace")
    pieces: list[str] = []
    start = 0
    while True:
        room = _FOLD_AT - (len(prefix) if pieces else 0)
        if len(data) - start <= room:
            break
        cut = start + room
        while cut > start and data[cut] & 0xC0 == 0x80:  # not inside a character (UTF-8 continuation)
            cut -= 1
        space = data.rfind(b" ", start, cut)
        if space > start + room // 2:
            piece, start = data[start:space], space + 1
        else:
            piece, start = data[start:cut], cut
        pieces.append(piece.decode("utf-8", "replace"))
    pieces.append(data[start:].decode("utf-8", "replace"))
    return [pieces[0]] + [prefix + piece for piece in pieces[1:]]


@dataclass(frozen=True)
class Reply:
    """One SMTP reply. `lines` hold the text of each line *without* the code prefix
    (but with the enhanced code where the server sent one), as aiosmtplib returns them."""

    code: int
    lines: tuple[str, ...]
    source: str = "relay"  # "relay" | "upstream" | "mta-log" | "dsn"
    # For the relay's own replies: which code path made it (an id in policies/relay-replies.yaml),
    # so that its classification says what really happened; provider rules never see it.
    cause: str | None = field(default=None, compare=False)
    # For a DSN: the leading enhanced code is the reporting MTA's Status field, put first because the
    # remote server's own words carry none (RFC 3464 2.3.4); it is the reporter's summary of the reply
    # code, not something the remote server said.
    enhanced_from_report: bool = field(default=False, compare=False)
    # For the relay's own reply saying what DNS answered (NXDOMAIN, a null MX): when the nameservers gave
    # that answer (Answer.fetched_at), which is earlier than the reply when the answer came from the cache.
    # A domain's "does not exist" sightings are dated by it (Outcomes._domain_evidence): the cache
    # replaying the first answer is never the confirming second sighting (review21 F1).
    answered_at: float | None = field(default=None, compare=False)

    @classmethod
    def make(cls, code: int, enhanced: str | None, text: str, source: str = "relay",
             cause: str | None = None) -> "Reply":
        lines = text.split("\n") if text else [""]
        if enhanced:
            lines = [f"{enhanced} {line}".rstrip() for line in lines]
        return cls(code, tuple(lines), source, cause)

    @classmethod
    def from_message(cls, code: int, message: str, source: str = "upstream") -> "Reply":
        """From aiosmtplib's (code, message): lines joined by newlines, prefixes stripped."""
        return cls(code, tuple(message.split("\n")) if message else ("",), source)

    @classmethod
    def parse(cls, text: str, source: str = "upstream") -> "Reply":
        """From wire text such as '550-5.1.1 a\\r\\n550 5.1.1 b'. Lines without a
        code prefix are kept as text (people paste replies in many shapes)."""
        code = 0
        lines: list[str] = []
        for raw in re.split(r"\r\n|\r|\n", text.strip()):
            m = _LINE.match(raw)
            if m and (m.group(2) or not m.group(3)):
                code = code or int(m.group(1))
                lines.append(m.group(3).lstrip() if m.group(2) == " " else m.group(3))
            else:
                lines.append(raw)
        return cls(code, tuple(lines) or ("",), source)

    @property
    def enhanced(self) -> str | None:
        m = _ENHANCED.match(self.lines[0]) if self.lines else None
        return ".".join(m.groups()) if m else None

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    @property
    def positive(self) -> bool:
        return 200 <= self.code < 400

    def _prefixed(self, lines) -> list[str]:
        if not self.code:
            return list(lines)
        last = len(lines) - 1
        return [f"{self.code}{' ' if i == last else '-'}{line}" for i, line in enumerate(lines)]

    def wire_lines(self) -> list[str]:
        """Each line with its own code prefix, as it goes on the wire (RFC 5321 4.2.1), none
        longer than RFC 5321 4.5.3.1.5's 512 octets (a longer one, an upstream's, is folded). A
        reply with no code (0: a log line or DSN gave none) is its text as it was written."""
        if not self.code:
            return list(self.lines)
        if all(len(line) <= _FOLD_AT // 4 or _octets(line) <= _FOLD_AT for line in self.lines):
            return self._prefixed(self.lines)
        return self._prefixed([piece for line in self.lines for piece in _folded(line)])

    @property
    def text(self) -> str:
        """The verbatim reply, every line with its code prefix, joined by newlines (not folded)."""
        return "\n".join(self._prefixed(self.lines))

    def wire(self) -> str:
        """What aiosmtpd's push() sends: lines joined by CRLF, no final CRLF."""
        return "\r\n".join(self.wire_lines())

    def as_dict(self) -> dict:
        return {"code": self.code, "enhanced": self.enhanced, "text": self.text, "source": self.source}


class Verdict(enum.Enum):
    CONTINUE = "continue"
    ACCEPT = "accept"
    REJECT = "reject"
    DEFER = "defer"


# The members as module names, for the per-command paths: under Python 3.11 `Verdict.CONTINUE` is a
# lookup through the enum's metaclass, about ten times a plain global's, and a message takes some
# twenty of them (each step's verdict, each command's outcome).
V_CONTINUE, V_ACCEPT, V_REJECT, V_DEFER = Verdict.CONTINUE, Verdict.ACCEPT, Verdict.REJECT, Verdict.DEFER


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reply: Reply | None = None
    # Event kind this decision should produce when it refuses (e.g. "suppressed",
    # "policy_rejected"); None lets the server derive it from the reply.
    kind: str | None = None
    detail: dict = field(default_factory=dict)  # extra event fields (never secrets)
    # The SMTP stage the reply answered when it is not the client's command: in MX mode the
    # upstream's MAIL (or greeting) is sent at the first RCPT, and its refusal answers that RCPT.
    stage: str | None = None

    @property
    def final(self) -> bool:
        return self.verdict is not V_CONTINUE


CONTINUE = Decision(Verdict.CONTINUE)


def accept(reply: Reply) -> Decision:
    return Decision(Verdict.ACCEPT, reply)


def reject(code: int, enhanced: str, text: str, kind: str | None = None, *, cause: str | None = None,
           **detail) -> Decision:
    return Decision(Verdict.REJECT, Reply.make(code, enhanced, text, cause=cause), kind, detail)


def defer(code: int, enhanced: str, text: str, kind: str | None = None, *, cause: str | None = None,
          **detail) -> Decision:
    return Decision(Verdict.DEFER, Reply.make(code, enhanced, text, cause=cause), kind, detail)


def relay_upstream(reply: Reply) -> Decision:
    """Pass an upstream reply through unchanged, whatever it was."""
    if reply.positive:
        return Decision(V_ACCEPT, reply)
    return Decision(V_REJECT if reply.permanent else V_DEFER, reply)
