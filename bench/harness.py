#!/usr/bin/env python3
"""relay benchmark harness (issue #5): the relay against this machine's limit and against Postfix+OpenDKIM,
same load, same run. See docs/benchmarks.md.

    python bench/harness.py [--quick] [--sizes 1k,100k,10m] [--sessions 20] [--messages N[,N,N]] [--runs 3]
                            [--systems direct,relay,relay-workers2,postfix-opendkim[,relay-mx,postfix-relay-milter]]
                            [--relay-config PATH] [--profile] [--out bench/results.json] [--chart bench/throughput.png]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import procstat  # noqa: E402
import report  # noqa: E402
import smtpclient  # noqa: E402
import systems as sysmod  # noqa: E402
from systems import REPO, RECIPIENT, SENDER, SystemError_  # noqa: E402

# relay: `workers: 1` (one process); relay-workers2: `workers: 2` (a parent and two workers, relay/workers.py);
# relay-mx: one process in `upstream: {mode: mx}`, the sink found as the recipient domain's MX.
# relay-uvloop, relay-workers2-uvloop: the same two on uvloop (installed by hand; `relay serve` itself runs
# asyncio's loop): beside the plain two they measure what uvloop is worth (docs/benchmarks.md, "Stop 21").
RELAYS = {"relay": (1, False), "relay-workers2": (2, False), "relay-uvloop": (1, True),
          "relay-workers2-uvloop": (2, True)}
ALL_SYSTEMS = ("direct", *RELAYS, "relay-mx", "postfix-opendkim", "postfix-relay-milter", "postfix")
DEFAULT_SYSTEMS = "direct,relay,relay-workers2,postfix-opendkim"
# Messages per throughput run for each size, unless --messages says otherwise (same load for every system).
DEFAULT_MESSAGES = {1024: 5000, 100 * 1024: 1000, 10 * 1024 * 1024: 120}
QUICK_MESSAGES = {1024: 400, 100 * 1024: 100, 10 * 1024 * 1024: 4}
LATENCY_MESSAGES = {1024: 1000, 100 * 1024: 200, 10 * 1024 * 1024: 10}
QUICK_LATENCY = {1024: 150, 100 * 1024: 30, 10 * 1024 * 1024: 3}
MICRO = ("bench_classify.py", "bench_bounce_lookup.py", "bench_dkim.py", "bench_events.py", "bench_webhooks.py",
         "bench_datapath.py")
# Arguments for a short run of a micro-benchmark under --quick (else it gets --quick, or nothing).
MICRO_QUICK_ARGS = {"bench_bounce_lookup.py": ["--sizes", "100000", "--lookups", "20000"]}
TIME_LIMIT_RUN = 900.0  # seconds any one throughput run may take
LATENCY_TIME_LIMIT = 30.0  # seconds of paired sending per latency run (Postfix+OpenDKIM takes ~90 ms a message)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_size(text: str) -> int:
    t = text.strip().lower()
    mult = 1
    for suffix, m in (("kib", 1024), ("mib", 1024 ** 2), ("k", 1024), ("m", 1024 ** 2), ("b", 1)):
        if t.endswith(suffix):
            t, mult = t[: -len(suffix)], m
            break
    return int(float(t) * mult)


def size_label(n: int) -> str:
    if n >= 1024 ** 2 and n % (1024 ** 2) == 0:
        return f"{n // 1024 ** 2}m"
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024}k"
    return str(n)


def median(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def quantile(values, q):
    if not values:
        return None
    s = sorted(values)
    idx = min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))
    return s[idx]


def raise_nofile(want: int = 16384) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, want) if hard != resource.RLIM_INFINITY else want
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --------------------------------------------------------------------------------------------
# Building the systems


class Bench:
    def __init__(self, args):
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="relay-bench-"))
        os.chmod(self.workdir, 0o755)  # Postfix's and smtp-sink's users must reach their directories
        self.assets: dict = {}
        self.errors: list[str] = []
        self.factory = None
        self.key = None

    def prepare(self, names: list[str]) -> None:
        import relayconf

        if self.args.relay_rev:
            # Measure one committed version, whatever happens in the working tree meanwhile.
            src = self.workdir / "relay-src"
            src.mkdir()
            archive = subprocess.run(["git", "-C", str(REPO), "archive", self.args.relay_rev], capture_output=True,
                                     timeout=120)
            if archive.returncode:
                raise SystemExit(f"--relay-rev {self.args.relay_rev}: {archive.stderr.decode(errors='replace')}")
            subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True, timeout=120)
            sysmod.REPO = relayconf.REPO = src
            rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", self.args.relay_rev],
                                 capture_output=True, text=True, timeout=30).stdout.strip()
            self.assets["relay_source"] = f"git {rev} (--relay-rev {self.args.relay_rev})"
            log(f"relay from git {rev}, unpacked in {src}")
        else:
            self.assets["relay_source"] = "working tree"

        need_relay = any(n in RELAYS or n in ("relay-mx", "postfix-relay-milter") for n in names)
        need_key = need_relay or "postfix-opendkim" in names
        if need_key:
            self.key, self.txt, how = relayconf.make_key(self.workdir / "keys")
            self.assets["dkim_key"] = {"path": str(self.key), "made_by": how, "bits": 2048}
            log(f"DKIM key: RSA-2048 by {how}")
        if need_relay:
            if any(n.endswith("-uvloop") for n in names):
                from importlib.metadata import PackageNotFoundError, version
                try:  # the relay's python is this one: what it imports, this process can
                    self.assets["uvloop"] = version("uvloop")
                except PackageNotFoundError:
                    raise SystemExit("the -uvloop systems need uvloop installed (pip install uvloop)") from None
                log(f"event loop of the -uvloop variants: uvloop {self.assets['uvloop']}; of the others: asyncio's")
            bounce_db = None
            policies = None
            if not self.args.relay_config:
                policies = relayconf.make_policies(self.workdir / "policies", self.key)
                n = self.args.bounce_entries
                log(f"building a bounce list of {n:,} entries ...")
                try:
                    info = relayconf.build_bounce_db(self.workdir / "bounces.db", n)
                    bounce_db = Path(info["path"])
                    self.assets["bounce_list"] = info
                    log(f"bounce list: {info['entries']:,} entries in {info['seconds']} s")
                except Exception as exc:  # the relay can still be measured, without the list
                    self.errors.append(f"bounce list not built: {exc}")
                    log(f"bounce list NOT built: {exc}")
            self.factory = relayconf.ConfigFactory(self.workdir / "relay-conf", self.args.relay_config, bounce_db,
                                                   policies, self.workdir / "events.jsonl")
            (self.workdir / "relay-conf").mkdir(exist_ok=True)
            self.assets["relay_config"] = str(self.args.relay_config or "generated")

    def make(self, name: str) -> sysmod.System:
        if name == "direct":
            return sysmod.Direct()
        if name in RELAYS:
            workers, uvloop = RELAYS[name]
            return sysmod.Relay(self.workdir, self.factory, workers=workers, uvloop=uvloop)
        if name == "relay-mx":
            return sysmod.RelayMx(self.workdir, self.factory, workers=1)
        if name == "postfix-opendkim":
            return sysmod.PostfixOpenDKIM(self.workdir, self.key)
        if name == "postfix-relay-milter":
            return sysmod.PostfixRelayMilter(self.workdir, self.factory)
        if name == "postfix":
            return sysmod.PostfixPlain(self.workdir)
        raise ValueError(name)

    def cleanup(self) -> None:
        if self.args.keep:
            log(f"kept {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def smtp_source(port: int, sessions: int, messages: int, size: int, timeout: float) -> subprocess.Popen:
    cmd = ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size), "-d",
           "-f", SENDER, "-t", RECIPIENT, f"127.0.0.1:{port}"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def finish(proc: subprocess.Popen, timeout: float) -> tuple[int | None, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=10)
    text = (out or b"").decode(errors="replace") + (err or b"").decode(errors="replace")
    return proc.returncode, text[-2000:]


def throughput_run(bench: Bench, name: str, size: int, messages: int, sessions: int, profile: str | None = None) -> dict:
    """One fresh system, one load; messages counted at the sink."""
    out = {"system": name, "size": size, "messages": messages, "sessions": sessions, "ok": False}
    sink = None
    system = bench.make(name)
    try:
        sink = sysmod.Sink(bench.workdir)
        system.start(sink.port)
        # Warm-up: connections, imports, caches. Small messages, not counted.
        warm = max(2 * sessions, 20)
        base = sink.mark()
        w = smtp_source(system.port, sessions, warm, 1024, 120)
        rc, text = finish(w, 120)
        if not sink.wait_for(base + warm, 120, stall=10, source=w):
            raise SystemError_(f"warm-up: the sink counted {sink.count - base} of {warm} (smtp-source rc={rc}: {text})")
        if profile and isinstance(system, sysmod.Relay):
            system.profile = profile
            system.start_profile()
        group = system.group
        cpu0 = group.cpu() if group else 0.0
        single = system.single_pid()
        if single:
            procstat.reset_peak(single)
        base = sink.mark()
        limit = min(TIME_LIMIT_RUN, 60 + messages * max(size, 1024) / 2e6 + messages / 20)
        sampler = procstat.PeakSampler(group) if group else None
        if sampler:
            sampler.__enter__()
        t0 = time.monotonic()
        src = smtp_source(system.port, sessions, messages, size, limit)
        reached = sink.wait_for(base + messages, limit, stall=20, source=src)
        t_end = time.monotonic()
        rc, text = finish(src, 30)
        if sampler:
            sampler.__exit__(None, None, None)
        cpu1 = group.cpu() if group else 0.0
        counted = sink.count - base
        out.update({
            "loadavg_1m_after": round(os.getloadavg()[0], 2),
            "counted": counted,
            "source_rc": rc,
            "seconds_wall": round(t_end - t0, 4),
        })
        if sink.t_first is not None and sink.t_last is not None and sink.t_last > sink.t_first and counted > 1:
            out["seconds"] = round(sink.t_last - sink.t_first, 4)
            out["msg_per_s"] = round((counted - 1) / (sink.t_last - sink.t_first), 1)
        out["msg_per_s_wall"] = round(counted / (t_end - t0), 1) if t_end > t0 else None
        if group:
            out["cpu_s"] = round(cpu1 - cpu0, 3)
            out["cpu_s_per_1000"] = round((cpu1 - cpu0) * 1000 / max(counted, 1), 3)
            peak = sampler.peak_kb
            if single:
                peak = max(peak, procstat.status_kb(single, "VmHWM"))
            out["peak_rss_mb"] = round(peak / 1024, 1)
        if not reached:
            out["error"] = (f"the sink counted {counted} of {messages}; smtp-source rc={rc}: {text.strip()[-800:]}\n"
                            f"{system.diagnostics()[-1500:]}")
        elif rc not in (0, None):
            out["error"] = f"smtp-source exited {rc}: {text.strip()[-800:]}"
            out["ok"] = True  # every message arrived; keep the figure, report the complaint
        else:
            out["ok"] = True
    except SystemError_ as exc:
        out["error"] = str(exc)[-3000:]
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}\n{system.diagnostics()[-1500:]}"
    finally:
        if profile and isinstance(system, sysmod.Relay):
            system.stop_profile()
        system.stop()
        if sink is not None:
            sink.stop()
    return out


def latency_run(bench: Bench, name: str, size: int, count: int) -> dict:
    """One session each, alternating a message direct to the sink and one through the system."""
    out = {"system": name, "size": size, "ok": False}
    sink = None
    system = bench.make(name)
    try:
        sink = sysmod.Sink(bench.workdir)
        system.start(sink.port)
        pa: dict = {}
        pb: dict = {}
        direct, through, delivered = smtpclient.paired_latency(sink.port, system.port, size, count,
                                                               time_limit=LATENCY_TIME_LIMIT, sink=sink,
                                                               phases_a=pa, phases_b=pb)
        # Where the added time goes, command by command (medians, ms): direct, system, added.
        out["phases_ms"] = {k: {"direct": round(statistics.median(pa[k]) * 1000, 3),
                                "system": round(statistics.median(pb[k]) * 1000, 3),
                                "added": round((statistics.median(pb[k]) - statistics.median(pa[k])) * 1000, 3)}
                            for k in pb if pa.get(k)}
        diffs = [b - a for a, b in zip(direct, through)]
        diffs_delivered = [b - a for a, b in zip(direct, delivered)]
        ms = lambda v: None if v is None else round(v * 1000, 3)
        out.update({
            "pairs": len(diffs),
            "direct_p50_ms": ms(quantile(direct, 0.5)), "direct_p99_ms": ms(quantile(direct, 0.99)),
            "system_p50_ms": ms(quantile(through, 0.5)), "system_p99_ms": ms(quantile(through, 0.99)),
            "added_p50_ms": ms(quantile(diffs, 0.5)), "added_p99_ms": ms(quantile(diffs, 0.99)),
            # MAIL to the message's arrival at the sink (a queueing MTA replies before it delivers)
            "delivered_p50_ms": ms(quantile(delivered, 0.5)), "delivered_p99_ms": ms(quantile(delivered, 0.99)),
            "added_delivered_p50_ms": ms(quantile(diffs_delivered, 0.5)),
            "added_delivered_p99_ms": ms(quantile(diffs_delivered, 0.99)),
            "ok": True,
        })
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}\n{system.diagnostics()[-1500:]}"
    finally:
        system.stop()
        if sink is not None:
            sink.stop()
    return out


def idle_run(bench: Bench, n: int) -> dict:
    out = {"sessions": n, "ok": False}
    # The sink takes as many sessions, in case the relay opens one upstream per client session.
    sink = None
    relay = bench.make("relay")
    try:
        sink = sysmod.Sink(bench.workdir, backlog=4096, max_sessions=n + 100)
        relay.start(sink.port)
        pid = relay.single_pid()
        time.sleep(0.5)
        before = procstat.status_kb(pid, "VmRSS")

        def measure():
            return procstat.status_kb(pid, "VmRSS"), relay.group.cpu()

        outcome, (during, _cpu) = smtpclient.idle_sessions(relay.port, n, measure)
        out.update({
            "rss_before_mb": round(before / 1024, 1),
            "rss_mb": round(during / 1024, 1),
            "rss_growth_mb": round((during - before) / 1024, 1),
            "kb_per_session": round((during - before) / max(outcome["counts"].get("ok", 0), 1), 1),
            "sessions_ok": outcome["counts"].get("ok", 0),
            "outcome": outcome,
            "relay_alive_after": relay.alive(),
            "ok": outcome["counts"].get("ok", 0) == n,
        })
        if not out["ok"]:
            out["error"] = f"{out['sessions_ok']} of {n} sessions got banner+EHLO: {outcome['first_errors']}"
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}\n{relay.diagnostics()[-1500:]}"
    finally:
        relay.stop()
        if sink is not None:
            sink.stop()
    return out


def big_message_run(bench: Bench, size: int) -> dict:
    out = {"size": size, "ok": False}
    sink = None
    relay = bench.make("relay")
    try:
        sink = sysmod.Sink(bench.workdir)
        relay.start(sink.port)
        pid = relay.single_pid()
        c = smtpclient.Client(relay.port, timeout=300)
        c.send(smtpclient.make_message(1024))  # warm: imports, the upstream session
        time.sleep(0.3)
        before = procstat.status_kb(pid, "VmRSS")
        reset = procstat.reset_peak(pid)
        base_hwm = procstat.status_kb(pid, "VmHWM")
        msg = smtpclient.make_message(size)
        secs = c.send(msg)
        c.close()
        hwm = procstat.status_kb(pid, "VmHWM")
        growth = hwm - (before if reset else base_hwm)
        out.update({
            "seconds": round(secs, 3),
            "rss_before_mb": round(before / 1024, 1),
            "peak_rss_mb": round(hwm / 1024, 1),
            "peak_growth_mb": round(growth / 1024, 1),
            "growth_over_size": round(growth * 1024 / size, 2),
            "peak_reset": reset,
            "ok": True,
        })
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}\n{relay.diagnostics()[-1500:]}"
    finally:
        relay.stop()
        if sink is not None:
            sink.stop()
    return out


def dkim_check(bench: Bench, name: str) -> dict:
    """One message through the system into a dumping sink; the signature must verify (dkimpy)."""
    out = {"system": name, "signed": False, "verified": False}
    sink = None
    system = bench.make(name)
    try:
        sink = sysmod.Sink(bench.workdir, dump=True)
        system.start(sink.port)
        base = sink.mark()
        c = smtpclient.Client(system.port)
        c.send(smtpclient.make_message(2048))
        if name == "relay" and "bounce_list" in bench.assets and not bench.args.relay_config:
            # The bounce list is live: a listed recipient is refused, and the refusal is an event.
            import relayconf
            listed = relayconf.bounce_address(bench.assets["bounce_list"]["entries"] // 2)
            c.cmd(f"MAIL FROM:<{SENDER}>", 250)
            code, text = c.cmd(f"RCPT TO:<{listed}>")
            c.cmd("RSET")
            time.sleep(0.3)
            events = bench.workdir / "events.jsonl"
            kinds = [json.loads(l).get("kind") for l in events.read_text().splitlines()] if events.exists() else []
            out["bounce_list_probe"] = {"recipient": listed, "reply": text, "refused": 500 <= code < 600,
                                        "event_written": "suppressed" in kinds}
        c.close()
        if not sink.wait_for(base + 1, 60):
            raise SystemError_(f"the message did not reach the sink\n{system.diagnostics()[-1500:]}")
        time.sleep(0.2)
        files = sorted(sink.dump_dir.iterdir(), key=lambda p: p.stat().st_mtime)
        raw = files[-1].read_bytes()
        # smtp-sink prepends its own X-* and Received lines; they are not part of the signature.
        msg = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        sigs = [l for l in msg.split(b"\r\n\r\n", 1)[0].split(b"\r\n") if l.lower().startswith(b"dkim-signature:")]
        out["signed"] = bool(sigs)
        if sigs:
            import re
            unfolded = msg.split(b"\r\n\r\n", 1)[0].replace(b"\r\n\t", b" ").replace(b"\r\n ", b" ")
            sig = next(l for l in unfolded.split(b"\r\n") if l.lower().startswith(b"dkim-signature:"))
            tags = dict(re.findall(rb"\b([a-z]+)=([^;]*)", sig))
            out["d"] = tags.get(b"d", b"").decode().strip()
            out["a"] = tags.get(b"a", b"").decode().strip()
            out["c"] = tags.get(b"c", b"").decode().strip()
            import dkim

            txt = bench.txt.encode()
            out["verified"] = bool(dkim.verify(msg, dnsfunc=lambda name, timeout=5: txt))
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        system.stop()
        if sink is not None:
            sink.stop()
    return out


def run_micro(script: Path, quick: bool) -> dict:
    """A micro-benchmark as a subprocess; its stdout is (or ends with) one JSON object."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + str(HERE) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    attempts = [MICRO_QUICK_ARGS.get(script.name, ["--quick"]), []] if quick else [[]]
    res = None
    for extra in attempts:
        try:
            res = subprocess.run([sys.executable, str(script)] + extra, cwd=str(REPO), env=env, capture_output=True,
                                 text=True, timeout=1200, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": "timed out after 1200 s"}
        if res.returncode == 2 and extra and "unrecognized arguments" in res.stderr:
            continue
        break
    data = None
    text = res.stdout.strip()
    try:
        data = json.loads(text)
    except ValueError:
        for line in reversed(text.splitlines()):
            try:
                data = json.loads(line)
                break
            except ValueError:
                continue
    if res.returncode != 0 or data is None:
        return {"ok": False, "rc": res.returncode, "error": (res.stderr or res.stdout)[-1500:]}
    return {"ok": True, "result": data}


def profile_run(bench: Bench, sessions: int, size: int, messages: int) -> dict:
    """The relay under load (`sessions` sessions of `size`) sampled by py-spy: top functions by own
    and by inclusive time. The raw stacks are kept in bench/profile-relay-SIZE.txt."""
    if not shutil.which("py-spy"):
        return {"ok": False, "error": "py-spy not installed (pip install py-spy)"}
    raw = bench.workdir / f"profile-{size_label(size)}.txt"
    r = throughput_run(bench, "relay", size, messages, sessions, profile=str(raw))
    if not raw.is_file():
        return {"ok": False, "error": "py-spy wrote nothing: " + sysmod.tail(bench.workdir / "py-spy.log"),
                "run": r}
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    stacks: dict[str, int] = {}
    samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        n = int(n)
        samples += n
        # "func (path/file.py:123)" -> "func (path/file.py)": one entry a function, whatever the line.
        frames = [f.rsplit(":", 1)[0] + ")" if f.endswith(")") and ":" in f else f for f in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + n
        # Hot paths: below the event loop (or a worker thread's bootstrap), the innermost 8 frames.
        cut = 0
        for i, f in enumerate(frames):
            if f.startswith(("Runner.run (", "Thread._bootstrap_inner (")):
                cut = i + 1
        inner = frames[cut:] or frames[-1:]
        key = ("... > " if len(inner) > 8 else "") + " > ".join(inner[-8:])
        stacks[key] = stacks.get(key, 0) + n
        for f in set(frames):
            total[f] = total.get(f, 0) + n
    top_own = sorted(own.items(), key=lambda kv: -kv[1])[:15]
    top_total = sorted(total.items(), key=lambda kv: -kv[1])[:25]
    top_stacks = sorted(stacks.items(), key=lambda kv: -kv[1])[:20]
    # The raw stacks stay in the temp dir (kept with --keep); results.json carries the digest.
    return {"ok": True, "samples": samples, "run": r, "raw": str(raw) if bench.args.keep else None,
            "top_self": [{"function": f, "pct": round(100 * c / samples, 1)} for f, c in top_own],
            "top_inclusive": [{"function": f, "pct": round(100 * c / samples, 1)} for f, c in top_total],
            "top_stacks": [{"stack": s, "pct": round(100 * c / samples, 1)} for s, c in top_stacks]}


# --------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--relay-rev", help="run the relay from this git revision (e.g. HEAD) instead of the working "
                   "tree, so that edits made during a long run do not mix versions")
    p.add_argument("--relay-config", type=Path, help="the relay's config (default: one generated for the bench); "
                   "its listener and upstream are redirected to the bench's ports")
    p.add_argument("--sizes", default="1k,100k,10m", help="message sizes (default 1k,100k,10m)")
    p.add_argument("--sessions", type=int, default=20, help="parallel smtp-source sessions (default 20)")
    p.add_argument("--messages", help="messages per throughput run: one number for every size, or one per size "
                   "(default 5000,1000,120 for 1k,100k,10m)")
    p.add_argument("--runs", type=int, default=3, help="runs; every figure is the median (default 3)")
    p.add_argument("--systems", default=DEFAULT_SYSTEMS, help=f"comma list from {','.join(ALL_SYSTEMS)}")
    p.add_argument("--quick", action="store_true", help="small counts, one run: a smoke test for CI")
    p.add_argument("--idle-sessions", type=int, default=2000)
    p.add_argument("--big-message", default="25m", help="size of the one large message (default 25m)")
    p.add_argument("--bounce-entries", type=int, default=1_000_000)
    p.add_argument("--skip", default="", help="comma list of parts to skip: throughput,latency,idle,big,dkim,micro")
    p.add_argument("--profile", action="store_true", help="also profile the relay under load with py-spy")
    p.add_argument("--out", type=Path, default=HERE / "results.json")
    p.add_argument("--chart", type=Path, default=HERE / "throughput.png")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs) for inspection")
    p.add_argument("--lock-wait", type=float, default=3600.0,
                   help="seconds to wait for another bench run on this machine to finish (default 3600)")
    args = p.parse_args(argv)
    args.size_list = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    args.system_list = [s.strip() for s in args.systems.split(",") if s.strip()]
    for s in args.system_list:
        if s not in ALL_SYSTEMS:
            p.error(f"unknown system {s!r} (known: {', '.join(ALL_SYSTEMS)})")
    if args.quick:
        args.runs = 1 if args.runs == 3 else args.runs
        args.idle_sessions = min(args.idle_sessions, 300)
        args.bounce_entries = min(args.bounce_entries, 100_000)
    table = QUICK_MESSAGES if args.quick else DEFAULT_MESSAGES
    if args.messages:
        counts = [int(x) for x in args.messages.split(",")]
        if len(counts) == 1:
            counts = counts * len(args.size_list)
        if len(counts) != len(args.size_list):
            p.error("--messages: one number, or one per size")
        args.count = dict(zip(args.size_list, counts))
    else:
        args.count = {s: table.get(s, max(4, int(table[1024] * 1024 / s))) for s in args.size_list}
    lat_table = QUICK_LATENCY if args.quick else LATENCY_MESSAGES
    args.latency_count = {s: lat_table.get(s, max(3, int(lat_table[1024] * 1024 / s))) for s in args.size_list}
    args.skip_set = {s.strip() for s in args.skip.split(",") if s.strip()}
    return args


