"""`relay shaping status|release`: what traffic shaping holds now, and ending a hold by hand.

The state is the one every relay process shares through the store the config names
(`bounce_list:`), so what this prints is what the relays act on, and a release takes effect at
their next RCPT with no reload. A release is an operator's decision someone must be able to
account for: it writes a `shaping_released` event (actor, reason, what was held) to the
configured sinks, as `relay bounces remove` does for the bounce list.

Exit status: 0 done; 1 release: nothing was held under that name; 2 an error (unreachable
store, bad config), one line on stderr.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import datetime, timezone

from . import add_config_arg, load_policies_or_exit, load_settings_or_exit

EXIT_NO = 1
EXIT_ERROR = 2


def register(sub) -> None:
    shaping = sub.add_parser("shaping", help="traffic shaping: held or slowed destinations",
                             description="What traffic shaping (policies/shaping.yaml) holds or slows now, "
                                         "and ending a hold by hand.")
    actions = shaping.add_subparsers(dest="shaping_command", metavar="ACTION")
    shaping.set_defaults(func=lambda args: (shaping.print_help(sys.stderr), EXIT_ERROR)[1])

    p = actions.add_parser("status", help="the destinations held or slowed now, why, and until when; "
                                          "warm-up caps left today")
    add_config_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON object: {destinations: [...], warmup: [...]}")
    p.set_defaults(func=lambda args: _main(_status, args))

    p = actions.add_parser("release", help="end a hold now (every sender domain's, or one: google/example.com)")
    add_config_arg(p)
    p.add_argument("destination", metavar="DESTINATION", help="a destination (google), or destination/sender-domain")
    p.add_argument("--reason", required=True, help="why it may go again (written to the event)")
    p.set_defaults(func=lambda args: _main(_release, args))


def _main(run, args) -> int:
    from ..store import StoreError, open_store

    settings = load_settings_or_exit(args, EXIT_ERROR)
    policies = load_policies_or_exit(settings, EXIT_ERROR)

    async def go() -> int:
        store = open_store(settings.bounce_list)
        try:
            return await run(args, settings, policies, store)
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except (StoreError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # the database said no (asyncpg, sqlite3): one line, never a traceback
        print(f"error: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return EXIT_ERROR


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _left(seconds: float) -> str:
    seconds = int(max(0, seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


async def _warmup(policy, store, now: float) -> list[dict]:
    """Each warm-up sender's cap today per named destination, and what is left of it."""
    from ..shaping.shaper import DAY, hold_key

    today = datetime.fromtimestamp(now, timezone.utc).date()
    day_start = (now // DAY) * DAY
    rows = []
    for sender in sorted(policy.warmup.values(), key=lambda s: s.domain):
        names = sorted(sender.destinations) if sender.destinations is not None else [d.name for d in policy.destinations]
        counts = await store.shaping_counts([hold_key(n, sender.domain) for n in names], "day", day_start)
        for name in names:
            cap = sender.cap(name, today)
            sent = counts.get(hold_key(name, sender.domain), 0)
            rows.append({"sender_domain": sender.domain, "destination": name, "plan": sender.plan,
                         "day": (today - sender.start).days + 1, "cap": cap, "sent_today": sent,
                         "remaining": None if cap is None else max(0, cap - sent)})
    return rows


async def _status(args, settings, policies, store) -> int:
    now = time.time()
    records = [r for r in await store.shaping_records() if r.held(now) or r.rate is not None or r.strikes]
    warmup = await _warmup(policies.shaping, store, now) if policies.shaping is not None else []
    if args.json:
        out = []
        for r in records:
            item = r.as_dict()
            item["held"] = r.held(now)
            out.append(item)
        json.dump({"destinations": out, "warmup": warmup}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not records:
        print("nothing is held or slowed")
    for r in records:
        state = []
        if r.held(now):
            state.append(f"held until {_iso(r.until)} ({_left(r.until - now)} left)")
        if r.rate is not None:
            state.append(f"slowed to {r.rate:g} messages a minute")
        if not state:
            state.append(f"released at {_iso(r.until)}" if r.until else "recovering")
        first = r.reply.split("\n")[0]
        print(f"{r.key}: {', '.join(state)}: {r.reason} ({r.rule}, strike {r.strikes}, since {_iso(r.since)}); "
              f"provider said: {first}")
    for w in warmup:
        if w["cap"] is None:
            print(f"warm-up {w['sender_domain']} -> {w['destination']}: no cap (day {w['day']} of plan {w['plan']})")
        else:
            print(f"warm-up {w['sender_domain']} -> {w['destination']}: {w['remaining']} of {w['cap']} left today "
                  f"(day {w['day']} of plan {w['plan']})")
    return 0


async def _release(args, settings, policies, store) -> int:
    from .. import events
    from .bounces import actor

    target = args.destination.strip().lower()
    released = await store.shaping_release(target)
    if not released:
        print(f"{target}: nothing is held or slowed under that name; nothing released "
              f"(see relay shaping status)", file=sys.stderr)
        return EXIT_NO
    sinks = events.EventSinks.for_command(settings)
    try:
        for r in released:
            sinks.emit(events.make_event(
                "shaping_released", stage="operator", actor=actor(), reason=args.reason,
                shaping={"destination": r.destination, "key": r.key, "sender_domain": r.sender_domain or None,
                         "rule": r.rule, "reason": r.reason, "until": _iso(r.until), "strikes": r.strikes}))
            print(f"{r.key}: released: {args.reason}")
    finally:
        sinks.close()
    return 0
