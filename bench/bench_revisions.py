#!/usr/bin/env python3
"""The relay's cost per 1 KiB message, revision against revision, on the same machine at the same time.

    python bench/bench_revisions.py REV_OR_DIR [REV_OR_DIR ...] [--mode cpu|instructions|profile]
                                    [--rounds 6] [--messages 2000] [--sessions 20] [--workers 1]

Each argument is a git revision of this repository (exported with `git archive` to a temp dir) or a
directory holding a source tree (its `relay/` package is run). Every relay starts once on the bench's
config (DKIM RSA-2048, a bounce list of 100,000 entries, events on: bench/relayconf.py) and the same
smtp-sink, and they take bursts of `smtp-source -l 1024 -d -s SESSIONS` in turn, the order flipped
every round, so that what else runs on the machine falls on all of them alike.

- cpu: CPU seconds (user + system, /proc) of each relay's processes per message, per round; medians,
  the user and system parts, and with two relays the paired ratio. On a shared machine one round swings
  by 10-20%: take many rounds.
- instructions: each relay (one process) under valgrind's callgrind, counters zeroed after a warm-up:
  user-space instructions per message, which do not move with the machine's load (the kernel's part is
  not in them), and the part of them in OpenSSL (the RSA signature: fixed) beside the rest (ours and
  the libraries' Python). Slow (~50x): e.g. --rounds 2 --messages 300 --sessions 10.
- profile: each relay under cProfile for the rounds (one process); the top functions by own time per
  message. cProfile's own overhead inflates small Python functions: read it for where, not how much.

Prints a line per round, then the medians.
"""

from __future__ import annotations

import argparse
import os
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import procstat  # noqa: E402
import relayconf  # noqa: E402
import systems as sysmod  # noqa: E402
from bench_eventloop import burst, missing_tool, set_up, start_warm  # noqa: E402

# cProfile around `relay serve`, written when the relay exits (SIGTERM: it drains and returns).
PROFILED = """
import cProfile, runpy, sys
out = sys.argv[1]
sys.argv = ["relay"] + sys.argv[2:]
profile = cProfile.Profile()
profile.enable()
try:
    runpy.run_module("relay", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
finally:
    profile.disable()
    profile.dump_stats(out)
"""


class TreeRelay(sysmod.Relay):
    """The relay run from a given source tree (and, for profile, under cProfile)."""

    def __init__(self, *args, src: Path, label: str, profile_out: Path | None = None, **kw):
        super().__init__(*args, **kw)
        self.src = src
        self.name = label
        self.profile_out = profile_out

    def _spawn(self, config: Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(self.src)
        self.stderr_path = self.workdir / f"relay-{self.port}.stderr"
        self._stderr = open(self.stderr_path, "wb")
        start = (["-c", PROFILED, str(self.profile_out)] if self.profile_out else ["-m", "relay"])
        self.proc = subprocess.Popen([self.python, *start, "serve", "-c", str(config)], cwd=str(self.src),
                                     env=env, stdout=self._stderr, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.group = procstat.Group(tree_roots=[self.proc.pid])


def user_system(relay: TreeRelay) -> tuple[float, float]:
    """CPU seconds in user space and in the kernel of the relay's processes (and reaped children)."""
    user = system = 0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in relay.group.members():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11]) + int(fields[13])
        system += int(fields[12]) + int(fields[14])
    return user / tick, system / tick


def source_tree(spec: str, workdir: Path) -> tuple[Path, str]:
    path = Path(spec)
    if (path / "relay" / "__init__.py").is_file():
        return path.resolve(), spec
    repo = HERE.parent
    rev = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", spec], capture_output=True, text=True,
                         check=True).stdout.strip()
    out = workdir / f"src-{rev}"
    out.mkdir()
    archive = subprocess.run(["git", "-C", str(repo), "archive", spec], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out, f"{spec} ({rev})"


def tree_config(workdir: Path, factory, src: Path, i: int, entries: int):
    """A config factory for the tree in `src`: the shared one's policies and events, and a bounce list
    of its own, made by that tree's own store code (a relay refuses a database of a newer schema than
    it knows, so one list cannot serve revisions on both sides of a migration). The same entries in
    each, so every tree does the same lookups."""
    db = workdir / f"bounces-{i}.db"
    code = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import relayconf; "
            "relayconf.REPO = Path(sys.argv[2]); relayconf.build_bounce_db(Path(sys.argv[3]), int(sys.argv[4]))")
    subprocess.run([sys.executable, "-c", code, str(HERE), str(src), str(db), str(entries)], check=True,
                   cwd=str(src))
    (workdir / f"relay-conf-{i}").mkdir()
    return relayconf.ConfigFactory(workdir / f"relay-conf-{i}", None, db, factory.policies, factory.events)


