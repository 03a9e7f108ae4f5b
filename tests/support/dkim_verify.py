"""DKIM verifiers that are not ours, pointed at the loopback DNS server.

- `mail_dkim()`: Mail::DKIM (Debian's libmail-dkim-perl) through
  tests/support/dkim_verify.pl, with Net::DNS asking the loopback server.
- `dkimpy()`: dkimpy's verifier, with a DNS function that asks the loopback
  server over the network (dnspython), not a patched lookup. Used for Ed25519,
  which this Mail::DKIM (1.20230212) does not implement.
- `opendkim()`: OpenDKIM's library (Debian's opendkim 2.11, which does Ed25519)
  in its test mode, `opendkim -t FILE`. Its `Nameservers` option takes no
  port, so it cannot ask the loopback server: the public keys come from a
  `TestPublicKeys` file instead, written from the same TXT values.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rdatatype

SCRIPT = Path(__file__).with_name("dkim_verify.pl")


@dataclass
class SignatureResult:
    result: str  # pass | fail | invalid | temperror | none ...
    domain: str
    selector: str
    algorithm: str
    detail: str


@dataclass
class MailDkimResult:
    overall: str
    detail: str
    signatures: list[SignatureResult]

    @property
    def all_pass(self) -> bool:
        return bool(self.signatures) and all(s.result == "pass" for s in self.signatures)


def mail_dkim(message: bytes, dns_port: int) -> MailDkimResult:
    proc = subprocess.run(["perl", str(SCRIPT), str(dns_port)], input=message, capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"dkim_verify.pl failed: {proc.stderr.decode(errors='replace')}")
    sigs, overall, detail = [], "", ""
    for line in proc.stdout.decode().splitlines():
        parts = line.split("\t")
        if parts[0] == "overall":
            overall, detail = parts[1], parts[2] if len(parts) > 2 else ""
        else:
            sigs.append(SignatureResult(*(parts + [""] * 5)[:5]))
    return MailDkimResult(overall, detail, sigs)


def mail_dkim_version() -> str:
    return subprocess.run(["perl", "-MMail::DKIM", "-e", "print $Mail::DKIM::VERSION"],
                          capture_output=True, text=True, check=True).stdout.strip()


def loopback_txt(dns_port: int):
    """A dkimpy dnsfunc asking the loopback DNS server (UDP, then TCP if truncated)."""
    def lookup(name, timeout=5):
        qname = name.decode() if isinstance(name, bytes) else name
        query = dns.message.make_query(qname, dns.rdatatype.TXT)
        response = dns.query.udp(query, "127.0.0.1", port=dns_port, timeout=timeout)
        if response.flags & dns.flags.TC:
            response = dns.query.tcp(query, "127.0.0.1", port=dns_port, timeout=timeout)
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                return b"".join(next(iter(rrset)).strings)
        return None
    return lookup


def dkimpy(message: bytes, dns_port: int) -> list[bool]:
    """One verdict per DKIM-Signature field, top first."""
    import dkim

    verifier = dkim.DKIM(message)
    count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
    return [bool(verifier.verify(idx=i, dnsfunc=loopback_txt(dns_port))) for i in range(count)]


def opendkim(message: bytes, records: dict[str, str]) -> dict[str, str]:
    """{selector: result} from OpenDKIM's Authentication-Results, e.g. {"e1": "pass"}.
    `records`: {"SELECTOR._domainkey.DOMAIN": "v=DKIM1; k=...; p=..."}."""
    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp, "keys")
        keys.write_text("".join(f"{name} {value}\n" for name, value in records.items()))
        conf = Path(tmp, "opendkim.conf")
        conf.write_text(f"Mode v\nTestPublicKeys {keys}\nSyslog no\nAlwaysAddARHeader yes\n")
        path = Path(tmp, "message.eml")
        path.write_bytes(message)
        proc = subprocess.run(["opendkim", "-x", str(conf), "-t", str(path), "-vv"], capture_output=True,
                              timeout=60)
    output = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"opendkim -t failed: {output}")
    return {m.group(2): m.group(1) for m in re.finditer(r"dkim=(\w+)[^;]*?header\.s=([\w.-]+)", output)}
