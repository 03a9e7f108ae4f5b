"""The policy directory: bounce rules, suppression, per-domain settings and traffic shaping.

Loaded at start and on SIGHUP. A reload that fails keeps the policies that are
running: the caller only swaps in a fully validated Policies object.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from .config import SHIPPED_POLICIES
from .errors import ConfigError

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

    def about(self, recipient: str) -> bool:
        """True when this refusal is about `recipient`'s address (recipient scope, and at
        DATA the recipient the reply names)."""
        return self.scope == "recipient" and recipient.lower() in (r.lower() for r in self.recipients)

    def concerns(self, recipient: str) -> bool:
        """True when this refusal may touch `recipient`'s bounce-list record."""
        return self.bounce_list != "never" and self.about(recipient)


def named_recipient(text: str, recipients: Sequence[str]) -> str | None:
    """The one recipient of `recipients` that `text` names, or None (none, or several)."""
    lowered = text.lower()
    found = None
    for rcpt in recipients:
        needle = rcpt.lower()
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
            if found is not None and found.lower() != needle:
                return None  # names more than one: about the message, not one address
            found = rcpt
    return found


# Stages where no recipient exists yet: a reply there can be about nobody's address.
_NO_RECIPIENT_YET = {"connect": "session", "helo": "session", "mail": "sender"}


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

    def judge(self, reply, stage: str | None = None, recipients: Sequence[str] = ()) -> Judgement:
        """Classification, attribution and the bounce-list effect of one reply (DESIGN.md,
        "the one funnel"). `stage` is the SMTP stage the reply answered (None: unknown);
        `recipients` are the transaction's recipients it may concern."""
        from .classify import default_relay_replies, unwrapped_text

        if reply.source == "relay":
            # The relay's own reply: classified by the code path that made it (its cause),
            # never by provider rules; it is about our side, never an address, except where its
            # cause says it is about the recipient (relay-replies.yaml `scope: recipient`: what
            # DNS says of the recipient's domain when we deliver to its MX).
            relay_replies = self.relay_replies or default_relay_replies()
            classification = relay_replies.classify(reply)
            if classification.scope != "recipient":
                return Judgement(classification, "relay", "never")
        else:
            classification = self.classifier.classify(reply, stage)
        scope = classification.scope
        concerned: tuple[str, ...] = tuple(recipients)
        if scope == "recipient":
            if stage in _NO_RECIPIENT_YET:
                scope, concerned = _NO_RECIPIENT_YET[stage], ()
            elif stage == "data":
                # One reply answers the final dot for every recipient (RFC 5321 4.1.1.4): it is
                # about the message unless its text names one recipient of the transaction.
                named = named_recipient(unwrapped_text(reply), recipients)
                if named is None:
                    scope, concerned = "message", ()
                else:
                    concerned = (named,)
        if scope != classification.scope:
            classification = replace(classification, scope=scope)
        if scope != "recipient":
            return Judgement(classification, scope, "never")
        return Judgement(classification, scope,
                         self.suppression.bounce_list(classification.category, classification.permanent),
                         concerned)


def policy_file(directory: Path, name: str) -> Path:
    """The operator's file if the directory has one, else the shipped one."""
    own = directory / name
    return own if own.is_file() else SHIPPED_POLICIES / name


def load_policies(settings) -> Policies:
    from .classify import RELAY_REPLIES_FILE, Classifier, RelayReplies, rule_files
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
    if problems:
        raise ConfigError(problems)
    return Policies(directory=directory, **results)


@functools.cache
def shipped_policies() -> Policies:
    """The shipped policy directory, loaded once (`relay classify` without -c)."""
    from .classify import default_classifier, default_relay_replies
    from .domains import DomainPolicies
    from .shaping.policy import shipped_shaping
    from .suppression import load_default

    return Policies(directory=SHIPPED_POLICIES, classifier=default_classifier(), suppression=load_default(),
                    domains=DomainPolicies.from_file(SHIPPED_POLICIES / "domains.yaml"),
                    relay_replies=default_relay_replies(), shaping=shipped_shaping())
