"""Every regular expression relay ships, run against adversarial texts built from its own structure.

    PYTHONPATH=$PWD python3 bench/audit_regex.py [--small N] [--large N] [--top K] [--only SUBSTRING]

Which patterns: every pattern Python's `re` compiles while the relay package is imported and the shipped
policies and config are loaded (the classifier's joined rule alternations, suppression, shaping, relay
replies, attribution, the Postfix log parser's and DSN reader's module-level patterns), plus every
`re.<function>("literal", ...)` call found in relay/*.py by reading the source. Operator patterns run in
RE2 (relay/regex.py: linear by construction) and are not audited here.

Which texts, per pattern: for every repeat in the pattern (`x*`, `x+`, `x{m,}`), a text that matches the
pattern up to that repeat, with the repeat's item pumped N times, then either the rest of a match, a
character that breaks it ("!"), or nothing; plus generic runs ("a"*N + "!", spaces, dots, digits, "a.",
"a ", tabs, newlines) and each literal word of the pattern repeated N times with and without spaces.

What is measured: `search()` (the classifier and most readers search) at two lengths, --small and
--large characters of pumped text; the growth exponent log(t_large/t_small)/log(large/small) is ~1 for a
linear pattern, ~2 for a quadratic one. A pattern is reported when its worst text's exponent is over 1.5
or its search at --large takes more than 50 ms. Each pattern runs in a child process with a 30 s
deadline, so an exponential one is reported as "timeout" instead of hanging the audit.

Wall-clock figures; run it on a quiet machine for comparable numbers. Exit status 1 when a pattern is
reported (so it can run as a check), 0 otherwise.

As a guard against a stalled event loop (tests/test_regex_audit.py): `--where relay/classify.py,relay/regex.py`
audits only the patterns compiled in those files (the classifier's rule alternations, which search
every upstream reply on the loop), and `--hang-ms N` reports, and fails on, only a pattern that timed
out or whose worst search took over N ms: a bound far above any sound pattern's cost and far below a
backtracking one's (seconds to hours), not a speed target.
"""

from __future__ import annotations

import argparse
import ast
import math
import multiprocessing as mp
import re
import sys
import time
from pathlib import Path

try:
    import re._parser as sre_parse  # Python 3.11+
    import re._constants as sre_c
except ImportError:  # pragma: no cover - older Pythons
    import sre_parse  # type: ignore
    import sre_constants as sre_c  # type: ignore

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# --- collecting the patterns ------------------------------------------------------------------

_RECORDED: dict[tuple, str] = {}


def _record_compiles():
    original = re._compile

    def recording(pattern, flags):
        if isinstance(pattern, (str, bytes)):
            key = (pattern, int(flags) & ~re.DEBUG)
            if key not in _RECORDED:
                frame = sys._getframe(1)
                while frame is not None and frame.f_code.co_filename.endswith(("re/__init__.py", "audit_regex.py")):
                    frame = frame.f_back
                if frame is None or not frame.f_code.co_filename.startswith(str(ROOT / "relay")):
                    # compiled by a library, not by relay
                    return original(pattern, flags)
                where = f"{Path(frame.f_code.co_filename).relative_to(ROOT)}:{frame.f_lineno}"
                _RECORDED[key] = where
        return original(pattern, flags)

    re._compile = recording


def _source_literals() -> dict[tuple, str]:
    """re.<f>("literal"...) / re.compile("literal") calls in relay/**/*.py (those inside functions compile
    only when called)."""
    found: dict[tuple, str] = {}
    for path in sorted((ROOT / "relay").rglob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "re"
                    and node.func.attr in {"compile", "search", "match", "fullmatch", "sub", "subn", "split",
                                           "findall", "finditer"}
                    and node.args and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, (str, bytes))):
                flags = 0
                flag_arg = None
                if node.func.attr in {"compile"} and len(node.args) > 1:
                    flag_arg = node.args[1]
                for kw in node.keywords:
                    if kw.arg == "flags":
                        flag_arg = kw.value
                if flag_arg is not None:
                    try:
                        flags = int(eval(compile(ast.Expression(flag_arg), "<flags>", "eval"), {"re": re}))
                    except Exception:
                        flags = 0
                rel = path.relative_to(ROOT)
                found.setdefault((node.args[0].value, flags), f"{rel}:{node.lineno}")
    return found


