"""Which destination (policies/shaping.yaml) a recipient's mail goes to: the one place that decides.

- MX mode: the delivery knows the MX host it chose; pass it as `mx_host` and the destination is
  the one answering on that host (`*.google.com`), whatever the recipient domain is called.
- Smarthost mode: the relay never sees the recipient's MX. The recipient domain decides
  (`domains:`); with `mx_lookup: true` in shaping.yaml, a domain no destination names is looked
  up (MX, through the relay's resolver and its cache) so that a Workspace or Microsoft 365
  domain shares its provider's bucket. A lookup that fails is no reason to refuse mail: the
  domain is then a destination of its own.
"""

from __future__ import annotations

import logging

from ..dns import DnsTemporaryError
from .policy import Destination, ShapingPolicy

log = logging.getLogger("relay.shaping")


def ascii_domain(domain: str) -> str:
    """The domain as shaping.yaml's names are kept (lower-case A-labels), so that an SMTPUTF8 domain
    finds its entry and the relay's replies stay ASCII (RFC 5321 4.2); as it came when it is no
    domain name at all (an address literal: a destination of its own)."""
    from ..domains import normalise_domain

    try:
        return normalise_domain(domain)
    except ValueError:
        return domain.lower().rstrip(".").encode("ascii", "backslashreplace").decode("ascii")


async def destination_of(policy: ShapingPolicy, recipient_domain: str, *, mx_host: str | None = None,
                         resolver=None) -> Destination:
    domain = ascii_domain(recipient_domain)
    if mx_host is not None:
        dest = policy.by_mx(mx_host)
        if dest is not None:
            return dest
    named = policy.by_domain(domain)
    if named is not None:
        return named
    if mx_host is None and policy.mx_lookup and resolver is not None and policy.has_mx_patterns:
        try:
            exchanges = await resolver.mx(domain)
        except DnsTemporaryError as exc:
            log.info("shaping: no MX for %s (%s); it is a destination of its own", domain, exc)
            exchanges = []
        for _preference, host in exchanges[:1]:  # the most preferred MX: where mail goes first
            dest = policy.by_mx(host)
            if dest is not None:
                return dest
    return policy.for_domain(domain)
