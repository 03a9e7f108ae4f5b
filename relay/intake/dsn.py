"""Bounce messages -> the recipients that failed, with the remote server's words.

Three shapes reach a bounce address:
- RFC 3464 delivery status notifications: `multipart/report; report-type=delivery-status` with a
  `message/delivery-status` part (a per-message block, then one block per recipient). The standard
  library's `email` package splits the blocks; we read the fields.
- RFC 5965 feedback reports (ARF): `multipart/report; report-type=feedback-report` with a
  `message/feedback-report` part: one complaint, about the original message.
- Everything else real MTAs send (qmail, Exim, old Sendmail, Exchange, Gmail, Yahoo, ...): a text that
  names the failed addresses and quotes the remote server. Those texts are read by a few generic rules
  (where the report text ends, which addresses in it are recipients, which SMTP reply belongs to which
  address), not by one parser per MTA.

Auto-replies (RFC 3834) and delivery-success DSNs (Action: delivered, relayed, expanded) are not
bounces: they yield no failed recipient.

Pure functions over bytes: no DNS, no store, no event. The intake listener and `relay dsn parse` build
on `parse_bounce()`.
"""

from __future__ import annotations

import base64
import contextlib
import email
import gc
import email.policy
import bisect
import json
import quopri
import re
import threading
import time
import unicodedata
from dataclasses import dataclass, replace
from email.feedparser import FeedParser
from email.header import decode_header, make_header
from email.message import Message

from ..address import ATEXT, fold
from ..decision import Reply

# Per-recipient actions that report a failure (RFC 3464 2.3.3); `delivered`, `relayed` and `expanded`
# report success.
FAILED_ACTIONS = frozenset({"failed", "delayed"})
SUCCESS_ACTIONS = frozenset({"delivered", "relayed", "expanded"})

# Headers of the original message kept for correlation (the rest is in `original_headers`).
# A letter or digit of an alphabetic script written with spaces between words (Latin-1 and Latin
# Extended, Greek, Cyrillic, Armenian, Hebrew, Arabic, Indic, Thai, ...: U+00C0-U+24FF), which RFC 6531
# 3.3 lets an SMTPUTF8 address hold: "jörg@example.org" is one address, and read from its "r" on it was
# another one, "rg@example.org" (and "bob@mail.bücher.de" was "bob@mail.b"). CJK, kana and Hangul
# (U+2E80 on) stay outside: their texts write an address right after a word ("宛先bob@example.jp").
# Their combining marks belong to the word as well (Unicode categories Mn, Mc, Me): a local part written
# decomposed (NFD, "jo\u0308rg": "o" then U+0308 COMBINING DIAERESIS) was read from the mark on, as
# "rg@example.org", somebody else's address; so were Indic vowel signs.
def _combining_marks(first: int, last: int) -> str:
    ranges: list[list[int]] = []
    for point in range(first, last + 1):
        if unicodedata.category(chr(point)) in ("Mn", "Mc", "Me"):
            if ranges and ranges[-1][1] == point - 1:
                ranges[-1][1] = point
            else:
                ranges.append([point, point])
    return "".join(f"\\u{a:04x}-\\u{b:04x}" for a, b in ranges)


_WORD_LETTER = rf"(?:(?=[^\W_])[\u00c0-\u24ff]|[{_combining_marks(0x0300, 0x24FF)}])"
_LOCAL_CHAR = rf"(?:{ATEXT}|{_WORD_LETTER})"
_LABEL_CHAR = rf"(?:[A-Za-z0-9]|{_WORD_LETTER})"
_ADDRESS_BODY = (
    rf"{_LOCAL_CHAR}+(?:\.{_LOCAL_CHAR}+)*"
    rf"@{_LABEL_CHAR}(?:(?:{_LABEL_CHAR}|-)*{_LABEL_CHAR})?(?:\.{_LABEL_CHAR}(?:(?:{_LABEL_CHAR}|-)*{_LABEL_CHAR})?)+")
# A search starts an address only where a local part can start: not inside a run of atom characters,
# nor just after "atom." (a dot-atom continues there). The leftmost address found is the same (one
# starting inside a run would also match from the run's start), but `re` no longer tries every
# position of a long run: "a" * 200,000 + "@" in a report's text was 200,000 scans to the "@",
# minutes of parsing (bench/audit_regex.py).
_ADDRESS = re.compile(rf"(?<!{_LOCAL_CHAR})(?<!{_LOCAL_CHAR}\.)" + _ADDRESS_BODY)
# RFC 5321 4.2: a reply code is 2yz..5yz with y in 0..5.
_REPLY_CODE = re.compile(r"(?<![\w.:#\[/=+-])([245][0-5][0-9])(?=[ -]|$)", re.M)
# RFC 3463 class.subject.detail, not part of an IP address or a version number.
_STATUS = re.compile(r"(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?![\w.]|\.\d)")
_HEADER_LINE = re.compile(r"^[!-9;-~]+:[ \t]")
_KNOWN_HEADER = re.compile(
    r"^(return-path|received|from|to|subject|date|message-id|mime-version|content-type|x-[\w-]+|"
    r"dkim-signature|delivered-to|reply-to|sender|cc|in-reply-to|references|authentication-results):",
    re.I)
# Where the report text ends and the copy of the original message begins (the MTAs' own markers).
# The margin is read possessively (\s*+, [-=_*]*+): every marker starts with a letter, so the only split
# of the margin that can match is the whole of it; with plain \s*[-=_*]*\s* a line of n spaces was
# tried in n * n ways times each alternative (8,000 spaces: 12 s of parsing; a line is any length once
# base64 or quoted-printable is decoded).
_ORIGINAL_MARKER = re.compile(
    r"^\s*+[-=_*]*+\s*+("
    r"original message|below this line is a copy|this is a copy of|returned message|original message follows|"
    r"message header follows|original message headers?|headers of (the|your) original|"
    r"unsent message (below|follows)|undelivered message headers|content of the original|"
    r"the (header|text) of (the|your) (original )?message|"
    r"received-headers? of the original|"
    r"forwarded message|returned mail follows|ursprüngliche nachricht|"
    r"start of (returned|original) message|mensaje original|message d'origine|"
    # "The first 50 lines of your original message follow:" (full-mailbox notices)
    r"the first \d+ lines of (your|the) (original )?message"
    r")", re.I)
# An address followed by another in angle brackets is the display name of that one ("a@x <b@y>",
# RFC 5322 3.4 name-addr): the mailbox is the one in the brackets.
_DISPLAY_NAME_OF = re.compile(r"[ \t]*<(" + _ADDRESS_BODY + ")>")
# A line that starts with a reply code (and enhanced code) followed by the address it is about.
_CODE_BEFORE_ADDRESS = re.compile(r"[ \t]*(?:<<<[ \t]*)?[245][0-5][0-9][ -](?:[245]\.\d{1,3}\.\d{1,3}[ \t]+)?<?")
_NOT_RECIPIENT_LOCAL = frozenset({"postmaster", "mailer-daemon", "mailer_daemon", "maildaemon", "daemon",
                                  "root", "noreply", "no-reply", "bounce", "bounces"})
# Postfix wraps a remote reply as `host H[ip] said: TEXT (in reply to RCPT TO command)`: the parenthesis
# is Postfix's, not the remote server's.
_IN_REPLY_TO_OPEN = re.compile(r"\(in reply to ", re.I)


def _without_in_reply_to(text: str) -> str:
    """`text` without a final "(in reply to ...)" and the white space around it: what
    re.sub(r"\\s*\\(in reply to [^)]*\\)\\s*$", "", text, flags=re.I) gives, found from the end. That
    regex tried every position of a run of spaces, and scanned to the end from every "(in reply to "
    with no ")" after it: a 1 MB Diagnostic-Code took minutes."""
    stripped = text.rstrip()
    if not stripped.endswith(")"):
        return text
    # Nothing between "(in reply to " and the final ")" may be a ")": the note opens after the one before.
    after = stripped.rfind(")", 0, len(stripped) - 1) + 1
    m = _IN_REPLY_TO_OPEN.search(stripped, after)
    if m is None:
        return text
    return stripped[:m.start()].rstrip()
_REMOTE_HOST = re.compile(
    r"(?:host|server)\s+([A-Za-z0-9][\w.-]*\.[A-Za-z]{2,}\.?(?:\s*\[[0-9A-Fa-f.:]+\])?)\s*(?:said|:)"
    r"|\bby\s+([A-Za-z0-9][\w.-]*\.[A-Za-z]{2,})\.?\s*\[[0-9A-Fa-f.:]+\]", re.I)
# Exim's host line of its own, above the reply it quotes ("  bob@x\n    host mx.x.example [192.0.2.1]\n
#     SMTP error from remote mail server after RCPT TO:<bob@x>:\n    550 ..."): the host that refused.
_HOST_LINE = re.compile(r"^[ \t]*host[ \t]+([A-Za-z0-9][\w.-]*\.[A-Za-z]{2,}\.?)[ \t]*(\[[0-9A-Fa-f.:]+\])[ \t]*$",
                        re.I | re.M)
# A text bounce's own word that its failures are final: Exim's and qmail's "This is a permanent error",
# Sendmail's "permanent fatal errors", Gmail's "failed permanently" (RFC 3464 2.3.3's Action: failed).
_PERMANENT_WORDS = re.compile(r"\bpermanent (?:fatal )?(?:error|failure)s?\b|\bfailed permanently\b|"
                              r"\bpermanently (?:failed|rejected|undeliverable)\b", re.I)
_FAILURE_WORDS = re.compile(
    r"undeliver|not be delivered|couldn't be delivered|could not deliver|unable to deliver|delivery failed|"
    r"delivery has failed|failed permanently|permanent (error|failure)|did not reach|not reach|"
    r"user unknown|unknown user|no such user|does not exist|doesn't exist|mailbox unavailable|"
    r"not delivered|delivery to the following|failure notice|returned mail|rejected|"
    r"mailbox (is )?full|over quota|quota exceeded|recipient|giving up|delivery status notification|"
    r"problem delivering|delivery incomplete|trouble delivering|error delivering|invalid|"
    r"delivery (failure|problem)|failed mail|mail failed|"
    # Gmail's current wording ("Address not found / Your message wasn't delivered to x because ...").
    r"(?:was|were)n['\u2019]t delivered|address not found|"
    # The same meaning in the languages of the usual report templates (Exchange's NDRs in German,
    # French, Spanish, Italian, Portuguese, Dutch, Russian, Japanese and Chinese, with their
    # "diagnostic information for administrators" heading, which only an NDR carries; Postfix and
    # provider templates): "could not be delivered", "undeliverable", "delivery failed".
    r"unzustellbar|nicht zugestellt|nicht (?:übermittelt|zustellbar)|zustellung fehlgeschlagen|"
    r"fehler bei der nachrichtenzustellung|diagnoseinformationen für administratoren|"
    # "The recipient's mailbox is full" as Exchange's German, French and Spanish NDRs say it (the
    # classifier's mailbox-full rule reads the same words): a recipient line pasted with it alone.
    r"postfach .{0,20}voll|bo[iî]te aux lettres .{0,20}pleine|buz[oó]n .{0,20}lleno|"
    r"non remis|pas pu (?:être|etre) (?:remis|livré|delivre|envoy)|n'a pu (?:être|etre) (?:remis|envoy)|"
    r"la remise a échoué|échec de (?:la )?remise|informations de diagnostic pour les administrateurs|"
    r"no se (?:puede|pudo|ha podido) entregar|error al entregar|no entregado|"
    r"información de diagnóstico para administradores|"
    r"non (?:è )?recapitabile|non è stato (?:possibile )?recapitat|impossibile recapitare|recapito non riuscito|"
    r"informazioni di diagnostica per gli amministratori|"
    r"não (?:é possível|foi possível) entregar|não entregue|falha na entrega|"
    r"onbestelbaar|niet (?:worden )?bezorgd|bezorging is mislukt|"
    r"не (?:может быть|могло быть|удалось|удаётся|удается) доставить|не может быть доставлено|"
    r"не доставлено|недоставк|"
    r"配信不能|配信できません|配信に失敗|送信できませんでした|"
    r"无法投递|无法传递|无法送达|无法发送|投递失败|发送失败|退信|未能成功送达|未能送达|無法傳遞|無法送達",
    re.I)
# The command a reply answered, as reporting MTAs say it: Postfix "(in reply to RCPT TO command)", Exim
# "after RCPT TO:<...>", "after end of data", qmail "does not like recipient", a Sendmail transcript's
# ">>> DATA" before the "<<< 550 ..." it got.
_STAGE_SAID = [
    (re.compile(r"in reply to (end of )?data\b|after (pipelined )?(end of )?data\b|after i sent the message|"
                r"in reply to end of message|after the message was sent|"
                # Exim (transports/smtp.c) writes "SMTP error from remote mail server after %s%s"
                # with "pipelined " before the command when it came in a PIPELINING group (RFC
                # 2920), "Remote host closed connection in response to %s%s" and "SMTP timeout
                # after %s%s" with the same command names ("end of data", "RCPT TO:<a@x>", "MAIL
                # FROM:<s@y>"), and "... after sending data block" for a timeout while the
                # content went.
                r"in response to (pipelined )?(end of )?data\b|after sending data block|"
                # qmail-remote: "<host> failed on DATA command." (the DATA command itself refused)
                r"failed on data command|"
                # DragonFly Mail Agent: "<host> [<ip>] did not like our final DATA:"
                r"did not like our (final )?data\b|error following data command|\bsmtp:data\s+host\b|"
                # Ipswitch IMail (SMTP32): "RCPT TO generated following response:" and the reply on
                # the next line; the same template for the other commands.
                r"\bdata generated following response\b", re.I), "data"),
    (re.compile(r"in reply to rcpt|after (pipelined )?rcpt\b|in response to (pipelined )?rcpt\b|"
                r"does not like recipient|rcpt to:<[^>]*>:\s*$|"
                # Digital Arts m-FILTER: "-------SMTP command" and the command on the next line
                # (read from its last dash: a run of dashes tried at every position is quadratic).
                # Only RCPT (or MAIL, below) is read: its DATA is the last command it sent, and
                # with PIPELINING (RFC 2920 3.1) MAIL, RCPT and DATA go in one group, so DATA
                # there comes over a refusal of RCPT too (a Postfix "<a@x>: Recipient address
                # rejected: User unknown in local recipient table", a reply only RCPT gets).
                r"-smtp command rcpt\b|"
                # Yahoo puts the command after the reply ("... User Unknown [RCPT_TO]"); X6
                # gateways say "(Error following RCPT command)"; DragonFly "did not like our RCPT
                # TO:"; an unnamed gateway (sisimai's "X3") "SMTP:RCPT host 192.0.2.8: 553 ...". Only
                # with "host" after it: a bare "smtp:mail" is also a host name ("Server:
                # smtp:mail.example.com") or an Exchange proxy address ("SMTP:mail@example.com"),
                # and read as the stage it made a true 5.1.1 the sender's (review, M1).
                r"\[rcpt_to\]|error following rcpt command|did not like our rcpt\b|\bsmtp:rcpt\s+host\b|"
                r"\brcpt to generated following response\b", re.I), "rcpt"),
    (re.compile(r"in reply to mail\b|after (pipelined )?mail from\b|in response to (pipelined )?mail from\b|"
                r"sender was rejected|does not like sender|-smtp command mail\b|"
                r"\[mail_from\]|error following mail command|did not like our mail\b|\bsmtp:mail\s+host\b|"
                r"\bmail from generated following response\b", re.I), "mail"),
    (re.compile(r"in reply to (ehlo|helo|lhlo)\b|after (pipelined )?(ehlo|helo|lhlo)\b|"
                r"in response to (ehlo|helo|lhlo)\b|"
                # qmail-remote: "Connected to <ip> but my name was rejected." (HELO)
                r"but my name was rejected|-smtp command (ehlo|helo)\b", re.I), "helo"),
    (re.compile(r"in reply to (the )?initial (server )?greeting|after initial connect|"
                r"in response to initial connect|"
                # qmail-remote: "Connected to <ip> but greeting failed."
                r"but greeting failed|"
                r"refused to talk to me|while connecting", re.I), "connect"),
]
# A transcript's commands and replies: Sendmail's ">>> RCPT To:<a@x>" and "<<< 550 ...", and the same
# with the arrows turned round after a word (Trend Micro InterScan: "Sent <<< RCPT TO:<a@x>", then
# "Received >>> 550 5.1.1 ..."). These, at the start of the line, are the report's own transcript.
_TRANSCRIPT_COMMAND = re.compile(r"^(?:>>>|Sent <<<)\s*(RCPT|DATA|MAIL|EHLO|HELO|LHLO|\.)", re.I | re.M)
_TRANSCRIPT_REPLY = re.compile(r"^(?:<<<|Received >>>)\s*[45]\d\d", re.I | re.M)
_TRANSCRIPT_NEXT_COMMAND = re.compile(r"(?:>>>|Sent <<<)", re.I)
_TRANSCRIPT_REPLY_END = re.compile(r"(?:<<<|Received >>>)\s*[2-5]\d\d(\s|$)", re.I)
# The same transcript indented (au/EZweb's "   >>> RCPT TO:<a@x>") or quoted (RFC 3676 4.5: "> "
# before each line; a Sendmail ">>> DATA" quoted is ">>>> DATA"): a report forwarded or replied to,
# but also the returned message's own text, or a thread it quotes, about another mail and possibly
# another address (review of 33a0edc, F1). Such a transcript is read last, after the report's own
# transcript and its stated words, and only when its command or reply names the recipient.
# _QUOTE_MARGIN_RE takes every ">" at the start of the line and the white space before each,
# possessively (one way to read it: linear), and a command's arrows are the last three of them (the
# look-behind).
_QUOTE_MARGIN_RE = r"(?:[ \t]*+>)*+"
_COMMAND_ARROWS = rf"{_QUOTE_MARGIN_RE}(?:(?<=>>>)|[ \t]*+Sent <<<)"
_REPLY_ARROWS = rf"{_QUOTE_MARGIN_RE}[ \t]*+(?:<<<|Received >>>)"
_QUOTED_TRANSCRIPT_COMMAND = re.compile(rf"^{_COMMAND_ARROWS}\s*(RCPT|DATA|MAIL|EHLO|HELO|LHLO|\.)", re.I | re.M)
_QUOTED_TRANSCRIPT_REPLY = re.compile(rf"^{_REPLY_ARROWS}\s*[45]\d\d", re.I | re.M)
_QUOTED_TRANSCRIPT_NEXT_COMMAND = re.compile(rf"^{_COMMAND_ARROWS}", re.I)
_QUOTED_TRANSCRIPT_REPLY_END = re.compile(rf"^{_REPLY_ARROWS}\s*[2-5]\d\d(\s|$)", re.I)
_OWN_TRANSCRIPT = (_TRANSCRIPT_COMMAND, _TRANSCRIPT_REPLY, _TRANSCRIPT_NEXT_COMMAND, _TRANSCRIPT_REPLY_END)
_QUOTED_TRANSCRIPT = (_QUOTED_TRANSCRIPT_COMMAND, _QUOTED_TRANSCRIPT_REPLY, _QUOTED_TRANSCRIPT_NEXT_COMMAND,
                      _QUOTED_TRANSCRIPT_REPLY_END)
