"""`relay serve`: run every listener the config names, in the foreground."""

from __future__ import annotations

import logging
import sys

from .. import logqueue
from . import add_config_arg, load_settings_or_exit, report_config_error
from ..errors import ConfigError
from ..store.base import StoreError


def register(sub) -> None:
    p = sub.add_parser("serve", help="run the relay (foreground, logs to stderr)",
                       description="Run every listener the config names. SIGTERM drains, SIGHUP reloads "
                                   "config and policies.")
    add_config_arg(p)
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(func=run)


def run(args) -> int:
    # Written to stderr by a thread of its own, never by the event loop (relay/logqueue.py); lines are
    # name[pid], as syslog shows them: with several workers, the pid says which one speaks.
    logqueue.install(args.log_level)
    # aiosmtpd logs every command at INFO (addresses included); keep that for DEBUG.
    logging.getLogger("mail.log").setLevel(max(logging.WARNING, logging.getLogger().level))
    settings = load_settings_or_exit(args)
    from ..server import serve

    try:
        return serve(settings, report_error=report_start_error)
    except (ConfigError, StoreError, OSError) as exc:
        return report_start_error(exc)


def report_start_error(exc: BaseException) -> int:
    """Why the relay (or one of its workers) could not start, in the operator's words; the exit status."""
    if isinstance(exc, ConfigError):
        report_config_error(exc)
        return 1
    if isinstance(exc, (StoreError, OSError)):
        # StoreError: the bounce list cannot be opened; its message says which file and what to do.
        print(f"error: cannot start: {exc}", file=sys.stderr)
        return 1
    logging.getLogger("relay.server").error("cannot start", exc_info=exc)
    return 1
