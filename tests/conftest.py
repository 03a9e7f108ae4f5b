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
