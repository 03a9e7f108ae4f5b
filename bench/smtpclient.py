"""A small SMTP client on raw sockets: per-message timing on a persistent connection, idle sessions,
one large message. No library between us and the wire, so its own cost is small and the same for
every system it talks to."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid

from systems import RECIPIENT, SENDER


class SMTPError(RuntimeError):
    pass


def make_message(size: int, sender: str = SENDER, rcpt: str = RECIPIENT) -> bytes:
    """A message of about `size` bytes (headers included), CRLF line ends, dot-stuffing not needed."""
    head = (f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: relay bench\r\n"
            f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@bench.example>\r\n\r\n").encode()
    line = b"x" * 76 + b"\r\n"
    body_len = max(0, size - len(head))
    body = line * (body_len // len(line)) + b"y" * (body_len % len(line))
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return head + body


class Client:
    """One persistent SMTP session, lockstep (no PIPELINING), like a careful MTA."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 120.0, helo: str = "bench-client"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.reply(220)
        self.cmd(f"EHLO {helo}", 250)

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SMTPError("connection closed by the server")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self, expect: int | None = None) -> tuple[int, str]:
        lines = []
        while True:
            line = self._line()
            lines.append(line.decode("utf-8", "replace"))
            if len(line) < 4 or line[3:4] != b"-":
                break
        code = int(lines[-1][:3])
        if expect is not None and code != expect:
            raise SMTPError(f"expected {expect}, got: " + " / ".join(lines))
        return code, "\n".join(lines)

    def cmd(self, text: str, expect: int | None = None) -> tuple[int, str]:
        self.sock.sendall(text.encode() + b"\r\n")
        return self.reply(expect)

    def send(self, message: bytes, sender: str = SENDER, rcpt: str = RECIPIENT, phases: dict | None = None) -> float:
        """Send one message; seconds from MAIL FROM to the reply to the final dot. With `phases`, each
        command's time is appended to phases["MAIL"], ["RCPT"], ["DATA"] and ["dot"] (the body and its reply)."""
        clock = time.perf_counter
        t0 = clock()
        self.cmd(f"MAIL FROM:<{sender}>", 250)
        t1 = clock()
        self.cmd(f"RCPT TO:<{rcpt}>", 250)
        t2 = clock()
        self.cmd("DATA", 354)
        t3 = clock()
        self.sock.sendall(message + b".\r\n")
        self.reply(250)
        t4 = clock()
        if phases is not None:
            for name, dt in (("MAIL", t1 - t0), ("RCPT", t2 - t1), ("DATA", t3 - t2), ("dot", t4 - t3)):
                phases.setdefault(name, []).append(dt)
        return t4 - t0

    def close(self) -> None:
        try:
            self.cmd("QUIT")
        except (OSError, SMTPError):
            pass
        self.sock.close()


def paired_latency(port_a: int, port_b: int, size: int, count: int, time_limit: float,
                   sink=None, phases_a: dict | None = None,
                   phases_b: dict | None = None) -> tuple[list[float], list[float], list[float]]:
    """Alternate one message through A and one through B, `count` times (bounded by time_limit).
    Returns the per-message times of each (seconds) and, when `sink` (where both paths end) is given,
    B's time from MAIL to the message's arrival at the sink: for a queueing MTA, later than its reply."""
    a, b = Client(port_a), Client(port_b)
    ta, tb, tdeliv = [], [], []
    try:
        msg = make_message(size)
        base = sink.count if sink is not None else 0
        warm = max(3, min(50, count // 10))
        for _ in range(warm):  # warm both paths (connections upstream, caches, the interpreter)
            a.send(msg)
            b.send(msg)
        expected = 0
        if sink is not None:
            sink.wait_for(base + 2 * warm, 60)  # the warm-up has arrived, through a queue or not
            expected = sink.count
        deadline = time.monotonic() + time_limit
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            ta.append(a.send(msg, phases=phases_a))
            if sink is not None:
                expected += 1
                sink.wait_for(expected, 30)
            t0 = time.monotonic()
            tb.append(b.send(msg, phases=phases_b))
            if sink is not None:
                expected += 1
                if sink.wait_for(expected, 60):
                    tdeliv.append(sink.t_changed - t0)
    finally:
        a.close()
        b.close()
    return ta, tb, tdeliv


async def _idle_session(port: int, results: list, hold: asyncio.Event, helo: str) -> None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
    except (OSError, asyncio.TimeoutError) as exc:
        results.append(("connect", repr(exc)))
        return
    try:
        async def read_reply() -> bytes:
            while True:
                line = await asyncio.wait_for(reader.readline(), 30)
                if not line:
                    raise ConnectionError("closed")
                if len(line) < 4 or line[3:4] != b"-":
                    return line
        banner = await read_reply()
        if not banner.startswith(b"220"):
            results.append(("banner", banner.decode(errors="replace").strip()))
            return
        writer.write(f"EHLO {helo}\r\n".encode())
        await writer.drain()
        ehlo = await read_reply()
        if not ehlo.startswith(b"250"):
            results.append(("ehlo", ehlo.decode(errors="replace").strip()))
            return
        results.append(("ok", ""))
        await hold.wait()
    except (OSError, asyncio.TimeoutError, ConnectionError) as exc:
        results.append(("error", repr(exc)))
    finally:
        writer.close()


async def _idle(port: int, n: int, measure, settle: float, concurrency: int) -> tuple[list, object]:
    results: list = []
    hold = asyncio.Event()
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:  # bounded opening rate; the session itself stays open after the slot is freed
            before = len(results)
            task = asyncio.create_task(_idle_session(port, results, hold, f"idle{i}.bench.example"))
            while len(results) == before and not task.done():
                await asyncio.sleep(0.005)
        await task

    tasks = [asyncio.create_task(one(i)) for i in range(n)]
    deadline = time.monotonic() + 120
    while len(results) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(settle)
    figure = measure()
    hold.set()
    await asyncio.wait(tasks, timeout=30)
    return results, figure


def idle_sessions(port: int, n: int, measure, settle: float = 1.0, concurrency: int = 200) -> tuple[dict, object]:
    """Open n sessions (banner + EHLO each), keep them all open, call measure(), close them."""
    results, figure = asyncio.run(_idle(port, n, measure, settle, concurrency))
    outcome: dict[str, int] = {}
    first_error = {}
    for kind, detail in results:
        outcome[kind] = outcome.get(kind, 0) + 1
        if kind != "ok" and kind not in first_error:
            first_error[kind] = detail
    return {"counts": outcome, "first_errors": first_error}, figure
