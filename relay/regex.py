"""Regular expressions from operators' files, compiled so that matching takes time linear in the text.

Python's `re` backtracks: an operator's rule such as `(a+)+$` takes seconds on a reply of a few
dozen characters, and classification runs on the event loop, so one such reply would stall every
session. Operator patterns are therefore compiled with RE2 (google-re2, the binding of Google's
linear-time engine: no backtracking, so no catastrophic case); a pattern RE2 cannot express
(backreferences, lookaround) is refused at load with a message saying why.

The shipped rules are reviewed with the code and keep Python `re` semantics exactly (some use a
lookahead, and `\\d`, `\\w`, `$` differ slightly between the engines): a pattern that appears in
the shipped bounce-rules files, including in an operator's copy of them, is compiled with `re`.

Differences an operator may meet (RE2 syntax: https://github.com/google/re2/wiki/Syntax): `\\d`,
`\\w`, `\\s` and `\\b` are ASCII-only, `$` matches only at the very end of the text (not before a
final newline), and `(?=...)`, `(?!...)`, `(?<=...)`, `(?<!...)` and `\\1` are not available.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Iterable



class PatternError(ValueError):
    """A pattern that cannot be compiled; the message is fit for an operator."""


def _options(ignore_case: bool):
    import re2

    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern to stderr itself
    options.case_sensitive = not ignore_case
    return options


def compile_linear(source: str, *, ignore_case: bool = False):
    """`source` compiled with RE2 (an object with search/match/fullmatch like re.Pattern);
    PatternError when RE2 cannot express it."""
    import re2  # imported on first use: a relay with no operator patterns never loads it

    try:
        return re2.compile(source, _options(ignore_case))
    except re2.error as exc:
        why = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        try:
            re.compile(source)
        except re.error as py_exc:
            raise PatternError(f"bad regular expression {source!r}: {py_exc}") from None
        raise PatternError(f"regular expression {source!r} needs backtracking ({why}); rules from operators "
                           f"run in linear time (RE2 syntax): write it without backreferences or "
                           f"lookaround") from None


@functools.lru_cache(maxsize=1)
def shipped_patterns() -> frozenset[str]:
    """Every `match`/`not_match` pattern of the shipped bounce-rules files."""
    from .config import SHIPPED_POLICIES  # config.py compiles operator patterns with this module
    from .yamlfile import load_yaml

    found: set[str] = set()
    for path in sorted(Path(SHIPPED_POLICIES).glob("bounce-rules*.yaml")):
        data = load_yaml(path)
        for rule in (data or {}).get("rules") or []:
            if not isinstance(rule, dict):
                continue
            for key in ("match", "not_match"):
                value = rule.get(key)
                for item in value if isinstance(value, list) else [value]:
                    if isinstance(item, str):
                        found.add(item)
    return frozenset(found)


class AnyOf:
    """Several compiled patterns searched in turn, for a rule mixing shipped patterns (`re`)
    with the operator's own (RE2)."""

    __slots__ = ("patterns",)

    def __init__(self, patterns):
        self.patterns = tuple(patterns)

    def search(self, text: str):
        for pattern in self.patterns:
            found = pattern.search(text)
            if found is not None:
                return found
        return None


def compile_rule_text(sources: Iterable[str], *, ignore_case: bool, prepare=lambda s: s):
    """One searchable pattern for a rule's list of alternatives (any may match).

    `prepare` rewrites each source before compiling (the classifier lowercases patterns it runs
    on lowered text). Alternatives found in the shipped rules are joined into one `re` pattern,
    the others into one RE2 pattern. Raises PatternError or re.error."""
    sources = list(sources)
    shipped = shipped_patterns()
    trusted = [s for s in sources if s in shipped]
    own = [s for s in sources if s not in shipped]
    # One alternation is one pass over the text instead of one per pattern.
    join = lambda items: prepare(items[0]) if len(items) == 1 else "|".join(f"(?:{prepare(i)})" for i in items)
    compiled = []
    if trusted:
        compiled.append(re.compile(join(trusted), re.IGNORECASE if ignore_case else 0))
    if own:
        for item in own[1:] if len(own) > 1 else ():  # a bad one is named on its own
            compile_linear(prepare(item), ignore_case=ignore_case)
        compiled.append(compile_linear(join(own), ignore_case=ignore_case))
    return compiled[0] if len(compiled) == 1 else AnyOf(compiled)
