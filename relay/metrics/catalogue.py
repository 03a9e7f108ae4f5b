"""Every metric the relay exports: name, type, help and labels (docs/metrics.md lists them).

One table, so that the exposition, the docs and the Grafana dashboard (docs/grafana-dashboard.json)
agree, and so that a label set is fixed once: Prometheus treats a family whose label names change
between samples as broken. Labels are low-cardinality by construction (kinds, categories, scopes,
SMTP commands, the configured upstream); `destination` (a recipient domain) is bounded
(`MAX_DESTINATIONS`), and no label ever carries an address.
"""

from __future__ import annotations

from dataclasses import dataclass

# Distinct values a `destination` label takes (a recipient domain, or a shaping destination, which
# is the recipient domain itself when shaping.yaml names none) before the rest count as "other":
# a relay's traffic is dominated by a few large providers, and each value is a time series.
MAX_DESTINATIONS = 100

# SMTP round trips: a local smarthost answers in a millisecond, a busy provider's final dot in
# tens of seconds (RFC 5321 4.5.3.2 allows minutes).
SMTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# CPU work on the loop or in a thread: an Ed25519 signature takes ~0.2 ms, RSA-2048 through
# OpenSSL ~0.3 ms, the body hash of a 10 MiB message tens of ms (FIELD-NOTES.md).
CPU_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
# Classifying one reply: a few regex searches, normally tens of microseconds.
FAST_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05)


@dataclass(frozen=True)
class Spec:
    kind: str  # "counter" | "gauge" | "histogram"
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    # How the workers' values of a gauge combine under prometheus-client's multiprocess mode
    # (docs/internals.md, "Metrics"): sessions and pool sizes add up, a shared list's size does not.
    # Only the live* modes: prometheus-client's mark_process_dead (called when a worker exits) removes
    # their files alone, and a dead worker's "max" or "min" value counted until the next restart.
    multiprocess_mode: str = "livesum"
    bounded: tuple[str, ...] = ()  # labels whose values are capped at MAX_DESTINATIONS (then "other")


