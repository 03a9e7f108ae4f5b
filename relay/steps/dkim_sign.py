"""DKIM signing at end of DATA: one DKIM-Signature per key of the sender domain.

The signing domain (d=) is the domain of the From: header, so the signature is
aligned for DMARC (RFC 7489 3.1.1); without a usable From: it is the envelope
sender's domain. Its entry in domains.yaml lists the keys; each key adds one
signature (say RSA-2048 and Ed25519 side by side, RFC 8463 asks for both while
receivers learn Ed25519).

Refusals, when the domain has `dkim_required: true`:
- no key configured for it (or no domain to sign for): `550 5.7.1`, kind
  policy_rejected. This is the operator's stated policy, not a passing fault,
  and a retry cannot change it.
- every configured key failed to sign (a fault, not a policy): `451 4.7.0`
  deferred, so the client MTA keeps the message and retries.
Without `dkim_required`, a failing key is logged and the message goes on with
the signatures that did work (or unsigned).

A From: that cannot be read (longer than MAX_FROM characters unfolded, or nested
past what the address parser can follow) is refused with `554 5.6.0` whenever the
sender domain must be known (domains.yaml has entries), whatever the domain: its
domain cannot be told, and guessing could sign for the wrong one.

Only mail of our own clients is signed (Session.may_relay: inside clients.networks,
logged in, or a local submission on milter.non_smtpd_listen). Relay mode refuses
anyone else; a milter also sees the world's mail (Postfix's smtpd_milters cover
port 25), and a signature there would vouch for a forgery of our domain (review26
F1). Such mail passes unsigned and unrefused, whatever `dkim_required` says (it may
be inbound mail to a local mailbox); one claiming a domain we sign for is logged
and counted (relay_dkim_unsigned_total{reason="untrusted_client"}). OpenDKIM does the
same with InternalHosts and authenticated senders.

Bodies larger than THREAD_THRESHOLD are hashed in a worker thread: the body
hash of a multi-megabyte message would otherwise stop the event loop for
milliseconds (6 ms for 10 MiB as it is, 50 ms when relaxed rewrites it). The
hashing has a deadline (HASH_DEADLINE): past it the message is treated as if
every key had failed to sign (451 when the domain requires DKIM).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from email.utils import getaddresses

from .. import dkim as dkimlib
from ..address import ATEXT
from ..decision import CONTINUE, Decision, defer, reject
from ..logsample import SampledLog
from ..pipeline import Message, Step, Transaction
from ..users import may_use

log = logging.getLogger("relay.dkim")

THREAD_THRESHOLD = 256 * 1024
# Far above what hashing takes (0.2 s for a 36 MiB body rewritten by "relaxed"): only a thread pool
# with every worker stuck, or a machine far overloaded, reaches it.
HASH_DEADLINE = 30.0


def _domain_of(address: str | None) -> str | None:
    if not address:
        return None
    address = address.strip().strip("<>").strip()
    if "@" not in address:
        return None
    domain = address.rpartition("@")[2].strip().rstrip(".")
    return domain or None


# RFC 5322 3.4: a From: of one plain address (dot-atom local part, LDH labels), bare or in angle
# brackets after a display name of letters, digits and spaces: what most mail carries. Its domain
# is read without email.utils' parser (~15 us a message); anything else (quotes, comments, groups,
# several authors, an IDN) goes to the parser.
_ADDR = rf"{ATEXT}+(?:\.{ATEXT}+)*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)"
_PLAIN_FROM = re.compile(rf"[A-Za-z0-9 ]*<{_ADDR}>|{_ADDR}")


# The longest From: value (unfolded) whose domain is read. email.utils' parser, in pure Python, costs
# up to 2 us a character on hostile text ("@" * n: 3.9 ms at 2,048 on this machine) and runs on the
# event loop; a 1 MB From: held the loop 2-4 s, a 30 MB one about a minute. Real From: fields are one
# or a few authors, far below this (RFC 5322 2.1.1 asks for lines of at most 78 characters).
MAX_FROM = 2048


class UnreadableFrom(ValueError):
    """A From: value whose domain cannot be read at a bounded cost."""


def from_domain(from_value: str) -> str | None:
    """The domain of the first author in a From: value, None when it names none. UnreadableFrom when
    the value is longer than MAX_FROM, or nested deeper than the parser can recurse ("(" * 1000:
    comments and groups nest, RFC 5322 3.2.2, and email.utils follows them by recursion)."""
    from_value = from_value.strip()
    if len(from_value) > MAX_FROM:
        raise UnreadableFrom(f"From: is {len(from_value)} characters long (at most {MAX_FROM} are read)")
    m = _PLAIN_FROM.fullmatch(from_value)
    if m is not None:
        return m.group(1) or m.group(2)
    try:
        addresses = getaddresses([from_value])
    except RecursionError:
        raise UnreadableFrom("From: is nested too deeply to read") from None
    for _, address in addresses:
        domain = _domain_of(address)
        if domain:
            return domain
    return None


def signing_domain(txn: Transaction, message: Message) -> str | None:
    """The From: header's domain (the first author when there are several),
    else the envelope sender's; None when neither names a domain."""
    from_value = message.header("From")
    if from_value:
        domain = from_domain(from_value)
        if domain:
            return domain
    return _domain_of(txn.mail_from)


