"""SampledLog: the first line of a kind at once, then one a window saying how many were left out."""

from __future__ import annotations

import logging

from relay.logsample import SampledLog


def test_the_first_of_a_kind_is_written_the_rest_of_its_window_counted_and_told_after(caplog):
    now = [100.0]
    sampled = SampledLog(logging.getLogger("relay.test.sampled"), every=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="relay.test.sampled"):
        sampled.warning("a", "flood %d", 1)
        for i in range(5):
            now[0] += 10
            sampled.warning("a", "flood %d", i + 2)
        sampled.warning("b", "other kind")  # a kind of its own: not held back by "a"
        now[0] = 161.0
        sampled.warning("a", "flood %d", 7)
        now[0] = 300.0
        sampled.warning("a", "flood %d", 8)
    assert [r.getMessage() for r in caplog.records] == [
        "flood 1", "other kind", "flood 7 (5 more like it in the 60 s before were not logged)", "flood 8"]
