"""The relay's config file: YAML in, frozen validated Settings out.

Every problem is collected with the file, the key and why, so that
`relay check-config` reports them all at once. Unknown keys are errors: a typo
must not silently fall back to a default (for example an open `clients`).
"""

from __future__ import annotations

import errno
import ipaddress
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError, Problems
from .regex import PatternError, compile_linear
from .spool import MAX_BYTES as SPOOL_MAX_BYTES
from .yamlfile import SHIPPED_POLICIES, load_yaml  # noqa: F401  (SHIPPED_POLICIES: imported from here)

STARTTLS_MODES = ("required", "opportunistic", "off")

# Bounds of timeouts, in seconds: below them every connection or lookup fails (`0.0001ms`
# resets every connection); above them a dead peer holds resources for days.
CLIENT_TIMEOUT_BOUNDS = (1.0, 86400.0)  # limits.timeout (RFC 5321 4.5.3.2.7 suggests 5 minutes)
UPSTREAM_TIMEOUT_BOUNDS = (0.1, 86400.0)  # upstream.*_timeout
RESOLVER_TIMEOUT_BOUNDS = (0.1, 300.0)  # resolver.timeout


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Listener:
    endpoint: Endpoint
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


@dataclass(frozen=True)
class Clients:
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    users_file: Path | None = None

    def trusted(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self.networks)


@dataclass(frozen=True)
class Upstream:
    mode: str = "smarthost"  # "smarthost" | "mx"
    host: str | None = None
    port: int = 587
    starttls: str = "required"
    tls_verify: bool = True
    ca_file: Path | None = None
    username: str | None = None
    password_file: Path | None = None
    # Read from password_file at load (and at reload: a changed password is an upstream change, which
    # takes effect at the next restart); never printed.
    password: str | None = field(default=None, repr=False)
    allow_plaintext_auth: bool = False  # AUTH without STARTTLS "required": for loopback only
    connect_timeout: float = 30.0
    command_timeout: float = 60.0
    # RFC 5321 4.5.3.2.6: the client should wait 10 minutes for the reply to the final dot.
    data_timeout: float = 600.0
    pool_size: int = 50
    idle_timeout: float = 60.0  # close pooled connections unused this long
    # Delivery to MX hosts (mode mx, or domains routed to mx by policies/routes.yaml):
    mx_port: int = 25  # the port MX hosts are reached on (mode mx: `port`)
    connections_per_destination: int = 10  # open connections to one MX set at most
    messages_per_connection: int = 100  # transactions on one MX connection before it is closed
    # The HTTPS port of MTA-STS policy hosts (RFC 8461 3.3 says 443); only tests serve elsewhere.
    mta_sts_port: int = 443
    # Internal addresses (loopback, private, link-local, ...) MX delivery may connect to: none by
    # default, so that a client cannot make the relay reach its own networks (relay/delivery/pool.py).
    mx_internal_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    # RFC 5321 5.1: "there SHOULD be a configurable limit on the number of alternate addresses that can
    # be tried": the most preferred MX hosts looked up and tried, and the connections tried in all
    # (relay/delivery/routes.py).
    mx_max_hosts: int = 10
    mx_max_addresses: int = 10

    @property
    def smarthost(self) -> bool:
        return self.mode == "smarthost"


@dataclass(frozen=True)
class Limits:
    max_message_size: int = 36700160
    max_recipients: int = 100
    max_connections: int = 1000
    timeout: float = 300.0  # idle time allowed between client commands
    # The idle time allowed instead while a listener's sessions are at STRESS_FRACTION of its connection
    # slots (relay/smtp.py, Connections.stressed): Postfix's smtpd_timeout = ${stress?{10}:{300}}s.
    stress_timeout: float = 10.0
    # One client address (IPv6: its /64) may hold this many connections, so that it cannot take them all.
    max_connections_per_client: int = 50
    data_timeout: float = 300.0  # from 354 to the final dot, however slowly the data trickles in
    unauthenticated_timeout: float = 60.0  # a client outside clients.networks must log in within it
    # Errors (4xx/5xx replies) a client may earn without a message delivered, as Postfix's
    # smtpd_hard_error_limit / smtpd_soft_error_limit / smtpd_error_sleep_time (the same defaults):
    # past `error_limit` the connection ends with 421 4.7.0; past `soft_error_limit` each error reply
    # waits `error_delay` first. A recipient or message refused on its own merits (the bounce list, the
    # upstream's verdict) counts only past `max_recipients` of them (relay/smtp.py, ErrorCount).
    error_limit: int = 20
    soft_error_limit: int = 10
    error_delay: float = 1.0


@dataclass(frozen=True)
class Resolver:
    nameservers: tuple[Endpoint, ...] = ()  # empty: the system's resolv.conf
    timeout: float = 5.0
    cache_size: int = 10000
    failure_ttl: float = 30.0  # seconds DNS trouble is remembered (RFC 9520); 0: never
    # The longest an answer is kept, whatever its TTL says (relay/dns.py): a negative one (NXDOMAIN,
    # NODATA; RFC 2308 5) and any other, as Unbound's cache-max-negative-ttl and cache-max-ttl.
    max_negative_ttl: float = 900.0
    max_ttl: float = 86400.0
    # A zone that exists in the public DNS, asked before an NXDOMAIN is believed (relay/delivery/routes.py);
    # None (the default): not asked. A resolver that knows only its own zones answers NXDOMAIN for the
    # top-level domains too, and every NXDOMAIN became a 451 there; the domain breaker guards by default.
    control_name: str | None = None


@dataclass(frozen=True)
class Webhook:
    """`events: [{webhook: URL, ...}]`: batches signed per Standard Webhooks, spooled, retried (relay/webhooks/)."""

    url: str
    spool_dir: Path
    secret_file: Path | None = None
    secret: bytes | None = field(default=None, repr=False)  # the HMAC key; None: unsigned
    ca_file: Path | None = None
    # sha256 of ca_file's contents as loaded: a bundle renewed in place at the same path is a changed
    # config, so a SIGHUP builds a sink that trusts the new one.
    ca_digest: str | None = field(default=None, repr=False)
    spool_max_size: int = SPOOL_MAX_BYTES
    max_events: int = 100          # batch: at most this many events,
    max_bytes: int = 1 << 20       # this many bytes of events,
    max_wait: float = 1.0          # and the first event waits at most this long for others
    initial_delay: float = 1.0     # retry: the first back-off, doubled per attempt
    max_delay: float = 300.0       # up to this
    give_up_after: float = 86400.0  # a batch whose oldest event is this old goes to the dead-letter file
    timeout: float = 10.0          # connect and each read

    @property
    def display(self) -> str:
        """The URL without its query string (it may carry a token): for logs and metrics labels."""
        return self.url.split("?", 1)[0]


@dataclass(frozen=True)
class EventSink:
    kind: str  # "jsonl" | "stdout" | "webhook" | "postgresql"
    target: str = ""  # file path or URL
    webhook: Webhook | None = None
    spool_dir: Path | None = None  # postgresql: events wait on disk here, not in memory (relay/spool.py)
    spool_max_size: int = SPOOL_MAX_BYTES


@dataclass(frozen=True)
class Correlation:
    headers: tuple[str, ...] = ()  # message headers copied into events, e.g. X-Conversation-Id
    # Regexes with named groups, applied to the envelope sender (VERP); each group becomes an event field.
    sender_patterns: tuple = ()  # compiled with RE2 (relay.regex.compile_linear)


MILTER_MODES = ("outbound", "inbound")
MILTER_IDLE_TIMEOUT_BOUNDS = (1.0, 86400.0)  # milter.idle_timeout (libmilter's default: 7210 s)


@dataclass(frozen=True)
class Milter:
    """milter: where the milter listens and which steps it runs (relay/milter/)."""

    endpoint: Endpoint | None = None  # listen: host:port
    path: Path | None = None  # listen: unix:PATH
    mode: str = "outbound"  # outbound: SPF of our egress, bounce list, DKIM signing; inbound: verification
    socket_mode: int = 0o660  # permissions of the UNIX socket (the MTA's user must be able to write it)
    socket_group: str | None = None  # group of the UNIX socket, e.g. postfix
    workers: int = 1  # the old spelling of the top-level `workers` (all listeners are shared now)
    # non_smtpd_listen: a second socket for Postfix's non_smtpd_milters (mail submitted with sendmail(1)).
    # Every session on it is such a submission, where Postfix cannot refuse one recipient (cleanup defers
    # the whole message), so a bounce-listed recipient is removed at end of message (SMFIR_DELRCPT)
    # instead. An explicit socket, because nothing in the protocol tells the two apart safely: Postfix's
    # stand-in client (localhost, 127.0.0.1, port 0) is what any local test client can send too.
    non_smtpd_endpoint: Endpoint | None = None
    non_smtpd_path: Path | None = None
    # idle_timeout: the longest silence of the MTA between two packets. Postfix says nothing to the milter
    # from RCPT until its cleanup has the whole message (SMFIP_NODATA: headers, body and end of message
    # come together at the end), and a client may take longer than limits.timeout over DATA (Postfix bounds
    # each read by smtpd_timeout, not the DATA phase); closing the connection meanwhile tempfailed outbound
    # mail and, with milter_default_action = accept, let a forged Authentication-Results through inbound
    # (review30 D1). libmilter's default for the same timeout: 7210 s. A packet once begun must still be
    # complete within limits.timeout.
    idle_timeout: float = 7210.0

    def __str__(self) -> str:
        return f"unix:{self.path}" if self.path is not None else str(self.endpoint)

    @property
    def has_non_smtpd(self) -> bool:
        return self.non_smtpd_endpoint is not None or self.non_smtpd_path is not None

    def non_smtpd(self) -> "Milter":
        """The non_smtpd_listen socket as a Milter of its own (same mode, socket_mode and group), for
        the code that binds and removes a listener's socket."""
        return replace(self, endpoint=self.non_smtpd_endpoint, path=self.non_smtpd_path,
                       non_smtpd_endpoint=None, non_smtpd_path=None)


