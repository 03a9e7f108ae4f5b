"""`relay serve`: builds the pipeline, runs the listeners, and handles signals.

SIGHUP re-reads the config and policies; if anything fails validation the
running ones stay in place. SIGTERM stops listening, tells idle clients 421,
waits for transactions in flight, then exits.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import time
from typing import TYPE_CHECKING

from . import logqueue, signals
from .address import printable
from .config import Settings, load_settings
from .decision import Reply
from .config import bounces_in_warnings as _bounces_in_warnings
from .errors import ConfigError
from . import events, spool
from .events import EventSinks
from .metrics import Metrics
from .metrics.health import Health, Sampler
from .metrics.http import MetricsListener
from .outcomes import Outcomes
from .pipeline import Pipeline
from .policies import Policies, load_policies
from .service import RelayService
from .smtp import Connections, protocol_factory
from .steps.access import AccessStep
from .steps.received import ReceivedStep
from .delivery.pool import MxDelivery
from .steps.delivery import DeliveryStep
from .steps.upstream import UpstreamStep
from .upstream import UpstreamPool
from . import systemd

if TYPE_CHECKING:
    from .workers import Worker

log = logging.getLogger("relay.server")

DRAIN_SECONDS = 60.0  # for a transaction under way to end, once SIGTERM came (RelayServer.stop)
# How long past the reply's own deadline (upstream.data_timeout after the final dot, when the upstream
# connection gives up and the client is told 451) a shutdown still waits for that to be recorded.
DOT_REPLY_GRACE = 5.0

# RFC 5321 3.8: a server shutting down answers 421. Cut off after the final dot went to the next hop,
# the client is told that the message may have been delivered.
SHUTDOWN = Reply.make(421, "4.3.2", "Relay shutting down, try again later", cause="relay-shutdown")
SHUTDOWN_AFTER_DOT = Reply.make(
    421, "4.3.2", "Relay shutting down while the upstream had the whole message and had not answered: it may "
                  "have been delivered; try again later", cause="relay-shutdown-after-dot")
# Cut off once the upstream had answered the final dot, its answer still being recorded past the store's
# own deadline (RelayServer.stop), on a connection that cannot be told that answer itself (LMTP: one reply
# per recipient): never "had not answered" (review-int2 F8). The answer is in the event. An SMTP client is
# told the upstream's answer, then SHUTDOWN.
SHUTDOWN_AFTER_ANSWER = Reply.make(
    421, "4.3.2", "Relay shutting down while the upstream's answer to the whole message was being recorded: "
                  "it may have been delivered; try again later", cause="relay-shutdown-after-dot")


def _drain_deadline(protocol, drain_end: float) -> float:
    """Until when a shutdown lets this session's transaction go on: the drain's end, or, once its final
    dot went to the next hop, until the reply to it is due (and recorded) if that is later. The same once
    the reply came (Transaction.dot ANSWERED): the transaction is then only recording it, and a cut
    would leave the client without the answer the relay has. A command whose outcome is known (a
    refusal at MAIL, RCPT or of the DATA command being recorded: Transaction.decided) is cut at the
    drain's end like the rest, but the cut leaves it to record that outcome (RelayService.cut), and
    stop() waits for it (RelayService.drain) before the store closes: bounded by the store's own
    deadline, never upstream.data_timeout. Past this deadline, a transaction whose outcome is known is
    given the store's deadline more to record it and answer the client itself (RelayServer.stop)."""
    # The transaction as the client's command under way sees it: a DATA whose final dot the next hop
    # answered ends its transaction before its reply reaches the client (RelayService.answering); read as
    # no transaction at all, the session was cut off at the drain's end with a 421 in place of that reply.
    txn = protocol.relay_service.answering(protocol.relay_session)
    due = txn.dot_reply_due if txn is not None else None
    return drain_end if due is None else max(drain_end, due + DOT_REPLY_GRACE)


class Resources:
    """What lives as long as the process, shared by every pipeline a reload builds."""

    def __init__(self, settings: Settings, metrics=None, worker=None):
        from .dns import Resolver
        from .store import open_store

        from .shaping.shaper import Shaper

        self.store = open_store(settings.bounce_list)
        self.resolver = Resolver.from_settings(settings)
        up = settings.upstream
        self.pool = None
        if up is not None and up.smarthost:
            # Several workers divide upstream.pool_size: a pool's connections cannot cross processes.
            size = worker.share(up.pool_size) if worker is not None else None
            self.pool = UpstreamPool(settings, size=size, metrics=metrics)
        # MX delivery: mode mx, or domains policies/routes.yaml sends to their MX (a reload may add them).
        # Workers divide its caps too (the session cap, and connections per destination).
        self.mx = MxDelivery(settings, self.resolver, share=worker.share if worker is not None else None,
                             metrics=metrics) \
            if up is not None else None
        self.metrics = metrics
        self.shaper = Shaper(self.store, metrics, self.resolver)  # holds and counts, shared through the store
        from .steps.verp import VerpRecipients

        # The recipients of VERP transactions, written in group commits shared by every pipeline.
        self.verp_recipients = VerpRecipients(self.store)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
        if self.mx is not None:
            await self.mx.close()
        await self.shaper.close()  # its last counts go to the store before it closes
        await self.verp_recipients.close()  # the write under way ends before the store closes
        await self.store.close()