_TRANSCRIPT_HOST = re.compile(r"while talking to\b", re.I)
_RCPT_COMMAND_LINE = re.compile(r"\A[>\s]*+(?:sent\s*+<<<\s*+)?rcpt\b", re.I)
_STAGE_OF_COMMAND = {"rcpt": "rcpt", "data": "data", ".": "data", "mail": "mail", "ehlo": "helo", "helo": "helo",
                     "lhlo": "helo"}


def _replies_before_next_command(text: str, start: int, next_command: re.Pattern = _TRANSCRIPT_NEXT_COMMAND,
                                 reply_end: re.Pattern = _TRANSCRIPT_REPLY_END) -> int:
    """How many replies a transcript shows from `start` to its next command (a reply ends at its
    `<<< NNN ` line; `<<< NNN-` lines continue it)."""
    count = 0
    for line in text[start:].split("\n"):
        if next_command.match(line):
            break
        if reply_end.match(line):
            count += 1
    return count


def _line_at(text: str, pos: int) -> str:
    end = text.find("\n", pos)
    return text[pos:] if end < 0 else text[pos:end]


def _transcript_reading(text: str, patterns: tuple,
                        names: tuple[str, ...] | None = None) -> tuple[str, str, str, bool] | None:
    """(stage, the command's line, the reply's line, pipelined) that a transcript in `text` shows for
    the reply the report is about, or None; lines in lower case. `pipelined`: the reply came with
    others after several commands shown sent together (PIPELINING); the command's line is then the
    one the reply answers when replies and commands can be matched in order, else DATA's.
    The reply read is the host's part's first 4xx/5xx, or, when the recipient known by `names`
    (lower case) has more than one RCPT there, the first after his last: a refusal before a later
    RCPT of his (a 452, then a retry that took him) did not end his story (review-5 F3)."""
    command_re, reply_re, next_command, reply_end = patterns
    replies = list(reply_re.finditer(text))
    if not replies:
        return None
    block = _last_host_part(text, replies[-1].start())
    start = block
    if names:
        own_rcpts = [c.start() for c in command_re.finditer(text, block)
                     if fold(c.group(1)) == "rcpt" and _names_one_of(fold(_line_at(text, c.start())), names)]
        if len(own_rcpts) > 1:
            start = own_rcpts[-1]
    reply = next((r for r in replies if r.start() >= start), None)
    if reply is None:
        return None
    commands = list(command_re.finditer(text, block, reply.start()))
    if not commands:
        return None
    stage = _STAGE_OF_COMMAND[fold(commands[-1].group(1))]
    command_line = fold(_line_at(text, commands[-1].start()))
    if stage == "data" and _replies_before_next_command(text, reply.start(), next_command, reply_end) > 1:
        # PIPELINING (RFC 2920 3.1): RCPT and DATA went together and the replies come in
        # command order; the first of several answers a RCPT, the DATA reply comes last.
        stage = "rcpt"
        # The command this reply answers, matched in order (review-3 F5: "RCPT To:<bob>", "RCPT
        # To:<carol>", "DATA", then "250 <bob> ok", "550 <carol> unknown", "354": the 550 is
        # carol's, and the reading stands for bob only if the reply names him).
        answered = _pipelined_command(text, block, reply.start(), patterns)
        if answered is not None:
            stage, command_line = answered[0], answered[1] or command_line
            if stage is None:
                return None  # it answers a command the stages do not name (RSET, NOOP)
            return stage, command_line, fold(_line_at(text, reply.start())), True
    return stage, command_line, fold(_line_at(text, reply.start())), False


def _last_host_part(text: str, last_reply: int) -> int:
    """Where the part of the host that gave the transcript's last reply (at `last_reply`) begins.
    Sendmail begins the part of each host it talked to with "... while talking to HOST.:" and gives
    up at the last one: the reply the report is about is in that host's part (an earlier host's
    "<<< 450 busy - please try later" is another attempt)."""
    return max((m.end() for m in _TRANSCRIPT_HOST.finditer(text, 0, last_reply)), default=0)


def _transcript_runs(text: str, block: int, patterns: tuple) -> list[tuple[list[str], list[tuple[int, str, int]]]]:
    """The transcript from `block` as runs: (the commands sent together, the replies that followed
    them before the next command, each as (offset in `text`, line, code)). A reply before any
    command (the greeting) is left out; a reply's continuation lines ("<<< 550-") are not counted."""
    _, _, next_command, reply_end = patterns
    runs: list[tuple[list[str], list[tuple[int, str, int]]]] = []
    at = block
    for line in text[block:].split("\n"):
        if next_command.match(line):
            if not runs or runs[-1][1]:
                runs.append(([], []))
            runs[-1][0].append(line)
        elif runs and (reply := reply_end.match(line)):
            runs[-1][1].append((at, line, int(line[reply.start(1) - 3:reply.start(1)])))
        at += len(line) + 1
    return runs


def _command_stage(line: str, patterns: tuple) -> str | None:
    command = patterns[0].match(line)
    return _STAGE_OF_COMMAND[fold(command.group(1))] if command else None


# The address a reply leads with, right after its code and enhanced status: Sendmail's
# "550 5.1.1 <x>... User unknown", Postfix's "550 5.1.1 <x>: Recipient address rejected". An address
# later in the text is not the one the reply is about: RFC 5321 3.4's forward-path ("251 User not
# local; will forward to <y>", "551 ... please try <y>") may be another RCPT of the group (review-8 F3).
# The transcript's reply prefixes ("<<<", "Received >>>", a quote margin) have no digit.
_REPLY_ADDRESS = re.compile(r"\D*+\d{3}[ -]\s*+(?:\d\.\d{1,3}\.\d{1,3}\s++)?<([^<>\s@]++@[^<>\s]++)>")


def _answers_another(command: str, reply: str, rcpts: set[str]) -> bool:
    """Whether a reply paired with a RCPT command names another RCPT of its group (`rcpts`, lower
    case) than that command's: the server did not answer in order (RFC 2920 3.1 says it must), so the
    pairing is not to be trusted. Only the address the reply leads with counts (_REPLY_ADDRESS: a
    forward-path later in a 251/551 may be another RCPT of the group, review-8 F3), and an address
    that is not one of the group's RCPTs says nothing about order: in-order replies lead with one too
    (a sender check reported at RCPT that names the envelope sender; review-5 F2)."""
    rcpt = _RCPT_ADDRESS.search(command)
    named = _REPLY_ADDRESS.match(reply)
    if not (rcpt and named):
        return False
    named_address = fold(named.group(1))
    return named_address != fold(rcpt.group(1)) and named_address in rcpts


def _paired_in_order(commands: list[str], replies: list[tuple[int, str, int]]) -> bool:
    """Whether a run's replies can be read as answering its commands one by one, in order: as many
    replies as commands shown, and none to a RCPT naming another RCPT of the run."""
    if len(commands) != len(replies):
        return False
    rcpts = {fold(m.group(1)) for c in commands if (m := _RCPT_ADDRESS.search(c))}
    return not any(_answers_another(c, r, rcpts) for c, (_, r, _) in zip(commands, replies))


def _pipelined_command(text: str, block: int, reply_at: int, patterns: tuple) -> tuple[str | None, str] | None:
    """For a reply at `reply_at` that came with others after several commands sent together
    (PIPELINING): (stage, line in lower case) of the command it answers, matched in order (RFC 2920
    3.1: the server replies in the order of the commands; stage None: a command the stages do not
    name), or ("rcpt", "") when they cannot be paired in order (_paired_in_order); None when its group
    shows one command only (Sendmail's ">>> DATA" alone, after RCPTs it does not show): the
    reading as before."""
    for commands, replies in _transcript_runs(text, block, patterns):
        for n, (at, _, _) in enumerate(replies):
            if at == reply_at:
                if len(commands) < 2:
                    return None
                if not _paired_in_order(commands, replies):
                    return "rcpt", ""
                return _command_stage(commands[n], patterns), fold(commands[n])
    return None


_RCPT_ADDRESS = re.compile(r"rcpt\s*+to:\s*+<?([^<>\s]++)", re.I)


def _rcpt_stages(text: str, patterns: tuple = _OWN_TRANSCRIPT) -> dict[str, str | None]:
    """Recipient (lower case) -> the stage its failure came at, from the transcript's last host's
    part, its commands and replies matched in order (RFC 2920 3.1: with PIPELINING too, the replies
    come in the order of the commands): "rcpt" when its RCPT got 4xx/5xx; when it got 2xx, "data"
    if a later DATA or end of data of the same transaction (back to its MAIL) got 4xx/5xx (the
    failure came after his RCPT was taken), else None. A recipient's last RCPT decides (review-4).
    Pairing stops at the first run that cannot be paired (_paired_in_order); a recipient with a RCPT
    in or after it is left out, as is one whose RCPT is not in the transcript (review-3 F5,
    review-5 F3): the caller reads his stage otherwise."""
    last = None
    for last in patterns[1].finditer(text):
        pass
    if last is None:
        return {}
    block = _last_host_part(text, last.start())
    pairs: list[tuple[str | None, str, int]] = []
    unpaired: set[str] = set()
    runs = _transcript_runs(text, block, patterns)
    for n, (commands, replies) in enumerate(runs):
        if not _paired_in_order(commands, replies):
            # Not as many replies as commands shown, or a reply to a RCPT naming another RCPT of the
            # run: which answers which is not known, and a later pairing could be off too (review-4).
            # A recipient with a RCPT from here on is not decided by an earlier pair: his last RCPT
            # decides, and its reply is not known (review-5 F3).
            unpaired = {m.group(1) for later, _ in runs[n:] for c in later
                        if (m := _RCPT_ADDRESS.search(fold(c)))}
            break
        pairs.extend((_command_stage(c, patterns), fold(c), code) for c, (_, _, code) in zip(commands, replies))
    stages: dict[str, str | None] = {}
    data_failed = False
    # Backwards: a recipient's last RCPT decides (an earlier transaction's 452 is not the failure of
    # a retry that took him), and a DATA refusal belongs to its own transaction, back to its MAIL
    # (review-4).
    for stage, line, code in reversed(pairs):
        if stage == "data" and code >= 400:
            data_failed = True
        elif stage == "mail":
            data_failed = False
        elif stage == "rcpt" and (address := _RCPT_ADDRESS.search(line)) and address.group(1) not in stages:
            stages[address.group(1)] = "rcpt" if code >= 400 else "data" if code < 300 and data_failed else None
    for address in unpaired:
        stages.pop(address, None)
    return stages


def _rcpt_stage_of(stages: dict[str, str | None], names: tuple[str, ...] | None) -> tuple[bool, str | None]:
    """(whether the transcript has this recipient's RCPT, the stage _rcpt_stages gives it)."""
    for name in names or ():
        if name in stages:
            return True, stages[name]
    return False, None


def _reading_fits(reading: tuple[str, str, str, bool] | None, names: tuple[str, ...] | None,
                  must_name: bool = False) -> str | None:
    """The stage of a transcript `reading` for the recipient known by `names` (lower case), or None.
    A RCPT command that names another address gives none: its reply is that address's; a reading
    at RCPT from a PIPELINING group needs the reply's line or the RCPT it answers to name one of
    `names`. With `must_name`, the command's or the reply's line must name one of `names`."""
    if reading is None:
        return None
    stage, command_line, reply_line, pipelined = reading
    if names:
        if _RCPT_COMMAND_LINE.match(command_line) and "@" in command_line and not _names_one_of(command_line, names):
            return None
        if pipelined and stage == "rcpt" and not (_names_one_of(command_line, names) or _names_one_of(reply_line, names)):
            # Read at RCPT from a PIPELINING group: it stands only when the reply, or the RCPT it
            # answers, names this recipient; another recipient's refusal is not his (review-3 F5).
            return None
        if must_name and not (_names_one_of(command_line, names) or _names_one_of(reply_line, names)):
            return None
    elif must_name:
        return None
    return stage


def _names_one_of(line: str, names: tuple[str, ...]) -> bool:
    """`line` (lower case) names one of `names` as a whole address: not "a@b.example" inside
    "ca@b.example" or "a@b.example.net"."""
    for name in names:
        at = line.find(name)
        while at >= 0:
            end = at + len(name)
            if (at == 0 or not _address_char(line[at - 1])) and \
                    (end == len(line) or not _address_char(line[end]) or
                     (line[end] == "." and (end + 1 == len(line) or not _address_char(line[end + 1])))):
                return True
            at = line.find(name, at + 1)
    return False


def _address_char(c: str) -> bool:
    """May be part of an address next to it (RFC 5321 4.1.2 atext and the dot, a domain's hyphen;
    RFC 6531: UTF-8 letters)."""
    return c.isalnum() or c in "!#$%&'*+/=?^_`{|}~-.@"


def _stage_in_words(text: str) -> str | None:
    """The stage the report states in words (_STAGE_SAID). When it states more than one (a report
    that joins several attempts: "closed connection in response to RCPT TO:<a@x>" for one host,
    "SMTP error ... after MAIL FROM:<s@y>: 550 ..." for the next), the one nearest before the reply
    it is about, else the first after it (Postfix's "(in reply to RCPT TO command)", Yahoo's
    "[RCPT_TO]" follow the reply); by list order only when no reply is found (review of 33a0edc, F2)."""
    flat = re.sub(r"\s+", " ", text)  # reporting MTAs wrap "(in reply to RCPT TO command)" anywhere
    found = [(m.start(), stage) for pattern, stage in _STAGE_SAID for m in [pattern.search(flat)] if m]
    if len({stage for _, stage in found}) <= 1:
        return found[0][1] if found else None
    reply_at = _find_reply_at(flat)[3]
    if reply_at is None:
        return found[0][1]
    # Every match of each stage, not only its first: the one before the reply may come after another.
    found = [(m.start(), stage) for pattern, stage in _STAGE_SAID for m in pattern.finditer(flat)]
    before = [f for f in found if f[0] < reply_at]
    if before:
        return max(before, key=lambda f: f[0])[1]
    return min(found, key=lambda f: f[0])[1]


def stage_said(text: str | None, names: tuple[str, ...] | list[str] | str | None = None) -> str | None:
    """The SMTP stage a report says the remote reply came at, or None when it does not say. `names`:
    the recipient the reply is about and its aliases (FailedRecipient.aliases), when known.

    Read in this order: the report's own transcript at the start of its lines (unless its RCPT
    names another address than `names`); the stage it states in words; last, a transcript indented
    or quoted, only when `names` is given and the transcript names one of them. A quoted transcript
    may be the returned message's own text or a thread it quotes, about another mail or address
    (review of 33a0edc, F1: "said after end of data: 550 Unknown user bob" under a quoted
    "> > >>> RCPT To:<bob>" was read at RCPT and listed bob at once)."""
    if not text:
        return None
    if isinstance(names, str):
        names = (names,)
    lowered = tuple(fold(n) for n in names if n) if names else None
    stage = _rcpt_stage_of(_rcpt_stages(text), lowered)[1] if lowered else None
    if stage:
        return stage
    stage = _reading_fits(_transcript_reading(text, _OWN_TRANSCRIPT, lowered), lowered)
    if stage:
        return stage
    stage = _stage_in_words(text)
    if stage or not lowered:
        return stage
    return _reading_fits(_transcript_reading(text, _QUOTED_TRANSCRIPT), lowered, must_name=True)


# A text bounce that only reports a delay (the MTA keeps trying): a warning, not a final failure.
_TEMPORARY_WORDS = re.compile(r"temporar|will (retry|continue|keep) trying|will be retried|still trying|"
                              r"attempts will continue|will continue to (try|attempt)|"
                              r"delivery (is )?delayed|delayed delivery|has been delayed|not yet been delivered|"
                              r"delivery incomplete|will retry|warning: message|"
                              r"(?:has|have)(?:n['\u2019]t| not) been delivered yet|will continue to be attempted|"
                              # The same in the languages the failure words above know: "delayed",
                              # "not delivered yet", "will keep trying".
                              r"verzögert|noch nicht zugestellt|weiterhin versucht|"
                              r"retardée?|pas encore été remis|tentatives de remise se poursuiv|"
                              r"retrasad|aún no se ha entregado|seguirá intentando|"
                              r"ritardat|non è stato ancora recapitato|"
                              r"atrasad|ainda não foi entregue|"
                              r"vertraagd|nog niet bezorgd|"
                              r"задерживается|ещё не доставлено|еще не доставлено|"
                              r"遅延|まだ配信されていません|延迟|尚未传递|尚未投递|"
                              # A challenge-response filter holds the message until the sender proves
                              # to be a person (Bluebottle: "click ... to have your address added to
                              # the recipient's allowed list and to ensure delivery of your email"):
                              # nothing has failed yet.
                              r"to ensure delivery of your|added to (the recipient's|my) (allowed|approved|guest) list|"
                              # TMDA's and SpamArrest's notices: the message waits for the sender's
                              # confirmation ("is being held because the address ... has not been
                              # verified", "To release your message for delivery", "my list of approved
                              # senders"); read as a failure, each challenge counted towards listing
                              # the challenging recipient (`other`: the third in a week listed him).
                              r"(?:message|mail|e-?mail) (?:\S+ ){0,3}is being held\b|to release your message|"
                              r"list of approved senders|senders I have approved|"
                              r"will (?:not|only) be delivered (?:until|once|when|after) you (?:confirm|verify|reply)",
                              re.I)
_AUTO_REPLY_SUBJECT = re.compile(r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|auto:|out of (the )?office|"
                                 r"abwesenheit|absence|vacation)", re.I)


