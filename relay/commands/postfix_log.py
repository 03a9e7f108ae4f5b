"""`relay postfix-log import FILE... -c CONFIG [--dry-run]`: read Postfix's log once.

Every delivery failure found (`status=bounced|deferred|undeliverable`) goes through the funnel, as a
running relay following the same log would send it: events to the configured sinks, addresses onto
the bounce list. For tests, for back-filling a bounce list from months of logs (rotated files,
gzipped or not, read oldest first whatever the order given: `oldest_first`), and with `--dry-run`
for seeing what it would do: the events and the listings are printed as JSON lines on stdout and
nothing is written anywhere.

Exit status: 0 done; 2 an error (an unreadable file, an unreachable bounce list), one line on stderr.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import sys
import time
from pathlib import Path
from typing import IO, Iterator

from ..address import fold
from . import add_config_arg, load_policies_or_exit, load_settings_or_exit

EXIT_ERROR = 2
PROGRESS_EVERY = 0.25  # seconds between two progress lines


def register(sub) -> None:
    p = sub.add_parser("postfix-log", help="learn from Postfix's deliveries (its log)",
                       description="Read Postfix's log (syslog or maillog_file lines) and feed its delivery "
                                   "results through the funnel: events and bounce list.")
    actions = p.add_subparsers(dest="postfix_log_command", metavar="ACTION")
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), EXIT_ERROR)[1])
    imp = actions.add_parser("import", help="process a log once (events and bounce list)",
                             description="Process Postfix log files once, oldest first, whatever "
                                         "the order given (by each file's first time stamp; .gz files are "
                                         "read as they are; - is stdin, read last): syslog or maillog_file lines, or the "
                                         "journal's records as `journalctl -o json` writes them. Every "
                                         "failure goes through the funnel: events to the configured sinks, "
                                         "addresses onto the bounce list.")
    add_config_arg(imp)
    imp.add_argument("files", metavar="FILE", nargs="+")
    imp.add_argument("--dry-run", action="store_true",
                     help="print the events and listings as JSON lines, write nothing")
    imp.add_argument("--progress", action=argparse_bool(), default=None,
                     help="a progress line on stderr (default: when stderr is a terminal)")
    imp.set_defaults(func=run_import)


def argparse_bool():
    import argparse
    return argparse.BooleanOptionalAction


class Progress:
    """One line on stderr, rewritten in place: how far through the files, lines and failures seen."""

    def __init__(self, enabled: bool, total: int):
        self.enabled = enabled
        self.total = total
        self.done_before = 0  # bytes of the files already finished
        self.last = 0.0
        self.shown = False

    def update(self, position: int, lines: int, failures: int, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last < PROGRESS_EVERY:
            return
        self.last = now
        done = self.done_before + position
        pct = f"{100 * done / self.total:5.1f}%" if self.total else "     "
        sys.stderr.write(f"\r{pct} {_mib(done)} of {_mib(self.total)}, {lines:,} lines, {failures:,} failures ")
        sys.stderr.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            sys.stderr.write("\n")


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _open(name: str) -> tuple[IO[bytes], IO[bytes]]:
    """(reader, raw file): the raw file's position is the progress through a gzipped file."""
    if name == "-":
        return sys.stdin.buffer, sys.stdin.buffer
    raw = open(name, "rb")
    if raw.read(2) == b"\x1f\x8b":  # RFC 1952 2.3.1: gzip's magic
        raw.seek(0)
        return gzip.GzipFile(fileobj=raw), raw
    raw.seek(0)
    return raw, raw


class _Lines:
    """The lines of a log as text, each at most MAX_LINE bytes as the live follower reads them
    (relay/intake/follower.py): a longer one is no log line (NULs, a binary file given by mistake) and
    is skipped up to its newline without being held, and counted in `cut`. Each line was held whole
    before, however long: /dev/zero or a file without newlines grew the process until a MemoryError's
    traceback."""

    def __init__(self, reader: IO[bytes]):
        from ..intake.follower import MAX_LINE

        self.reader = reader
        self.limit = MAX_LINE
        self.cut = 0

    def __iter__(self) -> Iterator[str]:
        while True:
            raw = self.reader.readline(self.limit + 1)
            if not raw:
                return
            if len(raw) > self.limit and not raw.endswith(b"\n"):
                self.cut += 1
                while raw and not raw.endswith(b"\n"):  # the rest of the line, in pieces
                    raw = self.reader.readline(1 << 20)
                continue
            yield raw.decode("utf-8", "replace")


