"""A TCP proxy on loopback in front of a real server (PostgreSQL), to make it misbehave the way a
network or a restart does, without touching the server other tests share:

  stop()   close the listener and reset every connection (a server stopped: connections refused)
  start()  listen again on the same port (the server is back)
  pause()  keep every connection open but forward nothing either way (a hung server, a dead path)
  resume() forward again
"""

from __future__ import annotations

import asyncio
import threading

from tests.support.loop_thread import run_until_stopped


class TcpProxy:
    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=run_until_stopped, args=(self.loop,), daemon=True)
        self._thread.start()
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = threading.Event()
        self._flowing.set()
        self.start()

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def start(self) -> None:
        async def listen():
            self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
            self.port = self._server.sockets[0].getsockname()[1]
        self._call(listen())

    def stop(self) -> None:
        async def close():
            self._server.close()
            await self._server.wait_closed()
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()
        self._call(close())

    def pause(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)

    async def _client(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.transport.abort()

    async def _pipe(self, reader, writer) -> None:
        while data := await reader.read(65536):
            while not self._flowing.is_set():
                await asyncio.sleep(0.05)  # held, as a dead path holds it
            writer.write(data)
            await writer.drain()
        writer.transport.abort()
