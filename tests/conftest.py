"""Shared fixtures: real servers on loopback, on port 0."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from tests.support.dns_server import LoopbackDNS

# CI (.ci/run) draws the property tests' examples from a fixed seed and keeps no example database:
# a red CI is then the same red on the next run, and a new counterexample is found where each run
# draws new ones (a developer's machine), not on a submission's CI.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("RELAY_HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["RELAY_HYPOTHESIS_PROFILE"])


@pytest.fixture(autouse=True)
def _sampled_logs_of_its_own(monkeypatch):
    """Each test's relays log as a relay process of their own would. The sampled logs (relay/logsample.py:
    the first line of a kind, then one a minute) are module state, and every relay a test worker starts
    shares them: one test's "error_limit" line silenced the next one's for 60 s in the same worker, and
    test_smtp's check that the error limit is logged once failed whenever another test had hit the limit
    in that worker within the minute (run alone it passed: a flake that depended on what ran before)."""
    from relay import smtp
    from relay.logsample import SampledLog
    from relay.milter import server as milter_server

    monkeypatch.setattr(smtp, "_refused_connections_log", SampledLog(smtp.log))
    monkeypatch.setattr(milter_server, "_refused_log", SampledLog(milter_server.log))


@pytest.fixture
def dns():
    """A loopback DNS server; add records with dns.zone.add(name, type, value)."""
    server = LoopbackDNS().start()
    yield server
    server.stop()


@pytest.fixture
def pg_url():
    """(URL, schema) of a PostgreSQL schema of this test's own (tests/support/pg.py), dropped after."""
    from tests.support import pg

    url, schema = pg.isolated_url()
    yield url, schema
    pg.drop(schema)


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    """A test certificate authority (tests/support/tls.py): ca.issue(name) gives a certificate it signs."""
    from tests.support.tls import CertAuthority

    return CertAuthority(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def https(ca):
    """A loopback HTTPS server for MTA-STS policies, with a certificate from `ca`."""
    from tests.support.https_server import PolicyServer

    server = PolicyServer(ca.issue("default.invalid").context()).start()
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