def _lines(reader: IO[bytes]) -> Iterator[str]:
    return iter(_Lines(reader))


def _not_a_log_file(name: str) -> str | None:
    """Why the file at `name` cannot be read as a log, or None: a directory, a device (/dev/zero never
    ends), a FIFO (read twice: once for its first time stamp, then for its lines), a socket. They gave
    "[Errno 21] Is a directory", "File or stream is not seekable", or no end."""
    from ..yamlfile import FileProblem, open_regular

    try:
        os.close(open_regular(name))
    except FileProblem as exc:
        if "FIFO" in str(exc):
            return f"{exc}; pipe it in instead (... | relay postfix-log import - -c CONFIG)"
        return str(exc)
    return None


def read_line(text: str):
    """The LogLine of one line of input, or None: a syslog or maillog_file line, or a journal record as
    `journalctl -o json` (or `-o json-seq`, each record after an RS) writes it, the format the live
    follower reads (review26 F5: such a file was read as 0 lines, and the import said so with exit 0)."""
    from ..intake.follower import journal_line
    from ..intake.postfix_log import parse_line

    record = text.lstrip("\x1e \t")
    if record.startswith("{"):
        try:
            data = json.loads(record)
        except ValueError:
            data = None
        if isinstance(data, dict):
            return journal_line(data)
    return parse_line(text)


FIRST_LINES = 100  # lines of a file looked at for its first time stamp


def _first_time(name: str):
    """The time stamp of the first log line of a file (gzipped or not) that has one, else None."""
    reader, raw = _open(name)
    try:
        for i, text in enumerate(_lines(reader)):
            if i >= FIRST_LINES:
                break
            line = read_line(text)
            if line is not None and line.time is not None:
                t = line.time
                return t if t.tzinfo is not None else t.astimezone()
    except (OSError, EOFError, ValueError):
        return None
    finally:
        reader.close()
        raw.close()
    return None


def _rotation(name: str) -> int:
    """logrotate's number of a rotated file (mail.log.3, mail.log.3.gz: 3; mail.log: 0): higher is older."""
    parts = Path(name).name.split(".")
    while parts and parts[-1] in ("gz", "bz2", "xz", "zst"):
        parts.pop()
    return int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else 0


def oldest_first(names: list[str]) -> list[str]:
    """The files in the order their lines were written: by the time stamp of each file's first log line
    (its modification time when it has none), then logrotate's number (mail.log.2.gz before mail.log.1
    before mail.log), then the order given; stdin (-) last. A shell's `mail.log*` is newest first
    (mail.log, mail.log.1, mail.log.10.gz, mail.log.2.gz): read so, correlation ran backwards, results
    came before their message's sender and Message-ID, and an expiry before the deferrals it reports
    (review30 D3: its `rejected` event was lost)."""
    import datetime

    files = [n for n in names if n != "-"]

    def key(item):
        index, name = item
        when = _first_time(name)
        if when is None:
            when = datetime.datetime.fromtimestamp(os.stat(name).st_mtime, datetime.timezone.utc)
        return when, -_rotation(name), index

    ordered = [name for _, name in sorted(enumerate(files), key=key)]
    return ordered + [n for n in names if n == "-"]


