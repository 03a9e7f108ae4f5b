"""The systems under test, each started fresh on free loopback ports and stopped afterwards.

- Sink: Postfix's smtp-sink, counting messages (its `-c` counters) in a reader thread.
- Direct: no system at all; smtp-source talks to the sink (the limit of this machine).
- Relay: `python -m relay serve -c CONFIG`, upstream = the sink.
- RelayMx: the same relay in `upstream: {mode: mx}`: a loopback DNS server (dnslib, in this process)
  publishes the recipient domain's MX, whose host is the sink; DNS answers are cached by the relay.
- PostfixOpenDKIM: a private Postfix instance (own config, queue and data directories in the bench's
  temp dir, its own master) relaying to the sink, with OpenDKIM as its signing milter.
- PostfixRelayMilter: the same Postfix, with the relay as its milter instead of OpenDKIM.

Nothing here touches the system's Postfix configuration (/etc/postfix is only read).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import procstat

REPO = Path(__file__).resolve().parent.parent
DOMAIN = "bench.example"
SELECTOR = "bench"
SENDER = f"sender@{DOMAIN}"
RECIPIENT = "rcpt@sink.example"


class SystemError_(RuntimeError):
    """A system would not start or broke during a run; the message says why (with its stderr)."""


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[:2])
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port(addresses: tuple[str, ...] = ("127.0.0.1",),
              kinds: tuple[int, ...] = (socket.SOCK_STREAM,)) -> int:
    """A port free on every one of `addresses` for every socket kind of `kinds`, for a program that
    binds it later (Postfix, smtp-sink, Prometheus). Taken below the kernel's ephemeral range: a port
    that bind(("...", 0)) had just handed out went back into that range, where any process's next
    bind to port 0 could take it before the program did ("Address already in use" when two pytest
    workers ran side by side). Each pytest-xdist worker (PYTEST_XDIST_WORKER=gwN) has a slice of its
    own, so two workers never pick the same port; within one, a port is checked free first."""
    import random

    ephemeral_low, ephemeral_high = _ephemeral_range()
    low, high = 10000, min(32000, ephemeral_low)
    if high - low < 4000:  # an ephemeral range reaching down (e.g. "1024 65535"): take ports above it
        low, high = ephemeral_high + 1, 65536
    if high - low < 400:  # nowhere outside it: the kernel's choice, as before
        low, high = 1024, 65536
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    # Slice 0 for a run without workers (a targeted run beside a suite), 1.. for gw0, gw1, ...
    index = int(worker[2:]) + 1 if worker[:2] == "gw" and worker[2:].isdigit() else 0
    slices = 4
    size = (high - low) // slices
    start = low + (index % slices) * size
    for _ in range(200):
        port = start + random.randrange(size)
        held = []
        try:
            for address in addresses:
                for kind in kinds:
                    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, kind)
                    held.append(sock)
                    sock.bind((address, port))
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
        return port
    raise SystemError_(f"no port free on all of {addresses} in {start}-{start + size}")


def wait_port(port: int, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> bool:
    """True once 127.0.0.1:port accepts a connection; False on timeout or when proc has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def tail(path: Path, limit: int = 3000) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", "replace")


