"""`relay bounces recheck` and domain entries (`@domain`): the relay's own resolver (the config's
`resolver:`, here the loopback DNS server) is asked whether a listed domain still does not exist.

A domain is listed after two sightings of "no such domain" an hour apart; a registrar hold or a
botched zone (NXDOMAIN for a few hours at a real domain) lists it for 30 days (review-12's design
note). Before, recheck skipped domain entries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOMAINS = ["@back.test", "@broken.test", "@gone.test", "@nomail.test", "@nullmx.test"]


@pytest.fixture
def config(tmp_path, dns):
    z = dns.zone
    z.add("back.test", "MX", (10, "mx.back.test"))  # its zone is fixed: it resolves again
    z.add("mx.back.test", "A", "192.0.2.10")
    z.add("nullmx.test", "MX", (0, "."))  # RFC 7505: takes no mail
    z.add("nomail.test", "TXT", "v=spf1 -all")  # exists, no MX, no address
    z.servfail.add("broken.test")  # DNS trouble: says nothing either way
    # gone.test is in no zone: NXDOMAIN
    path = tmp_path / "relay.yaml"
    path.write_text(f"hostname: relay.test\nbounce_list: sqlite:///{tmp_path}/bounces.db\n"
                    f"events: [{{jsonl: {tmp_path}/events.jsonl}}]\n"
                    f"resolver: {{nameservers: ['{dns.nameserver}'], timeout: 2}}\n")
    for key in DOMAINS:
        assert bounces(path, "add", key, "--reason", "did not exist", "--category", "routing_dns").returncode == 0
    return path


def bounces(config, *argv):
    return subprocess.run([sys.executable, "-m", "relay", "bounces", *argv, "-c", str(config)],
                          capture_output=True, text=True, cwd=REPO, timeout=60)


def listed(config):
    return [e["address"] for e in json.loads(bounces(config, "list", "--json").stdout)]


def test_recheck_asks_dns_about_domain_entries_and_removes_only_a_domain_that_resolves(config, tmp_path):
    r = bounces(config, "recheck")  # no upstream in the config: domain entries need none
    assert r.returncode == 0, r.stderr
    lines = dict(line.split(": ", 1) for line in r.stdout.splitlines())
    assert lines["@back.test"].startswith("resolves now (mail goes to mx.back.test): remove with --remove")
    assert lines["@gone.test"].startswith("still does not exist")
    assert lines["@nullmx.test"].startswith("still takes no mail (null MX)")
    assert lines["@nomail.test"].startswith("still has no mail server")
    assert lines["@broken.test"].startswith("not judged") and "kept" in lines["@broken.test"]
    assert listed(config) == DOMAINS  # without --remove, nothing changes

    r = bounces(config, "recheck", "--remove")
    assert r.returncode == 0, r.stderr
    assert "@back.test: resolves now (mail goes to mx.back.test): removed" in r.stdout
    assert listed(config) == [d for d in DOMAINS if d != "@back.test"]
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    (unlisted,) = [e for e in events if e["kind"] == "bounce_unlisted"]
    assert unlisted["recipient"] == "@back.test" and unlisted["reason"] == "recheck: the domain resolves now"


def test_recheck_of_one_named_domain_entry(config):
    r = bounces(config, "recheck", "@gone.test", "--remove")
    assert r.returncode == 0 and r.stdout.startswith("@gone.test: still does not exist")
    assert "@gone.test" in listed(config)