CATALOGUE: dict[str, Spec] = {
    # -- sessions and messages (relay mode) --
    "relay_connections_total": Spec("counter", "Client connections accepted."),
    "relay_connections_refused_total": Spec("counter", "Client connections refused with 421 at connect, by the limit "
                                                       "they were over (max_connections, max_connections_per_client; "
                                                       "milter_max_connections: dropped at once).",
                                            ("limit",)),
    "relay_connections_closed_total": Spec("counter", "Client connections closed with 421 by a limit on what the "
                                                      "client may do in one connection (error_limit, "
                                                      "junk_command_limit, auth_failure_limit; stress_timeout: idle while "
                                                      "the listener was at 80% of its slots).", ("limit",)),
    "relay_active_sessions": Spec("gauge", "Client SMTP sessions open now that hold a limits.max_connections "
                                           "slot (not outsiders yet to log in, nor sessions refused in their "
                                           "greeting)."),
    "relay_messages_total": Spec("counter", "Messages at the end of DATA, by result (accepted, reject, defer).",
                                 ("result",)),
    # -- the funnel (relay/outcomes.py) --
    "relay_events_total": Spec("counter", "Events emitted, by kind.", ("kind",)),
    "relay_refusals_total": Spec(
        "counter", "Refusals through the funnel (live, Postfix log, DSN, ARF), by event kind, classification "
                   "category, scope and where the reply came from (upstream, relay, mta-log, dsn).",
        ("kind", "category", "scope", "source")),
    "relay_destination_refusals_total": Spec(
        "counter", "Refusals by recipient domain (the first MAX_DESTINATIONS domains seen, then \"other\") "
                   "and event kind.", ("destination", "kind"), bounded=("destination",)),
    "relay_classification_seconds": Spec("histogram", "Time to classify and attribute one reply (Policies.judge).",
                                         buckets=FAST_BUCKETS),
    "relay_operator_warnings_total": Spec(
        "counter", "Refusals about the sender or the relay's session (never listed), by scope.", ("scope",)),
    "relay_bounces_in_refusals_total": Spec(
        "counter", "The bounces_in listener's own refusals (not delivery events), by stage and reply class.",
        ("stage", "code")),
    "relay_bounce_list_unrecorded_total": Spec(
        "counter", "Failures that never reached the bounce list (a missed listing, the second-worst error): the "
                   "store failed (error), stayed locked past every retry (gave_up), or the relay stopped while "
                   "retrying (stopped). A failure retried later is counted only if that retry fails.", ("why",)),
    "relay_breaker_trips_total": Spec("counter", "Times a bounce-list circuit breaker tripped (a recipient domain's or a refusing provider's)."),
    "relay_bounce_list_entries": Spec(
        "gauge", "Active bounce-list entries, counted every metrics.bounce_list_interval (not at each scrape).",
        multiprocess_mode="livemax"),
    "relay_bounce_list_counted_timestamp_seconds": Spec(
        "gauge", "When relay_bounce_list_entries was last counted successfully (Unix time).",
        multiprocess_mode="livemax"),
    # -- the upstream (relay/upstream.py) --
    "relay_upstream_command_seconds": Spec(
        "histogram", "Time from sending a command to the upstream's reply, by command (CONNECT: connection, "
                     "TLS, EHLO and AUTH; EOM: the final dot) and upstream (host:port: the smarthost, or an MX "
                     "host in mode mx, the first MAX_DESTINATIONS of them, then \"other\").",
        ("command", "upstream"), buckets=SMTP_BUCKETS, bounded=("upstream",)),
    "relay_upstream_replies_total": Spec(
        "counter", "Upstream replies by command, reply class (2xx, 3xx, 4xx, 5xx, or error: timeout, "
                   "closed, malformed) and upstream.", ("command", "class", "upstream"), bounded=("upstream",)),
    "relay_upstream_connections": Spec("gauge", "Upstream connections open now, by state (idle, in_use).",
                                       ("state", "upstream")),
    "relay_upstream_pool_size": Spec("gauge", "upstream.pool_size: the most connections open at once.",
                                     ("upstream",)),
    # -- DKIM (relay/steps/dkim_sign.py) --
    "relay_dkim_sign_seconds": Spec("histogram", "Time to sign one message with all of its domain's keys "
                                                 "(body hash included).", buckets=CPU_BUCKETS),
    "relay_dkim_signatures_total": Spec("counter", "DKIM signatures made or failed, by algorithm and result.",
                                        ("algorithm", "result")),
    "relay_dkim_unsigned_total": Spec("counter", "Messages from a domain with DKIM keys left unsigned, by reason "
                                                 "(untrusted_client: outside clients.networks and not logged in).",
                                      ("reason",)),
    # -- events out --
    "relay_event_sink_failures_total": Spec("counter", "Events a sink failed to write or dropped (disk full, endpoint down, a stdout nobody reads)."),
    "relay_event_sink_restarts_total": Spec(
        "counter", "Event sink threads (a webhook's sender, a PostgreSQL sink's writer) that failed unexpectedly "
                   "and were started again (the log says why)."),
    "relay_event_spool_cursor_resets_total": Spec(
        "counter", "Spool cursors (cursor.json of a webhook or PostgreSQL spool) that could not be read: set "
                   "aside as cursor.json.bad, delivery started again at the oldest spooled event (some may be "
                   "delivered twice)."),
    "relay_log_lines_dropped_total": Spec(
        "counter", "Log lines dropped rather than make the relay wait: stderr (the journal) not taking them "
                   "(a reader stalled), a failed write, or still queued when the process ended."),
    "relay_webhook_events_delivered_total": Spec(
        "counter", "Events a webhook endpoint took (2xx), by webhook (its URL without the query string).",
        ("webhook",)),
    "relay_webhook_dead_letters_total": Spec(
        "counter", "Webhook batches given up after retry.give_up_after and moved to the spool's "
                   "dead-letter.jsonl, by webhook.", ("webhook",)),
    "relay_webhook_spool_bytes": Spec(
        "gauge", "Bytes in the webhook spools (events not yet delivered, and delivered ones of the current "
                 "segment).", multiprocess_mode="livemax"),
    # -- config reloads (SIGHUP) --
    "relay_config_reloads_total": Spec("counter", "Config and policy reloads (one per SIGHUP, however many workers), "
                                                  "by result (ok, failed: refused by the relay or by any of its "
                                                  "workers).", ("result",)),
    "relay_config_last_reload_successful": Spec(
        "gauge", "1 if the last reload succeeded (or none was asked), 0 if it failed and the old config runs.",
        multiprocess_mode="livemin"),
    "relay_config_last_reload_timestamp_seconds": Spec(
        "gauge", "When the config was last loaded, at start or by a reload, successfully or not (Unix time).",
        multiprocess_mode="livemax"),
    # -- the process --
    "relay_event_loop_lag_seconds": Spec(
        "gauge", "How late the event loop ran a timer at its last one-second tick: work that blocks the loop "
                 "shows here.", multiprocess_mode="livemax"),
    "relay_draining": Spec("gauge", "1 while the relay stops (SIGTERM): no new sessions, transactions finish.",
                           multiprocess_mode="livemax"),
    "relay_build_info": Spec("gauge", "The relay's version (always 1).", ("version",), multiprocess_mode="livemax"),
    # -- traffic shaping (relay/shaping/, policies/shaping.yaml) --
    "relay_shaping_deferrals_total": Spec(
        "counter", "Recipients the relay deferred itself by traffic shaping, by destination and why (held, slowed, "
                   "warmup).", ("destination", "why"), bounded=("destination",)),
    "relay_shaping_strikes_total": Spec(
        "counter", "Throttling replies that held or slowed a destination, by destination and rule.",
        ("destination", "rule"), bounded=("destination",)),
    "relay_shaping_messages_total": Spec(
        "counter", "Recipients the next hop accepted the message for (250 to the final dot), by shaping "
                   "destination.", ("destination",),
        bounded=("destination",)),
    "relay_shaping_holds": Spec(
        "gauge", "Shaping records in force (shared by every relay on the store), by state: held (refused "
                 "locally until a time) or slowed (a lower rate); read every metrics.bounce_list_interval.",
        ("state",), multiprocess_mode="livemax"),
    # -- the Postfix log follower (relay/intake/follower.py) --
    "relay_postfix_log_lines_total": Spec("counter", "Postfix log lines read."),
    "relay_postfix_log_results_total": Spec("counter", "Delivery results found in Postfix's log."),
    "relay_postfix_log_failures_total": Spec("counter", "Delivery failures from Postfix's log handed to the funnel."),
    "relay_postfix_log_lines_cut_total": Spec("counter", "Lines of the followed Postfix log longer than 64 KiB, "
                                                         "skipped up to their newline (garbage, not log lines)."),
    "relay_postfix_log_queue_ids": Spec("gauge", "Queue ids remembered for correlation."),
}
