"""The policy directory: bounce rules, suppression and per-domain settings.

Loaded at start and on SIGHUP. A reload that fails keeps the policies that are
running: the caller only swaps in a fully validated Policies object.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import SHIPPED_POLICIES
from .errors import ConfigError


@dataclass(frozen=True)
class Policies:
    directory: Path
    classifier: Any
    suppression: Any
    domains: Any


def policy_file(directory: Path, name: str) -> Path:
    """The operator's file if the directory has one, else the shipped one."""
    own = directory / name
    return own if own.is_file() else SHIPPED_POLICIES / name


def load_policies(settings) -> Policies:
    from .classify import Classifier, rule_files
    from .domains import DomainPolicies
    from .suppression import SuppressionPolicy

    directory = Path(settings.policies)
    problems = []
    results = {}
    loaders = {
        "classifier": lambda: Classifier.from_files(rule_files(directory)),
        "suppression": lambda: SuppressionPolicy.from_file(policy_file(directory, "suppression.yaml")),
        "domains": lambda: DomainPolicies.from_file(policy_file(directory, "domains.yaml")),
    }
    for name, load in loaders.items():
        try:
            results[name] = load()
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return Policies(directory=directory, **results)
