"""Postfix's log lines -> delivery results, in the shapes Postfix writes them.

Two layers, each a pure function of text:

- `parse_line()` reads the frame every logger puts around Postfix's words: syslog (RFC 3164
  `Nov 29 11:24:41 host postfix/smtp[123]: ...`, RFC 3339 timestamps as rsyslog writes them with
  its high-precision template, and RFC 5424 `<22>1 2026-11-29T11:24:41Z host postfix/smtp 123 - - ...`)
  and Postfix's own `maillog_file` (3.4+, written by postlogd; the RFC 3164 shape).
- `parse_record()` reads Postfix's words after the queue id: the delivery agents' result lines
  (smtp, lmtp, local, virtual, pipe, error, retry, discard: `to=<...>, relay=..., delay=...,
  delays=a/b/c/d, dsn=X.Y.Z, status=... (detail)`), cleanup's `message-id=`, qmgr's `from=` and
  `removed`, and qmgr's `status=expired`.

The detail in parentheses is split into who said it (`host H[ip] said:`), the reply, and the SMTP
stage (`(in reply to RCPT TO command)`), or recognised as a text Postfix writes itself (DNS
failures, connection failures, lost connections). Postfix flattens a multi-line reply into one
line, joining the lines with a space (smtp_chat.c); `split_reply()` rebuilds the lines at each
`NNN-X.Y.Z` / `NNN X.Y.Z` marker, so the provider's reply comes out line by line again.

Which service wrote a line is not a reliable guide (master.cf services log under their own
`syslog_name`, e.g. `postfix/relay`, `postfix-out/smtp`): lines are recognised by their content.
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from ..decision import Reply

# -- the frame: syslog / maillog_file ---------------------------------------------------------

_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
# journalctl and syslog daemons print the month in the locale's words (strftime %b): a German
# system writes "Mär", "Mai", "Okt", "Dez" (and some "Mrz"), as pasted in many issue threads.
_MONTHS.update({"mär": 3, "mrz": 3, "mai": 5, "okt": 10, "dez": 12})

# Prefixes other programs put before the logger's line:
# - `docker compose logs` / `docker-compose logs`: "<service>  | " (the service name, padding, a bar);
# - leading blanks (a paste, an indented quote).
_PREFIX = re.compile(r"^\s*(?:[A-Za-z0-9][\w.-]*\s+\|\s)?\s*")
# rsyslog's RepeatedMsgReduction folds identical lines: "message repeated 2 times: [ <text>]".
_REPEATED = re.compile(r"^message repeated \d+ times: \[ ?(?P<text>.*)\]$")
# Severity words some loggers print where syslog has the host (docker-postfix's plain format:
# "2024-12-30T12:16:31.935334+01:00 INFO    postfix/qmgr[1199]: ...").
_LEVELS = r"(?:DEBUG|INFO|NOTICE|WARN(?:ING)?|ERR(?:OR)?|CRIT(?:ICAL)?|ALERT|EMERG|FATAL|PANIC)"
# BusyBox syslogd (Alpine images) writes "facility.level" between the host and the tag.
_FACILITY = (r"(?:(?:auth|authpriv|cron|daemon|ftp|kern|lpr|mail|news|syslog|user|uucp|local[0-7])"
             r"\.(?:emerg|alert|crit|err|error|warn|warning|notice|info|debug) )")

# RFC 3164 (and postlogd): "Nov 29 11:24:41 host tag[pid]: text"; a PRI may lead when read off the wire.
_RFC3164 = re.compile(
    r"^(?:<\d{1,3}>)?(?P<mon>[A-Z][a-zä]{2}) {1,2}(?P<day>\d{1,2}) (?P<time>\d\d:\d\d:\d\d)(?:\.\d+)? "
    r"(?:(?P<host>[^\s\[]+(?<!:)) )?" + _FACILITY + r"?(?P<tag>[^\s\[:]+)(?:\[(?P<pid>\d+)\])?: (?P<text>.*)$")
# RFC 3339 timestamp in front (rsyslog's RSYSLOG_FileFormat, syslog-ng's ISO dates).
# The host may be missing (a container's own stdout, timestamped by Docker) or replaced by a
# severity column; as in RFC 3164 lines, a host never holds "[" nor ends in ":", so a tag with
# its [pid] is never taken for one.
_ISO = re.compile(
    r"^(?:<\d{1,3}>)?(?P<ts>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?) +"
    r"(?:" + _LEVELS + r" +|(?P<host>[^\s\[]+(?<!:)) +)?" + _FACILITY + r"?"
    r"(?P<tag>[^\s\[:]+)(?:\[(?P<pid>\d+)\])?: (?P<text>.*)$")
# RFC 5424: "<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG"; "-" is the nil value (section 6).
_RFC5424 = re.compile(
    r"^<\d{1,3}>1 (?P<ts>\S+) (?P<host>\S+) (?P<tag>\S+) (?P<pid>\S+) \S+ "
    r"(?P<sd>-|(?:\[(?:[^\]\\]|\\.)*\])+) ?(?P<text>.*)$")


@dataclass(frozen=True)
class LogLine:
    """One logged line: when, where, which program, and the program's own words."""

    time: datetime | None
    host: str
    program: str  # as logged: "postfix/smtp", "postfix/submission/smtpd", "postfix-out/relay"
    pid: int | None
    text: str

    @property
    def service(self) -> str:
        """The last part of the program name (`smtp` of `postfix-out/smtp`)."""
        return self.program.rsplit("/", 1)[-1]

    @property
    def is_postfix(self) -> bool:
        """Postfix logs as `<syslog_name>/<service>`; `syslog_name` is `postfix` unless changed."""
        return "/" in self.program


