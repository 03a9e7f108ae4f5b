"""relay.delivery.mta_sts: RFC 8461 parsing, MX patterns, and discovery + fetch + cache against the
loopback DNS and a loopback HTTPS server with a test CA."""

from __future__ import annotations

import ipaddress

import pytest

from relay.config import Endpoint
from relay.delivery.mta_sts import (MAX_AGE_LIMIT, MtaSts, PolicyError, PolicyFetcher, mx_matches,
                                    parse_policy, parse_record)
from relay.dns import Resolver
from tests.support.https_server import Page, policy_text
from tests.support.tls import make_cert, server_context


# -- the TXT record (RFC 8461 3.1) ---------------------------------------------

@pytest.mark.parametrize("text,ident", [
    ("v=STSv1; id=20160831085700Z;", "20160831085700Z"),
    ("v=STSv1;id=abc", "abc"),
    ("v=STSv1; id=abc; ext=1", "abc"),
    ("v=STSv1 ; id=abc", "abc"),  # sts-field-delim = *WSP ";" *WSP
    ("v=STSv2; id=abc", None),
    ("id=abc; v=STSv1", None),
    ("v=STSv1; id=", None),
    ("v=STSv1; id=" + "a" * 33, None),  # at most 32 characters
    ("v=STSv1; id=a-b", None),  # letters and digits only
    ("v=STSv1; nope", None),
    ("v=STSv1", None),
])
def test_parse_record(text, ident):
    assert parse_record(text) == ident


# -- the policy file (RFC 8461 3.2) ---------------------------------------------

def test_parse_policy():
    p = parse_policy("version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.Example.NET.\n"
                     "max_age: 604800\nfuture: ignored\n", "example.com", "id1", 100.0)
    assert (p.mode, p.max_age, p.mx, p.id) == ("enforce", 604800, ("mail.example.com", "*.example.net"), "id1")
    assert p.expires_at == 100.0 + 604800
    crlf = parse_policy(policy_text("testing", "mx.example.com", max_age=0))
    assert crlf.mode == "testing" and crlf.max_age == 0
    assert parse_policy("version: STSv1\nmode: none\nmax_age: 1\n").mx == ()


@pytest.mark.parametrize("text,why", [
    ("mode: enforce\nmx: a\nmax_age: 1\n", "version is None"),
    ("version: STSv2\nmode: enforce\nmx: a\nmax_age: 1\n", "version is 'STSv2'"),
    ("version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n", "mode is 'strict'"),
    ("version: STSv1\nmode: enforce\nmx: a\n", "max_age is None"),
    ("version: STSv1\nmode: enforce\nmx: a\nmax_age: -5\n", "max_age is '-5'"),
    ("version: STSv1\nmode: enforce\nmx: a\nmax_age: %d\n" % (MAX_AGE_LIMIT + 1), "over the limit"),
    ("version: STSv1\nmode: enforce\nmax_age: 5\n", "without any mx"),
    ("version: STSv1\nmode: enforce\nmx: a.*.b\nmax_age: 5\n", "not a host name"),
    ("version: STSv1\ngarbage line\n", "line 2 is not 'key: value'"),
    ("<html>hello</html>", "line 1"),
])
def test_parse_policy_errors_say_what_is_wrong(text, why):
    with pytest.raises(PolicyError, match=None) as info:
        parse_policy(text)
    assert why in str(info.value)


# -- MX patterns (RFC 8461 4.1) -------------------------------------------------

@pytest.mark.parametrize("pattern,host,ok", [
    ("mail.example.com", "mail.example.com", True),
    ("mail.example.com", "MAIL.Example.com.", True),
    ("mail.example.com", "mail2.example.com", False),
    ("*.example.com", "mx1.example.com", True),
    ("*.example.com", "example.com", False),  # the wildcard is one whole label
    ("*.example.com", "a.b.example.com", False),  # and only one
    ("*.example.com", "mx1.example.net", False),
    ("*.example.com", ".example.com", False),
])
def test_mx_matches(pattern, host, ok):
    assert mx_matches(pattern, host) is ok


# -- discovery, fetch and cache ---------------------------------------------------

class Clock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def setup_domain(dns, https, ca, domain="example.test", ident="id1", page=None):
    dns.zone.add(f"_mta-sts.{domain}", "TXT", f"v=STSv1; id={ident};")
    dns.zone.add(f"mta-sts.{domain}", "A", "127.0.0.1")
    https.serve(f"mta-sts.{domain}", page or policy_text("enforce", f"mx.{domain}"),
                ca.issue(f"mta-sts.{domain}").context())


LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)  # where the test's policy server is: allowed, as for MX hosts


def sts_for(dns, https, ca, clock=None, **kw) -> MtaSts:
    resolver = Resolver((Endpoint("127.0.0.1", dns.port),), timeout=2.0)
    kw.setdefault("internal_networks", LOOPBACK)
    fetcher = PolicyFetcher(resolver, port=https.port, ca_file=ca.ca_path, timeout=5.0, **kw)
    return MtaSts(resolver, fetcher, clock=clock or Clock())


async def test_discover_fetch_and_match(dns, https, ca):
    setup_domain(dns, https, ca)
    result = await sts_for(dns, https, ca).policy_for("Example.Test.")
    assert result.source == "fetched" and result.problem is None
    policy = result.policy
    assert (policy.domain, policy.id, policy.mode, policy.mx) == ("example.test", "id1", "enforce",
                                                                  ("mx.example.test",))
    assert policy.allows("mx.example.test") and not policy.allows("evil.example.test")
    assert https.requests == [("mta-sts.example.test", "/.well-known/mta-sts.txt")]


async def test_no_txt_record_is_no_policy_and_no_fetch(dns, https, ca):
    sts = sts_for(dns, https, ca)
    result = await sts.policy_for("plain.test")
    assert result.policy is None and result.problem is None and sts.fetches == 0


async def test_txt_records_not_exactly_one(dns, https, ca):
    # RFC 8461 3.1: records that do not start with v=STSv1 are discarded; two valid ones mean none.
    dns.zone.add("_mta-sts.two.test", "TXT", "v=STSv1; id=a")
    dns.zone.add("_mta-sts.two.test", "TXT", "v=STSv1; id=b")
    dns.zone.add("_mta-sts.other.test", "TXT", "something else")
    sts = sts_for(dns, https, ca)
    two = await sts.policy_for("two.test")
    assert two.policy is None and "2 _mta-sts TXT records" in two.problem
    assert (await sts.policy_for("other.test")).problem is None
    assert sts.fetches == 0


async def test_cached_by_id_until_max_age(dns, https, ca):
    setup_domain(dns, https, ca, page=policy_text("enforce", "mx.example.test", max_age=600))
    clock = Clock()
    sts = sts_for(dns, https, ca, clock)
    assert (await sts.policy_for("example.test")).source == "fetched"
    assert (await sts.policy_for("example.test")).source == "cached"
    assert sts.fetches == 1
    clock.now += 601  # max_age passed: fetched again even with the same id
    assert (await sts.policy_for("example.test")).source == "fetched"
    assert sts.fetches == 2


async def test_new_id_fetches_again(dns, https, ca):
    setup_domain(dns, https, ca)
    sts = sts_for(dns, https, ca)
    await sts.policy_for("example.test")
    dns.zone.clear("_mta-sts.example.test")
    dns.zone.add("_mta-sts.example.test", "TXT", "v=STSv1; id=id2")
    https.serve("mta-sts.example.test", policy_text("testing", "*.example.test"))
    sts.resolver.clear_cache()
    result = await sts.policy_for("example.test")
    assert result.source == "fetched" and result.policy.mode == "testing" and result.policy.id == "id2"


async def test_failed_fetch_keeps_the_cached_policy(dns, https, ca):
    # RFC 8461 5.1: a policy that cannot be refreshed stays in force until it expires.
    setup_domain(dns, https, ca)
    sts = sts_for(dns, https, ca)
    first = (await sts.policy_for("example.test")).policy
    dns.zone.clear("_mta-sts.example.test")
    dns.zone.add("_mta-sts.example.test", "TXT", "v=STSv1; id=id2")
    https.serve("mta-sts.example.test", Page("gone", 500))
    sts.resolver.clear_cache()
    result = await sts.policy_for("example.test")
    assert result.policy == first and result.source == "cached"
    assert "answered HTTP 500" in result.problem
    # The failure is remembered: the next message does not fetch again at once.
    fetches = sts.fetches
    assert (await sts.policy_for("example.test")).policy == first and sts.fetches == fetches


async def test_missing_txt_keeps_the_cached_policy(dns, https, ca):
    setup_domain(dns, https, ca)
    sts = sts_for(dns, https, ca)
    first = (await sts.policy_for("example.test")).policy
    dns.zone.clear("_mta-sts.example.test")
    dns.zone.servfail.add("_mta-sts.example.test")
    sts.resolver.clear_cache()
    result = await sts.policy_for("example.test")
    assert result.policy == first and "could not be looked up" in result.problem


