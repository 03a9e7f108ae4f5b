"""The TLS files a config names, loaded at load time the way the relay uses them later.

`upstream.ca_file` is read at every connection to the smarthost (upstream.py) and a listener's
`tls.cert`/`tls.key` when `relay serve` binds: a file that exists but holds no PEM certificate (a DER
file, a key saved as .crt, the wrong file) passed check-config before and then deferred every message
with a traceback per session (`[X509: NO_CERTIFICATE_OR_CRL_FOUND]`, naming no file), or stopped
`serve` with `[SSL] PEM lib` (review31 F2). Each function here says why a file cannot be used, in
words that name the file, or None; the config loader adds the key.

Each file is read first through yamlfile.read_regular (a regular file, bounded: a FIFO or /dev/zero
named as a CA file must not hang the load), then handed to OpenSSL by its path, as at run time.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from .yamlfile import FileProblem, read_regular

# Far above any real bundle (the system's whole CA bundle is about 220 KB) or certificate chain.
MAX_TLS_FILE_BYTES = 4 * 1024 * 1024

_PEM_HINT = "a PEM file (-----BEGIN CERTIFICATE-----) is expected; convert a DER one with " \
            "`openssl x509 -inform der -in FILE -out FILE.pem`"


def _unreadable(path: Path) -> str | None:
    try:
        read_regular(path, MAX_TLS_FILE_BYTES)
    except FileProblem as exc:
        return f"file {path} {exc}"
    return None


def ca_file_problem(path: Path) -> str | None:
    """Why `path` is no CA bundle TLS can verify with (as ssl.create_default_context(cafile=) loads
    it), or None."""
    why = _unreadable(path)
    if why:
        return why
    try:
        ssl.create_default_context().load_verify_locations(cafile=str(path))
    except ssl.SSLError as exc:
        if exc.reason == "NO_CERTIFICATE_OR_CRL_FOUND":
            return f"no certificate in {path}: {_PEM_HINT}"
        return f"{path} holds no usable CA certificates: {exc.reason or exc}"
    except OSError as exc:
        return f"cannot read {path}: {(exc.strerror or str(exc)).lower()}"
    return None


def _no_passphrase() -> bytes:
    # Called by OpenSSL only for an encrypted key. Without a callback it would prompt on the terminal
    # (and `relay serve` under systemd has none).
    raise _Encrypted


class _Encrypted(Exception):
    pass


def cert_key_problem(cert: Path, key: Path) -> tuple[str, str] | None:
    """("cert" or "key" or "", why) when the pair cannot serve TLS (as smtp.py loads it with
    load_cert_chain), or None. "" when neither file alone is at fault: the key is not the
    certificate's."""
    for which, path in (("cert", cert), ("key", key)):
        why = _unreadable(path)
        if why:
            return which, why
    try:
        ssl.create_default_context().load_verify_locations(cafile=str(cert))
    except ssl.SSLError as exc:
        if exc.reason == "NO_CERTIFICATE_OR_CRL_FOUND":
            return "cert", f"no certificate in {cert}: {_PEM_HINT}"
        return "cert", f"{cert} holds no usable certificate: {exc.reason or exc}"
    except OSError as exc:
        return "cert", f"cannot read {cert}: {(exc.strerror or str(exc)).lower()}"
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(str(cert), str(key), password=_no_passphrase)
    except _Encrypted:
        return "key", (f"the private key in {key} is encrypted; the relay cannot ask for its passphrase: "
                       f"store it unencrypted (`openssl pkey -in {key} -out NEW`), readable only by the relay")
    except ssl.SSLError as exc:
        if exc.reason is None and "PEM lib" in str(exc):
            return "key", (f"no private key in {key}: a PEM private key (-----BEGIN PRIVATE KEY-----) "
                           f"is expected")
        if exc.reason in ("KEY_VALUES_MISMATCH", "NO_CERTIFICATE_ASSIGNED"):
            return "", f"the private key in {key} is not the key of the certificate in {cert}"
        return "", f"the certificate {cert} and key {key} do not load: {exc.reason or exc}"
    except OSError as exc:
        return "key", f"cannot read {key}: {(exc.strerror or str(exc)).lower()}"
    return None
