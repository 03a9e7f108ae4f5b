"""`relay events tail`: a readable view of the delivery-error events, following the file."""

from __future__ import annotations

import json
import os
import sys
import time

from ..address import printable
from . import add_config_arg, load_settings_or_exit


def register(sub) -> None:
    p = sub.add_parser("events", help="read the delivery-error events")
    events_sub = p.add_subparsers(dest="events_command", metavar="SUBCOMMAND")
    t = events_sub.add_parser("tail", help="show events (time, kind, recipient, code, category, first line)",
                              description="Show the events of the config's jsonl sink, newest last.")
    t.add_argument("-f", "--follow", action="store_true", help="keep reading as events arrive")
    t.add_argument("-n", "--lines", type=int, default=20, help="how many past events to show (default 20)")
    t.add_argument("--kind", action="append", help="only this kind (repeatable)")
    t.add_argument("--recipient", help="only events for this address (case-insensitive)")
    t.add_argument("--json", action="store_true", help="print the events as JSON lines")
    t.add_argument("--file", help="read this jsonl file instead of the config's")
    add_config_arg(t, required=False)
    t.set_defaults(func=run_tail)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _path(args) -> str | None:
    if args.file:
        return args.file
    if not args.config:
        print("error: give -c CONFIG (or --file PATH)", file=sys.stderr)
        return None
    settings = load_settings_or_exit(args)
    for sink in settings.events:
        if sink.kind == "jsonl":
            return sink.target
    print(f"error: {args.config}: events: no jsonl sink to read (events on stdout go to the journal: "
          f"journalctl -u relay)", file=sys.stderr)
    return None


def _wanted(event: dict, args) -> bool:
    if args.kind and event.get("kind") not in args.kind:
        return False
    if args.recipient and (event.get("recipient") or "").lower() != args.recipient.lower():
        return False
    return True


def format_event(event: dict) -> str:
    """One line for a person at a terminal. Every field can hold what a client or a remote server
    sent (an ESC in a quoted local part, a C1 CSI, a bidi override): shown as escapes, never acted on."""
    reply = event.get("reply") or {}
    cls = event.get("classification") or {}
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
    except ValueError:
        return  # a half-written last line; the rest of it comes with the next read
    if _wanted(event, args):
        print(json_line(event) if args.json else format_event(event), flush=True)


def run_tail(args) -> int:
    path = _path(args)
    if path is None:
        return 1
    try:
        fh = open(path, encoding="utf-8")
    except FileNotFoundError:
        if not args.follow:
            print(f"no events yet ({path} does not exist)", file=sys.stderr)
            return 0
        while not os.path.exists(path):
            time.sleep(0.5)
        fh = open(path, encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 1
    lines = [line for line in fh.read().splitlines() if line.strip()]
    shown = [line for line in lines if _wanted_line(line, args)]
    for line in shown[-args.lines:] if args.lines > 0 else []:
        _show(line, args)
    if not args.follow:
        return 0
    ino = os.fstat(fh.fileno()).st_ino
    pending = ""
    while True:
        chunk = fh.read()
        if chunk:
            pending += chunk
            *complete, pending = pending.split("\n")
            for line in complete:
                if line.strip():
                    _show(line, args)
            continue
        time.sleep(0.3)
        try:
            if os.stat(path).st_ino != ino:  # logrotate moved it: follow the new file
                fh.close()
                fh = open(path, encoding="utf-8")
                ino = os.fstat(fh.fileno()).st_ino
        except FileNotFoundError:
            pass


def _wanted_line(line: str, args) -> bool:
    try:
        return _wanted(json.loads(line), args)
    except ValueError:
        return False
