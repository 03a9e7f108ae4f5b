"""`relay events tail`: a readable view of the delivery-error events, following the file (a jsonl
sink) or the table (a postgresql sink)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from ..address import printable
from ..events import KINDS
from . import add_config_arg, load_settings_or_exit


def _count(text: str) -> int:
    """-n N: a whole number of events, 0 or more. A negative one is a usage error (exit 2): it showed nothing,
    exit 0, as if there were no events (GNU tail reads -n -1 as 1; neither guess is safe)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the number of events to show is 0 or more")
    return value


def register(sub) -> None:
    p = sub.add_parser("events", help="read the delivery-error events")
    events_sub = p.add_subparsers(dest="events_command", metavar="SUBCOMMAND")
    t = events_sub.add_parser("tail", help="show events (time, kind, recipient, code, category, first line)",
                              description="Show the events of the config's jsonl sink (or, when it has "
                                          "none or with --db, its postgresql sink), newest last.")
    t.add_argument("-f", "--follow", action="store_true", help="keep reading as events arrive")
    t.add_argument("-n", "--lines", type=_count, default=20, help="how many past events to show (default 20)")
    # choices: a misspelt kind (--kind bounce) is an error naming the kinds, not an empty listing.
    t.add_argument("--kind", action="append", choices=KINDS, metavar="KIND",
                   help="only this kind (repeatable): " + ", ".join(KINDS))
    t.add_argument("--recipient", help="only events for this address (case-insensitive)")
    t.add_argument("--json", action="store_true", help="print the events as JSON lines")
    t.add_argument("--file", help="read this jsonl file instead of the config's")
    t.add_argument("--db", action="store_true", help="read the config's postgresql sink even when it has a jsonl one")
    add_config_arg(t, required=False)
    t.set_defaults(func=run_tail)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def _source(args) -> tuple[str, str] | None:
    """("jsonl", PATH) or ("postgresql", URL): where the events to show are."""
    if args.file:
        return "jsonl", args.file
    if not args.config:
        print("error: give -c CONFIG (or --file PATH)", file=sys.stderr)
        return None
    settings = load_settings_or_exit(args)
    order = ("postgresql",) if args.db else ("jsonl", "postgresql")
    for kind in order:
        for sink in settings.events:
            if sink.kind == kind:
                return kind, sink.target
    wanted = "postgresql" if args.db else "jsonl or postgresql"
    print(f"error: {args.config}: events: no {wanted} sink to read (events on stdout go to the journal: "
          f"journalctl -u relay)", file=sys.stderr)
    return None


def _wanted(event, args) -> bool:
    if not isinstance(event, dict):
        return False  # a line that is JSON but no event (`null`, a number, a list): skipped, as a torn one
    if args.kind and event.get("kind") not in args.kind:
        return False
    if args.recipient and str(event.get("recipient") or "").lower() != args.recipient.lower():
        return False
    return True


def format_event(event: dict) -> str:
    """One line for a person at a terminal. Every field can hold what a client or a remote server
    sent (an ESC in a quoted local part, a C1 CSI, a bidi override): shown as escapes, never acted on.
    A field of another shape than the relay writes (a line edited by hand, another program's) is
    shown as far as it goes, never an error."""
    reply = event.get("reply")
    reply = reply if isinstance(reply, dict) else {}
    cls = event.get("classification")
    cls = cls if isinstance(cls, dict) else {}
    first = str(reply.get("text") or event.get("reason") or "").split("\n")[0]
    code = reply.get("enhanced") or ""
    code = f"{reply.get('code', '')} {code}".strip()
    line = (f"{event.get('time', '?')!s:24} {event.get('kind', '?')!s:16} {event.get('recipient') or '-'!s:32} "
            f"{code:10} {cls.get('category', '')!s:20} {first}")
    return printable(line)


def json_line(event: dict) -> str:
    """The event as JSON, faithful. JSON escapes C0 controls itself; when a C1 control, DEL, a bidi
    override or an undecodable byte is there too, everything non-ASCII is written as \\u escapes,
    so that the terminal shows what is there rather than acting on it."""
    text = json.dumps(event, ensure_ascii=False)
    return text if printable(text) is text else json.dumps(event, ensure_ascii=True)


def _show(line: str, args) -> None:
    try:
        event = json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: "[" * 100000 (the json decoder recurses)
        return  # a half-written last line; the rest of it comes with the next read
    if _wanted(event, args):
        print(json_line(event) if args.json else format_event(event), flush=True)


