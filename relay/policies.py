"""The policy directory: bounce rules, suppression, per-domain settings and traffic shaping.

Loaded at start and on SIGHUP. A reload that fails keeps the policies that are
running: the caller only swaps in a fully validated Policies object.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import logging
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from .address import addresses_in, domain_of, fold
from .config import SHIPPED_POLICIES
from .errors import ConfigError, Problem

log = logging.getLogger(__name__)

BOUNCE_LIST_EFFECTS = ("list", "count", "never")

# Characters that may stand next to an address inside a longer word of it (RFC 5322
# atext and the dot): an address found with one of these beside it is part of another.
_ADDRESS_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-/=?^_`{|}~.@")


@dataclass(frozen=True)
class Judgement:
    """What the relay makes of one refusal, without acting on it."""

    classification: Any  # classify.Classification; its `scope` is the judged scope
    scope: str  # recipient | message | sender | session | relay
    bounce_list: str  # list | count | never: what it does to the recipients in `recipients`
    # The recipients the refusal is about: empty unless the scope is `recipient`; at DATA
    # only the one recipient the reply names.
    recipients: tuple[str, ...] = ()
    # The suppression rule that counts this failure when it is not its category's own (an
    # unconfirmed address claim, `unconfirmed:` in suppression.yaml); None: the category's.
    suppression_rule: Any = None
    # The refusal puts its own address claim in doubt (_doubt): whatever the suppression
    # policy does with that, the reply alone does not establish that the address is gone.
    unconfirmed: bool = False
    # A hard bounce in the industry's sense (hard_bounce): the address or its domain does not exist.
    # It may be true of a refusal the bounce list only counts: an unknown domain, a "no such user"
    # under X.2.1 or X.7.1 at RCPT (_doubts_the_address).
    hard: bool = False
    # A reply of unknown stage that leads with another address than the recipient's and names none
    # (_judged, _doubt "another"): what it says may be of that address (a forward's target, a header's
    # address a filter checked), so it is no evidence about the recipient's domain either
    # (Outcomes._domain_evidence is skipped; review7 F2).
    another: bool = False

    def about(self, recipient: str) -> bool:
        """True when this refusal is about `recipient`'s address (recipient scope, and at
        DATA the recipient the reply names)."""
        return self.scope == "recipient" and fold(recipient) in (fold(r) for r in self.recipients)

    def concerns(self, recipient: str) -> bool:
        """True when this refusal may touch `recipient`'s bounce-list record."""
        return self.bounce_list != "never" and self.about(recipient)


def named_recipient(text: str, recipients: Sequence[str]) -> str | None:
    """The one recipient of `recipients` that `text` names, or None (none, or several)."""
    # fold(), not lower(): a reply naming U+212A "ate@x" is not about "kate@x" (review24 F2).
    lowered = fold(text)
    found = None
    for rcpt in recipients:
        needle = fold(rcpt)
        if not needle:
            continue
        start = lowered.find(needle)
        while start >= 0:
            end = start + len(needle)
            if ((start == 0 or lowered[start - 1] not in _ADDRESS_CHARS)
                    and (end == len(lowered) or lowered[end] not in _ADDRESS_CHARS)):
                break
            start = lowered.find(needle, start + 1)
        if start >= 0:
            if found is not None and fold(found) != needle:
                return None  # names more than one: about the message, not one address
            found = rcpt
    return found


# The address a reply leads with, where MTAs put the address they judged: right after the reply
# code and the enhanced code (RFC 3463 puts that first). Postfix "<a>: Recipient address rejected:
# ...", Sendmail "<a>... User unknown", Exim's address parser "501 <a>: missing or malformed local
# part", "550 a@b...User unknown". Bracketed: anything between the brackets (a malformed address
# is still the address judged; "<>" is the null reverse-path, RFC 5321 4.5.5); bare: an address
# followed by the end, a space, ":", "," or "...". Bounded: no run of the pattern can backtrack
# over another (MAX_CLASSIFIED_TEXT characters at most, classify.py).
_LEADING_ADDRESS = re.compile(
    r"""[('"]?(?:[245]\d\d(?:[ -]|$))?[ ('"]*(?:[245]\.\d{1,3}\.\d{1,3} +){0,2}[('"]?"""
    r"""(?:<([^<>\s]{0,320})>|([^\s<>()\[\]"',;:@]{1,64}@[a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63}){0,8})(?=$|[\s:,]|\.\.\.|\.\s))""",
    re.IGNORECASE)


def _local_part(address: str) -> str:
    """An address's local part, lowercased, without a "+detail" subaddress (RFC 5233) or quotes."""
    local = address.rpartition("@")[0] if "@" in address else address
    return fold(local.strip('"')).partition("+")[0]


def leading_address(text: str) -> str | None:
    """The address `text` (a reply as one line, unwrapped_text) leads with: "" for the null
    reverse-path "<>", None when it leads with none."""
    m = _LEADING_ADDRESS.match(text)
    if m is None:
        return None
    if m.group(1) is not None:
        inside = m.group(1)
        return inside if inside == "" or "@" in inside else None  # "<postmaster>", "<RCPT>": no address
    return m.group(2)


def about_another_address(text: str, recipients: Sequence[str], aliases: Sequence[str] = (),
                          sender: str | Sequence[str] | None = None) -> bool:
    """True when `text` leads with an address that is not the recipient's and names none of
    `recipients` anywhere: the refusal is about that address (the envelope sender that Postfix's
    smtpd_delay_reject reports at RCPT, an address an MTA's parser refused), not the recipient.
    `aliases` are other addresses a report gives for the same recipient (a DSN's Original- and
    Final-Recipient, RFC 3464 2.3.1-2.3.2; Postfix's orig_to): naming one is naming the recipient.
    An address with the recipient's local part, or in the recipient's own domain, is read as the
    recipient's under another name (a masqueraded or tenant domain, an alias or a forwarding
    target that the recipient's domain made of it): what that domain says of its own addresses is
    about the recipient's delivery, and a missed listing is the lesser error, but reading the
    recipient's own address as another one would lose true hard bounces. `sender`, the envelope
    sender when the caller knows it (a live transaction's MAIL FROM, a report's original sender), or
    several (_senders: on the bounce intake the VERP return path the remote saw and the original sender,
    the From a filter may have checked): an address equal to one of them is the sender's before that leniency (B2B senders and recipients share
    local parts, info@ or sales@; internal mail shares the domain). Postfix's "Recipient address
    rejected" is only ever said of a RCPT TO address (its sender checks say "Sender address
    rejected"): a text that says it is never another address's. A text that leads with no address
    says nothing here (its rules judge it). A leading address that is the recipient's spelt
    another way (_same_mailbox: case, "+detail", a trailing dot, an IDN's other form) and
    "Recipient address rejected" are tested before the sender: when the sender mails its own
    mailbox (a copy to oneself, a +tag self-send), the recipient's refusal is still the
    recipient's (review2 N1)."""
    if not recipients:
        return False
    address = leading_address(text)
    if address is None:
        return False
    known = [a for a in (*recipients, *aliases) if a]
    if names_the_recipient(text, known):  # as written or spelt another way (review7 F3)
        return False
    if address == "":
        return True  # the null reverse-path: never a recipient (RFC 5321 4.1.1.3)
    if _same_mailbox(address, known) or _RECIPIENT_REJECTED.search(text):
        return False
    local, domain = _comparable(address)
    if any((local, domain) == _comparable(one) for one in _senders(sender)):
        return True
    return not any(_comparable(r)[0] == local or _comparable(r)[1] == domain for r in known)