def collect() -> list[tuple[str | bytes, int, str]]:
    _record_compiles()
    import importlib
    import pkgutil

    import relay

    for info in pkgutil.walk_packages(relay.__path__, "relay."):
        if info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception as exc:  # an optional dependency missing: say so, audit the rest
            print(f"(not imported: {info.name}: {type(exc).__name__}: {exc})", file=sys.stderr)
    # Load what the shipped policies and config compile.
    loaders = [
        ("relay.classify", "default_classifier"),
        ("relay.classify", "default_relay_replies"),
    ]
    for module, name in loaders:
        try:
            getattr(importlib.import_module(module), name)()
        except Exception as exc:
            print(f"(not loaded: {module}.{name}: {type(exc).__name__}: {exc})", file=sys.stderr)
    try:
        from relay.config import load_settings
        from relay.policies import load_policies, shipped_policies

        shipped_policies()
        load_policies(load_settings(ROOT / "config.yaml"))
    except Exception as exc:
        print(f"(config/policies not loaded: {type(exc).__name__}: {exc})", file=sys.stderr)
    patterns = dict(_RECORDED)
    for key, where in _source_literals().items():
        patterns.setdefault(key, where)
    return [(p, f, where) for (p, f), where in patterns.items()]


# --- adversarial texts from a pattern's structure ---------------------------------------------

_CATEGORY_SAMPLE = {
    sre_c.CATEGORY_DIGIT: "0", sre_c.CATEGORY_NOT_DIGIT: "a", sre_c.CATEGORY_SPACE: " ",
    sre_c.CATEGORY_NOT_SPACE: "a", sre_c.CATEGORY_WORD: "a", sre_c.CATEGORY_NOT_WORD: "!",
    sre_c.CATEGORY_LINEBREAK: "\n", sre_c.CATEGORY_NOT_LINEBREAK: "a",
}
_CANDIDATES = "a0 .-_!@<>:;=/\\\"'()[]#,\tz\n"


def _in_set(items, ch: str) -> bool:
    negate = False
    hit = False
    o = ord(ch)
    for op, av in items:
        if op is sre_c.NEGATE:
            negate = True
        elif op is sre_c.LITERAL:
            hit = hit or av == o
        elif op is sre_c.RANGE:
            hit = hit or av[0] <= o <= av[1]
        elif op is sre_c.CATEGORY:
            sample = re.compile(r"[%s]" % {sre_c.CATEGORY_DIGIT: r"\d", sre_c.CATEGORY_NOT_DIGIT: r"\D",
                                           sre_c.CATEGORY_SPACE: r"\s", sre_c.CATEGORY_NOT_SPACE: r"\S",
                                           sre_c.CATEGORY_WORD: r"\w", sre_c.CATEGORY_NOT_WORD: r"\W"}
                                .get(av, r"\w"))
            hit = hit or sample.match(ch) is not None
    return hit != negate


def _set_sample(items) -> str:
    for op, av in items:
        if op is sre_c.LITERAL:
            return chr(av)
        if op is sre_c.RANGE:
            return chr(av[0])
        if op is sre_c.CATEGORY and not any(o is sre_c.NEGATE for o, _ in items):
            return _CATEGORY_SAMPLE.get(av, "a")
    for ch in _CANDIDATES:
        if _in_set(items, ch):
            return ch
    return "a"


