"""A real Prometheus server (Debian's `prometheus` package) scraping targets on loopback."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

BINARY = "/usr/bin/prometheus"


def _free_port() -> int:
    from tests.support.peers import free_port

    return free_port()


class PrometheusServer:
    def __init__(self, directory: Path, targets: list[str], scrape_interval: str = "1s"):
        if not Path(BINARY).exists():
            raise RuntimeError(f"{BINARY} is missing: install Debian's prometheus package (scripts/test does)")
        self.directory = directory
        self.port = _free_port()
        config = {"global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
                  "scrape_configs": [{"job_name": "relay", "static_configs": [{"targets": targets}]}]}
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = open(directory / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [BINARY, f"--config.file={directory / 'prometheus.yml'}", f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def api(self, path: str, **params) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:  # 400/422: the query's own error, as JSON
            return json.load(exc)

    def query(self, expr: str) -> dict:
        return self.api("query", query=expr)

    def wait_for_scrapes(self, n: int, timeout: float = 60.0) -> None:
        """Until every target was scraped successfully at least n times (rate() needs two)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {(self.directory / 'prometheus.log').read_text()[-2000:]}")
            try:
                result = self.query("min(count_over_time(up[5m])) and min(up) == 1")
                if result["status"] == "success" and result["data"]["result"] and \
                        float(self.query("min(count_over_time(up[5m]))")["data"]["result"][0]["value"][1]) >= n:
                    return
            except (OSError, KeyError, IndexError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"prometheus did not scrape {n} times within {timeout} s")
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.directory / "data", ignore_errors=True)
