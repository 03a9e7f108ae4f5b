"""MAIL: the envelope sender goes upstream as a VERP return path on the sender domain's bounce domain
(domains.yaml `verp:`), so that later bounces come to `bounces_in` tied to this transaction."""

from __future__ import annotations

from ..decision import CONTINUE, Decision
from ..errors import ConfigError, Problem
from ..intake.verp import VerpCodec
from ..pipeline import Step, Transaction


class VerpStep(Step):
    name = "verp"

    def __init__(self, settings, policies):
        self.domains = policies.domains
        bounces = settings.bounces_in
        self.codec = VerpCodec(bounces.key) if bounces is not None and bounces.key else None

    async def on_mail(self, txn: Transaction) -> Decision:
        sender = txn.mail_from
        if not sender or "@" not in sender or self.codec is None:
            return CONTINUE  # the null sender is a bounce itself: never rewritten (RFC 5321 4.5.5)
        policy = self.domains.get(sender.rpartition("@")[2])
        if policy is None or policy.verp is None:
            return CONTINUE
        txn.return_path = self.codec.return_path(sender, txn.id, policy.verp)
        return CONTINUE


def verp_problems(settings, policies) -> list[Problem]:
    """A sender domain with `verp:` needs `bounces_in` with a key and that bounce domain: without them
    the return path could not be made, or its bounces would be refused."""
    problems = []
    source = getattr(policies.domains, "source", "domains.yaml")
    bounces = settings.bounces_in
    for domain in policies.domains.domains:
        policy = policies.domains.get(domain)
        if policy is None or policy.verp is None:
            continue
        where = f"{domain}.verp"
        if bounces is None or not bounces.key:
            problems.append(Problem(source, where, "needs bounces_in.key_file in the config (the key of the "
                                                   "return paths' tokens)"))
        elif not bounces.accepts(policy.verp):
            problems.append(Problem(source, where, f"{policy.verp} is not one of bounces_in.domains "
                                                   f"({', '.join(bounces.domains)})"))
    return problems


def check_verp(settings, policies) -> None:
    problems = verp_problems(settings, policies)
    if problems:
        raise ConfigError(problems)