def _body_digests(data, start: int, canonicalizations: list[str]) -> dict[str, bytes]:
    """The body hash of `data[start:]` for each canonicalisation, in one worker thread's turn."""
    return {canon: dkimlib.body_hash(data, canon, start=start) for canon in canonicalizations}


class _Hashing:
    """The body hashes of one message, under way in a worker thread."""

    def __init__(self, data, start: int, canonicalizations: list[str]):
        self._of = (data, start, canonicalizations)
        self.task = asyncio.ensure_future(asyncio.to_thread(_body_digests, data, start, canonicalizations))
        # Nobody may wait for it (DATA refused, the client gone): its failure is not news then.
        self.task.add_done_callback(lambda task: task.cancelled() or task.exception())

    def of(self, data, start: int, canonicalizations: list[str]) -> bool:
        """Whether these are the hashes of this very message (the same object), from `start`."""
        return self._of[0] is data and self._of[1:] == (start, canonicalizations)


def _canonicalizations(keys) -> list[str]:
    """The body canonicalisations the keys sign with: one body hash each."""
    return sorted({key.body_canonicalization for key in keys})


def _algorithm(key) -> str:
    """The key's a= value for a metric label; a key that cannot even say it (the very fault that
    made signing fail) is "unknown"."""
    try:
        return key.algorithm
    except Exception:
        return "unknown"