def parse_line(raw: str, now: datetime | None = None) -> LogLine | None:
    """The frame of one line, or None when it is not a syslog/maillog line at all.

    RFC 3164 timestamps have no year and no zone: the year is the one that puts the line no more
    than a day in the future of `now` (a log read in January still holds December's lines), and the
    zone is the local one, as syslog wrote it."""
    line = raw.rstrip("\r\n").lstrip("\x00")
    if line[:1] != "<":
        line = _PREFIX.sub("", line, count=1)
    m = _RFC3164.match(line)
    if m:
        # Container logs often leave the host out ("Apr 13 18:49:19 postfix/local[54]: ...").
        return LogLine(_rfc3164_time(m, now), m["host"] or "", m["tag"], int(m["pid"]) if m["pid"] else None,
                       _unfold(m["text"]))
    m = _ISO.match(line)
    if m:
        return LogLine(_iso_time(m["ts"]), m["host"] or "", m["tag"], int(m["pid"]) if m["pid"] else None,
                       _unfold(m["text"]))
    m = _RFC5424.match(line)
    if m:
        pid = int(m["pid"]) if m["pid"].isdigit() else None
        tag = "" if m["tag"] == "-" else m["tag"]
        text = m["text"]
        if text.startswith("\ufeff"):  # RFC 5424 6.4: a UTF-8 MSG may start with a BOM
            text = text[1:]
        return LogLine(_iso_time(m["ts"]) if m["ts"] != "-" else None, m["host"], tag, pid, _unfold(text))
    return None


def _unfold(text: str) -> str:
    """The program's words, out of rsyslog's "message repeated N times: [ ... ]" when folded."""
    if text.startswith("message repeated "):
        m = _REPEATED.match(text)
        if m:
            return m["text"]
    return text


