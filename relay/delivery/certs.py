"""A TLS peer's certificates: the chain it sent, path validation, and the words for a failure.

Outbound connections to MX hosts are made without certificate checks in the handshake
(opportunistic TLS, RFC 7435, must never fail on a self-signed certificate), and whatever a
destination's policy asks for (PKIX for `verify` and MTA-STS, DANE) is checked afterwards on the
chain the server sent. One handshake serves every policy, `testing` modes can report and still
deliver, and a failure says exactly what was wrong instead of OpenSSL's one line.

Path validation is `cryptography`'s verifier (RFC 5280 with the Web PKI's profile: a server
name in the subjectAltName, serverAuth when an EKU is present); trust anchors are the system's
bundle or an operator's CA file.
"""

from __future__ import annotations

import _ssl
import datetime
import ssl
import warnings
from pathlib import Path
from typing import Sequence

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.hazmat.primitives import serialization
from cryptography.x509.verification import DNSName, PolicyBuilder, Store, VerificationError

__all__ = ["peer_chain", "load_chain", "trust_store", "validate", "spki", "TrustStoreError"]


class TrustStoreError(Exception):
    """The trust anchors could not be read (a CA file missing, unreadable or without certificates)."""


def peer_chain(ssl_object) -> list[bytes]:
    """The certificates the server sent (DER, its own first), whatever the handshake verified.

    Python 3.13 has `get_unverified_chain()` on SSLObject; 3.11 and 3.12 have the same call on
    the private `_sslobj` (OpenSSL's SSL_get_peer_cert_chain). Without either, only the
    server's own certificate is known (enough for DANE-EE, not for a chain)."""
    chain = None
    for owner in (ssl_object, getattr(ssl_object, "_sslobj", None)):
        getter = getattr(owner, "get_unverified_chain", None)
        if getter is not None:
            chain = getter()
            break
    if chain:
        # 3.13's public call returns DER bytes; the private one `_ssl.Certificate` objects.
        return [c if isinstance(c, bytes) else c.public_bytes(_ssl.ENCODING_DER) for c in chain]
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def load_chain(ders: Sequence[bytes]) -> list[x509.Certificate]:
    """Raises ValueError for bytes that are not a certificate."""
    return [x509.load_der_x509_certificate(d) for d in ders]


def spki(cert: x509.Certificate) -> bytes:
    """The DER SubjectPublicKeyInfo (the "public key" a TLSA selector 1 names, RFC 6698 2.1.2)."""
    return cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)


def trust_store(ca_file: Path | None = None) -> Store:
    """The trust anchors: the system's bundle, plus the certificates of `ca_file` when given (a
    private CA beside the Web PKI: MX delivery talks to the whole Internet, so an operator's CA
    must not take the public roots away). Its owner keeps it (a reload reads it again); call it
    off the event loop: the system bundle is ~150 certificates."""
    anchors: list[x509.Certificate] = []
    system = _system_bundle()
    for path in [p for p in (system, Path(ca_file) if ca_file else None) if p is not None]:
        anchors.extend(_read_certificates(path))
    if not anchors:
        raise TrustStoreError("no system CA bundle found and no upstream.ca_file set: nothing to verify against")
    return Store(anchors)


def _read_certificates(path: Path) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TrustStoreError(f"cannot read the CA file {path}: {exc.strerror or exc}") from None
    try:
        with warnings.catch_warnings():
            # Debian's bundle holds a root with a non-positive serial number, which cryptography
            # warns about; it is not the operator's to fix, and the root is still usable.
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise TrustStoreError(f"the CA file {path} holds no PEM certificates ({exc})") from None


def _system_bundle() -> Path | None:
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt",
                      "/etc/pki/tls/certs/ca-bundle.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def validate(chain: Sequence[x509.Certificate], anchors: Store, names: Sequence[str],
             now: datetime.datetime | None = None) -> str | None:
    """None when `chain` (the server's certificate first) leads to one of `anchors` and the
    certificate is valid now for one of `names` (DNS-IDs, RFC 6125 6.4, wildcard in the
    leftmost label only); else why not, in words for an operator."""
    if not chain:
        return "the server sent no certificate"
    now = now or datetime.datetime.now(datetime.timezone.utc)
    problems = []
    for name in names:
        try:
            subject = DNSName(name.rstrip(".").lower())
        except ValueError:
            problems.append(f"{name!r} is not a DNS name to check a certificate against")
            continue
        verifier = PolicyBuilder().store(anchors).time(now).max_chain_depth(8).build_server_verifier(subject)
        try:
            verifier.verify(chain[0], list(chain[1:]))
            return None
        except VerificationError as exc:
            problems.append(str(exc))
    reason = problems[0] if len(set(problems)) == 1 else "; ".join(dict.fromkeys(problems))
    return f"the certificate ({describe(chain[0])}) does not verify for {' or '.join(names)}: {reason}"


def describe(cert: x509.Certificate) -> str:
    """Subject and names of a certificate, short, for a reply or an event."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = sans.get_values_for_type(x509.DNSName)
    except (x509.ExtensionNotFound, ValueError):
        names = []
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"subject {cert.subject.rfc4514_string() or '(empty)'}" + (f", names {shown}" if shown else "")
