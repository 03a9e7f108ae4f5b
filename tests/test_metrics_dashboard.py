"""docs/grafana-dashboard.json, loaded and checked against a running relay: every query names
metrics (and labels) the relay exports, as read from a real scrape, and a real Prometheus that
scraped that relay evaluates every query without error."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from relay import dkim as dkimlib
from tests.support import webhook_receiver
from tests.support.prometheus import PrometheusServer
from tests.support.metrics import SHAPING
from tests.support.smtp_client import RawSMTP, send_message

DASHBOARD = Path(__file__).resolve().parent.parent / "docs" / "grafana-dashboard.json"
# What Grafana puts in a query before it sends it (https://grafana.com/docs/grafana/latest/
# dashboards/variables/add-template-variables/#global-variables), for a test run.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m", "$instance": ".*"}
# Labels Prometheus adds to every series it scrapes, and the histogram bucket bound.
ADDED_LABELS = {"instance", "job", "le"}
PROMQL_WORDS = {"sum", "by", "rate", "increase", "topk", "max", "min", "histogram_quantile", "and", "or",
                "without", "count_over_time", "avg", "count", "irate", "on", "ignoring", "group_left", "bool"}
# Panels of labelled series that busy_relay's traffic does not create (no operator warning).
NOTHING_HAPPENED = {"Operator warnings", "Webhook dead letters"}
MESSAGE = b"From: a@sender.test\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nHello\r\n"


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def queries(dash: dict) -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"]) for panel in dash["panels"] for target in panel.get("targets", [])]


def as_sent(expr: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


def test_the_dashboard_loads_and_its_panels_do_not_overlap():
    dash = dashboard()
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 30
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "instance"} <= variables
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    cells = set()
    for panel in dash["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        mine = {(g["x"] + dx, g["y"] + dy) for dx in range(g["w"]) for dy in range(g["h"])}
        assert not mine & cells, f"panel {panel['title']!r} overlaps another"
        cells |= mine
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
    assert len(queries(dash)) >= 20


@pytest.fixture
def receiver():
    r = webhook_receiver.WebhookReceiver().start()
    yield r
    r.stop()


@pytest.fixture
def busy_relay(tmp_path, upstream, relay_factory, receiver):
    """A relay that has seen a refusal, an accepted and signed message, a provider's throttling
    that holds a destination, a webhook that took its events, and a reload."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "ed.key").write_bytes(dkimlib.private_key_pem(dkimlib.generate_key("ed25519")))
    (policies / "ed.key").chmod(0o600)  # the relay refuses a key other users can read (review27 F3)
    (policies / "domains.yaml").write_text("sender.test:\n  dkim:\n    - {selector: e1, key: ed.key}\n")
    (policies / "shaping.yaml").write_text(SHAPING)
    (tmp_path / "webhook.secret").write_text(webhook_receiver.SECRET)
    relay = relay_factory(upstream.port, policies=str(policies),
                          metrics={"listen": "127.0.0.1:0", "bounce_list_interval": 1},
                          events=[{"jsonl": str(tmp_path / "events.jsonl")},
                                  {"webhook": receiver.url, "secret_file": str(tmp_path / "webhook.secret"),
                                   "spool_dir": str(tmp_path / "spool"), "batch": {"max_wait": 0.1}}])
    with RawSMTP(relay.host, relay.port) as c:
        c.cmd("EHLO client.test")
        replies = send_message(c, "a@sender.test", ["nosuchuser@gmail.test", "b@example.com"], MESSAGE)
        assert [r[0] for r in replies] == [250, 550, 250, 354, 250], replies
    relay.events(wait_for=2)
    upstream.throttle_after["throttled.test"] = 0
    for _ in range(2):  # throttled by the provider, then held by the relay itself
        with RawSMTP(relay.host, relay.port) as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<a@throttled.test>")
            assert c.cmd("RCPT TO:<u@gmail.com>")[0] in (421, 451)
    assert relay.reload()
    deadline = time.monotonic() + 30
    while not receiver.batches and time.monotonic() < deadline:
        time.sleep(0.05)
    assert receiver.batches
    return relay


def test_every_query_names_metrics_and_labels_the_relay_exports(busy_relay):
    exported: dict[str, set[str]] = {}  # sample name -> label names seen or declared
    for family in text_string_to_metric_families(busy_relay.http("/metrics")[2]):
        names = {"counter": [family.name + "_total"],
                 "histogram": [family.name + s for s in ("_bucket", "_sum", "_count")]}.get(family.type, [family.name])
        labels = {k for s in family.samples for k in s.labels}
        for name in names:
            exported.setdefault(name, set()).update(labels)
    from relay.metrics.catalogue import CATALOGUE
    for name, spec in CATALOGUE.items():  # declared label names, for families with no sample yet
        for sample in exported:
            if sample == name or sample.startswith(name + "_"):
                exported[sample].update(spec.labels)
    for title, expr in queries(dashboard()):
        sent = as_sent(expr)
        metrics = set(re.findall(r"\b((?:relay|process)_[a-z0-9_]+)", sent))
        assert metrics, f"{title}: {expr} names no relay metric"
        for metric in metrics:
            assert metric in exported, f"{title}: {metric} is not exported by the relay"
        for metric, matchers in re.findall(r"\b((?:relay|process)_[a-z0-9_]+)\{([^}]*)\}", sent):
            for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers):
                assert label in exported[metric] | ADDED_LABELS, f"{title}: {metric} has no label {label}"
        grouped = {w for clause in re.findall(r"\bby\s*\(([^)]*)\)", sent) for w in re.split(r"[\s,]+", clause) if w}
        known = set().union(*(exported[m] for m in metrics)) | ADDED_LABELS
        assert grouped <= known, f"{title}: grouping by {grouped - known}, which {metrics} do not carry"


def test_prometheus_scraping_the_relay_evaluates_every_query(busy_relay, tmp_path):
    host, port = busy_relay.server.metrics_address
    prometheus = PrometheusServer(tmp_path, [f"{host}:{port}"])
    try:
        prometheus.wait_for_scrapes(3)
        empty = []
        for title, expr in queries(dashboard()):
            result = prometheus.query(as_sent(expr))
            assert result["status"] == "success", f"{title}: {expr}: {result.get('error')}"
            if not result["data"]["result"]:
                empty.append(title)
        instances = prometheus.api("label/instance/values", **{"match[]": "relay_build_info"})
        assert instances["data"] == [f"{host}:{port}"]
        # After this traffic every panel shows data, but those about what did not happen.
        assert set(empty) <= NOTHING_HAPPENED, empty
    finally:
        prometheus.stop()
