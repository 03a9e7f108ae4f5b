"""Subcommands of the `relay` command; each module registers its own parser."""

from __future__ import annotations

import argparse
import sys

from ..errors import ConfigError


def add_config_arg(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("-c", "--config", required=required, metavar="PATH", help="the relay's config file")


def report_config_error(exc: ConfigError) -> None:
    for problem in exc.problems:
        print(f"error: {problem}", file=sys.stderr)


def load_settings_or_exit(args, status: int = 1):
    """Settings for a CLI command; on errors prints each (file, key, why) and exits `status`: 1 for
    serve and check-config, 2 for a command whose 1 is an answer (bounces check: listed; db status:
    behind), which must never read a broken config as that answer (review24 F8)."""
    from ..config import load_settings

    try:
        return load_settings(args.config)
    except ConfigError as exc:
        report_config_error(exc)
        raise SystemExit(status)


def load_policies_or_exit(settings, status: int = 1):
    from ..policies import load_policies

    try:
        return load_policies(settings)
    except ConfigError as exc:
        report_config_error(exc)
        raise SystemExit(status)