_RECIPIENT_REJECTED = re.compile(r"recipient address rejected", re.IGNORECASE)


def _leads_with_the_sender(text: str, sender: str | Sequence[str] | None) -> bool:
    """Whether `text` leads with the null reverse-path "<>" (never a recipient, RFC 5321 4.1.1.3) or with
    the envelope sender `sender` (when known; one address or several, _senders), spelt as it is or another
    way (_comparable)."""
    address = leading_address(text)
    if address is None:
        return False
    if address == "":
        return True
    return any(_comparable(address) == _comparable(one) for one in _senders(sender))


def _senders(sender: str | Sequence[str] | None) -> tuple[str, ...]:
    """The envelope sender addresses a caller gives (Policies.judge's `sender`): None or "" (unknown), one
    address, or several (a VERP return path and the original sender it stands for, review7 F1)."""
    if not sender:
        return ()
    if isinstance(sender, str):
        return (sender,)
    return tuple(one for one in sender if one)


def _comparable(address: str) -> tuple[str, str]:
    """An address as (local part without "+detail", domain in A-labels), for telling whether two
    spellings are one address (case, a trailing dot, a subaddress, U- vs A-label domains)."""
    return _local_part(address), domain_of(address)


def _same_mailbox(address: str, known: Sequence[str]) -> bool:
    """Whether `address` is one of `known` spelt another way (_comparable): the one test of
    "is this the recipient's address" for about_another_address and names_the_recipient."""
    wanted = _comparable(address)
    return any(_comparable(a) == wanted for a in known if a)


def names_the_recipient(text: str, recipients: Sequence[str], aliases: Sequence[str] = ()) -> bool:
    """True when `text` names one of `recipients` or `aliases` (a report's other addresses for the
    recipient), as written or spelt another way (case, "+detail", an IDN domain's other form).
    A rule marked `names_recipient: true` applies only then (bounce-rules.yaml): its words carry
    the address they speak of, which may be the sender's or a forwarding target's."""
    known = [a for a in (*recipients, *aliases) if a]
    if named_recipient(text, known) is not None:
        return True
    return any(_same_mailbox(a, known) for a in addresses_in(text))


def wording_about_the_recipient(wording: str, text: str, recipients: Sequence[str],
                                aliases: Sequence[str] = ()) -> bool:
    """Whether the passage `wording` of `text` that a `names_recipient: true` rule matched
    ("mailbox a@x does not exist", "<a@x> not found", "user a@x was not found") speaks of the
    recipient: every address written in the wording is one of `recipients` or `aliases`
    (_same_mailbox). It is not enough that the text names the recipient somewhere: "550
    <bob@x>: user alice@y was not found" or "mail to bob@x refused: mailbox alice@y does not
    exist" say that alice@y (a sender verified, a forwarding target) does not exist, not bob@x
    (review2 N2). A wording that carries no address ("this account has been temporarily
    suspended") is about the recipient when the text names it (names_the_recipient)."""
    known = [a for a in (*recipients, *aliases) if a]
    written = list(addresses_in(wording))
    if written:
        return all(_same_mailbox(a, known) for a in written)
    return names_the_recipient(text, known)


# RFC 3463 3.2: X.1.7 "bad sender's mailbox address syntax" and X.1.8 "bad sender's system
# address" are about the envelope sender by definition, whatever words come with them ("553 5.1.8
# Sender address is wrong or no longer valid", "451 4.1.8 <a@x> not found"): such a refusal is
# never the recipient's (review of 2a9313d..cd336bb, F1).
_SENDER_DETAILS = ("1.7", "1.8")


# Categories about an address's form or the command that carried it, not about a mailbox (read
# as another address's at any stage when the reply leads with one, _judged).
_ADDRESS_FORM = ("syntax_error", "protocol_error")


# Stages where no recipient exists yet: a reply there can be about nobody's address.
_NO_RECIPIENT_YET = {"connect": "session", "helo": "session", "mail": "sender"}

# Enhanced codes (RFC 3463) that contradict a "no such user" text: X.2.1 is "mailbox disabled,
# not accepting messages" (the mailbox exists), X.7.1 "delivery not authorized, message refused"
# (a policy said no). A server that means "no such user" says X.1.1 (or X.1.0, X.0.0); a text
# that says "user unknown" under one of these is how filters (Sendmail access maps returning
# "ERROR:5.2.1:550 User Unknown", Postfix access maps whose REJECT defaults to 5.7.1, filtering
# appliances) refuse a sender or a content while hiding why.
_CONTRADICTING_UNKNOWN = ("2.1", "7.1")


def _doubt(classification, stage: str | None, reply, unconfirmed_rules: frozenset[str],
           code_only: bool = False) -> str | None:
    """Why a refusal whose category would list the address at once puts its own claim in doubt, so
    that it only counts towards listing (suppression.yaml `unconfirmed:`); None when it does not:
    - "rule": the rule that classified it says so (bounce-rules.yaml `unconfirmed: true`): a text that
      is how a filter answers, whatever the stage (au/KDDI's "550 : User unknown", with no address
      where the server names the recipient, is its reply after DATA);
    - "data": it came at DATA: a server checks recipients at RCPT (RFC 5321 3.3); one that took the
      RCPT and then says "unknown user" after the final dot has seen the content, and that is
      where content filters (Japanese carriers' sender and content filters, filtering
      appliances) answer "550 Unknown user" to hide their verdict. A provider that really
      checks mailboxes only at DATA (Yahoo's "554 delivery error: dd ... doesn't have an
      account") is listed at the second such refusal;
    - "2.1" or "7.1": its enhanced code contradicts a "no such user" text (_CONTRADICTING_UNKNOWN).
      Only a code the refusing server said counts: a DSN's Status put before a reply that carries
      none is the reporting MTA's own mapping of the reply code (Bigfoot's LiteMail reports a "553
      Invalid recipient" with Status 5.7.1), not the remote server hiding a policy.
    - "report": the "no such address" is only the report's Status (X.1.1 put before the remote
      reply, reply.enhanced_from_report) over a reply whose own code does not say it and whose words
      do not either: the category came from the fallback table's enhanced code (`code_only`).
      Sendmail writes Status 5.1.1 after any 5xx to RCPT ("550 <a> recipient rejected"): the
      reporting MTA's translation of a vague refusal (RFC 5321 4.2.2's 550 is "mailbox unavailable",
      not found or refused by policy), not the remote server saying the address does not exist. A
      reply code that says it (551 "user not local", Status 5.1.6) keeps it, and so does a report
      with no remote reply at all (code 0: Exchange's own "failed" with Status 5.1.1, the mailbox
      host's own verdict).
    - "class": the reply's own enhanced code is of another class than its reply code ("550 4.1.1",
      "553 4.1.3"): RFC 3463 section 2 makes the class sub-code the same permanent (5) or transient
      (4) verdict that the reply code's first digit gives (RFC 5321 4.2.1), and RFC 2034 has the server
      send both for one condition. A server whose two codes disagree has not said for sure that the
      address is gone: the permanence follows the reply code (what the client MTA acts on, _permanence),
      but the refusal only counts, as any other doubted claim, whatever its category. The opposite
      disagreement ("450 5.1.1") is transient by its reply code and never lists by default.
    _judged adds one reason of its own, "another": a reply of unknown stage that leads with another
    address than the recipient and names none (it may be a forwarding target's, or a sender's).
    """
    if classification.rule in unconfirmed_rules:
        return "rule"
    if stage == "data":
        return "data"
    if (code_only and classification.category == "unknown_recipient" and reply.enhanced_from_report
            and reply.code):
        return "report"
    detail = (reply.enhanced or "")[2:]
    if (classification.category == "unknown_recipient" and not reply.enhanced_from_report
            and detail in _CONTRADICTING_UNKNOWN):
        return detail
    return "class" if _classes_disagree(reply) else None


