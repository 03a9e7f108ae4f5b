"""The relay under test: the real RelayServer on 127.0.0.1:0, in a thread with its own loop."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import yaml

from tests.support.loop_thread import run_until_stopped


def write_config(directory: Path, upstream_port: int, **overrides) -> Path:
    config = {
        "hostname": "relay.test",
        "listen": [{"address": "127.0.0.1:0"}],
        "upstream": {"host": "127.0.0.1", "port": upstream_port, "starttls": "off",
                     "connect_timeout": 3, "command_timeout": 5, "data_timeout": 10},
        "bounce_list": f"sqlite:///{directory / 'bounces.db'}",
        "events": [{"jsonl": str(directory / "events.jsonl")}],
    }
    for key, value in overrides.items():
        if value is None:
            config.pop(key, None)
        elif isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    path = directory / "relay.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class RunningRelay:
    def __init__(self, config_path: Path):
        from relay.config import load_settings
        from relay.server import RelayServer

        self.config_path = config_path
        self.settings = load_settings(config_path)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, daemon=True)
        self._thread.start()
        self.server = self.call(self._make(RelayServer))
        bound = self.call(self.server.start())
        self.bound = bound  # every listener's (host, port), in start order (listen, then bounces_in)
        self.host, self.port = bound[0] if bound else (None, None)
        milter = self.server.milter
        self.milter_port = milter.port if milter is not None else None  # None also for a UNIX socket
        self.milter_non_smtpd_port = milter.non_smtpd_port if milter is not None else None  # non_smtpd_listen
        self._stopping = None  # the server's stop(), once begun

    def _run_loop(self) -> None:
        run_until_stopped(self.loop)

    async def _make(self, cls):
        return cls(self.settings)

    def call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def reload(self) -> bool:
        async def do():
            return await self.server.reload()
        return self.call(do())

    def begin_stop(self):
        """Start stopping (what SIGTERM does) without waiting: a concurrent.futures.Future."""
        if self._stopping is None:
            self._stopping = asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop)
        return self._stopping

    def stop(self) -> None:
        if not self._thread.is_alive():
            return  # stopped already (a test that restarts the relay stops it itself)
        try:
            self.begin_stop().result(90)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)

    def http(self, path: str, accept: str | None = None) -> tuple[int, str, str]:
        """GET path from the metrics listener (config `metrics: {listen: "127.0.0.1:0"}`), over a
        real socket: (status, content type, body)."""
        import urllib.error
        import urllib.request

        host, port = self.server.metrics_address
        request = urllib.request.Request(f"http://{host}:{port}{path}", headers={"Accept": accept} if accept else {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.headers["Content-Type"], response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers["Content-Type"], exc.read().decode()

    @property
    def events_path(self) -> Path:
        return Path(self.settings.events[0].target)

    def events(self, wait_for: int = 0, timeout: float = 5.0) -> list[dict]:
        deadline = time.time() + timeout
        # The relay's jsonl sink is written by a thread of its own (relay.events.QueuedSink): what the
        # relay emitted before now (before the reply the test saw) is in the file once it is flushed.
        self.server.sinks.flush(timeout)
        while True:
            try:
                text = self.events_path.read_text()
            except FileNotFoundError:
                text = ""
            # Only whole lines: the sink may be half-way through writing the last one (a large
            # event goes out in more than one write), as any reader tailing the file sees it.
            lines = text.split("\n")[:-1]
            events = [json.loads(line) for line in lines if line.strip()]
            if len(events) >= wait_for or time.time() > deadline:
                return events
            time.sleep(0.02)
