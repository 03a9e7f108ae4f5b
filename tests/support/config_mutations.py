"""Random damage to a valid config and to the policy files, for testing that `relay check-config`
reports problems (file, key, why) and never raises.

A mutation replaces a value somewhere in the document with an odd one (wrong type, empty,
huge, a NUL byte, a path the OS refuses), deletes a key or item, adds an unknown key, or renames
a key. Each document gets one to three of them, so a single run reaches both a broken value and
the code that would use it next to another broken one.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any, Iterator

import yaml

REPO = Path(__file__).resolve().parent.parent.parent
SHIPPED = REPO / "policies"

ODD_VALUES: list[Any] = [
    None, -1, 0, 1, 10**30, 1e308, float("nan"), "", "x" * 5000, [], {}, True, False, "\x00", "é\u202e",
    {"unknown": 1}, [1, 2], [None], [{}], "127.0.0.1:99999", "::1", "-5m", "1GiB", "sqlite://",
    "postgresql://x", "/nonexistent/file", "5.1.1", "X.9.*", "(", "[", "*", "list", "count", "never", 3.5,
    "off", "on",
]

# The shipped bounce-rules.yaml compiles in about a second; its first rules and fallbacks have
# every kind of entry, and the loader reads the rest no differently.
RULES_KEPT, FALLBACKS_KEPT = 12, 6


def key_paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path to a value in `node`, as a tuple of mapping keys and list indexes."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from key_paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from key_paths(v, prefix + (i,))


def odd_value(rng: random.Random) -> Any:
    """One of ODD_VALUES, copied: a later mutation inside it must not change the list (or make
    a document that contains itself)."""
    return copy.deepcopy(rng.choice(ODD_VALUES))


def mutate(rng: random.Random, doc: Any) -> Any:
    """A damaged copy of `doc`."""
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in key_paths(doc) if p]
        if not paths:
            return odd_value(rng)
        path = rng.choice(paths)
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        op = rng.random()
        if op < 0.6:
            parent[path[-1]] = odd_value(rng)
        elif op < 0.75:
            del parent[path[-1]]
        elif op < 0.9 and isinstance(parent, dict):
            parent[f"zz_{rng.randrange(99)}"] = odd_value(rng)
        elif isinstance(parent, dict):
            parent[str(rng.choice(ODD_VALUES))[:20]] = parent.pop(path[-1])
    return doc


def policy_documents() -> dict[str, Any]:
    """The shipped policy files as data, bounce-rules.yaml cut short (RULES_KEPT)."""
    docs = {p.name: yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(SHIPPED.glob("*.yaml"))}
    rules = docs["bounce-rules.yaml"]
    rules.pop("texts", None)  # only the anchors' source: the rules hold the values already
    rules["rules"] = rules["rules"][:RULES_KEPT]
    rules["fallback"] = rules["fallback"][:FALLBACKS_KEPT]
    return docs


def rich_config(root: Path) -> dict:
    """A valid config using most sections, with the files it names written under `root`."""
    (root / "users").write_text("")
    (root / "verp.key").write_bytes(b"0123456789abcdef0123456789abcdef")
    (root / "wh.secret").write_text("whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3")
    return {
        "hostname": "relay.example.com",
        "listen": [{"address": "127.0.0.1:2525"}],
        "clients": {"networks": ["127.0.0.0/8"], "users_file": str(root / "users")},
        "upstream": {"host": "smtp.example.com", "port": 587, "starttls": "required", "pool_size": 10},
        "limits": {"max_message_size": 1000000, "max_recipients": 50, "timeout": 100},
        "bounce_list": f"sqlite:///{root}/b.db",
        "events": [{"jsonl": str(root / "e.jsonl")},
                   {"webhook": "https://hook.example.com/x", "secret_file": str(root / "wh.secret"),
                    "spool_dir": str(root / "spool")}],
        "policies": str(root / "policies"),
        "bounces_in": {"listen": "127.0.0.1:2526", "domains": ["bounces.example.com"],
                       "key_file": str(root / "verp.key")},
        "metrics": {"listen": "127.0.0.1:9100"},
        "workers": 2,
    }


def write_yaml(path: Path, doc: Any) -> bool:
    """Write `doc`; False when YAML cannot represent it (the mutation is skipped)."""
    try:
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    except (yaml.YAMLError, UnicodeEncodeError):
        return False
    return True