def _classes_disagree(reply) -> bool:
    """True when the reply's own leading enhanced code (RFC 2034: right after the reply code; not a
    report's Status put before a reply that carries none, reply.enhanced_from_report) is of another
    class than its reply code: "550 4.1.1", "450 5.1.1" (_doubt "class")."""
    enhanced = reply.enhanced
    if not enhanced or reply.enhanced_from_report or not 400 <= reply.code < 600:
        return False
    return enhanced[0] != str(reply.code)[0]


def _doubts_the_address(doubt: str | None, stage: str | None) -> bool:
    """Whether a doubt (_doubt) leaves the refusal's "no such address" unsaid, for `hard`. One does
    not: a contradicting code (X.2.1, X.7.1) under a "no such user" text at RCPT. Before DATA nothing
    of the message has been seen, and a refusal of RCPT whose words say the user does not exist
    refuses that address whatever the sender sends, which is what a hard bounce is: sisimai takes a
    user-unknown text at RCPT for UserUnknown, a hard bounce, whatever the code (its X.2.1 is Filtered
    and its X.7.1 SecurityError only where the stage is not RCPT), and so does a reader of the message
    (the world set's labels: "Nonexistent user", "No such user", "No mailbox found" under 5.7.1 at
    RCPT). A sender's or client's policy reported at RCPT (Postfix's smtpd_delay_reject) says so in its
    words ("Sender address rejected", "Client host rejected") and is judged by them, not here. The
    bounce list still only counts such a refusal (the code contradicts the text: listed at the second
    refusal); at DATA or of unknown stage the doubt stays. Nor does a reply code and an enhanced code
    of different classes (doubt "class"): the words still say what they say (sisimai reads them so,
    and `relay dsn parse`'s `hard` follows it); only the bounce list waits for a second refusal."""
    return (doubt is not None and doubt != "class"
            and not (doubt in _CONTRADICTING_UNKNOWN and stage == "rcpt"))


# Categories that say the address is gone: no such mailbox (or it moved, X.1.6), or no such
# domain (or one that takes no mail: null MX, RFC 7505). A disabled or full mailbox exists; a
# malformed address (syntax_error) says nothing about whether the mailbox exists.
_HARD_CATEGORIES = ("unknown_recipient", "routing_dns")


# RFC 3463 X.1.0, "other address status: something about the address specified in the message
# caused this DSN": the server refuses the recipient's address itself, not its mailbox (X.2.x), its
# system (X.3.x) or the message under a policy (X.7.x). Said by the server on a permanent refusal
# whose words no rule reads ("550 5.1.0 Address rejected", "550 5.1.0 Recipient rejected": the X.1
# fallback, category other), it is a hard bounce (sisimai's status table names 5.1.0 UserUnknown;
# Gmail answers an address it does not have so, and goo.ne.jp; the world set's labels). The bounce
# list still only counts it (category other): the words do not say the mailbox is gone. A rule that
# reads the words (a sender's, a blocklist's "550-5.1.0 ... listed in Spamhaus") decides instead.
_ADDRESS_STATUS = ("1.0",)


def _refuses_the_address(classification, reply, fallback_key, text: str, known: Sequence[str]) -> bool:
    """Whether a refusal no rule read carries the server's own X.1.0 (_ADDRESS_STATUS), not a report's
    Status put before a reply that carries none (reply.enhanced_from_report: the reporter's mapping of
    a reply code), and names no address but the recipient's (`known`: the recipients and a report's
    aliases of them): "550 5.1.0 mailbox alice@x does not exist (original recipient bob@y)" says it of
    another address, whose wording a names_recipient rule left to the fallback (review2 N2)."""
    from .classify import effective_enhanced

    if classification.category != "other" or fallback_key is None or fallback_key[0] != "enhanced":
        return False
    if reply.enhanced_from_report or (effective_enhanced(reply) or "")[2:] not in _ADDRESS_STATUS:
        return False
    return all(_same_mailbox(a, known) for a in addresses_in(text))


def filtered_at_unknown_stage(classification, stage: str | None, reply, words: str, any_stage=None) -> bool:
    """Whether a "no such user" that Judgement.hard calls a hard bounce is not one in sisimai's sense
    because the report does not say which SMTP command it answered: sisimai's Filtered. `relay dsn
    parse` prints `hard` in sisimai's sense (its HardBounce, the shared corpus's label;
    docs/bounces-in.md), and asks this of each line; the funnel's Judgement.hard and the bounce
    list do not (a "no such user" of unknown stage is listed as before).

    sisimai (go-sisimai reason/find.go, why-userunknown.go, why-filtered.go) takes a user-unknown
    text for UserUnknown, a hard bounce, when its status code names the address (X.1.x) or it
    answered RCPT; of any other stage, or of none the report states, it is Filtered ("rejected
    after DATA"), not hard: a content filter answers "550 unknown user" after the final dot as a
    mailbox server does at RCPT, and a report that does not name the command cannot tell them
    apart (the doubt _doubt's "data" has at DATA). Kept hard: X.1.x (the server's own code or the
    report's Status naming the address; the sender's X.1.7/X.1.8 never reach here, scope
    `sender`), a known stage (RCPT is judged by the rules, DATA is unconfirmed already), and
    `words` (the reply, and the reporting MTA's own words about the recipient) that bounce-rules.yaml
    `hard_at_any_stage:` lists (`any_stage`): the mailbox system's own lookup, which sisimai's
    per-MTA modules read as UserUnknown whatever the stage (Exchange 2003's "recipient name is not
    recognized", Notes' "not listed in public Name & Address Book", IMail's "Invalid final delivery
    userid", Gmail's "because the address couldn't be found", PowerMTA's bounce category
    `bad-mailbox`), and a domain that does not route (its HostUnknown)."""
    from .classify import effective_enhanced

    if stage is not None or classification.category != "unknown_recipient":
        return False
    if (effective_enhanced(reply) or "")[2:].startswith("1."):
        return False
    return not (any_stage is not None and any_stage.search(words))


