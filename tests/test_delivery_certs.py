"""relay.delivery.certs: the chain a real TLS server sends, and path validation against a test CA."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from relay.delivery import certs
from tests.support.tls import CertAuthority, make_cert, server_context


async def handshake_chain(server_ctx: ssl.SSLContext) -> list[bytes]:
    """Connect without any certificate check (as opportunistic TLS does) and return the chain."""
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    client_ctx = ssl.create_default_context()
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
        chain = certs.peer_chain(writer.get_extra_info("ssl_object"))
        writer.close()
        return chain
    finally:
        server.close()
        await server.wait_closed()


async def test_peer_chain_is_what_the_server_sent_even_unverified(ca):
    issued = ca.issue("mx.example.test")
    chain = certs.load_chain(await handshake_chain(issued.context()))
    assert [c.subject for c in chain] == [issued.cert.subject, ca.intermediate.subject]


async def test_validate_a_good_chain(ca):
    issued = ca.issue("mx.example.test", "*.mx.example.test")
    chain = certs.load_chain(await handshake_chain(issued.context()))
    store = certs.trust_store(ca.ca_path)
    assert certs.validate(chain, store, ["mx.example.test"]) is None
    assert certs.validate(chain, store, ["a.mx.example.test"]) is None  # wildcard, leftmost label
    assert certs.validate(chain, store, ["nope.example.test", "mx.example.test"]) is None


async def test_validate_names_the_problem(ca, tmp_path):
    store = certs.trust_store(ca.ca_path)
    wrong_name = certs.load_chain(await handshake_chain(ca.issue("other.example.test").context()))
    problem = certs.validate(wrong_name, store, ["mx.example.test"])
    assert problem.startswith("the certificate (subject CN=other.example.test, names other.example.test) "
                              "does not verify for mx.example.test: ")
    assert "a.b.mx.example.test" not in problem
    deep = certs.validate(certs.load_chain(await handshake_chain(ca.issue("*.example.test").context())),
                          store, ["a.b.example.test"])
    assert deep is not None  # RFC 6125 6.4.3: a wildcard covers one label only
    expired = certs.load_chain(await handshake_chain(ca.issue("mx.example.test", expired=True).context()))
    assert "does not verify" in certs.validate(expired, store, ["mx.example.test"])
    self_signed = certs.load_chain(await handshake_chain(server_context(*make_cert(tmp_path, "mx.example.test"))))
    assert "does not verify" in certs.validate(self_signed, store, ["mx.example.test"])
    assert certs.validate([], store, ["mx.example.test"]) == "the server sent no certificate"


def test_trust_store_errors_name_the_file(tmp_path):
    with pytest.raises(certs.TrustStoreError, match="cannot read the CA file .*missing.pem"):
        certs.trust_store(tmp_path / "missing.pem")
    empty = tmp_path / "empty.pem"
    empty.write_text("no certificates here\n")
    with pytest.raises(certs.TrustStoreError, match="holds no PEM certificates"):
        certs.trust_store(empty)


def test_the_ca_file_adds_to_the_system_roots(ca, tmp_path, monkeypatch):
    # MX delivery talks to the whole Internet: a private CA must not take the public roots away.
    # The "system" bundle here is another test CA's, through OpenSSL's SSL_CERT_FILE.
    public = CertAuthority(tmp_path, "Stand-in Public Root")
    monkeypatch.setenv("SSL_CERT_FILE", str(public.ca_path))
    both = certs.trust_store(ca.ca_path)
    for authority in (ca, public):
        chain = certs.load_chain([authority.issue("mx.example.test").der(), _der(authority.intermediate)])
        assert certs.validate(chain, both, ["mx.example.test"]) is None
        assert (certs.validate(chain, certs.trust_store(None), ["mx.example.test"]) is None) is (authority is public)


def _der(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return cert.public_bytes(serialization.Encoding.DER)