class _Sampler:
    """A text the pattern matches, with one chosen repeat pumped; records where the pumped run ends."""

    def __init__(self, target, n: int):
        self.target = target
        self.n = n
        self.end = None
        self.groups: dict[int, str] = {}

    def contains(self, seq, target) -> bool:
        for op, av in seq:
            if av is target:
                return True
            for sub in _subsequences(op, av):
                if self.contains(sub, target):
                    return True
        return False

    def sample(self, seq, out: list[str]) -> None:
        for op, av in seq:
            if op is sre_c.LITERAL:
                out.append(chr(av))
            elif op is sre_c.NOT_LITERAL:
                out.append("a" if av != ord("a") else "b")
            elif op is sre_c.ANY:
                out.append("a")
            elif op is sre_c.IN:
                out.append(_set_sample(av))
            elif op is sre_c.BRANCH:
                alternatives = av[1]
                chosen = next((alt for alt in alternatives if self.target is not None and self.contains(alt, self.target)),
                              alternatives[0])
                self.sample(chosen, out)
            elif op is sre_c.SUBPATTERN:
                group, p = av[0], av[-1]
                start = len("".join(out))
                self.sample(p, out)
                if group:
                    self.groups[group] = "".join(out)[start:]
            elif op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, getattr(sre_c, "POSSESSIVE_REPEAT", None)):
                lo, hi, item = av
                if av is self.target:
                    count = self.n if hi == sre_c.MAXREPEAT else min(hi, self.n)
                    for _ in range(count):
                        self.sample(item, out)
                    self.end = len("".join(out))
                elif self.target is not None and self.contains(item, self.target):
                    self.sample(item, out)
                    for _ in range(max(lo - 1, 0)):
                        self.sample(item, out)
                else:
                    for _ in range(lo):
                        self.sample(item, out)
            elif op is getattr(sre_c, "ATOMIC_GROUP", None):
                self.sample(av, out)
            elif op is sre_c.GROUPREF:
                out.append(self.groups.get(av, ""))
            elif op is sre_c.GROUPREF_EXISTS:
                self.sample(av[1], out)
            # AT, ASSERT, ASSERT_NOT: nothing to add


def _subsequences(op, av):
    if op is sre_c.BRANCH:
        return list(av[1])
    if op is sre_c.SUBPATTERN:
        return [av[-1]]
    if op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, getattr(sre_c, "POSSESSIVE_REPEAT", None)):
        return [av[2]]
    if op is getattr(sre_c, "ATOMIC_GROUP", None):
        return [av]
    if op is sre_c.GROUPREF_EXISTS:
        return [s for s in av[1:] if s is not None]
    if op in (sre_c.ASSERT, sre_c.ASSERT_NOT):
        return [av[1]]
    return []


def _repeats(seq, found: list) -> list:
    for op, av in seq:
        if op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT) and av[1] == sre_c.MAXREPEAT:
            found.append(av)
        for sub in _subsequences(op, av):
            _repeats(sub, found)
    return found


def _literal_words(seq, found: set) -> set:
    run: list[str] = []
    for op, av in list(seq) + [(None, None)]:
        if op is sre_c.LITERAL:
            run.append(chr(av))
            continue
        if len(run) >= 2:
            found.add("".join(run))
        run = []
        if op is not None:
            for sub in _subsequences(op, av):
                _literal_words(sub, found)
    return found