def run_tail(args) -> int:
    source = _source(args)
    if source is None:
        return 1
    kind, path = source
    if kind == "postgresql":
        return _tail_database(path, args)
    try:
        fh = _open_events(path)
    except FileNotFoundError:
        if not args.follow:
            print(f"no events yet ({path} does not exist)", file=sys.stderr)
            return 0
        while not os.path.exists(path):
            time.sleep(0.5)
        try:
            fh = _open_events(path)
        except OSError as exc:  # it came as a directory, a device, or unreadable (review-int2 F6)
            print(f"error: cannot read {path}: {exc.strerror}", file=sys.stderr)
            return 1
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 1
    end = os.fstat(fh.fileno()).st_size
    if args.follow:
        # A last line with no "\n" yet is an event the relay is writing at this moment: left out of the
        # past events (half of it is no JSON) and followed from its start, so that _Followed reads it
        # whole once its "\n" comes. Begun at `end`, the follower read only its rest, a fragment, and
        # that event was never shown (review-int2 F5).
        end = _line_start(fh, end)
    for line in last_lines(fh, end, args.lines, lambda line: _wanted_line(line, args)):
        _show(line, args)
    if not args.follow:
        return 0
    fh.seek(end)  # -f goes on from where the past events ended
    return _follow(path, fh, args)


def _line_start(fh, end: int) -> int:
    """Where the line that byte `end` of a binary file ends in begins: `end` itself when the byte
    before it is a "\n" (or `end` is 0); else just after the last "\n" before it (or 0)."""
    for position, block in _blocks_before(fh, end):
        newline = block.rfind(b"\n")
        if newline >= 0:
            return position + newline + 1
    return 0


def _blocks_before(fh, end: int):
    """The bytes before byte `end` of a binary file, last first, in BACKWARD_BLOCK blocks: (where the
    block starts, the block)."""
    position = end
    while position > 0:
        size = min(BACKWARD_BLOCK, position)
        position -= size
        fh.seek(position)
        yield position, fh.read(size)


# Bytes read at a time from the end of the file towards its start.
BACKWARD_BLOCK = 64 * 1024


def last_lines(fh, end: int, count: int, wanted) -> list[str]:
    """The last `count` lines before byte `end` of a binary file for which `wanted(line)` holds, oldest
    first, read backwards from `end` in BACKWARD_BLOCK blocks: an events file of gigabytes is not read
    into memory to show its last twenty lines (it was, whole, as one string and then a list of its lines).
    Memory is the lines kept and one block, plus the one line being put together (a line longer than
    a block is joined from its blocks); the reading goes back only as far as the lines asked for.

    "\n" ends an event, and nothing else: str.splitlines() also splits on U+2028, NEL and the like,
    which a file written by an older relay may hold raw inside a string (docs/events.md). The bytes
    are split before they are decoded (no byte of a multi-byte UTF-8 character is 0x0A), each line
    decoded on its own as _open_events reads (a byte that is no UTF-8 as U+FFFD)."""
    found: list[str] = []
    if count <= 0:
        return found
    # The bytes from where the blocks read so far begin to the first "\n" seen in them (or `end`), in
    # blocks, last first: joined once the line's start is read (joining them block by block would copy
    # a long line once per block).
    tail: list[bytes] = []
    for position, block in _blocks_before(fh, end):
        start = block.find(b"\n")
        if start < 0:
            tail.append(block)  # all of it inside one line
            if position > 0:
                continue  # whose start is further back
            lines, tail = [b"".join(reversed(tail))], []
        else:
            lines = block[start + 1:].split(b"\n")
            lines[-1] += b"".join(reversed(tail))
            # The block's first piece may go on in the block before this one (unless the file starts here).
            tail = [block[:start]]
            if position == 0:
                lines.insert(0, tail.pop())
        for piece in reversed(lines):
            line = piece.decode("utf-8", errors="replace")
            if line.strip() and wanted(line):
                found.append(line)
                if len(found) == count:
                    break
        if len(found) == count:
            break  # the reading goes back no further than the lines asked for
    found.reverse()
    return found