@dataclass(frozen=True)
class MetricsSettings:
    """`metrics:`: the Prometheus endpoint with /healthz and /readyz (docs/metrics.md)."""

    listen: Endpoint
    ready_timeout: float = 2.0  # /readyz: the bounce list must answer a lookup within this
    bounce_list_interval: float = 60.0  # how often relay_bounce_list_entries is counted (a count(*))

    @property
    def host(self) -> str:
        return self.listen.host

    @property
    def port(self) -> int:
        return self.listen.port

    def __str__(self) -> str:
        return str(self.listen)


@dataclass(frozen=True)
class PostfixLog:
    """`postfix_log:`: follow Postfix's deliveries (DESIGN.md, way 3)."""

    path: Path | None = None  # a syslog file or Postfix's maillog_file
    journal: bool = False  # read the systemd journal (journalctl -o json) instead of a file
    journal_directory: Path | None = None  # journalctl --directory: another system's or a container's journal
    state_directory: Path = Path("/var/lib/relay")  # where the follower keeps its cursor
    max_queue_ids: int = 100_000  # queue ids remembered while their lines are incomplete


def _default_state_directory() -> Path:
    # systemd sets STATE_DIRECTORY from the unit's StateDirectory= (systemd/relay.service).
    import os
    return Path(os.environ.get("STATE_DIRECTORY", "/var/lib/relay").split(":")[0])


@dataclass(frozen=True)
class BouncesIn:
    """`bounces_in:`: the listener for asynchronous bounces and complaints (DESIGN.md, way 4)."""

    listen: Endpoint | None = None   # SMTP (or LMTP) for mail to the bounce domains only
    # "smtp", or "lmtp" (RFC 2033: LHLO, one reply per recipient after the final dot) for an MTA that
    # hands the bounce domains' mail on over LMTP (Postfix's lmtp(8), a `transport_maps` entry).
    protocol: str = "smtp"
    domains: tuple[str, ...] = ()    # lower-case A-labels
    key_file: Path | None = None     # HMAC key of the VERP return paths (relay/intake/verp.py)
    key: bytes = field(default=b"", repr=False)
    # Without key_file nothing proves a bounce is one of our mail's: anyone on the Internet can mail
    # one naming any address. What such a bounce may do to the bounce list: "never" (recorded as
    # events only) or "count" (the operator's explicit choice: it counts towards listing, never lists
    # at once). With key_file a bounce without a valid token is refused at RCPT (review14 F2).
    unsigned: str = "never"
    # The listener faces the Internet: its own connection budget, apart from the relay listeners'
    # (limits.max_connections), so that it can never starve the operator's own submission (review14
    # F1); and its own message size, far below limits.max_message_size, since each connection may hold
    # that much in memory (F3). Postfix returns at most bounce_size_limit (50,000 bytes) of the
    # original, Exim bounce_return_size_limit (100 KB); a few MTAs return it whole.
    max_connections: int = 50
    max_connections_per_client: int = 10
    max_message_size: int = 10 * 1024 * 1024

    def accepts(self, domain: str) -> bool:
        return domain.lower().rstrip(".") in self.domains


@dataclass(frozen=True)
class Settings:
    source: Path
    hostname: str
    listen: tuple[Listener, ...] = ()
    clients: Clients = field(default_factory=lambda: Clients(DEFAULT_NETWORKS))
    upstream: Upstream | None = None
    limits: Limits = field(default_factory=Limits)
    egress_ips: tuple[str, ...] = ()
    resolver: Resolver = field(default_factory=Resolver)
    bounce_list: str = "sqlite:///bounces.db"
    events: tuple[EventSink, ...] = (EventSink("stdout"),)
    policies: Path = SHIPPED_POLICIES
    milter: Milter | None = None
    metrics: MetricsSettings | None = None
    correlation: Correlation = field(default_factory=Correlation)
    postfix_log: PostfixLog | None = None
    bounces_in: BouncesIn | None = None
    # Processes sharing every listener (relay/workers.py); 1 runs everything in this process.
    workers: int = 1
    # Where no text rule matched a reply, take the category of the most similar labelled reply
    # (relay/nearest.py, docs/classification.md "The nearest-reply fallback"); false: the rules' fallback table alone.
    nearest_fallback: bool = True


MAX_WORKERS = 256  # far beyond any core count that one host's listeners could use


def default_workers() -> int:
    import os
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may run on (taskset, cgroups cpusets)
    except (AttributeError, OSError):
        return os.cpu_count() or 1


DEFAULT_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))

_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def hostname_problem(name: str) -> str | None:
    """Why `name` cannot be the relay's own name, or None. It is the HELO/EHLO name the upstream
    sees, which RFC 5321 4.1.1.1 requires to be a fully-qualified domain name or an address
    literal; many receivers refuse anything else (Postfix: reject_non_fqdn_helo_hostname)."""
    if not name.strip():
        return "must not be empty: the fully-qualified name this relay uses in EHLO (e.g. relay.example.com)"
    literal = re.fullmatch(r"\[(?:IPv6:)?([^\]]+)\]", name)
    if literal:
        try:
            ipaddress.ip_address(literal.group(1))
        except ValueError:
            return f"{name!r} is not an address literal such as [192.0.2.1] or [IPv6:2001:db8::1]"
        return None
    if not _HOSTNAME.match(name):
        return f"{name!r} is not a valid host name (RFC 1123)"
    if "." not in name.rstrip("."):
        return (f"{name!r} is a single label; the name given in EHLO must be fully qualified "
                f"(RFC 5321 4.1.1.1), e.g. {name}.example.com, or an address literal such as [192.0.2.1]")
    return None


def _duration_within(low: float, high: float):
    """A converter for a duration key that must lie in [low, high] seconds."""
    def convert(value):
        seconds = parse_duration(value)
        if not low <= seconds <= high:
            raise ValueError(f"{_shown(value)} is outside {low:g} s .. {high:g} s")
        return seconds
    return convert


def parse_duration(value: Any) -> float:
    """Seconds from 30, 2.5, "30s", "5m", "1h", "30d"."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30, '30s', '5m' or '1h'")
    if isinstance(value, (int, float)):
        if isinstance(value, int) and value.bit_length() > 64:
            # Past float range math.isfinite raised OverflowError: a traceback (review31 F5).
            raise ValueError(f"a number of {len(str(value))} digits is far longer than any duration (30, '30s', "
                             f"'5m' or '1h')")
        if not math.isfinite(value):  # YAML's .nan and .inf are floats
            raise ValueError(f"{value!r} is not a duration such as 30, '30s', '5m' or '1h'")
        if value < 0:
            raise ValueError("must not be negative")
        return float(value)
    m = _DURATION.match(str(value).strip())
    seconds = float(m.group(1)) * _UNITS[m.group(2)] if m else math.nan
    if not math.isfinite(seconds):  # no match, or digits past float range ("1e400s" is no match)
        raise ValueError(f"{_shown(value)} is not a duration such as 30, '30s', '5m' or '1h'")
    return seconds


def _shown(value: Any) -> str:
    """A value for an error message, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_endpoint(value: Any, default_port: int | None = None) -> Endpoint:
    """'127.0.0.1:2525', '[::1]:2525', 'localhost:25', or a bare host with default_port."""
    text = str(value).strip()
    m = re.match(r"^\[([^\]]+)\](?::(\d+))?$", text) or re.match(r"^([^:\[\]]+)(?::(\d+))?$", text)
    if not m:
        raise ValueError(f"{value!r} is not host:port (use [addr]:port for IPv6)")
    host, port = m.group(1), m.group(2)
    if port is None:
        if default_port is None:
            raise ValueError(f"{value!r} has no port (write host:port)")
        return Endpoint(host, default_port)
    if not 0 <= int(port) <= 65535:
        raise ValueError(f"port {port} is out of range")
    return Endpoint(host, int(port))


