"""MTA-STS (RFC 8461): a recipient domain's published demand for verified TLS to its MX hosts.

Discovery is a TXT record `_mta-sts.<domain>` (`v=STSv1; id=...`) asked through the relay's
one Resolver; the policy itself is a small text file at
`https://mta-sts.<domain>/.well-known/mta-sts.txt`, cached by its id for its `max_age`.

The fetch is our own small HTTPS GET on asyncio rather than postfix-mta-sts-resolver's
(docs/tls.md says why in full): that library asks DNS through aiodns, past the relay's
resolver (its nameservers, its cache, the loopback server of the tests), folds every failure
into one "fetch error" without a reason, takes no CA file or port, and would add aiohttp,
aiodns and pycares for about sixty lines of work. The host name `mta-sts.<domain>` is looked
up through our Resolver, and the certificate must be valid for it (RFC 8461 3.3).

What a sender does with what it finds (RFC 8461 5.1, 3.3):
- TXT id equal to the cached policy's, policy not expired: the cached policy, no fetch.
- a new id, or an expired policy: fetch; a failed fetch leaves the cached policy in force
  until it expires, and without one the domain is treated as having no policy.
- no TXT record (or DNS trouble) while a policy is cached and unexpired: the cached policy.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..dns import DnsTemporaryError
from .internal import internal_kind

__all__ = ["StsPolicy", "StsResult", "PolicyError", "FetchError", "PolicyFetcher", "MtaSts",
           "parse_record", "parse_policy", "mx_matches"]

MAX_AGE_LIMIT = 31557600  # RFC 8461 3.2: one year
MAX_POLICY_BYTES = 64 * 1024  # RFC 8461 3.3: senders may limit the body; 64 KiB is ample
MAX_HEADER_BYTES = 16 * 1024
FETCH_TIMEOUT = 10.0  # the fetch happens while a client waits for its RCPT reply
FAILED_FETCH_RETRY = 300.0  # after a failed fetch, do not ask the same host again for this long
CACHE_SIZE = 10000

_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
_WSP = " \t"


class PolicyError(ValueError):
    """A policy file that is not a valid RFC 8461 3.2 policy; the text says what is wrong."""


class FetchError(Exception):
    """The policy could not be fetched (DNS, connection, TLS, HTTP status, content type, size)."""


@dataclass(frozen=True)
class StsPolicy:
    """One domain's MTA-STS policy as fetched (RFC 8461 3.2)."""

    domain: str
    id: str  # from the TXT record the policy was fetched for
    mode: str  # enforce | testing | none
    max_age: int  # seconds
    mx: tuple[str, ...]  # patterns, lower case, without a final dot
    fetched_at: float  # time.time()

    @property
    def expires_at(self) -> float:
        return self.fetched_at + self.max_age

    def allows(self, host: str) -> bool:
        """RFC 8461 4.1: the MX host matches one of the policy's patterns."""
        return any(mx_matches(p, host) for p in self.mx)

    def as_dict(self) -> dict:
        return {"id": self.id, "mode": self.mode, "max_age": self.max_age, "mx": list(self.mx)}


@dataclass(frozen=True)
class StsResult:
    """What MTA-STS says about one domain now: the policy in force (None: none applies), where it
    came from, and what went wrong on the way (for the event and the log), if anything."""

    policy: StsPolicy | None
    source: str = "none"  # none | fetched | cached
    problem: str | None = None


def parse_record(text: str) -> str | None:
    """The id of a `v=STSv1; id=...;` TXT record (RFC 8461 3.1), or None if it is not a valid one."""
    fields = [f.strip(_WSP) for f in text.split(";")]
    if fields and fields[-1] == "":
        fields.pop()  # a trailing ";" is allowed
    if not fields or fields[0] != "v=STSv1":
        return None
    ident = None
    for field in fields[1:]:
        key, sep, value = field.partition("=")
        if not sep:
            return None
        if key == "id" and ident is None:
            ident = value
    return ident if ident is not None and _ID.match(ident) else None