def texts(pattern: str | bytes, flags: int, n: int, max_repeats: int = 40, max_words: int = 20):
    """(label, text) pairs for one pattern at pump size n (characters of pumped text, roughly)."""
    source = pattern.decode("latin-1") if isinstance(pattern, bytes) else pattern
    try:
        tree = sre_parse.parse(source, flags & ~re.ASCII if isinstance(pattern, str) else flags)
    except Exception:
        return
    for tag, unit in (("a", "a"), ("space", " "), ("dot", "."), ("digit", "0"), ("a.", "a."), ("a ", "a "),
                      ("tab", "\t"), ("nl", "a\n"), ("-", "-"), ("@", "a@"), ("<", "<"), ("=", "a="),
                      ("5.", "5."), (":", "a:")):
        body = unit * max(n // len(unit), 1)
        yield f"run {tag!r}+'!'", body + "!"
    for index, target in enumerate(_repeats(tree.data if hasattr(tree, "data") else tree, [])[:max_repeats]):
        # How long one pumped item is: pump 1 and 2 and take the difference.
        s1 = _Sampler(target, 1); o1: list[str] = []; s1.sample(tree, o1)
        s2 = _Sampler(target, 2); o2: list[str] = []; s2.sample(tree, o2)
        unit = max(len("".join(o2)) - len("".join(o1)), 1)
        sampler = _Sampler(target, max(n // unit, 1))
        out: list[str] = []
        sampler.sample(tree, out)
        full = "".join(out)
        end = sampler.end if sampler.end is not None else len(full)
        yield f"repeat #{index} pumped, rest", full
        yield f"repeat #{index} pumped, then '!'", full[:end] + "!"
        yield f"repeat #{index} pumped, then nothing", full[:end]
        yield f"repeat #{index} pumped, then NUL", full[:end] + "\x00"
    for word in sorted(_literal_words(tree, set()), key=len, reverse=True)[:max_words]:
        k = max(n // (len(word) + 1), 1)
        yield f"word {word[:20]!r} repeated", word * k
        yield f"word {word[:20]!r} repeated with spaces", (word + " ") * k + "!"


def _measure(regex, text, budget=0.005, cap=20) -> float:
    """Seconds of the fastest search of `text` among runs made until `budget` seconds pass (or `cap`
    runs): the minimum, as the machine is shared and a slower run only measures someone else's work."""
    best = float("inf")
    spent = 0.0
    for _ in range(cap):
        start = time.perf_counter()
        regex.search(text)
        elapsed = time.perf_counter() - start
        best = min(best, elapsed)
        spent += elapsed
        if spent >= budget:
            break
    return best


def audit_one(args):
    pattern, flags, small, large = args
    regex = re.compile(pattern, flags)
    worst = None
    for (label, t_small), (_, t_large) in zip(texts(pattern, flags, small), texts(pattern, flags, large)):
        if isinstance(pattern, bytes):
            t_small = t_small.encode("latin-1", "replace")
            t_large = t_large.encode("latin-1", "replace")
        a = _measure(regex, t_small)
        b = _measure(regex, t_large, budget=0.0, cap=1) if a > 0.01 else _measure(regex, t_large, cap=3)
        exponent = math.log(max(b, 1e-9) / max(a, 1e-9)) / math.log(len(t_large) / max(len(t_small), 1)) \
            if len(t_large) > len(t_small) else 0.0
        row = (b, exponent, label, len(t_small), a, len(t_large))
        if worst is None or (row[0], row[1]) > (worst[0], worst[1]):
            worst = row
        if b > 2.0:  # already damning: do not spend more time on this pattern
            break
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=8000)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--only", default=None, help="only patterns whose source contains this")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--where", default=None,
                        help="only patterns compiled in these files (comma-separated, e.g. relay/regex.py)")
    parser.add_argument("--hang-ms", type=float, default=None,
                        help="fail only on a timeout or a worst search over this many ms")
    opts = parser.parse_args()
    patterns = collect()
    if opts.where:
        files = set(opts.where.split(","))
        patterns = [p for p in patterns if p[2].rsplit(":", 1)[0] in files]
    if opts.only:
        patterns = [p for p in patterns if (opts.only in p[0] if isinstance(p[0], str) else opts.only.encode() in p[0])]
    print(f"{len(patterns)} patterns; texts of ~{opts.small} and ~{opts.large} characters", file=sys.stderr)
    results = []
    ctx = mp.get_context("fork")
    pool = ctx.Pool(1)
    for i, (pattern, flags, where) in enumerate(patterns):
        job = pool.apply_async(audit_one, ((pattern, flags, opts.small, opts.large),))
        try:
            worst = job.get(opts.timeout)
        except mp.TimeoutError:
            pool.terminate()
            pool = ctx.Pool(1)
            worst = (float("inf"), float("inf"), "timeout", 0, 0, 0)
        except Exception as exc:
            worst = (0.0, 0.0, f"error {type(exc).__name__}: {exc}", 0, 0, 0)
        if worst is not None:
            results.append((worst, pattern, flags, where))
    pool.terminate()
    results.sort(key=lambda r: (r[0][0], r[0][1]), reverse=True)
    if opts.hang_ms is not None:
        flagged = [r for r in results if r[0][0] * 1000 > opts.hang_ms]
    else:
        flagged = [r for r in results if r[0][1] > 1.5 or r[0][0] > 0.05]
    print(f"{'ms@large':>10} {'exp':>5}  where  text  pattern")
    for (t_large, exponent, label, n_small, t_small, n_large), pattern, flags, where in results[:opts.top]:
        shown = pattern if len(pattern) <= 100 else pattern[:97] + "..."
        print(f"{t_large * 1000:10.2f} {exponent:5.2f}  {where}  [{label}, {n_small}->{n_large} chars: "
              f"{t_small * 1000:.3f} -> {t_large * 1000:.3f} ms]  {shown!r}")
    limit = f"over {opts.hang_ms:g} ms (or timed out)" if opts.hang_ms is not None else \
        "over exponent 1.5 or 50 ms at the large size"
    print(f"{len(results)} patterns audited, {len(flagged)} {limit}")
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
