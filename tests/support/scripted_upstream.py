"""An upstream SMTP server that says exactly the bytes a test scripts, for the misbehaviour real and
hostile servers show (tests/test_upstream_hostile.py): a greeting that never comes or comes in
crumbs, replies whose lines disagree, bare LFs, control bytes, two replies to one command, a
reply before the command, a close after the final dot.

`server.script` maps a step to what is said there, for every connection from then on:
  "greeting"  bytes, or None for silence (default: a 220)
  "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "STARTTLS"  the reply to that command
  "DOT"       the reply to the final dot
  "dot_gate"  a threading.Event: the reply to the final dot waits until it is set
  "MIDDATA"   a reply sent as soon as the message starts arriving (before the dot)
A value is bytes written as they are, or a function of the command line (bytes) that returns one; a list of bytes is written in pieces, 20 ms apart;
CLOSE closes without a reply, SILENT says nothing. "close_after" (a set of steps) closes
the connection right after that step's reply. "middata_pause" (seconds) stops reading for that
long after the MIDDATA reply, with a small receive buffer (64 KiB), so that a large enough message
is still in the relay's own write buffer when that reply reaches it. Everything the relay sent is kept in
`server.received` (one bytes per connection)."""

from __future__ import annotations

import asyncio
import socket
import threading

from tests.support.loop_thread import run_until_stopped

CLOSE = "close"
SILENT = "silent"

DEFAULT = {
    "greeting": b"220 scripted.test ESMTP\r\n",
    "EHLO": b"250-scripted.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 100000000\r\n",
    "HELO": b"250 scripted.test\r\n",
    "MAIL": b"250 2.1.0 OK\r\n",
    "RCPT": b"250 2.1.5 OK\r\n",
    "DATA": b"354 go ahead\r\n",
    "DOT": b"250 2.0.0 queued as 1\r\n",
    "RSET": b"250 2.0.0 OK\r\n",
    "NOOP": b"250 2.0.0 OK\r\n",
    "QUIT": b"221 2.0.0 bye\r\n",
}


class ScriptedUpstream:
    def __init__(self, address: str = "127.0.0.1", port: int = 0):
        self.address = address  # e.g. 127.0.0.4 on an MX port other hosts share (tests/test_delivery_mx.py)
        self.script: dict = {}
        self.received: list[bytearray] = []
        self.connections = 0
        self.open_connections = 0
        self.messages = 0  # messages answered with the scripted DOT reply
        self.said: list[bytes] = []  # what the server wrote, piece by piece
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=run_until_stopped, args=(self.loop,), daemon=True)
        self._server = None
        self._writers: set = set()
        self.port = port

    def start(self) -> "ScriptedUpstream":
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._session, self.address, self.port), self.loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close():
            self._server.close()
            for writer in list(self._writers):
                writer.close()
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def reset(self, **script) -> None:
        self.script = script
        self.received = []
        self.messages = 0
        self.connections = 0
        self.said = []

    def _say(self, step: str):
        return self.script.get(step, DEFAULT.get(step, b"502 5.5.1 unknown\r\n"))

    async def _send(self, writer, what) -> bool:
        """False when the script closes the connection here."""
        if what == CLOSE:
            writer.close()
            return False
        if what == SILENT or what is None:
            return True
        for piece in what if isinstance(what, list) else [what]:
            # Noted before it leaves: the relay may pass it on and the test look at `said` before
            # this coroutine runs again after drain().
            self.said.append(piece)
            writer.write(piece)
            await writer.drain()
            if isinstance(what, list):
                await asyncio.sleep(0.02)
        return True

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_connections += 1
        self._writers.add(writer)
        seen = bytearray()
        self.received.append(seen)
        close_after = self.script.get("close_after", set())
        pause = self.script.get("middata_pause")
        if pause:
            # Set before anything is read: the kernel's receive autotuning (tcp_rmem, up to 32 MiB
            # here) would otherwise take in a message of many MiB while this side reads nothing.
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        try:
            if not await self._send(writer, self._say("greeting")):
                return
            while True:
                line = await reader.readline()
                if not line:
                    return
                seen += line
                verb = line.strip().split(b" ", 1)[0].upper().decode("ascii", "replace")
                said = self._say(verb)
                if callable(said):  # a reply that depends on the command's line (per recipient)
                    said = said(line)
                if not await self._send(writer, said):
                    return
                if verb in close_after or verb == "QUIT":
                    writer.close()
                    return
                if verb == "DATA" and self._say("DATA")[:3] == b"354":
                    first = True
                    while True:
                        line = await reader.readline()
                        if not line:
                            return
                        seen += line
                        if first and "MIDDATA" in self.script:
                            first = False
                            if not await self._send(writer, self.script["MIDDATA"]):
                                return
                            if pause:
                                await asyncio.sleep(pause)
                        if line == b".\r\n":
                            break
                    gate = self.script.get("dot_gate")
                    if gate is not None:  # a threading.Event: the reply to the dot waits for the test
                        await asyncio.get_running_loop().run_in_executor(None, gate.wait)
                    answer = self._say("DOT")
                    if answer != CLOSE:
                        # Counted before the answer leaves, for the same reason as `said`: a test that saw
                        # the relay's 250 checked `messages` while this coroutine still waited in drain().
                        self.messages += 1
                    if not await self._send(writer, answer):
                        return
                    if "DOT" in close_after:
                        writer.close()
                        return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            self.open_connections -= 1
            self._writers.discard(writer)
            writer.close()