# sisimai's status table (go-sisimai smtp/status/lib.go `Name`, p5 Sisimai::SMTP::Status): the codes
# whose reason is a hard bounce whatever the stage. 5.1.0, 5.1.1 and 5.1.3 name UserUnknown (4.1.x is
# not in its table); 4.1.6, 5.1.6, 5.7.17 and 5.7.18 HasMoved (RFC 3463 "moved", RFC 7293 "owner
# changed"); 5.3.2 NotAccept ("system not accepting network messages", RFC 3463).
_SISIMAI_USER_UNKNOWN_STATUS = frozenset({"5.1.0", "5.1.1", "5.1.3"})
_SISIMAI_HAS_MOVED_STATUS = frozenset({"4.1.6", "5.1.6", "5.7.17", "5.7.18"})
_SISIMAI_NOT_ACCEPT_STATUS = frozenset({"5.3.2"})
# sisimai's reasons that are a hard bounce whatever the code (go-sisimai smtp/failure IsHardBounce);
# NotAccept is one too unless temporary.
_SISIMAI_HARD_REASONS = frozenset({"userunknown", "hostunknown", "hasmoved"})
# Categories that say the words name no reason sisimai ranks before UserUnknown: its UserUnknown under
# an X.1.0/X.1.1/X.1.3 status gives way only to a text of NoRelaying, Blocked, MailboxFull, HasMoved,
# Rejected (the sender), Suspend, MesgTooBig, ExceedLimit or AuthFailure (go-sisimai reason/lib.go
# `classorder`, why-userunknown.go; p5 Sisimai::Reason::UserUnknown `true`). Ours read such words as
# another category (mailbox_full, mailbox_disabled, relay_denied, auth_failed, blocklisted, ...) or
# another scope (sender, session).
_SISIMAI_NO_OTHER_REASON = ("unknown_recipient", "other", "syntax_error")
# Under that status our reading of a disabled account is UserUnknown too: sisimai's Suspend, which
# would rank first, is its own words (`sisimai_words: suspend`, tested before), not ours.
_SISIMAI_USER_UNKNOWN_UNDER_STATUS = (*_SISIMAI_NO_OTHER_REASON, "mailbox_disabled")
# Our readings that sisimai's UserUnknown words take in reply to RCPT: none of a reason it ranks
# first (mailbox_full, message_too_large, relay_denied, auth_failed: classorder), and not a blocklist,
# spam or rate reading of ours, which says the refusal is about the sender, not the address.
_SISIMAI_USER_UNKNOWN_AT_RCPT = ("other", "mailbox_disabled", "policy_rejected")
# A domain name as a reply writes one (a host, or the part after "@").
_DOMAIN_NAMED = re.compile(r"(?<![\w.-])(?:[\w-]+@)?((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,})(?![\w.-])",
                           re.IGNORECASE)


def _sisimai_says(words_regex, words: str) -> bool:
    return words_regex is not None and bool(words_regex.search(words))


def _names_only_the_recipients_domain(words_regex, words: str, known: Sequence[str]) -> bool:
    """True when `words_regex` matches `words` and every domain that match names is the recipient's
    (`known`: the recipient and the report's aliases of him); a match that names none counts."""
    if words_regex is None:
        return False
    domains = {fold(domain_of(a)) for a in known if "@" in a}
    for match in words_regex.finditer(words):
        named = {fold(d) for d in _DOMAIN_NAMED.findall(match.group(0))}
        if not named - domains:
            return True
    return False


