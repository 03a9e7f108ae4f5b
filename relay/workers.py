"""`workers: N`: N processes serving every listener the config names, supervised by a parent.

One asyncio process uses one core. The parent binds every listening socket once (so a port in use, or
`127.0.0.1:0`, is settled before any worker exists), then forks the workers before anything else is
opened: the store, threads, event sinks and upstream connections are per worker. Each TCP listener is
bound once per worker slot with SO_REUSEPORT, so that the kernel spreads new connections evenly over
the workers; the parent keeps every socket open, so connections queued on a dead worker's socket wait
for its replacement instead of being reset. A UNIX socket (the milter's) cannot be shared that way: all
workers accept on the one socket. docs/internals.md says why this shape and not another.

The parent forwards SIGHUP (reload) and SIGTERM/SIGINT (drain) to every worker, restarts a worker that
dies (after a back-off that grows while it keeps dying at once), and tells systemd READY=1 only once
every worker listens. Under systemd's watchdog (WATCHDOG_USEC) each worker sends a heartbeat from its
event loop over the same pipe, and the parent pings WATCHDOG=1 only while every worker is alive and
its heartbeat fresh: a worker whose loop is stuck (alive, so never replaced, and still handed its share
of new connections by the kernel) stops the pings, and systemd restarts the relay. The connection count behind `limits.max_connections` is shared
(relay/sharedcount.py); `upstream.pool_size` and `limits.max_connections_per_client` are divided.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import shutil
import signal
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import signals, systemd
from .config import Endpoint, Settings
from .policies import Policies, load_policies
from .sharedcount import SharedCount

log = logging.getLogger("relay.workers")

RESTART_DELAY = 1.0  # seconds before a dead worker is replaced; doubled while it keeps dying young
RESTART_DELAY_MAX = 30.0
STABLE_AFTER = 10.0  # seconds a worker must have run for its next death to restart it at once again
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)  # from the parent to every worker
RELOAD_POLL = 0.05  # seconds between looks at whether the reload's reading thread has ended
# Seconds the parent's reading of the files at SIGHUP may take (a few seconds for hundreds of DKIM keys, tens
# for a thousand or more on a busy machine: review-20 F4). One that takes longer (a file on a stalled network
# filesystem) is refused and left behind: a dead worker's replacement, held back while the reading runs, is
# started after all (review-int4 F5). Within systemd's own limit for a reload (TimeoutStartSec, 90 s by
# default), and as long as the workers are given to answer (RELOAD_REPORT_TIMEOUT): a healthy reading of
# many keys is never refused for being slow (review-int2 F2).
RELOAD_READ_TIMEOUT = 75.0
STARTUP_GRACE = 30.0  # seconds a new worker may take to send its first heartbeat (its start: the store)
# Seconds the parent waits for every worker to say whether it took a reloaded config before it tells
# systemd the reload failed. A worker reads the files in a thread (tens of seconds for 1,000 DKIM keys:
# review-20 F4); systemd's own limit for a reload is TimeoutStartSec (90 s by default).
RELOAD_REPORT_TIMEOUT = 75.0
REPORT_BYTES = 2048  # a worker's reload report, at most (within PIPE_BUF: written whole)


@dataclass
class Sockets:
    """One worker slot's listening sockets, in the order of the config."""

    listen: list[list[socket.socket]] = field(default_factory=list)  # per `listen` entry, per address
    bounces_in: list[socket.socket] = field(default_factory=list)
    metrics: list[socket.socket] = field(default_factory=list)
    milter: socket.socket | None = None  # a UNIX milter socket is the same object in every slot
    milter_non_smtpd: socket.socket | None = None  # milter.non_smtpd_listen, shared the same way

    def all(self) -> list[socket.socket]:
        out = [s for group in self.listen for s in group] + self.bounces_in + self.metrics
        return out + [s for s in (self.milter, self.milter_non_smtpd) if s is not None]


