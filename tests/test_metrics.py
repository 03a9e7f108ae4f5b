"""relay/metrics: the registry (unit) and a running relay scraped over a real socket after real
traffic through a scripted upstream."""

from __future__ import annotations

import logging
import time

import pytest

from relay import dkim as dkimlib
from relay.metrics import Metrics
from relay.metrics.catalogue import CATALOGUE, MAX_DESTINATIONS
from tests.support.metrics import SHAPING, families, samples
from tests.support.smtp_client import RawSMTP, send_message

MESSAGE = (b"From: Ann <a@sender.test>\r\nTo: b@example.com\r\nSubject: hi\r\nMessage-ID: <m1@sender.test>\r\n"
           b"\r\nHello\r\n")


# -- the registry -----------------------------------------------------------------------------

def test_each_metrics_object_counts_only_its_own():
    one, two = Metrics(), Metrics()
    one.inc("relay_events_total", kind="rejected")
    assert one.value("relay_events_total", kind="rejected") == 1
    assert two.value("relay_events_total", kind="rejected") == 0


def test_every_catalogued_family_is_exported_from_the_start():
    exported = families(Metrics().render())
    for name, spec in CATALOGUE.items():
        family = name[:-len("_total")] if spec.kind == "counter" else name
        assert exported.get(family) == spec.kind, name


def test_destinations_are_bounded_and_the_rest_is_other():
    m = Metrics()
    for n in range(MAX_DESTINATIONS + 5):
        m.inc("relay_destination_refusals_total", kind="rejected", destination=f"d{n}.example")
    m.inc("relay_destination_refusals_total", kind="rejected", destination="d0.example")
    got = samples(m.render())
    destinations = {dict(labels)["destination"] for (name, labels) in got if name == "relay_destination_refusals_total"}
    assert len(destinations) == MAX_DESTINATIONS + 1 and "other" in destinations
    assert m.value("relay_destination_refusals_total", kind="rejected", destination="other") == 5
    assert m.value("relay_destination_refusals_total", kind="rejected", destination="d0.example") == 2


def test_a_wrong_label_set_is_logged_once_and_never_raises(caplog):
    m = Metrics()
    with caplog.at_level(logging.ERROR, logger="relay.metrics"):
        m.inc("relay_events_total", colour="red")
        m.inc("relay_events_total", colour="red")
    assert len([r for r in caplog.records if "relay_events_total" in r.getMessage()]) == 1


def test_an_uncatalogued_name_still_counts_and_is_reported(caplog):
    m = Metrics()
    with caplog.at_level(logging.ERROR, logger="relay.metrics"):
        m.inc("relay_new_thing_total", reason="x")
    assert m.value("relay_new_thing_total", reason="x") == 1
    assert "not in relay/metrics/catalogue.py" in caplog.text


def test_a_counter_kept_elsewhere_is_counted_by_its_increments():
    m = Metrics()
    total = {"n": 3}
    m.counted("relay_event_sink_failures_total", lambda: total["n"])
    assert m.value("relay_event_sink_failures_total") == 3
    total["n"] = 5
    assert m.value("relay_event_sink_failures_total") == 5
    total["n"] = 1  # its owner was replaced (a reload made new sinks): counting goes on from there
    assert m.value("relay_event_sink_failures_total") == 6


def test_openmetrics_when_the_scraper_asks():
    body, content_type = Metrics().exposition("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text") and body.endswith(b"# EOF\n")
    body, content_type = Metrics().exposition(None)
    assert content_type.startswith("text/plain") and b"# EOF" not in body


# -- a running relay ---------------------------------------------------------------------------

@pytest.fixture
def signing_policies(tmp_path):
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "ed.key").write_bytes(dkimlib.private_key_pem(dkimlib.generate_key("ed25519")))
    (directory / "ed.key").chmod(0o600)  # the relay refuses a key other users can read (review27 F3)
    (directory / "domains.yaml").write_text("sender.test:\n  dkim:\n    - {selector: e1, key: ed.key}\n")
    return directory


