"""`relay serve`: run every listener the config names, in the foreground."""

from __future__ import annotations

import logging
import sys

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
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # aiosmtpd logs every command at INFO (addresses included); keep that for DEBUG.
    logging.getLogger("mail.log").setLevel(max(logging.WARNING, logging.getLogger().level))
    settings = load_settings_or_exit(args)
    from ..server import serve

    try:
        return serve(settings)
    except ConfigError as exc:
        report_config_error(exc)
        return 1
    except StoreError as exc:  # the bounce list cannot be opened: its message says which file and what to do
        print(f"error: cannot start: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot start: {exc}", file=sys.stderr)
        return 1