def openssl_share(dump: Path, messages: int) -> tuple[float, float]:
    """(instructions in OpenSSL, the rest) per message, from a callgrind dump."""
    text = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", str(dump)],
                          capture_output=True, text=True).stdout
    total = crypto = 0
    for line in text.splitlines():
        parts = line.split()
        if not parts or not parts[0].replace(",", "").isdigit():
            continue
        n = int(parts[0].replace(",", ""))
        if "PROGRAM TOTALS" in line:
            total = n
        elif "_rust.abi3.so" in line or "libcrypto" in line:
            crypto += n
    return crypto / messages, (total - crypto) / messages


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trees", nargs="+", help="git revisions or source directories")
    p.add_argument("--mode", choices=("cpu", "instructions", "profile"), default="cpu")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--messages", type=int, default=2000, help="messages per burst")
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--bounce-entries", type=int, default=100_000)
    args = p.parse_args()
    if args.mode != "cpu" and args.workers != 1:
        p.error(f"--mode {args.mode} measures one process: --workers 1")
    tool = missing_tool(args.mode == "instructions")
    if tool:
        print(f"{tool} is not installed", file=sys.stderr)
        return 2

    workdir, factory, grind, python, sink = set_up("relay-bench-revs-", args.bounce_entries,
                                                   args.mode == "instructions")
    relays = []
    factories = {}
    for i, spec in enumerate(args.trees):
        src, label = source_tree(spec, workdir)
        tree_factory = tree_config(workdir, factory, src, i, args.bounce_entries)
        relays.append(TreeRelay(workdir, tree_factory, python=python, workers=args.workers, src=src, label=label,
                                profile_out=workdir / f"profile-{i}.out" if args.mode == "profile" else None))
        factories[relays[-1].name] = tree_factory
    per_message: dict[str, list[float]] = {r.name: [] for r in relays}
    split: dict[str, list[tuple[float, float]]] = {r.name: [] for r in relays}
    try:
        for relay in relays:
            start_warm(relay, factories[relay.name], sink, args.workers, args.sessions,
                       slow=grind is not None or relay.profile_out is not None)
        print(f"{args.mode}, {args.rounds} rounds of {args.messages} messages, {args.sessions} sessions, "
              f"workers: {args.workers}, load average at start {os.getloadavg()[0]:.2f}", flush=True)
        for n in range(args.rounds):
            for relay in (relays if n % 2 == 0 else relays[::-1]):
                if grind:
                    grind.zero(relay.proc.pid)
                cpu0, us0 = relay.group.cpu(), user_system(relay)
                burst(sink, relay.port, args.messages, args.sessions)
                if grind:
                    pid = relay.proc.pid
                    per_message[relay.name].append(grind.instructions(pid) / args.messages)
                    newest = max(grind.out.glob(f"cg.{pid}.out*"), key=os.path.getmtime)
                    split[relay.name].append(openssl_share(newest, args.messages))
                else:
                    per_message[relay.name].append((relay.group.cpu() - cpu0) / args.messages)
                    us1 = user_system(relay)
                    split[relay.name].append(((us1[0] - us0[0]) / args.messages, (us1[1] - us0[1]) / args.messages))
            unit = (lambda v: f"{v / 1e6:.3f} M instructions") if grind else (lambda v: f"{v * 1000:.3f} ms CPU")
            print(f"round {n + 1}: load {os.getloadavg()[0]:.2f}; " + "; ".join(
                f"{name} {unit(v[-1])}/message" for name, v in per_message.items()), flush=True)
    finally:
        for relay in relays:
            if relay.profile_out and relay.proc is not None and relay.proc.poll() is None:
                relay.proc.send_signal(signal.SIGTERM)
                relay.proc.wait(120)
            relay.stop()
        sink.stop()

    for name, values in per_message.items():
        first = statistics.median(s[0] for s in split[name])
        second = statistics.median(s[1] for s in split[name])
        if grind:
            print(f"{name}: {statistics.median(values) / 1e6:.3f} M instructions a message "
                  f"(OpenSSL {first / 1e6:.3f} M, the rest {second / 1e6:.3f} M), median of {len(values)}")
        else:
            print(f"{name}: {statistics.median(values) * 1000:.4f} ms CPU a message (user {first * 1000:.4f}, "
                  f"system {second * 1000:.4f}), median of {len(values)}")
    if len(relays) == 2:
        a, b = (per_message[r.name] for r in relays)
        ratios = [x / y for x, y in zip(a, b)]
        print(f"paired ratio {relays[0].name} / {relays[1].name}: median {statistics.median(ratios):.3f} "
              f"(rounds: {', '.join(f'{r:.3f}' for r in ratios)})")
    if args.mode == "profile":
        messages = args.rounds * args.messages
        for relay in relays:
            print(f"\n{relay.name}: own time per message under cProfile (us), calls per message")
            stats = pstats.Stats(str(relay.profile_out))
            rows = sorted(((tt, nc, f"{Path(f).name}:{line}({fn})") for (f, line, fn), (_, nc, tt, _, _)
                           in stats.stats.items() if nc >= messages / 2), reverse=True)
            for tt, nc, where in rows[:30]:
                print(f"  {tt * 1e6 / messages:8.1f}  {nc / messages:6.2f}  {where}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
