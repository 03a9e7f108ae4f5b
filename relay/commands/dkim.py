"""`relay dkim keygen DOMAIN SELECTOR --out DIR`: a new signing key and its DNS record.

The key goes to DIR/DOMAIN.SELECTOR.key (PEM, PKCS#8, mode 0600). The file is
named after the domain as well as the selector so that the keys of many domains
can share one directory without clashing (opendkim-genkey's SELECTOR.private
would). An existing file is never overwritten: replacing a key whose public
half is in DNS breaks every message signed since, so rotation means a new
selector.

Printed: the TXT record to publish at SELECTOR._domainkey.DOMAIN, its value cut
into quoted strings of at most 255 bytes (RFC 1035 3.3.14: an RSA-2048 record
does not fit in one), and the domains.yaml lines to add.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from . import add_config_arg


def register(sub) -> None:
    p = sub.add_parser("dkim", help="DKIM keys", description="DKIM signing keys and their DNS records.")
    dsub = p.add_subparsers(dest="dkim_command", metavar="ACTION")
    k = dsub.add_parser(
        "keygen", help="create a signing key and print the DNS TXT record to publish",
        description="Create a DKIM private key in DIR/DOMAIN.SELECTOR.key (mode 0600, never overwritten) and "
                    "print the TXT record to publish at SELECTOR._domainkey.DOMAIN and the domains.yaml entry.")
    k.add_argument("domain", metavar="DOMAIN", help="the signing domain (d=), e.g. example.com")
    k.add_argument("selector", metavar="SELECTOR", help="the selector (s=), e.g. s2026")
    k.add_argument("--type", choices=("rsa", "ed25519"), default="rsa",
                   help="key type (default rsa; Ed25519 is RFC 8463, add it beside an RSA key, not instead)")
    k.add_argument("--bits", type=int, default=None, help="RSA key size (default 2048; 1024 to 4096)")
    k.add_argument("--out", required=True, metavar="DIR", help="directory for the key file (created 0700 if missing)")
    add_config_arg(k, required=False)
    k.set_defaults(func=run_keygen)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(parser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _fail(message: str) -> int:
    print(f"relay dkim keygen: error: {message}", file=sys.stderr)
    return 1


def run_keygen(args) -> int:
    from .. import dkim as dkimlib
    from ..domains import normalise_domain, valid_selector

    try:
        domain = normalise_domain(args.domain)
    except ValueError as exc:
        return _fail(f"{args.domain!r} is not a domain name: {exc}")
    selector = args.selector.strip()
    if not valid_selector(selector):
        return _fail(f"{args.selector!r} is not a selector (DNS labels: letters, digits, hyphens)")
    if args.type == "ed25519":
        if args.bits is not None:
            return _fail("--bits applies to RSA keys only (Ed25519 keys have one size)")
        bits = None
    else:
        bits = 2048 if args.bits is None else args.bits
        if not 1024 <= bits <= 4096:
            return _fail(f"--bits {bits}: choose 1024 to 4096 (2048 advised, RFC 8301)")

    out = Path(args.out)
    path = out / f"{domain}.{selector}.key"
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        return _fail(f"cannot create directory {out}: {(exc.strerror or str(exc)).lower()}")
    if not out.is_dir():
        return _fail(f"{out} is not a directory")
    if path.exists():
        return _fail(f"{path} already exists; not overwriting a key (use a new selector to rotate)")

    private_key = dkimlib.generate_key(args.type, bits or 2048)
    pem = dkimlib.private_key_pem(private_key)
    try:
        # O_EXCL: a file that appeared meanwhile is not overwritten either.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _fail(f"{path} already exists; not overwriting a key (use a new selector to rotate)")
    except OSError as exc:
        return _fail(f"cannot write {path}: {(exc.strerror or str(exc)).lower()}")
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, pem)
    finally:
        os.close(fd)

    record = dkimlib.public_key_record(private_key)
    name = f"{selector}._domainkey.{domain}"
    quoted = " ".join(f'"{s}"' for s in dkimlib.txt_strings(record))
    kind = f"RSA-{private_key.key_size}" if args.type == "rsa" else "Ed25519"
    print(f"Wrote {kind} private key to {path} (mode 0600).")
    print()
    print("Publish this DNS TXT record (the value is split into strings of at most 255 bytes;")
    print("resolvers join them without spaces):")
    print(f"  name:  {name}")
    print(f"  value: {quoted}")
    print()
    print("As a zone file line:")
    print(f"{name}. 3600 IN TXT ( {quoted} )")
    print()
    print("Add to domains.yaml in the policy directory, then reload (SIGHUP):")
    print(f"{domain}:")
    print("  dkim:")
    print(f"    - {{selector: {selector}, key: {path.resolve()}}}")
    if args.type == "rsa" and bits < 2048:
        print(f"warning: {bits}-bit RSA keys are weak; RFC 8301 advises 2048", file=sys.stderr)
    if args.type == "ed25519":
        print("note: many receivers do not verify Ed25519 yet; keep signing with an RSA key as well",
              file=sys.stderr)
    return 0