def parse_policy(text: str, domain: str = "", ident: str = "", fetched_at: float = 0.0) -> StsPolicy:
    """An RFC 8461 3.2 policy file; raises PolicyError saying what is wrong."""
    values: dict[str, str] = {}
    mx: list[str] = []
    for number, line in enumerate(re.split(r"\r?\n", text), 1):
        if not line.strip(_WSP):
            continue
        key, sep, value = line.partition(":")
        if not sep or not key or key != key.strip(_WSP):
            raise PolicyError(f"line {number} is not 'key: value' ({line[:60]!r})")
        value = value.strip(_WSP)
        if key == "mx":
            mx.append(value.rstrip(".").lower())
        else:
            values.setdefault(key, value)  # other keys: the first occurrence counts; unknown ones are ignored
    if values.get("version") != "STSv1":
        raise PolicyError(f"version is {values.get('version')!r}, not 'STSv1'")
    mode = values.get("mode")
    if mode not in ("enforce", "testing", "none"):
        raise PolicyError(f"mode is {mode!r}, not one of enforce, testing, none")
    raw_age = values.get("max_age")
    if raw_age is None or not re.fullmatch(r"[0-9]{1,10}", raw_age):
        raise PolicyError(f"max_age is {raw_age!r}, not a number of seconds")
    max_age = int(raw_age)
    if max_age > MAX_AGE_LIMIT:
        raise PolicyError(f"max_age {max_age} is over the limit of {MAX_AGE_LIMIT} seconds (RFC 8461 3.2)")
    for pattern in mx:
        if not _valid_pattern(pattern):
            raise PolicyError(f"mx {pattern!r} is not a host name or a '*.' wildcard")
    if mode != "none" and not mx:
        raise PolicyError(f"mode {mode} without any mx pattern")
    return StsPolicy(domain, ident, mode, max_age, tuple(mx), fetched_at)


def _valid_pattern(pattern: str) -> bool:
    name = pattern[2:] if pattern.startswith("*.") else pattern
    labels = name.split(".")
    return bool(name) and all(label and len(label) <= 63 and "*" not in label for label in labels)


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 4.1: a pattern is a host name, or `*.` and a domain matching exactly one more
    label on the left (`*.example.com` matches `mx.example.com`, neither `example.com` nor
    `a.b.example.com`). Case-insensitive; a final dot is ignored."""
    pattern = pattern.rstrip(".").lower()
    host = host.rstrip(".").lower()
    if pattern.startswith("*."):
        first, dot, rest = host.partition(".")
        return bool(first) and bool(dot) and rest == pattern[2:]
    return host == pattern


def policy_tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """The TLS context of policy fetches. RFC 8461 3.3: the policy host's certificate must be valid for
    mta-sts.<domain> and chain to a trusted root; check_hostname does the name, CERT_REQUIRED the chain.
    The system's roots, plus the operator's CA file (upstream.ca_file, as certs.trust_store does).
    Reads the disk: called in a thread. Raises ssl.SSLError or OSError when `ca_file` cannot be loaded."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=str(ca_file))
    return context


def fetcher_tls_context(settings) -> ssl.SSLContext:
    """policy_tls_context of settings.upstream.ca_file, built when the config is loaded (at start, and in
    the reload's thread at SIGHUP), as the smarthost's context is (upstream.smarthost_tls_context): a
    ConfigError naming upstream.ca_file when the file cannot be loaded now (it passed the config's own
    check when the config was read, but may have been replaced since), never an error at a fetch."""
    ca_file = settings.upstream.ca_file
    try:
        return policy_tls_context(ca_file)
    except (ssl.SSLError, OSError) as exc:
        from ..errors import ConfigError, Problem
        from ..tlsfiles import ca_file_problem

        why = (ca_file_problem(ca_file) if ca_file else None) or f"cannot load: {exc}"
        raise ConfigError([Problem(str(settings.source), "upstream.ca_file", why)]) from None