def wait_for_sample(relay, name, labels, value, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        got = samples(relay.http("/metrics")[2]).get((name, tuple(sorted(labels.items()))))
        if got == value or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def test_a_scrape_after_real_traffic(upstream, relay_factory, signing_policies):
    relay = relay_factory(upstream.port, policies=str(signing_policies),
                          metrics={"listen": "127.0.0.1:0", "bounce_list_interval": 1})
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        replies = send_message(c, "a@sender.test", ["nosuchuser@gmail.test", "b@example.com"], MESSAGE)
        assert [r[0] for r in replies] == [250, 550, 250, 354, 250], replies
        c.cmd("QUIT")
    relay.events(wait_for=2)
    up = f"127.0.0.1:{upstream.port}"
    # The listing is counted by the periodic count, not at the scrape.
    assert wait_for_sample(relay, "relay_bounce_list_entries", {}, 1.0) == 1.0
    status, content_type, text = relay.http("/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    got = samples(text)

    def value(name, **labels):
        return got.get((name, tuple(sorted(labels.items()))))

    assert value("relay_connections_total") == 1
    assert value("relay_messages_total", result="accepted") == 1
    assert value("relay_events_total", kind="rejected") == 1
    assert value("relay_events_total", kind="bounce_listed") == 1
    assert value("relay_refusals_total", kind="rejected", category="unknown_recipient", scope="recipient",
                 source="upstream") == 1
    assert value("relay_destination_refusals_total", kind="rejected", destination="gmail.test") == 1
    assert value("relay_classification_seconds_count") == 1
    # Lockstep: one connection, each command's round trip, the final dot's too.
    assert value("relay_upstream_command_seconds_count", command="CONNECT", upstream=up) == 1
    assert value("relay_upstream_command_seconds_count", command="RCPT", upstream=up) == 2
    assert value("relay_upstream_command_seconds_count", command="EOM", upstream=up) == 1
    assert value("relay_upstream_replies_total", command="RCPT", upstream=up, **{"class": "5xx"}) == 1
    assert value("relay_upstream_replies_total", command="RCPT", upstream=up, **{"class": "2xx"}) == 1
    assert value("relay_upstream_replies_total", command="DATA", upstream=up, **{"class": "3xx"}) == 1
    assert value("relay_upstream_pool_size", upstream=up) == relay.settings.upstream.pool_size
    assert value("relay_dkim_sign_seconds_count") == 1
    assert value("relay_dkim_signatures_total", algorithm="ed25519-sha256", result="ok") == 1
    assert value("relay_config_last_reload_successful") == 1
    assert value("relay_build_info", version=__import__("relay").__version__) == 1
    # The session is over and the connection went back to the pool.
    assert wait_for_sample(relay, "relay_active_sessions", {}, 0.0) == 0.0
    assert wait_for_sample(relay, "relay_upstream_connections", {"state": "idle", "upstream": up}, 1.0) == 1.0
    # No label ever carries an address; every family is one the catalogue documents.
    assert not [labels for (_, labels) in got if any("@" in v for _, v in labels)]
    documented = {n[:-len("_total")] if s.kind == "counter" else n for n, s in CATALOGUE.items()}
    assert {f for f in families(text) if not f.startswith("process_")} <= documented


def test_reloads_are_counted_and_a_failed_one_shows(upstream, relay_factory):
    relay = relay_factory(upstream.port, metrics={"listen": "127.0.0.1:0"})
    assert relay.reload()
    good = relay.config_path.read_text()
    relay.config_path.write_text(good + "\nno_such_key: 1\n")
    assert not relay.reload()
    got = samples(relay.http("/metrics")[2])
    assert got[("relay_config_reloads_total", (("result", "ok"),))] == 1
    assert got[("relay_config_reloads_total", (("result", "failed"),))] == 1
    assert got[("relay_config_last_reload_successful", ())] == 0
    relay.config_path.write_text(good)
    assert relay.reload()
    assert samples(relay.http("/metrics")[2])[("relay_config_last_reload_successful", ())] == 1


def test_a_malformed_upstream_reply_is_an_error_and_our_own_refusal(upstream, relay_factory):
    relay = relay_factory(upstream.port, metrics={"listen": "127.0.0.1:0"})
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        c.cmd("MAIL FROM:<a@sender.test>")
        assert c.cmd("RCPT TO:<garbage@example.com>")[0] == 451
        c.cmd("QUIT")
    relay.events(wait_for=1)
    got = samples(relay.http("/metrics")[2])
    up = f"127.0.0.1:{upstream.port}"
    assert got[("relay_upstream_replies_total", (("class", "error"), ("command", "RCPT"), ("upstream", up)))] == 1
    ours = {dict(labels)["scope"]: v for (name, labels), v in got.items()
            if name == "relay_refusals_total" and dict(labels)["source"] == "relay"}
    assert ours == {"relay": 1}


def test_docs_list_every_metric():
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "metrics.md").read_text(encoding="utf-8")
    assert [name for name in CATALOGUE if f"`{name}`" not in text] == []


WORKER = """
import sys
sys.path.insert(0, {root!r})
from relay.metrics import Metrics
m = Metrics()
m.inc("relay_connections_total", 3)
m.set("relay_active_sessions", 2)
m.set("relay_bounce_list_entries", 7)
m.observe("relay_dkim_sign_seconds", 0.001)
"""


def test_multiprocess_mode_adds_up_the_workers(tmp_path):
    """PROMETHEUS_MULTIPROC_DIR (docs/internals.md, "Metrics under workers"): each process's values
    go to the shared directory, and a scrape in any of them combines them per metric."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", WORKER.format(root=root)], env=env, check=True, timeout=60)
    scrape = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {root!r})\n"
                             "from relay.metrics import Metrics\nprint(Metrics().render())"],
                            env=env, check=True, timeout=60, capture_output=True, text=True).stdout
    got = samples(scrape)
    assert got[("relay_connections_total", ())] == 6
    assert got[("relay_active_sessions", ())] == 4  # livesum: sessions add up
    assert got[("relay_bounce_list_entries", ())] == 7  # livemax: one shared list, counted by each
    assert got[("relay_dkim_sign_seconds_count", ())] == 2


def test_the_relays_recording_gives_prometheus_clients_own_figures():
    """Metrics.inc/observe and the series of Metrics.child record what prometheus-client's own
    inc() and observe() record (relay/metrics Series: the same values by a shorter way), bucket
    bounds, NaN, infinity and negative amounts included."""
    amounts = [0.0, 0.001, 0.0010000001, 0.0004, 1e-9, 0.0025, 5.0, 120.0, 121.0, float("inf"),
               float("nan"), -1.0, 0.3]
    ours, theirs = Metrics(), Metrics()
    labels = {"command": "RCPT", "upstream": "up.test"}
    kept = ours.child("relay_upstream_command_seconds", "histogram", **labels)
    for amount in amounts:
        ours.observe("relay_dkim_sign_seconds", amount)
        kept.observe(amount)
        theirs._child("relay_dkim_sign_seconds", "histogram", {}).observe(amount)
        theirs._child("relay_upstream_command_seconds", "histogram", labels).observe(amount)
    for n in (1, 1, 2.5, 0):
        ours.inc("relay_messages_total", n, result="accepted")
        theirs._child("relay_messages_total", "counter", {"result": "accepted"}).inc(n)
    with pytest.raises(ValueError):
        ours.inc("relay_messages_total", -1, result="accepted")
    def recorded(metrics):  # process_* (CPU, memory) move between two scrapes
        return [line for line in metrics.render().splitlines()
                if line.startswith(("relay_dkim_sign_seconds", "relay_upstream_command_seconds", "relay_messages_total"))]

    assert recorded(ours) == recorded(theirs)
    assert len(recorded(ours)) > 30  # both histograms' buckets, sums and counts, and the counter


FORKED = """
import os, sys
sys.path.insert(0, {root!r})
if {after_import!r}:
    import relay.metrics  # before the directory is named: the workers' parent (relay/workers.py)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = {directory!r}
from relay.metrics import Metrics
m = Metrics()
m.inc("relay_connections_total", 3)
child = os.fork()
if child == 0:
    m.inc("relay_connections_total", 2)  # the child's own file, not its parent's
    os._exit(0)
os.waitpid(child, 0)
m.inc("relay_connections_total", 1)
print(os.getpid(), child)
"""


@pytest.mark.parametrize("after_import", [False, True])
def test_multiprocess_values_follow_a_fork(tmp_path, after_import):
    """Each process writes its own values file (named by its pid) also when it forked after its
    metrics were made: prometheus-client notices the fork at the next inc() and starts files of the
    child's own, which the relay tells it from the pid noted at the fork (relay/metrics), not by
    asking the kernel at every inc()."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if not after_import:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-c", FORKED.format(root=root, after_import=after_import,
                                                              directory=str(tmp_path))],
                         env=env, check=True, timeout=60, capture_output=True, text=True).stdout
    parent, child = out.split()
    assert {p.name for p in tmp_path.glob("counter_*.db")} == {f"counter_{parent}.db", f"counter_{child}.db"}
    scrape = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {root!r})\n"
                             "from relay.metrics import Metrics\nprint(Metrics().render())"],
                            env={**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}, check=True, timeout=60,
                            capture_output=True, text=True).stdout
    assert samples(scrape)[("relay_connections_total", ())] == 6


