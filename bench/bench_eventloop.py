#!/usr/bin/env python3
"""What uvloop is worth to the relay at 1 KiB: the same code on asyncio's loop and on uvloop, paired.

    python bench/bench_eventloop.py [--mode cpu|instructions] [--rounds 12] [--messages 1500] [--workers 1]

`relay serve` runs on asyncio's loop (relay/server.py); the uvloop side is the same relay started with
uvloop's event loop policy set first (bench/systems.py, `uvloop`). Both start once, on the same config and sink, and
take bursts of `smtp-source -l 1024 -d -s 20` in turn (the order flips every round), so a change in what
else runs on the machine falls on both sides alike.

- cpu: CPU seconds of each relay's processes (/proc, user + system) per message, per round, and the
  paired ratio asyncio / uvloop; its median is the figure. On a shared machine each round swings by
  10-20%, so take many rounds.
- instructions: each relay under valgrind's callgrind, counters zeroed after a warm-up; user-space
  instructions per message. Does not move with the machine's load (the kernel's share is not in it);
  slow: ~50x, so few messages and rounds (e.g. --messages 300 --rounds 1).

Prints a line per round, then a summary and one JSON object on the last line. Needs uvloop installed.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import relayconf  # noqa: E402
import systems as sysmod  # noqa: E402

SIDES = ("asyncio", "uvloop")


def burst(sink: sysmod.Sink, port: int, messages: int, sessions: int) -> float:
    """Sends `messages` through the relay on `port`; the wall seconds until the sink counted them all."""
    base = sink.mark()
    t0 = time.monotonic()
    src = subprocess.Popen(["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", "1024", "-d",
                            "-f", sysmod.SENDER, "-t", sysmod.RECIPIENT, f"127.0.0.1:{port}"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    reached = sink.wait_for(base + messages, 600 + messages, source=src)
    src.wait(60)
    if not reached:
        raise SystemExit(f"the sink counted {sink.count - base} of {messages}")
    return time.monotonic() - t0


def loop_of(relay: sysmod.Relay) -> str:
    """Whether the relay's processes really run uvloop: its extension is mapped in each, or in none (with
    workers, in each worker: the parent runs no loop)."""
    pids = set(relay.group.members())
    if relay.workers and relay.workers > 1:
        pids.discard(relay.proc.pid)
    mapped = {pid: "uvloop" in Path(f"/proc/{pid}/maps").read_text() for pid in pids}
    if len(set(mapped.values())) != 1:
        raise SystemExit(f"{relay.name}: uvloop in some processes only: {mapped}")
    return "uvloop" if next(iter(mapped.values())) else "asyncio"


class Callgrind:
    """The relay's python under callgrind (one process: --workers 1)."""

    def __init__(self, workdir: Path):
        self.out = workdir / "callgrind"
        self.out.mkdir()
        self.python = workdir / "python-under-callgrind"
        self.python.write_text(f"#!/bin/sh\nexec valgrind --tool=callgrind -q --dump-instr=no "
                               f"--callgrind-out-file={self.out}/cg.%p.out {sys.executable} \"$@\"\n")
        self.python.chmod(0o755)

    @staticmethod
    def zero(pid: int) -> None:
        subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True, timeout=120)

    def instructions(self, pid: int) -> int:
        """Instructions since the last zero(): a dump, read from its summary line."""
        before = set(glob.glob(f"{self.out}/cg.{pid}.out*"))
        subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True, timeout=120)
        for _ in range(100):
            new = set(glob.glob(f"{self.out}/cg.{pid}.out*")) - before
            if new:
                break
            time.sleep(0.2)
        newest = max(new, key=os.path.getmtime)
        time.sleep(0.5)  # written whole
        for line in Path(newest).read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
        raise SystemExit(f"no totals in {newest}")


def missing_tool(instructions: bool) -> str | None:
    """The first tool a run needs that is not installed (callgrind's only for --mode instructions)."""
    for tool in ["smtp-source", "smtp-sink"] + (["valgrind", "callgrind_control"] if instructions else []):
        if not shutil.which(tool):
            return tool
    return None