class _Reader:
    """Walks a mapping, recording problems and unknown keys under a dotted path."""

    def __init__(self, problems: Problems, data: Any, path: str):
        self.problems = problems
        self.path = path
        self.ok = isinstance(data, dict)
        self.data = data if self.ok else {}
        if not self.ok and data is not None:
            problems.add(path or "(top level)", f"expected a mapping, got {type(data).__name__}")

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def unknown(self, allowed: set[str]) -> None:
        self.problems.unknown_keys(self.data, allowed, self.path)

    def get(self, name: str, kind, default=None, *, required=False, convert=None):
        if name not in self.data or self.data[name] is None:
            if required:
                self.problems.add(self.key(name), "is required")
            return default
        value = self.data[name]
        if kind is int and isinstance(value, bool) or (kind is not None and not isinstance(value, kind)):
            want = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            self.problems.add(self.key(name), f"expected {want}, got {type(value).__name__} {value!r}")
            return default
        if convert:
            try:
                return convert(value)
            except (ValueError, TypeError, OverflowError) as exc:
                self.problems.add(self.key(name), str(exc))
                return default
        return value


def _not_negative(value):
    if value < 0:
        raise ValueError(f"must be 0 or more, got {value}")
    return value


def _positive(value):
    if value <= 0:
        raise ValueError(f"must be positive, got {value}")
    return value


def _from_config(base: Path):
    """A converter for a path given in the config: relative to the config file's directory (not to
    wherever the service was started), absolute as written. A ValueError when the OS would refuse
    the name whatever the file system holds (see usable_path)."""
    return lambda value: usable_path(Path(value) if Path(value).is_absolute() else base / value)


# What a lookup of a path that is fine as a name may say: nothing there (yet). Any other error
# (a name too long, a symlink loop, a directory on the way that may not be searched) means the
# relay could never use the path, and pathlib's is_file()/exists() would raise it as an OSError.
_ABSENT = (errno.ENOENT, errno.ENOTDIR)


def usable_path(path: Path) -> Path:
    """`path`, or a ValueError saying why the OS refuses it as a file name (a NUL byte, which no
    POSIX path may hold; ENAMETOOLONG; EACCES on a directory on the way; ELOOP)."""
    if "\x00" in str(path):
        raise ValueError(f"{str(path)!r} contains a NUL byte, which no file name may hold")
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno not in _ABSENT:
            raise ValueError(f"cannot use {path}: {(exc.strerror or str(exc)).lower()}") from None
    return path


def _existing_file(base: Path):
    def convert(value: str) -> Path:
        path = _from_config(base)(value)
        if not path.is_file():
            raise ValueError(f"file {path} does not exist")
        return path
    return convert


def _ca_file(base: Path):
    """A converter for a CA bundle's path: an existing file that TLS can load (relay/tlsfiles.py). Read
    at load and at every reload: read only at the first connection, a file with no PEM certificate
    passed check-config and then deferred every message with a traceback naming no file (review31 F2)."""
    def convert(value: str) -> Path:
        from .tlsfiles import ca_file_problem

        path = _existing_file(base)(value)
        why = ca_file_problem(path)
        if why:
            raise ValueError(why)
        return path
    return convert


def _secret(r: _Reader, name: str, value: str | None, base: Path, what: str) -> tuple[Path | None, bytes | None]:
    """The path and bytes of the secret file `value` that key `name` gives, as r.get read it
    (secretfile.read_secret_file: a regular file, bounded, read now; no error quotes a value that may be
    the secret). (None, None) when the key is absent or a problem was added."""
    from .secretfile import SecretFileError, read_secret_file

    if not value:
        return None, None
    try:
        return read_secret_file(value, base, what)
    except SecretFileError as exc:
        r.problems.add(r.key(name), str(exc))
        return None, None


def load_settings(path: str | Path) -> Settings:
    """Read and validate a config file; raises ConfigError listing every problem."""
    path = Path(path)
    problems = Problems(str(path))
    data = load_yaml(path)
    base = path.resolve().parent
    top = _Reader(problems, data, "")
    if data is None:
        problems.add("(top level)", "the file is empty; at least `hostname` is required")
    top.unknown({"hostname", "listen", "clients", "upstream", "limits", "egress_ips", "resolver",
                 "bounce_list", "events", "policies", "milter", "metrics", "correlation",
                 "postfix_log", "bounces_in", "workers", "nearest_fallback"})

    hostname = top.get("hostname", str, None, required=data is not None)
    if hostname is not None:
        why = hostname_problem(hostname)
        if why:
            problems.add("hostname", why)
    hostname = hostname or ""

    listen = _listeners(top, base)
    clients = _clients(top, base)
    upstream = _upstream(top, base, required=bool(listen))
    limits = _limits(top)

    egress: list[str] = []
    for i, ip in enumerate(top.get("egress_ips", list, []) or []):
        try:
            egress.append(str(ipaddress.ip_address(str(ip))))
        except ValueError:
            problems.add(f"egress_ips[{i}]", f"{ip!r} is not an IP address")

    resolver = _resolver(top)
    bounce_list = _bounce_list_url(top, base)
    events = _events(top, base)

    policies = SHIPPED_POLICIES
    if "policies" in top.data:
        p = top.get("policies", str, None)
        if p is not None:
            try:
                policies = _from_config(base)(p)
            except ValueError as exc:
                problems.add("policies", str(exc))
            else:
                if not policies.is_dir():
                    problems.add("policies", f"directory {policies} does not exist")

    milter = _milter(top, base)
    metrics = _metrics(top)
    correlation = _correlation(top)
    postfix_log = _postfix_log(top, base)
    bounces_in = _bounces_in(top, base)
    workers = _workers(top, milter, upstream, limits)
    nearest_fallback = top.get("nearest_fallback", bool, True)
    problems.raise_if_any()
    return Settings(source=path, hostname=hostname, listen=listen, clients=clients, upstream=upstream,
                    limits=limits, egress_ips=tuple(egress), resolver=resolver, bounce_list=bounce_list,
                    events=events, policies=policies, milter=milter, metrics=metrics, correlation=correlation,
                    postfix_log=postfix_log, bounces_in=bounces_in, workers=workers,
                    nearest_fallback=nearest_fallback)


def _workers(top: _Reader, milter: Milter | None, upstream: Upstream | None, limits: Limits) -> int:
    """`workers`, or the older `milter.workers`, or one per core. Connection caps are shared or
    divided among the workers (docs/internals.md), so each needs at least one of each."""
    def bounded(value: int) -> int:
        if not 1 <= value <= MAX_WORKERS:
            raise ValueError(f"must be between 1 and {MAX_WORKERS}, got {value}")
        return value

    workers = top.get("workers", int, None, convert=bounded)
    legacy = milter.workers if milter is not None and isinstance(top.data.get("milter"), dict) \
        and "workers" in top.data["milter"] else None
    if workers is not None and legacy is not None and legacy != workers:
        top.problems.add("milter.workers", f"{legacy} differs from workers ({workers}); remove milter.workers "
                                           f"(workers covers the milter too)")
    if workers is None and legacy is not None:
        workers = legacy
    if workers is None:
        # One per core, but never more than the caps divided among them allow (an upstream that takes
        # one connection gets one worker).
        caps = [limits.max_connections_per_client] + ([upstream.pool_size] if upstream is not None else [])
        return max(1, min([default_workers()] + caps))
    if workers > 1 and upstream is not None and upstream.pool_size < workers:
        top.problems.add("upstream.pool_size", f"{upstream.pool_size} is fewer than workers ({workers}): "
                                               f"the pool is divided among the workers and each needs at least "
                                               f"one connection; raise pool_size or lower workers")
    if workers > 1 and limits.max_connections_per_client < workers:
        top.problems.add("limits.max_connections_per_client",
                         f"{limits.max_connections_per_client} is fewer than workers ({workers}): the limit is "
                         f"divided among the workers and each needs at least one; raise it or lower workers")
    return workers


def _listeners(top: _Reader, base: Path) -> tuple[Listener, ...]:
    out = []
    for i, item in enumerate(top.get("listen", list, []) or []):
        r = _Reader(top.problems, item, f"listen[{i}]")
        r.unknown({"address", "tls"})
        ep = r.get("address", str, None, required=True, convert=parse_endpoint)
        cert = key = None
        if "tls" in r.data:
            t = _Reader(top.problems, r.data["tls"], r.key("tls"))
            t.unknown({"cert", "key"})
            cert = t.get("cert", str, None, required=True, convert=_existing_file(base))
            key = t.get("key", str, None, required=True, convert=_existing_file(base))
            if cert is not None and key is not None:
                # Loaded now as `serve` loads them (relay/tlsfiles.py), so that a file that is no PEM
                # certificate or key is this key's error, not `[SSL] PEM lib` at start (review31 F2).
                from .tlsfiles import cert_key_problem

                found = cert_key_problem(cert, key)
                if found:
                    which, why = found
                    top.problems.add(t.key(which) if which else t.path, why)
                    cert = key = None
        if ep:
            out.append(Listener(ep, cert, key))
    return tuple(out)


