"""The `relay` command: parses arguments and hands over to a subcommand module."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__

# Each module in relay/commands registers its own subcommand(s) with register(subparsers).
COMMANDS = ["serve", "check_config", "classify", "bounces", "events", "dkim", "doctor", "users", "dsn",
            "postfix_log", "db", "shaping"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relay",
        description="Self-hosted outbound SMTP relay and milter that explains every delivery error.")
    parser.add_argument("--version", action="version", version=f"relay {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f".commands.{name}", __package__).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)  # a usage error (exit 2): not data for a pipe
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`relay bounces list | head`): it has what it wanted. Point stdout
        # at /dev/null so that the interpreter's final flush does not fail on the closed pipe.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0


if __name__ == "__main__":
    sys.exit(main())