def build_pipeline(settings: Settings, policies: Policies, resources: Resources) -> Pipeline:
    """The order of the steps is the order of the checks (DESIGN.md)."""
    from .steps.auth_results import AuthResultsStep
    from .steps.bounce_list import BounceListStep
    from .steps.dkim_sign import DkimSignStep
    from .steps.shaping import ShapingStep
    from .steps.spf_check import SpfCheckStep

    from .steps.verp import VerpStep, check_verp

    check_verp(settings, policies)
    # The step also hears the upstream's 250 to the final dot: then it records the recipients.
    verp = VerpStep(settings, policies, resources.verp_recipients)
    routing = policies.routing
    delivers_to_mx = resources.mx is not None and (settings.upstream.mode == "mx"
                                                   or (routing is not None and routing.uses_mx))
    mx_host_of = None
    if delivers_to_mx:
        from .delivery.routing import Routing

        routing = routing or Routing(settings.upstream.mode)
        mx_host_of = functools.partial(resources.mx.first_host, routing)
    shaping = (ShapingStep(settings, policies.shaping, resources.shaper, mx_host_of=mx_host_of)
               if policies.shaping is not None else None)
    steps = [
        AccessStep(),                                            # MAIL: who may relay
        verp,                                                    # MAIL: the return path upstream (VERP)
        SpfCheckStep(settings, policies, resources.resolver),    # MAIL: SPF pre-flight of our egress IPs
        BounceListStep(resources.store),                         # RCPT: listed addresses refused locally
        *([shaping] if shaping is not None else []),             # RCPT: held or slowed destinations
        AuthResultsStep(settings, policies, resources.resolver), # DATA: verify what arrives signed
        DkimSignStep(settings, policies, metrics=resources.metrics),  # DATA: sign what leaves
        ReceivedStep(settings.hostname),                         # DATA: our trace header, on top
    ]
    watchers = [shaping] if shaping is not None else []
    if verp.codec is not None:
        watchers.append(verp)
    if delivers_to_mx:
        from .delivery.tls import OutboundTls
        from .delivery.tls_policy import OutboundTlsPolicy, TlsPolicies

        up = settings.upstream
        # DANE's TLSA records are at _PORT._tcp.HOST (RFC 7672 2.2); MTA-STS policies are cached for
        # the process (resources.mx.mta_sts); tls.yaml is this pipeline's.
        tls = OutboundTls(up, OutboundTlsPolicy(policies.tls or TlsPolicies(), resources.resolver,
                                                resources.mx.mta_sts, ca_file=up.ca_file, port=up.mx_port))
        # Every command: the reply of the destination the first RCPT chose (MX or smarthost), which
        # shaping hears too.
        provider_of = None
        if policies.shaping is not None:
            def provider_of(host: str, shaping=policies.shaping):
                return shaping.by_mx(host)  # a named provider; other domains keep the upstream caps
        steps.append(DeliveryStep(routing, resources.mx, resources.pool, tls, watchers=watchers,
                                  provider_of=provider_of))
    elif resources.pool is not None:
        # Every command: the upstream's reply, which shaping hears too (throttling, success).
        steps.append(UpstreamStep(resources.pool, watchers=watchers))
    return Pipeline(steps)