LOCK_PATH = Path(tempfile.gettempdir()) / "relay-bench.lock"


def take_lock(wait: float):
    """One bench at a time on a machine: two runs on the same cores measure each other. Waits (bounded)
    for a run in progress; the lock goes with the process, however it ends."""
    import fcntl

    fh = open(LOCK_PATH, "a+")
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            if time.monotonic() >= deadline:
                print(f"another bench run holds {LOCK_PATH} (pid {holder}); gave up after {wait:.0f} s",
                      file=sys.stderr)
                return None
            if not told:
                log(f"waiting for the bench run in progress (pid {holder}) to finish: two runs would measure "
                    f"each other")
                told = True
            time.sleep(2)
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh


def check_tools(names: list[str]) -> list[str]:
    missing = []
    for tool in ("smtp-source", "smtp-sink"):
        if not shutil.which(tool):
            missing.append(tool)
    if any(n.startswith("postfix") for n in names):
        for tool in ("postfix", "postconf"):
            if not shutil.which(tool):
                missing.append(tool)
    if "postfix-opendkim" in names and not shutil.which("opendkim"):
        missing.append("opendkim")
    return missing


def relay_has_milter() -> bool:
    try:
        import importlib.util
        sys.path.insert(0, str(REPO))
        return importlib.util.find_spec("relay.milter") is not None
    except Exception:
        return False


