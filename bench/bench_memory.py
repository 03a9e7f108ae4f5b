#!/usr/bin/env python3
"""Memory given back (issue #9 item 15): clients upload large messages into DATA, then go away.

Each round: N clients at once send EHLO, MAIL, RCPT, DATA and SIZE bytes of message, then either
close the connection without the final dot (`--mode drop`, the default) or finish the message
(`--mode send`, relayed to smtp-sink). The relay runs as its own process; its RSS (VmRSS) is read
before the first round and a few seconds after each. A relay that keeps what it no longer needs
grows round after round; one that gives it back returns near its starting figure.

    python bench/bench_memory.py [--clients 8] [--size 30m] [--rounds 3] [--mode drop|send] [--settle 3]
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import procstat  # noqa: E402
import systems  # noqa: E402

LINE = b"x" * 76 + b"\r\n"


def rss_mb(pid: int) -> float:
    return procstat.status_kb(pid, "VmRSS") / 1024


def _reply(sock: socket.socket, buf: bytearray) -> bytes:
    while True:
        while b"\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        i = buf.index(b"\r\n")
        line = bytes(buf[:i])
        del buf[:i + 2]
        if len(line) < 4 or line[3:4] != b"-":
            return line


def one_client(port: int, size: int, mode: str, results: list) -> None:
    sock = socket.create_connection(("127.0.0.1", port), timeout=120)
    buf = bytearray()
    try:
        _reply(sock, buf)
        for cmd in (b"EHLO bench.test", b"MAIL FROM:<a@sender.test>", b"RCPT TO:<b@example.com>", b"DATA"):
            sock.sendall(cmd + b"\r\n")
            _reply(sock, buf)
        block = LINE * (1024 * 1024 // len(LINE))
        sent = 0
        sock.sendall(b"Subject: memory\r\n\r\n")
        while sent < size:
            sock.sendall(block)
            sent += len(block)
        if mode == "send":
            sock.sendall(b".\r\n")
            results.append(_reply(sock, buf)[:3])
            sock.sendall(b"QUIT\r\n")
        else:
            results.append(b"drop")
    finally:
        sock.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--size", default="30m")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--mode", choices=("drop", "send"), default="drop")
    p.add_argument("--settle", type=float, default=3.0, help="seconds after a round before RSS is read")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    size = int(float(args.size[:-1]) * 1024 ** 2) if args.size.lower().endswith("m") else int(args.size)

    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    sink = systems.Sink(work)
    relay = None
    try:
        def config(sink_port: int, listen_port: int, milter_port=None) -> Path:
            cfg = {"hostname": "relay-bench.example", "listen": [{"address": f"127.0.0.1:{listen_port}"}],
                   "upstream": {"host": "127.0.0.1", "port": sink_port, "starttls": "off"},
                   "limits": {"max_message_size": 40 * 1024 * 1024},
                   "bounce_list": f"sqlite:///{work / 'bounces.db'}", "events": [{"jsonl": str(work / 'events.jsonl')}]}
            path = work / "relay.yaml"
            path.write_text(yaml.safe_dump(cfg))
            return path

        relay = systems.Relay(work, config)
        relay.start(sink.port)
        pid = relay.proc.pid
        time.sleep(1.0)
        figures = {"start": round(rss_mb(pid), 1), "after_round": [], "peak": 0.0}
        for _ in range(args.rounds):
            results: list = []
            threads = [threading.Thread(target=one_client, args=(relay.port, size, args.mode, results))
                       for _ in range(args.clients)]
            peak = 0.0
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                peak = max(peak, rss_mb(pid))
                time.sleep(0.05)
            time.sleep(args.settle)
            figures["peak"] = round(max(figures["peak"], peak), 1)
            figures["after_round"].append(round(rss_mb(pid), 1))
            if args.mode == "send" and any(r != b"250" for r in results):
                print(f"warning: replies {results}", file=sys.stderr)
        figures.update(clients=args.clients, size_mib=size / 1024 ** 2, mode=args.mode, settle_s=args.settle)
        if args.json:
            print(json.dumps(figures))
        else:
            print(f"relay RSS MB: start {figures['start']}, after each round {figures['after_round']}, "
                  f"peak {figures['peak']} ({args.clients} clients x {args.size}, mode {args.mode})")
    finally:
        if relay is not None:
            relay.stop()
        sink.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
