#!/usr/bin/env python3
"""How long one large message holds the relay's event loop (issue #15; "never block the event loop for
more than a few milliseconds"): the worst reply time a second, idle client sees while the message goes
through, for message shapes that make the data path work (bare LF/CR line endings, empty lines, dots).

    python bench/bench_loop_stall.py [--size 30m] [--kinds crlf,lf,...] [--repeat 2]

The relay runs as `relay serve` (a subprocess, one process, DKIM signing on) in front of `smtp-sink`.
While a client sends each message (its first byte to the reply to its final dot), a probe thread keeps
one more session busy with NOOPs, one at a time, and keeps the slowest reply (and the slowest greeting,
when it reconnects under the junk-command limit). The idle figure (no message) is the floor: loopback
and the machine's scheduling, which on a busy machine (a test suite beside) adds tens of ms to any figure:
compare the median of each message's worst, and before/after on the same machine at the same time.
`--debug` runs the relay in asyncio's debug mode and prints the callbacks it found over 100 ms.
Prints one line per shape, then one JSON object on the last line. Needs Postfix's smtp-sink.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import relayconf  # noqa: E402
import systems as sysmod  # noqa: E402

HEAD = b"From: <a@%s>\nTo: <b@example.net>\nSubject: loop stall\n\n" % relayconf.DOMAIN.encode()


def shapes(size: int) -> dict[str, bytes]:
    """The message (as sent, before dot-stuffing) of each shape, `size` bytes or about."""
    def lines(body: bytes, end: bytes) -> bytes:
        return body * (size // len(body)) if end is None else (body + end) * (size // (len(body) + len(end)))
    x = b"X" * 78
    return {
        "crlf": HEAD.replace(b"\n", b"\r\n") + lines(x, b"\r\n"),
        "lf": HEAD + lines(x, b"\n"),
        "cr": HEAD.replace(b"\n", b"\r") + lines(x, b"\r"),  # refused: RFC 5321 counts lines by LF
        "mixed": HEAD.replace(b"\n", b"\r\n") + lines(x + b"\r\n" + x + b"\n" + x, b"\r"),
        "lf-only": HEAD + b"\n" * size,  # nothing but empty lines
        "a-lf": HEAD + b"a\n" * (size // 2),
        "dots-crlf": HEAD.replace(b"\n", b"\r\n") + lines(b"." + x[1:], b"\r\n"),
        "dots-lf": HEAD + lines(b"." + x[1:], b"\n"),
    }


def wire(message: bytes) -> bytes:
    """DATA's bytes: dot-stuffed where a line (after a CRLF) starts with "." (RFC 5321 4.5.2), the final dot."""
    stuffed = (b"." if message.startswith(b".") else b"") + message.replace(b"\r\n.", b"\r\n..")
    return stuffed + (b"" if stuffed.endswith(b"\r\n") else b"\r\n") + b".\r\n"