def sisimai_hard(judgement, stage: str | None, reply, words: str, any_stage=None, fallback_key=None,
                 known: Sequence[str] = (), sisimai_words=None, rhost_tables=(), remote_host: str | None = None,
                 destination: str | None = None, diagnostic: str | None = None) -> bool:
    """sisimai's HardBounce of one DSN line, the `hard` that `relay dsn parse` prints (the shared
    corpus's label; docs/bounces-in.md, "The `hard` label"), from the funnel's `judgement` of the
    reply. sisimai computes it from its reason alone (go-sisimai smtp/failure `IsHardBounce`, p5
    Sisimai::SMTP::Failure `is_hardbounce`): UserUnknown, HostUnknown and HasMoved are hard whatever
    the code, NotAccept unless temporary, nothing else. How it picks UserUnknown (go-sisimai
    reason/why-userunknown.go, p5 Sisimai::Reason::UserUnknown `true`):

    - the status (the report's Status, or the reply's own code; smtp/status `Prefer`) is 5.1.0,
      5.1.1 or 5.1.3 and the words name no reason it ranks first: UserUnknown at any stage, DATA
      included, and whether the report's Status or the server said it (ours: a "no such user" at
      DATA is unconfirmed, so is a vague reply under a report's Status 5.1.1, and a reply that leads
      with another address; the bounce list keeps that caution, this field does not);
    - else a user-unknown text in reply to RCPT: UserUnknown whatever the code, 4xx included;
    - else, of DATA or of a stage the report does not give, a user-unknown text is Filtered, not
      hard (filtered_at_unknown_stage), unless a per-MTA module or a local delivery agent's table
      took it first (bounce-rules.yaml `hard_at_any_stage:`).

    HasMoved: 4.1.6, 5.1.6, 5.7.17, 5.7.18, or the words (ours: unknown_recipient), hard even when
    temporary. NotAccept: 5.3.2 when no rule read the words (`fallback_key` ("enhanced", "X.3.2"): the
    server's own "not accepting network messages"; sisimai's status table), and null MX (ours:
    routing_dns). HostUnknown: ours routing_dns unless DNS failed rather than said "no such domain"
    (its NetworkError; Judgement.hard already).

    `sisimai_words` (bounce-rules.yaml `sisimai_words:`, reason -> regex): sisimai's own words for a
    reason where ours read the text otherwise. Suspend ranks before HasMoved, UserUnknown and
    HostUnknown (go-sisimai reason/lib.go `classorder`; why-suspend.go also takes the reply code 525,
    RFC 4954's "User Account Disabled"): its words are never hard, and under 5.1.0/5.1.1/5.1.3 any
    other words of ours about a disabled account are UserUnknown, as the code says ("550 5.1.1 <a>:
    inactive email address"). UserUnknown's words in reply to RCPT are hard whatever our reading
    (`other`, a disabled account, a recipient policy). HasMoved's words are hard; so are HostUnknown's when every domain
    they name is the recipient's ("553 <the sender's domain> does not exist" says nothing of it).

    One departure, kept on purpose: sisimai gives a line its status's reason whatever address the
    words speak of; here the status rule does not apply where the reply names an address that is
    not the recipient's (`known`: the recipient and a report's aliases of it). "550 <bob@x>: user
    alice@y was not found" under Status 5.1.0 says alice@y is gone, not bob (review2 N2), and "550
    5.1.1 <x@forward.example>... User unknown" may be a forwarding target's (_doubt "another").

    The receiving host's own table (bounce-rules.yaml `sisimai_rhost:`, `rhost_tables`; go-sisimai
    rhost/lib.go, rhost/for-*.go): where the recipient's domain (`destination`) or the remote host
    that answered (`remote_host`, the report's Remote-MTA) is one of a table's hosts and its words
    are in that table, sisimai takes the table's reason before its reason rules (fact/rise.go: after
    a per-MTA module's reason and the local delivery agents', before `Find`), at any stage and
    whatever the status: hard for UserUnknown, HostUnknown, HasMoved, and NotAccept unless temporary,
    where the words name no other address (the departure above); never for any other reason it names.
    The table reads the `diagnostic` as the report gave it (sisimai's DiagnosticCode: "550 : User
    unknown", not the reply with the report's Status put in, "550 5.1.1 : User unknown"). Tables
    keyed on the status or the command as well (Microsoft's, NTTDOCOMO's `entries:`) read the
    reply's enhanced code or the report's Status and the `stage`, where the report gave a
    Diagnostic-Code (sisimai's tables return nothing for an empty one)."""
    from .classify import effective_enhanced, rhost_reason, unwrapped_text

    classification = judgement.classification
    scope = judgement.scope
    status = effective_enhanced(reply) or ""
    category = classification.category
    said = (sisimai_words or {}).get
    by_host = (rhost_reason(rhost_tables, remote_host, destination,
                            " ".join(diagnostic.split()) if diagnostic else unwrapped_text(reply),
                            # sisimai's status and command keyed entries read the report's
                            # Diagnostic-Code; where it gave none they do not apply.
                            (status or None) if diagnostic else None, stage if diagnostic else None)
               if rhost_tables else None)
    if by_host is not None:
        about = all(_same_mailbox(a, known) for a in addresses_in(unwrapped_text(reply)))
        temporary = (str(reply.code or "").startswith("4") or status.startswith("4")
                     or bool(re.search(r"temporar|persistent", unwrapped_text(reply), re.IGNORECASE)))
        hard_reason = by_host in _SISIMAI_HARD_REASONS or (by_host == "notaccept" and not temporary)
        return hard_reason and about and scope not in ("sender", "relay")
    if _sisimai_says(said("suspend"), words) or reply.code == 525:
        # sisimai's Suspend, ranked before every hard reason (why-suspend.go).
        return False
    if judgement.hard and not filtered_at_unknown_stage(classification, stage, reply, words, any_stage):
        return True
    if scope in ("sender", "relay"):
        # The sender's or the relay's own (sisimai's Rejected; never a DSN's recipient line).
        return False
    if status in _SISIMAI_NOT_ACCEPT_STATUS and fallback_key == ("enhanced", "X.3.2"):
        # The receiving server refuses all mail (its scope is the session's): NotAccept, permanent.
        return True
    if scope not in ("recipient", "message"):
        # The client's (sisimai's Blocked, NoRelaying).
        return False
    about_the_recipient = all(_same_mailbox(a, known) for a in addresses_in(unwrapped_text(reply)))
    if status in _SISIMAI_USER_UNKNOWN_STATUS | _SISIMAI_HAS_MOVED_STATUS:
        if about_the_recipient and (category in _SISIMAI_USER_UNKNOWN_UNDER_STATUS
                                    if status in _SISIMAI_USER_UNKNOWN_STATUS else category == "unknown_recipient"):
            return True
    if scope == "recipient" and category in ("unknown_recipient", "other") and _sisimai_says(said("hasmoved"), words):
        # HasMoved's words (why-hasmoved.go), hard whatever the code; the address they name is the
        # new one.
        return True
    if (scope == "recipient" and category in ("routing_dns", "other") and classification.permanent
            and _names_only_the_recipients_domain(said("hostunknown"), words, known)):
        # HostUnknown's words (why-hostunknown.go) about the recipient's own domain.
        return True
    if scope != "recipient":
        return False
    if stage == "rcpt" and category == "unknown_recipient":
        return True
    if (stage == "rcpt" and category in _SISIMAI_USER_UNKNOWN_AT_RCPT and about_the_recipient
            and _sisimai_says(said("userunknown"), words)):
        # UserUnknown's words in reply to RCPT, whatever the code (why-userunknown.go), where ours
        # read them otherwise ("550 <a>: mailbox is unavailable", "user not active"); not where the
        # words name another address ("user alice@y was not found", review2 N2: the departure above).
        return True
    # A local delivery agent's or a per-MTA module's own words, read before sisimai's reason rules
    # when the report names no command or DATA, whether our rules read them (unknown_recipient) or
    # not (other: "maildrop: Cannot find system user").
    return (stage in (None, "data") and category in ("unknown_recipient", "other")
            and any_stage is not None and bool(any_stage.search(words)))


def hard_bounce(classification, scope: str, unconfirmed: bool, text: str, domains=None,
                address_refused: bool = False) -> bool:
    """True for a hard bounce as mail senders use the word: a permanent refusal saying that
    the address or its domain does not exist or has moved, or the server refuses the address
    itself by its own X.1.0 where no rule reads the words (`address_refused`,
    _refuses_the_address). False for a claim the refusal
    itself puts in doubt (`unconfirmed`, _doubts_the_address: a rule's word, at DATA, or under a
    contradicting code, except "no such user" under X.2.1 or X.7.1 at RCPT), for a refusal
    about the message, the sender or the session, for disabled, full, policy, spam and
    temporary failures, and for a recipient domain whose DNS failed rather than said "no such
    domain" (suppression.yaml `domains.not_evidence`: SERVFAIL, a timeout, "try again").
    Unlike bounce_list it ignores how many sightings the policy waits for before listing."""
    if scope != "recipient" or not classification.permanent or unconfirmed:
        return False
    if address_refused:
        return True
    if classification.category not in _HARD_CATEGORIES:
        return False
    return not (classification.category == "routing_dns" and domains is not None and domains.dns_glitch(text))


# The rule id of a positive reply's classification (Policies.judge): `relay classify` exits 1 on it.
NOT_A_REFUSAL = "not-a-refusal"


def not_a_refusal(reply):
    """The classification of a 2xx/3xx reply: category `other` (DESIGN.md's categories have no
    "accepted"), rule `not-a-refusal`, neither permanent nor to retry."""
    from .classify import Classification

    return Classification(
        category="other", permanent=False, retry=False, rule=NOT_A_REFUSAL,
        meaning=f"Not a refusal: a {reply.code} reply means the server accepted the command or is waiting "
                f"for more (RFC 5321 4.2.1); nothing was refused.",
        advice="Nothing to fix. To explain a failure, give the 4xx or 5xx reply the server sent (in a Postfix "
               "log, the text after 'said:').",
        scope="message")