@pytest.mark.parametrize("page,why", [
    (Page("moved", 301, {"Location": "https://elsewhere/", "Content-Type": "text/plain"}), "redirects (HTTP 301)"),
    (Page("nope", 404), "answered HTTP 404"),
    (Page(policy_text("enforce", "mx.example.test"), headers={"Content-Type": "text/html"}), "text/html, not text/plain"),
    (Page("x" * 70000), "larger than 65536 bytes"),
    (Page("version: STSv1\nmode: bogus\n"), "is not valid: mode is 'bogus'"),
])
async def test_fetch_failures_are_no_policy_with_a_reason(dns, https, ca, page, why):
    setup_domain(dns, https, ca, page=page)
    result = await sts_for(dns, https, ca).policy_for("example.test")
    assert result.policy is None and why in result.problem, result.problem


async def test_chunked_and_charset_are_fine(dns, https, ca):
    setup_domain(dns, https, ca, page=Page(policy_text("enforce", "mx.example.test"), chunked=True,
                                           headers={"Content-Type": "text/plain; charset=utf-8"}))
    assert (await sts_for(dns, https, ca).policy_for("example.test")).policy.mode == "enforce"


async def test_policy_host_certificate_must_verify(dns, https, ca, tmp_path):
    # RFC 8461 3.3: the policy host's certificate must be valid for mta-sts.<domain>.
    setup_domain(dns, https, ca)
    https.serve("mta-sts.example.test", policy_text("enforce", "mx.example.test"),
                ca.issue("www.example.test").context())
    result = await sts_for(dns, https, ca).policy_for("example.test")
    assert result.policy is None and "certificate of mta-sts.example.test" in result.problem
    assert "does not verify" in result.problem
    https.serve("mta-sts.example.test", policy_text("enforce", "mx.example.test"),
                server_context(*make_cert(tmp_path, "mta-sts.example.test")))
    result = await sts_for(dns, https, ca).policy_for("example.test")
    assert result.policy is None and "does not verify" in result.problem


async def test_policy_host_without_address_or_listener(dns, https, ca):
    dns.zone.add("_mta-sts.example.test", "TXT", "v=STSv1; id=1")
    result = await sts_for(dns, https, ca).policy_for("example.test")
    assert "mta-sts.example.test has no address in DNS" in result.problem
    dns.zone.add("mta-sts.example.test", "A", "127.0.0.9")  # nothing listens there
    sts = sts_for(dns, https, ca)
    sts.fetcher.port = 9  # discard: refused
    result = await sts.policy_for("example.test")
    assert "no connection to mta-sts.example.test port 9" in result.problem


async def test_concurrent_lookups_share_one_fetch(dns, https, ca):
    import asyncio
    setup_domain(dns, https, ca)
    sts = sts_for(dns, https, ca)
    results = await asyncio.gather(*(sts.policy_for("example.test") for _ in range(5)))
    assert sts.fetches == 1 and len({r.policy for r in results}) == 1


@pytest.mark.parametrize("address, kind", [
    ("127.0.0.1", "a loopback address"),
    ("169.254.169.254", "a link-local address"),  # a cloud's metadata service
    ("::ffff:127.0.0.1", "a loopback address"),
    ("64:ff9b::7f00:1", "a loopback address (127.0.0.1 in NAT64 form)"),
])
async def test_a_policy_host_at_an_internal_address_is_never_connected_to(dns, https, ca, address, kind):
    # The domain names its policy host as it names its MX hosts: the fetch connected wherever mta-sts.<domain>
    # pointed, the relay's own host and networks included (SSRF). Refused as MX delivery refuses them;
    # RFC 8461 3.3: a policy that cannot be fetched is no policy.
    setup_domain(dns, https, ca)
    dns.zone.clear("mta-sts.example.test")
    dns.zone.add("mta-sts.example.test", "AAAA" if ":" in address else "A", str(ipaddress.ip_address(address)))
    sts = sts_for(dns, https, ca, internal_networks=())
    result = await sts.policy_for("example.test")
    assert result.policy is None and result.source == "none"
    assert result.problem == (f"the MTA-STS policy of example.test could not be fetched: mta-sts.example.test is at "
                              f"{address}, {kind}; this relay does not connect into internal "
                              f"networks (upstream.mx_internal_networks)"), result.problem
    assert https.hellos == [] and https.requests == []
