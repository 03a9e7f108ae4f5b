"""`relay bounces ...`: look at and change the bounce list.

Changes go straight to the list the config names, so a running relay sees them
at its next RCPT with no reload. Every change writes a `bounce_listed` or
`bounce_unlisted` event to the configured sinks, naming who made it and why:
taking an address off the list is a decision someone must be able to account
for (the seed text: remove only once the cause is fixed).

Exit status: 0 done; 1 the answer is "no" (check: listed; show/remove: not
listed; import: a bad row, nothing imported); 2 an error (unreachable list,
unreadable file, not an address, a bad config), printed as one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import getpass
import json
import os
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

from . import add_config_arg, load_settings_or_exit, report_config_error
from ..errors import ConfigError
from ..store.base import FIELDS, BounceEntry, StoreError, iso

EXIT_NO = 1
EXIT_ERROR = 2
RECHECK_REASON = "recheck: upstream accepts the address now"
IMPORT_BATCH = 1000  # entries a transaction: a relay waits at most one batch for the list's lock


class CommandError(Exception):
    """An operator-facing failure: one line on stderr, exit 2 (or `status`)."""

    def __init__(self, message: str, status: int = EXIT_ERROR):
        super().__init__(message)
        self.status = status


def register(sub) -> None:
    bounces = sub.add_parser("bounces", help="show and change the bounce list",
                             description="Show and change the bounce list the config names (bounce_list:). "
                                         "Changes take effect at the relay's next RCPT.")
    # -c/--config belongs to each action: argparse lets a subparser's default
    # overwrite a value given to its parent, so it is not offered at both levels.
    actions = bounces.add_subparsers(dest="bounces_command", metavar="ACTION")
    bounces.set_defaults(func=lambda args: (bounces.print_help(sys.stderr), EXIT_ERROR)[1])

    def action(name: str, help: str, run) -> argparse.ArgumentParser:
        p = actions.add_parser(name, help=help, description=help)
        add_config_arg(p, required=False)
        p.set_defaults(func=lambda args: _main(run, args))
        return p

    p = action("list", "list every listed address, in address order", _list)
    p.add_argument("--json", action="store_true", help="a JSON array of entries")

    p = action("show", "show one address's entry (exit 1 when not listed)", _show)
    p.add_argument("address")
    p.add_argument("--json", action="store_true", help="the entry as a JSON object")

    p = action("add", "put an address on the list", _add)
    p.add_argument("address")
    p.add_argument("--reason", required=True, help="why (kept with the entry and in the event)")
    p.add_argument("--category", default="operator", help="a classification category (default: operator)")

    p = action("remove", "take an address off the list, once its cause is fixed", _remove)
    p.add_argument("address")
    p.add_argument("--reason", required=True, help="what was fixed (written to the event)")

    p = action("check", "exit 0 if the address is not listed, 1 if it is (and say why)", _check)
    p.add_argument("address")

    p = action("import", "add the entries of a CSV file (header row; at least an address column)", _import)
    p.add_argument("file", metavar="FILE.csv")
    p.add_argument("--reason", help="written to each bounce_listed event (default: import from FILE)")
    _progress_args(p)

    p = action("export", "write the list as CSV with a header row", _export)
    p.add_argument("file", metavar="FILE.csv", nargs="?", default="-", help="default: - (stdout)")
    _progress_args(p)

    p = action("recheck", "ask the upstream whether listed addresses are accepted now (one connection, MAIL/RCPT, "
                          "no DATA; an upstream that accepts a made-up address is not believed)",
               _recheck)
    p.add_argument("addresses", metavar="ADDR", nargs="*", help="default: every listed address")
    p.add_argument("--remove", action="store_true", help="take addresses the upstream accepts off the list")
    p.add_argument("--sender", metavar="ADDR", help="envelope sender of the questions (default: postmaster@ "
                                                    "the config's hostname); never the null sender")
    p.add_argument("--pace", type=float, default=1.0, metavar="SECONDS",
                   help="pause before each command to the upstream (default: 1)")

    p = action("held", "the listings the circuit breakers hold for the operator, by domain", _held)
    p.add_argument("domain", nargs="?", help="one recipient domain, whichever breaker holds its listings "
                                             "(default: all)")
    p.add_argument("--provider", metavar="NAME", help="those the breaker of one refusing provider holds "
                                                       "(e.g. google.com)")
    p.add_argument("--json", action="store_true", help="a JSON array of held entries")

    p = action("confirm", "put held listings on the list: a whole domain, one address, or a provider's", _confirm)
    p.add_argument("target", metavar="DOMAIN|ADDR", nargs="?")
    p.add_argument("--provider", metavar="NAME", help="instead of DOMAIN|ADDR: every listing the breaker of "
                                                       "this refusing provider holds")
    p.add_argument("--reason", required=True, help="why they are right (written to each bounce_listed event)")

    p = action("discard", "forget held listings (the receiver misreported): a whole domain, one address, "
                          "or a provider's", _discard)
    p.add_argument("target", metavar="DOMAIN|ADDR", nargs="?")
    p.add_argument("--provider", metavar="NAME", help="instead of DOMAIN|ADDR: every listing the breaker of "
                                                       "this refusing provider holds")
    p.add_argument("--reason", required=True, help="why they are wrong (printed and logged)")


def _progress_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="show progress on stderr (default: when stderr is a terminal)")
    p.add_argument("--no-progress", dest="progress", action="store_false")


# -- the frame every action runs in ----------------------------------------------------------

class Context:
    def __init__(self, args, settings):
        self.args = args
        self.settings = settings
        self.store = None
        self._sinks = None
        self._actor: str | None = None

    def open(self):
        from ..store import open_store

        try:
            self.store = open_store(self.settings.bounce_list)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        return self.store

    def emit(self, kind: str, address: str, reason: str, **extra) -> None:
        from .. import events

        if self._sinks is None:
            self._sinks = events.EventSinks.for_command(self.settings)
        action = "listed" if kind == "bounce_listed" else "unlisted"
        if self._actor is None:
            self._actor = actor()  # once a run: an import announces a million entries
        self._sinks.emit(events.make_event(kind, stage="operator", recipient=address, action=action,
                                           actor=self._actor, reason=reason, **extra))

    async def close(self) -> dict[str, int]:
        """Close the list and the sinks; returns the audit events lost per sink (never stored, never
        spooled)."""
        if self.store is not None:
            await self.store.close()
        if self._sinks is not None:
            self._sinks.close()
            return self._sinks.lost()
        return {}


def actor() -> str:
    """Who ran the command: the user behind sudo when there is one."""
    for name in ("SUDO_USER", "USER", "LOGNAME"):
        if os.environ.get(name):
            return os.environ[name]
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def _main(run, args) -> int:
    if not args.config:
        print("error: -c/--config PATH is required (the config names the bounce list)", file=sys.stderr)
        return EXIT_ERROR
    settings = load_settings_or_exit(args, EXIT_ERROR)
    ctx = Context(args, settings)

    async def go() -> int:
        status = None
        try:
            status = await run(ctx)
        finally:
            lost = await ctx.close()
        if lost:
            # Every change is to write an event naming who made it and why: a change whose event is lost
            # is made, but not done as promised, and a script must not read it as success (review24 F7).
            where = "; ".join(f"{n} in {name}" for name, n in sorted(lost.items()))
            print(f"error: the change is made, but {sum(lost.values())} of its audit event(s) could not be "
                  f"stored ({where}): record who made it and why by other means", file=sys.stderr)
            return EXIT_ERROR
        return status

    try:
        return asyncio.run(go())
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.status
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # `relay bounces list | head`: the reader has all it wanted (relay.cli)
        raise
    except ConfigError as exc:  # found only now: `recheck` of domains, a nameserver name that does not resolve
        report_config_error(exc)
        return EXIT_ERROR
    except (OSError, ValueError) as exc:  # unreadable files, bad addresses
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # the database said no (asyncpg, sqlite3): one line, never a traceback
        print(f"error: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return EXIT_ERROR


def _address(text: str) -> str:
    """An address's list key, or a domain's (`@example.com`: every address there)."""
    from ..store.base import key_of

    try:
        return key_of(text)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


# -- actions -------------------------------------------------------------------------------------

async def _list(ctx: Context) -> int:
    store = ctx.open()
    out = sys.stdout
    if ctx.args.json:
        # A JSON array written as it is read: the list may hold millions of entries.
        first = True
        out.write("[")
        async for entry in store.iter_entries():
            out.write(("\n" if first else ",\n") + json.dumps(entry.as_dict(), ensure_ascii=False))
            first = False
        out.write("\n]\n" if not first else "]\n")
        return 0
    n = 0
    async for entry in store.iter_entries():
        if n == 0:
            out.write(f"{'ADDRESS':<40} {'CATEGORY':<18} {'SINCE':<10} {'SOURCE':<8} {'EXPIRES':<10} COUNT\n")
        out.write(f"{entry.address:<40} {entry.category:<18} {entry.first_seen.date().isoformat():<10} "
                  f"{entry.source:<8} {_date(entry.expires_at):<10} {entry.count}\n")
        n += 1
    print(f"{n} listed" if n != 1 else "1 listed", file=sys.stderr)
    return 0


def _date(value) -> str:
    return value.date().isoformat() if value else "never"


def _describe(entry: BounceEntry) -> str:
    lines = [f"address:    {entry.address}",
             f"listed:     since {iso(entry.first_seen)} ({entry.source}), last failure {iso(entry.last_seen)}",
             f"category:   {entry.category} (rule {entry.rule}), {entry.count} failure(s)",
             f"expires:    {iso(entry.expires_at) or 'never'}"]
    if entry.note:
        lines.append(f"note:       {entry.note}")
    if entry.reply:
        reply = entry.reply.split("\n")
        lines.append(f"reply:      {reply[0]}")
        lines += [f"            {line}" for line in reply[1:]]
    return "\n".join(lines)


async def _held_note(store, key: str) -> str:
    """", held by ... breaker: ..." when a circuit breaker holds a listing of `key` (it is not listed:
    mail to it flows until an operator confirms), else "" (review-17 F5: `check` said only "not
    listed", and the operator looking it up did not learn that a breaker held it)."""
    if key.startswith("@"):
        return ""
    for entry in await store.held(key.rpartition("@")[2]):
        if entry.address == key:
            holder = _holder(entry)
            if holder["held_by"] == "provider":
                return (f", held by the provider {holder['provider']}'s circuit breaker: relay bounces held "
                        f"--provider {holder['provider']}, then confirm or discard")
            return (f", held by the circuit breaker of {key.rpartition('@')[2]}: relay bounces held "
                    f"{key.rpartition('@')[2]}, then confirm or discard")
    return ""


async def _show(ctx: Context) -> int:
    key = _address(ctx.args.address)
    store = ctx.open()
    entry = await store.get(key)
    if entry is None:
        if ctx.args.json:
            print("null")
        print(f"{key} is not on the bounce list{await _held_note(store, key)}", file=sys.stderr)
        return EXIT_NO
    print(json.dumps(entry.as_dict(), ensure_ascii=False, indent=2) if ctx.args.json else _describe(entry))
    return 0


async def _add(ctx: Context) -> int:
    from ..suppression import CATEGORIES

    key = _address(ctx.args.address)
    category = ctx.args.category
    if category != "operator" and category not in CATEGORIES:
        raise CommandError(f"unknown category {category!r}; expected operator or one of: {', '.join(CATEGORIES)}")
    reason = _reason(ctx.args.reason)
    entry = await ctx.open().add(key, category=category, source="operator", note=reason)
    ctx.emit("bounce_listed", key, reason, category=category, entry=entry.as_dict())
    print(f"{key}: listed ({category}): {reason}")
    return 0


async def _remove(ctx: Context) -> int:
    key = _address(ctx.args.address)
    reason = _reason(ctx.args.reason)
    store = ctx.open()
    removed, held = await store.unlist(key)
    # A held listing is discarded with it: a later `confirm DOMAIN` would list the address the
    # operator just said is good (review24 F3).
    held_note = f"; its listing held by {_held_by_words(held)} discarded too" if held is not None else ""
    # Still refused through its domain's entry: say so, and how to lift it (review24 F6: "not on the
    # bounce list" while every RCPT to it was refused).
    through = await store.get(key) if not key.startswith("@") else None
    domain_note = (f"; mail to it is still refused through its domain's entry {through.address} (relay bounces "
                   f"remove {through.address} --reason R lifts it for every address there)"
                   if through is not None and through.address != key else "")
    if removed is None and held is None:
        itself = " itself" if domain_note else ""
        print(f"{key} is not on the bounce list{itself}; nothing removed{domain_note}", file=sys.stderr)
        return EXIT_NO
    if removed is None:
        print(f"{key}: not on the bounce list{held_note}{domain_note}: {reason}")
        return 0
    ctx.emit("bounce_unlisted", key, reason, entry=removed.as_dict())
    print(f"{key}: removed{held_note}{domain_note}: {reason}")
    return 0


def _held_by_words(entry: BounceEntry) -> str:
    """Which circuit breaker held `entry`, in words."""
    holder = _holder(entry)
    if holder["held_by"] == "provider":
        return f"the provider {holder['provider']}'s circuit breaker"
    if holder["held_by"] == "domains":
        return "the breaker on domain listings"
    return f"the circuit breaker of {entry.address.rpartition('@')[2]}"


def _target(text: str) -> str:
    """A held-listings target: an address, or a domain (with or without a leading @)."""
    from ..domains import normalise_domain

    text = text.strip()
    if "@" in text.lstrip("@"):
        return _address(text)
    try:
        return normalise_domain(text.lstrip("@"))
    except ValueError as exc:
        raise CommandError(f"{text!r} is neither an address nor a domain: {exc}") from None


def _provider(text: str) -> str:
    """A provider's name as the provider breaker keys it (suppression.provider_name)."""
    from ..suppression import provider_name

    name = provider_name(text)
    if name is None:
        raise CommandError(f"{text!r} is not a provider's name: give its domain, such as google.com")
    return name


def _held_target(ctx: Context) -> tuple[str, bool]:
    """confirm/discard's target: (DOMAIN|ADDR, False) or (provider name, True); exactly one given."""
    if (ctx.args.target is None) == (ctx.args.provider is None):
        raise CommandError("give one of DOMAIN|ADDR or --provider NAME")
    if ctx.args.provider is not None:
        return _provider(ctx.args.provider), True
    return _target(ctx.args.target), False


def _holder(entry: BounceEntry) -> dict:
    """Which breaker holds a listing, for held's output: its recipient domain's, or a provider's."""
    from ..store.base import DOMAINS_HOLDER, PROVIDER_PREFIX

    by = entry.held_by or ""
    if by.startswith(PROVIDER_PREFIX):
        return {"held_by": "provider", "provider": by[len(PROVIDER_PREFIX):]}
    if by == DOMAINS_HOLDER:
        return {"held_by": "domains", "provider": None}  # the breaker on @domain listings
    return {"held_by": "domain", "provider": None}


async def _held(ctx: Context) -> int:
    domain = _target(ctx.args.domain) if ctx.args.domain else None
    if domain is not None and "@" in domain:
        raise CommandError("held takes a domain, not an address")
    provider = _provider(ctx.args.provider) if ctx.args.provider else None
    if domain is not None and provider is not None:
        raise CommandError("give a domain or --provider NAME, not both")
    entries = await ctx.open().held(domain, provider=provider)
    if ctx.args.json:
        print(json.dumps([{**e.as_dict(), "domain": e.address.rpartition("@")[2], **_holder(e)} for e in entries],
                         ensure_ascii=False, indent=1))
        return 0
    groups: dict[tuple[str, str], list[BounceEntry]] = {}
    for entry in entries:
        holder = _holder(entry)
        if holder["provider"] is not None:
            groups.setdefault(("provider", holder["provider"]), []).append(entry)
        else:
            groups.setdefault(("domain", entry.address.rpartition("@")[2]), []).append(entry)
    for (kind, name), held in sorted(groups.items()):
        if kind == "domain":
            print(f"{name}: {len(held)} held (confirm: relay bounces confirm {name} --reason R; "
                  f"discard: relay bounces discard {name} --reason R)")
        else:
            print(f"provider {name}: {len(held)} held (confirm: relay bounces confirm --provider {name} --reason R; "
                  f"discard: relay bounces discard --provider {name} --reason R)")
        for entry in held:
            print(f"  {entry.address:<40} {entry.category:<18} {iso(entry.last_seen)}")
    print(f"{len(entries)} held" if len(entries) != 1 else "1 held", file=sys.stderr)
    return 0


async def _confirm(ctx: Context) -> int:
    target, provider = _held_target(ctx)
    reason = _reason(ctx.args.reason)
    confirmed = await ctx.open().confirm_held(target, provider=provider)
    shown = f"provider {target}" if provider else target
    if not confirmed:
        print(f"nothing held for {shown}", file=sys.stderr)
        return EXIT_NO
    for entry in confirmed:
        ctx.emit("bounce_listed", entry.address, reason, category=entry.category, entry=entry.as_dict())
    print(f"{shown}: {len(confirmed)} held listing(s) confirmed: {reason}")
    return 0


async def _discard(ctx: Context) -> int:
    target, provider = _held_target(ctx)
    reason = _reason(ctx.args.reason)
    discarded = await ctx.open().discard_held(target, provider=provider)
    shown = f"provider {target}" if provider else target
    if not discarded:
        print(f"nothing held for {shown}", file=sys.stderr)
        return EXIT_NO
    print(f"{shown}: {len(discarded)} held listing(s) discarded: {reason}")
    return 0


def _reason(text: str) -> str:
    reason = " ".join(text.split())
    if not reason:
        raise CommandError("--reason must say why (it is kept for the audit trail)")
    return reason


async def _check(ctx: Context) -> int:
    key = _address(ctx.args.address)
    store = ctx.open()
    entry = await store.get(key)
    if entry is None:
        print(f"{key}: not listed{await _held_note(store, key)}")
        return 0
    origin = entry.category if entry.category == entry.source else f"{entry.category}, {entry.source}"
    why = f"{key}: listed since {entry.first_seen.date().isoformat()} ({origin})"
    if entry.address != key:
        why += f" through its domain's entry {entry.address}"
    if entry.reply:
        from ..steps.bounce_list import original_first_line

        why += f": {original_first_line(entry.reply)}"
    elif entry.note:
        why += f": {entry.note}"
    print(why)
    return EXIT_NO


# -- CSV -----------------------------------------------------------------------------------------

# The longest line of a CSV file read (an entry with its reply and note is under 2 KiB; the csv module's
# own field_size_limit is 128 KiB). A file is streamed, whatever its size, but a line is held whole:
# /dev/zero, or a file of NULs without a newline, grew the process by 1.35 GB in 6 s (review31 F6).
MAX_CSV_LINE = 1 << 20


class _BoundedLines:
    """The lines of a text file, each at most MAX_CSV_LINE characters (a CommandError past it)."""

    def __init__(self, fh, path: str):
        self.fh, self.path, self.line = fh, path, 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = self.fh.readline(MAX_CSV_LINE + 1)
        if not line:
            raise StopIteration
        self.line += 1
        if len(line) > MAX_CSV_LINE:
            raise CommandError(f"{self.path}: line {self.line}: longer than {MAX_CSV_LINE} characters; not a "
                               f"CSV file of bounce-list entries")
        return line


@contextmanager
def _csv_rows(path: str) -> Iterator[Iterator[tuple[int, dict]]]:
    """(line number, row) of a CSV file with a header row; errors name file and line. The file must be
    a regular one (a FIFO blocked, /dev/zero never ended: yamlfile.open_regular's checks)."""
    import io

    from ..yamlfile import FileProblem, open_regular

    if path == "-":
        fh = sys.stdin
    else:
        try:
            fd = open_regular(path)
            os.set_blocking(fd, True)
        except FileProblem as exc:
            raise CommandError(f"{path}: {exc}") from None
        fh = io.open(fd, newline="", encoding="utf-8-sig")
    try:
        reader = csv.DictReader(_BoundedLines(fh, path))
        try:
            header = reader.fieldnames
        except (csv.Error, UnicodeDecodeError) as exc:
            raise CommandError(f"{path}: line 1: not CSV: {exc}") from None
        if not header:
            raise CommandError(f"{path}: empty file (expected a header row with at least 'address')")
        unknown = [c for c in header if c not in FIELDS]
        if "address" not in header or unknown:
            raise CommandError(f"{path}: line 1: header must name 'address' and only columns of: "
                               f"{', '.join(FIELDS)}" + (f" (unknown: {', '.join(map(repr, unknown))})" if unknown else ""))

        def rows():
            try:
                for row in reader:
                    if None in row:
                        raise CommandError(f"{path}: line {reader.line_num}: more fields than the header has",
                                           EXIT_NO)
                    yield reader.line_num, row
            except (csv.Error, UnicodeDecodeError) as exc:
                raise CommandError(f"{path}: line {reader.line_num}: {exc}", EXIT_NO) from None

        yield rows()
    finally:
        if fh is not sys.stdin:
            fh.close()


def _entries(path: str) -> Iterator[BounceEntry]:
    with _csv_rows(path) as rows:
        for line, row in rows:
            if not any((v or "").strip() for v in row.values()):
                continue  # a blank line
            try:
                entry = BounceEntry.from_dict(row)
            except ValueError as exc:
                raise CommandError(f"{path}: line {line}: {exc}", EXIT_NO) from None
            if entry.expires_at is not None and entry.expires_at <= datetime.now(timezone.utc):
                # Imported, it would be on the list for no lookup at all, and said so in a bounce_listed
                # event: a row that says one thing and does another (review32).
                raise CommandError(f"{path}: line {line}: expires_at {iso(entry.expires_at)} has passed: "
                                   f"the entry would never be listed (leave expires_at empty for an entry "
                                   f"that never expires)", EXIT_NO)
            yield entry


async def _import(ctx: Context) -> int:
    from .progress import Progress, wanted

    path = ctx.args.file
    if path == "-":
        raise CommandError("import reads a file (it is read twice: checked first, then imported)")
    show = wanted(ctx.args.progress)
    # First pass: check every row, so a bad line imports nothing rather than half the file.
    # Both passes stream: memory holds one batch, whatever the size of the file.
    checking = Progress("checking", enabled=show)
    total = 0
    for _ in _entries(path):
        total += 1
        checking.advance()
    checking.finish()
    store = ctx.open()
    reason = _reason(ctx.args.reason or f"import from {os.path.basename(path)}")
    progress = Progress("importing", total, enabled=show)
    imported = 0
    chunk: list[BounceEntry] = []

    async def flush() -> None:
        nonlocal imported
        imported += await store.put_many(chunk, batch=IMPORT_BATCH)
        for entry in chunk:  # announced once committed, never before
            ctx.emit("bounce_listed", entry.address, reason, category=entry.category, entry=entry.as_dict())
        progress.advance(len(chunk))
        chunk.clear()

    for entry in _entries(path):
        chunk.append(entry)
        if len(chunk) >= IMPORT_BATCH:
            await flush()
    if chunk:
        await flush()
    progress.finish()
    print(f"imported {imported} of {total} entries from {path}")
    return 0


async def _export(ctx: Context) -> int:
    from .progress import Progress, wanted

    store = ctx.open()
    path = ctx.args.file
    show = wanted(ctx.args.progress)
    progress = Progress("exporting", await store.count() if show else None, enabled=show)
    try:
        fh = sys.stdout if path == "-" else open(path, "w", newline="", encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None
    n = 0
    try:
        writer = csv.DictWriter(fh, fieldnames=FIELDS, lineterminator="\r\n")  # RFC 4180 2.1
        writer.writeheader()
        async for entry in store.iter_entries():  # a page at a time: memory holds one page
            writer.writerow({k: ("" if v is None else v) for k, v in entry.as_dict().items()})
            n += 1
            progress.advance()
    finally:
        if fh is sys.stdout:
            fh.flush()
        else:
            fh.close()
    progress.finish()
    if path != "-":
        print(f"exported {n} entries to {path}")
    return 0


async def _named(store, keys: list[str]):
    for key in keys:
        entry = await store.get(key)
        if entry is None:
            print(f"{key}: not listed")
        else:
            yield entry


# -- recheck -------------------------------------------------------------------------------------

async def _recheck(ctx: Context) -> int:
    """Ask the upstream, the way a careful MTA would, whether listed addresses are accepted now.

    One connection for the whole run; a real sender (`--sender`, default postmaster@ our
    hostname: RFC 5321 4.5.1 says it exists), never the null sender that receivers distrust;
    several RCPTs per transaction (RECHECK_BATCH), paced (`--pace` seconds between commands),
    no DATA. Before it asks about a domain's listed addresses it asks about an address there
    that surely does not exist: an upstream that accepts that one accepts every address (a
    smarthost that does not verify recipients, a catch-all), and its 250s say nothing, so
    nothing at that domain is removed."""
    store = ctx.open()
    if ctx.args.addresses:
        keys = [_address(a) for a in ctx.args.addresses]
        entries = [entry async for entry in _named(store, keys)]
    else:
        entries = [entry async for entry in store.iter_entries()]
    sender = _address(ctx.args.sender) if ctx.args.sender else f"postmaster@{ctx.settings.hostname}"
    by_domain: dict[str, list[BounceEntry]] = {}
    domains = [entry for entry in entries if entry.address.startswith("@")]
    for entry in entries:
        if not entry.address.startswith("@"):
            by_domain.setdefault(entry.address.rpartition("@")[2], []).append(entry)
    if ctx.settings.upstream is None and (by_domain or not domains):
        raise CommandError("recheck needs an upstream: the config names none")
    if domains:
        # A domain entry has no address to ask the upstream about: the relay's own resolver is asked
        # whether the domain still does not exist.
        await _recheck_domains(ctx, store, domains)
    if not by_domain:
        return 0
    checker = _Recheck(ctx, store, sender, max(ctx.args.pace, 0.0))
    try:
        for domain, listed in by_domain.items():
            await checker.domain(domain, listed)
    finally:
        await checker.close()
    if checker.unasked:
        # Nothing was removed for them, but nothing was checked either: an error, not "still refused"
        # (review-17 F4: an unreachable upstream printed "still refused" for every address, exit 0).
        print(f"recheck: {checker.unasked} address(es) not asked: the upstream could not be asked; "
              f"run it again later", file=sys.stderr)
        return 2
    return 0


RECHECK_DOMAIN_REASON = "recheck: the domain resolves now"
# What relay/delivery/routes.py says of a domain whose listing still stands: it does not exist
# (NXDOMAIN), it takes no mail (null MX, RFC 7505), or it has no mail server at all (no MX, A or AAAA).
_STILL_NO_DOMAIN = {"mx-nxdomain": "still does not exist", "mx-null": "still takes no mail (null MX)",
                    "mx-no-mail-server": "still has no mail server (no MX, A or AAAA)"}


async def _recheck_domains(ctx: Context, store, entries: list[BounceEntry]) -> None:
    """Ask the relay's resolver (the config's `resolver:`, the one MX delivery uses) what DNS says
    now of each listed domain (`@example.com`, listed because it did not exist). NXDOMAIN, a null
    MX, or no mail server at all: still listed. An MX set or an address: the domain resolves now
    (a registrar hold lifted, a botched zone fixed), and `--remove` takes the entry off. DNS trouble
    (SERVFAIL, timeout) or an unusable MX set says nothing either way: kept. Removing is the safe
    direction: a domain that really is gone is listed again at its next two sightings."""
    from ..delivery.routes import RouteError, Routes
    from ..dns import Resolver

    routes = Routes(Resolver.from_settings(ctx.settings))
    for entry in entries:
        domain = entry.address[1:]
        try:
            route = await routes.route(domain)
        except RouteError as exc:
            cause = exc.reply.cause
            if cause in _STILL_NO_DOMAIN:
                print(f"{entry.address}: {_STILL_NO_DOMAIN[cause]} ({_first_line(exc.reply)}); kept "
                      f"(expires {_date(entry.expires_at)})")
            elif cause == "mx-loop":
                _domain_resolves(ctx, entry, "its MX is this relay")
                await _unlist_domain(ctx, store, entry)
            else:
                print(f"{entry.address}: not judged: {_first_line(exc.reply)}; kept")
            continue
        hosts = ", ".join(h.name for h in route.hosts[:3]) + (" ..." if len(route.hosts) > 3 else "")
        _domain_resolves(ctx, entry, f"mail goes to {hosts}")
        await _unlist_domain(ctx, store, entry)


def _domain_resolves(ctx: Context, entry: BounceEntry, how: str) -> None:
    if ctx.args.remove:
        print(f"{entry.address}: resolves now ({how}): removed")
    else:
        print(f"{entry.address}: resolves now ({how}): remove with --remove, or bounces remove")


async def _unlist_domain(ctx: Context, store, entry: BounceEntry) -> None:
    if ctx.args.remove and await store.remove(entry.address) is not None:
        ctx.emit("bounce_unlisted", entry.address, RECHECK_DOMAIN_REASON, entry=entry.as_dict())


RECHECK_BATCH = 20  # RCPTs per transaction: well inside the 100 a server must take (RFC 5321 4.5.3.1.8)


class _Recheck:
    """One recheck run over one upstream connection."""

    def __init__(self, ctx: Context, store, sender: str, pace: float):
        self.ctx, self.store, self.sender, self.pace = ctx, store, sender, pace
        self.conn = None
        self.failed = None  # the Reply that ended the connection; later addresses are not asked
        self.unasked = 0  # addresses the upstream was never asked about (the run's exit status)

    async def _connection(self):
        from ..errors import ConfigError
        from ..upstream import UpstreamError, UpstreamPool

        if self.conn is None and self.failed is None:
            try:
                pool = UpstreamPool(self.ctx.settings)
            except ConfigError as exc:  # upstream.ca_file replaced since the config was read
                raise CommandError("; ".join(str(p) for p in exc.problems)) from None
            try:
                self.conn = await pool.connect()
            except UpstreamError as exc:
                self.failed = exc.reply
        return self.conn

    async def _ask(self, command, *args):
        """One paced command; None (and the connection closed) when the upstream is gone."""
        from ..upstream import UpstreamError

        if self.pace:
            await asyncio.sleep(self.pace)
        try:
            reply = await command(*args)
        except UpstreamError as exc:
            self.failed, self.conn = exc.reply, None
            return None
        if reply.code == 421:  # RFC 5321 3.8: the server is closing the channel
            self.failed, self.conn = reply, None
        return reply

    async def domain(self, domain: str, listed: list[BounceEntry]) -> None:
        import secrets

        probe = f"relay-recheck-{secrets.token_hex(8)}@{domain}"
        for start in range(0, len(listed), RECHECK_BATCH):
            batch = listed[start:start + RECHECK_BATCH]
            conn = await self._connection()
            if conn is None:
                self._unasked(batch)
                continue
            mail = await self._ask(conn.mail, self.sender, [])
            if mail is None or not mail.positive:
                self._unasked(batch, mail)
                if mail is not None:
                    await self._ask(conn.rset)
                continue
            # The probe comes first in every transaction: an upstream may change its mind (a
            # verification cache that times out), and a catch-all makes every answer meaningless.
            answer = await self._ask(conn.rcpt, probe)
            if answer is None:
                self._unasked(batch)
                continue
            if answer.positive or answer.code // 100 == 4:
                why = (f"it accepted {probe}, an address that does not exist, so it accepts any address at "
                       f"{domain} and its answers say nothing" if answer.positive else
                       f"it did not say whether {probe} exists ({_first_line(answer)}), so its answers "
                       f"cannot be trusted now")
                for entry in batch:
                    print(f"{entry.address}: not judged: {why}; nothing removed")
                await self._ask(conn.rset)
                continue
            for entry in batch:
                reply = await self._ask(conn.rcpt, entry.address)
                if reply is None:
                    self._unasked([entry])
                    continue
                await self._judge(entry, reply)
            if self.conn is not None:
                await self._ask(conn.rset)

    async def _judge(self, entry: BounceEntry, reply) -> None:
        key, answer = entry.address, _first_line(reply)
        if reply.code // 100 == 4:  # RFC 5321 4.2.1: "try again later" says nothing of the address
            print(f"{key}: no answer yet ({answer}): nothing removed")
        elif not reply.positive:
            print(f"{key}: still refused ({answer})")
        elif self.ctx.args.remove:
            if await self.store.remove(key) is not None:
                self.ctx.emit("bounce_unlisted", key, RECHECK_REASON, entry=entry.as_dict(), reply=reply)
            print(f"{key}: accepted now ({answer}): removed")
        else:
            print(f"{key}: accepted now ({answer}): remove with --remove, or bounces remove")

    def _unasked(self, entries: list[BounceEntry], reply=None) -> None:
        reply = reply or self.failed
        why = _first_line(reply) if reply is not None else "no reply"
        for entry in entries:
            print(f"{entry.address}: not asked ({why}): nothing removed")
        self.unasked += len(entries)

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.quit()


def _first_line(reply) -> str:
    return reply.text.split("\n")[0] if reply.code else "no reply"