@dataclass(frozen=True)
class Policies:
    directory: Path
    classifier: Any
    suppression: Any
    domains: Any
    relay_replies: Any = None  # classify.RelayReplies; None: the shipped ones
    tls: Any = None  # delivery.tls_policy.TlsPolicies (tls.yaml); None: the default for every domain
    shaping: Any = None  # shaping.policy.ShapingPolicy; None: the shipped one
    routing: Any = None  # delivery.routing.Routing (routes.yaml); None: everything to upstream.mode
    # nearest.NearestReader consulted where the rules end in their fallback table; None: off
    # (config `nearest_fallback: false`).
    nearest: Any = None

    def prepare(self) -> "Policies":
        """Build now what is built at first use otherwise (the nearest-reply reader, ~0.9 s of CPU):
        a relay calls it before it listens (and a parent before it forks its workers), so that no
        lookup builds it on the event loop (a reload calls it too: built once a process, it costs
        nothing then, except on the reload that turns `nearest_fallback` on)."""
        if self.nearest is not None and hasattr(self.nearest, "ready"):
            self.nearest.ready()
        return self

    def judge(self, reply, stage: str | None = None, recipients: Sequence[str] = (),
              aliases: Sequence[str] = (), sender: str | Sequence[str] | None = None) -> Judgement:
        """Classification, attribution and the bounce-list effect of one reply (DESIGN.md,
        "the one funnel"). `stage` is the SMTP stage the reply answered (None: unknown);
        `recipients` are the transaction's recipients it may concern; `aliases` other addresses a
        report gives for them (a DSN's Original- and Final-Recipient): a reply that names one of
        them names the recipient (about_another_address); `sender` the envelope sender when known, one
        address or several (the bounce intake's VERP return path and original sender): a reply that
        leads with one of them is the sender's (about_another_address)."""
        from .classify import default_relay_replies, unwrapped_text

        if sender is not None and not isinstance(sender, str):
            sender = tuple(sender)  # read more than once: an iterator would be spent by the first (review-9 N4)
        if reply.positive:
            # A 2xx or 3xx is the server accepting or asking for more (RFC 5321 4.2.1): no refusal to
            # explain, and never evidence against an address, whatever way in it came (a pasted
            # greeting, a report that quotes the accepting hop). Before, the rules and the nearest-reply
            # fallback gave "250 2.0.0 OK queued" a refusal's meaning (review27 F2).
            return Judgement(not_a_refusal(reply), "message", "never")
        if reply.source == "relay":
            # The relay's own reply: classified by the code path that made it (its cause),
            # never by provider rules; it is about our side, never an address, except where its
            # cause says it is about the recipient (relay-replies.yaml `scope: recipient`: what
            # DNS says of the recipient's domain when we deliver to its MX).
            relay_replies = self.relay_replies or default_relay_replies()
            classification = relay_replies.classify(reply)
            if classification.scope != "recipient":
                return Judgement(classification, "relay", "never")
            return self._judged(reply, stage, recipients, classification, aliases, sender)
        text = unwrapped_text(reply)
        names = ((lambda wording: wording_about_the_recipient(wording, text, recipients, aliases))
                 if recipients else None)
        classification = self.classifier.classify(reply, stage, names)
        judgement = self._judged(reply, stage, recipients, classification, aliases, sender)
        reason = (self.classifier.wrapped_reason(classification, text)
                  if hasattr(self.classifier, "wrapped_reason") and stage != "data" else None)
        if reason is not None:
            return self._judged_by_reason(reason, reply, stage, recipients, classification, judgement, aliases,
                                          sender)
        if self.nearest is not None and _catch_all(self.classifier.fallback_key(classification)):
            return self._nearest_opinion(reply, stage, recipients, classification, judgement, aliases, sender)
        return judgement

    def _judged_by_reason(self, reason: str, reply, stage, recipients, classification, wrapper: Judgement,
                          aliases: Sequence[str] = (), sender: str | Sequence[str] | None = None) -> Judgement:
        """A wrapper's reply (a rule marked `judge_reason: true`) judged by the reply it carries.

        Postfix's reject_unverified_recipient answers a RCPT whose verification probe failed with
        "550 5.1.1 <rcpt>: Recipient address rejected: undeliverable address: REASON" whatever the
        probe's REASON was (smtpd_check.c writes the recipient's DSN 4.1.1, so 5.1.1 with a 5xx code):
        the 5.1.1 says nothing of the mailbox (review-13 R13-1). REASON is read as Postfix writes a
        reason (intake/postfix_log.py parse_detail): "host H said: REPLY (in reply to C command)", a
        reply with its own code, enhanced code and stage (MAIL FROM, the greeting, HELO: never about the
        recipient), or Postfix's own words ("mail for X loops back to myself", "unknown user: ..."),
        judged at the wrapper's stage. The reason's judgement stands, with the wrapper's permanence (the
        wrapper's code is what the client was told), except where it says nothing a rule reads (no
        rule, no enhanced code of its own: only a catch-all of its reply code or the default): then the
        wrapper's own rule decides, which is `unconfirmed` (counts, never lists at once)."""
        from .decision import Reply
        from .intake.postfix_log import parse_detail

        detail = parse_detail(reason)
        if detail.reply is not None:
            inner = Reply(detail.reply.code, detail.reply.lines, reply.source)
            inner_stage = detail.stage
        else:
            inner = Reply(0, (detail.postfix_text or reason,), reply.source)
            inner_stage = detail.stage or stage
        judgement = self.judge(inner, inner_stage, recipients, aliases, sender)
        said = judgement.classification
        if said.permanent != classification.permanent:
            said = replace(said, permanent=classification.permanent, retry=classification.retry)
            judgement = self._judged(inner, inner_stage, recipients, said, aliases, sender)
        if judgement.scope == "recipient" and (said.rule.startswith("nearest:") or _says_no_cause(
                self.classifier.fallback_key(said))):
            return wrapper
        return judgement

    def _nearest_opinion(self, reply, stage, recipients, classification, judgement: Judgement,
                         aliases: Sequence[str] = (), sender: str | Sequence[str] | None = None) -> Judgement:
        """Where no text rule matched, the category (and scope) of the most similar labelled reply
        (relay/nearest.py), when it is similar enough, as permanent or transient as this one, and
        judging by it never lists more: not a
        looser listing decision than the fallback's (list > count > never), no listing the
        fallback would make undone, no hard bounce the fallback did not see, and never scope
        `recipient` on the neighbour's word alone. Otherwise the fallback's judgement stands.
        docs/classification.md, "The nearest-reply fallback"."""
        from .nearest import THRESHOLD

        found = self.nearest.nearest(reply)
        if (found is None or found.similarity < THRESHOLD or found.category == classification.category
                or found.permanent != classification.permanent):
            return judgement  # not near enough, nothing new, or a refusal of the other kind (4yz vs 5yz)
        scope = found.scope
        if scope == "recipient" and classification.scope != "recipient":
            scope = classification.scope
        meaning, advice = self.classifier.category_texts(found.category)
        candidate = replace(classification, category=found.category, scope=scope, meaning=meaning, advice=advice,
                            rule=f"nearest:{classification.rule}")
        mine = self._judged(reply, stage, recipients, candidate, aliases, sender)
        if found.category == "syntax_error" and mine.scope != "recipient":
            # `syntax_error` is the recipient address's form (issue 8). A neighbour about an address's
            # form, said where no recipient is concerned (MAIL FROM: the sender's address), is the
            # dialogue's syntax, as the rules read X.1.7 (sender-address-malformed): protocol_error.
            meaning, advice = self.classifier.category_texts("protocol_error")
            candidate = replace(candidate, category="protocol_error", meaning=meaning, advice=advice)
            mine = self._judged(reply, stage, recipients, candidate, aliases, sender)
        looser = _LISTING_RANK[mine.bounce_list] > _LISTING_RANK[judgement.bounce_list]
        unlisted = judgement.bounce_list == "list" and mine.bounce_list != "list"
        if looser or unlisted or (mine.hard and not judgement.hard):
            return judgement
        return mine

    def _judged(self, reply, stage, recipients: Sequence[str], classification,
                aliases: Sequence[str] = (), sender: str | Sequence[str] | None = None) -> Judgement:
        """Attribution and the bounce-list effect of a classified reply."""
        from .classify import effective_enhanced, unwrapped_text

        text = unwrapped_text(reply)
        scope = classification.scope
        concerned: tuple[str, ...] = tuple(recipients)
        another = False  # the reply's mailbox claim may be another address's (unknown stage, below)
        if scope == "recipient":
            if (effective_enhanced(reply) or "")[2:] in _SENDER_DETAILS:
                scope, concerned = "sender", ()
            elif stage in _NO_RECIPIENT_YET:
                scope, concerned = _NO_RECIPIENT_YET[stage], ()
            elif stage == "data":
                # One reply answers the final dot for every recipient (RFC 5321 4.1.1.4): it is
                # about the message unless its text names one recipient of the transaction.
                named = named_recipient(text, recipients)
                if named is None:
                    scope, concerned = "message", ()
                else:
                    concerned = (named,)
            elif (reply.source != "relay" and (stage == "rcpt" or classification.category in _ADDRESS_FORM)
                    and about_another_address(text, recipients, aliases, sender)):
                # The reply leads with another address and names no recipient: it is about that
                # address. At RCPT the reply answers the command that named this recipient, and
                # the transaction's only other address is the envelope sender (a sender check
                # reported at RCPT, Postfix's smtpd_delay_reject). A report of unknown stage may
                # relay what a later hop said of an address that a forward or alias made of the
                # recipient without saying so (Exim's "generated from", a .forward): there a
                # refusal of an address's form is read as another address's (whose mailbox
                # existence it does not claim); it may be a header's address: the message. A
                # mailbox claim there is the next branch's.
                scope, concerned = ("sender" if stage == "rcpt" else "message"), ()
                if classification.category == "syntax_error":
                    # syntax_error is the recipient address's syntax (X.1.3); another address's
                    # syntax is a refused command argument, as "501 5.1.7 Bad sender address
                    # syntax" is (the corpus's convention).
                    meaning, advice = self.classifier.category_texts("protocol_error")
                    classification = replace(classification, category="protocol_error", meaning=meaning,
                                             advice=advice)
            elif (reply.source != "relay" and stage is None
                    and about_another_address(text, recipients, aliases, sender)):
                # A report of unknown stage whose reply leads with another address, names no recipient
                # and claims a mailbox (unknown, disabled ...). That address may be one a forward or
                # alias made of the recipient without the report saying so (Exim's "generated from", a
                # .forward), or the envelope sender or a header's address, checked by a filter or a
                # sender verification: nothing in the reply says which. The envelope sender, when
                # known, or the null reverse-path is the sender's, as at RCPT. Any other address keeps
                # the recipient's scope but is unconfirmed (_doubt "another"): counted, listed at the
                # second such refusal (suppression.yaml `unconfirmed:`), never at once, never hard: a
                # forward that bounces every time is still listed, a good address refused once for
                # another's sake is not (issue #8; docs/bounce-list.md, "Attribution").
                if _leads_with_the_sender(text, sender):
                    scope, concerned = "sender", ()
                else:
                    another = True
        elif scope == "message" and stage in ("connect", "helo"):
            # No mail transaction, hence no message, exists before MAIL (RFC 5321 3.3): a refusal
            # of the greeting or of HELO/EHLO is about the connecting client, whatever words a
            # rule read as the message's ("550 Connection from you denied", "554 Transaction
            # failed" as the greeting; world23).
            scope = "session"
        if scope != classification.scope:
            classification = replace(classification, scope=scope)
        if scope != "recipient":
            return Judgement(classification, scope, "never")
        code_only = ((self.classifier.fallback_key(classification) or ("",))[0] == "enhanced"
                     and reply.code and self.classifier.code_category(reply.code) != classification.category)
        doubt = _doubt(classification, stage, reply, self.classifier.unconfirmed_rules, code_only)
        if another and doubt in (None, "class"):
            doubt = "another"  # the stronger doubt: it also leaves the address's claim unsaid (hard)
        unconfirmed = doubt is not None
        hard = hard_bounce(classification, scope, _doubts_the_address(doubt, stage), text,
                           getattr(self.suppression, "domains", None),
                           _refuses_the_address(classification, reply, self.classifier.fallback_key(classification),
                                                text, [a for a in (*recipients, *aliases) if a]))
        bounce_list = self.suppression.bounce_list(classification.category, classification.permanent)
        counting = None
        if bounce_list == "list" and unconfirmed:
            counting = self.suppression.unconfirmed_rule(classification.category, classification.permanent)
            if counting is not None:
                bounce_list = "count"
        return Judgement(classification, scope, bounce_list, concerned, counting, unconfirmed, hard, another)