def test_a_shaping_hold_shows_in_the_gauges_and_counters(tmp_path, upstream, relay_factory):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "shaping.yaml").write_text(SHAPING)
    relay = relay_factory(upstream.port, policies=str(policies),
                          metrics={"listen": "127.0.0.1:0", "bounce_list_interval": 1})
    upstream.throttle_after["sender.test"] = 0
    for _ in range(2):  # throttled by the provider, then held by the relay itself
        with RawSMTP(relay.host, relay.port) as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<a@sender.test>")
            assert c.cmd("RCPT TO:<u@gmail.com>")[0] in (421, 451)
    assert wait_for_sample(relay, "relay_shaping_holds", {"state": "held"}, 1.0) == 1.0
    got = samples(relay.http("/metrics")[2])
    assert got[("relay_shaping_strikes_total", (("destination", "google"), ("rule", "gmail-unusual-rate")))] == 1
    assert got[("relay_shaping_deferrals_total", (("destination", "google"), ("why", "held")))] == 1
    assert got[("relay_shaping_holds", (("state", "slowed"),))] == 0


def test_a_failure_the_bounce_list_could_not_record_is_counted(upstream, relay_factory, tmp_path):
    """review24 F10: a failure the store could not record was logged and nothing else: no metric said
    that a listing was missed, so nobody could alert on it. The list's file loses a table the
    recording needs (the breaker's hits) while lookups still work."""
    import sqlite3

    from tests.support.smtp_client import RawSMTP

    relay = relay_factory(upstream.port, metrics={"listen": "127.0.0.1:0"})
    db = sqlite3.connect(str(tmp_path / "bounces.db"))
    db.execute("DROP TABLE relay_breaker_hits")
    db.commit()
    db.close()
    upstream.rcpt_replies["gone"] = "550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown"
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 250
        assert c.cmd("RCPT TO:<gone@example.com>")[0] == 550
    assert wait_for_sample(relay, "relay_bounce_list_unrecorded_total", {"why": "error"}, 1.0) == 1.0
