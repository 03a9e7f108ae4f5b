"""Reading a relay's /metrics in tests, and a shaping policy that holds a throttled sender domain."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of an exposition, parsed by prometheus-client's own parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def families(text: str) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text)}


# Gmail's 421-4.7.28 (the scripted upstream's `throttle_after`) holds the sender domain for 10 minutes.
SHAPING = """
version: 1
destinations:
  google:
    name: gmail
    domains: [gmail.com]
    reactions: [gmail-unusual-rate]
default:
  reactions: []
reactions:
  - id: gmail-unusual-rate
    enhanced: "4.7.28"
    reason: unusual rate
    per_sender_domain: true
    hold: {for: 10m, max: 1h, growth: 2}
    decay_after: 1h
"""
