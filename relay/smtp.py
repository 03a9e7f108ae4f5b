"""The SMTP server side: the only module that imports aiosmtpd.

A thin adapter: each aiosmtpd hook hands the command to RelayService and
returns its Reply on the wire. aiosmtpd's own replies get RFC 3463 enhanced
status codes here (we advertise ENHANCEDSTATUSCODES, RFC 2034).

Deadlines, each bounded (the one timer is re-armed only up to a deadline, never past it):
- idle (`limits.timeout`): between commands, and between chunks of DATA; between commands only
  `limits.stress_timeout` while the listener's sessions are at STRESS_PERCENT of its slots (Postfix's stress);
- command: while a handler waits on the upstream, the upstream's own deadlines plus a margin;
- DATA (`limits.data_timeout`): from 354 to the final dot, however the bytes trickle in;
- outsiders (`limits.unauthenticated_timeout`): a client outside clients.networks must log in
  within it.
Connections are limited in all (`limits.max_connections`) and per client address
(`limits.max_connections_per_client`), so that one client cannot take every slot.
A connection is also closed when its client makes too many errors without delivering a message
(`limits.error_limit`, ErrorCount) or sends too many NOOP/RSET/VRFY/HELP/HELO/EHLO (MAX_JUNK_COMMANDS): each
command restarts the idle deadline, so without these a client could hold its slot for ever.
"""

from __future__ import annotations

import asyncio
import binascii
import collections
import contextlib
import ipaddress
import logging
import re
import ssl
from base64 import b64decode, b64encode
from dataclasses import dataclass, field

import aiosmtpd.smtp as _aiosmtpd_smtp
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword, TLSSetupException, syntax

from .address import ATEXT, ascii_reply, printable, shown, unsendable
from .decision import Reply
from .logsample import SampledLog
from .maildata import DataReceiver
from .service import RelayService, same_mailbox_key
from .users import FailedLogins

log = logging.getLogger("relay.smtp")
# A connection flood past the limits is counted in full but logged once a minute (relay/logsample.py);
# so are connections closed for too many errors, which a client can repeat as fast as it reconnects.
_refused_connections_log = SampledLog(log)


# The verbs an unrecognised command line may be named by, in a log or a reply: RFC 5321's, those of
# the extensions (RFC 1985 ETRN, RFC 2645 ATRN, RFC 3030 BDAT, RFC 2033 LHLO, RFC 3207, RFC 4954) and
# Postfix's XCLIENT/XFORWARD. Any other line is not shown, only its length: after an AUTH the relay
# refused before its exchange (538 in clear, 502 without logins, 503 in a transaction or once logged
# in, 504), the base64 login and password a client pipelined behind it are read as command lines
# (review23 F3: "CZNJCMV0IHBHC3M=", the password with its case folded, in a WARNING and in the 500).
_KNOWN_VERBS = frozenset({"HELO", "EHLO", "LHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "VRFY", "EXPN", "HELP",
                          "NOOP", "QUIT", "SEND", "SOML", "SAML", "TURN", "ETRN", "ATRN", "STARTTLS", "AUTH",
                          "XCLIENT", "XFORWARD"})


def _shown_verb(verb: str) -> str:
    """An unrecognised command's verb as the log and the 500 may show it: a known verb, or its length."""
    return verb if verb.upper() in _KNOWN_VERBS else f"(not shown: {len(verb)} characters)"


def _shown_line(line):
    """A command line (bytes) as aiosmtpd's debug and info lines may log it: as sent when its verb is
    a known one (aiosmtpd's own sanitize() masks an AUTH's initial response), else only its length."""
    if not isinstance(line, bytes):
        return line
    verb = line.strip().split(b" ", 1)[0].decode("ascii", "replace")
    return line if verb.upper() in _KNOWN_VERBS else f"(a line of {len(line)} octets, not shown)"


# aiosmtpd's warning for a command line whose verb it has no method for (pinned by a test).
_UNRECOGNISED_FORMAT = "%r unrecognised: %s"


class _EscapedClientBytes(logging.Filter):
    """aiosmtpd logs a client's unrecognised verb as it came ("unrecognised: %s", a WARNING): a password
    a client sent as a command (after a refused AUTH) was logged, and an ESC or a CR in it would reach
    the log raw, to recolour or rewrite what a terminal shows of the lines before it. Its verb is
    logged only when it is a known one (_shown_verb); every record is written with every control
    character escaped (address.printable)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == _UNRECOGNISED_FORMAT and isinstance(record.args, tuple) and len(record.args) == 2:
            record.args = (record.args[0], _shown_verb(str(record.args[1])))
        message = record.getMessage()
        escaped = printable(message)
        if escaped is not message:
            record.msg, record.args = escaped, None
        return True


logging.getLogger("mail.log").addFilter(_EscapedClientBytes())


def _sanitized_log_if_enabled(func, msg, *args, _sanitized_log=_aiosmtpd_smtp.sanitized_log, **kwargs):
    """aiosmtpd logs every command line twice (a debug and an info line) through sanitized_log, which
    copies its arguments and runs a regex over each (to mask AUTH secrets) before the logger looks at
    its level: a few microseconds a command for lines that `relay serve` never writes (mail.log is at
    WARNING). The same, once the logger would write the line at all."""
    try:
        enabled = func.__self__.isEnabledFor(_LOG_LEVELS[func.__name__])
    except (AttributeError, KeyError):  # not a Logger's own method: let it decide
        enabled = True
    if enabled:
        _sanitized_log(func, msg, *[_shown_line(a) for a in args], **kwargs)


_LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_aiosmtpd_smtp.sanitized_log = _sanitized_log_if_enabled

# aiosmtpd's refusal of MAIL FROM with a SIZE= over data_size_limit (RFC 1870 6.1): the client saw a
# refusal of its message, which writes an event (RelaySMTP.smtp_MAIL).
_SIZE_REFUSAL = re.compile(r"^552 Error: message size exceeds fixed maximum message size$")

# aiosmtpd's one text for every BODY= it does not take (a bare BODY included: its _getparams makes that
# True, "not in [7BIT, 8BITMIME]" too): RelaySMTP._body_refusal tells them apart (review-int2 F4).
_BODY_REFUSAL = "501 Error: BODY can only be one of 7BIT, 8BITMIME"

# aiosmtpd's fixed texts -> the same meaning with an enhanced status code.
_REWRITES = [
    # aiosmtpd's BOGUS_LIMIT: the 5th unrecognised command ends the session. RFC 5321 3.8: a server that
    # closes says 421 (and the relay's own rule is "a 421 closes"); the text is Postfix's when it closes
    # for errors (review14 L1). push() closes the connection on the 421.
    (re.compile(r"^502 5\.5\.1 Too many unrecognized commands, goodbye\.$"),
     "421 4.7.0 {hostname} Error: too many errors (unrecognized commands)"),
    (_SIZE_REFUSAL, "552 5.3.4 Message size exceeds fixed maximum message size ({size} bytes)"),
    (re.compile(r"^500 Command line too long$"), "500 5.5.2 Command line too long"),
    (re.compile(r"^500 Error: bad syntax$"), "500 5.5.2 Syntax error: command not recognized"),
    # A line that starts with a space (or is only spaces) has an empty verb (RFC 5321 4.1.1: the verb comes first).
    (re.compile(r'^500 Error: command "" not recognized$'), "500 5.5.2 Syntax error: no command at the start of the line"),
    # The verb is named only when it is a known one (_shown_verb): any other line may be a password sent
    # as a command after a refused AUTH (review23 F3), or a NUL, "*", "SUBJECT:" from a body sent as
    # commands; never echoed.
    (re.compile(r"^500 Error: command [\"']?(.*?)[\"']? not recognized$", re.S),
     lambda m: (f"500 5.5.1 Command {m.group(1)} not recognized" if m.group(1).upper() in _KNOWN_VERBS
                else "500 5.5.1 Command not recognized")),
    (re.compile(r"^500 Error: strict ASCII mode$"), "500 5.5.2 Non-ASCII command (use SMTPUTF8)"),
    (re.compile(r"^501 Syntax: (.*)$"), r"501 5.5.4 Syntax: \1"),
    (re.compile(r"^501 Error: (.*)$"), r"501 5.5.4 \1"),
    (re.compile(r"^503 Error: (.*)$"), r"503 5.5.1 Bad sequence of commands: \1"),
    (re.compile(r"^503 (?!5\.)(.*)$"), r"503 5.5.1 \1"),  # "503 Already authenticated"
    (re.compile(r"^501 (?!5\.)(?!Supported commands)(.*)$"), r"501 5.5.4 \1"),
    # RFC 5321 4.1.1.8 and 4.2.1: HELP is answered 214, with or without a topic.
    (re.compile(r"^(?:250|501) (Supported commands: .*|Syntax: .*)$"), r"214 2.0.0 \1"),
    # RFC 3207 4: 454 when TLS cannot be started (here: no certificate on this listener); X.7.0 (RFC 3463 3.8).
    (re.compile(r"^454 (?!4\.)(.*)$"), r"454 4.7.0 \1"),
    # aiosmtpd echoes a VRFY argument it cannot parse, raw: a syntax error (RFC 5321 4.2.2: 501),
    # shown escaped like any client bytes.
    (re.compile(r"^502 Could not VRFY (.*)$", re.S),
     lambda m: f"501 5.5.4 Could not VRFY {printable(m.group(1)[:60])}: not an address"),
    (re.compile(r"^502 (?!5\.)(.*)$"), r"502 5.5.1 \1"),
    (re.compile(r"^555 (.*)$"), r"555 5.5.4 \1"),
    (re.compile(r"^554 Command refused due to lack of security$"), "554 5.7.0 Command refused: TLS negotiation failed"),
    (re.compile(r"^530 (?!5\.)(.*)$"), r"530 5.7.0 \1"),
    (re.compile(r"^250 OK$"), "250 2.0.0 OK"),
    (re.compile(r"^252 (?!2\.)(.*)$"), r"252 2.5.0 \1"),
    (re.compile(r"^221 Bye$"), "221 2.0.0 Bye"),
    (re.compile(r"^220 Ready to start TLS$"), "220 2.0.0 Ready to start TLS"),
    (re.compile(r"^235 (?!2\.)(.*)$"), r"235 2.7.0 \1"),
    (re.compile(r"^535 (?!5\.)(.*)$"), r"535 5.7.8 \1"),
]

# The codes of the texts above: any other reply (a 354, our own enhanced ones) needs no look.
_REWRITTEN_CODES = frozenset(code for pattern, _ in _REWRITES
                             for code in re.findall(r"[0-9]{3}", pattern.pattern[:12]))
assert all(code.isdigit() for code in _REWRITTEN_CODES)

# RFC 4954 6: the reply to an AUTH exchange line longer than the server takes (the answer to a 334, or an
# AUTH command whose initial response makes it longer than RFC 5321 4.5.3.1.4's 512 octets: RFC 4954 4 keeps
# the command within that limit, and a client with a longer response sends it after an empty 334 instead).
AUTH_LINE_TOO_LONG = "500 5.5.6 Authentication exchange line is too long (RFC 4954 6)"


class _CommandReader(asyncio.StreamReader):
    """The connection's reader (RelaySMTP.__init__ gives aiosmtpd's its class): keeps how the last command
    line began, `line_start`, for a reply about a line too long (AUTH gets 5.5.6, not 5.5.2). A line past
    the reader's limit raises before it is read: its start is taken from the buffer at its first overrun,
    and the reads of its rest change nothing. A reference to the line, no copy: nothing per command."""

    line_start: bytes = b""
    _overrun = False

    async def readuntil(self, separator=b"\n"):
        try:
            line = await super().readuntil(separator)
        except asyncio.LimitOverrunError:
            if not self._overrun:
                self._overrun = True
                self.line_start = bytes(self._buffer[:8])
            raise
        if self._overrun:
            self._overrun = False  # the end of the long line: its start is kept
        else:
            self.line_start = line
        return line


def _auth_line(start: bytes) -> bool:
    """A command line that is an AUTH with an argument (aiosmtpd splits the verb at a space)."""
    return start[:5].upper() == b"AUTH "


# Failed AUTH commands a connection may make before it is closed (421).
MAX_AUTH_FAILURES = 3
# NOOP, RSET, VRFY, HELP, HELO and EHLO a connection may send without a message delivered in between
# (Postfix's smtpd_junk_command_limit, which has no HELO/EHLO: a loop of those, or of MAIL and EHLO,
# is as empty): each one restarts the idle deadline, so without a bound a client could hold a
# connection slot for ever doing nothing. An honest client says EHLO once, and again after STARTTLS.
MAX_JUNK_COMMANDS = 100
# The longest MAIL command line after EHLO: RFC 5321 4.5.3.1.4's 512, plus 26 for SIZE (RFC 1870 3) and
# 10 for SMTPUTF8 (RFC 6531 3.4).
MAIL_LINE_LIMIT = 512 + 26 + 10
# Seconds a closed connection may take to flush its last reply to a client that does not read.
CLOSE_GRACE = 10.0
# Seconds a session refused in its greeting (554) waits for the client's next command (RelaySMTP._until_quit):
# Postfix's smtpd_timeout under stress. Its client can do nothing but QUIT, so it is not left a connection
# slot for limits.timeout (RFC 5321 4.5.3.2.7's 5 minutes are for a session that may still send mail).
REFUSED_SESSION_TIMEOUT = 10.0
# The share of a listener's connection slots (per worker) at which it is under stress: its sessions' idle time
# between commands drops from limits.timeout to limits.stress_timeout (Postfix's smtpd_timeout =
# ${stress?{10}:{300}}s; its master sets "stress" when a service reaches its process limit). Without it, one
# NOOP every limits.timeout - 1 s held a slot for 100 x 300 s (MAX_JUNK_COMMANDS), and a few addresses could
# hold a listener's every slot for hours. Below the mark, nothing changes for anyone.
STRESS_PERCENT = 80
_READ_CHUNK = 1 << 18  # asyncio's transport receives at most 256 KiB at a time: one read takes it all


# RFC 5321 4.1.2: Path = "<" Mailbox ">" in its everyday form (a dot-atom local part, a plain domain).
# Everything else (quoted local parts, address literals, UTF-8) goes to aiosmtpd's full parser.
_PLAIN_PATH = re.compile(rf"<((?:{ATEXT}+(?:\.{ATEXT}+)*"
                         r"@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)?)>(?= |$)")


# RFC 5321 4.1.2: esmtp-param = esmtp-keyword ["=" esmtp-value], printable ASCII without "=" and SP
# in the value. Every parameter we accept (SIZE, BODY, SMTPUTF8) is ASCII; RFC 1870: SIZE is 1*20DIGIT.
_ESMTP_PARAM = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*(?:=[\x21-\x3c\x3e-\x7e]+)?")
_SIZE_VALUE = re.compile(r"[0-9]{1,20}")
# RFC 3461 4: xtext = *( xchar / hexchar ), xchar any of "!" to "~" but "+" and "="; hexchar "+" 2 upper hex.
_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})+")


def parameter_problem(params: str) -> str | None:
    """The 501 reply for MAIL/RCPT parameters that are not RFC 5321 4.1.2 syntax, or None."""
    seen = set()
    for param in params.split(" "):
        if not param:
            continue
        name, _, value = param.partition("=")
        if name.upper() in seen:
            # RFC 5321 4.1.2 gives a repeated keyword no meaning (which SIZE, which BODY?), and it
            # would go upstream twice: refused rather than guessed.
            return f"501 5.5.4 Duplicate parameter {printable(name[:30])} (RFC 5321 4.1.2: each keyword once)"
        seen.add(name.upper())
        if name.upper() == "SIZE" and not _SIZE_VALUE.fullmatch(value):
            return f"501 5.5.4 Syntax error in SIZE={printable(value[:30])}: a number in ASCII digits (RFC 1870)"
        if not _ESMTP_PARAM.fullmatch(param):
            return (f"501 5.5.4 Syntax error in parameter \"{printable(param[:60])}\" (RFC 5321 4.1.2: "
                    f"KEYWORD or KEYWORD=value, in printable ASCII)")
    return None


def _path_address(path: str) -> str:
    """The address part of a MAIL/RCPT argument that could not be parsed, for its event: what is
    between its angle brackets, else up to the first space (where parameters would start)."""
    if path.startswith("<") and ">" in path:
        return path[1:path.index(">")]
    return path.split(" ", 1)[0]


def _unbalanced_path(arg: str) -> bool:
    """RFC 5321 4.1.2: Path = "<" ... ">". A path opened and never closed ("<a@b.test"), or closed
    and never opened ("a@b.test>"), is not one; aiosmtpd's parser takes the first as an address."""
    if arg.startswith("<"):
        return ">" not in arg
    first = arg.split(" ", 1)[0]
    return "<" in first or ">" in first