def _open_events(path: str):
    """The events file for reading, as bytes: each line is decoded on its own (last_lines, _Followed). A
    line the disk cut short inside a multi-byte character (ENOSPC, EFBIG: docs/events.md "A full disk")
    is no UTF-8: its bytes are read as U+FFFD, so that the line is skipped as not JSON and the rest of the
    file is read, rather than the whole file refused.

    Only a regular file (relay.yamlfile.open_regular): a device given as --file (/dev/zero) was read
    without end into memory until a MemoryError's traceback; its error is an OSError with the words."""
    from ..yamlfile import FileProblem, open_regular

    try:
        fd = open_regular(path)
    except FileProblem as exc:
        if exc.missing:
            raise FileNotFoundError(path) from None
        raise OSError(0, str(exc)) from None
    return open(fd, "rb")


# After logrotate moved the file away, the relay goes on appending to it until it notices (its jsonl
# sink looks every second, relay.events.JsonlSink.CHECK_EVERY) or postrotate's SIGHUP comes, and its
# writer thread may be behind: the old file is read on until it has had nothing new for this long.
ROTATED_GRACE = 5.0
FOLLOW_POLL = 0.3


class _Followed:
    """One open events file and the line begun at its end."""

    def __init__(self, fh):
        self.fh = fh
        self.ino = os.fstat(fh.fileno()).st_ino
        self.pending = b""
        self.last_data = time.monotonic()

    def read(self, args, flush: bool = False) -> bool:
        """Show the whole lines appended since the last read (and, with `flush`, a last one without its
        newline). True when anything was read."""
        chunk = self.fh.read()
        if chunk:
            self.last_data = time.monotonic()
            self.pending += chunk
            *complete, self.pending = self.pending.split(b"\n")
            for piece in complete:
                line = piece.decode("utf-8", errors="replace")
                if line.strip():
                    _show(line, args)
        if flush and self.pending.strip():
            _show(self.pending.decode("utf-8", errors="replace"), args)
            self.pending = b""
        return bool(chunk)


def _follow(path: str, fh, args) -> int:
    """`-f`: show events as they are appended, across logrotate (a rename and a new file, as `tail -F`):
    what the relay still appends to the renamed file is shown too (review28 F3: it was not read after
    the rename was seen, so the events written about its time were never shown)."""
    current = _Followed(fh)
    rotated: list[_Followed] = []  # files renamed away, read until they have been quiet ROTATED_GRACE
    while True:
        for old in list(rotated):
            old.read(args)
            if time.monotonic() - old.last_data >= ROTATED_GRACE:
                old.read(args, flush=True)
                old.fh.close()
                rotated.remove(old)
        if current.read(args):
            continue
        time.sleep(FOLLOW_POLL)
        try:
            if os.stat(path).st_ino == current.ino:
                continue
            new = _open_events(path)
        except FileNotFoundError:
            continue  # moved, and no new file yet
        except OSError as exc:
            # Its place taken by a directory or a device, or unreadable: said, not a traceback (review-int2 F6).
            print(f"error: cannot read {path}: {exc.strerror}", file=sys.stderr)
            return 1
        current.read(args)  # what was appended before the rename: it comes before the new file's
        current.last_data = time.monotonic()
        rotated.append(current)
        current = _Followed(new)


def _wanted_line(line: str, args) -> bool:
    try:
        return _wanted(json.loads(line), args)
    except (ValueError, RecursionError):  # not an event (RecursionError: a line nested thousands deep)
        return False


FOLLOW_EVERY = 0.5  # seconds between reads of the table while following


def _tail_database(url: str, args) -> int:
    import asyncio

    from ..events_postgresql import EventReader
    from ..store.base import StoreError

    async def tail() -> int:
        async with EventReader(url, kinds=args.kind, recipient=args.recipient) as reader:
            shown = await reader.last(args.lines) if args.lines > 0 else []
            for _, line in shown:
                _show(line, args)
            if not args.follow:
                return 0
            last = max((i for i, _ in shown or await reader.last(1)), default=0)
            seen: dict[int, float] = {}
            first = True
            while True:
                now = time.monotonic()
                for event_id, line in await reader.since(last, set(seen)):
                    # The first read also returns the recent past already shown (or left out by -n).
                    if not first or event_id > last:
                        _show(line, args)
                    seen[event_id] = now
                    last = max(last, event_id)
                first = False
                # Forget ids well past the look-back: since() no longer returns them.
                for event_id in [i for i, t in seen.items() if now - t > 60]:
                    del seen[event_id]
                await asyncio.sleep(FOLLOW_EVERY)

    try:
        return asyncio.run(tail())
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