# Permanent reply codes whose RFC names one cause: 500-504 syntax errors of the command (RFC 5321
# 4.2.2), 521 and 556 "does not accept mail" (RFC 7504), 530/534/535/538 authentication (RFC 4954),
# 552 storage exceeded (RFC 5321), 555 unknown MAIL/RCPT parameters (RFC 5321).
_CODES_WITH_A_CAUSE = frozenset({"500", "501", "502", "503", "504", "50x", "521", "530", "534", "535", "538",
                                 "552", "555", "556"})


def _catch_all(key: tuple[str, str] | None) -> bool:
    """True for a fallback verdict that says nothing of the cause: the default (no usable code) or
    an entry keyed by a permanent reply code that names none (550, 551, 553, 554, 5xx ...). Not an
    enhanced code's entry (RFC 3463 names the cause: X.1.1, X.2.2, X.5.3 ...), not a transient
    code's (4yz: a deferral, whatever the cause) and not one of _CODES_WITH_A_CAUSE: where the table
    reads a cause, the nearest reply overruled it more often wrongly than rightly on the arrival
    proxy's tuning rounds (docs/classification.md, "The nearest-reply fallback")."""
    if key is None:
        return False
    kind, value = key
    return kind == "default" or (kind == "code" and value[0] == "5" and value not in _CODES_WITH_A_CAUSE)