class RelayServer:
    def __init__(self, settings: Settings, worker: "Worker | None" = None):
        self.settings = settings
        # One of several worker processes (relay/workers.py): its sockets are bound by the parent,
        # and the caps are shared or divided with the other workers. None: the relay is this process.
        self.worker = worker
        self.metrics = Metrics()
        self.policies = worker.policies if worker is not None else load_policies(settings).prepare()
        if worker is None or worker.leader:
            from .steps.spf_check import spf_warnings
            for warning in spf_warnings(settings, self.policies):
                log.warning("%s", warning)
        self.resources = Resources(settings, self.metrics, worker)
        self.sinks = EventSinks.from_settings(settings, self.metrics)
        self.outcomes = Outcomes(self.policies, self.resources.store, self.sinks, settings, self.metrics)
        self.service = RelayService(settings, self.policies, build_pipeline(settings, self.policies, self.resources),
                                    self.outcomes, self.metrics)
        self.intake = None  # the bounces_in listener's service (relay/intake/bounces_in.py)
        if settings.bounces_in is not None and settings.bounces_in.listen is not None:
            from .intake.bounces_in import build_intake
            self.intake = build_intake(settings, self.policies, self.outcomes, self.metrics)
        if worker is None:
            self.counter = Connections(settings.limits.max_connections, settings.limits.max_connections_per_client)
        else:
            # Under stress at STRESS_PERCENT of the slots, counted across the workers (Connections.stressed).
            self.counter = Connections(settings.limits.max_connections,
                                       worker.share(settings.limits.max_connections_per_client),
                                       shared=worker.connections, slot=worker.slot,
                                       local_cap=worker.share(settings.limits.max_connections))
        # The bounces_in listener faces the Internet: its own budget, never the relay listeners' slots
        # (review14 F1: twenty outside addresses filled limits.max_connections through it, and the
        # operator's own MTA got 421 on the relay listener). With workers, both of its caps are divided
        # among them (each worker's share, at least 1).
        self.intake_counter = None
        if self.intake is not None:
            b = settings.bounces_in
            share = worker.share if worker is not None else (lambda n: n)
            self.intake_counter = Connections(share(b.max_connections), share(b.max_connections_per_client))
            for warning in _bounces_in_warnings(settings):
                log.warning("%s", warning)
        self.servers: list[asyncio.AbstractServer] = []
        self.milter = None  # relay.milter.server.MilterServer when milter.listen is set
        self.service.users = self._load_users(settings)
        self._stopping = asyncio.Event()
        self._closing = False  # stop() has begun: a reload under way is not applied
        self._reload_lock = asyncio.Lock()
        self._reloads: set[asyncio.Task] = set()  # reloads SIGHUP started
        self._reload_error: str | None = None  # why the last reload was refused, for systemd's STATUS=
        self._announced = False  # READY=1 told (this process is the relay, not a worker)
        self.follower = None
        if settings.postfix_log is not None and (worker is None or worker.leader):
            # One follower per relay: several would feed every delivery result through the funnel twice.
            from .intake.follower import PostfixLogFollower
            self.follower = PostfixLogFollower(settings, self.outcomes)
            follower = self.follower
            self.metrics.counted("relay_postfix_log_lines_total", lambda: follower.intake.lines)
            self.metrics.counted("relay_postfix_log_results_total", lambda: follower.intake.results)
            self.metrics.counted("relay_postfix_log_failures_total", lambda: follower.observed)
            self.metrics.counted("relay_postfix_log_lines_cut_total", lambda: follower.lines_cut)
            self.metrics.gauge("relay_postfix_log_queue_ids", lambda: len(follower.intake.tracker))
        self._retiring: set[asyncio.Task] = set()  # pipelines replaced by a reload, closing when unused
        self.metrics.gauge("relay_active_sessions",
                           lambda: self.counter.active + (self.intake_counter.active if self.intake_counter else 0))
        # self.sinks is replaced when a reload changes `events`: read whichever is current.
        self.metrics.counted("relay_event_sink_failures_total", lambda: sum(self.sinks.failures.values()))
        self.metrics.counted("relay_log_lines_dropped_total", logqueue.dropped)
        self.metrics.counted("relay_event_sink_restarts_total", events.thread_restarts)
        self.metrics.counted("relay_event_spool_cursor_resets_total", spool.cursor_resets)
        self.metrics.gauge("relay_webhook_spool_bytes", lambda: self.sinks.webhook_spool_bytes())
        pool = self.resources.pool
        if pool is not None:
            up = str(pool.target)
            self.metrics.gauge("relay_upstream_connections", lambda: pool.idle_count, state="idle", upstream=up)
            self.metrics.gauge("relay_upstream_connections", lambda: pool.open_count - pool.idle_count,
                               state="in_use", upstream=up)
            self.metrics.set("relay_upstream_pool_size", pool.size, upstream=up)  # this worker's share
        self.metrics.set("relay_config_last_reload_successful", 1)
        self.metrics.set("relay_config_last_reload_timestamp_seconds", time.time())
        m = settings.metrics
        self.health = Health(self.metrics, self.resources.store, m.ready_timeout if m else 2.0)
        self.sampler = Sampler(self.metrics, self.resources.store, m.bounce_list_interval if m else 60.0)
        self.metrics_listener: MetricsListener | None = None
        self.metrics_address: tuple[str, int] | None = None  # (host, port) the metrics listener is bound to

    @staticmethod
    def _load_users(settings: Settings):
        users = load_users(settings)
        for name in users.unrestricted if users is not None else ():
            log.warning("%s: user %s names no sender domains and may send from any domain; add :DOMAINS "
                        "to its line to restrict it", settings.clients.users_file, name)
        return users

    async def _open_store(self) -> None:
        """Bring the bounce list's tables up to date before listening (relay.store.schema). A list
        migrated by a newer relay stops the start (SchemaTooNew); a database that does not answer
        does not: recipients get 451 4.3.0 until it does, and it is migrated at its first use."""
        from .store.base import StoreError, redact
        from .store.schema import SchemaTooNew

        try:
            applied = await self.resources.store.migrate()
        except SchemaTooNew:
            raise
        except StoreError as exc:
            log.error("bounce list not available at start (recipients get 451 4.3.0 until it is): %s", exc)
            return
        for migration in applied:
            log.info("bounce list %s: applied schema migration %d (%s)", redact(self.settings.bounce_list),
                     migration.version, migration.description)

    async def _listen(self, factory, endpoint, socks) -> asyncio.AbstractServer:
        """On the sockets the parent bound for this worker, or bound here."""
        loop = asyncio.get_running_loop()
        if self.worker is None:
            return await loop.create_server(factory, endpoint.host, endpoint.port, reuse_address=True,
                                            backlog=1024)
        servers = [await loop.create_server(factory, sock=sock, backlog=1024) for sock in socks]
        return servers[0] if len(servers) == 1 else _Servers(servers)

    async def start(self) -> list[tuple[str, int]]:
        bound = []
        socks = self.worker.sockets if self.worker is not None else None
        if self.settings.metrics is not None:
            # First, so that /healthz answers while the rest starts (and /readyz says "starting").
            m = self.settings.metrics
            self.metrics_listener = MetricsListener(self.metrics, self.health)
            self.metrics_address = await self.metrics_listener.start(m.host, m.port,
                                                                     socks.metrics if socks is not None else None)
            self.health.start()
            log.info("metrics on http://%s:%s/metrics (and /healthz, /readyz)", *self.metrics_address[:2])
        await self._open_store()  # after the metrics listener: /readyz says "starting" while it migrates
        if self.settings.metrics is not None:
            self.sampler.start()  # counts the bounce list: once its tables are up to date
        if self.settings.milter is not None:
            from .milter.server import MilterServer, build_milter_pipeline
            self.milter = MilterServer(self.settings, build_milter_pipeline(self.settings, self.policies,
                                                                            self.resources), self.outcomes,
                                       sock=socks.milter if socks is not None else None,
                                       non_smtpd_sock=socks.milter_non_smtpd if socks is not None else None)
            await self.milter.start()
        for i, listener in enumerate(self.settings.listen):
            factory = protocol_factory(self.service, self.settings, listener, self.counter)
            server = await self._listen(factory, listener.endpoint, socks.listen[i] if socks else None)
            self.servers.append(server)
            for sock in server.sockets:
                addr = sock.getsockname()
                bound.append((addr[0], addr[1]))
                log.info("listening on %s:%s%s", addr[0], addr[1], " (STARTTLS)" if listener.tls else "")
        if self.follower is not None:
            await self.follower.start()
        if self.intake is not None:
            from .config import Listener
            endpoint = self.settings.bounces_in.listen
            factory = protocol_factory(self.intake, self.intake.settings, Listener(endpoint), self.intake_counter,
                                       lmtp=self.settings.bounces_in.protocol == "lmtp")
            server = await self._listen(factory, endpoint, socks.bounces_in if socks else None)
            self.servers.append(server)
            for sock in server.sockets:
                addr = sock.getsockname()
                bound.append((addr[0], addr[1]))
                log.info("bounces_in listening on %s:%s (mail for %s)", addr[0], addr[1],
                         ", ".join(self.settings.bounces_in.domains))
        self.health.listening = True
        return bound

    async def reload(self) -> bool:
        """SIGHUP: new config and policies, or the old ones if anything is wrong. One at a time: a
        SIGHUP during a reload reloads again after it (the files may have changed since it read them)."""
        async with self._reload_lock:
            began = time.monotonic()  # the files are read after this (the parent's test: Worker.tell_reloaded)
            # A reading may take tens of seconds (DKIM keys): the log says when it began, not only its end.
            log.info("reloading: reading %s and its policies", self.settings.source)
            ok = await self._reload()
        if self.worker is None:
            # One SIGHUP is one reload of the relay. Under workers the parent counts it, once every
            # worker has said whether it took the new config (relay/workers.py): counted by every worker,
            # a scrape (which sums the workers' counters) showed `workers` reloads for each; counted by
            # one, it said "ok" while its siblings refused. The gauge below is each worker's, its lowest
            # value wins: any worker that kept its old config shows.
            self.metrics.inc("relay_config_reloads_total", result="ok" if ok else "failed")
        self.metrics.set("relay_config_last_reload_successful", 1 if ok else 0)
        self.metrics.set("relay_config_last_reload_timestamp_seconds", time.time())
        if self.worker is not None:
            await self.worker.tell_reloaded(began, ok, self._reload_error)
        return ok

    def _read_config(self):
        """The config file and every policy file, read and checked: pure-Python YAML and regular
        expressions, a few hundred milliseconds for an operator's policies and more with thousands of
        domains, so it runs in a thread while the loop serves sessions (review-20 F4: a SIGHUP held
        every session for 1-2 s with 20 DKIM keys, 41 s with 1,000)."""
        # No MX delivery in this process: its MTA-STS fetcher's TLS context is not rebuilt (None keeps the
        # running one).
        return read_reload_files(self.settings, users=self._load_users, mta_sts=self.resources.mx is not None)

    def _new_sinks(self, settings) -> EventSinks:
        """The event sinks of a reloaded config (in a thread: spools and CA files are on the disk)."""
        sinks = EventSinks.from_settings(settings, self.metrics)
        if self._closing:  # stop() began meanwhile: they would outlive it
            sinks.close()
            log.info("stopping: the reloaded config is not used")
            raise _ReloadAbandoned
        return sinks

    async def _reload(self) -> bool:
        # Everything that may fail is built before anything of the running config is replaced: a reload
        # applies whole or not at all (review28 F1: new event sinks built after the new settings were
        # installed, and failing there, left the settings new and the sinks old, reported as success).
        loop = asyncio.get_running_loop()
        new_sinks = None
        self._reload_error = None
        try:
            settings, policies, users, upstream_tls, mta_sts_tls = await loop.run_in_executor(None, self._read_config)
            if self._closing:
                log.info("stopping: the reloaded config is not used")  # a pipeline now would outlive stop()
                return False
            if settings.events != self.settings.events:
                # Spools and CA files are opened here: on the disk, so not on the loop.
                new_sinks = await loop.run_in_executor(None, self._new_sinks, settings)
            pipeline = build_pipeline(settings, policies, self.resources)
            milter_pipeline = None
            if self.milter is not None:
                from .milter.server import build_milter_pipeline
                # milter.mode changes at the next restart, like milter.listen.
                milter_pipeline = build_milter_pipeline(_keep(settings, self.settings, ["milter"]), policies,
                                                        self.resources)
        except BaseException as exc:
            if new_sinks is not None:
                loop.run_in_executor(None, new_sinks.close)  # never used: their threads stop
            if isinstance(exc, _ReloadAbandoned):
                return False
            if isinstance(exc, ConfigError):
                for problem in exc.problems:
                    log.error("reload refused, keeping the running config: %s", problem)
                self._reload_error = "; ".join(str(p) for p in exc.problems)
                return False
            if isinstance(exc, Exception):
                log.exception("reload failed, keeping the running config")
                self._reload_error = f"{type(exc).__name__}: {exc}"
                return False
            raise  # cancelled (stop()): nothing of it is used
        settings, restart_only = settings_after_reload(settings, self.settings)
        if restart_only:
            log.warning("changes to %s take effect at the next restart", ", ".join(restart_only))
        if (users is None) != (self.service.users is None):
            log.warning("turning AUTH on or off (clients.users_file) takes effect at the next restart")
        old_pipeline, old_settings = self.service.pipeline, self.settings
        self.settings = settings
        self.policies = policies
        self.service.settings = settings
        self.service.policies = policies
        self.service.pipeline = pipeline
        self.service.users = users  # None turns every login down until a restart drops AUTH
        if upstream_tls is not None:
            self.resources.pool.tls_context = upstream_tls  # for connections opened from now on
        if mta_sts_tls is not None:
            self.resources.mx.mta_sts.fetcher.use_context(mta_sts_tls)  # for policy fetches begun from now on
        self.outcomes.settings = settings
        self.outcomes.policies = policies
        if self.follower is not None:
            self.follower.reconfigure(settings)
        if self.intake is not None and settings.bounces_in is not None:
            from .intake.bounces_in import intake_pipeline, intake_settings
            self.intake.settings, self.intake.policies = intake_settings(settings), policies
            self.intake.pipeline = intake_pipeline(settings, self.outcomes)
        if new_sinks is not None:
            old_sinks, self.sinks = self.sinks, new_sinks
            self.outcomes.sinks = new_sinks
            # A webhook spools what it has queued before it closes (the disk): not on the loop.
            loop.run_in_executor(None, old_sinks.close)
        else:
            self.sinks.reopen()  # logrotate moved the file: write to a fresh one
        # Sessions in the middle of a transaction finish it with the steps it started with; the
        # old pipeline closes after the last of them (stop() waits for that too).
        self._retire(old_pipeline)
        if milter_pipeline is not None:
            # Like the SMTP sessions, a milter transaction under way finishes with the steps it started
            # with (MilterSession holds its pipeline); the next one uses the new pipeline.
            old_milter_pipeline, self.milter.pipeline = self.milter.pipeline, milter_pipeline
            self.milter.settings = _keep(settings, self.settings, ["milter"])
            self._retire(old_milter_pipeline)
        log.info("reloaded config and policies from %s", settings.source)
        return True

    def _retire(self, pipeline) -> None:
        """Close `pipeline` after its last transaction (Pipeline.retire); stop() waits for it."""
        retiring = asyncio.get_running_loop().create_task(pipeline.retire())
        self._retiring.add(retiring)
        retiring.add_done_callback(self._retiring.discard)

    def _protocols(self) -> list:
        """Every open client connection, of the relay listeners and of bounces_in."""
        return [*self.counter.protocols, *(self.intake_counter.protocols if self.intake_counter else ())]

    async def stop(self) -> None:
        self._closing = True
        for task in list(self._reloads):
            task.cancel()  # its thread finishes reading on its own; nothing it read is used
        if self.worker is None:
            systemd.notify("STOPPING=1")  # else the parent's word
        self.health.drain()  # /readyz: 503 from now on, so that a balancer sends new mail elsewhere
        for server in self.servers:
            server.close()
        # For the closing line: how many sessions there were to drain, and how many were in a transaction.
        sessions = self._protocols()
        drained = len(sessions)
        in_transaction = sum(1 for p in sessions if p.busy or p.relay_service.in_transaction(p.relay_session))
        # Sessions between transactions are told 421 now (RFC 5321 3.8); one in the middle of a
        # transaction may finish it first, up to DRAIN_SECONDS, and is told 421 after. One whose
        # message and final dot went to the next hop waits for that reply as long as the next hop
        # may take to give it (upstream.data_timeout, RFC 5321 4.5.3.2.6: 10 minutes): the next hop
        # may accept the message at any moment, and a client cut off then does not know it was sent
        # (its retry is a second delivery). review25 F1: it was cut at DRAIN_SECONDS with no reply
        # and no event. So the drain lasts at most DRAIN_SECONDS + upstream.data_timeout +
        # DOT_REPLY_GRACE (systemd/relay.service's TimeoutStopSec covers it).
        loop = asyncio.get_running_loop()
        drain_end = loop.time() + DRAIN_SECONDS
        cut_off: set[int] = set()  # the sessions whose time was up: told 421 mid-transaction
        # Per session whose time was up while its outcome was being recorded: until when that may go on.
        recording: dict[int, float] = {}
        while True:
            open_ = [p for p in self._protocols() if p.transport is not None and not p.transport.is_closing()]
            if not open_:
                break  # every one is closing (what is left is the flush of its last reply)
            idle = [p for p in open_ if not p.busy and not p.relay_service.in_transaction(p.relay_session)]
            await asyncio.gather(*(p.say_goodbye("421 4.3.2 Relay shutting down, try again later") for p in idle),
                                 return_exceptions=True)
            # A session whose time is up is cut off with a 421 and its transaction recorded as deferred
            # (never an outcome lost in silence); one whose final dot the next hop had says so, its
            # outcome unknown.
            # A transaction whose outcome is known (the upstream's refusal, its answer to the final dot:
            # Transaction.decided) and still being recorded (the bounce list's lock) is not cut: its client
            # gets the real reply once it is recorded, within the store's own deadline. Cut with a 421, a
            # client whose message the upstream had accepted retries and it goes twice (RFC 5321 3.8, RFC
            # 1047); one told "had not answered" is told wrong (review-int2 F8).
            now = loop.time()
            for p in open_:
                if p not in idle and now >= _drain_deadline(p, drain_end):
                    service = p.relay_service
                    txn = service.answering(p.relay_session)  # (the open one while it is recording)
                    if service.recording(p.relay_session):
                        until = recording.get(id(p))
                        if until is None:
                            until = recording[id(p)] = now + service.recording_seconds()
                            log.warning("stopping: session %s's transaction %s has its outcome, still being "
                                        "recorded; its client gets that reply, waiting up to %g s for it",
                                        p.relay_session.id, txn.id, until - now)
                        if now < until:
                            continue
                        # Past the store's own deadline: the recording is given up, its events written with
                        # their list update marked as not done, and the client gets the reply it is due, the
                        # next hop's own, then the 421. A 421 alone after the upstream's 250 had the client
                        # send the message again; after its 550, try again an address it had refused.
                        answer = txn.answer if txn is not None and p.tells_answer_at_cut else None
                        log.error("stopping: session %s's transaction %s was still recording its outcome after "
                                  "%g s; %s", p.relay_session.id, txn.id, service.recording_seconds(),
                                  "cut off" if answer is None else
                                  ("given up (its events are written, their bounce list update not done)"
                                   if txn.recording_refusal else
                                   "left to finish what it writes after the outcome (its events follow)")
                                  + f"; the client "
                                  f"is told {printable(answer.wire_lines()[0])[:120]}, then 421")
                        if answer is not None:
                            p.cut(SHUTDOWN, answer=answer)
                            cut_off.add(id(p))
                            continue
                    if txn is not None and txn.dot_reply_due is not None:
                        p.cut(SHUTDOWN_AFTER_DOT if txn.awaiting_dot_reply else SHUTDOWN_AFTER_ANSWER)
                    else:
                        p.cut(SHUTDOWN)
                    cut_off.add(id(p))
            await asyncio.sleep(0.05)
        # Then, in order: the remaining client connections close; the transactions they leave end
        # (events written, upstream connections given back); the pipelines close once no
        # transaction uses them; then what they all used: the upstream pool, the store, the sinks.
        for p in self._protocols():
            if p.transport is not None:
                p.transport.close()
        if self.milter is not None:
            await self.milter.close()
        if self.follower is not None:
            await self.follower.stop()  # before the store closes: it may be recording a result
        deadline = asyncio.get_running_loop().time() + 5.0
        while self._protocols() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)  # connection_lost runs on the next turns of the loop
        for p in self._protocols():
            if p.transport is not None:
                # A client that does not read keeps a closed connection open (its last reply unsent).
                p.transport.abort()
        await asyncio.sleep(0)  # connection_lost (called soon by abort) releases each
        await self.service.drain()
        if self.intake is not None:
            await self.intake.drain()
        self._retiring.add(asyncio.get_running_loop().create_task(self.service.pipeline.retire()))
        done, pending = await asyncio.wait(list(self._retiring), timeout=DRAIN_SECONDS)
        if pending:
            log.error("stopping: %d pipeline(s) still in use after %s s; stopping anyway", len(pending),
                      DRAIN_SECONDS)
        await self.sampler.close()
        await self.resources.close()
        await asyncio.get_running_loop().run_in_executor(None, self.sinks.close)  # webhooks flush first
        # Last: /readyz said "draining" (and /metrics counted the drain) until everything closed.
        await self.health.close()
        if self.metrics_listener is not None:
            await self.metrics_listener.close()
        # The journal's last word: a clean drain, told apart from a hang or a kill (review27 F7).
        log.info("stopped: drained %d session(s) (%d in a transaction; %d cut off with 421 when their time "
                 "was up)", drained, in_transaction, len(cut_off))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        signals.handle_on_loop(loop, {signal.SIGTERM: self._stopping.set, signal.SIGINT: self._stopping.set,
                                      signal.SIGHUP: self._on_sighup})
        try:
            await self.start()
            if self.worker is not None:
                self.worker.ready()  # the parent tells systemd once every worker listens
            else:
                systemd.notify("READY=1")
                self._announced = True
            # Pings (or, in a worker, heartbeats to the parent) from this loop, through the drain too:
            # it may last upstream.data_timeout, and a loop stuck in it must still show.
            watchdog = loop.create_task(self.worker.heartbeats() if self.worker is not None
                                        else systemd.watchdog())
            await self._stopping.wait()
            log.info("stopping: draining sessions")
            try:
                await self.stop()
            finally:
                watchdog.cancel()
        finally:
            ignore_late_signals(loop, (signal.SIGTERM, signal.SIGINT, signal.SIGHUP))

    def _on_sighup(self) -> None:
        if self._stopping.is_set() or self._closing:
            # Stopping already: a pipeline or event sink a reload would build now would outlive stop().
            log.info("SIGHUP while stopping: not reloading")
            return
        if self.worker is None and not self._reloads and self._announced:
            systemd.reloading()  # else the parent's word (NotifyAccess=main), or not started yet
        task = asyncio.get_running_loop().create_task(self.reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)
        if self.worker is None:
            task.add_done_callback(self._tell_reloaded)

    def _tell_reloaded(self, task: asyncio.Task) -> None:
        """READY=1 once the last reload asked for is over; none when stop() cancelled it (STOPPING=1)."""
        if self._reloads or task.cancelled() or self._closing or not self._announced:
            return  # not READY=1 before the start's own: systemd would take the relay for started
        ok = task.exception() is None and task.result()
        systemd.reloaded(None if ok else (self._reload_error or "see the log"))