def _clients(top: _Reader, base: Path) -> Clients:
    if "clients" not in top.data:
        return Clients(DEFAULT_NETWORKS)
    r = _Reader(top.problems, top.data["clients"], "clients")
    r.unknown({"networks", "users_file"})
    nets = []
    for i, n in enumerate(r.get("networks", list, []) or []):
        try:
            net = ipaddress.ip_network(str(n), strict=False)
        except ValueError:
            top.problems.add(f"clients.networks[{i}]", f"{n!r} is not a network such as 127.0.0.0/8")
            continue
        if net.prefixlen == 0:
            # Anything that trusts every address is an open relay.
            top.problems.add(f"clients.networks[{i}]", f"{n} trusts every address: that is an open relay")
            continue
        nets.append(net)
    why = too_public(nets)
    if why:
        top.problems.add("clients.networks", why)
    users = r.get("users_file", str, None, convert=_existing_file(base))
    return Clients(tuple(nets) if "networks" in r.data else DEFAULT_NETWORKS, users)


# Addresses that are not publicly routed (RFC 6890 special-purpose registries: private use,
# loopback, link-local, shared CGNAT space, documentation, benchmarking, multicast, reserved).
# Trusting any amount of these is a local matter; trusting public space is what makes an open relay.
_NOT_PUBLIC = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
    "224.0.0.0/4", "240.0.0.0/4",
    "::/127", "::ffff:0:0/96", "64:ff9b:1::/48", "100::/64", "2001:db8::/32", "fc00::/7", "fe80::/10",
    "ff00::/8"))
# The most public address space clients.networks may trust, in all: one /16 of IPv4, one /48
# of IPv6 (a site's allocation). More than that is not "our own senders" but a slice of the
# Internet, and `0.0.0.0/1` + `128.0.0.0/1` (every address, in two halves) is an open relay.
MAX_PUBLIC = {4: 2 ** 16, 6: 2 ** 80}


def too_public(nets) -> str | None:
    """Why these trusted networks together cover too much public address space, or None."""
    for version, label, size in ((4, "IPv4", "/16"), (6, "IPv6", "/48")):
        union = list(ipaddress.collapse_addresses(n for n in nets if n.version == version))
        public = 0
        for net in union:
            # CIDR blocks either nest or do not meet, and _NOT_PUBLIC's blocks are disjoint,
            # so subtracting each overlap once is exact.
            public += net.num_addresses - sum(
                min(net.num_addresses, other.num_addresses) for other in _NOT_PUBLIC
                if other.version == version and (other.subnet_of(net) or net.subnet_of(other)))
        if public > MAX_PUBLIC[version]:
            amount = f"{public:,}" if public < 2 ** 40 else f"about 2^{public.bit_length() - 1}"
            return (f"together these networks trust {amount} public {label} addresses, more than a {size}"
                    f"; anyone there could relay without AUTH, which is close to an "
                    f"open relay. List only your own senders' networks, or make outsiders log in "
                    f"(clients.users_file)")
    return None


def _upstream_host(value: str) -> str:
    """The smarthost's name or address, without a port (that is `upstream.port`) or brackets: a
    `smtp.example.com:587` or a blank passed check-config, and every message was then deferred as
    "upstream unreachable" (review31)."""
    text = value.strip()
    if not text:
        raise ValueError("must not be empty: the smarthost's host name or address")
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    if text.startswith("[") or ":" in text:
        raise ValueError(f"{_shown(value)} is not a host name or address: write the port in upstream.port "
                         f"and an IPv6 address without brackets")
    if text != value or any(c.isspace() or c in "/@" for c in text):
        raise ValueError(f"{_shown(value)} is not a host name or address")
    return text


def _upstream(top: _Reader, base: Path, required: bool) -> Upstream | None:
    if "upstream" not in top.data or top.data["upstream"] is None:
        if required:
            top.problems.add("upstream", "is required when `listen` names a listener")
        return None
    r = _Reader(top.problems, top.data["upstream"], "upstream")
    r.unknown({"mode", "host", "port", "starttls", "tls_verify", "ca_file", "username", "password_file",
               "allow_plaintext_auth", "connect_timeout", "command_timeout", "data_timeout", "pool_size",
               "idle_timeout", "mx_port", "connections_per_destination", "messages_per_connection",
               "mta_sts_port", "mx_internal_networks", "mx_max_hosts", "mx_max_addresses"})
    mode = r.get("mode", str, "smarthost")
    if mode not in ("smarthost", "mx"):
        top.problems.add("upstream.mode", f"{mode!r} is not one of smarthost, mx")
        mode = "smarthost"
    mx = mode == "mx"
    host = r.get("host", str, None, convert=_upstream_host)
    if not mx and not host and not (r.data.get("host") and isinstance(r.data.get("host"), str)):
        top.problems.add("upstream.host", "is required (or set `mode: mx` to deliver to each domain's MX)")
    if mx and host:
        # A smarthost for some domains beside MX delivery is routing policy: mode smarthost with
        # `default: mx` in policies/routes.yaml (docs/delivery.md).
        top.problems.add("upstream.host", "mode mx delivers to each recipient domain's MX and uses no "
                                          "smarthost; to send some domains through a smarthost, use "
                                          "`mode: smarthost` with `default: mx` in policies/routes.yaml")
    # RFC 7435: towards MX hosts, encrypt when offered and never refuse to deliver in clear for the
    # lack of it; a smarthost is one known server, where TLS is required unless said otherwise.
    starttls = r.data.get("starttls", "opportunistic" if mx else "required")
    if starttls is False:  # YAML 1.1 reads a bare `off` as false
        starttls = "off"
    if starttls not in STARTTLS_MODES:
        top.problems.add("upstream.starttls", f"{starttls!r} is not one of {', '.join(STARTTLS_MODES)}")
    username = r.get("username", str, None)
    # Read and checked now, at load and at every reload: read at the first connection, a password file
    # in Latin-1 or unreadable passed check-config and start, then every MAIL got 451 and a logged
    # traceback (review20 F3).
    password_file, password = None, None
    if not mx:
        password_file, raw = _secret(r, "password_file", r.get("password_file", str, None), base, "the password")
        if raw is not None:
            from .secretfile import SecretFileError, decode_line
            try:
                password = decode_line(raw, "the password")
            except SecretFileError as exc:
                top.problems.add("upstream.password_file", f"file {password_file}: {exc}")
    # Whether the key was given, not whether its file could be read: a missing file is its own error
    # (the old check on the read value added "username and password_file go together" too, review20 F8).
    given = bool(r.data.get("password_file"))
    if mx and (username or given):
        top.problems.add("upstream.username" if username else "upstream.password_file",
                         "mode mx delivers to MX hosts, which take no login from other mail servers")
    elif bool(username) != given:
        top.problems.add("upstream.password_file" if username else "upstream.username",
                         "username and password_file go together")
    allow_plaintext_auth = r.get("allow_plaintext_auth", bool, False)
    if username and starttls != "required" and not allow_plaintext_auth and not mx:
        # With "off" the password always goes in clear; with "opportunistic" it does whenever the
        # upstream (or anyone in the path who strips STARTTLS) does not offer TLS (RFC 4954 4).
        top.problems.add("upstream.starttls", f"{starttls!r} with upstream.username would send the password "
                                              f"in clear; use `starttls: required`, or set "
                                              f"`upstream.allow_plaintext_auth: true` (only for an upstream "
                                              f"on loopback or a private link)")
    if mx and r.data.get("tls_verify") is True:
        # Certificate checks of MX hosts are per destination (RFC 7435: opportunistic TLS does not
        # authenticate; MTA-STS, DANE and policies/tls.yaml say where to), not one switch for all.
        top.problems.add("upstream.tls_verify", "in mode mx, certificates are checked per recipient domain: "
                                                "write `\"*\": verify` (or a domain) in policies/tls.yaml")
    if not mx and r.data.get("tls_verify") is True and starttls in ("opportunistic", "off"):
        # An explicit `true` that nothing would honour (review25 F4): with "opportunistic" the session
        # is encrypted when offered but never authenticated (RFC 7435 1.3), so the message, and a
        # password with allow_plaintext_auth, went over a certificate nobody checked; with "off"
        # there is no TLS to check at all.
        why = ("opportunistic STARTTLS never checks the smarthost's certificate (RFC 7435): the "
               "message would go over an unverified session" if starttls == "opportunistic" else
               "no TLS is used, so there is no certificate to check")
        top.problems.add("upstream.tls_verify", f"true has no effect with `starttls: {starttls}`: {why}; "
                                                f"use `starttls: required` to have the certificate checked, "
                                                f"or set `tls_verify: false` to say that it is not")
    port = r.get("port", int, 25 if mx else 587, convert=_port)
    if mx and "mx_port" in r.data:
        top.problems.add("upstream.mx_port", "in mode mx the MX hosts' port is `port`")
    mx_port = port if mx else r.get("mx_port", int, 25, convert=_port)
    dur = lambda n, d: r.get(n, (int, float, str), d, convert=_duration_within(*UPSTREAM_TIMEOUT_BOUNDS))
    internal = []
    for i, n in enumerate(r.get("mx_internal_networks", list, []) or []):
        try:
            internal.append(ipaddress.ip_network(str(n), strict=False))
        except ValueError:
            top.problems.add(f"upstream.mx_internal_networks[{i}]", f"{n!r} is not a network such as 10.0.0.0/8")
    return Upstream(
        mode=mode, host=host, port=port,
        starttls=starttls if starttls in STARTTLS_MODES else "required",
        # MX hosts' certificates are checked only when asked for (RFC 7435: opportunistic TLS does
        # not authenticate; MTA-STS and DANE are what authenticate an MX).
        tls_verify=r.get("tls_verify", bool, not mx),
        ca_file=r.get("ca_file", str, None, convert=_ca_file(base)),
        username=username, password_file=password_file, password=password,
        allow_plaintext_auth=allow_plaintext_auth,
        connect_timeout=dur("connect_timeout", 30.0), command_timeout=dur("command_timeout", 60.0),
        data_timeout=dur("data_timeout", 600.0),
        pool_size=r.get("pool_size", int, 50, convert=_positive),
        idle_timeout=dur("idle_timeout", 60.0),
        mx_port=mx_port,
        connections_per_destination=r.get("connections_per_destination", int, 10, convert=_positive),
        messages_per_connection=r.get("messages_per_connection", int, 100, convert=_positive),
        mta_sts_port=r.get("mta_sts_port", int, 443, convert=_port),
        mx_internal_networks=tuple(internal),
        mx_max_hosts=r.get("mx_max_hosts", int, 10, convert=_within(*MX_TRY_BOUNDS)),
        mx_max_addresses=r.get("mx_max_addresses", int, 10, convert=_within(*MX_TRY_BOUNDS)),
    )


