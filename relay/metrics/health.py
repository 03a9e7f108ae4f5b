"""Liveness, readiness and the periodic samples behind a few gauges.

Liveness (/healthz): the process answers at all, and the event loop runs its timers on time. The
endpoint is served from the event loop itself, so a loop that is stuck does not answer: the probe
times out, which is the signal an orchestrator needs. A loop that still answers but runs timers
late by more than STALL_SECONDS (starved by work that should be in a thread) is reported too.

Readiness (/readyz): the listeners are bound, the relay is not draining (SIGTERM), and the bounce
list answers a lookup within the deadline. A relay that cannot read its bounce list refuses every
RCPT with 451 4.3.0: a load balancer should send mail elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import time

log = logging.getLogger("relay.health")

TICK_SECONDS = 1.0
STALL_SECONDS = 10.0
# An address no entry can ever match: .invalid is reserved (RFC 2606 2), so the probe is a real
# lookup (the same query RCPT runs) that finds nothing.
PROBE_ADDRESS = "readiness-probe@relay.invalid"
# Under workers, how often each samples its read-from-elsewhere gauges into the shared files.
WORKER_SAMPLE_SECONDS = 5.0
# Counting a large list on a busy database may take a while; past this the gauge keeps its value.
COUNT_TIMEOUT = 30.0


class Health:
    def __init__(self, metrics, store, ready_timeout: float):
        self.metrics = metrics
        self.store = store
        self.ready_timeout = ready_timeout
        self.listening = False  # every listener bound (RelayServer.start done)
        self.draining = False  # RelayServer.stop under way
        self._last_tick: float | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._tick())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def drain(self) -> None:
        self.draining = True
        self.metrics.set("relay_draining", 1)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        self._last_tick = loop.time()
        while True:
            due = loop.time() + TICK_SECONDS
            await asyncio.sleep(TICK_SECONDS)
            self._last_tick = loop.time()
            self.metrics.set("relay_event_loop_lag_seconds", max(0.0, self._last_tick - due))

    def live(self) -> tuple[bool, str]:
        if self._last_tick is None:
            return True, "ok"
        late = asyncio.get_running_loop().time() - self._last_tick - TICK_SECONDS
        if late > STALL_SECONDS:
            return False, f"the event loop runs timers {late:.1f} s late"
        return True, "ok"

    async def ready(self) -> tuple[bool, list[str]]:
        """(ready, one line per check)."""
        lines = []
        ok = True
        if self.draining:
            ok = False
            lines.append("draining: the relay is stopping (SIGTERM)")
        if not self.listening:
            ok = False
            lines.append("starting: listeners not bound yet")
        store_ok, why = await self._store_answers()
        ok = ok and store_ok
        lines.append(why)
        if ok:
            lines.insert(0, "ready")
        return ok, lines

    async def _store_answers(self) -> tuple[bool, str]:
        if self.store is None:
            return True, "bounce list: none configured"
        start = time.perf_counter()
        try:
            await asyncio.wait_for(self.store.get_uncached(PROBE_ADDRESS), self.ready_timeout)
        except (asyncio.TimeoutError, TimeoutError):
            return False, f"bounce list: no answer within {self.ready_timeout:g} s"
        except Exception as exc:  # StoreError, StoreBusy, a driver's own: the relay cannot use the list
            return False, f"bounce list: {exc}"
        return True, f"bounce list: ok ({(time.perf_counter() - start) * 1000:.1f} ms)"


class Sampler:
    """Values too costly to read at each scrape, read every `interval` off the loop with a
    deadline: the bounce list's size (a count(*) walks the whole table) and the shaping holds in
    the store. Under workers it also
    samples the read-from-elsewhere gauges, since a scrape reaches only one worker."""

    def __init__(self, metrics, store, interval: float, timeout: float = COUNT_TIMEOUT):
        self.metrics = metrics
        self.store = store
        self.interval = interval
        self.timeout = timeout
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        count_due = loop.time()
        while True:
            if loop.time() >= count_due:
                await self.count_bounce_list()
                await self.count_shaping()
                count_due = loop.time() + self.interval
            if self.metrics.multiprocess:
                # A scrape reaches one worker: each keeps its share of the shared files fresh.
                self.metrics.sample()
                await asyncio.sleep(min(WORKER_SAMPLE_SECONDS, max(0.0, count_due - loop.time())))
            else:
                await asyncio.sleep(max(0.0, count_due - loop.time()))

    async def count_bounce_list(self) -> None:
        if self.store is None:
            return
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for returns the result when the count
            # is done as close() cancels this task, and the loop then goes on sleeping: stop() hung.
            async with asyncio.timeout(self.timeout):
                entries = await self.store.count()
        except (asyncio.TimeoutError, TimeoutError):
            log.warning("metrics: counting the bounce list took more than %g s; relay_bounce_list_entries "
                        "keeps its last value", self.timeout)
            return
        except Exception as exc:
            log.warning("metrics: could not count the bounce list (%s); relay_bounce_list_entries keeps its "
                        "last value", exc)
            return
        self.metrics.set("relay_bounce_list_entries", entries)
        self.metrics.set("relay_bounce_list_counted_timestamp_seconds", time.time())

    async def count_shaping(self) -> None:
        """Holds and slow-downs in force: a handful of rows (destinations x sender domains)."""
        if self.store is None:
            return
        try:
            async with asyncio.timeout(self.timeout):  # not wait_for: see count_bounce_list
                records = await self.store.shaping_records()
        except Exception as exc:  # a timeout included: the gauges keep their last values
            log.warning("metrics: could not read the shaping records (%s)", exc or type(exc).__name__)
            return
        now = time.time()
        held = sum(1 for r in records if r.held(now))
        slowed = sum(1 for r in records if not r.held(now) and r.rate is not None)
        self.metrics.set("relay_shaping_holds", held, state="held")
        self.metrics.set("relay_shaping_holds", slowed, state="slowed")