def with_brackets(arg: str) -> str:
    """`arg` (a path and its parameters) with a path sent without its angle brackets put in them:
    'a@b.test SIZE=1' -> '<a@b.test> SIZE=1'. RFC 5321 4.1.2 wants them (Path = "<" ... ">"), but
    the relay has always taken a bare path, as Postfix does by default (strict_rfc821_envelopes =
    no), and scripts send one. aiosmtpd parses a bare path another way (as an RFC 5322 addr-spec),
    and neither our checks nor that parser said the same of it as of the bracketed one: '"h"i@b.test'
    went upstream as 'hi@b.test', '"a@b.test' as '"a@b.test"' (no domain), 'a b@c.test' as
    '"a b"@c.test', and '""@b.test' was refused as '<@b.test>'. A bare path ends at the first space
    or tab outside a quoted string, where its parameters start (as Postfix reads it); a quote never
    closed takes the rest of the line, and is refused as never closed."""
    if not arg or arg.startswith("<"):
        return arg
    i, n, quoted = 0, len(arg), False
    while i < n:
        ch = arg[i]
        if quoted and ch == "\\":
            i += 2  # quoted-pairSMTP
            continue
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in " \t":
            break
        i += 1
    if i == 0:
        return arg  # no path at all: the parser's to refuse, never the null path "<>"
    return "<" + arg[:i] + ">" + arg[i:]


def path_problem(arg: str) -> str | None:
    """What makes `arg` (a path and its parameters, as the client sent them) no RFC 5321 4.1.2 Path
    where aiosmtpd's parser would make an address of it all the same, or None. Only quotes and
    brackets are looked at; everything else is the parser's (and _unbalanced_path's) to judge.
    A path sent without its angle brackets is judged as the one with them (with_brackets).

    - Local-part = Dot-string / Quoted-string: a quoted string is the whole local part or absent.
      The parser closed a quote left open itself, taking the ">" and what followed into the local
      part ('<"a@b.test>' became '"a@b.test>"', echoed in replies), and joined quoted and unquoted
      pieces into another address ('"h"i@b.test' went on as 'hi@b.test').
    - Domain = sub-domain / address-literal: a literal ("[" ... "]") is the whole domain. One never
      closed made the parser raise (a traceback, and 451 to a mistake the client then retried)."""
    if '"' not in arg and "[" not in arg:
        return None
    arg = with_brackets(arg)
    i, n = 1, len(arg)
    if arg.startswith("<@"):  # A-d-l ":" (a source route): ignored, as aiosmtpd does (RFC 5321 4.1.2, C)
        colon = arg.find(":")
        if colon < 0:
            return None
        i = colon + 1
    start = i
    while i < n and arg[i] not in '"@>':
        i += 1
    if i < n and arg[i] == '"':
        opened = i
        i += 1
        while i < n and arg[i] != '"':
            i += 2 if arg[i] == "\\" else 1  # quoted-pairSMTP: a backslash and the character it quotes
        if i >= n:
            return "its quoted local part is never closed (RFC 5321 4.1.2)"
        i += 1
        if opened != start or i >= n or arg[i] != "@":
            return "a quoted string must be the whole local part (RFC 5321 4.1.2: Dot-string or Quoted-string)"
    if i >= n or arg[i] != "@":
        return None
    i += 1
    end = arg.find(">", i)
    domain = arg[i:] if end < 0 else arg[i:end]
    if domain.startswith("[") and "]" not in domain:
        return "its address literal is never closed (RFC 5321 4.1.3)"
    if "[" in domain and not (domain.startswith("[") and domain.endswith("]")) or domain.count("[") > 1:
        return "an address literal must be the whole domain (RFC 5321 4.1.3)"
    return None


def _quoted_again(address, arg: str):
    """aiosmtpd's parser unquotes a quoted local part whose content needs no quotes by RFC 5322's
    reckoning, dots included: '"a..b"@x' became 'a..b@x', no RFC 5321 Dot-string (4.1.2), which the
    relay refuses (service.address_problem) and which a next hop would refuse as well. Such a local
    part, sent quoted, goes on quoted (the mailboxes of older Japanese mobile carriers; Postfix's
    client quotes them: smtp_quote_rfc821_envelope)."""
    if not isinstance(address, str) or '"' not in arg or address.startswith('"'):
        return address
    local, at, domain = address.rpartition("@")
    if at and (local.startswith(".") or local.endswith(".") or ".." in local):
        return '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"@' + domain
    return address