class PolicyFetcher:
    """GET https://mta-sts.<domain>/.well-known/mta-sts.txt (RFC 8461 3.3).

    `port` exists so that tests can serve a policy on loopback; an operator leaves it at 443.
    `ca_file` adds trust anchors to the system's (upstream.ca_file; a test CA in tests).
    `internal_networks`: the internal networks the fetch may still connect to
    (upstream.mx_internal_networks, as for MX hosts: relay/delivery/internal.py); an address of the
    policy host in any other internal network is not connected to.
    `source_for(address)`: the source address to connect to `address` from, or None for the system's
    choice (MxDelivery.source_for: one of `egress_ips` of the address's family, as for MX hosts), and
    `reachable(addresses)`: those of them there is a source address for (MxDelivery.reachable)."""

    def __init__(self, resolver, *, port: int = 443, ca_file: Path | None = None,
                 timeout: float = FETCH_TIMEOUT, user_agent: str = "relay (MTA-STS)",
                 internal_networks: Iterable = (), source_for=None, reachable=None,
                 context: ssl.SSLContext | None = None):
        self.resolver = resolver
        self.source_for = source_for or (lambda address: None)
        self.reachable = reachable or (lambda addresses: addresses)
        self.port = int(port)
        self.internal_networks = tuple(internal_networks)
        self.timeout = float(timeout)
        self.user_agent = user_agent
        self._ca_file = ca_file
        # None: built from `ca_file` at the first fetch (tests); the relay passes the one it built at load.
        self._context: ssl.SSLContext | None = context

    def _ssl_context(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = policy_tls_context(self._ca_file)
        return self._context

    def use_context(self, context: ssl.SSLContext) -> None:
        """Fetch with `context` from now on (policy_tls_context of a reloaded upstream.ca_file: SIGHUP
        reads the file again, so that a CA bundle renewed in place is trusted from that reload on, as
        the smarthost's context is; a fetch under way finishes with the context it began with)."""
        self._context = context

    async def fetch(self, domain: str) -> str:
        """The policy text; raises FetchError saying what failed."""
        host = f"mta-sts.{domain}"
        try:
            return await asyncio.wait_for(self._fetch(host), self.timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise FetchError(f"https://{host}/.well-known/mta-sts.txt did not answer within "
                             f"{self.timeout:g}s") from None

    async def _fetch(self, host: str) -> str:
        try:
            addresses = await self.resolver.addresses(host)
        except DnsTemporaryError as exc:
            raise FetchError(f"{host} could not be looked up ({exc.reason})") from None
        if not addresses:
            raise FetchError(f"{host} has no address in DNS")
        # The domain names the policy host, so a hostile one could point it into the relay's own host
        # and networks (SSRF), as it could its MX hosts: the same rule applies (docs/delivery.md). The
        # address checked is the one connected to, never the name looked up again (DNS rebinding).
        refused = [(address, kind) for address in addresses
                   if (kind := internal_kind(address, self.internal_networks)) is not None]
        addresses = [address for address in addresses if address not in {a for a, _ in refused}]
        if not addresses:
            address, kind = refused[0]
            raise FetchError(f"{host} is at {address}, {kind}"
                             + (f" (and {len(refused) - 1} more internal addresses)" if len(refused) > 1 else "")
                             + "; this relay does not connect into internal networks "
                               "(upstream.mx_internal_networks)")
        # With egress_ips set, the fetch leaves from one of them, as MX delivery does: the operator
        # chose the addresses this relay is seen from (firewalls, the policy host's logs), and an
        # address of a family without one is not connected to.
        usable = self.reachable(addresses)
        if not usable:
            raise FetchError(f"{host} has no address of a family egress_ips has a source address for "
                             f"({', '.join(addresses)})")
        addresses = usable
        context = await asyncio.to_thread(self._ssl_context)  # the first call reads the trust store
        errors = [f"{address}: {kind}, not connected to" for address, kind in refused]
        for address in addresses:
            source = self.source_for(address)
            try:
                reader, writer = await asyncio.open_connection(address, self.port, ssl=context,
                                                               server_hostname=host,
                                                               local_addr=(source, 0) if source else None)
            except ssl.SSLCertVerificationError as exc:
                raise FetchError(f"the certificate of {host} ({address}) does not verify: "
                                 f"{exc.verify_message or exc.reason}") from None
            except (OSError, ssl.SSLError) as exc:
                errors.append(f"{address}: {exc.strerror or exc}" if isinstance(exc, OSError) else
                              f"{address}: TLS failed ({exc.reason or exc})")
                continue
            try:
                return await self._get(reader, writer, host)
            finally:
                writer.close()
        raise FetchError(f"no connection to {host} port {self.port} ({'; '.join(errors)})")

    async def _get(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> str:
        writer.write(f"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {self.user_agent}\r\n"
                     f"Accept: text/plain\r\nConnection: close\r\n\r\n".encode("ascii"))
        await writer.drain()
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise FetchError(f"https://{host}/ sent headers over {MAX_HEADER_BYTES} bytes") from None
        except (asyncio.IncompleteReadError, OSError) as exc:
            raise FetchError(f"https://{host}/ closed the connection before its reply ({exc})") from None
        if len(head) > MAX_HEADER_BYTES:
            raise FetchError(f"https://{host}/ sent headers over {MAX_HEADER_BYTES} bytes")
        lines = head.decode("latin-1").split("\r\n")
        status = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
        if not status:
            raise FetchError(f"https://{host}/ did not answer HTTP ({lines[0][:60]!r})")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers.setdefault(name.strip().lower(), value.strip())
        code = int(status.group(1))
        url = f"https://{host}/.well-known/mta-sts.txt"
        if 300 <= code < 400:
            raise FetchError(f"{url} redirects (HTTP {code}); RFC 8461 3.3 forbids following redirects")
        if code != 200:
            raise FetchError(f"{url} answered HTTP {code}")
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "text/plain":
            raise FetchError(f"{url} is {media_type or 'of no content type'}, not text/plain (RFC 8461 3.2)")
        body = await self._body(reader, headers, url)
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise FetchError(f"{url} is not UTF-8 text") from None

    @staticmethod
    async def _body(reader: asyncio.StreamReader, headers: dict[str, str], url: str) -> bytes:
        too_big = FetchError(f"{url} is larger than {MAX_POLICY_BYTES} bytes")
        try:
            if "chunked" in headers.get("transfer-encoding", "").lower():
                body = b""
                while True:
                    size_line = await reader.readuntil(b"\r\n")
                    size = int(size_line.split(b";")[0].strip(), 16)
                    if size == 0:
                        return body
                    if len(body) + size > MAX_POLICY_BYTES:
                        raise too_big
                    body += await reader.readexactly(size)
                    await reader.readexactly(2)
            length = headers.get("content-length")
            if length is not None:
                if not length.isdigit():
                    raise FetchError(f"{url} has a bad Content-Length {length[:20]!r}")
                if int(length) > MAX_POLICY_BYTES:
                    raise too_big
                return await reader.readexactly(int(length))
            body = await reader.read(MAX_POLICY_BYTES + 1)
            while len(body) <= MAX_POLICY_BYTES:
                more = await reader.read(MAX_POLICY_BYTES + 1 - len(body))
                if not more:
                    return body
                body += more
            raise too_big
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, OSError) as exc:
            raise FetchError(f"{url} was cut off or malformed ({type(exc).__name__})") from None


class MtaSts:
    """The policies of recipient domains, discovered, fetched and cached (RFC 8461 5.1).

    The cache is in memory, per process: a restart or another worker fetches again, which costs
    one HTTPS request per domain and changes no verdict. Concurrent lookups for one domain share
    one fetch."""

    def __init__(self, resolver, fetcher: PolicyFetcher | None = None, *, clock=time.time,
                 cache_size: int = CACHE_SIZE):
        self.resolver = resolver
        self.fetcher = fetcher or PolicyFetcher(resolver)
        self.clock = clock
        self.cache_size = cache_size
        self._cache: OrderedDict[str, StsPolicy] = OrderedDict()
        self._failed: dict[tuple[str, str], tuple[float, str]] = {}  # (domain, id) -> (until, why)
        self._inflight: dict[str, asyncio.Future] = {}
        self.fetches = 0  # policies fetched (for tests and metrics)

    def cached(self, domain: str) -> StsPolicy | None:
        policy = self._cache.get(domain)
        if policy is not None and policy.expires_at <= self.clock():
            del self._cache[domain]
            return None
        return policy

    async def policy_for(self, domain: str) -> StsResult:
        """The policy in force for `domain` (None in the result when none applies)."""
        domain = domain.rstrip(".").lower()
        pending = self._inflight.get(domain)
        if pending is not None:
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._inflight[domain] = future
        try:
            result = await self._resolve(domain)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._inflight[domain]

    async def _resolve(self, domain: str) -> StsResult:
        cached = self.cached(domain)
        try:
            txts = await self.resolver.txt(f"_mta-sts.{domain}")
        except DnsTemporaryError as exc:
            problem = f"the _mta-sts TXT record could not be looked up ({exc.reason})"
            return StsResult(cached, "cached", problem) if cached else StsResult(None, "none", problem)
        # RFC 8461 3.1: records not starting with v=STSv1 are discarded; other than exactly one left
        # means no policy is available (a cached one stays in force).
        candidates = [t for t in txts if t.startswith("v=STSv1")]
        ident = parse_record(candidates[0]) if len(candidates) == 1 else None
        if ident is None:
            problem = None if not candidates else (
                f"{len(candidates)} _mta-sts TXT records" if len(candidates) > 1
                else f"the _mta-sts TXT record is not valid ({candidates[0][:80]!r})")
            return StsResult(cached, "cached", problem) if cached else StsResult(None, "none", problem)
        if cached is not None and cached.id == ident:
            return StsResult(cached, "cached")
        failed = self._failed.get((domain, ident))
        if failed is not None and failed[0] > self.clock():
            return StsResult(cached, "cached", failed[1]) if cached else StsResult(None, "none", failed[1])
        try:
            self.fetches += 1
            text = await self.fetcher.fetch(domain)
            policy = parse_policy(text, domain, ident, self.clock())
        except (FetchError, PolicyError) as exc:
            why = (f"the MTA-STS policy of {domain} is not valid: {exc}" if isinstance(exc, PolicyError)
                   else f"the MTA-STS policy of {domain} could not be fetched: {exc}")
            self._failed[(domain, ident)] = (self.clock() + FAILED_FETCH_RETRY, why)
            self._trim_failed()
            return StsResult(cached, "cached", why) if cached else StsResult(None, "none", why)
        self._failed.pop((domain, ident), None)
        self._store(policy)
        return StsResult(policy, "fetched")

    def _store(self, policy: StsPolicy) -> None:
        self._cache[policy.domain] = policy
        self._cache.move_to_end(policy.domain)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _trim_failed(self) -> None:
        if len(self._failed) > self.cache_size:
            now = self.clock()
            for key in [k for k, (until, _) in self._failed.items() if until <= now]:
                del self._failed[key]
