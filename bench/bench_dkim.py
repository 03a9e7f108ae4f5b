#!/usr/bin/env python3
"""Time DKIM signing per message: relay.dkim against dkimpy's own dkim.sign.

    python bench/bench_dkim.py [--iterations N] [--dkimpy-iterations M] [--json-only]

For RSA-2048 and Ed25519, on a 1 KiB and a 100 KiB message (relaxed/relaxed,
the same signed headers), it reports the mean, the 99th percentile and the
worst single call in milliseconds, then the worst event-loop pause while
DkimSignStep signs an 8 MiB message (its body hashed in a thread), beside
the worst pause of an idle loop over the same span (what the machine alone costs). A table,
then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dkim as dkimpy  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

from relay import dkim as dkimlib  # noqa: E402

DOMAIN = "example.com"
HEADERS = ("From: Alice <alice@example.com>\r\nTo: Bob <bob@example.org>\r\nSubject: Quarterly report\r\n"
           "Date: Thu, 26 Nov 2026 18:00:00 +0000\r\nMessage-ID: <bench@example.com>\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\n").encode()


def message_of(size: int) -> bytes:
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n"
    body = (line * (size // len(line) + 1))[: max(0, size - len(HEADERS) - 2)].rstrip(b"\r\n")
    return HEADERS + body + b"\r\n"  # exactly `size` bytes, ending in CRLF


def timings(fn, iterations: int) -> dict:
    for _ in range(min(20, iterations)):
        fn()  # warm up
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {"mean_ms": statistics.fmean(samples), "p99_ms": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
            "max_ms": samples[-1], "calls": iterations}


def dkimpy_signer(message: bytes, kind: str, private_key):
    names = [h.lower().encode() for h in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version",
                                          "Content-Type")]
    if kind == "rsa":
        pem = dkimlib.private_key_pem(private_key)
        return lambda: dkimpy.sign(message, b"s1", DOMAIN.encode(), pem, include_headers=names,
                                   canonicalize=(b"relaxed", b"relaxed"))
    raw = private_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption())
    return lambda: dkimpy.sign(message, b"e1", DOMAIN.encode(), base64.b64encode(raw), include_headers=names,
                               canonicalize=(b"relaxed", b"relaxed"), signature_algorithm=b"ed25519-sha256")


async def worst_loop_pause(size: int, keys_dir: Path, rsa_key, ed_key) -> dict:
    from relay.domains import DomainPolicies
    from relay.pipeline import Message, Session, Transaction
    from relay.steps.dkim_sign import DkimSignStep

    (keys_dir / "rsa.key").write_bytes(dkimlib.private_key_pem(rsa_key))
    (keys_dir / "ed.key").write_bytes(dkimlib.private_key_pem(ed_key))
    (keys_dir / "domains.yaml").write_text(
        f"{DOMAIN}:\n  dkim:\n    - {{selector: s1, key: rsa.key}}\n    - {{selector: e1, key: ed.key}}\n")
    step = DkimSignStep(None, SimpleNamespace(domains=DomainPolicies.from_file(keys_dir / "domains.yaml")))
    gaps: list[float] = []
    done = False

    async def ticker():
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append((now - last - 0.001) * 1000)
            last = now

    message = Message(message_of(size))
    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    gaps.clear()
    txn = Transaction(Session("bench", "127.0.0.1", 0, trusted_network=True), "bench", "a@example.com")
    start = time.perf_counter()
    await step.on_data(txn, message)
    elapsed = (time.perf_counter() - start) * 1000
    worst = max(gaps)
    # The same wait with nothing to sign: on a busy machine the OS alone
    # delays the loop, and this says how much of the pause is ours.
    gaps.clear()
    await asyncio.sleep(max(elapsed / 1000, 0.05))
    baseline = max(gaps) if gaps else 0.0
    done = True
    await task
    return {"message_bytes": len(message.original), "signatures": len(txn.notes["dkim"]),
            "step_ms": elapsed, "worst_loop_pause_ms": worst, "idle_worst_loop_pause_ms": baseline}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000, help="calls per case for relay.dkim")
    parser.add_argument("--dkimpy-iterations", type=int, default=200, help="calls per case for dkimpy")
    parser.add_argument("--step-runs", type=int, default=10, help="8 MiB messages signed through the step")
    parser.add_argument("--json-only", action="store_true")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]  # p99/max on a busy shared machine say more about it than about us
    keys = {"rsa": dkimlib.generate_key("rsa", 2048), "ed25519": dkimlib.generate_key("ed25519")}
    names = {"rsa": "RSA-2048", "ed25519": "Ed25519"}
    rows = []
    for kind in ("rsa", "ed25519"):
        key = dkimlib.DkimKey("s1" if kind == "rsa" else "e1", keys[kind])
        for size in (1024, 100 * 1024):
            message = message_of(size)
            ours = timings(lambda: dkimlib.sign(message, key, DOMAIN), args.iterations)
            theirs = timings(dkimpy_signer(message, kind, keys[kind]), args.dkimpy_iterations)
            rows.append({"key": names[kind], "message_bytes": len(message), "relay": ours, "dkimpy": theirs,
                         "speedup": theirs["mean_ms"] / ours["mean_ms"]})

    with tempfile.TemporaryDirectory() as tmp:
        runs = [asyncio.run(worst_loop_pause(8 * 1024 * 1024, Path(tmp), keys["rsa"], keys["ed25519"]))
                for _ in range(args.step_runs)]
    pause = {"message_bytes": runs[0]["message_bytes"], "signatures": runs[0]["signatures"], "runs": len(runs)}
    for name in ("step_ms", "worst_loop_pause_ms", "idle_worst_loop_pause_ms"):
        values = sorted(r[name] for r in runs)
        pause[name] = statistics.median(values)
        pause[name.replace("_ms", "_max_ms")] = values[-1]

    result = {"python": platform.python_version(), "cpus": os.cpu_count(), "dkimpy": importlib.metadata.version("dkimpy"),
              "loadavg_1m": [load_before, os.getloadavg()[0]], "rows": rows, "step_8mib": pause}
    if not args.json_only:
        print(f"{'key':9} {'message':>9} | {'relay mean':>10} {'p99':>7} {'max':>7} | "
              f"{'dkimpy mean':>11} {'p99':>7} {'max':>7} | {'x':>5}")
        for r in rows:
            o, d = r["relay"], r["dkimpy"]
            print(f"{r['key']:9} {r['message_bytes']:>9} | {o['mean_ms']:>10.3f} {o['p99_ms']:>7.3f} {o['max_ms']:>7.3f} | "
                  f"{d['mean_ms']:>11.3f} {d['p99_ms']:>7.3f} {d['max_ms']:>7.3f} | {r['speedup']:>5.1f}")
        print(f"(milliseconds per signature; relaxed/relaxed, same signed headers; "
              f"1-min load {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, {os.cpu_count()} CPUs)")
        print(f"DkimSignStep, {pause['message_bytes']} byte message, {pause['signatures']} signatures, "
              f"{pause['runs']} runs (median / max): {pause['step_ms']:.1f} / {pause['step_max_ms']:.1f} ms; "
              f"worst event-loop pause {pause['worst_loop_pause_ms']:.2f} / {pause['worst_loop_pause_max_ms']:.2f} ms; "
              f"idle loop over the same span {pause['idle_worst_loop_pause_ms']:.2f} / "
              f"{pause['idle_worst_loop_pause_max_ms']:.2f} ms")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
