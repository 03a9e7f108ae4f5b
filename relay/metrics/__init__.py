"""The relay's metrics, kept with prometheus-client in a registry of the server's own.

A registry per RelayServer, not prometheus-client's global one: tests run several relays in one
process, and each must count only its own traffic. Every metric is declared from the catalogue
(catalogue.py) when the registry is made, so a scrape shows the whole family list from the start.

Callers use names, not metric objects (`metrics.inc("relay_events_total", kind="rejected")`), so
that a part that has no metrics (a command-line tool, a unit test) passes `None` and the rest of
the code stays free of prometheus-client. Values that live elsewhere (sessions open, the Postfix
log follower's counts) are read when sampled (`gauge()`, `counted()`): at each scrape, and
periodically under worker processes (`multiprocess`).
"""

from __future__ import annotations

import logging
import os
import time
from bisect import bisect_left
from contextlib import contextmanager
from typing import Callable, Iterator

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder

from .catalogue import CATALOGUE, MAX_DESTINATIONS, Spec

log = logging.getLogger("relay.metrics")

# The `_created` series prometheus-client adds to every counter and histogram double the series
# count and tell nothing a restart's counter reset does not; the relay's process owns its exposition.
prometheus_client.disable_created_metrics()

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

_MAX_CACHED_CHILDREN = 20_000


def multiprocess_directory() -> str | None:
    """The directory of prometheus-client's multiprocess mode, when workers share it (it must be
    set in the environment before prometheus_client is first imported: it picks its value store
    at import)."""
    return os.environ.get(MULTIPROCESS_ENV) or None


# prometheus-client's multiprocess values ask which process they are in at every inc(), to notice a
# fork (a child must write files of its own): os.getpid() is a system call each time (glibc stopped
# caching it), about twenty a message. The pid noted at each fork answers the same question.
_pid = os.getpid()


def _note_pid() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_note_pid)


def _process_id() -> int:
    return _pid


def _multiprocess_values():
    from prometheus_client import values

    cls = values.MultiProcessValue(process_identifier=_process_id)
    cls._relay_pid = True  # ours: see _values_follow_the_environment
    return cls


def _values_follow_the_environment() -> None:
    """prometheus-client picks where values live (this process's memory, or files in the
    multiprocess directory) when it is first imported; the workers' parent sets
    PROMETHEUS_MULTIPROC_DIR after it imported us and before it forks (relay/workers.py). Metrics
    made after this call use the store the environment names."""
    from prometheus_client import values

    if multiprocess_directory() is not None and values.ValueClass is values.MutexValue:
        values.ValueClass = _multiprocess_values()


def _own_multiprocess_values() -> None:
    """With PROMETHEUS_MULTIPROC_DIR set before prometheus-client was imported, it chose files with
    os.getpid() per inc(); the same files with _process_id instead, before any value exists (the
    relay makes its metrics after this import, and prometheus-client's own collectors hold none).
    Two value classes must never share a process's files: each keeps its own file objects."""
    from prometheus_client import values

    if values.ValueClass is not values.MutexValue and not getattr(values.ValueClass, "_relay_pid", False):
        values.ValueClass = _multiprocess_values()


_own_multiprocess_values()


def process_counter(name: str) -> Counter:
    """The catalogue's counter `name` outside any registry, for a process that serves no scrape (the
    workers' parent, relay/workers.py): its values go to the multiprocess directory, where a scrape
    reaching any worker sums them with the workers'. Never a Metrics() there: its gauges' values would
    count as a live process's (a `livemin` gauge at 0 for ever)."""
    _values_follow_the_environment()
    spec = CATALOGUE[name]
    return Counter(name, spec.help, spec.labels, registry=None)