class Session:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=300)
        self.buf = b""

    def reply(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n")
            while end >= 0:
                line, self.buf = self.buf[:end], self.buf[end + 2:]
                if line[3:4] != b"-":
                    return line
                end = self.buf.find(b"\r\n")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk

    def cmd(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        return self.reply()


class Probe(threading.Thread):
    """NOOPs on a session of its own, one at a time; `worst` is the slowest reply (or greeting) since reset()."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = port
        self.worst = 0.0
        self.count = 0
        self.stop = threading.Event()

    def reset(self) -> None:
        self.worst, self.count = 0.0, 0

    def run(self) -> None:
        while not self.stop.is_set():
            t = time.perf_counter()
            s = Session(self.port)
            s.reply()
            self.worst = max(self.worst, time.perf_counter() - t)
            s.cmd(b"EHLO probe.example")
            for _ in range(90):  # under the junk-command limit (relay/smtp.py MAX_JUNK_COMMANDS)
                if self.stop.is_set():
                    break
                t = time.perf_counter()
                if not s.cmd(b"NOOP").startswith(b"250"):
                    raise SystemExit("NOOP refused")
                self.worst = max(self.worst, time.perf_counter() - t)
                self.count += 1
                time.sleep(0.0005)
            s.sock.close()


def send(port: int, data: bytes, probe: Probe | None = None) -> tuple[bytes, float]:
    """One message (`data`: DATA's bytes, wire()) on a session of its own; (reply, seconds from the
    first byte of the message to its reply). The probe's worst starts over once DATA was answered."""
    s = Session(port)
    s.reply()
    s.cmd(b"EHLO client.example")
    for line in (b"MAIL FROM:<a@%s>" % relayconf.DOMAIN.encode(), b"RCPT TO:<b@example.net>"):
        r = s.cmd(line)
        if not r.startswith(b"250"):
            raise SystemExit(f"{line!r}: {r!r}")
    if not s.cmd(b"DATA").startswith(b"354"):
        raise SystemExit("DATA refused")
    if probe is not None:
        probe.reset()
    t = time.perf_counter()
    s.sock.sendall(data)
    r = s.reply()
    seconds = time.perf_counter() - t
    s.cmd(b"QUIT")
    s.sock.close()
    return r, seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="30m", help="message size (k, m suffixes)")
    p.add_argument("--kinds", default="", help="comma-separated shapes (default: all)")
    p.add_argument("--repeat", type=int, default=3, help="messages per shape")
    p.add_argument("--debug", action="store_true",
                   help="run the relay in asyncio's debug mode and print the callbacks it found slow (over "
                        "100 ms, asyncio's default: where the loop was held; debug mode slows the relay down)")
    args = p.parse_args()
    if args.debug:
        os.environ["PYTHONASYNCIODEBUG"] = "1"
    size = int(args.size[:-1]) * {"k": 1 << 10, "m": 1 << 20}[args.size[-1].lower()] \
        if args.size[-1].isalpha() else int(args.size)
    if not shutil.which("smtp-sink"):
        print("smtp-sink (Postfix) is not installed", file=sys.stderr)
        return 2
    import tempfile
    workdir = Path(tempfile.mkdtemp(prefix="relay-bench-stall-"))
    key, _, _ = relayconf.make_key(workdir / "keys")
    policies = relayconf.make_policies(workdir / "policies", key)
    (workdir / "relay-conf").mkdir()
    factory = relayconf.ConfigFactory(workdir / "relay-conf", None, None, policies, workdir / "events.jsonl")
    factory.base["limits"]["max_message_size"] = 2 * size + (1 << 20)
    sink = sysmod.Sink(workdir)
    relay = sysmod.Relay(workdir, factory, workers=1)
    results = {}
    try:
        relay.start(sink.port)
        probe = Probe(relay.port)
        probe.start()
        time.sleep(1.0)
        probe.reset()
        time.sleep(2.0)
        results["idle"] = {"worst_ms": round(probe.worst * 1000, 1)}
        print(f"{'idle':10} worst reply {probe.worst * 1000:8.1f} ms ({probe.count} NOOPs in 2 s)", flush=True)
        all_shapes = shapes(size)
        kinds = [k for k in args.kinds.split(",") if k] or list(all_shapes)
        for kind in kinds:
            message = all_shapes[kind]
            data = wire(message)  # made before the probe counts: this process's own work is not the relay's
            worsts, took, reply = [], 0.0, b""
            for _ in range(args.repeat):
                time.sleep(0.3)
                reply, seconds = send(relay.port, data, probe)
                time.sleep(0.3)  # the upstream side of the message ends after the reply
                worsts.append(probe.worst)
                took = max(took, seconds)
            results[kind] = {"bytes": len(message), "worst_ms": round(max(worsts) * 1000, 1),
                             "median_worst_ms": round(statistics.median(worsts) * 1000, 1),
                             "seconds": round(took, 2), "reply": reply[:3].decode()}
            print(f"{kind:10} {len(message) / 1e6:5.1f} MB: worst reply {max(worsts) * 1000:7.1f} ms "
                  f"(median of {args.repeat} messages' worst {statistics.median(worsts) * 1000:7.1f} ms); "
                  f"DATA to reply {took:5.2f} s; {reply[:40].decode(errors='replace')}", flush=True)
        probe.stop.set()
    finally:
        relay.stop()
        sink.stop()
        if args.debug:
            for line in relay.stderr_path.read_text(errors="replace").splitlines():
                if "Executing" in line or "took" in line:
                    print(line[:400])
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps({"size": size, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