@dataclass(frozen=True)
class FailedRecipient:
    """One recipient a bounce says failed (or one complaint of a feedback report)."""

    recipient: str
    status: str | None = None          # RFC 3463 enhanced code (DSN Status field, or found in the text)
    code: int | None = None            # the remote server's reply code, when it is known
    action: str | None = None          # DSN Action (failed | delayed); None in text bounces
    diagnostic: str | None = None      # the remote server's text (Diagnostic-Code without its type)
    remote_mta: str | None = None
    original_recipient: str | None = None  # DSN Original-Recipient (the address as the sender gave it)
    final_recipient: str | None = None     # DSN Final-Recipient
    # Sendmail's X-Actual-Recipient (rfc822 type only): the address an alias or .forward made of the
    # recipient, which the remote server's reply names.
    actual_recipient: str | None = None
    feedback_type: str | None = None   # ARF only
    diagnostic_type: str | None = None  # "smtp", "x-postfix", ... (DSN only)
    reported_status: str | None = None  # the DSN's Status field as written (DSN only)
    stage: str | None = None           # the SMTP command the remote server refused, when the report says
    final: bool | None = None          # the reporting MTA gave up (True) or will retry (False); None: unknown
    # The reporting MTA's own words about this recipient apart from the remote reply (PowerMTA's
    # X-PowerMTA-BounceCategory, the lines of a text report that name the address): not printed, read
    # only for `hard` (commands/dsn.py, policies.sisimai_hard).
    own_words: str | None = None
    # The addresses an Original-Recipient may stand for when its value reads two ways, most likely
    # first (original_recipient is the first): as written, and xtext-decoded (RFC 3461 4). Postfix
    # writes the ORCPT value decoded, Sendmail in xtext, and a tagged address such as order+31@x is
    # valid xtext by accident (order1@x). Empty when the value reads one way, or the Final-Recipient
    # said which reading it is. The intake matches either to the transaction's recipients and never
    # lists on such a value alone (relay/intake/bounces_in.py).
    original_readings: tuple[str, ...] = ()

    def aliases(self, of: str) -> tuple[str, ...]:
        """The other addresses the report gives for the recipient `of` (Original-, Final- and
        X-Actual-Recipient, and the failed address itself), once each: a reply that names one of them
        names the recipient (Policies.judge)."""
        return tuple(dict.fromkeys(a for a in (self.original_recipient, *self.original_readings, self.recipient,
                                               self.final_recipient, self.actual_recipient)
                                   if a and fold(a) != fold(of)))

    def original_spellings(self) -> tuple[str, ...]:
        """The addresses the Original-Recipient may stand for, most likely first: the one
        `original_recipient`, or both readings of a value that reads two ways (`original_readings`)."""
        return self.original_readings or ((self.original_recipient,) if self.original_recipient else ())

    def reply(self) -> Reply:
        """The failure as an SMTP reply for the classifier (Reply.source "dsn"). The diagnostic is kept
        verbatim; when it carries no enhanced code, the DSN's Status is put first, as a server would."""
        text = self.diagnostic or ""
        if self.code and _leading_code(text) is None:
            quoted = _quoted_reply(text)
            if quoted and quoted[0] == self.code:
                # The reporting MTA's words before the remote reply are not the remote server's.
                text = f"{self.code} {text[quoted[1]:]}"
        lines = _reply_lines(text, self.code)
        code = self.code or 0
        status = self.status
        if status is None and code == 0 and self.final is not None:
            # No code at all: the report itself is the reporting MTA's verdict, a permanent failure
            # (it gave up) or a delay; RFC 3463 X.0.0 says so without claiming a reason.
            status = "5.0.0" if self.final else "4.0.0"
        # A 2.X.X in the text is not a code of its own (RFC 3463 3.1: success; "RELEASED Mailman
        # 2.0.12" in a quoted subject), as for _find_reply_at: the report's status still goes first.
        from_report = bool(status) and not any(m.group(1) != "2" for m in _STATUS.finditer(text))
        if from_report:
            lines = [f"{status} {lines[0]}".rstrip(), *lines[1:]]
        return Reply(code, tuple(lines) or ("",), "dsn", enhanced_from_report=from_report)


@dataclass(frozen=True)
class BounceReport:
    kind: str  # "bounce" | "feedback" | "none"
    recipients: tuple[FailedRecipient, ...] = ()
    reporting_mta: str | None = None
    original_sender: str | None = None  # X-Postfix-Sender / Original-Mail-From / the original's Return-Path
    original_envelope_id: str | None = None
    original_headers: tuple[tuple[str, str], ...] = ()  # headers of the returned message, when included
    user_agent: str | None = None       # ARF
    # Recipient blocks of a delivery-status report past the first MAX_STATUS_BLOCKS: counted, not read.
    blocks_not_read: int = 0
    # Why the input is no message at all (kind "none"): empty, or binary data. None for a message
    # that is simply no bounce (an auto-reply, a success DSN, ordinary mail): `relay dsn parse` says
    # the one on stderr and prints nothing for the other (docs/bounces-in.md).
    not_a_message: str | None = None

    def original_header(self, name: str) -> str | None:
        lname = fold(name)
        for key, value in self.original_headers:
            if fold(key) == lname:
                return value
        return None

    @property
    def message_id(self) -> str | None:
        return self.original_header("message-id")


# --- small helpers -----------------------------------------------------------


def _unfold(value: str) -> str:
    """RFC 5322 2.2.3 unfolding. The whitespace of a fold is the reporting MTA's, not the remote
    server's: a fold becomes one space."""
    return re.sub(r"\r?\n[ \t]+", " ", value).strip()


def _typed(value: str | None) -> tuple[str | None, str | None]:
    """`type; value` fields of RFC 3464 (address-type, diagnostic-type, mta-name-type)."""
    if value is None:
        return None, None
    value = _unfold(str(value))
    if ";" in value:
        kind, _, rest = value.partition(";")
        if re.fullmatch(r"\s*[\w.-]+\s*", kind):
            return fold(kind.strip()), rest.strip()
    return None, value


# RFC 6533 3: a "utf-8" address-type writes a character as "\\x{HEXPOINT}" (utf-8-addr-xtext, the 7-bit
# form a message/delivery-status part carries): a non-ASCII one, or one of the ASCII characters its QCHAR
# leaves out ("+" is "\\x{2B}", "=" "\\x{3D}", SP "\\x{20}").
_EMBEDDED_UNICODE = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")


def _embedded_unicode_decoded(text: str) -> str | None:
    """`text` with its \\x{HEXPOINT} characters (RFC 6533 3) decoded; None when a backslash in it is
    left that is none of them, or one names no character (NUL, a surrogate, past U+10FFFF). Read as
    written, "j\\x{00F6}rg@..." was the address "x{00F6}rg@...", and "a\\x{2B}b@..." "x{2B}b@...":
    somebody else's. (No address in the other forms holds a backslash: a dot-atom cannot, RFC 5322 3.2.3.)"""
    def char(m: re.Match) -> str:
        point = int(m.group(1), 16)
        return "\\" if point == 0 or point > 0x10FFFF or 0xD800 <= point <= 0xDFFF else chr(point)

    if "\\" not in text:
        return text
    decoded = _EMBEDDED_UNICODE.sub(char, text)
    return None if "\\" in decoded else decoded


# RFC 3461 4: xtext, as an ORCPT parameter writes the address the sender gave: "!".."~" but "+" and
# "=" stand for themselves, "+" and two upper-case hex digits for any other octet (and may for these).
_XTEXT = re.compile(r"(?:[!-*,-<>-~\u0080-\U0010ffff]|\+[0-9A-F]{2})*")
_HEXCHAR = re.compile(r"\+([0-9A-F]{2})")


def _xtext_decoded(text: str) -> str | None:
    """`text` as xtext decoded (RFC 3461 4), None when it is no xtext: a "+" without two upper-case hex
    digits, a bare "=", white space, or a hexchar for a character the original address cannot hold
    (RFC 3461 4.2: printable US-ASCII only). Characters past US-ASCII stand for themselves: an SMTPUTF8
    MTA writes the address in UTF-8 (RFC 6533 6), which no decoding can misread."""
    if not _XTEXT.fullmatch(text):
        return None
    if "+" not in text:
        return text
    if any(not 0x21 <= int(m.group(1), 16) <= 0x7E for m in _HEXCHAR.finditer(text)):
        return None
    return _HEXCHAR.sub(lambda m: chr(int(m.group(1), 16)), text)


def _recipient_address(value: str | None, orcpt: bool = False) -> str | None:
    """The address of a Final-Recipient or Original-Recipient field (RFC 3464 2.3.1-2.3.2:
    `address-type ; generic-address`): a "utf-8" one (RFC 6533 3) with its \\x{...} characters decoded.
    Read as "x{00F6}rg@..." before, an address nobody was sent to.

    `orcpt`: the value is a DSN's Original-Recipient, the ORCPT parameter's value (RFC 3464 2.3.1),
    which RFC 3461 4.2 writes in xtext: "a+2Bb@x" is a+b@x (Sendmail writes it so, as it received
    it). A value that is no valid xtext is taken as written: Postfix writes the ORCPT value decoded
    ("rfc822;a+tag@x", "rfc822;a=b@x"), and read as no address, an alias's failure of a tagged address
    was a verp_recipient warning, never recorded. Only a value that is valid xtext is decoded. A "utf-8"
    value that is no valid utf-8-addr-xtext gives no address (its backslashes are no address's)."""
    kind, address = _typed(value)
    if not address:
        return None
    if kind == "utf-8":
        # utf-8-addr-xtext needs no "+XX" (its QCHAR leaves "+" and "=" to \\x{2B} and \\x{3D}), and
        # in utf-8-addr-unitext or utf-8-address (RFC 6533 3) "+" is itself: never xtext-decoded.
        address = _embedded_unicode_decoded(address)
    elif orcpt:
        decoded = _xtext_decoded(address)
        address = address if decoded is None else decoded
    return _bare_address(address)


# The hexchars an xtext encoder must write (RFC 3461 4: "+" and "=" are no xchar); any other
# printable character it may leave as it is, and Sendmail does.
_MUST_ENCODE = re.compile(r"\+(?:2B|3D)")


def _original_recipient(value: str | None, final: str | None) -> tuple[str | None, tuple[str, ...]]:
    """The address of an Original-Recipient field, and both its readings when it reads two ways
    (FailedRecipient.original_readings). An "rfc822" value that is valid xtext and decodes to another
    address ("order+31@x": order1@x) may be either: RFC 3461 4 writes ORCPT in xtext (Sendmail keeps it
    so) but Postfix writes it decoded, and a tagged address with two hex digits after its "+" (a
    country code, a year: "+31", "+20") is valid xtext by accident. Decoded, the failure of order+31@x
    was recorded for order1@x, another mailbox (issue 13).

    The Final-Recipient (the address that failed, `final`) decides when it is one of the two: the
    reporting MTA wrote both fields the same way. Else both readings are kept, the likelier first: the
    decoded one when the value holds a hexchar an encoder must write ("+2B" for "+", "+3D" for "="),
    as only xtext does; else the written one, as a decoder has no reason to see "+31" for "1"."""
    address = _recipient_address(value, orcpt=True)
    kind, raw = _typed(value)
    if address is None or kind == "utf-8" or not raw:
        return address, ()
    written = _bare_address(raw)
    if written is None or written == address:
        return address, ()
    if final is not None:
        for reading in (written, address):
            if fold(reading) == fold(final):
                return reading, ()
    readings = (address, written) if _MUST_ENCODE.search(raw) else (written, address)
    return readings[0], readings


def _bare_address(value: str | None) -> str | None:
    if not value:
        return None
    m = _ADDRESS.search(value)
    return m.group(0) if m else None