def stop_process(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# --------------------------------------------------------------------------------------------
# The sink


class Sink:
    """smtp-sink on a free port. `count` follows its mesg= counter; `dump_dir` keeps each message."""

    _MESG = re.compile(rb"mesg=(\d+)")

    def __init__(self, workdir: Path, dump: bool = False, backlog: int = 1000, max_sessions: int = 256):
        self.port = free_port()
        self.count = 0
        self.t_first: float | None = None  # monotonic time the counter first moved after mark()
        self.t_last: float | None = None  # monotonic time of its last change
        self.t_changed = 0.0  # monotonic time of the counter's last change, mark() or not
        self._base = 0
        self._cond = threading.Condition()
        # The count wait_for() waits for: the reader wakes it then, not at every message (at ~2,000
        # messages a second that was a wake-up of the harness's main thread a message, CPU taken
        # from whatever the bench measures on the same cores). Its 0.5 s timeouts still see a stall.
        self._wake_at = 0
        self.dump_dir = None
        cmd = ["smtp-sink", "-u", "nobody", "-c", "-m", str(max_sessions)]
        if dump:
            self.dump_dir = Path(workdir) / f"sink-dump-{self.port}"
            self.dump_dir.mkdir(parents=True, exist_ok=True)
            shutil.chown(self.dump_dir, user="nobody") if os.geteuid() == 0 else None
            cmd += ["-d", f"{self.dump_dir}/%M."]
        cmd += [f"127.0.0.1:{self.port}", str(backlog)]
        self.stderr_path = Path(workdir) / f"sink-{self.port}.stderr"
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not wait_port(self.port, 10, self.proc):
            self.stop()
            raise SystemError_(f"smtp-sink did not start: {tail(self.stderr_path)}")
        # wait_port's probe connection counts as a session, not a message: harmless.

    def _read(self) -> None:
        fd = self.proc.stdout.fileno()
        pending = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            now = time.monotonic()
            pending = (pending + chunk)[-256:]
            found = self._MESG.findall(pending)
            if found:
                n = int(found[-1])
                with self._cond:
                    if n != self.count:
                        self.count = n
                        self.t_changed = now
                        if self.t_first is None and n > self._base:
                            self.t_first = now
                        self.t_last = now
                        if n >= self._wake_at:
                            self._cond.notify_all()

    def mark(self) -> int:
        """Start a measurement: the next change of the counter is `t_first`."""
        with self._cond:
            self._base = self.count
            self.t_first = None
            self.t_last = None
            return self.count

    def wait_for(self, target: int, timeout: float, stall: float = 15.0, source: subprocess.Popen | None = None) -> bool:
        """Wait until count >= target. Gives up at `timeout`, or when nothing arrived for `stall`
        seconds after the load generator (`source`) has exited."""
        deadline = time.monotonic() + timeout
        last_change = time.monotonic()
        last_count = self.count
        with self._cond:
            self._wake_at = target
            while self.count < target:
                now = time.monotonic()
                if now >= deadline:
                    return False
                if self.count != last_count:
                    last_count, last_change = self.count, now
                if source is not None and source.poll() is not None and now - last_change > stall:
                    return False
                if self.proc.poll() is not None:
                    return False
                self._cond.wait(min(0.5, deadline - now))
        return True

    def stop(self) -> None:
        stop_process(self.proc)
        self._stderr.close()


# --------------------------------------------------------------------------------------------
# Systems


class System:
    name = "system"
    signs = False  # adds a DKIM signature to what reaches the sink
    port: int
    group: procstat.Group | None = None  # the processes whose CPU and memory are the system's cost

    def start(self, sink_port: int) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        pass

    def diagnostics(self) -> str:
        return ""

    def single_pid(self) -> int | None:
        """The pid whose VmHWM is the system's peak RSS, when the system is one process."""
        return None


class Direct(System):
    name = "direct"

    def start(self, sink_port: int) -> None:
        self.port = sink_port
        self.group = None


class Relay(System):
    """The relay as a subprocess; `config_factory(sink_port, listen_port, milter_port)` writes its config."""

    name = "relay"
    signs = True

    def __init__(self, workdir: Path, config_factory, python: str = sys.executable, profile: str | None = None,
                 workers: int | None = 1, uvloop: bool = False):
        self.workdir = Path(workdir)
        self.config_factory = config_factory
        self.workers = workers  # `workers:` in its config (None: the config's own, or one per core)
        self.uvloop = uvloop  # run on uvloop (installed by hand) instead of asyncio's loop
        if workers and workers > 1:
            self.name = f"relay-workers{workers}"
        if uvloop:
            self.name += "-uvloop"
        self.python = python
        self.proc = None
        self.profile = profile  # a py-spy output path: run the relay under `py-spy record`
        self.spy = None

    def _spawn(self, config: Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        # `relay serve` runs asyncio.run(): uvloop's policy, set before, makes that loop (and the forked
        # workers') uvloop's, with the relay's code unchanged.
        start = (["-c", "import asyncio, runpy, sys, uvloop; asyncio.set_event_loop_policy(uvloop.EventLoopPolicy()); "
                        "sys.argv[0] = 'relay'; runpy.run_module('relay', run_name='__main__', alter_sys=True)"]
                 if self.uvloop else ["-m", "relay"])
        self.stderr_path = self.workdir / f"relay-{self.port}.stderr"
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([self.python, *start, "serve", "-c", str(config)], cwd=str(REPO),
                                     env=env, stdout=self._stderr, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.group = procstat.Group(tree_roots=[self.proc.pid])

    def start(self, sink_port: int) -> None:
        self.port = free_port()
        self.config = self.config_factory(sink_port=sink_port, listen_port=self.port, milter_port=None,
                                          workers=self.workers)
        self._spawn(self.config)
        if not wait_port(self.port, 60, self.proc):
            raise SystemError_(f"the relay did not start listening on 127.0.0.1:{self.port} "
                               f"(exit code {self.proc.poll()}):\n{tail(self.stderr_path)}")
        if self.workers and self.workers > 1:
            # The port opens with the first worker; the load must find them all.
            deadline = time.time() + 60
            while f"all {self.workers} workers listening" not in tail(self.stderr_path):
                if time.time() > deadline or self.proc.poll() is not None:
                    raise SystemError_(f"the relay's workers did not all start:\n{tail(self.stderr_path)}")
                time.sleep(0.1)
        if self.profile:
            self.start_profile()

    def start_profile(self) -> None:
        spy = shutil.which("py-spy")
        if not spy:
            return
        self.spy_log = open(self.workdir / "py-spy.log", "wb")
        self.spy = subprocess.Popen([spy, "record", "--pid", str(self.proc.pid), "--format", "raw", "--rate", "250",
                                     "--output", self.profile, "--nonblocking"],
                                    stdout=self.spy_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        time.sleep(1.0)

    def stop_profile(self) -> None:
        if self.spy is not None and self.spy.poll() is None:
            self.spy.send_signal(signal.SIGINT)
            try:
                self.spy.wait(30)
            except subprocess.TimeoutExpired:
                self.spy.kill()
        self.spy = None

    def single_pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        self.stop_profile()
        stop_process(self.proc, timeout=15)
        if getattr(self, "_stderr", None):
            self._stderr.close()

    def diagnostics(self) -> str:
        return tail(self.stderr_path) if getattr(self, "stderr_path", None) else ""


class RelayMx(Relay):
    """The relay delivering to the recipient domain's MX (the sink, found through a loopback DNS server)."""

    name = "relay-mx"

    def start(self, sink_port: int) -> None:
        if str(REPO) not in sys.path:
            sys.path.insert(0, str(REPO))
        from tests.support.dns_server import LoopbackDNS

        self.dns = LoopbackDNS().start()
        domain = RECIPIENT.rpartition("@")[2]
        self.dns.zone.add(domain, "MX", (10, f"mx.{domain}"))
        self.dns.zone.add(f"mx.{domain}", "A", "127.0.0.1")
        self.port = free_port()
        self.config = self.config_factory(sink_port=sink_port, listen_port=self.port, milter_port=None,
                                          workers=self.workers, mx_nameserver=self.dns.nameserver)
        self._spawn(self.config)
        if not wait_port(self.port, 60, self.proc):
            raise SystemError_(f"the relay (mode mx) did not start listening on 127.0.0.1:{self.port} "
                               f"(exit code {self.proc.poll()}):\n{tail(self.stderr_path)}")

    def stop(self) -> None:
        super().stop()
        if getattr(self, "dns", None) is not None:
            self.dns.stop()
            self.dns = None


class OpenDKIM:
    """OpenDKIM in the foreground with its own config file, signing DOMAIN with the bench key."""

    def __init__(self, workdir: Path, key_pem: Path):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key = key_pem
        self.port = free_port()
        self.conf = self.dir / "opendkim.conf"
        self.conf.write_text(
            "Mode s\n"
            f"Domain {DOMAIN}\n"
            f"Selector {SELECTOR}\n"
            f"KeyFile {key_pem}\n"
            f"Socket inet:{self.port}@127.0.0.1\n"
            "Canonicalization relaxed/simple\n"
            "SignatureAlgorithm rsa-sha256\n"
            "InternalHosts 127.0.0.1\n"
            "RequireSafeKeys no\n"
            "Syslog no\n"
            f"PidFile {self.dir}/opendkim.pid\n")
        self.proc = None

    def start(self) -> None:
        self.stderr_path = self.dir / "opendkim.stderr"
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(["opendkim", "-f", "-x", str(self.conf)], stdout=self._stderr,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if not wait_port(self.port, 20, self.proc):
            raise SystemError_(f"opendkim did not start (exit {self.proc.poll()}): {tail(self.stderr_path)}")

    def stop(self) -> None:
        stop_process(self.proc)
        if getattr(self, "_stderr", None):
            self._stderr.close()


MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
virtual unix - n n - - virtual
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


class PostfixInstance:
    """A private Postfix: config_directory, queue_directory and data_directory under `root`, its own
    master listening on 127.0.0.1:port, relayhost = the sink. Started with `postfix -c DIR start`,
    stopped with `postfix -c DIR stop`, and its directory removed by the caller."""

    def __init__(self, root: Path, sink_port: int, milter_port: int, max_size: int, milter: str | None = None,
                 non_smtpd_milter: str | None = None):
        """`milter`: Postfix's name for the milter socket ("unix:/path", "inet:host:port") when it is
        not inet:127.0.0.1:`milter_port`; `non_smtpd_milter`: the one for non_smtpd_milters (mail
        submitted with sendmail(1)) when it is not the same."""
        self.root = Path(root)
        self.port = free_port()
        self.etc = self.root / "etc"
        self.spool = self.root / "spool"
        self.data = self.root / "lib"
        for d in (self.etc, self.spool, self.data):
            d.mkdir(parents=True, exist_ok=True)
        # Postfix's own users must be able to reach the queue: every parent must be traversable.
        top = Path(tempdir_root()).resolve()
        p = self.root.resolve()
        while top in p.parents:  # strictly below the temp root: never chmod /tmp itself
            os.chmod(p, 0o755)
            p = p.parent
        if os.geteuid() == 0:
            shutil.chown(self.data, user="postfix")
        template = Path("/usr/share/postfix/main.cf.debian")
        (self.etc / "main.cf").write_text(template.read_text() if template.is_file() else "")
        (self.etc / "master.cf").write_text(MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))
        self.maillog = self.root / "maillog"
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.spool),
            "data_directory": str(self.data),
            "maillog_file": str(self.maillog),
            "maillog_file_prefixes": str(self.root),
            "syslog_name": "postfix-bench",
            "myhostname": "postfix-bench.example",
            "mydestination": "",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "relay_domains": "",
            "relayhost": f"[127.0.0.1]:{sink_port}",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_tls_security_level": "none",
            "smtpd_tls_cert_file": "",
            "smtpd_tls_key_file": "",
            "smtp_tls_security_level": "none",
            "message_size_limit": str(max_size),
            "mailbox_size_limit": "0",
        }
        if milter_port or milter:
            settings.update({
                "smtpd_milters": milter or f"inet:127.0.0.1:{milter_port}",
                "non_smtpd_milters": non_smtpd_milter or "$smtpd_milters",
                "milter_default_action": "tempfail",
                "milter_protocol": "6",
            })
        self._postconf(settings)
        self.master_pid = None

    def _postconf(self, settings: dict) -> None:
        args = ["postconf", "-c", str(self.etc), "-e"] + [f"{k}={v}" for k, v in settings.items()]
        r = subprocess.run(args, capture_output=True, text=True, timeout=30)
        if r.returncode:
            raise SystemError_(f"postconf failed: {r.stderr}")

    def _postfix(self, action: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["postfix", "-c", str(self.etc), action], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def start(self) -> None:
        r = self._postfix("start")
        pidfile = self.spool / "pid" / "master.pid"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not pidfile.is_file():
            time.sleep(0.1)
        if r.returncode or not pidfile.is_file():
            raise SystemError_(f"private postfix did not start ({r.returncode}): {r.stderr}\n{tail(self.maillog)}")
        self.master_pid = int(pidfile.read_text().split()[0])
        if not wait_port(self.port, 20):
            raise SystemError_(f"private postfix does not listen on {self.port}: {tail(self.maillog)}")

    def stop(self) -> None:
        if self.master_pid is None:
            return
        try:
            self._postfix("stop", timeout=60)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and Path(f"/proc/{self.master_pid}").exists():
            time.sleep(0.1)
        if Path(f"/proc/{self.master_pid}").exists():  # only our own instance's master and its children
            for pid in reversed(procstat.descendants(self.master_pid)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        self.master_pid = None

    def queue_count(self) -> int:
        n = 0
        for sub in ("incoming", "active", "deferred", "hold", "maildrop"):
            for _dirpath, _dirs, files in os.walk(self.spool / sub):
                n += len(files)
        return n


def tempdir_root() -> str:
    import tempfile
    return tempfile.gettempdir()


class PostfixOpenDKIM(System):
    name = "postfix-opendkim"
    signs = True

    def __init__(self, workdir: Path, key_pem: Path, max_size: int = 64 * 1024 * 1024):
        self.workdir = Path(workdir)
        self.key_pem = key_pem
        self.max_size = max_size
        self.postfix = None
        self.dkim = None
        self._n = 0

    def start(self, sink_port: int) -> None:
        self._n += 1
        root = self.workdir / f"postfix-opendkim-{self._n}"
        self.dkim = OpenDKIM(root / "opendkim", self.key_pem)
        self.dkim.start()
        self.postfix = PostfixInstance(root / "postfix", sink_port, self.dkim.port, self.max_size)
        self.postfix.start()
        self.port = self.postfix.port
        self.group = procstat.Group(pids=[self.dkim.proc.pid], tree_roots=[self.postfix.master_pid])

    def stop(self) -> None:
        if self.postfix:
            self.postfix.stop()
            shutil.rmtree(self.postfix.root, ignore_errors=True)
        if self.dkim:
            self.dkim.stop()
            shutil.rmtree(self.dkim.dir.parent, ignore_errors=True)

    def diagnostics(self) -> str:
        out = ""
        if self.postfix:
            out += "maillog:\n" + tail(self.postfix.maillog)
        if self.dkim:
            out += "\nopendkim:\n" + tail(self.dkim.stderr_path)
        return out


class PostfixPlain(System):
    """Postfix relaying to the sink with no milter and no signing: a reference, not a competitor."""

    name = "postfix"

    def __init__(self, workdir: Path, max_size: int = 64 * 1024 * 1024):
        self.workdir = Path(workdir)
        self.max_size = max_size
        self.postfix = None
        self._n = 0

    def start(self, sink_port: int) -> None:
        self._n += 1
        self.postfix = PostfixInstance(self.workdir / f"postfix-plain-{self._n}", sink_port, None, self.max_size)
        self.postfix.start()
        self.port = self.postfix.port
        self.group = procstat.Group(tree_roots=[self.postfix.master_pid])

    def stop(self) -> None:
        if self.postfix:
            self.postfix.stop()
            shutil.rmtree(self.postfix.root, ignore_errors=True)

    def diagnostics(self) -> str:
        return "maillog:\n" + tail(self.postfix.maillog) if self.postfix else ""


class PostfixRelayMilter(System):
    """Postfix with the relay as its milter in place of OpenDKIM (once the relay has milter mode)."""

    name = "postfix-relay-milter"
    signs = True

    def __init__(self, workdir: Path, config_factory, max_size: int = 64 * 1024 * 1024):
        self.workdir = Path(workdir)
        self.config_factory = config_factory
        self.max_size = max_size
        self.postfix = None
        self.relay = None
        self._n = 0

    def start(self, sink_port: int) -> None:
        self._n += 1
        root = self.workdir / f"postfix-relay-milter-{self._n}"
        root.mkdir(parents=True, exist_ok=True)
        milter_port = free_port()
        self.relay = Relay(root, self.config_factory)
        self.relay.port = milter_port
        config = self.config_factory(sink_port=sink_port, listen_port=None, milter_port=milter_port)
        self.relay._spawn(config)
        if not wait_port(milter_port, 60, self.relay.proc):
            raise SystemError_(f"the relay's milter did not listen on {milter_port} (exit {self.relay.proc.poll()}):"
                               f"\n{tail(self.relay.stderr_path)}")
        self.postfix = PostfixInstance(root / "postfix", sink_port, milter_port, self.max_size)
        self.postfix.start()
        self.port = self.postfix.port
        self.group = procstat.Group(tree_roots=[self.relay.proc.pid, self.postfix.master_pid])

    def stop(self) -> None:
        if self.postfix:
            self.postfix.stop()
        if self.relay:
            self.relay.stop()
        if self.postfix:
            shutil.rmtree(self.postfix.root.parent, ignore_errors=True)

    def diagnostics(self) -> str:
        out = ""
        if self.postfix:
            out += "maillog:\n" + tail(self.postfix.maillog)
        if self.relay:
            out += "\nrelay:\n" + self.relay.diagnostics()
        return out
