"""The relay under test: the real RelayServer on 127.0.0.1:0, in a thread with its own loop."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import yaml


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
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.server = self.call(self._make(RelayServer))
        bound = self.call(self.server.start())
        self.bound = bound  # every listener's (host, port), in start order (listen, then bounces_in)
        self.host, self.port = bound[0] if bound else (None, None)
        milter = self.server.milter
        self.milter_port = milter.port if milter is not None else None  # None also for a UNIX socket

    async def _make(self, cls):
        return cls(self.settings)

    def call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def reload(self) -> bool:
        async def do():
            return self.server.reload()
        return self.call(do())

    def stop(self) -> None:
        if not self._thread.is_alive():
            return  # stopped already (a test that restarts the relay stops it itself)
        try:
            self.call(self.server.stop(), timeout=90)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)

    @property
    def events_path(self) -> Path:
        return Path(self.settings.events[0].target)

    def events(self, wait_for: int = 0, timeout: float = 5.0) -> list[dict]:
        deadline = time.time() + timeout
        while True:
            try:
                lines = self.events_path.read_text().splitlines()
            except FileNotFoundError:
                lines = []
            events = [json.loads(line) for line in lines if line.strip()]
            if len(events) >= wait_for or time.time() > deadline:
                return events
            time.sleep(0.02)