# upstream.mx_max_hosts / mx_max_addresses: at least one, or nothing is ever tried; at most 100, since
# the limit is what keeps a zone's owner from choosing how many lookups and connections each recipient
# costs (Exim's hosts_max_try and Postfix's smtp_mx_address_limit default to 5).
MX_TRY_BOUNDS = (1, 100)


def _within(low: int, high: int):
    def convert(value: int) -> int:
        if not low <= value <= high:
            raise ValueError(f"must be from {low} to {high}, got {value}")
        return value
    return convert


def _port(v: int) -> int:
    if not 1 <= v <= 65535:
        raise ValueError(f"port {v} is out of range 1-65535")
    return v


def _limits(top: _Reader) -> Limits:
    r = _Reader(top.problems, top.data.get("limits"), "limits")
    r.unknown({"max_message_size", "max_recipients", "max_connections", "timeout", "stress_timeout",
               "max_connections_per_client", "data_timeout", "unauthenticated_timeout", "error_limit",
               "soft_error_limit", "error_delay"})
    d = Limits()
    dur = lambda n, default: r.get(n, (int, float, str), default, convert=_duration_within(*CLIENT_TIMEOUT_BOUNDS))
    limits = Limits(
        max_message_size=r.get("max_message_size", int, d.max_message_size, convert=_positive),
        max_recipients=r.get("max_recipients", int, d.max_recipients, convert=_positive),
        max_connections=r.get("max_connections", int, d.max_connections, convert=_positive),
        timeout=dur("timeout", d.timeout),
        stress_timeout=dur("stress_timeout", d.stress_timeout),
        max_connections_per_client=r.get("max_connections_per_client", int, d.max_connections_per_client,
                                         convert=_positive),
        data_timeout=dur("data_timeout", d.data_timeout),
        unauthenticated_timeout=dur("unauthenticated_timeout", d.unauthenticated_timeout),
        error_limit=r.get("error_limit", int, d.error_limit, convert=_positive),
        soft_error_limit=r.get("soft_error_limit", int, d.soft_error_limit, convert=_not_negative),
        # At most 10 s: the delay holds the client's next command, and must stay well inside its
        # own reply timeouts (RFC 5321 4.5.3.2: 5 minutes for most commands).
        error_delay=r.get("error_delay", (int, float, str), d.error_delay, convert=_duration_within(0.0, 10.0)),
    )
    if "stress_timeout" in r.data and limits.stress_timeout > limits.timeout:
        top.problems.add("limits.stress_timeout",
                         f"{limits.stress_timeout:g} s is more than limits.timeout ({limits.timeout:g} s): the idle "
                         f"time allowed when the listener is busy can only be shorter")
    if limits.soft_error_limit > limits.error_limit:
        top.problems.add("limits.soft_error_limit",
                         f"{limits.soft_error_limit} is more than limits.error_limit ({limits.error_limit}): the "
                         f"connection would be closed before any error reply is delayed")
    if "max_connections_per_client" in r.data and limits.max_connections_per_client > limits.max_connections:
        top.problems.add("limits.max_connections_per_client",
                         f"{limits.max_connections_per_client} is more than limits.max_connections "
                         f"({limits.max_connections}): one client could still take every connection")
    return limits


# "_" too: not a host name by RFC 1123, but names such as a Compose service's "project_unbound_1" resolve
# (the resolver's own /etc/hosts, Docker's DNS) and were taken before the check (review-int2 F5).
_HOST_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$", re.IGNORECASE)