def client_key(ip: str) -> str:
    """Whose connection this is, for the per-client limit: the IPv4 address, or the IPv6 /64
    (the smallest prefix a site gets, RFC 6177: one host can use every address in it)."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


@dataclass
class Connections:
    """The open client connections of one process, and the limits on them. With several worker
    processes, `max_total` holds across all of them through `shared` (this process's `slot` in it);
    `max_per_client` is this worker's share (relay/workers.py)."""

    max_total: int
    max_per_client: int
    active: int = 0
    protocols: set = field(default_factory=set)
    per_client: dict[str, int] = field(default_factory=dict)
    shared: "SharedCount | None" = None  # relay/sharedcount.py
    slot: int = 0
    refused_waiting: int = 0  # refused in their greeting, waiting for QUIT (not counted in `active`)
    unauthenticated: int = 0  # outside clients.networks, not logged in yet (not counted in `active`)
    # The cap on each of the two counts above in this process: with workers, its share of max_total
    # (counted per process, not through `shared`), so that N workers never hold N times max_total of
    # them (review-int2 F5). None: max_total (one process).
    local_cap: int | None = None

    @property
    def waiting_cap(self) -> int:
        return self.max_total if self.local_cap is None else self.local_cap

    @property
    def stress_at(self) -> int:
        """The slot holders' high-water mark (`stressed`): STRESS_PERCENT of `max_total`, relay-wide as the
        slots are. The outsiders' is STRESS_PERCENT of `waiting_cap`, per process as their count is."""
        return stress_mark(self.max_total)

    def sessions(self) -> int:
        """The slot holders, relay-wide: with workers, across all of them (`shared`)."""
        return self.shared.total() if self.shared is not None else self.active

    def stressed(self, unauthenticated: bool = False) -> bool:
        """Whether the pool a session counts in is at its high-water mark: the slot holders, counted
        across every worker as `max_total` is (review-int4 F4: this worker's `active` against its share
        fired below the relay's mark, since the kernel spreads connections by a hash, not by load, and a
        worker may hold more than its share while the others hold less), or, for an outsider not logged
        in yet, this process's outsiders (bounded apart, at `waiting_cap`)."""
        if unauthenticated:
            return self.unauthenticated >= stress_mark(self.waiting_cap)
        return self.sessions() >= self.stress_at

    def admit(self, protocol: "RelaySMTP", key: str) -> tuple[str, str] | None:
        """Count a new connection; when it is one too many, the limit it is over and the 421 it
        must be told. A refused connection is counted in nothing (release() is not called for it):
        the per-client cap is checked first, so that a burst refused for its own client's cap never
        holds total slots until its connections are gone, refusing other clients (review23 F4)."""
        self.protocols.add(protocol)  # every open connection, for the shutdown's drain
        if self.per_client.get(key, 0) >= self.max_per_client:
            return "max_connections_per_client", (f"421 4.7.0 Too many connections from {key} (at most "
                                                  f"{self.max_per_client}), try again later")
        total = self.shared.add(self.slot, 1) if self.shared is not None else self.active + 1
        if total > self.max_total:
            if self.shared is not None:
                self.shared.add(self.slot, -1)
            return "max_connections", "421 4.7.0 Too many connections to this relay, try again later"
        self.active += 1
        self.per_client[key] = self.per_client.get(key, 0) + 1
        return None

    def forget(self, protocol: "RelaySMTP") -> None:
        """A connection refused by admit() is gone."""
        self.protocols.discard(protocol)

    def give_back_slot(self) -> None:
        """A connection admitted, then refused in its greeting (554: RelaySMTP._until_quit), gives its
        place in `max_total` back while it waits for QUIT: a client that may not relay here never
        takes a slot from one that may (so many addresses outside clients.networks cannot fill
        limits.max_connections). It still counts towards its address's `max_per_client` until it is
        gone; release(..., slot=False) then."""
        self.active -= 1
        if self.shared is not None:
            self.shared.add(self.slot, -1)

    def take_slot(self) -> bool:
        """A connection that gave its slot back (give_back_slot) takes one again: an outsider that has
        just logged in. False, taking nothing, when every slot is taken."""
        total = self.shared.add(self.slot, 1) if self.shared is not None else self.active + 1
        if total > self.max_total:
            if self.shared is not None:
                self.shared.add(self.slot, -1)
            return False
        self.active += 1
        return True

    def release(self, protocol: "RelaySMTP", key: str, slot: bool = True) -> None:
        if slot:
            self.active -= 1
            if self.shared is not None:
                self.shared.add(self.slot, -1)
        self.protocols.discard(protocol)
        left = self.per_client.get(key, 1) - 1
        if left > 0:
            self.per_client[key] = left
        else:
            self.per_client.pop(key, None)


# Fewer slots than this, and a listener is never under stress: 80 % of 1-4 slots rounds up to every slot,
# so a lone idle session on a one-slot relay was "busy" and cut at limits.stress_timeout; a small
# listener full is the operator's own limit at work (new sessions get 421), not a flood to shed.
MIN_STRESS_SLOTS = 5


def stress_mark(slots: int) -> int:
    """STRESS_PERCENT of `slots`, rounded up; past `slots` (never reached) below MIN_STRESS_SLOTS."""
    if slots < MIN_STRESS_SLOTS:
        return slots + 1
    return -(-slots * STRESS_PERCENT // 100)


# The relay's own 452 4.5.3 answers that refuse nothing: they ask the client to send the recipient
# in another transaction (RFC 5321 4.5.3.1.8, 4.5.3.1.10). "too-many-recipients": past
# limits.max_recipients (service.py); "mx-one-destination": MX mode, a recipient whose domain goes to
# other mail servers than the transaction's (steps/delivery.py). ErrorCount lets 1,000 of them go.
OVERSHOOT_CAUSES = frozenset({"too-many-recipients", "mx-one-destination"})


@dataclass
class ErrorCount:
    """The errors of one connection since its last delivered message, as Postfix counts them
    (smtpd_hard_error_limit, smtpd_soft_error_limit, smtpd_error_sleep_time): every 4xx/5xx reply is
    one (a bad command, a command out of sequence, a refused HELO or MAIL, a failed AUTH), except a
    verdict on the mail itself: a recipient or message refused on its own merits (the bounce list,
    the upstream's reply), and the relay's own 452s asking for another transaction (OVERSHOOT_CAUSES,
    counted apart: see `add`). An honest client meets verdicts in numbers (a batch of 50 recipients,
    half of them on the bounce list: Postfix's client sends up to 50 a transaction), so only the verdicts past `free_verdicts` (limits.max_recipients) count. A
    delivered message starts both counts again."""

    limit: int  # errors at which the connection ends (421)
    soft_limit: int  # errors after which each error reply waits `delay` first
    delay: float
    free_verdicts: int
    errors: int = 0
    verdicts: int = 0
    overshoots: int = 0
    free_overshoots: int = 1000

    def add(self, verdict: bool, overshoot: bool = False) -> bool:
        """One error reply; whether it counts as an error. `overshoot`: the relay's own 452 4.5.3 that
        tells the client to send a recipient in another transaction (OVERSHOOT_CAUSES): past
        limits.max_recipients, or (MX mode) at another destination than the transaction's. RFC 5321
        4.5.3.1.8 and 4.5.3.1.10 make it the way to say "send the rest in another transaction", and a
        client that sends all its recipients at once (Python's smtplib.sendmail, what most
        applications use) meets one per such recipient: counted as errors, 220 recipients (MX mode:
        120 at other destinations) ended the connection (421) and the message with them, at every
        retry. Like Postfix's smtpd_recipient_overshoot_limit (1,000), they count only past
        `free_overshoots`, both kinds together."""
        if overshoot:
            self.overshoots += 1
            if self.overshoots <= self.free_overshoots:
                return False
        elif verdict:
            self.verdicts += 1
            if self.verdicts <= self.free_verdicts:
                return False
        self.errors += 1
        return True

    @property
    def slow_down(self) -> bool:
        return self.delay > 0 and self.errors > self.soft_limit

    @property
    def over(self) -> bool:
        return self.errors >= self.limit

    def message_delivered(self) -> None:
        self.errors = self.verdicts = self.overshoots = 0


def _help_of(original, when: str | None = None):
    """Keep the HELP text aiosmtpd's @syntax put on the method an override replaces: HELP lists a
    command, and `HELP <command>` describes it, only where the method carries it. `when`: the
    session attribute that must be true for HELP to list it (aiosmtpd's @syntax `when`)."""
    def copy(method):
        for name in ("__smtp_syntax__", "__smtp_syntax_extended__", "__smtp_syntax_when__"):
            if hasattr(original, name):
                setattr(method, name, getattr(original, name))
        if when is not None:
            method.__smtp_syntax_when__ = when
        return method
    return copy


def _junk_command(original):
    """`original` (NOOP, RSET, VRFY, HELP) counted against MAX_JUNK_COMMANDS first."""
    @_help_of(original)
    async def command(self: "RelaySMTP", arg: str) -> None:
        if not await self._junk_limit_reached():
            await original(self, arg)
    return command


class RelaySMTP(SMTP):
    """aiosmtpd's protocol with connection limits, timers and enhanced codes."""

    # A shutdown that gives up recording a known outcome tells the client its one reply first (cut()).
    tells_answer_at_cut = True

    def __init__(self, handler, *, service: RelayService, connections: Connections, handler_timeout: float,
                 data_timeout: float, unauthenticated_timeout: float, failed_logins: FailedLogins | None = None,
                 errors: ErrorCount | None = None, stress_timeout: float | None = None, **kw):
        # The idle time allowed while the session's pool is under stress (Connections.stressed); None:
        # limits.timeout always. Set first: connection_made arms the idle timer (_reset_timeout).
        timeout = kw.get("timeout", 300)
        self._stress_timeout = stress_timeout if stress_timeout is not None and stress_timeout < timeout else None
        super().__init__(handler, **kw)
        # aiosmtpd keeps the command line limits in one dict shared by every connection (a class
        # attribute), emptied by each new connection and raised at each EHLO: one client's EHLOs, or
        # a new connection, changed what every other client could send. Each connection has its own.
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        self._stream_reader.__class__ = _CommandReader  # aiosmtpd builds a plain one (line_start)
        self.relay_service = service
        self.relay_session = None
        self._connections = connections
        self._client_key: str | None = None  # set while counted in `connections`
        self._refused = False  # refused by `connections` (counted in nothing, only listed)
        self._holds_slot = True  # counted in `connections`' total (not once refused in the greeting)
        self._unauthenticated = False  # counted in `connections.unauthenticated` (an outsider not logged in)
        self._handler_timeout = handler_timeout
        self._data_timeout = data_timeout
        self._unauthenticated_timeout = unauthenticated_timeout
        self._login_deadline: asyncio.TimerHandle | None = None
        self._in_handler = False
        self._command_deadline = 0.0  # loop time by which the running handler must be done
        self._idle_from = 0.0  # loop time the last handler ended
        # A closed connection whose client does not read the last reply is reset this long after
        # the close (or after the idle deadline that found it closing): at most 10 s.
        self._close_grace = min(self._timeout_duration, CLOSE_GRACE)
        self._abort_at: float | None = None
        self._receiving_data = False
        self._verbatim: str | None = None
        self._mail_params = ""  # the parameters of the MAIL under way (smtp_MAIL, _body_refusal)
        self._size_refused = False  # aiosmtpd's SIZE= refusal went out (push, smtp_MAIL)
        self.data_dot_lines = True  # whether a line of the last message may start with "." (DataReceiver)
        self.data_crlf_only = False  # whether every line ending of the last message is a CRLF (DataReceiver)
        self._failed_logins = failed_logins if failed_logins is not None else FailedLogins()
        self._auth_failures = 0  # in this connection
        self._auth_response = None  # the last answer to an AUTH challenge (334), decoded
        self.junk_commands = 0  # NOOP/RSET/VRFY/HELP since the last message delivered (Handler.handle_DATA)
        self.errors = errors if errors is not None else ErrorCount(20, 10, 0.0, 100)
        self._verdict_next = False  # the next reply is a verdict on a recipient or message (ErrorCount)
        self._overshoot_next = False  # the next reply is a 452 for a recipient past the limit (ErrorCount)
        self._same_verdict_next = False  # the next reply repeats a verdict already counted (RelayLMTP, ErrorCount)
        self._parsed_path: tuple | None = None  # (path, what _getaddr made of it) for aiosmtpd's second look
        self._tls_half_open = False  # the TLS layer lets the client's end of input leave our side open

    # -- deadlines -----------------------------------------------------------

    async def _call_handler_hook(self, command: str, *args):
        # While a handler waits on the upstream, the command deadline holds instead of the idle one:
        # the upstream's own deadlines (upstream.*_timeout) end the wait first; this is the bound if
        # they do not. Both are checked when aiosmtpd's one timer fires (armed at each command), so
        # a command costs no timer operations of its own.
        self._in_handler = True
        self._command_deadline = self.loop.time() + self._handler_timeout
        try:
            return await super()._call_handler_hook(command, *args)
        finally:
            self._in_handler = False
            self._idle_from = self.loop.time()

    def _reset_timeout(self, duration: float | None = None) -> None:
        # aiosmtpd re-arms its timer at every command (a cancel and a new TimerHandle in the loop's
        # heap). The idle deadline is checked when the timer fires (_timeout_cb), from _idle_from:
        # a live timer is kept and only the start of the idle time moves.
        handle = self._timeout_handle
        if duration is None and handle is not None and not handle.cancelled():
            self._idle_from = self.loop.time()
            return
        if duration is None:
            self._idle_from = self.loop.time()  # the connection's start: idle from now
            if self._stress_timeout is not None:
                # Armed for the stress timeout at most: a session's pool may come under stress while it
                # is idle, and a new session may come in under it (_timeout_cb looks again each time).
                duration = self._stress_timeout
        super()._reset_timeout(duration)

    def _timeout_cb(self):
        if self.transport is None:
            return
        now = self.loop.time()
        if self.transport.is_closing():
            # Closed, and still not gone: what was written last is not flushed because the client
            # does not read. close() waits for the flush for ever, holding the connection's slot:
            # past the grace the connection is reset.
            if self._abort_at is None:
                self._abort_at = now + self._close_grace
            if now < self._abort_at - 0.001:
                super()._reset_timeout(self._abort_at - now)
                return
            try:
                unsent = self.transport.get_write_buffer_size()
            except AttributeError:  # asyncio's TLS transport once closed twice has no buffer to ask
                unsent = 0
            log.info("%s: the client did not read the last %d bytes within %g s of the close, resetting "
                     "the connection", self.session.peer, unsent, self._close_grace)
            self.transport.abort()
            if self._original_transport is not None:
                self._original_transport.abort()  # under TLS: the socket itself (a TLS transport closed
                # twice no longer reaches it)
            return
        if self._receiving_data:  # DATA's own deadlines hold (smtp_DATA); this one comes back after
            super()._reset_timeout(self._timeout_duration)
            return
        if self._in_handler:
            if now < self._command_deadline:
                self._reset_timeout(self._command_deadline - now)
                return
            log.warning("%s: a command took longer than %g s, closing the connection",
                        self.session.peer, self._handler_timeout)
            self._close_with(None)
            return
        idle_until = self._idle_from + self._timeout_duration
        stress = self._stress_timeout
        if stress is not None and self._timeout_duration > stress:
            # Postfix's smtpd_timeout = ${stress?{10}:{300}}s: while this listener's sessions are at their
            # high-water mark (STRESS_PERCENT of its slots), an idle client gets limits.stress_timeout, a
            # running session as a new one. Only here, between commands: never in DATA (its own deadlines
            # above) nor while a handler waits on the upstream (_in_handler). Otherwise the timer looks
            # again every `stress` seconds (a timer per session that often, not per command).
            stressed_until = self._idle_from + stress
            if now >= stressed_until - 0.001 and self._connections.stressed(self._unauthenticated):
                # Out of the count at once (its connection goes when its 421 and its transaction's record
                # are done): the sessions whose timers fire next see the listener as it now is, and are
                # not cut for the stress this one's cut has ended.
                if self._unauthenticated:
                    self._leave_outsiders()
                else:
                    self._give_back_slot()
                self.relay_service.count("relay_connections_closed_total", limit="stress_timeout")
                _refused_connections_log.warning(
                    "stress_timeout", "%s: idle for more than %g s while the listener is busy (%d sessions, "
                    "limits.stress_timeout), closing with 421", self.session.peer[0] if self.session.peer else "",
                    stress, self._connections.sessions())
                self._give_up(f"421 4.4.2 {self.hostname} Idle for more than {stress:g} s while this relay is "
                              f"busy, closing the connection")
                return
            if now < idle_until - 0.001:
                check_at = stressed_until if stressed_until > now + 0.001 else now + stress
                self._reset_timeout(min(idle_until, check_at) - now)
                return
        elif now < idle_until - 0.001:  # the last command ended less than `timeout` ago
            self._reset_timeout(idle_until - now)
            return
        # RFC 5321 4.5.3.2.7: the server may close an idle connection; 421 says why (3.8).
        self._give_up(f"421 4.4.2 {self.hostname} Idle for more than {self._timeout_duration:g} s, "
                      f"closing the connection")

    def _login_deadline_cb(self) -> None:
        self._login_deadline = None
        if self.relay_session is None or self.relay_session.auth_user is not None:
            return
        self._give_up(f"421 4.7.0 {self.hostname} Log in (AUTH) within {self._unauthenticated_timeout:g} s "
                      f"or use a client network, closing the connection")

    def _give_up(self, text: str) -> None:
        """Close the connection with a 421 (RFC 5321 3.8), recording the open transaction's end first."""
        if self.transport is None or self.transport.is_closing():
            return
        log.info("%s: %s", self.session.peer, text)
        if self._in_handler or self.relay_session is None:
            self._close_with(text)
            return
        task = self.loop.create_task(self._give_up_after_event(text))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _give_up_after_event(self, text: str) -> None:
        try:
            await self.relay_service.closing(self.relay_session, Reply.parse(text, "relay"))
        finally:
            self._close_with(text)

    def _close_with(self, text: str | None) -> None:
        """Write `text` (without waiting for the client to take it) and close; a client that does
        not read it has the connection reset after the grace (_timeout_cb)."""
        if self.transport is not None and not self.transport.is_closing():
            if text is not None:
                self._writer.write(text.encode("ascii", "replace") + b"\r\n")
            self.transport.close()
            self._unread_rest()
            self._abort_at = self.loop.time() + self._close_grace
            super()._reset_timeout(self._close_grace)

    def _getaddr(self, arg: str, *, judged: bool = False):
        # _parameters_refused parsed this very path a moment ago (aiosmtpd's smtp_MAIL and smtp_RCPT
        # parse it again): its answer once more. `judged`: the caller found no path_problem in `arg`
        # already (_parameters_refused), so it is not looked for twice.
        parsed, self._parsed_path = self._parsed_path, None
        if parsed is not None and parsed[0] == arg:
            return parsed[1]
        # aiosmtpd's parser builds a class on every call (~30 us); the everyday path costs ~1 us here.
        m = _PLAIN_PATH.match(arg)
        if m is None:
            if _unbalanced_path(arg) or (not judged and path_problem(arg) is not None):
                return None, None  # aiosmtpd's "553 5.1.3 malformed address" (VRFY: "Could not VRFY")
            if arg and not arg.startswith("<"):
                arg = with_brackets(arg)  # parsed as the bracketed path it stands for (with_brackets)
                m = _PLAIN_PATH.match(arg)
        if m is None:
            if unsendable(arg) is not None and arg.startswith("<") and ">" in arg:
                # aiosmtpd's parser would cut the path at a control character or unquote around it:
                # the address goes to the hook as sent, to be refused there in its own words.
                end = arg.index(">")
                if end + 1 == len(arg) or arg[end + 1] == " ":
                    return arg[1:end], arg[end + 1:]
            try:
                address, rest = super()._getaddr(arg)
                return _quoted_again(address, arg), rest
            except Exception:
                # The stdlib header parser aiosmtpd uses fails on some truncated paths ("<": IndexError;
                # "<a@[1.2.3.4>": AttributeError) instead of reporting a defect: a malformed address,
                # not a bug of ours.
                return None, None
        address = m.group(1) or "<>"
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, arg[m.end():]

    async def _junk_limit_reached(self) -> bool:
        self.junk_commands += 1
        if self.junk_commands <= MAX_JUNK_COMMANDS:
            return False
        log.info("%s: %d NOOP/RSET/VRFY/HELP/HELO/EHLO without a message, closing", self.session.peer,
                 self.junk_commands)
        self.relay_service.count("relay_connections_closed_total", limit="junk_command_limit")
        await self.push("421 4.7.0 Too many commands without a message sent, closing the connection")
        return True

    smtp_NOOP = _junk_command(SMTP.smtp_NOOP)
    smtp_RSET = _junk_command(SMTP.smtp_RSET)
    smtp_VRFY = _junk_command(SMTP.smtp_VRFY)
    smtp_HELP = _junk_command(SMTP.smtp_HELP)
    smtp_HELO = _junk_command(SMTP.smtp_HELO)
    @_help_of(SMTP.smtp_AUTH, when="offers_auth")
    async def smtp_AUTH(self, arg: str) -> None:
        # HELP lists AUTH where EHLO offers it: with a users file, once TLS is up (RFC 4954 4).
        if not self._has_logins:
            # No users file: no login can ever succeed here. aiosmtpd answered 538 "Encryption required"
            # in clear and, over TLS, read the credentials and said 535 (invalid). RFC 5321 4.2.4: 502,
            # a command not implemented (Postfix without SASL says 503 5.5.1).
            await self.push("502 5.5.1 AUTH not available: this relay has no logins (no clients.users_file)")
            return
        if self.envelope is not None and self.envelope.mail_from:
            # RFC 4954 4: "An AUTH command issued during a mail transaction MUST be rejected with a 503
            # reply." A client of clients.networks could log in half-way through a transaction.
            await self.push("503 5.5.1 Bad sequence of commands: AUTH is not permitted during a mail "
                            "transaction (RFC 4954 4); send it before MAIL, or after RSET")
            return
        # RFC 5321 2.4: argument values and extension keywords are not case sensitive, and SASL
        # names its mechanisms in upper case (RFC 4422 3.1); aiosmtpd compares them as sent, so
        # "AUTH plain" was 504. Only the name: an initial response is base64, case matters there.
        mechanism, space, rest = (arg or "").lstrip().partition(" ")
        await super().smtp_AUTH(mechanism.upper() + space + rest)

    # Never an attribute named auth_* on this class or on the handler: aiosmtpd takes every one for a
    # SASL mechanism, offers it in EHLO and calls it at "AUTH <name>" (a flag offered as "enabled",
    # and called: a traceback).
    @property
    def _has_logins(self) -> bool:
        """A users file is configured: some login can succeed here."""
        return bool(getattr(self.event_handler, "logins_enabled", False))

    @property
    def offers_auth(self) -> bool:
        return self._has_logins and self._tls_protocol is not None

    @_help_of(SMTP.smtp_EHLO)
    async def smtp_EHLO(self, hostname: str) -> None:
        if await self._junk_limit_reached():
            return
        await super().smtp_EHLO(hostname)
        # aiosmtpd adds the extensions' share at every EHLO; it is added once (SIZE: 26, RFC 1870 3;
        # SMTPUTF8: 10, RFC 6531 3.4, to RFC 5321 4.5.3.1.4's 512).
        self.command_size_limits["MAIL"] = MAIL_LINE_LIMIT

    @_help_of(SMTP.smtp_MAIL)
    async def smtp_MAIL(self, arg: str | None) -> None:
        if await self._parameters_refused("FROM:", arg):
            return
        if self.offers_auth and arg is not None:
            arg = await self._without_auth_parameter(arg)
            if arg is None:
                return
        parsed, self._size_refused = self._parsed_path, False
        self._mail_params = parsed[1][1] if parsed and parsed[1][1] else ""  # for _body_refusal
        await super().smtp_MAIL(arg)
        if self._size_refused:
            # aiosmtpd refused the SIZE= the client declared (552, its checks in their order): the
            # message is refused as surely as at DATA, where the same refusal writes its event. Postfix
            # sends SIZE= whenever EHLO offers it, so this is where a message over max_message_size
            # from Postfix is refused (review19 F4).
            self._size_refused = False
            reply = Reply.make(552, "5.3.4", f"Message size exceeds fixed maximum message size "
                                             f"({self.data_size_limit} bytes)", cause="message-too-large")
            sender = parsed[1][0] if parsed else ""
            await self._refused_here("FROM:", "" if sender == "<>" else sender, reply)  # as handle_MAIL

    def _body_refusal(self) -> str:
        """The reply to the MAIL whose BODY aiosmtpd refused (_BODY_REFUSAL), by the value the client sent
        (the last BODY=, as aiosmtpd takes it).
        - BINARYMIME (RFC 3030 3) is a registered value of a well-formed parameter that the relay does not
          implement (it needs CHUNKING, which the relay does not offer): RFC 5321 4.1.1.11 (RFC 1869 6
          before it) answers 555 "MAIL FROM/RCPT TO parameters not recognized or not implemented"; X.5.4
          (RFC 3463 3.6) is the parameter's.
        - Any other value is outside the parameter's grammar, body-value ::= "7BIT" / "8BITMIME" (RFC 1652
          3 (4), RFC 6152 2, widened only by RFC 3030's BINARYMIME), and a bare BODY lacks the "=" value the
          parameter requires: "501 Syntax error in parameters or arguments" (RFC 5321 4.2.2, 4.3.2).
          Postfix's smtpd (mail_cmd) is coarser: "555 5.5.4 Unsupported option: <param>" for every MAIL
          parameter other than BODY=7BIT, BODY=8BITMIME and the others it takes, these three cases alike."""
        value = None
        for param in self._mail_params.split():
            name, eq, rest = param.partition("=")
            if name.upper() == "BODY":
                value = rest if eq else None
        if value is not None and value.upper() == "BINARYMIME":
            return ("555 5.5.4 Unsupported BODY value: this server takes BODY=7BIT or BODY=8BITMIME only (RFC 1652; "
                    "no BINARYMIME without CHUNKING, RFC 3030)")
        if value is None:
            return "501 5.5.4 Syntax error in BODY: a value is required, 7BIT or 8BITMIME (RFC 1652)"
        return f"501 5.5.4 Syntax error in BODY={printable(value[:40])}: 7BIT or 8BITMIME (RFC 1652)"

    async def _without_auth_parameter(self, arg: str) -> str | None:
        """MAIL's argument without its AUTH parameter, or None once a malformed one was refused.
        RFC 4954 3 (5) and 5: where EHLO offers AUTH, MAIL FROM may carry AUTH=<mailbox> (xtext, RFC
        3461 4) or AUTH=<> (the submitter is not known), and clients that logged in send it. aiosmtpd
        knows no such parameter and answered 555: every message of a logged-in client refused for
        good. It is taken and not passed on: the next hop may not offer AUTH (then it would be 555
        there), and RFC 4954 5 asks a relay to vouch for the mailbox only where it trusts it."""
        parsed = self._parsed_path
        path = self._strip_command_keyword("FROM:", arg)
        if parsed is None or path is None or parsed[0] != path or not parsed[1][1]:
            return arg
        address, params = parsed[1]
        kept, value = [], None
        for param in params.split(" "):
            if param[:5].upper() == "AUTH=":
                value = param[5:]
            elif param:
                kept.append(param)
        if value is None or not path.endswith(params):
            return arg
        if value != "<>" and not _XTEXT.fullmatch(value):
            await self.push(f"501 5.5.4 Syntax error in AUTH={printable(value[:60])}: <> or a mailbox in xtext "
                            f"(RFC 4954 5, RFC 3461 4)")
            return None
        rest = "".join(" " + param for param in kept)
        path = path[:len(path) - len(params)] + rest
        self._parsed_path = (path, (address, rest))  # aiosmtpd's parse of it: the same address
        return "FROM:" + path

    @_help_of(SMTP.smtp_RCPT)
    async def smtp_RCPT(self, arg: str | None) -> None:
        if not await self._parameters_refused("TO:", arg):
            await super().smtp_RCPT(arg)

    async def _parameters_refused(self, keyword: str, arg: str | None) -> bool:
        """aiosmtpd takes any Unicode digit for SIZE (then fails on int("²")) and passes on values
        that no client library can send upstream: refuse what is not RFC 5321 syntax first."""
        if arg is None or self.session.host_name is None or (keyword == "TO:" and not self.envelope.mail_from):
            return False  # aiosmtpd's own 501/503 (a RCPT out of sequence is told so first, as aiosmtpd does)
        path = self._strip_command_keyword(keyword, arg)
        if path is None:
            return False
        # RFC 3463 3.2: X.1.7 is a bad sender address's syntax, X.1.3 a bad destination's (aiosmtpd
        # said 5.1.3 to both). The path is shown as the client sent it, never what a parser made of it.
        enhanced = "5.1.7" if keyword == "FROM:" else "5.1.3"
        why = path_problem(path)
        address, params = parsed = (None, None) if why is not None else self._getaddr(path, judged=True)
        if address is None:
            text = why if why is not None else 'not "<" local-part "@" domain ">" (RFC 5321 4.1.2)'
            # The same refusal as the service's of an address that is no address (service.address_problem):
            # an event of it, a recipient's classified address-syntax (relay-replies.yaml), a sender's by
            # the default (review19 F4: these wrote none). Recorded before the reply goes out, as the
            # service's are: the reply may be the error that closes the connection (limits.error_limit),
            # which ends the transaction the event belongs to.
            # In ASCII (RFC 6531 3.7.4.2), as service.address_problem's refusals are.
            text = ascii_reply(f"Malformed address {shown(path)}: {text}")
            await self._refused_here(keyword, _path_address(path), Reply.make(
                553, enhanced, text, cause="address-syntax" if keyword == "TO:" else None))
            await self.push(f"553 {enhanced} {text}")
            return True
        self._parsed_path = (path, parsed)
        before = len(path) - len(params) - 1  # where the SP before the parameters must be
        if params and params[0] != " " and before >= 0 and path.endswith(params) and path[before] != " ":
            # RFC 5321 4.1.2: "FROM:" Reverse-path [SP Mail-parameters] (and RCPT's likewise): aiosmtpd's parser
            # takes whatever follows the closing ">" for parameters, so "<a@b.test>SIZE=10" was accepted
            # and its SIZE passed on. (The everyday path's own parse, _PLAIN_PATH, requires the space.)
            await self.push(f"501 5.5.4 Syntax error: no space between the path and \"{printable(params[:40])}\" "
                            f"(RFC 5321 4.1.2: parameters follow the path after a SP)")
            return True
        problem = parameter_problem(params) if address is not None and params else None
        if problem is not None:
            await self.push(problem)
            return True
        return False

    async def _refused_here(self, keyword: str, address: str, reply: Reply) -> None:
        """A MAIL or RCPT this layer refused before the service saw it: recorded through the service,
        as its own refusals are (an event; the bounce listener's refusals a metric)."""
        if self.relay_session is not None:
            await self.relay_service.refused_before(self.relay_session, "mail" if keyword == "FROM:" else "rcpt",
                                                    address, reply)

    @_help_of(SMTP.smtp_DATA)
    async def smtp_DATA(self, arg: str) -> None:
        """DATA, read in chunks into one buffer rather than aiosmtpd's list of lines: a 25 MB
        message then costs about its size in memory, and a long one no Python loop per line."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            self._out_of_step_after_data()
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Bad sequence of commands: need RCPT command")
            self._out_of_step_after_data()
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            self._out_of_step_after_data()
            return
        if self.relay_session is not None:
            await self.relay_service.data_start(self.relay_session)
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        # While DATA arrives its own deadlines apply: idle between chunks, and a total one, so that a
        # byte every few seconds cannot hold the connection (and its slot) for ever. The idle timer
        # stays armed (re-arming it after every message cost a timer of its own): it lets DATA be.
        self._receiving_data = True
        data_deadline = self.loop.time() + self._data_timeout
        try:
            # timeout_at: both bounds are loop times (asyncio.timeout takes a delay, and the loop's
            # clock read as one put the first deadline days away: a client that sent DATA and then
            # nothing held its connection, and its slot, until it went away).
            async with asyncio.timeout_at(min(data_deadline, self.loop.time() + self._timeout_duration)) as deadline:
                received, refusal = await self._read_message(deadline, data_deadline)
            content = None
            if received is not None:
                # The stuffed dots are taken out a piece at a time (the loop turns in between: issue
                # #15), past DATA's deadlines: the message has come whole, whatever this takes.
                content, self.data_dot_lines = await received.message_in_pieces()
        except TimeoutError:
            timed_out = self.loop.time() >= data_deadline - 0.001
            text = (f"421 4.4.2 {self.hostname} Message not received within {self._data_timeout:g} s "
                    f"(limits.data_timeout), closing the connection" if timed_out else
                    f"421 4.4.2 {self.hostname} No message data for {self._timeout_duration:g} s, "
                    f"closing the connection")
            self._receiving_data = False
            self._give_up(text)
            return
        finally:
            self._receiving_data = False
        if self.transport is not None:
            self._reset_timeout()
        if refusal is None and content is None:  # the client went away mid-message; connection_lost ends the session
            return
        if refusal is not None:
            self._set_post_data_state()
            if self.relay_session is not None:
                # Recorded before the reply goes out: a reply that ends the connection (too many
                # errors) would otherwise record the transaction as deferred first.
                await self.relay_service.data_refused(self.relay_session, Reply.parse(refusal, "relay"))
            self.verdict_next()  # the message (too big, a NUL in it) refused: a verdict, as the upstream's
            await self._push_data_reply(refusal)
            return
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self._push_data_reply(status)

    async def _push_data_reply(self, status) -> None:
        """The answer after the final dot: one reply in SMTP (RelayLMTP: one per recipient)."""
        await self.push(status)

    async def smtp_BDAT(self, arg: str) -> None:
        """RFC 3030 2: BDAT's chunk follows the command at once, without waiting for its reply. CHUNKING
        is not offered here (EHLO), so the octets after a BDAT are message data that cannot be told
        from commands: read as commands (BDAT was an unknown verb), an "RSET / MAIL FROM / RCPT TO /
        DATA" in a message was carried out, a message smuggled in another's body. None of it is read:
        502 (RFC 5321 4.2.4: not implemented), then the connection is closed (3.8), as after DATA
        refused with the message sent blind (_out_of_step_after_data). Not listed by HELP (no @syntax)."""
        log.info("%s: BDAT %s without CHUNKING offered; closing", self.session.peer, printable((arg or "")[:40]))
        await self.push("502 5.5.1 BDAT not implemented: CHUNKING is not offered here (RFC 3030); send DATA")
        self._close_with(f"421 4.5.0 {self.hostname} BDAT chunk data cannot be read as commands, "
                         f"closing the connection")

    def _out_of_step_after_data(self) -> None:
        """DATA was refused, and the client had sent more without waiting for the reply. RFC 2920
        3.1: DATA is the last command of a pipelined group, so what follows it is the message the
        client sent blind; read as commands, a "MAIL FROM:/RCPT TO:/DATA" in its text would be
        carried out (mail smuggled in the body). None of it is read: the connection is closed
        (RFC 5321 3.8), and the client, told 503 and 421, sends the message again in order."""
        buffered = self._reader._buffer
        if not buffered or self.transport is None or self.transport.is_closing():
            return
        log.info("%s: %d bytes sent after a refused DATA without waiting for its reply; closing",
                 self.session.peer, len(buffered))
        buffered.clear()
        self._close_with(f"421 4.5.0 {self.hostname} Data sent before the reply to DATA (RFC 2920 3.1), "
                         f"closing the connection")

    async def _read_message(self, deadline, data_deadline: float) -> tuple[DataReceiver | None, str | None]:
        """(receiver, None) once the final dot came, its message() to take; (None, refusal), or (None,
        None) on EOF. `deadline` (an asyncio.Timeout) is moved on with each chunk, never past
        `data_deadline`. Whether each line ending of the message is a CRLF is left in `data_crlf_only`."""
        reader = self._reader
        loop = self.loop
        idle = self._timeout_duration
        receiver = DataReceiver(self.data_size_limit or 0)
        try:
            while True:
                chunk = await reader.read(_READ_CHUNK)
                if not chunk:
                    receiver.clear()
                    return None, None
                deadline.reschedule(min(data_deadline, loop.time() + idle))
                if receiver.feed(chunk):
                    break
        except BaseException:
            # The client went away (or a deadline passed) mid-message: give the memory back now. The
            # cancelled task's traceback keeps this frame, and so the buffer, until the garbage
            # collector finds the cycle, which can take many rounds of large messages (issue #9, item 15).
            receiver.clear()
            raise
        leftover = receiver.leftover()
        if leftover:
            # What came after the final dot (pipelined commands) goes back to the command reader.
            reader._buffer[0:0] = leftover
        refusal = receiver.refusal()
        if refusal is not None:
            receiver.clear()  # refused whole: nothing of it is needed any more
            return None, refusal
        self.data_crlf_only = receiver.crlf_only
        return receiver, None

    @_help_of(SMTP.smtp_STARTTLS)
    async def smtp_STARTTLS(self, arg: str) -> None:
        if self._tls_protocol is not None and not arg:
            # RFC 3207 4.2: STARTTLS is not offered once TLS is up, and a second handshake inside the
            # first would leave client and server reading different layers.
            await self.push("503 5.5.1 Bad sequence of commands: TLS already active")
            return
        if not arg and self.tls_context and self.relay_service.in_transaction(self.relay_session):
            # RFC 3207 4.2: after the handshake both sides discard what they knew, so a transaction
            # begun in clear cannot go on across it; Postfix refuses STARTTLS while a MAIL transaction
            # is in progress, and so does the relay (review14 L4), rather than keep the transaction
            # and its upstream connection open across the handshake. RSET first, then STARTTLS.
            await self.push("503 5.5.1 Bad sequence of commands: MAIL transaction in progress")
            return
        await super().smtp_STARTTLS(arg)
        if self._tls_protocol is not None and self.session.ssl is None:
            # The connection was closed (the idle deadline, a shutdown) while the client had not
            # finished its handshake: asyncio's TLS layer then wakes the handshake's waiter as if it had
            # succeeded, and never tells this protocol that the connection is gone (it only does so
            # once the handshake completed). The connection's slot stayed taken for ever; as a failed
            # handshake, aiosmtpd closes and releases it.
            raise TLSSetupException() from ConnectionAbortedError("closed before the TLS handshake completed")

    # -- AUTH ----------------------------------------------------------------

    async def challenge_auth(self, challenge: str | bytes, encode_to_b64: bool = True,
                             log_client_response: bool = False):
        """A 334 challenge and the client's answer (RFC 4954 4), decoded; MISSING once answered here.
        aiosmtpd reads the answer with StreamReader.readline, which on a line longer than the reader's
        limit drops what it had buffered and raises: a traceback, a 451, and the rest of the line
        read as commands. Here such a line is read to its end and refused (RFC 4954 6: 500 5.5.6)."""
        self._auth_response = None
        raw = challenge.encode() if isinstance(challenge, str) else challenge
        await self.push(b"334 " + (b64encode(raw) if encode_to_b64 else raw))
        line = await self._read_whole_line()
        if line is None:
            await self.push(AUTH_LINE_TOO_LONG)
            return MISSING
        answer = line.strip()
        if answer == b"*":  # RFC 4954 4: the client cancels; the server MUST answer 501
            log.info("%s: AUTH cancelled by the client ('*')", self.session.peer)
            await self.push("501 5.7.0 Authentication cancelled")
            return MISSING
        try:
            self._auth_response = response = b64decode(answer, validate=True)
        except binascii.Error:
            await self.push("501 5.5.2 Cannot decode the response: not base64 (RFC 4954 4)")
            return MISSING
        return response

    async def _read_whole_line(self) -> bytes | None:
        """The next line from the client, or None when it is longer than the reader takes (the
        whole of it read and dropped, so that none of it is taken for a command)."""
        reader = self._reader
        try:
            return await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as overrun:
            consumed = overrun.consumed
        while True:
            await reader.read(consumed)
            try:
                await reader.readuntil(b"\n")
                return None
            except asyncio.LimitOverrunError as overrun:
                consumed = overrun.consumed

    async def auth_PLAIN(self, _, args):
        self._auth_response = None
        if len(args) == 2 and args[1] == "=":
            # RFC 4954 4: "=" is an empty initial response; an empty PLAIN message names no login
            # (RFC 4616 2), where aiosmtpd answered that "=" is not base64.
            await self.push("501 5.5.2 Empty PLAIN response: no login in it (RFC 4616 2)")
            return AuthResult(success=False, handled=True)
        result = await super().auth_PLAIN(_, args)
        pending = result.auth_data
        if isinstance(pending, _PendingLogin):
            # RFC 4616 2: "authzid NUL authcid NUL passwd". An authzid other than the login asks to act
            # as someone else, which no credentials here permit: the server MUST fail it. aiosmtpd
            # drops the authzid, so "bob NUL alice NUL alice's password" logged in as alice.
            raw = self._auth_response if len(args) == 1 else b64decode(args[1].encode(), validate=True)
            authzid = raw.split(b"\0", 1)[0] if isinstance(raw, bytes) else b""
            if authzid and authzid != pending.login:
                log.info("AUTH PLAIN for %r from %s: refused, authorization identity %r", pending.login,
                         self.session.peer, authzid)
                return AuthResult(success=False, handled=False,
                                  message="535 5.7.8 Authentication failed: an authorization identity other "
                                          "than the login is not permitted (RFC 4616 2)")
        return await self._check_login(result)

    async def auth_LOGIN(self, _, args):
        return await self._check_login(await super().auth_LOGIN(_, args))

    @contextlib.contextmanager
    def _relays_own_wait(self, longest: float = 0.0):
        """A wait of the relay's own outside a handler hook (a verdict, a sleep): under the command
        deadline (limits.timeout's handler bound, plus `longest`) as a handler is, not counted as the
        client's idle time, which starts again when it ends."""
        was_in_handler, was_deadline = self._in_handler, self._command_deadline
        self._in_handler = True
        self._command_deadline = self.loop.time() + longest + self._handler_timeout
        try:
            yield
        finally:
            self._in_handler, self._command_deadline = was_in_handler, was_deadline
            if not was_in_handler:
                self._idle_from = self.loop.time()

    async def _check_login(self, result: AuthResult) -> AuthResult:
        """The verdict on credentials make_authenticator() passed on: hashed in a thread, with
        limits on failures per connection and per client address."""
        pending = result.auth_data
        if not isinstance(pending, _PendingLogin):
            return result  # not decodable, or aborted: aiosmtpd has answered
        ip = client_key(str((self.session.peer or ("",))[0]))  # an IPv6 client: its /64
        name = pending.login.decode("utf-8", "surrogateescape")
        users = self.relay_service.users
        # The waits below are the relay's (another attempt from the address in flight, the hashing pool's
        # queue under a flood of logins), never the client's idle time: under the stress timeout a user
        # whose check queued was cut as "idle" (review-int4 F3).
        with self._relays_own_wait():
            if await self._failed_logins.begin(ip):
                ok, reply = False, "454 4.7.0 Too many failed logins from your address; try again later"
            else:
                # In flight until its verdict (FailedLogins.begin): a failure is recorded before the
                # attempts from the same address that wait on it look again. A check cancelled (the
                # client went away) is no failure.
                ok, checked, reply = False, False, None
                try:
                    password = pending.password.decode("utf-8", "surrogateescape")
                    ok = users is not None and await users.check(name, password)
                    checked = True
                finally:
                    self._failed_logins.end(ip, failed=checked and not ok)
        log.info("AUTH %s for %r from %s: %s", pending.mechanism, name, self.session.peer,
                 "ok" if ok else "refused (too many failures)" if reply else "failed")
        if ok and self._unauthenticated:
            # An outsider logged in: from now on it holds a slot of limits.max_connections, as a client
            # of clients.networks does (RFC 5321 3.8: 421 when there is none).
            self._leave_outsiders()
            if not self._connections.take_slot():
                self.relay_service.count("relay_connections_refused_total", limit="max_connections")
                await super().push("421 4.7.0 Too many connections to this relay, try again later")
                self.transport.close()
                self._unread_rest()
                return AuthResult(success=False, handled=True)
            self._holds_slot = True
        if ok:
            session = self.relay_session
            if session is not None:
                session.auth_user = name
                if not session.trusted_network:  # an outsider: only the user's own domains
                    session.sender_domains = users.domains_of(name)
            return AuthResult(success=True, handled=False)
        self._auth_failures += 1
        if self._auth_failures >= MAX_AUTH_FAILURES:
            # RFC 4954 4: a server may close the connection after repeated failed AUTH commands.
            self.relay_service.count("relay_connections_closed_total", limit="auth_failure_limit")
            await super().push("421 4.7.0 Too many failed authentication attempts; closing the connection")
            self.transport.close()
            self._unread_rest()
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False, message=reply)

    # -- replies -------------------------------------------------------------

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):
            # The client's handshake failed (not a ClientHello, no common cipher, it hung up): its
            # failure, one line; aiosmtpd closes the connection after this.
            cause = error.__cause__
            reason = getattr(cause, "reason", None) or (type(cause).__name__ if cause is not None else "")
            log.info("%s: TLS handshake failed: %s", self.session.peer, printable(str(reason or cause))[:200])
            return "454 4.7.0 TLS handshake failed"
        if isinstance(error, asyncio.IncompleteReadError) and self._reader.at_eof():
            # The client's input ended where a command line should start (it half-closed after the
            # reply we kept the connection open for, or hung up mid-line): the session is over, which
            # is no error in a command. aiosmtpd's read loop ends with the cancellation (a read at
            # end of input raises without waiting, so the loop would come straight back here: the
            # sleep is where the cancellation lands); nothing more is written (push skips a closing
            # transport).
            if self.transport is not None and not self.transport.is_closing():
                log.info("%s: end of input from the client, closing", self.session.peer)
                self.transport.close()
            self._handler_coroutine.cancel()
            await asyncio.sleep(0)
        return await super().handle_exception(error)

    def _unread_rest(self) -> None:
        """The connection is closing: what the client pipelined behind the last reply is not read.
        aiosmtpd's read loop goes on while the transport closes: every buffered line was carried out
        (a MAIL behind a 421 dialled the upstream), or, behind its own 502 for unknown commands,
        logged twice and answered into the closing transport, line after line without yielding to
        the event loop (3 MB of them: 10 s). At the end of input the loop ends (handle_exception)."""
        reader = self._reader
        if reader is not None and not reader.at_eof():
            reader._buffer.clear()
            reader.feed_eof()

    async def push(self, status):
        if self.transport is None or self.transport.is_closing():
            # The connection is being closed (a 421, or the reply after the client's end of input,
            # went out last): anything written now would reach the client after that last word.
            self._unread_rest()
            return
        if status == "500 Command line too long" and _auth_line(getattr(self._reader, "line_start", b"")):
            status = AUTH_LINE_TOO_LONG  # an AUTH whose initial response made it too long: RFC 4954 6
        if status == _BODY_REFUSAL:
            status = self._body_refusal()
        elif isinstance(status, str) and status is not self._verbatim and status[:3] in _REWRITTEN_CODES:
            for pattern, replacement in _REWRITES:
                if pattern.match(status):
                    if pattern is _SIZE_REFUSAL:
                        self._size_refused = True
                    if isinstance(replacement, str):
                        replacement = (replacement.replace("{size}", str(self.data_size_limit))
                                       .replace("{hostname}", self.hostname))
                    status = pattern.sub(replacement, status, count=1)
                    break
        self._verbatim = None
        verdict, self._verdict_next = self._verdict_next, False
        overshoot, self._overshoot_next = self._overshoot_next, False
        repeated, self._same_verdict_next = self._same_verdict_next, False
        code = status[:3] if isinstance(status, str) else status[:3].decode("ascii", "replace")
        error = code[:1] in ("4", "5") and code != "421" and not repeated and self.errors.add(verdict, overshoot)
        if error and self.errors.slow_down:
            # Postfix's smtpd_error_sleep_time: a client past the soft limit waits for each error reply
            # (a sleep: the loop serves everyone else meanwhile). The wait is ours, not the client's
            # idle time: it runs under the command deadline, as a handler does.
            with self._relays_own_wait(self.errors.delay):
                await asyncio.sleep(self.errors.delay)
            if self.transport is None or self.transport.is_closing():
                return
        await super().push(status)
        if error and self.errors.over:
            await self._too_many_errors(status)
            return
        if code == "421" and self.transport is not None:
            # RFC 5321 3.8: a 421 (ours or the upstream's, relayed) closes the channel.
            self.transport.close()
            self._unread_rest()

    async def _too_many_errors(self, last: str | bytes) -> None:
        """limits.error_limit errors without a message delivered: 421 and close (RFC 5321 3.8), as
        Postfix does past smtpd_hard_error_limit. Commands the client pipelined after the last error are
        not carried out."""
        ip = str((self.session.peer or ("",))[0])
        text = f"421 4.7.0 {self.hostname} Error: too many errors"
        self.relay_service.count("relay_connections_closed_total", limit="error_limit")
        last = last if isinstance(last, str) else last.decode("ascii", "replace")
        _refused_connections_log.warning(
            "error_limit", "%s: %d errors without a message delivered (limits.error_limit; the last: %s), "
            "closing with 421", ip, self.errors.errors, printable(last.split("\r\n", 1)[0][:120]))
        self._reader._buffer.clear()
        if self.relay_session is not None:
            # An open transaction ends deferred, its recipients' events written, as at a deadline.
            await self.relay_service.closing(self.relay_session, Reply.parse(text, "relay"))
        self._close_with(text)

    def verdict_next(self) -> None:
        """The reply about to be sent refuses a recipient or a message on its own merits (ErrorCount)."""
        self._verdict_next = True

    def overshoot_next(self) -> None:
        """The reply about to be sent is the relay's own 452 "send this recipient in another
        transaction" (OVERSHOOT_CAUSES, ErrorCount)."""
        self._overshoot_next = True

    def message_delivered(self) -> None:
        self.junk_commands = 0
        self.errors.message_delivered()

    @property
    def busy(self) -> bool:
        """In the middle of a command (DATA arriving, or waiting on the upstream)."""
        return self._in_handler or self._receiving_data

    async def say_goodbye(self, text: str) -> None:
        """RFC 5321 3.8: a server shutting down answers 421 and closes. Not waiting for the client to
        take the reply: one that does not read would hold up the shutdown."""
        self._close_with(text)

    def cut(self, reply: Reply, answer: Reply | None = None):
        """The drain at shutdown is over and this session is still in the middle of a transaction
        or a command: `reply` (a 421, RFC 5321 3.8) goes out, the connection closes, the command
        under way ends here, and the transaction ends deferred with its events (RelayService.cut).
        `answer`: the reply the command under way is due (its outcome known: the next hop's refusal, its
        answer to the final dot: Transaction.answer), whose recording is given up past the store's own
        deadline (RelayService.cut `give_up`), sent first: the client hears the next hop's own word before
        the 421 (tells_answer_at_cut).
        Returns what to await for that record, or None."""
        if self.transport is None or self.transport.is_closing():
            return None
        recorded = (self.relay_service.cut(self.relay_session, reply, give_up=answer is not None)
                    if self.relay_session is not None else None)
        self._close_with(reply.wire() if answer is None else f"{answer.wire()}\r\n{reply.wire()}")
        handler = self._handler_coroutine
        if handler is not None and not handler.done():
            handler.cancel()  # e.g. waiting on the upstream: its transaction is recorded above, not by it
        return recorded

    def verbatim(self, reply: Reply) -> str:
        """A reply to be sent exactly as given (the upstream's own words)."""
        self._verbatim = reply.wire()
        return self._verbatim

    # -- connection ----------------------------------------------------------

    async def _handle_client(self) -> None:
        peer = self.session.peer or ("", 0)
        ip = str(peer[0])
        key = client_key(ip)
        too_many = self._connections.admit(self, key)
        if too_many is None:
            self._client_key = key  # counted: released at connection_lost
        else:
            self._refused = True
            limit, reply = too_many
            self.relay_service.count("relay_connections_refused_total", limit=limit)
            _refused_connections_log.warning(limit, "%s: %s", ip, reply)
            self._close_with(reply)
            return
        session, refusal = await self.relay_service.connect(ip, int(peer[1]) if len(peer) > 1 else 0)
        self.relay_session = session
        if refusal is not None:
            await super().push(refusal.wire())
            if refusal.code == 421:
                self.transport.close()  # RFC 5321 3.8: a 421 closes the channel
                self._unread_rest()
                return
            if self._connections.refused_waiting >= self._connections.waiting_cap:
                # A flood of refused clients: each waiting one is a socket, and they take no slot. Past
                # max_connections of them the 554 closes the connection at once, as it did before.
                self.transport.close()
                self._unread_rest()
                return
            self._give_back_slot()
            self._connections.refused_waiting += 1
            try:
                await self._until_quit()
            finally:
                self._connections.refused_waiting -= 1
            return
        if not session.trusted_network:
            # Not logged in yet: no slot of limits.max_connections (taken at login, _check_login), so
            # that outsiders trying logins, however many addresses they come from, never lock out the
            # clients of clients.networks (each holds its connection up to unauthenticated_timeout).
            # Their number is bounded apart: at most max_connections of them at once.
            if self._connections.unauthenticated >= self._connections.waiting_cap:
                self.relay_service.count("relay_connections_refused_total", limit="max_connections")
                _refused_connections_log.warning("max_connections", "%s: too many connections not logged in",
                                                 ip)
                self._close_with("421 4.7.0 Too many connections to this relay, try again later")
                return
            self._give_back_slot()
            self._connections.unauthenticated += 1
            self._unauthenticated = True
            self._login_deadline = self.loop.call_later(self._unauthenticated_timeout, self._login_deadline_cb)
        await super()._handle_client()

    def _give_back_slot(self) -> None:
        """This session stops holding a limits.max_connections slot (Connections.give_back_slot)."""
        if self._holds_slot:
            self._holds_slot = False
            self._connections.give_back_slot()

    def _leave_outsiders(self) -> None:
        """This session no longer counts among the outsiders not logged in (Connections.unauthenticated)."""
        if self._unauthenticated:
            self._unauthenticated = False
            self._connections.unauthenticated -= 1

    async def _until_quit(self) -> None:
        """The session was refused in the greeting (554 in place of 220). RFC 5321 3.1: the server "MUST
        still wait for the client to send a QUIT before closing the connection and SHOULD respond to any
        intervening commands with 503" (Postfix: "503 5.5.1 Error: access denied"). Closing at once left
        the client with a dropped connection. Nothing else of the session is carried out; each 503 counts
        towards limits.error_limit (then 421, push), and the wait for a command is at most
        REFUSED_SESSION_TIMEOUT: a refused client gets no use of a connection slot."""
        if self._timeout_duration > REFUSED_SESSION_TIMEOUT:
            self._timeout_duration = REFUSED_SESSION_TIMEOUT
            super()._reset_timeout()  # the idle deadline (_timeout_cb) from now, with the shorter wait
        while self.transport is not None and not self.transport.is_closing():
            try:
                line = await self._read_whole_line()  # a line past the reader's limit: read whole, None
            except (asyncio.IncompleteReadError, ConnectionError):
                break  # the client's end of input, or a reset
            self._reset_timeout()
            if line is not None and line.strip().upper() == b"QUIT":
                await self.push("221 2.0.0 Bye")
                break
            await self.push("503 5.5.1 Bad sequence of commands: this session was refused (554 above); "
                            "send QUIT")
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if self._original_transport is not None and self._tls_protocol is not None and self.session.ssl:
            # The STARTTLS handshake has just completed; nothing of the client's has been read over it yet.
            self._tls_half_open = keep_half_open(self._tls_protocol)

    def eof_received(self):
        # aiosmtpd cancels the command under way when the client half-closes, and with it every
        # command the client sent before its end of input. A client that sent its commands (a whole
        # pipelined transaction, RFC 2920, its final dot, QUIT: `printf ... | nc`) and shut down its
        # side still waits for the replies: cancelling the wait on the upstream would leave it not
        # knowing whether the message went (a retry would send it twice), and the commands behind the
        # first were dropped unanswered. Each command already received is carried out and answered;
        # the read at the end of input closes the connection (handle_exception). Under TLS, through
        # keep_half_open.
        if self.transport is not None and (self.session.ssl is None or self._tls_half_open):
            asyncio.StreamReaderProtocol.eof_received(self)  # the reader ends where the input did
            return True  # keep our side open for the replies
        return super().eof_received()

    def connection_lost(self, error) -> None:
        super().connection_lost(error)
        if self._login_deadline is not None:
            self._login_deadline.cancel()
            self._login_deadline = None
        if self._refused:
            self._connections.forget(self)
        self._leave_outsiders()
        if self._client_key is not None:
            self._connections.release(self, self._client_key, slot=self._holds_slot)
            self._client_key = None
            if self.relay_session is not None:
                self.relay_service.disconnected(self.relay_session)


def keep_half_open(tls) -> bool:
    """Let a client's end of input over TLS leave our side open for the replies, as it does in clear
    (RelaySMTP.eof_received); whether it could. asyncio's TLS layer (asyncio.sslproto.SSLProtocol,
    which aiosmtpd's STARTTLS puts between the socket and us) closes the whole connection when the
    client closes its side, whichever way: a TCP FIN, or a TLS close_notify, which in TLS 1.3 closes
    one direction only (RFC 8446 6.1; Go's CloseWrite sends just that). The replies to the commands
    the client sent before it were lost. Here, on this one connection's TLS layer: the end of input
    goes to us, and the layer's shutdown waits until we close. Built on the layer's private state
    (its names are pinned by a test); on a Python whose layer lacks them, nothing changes."""
    try:
        from asyncio.sslproto import AppProtocolState, SSLProtocolState
        wrapped, connected, ended = SSLProtocolState.WRAPPED, AppProtocolState.STATE_CON_MADE, AppProtocolState.STATE_EOF
        tcp_eof, start_shutdown, app = tls.eof_received, tls._start_shutdown, tls._app_protocol
        for name in ("_app_state", "_state", "_do_read", "_eof_received"):
            getattr(tls, name)
        getattr(tls._app_transport, "_closed")
    except (ImportError, AttributeError):
        return False
    half_open = False

    def app_eof() -> bool:
        # What the layer's _call_eof_received does, without its warning that keeping the
        # connection open "has no effect when using ssl", and without the shutdown after it.
        nonlocal half_open
        if tls._app_state is connected:
            tls._app_state = ended
            half_open = bool(app.eof_received())
        return half_open

    def eof_received():  # the client's TCP FIN
        if tls._state is not wrapped:
            return tcp_eof()
        # No close_notify can come after it: our shutdown does not wait for one.
        tls._eof_received = True
        tls._do_read()  # the records that came before it, to us
        return True if app_eof() else tcp_eof()  # True: the socket stays open for our writes

    def held_shutdown():
        # Called by our close (the app transport marked closed first), or by the layer itself right
        # after the client's close_notify: that one waits for ours.
        if half_open and not tls._app_transport._closed:
            return None
        return start_shutdown()

    tls.eof_received, tls._call_eof_received, tls._start_shutdown = eof_received, app_eof, held_shutdown
    return True


class RelayLMTP(RelaySMTP):
    """LMTP (RFC 2033) for the bounces_in listener: the same server, limits and refusals as SMTP, with
    LHLO in place of HELO/EHLO (4.1) and, after the final dot, one reply per recipient accepted at RCPT,
    in their order (4.2). aiosmtpd.lmtp.LMTP has the LHLO but answers DATA once."""

    # After the final dot an LMTP client awaits one reply per recipient (RFC 2033 4.2), not the one a
    # shutdown's cut could give: it is cut with the 421 alone, as before (RelayServer.stop).
    tells_answer_at_cut = False

    @syntax("LHLO hostname")
    async def smtp_LHLO(self, hostname: str) -> None:
        await RelaySMTP.smtp_EHLO(self, hostname)  # the EHLO reply (RFC 2033 4.1: LHLO's is the same)

    async def smtp_HELO(self, arg: str) -> None:
        await self.push("500 5.5.1 Command HELO not recognized: this is an LMTP server, use LHLO (RFC 2033 4.1)")

    async def smtp_EHLO(self, arg: str) -> None:
        await self.push("500 5.5.1 Command EHLO not recognized: this is an LMTP server, use LHLO (RFC 2033 4.1)")

    async def smtp_DATA(self, arg: str) -> None:
        self._data_recipients = len(self.envelope.rcpt_tos)
        await super().smtp_DATA(arg)

    async def _push_data_reply(self, status) -> None:
        # The handler's per-recipient answers, or one answer (a refusal of the message: its size, a
        # NUL, a header too large; our 451 on an error) said for every recipient. RFC 2033 4.2: the
        # server MUST give exactly one reply per accepted recipient. They are one verdict on one
        # message (the first reply carries it for ErrorCount): the others are never counted as the
        # client's errors, nor delayed, nor cut off by limits.error_limit (review23 F2: a message
        # refused for 25 recipients made 24 "errors", slowed and then 421 before the last 4 replies).
        replies = status if isinstance(status, list) else [status] * max(1, self._data_recipients)
        for n, reply in enumerate(replies):
            if self.transport is None or self.transport.is_closing():
                return
            if isinstance(status, list):
                self._verbatim = reply
            self._same_verdict_next = n > 0
            await self.push(reply)


class Handler:
    """aiosmtpd handler hooks: each turns one command over to RelayService."""

    def __init__(self, service: RelayService, logins_enabled: bool):
        self.service = service
        self.logins_enabled = logins_enabled  # not auth_*: see RelaySMTP.offers_auth

    async def handle_EHLO(self, server: RelaySMTP, session, envelope, hostname: str, responses: list[str]):
        refusal = await self.service.helo(server.relay_session, hostname)
        if refusal is not None:
            return [server.verbatim(refusal)]
        session.host_name = hostname
        # aiosmtpd lists AUTH after STARTTLS whether or not anyone could log in; without a users
        # file there is no AUTH at all.
        lines = [r for r in responses[:-1] if self.logins_enabled or not r.startswith("250-AUTH")]
        return lines + ["250-PIPELINING", "250-ENHANCEDSTATUSCODES", responses[-1]]

    async def handle_HELO(self, server: RelaySMTP, session, envelope, hostname: str):
        refusal = await self.service.helo(server.relay_session, hostname, esmtp=False)
        if refusal is not None:
            return server.verbatim(refusal)
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_MAIL(self, server: RelaySMTP, session, envelope, address: str, options: list[str]):
        # aiosmtpd hands over the null reverse-path as "<>"; it is what every bounce is sent from
        # (RFC 5321 4.5.5), so it goes on as the empty sender.
        sender = "" if address == "<>" else address
        reply = await self.service.mail(server.relay_session, sender, options)
        if reply.positive:
            envelope.mail_from = address
            envelope.mail_options.extend(options)
        return server.verbatim(reply)

    async def handle_RCPT(self, server: RelaySMTP, session, envelope, address: str, options: list[str]):
        reply = await self.service.rcpt(server.relay_session, address, options)
        if reply.positive:
            envelope.rcpt_tos.append(address)
        elif reply.cause in OVERSHOOT_CAUSES:
            server.overshoot_next()
        else:
            server.verdict_next()
        return server.verbatim(reply)

    async def handle_DATA(self, server: RelaySMTP, session, envelope):
        reply = await self.service.data(server.relay_session, envelope.original_content,
                                        dot_lines=server.data_dot_lines, crlf_only=server.data_crlf_only)
        if reply.positive:
            server.message_delivered()
        else:
            server.verdict_next()
        return server.verbatim(reply)

    async def handle_exception(self, error: Exception) -> str:
        # A bug, not the client's fault: logged, and a reply that makes the client retry rather than
        # aiosmtpd's "500 Error: (ValueError) ..." that makes it bounce the message.
        log.error("error in an SMTP command", exc_info=error)
        return "451 4.3.0 Temporary local problem, please try again later"

    async def handle_RSET(self, server: RelaySMTP, session, envelope):
        await self.service.reset(server.relay_session)
        return "250 2.0.0 OK"

    async def handle_QUIT(self, server: RelaySMTP, session, envelope):
        await self.service.reset(server.relay_session)
        return "221 2.0.0 Bye"

    def handle_STARTTLS(self, server: RelaySMTP, session, envelope) -> bool:
        obj = session.ssl.get("ssl_object") if isinstance(session.ssl, dict) else None
        if server.relay_session is not None:
            server.relay_session.tls = obj.version() if obj is not None else "TLS"
        return True


class LmtpHandler(Handler):
    """RelayLMTP's hooks: DATA answers each recipient, in the order of their RCPTs (RFC 2033 4.2), with
    the reply the service's steps left for it (BounceIntake: Transaction.replies_by_recipient), or else
    the one reply for the message. A duplicate RCPT (accepted, delivered once) gets its first's reply."""

    async def handle_DATA(self, server: RelaySMTP, session, envelope):
        txn = self.service.transaction(server.relay_session)
        status = await super().handle_DATA(server, session, envelope)
        replies = txn.replies_by_recipient if txn is not None else {}
        by_key = {same_mailbox_key(rcpt): reply for rcpt, reply in replies.items()}
        out = []
        for rcpt in envelope.rcpt_tos:
            reply = by_key.get(same_mailbox_key(rcpt))
            out.append(reply.wire() if reply is not None else status)
        return out


@dataclass(frozen=True)
class _PendingLogin:
    """Credentials aiosmtpd decoded, to be checked by RelaySMTP._check_login off the event loop."""
    mechanism: str
    login: bytes
    password: bytes = field(repr=False)


def make_authenticator(service: RelayService):
    """aiosmtpd calls this synchronously for AUTH PLAIN/LOGIN (only offered after STARTTLS). It only
    hands the credentials on: hashing the password on the loop would stall every session (PBKDF2
    takes tens of milliseconds, on purpose), so RelaySMTP._check_login checks them in a thread.
    The users are looked up at each login, so a reload's users file applies at once."""

    def authenticate(server: RelaySMTP, session, envelope, mechanism: str, auth_data) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        return AuthResult(success=False, handled=False,
                          auth_data=_PendingLogin(mechanism, auth_data.login, auth_data.password))

    return authenticate


def protocol_factory(service: RelayService, settings, listener, connections: Connections, lmtp: bool = False):
    """A factory for loop.create_server(): one RelaySMTP per connection (RelayLMTP with `lmtp`)."""
    tls_context = None
    if listener.tls:
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        # No renegotiation a client asks for (TLS 1.2 and older): each one costs the server a handshake's
        # CPU for a few bytes of the client's (CVE-2011-1473), and RFC 5746's secure renegotiation is no
        # help there. OpenSSL 3 refuses it by default, 1.1.1 does not: said here whatever Python links.
        tls_context.options |= ssl.OP_NO_RENEGOTIATION
        tls_context.load_cert_chain(str(listener.tls_cert), str(listener.tls_key))
    up = settings.upstream
    # The longest any one command may wait on the upstream (the final dot: connect, the commands, the
    # reply to the data), plus a margin for our own work; past it the connection is closed.
    handler_timeout = (up.connect_timeout + 2 * up.command_timeout + up.data_timeout + 5) if up else 120
    logins_enabled = service.users is not None
    handler = (LmtpHandler if lmtp else Handler)(service, logins_enabled=logins_enabled)
    protocol = RelayLMTP if lmtp else RelaySMTP
    authenticator = make_authenticator(service)
    failed_logins = FailedLogins()  # per client address, across the listener's connections
    limits = settings.limits

    def factory():
        return protocol(
            handler, service=service, connections=connections, handler_timeout=handler_timeout,
            data_timeout=settings.limits.data_timeout,
            unauthenticated_timeout=settings.limits.unauthenticated_timeout,
            hostname=settings.hostname, ident="LMTP relay" if lmtp else "ESMTP relay",
            data_size_limit=settings.limits.max_message_size,
            enable_SMTPUTF8=True, decode_data=False,
            tls_context=tls_context, require_starttls=False,
            timeout=settings.limits.timeout,
            auth_required=False, auth_require_tls=True,
            authenticator=authenticator if logins_enabled else None, failed_logins=failed_logins,
            errors=ErrorCount(limits.error_limit, limits.soft_error_limit, limits.error_delay, limits.max_recipients),
            stress_timeout=limits.stress_timeout,
            auth_exclude_mechanism=["CRAM-MD5", "XOAUTH2"] if logins_enabled else None,
        )

    return factory
