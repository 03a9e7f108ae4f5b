"""relay.delivery.routes and relay.delivery.routing: MX routes from the loopback DNS server,
and routes.yaml."""

from __future__ import annotations

import random

import pytest

from relay.config import Endpoint
from relay.delivery.routes import MxHost, RouteError, Routes, literal_address
from relay.delivery.routing import Routing
from relay.dns import Resolver
from relay.errors import ConfigError


def routes_for(dns, seed: int = 0) -> Routes:
    return Routes(Resolver((Endpoint("127.0.0.1", dns.port),), timeout=2.0), random.Random(seed))


async def test_mx_hosts_by_preference_in_random_order_within_one(dns):
    for name in ("a", "b", "c"):
        dns.zone.add("example.com", "MX", (10, f"{name}.mx.example.com"))
    dns.zone.add("example.com", "MX", (5, "first.mx.example.com"))
    dns.zone.add("example.com", "MX", (20, "last.mx.example.com"))
    orders = set()
    for seed in range(20):
        route = await routes_for(dns, seed).route("Example.COM.")
        names = [h.name for h in route.hosts]
        assert names[0] == "first.mx.example.com" and names[-1] == "last.mx.example.com"
        assert sorted(names[1:4]) == ["a.mx.example.com", "b.mx.example.com", "c.mx.example.com"]
        assert [h.preference for h in route.hosts] == [5, 10, 10, 10, 20]
        orders.add(tuple(names))
        # The destination is the MX set, whatever order this lookup chose.
        assert route.destination == ((5, "first.mx.example.com"), (10, "a.mx.example.com"),
                                     (10, "b.mx.example.com"), (10, "c.mx.example.com"), (20, "last.mx.example.com"))
    assert len(orders) > 1  # RFC 5321 5.1: equal preferences are tried in random order


async def test_a_null_mx_beside_real_ones_is_skipped_and_a_numeric_exchange_too(dns):
    dns.zone.add("mixed.test", "MX", (0, "."))
    dns.zone.add("mixed.test", "MX", (10, "192.0.2.1"))
    dns.zone.add("mixed.test", "MX", (20, "mx.mixed.test"))
    route = await routes_for(dns).route("mixed.test")
    assert [h.name for h in route.hosts] == ["mx.mixed.test"]


async def test_ipv4_and_ipv6_addresses_of_a_host(dns):
    dns.zone.add("mx.example.com", "A", "192.0.2.1")
    dns.zone.add("mx.example.com", "AAAA", "2001:db8::1")
    dns.zone.add("v6.example.com", "AAAA", "2001:db8::2")
    routes = routes_for(dns)
    assert await routes.addresses(MxHost("mx.example.com", 10)) == ["192.0.2.1", "2001:db8::1"]  # IPv4 first
    assert await routes.addresses(MxHost("v6.example.com", 10)) == ["2001:db8::2"]


@pytest.mark.parametrize("domain,code", [("nowhere.test", 550), ("broken.test", 451)])
async def test_route_errors_carry_the_reply(dns, domain, code):
    dns.zone.servfail.add("broken.test")
    with pytest.raises(RouteError) as err:
        await routes_for(dns).route(domain)
    assert err.value.reply.code == code and err.value.reply.source == "relay"


def test_address_literals():
    assert literal_address("[192.0.2.1]") == "192.0.2.1"
    assert literal_address("[IPv6:2001:db8::1]") == "2001:db8::1"
    assert literal_address("[2001:db8::1]") is None  # RFC 5321 4.1.3: IPv6 needs its tag
    assert literal_address("[IPv6:192.0.2.1]") is None
    assert literal_address("example.com") is None


def test_routes_yaml_most_specific_entry_wins(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text("default: mx\ndomains:\n  corp.example: smarthost\n  .corp.example: smarthost\n"
                    "  mx.corp.example: mx\n")
    routing = Routing.from_file(path, "smarthost")
    assert routing.route_for("gmail.com") == "mx"
    assert routing.route_for("CORP.example.") == "smarthost"
    assert routing.route_for("a.b.corp.example") == "smarthost"
    assert routing.route_for("mx.corp.example") == "mx"
    assert routing.uses_mx
    empty = tmp_path / "empty.yaml"
    empty.write_text("version: 1\ndomains: {}\n")
    assert not Routing.from_file(empty, "smarthost").uses_mx  # smarthost mode as it always was


def test_routes_yaml_errors_name_file_and_key(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text("default: sideways\nextra: 1\ndomains:\n  'bad domain': mx\n  ok.example: carrier-pigeon\n"
                    "  other.example: smarthost\n")
    with pytest.raises(ConfigError) as err:
        Routing.from_file(path, "mx")
    found = {p.key: p.why for p in err.value.problems}
    assert all(p.file == str(path) for p in err.value.problems)
    assert set(found) == {"default", "extra", "domains.bad domain", "domains.ok.example", "domains.other.example"}
    assert "smarthost needs a smarthost" in found["domains.other.example"]


def test_check_config_names_a_broken_routes_file(tmp_path):
    import subprocess
    import sys

    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "routes.yaml").write_text("domains:\n  example.org: smarthost\n")
    config = tmp_path / "relay.yaml"
    config.write_text(f"hostname: relay.example.com\nlisten: [{{address: '127.0.0.1:2525'}}]\n"
                      f"upstream: {{mode: mx}}\npolicies: {policies}\n")
    out = subprocess.run([sys.executable, "-m", "relay", "check-config", "-c", str(config)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert f"error: {policies / 'routes.yaml'}: domains.example.org: smarthost needs a smarthost" in out.stdout