def _ip_or_host_name(host: str) -> bool:
    """An IP address, or a name that could be a host's: LDH labels (RFC 1123 2.1), the last not all digits
    (RFC 3696 2: so that a mistyped address such as 999.1.1.1 is not taken for a name)."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    return (len(host) <= 253 and all(_HOST_LABEL.match(label) for label in labels)
            and not labels[-1].isdigit())


def _resolver(top: _Reader) -> Resolver:
    r = _Reader(top.problems, top.data.get("resolver"), "resolver")
    r.unknown({"nameservers", "timeout", "cache_size", "failure_ttl", "max_negative_ttl", "max_ttl", "control_name"})
    servers = []
    for i, s in enumerate(r.get("nameservers", list, []) or []):
        try:
            server = parse_endpoint(s, default_port=53)
        except ValueError as exc:
            top.problems.add(f"resolver.nameservers[{i}]", str(exc))
            continue
        if not _ip_or_host_name(server.host):
            # Offline, as check-config is: a name is resolved only at start (relay/dns.py), but one that can
            # never be a host name ('abc def', '999.1.1.1', a bare 53) is wrong now, not at the next start.
            top.problems.add(f"resolver.nameservers[{i}]", f"{server.host!r} is neither an IP address nor a "
                                                           f"host name (RFC 1123 2.1)")
            continue
        servers.append(server)
    return Resolver(tuple(servers),
                    r.get("timeout", (int, float, str), 5.0, convert=_duration_within(*RESOLVER_TIMEOUT_BOUNDS)),
                    r.get("cache_size", int, 10000, convert=_not_negative),
                    # RFC 9520 3.2: at most 5 minutes. 0 turns the failure cache off (against its
                    # "at least 1 second": every question about a broken zone is asked again).
                    r.get("failure_ttl", (int, float, str), 30.0, convert=_duration_within(0.0, 300.0)),
                    # RFC 2308 5: a negative answer's lifetime is capped by configuration; at most 1 h
                    # (Unbound's cache-max-negative-ttl default), so that a domain fixed by its owner is
                    # seen within minutes. 0: negative answers are never cached.
                    r.get("max_negative_ttl", (int, float, str), 900.0, convert=_duration_within(0.0, 3600.0)),
                    # A positive answer (a null MX included) at most a day (Unbound's cache-max-ttl default).
                    r.get("max_ttl", (int, float, str), 86400.0, convert=_duration_within(0.0, 86400.0)),
                    # A zone the resolver must see before its NXDOMAIN for a recipient's domain is believed
                    # (review21 F4): a name in the public DNS, e.g. com, or a domain of your own that resolves.
                    r.get("control_name", str, None, convert=_control_name))


def _control_name(value: str) -> str:
    from .dns import dns_name

    text = value.strip().rstrip(".")
    try:
        dns_name(text)
    except Exception as exc:
        raise ValueError(f"{value!r} is not a DNS name ({exc})") from None
    if not text or text.startswith("[") or "." in text and not all(text.split(".")):
        raise ValueError(f"{value!r} is not a DNS name such as com or example.org")
    return text


def _bounce_list_url(top: _Reader, base: Path) -> str:
    url = top.get("bounce_list", str, "sqlite:///bounces.db")
    if url.startswith("sqlite:///"):
        rest = url[len("sqlite:///"):]
        if not rest:
            top.problems.add("bounce_list", "sqlite URL names no file (sqlite:///relative.db or sqlite:////abs.db)")
        else:
            # A relative path is relative to the config file, not to wherever the service was started.
            try:
                path = _from_config(base)(rest)
            except ValueError as exc:
                top.problems.add("bounce_list", str(exc))
            else:
                if not rest.startswith("/"):
                    url = "sqlite:///" + str(path)
    elif not re.match(r"^postgres(ql)?://", url):
        # The URL as shown_url quotes it: a refused reload's message goes to systemd's STATUS= too
        # (`systemctl status`, readable by any local user), and its user information may hold a password.
        top.problems.add("bounce_list", f"{shown_url(url)!r}: expected sqlite:///PATH or postgresql://...")
    return url


def _events(top: _Reader, base: Path) -> tuple[EventSink, ...]:
    if "events" not in top.data:
        return (EventSink("stdout"),)
    sinks = []
    for i, item in enumerate(top.get("events", list, []) or []):
        r = _Reader(top.problems, item, f"events[{i}]")
        kinds = [k for k in ("jsonl", "stdout", "webhook", "postgresql") if k in r.data]
        if not kinds:  # a misspelt sink (`jsnl:`) is named as the unknown key it is
            r.unknown({"jsonl", "stdout", "webhook", "postgresql"})
        if len(kinds) != 1:
            top.problems.add(f"events[{i}]", "name exactly one sink: jsonl: PATH, stdout: true, webhook: URL "
                                             "or postgresql: URL")
            continue
        if kinds[0] in ("jsonl", "stdout"):
            r.unknown({kinds[0]})
        elif kinds[0] == "postgresql":
            r.unknown(POSTGRESQL_SINK_KEYS)
        if "jsonl" in r.data:
            p = r.get("jsonl", str, None, convert=_from_config(base))
            why = _file_problem(p) if p else None
            if why:
                top.problems.add(f"events[{i}].jsonl", why)
            elif p:
                sinks.append(EventSink("jsonl", str(p)))
        elif "stdout" in r.data:
            if r.get("stdout", bool, False):
                sinks.append(EventSink("stdout"))
        elif "webhook" in r.data:
            hook = _webhook(r, base)
            if hook is not None:
                _one_spool_each(top, sinks, i, hook.spool_dir)
                sinks.append(EventSink("webhook", hook.url, hook, spool_dir=hook.spool_dir))
        elif "postgresql" in r.data:
            u = r.get("postgresql", str, None)
            spool_dir = r.get("spool_dir", str, None, convert=_from_config(base))
            spool_max_size = r.get("spool_max_size", (int, str), EventSink.spool_max_size, convert=parse_size)
            if spool_dir is not None:
                why = _directory_problem(spool_dir)
                if why:
                    top.problems.add(f"events[{i}].spool_dir", why)
                _one_spool_each(top, sinks, i, spool_dir)
            if u and not re.match(r"^postgres(ql)?://", u):
                top.problems.add(f"events[{i}].postgresql", f"{u!r} is not a postgresql:// URL")
            elif u:
                sinks.append(EventSink("postgresql", u, spool_dir=spool_dir, spool_max_size=spool_max_size))
    return tuple(sinks)


POSTGRESQL_SINK_KEYS = {"postgresql", "spool_dir", "spool_max_size"}


def _one_spool_each(top: _Reader, sinks: list[EventSink], i: int, spool_dir: Path) -> None:
    if any(s.spool_dir == spool_dir for s in sinks):
        top.problems.add(f"events[{i}].spool_dir", f"{spool_dir} is the spool of another event sink; "
                                                   f"give each its own")


WEBHOOK_KEYS = {"webhook", "secret_file", "ca_file", "spool_dir", "spool_max_size", "batch", "retry", "timeout"}
_SIZE = re.compile(r"^(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?$")
_SIZE_UNITS = {None: 1, "B": 1, "KB": 10**3, "KiB": 2**10, "MB": 10**6, "MiB": 2**20, "GB": 10**9, "GiB": 2**30}


def parse_size(value: Any) -> int:
    """Bytes from 1048576, "512MiB", "1GB"."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 1048576, '512MiB' or '1GiB'")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"must be positive, got {value}")
        return value
    m = _SIZE.match(str(value).strip())
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"{value!r} is not a size such as 1048576, '512MiB' or '1GiB'")
    return int(m.group(1)) * _SIZE_UNITS[m.group(2)]


def _webhook(r: _Reader, base: Path) -> Webhook | None:
    """One webhook sink; `r` is its events[i] mapping. Problems are named events[i].KEY."""
    from .webhooks.signing import SecretError, secret_from_file

    problems = r.problems
    r.unknown(WEBHOOK_KEYS)
    url = r.get("webhook", str, None, required=True)
    if url is not None:
        why = _webhook_url_problem(url)
        if why:
            problems.add(r.key("webhook"), why)
            url = None
    resolve = _from_config(base)
    secret_file, raw = _secret(r, "secret_file", r.get("secret_file", str, None), base, "the webhook secret")
    secret = None
    if raw is not None:
        try:
            secret = secret_from_file(raw)
        except SecretError as exc:
            problems.add(r.key("secret_file"), f"file {secret_file}: {exc}")
    ca_file = r.get("ca_file", str, None, convert=_existing_file(base))
    ca_digest = None
    if ca_file is not None and url is not None and not url.startswith("https:"):
        problems.add(r.key("ca_file"), "applies only to an https:// URL")
    elif ca_file is not None:
        ca_digest, why = _ca_file_problem(ca_file)
        if why:
            problems.add(r.key("ca_file"), why)
            ca_file = None
    spool_dir = r.get("spool_dir", str, None, convert=resolve)
    if spool_dir is None and url is not None:
        import hashlib
        # One spool per URL under the state directory (systemd's StateDirectory=).
        spool_dir = _default_state_directory() / "webhooks" / hashlib.sha256(url.encode()).hexdigest()[:16]
    if spool_dir is not None:
        why = _directory_problem(spool_dir)
        if why:
            problems.add(r.key("spool_dir"), why)
    spool_max_size = r.get("spool_max_size", (int, str), Webhook.spool_max_size, convert=parse_size)
    timeout = r.get("timeout", (int, float, str), Webhook.timeout, convert=_duration_within(0.1, 600))
    b = _Reader(problems, r.data.get("batch"), r.key("batch"))
    b.unknown({"max_events", "max_bytes", "max_wait"})
    max_events = b.get("max_events", int, Webhook.max_events, convert=_positive)
    max_bytes = b.get("max_bytes", (int, str), Webhook.max_bytes, convert=parse_size)
    max_wait = b.get("max_wait", (int, float, str), Webhook.max_wait, convert=_duration_within(0, 3600))
    t = _Reader(problems, r.data.get("retry"), r.key("retry"))
    t.unknown({"initial_delay", "max_delay", "give_up_after"})
    initial_delay = t.get("initial_delay", (int, float, str), Webhook.initial_delay, convert=_duration_within(0.01, 3600))
    max_delay = t.get("max_delay", (int, float, str), Webhook.max_delay, convert=_duration_within(0.01, 86400))
    give_up_after = t.get("give_up_after", (int, float, str), Webhook.give_up_after,
                          convert=_duration_within(0, 365 * 86400))
    if max_delay < initial_delay:
        problems.add(t.key("max_delay"), f"{max_delay:g} s is less than initial_delay ({initial_delay:g} s)")
    if url is None or spool_dir is None:
        return None
    return Webhook(url=url, spool_dir=spool_dir, secret_file=secret_file, secret=secret, ca_file=ca_file,
                   ca_digest=ca_digest,
                   spool_max_size=spool_max_size, max_events=max_events, max_bytes=max_bytes, max_wait=max_wait,
                   initial_delay=initial_delay, max_delay=max_delay, give_up_after=give_up_after, timeout=timeout)


# RFC 3986 appendix B: scheme, authority, path, query, fragment of any string, without raising.
_URL_PARTS = re.compile(r"^(?:([^:/?#]+):)?(?://([^/?#]*))?([^?#]*)(\?[^#]*)?(#.*)?$", re.S)


def shown_url(url: str) -> str:
    """A webhook URL as an error message may quote it: its query and fragment (which may carry a
    token, docs/events.md) and any user information replaced by "…"; scheme, host and path kept."""
    m = _URL_PARTS.match(url)
    scheme, authority, path, query, fragment = m.groups() if m else (None, None, url, None, None)
    out = f"{scheme}:" if scheme is not None else ""
    if authority is not None:
        out += "//" + (f"…@{authority.rsplit('@', 1)[1]}" if "@" in authority else authority)
    return out + path + ("?…" if query is not None else "") + ("#…" if fragment is not None else "")


def _webhook_url_problem(url: str) -> str | None:
    from urllib.parse import urlsplit

    shown = repr(shown_url(url))  # never the query: it may hold a token (nor user information)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises on a port that is not a number or out of range
    except ValueError as exc:
        return f"{shown} is not a URL: {exc}"
    if parts.scheme not in ("http", "https"):
        return f"{shown} is not an http(s) URL"
    if not parts.hostname:
        return f"{shown} names no host"
    if parts.username is not None or parts.password is not None:
        return "a user name or password in the URL is not supported (it would be logged): the signature " \
               "(secret_file) authenticates the relay to the receiver"
    if parts.fragment or any(c.isspace() for c in url):
        return f"{shown} has a fragment or spaces"
    return None


