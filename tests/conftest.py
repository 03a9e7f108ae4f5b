"""Shared fixtures: real servers on loopback, on port 0."""

from __future__ import annotations

import pytest

from tests.support.dns_server import LoopbackDNS


@pytest.fixture
def dns():
    """A loopback DNS server; add records with dns.zone.add(name, type, value)."""
    server = LoopbackDNS().start()
    yield server
    server.stop()


@pytest.fixture
def upstream():
    """An upstream that answers like Gmail (see tests/support/upstream.py)."""
    from tests.support.upstream import FakeUpstream

    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def relay_factory(tmp_path):
    """Start relays with a config written from overrides: relay_factory(upstream_port, **overrides)."""
    from tests.support.relay_proc import RunningRelay, write_config

    started = []

    def start(upstream_port: int, **overrides):
        path = write_config(tmp_path, upstream_port, **overrides)
        relay = RunningRelay(path)
        started.append(relay)
        return relay

    yield start
    for relay in started:
        relay.stop()


@pytest.fixture
def relay(upstream, relay_factory):
    """The relay in front of the Gmail-like upstream, default config."""
    return relay_factory(upstream.port)