def ignore_late_signals(loop: asyncio.AbstractEventLoop, signums) -> None:
    """Once the relay has stopped (or failed to start), a signal arriving while the process ends is
    dropped. Left to asyncio, the loop's close() first closes the fd its signal handlers write to,
    then removes them: a forwarded SIGTERM or SIGHUP in between made Python print "Exception ignored
    ... OSError: [Errno 9] Bad file descriptor"; and once removed, SIGTERM and SIGHUP are back to
    their default (a late one kills the process: a wrong exit status) and SIGINT raises
    KeyboardInterrupt in the middle of the teardown (a traceback)."""
    signals.ignore(signums)  # from here the kernel drops them: nothing writes the fd
    handlers = getattr(loop, "_signal_handlers", None)  # asyncio's unix loop (uvloop keeps its own)
    if isinstance(handlers, dict):
        # Only forgotten, not removed: remove_signal_handler() would put SIG_DFL back.
        for signum in signums:
            handlers.pop(signum, None)
        if not handlers:
            signal.set_wakeup_fd(-1)
    else:
        for signum in signums:
            loop.remove_signal_handler(signum)
        signals.ignore(signums)


class _Servers:
    """The servers of one listener bound on several addresses, closed together."""

    def __init__(self, servers: list[asyncio.AbstractServer]):
        self._servers = servers
        self.sockets = [s for server in servers for s in server.sockets]

    def close(self) -> None:
        for server in self._servers:
            server.close()


