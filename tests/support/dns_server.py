"""A real DNS server on loopback (dnslib, UDP and TCP on one free port) serving a
zone that tests edit while it runs. Tests never patch lookups."""

from __future__ import annotations

import socket
import threading

from dnslib import CNAME, QTYPE, RCODE, RR, SOA, TLSA, A, AAAA, MX, PTR, TXT, DNSRecord
from dnslib.dns import DNSError
from dnslib.server import BaseResolver, DNSLogger, DNSServer


def split_txt(value: str | bytes) -> list[bytes]:
    """TXT character-strings hold at most 255 bytes (RFC 1035 3.3.14)."""
    data = value.encode() if isinstance(value, str) else value
    return [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]


class Zone(BaseResolver):
    def __init__(self):
        self.records: dict[tuple[str, str], list] = {}
        self.servfail: set[str] = set()  # names that answer SERVFAIL (DNS trouble)
        # (name, type) questions answered SERVFAIL, the others at the name as usual: what a validating
        # resolver answers when one RRset's signature does not verify (a forged answer, RFC 4035 5.5).
        self.bogus: set[tuple[str, str]] = set()
        # Names that get no answer at all, nor does any name under them: the resolver times out.
        self.silent: set[str] = set()
        # Zones whose answers carry the AD bit, as a validating resolver's would (RFC 4035 3.2.3);
        # see sign(). Nothing is really signed: the relay trusts its resolver's AD bit.
        self.signed: set[str] = set()
        self.queries: list[tuple[str, str]] = []
        self.ttl = 300
        # When set, a negative answer (NXDOMAIN, NODATA) carries its zone's SOA in the authority section
        # with this TTL and MINIMUM, as every real authoritative server's does (RFC 2308 3), so that the
        # resolver may cache it; None (the default) leaves the SOA out: nothing negative is cached.
        self.negative_ttl: int | None = None
        # Top-level domains that exist (each answers its SOA), as they do in the public DNS: the relay asks
        # one before it believes an NXDOMAIN (relay/delivery/routes.py). Empty: a resolver that knows only
        # the names added here, and says NXDOMAIN for every other (review21 F4).
        self.tlds: set[str] = {"com", "net", "org", "de", "test", "example"}
        self.lock = threading.Lock()

    @staticmethod
    def _key(name: str) -> str:
        return name.rstrip(".").lower() + "."

    def add(self, name: str, rtype: str, value) -> None:
        rtype = rtype.upper()
        if rtype == "TXT":
            rdata = TXT(split_txt(value))
        elif rtype == "A":
            rdata = A(value)
        elif rtype == "AAAA":
            rdata = AAAA(value)
        elif rtype == "MX":
            pref, host = value
            rdata = MX(host, pref)
        elif rtype == "PTR":
            rdata = PTR(value)
        elif rtype == "TLSA":
            usage, selector, mtype, data = value
            rdata = TLSA(usage, selector, mtype, bytes.fromhex(data) if isinstance(data, str) else data)
        elif rtype == "CNAME":
            rdata = CNAME(value)
        else:
            raise ValueError(rtype)
        with self.lock:
            self.records.setdefault((self._key(name), rtype), []).append(rdata)

    def txt(self, name: str, value) -> None:
        self.add(name, "TXT", value)

    def sign(self, zone: str) -> None:
        """Answers for `zone` and every name under it carry the AD bit (DNSSEC-validated)."""
        with self.lock:
            self.signed.add(self._key(zone))

    def _is_signed(self, qname: str) -> bool:
        return any(qname == z or qname.endswith("." + z) for z in self.signed)

    def clear(self, name: str | None = None) -> None:
        with self.lock:
            if name is None:
                self.records.clear()
            else:
                for k in [k for k in self.records if k[0] == self._key(name)]:
                    del self.records[k]

    def resolve(self, request, handler):
        reply = request.reply()
        qname = str(request.q.qname).lower()
        qtype = QTYPE[request.q.qtype]
        with self.lock:
            self.queries.append((qname, qtype))
            if any(qname == self._key(s) or qname.endswith("." + self._key(s)) for s in self.silent):
                raise DNSError(f"{qname} is silent")  # dnslib's handler sends nothing then
            owner = qname
            chain = [owner]
            for _ in range(8):  # a recursive server follows aliases within what it knows (RFC 1034 4.3.2)
                if (owner in self.servfail or owner.rstrip(".") in self.servfail
                        or (owner.rstrip("."), qtype) in self.bogus):
                    reply.header.rcode = RCODE.SERVFAIL
                    return reply
                answers = list(self.records.get((owner, qtype), []))
                alias = self.records.get((owner, "CNAME")) if qtype != "CNAME" else None
                if answers or not alias:
                    break
                reply.add_answer(RR(owner, QTYPE.CNAME, rdata=alias[0], ttl=self.ttl))
                owner = str(alias[0].label).lower()
                chain.append(owner)
            known = any(k[0] == owner for k in self.records) or owner.rstrip(".") in self.tlds
            if qtype == "SOA" and owner.rstrip(".") in self.tlds:
                answers = [SOA("ns." + owner, "hostmaster." + owner, (1, 7200, 900, 604800, 900))]
            # dnslib's reply() copies the query's AD bit; a resolver sets it only when it validated,
            # every link of a CNAME chain included (RFC 4035 3.2.3: all RRsets of the answer).
            reply.header.ad = 1 if all(self._is_signed(o) for o in chain) else 0
        for rdata in answers:
            reply.add_answer(RR(owner, request.q.qtype, rdata=rdata, ttl=self.ttl))
        if not answers and not known:
            reply.header.rcode = RCODE.NXDOMAIN
        if not answers and self.negative_ttl is not None:
            tld = owner.rstrip(".").rpartition(".")[2] + "."
            reply.add_auth(RR(tld, QTYPE.SOA, ttl=self.negative_ttl, rdata=SOA(
                "ns." + tld, "hostmaster." + tld, (1, 7200, 900, 604800, self.negative_ttl))))
        return reply


def _free_port() -> int:
    # One port free for both UDP and TCP.
    from tests.support.peers import free_port

    return free_port(kinds=(socket.SOCK_DGRAM, socket.SOCK_STREAM))


class LoopbackDNS:
    def __init__(self):
        self.zone = Zone()
        self.port = _free_port()
        quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
        self._servers = [DNSServer(self.zone, address="127.0.0.1", port=self.port, tcp=tcp, logger=quiet)
                         for tcp in (False, True)]
        self._threads: list[threading.Thread] = []

    def start(self) -> "LoopbackDNS":
        for s in self._servers:
            # A short poll interval: socketserver's shutdown() waits up to one interval per server.
            t = threading.Thread(target=s.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        for s in self._servers:
            s.server.shutdown()
            s.server.server_close()

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def query(self, name: str, rtype: str = "A") -> DNSRecord:
        return DNSRecord.parse(DNSRecord.question(name, rtype).send("127.0.0.1", self.port, timeout=2))