class DkimSignStep(Step):
    name = "dkim_sign"

    def __init__(self, settings, policies, thread_threshold: int = THREAD_THRESHOLD,
                 hash_deadline: float = HASH_DEADLINE, metrics=None):
        self.settings = settings
        self.policies = policies
        self.thread_threshold = thread_threshold
        self.hash_deadline = hash_deadline
        self.metrics = metrics
        # Anyone on the internet can send such mail at will: counted in full, logged at most once a minute.
        self._untrusted_log = SampledLog(log)

    def _policy(self, txn: Transaction, message: Message):
        """The signing policy of the message's sender domain (domains.yaml), or None."""
        domains = getattr(self.policies, "domains", None)
        return domains.get(signing_domain(txn, message)) if domains is not None else None

    def prepare_data(self, txn: Transaction, message: Message) -> None:
        """A large body's hash starts in a thread while the upstream's 354 is awaited; on_data
        takes it if it was for the same bytes and canonicalisations, else hashes again."""
        if not txn.session.may_relay:
            return  # never signed (on_data)
        try:
            policy = self._policy(txn, message)
        except UnreadableFrom:
            return  # on_data refuses the message
        if policy is None or not policy.dkim or not policy.domain:
            return
        data = message.original
        _, start = dkimlib.body_offset(data)
        if len(data) - start > self.thread_threshold:
            message.prepared[self.name] = _Hashing(data, start, _canonicalizations(policy.dkim))

    async def on_data(self, txn: Transaction, message: Message) -> Decision:
        txn.notes["dkim"] = []
        if not txn.session.may_relay:
            self._untrusted(txn, message)
            return CONTINUE
        try:
            policy = self._policy(txn, message)
        except UnreadableFrom as exc:
            # RFC 3463 5.6.0: other or undefined media error; the message itself is at fault, and
            # sending it again cannot change that.
            log.info("refusing a message whose From: cannot be read: %s (transaction %s)", exc, txn.id)
            return reject(554, "5.6.0", f"Message refused: {exc}", kind="policy_rejected",
                          cause="unreadable-from")
        if policy is None:
            return CONTINUE
        domain = policy.domain  # lower-case A-labels, as d= wants them
        allowed = txn.session.sender_domains
        if allowed is not None and not may_use(allowed, domain):
            # A signature says the domain stands behind the message: never for a login that does
            # not own the domain its From: names (that would sign a forgery).
            log.warning("not signing for d=%s: login %r may not use it (transaction %s)", domain,
                        txn.session.auth_user, txn.id)
            if policy.dkim_required:
                return reject(550, "5.7.1", f"Message refused: user {txn.session.auth_user} may not send "
                                            f"as {domain} (From:)", kind="policy_rejected", domain=domain,
                              dkim="not_authorised")
            return CONTINUE
        if not policy.dkim or not domain:
            if policy.dkim_required:
                why = (f"no DKIM key is configured for {domain}" if domain
                       else "the message names no sender domain to sign for")
                return reject(550, "5.7.1", f"Message refused: {why}, and this relay must sign it",
                              kind="policy_rejected", cause="dkim-no-key", domain=domain, dkim="no_key")
            return CONTINUE

        started = time.perf_counter()
        data = message.original
        _, start = dkimlib.body_offset(data)
        digests: dict[str, bytes] = {}
        keys = policy.dkim
        if len(data) - start > self.thread_threshold:
            canons = _canonicalizations(keys)
            hashing = message.prepared.pop(self.name, None)
            if hashing is None or not hashing.of(data, start, canons):
                hashing = _Hashing(data, start, canons)
            try:
                async with asyncio.timeout(self.hash_deadline):
                    digests = await hashing.task
            except TimeoutError:
                log.warning("DKIM body hash of %d bytes not done within %g s: not signing for d=%s "
                            "(transaction %s)", len(data) - start, self.hash_deadline, domain, txn.id)
                for key in keys:
                    self._count(_algorithm(key), "failed")
                keys = []

        signatures: list[bytes] = []
        signed: list[dict] = []
        for key in keys:
            try:
                # Fields another step marked for removal (forged Authentication-Results)
                # do not leave: they must not be signed or counted.
                signatures.append(dkimlib.sign(data, key, domain, body_digest=digests.get(key.body_canonicalization),
                                               skip_fields=message.removed_headers))
            except Exception:
                log.exception("DKIM signing failed for d=%s s=%s (transaction %s)", domain, key.selector, txn.id)
                self._count(_algorithm(key), "failed")
                continue
            self._count(key.algorithm, "ok")
            signed.append({"domain": domain, "selector": key.selector, "algorithm": key.algorithm})
        if self.metrics is not None:
            self.metrics.observe("relay_dkim_sign_seconds", time.perf_counter() - started)

        if not signatures and policy.dkim_required:
            return defer(451, "4.7.0", "Temporary local problem signing the message (DKIM), please try again later",
                         kind="deferred", cause="dkim-sign-failed", domain=domain, dkim="sign_failed")
        # prepend() puts each new field on top; prepending in reverse keeps the
        # signatures in the order the keys are listed.
        for signature in reversed(signatures):
            message.prepend(signature)
        txn.notes["dkim"] = signed
        return CONTINUE

    def _untrusted(self, txn: Transaction, message: Message) -> None:
        """A message of a client that is not ours is not signed: logged and counted when its From:
        names a domain we sign for (a forgery, or a client missing from clients.networks or not
        logged in), silently otherwise (the world's inbound mail)."""
        try:
            policy = self._policy(txn, message)
        except UnreadableFrom:
            return
        if policy is None or not policy.dkim or not policy.domain:
            return
        self._untrusted_log.warning("untrusted-client", "not signing for d=%s: client %s is outside clients.networks "
                                    "and not logged in (transaction %s)", policy.domain, txn.session.peer_ip, txn.id)
        if self.metrics is not None:
            self.metrics.inc("relay_dkim_unsigned_total", reason="untrusted_client")

    def _count(self, algorithm: str, result: str) -> None:
        if self.metrics is not None:
            self.metrics.inc("relay_dkim_signatures_total", algorithm=algorithm, result=result)