@dataclass
class Worker:
    """What the supervisor hands one worker process."""

    slot: int  # 0 .. count-1; a replacement takes the slot (and the sockets) of the worker it replaces
    count: int
    settings: Settings  # the config as of the last good reload the parent saw
    policies: Policies  # loaded by the parent with them: a worker (re)starts in well under a second
    sockets: Sockets
    connections: SharedCount
    ready_fd: int
    heartbeat: float | None = None  # seconds between heartbeats from the event loop; None: no watchdog

    @property
    def leader(self) -> bool:
        """Runs what must run once per relay, not once per worker: the Postfix log follower."""
        return self.slot == 0

    def share(self, total: int) -> int:
        """This worker's part of a cap divided among the workers: never more than the total in all."""
        return max(1, total // self.count)

    def ready(self) -> None:
        line = f"{self.slot} {os.getpid()}\n".encode()
        while True:
            try:
                os.write(self.ready_fd, line)
                return
            except BlockingIOError:  # the pipe is non-blocking (beat()); the parent empties it
                time.sleep(0.01)

    def beat(self) -> None:
        """One heartbeat: this worker's event loop runs. Never waits: one the parent has no room for is
        dropped (the next will do)."""
        try:
            os.write(self.ready_fd, f"{self.slot} {os.getpid()} beat\n".encode())
        except (BlockingIOError, BrokenPipeError):
            pass

    async def tell_reloaded(self, began: float, ok: bool, why: str | None = None) -> None:
        """Tell the parent whether this worker took the config a SIGHUP asked for (`began`: when it
        began reading the files, time.monotonic(): CLOCK_MONOTONIC on Linux, one clock for every
        process). The parent says the reload is done (systemd, the reload counter) only once every
        worker has, and says it failed when one refused. One line, at most REPORT_BYTES (a pipe takes up to PIPE_BUF bytes whole, so
        lines of several workers never interleave). Never blocks the event loop: a pipe full for a
        moment is tried again; a parent gone is no one to tell."""
        import asyncio

        text = "ok" if ok else "refused " + (" ".join((why or "see the worker's log").split()) or "?")
        line = f"{self.slot} {os.getpid()} reload {began:.6f} {text}"
        data = line.encode("utf-8", "replace")[:REPORT_BYTES - 1].decode("utf-8", "ignore").encode() + b"\n"
        for _ in range(200):
            try:
                os.write(self.ready_fd, data)
                return
            except BlockingIOError:
                await asyncio.sleep(0.05)
            except BrokenPipeError:
                return
        log.error("could not tell the parent the outcome of a reload (its pipe stayed full)")

    async def heartbeats(self) -> None:
        """Beats from the event loop for as long as it runs (the drain at SIGTERM included): a loop
        that is stuck sends none, which is what the parent's watchdog pings are withheld for."""
        if self.heartbeat is None:
            return
        import asyncio

        while True:
            self.beat()
            await asyncio.sleep(self.heartbeat)


def bind_sockets(settings: Settings, count: int) -> list[Sockets]:
    """Every listener the config names, once per worker slot. Raises OSError (port in use) before
    any worker exists."""
    slots = [Sockets() for _ in range(count)]
    opened: list[socket.socket] = []
    try:
        for n, listener in enumerate(settings.listen):
            for i, group in enumerate(_bind_reuseport(listener.endpoint, count, opened, f"listen[{n}].address")):
                slots[i].listen.append(group)
        if settings.bounces_in is not None and settings.bounces_in.listen is not None:
            for i, group in enumerate(_bind_reuseport(settings.bounces_in.listen, count, opened,
                                                      "bounces_in.listen")):
                slots[i].bounces_in = group
        if settings.metrics is not None:
            for i, group in enumerate(_bind_reuseport(settings.metrics, count, opened, "metrics.listen")):
                slots[i].metrics = group
        if settings.milter is not None:
            wanted = [("milter", settings.milter)]
            if settings.milter.has_non_smtpd:
                wanted.append(("milter_non_smtpd", settings.milter.non_smtpd()))
            for attr, m in wanted:
                key = "milter.listen" if attr == "milter" else "milter.non_smtpd_listen"
                if m.path is not None:
                    from .milter.server import bind_milter_socket
                    shared = bind_milter_socket(m, listen=False, key=key)
                    opened.append(shared)
                    for s in slots:
                        setattr(s, attr, shared)
                else:
                    for i, group in enumerate(_bind_reuseport(m.endpoint, count, opened, key)):
                        setattr(slots[i], attr, group[0])
    except BaseException:
        for sock in opened:
            sock.close()
        raise
    return slots


def _bind_reuseport(endpoint: Endpoint, count: int, opened: list, key: str) -> list[list[socket.socket]]:
    """`count` listening sockets on each address of the endpoint, all on one port. An address that
    cannot be bound raises OSError naming the config key and the address: the bare "[Errno 98] Address
    already in use" left the operator to guess which of the listeners it was."""
    try:
        return _bind_group(endpoint, count, opened)
    except OSError as exc:
        why = exc.strerror or str(exc)
        named = OSError(f"{key}: cannot listen on {endpoint}: {why[:1].lower()}{why[1:]}")
        named.errno = exc.errno
        raise named from None


def _bind_group(endpoint: Endpoint, count: int, opened: list) -> list[list[socket.socket]]:
    infos = socket.getaddrinfo(endpoint.host or None, endpoint.port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    addresses = list(dict.fromkeys((info[0], info[4]) for info in infos))
    groups: list[list[socket.socket]] = [[] for _ in range(count)]
    for family, address in addresses:
        # A socket without SO_REUSEPORT first: it fails if anything else holds the port (a second relay
        # with SO_REUSEPORT would otherwise join the group and take half the connections), and it
        # settles port 0 to one port for every copy.
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            probe.bind(address)
            port = probe.getsockname()[1]
        address = (address[0], port) + tuple(address[2:])
        for group in groups:
            sock = socket.socket(family, socket.SOCK_STREAM)
            opened.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            # Not listening yet: the worker's listen() opens it (asyncio's create_server(sock=) calls
            # it), so that a connection is accepted only once a worker can serve it, and the kernel
            # counts a worker's socket in the group only from then on.
            sock.setblocking(False)
            group.append(sock)
    return groups


@dataclass
class _Slot:
    index: int
    pid: int | None = None
    started: float = 0.0
    ready: bool = False
    failures: int = 0  # deaths in a row, each soon after its start
    reload_pending: bool = False  # a SIGHUP came while it was starting (it ignores SIGHUP until it listens)
    restart_at: float | None = None
    beat: float | None = None  # monotonic time of its last heartbeat (None: none yet)


@dataclass
class _Reload:
    """A reload the parent asked of its workers (one SIGHUP, or several in a row), until every worker
    told the outcome of a reload it began after the last SIGHUP was sent to it. Began when: the kernel
    merges a SIGHUP sent while another is still pending into one, and a worker reloads again after a
    reload that a SIGHUP came during (RelayServer.reload), so the reports of a worker are not one per
    SIGHUP; the one that began reading later than the parent asked reflects the files as they are."""

    settings: Settings | None  # what the parent read (None: it refused the files itself)
    policies: Policies | None
    error: str | None  # why the parent refused them
    deadline: float  # monotonic; past it, a worker that has not answered is taken for a refusal
    # (slot, pid) -> when the parent asked it (CLOCK_MONOTONIC, the same clock in every process)
    waiting: dict[tuple[int, int], float] = field(default_factory=dict)
    refused: dict[tuple[int, int], str] = field(default_factory=dict)  # (slot, pid) -> why
    took: set[tuple[int, int]] = field(default_factory=set)
    # Slots whose worker ended before it answered (or was dead when the reload began), waiting for their
    # replacement: slot -> what became of the worker. The replacement's own answer decides for the slot
    # (_spawn puts it in `waiting`); till then the reload is not over, and never told as taken.
    dead: dict[int, str] = field(default_factory=dict)


class Supervisor:
    """The parent: starts the workers, forwards signals, replaces the dead."""

    def __init__(self, settings: Settings, run_worker: Callable[[Worker], None],
                 report_error: Callable[[BaseException], int]):
        self.settings = settings  # what a new worker starts with: the last good reload
        self.policies = load_policies(settings).prepare()  # before any socket: a broken policy stops the start here
        self.original = settings
        self.count = settings.workers
        self.run_worker = run_worker
        self.report_error = report_error
        self.sockets = bind_sockets(settings, self.count)
        self.connections = SharedCount(self.count)
        self.metrics_dir = _metrics_directory(settings)
        self.slots = [_Slot(i) for i in range(self.count)]
        self.stopping = False
        self.announced = False  # READY=1 sent: every worker listened once
        self.exit_code = 0
        self._signals: list[int] = []
        self.watchdog: float | None = None  # seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC)
        self._withheld_for: set[tuple] = set()  # the workers the last pings were withheld for
        self._reload: _Reload | None = None  # a reload the workers have not all answered yet
        self._reload_counter = None  # relay_config_reloads_total, counted here (made at the first reload)
        # The parent's reading of the files at SIGHUP (_begin_reload): a thread, so that this loop goes
        # on pinging the watchdog, reaping and taking signals while it reads (2-3 s for a few hundred
        # DKIM keys; with WatchdogSec= shorter than that, systemd killed the relay mid-reload).
        self._reloading: threading.Thread | None = None
        self._reading_deadline = 0.0  # monotonic: past it, the reading is given up (RELOAD_READ_TIMEOUT)
        self._stuck: threading.Thread | None = None  # a reading given up on that has not ended (yet)
        self._reload_read: tuple | None = None  # (settings, policies, error) once the thread is done
        self._reload_again = False  # a SIGHUP came during the reading: read again after it

    # -- the parent's loop -------------------------------------------------------------------------

    def run(self) -> int:
        ready_r, self._ready_w = os.pipe()
        wake_r, wake_w = os.pipe()
        # The workers' end too: a heartbeat never blocks a worker's event loop (Worker.beat).
        for fd in (ready_r, self._ready_w, wake_r, wake_w):
            os.set_blocking(fd, False)
        self._parent_fds = (ready_r, wake_r, wake_w)  # closed in every worker
        # The wakeup pipe only wakes the select below; the signals themselves are kept by _on_signal.
        # A pipe full under a flood of signals (an operator repeating SIGTERM) is harmless, but CPython
        # would report each lost byte on stderr from inside the signal machinery: once that report
        # interrupted the parent's own write to stderr, the parent hung on the stream's lock for ever
        # (its workers gone, the relay never exiting).
        old_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, self._on_signal)
        watchdog = self.watchdog = _watchdog_interval()  # before the workers: they beat at half of it
        log.info("starting %d workers", self.count)
        for slot in self.slots:
            self._spawn(slot)
        buffered = b""
        next_ping = time.monotonic()
        try:
            while True:
                for signum in self._take_signals():
                    self._handle_signal(signum)
                self._reap()
                if self.stopping and not any(s.pid for s in self.slots):
                    log.info("stopped: every worker has exited")  # each logged its own drain (server.stop)
                    break
                if self._reloading is not None and not self._reloading.is_alive():
                    self._end_reading()
                now = time.monotonic()
                if self._reloading is not None and now >= self._reading_deadline:
                    self._give_up_reading()
                for slot in self.slots:
                    # Never while the reload's thread runs: fork() copies a process whose other thread
                    # may hold a lock (logging's, the import lock) that nothing in the child releases;
                    # and the replacement must start with the config being read. It starts after.
                    if slot.pid is None and slot.restart_at is not None and now >= slot.restart_at \
                            and not self.stopping and self._reloading is None:
                        self._spawn(slot)
                if self._reload_again and self._reloading is None and not self.stopping:
                    self._reload_again = False
                    self._begin_reading()
                if watchdog and now >= next_ping:
                    # Only while every worker answers (sd_notify(3): WATCHDOG=1 says the service works).
                    if self._all_answering(now):
                        systemd.notify("WATCHDOG=1")
                        next_ping = now + watchdog
                    else:
                        # Withheld: look again in a second, so that a worker that answers again (or a
                        # replacement that started) is told to systemd before WatchdogSec (twice the
                        # interval) runs out; a full interval later is systemd's deadline itself.
                        next_ping = now + min(1.0, watchdog)
                if self._reload is not None:
                    self._end_reload_when_told(now)
                waits = [s.restart_at - now for s in self.slots if s.pid is None and s.restart_at is not None
                         and self._reloading is None]
                if watchdog:
                    waits.append(next_ping - now)
                if self._reload is not None:
                    waits.append(self._reload.deadline - now)
                if self._reloading is not None:
                    waits.append(RELOAD_POLL)  # to see the thread end (it writes to no pipe of ours)
                    waits.append(self._reading_deadline - now)
                timeout = max(0.0, min(waits + [1.0]))
                try:
                    readable, _, _ = select.select([ready_r, wake_r], [], [], timeout)
                except InterruptedError:
                    continue
                if wake_r in readable:
                    _drain(wake_r)
                if ready_r in readable:
                    buffered += _drain(ready_r)
                    *lines, buffered = buffered.split(b"\n")
                    for line in lines:
                        index, pid, *word = line.split(b" ", 3)
                        slot = self.slots[int(index)]
                        if slot.pid != int(pid):
                            continue  # not a word from a worker since replaced
                        if word[:1] == [b"reload"]:
                            self._on_reloaded(slot, b" ".join(word[1:]).decode("utf-8", "replace"))
                        elif word:
                            slot.beat = time.monotonic()
                        else:
                            self._on_ready(slot.index)
        finally:
            # Whatever comes now (the operator repeating SIGTERM) must not change how the relay ends:
            # at interpreter exit Python would put SIG_DFL back under a handler, and a SIGTERM then
            # killed the process (exit status -15 instead of its own).
            signals.ignore(FORWARDED)
            signal.set_wakeup_fd(old_wakeup)
            for sock in {id(s): s for slot in self.sockets for s in slot.all()}.values():
                sock.close()
            if self.settings.milter is not None:
                from .milter.server import remove_milter_socket
                remove_milter_socket(self.settings.milter)
                if self.settings.milter.has_non_smtpd:
                    remove_milter_socket(self.settings.milter.non_smtpd())
            for fd in (ready_r, self._ready_w, wake_r, wake_w):
                os.close(fd)
            if self.metrics_dir is not None and self.metrics_dir.owned:
                shutil.rmtree(self.metrics_dir.path, ignore_errors=True)
        return self.exit_code

    def _all_answering(self, now: float) -> bool:
        """Whether every worker is alive and its event loop sent a heartbeat within the watchdog interval
        (one it started less than STARTUP_GRACE ago may not have sent one yet). While stopping, the
        workers that already ended are no fault. A change is told to systemd (STATUS=) and logged once."""
        stale: dict[tuple, str] = {}  # (slot, pid) -> why, for the log and STATUS
        for slot in self.slots:
            if slot.pid is None:
                # Dead and waiting for its restart (the backoff grows to 30 s): the supervisor is at
                # work, and withholding the ping for it would have systemd kill the whole relay, the
                # other workers' sessions with it, over one worker's crash. Its replacement is judged
                # like any worker once started.
                continue
            if slot.beat is None:
                if now - slot.started >= max(self.watchdog, STARTUP_GRACE):
                    stale[(slot.index, slot.pid)] = (f"worker {slot.index} (pid {slot.pid}) has sent no heartbeat "
                                                     f"since its start {now - slot.started:.0f} s ago")
            elif now - slot.beat >= self.watchdog:
                stale[(slot.index, slot.pid)] = (f"worker {slot.index} (pid {slot.pid}) has sent no heartbeat for "
                                                 f"{now - slot.beat:.1f} s")
        if set(stale) != self._withheld_for:
            self._withheld_for = set(stale)
            if stale:
                why = "; ".join(stale.values())
                log.error("watchdog: %s; not telling systemd WATCHDOG=1 until it answers", why)
                systemd.notify(f"STATUS=Watchdog withheld: {why}")
            else:
                log.info("watchdog: every worker answers again")
                systemd.notify(f"STATUS=All {self.count} workers answering")
        return not stale

    def _on_signal(self, signum, _frame) -> None:
        self._signals.append(signum)  # handled in the loop, not inside the handler

    def _take_signals(self) -> list[int]:
        taken, self._signals = self._signals, []
        return taken

    def _handle_signal(self, signum: int) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            if not self.stopping:
                log.info("stopping: draining %d workers", sum(1 for s in self.slots if s.pid))
                systemd.notify("STOPPING=1")
            self.stopping = True
            self._reload = None  # moot: the workers drain (systemd heard STOPPING=1)
            self._forward(signum)
            # The parent's copies of the listening sockets would keep each port open after the
            # workers stop listening: a client connecting during the drain would sit in the
            # kernel's backlog with no greeting until the parent exits (up to a minute), then be
            # reset. No worker is started while stopping, so let them go: it is refused at once.
            for sock in {id(s): s for slot in self.sockets for s in slot.all()}.values():
                sock.close()
        elif signum == signal.SIGHUP and not self.stopping:  # a reload is moot while the workers drain
            # systemd hears the parent only: "reloading" while it and its workers read the files,
            # READY=1 with the outcome once every worker has said whether it took them (each logs its
            # own reasons). Before, READY=1 "reloaded" followed the parent's own reading at once, and
            # the workers refusing what the parent did not check (a users file's line, VERP's settings,
            # an event sink) was told to nobody but the log: systemd said "reloaded", and new workers
            # started with a config the running ones had refused (review F4).
            # Not before the first READY=1: told while starting, it would have systemd take the relay
            # for started before every worker listens.
            if self._reloading is not None:
                self._reload_again = True  # the files may have changed since the thread read them
                return
            if self.announced and self._reload is None:
                systemd.reloading()
            self._begin_reading()

    def _begin_reading(self) -> None:
        """SIGHUP: the parent reads and checks the files in a thread (_read_reload), so that its loop
        goes on pinging the watchdog, reaping and taking signals; _end_reading goes on once it ends, or
        _give_up_reading once it has run RELOAD_READ_TIMEOUT."""
        if self._stuck is not None and self._stuck.is_alive():
            # A thread blocked on a file (a stalled filesystem, a FIFO) stays blocked: another reading
            # would block beside it. Refused at once, until that one ends.
            self._refuse_reload(f"an earlier reading of the files, given up after {RELOAD_READ_TIMEOUT:g} s, "
                                f"has still not ended (a file on a stalled filesystem, or a FIFO?): not reading "
                                f"them again until it does")
            return
        self._stuck = None
        self._reload_read = None
        self._reading_deadline = time.monotonic() + RELOAD_READ_TIMEOUT
        self._reloading = threading.Thread(target=self._read_in_thread, name="relay-reload", daemon=True)
        self._reloading.start()

    def _read_in_thread(self) -> None:
        """The reload's thread: only reads (nothing of the supervisor's state but its outcome). A thread
        given up on (_give_up_reading) is no longer self._reloading: what it reads then is dropped."""
        outcome = self._read_reload()
        if self._reloading is threading.current_thread():
            self._reload_read = outcome

    def _give_up_reading(self) -> None:
        """The reading has run RELOAD_READ_TIMEOUT: refused, every worker keeps the running config (none is
        told: each would read, and block on, the same file), and the thread is left behind (a thread blocked
        in a read cannot be stopped; it is a daemon). The loop goes on as after any reading: a dead worker's
        replacement, held back while it ran, starts now (review-int4 F5: held back for as long as the read
        hung, while the watchdog pinged on). It is forked with that thread blocked in a system call: one
        that held a lock the replacement needs would leave the replacement without heartbeats, which the
        watchdog tells (_all_answering), never a relay that silently stops replacing its workers."""
        self._stuck, self._reloading = self._reloading, None
        self._reload_read = None
        self._reload_again = False  # moot: a new reading would block on the same file (_begin_reading)
        if self.stopping:
            return
        self._refuse_reload(f"reading the config and policies did not end within {RELOAD_READ_TIMEOUT:g} s (too "
                            f"many files to read in that time, or one on a stalled filesystem?); no worker was told")

    def _refuse_reload(self, error: str) -> None:
        """The parent refuses a reload before any worker is told: the log, the counter and systemd say why,
        and every process keeps the config it runs."""
        log.error("reload refused, new workers start with the previous config: %s", error)
        self._count_reload(False)
        if self.announced and self._reload is None:
            systemd.reloaded(error)

    def _end_reading(self) -> None:
        """The parent's reading is over: the SIGHUP to every worker, whose answers decide the outcome
        (_end_reload_when_told)."""
        self._reloading.join()
        self._reloading = None
        settings, policies, error = self._reload_read or (None, None, "the reading ended without an outcome")
        if self.stopping:
            return  # SIGTERM came meanwhile: the workers drain, nothing of it is used
        now = time.monotonic()
        # A SIGHUP during a reload starts it anew: the outcome is the last one's, as every worker
        # answers that one (_Reload).
        self._reload = _Reload(settings, policies, error, now + RELOAD_REPORT_TIMEOUT)
        for slot in self.slots:
            if slot.pid is None:
                if slot.restart_at is not None:  # dead, its replacement due: that one answers for the slot
                    self._reload.dead[slot.index] = f"worker {slot.index} was not running"
                continue
            key = (slot.index, slot.pid)
            self._reload.waiting[key] = now
            if slot.ready:
                try:
                    os.kill(slot.pid, signal.SIGHUP)
                except ProcessLookupError:
                    self._reload.waiting.pop(key, None)  # it died: _ended() hears of it
            else:
                # It may have read the files before they changed: told once it listens (_on_ready).
                slot.reload_pending = True
        self._end_reload_when_told(now)
        # A SIGHUP that came during the reading reads again, from the loop, once
        # the replacements due meanwhile have started: chained here, back to back, SIGHUPs in a row kept
        # every dead worker's slot empty as long as they came (review-int2 F4).

    def _forward(self, signum: int) -> None:
        for slot in self.slots:
            if slot.pid is not None:
                try:
                    os.kill(slot.pid, signum)
                except ProcessLookupError:
                    pass

    def _read_reload(self) -> tuple[Settings | None, Policies | None, str | None]:
        """The files a SIGHUP asks to reload, read and checked as the workers will (server.check_reload:
        the config, the policies, the users file, the smarthost's TLS context, VERP): (settings, policies,
        None), or (None, None, why they are refused). Nothing is put in force here: a worker started
        after the reload must run what its siblings run, so the parent takes the new config only once
        every worker took it (_end_reload_when_told); a broken config keeps the last good one."""
        from .errors import ConfigError
        from .server import check_reload

        try:
            settings, policies = check_reload(self.original)
        except ConfigError as exc:  # each worker logs why and keeps its config; new ones start with the last good one
            return None, None, "; ".join(str(p) for p in exc.problems)
        except Exception as exc:
            return None, None, f"{type(exc).__name__}: {exc}"
        return settings, policies, None

    def _on_reloaded(self, slot: _Slot, word: str) -> None:
        """A worker's word on a reload: "BEGAN ok", or "BEGAN refused WHY" (BEGAN: when it began reading
        the files, CLOCK_MONOTONIC seconds)."""
        reload, key = self._reload, (slot.index, slot.pid)
        began, _, outcome = word.partition(" ")
        try:
            began_at = float(began)
        except ValueError:
            return
        if reload is None or key not in reload.waiting or began_at < reload.waiting[key]:
            # Not an answer to the last SIGHUP (one it began before, with another to follow): it logged
            # its own outcome.
            return
        del reload.waiting[key]
        if outcome == "ok":
            reload.took.add(key)
        else:
            reload.refused[key] = outcome.removeprefix("refused").strip() or "see the worker's log"
        self._end_reload_when_told(time.monotonic())

    def _end_reload_when_told(self, now: float) -> None:
        """Once every worker told (or the deadline passed): the outcome to systemd, the log and the
        reload counter, and the config new workers start with."""
        reload = self._reload
        if reload is None:
            return
        silent = list(reload.waiting)
        if (silent or reload.dead) and now < reload.deadline:
            return  # a dead worker's replacement answers for its slot once it listens (_spawn)
        self._reload = None
        error = reload.error
        if error is None and (reload.refused or silent or reload.dead or not reload.took):
            # Grouped by reason: N workers refusing for the same one is one reason, not N.
            by_reason: dict[str, list[str]] = {}
            for (index, pid), why in sorted(reload.refused.items()):
                by_reason.setdefault(why, []).append(f"worker {index} (pid {pid})")
            parts = [f"{', '.join(who)} refused it: {why}" for why, who in by_reason.items()]
            if silent:
                parts.append(f"{', '.join(f'worker {i} (pid {p})' for i, p in sorted(silent))} did not say "
                             f"within {RELOAD_REPORT_TIMEOUT:g} s whether it took it")
            for index, what in sorted(reload.dead.items()):
                parts.append(f"{what}, and no worker started in its place said within "
                             f"{RELOAD_REPORT_TIMEOUT:g} s whether it took it")
            if not parts:  # unreachable but for a bug: success needs a worker that took it
                parts.append("no worker said it took it")
            took = sorted(reload.took)
            if took:  # the new config runs there: say so, it is not "the previous config" everywhere
                parts.append(f"{', '.join(f'worker {i} (pid {p})' for i, p in took)} took it")
            error = "; ".join(parts)
        if error is None:
            self.settings, self.policies = reload.settings, reload.policies
            log.info("reloaded: every worker runs the new config")
        else:
            log.error("reload refused, new workers start with the previous config: %s", error)
        self._count_reload(error is None)
        if self.announced:
            systemd.reloaded(error)

    def _count_reload(self, ok: bool) -> None:
        """relay_config_reloads_total, once per SIGHUP with the relay's outcome: counted here, in the
        multiprocess directory, where a scrape reaching any worker sums it with theirs."""
        if self.metrics_dir is None:
            return
        if self._reload_counter is None:
            from .metrics import process_counter
            self._reload_counter = process_counter("relay_config_reloads_total")
        self._reload_counter.labels(result="ok" if ok else "failed").inc()

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self.slots if s.pid == pid), None)
            if slot is not None:
                self._ended(slot, os.waitstatus_to_exitcode(status))

    def _ended(self, slot: _Slot, code: int) -> None:
        pid, slot.pid, slot.ready, slot.reload_pending = slot.pid, None, False, False
        if self._reload is not None and self._reload.waiting.pop((slot.index, pid), None) is not None:
            # It ended before it said whether it took the reload (a refusal it told stands). Its
            # replacement, started during the reload, reads the files once it listens, and its answer
            # decides for the slot (_spawn): a crash unrelated to the reload (an OOM kill under load) no
            # longer makes the reload "refused" while the siblings run the new config and the
            # replacement the old one (review-int4 F6). Till that answer the reload is not over and never
            # told as taken: if it is the reload that kills them, no replacement says "ok", and past
            # RELOAD_REPORT_TIMEOUT it is told as refused, replacements starting with the last good
            # config (review-int2 F2).
            self._reload.dead[slot.index] = (f"worker {slot.index} (pid {pid}) ended (exit status {code}) "
                                             f"before it said whether it took it")
        self.connections.reset(slot.index)  # its connections died with it
        _mark_process_dead(pid, self.metrics_dir)
        if self.stopping:
            # A worker still starting when SIGTERM came ends by the signal itself: that is a stop too.
            if code not in (0, -signal.SIGTERM, -signal.SIGINT):
                log.error("worker %d (pid %d) ended with exit status %d while stopping", slot.index, pid, code)
                self.exit_code = 1
            return
        if not self.announced and code > 0:
            # It failed before the relay was up (an unreadable store, a broken policy, a bug at start):
            # another try would meet the same; stop, and let the operator (or systemd) see why. One
            # killed from outside (a negative status: the signal) is replaced like any other.
            log.error("worker %d (pid %d) ended (exit status %d) before every worker listened; stopping",
                      slot.index, pid, code)
            self.exit_code = 1
            self.stopping = True
            self._forward(signal.SIGTERM)
            return
        now = time.monotonic()
        slot.failures = slot.failures + 1 if now - slot.started < STABLE_AFTER else 0
        delay = min(RESTART_DELAY * 2 ** max(slot.failures - 1, 0), RESTART_DELAY_MAX)
        slot.restart_at = now + delay
        log.error("worker %d (pid %d) ended (exit status %d); starting another in %.0f s", slot.index, pid,
                  code, delay)

    def _on_ready(self, index: int) -> None:
        slot = self.slots[index]
        slot.ready = True
        if slot.reload_pending and slot.pid is not None:
            slot.reload_pending = False
            os.kill(slot.pid, signal.SIGHUP)
        if not self.announced and all(s.ready for s in self.slots):
            self.announced = True
            log.info("all %d workers listening", self.count)
            systemd.notify("READY=1")

    # -- a worker ----------------------------------------------------------------------------------

    def _spawn(self, slot: _Slot) -> None:
        slot.restart_at = None
        # Started during a reload with the config as it was, it reads the files again once it
        # listens, as its siblings did, and its answer counts as theirs (below).
        slot.reload_pending = self._reload is not None
        slot.started = time.monotonic()
        slot.beat = None
        # Beats twice per ping interval: one late or lost beat does not withhold a ping.
        worker = Worker(slot.index, self.count, self.settings, self.policies, self.sockets[slot.index],
                        self.connections, self._ready_w,
                        heartbeat=self.watchdog / 2 if self.watchdog else None)
        self._parent_pid = os.getpid()
        # A signal the parent forwards to the new pid before the child has its own handlers would
        # run the parent's handler, copied into the child, and be lost there (a lost SIGTERM: the
        # worker serves on and the stopping parent waits for it forever). Blocked across fork(), it
        # waits in the child, pending, until _become_worker() has put the worker's handlers in place.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            raise
        if pid:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            slot.pid = pid
            log.info("worker %d started (pid %d)", slot.index, pid)
            if self._reload is not None:
                # Its answer counts as its siblings' do (review-int4 F6): asked as of its start, so the
                # reload it makes once it listens (reload_pending), which begins later, is the answer.
                self._reload.dead.pop(slot.index, None)
                self._reload.waiting[(slot.index, pid)] = slot.started
            return
        code = 0
        try:
            self._become_worker(worker)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a SIGTERM sent meanwhile ends it now
            self.run_worker(worker)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException as exc:
            code = self.report_error(exc)
        finally:
            logging.shutdown()
            os._exit(code)

    def _become_worker(self, worker: Worker) -> None:
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        # Until the worker's loop takes SIGHUP over, one arriving during its start must not end it
        # (it reads the config as of the parent's last reload anyway).
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        for fd in self._parent_fds:
            os.close(fd)
        mine = {id(s) for s in worker.sockets.all()}
        for other in self.sockets:
            for sock in other.all():
                if id(sock) not in mine:
                    sock.close()
        # systemd hears the parent only (NotifyAccess=main): READY and the watchdog are the parent's.
        os.environ.pop("NOTIFY_SOCKET", None)
        os.environ.pop("WATCHDOG_USEC", None)
        _drain_when_orphaned(self._parent_pid)


