"""A next hop with the parsing faults that SMTP smuggling needs (SEC Consult 2023, CVE-2023-51764):
it drops NUL bytes from the data, and takes a bare LF for a line end, so that "\\n.\\n" ends the
message and what follows is read as new commands. Every message it "receives" is counted, so a
test can tell whether one message through the relay turned into two here."""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass

from tests.support.loop_thread import run_until_stopped


@dataclass
class LaxMessage:
    mail_from: str
    rcpts: list[str]
    data: bytes


_END = re.compile(rb"(?:\r?\n)\.(?:\r?\n)")  # the terminator as a lax parser sees it


class LaxUpstream:
    def __init__(self):
        self.messages: list[LaxMessage] = []
        self.open_connections = 0
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=run_until_stopped, args=(self.loop,), daemon=True)
        self._server = None
        self._sessions: set[asyncio.Task] = set()
        self.port = 0

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        self._sessions.add(asyncio.current_task())
        buf = b""
        mail_from, rcpts = "", []
        try:
            writer.write(b"220 lax.test ESMTP\r\n")
            while True:
                while b"\n" not in buf:
                    chunk = await reader.read(65536)
                    if not chunk:
                        return
                    buf += chunk
                line, buf = buf.split(b"\n", 1)
                verb = line.rstrip(b"\r").split(b" ", 1)[0].upper()
                arg = line.rstrip(b"\r")[len(verb):].strip()
                if verb in (b"EHLO", b"HELO"):
                    writer.write(b"250-lax.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 100000000\r\n")
                elif verb == b"MAIL":
                    mail_from, rcpts = arg.decode("utf-8", "replace"), []
                    writer.write(b"250 2.1.0 OK\r\n")
                elif verb == b"RCPT":
                    rcpts.append(arg.decode("utf-8", "replace"))
                    writer.write(b"250 2.1.5 OK\r\n")
                elif verb == b"RSET":
                    mail_from, rcpts = "", []
                    writer.write(b"250 2.0.0 OK\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    return
                elif verb == b"DATA":
                    writer.write(b"354 go ahead\r\n")
                    data = b"\r\n"  # the DATA line's own line end starts the terminator
                    while True:
                        cleaned = data.replace(b"\x00", b"")  # the fault: NULs dropped
                        m = _END.search(cleaned)
                        if m:
                            break
                        chunk = buf or await reader.read(65536)
                        buf = b""
                        if not chunk:
                            return
                        data += chunk
                    self.messages.append(LaxMessage(mail_from, rcpts, cleaned[2:m.start()]))
                    buf = cleaned[m.end():]
                    mail_from, rcpts = "", []
                    writer.write(b"250 2.0.0 queued\r\n")
                elif verb == b"NOOP":
                    writer.write(b"250 2.0.0 OK\r\n")
                else:
                    writer.write(b"500 5.5.1 unknown command\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.open_connections -= 1
            self._sessions.discard(asyncio.current_task())
            writer.close()

    def start(self) -> "LaxUpstream":
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(asyncio.start_server(self._session, "127.0.0.1", 0), self.loop)
        self._server = fut.result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        # Sessions still open (the relay's pooled connection) end here, on the running loop: left
        # suspended, they were closed when the loop was garbage-collected, later, in another test,
        # and their writer.close() met a closed loop ("Event loop is closed", an unraisable warning).
        async def close():
            self._server.close()
            sessions = list(self._sessions)
            for task in sessions:
                task.cancel()
            await asyncio.gather(*sessions, return_exceptions=True)
            await self._server.wait_closed()
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()