def _says_no_cause(key: tuple[str, str] | None) -> bool:
    """True for a fallback verdict of a reply code alone or of nothing (the default): no rule read
    the text and no enhanced code of its own named a cause."""
    return key is not None and key[0] in ("code", "default")


_LISTING_RANK = {effect: rank for rank, effect in enumerate(reversed(BOUNCE_LIST_EFFECTS))}  # never 0 .. list 2


def policy_file(directory: Path, name: str) -> Path:
    """The operator's file if the directory has one, else the shipped one.

    Only a name with nothing at all behind it means "use the shipped file". Anything else there, a
    dangling symlink (a deploy that swapped the link), a directory, a FIFO, is the operator's file
    and its loader refuses it (yamlfile.read_regular): taking the shipped file instead would drop the
    operator's policy without a word, e.g. every `dkim_required` of domains.yaml (review20 F1)."""
    own = directory / name
    return own if os.path.lexists(own) else SHIPPED_POLICIES / name


# The suffixes a YAML file is commonly given; every file of the policy directory that ends in one must
# be a file the relay reads (unknown_policy_files).
_YAML_SUFFIXES = (".yaml", ".yml")


def unknown_policy_files(directory: Path, known: Sequence[str], operator_glob: str) -> list[Problem]:
    """A problem for every `*.yaml` / `*.yml` in the policy directory that looks like a name the relay
    reads but is not (a near spelling, `.yml`, other case); any other YAML file there is the operator's
    own (DESIGN.md: "operators may add files of their own beside them") and only logged as not read.

    A file missing from the directory falls back to the shipped one, so a misspelt name
    (`supression.yaml`, `bounce-rules.local.yml`) used to be ignored without a word while the shipped
    file applied: the operator's `list_after: off` or local rule never took effect and check-config
    said OK (review27 F1). `.yml` is not accepted as a second spelling: one name per file keeps "which
    file applies" obvious when both exist; the error names the `.yaml` name to rename it to. Dot files
    (an editor's `.suppression.yaml.swp`, `.#domains.yaml`) are not the operator's policy."""
    try:
        names = sorted(entry.name for entry in os.scandir(directory))
    except OSError:
        return []  # the directory itself is checked by the config loader (`policies:`)
    readable = sorted(known) + [operator_glob.replace("*", "NAME")]
    problems = []
    for name in names:
        lower = name.lower()
        if name.startswith(".") or not lower.endswith(_YAML_SUFFIXES):
            continue
        if name in known or fnmatch.fnmatchcase(name, operator_glob):
            continue
        stem = name[: name.rfind(".")]
        as_yaml = stem + ".yaml"
        if as_yaml in known or fnmatch.fnmatchcase(as_yaml, operator_glob):
            hint = f"did you mean {as_yaml}? (the relay reads .yaml, never .yml); "
        elif as_yaml.lower() in known or fnmatch.fnmatchcase(as_yaml.lower(), operator_glob):
            hint = f"did you mean {as_yaml.lower()}? (names are case-sensitive); "
        else:
            close = difflib.get_close_matches(as_yaml.lower(), sorted(known), n=1, cutoff=0.87)
            if not close and lower.startswith(("bounce-rule", "bounce_rule", "bouncerule")):
                close = [operator_glob.replace("*", "local")]
            hint = f"did you mean {close[0]}?; " if close else ""
        if not hint:
            log.warning("%s: not a policy file the relay reads (it reads: %s); left alone as the operator's own",
                        directory / name, ", ".join(readable))
            continue
        problems.append(Problem(str(directory / name), "(file name)",
                                f"not a policy file, so it is never read and the shipped policy applies; "
                                f"{hint}the policy directory holds: {', '.join(readable)}"))
    return problems


def load_policies(settings) -> Policies:
    from .classify import OPERATOR_RULE_GLOB, RELAY_REPLIES_FILE, RULE_FILE, Classifier, RelayReplies, rule_files
    from .delivery.tls_policy import TLS_POLICY_FILE, TlsPolicies
    from .delivery.routing import ROUTES_FILE, Routing
    from .domains import DomainPolicies
    from .shaping.policy import SHAPING_FILE, load_shaping
    from .suppression import SuppressionPolicy

    directory = Path(settings.policies)
    upstream = getattr(settings, "upstream", None)
    mode = upstream.mode if upstream is not None else "smarthost"
    problems = []
    results = {}
    policy_files = (RULE_FILE, "suppression.yaml", "domains.yaml", RELAY_REPLIES_FILE, TLS_POLICY_FILE,
                    SHAPING_FILE, ROUTES_FILE)
    loaders = {
        "classifier": lambda: Classifier.from_files(rule_files(directory)),
        "suppression": lambda: SuppressionPolicy.from_file(policy_file(directory, "suppression.yaml")),
        "domains": lambda: DomainPolicies.from_file(policy_file(directory, "domains.yaml")),
        "relay_replies": lambda: RelayReplies.from_file(policy_file(directory, RELAY_REPLIES_FILE)),
        "tls": lambda: TlsPolicies.from_file(policy_file(directory, TLS_POLICY_FILE)),
        "shaping": lambda: load_shaping(policy_file(directory, SHAPING_FILE)),
        "routing": lambda: Routing.from_file(policy_file(directory, ROUTES_FILE), mode),
    }
    for name, load in loaders.items():
        try:
            results[name] = load()
        except ConfigError as exc:
            problems.extend(exc.problems)
    problems.extend(unknown_policy_files(directory, policy_files, OPERATOR_RULE_GLOB))
    if problems:
        raise ConfigError(problems)
    if getattr(settings, "nearest_fallback", True):
        from .nearest import SHIPPED

        results["nearest"] = SHIPPED  # built at the first lookup, or by Policies.prepare()
    return Policies(directory=directory, **results)


@functools.cache
def shipped_policies() -> Policies:
    """The shipped policy directory, loaded once (`relay classify` without -c)."""
    from .classify import default_classifier, default_relay_replies
    from .domains import DomainPolicies
    from .nearest import SHIPPED
    from .shaping.policy import shipped_shaping
    from .suppression import load_default

    return Policies(directory=SHIPPED_POLICIES, classifier=default_classifier(), suppression=load_default(),
                    domains=DomainPolicies.from_file(SHIPPED_POLICIES / "domains.yaml"),
                    relay_replies=default_relay_replies(), shaping=shipped_shaping(), nearest=SHIPPED)