PR_SET_PDEATHSIG = 1  # prctl(2)


def _drain_when_orphaned(parent: int) -> None:
    """A worker whose parent died (SIGKILL, a crash) would serve on, unsupervised and unreachable by
    the operator's signals: the kernel sends it SIGTERM then, and it drains and exits (Linux)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl: no signal will come
        os.kill(os.getpid(), signal.SIGTERM)


def serve_workers(settings: Settings, run_worker: Callable[[Worker], None],
                  report_error: Callable[[BaseException], int]) -> int:
    return Supervisor(settings, run_worker, report_error).run()


def _drain(fd: int) -> bytes:
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return out
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            raise
        if not chunk:
            return out
        out += chunk


def _watchdog_interval() -> float | None:
    usec = os.environ.get("WATCHDOG_USEC")
    return int(usec) / 2e6 if usec and usec.isdigit() else None


# -- metrics across workers ----------------------------------------------------------------------

@dataclass(frozen=True)
class MetricsDirectory:
    path: Path
    owned: bool  # made by us (removed at exit), or the operator's PROMETHEUS_MULTIPROC_DIR (wiped at start)


def _metrics_directory(settings: Settings) -> MetricsDirectory | None:
    """prometheus-client's multiprocess mode keeps each worker's values in files in
    PROMETHEUS_MULTIPROC_DIR, and whichever worker answers a scrape sums them. The directory must be
    set before the workers start and must not hold another run's files."""
    if settings.metrics is None:
        return None
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
        return MetricsDirectory(path, owned=False)
    path = Path(tempfile.mkdtemp(prefix="relay-metrics-", dir=os.environ.get("RUNTIME_DIRECTORY") or None))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return MetricsDirectory(path, owned=True)


def _mark_process_dead(pid: int, directory: MetricsDirectory | None) -> None:
    """A dead worker's live gauges (sessions open now) must stop counting."""
    if directory is None:
        return
    try:
        from prometheus_client import multiprocess
    except ImportError:
        return
    try:
        multiprocess.mark_process_dead(pid, str(directory.path))
    except OSError:
        pass