# Lone surrogates: what surrogateescape made of bytes that were not decoded (U+DC80-DCFF, one a byte:
# the compat32 parser reads a message as ASCII with surrogateescape, _message_from_bytes), or what a
# codec made of a broken sequence (charset=utf-7 decodes "+2D0-" to U+D83D, a high surrogate alone).
# Neither is a character: no UTF-8 encoder takes them, and the funnel's RE2 patterns (the provider
# breaker's `named_by`, an operator's rules) encode the text as UTF-8 (review19 F5: UnicodeEncodeError,
# the bounce answered 451 for ever).
_ESCAPED_BYTES = re.compile("[\udc80-\udcff]+")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """`text` with no lone surrogate, so that it encodes as UTF-8: a run of surrogateescape'd bytes
    becomes those bytes read as UTF-8 when they are valid UTF-8 (a report that wrote UTF-8 without
    saying so), else as ISO 8859-1 (one character a byte, as the relay reads an upstream's reply that
    is not UTF-8: docs/events.md); any other lone surrogate becomes U+FFFD, the replacement character."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    text = _ESCAPED_BYTES.sub(_escaped_bytes_read, text)
    return _LONE_SURROGATE.sub("\ufffd", text)


def _escaped_bytes_read(m: re.Match) -> str:
    raw = bytes(ord(c) - 0xDC00 for c in m.group())
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _cleaned(report: BounceReport) -> BounceReport:
    """`report` with every text in it cleaned (clean_text). The texts are cleaned where they are
    decoded (_decoded_text, _header_text, _block_source); this is the guarantee for any other way a
    field of the message reaches the report."""
    def clean(value):
        if isinstance(value, str):
            return clean_text(value)
        if isinstance(value, tuple):
            return tuple(clean(v) for v in value)
        if isinstance(value, FailedRecipient):
            return _cleaned_fields(value, clean)
        return value
    return _cleaned_fields(report, clean)


def _cleaned_fields(obj, clean):
    changed = {}
    for name in obj.__dataclass_fields__:
        value = getattr(obj, name)
        new = clean(value)
        if new != value:
            changed[name] = new
    return replace(obj, **changed) if changed else obj


def _header_value(part: Message, name: str) -> str:
    """A header field's value as text, "" when absent: the compat32 parser hands over a field that
    holds 8-bit bytes as an email.header.Header, not a str."""
    value = part.get(name)
    return "" if value is None else clean_text(str(value))


def _header_text(value) -> str:
    """A header field's value with its RFC 2047 encoded words decoded (clean_text: a word in utf-7,
    or 8-bit bytes around them)."""
    try:
        return clean_text(str(make_header(decode_header(str(value)))))
    except Exception:
        return clean_text(str(value))


def _reply_lines(text: str, code: int | None) -> list[str]:
    """Split a diagnostic that flattened a multi-line reply (`550-5.1.1 a 550-5.1.1 b 550 5.1.1 c`) back into
    its lines, without the code prefixes (Reply keeps lines without them)."""
    text = text.strip()
    if not code:
        return [text] if text else [""]
    # (?<!\s): a run of white space is tried from its start only; from every position of it, a
    # 1 MB run of spaces in a Diagnostic-Code was minutes of work (bench/audit_regex.py).
    parts = re.split(rf"(?:^|(?<!\s)\s+)(?={code}[ -])", text)
    lines = []
    for part in parts:
        part = part.strip()
        if not part:
            continue
        m = re.match(rf"^{code}[ -]?(.*)$", part, re.S)
        lines.append(m.group(1).strip() if m else part)
    return lines or [""]


# A remote reply quoted inside the reporting MTA's own words, with its enhanced code: Amazon SES
# writes "5.1.0 - Unknown address error 550-'5.7.1 <a@example.jp>... Access denied' (delivery
# attempts: 0)", its own summary status first. RFC 3464 2.3.6 makes Diagnostic-Code the remote
# server's reply; the summary around it is the reporter's, and says less (SES writes "Unknown
# address error" over a full mailbox too).
_QUOTED_REPLY = re.compile(r"(?<![\w.:#\[/=+-])([245][0-5][0-9])[ -]['\"]?(?=([245])\.\d{1,3}\.\d{1,3}(?![\w.]))")


def _quoted_reply(text: str) -> tuple[int, int] | None:
    """(reply code, where its enhanced code starts) of the first reply quoted after other words in
    `text` whose code and enhanced code agree in class (RFC 3463 2), or None."""
    for m in _QUOTED_REPLY.finditer(text):
        if m.start() > 0 and m.group(1)[0] == m.group(2):
            return int(m.group(1)), m.end()
    return None


def _leading_code(text: str) -> int | None:
    m = re.match(r"\s*([245][0-5][0-9])(?=[ -]|$)", text)
    return int(m.group(1)) if m else None


def _decoded_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if payload is None:
        payload = part.get_payload()
        return payload if isinstance(payload, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        # Any codec Python has: utf-7 and utf-16 can still make a lone surrogate of broken input.
        return clean_text(payload.decode(charset, errors="replace"))
    except LookupError:
        return payload.decode("latin-1", errors="replace")


def _html_to_text(html: str) -> str:
    html = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", html)
    html = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</tr>|</h\d>", "\n", html)
    text = re.sub(r"<[^>]+>", " ", html)
    import html as _html
    return _html.unescape(text)


# --- parsing -------------------------------------------------------------------

# RFC 3464 sets no limit on the recipient blocks of one report, but a reporting MTA writes one block per
# recipient of one delivery attempt, and RFC 5321 4.5.3.1.8 only asks a server to take 100 recipients
# per transaction: a real report has a few hundred at most. The blocks past this many are counted
# (BounceReport.blocks_not_read), not read: each read block costs the parser time, and a hostile report
# can carry hundreds of thousands.
MAX_STATUS_BLOCKS = 1000


class ParseDeadline(Exception):
    """parse_bounce gave up at its deadline (checked between the steps of the parse: chunks of the MIME
    parse, status blocks, recipients). `ran`: the seconds it had been parsing; 0 when the deadline had
    passed before it started (it waited for the parser)."""

    def __init__(self, ran: float):
        super().__init__(f"bounce not parsed within its deadline ({ran:.1f} s spent parsing)")
        self.ran = ran


# The deadline of the parse running in this thread (parse_bounce sets it; None: no deadline).
_clock = threading.local()


def _check_deadline() -> None:
    deadline = getattr(_clock, "deadline", None)
    if deadline is not None:
        now = time.monotonic()
        if now >= deadline:
            raise ParseDeadline(now - _clock.started)


def _message_from_bytes(raw: bytes) -> Message:
    """email.message_from_bytes(raw, policy=compat32), fed to the parser in the same 8192-character
    chunks as email.parser.Parser.parse feeds it (so the same Message), with the deadline checked
    between them: a 35 MB message takes the MIME parser tens of seconds."""
    text = raw.decode("ASCII", errors="surrogateescape")
    made: list[Message] = []

    def part(policy):
        made.append(_StatusPartAsText(policy=policy))
        return made[-1]

    parser = FeedParser(part, policy=email.policy.compat32)
    for n, at in enumerate(range(0, len(text), 8192)):
        if n % 16 == 15:
            _check_deadline()
        parser.feed(text[at:at + 8192])
    msg = parser.close()
    for n, each in enumerate(made):
        if n % 4096 == 4095:
            _check_deadline()
        each.__class__ = Message  # parsed: every part says its own content type again
    return msg


class _StatusPartAsText(Message):
    """A part while the MIME parser reads it. The parser splits a message/delivery-status body into one
    Message per field block (RFC 3464 2.1), and _status_blocks_counted reads the blocks from their
    text all the same: a part that says "text/plain" to the parser keeps its body as that text, read
    up to MAX_STATUS_BLOCKS blocks, the rest only counted. Split by the parser, a report of 100,000
    blocks (8 MB) cost 6-7 s of the 10 s PARSE_BUDGET in the parser alone, for blocks never read."""

    def get_content_type(self):
        ctype = super().get_content_type()
        return "text/plain" if ctype == "message/delivery-status" else ctype


# Python's cyclic garbage collector, paused while a bounce is parsed. A hostile report (100,000 parts or
# status blocks) has the email package build hundreds of thousands of objects, all alive until the parse
# ends, and each full (generation 2) collection they trigger walks every one of them while holding the
# GIL: 90-150 ms at a time during which the event loop, in another thread, cannot run (loop lag measured
# through the bounces_in listener). The parse's objects form no cycles (a Message holds its parts, never
# its parent), so they go by reference counting when it ends; a collection that was due runs after.
_collector_lock = threading.Lock()
_collector_pauses = 0
_collector_was_enabled = False


@contextlib.contextmanager
def _collector_paused():
    global _collector_pauses, _collector_was_enabled
    with _collector_lock:
        if _collector_pauses == 0:
            _collector_was_enabled = gc.isenabled()
            gc.disable()
        _collector_pauses += 1
    try:
        yield
    finally:
        with _collector_lock:
            _collector_pauses -= 1
            if _collector_pauses == 0 and _collector_was_enabled:
                gc.enable()


def parse_bounce(raw: bytes | str, deadline: float | None = None, budget: float | None = None) -> BounceReport:
    """Every failed recipient a bounce message reports; kind "none" for anything that is not a bounce
    or a feedback report (auto-replies, delivery-success DSNs, ordinary mail).

    `deadline` (a time.monotonic() value) and `budget` (seconds from the start of this parse): past
    the earlier of the two the parse gives up with ParseDeadline at its next check (a few ms apart)."""
    started = time.monotonic()
    if deadline is not None and started >= deadline:
        raise ParseDeadline(0.0)
    if budget is not None:
        deadline = started + budget if deadline is None else min(deadline, started + budget)
    _clock.deadline, _clock.started = deadline, started
    try:
        with _collector_paused():
            return _cleaned(_parse_bounce(raw))
    finally:
        _clock.deadline = None


def _parse_bounce(raw: bytes | str) -> BounceReport:
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    # Lines of nothing but white space before the header (a saved or pasted message) are not part of
    # it: RFC 5322 2.1 starts a message with its header fields.
    raw = re.sub(rb"\A(?:[ \t]*\r?\n)+", b"", raw)
    if not raw.strip():
        return BounceReport("none", not_a_message="empty: no message in it")
    if not _has_header_block(raw):
        if b"\x00" in raw[:4096]:
            # Binary data (an Outlook .msg file, an attachment saved alone): not a message at all, and
            # addresses read out of its bytes would be taken for failed recipients. RFC 5322 2.3 and
            # RFC 2045 2.7: no NUL in a message's text.
            return BounceReport("none", not_a_message="binary data, not a mail message (no header fields, "
                                                      "a NUL byte in its first 4096 bytes; RFC 5322 2.3)")
        # Only the human-readable text of a bounce (pasted, or saved without headers).
        text = raw.decode("utf-8", errors="replace")
        if re.search(r"^Diagnostic-Code:", text, re.M | re.I) and \
                re.search(r"^(Final|Original)-Recipient:", text, re.M | re.I):
            # With the delivery-status fields pasted after it, as text, the remote reply among them:
            # they say more than the prose. (Without a Diagnostic-Code the prose's reason is all there
            # is: "retry timeout exceeded" over "Status: 5.0.0".)
            report = _from_status_text(text, None)
            if report is not None and all(r.diagnostic_type is not None or r.code is not None
                                          for r in report.recipients):
                return _with_prose_recipients(report, text)
        return _from_text(text, msg=None, original=_original_after_marker(text))
    msg = _message_from_bytes(raw)
    if _is_bare_status_fields(msg):
        # Only the fields of a delivery-status part (RFC 3464 2.2-2.3: "Reporting-MTA: ...",
        # "Final-Recipient: ...", "Action: failed", "Status: 5.7.1", pasted or saved without the
        # report around them): the parser took them for a message header with no body.
        report = _from_status_text(raw.decode("utf-8", errors="replace"), None)
        if report is not None:
            return report
    # Every part, walked once (a hostile report has hundreds of thousands: a walk takes seconds).
    walked = [(p, p.get_content_type()) for p in msg.walk()]
    enclosed = _enclosed_parts(msg)
    _check_deadline()
    original = _original_message_headers(walked)
    # A report's own parts are those outside the message it returns (RFC 6522 3: the multipart/report's
    # second part; RFC 3464 2.1 and RFC 5965 2: the returned message is the third, message/rfc822): a
    # returned message that carried a DSN or an ARF report of its own (mail that forwarded one, a
    # bounce of a bounce) is content, not the report. Read as the report's, its recipients were failed
    # recipients of this one, even under a DSN saying "Action: delivered", and its ARF part turned a DSN
    # into a complaint about someone else, the DSN's failure lost. Parts inside a returned message
    # count only when the report has none of its own (a bounce forwarded as an attachment).
    own = [(p, ctype) for p, ctype in walked if id(p) not in enclosed]
    kinds = {ctype for _, ctype in own}
    if not kinds & {"message/feedback-report", "message/delivery-status", "message/global-delivery-status"}:
        own = walked
    feedback = [p for p, ctype in own if ctype == "message/feedback-report"]
    if feedback:
        return _from_feedback(msg, feedback, original)
    status_parts = [p for p, ctype in own if ctype in
                    ("message/delivery-status", "message/global-delivery-status")]
    lone_status = None
    if status_parts:
        report = _from_delivery_status(msg, status_parts, original)
        if report is not None:
            return report
        lone_status = _lone_addressless_status(status_parts)
    notifications = [p for p, ctype in walked if ctype == "message/disposition-notification"]
    if notifications:
        return _from_disposition_notification(msg, notifications, original)
    if fold(_header_value(msg, "X-Apple-Unsubscribe").strip()) == "true":
        # Apple Mail's unsubscribe: a message from the recipient asking to be removed (an opt-out).
        who = _bare_address(_header_value(msg, "From"))
        if who:
            return BounceReport("feedback", (FailedRecipient(recipient=who, feedback_type="opt-out"),),
                                original_headers=tuple(original or ()))
    if _is_auto_reply(msg):
        return BounceReport("none")
    text = _report_text(msg)
    if not text.strip() and isinstance(msg.get_payload(), str):
        # A multipart whose boundary never appears: its body is all text (the parser gives up on it).
        text = msg.get_payload()
    notification = _from_ses_notification(text)
    if notification is not None:
        return notification
    if re.search(r"^Feedback-Type:", text, re.M | re.I):
        # A feedback report sent as plain text (before or outside RFC 5965's MIME structure).
        fields = [kv for block in _blocks_from_text(text) for kv in block]
        complaints = _complaints(fields, original)
        if complaints and complaints[0].feedback_type:
            return BounceReport("feedback", tuple(complaints), original_sender=_complaint_sender(fields, original),
                                original_headers=tuple(original or ()))
    if re.search(r"^(Final|Original)-Recipient:", text, re.M | re.I):
        # A delivery-status block sent as plain text (old Sendmail, some gateways).
        report = _from_status_text(text, original)
        if report is not None:
            return report
    report = _from_text(text, msg=msg, original=original or _original_after_marker(text))
    if lone_status and len(report.recipients) == 1:
        # One failed recipient in the status part, without a usable address (Exim's
        # "Final-Recipient: rfc822;/mail/spool/..." for a delivery to a file), and one in the text:
        # the same one. Its Status and Action are the report's, unless the text quotes a status.
        [found] = report.recipients
        action, status = lone_status
        if found.status is None and (found.code is None or str(found.code)[0] == (status or "x")[0]):
            report = replace(report, recipients=(replace(found, status=status, action=action or found.action),))
    return report


def _enclosed_parts(msg: Message) -> set[int]:
    """The ids of the parts inside a message the report returns (message/rfc822, RFC 6532's
    message/global), at any depth below it."""
    enclosed: set[int] = set()
    stack = [(msg, False)]
    seen = 0
    while stack:
        part, inside = stack.pop()
        seen += 1
        if seen % 1000 == 0:
            _check_deadline()
        if inside:
            enclosed.add(id(part))
        ctype = part.get_content_type()
        payload = part.get_payload()
        # A status part's payload is its field blocks, not parts (the parser makes each a Message).
        if isinstance(payload, list) and ctype not in _STATUS_TYPES:
            inside = inside or ctype in ("message/rfc822", "message/global")
            stack.extend((child, inside) for child in payload if isinstance(child, Message))
    return enclosed


_STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status", "message/feedback-report"})


def _with_prose_recipients(report: BounceReport, text: str) -> BounceReport:
    """`report` (read from the delivery-status fields pasted in `text`) with the failed recipients the
    prose before the fields names and the fields do not: a paste of part of a report (review15 F3: the
    fields of one recipient under Postfix's paragraphs for two) must not hide the others. Each keeps its
    own paragraph's reason; the fields still speak for the addresses they cover."""
    first_field = _FIRST_STATUS_FIELD.search(text)
    if first_field is None or not text[:first_field.start()].strip():
        return report
    prose = text[:first_field.start()]
    covered = {fold(a) for r in report.recipients
               for a in (r.recipient, r.original_recipient, r.final_recipient, r.actual_recipient) if a}
    more = tuple(r for r in _from_text(prose, msg=None, original=None).recipients
                 if fold(r.recipient) not in covered)
    return replace(report, recipients=report.recipients + more) if more else report


# The first line of pasted delivery-status fields (RFC 3464 2.2 per-message, 2.3 per-recipient).
_FIRST_STATUS_FIELD = re.compile(r"^(?:Reporting-MTA|Received-From-MTA|Arrival-Date|X-Postfix-Queue-ID|"
                                 r"X-Postfix-Sender|Original-Envelope-Id|Final-Recipient|Original-Recipient|"
                                 r"Action|Status|Remote-MTA|Diagnostic-Code|Last-Attempt-Date)[ \t]*:", re.M | re.I)


def _lone_addressless_status(parts: list[Message]) -> tuple[str | None, str | None] | None:
    """(Action, Status) of the status parts' only recipient block when it reports a failure and has no
    usable address; None otherwise."""
    blocks = [b for part in parts for b in _per_message(_status_blocks(part))[1]]
    if len(blocks) != 1:
        return None
    [block] = blocks
    if _recipient_address(_field(block, "Final-Recipient")) or \
            _recipient_address(_field(block, "Original-Recipient"), orcpt=True):
        return None
    action = _action(block)
    sm = _STATUS.search(_field(block, "Status") or "")
    if action not in FAILED_ACTIONS or sm is None or sm.group(1) not in "45":
        return None
    return action, ".".join(sm.groups())


def _is_bare_status_fields(msg: Message) -> bool:
    """Whether the header block is a delivery-status part's fields and nothing else: a recipient field
    (Final- or Original-Recipient) with Action or Status, and none of a message's own header fields."""
    names = {fold(name) for name in msg.keys()}
    return bool(names & {"final-recipient", "original-recipient"}) and bool(names & {"action", "status"}) \
        and not names & {"from", "to", "subject", "date", "message-id", "received", "content-type", "mime-version"}


def _has_header_block(raw: bytes) -> bool:
    head = raw.lstrip(b"\r\n")[:2000].decode("latin-1")
    first = head.split("\n", 1)[0]
    # RFC 5322 2.2 allows any printable but the colon in a field name; no field's name holds an "@",
    # though: "<a@x>: host h said: 550 ..." (a report's per-recipient line pasted alone, the address
    # perhaps as a Markdown link "<[a@x](mailto:a@x)>:") is text, not a header field whose body the
    # parser would swallow.
    return bool(re.match(r"^[!-9;-?A-~]+:", first) or first.startswith("From "))


def _first_part(msg: Message, content_type: str) -> Message | None:
    for part in msg.walk():
        if part.get_content_type() == content_type:
            return part
    return None


def _is_auto_reply(msg: Message) -> bool:
    """RFC 3834 auto-replies (and the usual vacation headers) are answers, not bounces."""
    if msg.get("X-Autoreply") or msg.get("X-Autorespond") or msg.get("X-Vacation"):
        return True
    precedence = fold(_header_value(msg, "Precedence").strip())
    subject = _header_text(_header_value(msg, "Subject"))
    auto = fold(_header_value(msg, "Auto-Submitted").strip())
    if auto.startswith("auto-replied") or precedence == "auto_reply":
        return bool(_AUTO_REPLY_SUBJECT.search(subject)) or "delivery" not in fold(subject) and \
            not _looks_like_daemon(_header_value(msg, "From"))
    return bool(_AUTO_REPLY_SUBJECT.search(subject))


def _looks_like_daemon(from_header: str) -> bool:
    address = fold((_bare_address(from_header) or ""))
    local = address.split("@")[0]
    return local in _NOT_RECIPIENT_LOCAL or "mailer-daemon" in fold(from_header) or "postmaster" in local


def _status_blocks(part: Message) -> list[list[tuple[str, str]]]:
    return _status_blocks_counted(part)[0]


def _status_blocks_counted(part: Message, keep: int = MAX_STATUS_BLOCKS + 1
                           ) -> tuple[list[list[tuple[str, str]]], int]:
    """The field blocks of a message/delivery-status part, at most `keep` (by default the
    per-message block and MAX_STATUS_BLOCKS recipient blocks), and how many more it has (not read).
    The standard library splits the blocks into Message objects but drops what follows a malformed
    line into a body; the blocks are re-read here from their text, so that a reply continued without
    indentation stays in its Diagnostic-Code."""
    payload = part.get_payload()
    beyond = 0
    encoding = fold(_header_value(part, "Content-Transfer-Encoding").strip())
    if encoding in ("base64", "quoted-printable"):
        # Encoded fields: the library parsed the encoded text as blocks; decode the body first. The
        # encoded text is the blocks as written: a block's fields, then the lines the parser took for its
        # body right after them (a line that is no field ends a block's fields; only a blank line ends
        # the block). Regenerated (as_string) with a blank line between the two, a quoted-printable
        # soft line break at that place ("Final-Recipient: rfc822; bob@exa=" / "mple.org") became a
        # hard one: the address cut in two, the report read as none.
        if isinstance(payload, list):
            body = "\n\n".join(_encoded_block_source(block) for block in payload)
        else:
            body = payload if isinstance(payload, str) else ""
        body = body.replace("\r\n", "\n")
        try:
            data = base64.b64decode(body) if encoding == "base64" else quopri.decodestring(body.encode())
        except (ValueError, TypeError):
            data = body.encode()
        text = data.decode("utf-8", errors="replace")
    elif isinstance(payload, list):
        # Written back a block at a time, so only the blocks that are read.
        beyond = max(0, len(payload) - keep)
        texts = []
        for n, block in enumerate(payload[:keep]):
            if n % 50 == 49:
                _check_deadline()
            texts.append(_block_source(block))
        text = "\n\n".join(texts)
    else:
        text = _status_text(part)
    blocks, more = _blocks_from_text(text, keep)
    return blocks, beyond + more


def _status_text(part: Message) -> str:
    """The text of a status part the parser kept whole (_StatusPartAsText): its own bytes, 8-bit ones
    read as _block_source reads them (UTF-8, else one character a byte: clean_text)."""
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        return _decoded_text(part)
    return clean_text(raw.decode("ascii", errors="surrogateescape"))


def _encoded_block_source(block: Message) -> str:
    """One block of an encoded status part as it was written: its fields, then its body, with no
    line between them (_status_blocks_counted)."""
    text = "".join(f"{name}: {value}\n" for name, value in block.raw_items())
    body = block.get_payload()
    return text + body if isinstance(body, str) else text


def _block_source(block: Message) -> str:
    """One status block as text: its fields as the parser kept them (compat32 keeps each value as
    written, folds included), then what the parser took for its body. The email generator
    (block.as_string()) folds every field anew, and its folding costs time quadratic in the words of
    a value: a Diagnostic-Code of 40,000 octets of words took 1.5 s, one of 1 MB a quarter of an
    hour, in one step the parse's deadline cannot stop."""
    head = "".join(f"{name}: {value}\n" for name, value in block.raw_items())
    body = block.get_payload()
    if isinstance(body, str) and body:
        if block.get("Content-Transfer-Encoding") is None:
            # The body's own bytes: get_payload() turns 8-bit ones into U+FFFD (it decodes them as
            # ASCII). Python parses a message/global-delivery-status (RFC 6533) as one message, so
            # every block after the first is such a body: "jörg@dest.example" was "j\ufffd\ufffdrg@...",
            # read as the address "rg@dest.example".
            raw = block.get_payload(decode=True)
            if isinstance(raw, bytes):
                body = raw.decode("ascii", errors="surrogateescape")
        return clean_text(head + "\n" + body)  # 8-bit bytes: surrogateescape'd (clean_text)
    return clean_text(head)


def _blocks_from_text(text: str, most: int | None = None) -> list[list[tuple[str, str]]] | \
        tuple[list[list[tuple[str, str]]], int]:
    """The field blocks of `text`; with `most`, (at most that many of them, how many more it has): the
    blocks past `most` are only counted, never read into fields (a hostile report has 100,000)."""
    # Each field's value is kept as its pieces and joined once its block ends: appending a folded
    # line to the value so far copied the whole value each time, quadratic in its lines (a 10 MB
    # Diagnostic-Code folded into 11,000 lines: 7 s of one core, in one step the deadline cannot stop).
    blocks: list[list[tuple[str, list[str]]]] = []
    current: list[tuple[str, list[str]]] = []
    lines = text.replace("\r\n", "\n").split("\n")
    more = 0
    for n, line in enumerate(lines):
        if n % 4096 == 4095:
            _check_deadline()
        if most is not None and len(blocks) >= most and not current and _FIELD_LINE.match(line):
            more = _blocks_counted(lines, n)  # this line starts the first block past `most`
            break
        if not line.strip():
            if current:
                blocks.append(current)
                current = []
            continue
        if line[0] in " \t" and current:
            current[-1][1].append(line.strip())
            continue
        m = re.match(r"^([A-Za-z][\w-]*):\s*(.*)$", line)
        if m:
            current.append((m.group(1), [m.group(2).strip()]))
            continue
        if not current and blocks and fold(blocks[-1][-1][0]) == "diagnostic-code":
            # A reply continued after a stray blank line, without indentation: reopen its block.
            current = blocks.pop()
        if current:
            current[-1][1].append(line.strip())
    if current:
        blocks.append(current)
    joined = [[(key, " ".join(pieces)) for key, pieces in block] for block in blocks]
    return joined if most is None else (joined, more)


def _blocks_counted(lines: list[str], start: int) -> int:
    """How many blocks the `lines` from `start` on hold, as _blocks_from_text would find them: a block
    starts at a field line that follows a blank line (or a line no block took)."""
    count = 0
    open_block = False
    for n in range(start, len(lines)):
        if n % 16384 == 16383:
            _check_deadline()
        line = lines[n]
        if not line.strip():
            open_block = False
        elif not open_block and _FIELD_LINE.match(line):
            count += 1
            open_block = True
    return count


_FIELD_LINE = re.compile(r"[A-Za-z][\w-]*:")


def _field(block: list[tuple[str, str]], name: str) -> str | None:
    lname = fold(name)
    for key, value in block:
        if fold(key) == lname:
            return value
    return None


def _action(block: list[tuple[str, str]]) -> str | None:
    """The block's action-value (RFC 3464 2.3.3), lower case, without what some MTAs write after it:
    Sendmail's return receipts say "Action: relayed (to non-DSN-aware mailer)"."""
    m = re.match(r"\s*([A-Za-z-]+)", _field(block, "Action") or "")
    return fold(m.group(1)) if m else None


_READ_DIAGNOSTIC = 64 * 1024
_ENCODED_WORD = re.compile(r"=\?[^?\s]{1,64}\?[bBqQ]\?[^?\s]*\?=")


def _recipient_from_block(block: list[tuple[str, str]]) -> FailedRecipient | None:
    final = _recipient_address(_field(block, "Final-Recipient"))
    original, readings = _original_recipient(_field(block, "Original-Recipient"), final)
    if final is None and original is None:
        return None
    action = _action(block)
    status_field = _field(block, "Status")
    sm = _STATUS.search(status_field or "")
    status = ".".join(sm.groups()) if sm else None
    if action in SUCCESS_ACTIONS:
        return None
    if action is None and status is not None and status.startswith("2"):
        return None
    diag_type, diagnostic = _typed(_field(block, "Diagnostic-Code"))
    if diagnostic and "=?" in diagnostic[:_READ_DIAGNOSTIC] and _ENCODED_WORD.search(diagnostic[:_READ_DIAGNOSTIC]):
        # RFC 3464 2.3.6 wants the reply as it was (US-ASCII, or UTF-8 under RFC 6533), but some
        # reporting MTAs encode a reply in another charset as RFC 2047 encoded words: read them, or
        # neither its code nor its words are seen ("=?utf-8?q?550_5.1.1_...?=": no reply code).
        diagnostic = _header_text(diagnostic[:_READ_DIAGNOSTIC]) + diagnostic[_READ_DIAGNOSTIC:]
    # The reply is read in its first _READ_DIAGNOSTIC characters (a real one is under 1,000); the rest
    # of a longer one is carried as it is (events keep its start and say how much was cut): every
    # search below over a 10 MB one took seconds.
    beyond = ""
    if diagnostic and len(diagnostic) > _READ_DIAGNOSTIC:
        diagnostic, beyond = diagnostic[:_READ_DIAGNOSTIC], diagnostic[_READ_DIAGNOSTIC:]
    code = _leading_code(diagnostic) if diagnostic and diag_type in (None, "smtp") else None
    if diagnostic and code is None:
        # Some MTAs put Postfix-style text in front of the reply: "host x said: 550 ...".
        said = re.search(r"said:\s*([245][0-5][0-9])(?=[ -])", diagnostic)
        if said:
            code = int(said.group(1))
        else:
            quoted = _quoted_reply(diagnostic)
            if quoted:
                code = quoted[0]
    stage = stage_said(diagnostic, (final, original))
    if diagnostic:
        diagnostic = _without_in_reply_to(diagnostic)
    reported = status
    if diagnostic and (diag_type in (None, "smtp") or code is not None):
        # The remote server's own enhanced code is more precise than the reporting MTA's summary of it
        # (Status 5.0.0 or 4.4.7 over a "550 5.7.1 ..." reply): prefer it when the reply carries one.
        quoted = _quoted_reply(diagnostic)
        dm = _STATUS.search(diagnostic, quoted[1] if quoted and quoted[0] == code else 0)
        if dm and (code is None or dm.group(1) == str(code)[0]):
            status = ".".join(dm.groups())
    elif status is None and diagnostic:
        dm = _STATUS.search(diagnostic)
        status = ".".join(dm.groups()) if dm else None
    if status is not None and status.endswith(".0.0"):
        # An X.400 gateway's generic Status ("5.0.0", Diagnostic-Code "Reason 1 (Unable-To-Transfer)")
        # with the next MTA's own error in a supplementary field (Exchange, RFC 2156 gateways:
        # "X400-Supplementary-Info: MTA '...' gives error message 5.7.1 Unable to relay ..."): that
        # code says what went wrong.
        extra = _field(block, "X400-Supplementary-Info") or _field(block, "X-Supplementary-Info") or ""
        em = _STATUS.search(extra)
        if em and em.group(1) == status[0]:
            status = ".".join(em.groups())
    remote = _typed(_field(block, "Remote-MTA"))[1]
    # `recipient` is the address that failed (Final-Recipient, RFC 3464 2.3.2); the address the sender
    # gave, when the reporting MTA kept it (an alias or forward may have rewritten it), is
    # `original_recipient` (2.3.1): the intake acts on that one, the address we sent to.
    actual_type, actual = _typed(_field(block, "X-Actual-Recipient"))
    actual = _bare_address(actual) if actual_type == "rfc822" else None
    return FailedRecipient(
        recipient=final or original, status=status, code=code, action=action, actual_recipient=actual,
        diagnostic=(diagnostic or "") + beyond or None, remote_mta=remote or None, original_recipient=original,
        original_readings=readings, final_recipient=final, diagnostic_type=diag_type, reported_status=reported, stage=stage,
        final=None if action is None else action != "delayed",
        own_words=_own_category(block))


def _own_category(block: list[tuple[str, str]]) -> str | None:
    """The reporting MTA's own category of the failure, where it writes one in the recipient's block
    (PowerMTA's `X-PowerMTA-BounceCategory: bad-mailbox`), as "Field: value"."""
    value = _field(block, "X-PowerMTA-BounceCategory")
    return f"X-PowerMTA-BounceCategory: {value.strip()}" if value else None


def _per_message(blocks: list[list[tuple[str, str]]]) -> tuple[dict, list]:
    """Split the per-message fields (the first block, when it has no recipient) from the rest."""
    if blocks and _field(blocks[0], "Final-Recipient") is None and _field(blocks[0], "Original-Recipient") is None:
        return dict((fold(k), v) for k, v in blocks[0]), blocks[1:]
    return {}, blocks


def _from_delivery_status(msg: Message, parts: list[Message], original) -> BounceReport | None:
    recipients: list[FailedRecipient] = []
    per_message: dict = {}
    seen_any = failed_without_address = False
    read = not_read = 0
    for n, part in enumerate(parts):
        if n % 256 == 255:
            _check_deadline()
        # At most MAX_STATUS_BLOCKS recipient blocks in the whole report, over all its status parts: of
        # a part past them only its first block is read (the per-message block, or a recipient's that
        # is counted), the others are only counted (20,000 parts read whole for a count: 2-3 s).
        room = max(0, MAX_STATUS_BLOCKS - read)
        blocks, beyond = _status_blocks_counted(part, room + 1)
        head, blocks = _per_message(blocks)
        per_message = per_message or head
        not_read += beyond + max(0, len(blocks) - room)
        blocks = blocks[:room]
        read += len(blocks)
        for n, block in enumerate(blocks):
            if n % 50 == 49:
                _check_deadline()
            if _field(block, "Final-Recipient") or _field(block, "Original-Recipient"):
                seen_any = True
            found = _recipient_from_block(block)
            if found is None and (_action(block) or "failed") not in SUCCESS_ACTIONS and \
                    not (_recipient_address(_field(block, "Final-Recipient")) or
                         _recipient_address(_field(block, "Original-Recipient"), orcpt=True)):
                failed_without_address = True
            if found is not None:
                recipients.append(found)
    if not seen_any or (not recipients and failed_without_address):
        return None  # an empty or unreadable status part: read the text instead
    # The report's own text is short (MAX_REPORT_TEXT, as for a text bounce) and read once for all
    # the recipients.
    text = _report_text(msg)[:MAX_REPORT_TEXT]
    recipients = _filled_from_text(recipients, text)
    if recipients:
        naming = _lines_naming(text)
        recipients = [replace(f, own_words="\n".join(naming.get(fold(f.recipient), ())) or None)
                      if f.recipient and not f.own_words else f for f in recipients]
    report = _report("bounce" if recipients else "none", recipients, per_message, msg, original)
    return replace(report, blocks_not_read=not_read) if not_read else report


def _from_status_text(text: str, original) -> BounceReport | None:
    head, blocks = _per_message(_blocks_from_text(text[fold(text).find("reporting-mta"):] if
                                                  "reporting-mta" in fold(text) else text))
    not_read = max(0, len(blocks) - MAX_STATUS_BLOCKS)
    recipients = [r for r in (_recipient_from_block(b) for b in blocks[:MAX_STATUS_BLOCKS]) if r is not None]
    if not recipients:
        return None
    recipients = _filled_from_text(recipients, text)
    report = _report("bounce", recipients, head, None, original)
    return replace(report, blocks_not_read=not_read) if not_read else report


def _filled_from_text(recipients: list[FailedRecipient], text: str) -> list[FailedRecipient]:
    """A DSN without a Diagnostic-Code still quotes the remote reply in its human-readable part: each
    recipient's part of `text` (from its first mention to the next recipient's) is read once. Read
    alone, each recipient's part ran to the end of the text: recipients x text, so that a real
    1,000-recipient report used up the parse budget and was refused."""
    if not recipients:
        return recipients
    addresses = list(dict.fromkeys(r.recipient for r in recipients))
    names: dict[str, tuple[str, ...]] = {}
    for r in recipients:
        names[r.recipient] = tuple(dict.fromkeys((*names.get(r.recipient, (r.recipient,)), *r.aliases(r.recipient))))
    quoted = dict(zip(addresses, _text_failures(text, addresses, stage_said_later=True, names=names)))
    return [_fill_from_text(r, quoted[r.recipient]) for r in recipients]


def _fill_from_text(found: FailedRecipient, other: FailedRecipient) -> FailedRecipient:
    if found.diagnostic:
        if found.stage is None and other.stage is not None:
            return replace(found, stage=other.stage)
        return found
    if other.diagnostic is None:
        return found
    if found.status and other.code and str(other.code)[0] != found.status[0]:
        # A reply whose class is not the Status's is not this recipient's (RFC 3463 2: the class of
        # the enhanced code is the reply's): the text quotes another recipient's, e.g. RFC 3464's
        # example, a "550 user unknown" elsewhere and a delayed "Status: 4.0.0" here.
        return found
    status = found.status
    if other.status and (status is None or status.endswith(".0.0")) and other.status[0] == (status or "x")[0]:
        status = other.status  # the quoted reply is more precise than a summary Status such as 5.0.0
    # Only the reply's fields come from the text: every other field of the block stays (a rebuilt recipient
    # dropped Sendmail's X-Actual-Recipient, by which a reply naming an alias's target names the recipient).
    return replace(found, status=status or other.status, code=other.code, diagnostic=other.diagnostic,
                   remote_mta=found.remote_mta or other.remote_mta, stage=found.stage or other.stage)


def _report(kind: str, recipients: list[FailedRecipient], per_message: dict, msg: Message | None,
            original) -> BounceReport:
    sender = per_message.get("x-postfix-sender")
    sender = _bare_address(_typed(sender)[1]) if sender else None
    if sender is None and original:
        sender = _bare_address(dict((fold(k), v) for k, v in original).get("return-path"))
    # One record per distinct failure: Sendmail reports an aliasing loop with one identical block per
    # expansion (the same address, Status and diagnostic up to eleven times), and each record becomes a
    # `bounced` event that the funnel counts.
    return BounceReport(
        kind=kind, recipients=tuple(dict.fromkeys(recipients)),
        reporting_mta=_typed(per_message.get("reporting-mta"))[1] if per_message.get("reporting-mta") else None,
        original_sender=sender,
        original_envelope_id=per_message.get("original-envelope-id"),
        original_headers=tuple(original or ()))


# --- Amazon SES notifications ---------------------------------------------------------


def _from_ses_notification(text: str) -> BounceReport | None:
    """An Amazon SES bounce or complaint notification mailed as JSON (an SNS email subscription:
    {"Type": "Notification", "Message": "<the event as a JSON string>"}, or the event itself), or
    None when `text` is not one. SES's documented fields: `notificationType` (or `eventType`)
    Bounce | Complaint | Delivery; `bounce.bouncedRecipients[]` {emailAddress, action, status,
    diagnosticCode}, which are RFC 3464's per-recipient fields by name, and `bounce.bounceType`
    Permanent | Transient | Undetermined; `complaint.complainedRecipients[]` {emailAddress} and
    `complaintFeedbackType` (RFC 5965's feedback types); `mail` {source, headers[] {name, value}}.
    The addresses elsewhere in it (the sender, `destination`, ARNs) are not failed recipients."""
    if "notificationType" not in text and "eventType" not in text:
        return None
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start or end - start > MAX_REPORT_TEXT:
        return None
    try:
        # strict=False: a mail system may have wrapped a long line inside a JSON string.
        event = json.loads(text[start:end + 1], strict=False)
        if isinstance(event, dict) and isinstance(event.get("Message"), str):
            event = json.loads(event["Message"], strict=False)  # the SNS envelope
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    kind = event.get("notificationType") or event.get("eventType")
    mail = event.get("mail") if isinstance(event.get("mail"), dict) else {}
    original = tuple((h["name"], h["value"]) for h in mail.get("headers") or []
                     if isinstance(h, dict) and isinstance(h.get("name"), str) and isinstance(h.get("value"), str))
    sender = _bare_address(mail.get("source")) if isinstance(mail.get("source"), str) else None
    if kind == "Bounce" and isinstance(event.get("bounce"), dict):
        bounce = event["bounce"]
        # Transient: SES gave up on a soft bounce (it retries before it notifies), still not a
        # statement about the address; Permanent and Undetermined are final failures.
        default_action = "delayed" if bounce.get("bounceType") == "Transient" else "failed"
        recipients = []
        for entry in bounce.get("bouncedRecipients") or []:
            if not isinstance(entry, dict) or not isinstance(entry.get("emailAddress"), str):
                continue
            block = [("Final-Recipient", f"rfc822; {entry['emailAddress']}"),
                     ("Action", str(entry.get("action") or default_action))]
            block += [(name, str(entry[key])) for key, name in (("status", "Status"),
                                                                ("diagnosticCode", "Diagnostic-Code"))
                      if entry.get(key)]
            found = _recipient_from_block(block)
            if found is not None:
                recipients.append(found)
        return BounceReport("bounce" if recipients else "none", tuple(recipients), original_sender=sender,
                            original_headers=original)
    if kind == "Complaint" and isinstance(event.get("complaint"), dict):
        complaint = event["complaint"]
        feedback_type = complaint.get("complaintFeedbackType")
        feedback_type = fold(feedback_type.strip()) if isinstance(feedback_type, str) else None
        recipients = [FailedRecipient(recipient=address, feedback_type=feedback_type)
                      for entry in complaint.get("complainedRecipients") or [] if isinstance(entry, dict)
                      for address in [_bare_address(entry.get("emailAddress") if isinstance(
                          entry.get("emailAddress"), str) else None)] if address]
        return BounceReport("feedback" if recipients else "none", tuple(recipients), original_sender=sender,
                            original_headers=original, user_agent=complaint.get("userAgent")
                            if isinstance(complaint.get("userAgent"), str) else None)
    if kind in ("Bounce", "Complaint", "Delivery"):
        return BounceReport("none", original_headers=original)
    return None


# --- MDN (RFC 8098, formerly 3798) -------------------------------------------------------

# RFC 5429 2.1: a Sieve `reject` after the message was accepted answers with an MDN whose disposition
# is "automatic-action/MDN-sent-automatically; deleted" (Dovecot's LDA does the same for a full
# mailbox): the recipient's system refused the message. RFC 2298's "denied" said the same.
_REJECTING_DISPOSITION = re.compile(r"\s*automatic-action\s*/\s*[\w-]+\s*;\s*(deleted|denied)\b", re.I)


def _from_disposition_notification(msg: Message, parts: list[Message], original) -> BounceReport:
    """A message disposition notification: a refusal when an automatic action deleted the message
    (the failed recipient is its Final-Recipient, the reason the human-readable text); any other
    disposition (displayed, a person's deletion) is a receipt, not a bounce."""
    fields = [kv for part in parts for block in _status_blocks(part) for kv in block]
    if not _REJECTING_DISPOSITION.match(_field(fields, "Disposition") or ""):
        return BounceReport("none", original_headers=tuple(original or ()))
    original_recipient = _recipient_address(_field(fields, "Original-Recipient"))
    address = _recipient_address(_field(fields, "Final-Recipient")) or original_recipient
    if address is None:
        return BounceReport("none", original_headers=tuple(original or ()))
    reason = _reason_text(_report_text(msg), address) or None
    failed = FailedRecipient(recipient=address, diagnostic=reason, final=True,
                             original_recipient=original_recipient, final_recipient=address)
    return BounceReport("bounce", (failed,), reporting_mta=_typed(_field(fields, "Reporting-UA"))[1],
                        original_headers=tuple(original or ()))


# --- ARF (RFC 5965) --------------------------------------------------------------


def _from_feedback(msg: Message, parts: list[Message], original) -> BounceReport:
    """One complaint per reported recipient: RFC 5965 3.2 lets Original-Rcpt-To appear several times,
    and a report may carry several feedback-report parts."""
    recipients: list[FailedRecipient] = []
    first: list[tuple[str, str]] = []
    for part in parts:
        fields = [kv for block in _status_blocks(part) for kv in block]
        first = first or fields
        recipients.extend(_complaints(fields, original))
    return BounceReport(kind="feedback", recipients=tuple(recipients),
                        reporting_mta=_typed(_field(first, "Reporting-MTA"))[1],
                        original_sender=_complaint_sender(first, original),
                        original_headers=tuple(original or ()), user_agent=_field(first, "User-Agent"))


def _complaints(fields: list[tuple[str, str]], original) -> list[FailedRecipient]:
    # RFC 5965 3.1: `"Feedback-Type:" [CFWS] token [CFWS]`: the token, without a comment after it
    # ("abuse (user clicked Junk)" is an abuse report; whole, no type the complaint table knows).
    token = re.match(r"\s*(?:\([^()]*\)\s*)*([^\s();]+)", _field(fields, "Feedback-Type") or "")
    feedback_type = fold(token.group(1)) if token else None
    reporting = _typed(_field(fields, "Reporting-MTA"))[1]
    # Original-Rcpt-To (RFC 5965 3.2); Removal-Recipient in the older opt-out drafts; else the
    # original message's recipient, when its To and Cc together name one address. Feedback loops that
    # redact the recipient (Microsoft's JMRP) leave Original-Rcpt-To out: with "To: alice, Cc: bob"
    # either may have complained, and the To is not the complainer (review-12 F4).
    addresses = [a for k, v in fields if fold(k) in ("original-rcpt-to", "removal-recipient")
                 for a in [_bare_address(v)] if a]
    if not addresses and original:
        to = [a for k, v in original if fold(k) in ("to", "cc") for a in _ADDRESS.findall(v)]
        addresses = to[:1] if len({fold(a) for a in to}) == 1 else []
    seen: set[str] = set()
    out = []
    for address in addresses or [""]:
        if fold(address) in seen:
            continue
        seen.add(fold(address))
        out.append(FailedRecipient(recipient=address, feedback_type=feedback_type, remote_mta=reporting))
    return out


def _complaint_sender(fields, original) -> str | None:
    sender = _bare_address(_field(fields, "Original-Mail-From"))
    if sender is None and original:
        headers = dict((fold(k), v) for k, v in original)
        sender = _bare_address(headers.get("return-path")) or _bare_address(headers.get("from"))
    return sender


# --- the original message ------------------------------------------------------------


def _original_message_headers(walked: list[tuple[Message, str]]) -> list[tuple[str, str]] | None:
    """The headers of the returned message, from the report's parts as walked once (part, content type)."""
    for part, ctype in walked:
        if ctype in ("message/rfc822", "message/global"):
            inner = part.get_payload()
            if isinstance(inner, list) and inner:
                return [(k, _header_text(_unfold(str(v)))) for k, v in inner[0].items()]
        attached = fold(_header_value(part, "Content-Disposition").strip()).startswith("attachment")
        if ctype in ("text/rfc822-headers", "text/rfc822-header", "message/rfc822-headers",
                     "message/global-headers") or (attached and ctype == "text/plain"):
            text = _decoded_text(part)
            inner = email.message_from_string(text.lstrip(), policy=email.policy.compat32)
            items = [(k, _header_text(_unfold(str(v)))) for k, v in inner.items()]
            if items:
                return items
    return None


def _original_after_marker(text: str) -> list[tuple[str, str]] | None:
    """The headers of the original message quoted after the report text, when there are any."""
    lines = text.split("\n")
    start = _original_start(lines)
    if start is None:
        return None
    rest = lines[start:]
    # Skip the marker line(s) and blank lines up to the first header line.
    for n, line in enumerate(rest[:8]):
        if _KNOWN_HEADER.match(line.lstrip()):
            block = "\n".join(l.lstrip() if i == 0 else l for i, l in enumerate(rest[n:]))
            inner = email.message_from_string(block, policy=email.policy.compat32)
            items = [(k, _header_text(_unfold(str(v)))) for k, v in inner.items()]
            return items or None
    return None


# A mail program's forward of a report, pasted or saved as it is: its separator line first (Gmail's
# "---------- Forwarded message ---------", Thunderbird's "-------- Forwarded Message --------",
# Outlook's "-----Original Message-----"), then the header block it writes ("From: / Date: / Subject:
# / To:"). No report text comes before them, so they are not the copy of the returned message that
# follows a report (_ORIGINAL_MARKER, a known header block): the forwarded report starts after them.
_FORWARD_SEPARATOR = re.compile(r"[ \t]*-{3,}[ \t]*(?:forwarded message|original message)[ \t]*-{3,}[ \t]*", re.I)


def _forward_preamble_end(lines: list[str]) -> int:
    """Where the forwarded report starts when `lines` open with a forward's separator and header block
    (_FORWARD_SEPARATOR); 0 otherwise."""
    n = 0
    while n < len(lines) and not lines[n].strip():
        n += 1
    if n >= len(lines) or not _FORWARD_SEPARATOR.fullmatch(lines[n]):
        return 0
    n += 1
    while n < len(lines) and (_HEADER_LINE.match(lines[n]) or (lines[n][:1] in (" ", "\t") and lines[n].strip())):
        n += 1
    return n


def _original_start(lines: list[str]) -> int | None:
    for n in range(_forward_preamble_end(lines), len(lines)):
        line = lines[n]
        if _ORIGINAL_MARKER.match(line):
            return n
        if _KNOWN_HEADER.match(line) and all(
                k < len(lines) and (_HEADER_LINE.match(lines[k]) or lines[k][:1] in (" ", "\t"))
                for k in (n + 1, n + 2)) and _has_originator(lines, n):
            return n
    return None


def _has_originator(lines: list[str], start: int) -> bool:
    """A message's header has a From: (RFC 5322 3.6: the originator field is required); a block of
    header-like lines without one is a summary the report itself gives (IMail's "To: / CC: / Date:
    / Subject:" over its "undeliverable to ..." text), not the returned message's header."""
    for line in lines[start:start + 200]:
        if not line.strip():
            return False
        if fold(line[:5]) == "from:":
            return True
    return False


# --- the text of a report -----------------------------------------------------------


def _report_text(msg: Message) -> str:
    """The human-readable text of a bounce: its text parts, outside any attached original message."""
    texts: list[str] = []

    def walk(part: Message) -> None:
        ctype = part.get_content_type()
        if ctype.startswith("message/") or ctype in ("text/rfc822-headers",):
            return
        if part.is_multipart():
            payload = part.get_payload()
            if ctype == "multipart/alternative":
                plain = [p for p in payload if p.get_content_type() == "text/plain"]
                for p in plain or payload[:1]:
                    walk(p)
                return
            for p in payload:
                walk(p)
            return
        if part.get_content_maintype() != "text":
            return
        if fold(_header_value(part, "Content-Disposition").strip()).startswith("attachment"):
            return  # the returned message or its headers, attached as a file
        text = _decoded_text(part)
        if part.get_content_subtype() == "html":
            text = _html_to_text(text)
        texts.append(text)

    walk(msg)
    return _without_footers("\n".join(t.replace("\r\n", "\n").replace("\r", "\n") for t in texts))


# A gateway's footer, stamped on every message it passes, the reports it writes included: the message
# "has been scanned for viruses" or "checked" (MessageLabs' "This email has come from the internet and
# has been scanned for all viruses and potentially offensive content by ...", MailScanner's "This
# message has been scanned for viruses and / dangerous content by MailScanner, and is / believed to be
# clean.", Avast's "This email has been checked for viruses by Avast antivirus software.", Mimecast's
# "... scanned for viruses and malware ...", Symantec's "This email has been scanned by the Symantec
# Email Security.cloud service."). It says nothing of why delivery failed, but its "viruses",
# "dangerous content" or "spam" read as a refusal of the message over the report's Status 5.1.1.
_FOOTER_START = re.compile(r"[\s*_=#~-]*(this|the) (e-?mail|message)\b[^\n]{0,60}?\b(has been|have been|was|is) "
                           r"(scanned|checked|swept)\b", re.I)
# A verdict: the check found something ("scanned for viruses and found to be infected", "... Eicar FOUND",
# "... and was rejected"), or the lines tell of a failure: that is the reason, not a footer.
_FOOTER_VERDICT = re.compile(r"infect|(?<![\w-])found(?! to be clean)|detected|\bcontain(s|ed|ing)\b|reject|refus|"
                             r"block|quarantin|delet|remov|undeliver|not (been )?delivered|bounced|fail|unknown|exist|no such|"
                             r"invalid|denied|error", re.I)
_FOOTER_LINES = 4  # a footer's paragraph: the line that starts it and the lines that wrap it


def _without_footers(text: str) -> str:
    """`text` with each gateway footer (_FOOTER_START, up to _FOOTER_LINES lines to the paragraph's end)
    blanked, same length, unless it gives a verdict (_FOOTER_VERDICT)."""
    if not re.search(r"(scanned|checked|swept)\b", text, re.I):
        return text
    lines = text.split("\n")
    n = 0
    while n < len(lines):
        if not _FOOTER_START.match(lines[n]):
            n += 1
            continue
        end = n + 1
        while end < len(lines) and end - n < _FOOTER_LINES and lines[end].strip() and \
                not re.fullmatch(r"[\s*_=#~-]+", lines[end]):
            end += 1
        if not _FOOTER_VERDICT.search(" ".join(lines[n:end])):
            lines[n:end] = [" " * len(line) for line in lines[n:end]]
        n = end
    return "\n".join(lines)


def _excluded_addresses(msg: Message | None, original) -> set[str]:
    out: set[str] = set()
    if msg is not None:
        for name in ("From", "To", "Cc", "Reply-To", "Return-Path", "Sender", "Errors-To", "Message-ID"):
            for value in msg.get_all(name) or []:
                out.update(fold(a) for a in _ADDRESS.findall(str(value)))
    if original:
        for key, value in original:
            if fold(key) in ("from", "return-path", "sender", "reply-to", "message-id", "errors-to"):
                out.update(fold(a) for a in _ADDRESS.findall(value))
    return out


# A report's own text is short; what follows this much is the returned message or padding, and reading
# it would only cost time (the parse runs on every message the intake accepts).
MAX_REPORT_TEXT = 256 * 1024
MAX_TEXT_RECIPIENTS = 1000


def _unquoted(lines: list[str]) -> list[str]:
    """`lines` without one level of quoting ("> "), when every line that is not blank carries it: a
    report forwarded or pasted as a quotation (an e-mail reply's "> ", a Markdown block quote), whose
    wrapped lines would otherwise never join ("Host\n>     or domain name not found")."""
    written = [line for line in lines if line.strip()]
    if len(written) < 3 or not all(line.lstrip(" \t").startswith(">") for line in written):
        return lines
    return [re.sub(r"^[ \t]*> ?", "", line) for line in lines]


def _from_text(text: str, msg: Message | None, original) -> BounceReport:
    lines = _unquoted(text[:MAX_REPORT_TEXT].split("\n"))
    start = _original_start(lines)
    report = "\n".join(lines[:start] if start is not None else lines)
    excluded = _excluded_addresses(msg, original)
    candidates: list[str] = []
    seen: set[str] = set()
    named = False
    if msg is not None:
        # Exim and Gmail name the failed addresses in a header of their own.
        for value in msg.get_all("X-Failed-Recipients") or []:
            for address in _ADDRESS.findall(str(value)):
                if fold(address) not in seen:
                    seen.add(fold(address))
                    candidates.append(address)
                    named = True
    display_names = set() if candidates else _display_names(report)
    summarised: list[str] = []
    senders: set[str] = set()
    for m in ([] if candidates else _ADDRESS.finditer(report)):
        address = _without_glued_word(_without_emphasis(report, m))
        if _MASKED_LOCAL.fullmatch(address.split("@", 1)[0]):
            continue  # a reporter's mask ("<****@x>"), not anyone's mailbox
        low = fold(address)
        if _SENDER_AFTER.match(report, m.end()):
            senders.add(low)
            continue
        if low in seen or (low.split("@")[0] in _NOT_RECIPIENT_LOCAL and not _given_refusal(report, m.end())):
            continue
        line_start = report.rfind("\n", 0, m.start()) + 1
        line_head = fold(report[line_start:m.start()].lstrip(_MARGIN))
        if line_head.startswith(("message-id:", "in-reply-to:", "references:", "content-id:")) or \
                report[m.start() - 1:m.start()] in ("/", "="):
            continue  # a message identifier or part of a URL, not a mailbox
        if low in display_names:
            continue
        if _SENDER_BEFORE.search(report, max(0, m.start() - 24), m.start()):
            excluded.add(low)  # RFC 5321 3.3: MAIL FROM names the sender, never a recipient
            continue
        if _SALUTATION.fullmatch(line_head):
            excluded.add(low)
            continue
        if candidates and _in_remote_reply(report, line_start, line_head) and \
                _heads_part(report, line_start, [c for c in candidates if fold(c) not in excluded]):
            # Named inside the reply another recipient got ("<a@x>: host h said: 550 5.1.1 <b@y>: ...",
            # qmail's "a@x:\n... Remote host said: 554 b@y: Relay access denied"): the remote server's
            # own name for that recipient (an alias it resolved it to), not an address we sent to.
            continue
        if _FORWARD_PATH_BEFORE.search(report, max(0, m.start() - 48), m.start()):
            continue  # the address a 251/551 names as the recipient's new one (_FORWARD_WORDS)
        if _SUMMARY_LINE.match(line_head):
            # The report's summary of the returned message ("Your message / To: list@... / Subject:
            # ... / did not reach the following recipient(s): ..."): its To and Cc are the original's
            # header fields, which name a list or other recipients, not necessarily the failed one.
            if low not in (fold(a) for a in summarised):
                summarised.append(address)
            continue
        seen.add(low)
        candidates.append(address)
    if senders:
        # Named the sender by a reply anywhere in the text (_SENDER_AFTER), perhaps only at a later
        # mention (the first one a Markdown link's text): never a failed recipient.
        candidates = [a for a in candidates if fold(a) not in senders]
        summarised = [a for a in summarised if fold(a) not in senders]
    if not candidates:
        # Only the summary names an address (Yahoo's "I'm afraid I wasn't able to deliver the following
        # message. Subject: ... To: x@..."): that is the recipient.
        candidates = summarised
    if not named:
        # The bounce's own addresses (its sender and addressee, the original's sender) are not the
        # failed recipients, unless the text names no other (mail to oneself bounces too).
        others = [a for a in candidates if fold(a) not in excluded]
        candidates = others or candidates
    if not candidates and original and not _is_list_mail(original):
        # The report names no address: the original message's recipient is the one that failed.
        to = [a for k, v in original if fold(k) == "to" for a in _ADDRESS.findall(v)]
        if len(to) == 1 and fold(to[0]) not in excluded:
            candidates = to
    subject = _header_text(_header_value(msg, "Subject")) if msg is not None else ""
    candidates = candidates[:MAX_TEXT_RECIPIENTS]
    if not candidates or not (named or _FAILURE_WORDS.search(report) or _FAILURE_WORDS.search(subject)
                              or _HOST_REFUSED.search(report) or _PARAGRAPH_REFUSED.search(report)):
        return BounceReport("none", original_headers=tuple(original or ()))
    aliases = _aliases(report, candidates)
    names = {c: (c, aliases[fold(c)]) if fold(c) in aliases else (c,) for c in candidates}
    failures = _text_failures(report, candidates, names=names, drop_borrowed=True,
                              listed=frozenset(fold(c) for c in candidates) if named else frozenset())
    if aliases:
        failures = _with_original_addresses(failures, aliases)
    if failures:
        naming = _lines_naming(report)
        failures = [replace(f, own_words="\n".join(naming.get(fold(f.recipient), ())) or None)
                    if f.recipient and not f.own_words else f for f in failures]
    if _PERMANENT_WORDS.search(report):
        # The report says its failures are permanent, and nothing in it that they are not (`final`: no
        # word of a delay or a retry): RFC 3464's Action: failed, as a delivery-status part would say
        # (review22 F7: Exim's "This is a permanent error" gave `action: null`).
        failures = [replace(f, action="failed") if f.final and f.action is None else f for f in failures]
    sender = None
    if original:
        sender = _bare_address(dict((fold(k), v) for k, v in original).get("return-path"))
    return BounceReport("bounce", tuple(failures), original_sender=sender,
                        original_headers=tuple(original or ()))


def _lines_naming(report: str, most: int = 4) -> dict[str, list[str]]:
    """Per address (folded), the first few lines of a text report that name it (Gmail's "Your message
    wasn't delivered to x because the address couldn't be found"), each cut at 512 characters: the
    reporting MTA's own words about it, read only for `hard` (FailedRecipient.own_words). One pass
    over the text, whatever the number of recipients."""
    out: dict[str, list[str]] = {}
    for line in report.split("\n"):
        for m in _ADDRESS.finditer(line):
            lines = out.setdefault(fold(m.group(0)), [])
            if len(lines) < most and (not lines or lines[-1] != line[:512]):
                lines.append(line[:512])
    return out


# A remote server's refusal as a reporting MTA quotes it ("host mx.x[1.2.3.4] said: 550 ...", "host h
# refused to talk to me: 554 ..."): a delivery report even when a paste keeps none of the template's
# failure words (only "The mail system" and the recipient's paragraph). 5yz only: a 4yz there may be a
# delay warning's.
_HOST_REFUSED = re.compile(r"\bhost\s+[^\s\"]+\s+(?:said|refused\s+to\s+talk\s+to\s+me):\s*5[0-5][0-9](?:[ -]|$)",
                           re.I | re.M)


# A report's recipient paragraph pasted alone (qmail's and Yahoo's "<a@x>:" on a line of its own, the
# reply on the next: "550: [74.6.130.40] is not a fully qualified domain name"): the address and the
# 5yz refusal it got are the report, without any of the template's failure words. Only a line that is
# nothing but the bracketed address and its colon, and a reply code that starts the next line (RFC 5321
# 4.2: the code, then SP or "-"; Yahoo's old template wrote "550:").
_PARAGRAPH_REFUSED = re.compile(r"^[ \t]*<[^\s<>@]+@[^\s<>]+>:[ \t]*\n[ \t]*5[0-5][0-9](?:[ :-]|$)", re.M)


# A report's per-recipient failure line: the address, then at once the reply it got ("<root@x>: 550 5.1.1
# ...", Postfix's "<x>: host h[ip] said: 550 ...", Sendmail's "x... 550 ..."), on its line or the next.
_OWN_REFUSAL = re.compile(r">?(?:\.\.\.)?:?[ \t]*(?:\n[ \t]+)?(?:host[ \t]+\S+[ \t]+said:[ \t]*(?:\n[ \t]+)?)?"
                          r"[45][0-5][0-9](?:[ -]|$)", re.I | re.M)


def _in_remote_reply(report: str, line_start: int, line_head: str) -> bool:
    """Whether the text before an address on its line (`line_head`, lowered, without its margin) is
    the start of a remote server's quoted reply: "... said: 550 ...", or a reply code at the start of
    a line that continues a line ending in "said:"."""
    if _SAID_REPLY.search(line_head):
        return True
    if re.match(r"[45][0-5][0-9][ -]", line_head) and line_start >= 2:
        previous = report[report.rfind("\n", 0, line_start - 1) + 1:line_start - 1]
        return fold(previous.rstrip()).endswith("said:")
    return False


def _heads_part(report: str, line_start: int, recipients: list[str]) -> bool:
    """Whether one of `recipients` opens its per-recipient paragraph ("<a@x>: host ...", qmail's
    "<a@x>:") on the line at `line_start` or on one of the three lines before it."""
    begin = line_start
    for _ in range(3):
        if begin < 2:
            break
        begin = report.rfind("\n", 0, begin - 1) + 1
    end = report.find("\n", line_start)
    region = report[begin:end if end >= 0 else len(report)]
    heads = {fold(m.group(1)) for m in _PART_HEAD.finditer(region)}
    return bool(heads) and any(fold(r) in heads for r in recipients)


def _own_failure_line(report: str, pos: int) -> bool:
    """Whether the address at `pos` opens its line as Postfix's per-recipient paragraph does (itself, or
    the address its "(expanded from <a@x>)" note gives) and the line goes on, after the colon, with
    words of its own (no reply code)."""
    line_start = report.rfind("\n", 0, pos) + 1
    end = report.find("\n", pos)
    m = _PART_HEAD.match(report, line_start, end if end >= 0 else len(report))
    if m is None or not m.start(1) <= pos < m.end():
        return False
    rest = report[m.end():end if end >= 0 else len(report)].strip()
    return bool(re.match(r"[A-Za-z]", rest)) and _QUOTES_A_HOST.match(rest) is None


# "Your message to bob@x couldn't be delivered", Exchange's German "Ihre Nachricht an bob@x konnte nicht
# zugestellt werden": the words right after the address say that it is the one not delivered to.
_UNDELIVERED_AFTER = re.compile(
    r"[*_>)\]'\"]*[ \t]+(?:(?:could|can)[ \t]*not|couldn['\u2019]t|cannot|can['\u2019]t|was[ \t]+not|"
    r"wasn['\u2019]t|konnte[ \t]+nicht|kann[ \t]+nicht)[ \t]+(?:be[ \t]+)?(?:zugestellt|delivered)\b", re.I)
# ... unless the line calls it the message's sender ("Your message from alice@x could not be delivered").
_FROM_BEFORE = re.compile(r"\b(?:from|von|de|sender|absender|exp\u00e9diteur)\b", re.I)


def _said_undelivered(report: str, pos: int, address: str) -> bool:
    """Whether the address written at `pos` is followed on its line by words saying the message could
    not be delivered to it (_UNDELIVERED_AFTER), a line that does not call it the sender: its own
    failure in words, though the report's reply codes are other addresses' (two reports pasted
    together; world4's jumpnbump-3)."""
    line_start = report.rfind("\n", 0, pos) + 1
    if _FROM_BEFORE.search(report, line_start, pos):
        return False
    return _UNDELIVERED_AFTER.match(report, pos + len(address)) is not None


# Postfix's words that introduce a remote server's reply ("host mx.x[192.0.2.1] said: ...", "host
# mx.x[192.0.2.1] refused to talk to me: ...", or that name wrapping before "said:"): not its own
# failure. Its own texts that start with "Host" are ("Host or domain name not found. Name service error
# for name=x type=A: Host not found", "Host found but no data record of requested type"; review15 F1):
# a server's name has a dot or an address in brackets, those words have neither.
_QUOTES_A_HOST = re.compile(r"host\s+\S*[.\[]\S*(?:\s+(?:said|refused to talk to me)\b|\s*$)", re.I)


# A per-recipient paragraph's first line, at the margin (Postfix and qmail do not indent it; the lines
# of a reply they quote are): "<a@x>:", "a@x:", "<a@x> (expanded from <b@y>):".
_PART_HEAD = re.compile(r"^(?:> ?)*<?(" + _ADDRESS_BODY + r")>?(?:[ \t]*\(expanded from[^)\n]*\))?:", re.M)


# Postfix's "host h[ip] said: 550 ...", qmail's "Remote host said: 554 ...".
_SAID_REPLY = re.compile(r"\bsaid:[ \t]*[45][0-5][0-9][ -]", re.I)


def _given_refusal(report: str, end: int) -> bool:
    """The address that ends at `end` is followed at once by its own SMTP refusal: a failed recipient,
    even when its local part is a role's (root, postmaster, noreply: mail to them bounces too), which
    elsewhere in a report is the reporting system's own address and not a recipient."""
    if _OWN_REFUSAL.match(report, end) is not None:
        return True
    # Postfix's per-recipient line of its own failure, which quotes no reply ("<root@h.example>
    # (expanded from <root>): Host or domain name not found. Name service error for name=h.example
    # type=A: Host not found"): the address in angle brackets opens its line at the margin (not a line
    # of a wrapped reply: "    <noreply@x>: Sender address rejected") and a colon follows it.
    line_start = report.rfind("\n", 0, end) + 1
    head = report[line_start:end]
    return report[end:end + 1] == ">" and re.fullmatch(r"(?:> ?)*<[^<>\s]+", head) is not None and \
        _POSTFIX_OWN_FAILURE.match(report, end + 1) is not None


# After "<address>" at the start of Postfix's line: an alias note, then the colon and its reason.
_POSTFIX_OWN_FAILURE = re.compile(r"(?:[ \t]*\(expanded from <[^<>\n]*>\))?:[ \t]")


def _with_original_addresses(failures: list[FailedRecipient], aliases: dict[str, str]) -> list[FailedRecipient]:
    """One line per failed recipient: the one an alias made, with the address the sender used as its
    original recipient. The reply or status read from the text after the sender's address (where a
    Sendmail report puts the transcript) is that recipient's, when its own part of the text has none."""
    by_address = {fold(f.recipient): f for f in failures}
    merged = {fold(a) for a in aliases.values() if fold(a) in by_address}
    # How many failed recipients each address the sender used was expanded to: with several (a list,
    # Exim's "(generated from team@x)" under each member), the text after that address is one
    # member's part, never another's (review15 F4: a member without a reply of its own got the words
    # and stage of the entry before it).
    members: dict[str, int] = {}
    for original in aliases.values():
        members[fold(original)] = members.get(fold(original), 0) + 1
    out = []
    for failed in failures:
        low = fold(failed.recipient)
        if low in merged and low not in aliases:
            continue
        original = aliases.get(low)
        if original is not None:
            other = by_address.get(fold(original))
            if members[fold(original)] > 1:
                other = None
            if other is not None and failed.code is None and failed.status is None and other.diagnostic:
                # Postfix's own failure, which quotes no reply: "<b@h.x> (expanded from <a@x>): Host or
                # domain name not found ...". The words are after the note, in the sender's address's
                # part of the text; the alias's own part is only "b@h.x> (expanded from <".
                failed = replace(failed, diagnostic=other.diagnostic, stage=failed.stage or other.stage,
                                 remote_mta=failed.remote_mta or other.remote_mta)
            failed = replace(failed, original_recipient=original, original_readings=(),
                             status=failed.status or (other.status if other else None),
                             code=failed.code or (other.code if other else None))
        out.append(failed)
    return out


def _display_names(report: str) -> set[str]:
    """Addresses written as the display name of another address (RFC 5322 3.4 name-addr, "a@x <b@y>"):
    not a mailbox anywhere in the report (Exim: "a@x <b@y>: malformed address: <b@y> may not follow
    a@x"). "a@x <a@x>" names one mailbox."""
    out = set()
    for m in _ADDRESS.finditer(report):
        if report[m.start() - 1:m.start()] == "<":
            continue
        bracketed = _DISPLAY_NAME_OF.match(report, m.end())
        if bracketed and fold(bracketed.group(1)) != fold(m.group(0)):
            out.add(fold(m.group(0)))
    return out


# What may stand before a line's text: quoting, indentation, and the no-break spaces of an HTML report.
_MARGIN = "> \t\u00a0"
# "... not accepting mail from X", a transcript's "MAIL From:<X>": X is the envelope sender.
_SENDER_BEFORE = re.compile(r"\bmail\s+from:?\s*<?\s*$", re.I)
# "550 ... <x> sender rejected", Postfix's "<x>: Sender address rejected: ...", "x... Sender ok": the
# reply calls X the sender (a refusal at MAIL FROM, or of the sender after DATA), never a recipient,
# even when the report names no other address (a paste that lost the recipient's line).
_SENDER_AFTER = re.compile(r"[ \t>)\]:.]{0,8}sender\b(?!['\u2019]s)", re.I)
# RFC 5321 3.4's forward-path in a 251/551 reply ("251 User not local; will forward to <x>", "551 User
# not local; please try <x>", Status 5.1.6 "mailbox has moved", RFC 3463 3.2) and reports' wordings
# of it ("the new address is x"): x is the address the recipient has moved to, a good one, never a
# failed recipient (review-12 F9).
_FORWARD_WORDS = r"(?:please\s+try|will\s+forward\s+to|(?:the\s+)?new\s+(?:e-?mail\s+)?address\s+is|has\s+moved\s+to)"
_FORWARD_PATH_BEFORE = re.compile(_FORWARD_WORDS + r"\s*:?\s*<?\s*$", re.I)
_FORWARD_PATH = re.compile(_FORWARD_WORDS + r"\s*:?\s*<?" + _ADDRESS_BODY, re.I)
# The report's greeting to its own addressee ("Sorry x@y. Your mail to the following recipients could
# not be delivered", AOL): x is the sender of the returned message.
_SALUTATION = re.compile(r"(sorry|hello|hi|dear),?[ \t]+<?", re.I)
# "b@x (ultimately generated from a@y)" (Exim), "b@x (expanded from: <a@y>)" (Sendmail), "<b@x>
# (expanded from <a@y>)" (Postfix): a@y is the address the sender used, which an alias or forward
# turned into b@x; a@y is that recipient's original address (RFC 3464 2.3.1), not another failure.
# The note may follow on the address's line or on one of the next three indented lines that do not
# start with another address (Sendmail puts "(reason: ...)" between).
_ALIAS_NOTE = re.compile(r">?[^\n]{0,200}?(?:\n[ \t]+(?![ \t]|[<\w.+-]+@)[^\n]{0,200}?){0,3}?"
                         r"\((?:ultimately\s+)?(?:generated|expanded)\s+from:?\s*<?(" + _ADDRESS_BODY + ")", re.I)


def _aliases(report: str, candidates: list[str]) -> dict[str, str]:
    """Failed address (lower case) -> the address the sender used, where the report notes one."""
    out: dict[str, str] = {}
    lowered = fold(report)
    for address in candidates:
        pos = lowered.find(fold(address))
        if pos < 0:
            continue
        m = _ALIAS_NOTE.match(report, pos + len(address))
        if m and fold(m.group(1)) != fold(address):
            out[fold(address)] = _mailbox_in_text(m.group(1))
    return out


def _mailbox_in_text(found: str) -> str:
    """An address as the address pattern found it in a text, without what only looks like part of its
    local part: the quote it was written in ('x@example.org', CommuniGate, Demon) and Exchange's
    X.400 form "dda:SMTP=x@example.org" (RFC 2156's mapping keeps the RFC 822 address after "SMTP=")."""
    found = found.lstrip("'")
    if fold(found[:5]) == "smtp=":
        found = found[5:]
    return found


_EMPHASIS_OPEN = re.compile(r"[*_]{1,3}")


def _without_emphasis(report: str, m: re.Match) -> str:
    """The address `m` found in `report` (_mailbox_in_text), without the Markdown emphasis a paste put
    around it ("**bob@x**", "_bob@x_"): "*" and "_" are atext (RFC 5322 3.2.3), so the marks before it
    were read as its local part, and a made-up "**bob@x" was printed as the failed recipient. Only when
    the same marks close it right after its domain (where they cannot belong to the address)."""
    address = _mailbox_in_text(m.group(0))
    mark = _EMPHASIS_OPEN.match(address)
    if mark and "@" in address[mark.end():] and report.startswith(mark.group(0), m.end()) and \
            address[mark.end():mark.end() + 1] not in ("*", "_", "."):
        return address[mark.end():]
    return address


# A local part of nothing but asterisks: the mask a reporter put over the address ("<****@inyo.me>").
# "*" is atext (RFC 5322 3.2.3), so it reads as an address, but it names no one: printed as failed, it
# is a made-up address (a spurious line), never the one that failed.
_MASKED_LOCAL = re.compile(r"\*+")
# Gmail's "Your message wasn't delivered to x@y because ..." as a web mail's table shows it, pasted: the
# space after the address is lost ("inbox@bitcoindev.networkbecause", "ofcio@omb.eop.govbecause").
# No top-level domain ends in "because" (the root zone's names), so the glued word is the template's.
_GLUED_BECAUSE = re.compile(r"\.[a-z]{2,}(because)", re.I)


def _without_glued_word(address: str) -> str:
    """`address` without the template's "because" run into its top-level domain (_GLUED_BECAUSE)."""
    m = _GLUED_BECAUSE.search(address)
    if m is not None and m.end() == len(address) and "." not in address[m.start() + 1:]:
        return address[:m.start(1)]
    return address


def _is_list_mail(original) -> bool:
    """The returned message went through a mailing list (RFC 2369 / RFC 2919 fields): its To names
    the list, not the member whose mailbox failed."""
    return any(fold(k) in ("list-id", "list-post", "list-unsubscribe") for k, _ in original)


def _without_summary(text: str) -> str:
    """`text` with the report's summary lines of the returned message ("Subject: ... Mailman 2.0.12",
    "Sent: ...") blanked, same length, so that a number in them is not read as a reply or status."""
    return "\n".join(" " * len(line) if _SUMMARY_LINE.match(line.lstrip(_MARGIN)) else line
                     for line in text.split("\n"))


def _text_failures(report: str, candidates: list[str], stage_said_later: bool = False,
                   names: dict[str, tuple[str, ...]] | None = None,
                   drop_borrowed: bool = False, listed: frozenset[str] = frozenset()) -> list[FailedRecipient]:
    """For each address, the SMTP reply in its part of the text (from its first mention to the first
    mention of the next address), skipping one that is another address's (_own_reply_at); when its
    part quotes none, the first reply of the whole text, only if the report is about that one address
    (review-12 F1). With
    `stage_said_later`, an address whose part does not say the stage takes the first one said after
    it: Sendmail lists every recipient, then one transcript (">>> DATA") for all of them. `names`:
    address -> the names it is known by (itself and its aliases), for stage_said. With
    `drop_borrowed`, an address whose part quotes no reply, while the whole text's first reply names
    another of the addresses and not it, is left out: that reply is the other address's refusal, and
    this one is only mentioned (a forwarded bounce's "An: sender@x" above Postfix's "<bob@x>: ... 550
    5.1.1 <bob@x>: ... User unknown" listed the sender). Never left out: an address in `listed` (lower
    case: the reporting MTA's own list of failed addresses, Exim's X-Failed-Recipients), and one that
    heads an entry of the report's list of failures, on a line of its own with its reason under it
    (Exim's "  bob@x\n    Unrouteable address"): that is its own failure in its own words, not a
    mention (review15 F4: written before an address with a reply, it was dropped, a failure missed)."""
    lowered = fold(report)
    positions = []
    # Sendmail's per-recipient line puts a reply code before the address ("554 <a@x>... Service
    # unavailable"): the line is this address's part of the text, not the end of the one before it.
    line_starts: dict[int, int] = {}
    for n, address in enumerate(candidates):
        pos = lowered.find(fold(address))
        if pos >= 0:
            line_start = lowered.rfind("\n", 0, pos) + 1
            if _CODE_BEFORE_ADDRESS.fullmatch(report, line_start, pos):
                line_starts[n] = line_start
        positions.append(pos if pos >= 0 else len(report))
    ends = {i: line_starts.get(i, pos) for i, pos in enumerate(positions)}
    order = sorted(range(len(candidates)), key=lambda i: positions[i])
    replies = _without_summary(report)
    # What the whole text says is worked out once: per address it would make the work quadratic.
    # It stands for an address whose part quotes no reply only when the report is about that one
    # address: with several, the first reply of the text is another address's as often as not
    # (review-12 F1: Exim's "bob@other.example / Unrouteable address" under carol's "550 5.1.1
    # <carol@...>: Recipient address rejected: User unknown" took hers and was listed at once).
    first_reply = _find_reply(replies)
    whole = first_reply if len(candidates) == 1 else (None, None, None)
    # Every name of every address of the report (lower case), to tell a reply that names another
    # failed address of the same report from one that names its own (_anothers_reply).
    all_names = {fold(n) for c in candidates for n in ((names or {}).get(c) or (c,))} \
        if len(candidates) > 1 else set()
    # Where each address is written, in order (one pass over the text): an address's own part of
    # the text ends where another address of the report is written, and an address written again
    # later has its part there too (Exchange lists the recipients, then "Diagnostic information for
    # administrators" with each one's reply under it again; review-12 F1).
    index_of = {fold(c): n for n, c in enumerate(candidates)} if len(candidates) > 1 else {}
    mentions = [(m.start(), index_of[low]) for m in _ADDRESS.finditer(report)
                if (low := fold(_mailbox_in_text(m.group(0)))) in index_of] if index_of else []
    mention_at = [pos for pos, _ in mentions]
    whole_remote = _REMOTE_HOST.search(report)
    # The whole text's own transcript and stated stage, read once; a RCPT in it that names another
    # address gives this recipient no stage (_reading_fits), and a quoted transcript none at all.
    whole_reading = _transcript_reading(report, _OWN_TRANSCRIPT)
    whole_rcpt_stages = _rcpt_stages(report)
    whole_words = _stage_in_words(report) if whole_reading is None or whole_reading[0] == "rcpt" else None
    final = not _TEMPORARY_WORDS.search(report)
    # The addresses the whole text's first reply names (by any of their names), read once.
    named_by_whole = _named_in(first_reply[2], candidates, names) if drop_borrowed and first_reply[2] else set()
    out = []
    stage_after = None
    for rank, i in reversed(list(enumerate(order))):
        if rank % 50 == 49:
            _check_deadline()
        start = positions[i]
        end = ends[order[rank + 1]] if rank + 1 < len(order) else len(report)
        segment = report[start:end]
        known_as = (names or {}).get(candidates[i]) or (candidates[i],)
        lowered_names = tuple(fold(n) for n in known_as)
        others = all_names.difference(lowered_names)
        *found, begin = _own_reply_at(replies[start:_next_other(mentions, mention_at, i, start, end)],
                                      lowered_names, others)
        if i in line_starts and _find_reply(segment.split("\n", 1)[0])[0] is None:
            # "554 <a@x>... Service unavailable": the reply is the line the address is on. When the
            # line quotes a reply after the address ("554 <a@x>... 550 Host unknown"), that one.
            start = line_starts[i]
            segment = report[start:end]
            *found, begin = _own_reply_at(replies[start:_next_other(mentions, mention_at, i, start, end)],
                                          lowered_names, others)
        if begin is None and mentions:
            # None in its first part: its part where the text writes it again, if any.
            for again in _mentions_after(mentions, mention_at, i, start):
                stop = _next_other(mentions, mention_at, i, again, len(report))
                code_, status_, diagnostic_, at_ = _own_reply_at(replies[again:stop], lowered_names, others)
                if at_ is not None:
                    found, begin = [code_, status_, diagnostic_], None
                    break
        if begin is not None:
            agent = _delivery_agent_line(report, start + begin, candidates[i])
            if agent:
                found[2] = f"{agent} {found[2]}"
        found = tuple(found)
        if found[0] is None and found[1] is None:
            if drop_borrowed and (_own_failure_line(report, start) or _said_undelivered(report, start, candidates[i])):
                # Postfix's own failure of this address, in words on its line ("<b@x>: Host or domain
                # name not found ...", "<b@x>: mail for x loops back to myself"): that is its reason,
                # not the reply another address got.
                found = (None, None, None)
            else:
                found = whole
                if drop_borrowed and named_by_whole and fold(candidates[i]) not in named_by_whole and \
                        fold(candidates[i]) not in listed and not _heads_entry(report, start, segment, others):
                    continue
        code, status, diagnostic = found
        if diagnostic is None:
            # No SMTP reply quoted: the words that follow the address are all the reason there is
            # (Exchange's "The recipient name is not recognized", Google Groups' explanations), up
            # to the first line that names another address of the report (Sendmail's transcript
            # after the last recipient of its list is the others' dialogue, review-12 F1).
            diagnostic = _reason_text(_own_part(segment, others) if len(candidates) > 1 else report,
                                      candidates[i]) or None
        remote = _REMOTE_HOST.search(segment)
        remote_mta = None
        if remote is None:
            # Exim's "host NAME [ip]" on a line of its own (review22 F7): only the address's own part of
            # the text, and only one host named there, or with one address the whole text naming one.
            remote_mta = _one_host_line(_own_part(segment, others) if len(candidates) > 1 else segment)
            if remote_mta is None:
                remote = whole_remote
                if remote is None and len(candidates) == 1:
                    remote_mta = _one_host_line(report)
        if remote:
            remote_mta = re.sub(r"\s+", "", (remote.group(1) or remote.group(2) or "")).rstrip(".") or None
        stage = stage_said(segment, known_as)
        if stage is None and begin is not None and _REASON_OPENS.search(segment, max(0, begin - 24), begin):
            stage = _stage_of_own_reply(report, diagnostic, lowered_names)
        line_start = report.rfind("\n", 0, start) + 1
        if stage is None and _QUOTED_TRANSCRIPT_COMMAND.match(report, line_start):
            # The address's first mention is the transcript's own command (Sendmail's ">>> RCPT
            # To:<a@x>", InterScan's "Sent <<< RCPT TO:<a@x>"): the command is part of its text.
            stage = stage_said(report[line_start:end], known_as)
        if stage_said_later and start < len(report):
            stage_after = stage or stage_after
            # The report's transcript matches this recipient's RCPT with its reply: that is his
            # stage, not the one said for the next recipient (review-3 F5: bob's RCPT got 250, the
            # 550 after the final dot is his, carol's RCPT refusal is hers).
            stage = stage or _rcpt_stage_of(whole_rcpt_stages, lowered_names)[1] or stage_after
        if not stage and found is whole:
            # With several addresses, the text's stage in words ("after RCPT TO:<carol@x>") and a
            # transcript reading that does not name this one are another address's (review-12 F1).
            alone = len(candidates) == 1
            stage = _rcpt_stage_of(whole_rcpt_stages, lowered_names)[1] or \
                _reading_fits(whole_reading, lowered_names, must_name=not alone) or (whole_words if alone else None)
        out.append(FailedRecipient(recipient=candidates[i], status=status, code=code,
                                   diagnostic=diagnostic, remote_mta=remote_mta,
                                   stage=stage or None, final=final))
    rank_of = {address: n for n, address in enumerate(candidates)}
    out.sort(key=lambda r: rank_of[r.recipient])
    return out


def _one_host_line(text: str) -> str | None:
    """The host of the text's "host NAME [ip]" lines (Exim), as "NAME[ip]" like Postfix's, when they
    name one host; None when none, or several (which one refused is not said)."""
    hosts: dict[str, str] = {}
    for m in _HOST_LINE.finditer(text):
        name = f"{m.group(1).rstrip('.')}{m.group(2)}"
        hosts.setdefault(fold(name), name)
    return next(iter(hosts.values())) if len(hosts) == 1 else None


# A line that is only an address (a list entry: Exim's "  bob@x", "bob@x:", "<bob@x>").
_ENTRY_LINE = re.compile(r"[ \t>]*<?[^\s<>@]+@[^\s<>]+?>?:?[ \t]*")


def _heads_entry(report: str, start: int, segment: str, others: set[str]) -> bool:
    """Whether the address written at `start` heads an entry of the report's list of failures: its
    line holds nothing else, and the lines under it, before the next address of the report, give a
    reason (Exim's "  bob@x\n    Unrouteable address")."""
    line_start = report.rfind("\n", 0, start) + 1
    line_end = report.find("\n", start)
    line_end = len(report) if line_end < 0 else line_end
    if not _ENTRY_LINE.fullmatch(report, line_start, line_end):
        return False
    own = _own_part(segment, others)
    rest = own[own.find("\n") + 1:] if "\n" in own else ""
    first = next((line for line in rest.split("\n") if line.strip()), "")
    # The reason is indented under the address (Exim's four spaces), not a paragraph of its own.
    return bool(first) and first[:1] in " \t" and len(first) - len(first.lstrip(" \t")) > \
        len(report[line_start:start]) - len(report[line_start:start].lstrip(" \t"))


def _next_other(mentions: list[tuple[int, int]], mention_at: list[int], i: int, start: int, end: int) -> int:
    """Where, after `start` and before `end`, the text first writes another address of the report
    than the `i`th (`end` when nowhere)."""
    n = bisect.bisect_right(mention_at, start)
    for pos, j in mentions[n:n + 64]:
        if pos >= end:
            break
        if j != i:
            return pos
    return end


def _mentions_after(mentions: list[tuple[int, int]], mention_at: list[int], i: int, start: int,
                    most: int = 3) -> list[int]:
    """Where the text writes the `i`th address again after `start` (at most `most` places), each
    after another address was written in between."""
    out: list[int] = []
    other_seen = False
    n = bisect.bisect_right(mention_at, start)
    for pos, j in mentions[n:n + 2048]:  # bounded: a report of thousands of addresses stays linear
        if j != i:
            other_seen = True
        elif other_seen:
            out.append(pos)
            other_seen = False
            if len(out) >= most:
                break
    return out


def _named_in(reply: str, candidates: list[str], names: dict[str, tuple[str, ...]] | None) -> set[str]:
    """The `candidates` (lowered) that `reply` names by any name they are known by: the addresses
    in it, looked up, not each candidate searched for (a report of a thousand recipients)."""
    mentioned = {fold(a) for a in _ADDRESS.findall(reply)}
    return {fold(c) for c in candidates
            if any(fold(n) in mentioned for n in ((names or {}).get(c) or (c,)))}


# An address the text writes (its domain's trailing dot or punctuation left out).
def _addresses_written(text: str) -> list[str]:
    return [fold(_mailbox_in_text(m.group(0))) for m in _ADDRESS.finditer(text)]


# A transcript's RCPT command line (">>> RCPT To:<carol@x>", "RCPT TO:<carol@x>"): the reply on the next line
# answers it (RFC 5321 4.1.1.3).
_RCPT_LINE = re.compile(r"[ \t>]*(?:sent\s*<<<\s*)?rcpt\s+to:\s*<?([^<>\s]+?)>?\s*$", re.I)


def _anothers_reply(text: str, begin: int, diagnostic: str | None, own: tuple[str, ...], others: set[str]) -> bool:
    """Whether the reply that starts at `begin` of `text` is another failed address's of the same
    report: it names one of `others` and none of `own` (the address's own names, lower case), or it
    answers a RCPT command, on the line before it, that names another address. An address after a
    251/551 forward-path wording ("please try <x>", RFC 5321 3.4) is not whose reply it is."""
    if not others:
        return False
    named = _addresses_written(_FORWARD_PATH.sub(" ", diagnostic or ""))
    if any(a in own for a in named):
        return False
    if any(a in others for a in named):
        return True
    line_start = text.rfind("\n", 0, begin) + 1
    previous = text[text.rfind("\n", 0, max(0, line_start - 1)) + 1:max(0, line_start - 1)] if line_start else ""
    command = _RCPT_LINE.match(previous)
    if command:
        rcpt = fold(_mailbox_in_text(command.group(1).strip("<>")))
        return rcpt in others and rcpt not in own
    return False


def _own_reply_at(segment: str, own: tuple[str, ...], others: set[str], tries: int = 8
                  ) -> tuple[int | None, str | None, str | None, int | None]:
    """_find_reply_at, skipping a reply that is another failed address's (_anothers_reply): a
    recipient's part of a report may run on into the transcript of the others' dialogue. At most
    `tries` replies are looked at (linear in the segment's length)."""
    at = 0
    for _ in range(tries):
        code, status, diagnostic, begin = _find_reply_at(segment[at:])
        if begin is None:
            break
        if not _anothers_reply(segment, at + begin, diagnostic, own, others):
            return code, status, diagnostic, at + begin
        next_line = segment.find("\n", at + begin)
        if next_line < 0:
            break
        at = next_line + 1
    return None, None, None, None


def _own_part(segment: str, others: set[str]) -> str:
    """`segment` up to the first line that names another failed address of the report."""
    if not others:
        return segment
    for m in _ADDRESS.finditer(segment):
        if fold(_mailbox_in_text(m.group(0))) in others:
            return segment[:segment.rfind("\n", 0, m.start()) + 1]
    return segment


# A local delivery agent's own line in a Sendmail transcript ("mail.local: unknown user: bob").
_AGENT_LINE = re.compile(r"[ \t]*[A-Za-z][\w.-]*: [^\n]+")


def _delivery_agent_line(report: str, reply_at: int, address: str) -> str | None:
    """The line a local delivery agent wrote just before Sendmail's "554 <bob@x>... Service
    unavailable" about the same user ("mail.local: unknown user: bob"): Sendmail's line only says
    how the agent exited (sysexits), the agent's line says why. None unless the reply at `reply_at`
    is Sendmail's line about `address` and the line before it names the address's local part."""
    line_start = report.rfind("\n", 0, reply_at) + 1
    if line_start < 2 or report[line_start:reply_at].strip(" \t<"):
        return None  # the reply does not start its line
    sendmails = _CODE_BEFORE_ADDRESS.match(report, line_start)
    if sendmails is None or fold(report[sendmails.end():sendmails.end() + len(address)]) != fold(address):
        return None  # not Sendmail's line about this address
    previous_start = report.rfind("\n", 0, line_start - 1) + 1
    line = report[previous_start:line_start - 1]
    if not _AGENT_LINE.fullmatch(line) or _REPLY_CODE.match(line.strip()):
        return None
    local = re.escape(address.split("@", 1)[0])
    if not re.search(rf"(?<![\w.+-]){local}(?![\w+@-])", line, re.I):
        return None
    return line.strip()


# The summary of the returned message some reports repeat ("To: ...", "Subject: ...", "Sent: ..."),
# and the header block a mail program writes above a bounce it forwards, in the languages of the usual
# clients (Thunderbird's German "-------- Original-Nachricht -------- / Betreff: / Datum: / Von: / An:",
# Outlook's French "De : / Envoyé : / À : / Objet :", Spanish "De: / Enviado: / Para: / Asunto:", Dutch
# "Van: / Verzonden: / Aan: / Onderwerp:", Italian "Da: / Inviato: / Oggetto:"): its To ("An:") is
# the forwarded bounce's own addressee, the sender of the returned message, never a failed recipient.
_SUMMARY_LINE = re.compile(r"^(to|cc|bcc|from|subject|sent|date|message-id|received|"
                           r"an|von|betreff|datum|kopie|gesendet|"
                           r"de|\u00e0|objet|envoy\u00e9|"
                           r"para|asunto|fecha|enviado|"
                           r"aan|van|onderwerp|verzonden|"
                           r"da|oggetto|inviato)[ \t\u00a0]?:(\s|$)", re.I)


# A line that is only an alias note (Exim's "(generated from team@x)" under a list member): where the
# address came from, not why it failed.
_ALIAS_NOTE_LINE = re.compile(r"\((?:ultimately\s+)?(?:generated|expanded)\s+from:?\s*<?[^\s<>()]+>?\)", re.I)


def _reason_text(text: str, address: str) -> str:
    """The reason a report gives when it quotes no SMTP reply ("The recipient name is not recognized",
    "User not listed in public Name & Address Book", "No valid recipients"): its text without the
    blank lines, the lines that are only the address and the summary lines ("Subject: ...",
    "Sent: ..."), on one line."""
    lines = []
    for line in text.split("\n"):
        line = line.strip(" \t")
        if not line or fold(line.strip("<>:;,")) == fold(address) or _SUMMARY_LINE.match(line) or \
                re.fullmatch(r"[-=_*\s]+", line) or _ALIAS_NOTE_LINE.fullmatch(line) or \
                _FORWARD_SEPARATOR.fullmatch(line):
            continue
        lines.append(line)
    return " ".join(lines)[:500]


def _find_reply(segment: str) -> tuple[int | None, str | None, str | None]:
    """(reply code, enhanced status, the reply's text) of the first failure reply quoted in `segment`.
    A 2yz reply (RFC 5321 4.2.1, positive completion: a transcript's "220 ... ready", "250 Sender ok")
    or a 2.X.X status (RFC 3463 3.1: success; "Mailman 2.0.12" in a title) is not the failure."""
    return _find_reply_at(segment)[:3]


def _find_reply_at(segment: str) -> tuple[int | None, str | None, str | None, int | None]:
    """_find_reply and where in `segment` the reply begins."""
    code_m = next((m for m in _REPLY_CODE.finditer(segment) if m.group(1)[0] != "2"), None)
    status_m = next((m for m in _STATUS.finditer(segment) if m.group(1) != "2"), None)
    if code_m is None and status_m is None:
        return None, None, None, None
    starts = [m.start() for m in (code_m, status_m) if m is not None]
    begin = min(starts)
    code = int(code_m.group(1)) if code_m else None
    status = ".".join(status_m.groups()) if status_m else None
    if code_m is not None and status_m is not None and status_m.start() < code_m.start():
        # A status long before the code belongs to other text; one right before it is the reply's.
        begin = status_m.start()
    diagnostic = _paragraph_from(segment, begin, code)
    if diagnostic.endswith(")") and diagnostic.count(")") > diagnostic.count("(") and \
            _REASON_OPENS.search(segment, max(0, begin - 24), begin):
        # Sendmail's "(reason: 552 5.2.2 Over quota)": the parenthesis closes the report's own
        # "(reason:", it is no part of the reply (review-12 F8).
        diagnostic = diagnostic[:-1].rstrip()
    inner = _WRAPPED_REPLY.search(diagnostic)
    if inner and code is not None and inner.group(1)[0] == str(code)[0] and \
            (status is None or status[0] == inner.group(2)[0]):
        # Exchange's own reply around the remote server's ("554 5.7.0 < #5.7.133 smtp;550 5.7.133
        # RESOLVER.RST...>"): the wrapped one says what went wrong; the wrapper is generic.
        code, status = int(inner.group(1)), inner.group(2)
    return code, status, diagnostic, begin


# Exchange's "Remote Server returned '554 5.7.0 < #5.7.133 smtp;550 5.7.133 ...>'": the reply it got,
# after "#" its status and "smtp;".
_WRAPPED_REPLY = re.compile(r"<\s*#[245]\.\d{1,3}\.\d{1,3}\s+smtp;\s*([245][0-5][0-9])[ -]"
                            r"([245]\.\d{1,3}\.\d{1,3})(?![\w.])", re.I)


# Sendmail's list of failed addresses gives each one's reply as "(reason: REPLY)".
_REASON_OPENS = re.compile(r"\(\s*reason:\s*$", re.I)


def _stage_of_own_reply(report: str, reply: str | None, names: tuple[str, ...]) -> str | None:
    """The stage at which the report's own transcript shows `reply` (Sendmail's "(reason: 552 5.2.2
    Over quota)" is its "<<< 552 5.2.2 Over quota" after ">>> DATA", review-12 F8): the command
    before the first transcript line that quotes the reply's first line. A RCPT that names another
    address than `names` gives none (its reply is that address's)."""
    first = _TRANSCRIPT_COMMAND.search(report)
    if not reply or len(reply) < 8 or first is None:
        return None
    lowered = fold(report)
    wanted = fold(reply[:60])
    at = lowered.find(wanted, first.start())
    for _ in range(4):
        if at < 0:
            break
        line_start = report.rfind("\n", 0, at) + 1
        if _REPLY_ARROW_ONLY.fullmatch(report, line_start, at):
            commands = list(_TRANSCRIPT_COMMAND.finditer(report, _last_host_part(report, at), line_start))
            if not commands:
                return None
            stage = _STAGE_OF_COMMAND[fold(commands[-1].group(1))]
            command_line = fold(_line_at(report, commands[-1].start()))
            if stage == "rcpt" and not _names_one_of(command_line, names):
                return None
            return stage
        at = lowered.find(wanted, at + 1)
    return None


# What stands before a reply in the report's own transcript (_TRANSCRIPT_REPLY).
_REPLY_ARROW_ONLY = re.compile(r"(?:<<<|Received >>>)[ \t]*", re.I)


def _paragraph_from(text: str, begin: int, code: int | None = None) -> str:
    """The reply that starts at `begin`: its line, then the lines that continue it (indented, as MTAs wrap
    a quoted reply, or carrying the reply code of a multi-line reply), joined with one space each. A line
    at the margin is the reporting MTA's own text again ("Giving up on ...")."""
    lines = text[begin:].split("\n")
    kept = [lines[0].strip()]
    prefix = re.compile(rf"^{code}[ -]") if code else None
    for line in lines[1:]:
        if not line.strip():
            break
        if line[:1] in (" ", "\t") or (prefix is not None and prefix.match(line)):
            kept.append(line.strip())
            continue
        break
    if not _IN_REPLY_TO_OPEN.search(" ".join(kept)):
        # Postfix closes a quoted reply with "(in reply to RCPT TO command)" and indents the lines
        # that wrap it; a pasted report loses the indentation ("... said: 550\nRequested action not
        # taken: mailbox unavailable (in reply to RCPT TO\ncommand)"). When that closing follows
        # within the paragraph's next few lines, those lines are the reply's.
        rest = []
        for line in lines[len(kept):len(kept) + _WRAPPED_REPLY_LINES]:
            if not line.strip() or _NOT_A_WRAPPED_LINE.match(line.strip()):
                break  # a blank line, or another recipient's line or reply: not this reply's words
            rest.append(line.strip())
            if re.search(r"\(in reply to [^()]*\)", " ".join(rest), re.I):
                kept.extend(rest)
                break
    return _without_in_reply_to(" ".join(k for k in kept if k)).strip()[:2000]


# How many unindented lines a reply that Postfix closes with "(in reply to ...)" may run on.
_WRAPPED_REPLY_LINES = 4
# A line that starts with an address and a colon (the next recipient's "<b@x>: host h said: ..."), a
# reply code, or that quotes another reply ("said:"): never the continuation of the one before.
_NOT_A_WRAPPED_LINE = re.compile(r"<?[^\s<>@]+@[^\s<>]+>?:|[245][0-5][0-9](?:[ -]|$)|.*\bsaid:", re.I)