def _ca_file_problem(path: Path) -> tuple[str | None, str | None]:
    """(sha256 of the file, None) when `path` holds CA certificates TLS can use (relay/tlsfiles.py, as
    for upstream.ca_file), else (None, why). Read at load, so that check-config and a SIGHUP refuse a
    file with no usable certificate rather than the webhook sender failing after the reload is applied;
    the digest makes a bundle renewed in place a change of config."""
    import hashlib

    from .tlsfiles import ca_file_problem

    why = ca_file_problem(path)
    if why:
        return None, why
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest(), None
    except OSError as exc:
        return None, f"cannot read {path}: {(exc.strerror or str(exc)).lower()}"


def _directory_problem(path: Path) -> str | None:
    """Why the relay could not keep files in `path` (created at start when missing), or None."""
    import os

    if path.exists():
        if not path.is_dir():
            return f"{path} is not a directory"
        if not os.access(path, os.W_OK | os.X_OK):
            return f"directory {path} is not writable"
        return None
    # A symbolic link whose target is missing (a volume not mounted) "does not exist", and neither does
    # what lies under it: mkdir(parents=True) then fails (FileExistsError, a traceback in every worker).
    missing = path
    while not missing.exists() and missing != missing.parent:
        if missing.is_symlink():
            under = "" if missing == path else f", so {path} cannot be created"
            return (f"{missing} is a symbolic link to {os.readlink(missing)}, which does not exist (a volume not "
                    f"mounted?){under}")
        missing = missing.parent
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a directory (so {path} cannot be created)"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{path} does not exist and cannot be created: directory {parent} is not writable"
    return None


def _file_problem(path: Path) -> str | None:
    """Why the relay could not append to the file `path` (created at the first event when missing,
    with the directories on the way), or None. The sink opens it in its own thread, at the first
    event: without this a directory or an unwritable file there passed check-config and `relay serve`,
    and every event was then dropped."""
    import os

    if path.is_dir():
        return f"{path} is a directory (a file name is expected)"
    if path.exists():
        if not os.access(path, os.W_OK):
            return f"file {path} is not writable"
        return None
    return _directory_problem(path.parent)


METRICS_TIMEOUT_BOUNDS = (0.1, 60.0)  # metrics.ready_timeout: a probe's deadline is seconds, not minutes
METRICS_INTERVAL_BOUNDS = (1.0, 86400.0)  # metrics.bounce_list_interval


def _metrics(top: _Reader) -> MetricsSettings | None:
    if "metrics" not in top.data or top.data["metrics"] is None:
        return None
    r = _Reader(top.problems, top.data["metrics"], "metrics")
    r.unknown({"listen", "ready_timeout", "bounce_list_interval"})
    listen = r.get("listen", str, None, required=True, convert=parse_endpoint)
    ready_timeout = r.get("ready_timeout", (int, float, str), 2.0,
                          convert=_duration_within(*METRICS_TIMEOUT_BOUNDS))
    interval = r.get("bounce_list_interval", (int, float, str), 60.0,
                     convert=_duration_within(*METRICS_INTERVAL_BOUNDS))
    return MetricsSettings(listen, ready_timeout, interval) if listen is not None else None


def _milter(top: _Reader, base: Path) -> Milter | None:
    if "milter" not in top.data or top.data["milter"] is None:
        return None
    r = _Reader(top.problems, top.data["milter"], "milter")
    if not r.ok:  # `milter: on` (YAML's true): "expected a mapping" is all there is to say
        return None
    r.unknown({"listen", "non_smtpd_listen", "mode", "socket_mode", "socket_group", "workers", "idle_timeout"})
    listen = r.get("listen", str, None, required=True)
    endpoint, path = _milter_socket(top, base, "milter.listen", listen)
    non_smtpd = r.get("non_smtpd_listen", str, None)
    ns_endpoint, ns_path = _milter_socket(top, base, "milter.non_smtpd_listen", non_smtpd)
    if non_smtpd is not None and listen is not None and (
            (ns_path is not None and ns_path == path)
            or (ns_endpoint is not None and endpoint is not None and ns_endpoint.port != 0
                and (ns_endpoint.host, ns_endpoint.port) == (endpoint.host, endpoint.port))):
        top.problems.add("milter.non_smtpd_listen", f"{non_smtpd} is milter.listen too; give Postfix's "
                         f"non_smtpd_milters a socket of its own (every session on it is taken for a "
                         f"sendmail(1) submission)")
    mode = r.get("mode", str, "outbound")
    if mode not in MILTER_MODES:
        top.problems.add("milter.mode", f"{mode!r} is not one of {', '.join(MILTER_MODES)}")
        mode = "outbound"
    if non_smtpd is not None and mode != "outbound":
        # Mail submitted on this host with sendmail(1) is our own, never the world's mail that an inbound
        # milter verifies; and an inbound milter refuses no recipient, the one thing this socket changes.
        top.problems.add("milter.non_smtpd_listen", f"applies only to mode outbound (mode is {mode}): it is "
                         f"for mail submitted on this host with sendmail(1)")
    socket_mode = r.get("socket_mode", (int, str), 0o660, convert=_file_mode)
    group = r.get("socket_group", str, None)
    if group is not None:
        import grp
        try:
            grp.getgrnam(group)
        except KeyError:
            top.problems.add("milter.socket_group", f"no group named {group!r} on this system")
    if path is None and ns_path is None and ("socket_mode" in r.data or group is not None):
        top.problems.add("milter.socket_mode" if "socket_mode" in r.data else "milter.socket_group",
                         "applies only to a UNIX socket (listen: unix:PATH)")
    workers = r.get("workers", int, 1, convert=_positive)
    idle_timeout = r.get("idle_timeout", (int, float, str), Milter.idle_timeout,
                         convert=_duration_within(*MILTER_IDLE_TIMEOUT_BOUNDS))
    return Milter(endpoint, path, mode, socket_mode, group, workers, ns_endpoint, ns_path,
                  idle_timeout=idle_timeout)


def milter_postfix_lines(m: Milter) -> list[str]:
    """What `relay check-config` says of the milter sockets: the Postfix setting each one is for."""
    def name(x: Milter) -> str:
        return f"unix:{x.path}" if x.path is not None else f"inet:{x.endpoint}"

    if m.mode != "outbound":
        return [f"milter: smtpd_milters = {name(m)} (mode {m.mode})"]
    lines = [f"milter: smtpd_milters = {name(m)} (bounce-listed recipients refused at RCPT)"]
    if m.has_non_smtpd:
        lines.append(f"milter: non_smtpd_milters = {name(m.non_smtpd())} (mail submitted with sendmail(1): "
                     f"bounce-listed recipients removed at end of message)")
        if m.non_smtpd_path is None:
            # Every session there is taken for a local submission and signed (review26 F1): on TCP, any
            # process of the host may connect, not only Postfix.
            lines.append(f"warning: milter.non_smtpd_listen is TCP ({m.non_smtpd_endpoint}): any process on this "
                         f"host can connect and have its mail signed for your domains; prefer a unix: socket "
                         f"with socket_group postfix and socket_mode 0660")
    else:
        lines.append("milter: no non_smtpd_listen: leave Postfix's non_smtpd_milters out (pointed at "
                     "milter.listen, a bounce-listed recipient holds a sendmail(1) message in the maildrop)")
    return lines


def _milter_socket(top: _Reader, base: Path, key: str, listen: str | None) -> tuple[Endpoint | None, Path | None]:
    """`HOST:PORT` or `unix:PATH` -> (endpoint, path), one of them None (both when absent or wrong)."""
    endpoint = path = None
    if listen is not None and listen.startswith("unix:"):
        raw = listen[len("unix:"):]
        if not raw:
            top.problems.add(key, "unix: names no socket path (unix:/run/relay/milter.sock)")
        else:
            try:
                path = _from_config(base)(raw)
            except ValueError as exc:
                top.problems.add(key, str(exc))
            if path is not None and len(os.fsencode(path)) > _SUN_PATH_MAX:
                # sockaddr_un's sun_path holds 108 bytes with the NUL (unix(7)); a longer path fails
                # only at bind, after check-config said yes.
                top.problems.add(key, f"the socket path {path} is {len(os.fsencode(path))} bytes "
                                 f"long; a UNIX socket's path may hold at most {_SUN_PATH_MAX}")
            elif path is not None and not path.parent.is_dir():
                top.problems.add(key, f"directory {path.parent} (for the socket) does not exist")
    elif listen is not None:
        try:
            endpoint = parse_endpoint(listen)
        except ValueError as exc:
            top.problems.add(key, f"{exc}; or unix:PATH for a UNIX socket")
    return endpoint, path


_SUN_PATH_MAX = 107


