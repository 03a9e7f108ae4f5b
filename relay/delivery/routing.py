"""policies/routes.yaml: per recipient domain, the smarthost or the domain's MX (like
Postfix's transport map).

    default: mx               # smarthost | mx; absent: upstream.mode
    domains:
      example.org: smarthost  # this domain exactly
      .corp.example: smarthost  # every subdomain of corp.example (not corp.example itself)

The most specific entry wins: the domain itself, then `.parent` entries from the
nearest parent up, then `default`. A `smarthost` route needs a smarthost: the
config's `upstream` in mode smarthost (its host, port, TLS and login).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Problems
from ..yamlfile import given as _given, load_yaml

ROUTES_FILE = "routes.yaml"
ROUTE_KINDS = ("smarthost", "mx")
_LABEL = r"(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)"
_DOMAIN = re.compile(rf"^\.?{_LABEL}(?:\.{_LABEL})*$")


@dataclass(frozen=True)
class Routing:
    default: str = "smarthost"
    domains: dict[str, str] = field(default_factory=dict)  # lower-case name or ".suffix" -> kind
    file: str = ""

    def route_for(self, domain: str) -> str:
        """`smarthost` or `mx` for a recipient domain."""
        name = domain.lower().rstrip(".")
        kind = self.domains.get(name)
        if kind is not None:
            return kind
        labels = name.split(".")
        for i in range(1, len(labels)):
            kind = self.domains.get("." + ".".join(labels[i:]))
            if kind is not None:
                return kind
        return self.default

    @property
    def uses_mx(self) -> bool:
        return self.default == "mx" or "mx" in self.domains.values()

    @classmethod
    def from_file(cls, path: Path | str, mode: str = "smarthost") -> "Routing":
        """Read and validate routes.yaml for an upstream in `mode` (smarthost | mx)."""
        path = Path(path)
        problems = Problems(str(path))
        data = load_yaml(path)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            problems.add("(file)", "expected a mapping with `default:` and `domains:`")
            problems.raise_if_any()
        problems.unknown_keys(data, {"version", "default", "domains"})
        problems.check_version(data)
        default = data.get("default") or mode
        if default not in ROUTE_KINDS:
            problems.add("default", f"{default!r} is not one of {', '.join(ROUTE_KINDS)}")
            default = mode
        elif default == "smarthost" and mode == "mx":
            problems.add("default", _NO_SMARTHOST)
        domains: dict[str, str] = {}
        raw = _given(data.get("domains"), {})
        if not isinstance(raw, dict):
            problems.add("domains", "expected a mapping of domain to smarthost or mx")
            raw = {}
        for name, kind in raw.items():
            key = f"domains.{name}"
            text = str(name).lower().rstrip(".") if isinstance(name, str) else ""
            if not _DOMAIN.match(text) or len(text) > 254:
                problems.add(key, f"{name!r} is not a domain name (or .domain for its subdomains)")
            elif kind not in ROUTE_KINDS:
                problems.add(key, f"{kind!r} is not one of {', '.join(ROUTE_KINDS)}")
            elif kind == "smarthost" and mode == "mx":
                problems.add(key, _NO_SMARTHOST)
            elif text in domains:
                problems.add(key, f"{text} is named twice")
            else:
                domains[text] = kind
        problems.raise_if_any()
        return cls(default, domains, str(path))


_NO_SMARTHOST = ("smarthost needs a smarthost, and upstream.mode is mx (there is none); to send most mail to "
                 "MX hosts and some through a smarthost, configure the smarthost (upstream.mode: smarthost, "
                 "upstream.host) and write `default: mx` here")
