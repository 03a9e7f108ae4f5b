"""Reading one YAML file of config or policy, with errors that name the file and the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import Problems


def load_yaml(path: str | Path) -> Any:
    """The file's data (None for an empty file); a ConfigError when it cannot be read or parsed."""
    path = Path(path)
    problems = Problems(str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problems.add("(file)", f"cannot read: {(exc.strerror or str(exc)).lower()}")
        problems.raise_if_any()
    except UnicodeDecodeError as exc:
        problems.add("(file)", f"not UTF-8 text (byte {exc.start})")
        problems.raise_if_any()
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        problems.add(where, f"not valid YAML: {getattr(exc, 'problem', None) or exc}")
        problems.raise_if_any()
