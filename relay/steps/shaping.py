"""Traffic shaping at RCPT, and the reaction to every reply the next hop sends (policies/shaping.yaml).

At RCPT: while the recipient's destination is held for this sender (the provider pushed back),
slowed past its rate, or past the sender's warm-up cap, the relay answers the client itself with
a 451 that says which provider, why and until when, and the provider is never asked: pushing on
after a throttling reply is what makes a provider throttle harder. The client MTA keeps the
message and retries (RFC 5321 4.2.1: 4yz is transient), so nothing is lost. The answer is 451,
not the provider's 421, because 421 would close a session whose other recipients may go.

Every upstream reply is reported here by the upstream step (`upstream_replied`): one a reaction
matches strikes the destination (hold, slow down), a 250 to the final dot decays it. A 250 to RCPT
counts towards the destination's rate (an attempt); a 250 to the final dot counts the message as sent
for its sender's warm-up cap. A recipient the check lets through holds its place in both from the
check on (Shaper.admit), so that transactions under way at once cannot overshoot a limit: the place
becomes a count at the next hop's 250 and is given back on anything else (another reply, a broken
connection, the client gone: `after_rcpt`; RSET or the end of the transaction: `reset_now`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..decision import CONTINUE, Decision, Reply, defer
from ..pipeline import Step, Transaction
from ..shaping.destinations import ascii_domain, destination_of
from ..shaping.policy import Destination, ShapingPolicy
from ..shaping.shaper import Place, Shaper, iso_time


@dataclass
class ShapingNotes:
    """What the step learnt of one transaction: the sender domain it is judged by, and each
    recipient's destination (the replies to MAIL and DATA concern all of them)."""

    sender_domain: str
    destinations: dict[str, Destination] = field(default_factory=dict)  # recipient -> destination
    struck: set[str] = field(default_factory=set)  # destinations whose records had strikes at RCPT
    # The place of the recipient whose RCPT is under way (Shaper.admit), until the next hop answers it.
    placed: dict[str, Place] = field(default_factory=dict)
    # One per recipient the next hop accepted at RCPT (Shaper.counted), until the reply to the final
    # dot says whether the message was sent (Shaper.delivered) or not (Shaper.released).
    counted: list[Place] = field(default_factory=list)


class ShapingStep(Step):
    name = "shaping"

    def __init__(self, settings, policy: ShapingPolicy, shaper: Shaper, mx_host_of=None):
        self.settings = settings
        self.policy = policy
        self.shaper = shaper
        # MX delivery: `await mx_host_of(domain)` is the MX host mail for the domain goes to (None: the
        # smarthost, or no route), so that the destination is the provider that host belongs to.
        self.mx_host_of = mx_host_of

    def _notes(self, txn: Transaction) -> ShapingNotes:
        notes = txn.notes.get("shaping")
        if notes is None:
            # The null sender's mail is judged by the HELO name (RFC 7208 2.3): ours.
            domain = txn.mail_from.rpartition("@")[2] if "@" in txn.mail_from else self.settings.hostname
            notes = txn.notes["shaping"] = ShapingNotes(ascii_domain(domain))
        return notes

    async def destination(self, rcpt: str) -> Destination:
        domain = rcpt.rpartition("@")[2]
        mx_host = await self.mx_host_of(domain) if self.mx_host_of is not None else None
        return await destination_of(self.policy, domain, mx_host=mx_host, resolver=self.shaper.resolver)

    async def on_rcpt(self, txn: Transaction, rcpt: str) -> Decision:
        if "@" not in rcpt:
            return CONTINUE  # postmaster: no destination to shape
        notes = self._notes(txn)
        dest = await self.destination(rcpt)
        refusal, place = await self.shaper.admit(self.policy, dest, notes.sender_domain, struck=notes.struck)
        if refusal is not None:
            return defer(451, refusal.enhanced, refusal.text, kind="deferred", cause=refusal.cause,
                         shaping=refusal.detail)
        notes.destinations[rcpt] = dest
        notes.placed[rcpt] = place
        return CONTINUE

    def after_rcpt(self, txn: Transaction, rcpt: str) -> None:
        """The RCPT is answered: a place the next hop's 250 did not turn into a count is free again (it
        refused, the connection broke, the client went away before the reply)."""
        notes = txn.notes.get("shaping")
        place = notes.placed.pop(rcpt, None) if notes is not None else None
        if place is not None:
            self.shaper.released(place)

    # -- what the upstream says (relay.steps.upstream reports every reply) ------------------------

    async def upstream_replied(self, txn: Transaction, stage: str, rcpt: str | None, reply: Reply) -> dict | None:
        """React to one upstream reply; returns the `shaping` field for the reply's own event when
        it held or slowed a destination."""
        notes = txn.notes.get("shaping")
        if notes is None or reply.source != "upstream":
            return None
        if rcpt is not None:
            # A reply for one recipient: its RCPT, or (MX delivery, where the first RCPT opens the
            # transaction) the greeting or MAIL that recipient's destination answered.
            dest = notes.destinations.get(rcpt) or await self.destination(rcpt)
            targets = [dest]
            if stage == "rcpt" and reply.positive:
                # A recipient the check never placed (a bare postmaster) is counted all the same.
                place = notes.placed.pop(rcpt, None) or self.shaper.take(dest, notes.sender_domain)
                self.shaper.counted(place)
                notes.counted.append(place)
                return None
            if not reply.positive:
                place = notes.placed.pop(rcpt, None)
                if place is not None:
                    self.shaper.released(place)
        else:
            # MAIL and DATA answer for the whole transaction: every destination of its recipients.
            targets = list({d.name: d for d in notes.destinations.values()}.values())
        if stage == "data" and reply.code == 250:
            # The message was sent: to each recipient the next hop accepted (a warm-up cap counts these).
            for place in notes.counted:
                self.shaper.delivered(place)
            notes.counted.clear()
            # Only a destination that had strikes at RCPT can have one old enough to decay now:
            # the common success costs no read of the store.
            for dest in targets:
                if dest.name in notes.struck:
                    await self.shaper.succeeded(self.policy, dest, notes.sender_domain)
            return None
        if reply.positive:
            return None
        struck = None
        for dest in targets:
            reaction = dest.reaction_for(reply, stage)
            if reaction is not None:
                record = await self.shaper.strike(dest, notes.sender_domain, reaction, reply)
                struck = struck or record
        if struck is None:
            return None
        return {"shaping": {"destination": struck.destination, "key": struck.key,
                            "sender_domain": struck.sender_domain or None, "rule": struck.rule,
                            "reason": struck.reason, "until": iso_time(struck.until), "strikes": struck.strikes,
                            **({"limit": f"{struck.rate:g} messages a minute"} if struck.rate is not None else {})}}

    async def on_reset(self, txn: Transaction) -> None:
        self.reset_now(txn)

    def reset_now(self, txn: Transaction) -> None:
        """The transaction ended without the next hop's 250 to its final dot for the recipients still
        counted (a 4xx or 5xx at DATA, RSET, a dropped client): their places in the warm-up cap are free,
        as is any place still waiting for its RCPT's reply."""
        notes = txn.notes.get("shaping")
        if notes is not None:
            for place in (*notes.placed.values(), *notes.counted):
                self.shaper.released(place)
            notes.placed.clear()
            notes.counted.clear()

    # No close(): the shaper is the process's (relay.server.Resources), shared by reloaded pipelines.