def load_users(settings: Settings):
    """The users file of `settings` (clients.users_file) read and checked, or None; a ConfigError names
    its line when one is wrong."""
    if settings.clients.users_file is None:
        return None
    from .users import Users
    return Users.from_file(settings.clients.users_file)


def reloaded_upstream_tls(settings: Settings, running: Settings):
    """The smarthost's TLS context from the reloaded upstream.ca_file (a CA bundle renewed in place is
    trusted from this reload on), or None to keep the running one: no smarthost (no pool), or `upstream`
    changed, which waits for a restart whole. A file that cannot be loaded is a ConfigError: the reload
    is refused and the running context stays (it was a traceback at every new connection before)."""
    up = settings.upstream
    if up is None or not up.smarthost or up != running.upstream:
        return None
    from .upstream import smarthost_tls_context
    return smarthost_tls_context(settings)


def reloaded_mta_sts_tls(settings: Settings, running: Settings):
    """The TLS context of MTA-STS policy fetches (MX delivery) from the reloaded upstream.ca_file, or
    None to keep the running one: no upstream, or `upstream` changed (a restart's). The fetcher
    lives as long as the process (its policies are cached for it, RFC 8461 5.1), and so did the
    context it built at its first fetch: a bundle renewed in place was not trusted until a restart. A file
    that cannot be loaded is a ConfigError: the reload is refused and the running context stays."""
    up = settings.upstream
    if up is None or up != running.upstream:  # MX delivery: mode mx, or domains routes.yaml sends to their MX
        return None
    from .delivery.mta_sts import fetcher_tls_context
    return fetcher_tls_context(settings)