class Metrics:
    def __init__(self, catalogue: dict[str, Spec] = CATALOGUE):
        _values_follow_the_environment()
        self.registry = CollectorRegistry(auto_describe=True)
        self._specs = dict(catalogue)
        self._families: dict[str, Counter | Gauge | Histogram] = {}
        self._gauges: list[tuple[Gauge, Callable[[], float]]] = []  # (child, read) set at each sample
        self._counted: list[list] = []  # [child, read, last value] counters whose total lives elsewhere
        self._bounded: dict[tuple[str, str], set[str]] = {}
        self._complained: set[str] = set()
        # (name, *labels as given) -> the labelled child: prometheus-client's labels() costs a few
        # microseconds a call, and a message records about a dozen samples.
        self._children: dict[tuple, object] = {}
        self._recorders: dict[tuple, Series] = {}  # the same keys: what inc() and observe() record into
        for name, spec in self._specs.items():
            self._declare(name, spec)
        # process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds, ...: the
        # standard names every process dashboard already knows (read from /proc at each scrape).
        ProcessCollector(registry=self.registry)
        from .. import __version__
        self.set("relay_build_info", 1, version=__version__)

    # -- declaring ------------------------------------------------------------------------------

    def _declare(self, name: str, spec: Spec):
        if spec.kind == "counter":
            family = Counter(name, spec.help, spec.labels, registry=self.registry)
        elif spec.kind == "gauge":
            family = Gauge(name, spec.help, spec.labels, registry=self.registry,
                           multiprocess_mode=spec.multiprocess_mode)
        elif spec.kind == "histogram":
            family = Histogram(name, spec.help, spec.labels, registry=self.registry,
                               buckets=spec.buckets or Histogram.DEFAULT_BUCKETS)
        else:
            raise ValueError(f"metric {name}: unknown kind {spec.kind!r}")
        self._families[name] = family
        return family

    def _family(self, name: str, kind: str, labels: dict):
        family = self._families.get(name)
        if family is not None:
            return family
        # A name missing from the catalogue still counts (another part's new metric must never
        # break mail), but it belongs in catalogue.py and docs/metrics.md.
        self._complain(name, f"metric {name} is not in relay/metrics/catalogue.py; exported without help text")
        spec = Spec(kind, name, tuple(sorted(labels)))
        self._specs[name] = spec
        return self._declare(name, spec)

    def _child(self, name: str, kind: str, labels: dict):
        key = (name, *labels.items())
        child = self._children.get(key)
        if child is not None:
            return child
        child = self._new_child(name, kind, labels)
        # Bounded, as the label values are: a label past MAX_DESTINATIONS values maps to "other",
        # and a value once mapped keeps its mapping, so a cached child stays the right one.
        if child is not None and len(self._children) < _MAX_CACHED_CHILDREN:
            self._children[key] = child
        return child

    def _new_child(self, name: str, kind: str, labels: dict):
        family = self._family(name, kind, labels)
        if not labels and not self._specs[name].labels:
            return family
        spec = self._specs[name]
        values = {k: str(v) for k, v in labels.items()}
        for label in spec.bounded:
            if label in values:
                values[label] = self._bound(name, label, values[label])
        try:
            return family.labels(**values)
        except ValueError as exc:
            self._complain(name + repr(sorted(labels)), f"metric {name}: {exc}; not counted")
            return None

    def _bound(self, name: str, label: str, value: str) -> str:
        seen = self._bounded.setdefault((name, label), set())
        if value in seen:
            return value
        if len(seen) >= MAX_DESTINATIONS:
            return "other"
        seen.add(value)
        return value

    def _complain(self, key: str, text: str) -> None:
        if key not in self._complained:
            self._complained.add(key)
            log.error("%s", text)

    # -- recording (the names other parts call) --------------------------------------------------

    def child(self, name: str, kind: str, **labels) -> "Series | None":
        """The labelled series (its inc() or observe()), or None where it cannot count: for a
        caller that records the same series many times (an upstream connection's replies) and keeps
        it, rather than naming it again each time."""
        return self._series(name, kind, labels)

    def _series(self, name: str, kind: str, labels: dict) -> "Series | None":
        key = (name, *labels.items())
        series = self._recorders.get(key)
        if series is not None:
            return series
        child = self._child(name, kind, labels)
        if child is None:
            return None
        series = Series(child)
        if len(self._recorders) < _MAX_CACHED_CHILDREN:
            self._recorders[key] = series
        return series

    def inc(self, name: str, value: float = 1, **labels) -> None:
        series = self._series(name, "counter", labels)
        if series is not None:
            series.inc(value)

    def observe(self, name: str, value: float, **labels) -> None:
        series = self._series(name, "histogram", labels)
        if series is not None:
            series.observe(value)

    @contextmanager
    def time(self, name: str, **labels) -> Iterator[None]:
        """Observe the seconds the block takes (also when it raises)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe(name, time.perf_counter() - start, **labels)

    def set(self, name: str, value: float, **labels) -> None:
        child = self._child(name, "gauge", labels)
        if child is not None:
            child.set(value)

    def gauge(self, name: str, read: Callable[[], float], **labels) -> None:
        """A gauge whose value is read from elsewhere each time metrics are sampled."""
        child = self._child(name, "gauge", labels)
        if child is not None:
            self._gauges.append((child, read))

    def counted(self, name: str, read: Callable[[], float], **labels) -> None:
        """A counter whose running total is kept elsewhere (read when sampled); a total that goes
        down (its owner was replaced, e.g. by a reload) starts counting again from there."""
        child = self._child(name, "counter", labels)
        if child is not None:
            self._counted.append([child, read, 0.0])

    # -- reading ----------------------------------------------------------------------------------

    def sample(self) -> None:
        """Bring the read-from-elsewhere values up to date (at each scrape, and periodically
        under workers)."""
        for child, read in self._gauges:
            try:
                child.set(read())
            except Exception:
                log.exception("metrics: reading a gauge failed")
        for entry in self._counted:
            child, read, last = entry
            try:
                now = read()
            except Exception:
                log.exception("metrics: reading a counter failed")
                continue
            if now > last:
                child.inc(now - last)
            elif now < last:
                child.inc(now)
            entry[2] = now

    @property
    def multiprocess(self) -> bool:
        return multiprocess_directory() is not None

    def scrape_registry(self) -> CollectorRegistry:
        """What a scrape collects: THE one place that changes for worker processes. Alone, this
        process's registry; with PROMETHEUS_MULTIPROC_DIR set (workers), every worker's values
        from the shared directory, combined per metric (counters and histograms add up, gauges by
        their Spec.multiprocess_mode)."""
        directory = multiprocess_directory()
        if directory is None:
            return self.registry
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
        return registry

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The scrape's body and content type (OpenMetrics when the scraper asks for it)."""
        self.sample()
        return self.encode(accept)

    def encode(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition without sampling first: safe in another thread (prometheus-client
        locks each value and copies each family's children while it collects)."""
        try:
            encoder, content_type = choose_encoder(accept or "")
        except (TypeError, ValueError):
            # A version it cannot read ('version=abc'): prometheus-client compares it with a tuple and
            # raises. An Accept a server cannot honour may be disregarded (RFC 9110 12.5.1).
            encoder, content_type = choose_encoder("")
        return encoder(self.scrape_registry()), content_type

    def render(self) -> str:
        return self.exposition()[0].decode("utf-8")

    def value(self, name: str, **labels) -> float:
        """One sample's value (0 when it was never recorded): for tests and `relay` commands."""
        self.sample()
        found = self.scrape_registry().get_sample_value(name, {k: str(v) for k, v in labels.items()})
        return 0.0 if found is None else found

    @property
    def counters(self) -> dict[tuple[str, tuple], float]:
        """Every counter sample as {(name, sorted label pairs): value} (the pre-prometheus-client
        shape, kept for callers that read it)."""
        from collections import defaultdict

        self.sample()
        out: dict[tuple[str, tuple], float] = defaultdict(float)
        for family in self.scrape_registry().collect():
            if family.type != "counter":
                continue
            for s in family.samples:
                if s.name.endswith("_total"):
                    out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out


class Series:
    """A labelled counter's inc() or histogram's observe(), as the relay records a dozen samples a
    message. prometheus-client's own methods check at every call what holds for every series that
    labels() made (its label values are all set), and walk a histogram's buckets in a Python loop;
    here the check is made once and the bucket is found by bisection: the same values, written to
    the same value objects (and so the same files under workers). Where prometheus-client's inside
    is not the one this was written against (0.20-0.26), its own methods."""

    __slots__ = ("inc", "observe")

    def __init__(self, child):
        self.inc = getattr(child, "inc", None)
        self.observe = getattr(child, "observe", None)
        try:
            observable = child._is_observable()
        except AttributeError:
            return
        if not observable:
            return  # prometheus-client's methods raise; so does the series
        if isinstance(child, Counter) and callable(getattr(getattr(child, "_value", None), "inc", None)):
            self.inc = _counter_inc(child._value.inc)
        elif isinstance(child, Histogram):
            bounds = getattr(child, "_upper_bounds", None)
            buckets = getattr(child, "_buckets", None)
            total = getattr(child, "_sum", None)
            if (isinstance(bounds, list) and isinstance(buckets, list) and len(bounds) == len(buckets) > 0
                    and callable(getattr(total, "inc", None)) and bounds == sorted(bounds)):
                self.observe = _histogram_observe(total.inc, tuple(b.inc for b in buckets), tuple(bounds))


def _counter_inc(value_inc):
    def inc(amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        value_inc(amount)
    return inc


def _histogram_observe(sum_inc, bucket_incs: tuple, bounds: tuple):
    def observe(amount: float) -> None:
        sum_inc(amount)
        # The first bucket whose upper bound holds the amount (le: amount <= bound), as
        # prometheus-client's loop finds it; a NaN is in none, there as here.
        i = bisect_left(bounds, amount)
        if i < len(bounds) and amount <= bounds[i]:
            bucket_incs[i](1)
    return observe
