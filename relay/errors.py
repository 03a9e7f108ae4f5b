"""Configuration and policy errors that name the file, the key and why."""

from __future__ import annotations

from dataclasses import dataclass


# The format of the policy files (their `version:` key; docs/config.md "The policy directory").
POLICY_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Problem:
    file: str
    key: str
    why: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.why}"


class ConfigError(Exception):
    """One or more problems found while loading config or policies.

    Loaders collect every problem they can find before raising, so that an
    operator fixes a file in one pass rather than one error per run.
    """

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class Problems:
    """Collects problems for one file; `raise_if_any()` at the end of a load."""

    def __init__(self, file: str):
        self.file = str(file)
        self.items: list[Problem] = []

    def add(self, key: str, why: str) -> None:
        self.items.append(Problem(self.file, key, why))

    def unknown_keys(self, mapping: dict, allowed, prefix: str = "") -> None:
        """Every key of `mapping` not in `allowed` is a problem: a misspelt key must not
        silently fall back to a default."""
        for name in mapping:
            if name not in allowed:
                key = f"{prefix}.{name}" if prefix else str(name)
                self.add(key, f"unknown key; expected one of: {', '.join(sorted(allowed))}")

    def check_version(self, mapping: dict) -> None:
        """A policy file's optional `version:` is the format it is written in: 1, the only one this relay
        reads (the shipped files say `version: 1`). Any other value was accepted in silence, so a file
        written for another format would be read as if it were this one."""
        value = mapping.get("version")
        if value is None:  # absent, or empty (`version:`), as any empty policy key: not given
            return
        if type(value) is not int or value != POLICY_FORMAT_VERSION:  # bool is an int: `true` is no version
            self.add("version", f"{value!r} is not a policy format this relay reads: write "
                                f"`version: {POLICY_FORMAT_VERSION}` (the only one) or leave the key out")

    def check_bool(self, key: str, value) -> bool:
        """Whether `value` is YAML's true or false; when it is not (a quoted "yes", a 1, a list), a
        problem at `key` says what it is: a loader must not guess what a flag was meant to be. The
        one check of a flag for every loader, so that each says it alike."""
        if isinstance(value, bool):
            return True
        self.add(key, f"expected true or false, got {value!r}")
        return False

    def extend(self, other: "Problems | ConfigError") -> None:
        self.items.extend(other.items if isinstance(other, Problems) else other.problems)

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError(self.items)
