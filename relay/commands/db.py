"""`relay db migrate|status`: the relay's tables in the databases its config names.

The relay migrates at start by itself; `relay db migrate` does it ahead of time (before a rolling
upgrade of several relays, or where the relay's database user may not create tables and an
administrator's may: run it with a config that names the administrator's URL).

Exit status: 0 done (status: every database at this relay's version); 1 status: a database is
behind or ahead; 2 an error (unreachable database, a schema newer than this relay), one line on stderr.
"""

from __future__ import annotations

import asyncio
import sys

from . import add_config_arg, load_settings_or_exit


def register(sub) -> None:
    p = sub.add_parser("db", help="create and migrate the relay's tables (bounce list, events)",
                       description="The relay's tables in the databases the config names (bounce_list:, "
                                   "events: postgresql sinks). The relay also migrates them at start.")
    actions = p.add_subparsers(dest="db_command", metavar="ACTION")
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])
    m = actions.add_parser("migrate", help="apply the migrations this relay knows and the databases lack")
    add_config_arg(m)
    m.set_defaults(func=lambda args: _run(args, _migrate))
    s = actions.add_parser("status", help="each database's schema version against this relay's")
    add_config_arg(s)
    s.set_defaults(func=lambda args: _run(args, _status))


def databases(settings) -> list[tuple[str, str]]:
    """(what, URL) of each database the config keeps tables in, each URL once."""
    found: dict[str, str] = {settings.bounce_list: "bounce_list"}
    for i, sink in enumerate(settings.events):
        if sink.kind == "postgresql":
            found.setdefault(sink.target, f"events[{i}]")
    return [(what, url) for url, what in found.items()]


def _run(args, action) -> int:
    settings = load_settings_or_exit(args, 2)  # 1 is status's answer (behind or ahead)
    from ..store.base import StoreError

    try:
        return asyncio.run(action(settings))
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


async def _migrate(settings) -> int:
    from ..store import open_store
    from ..store.base import redact
    from ..store.schema import LATEST

    for what, url in databases(settings):
        store = open_store(url)
        try:
            applied = await store.migrate()
        finally:
            await store.close()
        for migration in applied:
            print(f"{what} {redact(url)}: applied {migration.version} ({migration.description})")
        if not applied:
            print(f"{what} {redact(url)}: at version {LATEST} already")
    return 0


async def _status(settings) -> int:
    from ..store.base import redact
    from ..store.schema import LATEST

    status = 0
    for what, url in databases(settings):
        version = await _version(url)
        if version == LATEST:
            state = "up to date"
        elif version < LATEST:
            state, status = f"behind: relay db migrate applies {version + 1}..{LATEST}", 1
        else:
            state, status = "newer than this relay: upgrade it", 1
        print(f"{what} {redact(url)}: version {version}, this relay {LATEST} ({state})")
    return status


async def _version(url: str) -> int:
    """The version without migrating (status changes nothing)."""
    scheme = url.partition("://")[0].lower()
    if scheme == "sqlite":
        import sqlite3
        from pathlib import Path

        from ..store.schema import sqlite_version

        path = Path(url[len("sqlite:///"):])
        if not path.exists():
            return 0
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return sqlite_version(db)
        finally:
            db.close()
    from ..store.postgresql import PostgresBounceStore

    store = PostgresBounceStore(url)
    try:
        return await store.schema_version()
    finally:
        await store.close()