def run_import(args) -> int:
    settings = load_settings_or_exit(args, EXIT_ERROR)
    policies = load_policies_or_exit(settings, EXIT_ERROR)
    for name in args.files:
        if name != "-" and not os.access(name, os.R_OK):
            why = "does not exist" if not os.path.exists(name) else "is not readable"
            print(f"error: {name} {why}", file=sys.stderr)
            return EXIT_ERROR
        why = None if name == "-" else _not_a_log_file(name)
        if why:
            print(f"error: {name}: {why}", file=sys.stderr)
            return EXIT_ERROR
    try:
        files = oldest_first(args.files)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if files != args.files:
        print(f"reading oldest first: {' '.join(files)}", file=sys.stderr)
        args.files = files
    try:
        return asyncio.run(_import(args, settings, policies))
    except BrokenPipeError:
        raise  # the reader went away (| head): cli.main ends quietly
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # the bounce list said no: one line, never a traceback
        print(f"error: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return EXIT_ERROR


async def _import(args, settings, policies) -> int:
    from ..intake.postfix_events import PostfixLogIntake

    intake = PostfixLogIntake(settings)
    total = sum(Path(n).stat().st_size for n in args.files if n != "-")
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    progress = Progress(show, total)
    sink = DryRun(policies) if args.dry_run else None
    outcomes = close = None
    if sink is None:
        from ..outcomes import open_outcomes
        outcomes, close = await open_outcomes(settings, policies)
    failures = 0
    read = 0  # lines of input that are not blank
    cut = 0  # lines past MAX_LINE, skipped
    kinds: dict[str, int] = {}
    try:
        for name in args.files:
            reader, raw = _open(name)
            lines = _Lines(reader)
            try:
                for text in lines:
                    if text.strip("\x00\x1e \t\r\n"):
                        read += 1
                    for obs in intake.take(read_line(text)):
                        failures += 1
                        events = sink.observe(obs) if sink else await outcomes.observe(obs)
                        for event in events:
                            kinds[event["kind"]] = kinds.get(event["kind"], 0) + 1
                    if progress.enabled:
                        progress.update(raw.tell() if raw is not sys.stdin.buffer else 0, intake.lines, failures)
            finally:
                cut += lines.cut
                read += lines.cut
                if reader is not sys.stdin.buffer:
                    progress.done_before += Path(name).stat().st_size
                    reader.close()
                    raw.close()
        progress.update(0, intake.lines, failures, force=True)
    finally:
        progress.finish()
        if close is not None:
            await close()
    if cut:
        from ..intake.follower import MAX_LINE
        print(f"warning: {cut:,} line{'s' if cut != 1 else ''} longer than {MAX_LINE} bytes skipped: no log "
              f"line is that long (NULs or binary data in the input?)", file=sys.stderr)
    if read and not intake.lines:
        # Nothing was taken for a log line: another format (journalctl -o json-pretty or export, a CSV),
        # not a log without deliveries. Said, and not a success.
        print(f"error: none of the {read:,} lines read is a syslog or maillog_file line or a journal record "
              f"(journalctl -o json): not a Postfix log this command can read", file=sys.stderr)
        return EXIT_ERROR
    listed = kinds.get("bounce_listed", 0)
    verb = "would list" if sink else "listed"
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()) if k != "bounce_listed") or "no events"
    print(f"{intake.lines:,} lines, {intake.results:,} delivery results, {failures:,} failures: {summary}; "
          f"{verb} {listed} address{'es' if listed != 1 else ''}", file=sys.stderr)
    return 0


class DryRun:
    """What the funnel would do, judged by the same policies, printed instead of done."""

    def __init__(self, policies):
        self.policies = policies
        self.listed: set[str] = set()

    def observe(self, obs) -> list[dict]:
        from ..events import make_event

        judgement = self.policies.judge(obs.reply, obs.stage, [obs.recipient] if obs.recipient else [], obs.aliases,
                                        obs.senders() or None)
        stage = obs.stage or "data"
        base = {"sender": obs.sender, "recipient": obs.recipient, "message_id": obs.message_id}
        fields = dict(obs.fields)
        would = judgement.bounce_list if judgement.concerns(obs.recipient) else "never"
        # The verdict has a field of its own: `bounce_list` is what a failure DID to the list (listed, held,
        # error: relay.event/1's schema), and a dry run did nothing (review22 F5). Its values are the
        # policy's, as `relay classify` prints them.
        fields["would_bounce_list"] = would if would in ("list", "count") else "never"
        events = [make_event(obs.kind, stage, reply=obs.reply, classification=judgement.classification,
                             dry_run=True, **base, **fields)]
        key = fold(obs.recipient)
        if would == "list" and key not in self.listed:
            self.listed.add(key)
            events.append(make_event("bounce_listed", stage, reply=obs.reply,
                                     classification=judgement.classification, actor="relay", dry_run=True,
                                     reason=f"{judgement.classification.category} "
                                            f"({judgement.classification.rule})", **base))
        for event in events:
            sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
        return events
