"""Per sender domain policy: policies/domains.yaml -> DomainPolicies.

```yaml
example.com:
  dkim:
    - {selector: s2026, key: /etc/relay/dkim/example.com.s2026.key}
    - {selector: e2026, key: /etc/relay/dkim/example.com.e2026.key, expire: 7d}
  dkim_required: true      # no usable key -> 550 5.7.1 instead of sending unsigned
  spf: reject              # reject | tempfail | warn | off (default off)
"*":                        # optional: the policy of every domain without its own entry
  spf: warn
```

Keys are read and parsed here, at load (and so at every reload): a missing,
unreadable or malformed key is a config error naming the file and the key, not
a surprise on the first message. Every problem in the file is collected before
one ConfigError is raised.

A domain with no entry (and no "*" entry) is neither signed nor SPF-checked:
`get()` returns None and the steps do nothing. Entries match the domain exactly
(case-insensitively, U-labels and A-labels alike), not its subdomains: a
signature for a parent domain would need its own key in DNS anyway.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from . import dkim as dkimlib
from .address import split as split_address
from .config import parse_duration
from .errors import ConfigError, Problems
from .yamlfile import load_yaml

log = logging.getLogger(__name__)

SPF_MODES = ("reject", "tempfail", "warn", "off")
DOMAIN_KEYS = ("dkim", "dkim_required", "spf", "verp")
KEY_KEYS = ("selector", "key", "algorithm", "canonicalization", "headers", "expire")
WILDCARD = "*"


def domain_entries(data: dict, problems: Problems) -> Iterator[tuple[str, str, Any]]:
    """The entries of a policy file keyed by domain (domains.yaml, tls.yaml): (the key as written, the
    domain normalised or "*", the value). A key that is no domain name, or the same domain spelled
    twice (names match case-insensitively), is a problem and skipped. `version:` is the file's format,
    as in every policy file (Problems.check_version), never a domain: `version` is no domain mail goes to
    (a single label, RFC 5321 2.3.5), and read as one, `version: 1` was an entry "expected a mapping"."""
    problems.check_version(data)
    spelled: dict[str, str] = {}
    for raw, spec in data.items():
        if raw == "version":
            continue
        name = str(raw)
        if name == WILDCARD:
            domain = WILDCARD
        else:
            try:
                domain = normalise_domain(name)
            except ValueError as exc:
                problems.add(name, f"not a domain name: {exc}")
                continue
            if domain in spelled:
                problems.add(name, f"the same domain as {spelled[domain]!r} (names match case-insensitively)")
                continue
        spelled[domain] = name
        yield name, domain, spec


@dataclass(frozen=True)
class DomainPolicy:
    domain: str  # A-label, lower case; the queried domain when it came from "*"
    dkim: tuple[dkimlib.DkimKey, ...] = ()
    dkim_required: bool = False
    spf: str = "off"
    from_wildcard: bool = False
    # VERP: the bounce domain of this sender domain's return paths (relay/intake/verp.py); None: the
    # envelope sender goes upstream unchanged.
    verp: str | None = None

    @property
    def signs(self) -> bool:
        return bool(self.dkim)


class DomainPolicies:
    def __init__(self, policies: dict[str, DomainPolicy], source: str = "<built-in>"):
        self._policies = dict(policies)
        self.source = source

    @property
    def domains(self) -> list[str]:
        return sorted(d for d in self._policies if d != WILDCARD)

    def __len__(self) -> int:
        return len(self._policies)

    def get(self, domain: str | None) -> DomainPolicy | None:
        """The policy for `domain` (case-insensitive, IDN-aware), else the "*" one, else None."""
        try:
            key = normalise_domain(domain) if domain else None
        except ValueError:
            key = None  # not a domain name: only "*" can apply, and it cannot sign for it
        if key is not None and key in self._policies:
            return self._policies[key]
        wildcard = self._policies.get(WILDCARD)
        if wildcard is None:
            return None
        return DomainPolicy(domain=key or "", dkim=wildcard.dkim, dkim_required=wildcard.dkim_required,
                            spf=wildcard.spf, from_wildcard=True, verp=wildcard.verp)

    @classmethod
    def from_file(cls, path: str | Path) -> "DomainPolicies":
        path = Path(path)
        data = load_yaml(path)  # ConfigError naming the file (and line) when unreadable or not YAML
        return cls.from_dict(data, str(path), base=path.resolve().parent)

    @classmethod
    def from_dict(cls, data: Any, file: str = "<dict>", base: Path | None = None) -> "DomainPolicies":
        problems = Problems(file)
        base = base or Path.cwd()
        if data is None:
            data = {}
        if not isinstance(data, dict):
            problems.add("(top level)", f"expected a mapping of domain to policy, got {type(data).__name__}")
            problems.raise_if_any()
        policies: dict[str, DomainPolicy] = {}
        for name, domain, spec in domain_entries(data, problems):
            policy = _parse_domain(name, domain, spec, base, problems)
            if policy is not None:
                policies[domain] = policy
        problems.raise_if_any()
        return cls(policies, file)

    def __repr__(self) -> str:
        return f"DomainPolicies({self.source!r}, {len(self._policies)} domains)"


def normalise_domain(domain: str) -> str:
    """One spelling per domain: lower-case A-labels (the form in DNS and in d=).
    ValueError says why `domain` is not a domain name."""
    try:
        result = split_address(f"postmaster@{domain.strip()}")[1]
    except ValueError as exc:
        # address.split() speaks of the address; keep only the reason.
        why = str(exc).split("': ", 1)[-1]
        raise ValueError(why) from None
    if result.startswith("["):
        raise ValueError("an address literal is not a domain name")
    return result



def _parse_domain(name: str, domain: str, spec: Any, base: Path, problems: Problems) -> DomainPolicy | None:
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        problems.add(name, "expected a mapping such as {dkim: [{selector: s1, key: /path/key.pem}], spf: reject}")
        return None
    before = len(problems.items)
    problems.unknown_keys(spec, DOMAIN_KEYS, name)

    spf = spec.get("spf", "off")
    if spf is False:  # YAML 1.1 reads a bare `off` as false
        spf = "off"
    if spf not in SPF_MODES:
        problems.add(f"{name}.spf", f"{spf!r} is not one of {', '.join(SPF_MODES)}")

    required = spec.get("dkim_required", False)
    problems.check_bool(f"{name}.dkim_required", required)

    keys: list[dkimlib.DkimKey] = []
    entries = spec.get("dkim")
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        problems.add(f"{name}.dkim", "expected a list of keys such as [{selector: s1, key: /path/key.pem}]")
        entries = []
    selectors: set[str] = set()
    for i, entry in enumerate(entries):
        selector = entry.get("selector") if isinstance(entry, dict) else None
        if isinstance(selector, str):
            if selector.lower() in selectors:
                # Two keys cannot both be published at SELECTOR._domainkey.DOMAIN.
                problems.add(f"{name}.dkim[{i}].selector", f"selector {selector!r} is listed twice for this domain")
                continue
            selectors.add(selector.lower())
        key = _parse_key(f"{name}.dkim[{i}]", entry, base, problems)
        if key is not None:
            keys.append(key)
    verp = spec.get("verp")
    if verp is not None:
        try:
            verp = normalise_domain(str(verp))
        except ValueError as exc:
            problems.add(f"{name}.verp", f"{spec.get('verp')!r} is not a domain name: {exc} "
                                         f"(the bounce domain of the return paths, one of bounces_in.domains)")
    if len(problems.items) > before:
        return None
    return DomainPolicy(domain=domain, dkim=tuple(keys), dkim_required=required, spf=spf, verp=verp)


def valid_selector(selector: str) -> bool:
    # RFC 6376 3.1: selector = sub-domain *( "." sub-domain ), i.e. DNS labels.
    labels = selector.split(".")
    return all(
        0 < len(label) <= 63 and label.replace("-", "").replace("_", "").isalnum() and label.isascii()
        and not label.startswith("-") and not label.endswith("-")
        for label in labels
    )


def _parse_key(where: str, entry: Any, base: Path, problems: Problems) -> dkimlib.DkimKey | None:
    if not isinstance(entry, dict):
        problems.add(where, "expected a mapping such as {selector: s1, key: /path/key.pem}")
        return None
    before = len(problems.items)
    problems.unknown_keys(entry, KEY_KEYS, where)

    selector = entry.get("selector")
    if selector is None:
        problems.add(f"{where}.selector", "is required (the DNS name is SELECTOR._domainkey.DOMAIN)")
    elif not isinstance(selector, str) or not valid_selector(selector):
        problems.add(f"{where}.selector", f"{selector!r} is not a selector (DNS labels: letters, digits, hyphens)")

    path, private_key = None, None
    key_path = entry.get("key")
    if key_path is None:
        problems.add(f"{where}.key", "is required (path of the PEM private key)")
    elif not isinstance(key_path, str) or not key_path.strip():
        problems.add(f"{where}.key", f"expected a file path, got {key_path!r}")
    else:
        path, private_key = _load_key(f"{where}.key", key_path, base, problems)

    algorithm = entry.get("algorithm")
    if algorithm is not None:
        if algorithm not in dkimlib.ALGORITHMS:
            problems.add(f"{where}.algorithm", f"{algorithm!r} is not one of {', '.join(dkimlib.ALGORITHMS)}")
        elif private_key is not None and dkimlib.key_algorithm(private_key) != algorithm:
            problems.add(f"{where}.algorithm",
                         f"is {algorithm} but the key file holds a {dkimlib.key_algorithm(private_key)} key")

    header_c, body_c = "relaxed", "relaxed"
    canon = entry.get("canonicalization")
    if canon is not None:
        parts = str(canon).split("/")
        if len(parts) != 2 or any(p not in dkimlib.CANONICALIZATIONS for p in parts):
            # A lone "relaxed" means relaxed/simple in RFC 6376 3.5, which surprises
            # people; we ask for both halves instead.
            problems.add(f"{where}.canonicalization",
                         f"{canon!r}: expected HEADER/BODY, each simple or relaxed (e.g. relaxed/relaxed)")
        else:
            header_c, body_c = parts

    headers = dkimlib.DEFAULT_HEADERS
    if "headers" in entry:
        value = entry["headers"]
        if not isinstance(value, list) or not value or not all(
                isinstance(h, str) and h and all(33 <= ord(c) <= 126 and c != ":" for c in h) for h in value):
            problems.add(f"{where}.headers", "expected a list of header field names such as [From, To, Subject]")
        elif "from" not in {h.lower() for h in value}:
            problems.add(f"{where}.headers", "must include From (RFC 6376 5.4: From is always signed)")
        else:
            headers = tuple(value)

    expire = None
    if entry.get("expire") is not None:
        try:
            expire = parse_duration(entry["expire"])
            if expire < 1:
                raise ValueError("must be at least one second")
        except ValueError as exc:
            problems.add(f"{where}.expire", str(exc))

    if len(problems.items) > before:
        return None
    return dkimlib.DkimKey(selector=selector, private_key=private_key, headers=headers,
                           header_canonicalization=header_c, body_canonicalization=body_c,
                           expire=expire, source=str(path))


def _load_key(where: str, value: str, base: Path, problems: Problems) -> tuple[Path | None, Any]:
    """The private key of the file `value` names (relative to domains.yaml), read as every secret file
    is (relay/secretfile.py: a regular file of at most 64 KiB; a pasted PEM key is not echoed)."""
    from .secretfile import KEY_MAX_BYTES, SecretFileError, read_secret_file

    try:
        path, data = read_secret_file(value, base, "the private key", KEY_MAX_BYTES)
    except SecretFileError as exc:
        problems.add(where, str(exc))
        return None, None
    writable = _writable_by_others(path)
    if writable is not None:
        problems.add(where, f"file {path}: {writable}")
        return path, None
    try:
        return path, dkimlib.load_private_key(data)
    except ValueError as exc:
        problems.add(where, f"file {path}: {exc}")
        return path, None


def _writable_by_others(path: Path) -> str | None:
    """Why the key file's mode lets others than its owner change the key, or None; warns (once per
    load) when other users can read it.

    A key the group or others can write is one they can replace with their own: refused, as OpenDKIM
    does. A key other users can read is one they can sign the domain's mail with: warned, not refused,
    because keys written by tools under the common umask 022 are 0644 and refusing them would stop a
    relay that signed yesterday (chmod 0600 or 0640 root:relay, install.md). The mode is the file's the
    path leads to (a symlink's own mode means nothing)."""
    import stat

    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None  # it was just read: a race; the reading side's errors are the ones that matter
    if mode & stat.S_IROTH:
        log.warning("DKIM key %s: mode %04o: other users can read it (and sign as the domain with it); "
                    "chmod 0600 (or 0640 with the relay's group) as `relay dkim keygen` writes it", path, mode)
    if not mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None
    who = "other users" if mode & stat.S_IWOTH else "the group"
    return (f"mode {mode:04o}: {who} can write it (and replace the key); chmod 0600 (or 0640 with the "
            f"relay's group) as `relay dkim keygen` writes it; OpenDKIM refuses such a key too")


def load_default() -> DomainPolicies:
    """The shipped policies/domains.yaml (no active entries)."""
    from .config import SHIPPED_POLICIES

    return DomainPolicies.from_file(SHIPPED_POLICIES / "domains.yaml")


__all__ = ["DomainPolicies", "DomainPolicy", "normalise_domain", "SPF_MODES", "ConfigError", "load_default"]