def _rfc3164_time(m: re.Match, now: datetime | None) -> datetime | None:
    month = _MONTHS.get(m["mon"].lower())
    if month is None:
        return None
    local_now = now.astimezone() if now is not None else _local_now()
    # A log holds many lines per second: the same stamp is worked out once.
    return _stamp(month, int(m["day"]), m["time"], local_now.year, local_now.timestamp() // 86400)


@functools.lru_cache(maxsize=4096)
def _stamp(month: int, day: int, hms: str, year: int, today: float) -> datetime | None:
    hh, mm, ss = (int(x) for x in hms.split(":"))
    limit = (today + 2) * 86400  # no more than a day ahead of now (a day's slack for zones)
    for y in (year, year - 1):
        try:
            t = datetime(y, month, day, hh, mm, ss).astimezone()
        except ValueError:  # Feb 29 of a year that has none
            continue
        if t.timestamp() <= limit:
            return t
    return None


_now_cache: list = [0.0, None]


def _local_now() -> datetime:
    """The local time, read at most once a second."""
    mono = time.monotonic()
    if _now_cache[1] is None or mono - _now_cache[0] >= 1.0:
        _now_cache[:] = [mono, datetime.now().astimezone()]
    return _now_cache[1]


def _iso_time(ts: str) -> datetime | None:
    text = ts.replace(" ", "T", 1)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Python before 3.11 accepts at most six fraction digits; rsyslog writes six, some write nine.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    return t if t.tzinfo else t.astimezone()


# -- Postfix's words: records keyed by queue id -------------------------------------------------

# Short ids are hex (6+); long ids (enable_long_queue_ids) use a 52-letter alphabet without vowels
# (qmgr/queue_id.c: base 52 of time and inode).
QUEUE_ID = r"(?:[0-9A-F]{6,}|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{10,})"
_QUEUE_PREFIX = re.compile(rf"^(?P<qid>{QUEUE_ID}): (?P<rest>.*)$")

# "softbounce": Postfix logs `status=SOFTBOUNCE` (in capitals) where `soft_bounce = yes` turned a bounce into
# a deferral; its dsn= then starts with 4 where the failure's own starts with 5 (review26 F2: ignored).
STATUSES = ("sent", "bounced", "deferred", "softbounce", "expired", "undeliverable", "deliverable")
# The results Postfix keeps the message for and tries again.
DEFERRALS = ("deferred", "softbounce")


@dataclass(frozen=True)
class Relay:
    """`relay=` of a result line: `host[ip]:port`, `host[/path/socket]`, `local`, `none`, a transport."""

    name: str
    ip: str | None = None
    port: int | None = None
    path: str | None = None

    def as_dict(self) -> dict:
        out: dict = {"host": self.name}
        if self.ip:
            out["ip"] = self.ip
        if self.port is not None:
            out["port"] = self.port
        if self.path:
            out["path"] = self.path
        return out


@dataclass(frozen=True)
class Detail:
    """The text in parentheses after `status=...`, taken apart."""

    text: str  # verbatim, without the outer parentheses
    host: str | None = None  # who said it: "mx.example[192.0.2.1]" (None when Postfix said it)
    reply: Reply | None = None  # the remote server's reply, line by line (source "mta-log")
    stage: str | None = None  # connect | helo | mail | rcpt | data, when the text tells
    command: str | None = None  # as Postfix named it: "RCPT TO", "end of DATA", ...
    postfix_text: str | None = None  # Postfix's own words when no server replied
    suspended: bool = False  # "delivery temporarily suspended: ..." (a cached earlier failure)


@dataclass(frozen=True)
class Delivery:
    """One recipient's delivery attempt, as a delivery agent logged it."""

    queue_id: str
    recipient: str
    status: str  # sent | bounced | deferred | softbounce | undeliverable | deliverable | expired (lower case)
    detail: Detail
    orig_recipient: str | None = None
    relay: Relay | None = None
    delay: float | None = None
    delays: tuple[float, ...] | None = None  # before qmgr, in qmgr, connection setup, transmission
    dsn: str | None = None
    conn_use: int | None = None
    service: str = ""  # the program that logged it (smtp, lmtp, local, virtual, pipe, error, ...)


@dataclass(frozen=True)
class MessageId:
    queue_id: str
    message_id: str


@dataclass(frozen=True)
class Sender:
    """qmgr's `from=<...>, size=N, nrcpt=N (queue active)`: the envelope sender of a queue file."""

    queue_id: str
    sender: str
    size: int | None = None
    nrcpt: int | None = None


@dataclass(frozen=True)
class Expired:
    """qmgr's `from=<...>, status=expired, returned to sender` (also force-expired)."""

    queue_id: str
    sender: str
    status: str


@dataclass(frozen=True)
class Removed:
    queue_id: str


Record = Delivery | MessageId | Sender | Expired | Removed

# `to=<...>` may hold quoted local parts with commas and spaces: the address ends at the `>` that
# is followed by the next field's ", " (or the end of the text).
_FIELDS = re.compile(r"(?P<key>to|orig_to)=<(?P<addr>.*?)>(?:, |$)"
                     r"|(?P<k2>relay|delay|delays|dsn|conn_use)=(?P<val>[^,\s]*)(?:, |$)")
# Any case: Postfix writes `status=SOFTBOUNCE` in capitals (soft_bounce = yes), the others in lower case.
_STATUS = re.compile(r"status=(?P<status>[A-Za-z-]+)(?: \((?P<detail>.*)\)|, (?P<tail>.*))?$")
# A line cut short by the logger (syslog's message size limit) loses its closing parenthesis:
# the detail is what is left of it.
_STATUS_CUT = re.compile(r"status=(?P<status>[A-Za-z-]+) \((?P<detail>.*)$")


def parse_record(text: str, service: str = "") -> Record | None:
    """What one of Postfix's lines says about a queue file, or None for lines of no interest."""
    m = _QUEUE_PREFIX.match(text)
    if not m:
        return None
    # Some loggers (and pastes) leave blanks after the closing parenthesis.
    qid, rest = m["qid"], m["rest"].rstrip()
    if rest.startswith("to="):
        return _delivery(qid, rest, service)
    if rest.startswith("message-id="):
        return MessageId(qid, rest[len("message-id="):].strip())
    if rest.startswith("from=<"):
        return _from_line(qid, rest)
    if rest == "removed":
        return Removed(qid)
    return None


def _delivery(qid: str, rest: str, service: str) -> Delivery | None:
    pos = 0
    values: dict[str, str] = {}
    while True:
        m = _FIELDS.match(rest, pos)
        if not m:
            break
        if m["key"]:
            values[m["key"]] = m["addr"]
        else:
            values[m["k2"]] = m["val"]
        pos = m.end()
    st = _STATUS.match(rest, pos) or _STATUS_CUT.match(rest, pos)
    if "to" not in values or not st:
        return None
    status = st["status"].lower()
    detail = parse_detail(st["detail"] if st["detail"] is not None else (st.groupdict().get("tail") or ""))
    return Delivery(
        queue_id=qid, recipient=values["to"], status=status, detail=detail,
        orig_recipient=values.get("orig_to"), relay=_relay(values.get("relay")),
        delay=_float(values.get("delay")), delays=_delays(values.get("delays")), dsn=values.get("dsn"),
        conn_use=int(values["conn_use"]) if values.get("conn_use", "").isdigit() else None, service=service)


_FROM = re.compile(r"^from=<(?P<sender>.*?)>, (?P<rest>.*)$")


def _from_line(qid: str, rest: str) -> Record | None:
    m = _FROM.match(rest)
    if not m:
        return None
    tail = m["rest"]
    st = re.match(r"status=(?P<status>[a-z-]*expired)\b", tail)
    if st:
        return Expired(qid, m["sender"], st["status"])
    size = re.search(r"\bsize=(\d+)", tail)
    nrcpt = re.search(r"\bnrcpt=(\d+)", tail)
    return Sender(qid, m["sender"], int(size[1]) if size else None, int(nrcpt[1]) if nrcpt else None)


_RELAY = re.compile(r"^(?P<name>.*)\[(?P<inner>[^\]]*)\](?::(?P<port>\d+))?$")


def _relay(value: str | None) -> Relay | None:
    if not value:
        return None
    m = _RELAY.match(value)
    if not m:
        return Relay(value)  # "none", "local", "dovecot" (a pipe transport), "virtual"
    inner = m["inner"]
    if "/" in inner or not re.match(r"^[0-9A-Fa-f.:]+$", inner):  # a socket path: lmtp over unix
        return Relay(m["name"], path=inner)
    return Relay(m["name"], ip=inner, port=int(m["port"]) if m["port"] else None)


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _delays(value: str | None) -> tuple[float, ...] | None:
    if not value:
        return None
    try:
        return tuple(float(x) for x in value.split("/"))
    except ValueError:
        return None


# -- the detail in parentheses ----------------------------------------------------------------

# smtp/smtp_proto.c and lmtp name the command a reply answered; HELO covers EHLO/LHLO, and
# STARTTLS and AUTH belong to the session's setup, before any transaction (RFC 5321 4.1.4).
_COMMAND_STAGE = {
    "MAIL FROM": "mail", "RCPT TO": "rcpt", "DATA": "data", "end of DATA": "data", "BDAT": "data",
    "end of BDAT": "data", "HELO": "helo", "EHLO": "helo", "LHLO": "helo", "STARTTLS": "helo",
    "AUTH": "helo", "XFORWARD": "helo", "initial server greeting": "connect",
}
# smtp/smtp_trouble.c and smtp_proto.c: "while <doing what>" after a lost connection or time-out.
_WHILE_STAGE = (
    ("receiving the initial server greeting", "connect"),
    ("performing the EHLO handshake", "helo"), ("performing the HELO handshake", "helo"),
    ("performing the LHLO handshake", "helo"), ("performing the STARTTLS", "helo"),
    ("sending MAIL FROM", "mail"), ("sending RCPT TO", "rcpt"), ("sending DATA", "data"),
    ("sending message body", "data"), ("sending end of data", "data"), ("sending BDAT", "data"),
)

_SUSPENDED = "delivery temporarily suspended: "
# The stage is the LAST "(in reply to X command)", the one that ends the text: a reply may itself quote
# one (Postfix's reject_unverified_recipient puts its probe's "... (in reply to MAIL FROM command)" in
# its own reply), which stays part of the provider's text, verbatim (review-13 R13-3). Postfix names
# the command without parentheses (smtp_proto.c), so `cmd` cannot reach across an inner one.
_SAID = re.compile(r"^host (?P<host>\S+) said: (?P<reply>.*?)(?: \(in reply to (?P<cmd>[^()]+?) command\))?$", re.S)
_REFUSED = re.compile(r"^host (?P<host>\S+) refused to talk to me: (?P<reply>.*)$", re.S)
_CONNECT = re.compile(r"^connect to (?P<host>\S+?)(?::\d+)?: (?P<why>.*)$")
_LOST = re.compile(r"^(?:lost connection with|conversation with) (?P<host>\S+) "
                   r"(?:timed out )?while (?P<while>.*)$")
_REPLY_START = re.compile(r"^\d{3}(?:[ -]|$)")
# smtp/smtp_sasl_glue.c: AUTH to the next hop failed. Our credentials, never the recipient: the
# session's setup (AUTH comes after EHLO, before MAIL; RFC 4954).
_SASL_SAID = re.compile(r"^SASL authentication failed; server (?P<host>\S+) said: (?P<reply>.*)$", re.S)
_SASL_OTHER = re.compile(r"^SASL authentication failed[;:] ")
# smtp/smtp_proto.c: what the server's EHLO reply lacked (STARTTLS, SMTPUTF8) or a TLS handshake
# that failed; and the server's SIZE limit (RFC 1870), checked before MAIL FROM. All about the
# session or the message, never the recipient.
_SESSION_TEXTS = (
    (re.compile(r"^(?:TLS|SMTPUTF8) is required, but was not offered by host "), "helo"),
    (re.compile(r"^Cannot start TLS: handshake failure"), "helo"),
    (re.compile(r"^message size \d+ exceeds size limit \d+ of server "), "mail"),
)


def parse_detail(text: str) -> Detail:
    suspended = text.startswith(_SUSPENDED)
    inner = text[len(_SUSPENDED):] if suspended else text
    m = _SAID.match(inner)
    if m and _REPLY_START.match(m["reply"]):
        cmd = m["cmd"]
        return Detail(text, host=m["host"], reply=split_reply(m["reply"]), command=cmd,
                      stage=_COMMAND_STAGE.get(cmd) if cmd else None, suspended=suspended)
    m = _REFUSED.match(inner)
    if m and _REPLY_START.match(m["reply"]):
        return Detail(text, host=m["host"], reply=split_reply(m["reply"]), stage="connect",
                      command="initial server greeting", suspended=suspended)
    m = _SASL_SAID.match(inner)
    if m and _REPLY_START.match(m["reply"]):
        return Detail(text, host=m["host"], reply=split_reply(m["reply"]), stage="helo", command="AUTH",
                      suspended=suspended)
    m = _SASL_OTHER.match(inner)
    if m:
        return Detail(text, postfix_text=inner, stage="helo", command="AUTH", suspended=suspended)
    for pattern, stage in _SESSION_TEXTS:
        if pattern.match(inner):
            return Detail(text, postfix_text=inner, stage=stage, suspended=suspended)
    m = _CONNECT.match(inner)
    if m:
        return Detail(text, host=m["host"], postfix_text=inner, stage="connect", suspended=suspended)
    m = _LOST.match(inner)
    if m:
        stage = next((s for prefix, s in _WHILE_STAGE if m["while"].startswith(prefix)), None)
        return Detail(text, host=m["host"], postfix_text=inner, stage=stage, suspended=suspended)
    # Postfix's own words: DNS failures, local/virtual/pipe results, "mail for X loops back to myself".
    return Detail(text, postfix_text=inner or None, suspended=suspended)


def split_reply(flat: str) -> Reply:
    """A reply Postfix flattened into one line, with its lines back.

    A multi-line reply (RFC 5321 4.2.1) has `NNN-` on every line but the last and `NNN ` on the last,
    the same NNN throughout; most providers repeat the enhanced code (RFC 2034) after it. A marker is
    only a line break when the previous line said more lines follow (`NNN-`), and when the first line
    carried an enhanced code, only when the same code follows it: a `550` inside the text of a line
    stays text."""
    flat = flat.strip()
    m = re.match(r"^(\d{3})([ -]?)(.*)$", flat, re.S)
    if not m:
        return Reply(0, (flat,), "mta-log")
    code = m.group(1)
    if m.group(2) != "-":
        return Reply(int(code), (m.group(3),), "mta-log")
    first = m.group(3)
    em = re.match(r"^([245]\.\d{1,3}\.\d{1,3})(?=\s|$)", first)
    enhanced = em.group(1) if em else None
    marker = re.compile(rf"(?<= ){code}([ -])" + (rf"(?={re.escape(enhanced)}(?:\s|$))" if enhanced else ""))
    lines: list[str] = []
    rest = first
    while True:
        found = marker.search(rest)
        if not found:
            lines.append(rest)
            break
        # Postfix joined the lines with exactly one space: take that one back, keep any others.
        lines.append(rest[:found.start() - 1])
        rest = rest[found.end():]
        if found.group(1) == " ":
            lines.append(rest)
            break
    return Reply(int(code), tuple(lines), "mta-log")


__all__ = ["LogLine", "parse_line", "parse_record", "parse_detail", "split_reply", "Delivery", "Detail",
           "Relay", "MessageId", "Sender", "Expired", "Removed", "Record", "QUEUE_ID", "STATUSES", "DEFERRALS"]