def read_reload_files(running: Settings, users=load_users, mta_sts: bool = True) -> tuple:
    """The files a reload reads, read and checked, in this order: the config, the policies, the users file
    (`users(settings)`), the smarthost's TLS context and, with `mta_sts`, the MTA-STS fetcher's (else None).
    Returns (settings, policies, users, upstream_tls, mta_sts_tls); raises what reading failed with. One body
    for a serving process's reload (RelayServer._read_config) and the parent's check of it (check_reload),
    so that the two cannot drift apart."""
    settings = load_settings(running.source)
    policies = load_policies(settings).prepare()
    return (settings, policies, users(settings), reloaded_upstream_tls(settings, running),
            reloaded_mta_sts_tls(settings, running) if mta_sts else None)


def check_reload(running: Settings) -> tuple[Settings, object]:
    """What a reload reads, read and checked as each process that serves will (RelayServer._read_config,
    build_pipeline): the config, the policies, the users file, the smarthost's TLS context and the VERP
    settings; not the event sinks, whose spools and threads a process that sends no event must not hold
    (a worker refusing them tells the parent: relay/workers.py). Returns the settings that
    reload puts in force and the policies; raises ConfigError (or what reading failed with) when a worker
    would refuse it. The workers' parent checks with it before it tells them (relay/workers.py)."""
    from .steps.verp import check_verp

    settings, policies, *_ = read_reload_files(running)
    settings = settings_after_reload(settings, running)[0]
    check_verp(settings, policies)  # as build_pipeline does
    return settings, policies