def set_up(prefix: str, bounce_entries: int, instructions: bool):
    """What a side-by-side run of relays needs: a work directory with a DKIM key, the policies, a bounce
    list of `bounce_entries` and a config factory; Callgrind (or None) and the Python the relays run
    on; one sink. Returns (workdir, factory, grind, python, sink)."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    key, _, _ = relayconf.make_key(workdir / "keys")
    policies = relayconf.make_policies(workdir / "policies", key)
    bounces = relayconf.build_bounce_db(workdir / "bounces.db", bounce_entries)
    (workdir / "relay-conf").mkdir()
    factory = relayconf.ConfigFactory(workdir / "relay-conf", None, Path(bounces["path"]), policies,
                                      workdir / "events.jsonl")
    grind = Callgrind(workdir) if instructions else None
    python = str(grind.python) if grind else sys.executable
    return workdir, factory, grind, python, sysmod.Sink(workdir)


def start_warm(relay: sysmod.Relay, factory, sink: sysmod.Sink, workers: int, sessions: int, slow: bool) -> None:
    """Start `relay` on `sink` and warm it up (a burst not counted). `slow`: under valgrind or a
    profiler, whose imports take minutes, it is given that long to listen."""
    if slow:
        relay.port = sysmod.free_port()
        relay.config = factory(sink_port=sink.port, listen_port=relay.port, milter_port=None, workers=workers)
        relay._spawn(relay.config)
        if not sysmod.wait_port(relay.port, 1200, relay.proc):
            raise SystemExit(f"{relay.name} did not start:\n{relay.diagnostics()}")
    else:
        relay.start(sink.port)
    burst(sink, relay.port, max(2 * sessions, 100), sessions)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=("cpu", "instructions"), default="cpu")
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--messages", type=int, default=1500, help="messages per burst")
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--bounce-entries", type=int, default=100_000)
    args = p.parse_args()
    try:
        from importlib.metadata import version
        uvloop_version = version("uvloop")
    except Exception:
        print("uvloop is not installed: nothing to compare (pip install uvloop)", file=sys.stderr)
        return 2
    tool = missing_tool(args.mode == "instructions")
    if tool:
        print(f"{tool} is not installed", file=sys.stderr)
        return 2
    if args.mode == "instructions" and args.workers != 1:
        p.error("--mode instructions measures one process: --workers 1")

    workdir, factory, grind, python, sink = set_up("relay-bench-loop-", args.bounce_entries,
                                                   args.mode == "instructions")
    relays = {side: sysmod.Relay(workdir, factory, python=python, workers=args.workers,
                                 uvloop=side == "uvloop") for side in SIDES}
    per_message: dict[str, list[float]] = {side: [] for side in SIDES}
    rate: dict[str, list[float]] = {side: [] for side in SIDES}
    try:
        for side, relay in relays.items():
            start_warm(relay, factory, sink, args.workers, args.sessions, slow=grind is not None)
            found = loop_of(relay)
            if found != side:
                raise SystemExit(f"{relay.name} runs on {found}, not {side}")
        print(f"uvloop {uvloop_version}; {args.mode}, {args.rounds} rounds of {args.messages} messages, "
              f"workers: {args.workers}, load average at start {os.getloadavg()[0]:.2f}", flush=True)
        for n in range(args.rounds):
            order = SIDES if n % 2 == 0 else SIDES[::-1]
            for side in order:
                relay = relays[side]
                if grind:
                    grind.zero(relay.proc.pid)
                cpu0 = relay.group.cpu()
                seconds = burst(sink, relay.port, args.messages, args.sessions)
                if grind:
                    per_message[side].append(grind.instructions(relay.proc.pid) / args.messages)
                else:
                    per_message[side].append((relay.group.cpu() - cpu0) / args.messages)
                rate[side].append(args.messages / seconds)
            unit = (lambda v: f"{v / 1e6:.3f} M instructions") if grind else (lambda v: f"{v * 1000:.3f} ms CPU")
            print(f"round {n + 1}: load {os.getloadavg()[0]:.2f}; " + "; ".join(
                f"{side} {unit(per_message[side][-1])}/message, {rate[side][-1]:.0f} msg/s" for side in SIDES),
                flush=True)
    finally:
        for relay in relays.values():
            relay.stop()
        sink.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    ratios = [a / u for a, u in zip(per_message["asyncio"], per_message["uvloop"])]
    rate_ratios = [u / a for a, u in zip(rate["asyncio"], rate["uvloop"])]
    summary = {
        "mode": args.mode, "uvloop": uvloop_version, "rounds": args.rounds, "messages": args.messages,
        "workers": args.workers, "load_average_end": round(os.getloadavg()[0], 2),
        "per_message_median": {side: statistics.median(v) for side, v in per_message.items()},
        "asyncio_over_uvloop_median": round(statistics.median(ratios), 3),
        "rounds_uvloop_cheaper": sum(r > 1 for r in ratios),
        "msg_per_s_uvloop_over_asyncio_median": round(statistics.median(rate_ratios), 3),
    }
    print(f"per message, asyncio / uvloop (paired, median of {len(ratios)}): {summary['asyncio_over_uvloop_median']:.3f} "
          f"(uvloop cheaper in {summary['rounds_uvloop_cheaper']} of {len(ratios)}); msg/s uvloop / asyncio: "
          f"{summary['msg_per_s_uvloop_over_asyncio_median']:.3f}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