def main(argv=None) -> int:
    args = parse_args(argv)
    missing = check_tools(args.system_list)
    if missing:
        print(f"missing tools: {', '.join(missing)} (bench/run installs them)", file=sys.stderr)
        return 2
    lock = take_lock(args.lock_wait)
    if lock is None:
        return 3
    nofile = raise_nofile()
    # SIGTERM unwinds like Ctrl-C, so every started system (a daemonised Postfix master included) is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    names = list(args.system_list)
    skipped_systems = {}
    if "postfix-relay-milter" in names and not relay_has_milter():
        names.remove("postfix-relay-milter")
        skipped_systems["postfix-relay-milter"] = "the relay has no milter mode yet (relay/milter.py)"
    bench = Bench(args)
    started = datetime.now(timezone.utc)
    results: dict = {
        "started": started.isoformat(timespec="seconds"),
        "command": "python bench/harness.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
                    "nofile": nofile, "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
                    "tools": _tool_versions()},
        "git": _git_rev(),
        "settings": {"sizes": [size_label(s) for s in args.size_list], "sessions": args.sessions,
                     "messages": {size_label(s): c for s, c in args.count.items()}, "runs": args.runs,
                     "systems": names, "quick": args.quick, "bounce_entries": args.bounce_entries},
        "skipped_systems": skipped_systems,
    }
    try:
        bench.prepare(names)
        results["assets"] = bench.assets
        if bench.factory and bench.factory.overrides:
            results["relay_config_overrides"] = bench.factory.overrides
        tp_runs: list[dict] = []
        lat_runs: list[dict] = []
        for run in range(args.runs):
            if "throughput" not in args.skip_set:
                for size in args.size_list:
                    for name in names:
                        log(f"run {run + 1}/{args.runs} throughput {name} {size_label(size)} x{args.count[size]}")
                        r = throughput_run(bench, name, size, args.count[size], args.sessions)
                        r["run"] = run + 1
                        tp_runs.append(r)
                        log("   " + (f"{r.get('msg_per_s')} msg/s, cpu {r.get('cpu_s_per_1000')} s/1000, "
                                     f"peak {r.get('peak_rss_mb')} MB" if r["ok"] else "FAILED: " + r["error"][:2000]))
            if "latency" not in args.skip_set:
                for size in args.size_list:
                    for name in names:
                        if name == "direct":
                            continue
                        log(f"run {run + 1}/{args.runs} latency {name} {size_label(size)} x{args.latency_count[size]}")
                        r = latency_run(bench, name, size, args.latency_count[size])
                        r["run"] = run + 1
                        lat_runs.append(r)
                        log("   " + (f"added p50 {r['added_p50_ms']} ms p99 {r['added_p99_ms']} ms" if r["ok"]
                                     else "FAILED: " + r["error"][:2000]))
        results["throughput_runs"] = tp_runs
        results["latency_runs"] = lat_runs
        results["throughput"] = summarise_throughput(tp_runs, names, args.size_list)
        results["latency"] = summarise_latency(lat_runs, names, args.size_list)
        if "relay" in names:
            if "idle" not in args.skip_set:
                log(f"idle sessions: {args.idle_sessions}")
                results["idle"] = idle_run(bench, args.idle_sessions)
                log(f"   {results['idle'].get('rss_mb')} MB RSS, {results['idle'].get('sessions_ok')} sessions ok")
            if "big" not in args.skip_set:
                big = parse_size(args.big_message)
                log(f"one {size_label(big)} message through the relay")
                results["big_message"] = big_message_run(bench, big)
                log(f"   growth {results['big_message'].get('peak_growth_mb')} MB "
                    f"({results['big_message'].get('growth_over_size')}x)")
        if "dkim" not in args.skip_set:
            results["dkim_check"] = {}
            for name in names:
                if bench.make(name).signs:
                    results["dkim_check"][name] = dkim_check(bench, name)
                    log(f"dkim check {name}: {results['dkim_check'][name]}")
        if "micro" not in args.skip_set:
            results["micro"] = {}
            for script in MICRO:
                path = HERE / script
                if path.is_file():
                    log(f"micro {script}")
                    results["micro"][script.removesuffix(".py")] = run_micro(path, args.quick)
                else:
                    results["micro"][script.removesuffix(".py")] = {"ok": False, "error": "not written yet"}
        if args.profile and "relay" in names:
            results["profile"] = {}
            for size in args.size_list:
                # 4x the throughput load for small sizes (enough samples), the same load for large ones
                n = args.count[size] if args.quick or size >= 1024 * 1024 else 4 * args.count[size]
                log(f"profiling the relay under load (py-spy): {size_label(size)} x{n}")
                results["profile"][size_label(size)] = profile_run(bench, args.sessions, size, n)
        results["targets"] = report.targets(results, args)
        results["errors"] = bench.errors
    finally:
        results["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        bench.cleanup()
        args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(report.table(results))
    try:
        report.chart(results, args.chart)
        log(f"wrote {args.out} and {args.chart}")
    except Exception as exc:  # no matplotlib: the table and JSON still stand
        log(f"wrote {args.out}; no chart: {exc}")
    return 0


def summarise_throughput(runs: list[dict], names: list[str], sizes: list[int]) -> dict:
    out: dict = {}
    for name in names:
        for size in sizes:
            rs = [r for r in runs if r["system"] == name and r["size"] == size]
            if not rs:
                continue
            good = [r for r in rs if r["ok"]]
            entry = {"runs": len(rs), "ok_runs": len(good)}
            for key in ("msg_per_s", "msg_per_s_wall", "cpu_s_per_1000", "peak_rss_mb"):
                entry[key] = median([r.get(key) for r in good])
            entry["all_msg_per_s"] = [r.get("msg_per_s") for r in good]
            if len(good) < len(rs):
                entry["errors"] = [r.get("error", "")[:3000] for r in rs if not r["ok"]]
            out.setdefault(name, {})[size_label(size)] = entry
    return out


def summarise_latency(runs: list[dict], names: list[str], sizes: list[int]) -> dict:
    out: dict = {}
    for name in names:
        if name == "direct":
            continue
        for size in sizes:
            rs = [r for r in runs if r["system"] == name and r["size"] == size]
            if not rs:
                continue
            good = [r for r in rs if r["ok"]]
            entry = {"runs": len(rs), "ok_runs": len(good)}
            phases = [r["phases_ms"] for r in good if r.get("phases_ms")]
            if phases:
                entry["phases_added_ms"] = {k: median([p[k]["added"] for p in phases if k in p]) for k in phases[0]}
            for key in ("added_p50_ms", "added_p99_ms", "direct_p50_ms", "direct_p99_ms", "system_p50_ms",
                        "system_p99_ms", "delivered_p50_ms", "delivered_p99_ms", "added_delivered_p50_ms",
                        "added_delivered_p99_ms"):
                entry[key] = median([r.get(key) for r in good])
            if len(good) < len(rs):
                entry["errors"] = [r.get("error", "")[:3000] for r in rs if not r["ok"]]
            out.setdefault(name, {})[size_label(size)] = entry
    return out


def _tool_versions() -> dict:
    out = {}
    for name, cmd in (("postfix", ["postconf", "-d", "-h", "mail_version"]), ("opendkim", ["opendkim", "-V"])):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            out[name] = (r.stdout or r.stderr).strip().splitlines()[0] if (r.stdout or r.stderr).strip() else None
        except (OSError, subprocess.TimeoutExpired):
            out[name] = None
    return out


def _git_rev() -> str | None:
    try:
        r = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                           timeout=10)
        return r.stdout.strip() or None
    except OSError:
        return None


if __name__ == "__main__":
    sys.exit(main())