# Keys a reload cannot change in a running process: sockets, pools and stores are opened at start.
RESTART_ONLY = ("listen", "limits", "upstream", "bounce_list", "milter", "metrics", "resolver", "postfix_log",
                "workers")


def settings_after_reload(new: Settings, running: Settings) -> tuple[Settings, list[str]]:
    """The settings a reload puts in force, and the keys whose change waits for a restart."""
    restart_only = [k for k in RESTART_ONLY if getattr(new, k) != getattr(running, k)]
    if _bounces_listen(new) != _bounces_listen(running):
        restart_only.append("bounces_in")  # the listener is bound at start
    if restart_only:
        new = _keep(new, running, restart_only)
    return new, restart_only


def _bounces_listen(settings: Settings):
    """What of bounces_in is fixed when its listener starts: the address, its protocol (SMTP or LMTP),
    its connection caps and its message size (the SMTP protocol's data_size_limit and EHLO SIZE)."""
    b = settings.bounces_in
    return None if b is None else (b.listen, b.protocol, b.max_connections, b.max_connections_per_client,
                                   b.max_message_size)


def _keep(new: Settings, old: Settings, keys: list[str]) -> Settings:
    from dataclasses import replace
    return replace(new, **{k: getattr(old, k) for k in keys})


def serve(settings: Settings, report_error=None) -> int:
    """Runs the relay until SIGTERM: in this process (`workers: 1`), or in workers under this one.
    `report_error(exc) -> exit status` says why a worker could not start, as the command would."""
    from .memory import give_back_large_buffers

    give_back_large_buffers()  # before any large buffer exists (and before workers fork: they inherit it)

    def run(worker=None) -> None:
        async def main() -> None:
            server = RelayServer(worker.settings if worker is not None else settings, worker=worker)
            await server.run()

        # asyncio's own loop, also where uvloop is installed: uvloop took only ~4% off the CPU of a
        # 1 KiB message (docs/benchmarks.md, "Stop 21: uvloop"), and a loop the tests do not run on
        # is not one to run mail on.
        asyncio.run(main())

    if settings.workers > 1:
        from .workers import serve_workers
        return serve_workers(settings, run, report_error or _log_error)
    run()
    return 0


def _log_error(exc: BaseException) -> int:
    log.error("worker failed", exc_info=exc)
    return 1


class _ReloadAbandoned(Exception):
    """stop() began while a reload was being built: nothing of it is used."""
