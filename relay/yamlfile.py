"""Reading one YAML file of config or policy, with errors that name the file and the line.

Two things PyYAML allows are refused here, before any value is built, so that every
loader (config, rules, suppression, domains) gets the same protection:

- Aliases that expand past a budget (the "billion laughs" alias bomb). PyYAML shares an
  aliased node rather than copying it, so loading is cheap; the cost comes later, when a
  loader walks or prints the value (`repr()` of a nested list expands every alias). The
  composed node graph is measured with each alias counted at its full expanded size
  (memoised per node, so measuring is linear in the file), and a document that would
  expand to more than MAX_EXPANDED_NODES nodes is an error. Ordinary anchors, such as
  the shared texts of bounce-rules.yaml, stay far below it.
- Nesting deep enough to exhaust Python's stack (PyYAML is recursive): an error, not a traceback.
- A file over MAX_FILE_BYTES: refused from its size, before a byte is read. PyYAML reads about
  1.4 MB a second; a 50 MB file took 36 s and 175 MB before its error (and a reload that long).
- Duplicate keys in one mapping. YAML 1.2 says keys must be unique; PyYAML keeps the last
  one silently, so an operator who adds a second `clients:` by mistake would get only one
  of them. The error names the key and both lines.
- A value its tag cannot build: an impossible date (`2026-11-31`: PyYAML reads every YYYY-MM-DD plain
  scalar as a date), an hour 25, an explicit `!!int abc` or `!!bool maybe`. PyYAML raises a bare
  ValueError, KeyError or AttributeError for those, not a YAMLError; the error names the line.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import Problems

# Nodes a document may expand to with every alias replaced by its target. The shipped
# bounce-rules.yaml, the largest file here, is about 3,000 nodes expanded.
MAX_EXPANDED_NODES = 200_000
MERGE_TAG = "tag:yaml.org,2002:merge"
# The largest config or policy file read. The shipped bounce-rules.yaml, the largest, is 110 KiB; a
# domains.yaml of 5,000 domains with DKIM keys is about 500 KiB. Loading 1 MiB takes under a second.
MAX_FILE_BYTES = 1024 * 1024

# The shipped policy files (package data) are read by every relay process at start, and by every
# command: they go through libyaml's C parser where PyYAML was built with it (bounce-rules.yaml: 40 ms
# instead of 400 ms). Operator files keep the pure-Python parser, whose recursion stops at Python's
# limit on a document nested thousands deep (a clear error above); the C parser recurses in C.
# The repository's top-level policies/ is canonical; relay/shipped_policies links to it so that
# `pip install .` carries the same files inside the package (config.SHIPPED_POLICIES is this one).
SHIPPED_POLICIES = Path(__file__).resolve().parent / "shipped_policies"
if not SHIPPED_POLICIES.is_dir():  # a source tree where the link was not kept
    SHIPPED_POLICIES = Path(__file__).resolve().parent.parent / "policies"
_SHIPPED = SHIPPED_POLICIES.resolve()
_FAST_LOADER = getattr(yaml, "CSafeLoader", None)


def _loader_for(path: Path, text: str):
    if _FAST_LOADER is not None and path.resolve().parent == _SHIPPED:
        return _FAST_LOADER(text)
    return yaml.SafeLoader(text)


class FileProblem(ValueError):
    """Why a file the config names cannot be used, without the file's name (the caller adds it).
    `missing`: nothing at all is at the name."""

    missing = False


class FileTooLarge(FileProblem):
    def __init__(self, limit: int):
        super().__init__(f"too large: over {limit} bytes")
        self.limit = limit


# What a file that is not a regular one is, for the error (a FIFO would block the read for ever,
# /dev/zero or /dev/urandom never end).
_KINDS = ((stat.S_ISDIR, "is a directory"), (stat.S_ISFIFO, "is a FIFO (named pipe), not a regular file"),
          (stat.S_ISCHR, "is a character device (such as /dev/zero), not a regular file"),
          (stat.S_ISBLK, "is a block device, not a regular file"), (stat.S_ISSOCK, "is a socket, not a regular file"))


def open_regular(path: Path | str) -> int:
    """A file descriptor open for reading on the regular file at `path`; a FileProblem saying why not
    (missing, a dangling symlink, a directory, a FIFO or device, unreadable). The file is opened
    non-blocking, so that a FIFO cannot hold the open, and judged by fstat of what was opened (no
    window between a check and the read). The caller closes it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        if exc.errno == errno.ENOENT and os.path.islink(path):
            raise FileProblem(f"is a dangling symlink (its target {os.readlink(path)} does not exist)") from None
        problem = FileProblem(f"cannot read: {(exc.strerror or str(exc)).lower()}")
        problem.missing = exc.errno == errno.ENOENT
        raise problem from None
    try:
        mode = os.fstat(fd).st_mode
        for test, why in _KINDS:
            if test(mode):
                raise FileProblem(why)
        if not stat.S_ISREG(mode):
            raise FileProblem("is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bounded(read, limit: int) -> bytes:
    """All that `read(n)` gives until it gives nothing, or FileTooLarge past `limit` bytes (never more
    than limit + 1 of them held)."""
    chunks, size = [], 0
    while size <= limit:
        chunk = read(min(1 << 20, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise FileTooLarge(limit)
    return b"".join(chunks)


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of the regular file at `path`, at most `limit` of them; a FileProblem saying why not
    (missing, a dangling symlink, a directory, a FIFO or device, unreadable, over `limit`).

    The one reader of every file the config and the policies name (config, policy files, the users
    file, secrets, DKIM keys), and of the files the CLI reads whole (`relay dsn parse`)."""
    fd = open_regular(path)
    try:
        return read_bounded(lambda n: os.read(fd, n), limit)
    except OSError as exc:
        raise FileProblem(f"cannot read: {(exc.strerror or str(exc)).lower()}") from None
    finally:
        os.close(fd)


def read_text(path: Path, problems: Problems, limit: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of a config or policy file (or the users file); a ConfigError (through
    `problems`, as `(file)`) saying why it cannot be read, or that it is over `limit` bytes."""
    try:
        return read_regular(path, limit).decode("utf-8")
    except FileTooLarge:
        problems.add("(file)", f"too large: over {limit} bytes (MAX_FILE_BYTES); no config or policy "
                               f"file needs that much")
    except FileProblem as exc:
        problems.add("(file)", str(exc))
    except UnicodeDecodeError as exc:
        problems.add("(file)", f"not UTF-8 text (byte {exc.start})")
    problems.raise_if_any()
    raise AssertionError("unreachable: a problem was added")


def given(value: Any, empty: Any) -> Any:
    """A policy key's value with only an absent or empty one (YAML null) taken as `empty`. The loaders
    wrote `data.get(KEY) or []`, which took a wrong value that happens to be falsy (`destinations: 0`,
    `temporary: []` where a mapping belongs) for "none" without a word (review31); the caller checks the
    type of what this returns."""
    return empty if value is None else value


def load_yaml(path: str | Path) -> Any:
    """The file's data (None for an empty file); a ConfigError when it cannot be read or parsed,
    expands aliases past the budget, or repeats a key in one mapping."""
    path = Path(path)
    problems = Problems(str(path))
    text = read_text(path, problems, MAX_FILE_BYTES)
    loader = _loader_for(path, text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_graph(node, problems)
        problems.raise_if_any()
        try:
            return loader.construct_document(node)
        except _CONSTRUCTION_ERRORS as exc:
            where, why = _unbuildable_scalar(loader, node) or ("(file)", f"not a valid value: {exc}")
            problems.add(where, why)
            problems.raise_if_any()
    except RecursionError:
        # PyYAML composes and constructs recursively: a document nested a few thousand levels deep
        # ("[" * 100000, or a mapping per line) exhausts Python's stack. No config or policy nests
        # more than a handful of levels; the reader's position is where it gave up.
        problems.add(f"line {loader.line + 1}", "nested too deeply to read (thousands of levels of [ or "
                                                "{ or indentation); no relay file needs more than a few")
        problems.raise_if_any()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        problems.add(where, f"not valid YAML: {getattr(exc, 'problem', None) or exc}")
        problems.raise_if_any()
    finally:
        loader.dispose()


# What PyYAML's scalar constructors raise for a value their tag cannot build (not YAMLErrors):
# date(2026, 11, 31) and int("abc") a ValueError, the bool table a KeyError, the timestamp
# pattern's failed match (an explicit `!!timestamp foo`) an AttributeError.
_CONSTRUCTION_ERRORS = (ValueError, KeyError, TypeError, AttributeError, OverflowError, IndexError)
_WHAT = {"tag:yaml.org,2002:timestamp": "date or time", "tag:yaml.org,2002:int": "whole number",
         "tag:yaml.org,2002:float": "number", "tag:yaml.org,2002:bool": "true/false value"}


def _unbuildable_scalar(loader, root: Node) -> tuple[str, str] | None:
    """The line of the first scalar whose constructor fails, and why (the constructors of scalars
    keep no state, so each is tried alone); None if none fails alone."""
    stack, seen = [root], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if not isinstance(node, ScalarNode):
            stack.extend(reversed(_children(node)))
            continue
        construct = loader.yaml_constructors.get(node.tag)
        if construct is None:
            continue
        try:
            construct(loader, node)
        except _CONSTRUCTION_ERRORS as exc:
            what = _WHAT.get(node.tag, "value")
            text = node.value if len(node.value) <= 40 else node.value[:40] + "..."
            reason = f": {exc}" if isinstance(exc, ValueError) else ""
            return f"line {_line(node)}", f"{text!r} is not a valid {what}{reason}"
        except yaml.YAMLError:
            continue
    return None


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _check_graph(root: Node, problems: Problems) -> None:
    """Duplicate keys, and the document's expanded size (see the module's docstring)."""
    sizes: dict[int, int] = {}  # id(node) -> expanded size, once the node is fully measured
    # Iterative post-order walk: a deeply nested document must not hit Python's recursion limit.
    stack: list[tuple[Node, bool]] = [(root, False)]
    on_path: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if isinstance(node, ScalarNode):
            sizes[id(node)] = 1
            continue
        children = _children(node)
        if not children_done:
            if id(node) in on_path:  # a recursive structure (an alias to its own ancestor)
                problems.add(f"line {_line(node)}", "a YAML alias refers to a node that contains it; "
                                                    "recursive structures are not allowed")
                return
            on_path.add(id(node))
            if isinstance(node, MappingNode):
                _duplicate_keys(node, problems)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        on_path.discard(id(node))
        total = 1 + sum(sizes.get(id(child), 1) for child in children)
        if total > MAX_EXPANDED_NODES:
            problems.add(f"line {_line(node)}",
                         f"YAML aliases here expand to more than {MAX_EXPANDED_NODES:,} values "
                         f"(an alias bomb?); write the values out or use fewer nested aliases")
            return
        sizes[id(node)] = total


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _duplicate_keys(node: MappingNode, problems: Problems) -> None:
    seen: dict[tuple[str, str], Node] = {}
    for key, _ in node.value:
        if not isinstance(key, ScalarNode) or key.tag == MERGE_TAG:
            continue
        ident = (key.tag, key.value)
        first = seen.get(ident)
        if first is not None:
            problems.add(f"line {_line(key)}", f"duplicate key {key.value!r} (first at line {_line(first)}); "
                                               f"YAML keeps only one of them: remove or merge the other")
        else:
            seen[ident] = key