def _file_mode(value) -> int:
    """A socket's mode as chmod reads it: "0660", "660" or "0o660" (strings), 0660 (YAML 1.1 reads a
    leading 0 as octal: the int 0o660), or 660 unquoted. YAML reads an unquoted 770 as the decimal
    number 770, which is 0o1402: the group could not connect, and Postfix's smtpd (group postfix) was
    refused with the mail held (review31 F4). An int above 0o777 written as three octal digits cannot
    be a YAML octal (a leading 0 gives at most 0o777 without the special bits): it is read as the
    digits it shows, as chmod 770 reads them. The setuid, setgid and sticky bits mean nothing on a
    socket and are refused, as is anything else above 0o777."""
    text = value.strip() if isinstance(value, str) else str(value)
    if isinstance(value, str):
        if not re.match(r"^0?o?[0-7]{3,4}$", text):
            raise ValueError(f"{value!r} is not a file mode such as \"0660\"")
        mode = int(text.replace("o", ""), 8)
    elif value > 0o777 and re.fullmatch(r"[0-7]{3}", text):
        mode = int(text, 8)  # 770 unquoted: chmod's 770
    else:
        mode = value
    shown = repr(value) if isinstance(value, str) else f"{value} (octal {value:o})" if value >= 0 else str(value)
    if 0o777 < mode <= 0o7777 and (isinstance(value, str) or value <= 0o7777):
        raise ValueError(f"{shown} sets the setuid, setgid or sticky bit, which mean nothing on a socket; "
                         f"write three octal digits such as \"0660\"")
    if not 0 <= mode <= 0o777:
        raise ValueError(f"{shown} is not a file mode such as \"0660\" (quote it: unquoted, YAML reads "
                         f"digits without a leading 0 as a decimal number)")
    return mode


def _correlation(top: _Reader) -> Correlation:
    r = _Reader(top.problems, top.data.get("correlation"), "correlation")
    r.unknown({"headers", "sender_patterns"})
    headers = []
    for i, h in enumerate(r.get("headers", list, []) or []):
        if not isinstance(h, str) or not re.match(r"^[!-9;-~]+$", h):
            top.problems.add(f"correlation.headers[{i}]", f"{h!r} is not a header field name (RFC 5322 2.2)")
        else:
            headers.append(h)
    patterns = []
    for i, p in enumerate(r.get("sender_patterns", list, []) or []):
        try:
            # RE2: an operator's pattern runs on every sender in linear time (relay/regex.py).
            rx = compile_linear(str(p))
        except PatternError as exc:
            top.problems.add(f"correlation.sender_patterns[{i}]", f"invalid regex: {exc}")
            continue
        if not rx.groupindex:
            top.problems.add(f"correlation.sender_patterns[{i}]", "needs at least one named group, e.g. (?P<conversation_id>...)")
            continue
        patterns.append(rx)
    return Correlation(tuple(headers), tuple(patterns))


def _postfix_log(top: _Reader, base: Path) -> PostfixLog | None:
    if "postfix_log" not in top.data or top.data["postfix_log"] is None:
        return None
    r = _Reader(top.problems, top.data["postfix_log"], "postfix_log")
    r.unknown({"path", "journal", "journal_directory", "state_directory", "max_queue_ids"})
    resolve = _from_config(base)
    path = r.get("path", str, None, convert=resolve)
    journal = r.get("journal", bool, False)
    if path is None and not journal and r.ok and r.data.get("path") is None:
        top.problems.add("postfix_log", "name the log to follow: path: /var/log/mail.log, or journal: true")
    if path is not None and journal:
        top.problems.add("postfix_log.journal", "path and journal: true exclude each other; follow one of them")
    if path is not None and path.exists() and not path.is_file():
        top.problems.add("postfix_log.path", f"{path} is not a file")
    journal_directory = r.get("journal_directory", str, None, convert=resolve)
    if journal_directory is not None and not journal:
        top.problems.add("postfix_log.journal_directory", "applies only with journal: true")
    elif journal_directory is not None and not journal_directory.is_dir():
        top.problems.add("postfix_log.journal_directory", f"directory {journal_directory} does not exist")
    state = r.get("state_directory", str, None, convert=resolve) or _default_state_directory()
    if state.exists() and not state.is_dir():
        top.problems.add("postfix_log.state_directory", f"{state} is not a directory")
    return PostfixLog(path=path, journal=journal, journal_directory=journal_directory, state_directory=state,
                      max_queue_ids=r.get("max_queue_ids", int, 100_000, convert=_positive))


# --- bounces_in (asynchronous bounces: DSN, ARF, VERP) ----------------------------------------------

VERP_KEY_MIN_BYTES = 16  # an HMAC key shorter than this can be guessed


def _bounces_in(top: _Reader, base: Path) -> BouncesIn | None:
    if "bounces_in" not in top.data or top.data["bounces_in"] is None:
        return None
    r = _Reader(top.problems, top.data["bounces_in"], "bounces_in")
    r.unknown({"listen", "protocol", "domains", "key_file", "unsigned", "max_connections",
               "max_connections_per_client", "max_message_size"})
    listen = r.get("listen", str, None, convert=parse_endpoint)
    domains: list[str] = []
    raw = r.get("domains", list, [], required=True) or []
    if "domains" in r.data and not raw:
        top.problems.add("bounces_in.domains", "needs at least one domain (mail to any other domain is refused)")
    for i, name in enumerate(raw):
        if not isinstance(name, str) or not _HOSTNAME.match(name.rstrip(".")) or "." not in name:
            top.problems.add(f"bounces_in.domains[{i}]", f"{name!r} is not a domain name")
        else:
            domains.append(name.lower().rstrip("."))
    path = r.get("key_file", str, None)
    key_file, raw = _secret(r, "key_file", path, base, "the VERP key")  # read once: one error for a wrong type
    key = b""
    if raw is not None:
        key = raw.strip()
        if len(key) < VERP_KEY_MIN_BYTES:
            top.problems.add("bounces_in.key_file", f"file {key_file}: the key has {len(key)} bytes; use at "
                                                    f"least {VERP_KEY_MIN_BYTES} random bytes "
                                                    f"(e.g. head -c 32 /dev/urandom | base64 > FILE)")
    d = BouncesIn()
    unsigned = r.get("unsigned", str, d.unsigned)
    if unsigned not in UNSIGNED_BOUNCES:
        top.problems.add("bounces_in.unsigned", f"expected never or count, got {unsigned!r} (a bounce nothing "
                                                f"authenticates never lists at once)")
        unsigned = d.unsigned
    elif "unsigned" in r.data and path:
        top.problems.add("bounces_in.unsigned", "applies only without key_file: with a key, a bounce without a "
                                                "valid VERP token is refused at RCPT")
    protocol = r.get("protocol", str, d.protocol)
    if protocol not in BOUNCES_IN_PROTOCOLS:
        top.problems.add("bounces_in.protocol", f"expected smtp or lmtp, got {protocol!r} (lmtp: RFC 2033, for an "
                                                f"MTA that hands the bounce domains' mail on over LMTP)")
        protocol = d.protocol
    bounces_in = BouncesIn(
        listen=listen, protocol=protocol, domains=tuple(domains), key_file=key_file, key=key, unsigned=unsigned,
        max_connections=r.get("max_connections", int, d.max_connections, convert=_positive),
        max_connections_per_client=r.get("max_connections_per_client", int, d.max_connections_per_client,
                                         convert=_positive),
        max_message_size=r.get("max_message_size", int, d.max_message_size, convert=_positive))
    if bounces_in.max_connections_per_client > bounces_in.max_connections:
        top.problems.add("bounces_in.max_connections_per_client",
                         f"{bounces_in.max_connections_per_client} is more than bounces_in.max_connections "
                         f"({bounces_in.max_connections}): one client could still take every connection")
    return bounces_in


UNSIGNED_BOUNCES = ("never", "count")
BOUNCES_IN_PROTOCOLS = ("smtp", "lmtp")


def bounces_in_warnings(settings: Settings) -> list[str]:
    """What `relay check-config` and `relay serve` warn about a bounces_in listener: without key_file it
    takes a bounce naming any address from anyone (review14 F2)."""
    b = settings.bounces_in
    if b is None or b.listen is None or b.key:
        return []
    if b.unsigned == "count":
        return ["bounces_in has no key_file and unsigned: count: anyone who can reach "
                f"{b.listen} can mail a bounce that counts towards listing any address (never at once); "
                "set key_file (VERP, docs/bounces-in.md) so that only bounces of the relay's own mail count"]
    return ["bounces_in has no key_file: anyone who can reach "
            f"{b.listen} can mail a bounce naming any address, so bounces there are recorded as events but "
            "never touch the bounce list; set key_file (VERP, docs/bounces-in.md) so that bounces of the "
            "relay's own mail list their recipients, or unsigned: count to let any bounce count towards "
            "listing (never at once)"]


__all__ = ["Settings", "load_settings", "bounces_in_warnings", "ConfigError", "parse_duration", "parse_endpoint", "Endpoint"]
