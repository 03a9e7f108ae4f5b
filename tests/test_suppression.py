from pathlib import Path

import pytest

from relay.errors import ConfigError
from relay.suppression import CATEGORIES, SuppressionPolicy, format_duration, load_default, parse_duration

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "suppression.yaml"
    path.write_text(text)
    return path


def problems(exc: ConfigError) -> list[tuple[str, str, str]]:
    return [(p.file, p.key, p.why) for p in exc.problems]


def test_shipped_defaults():
    policy = SuppressionPolicy.from_file(ROOT / "policies" / "suppression.yaml")
    for category in ("unknown_recipient", "syntax_error"):
        rule = policy.rule_for(category, True)
        assert rule.immediate and rule.expire_after is None
    # A disabled mailbox can be re-enabled (issue 13): the second refusal within 30 days lists it.
    disabled = policy.rule_for("mailbox_disabled", True)
    assert (disabled.list_after, disabled.within, disabled.expire_after) == (2, 30 * 86400, 90 * 86400)
    assert (policy.unconfirmed.list_after, policy.unconfirmed.within) == (2, 30 * 86400)
    for category in ("mailbox_full", "rate_limited", "spam_content", "policy_rejected", "blocklisted",
                     "auth_failed", "message_too_large"):
        assert policy.rule_for(category, True) is None, category
    for category in CATEGORIES:  # 4xx never lists by default
        assert policy.rule_for(category, False) is None, category
    routing = policy.rule_for("routing_dns", True)
    assert (routing.list_after, routing.within, routing.expire_after) == (3, 3 * 86400, 7 * 86400)


def test_load_default_is_the_shipped_file():
    assert load_default().rule_for("unknown_recipient", True) is not None


def test_rules_per_category_and_permanence(tmp_path):
    policy = SuppressionPolicy.from_file(write(tmp_path, """
permanent:
  mailbox_full: {list_after: 5, within: 2w, expire_after: 30d}
temporary:
  mailbox_full: {list_after: 20, within: 7d, expire_after: 12h}
  rate_limited: {list_after: off}
shared_return_path: off
"""))
    perm, temp = policy.rule_for("mailbox_full", True), policy.rule_for("mailbox_full", False)
    assert (perm.list_after, perm.within, perm.expire_after) == (5, 14 * 86400, 30 * 86400)
    assert (temp.list_after, temp.within, temp.expire_after) == (20, 7 * 86400, 12 * 3600)
    assert policy.rule_for("rate_limited", False) is None
    assert policy.rule_for("unknown_recipient", True) is None  # an operator file says everything
    assert policy.longest_window == 14 * 86400
    assert "listed after 5 failures within 2w" in perm.describe()


def test_empty_file_lists_nothing(tmp_path):
    policy = SuppressionPolicy.from_file(write(tmp_path, ""))
    # Only the breaker's own hits (default on) are kept for its window, and the failures a complaint to
    # a shared VERP return path counts (complaints list at once by default; shared_return_path: 30d).
    assert policy.rules == [] and policy.longest_window == max(policy.breaker.within, policy.shared.within)
    assert SuppressionPolicy.from_file(write(tmp_path, "shared_return_path: off\n")).longest_window == \
        policy.breaker.within


def test_every_problem_names_file_and_key(tmp_path):
    path = write(tmp_path, """
permanent:
  unknown_recipient: {list_after: 1, expire: 3d}
  no_such_category: {list_after: 1}
  other: {list_after: 3}
  mailbox_full: {list_after: 0}
  spam_content: {list_after: 2, within: 3 days}
  routing_dns: {list_after: 1, expire_after: -5}
  syntax_error: 1
temporary:
  greylisted: {within: 1h}
tempoary: {}
""")
    with pytest.raises(ConfigError) as err:
        SuppressionPolicy.from_file(path)
    found = problems(err.value)
    assert all(f == str(path) for f, _, _ in found)
    keys = {k: why for _, k, why in found}
    assert "unknown key" in keys["permanent.unknown_recipient.expire"]
    assert "unknown category" in keys["permanent.no_such_category"]
    assert "required when list_after is 3" in keys["permanent.other.within"]
    assert ">= 1" in keys["permanent.mailbox_full.list_after"]
    assert "bad duration '3 days'" in keys["permanent.spam_content.within"]
    assert "positive" in keys["permanent.routing_dns.expire_after"]
    assert "expected a mapping" in keys["permanent.syntax_error"]
    assert "required" in keys["temporary.greylisted.list_after"]
    assert "unknown key" in keys["tempoary"]
    assert str(path) in str(err.value)


def test_within_never_is_refused_when_counting(tmp_path):
    with pytest.raises(ConfigError, match=r"permanent\.other\.within: required"):
        SuppressionPolicy.from_file(write(tmp_path, "permanent:\n  other: {list_after: 2, within: never}\n"))


def test_broken_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "permanent:\n  other: {list_after: 1\n")
    with pytest.raises(ConfigError) as err:
        SuppressionPolicy.from_file(path)
    (file, key, why), = problems(err.value)
    assert file == str(path) and key.startswith("line ") and "not valid YAML" in why


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        SuppressionPolicy.from_file(tmp_path / "absent.yaml")


def test_top_level_must_be_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match=r"\(top level\)"):
        SuppressionPolicy.from_file(write(tmp_path, "- a\n- b\n"))


@pytest.mark.parametrize("text, seconds", [
    ("45s", 45), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("2w", 1209600), (90, 90),
    ("never", None), ("off", None), (None, None),
])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["3 days", "7", "0d", "-1d", "1y", True, 0])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_format_duration():
    assert [format_duration(s) for s in (None, 45, 1800, 86400 * 3, 604800)] == ["never", "45s", "30m", "3d", "1w"]


def test_protocol_errors_can_never_list(tmp_path):
    with pytest.raises(ConfigError, match=r"permanent\.protocol_error: protocol_error is an SMTP dialogue error"):
        SuppressionPolicy.from_file(write(tmp_path, "permanent:\n  protocol_error: {list_after: 1}\n"))
    assert load_default().bounce_list("protocol_error", True) == "never"


def test_complaints_list_at_once_by_default_and_are_validated(tmp_path):
    assert load_default().complaint.immediate
    assert SuppressionPolicy.from_file(write(tmp_path, "permanent: {}\n")).complaint.immediate
    with pytest.raises(ConfigError) as err:
        SuppressionPolicy.from_file(write(tmp_path, "complaints: {list_after: 2, expire_after: 90d}\n"))
    assert "complaints.within" in str(err.value)
    off = SuppressionPolicy.from_file(write(tmp_path, "complaints: {list_after: off}\n"))
    assert off.complaint is None
    counted = SuppressionPolicy.from_file(write(tmp_path, "complaints: {list_after: 2, within: 30d}\n"))
    assert counted.complaint.list_after == 2 and counted.longest_window == 30 * 86400


def test_bounce_list_effect_of_a_category():
    policy = load_default()
    assert policy.bounce_list("unknown_recipient", True) == "list"
    assert policy.bounce_list("other", True) == "count"
    assert policy.bounce_list("mailbox_full", True) == "never"
    assert policy.bounce_list("mailbox_disabled", True) == "count"
    assert policy.bounce_list("unknown_recipient", False) == "never"


def test_breaker_is_on_by_default_and_validated(tmp_path):
    assert load_default().breaker.distinct_addresses == 10 and load_default().breaker.within == 600
    assert SuppressionPolicy.from_file(write(tmp_path, "permanent: {}\n")).breaker is not None
    assert SuppressionPolicy.from_file(write(tmp_path, "breaker: off\n")).breaker is None
    custom = SuppressionPolicy.from_file(write(tmp_path, "breaker: {distinct_addresses: 3, within: 1h, "
                                                         "categories: [unknown_recipient]}\n"
                                                         "shared_return_path: off\n"))
    assert (custom.breaker.distinct_addresses, custom.breaker.within) == (3, 3600)
    assert custom.breaker.categories == {"unknown_recipient"} and custom.longest_window == 3600
    with pytest.raises(ConfigError) as err:
        SuppressionPolicy.from_file(write(tmp_path, "breaker: {distinct_addresses: 0, within: never, "
                                                    "categories: [nope], after: 1}\n"))
    keys = {k: why for _, k, why in problems(err.value)}
    assert ">= 1" in keys["breaker.distinct_addresses"]
    assert "required" in keys["breaker.within"]
    assert "unknown category" in keys["breaker.categories[0]"]
    assert "unknown key" in keys["breaker.after"]


def test_the_provider_breaker_is_on_by_default_and_validated(tmp_path):
    shipped = load_default().provider_breaker
    assert (shipped.distinct_addresses, shipped.within) == (50, 600) and len(shipped.named_by) >= 4
    # A file written before the section existed gets the shipped one; off turns it off.
    older = SuppressionPolicy.from_file(write(tmp_path, "permanent: {}\n")).provider_breaker
    assert older is not None and older.distinct_addresses == 50 and older.named_by
    assert SuppressionPolicy.from_file(write(tmp_path, "provider_breaker: off\n")).provider_breaker is None
    # A section giving its threshold alone keeps the shipped patterns and suffixes.
    custom = SuppressionPolicy.from_file(write(tmp_path, "provider_breaker: {distinct_addresses: 3, within: 1h}\n"))
    b = custom.provider_breaker
    assert (b.distinct_addresses, b.within) == (3, 3600) and custom.longest_window >= 3600
    # A key left out takes the provider breaker's own default (docs/config.md: 50), not the domain
    # breaker's 10, which a section giving only its window got before.
    window_only = SuppressionPolicy.from_file(write(tmp_path, "provider_breaker: {within: 1h}\n")).provider_breaker
    assert (window_only.distinct_addresses, window_only.within) == (50, 3600)
    assert b.named_host("550 5.1.1 <a@b.test>: undeliverable address: host mx2.hoster.co.uk[192.0.2.1] said: 550 "
                        "no such user") == "mx2.hoster.co.uk"
    assert b.provider_of("mx2.hoster.co.uk") == "hoster.co.uk"
    with pytest.raises(ConfigError) as err:
        SuppressionPolicy.from_file(write(tmp_path, """
provider_breaker:
  distinct_addresses: 0
  within: never
  categories: [nope]
  named_by: ['host (\\S+) said', '(?P<host>(a+)+\\1)', '(']
  two_label_suffixes: [uk]
  suffixes: []
"""))
    keys = {k: why for _, k, why in problems(err.value)}
    assert ">= 1" in keys["provider_breaker.distinct_addresses"]
    assert "required" in keys["provider_breaker.within"]
    assert "unknown category" in keys["provider_breaker.categories[0]"]
    assert "(?P<host>" in keys["provider_breaker.named_by[0]"]
    assert "provider_breaker.named_by[1]" in keys and "provider_breaker.named_by[2]" in keys
    assert "two-label" in keys["provider_breaker.two_label_suffixes"]
    assert "unknown key" in keys["provider_breaker.suffixes"]


@pytest.mark.parametrize("host, provider", [
    ("aspmx.l.google.com", "google.com"),
    ("ALT1.ASPMX.L.GOOGLE.COM.", "google.com"),
    ("example-com.mail.protection.outlook.com", "outlook.com"),
    ("mx01.hoster.co.uk", "hoster.co.uk"),
    ("hoster.co.uk", "hoster.co.uk"),
    ("mx.bücher.example", "xn--bcher-kva.example"),
    ("192.0.2.1", "192.0.2.1"),
    ("[IPv6:2001:db8::1]", "2001:db8::1"),
    ("none", None),  # Postfix's relay=none: no host answered
    ("", None),
    (None, None),
    ("not a host!", None),
])
def test_a_provider_is_the_registrable_domain_of_the_host(host, provider):
    assert load_default().provider_breaker.provider_of(host) == provider


def test_unconfirmed_counts_what_would_list_at_once_and_is_validated(tmp_path):
    policy = SuppressionPolicy.from_file(write(tmp_path, """
permanent:
  unknown_recipient: {list_after: 1, expire_after: 90d}
  other: {list_after: 3, within: 7d}
unconfirmed: {list_after: 3, within: 2w}
shared_return_path: {list_after: 2, within: 10d}
"""))
    rule = policy.unconfirmed_rule("unknown_recipient", True)
    assert (rule.category, rule.list_after, rule.within, rule.expire_after) == ("unknown_recipient", 3, 14 * 86400,
                                                                               90 * 86400)
    assert policy.unconfirmed_rule("other", True) is None  # counts already
    assert policy.unconfirmed_rule("mailbox_full", True) is None  # never lists
    assert policy.longest_window == 14 * 86400
    # A file written before `unconfirmed:` gets the shipped behaviour; off lists at once.
    assert SuppressionPolicy.from_file(write(tmp_path, "permanent: {unknown_recipient: {list_after: 1}}\n")) \
        .unconfirmed_rule("unknown_recipient", True).list_after == 2
    off = SuppressionPolicy.from_file(write(tmp_path, "permanent: {unknown_recipient: {list_after: 1}}\n"
                                                      "unconfirmed: off\n"))
    assert off.unconfirmed is None and off.unconfirmed_rule("unknown_recipient", True) is None
    for bad, key, why in [("unconfirmed: {list_after: 1}", "unconfirmed.list_after", "2 or more"),
                          ("unconfirmed: {list_after: 2}", "unconfirmed.within", "required"),
                          ("unconfirmed: {list_after: 2, within: 1d, expire_after: 1d}", "unconfirmed.expire_after",
                           "unknown key"),
                          ("unconfirmed: 2", "unconfirmed", "expected a mapping")]:
        with pytest.raises(ConfigError) as err:
            SuppressionPolicy.from_file(write(tmp_path, bad + "\n"))
        keys = {k: w for _, k, w in problems(err.value)}
        assert why in keys.get(key, ""), (bad, keys)


@pytest.mark.parametrize("text, no_such_domain", [
    ("550 5.4.4 Host or domain name not found. Name service error for name=example.org type=MX: Host not found",
     True),
    ("550 5.1.2 Domain not found. Please check the domain and try again", True),   # advice, not a glitch
    ("450 4.4.4 Host or domain name not found. Name service error for name=example.org type=MX: "
     "Host not found, try again", False),
    ("550 Domain not found, try again later", False),
    ("554 5.4.4 Host or domain name not found. Name service error for name=example.org type=MX: "
     "Malformed or unexpected name server reply", False),
    ("550 (example.org: host name lookup failure) domain not found", False),
    # Issue #8's listing audit: a name server that refused the query is a glitch, and "nxdomain"
    # inside a host name the reply quotes is no DNS answer.
    ("550 5.1.2 DNS query returned REFUSED: domain not found", False),
    ("550 5.1.1 User unknown. nxdomain.mx.example.net is not a domain we serve", False),
    ("550 5.1.2 Recipient domain example.org: NXDOMAIN", True),
])
def test_shipped_domain_evidence_tells_no_such_domain_from_a_dns_glitch(text, no_such_domain):
    assert load_default().domains.says_no_such_domain(text) is no_such_domain


def test_only_the_categories_named_are_domain_evidence(tmp_path):
    # Issue #8's listing audit: a refusal the rules read as a missing mailbox or a relay refusal says
    # the domain answered, whatever domain word it quotes; the shipped file names routing_dns alone.
    shipped = load_default().domains
    assert shipped.categories == frozenset({"routing_dns"})
    assert shipped.counts_category("routing_dns")
    assert not shipped.counts_category("unknown_recipient") and not shipped.counts_category("relay_denied")
    base = "domains: {evidence: ['no such domain'], seen_again_after: 1h, within: 7d%s}\n"
    assert SuppressionPolicy.from_file(write(tmp_path, base % "")).domains.counts_category("other")  # any
    for bad, key, why in [(", categories: []", "domains.categories", "non-empty list"),
                          (", categories: routing_dns", "domains.categories", "non-empty list"),
                          (", categories: [no_such_thing]", "domains.categories[0]", "unknown category")]:
        with pytest.raises(ConfigError) as err:
            SuppressionPolicy.from_file(write(tmp_path, base % bad))
        keys = {k: w for _, k, w in problems(err.value)}
        assert why in keys.get(key, ""), (bad, keys)


def test_the_breaker_on_domain_listings_is_shipped_on_and_checked_at_load(tmp_path):
    shipped = load_default().domains.breaker
    assert (shipped.distinct_domains, shipped.within) == (10, 3600.0)
    base = "domains: {evidence: ['no such domain'], seen_again_after: 1h, within: 7d%s}\n"
    assert SuppressionPolicy.from_file(write(tmp_path, base % "")).domains.breaker == shipped  # key left out: on
    assert SuppressionPolicy.from_file(write(tmp_path, base % ", breaker: off")).domains.breaker is None
    given = SuppressionPolicy.from_file(write(tmp_path, base % ", breaker: {distinct_domains: 3}")).domains.breaker
    assert (given.distinct_domains, given.within) == (3, 3600.0)
    for bad, key, why in [(", breaker: {distinct_domain: 3}", "domains.breaker.distinct_domain", "unknown key"),
                          (", breaker: {distinct_domains: 0}", "domains.breaker.distinct_domains", ">= 1"),
                          (", breaker: {within: never}", "domains.breaker.within", "required"),
                          (", breaker: 5", "domains.breaker", "expected")]:
        with pytest.raises(ConfigError) as err:
            SuppressionPolicy.from_file(write(tmp_path, base % bad))
        keys = {k: w for _, k, w in problems(err.value)}
        assert why in keys.get(key, ""), (bad, keys)
    # Both wrong: both said at once (check-config gives every error; the domain breaker's check stopped at
    # the first, where the address breakers' said both), in the same words as those breakers'.
    with pytest.raises(ConfigError) as err:
        SuppressionPolicy.from_file(write(tmp_path, base % ", breaker: {distinct_domains: 0, within: soon}"))
    keys = {k: w for _, k, w in problems(err.value)}
    assert ">= 1" in keys.get("domains.breaker.distinct_domains", "") and keys.get("domains.breaker.within"), keys
    with pytest.raises(ConfigError) as err:
        SuppressionPolicy.from_file(write(tmp_path, "breaker: {distinct_addresses: 0, within: soon}\n"))
    assert {k: w for _, k, w in problems(err.value)}.get("breaker.within") == keys["domains.breaker.within"]


_NXDOMAIN_OF = "Host or domain name not found. Name service error for name={} type=MX: Host not found"


@pytest.mark.parametrize("text, address, evidence", [
    (_NXDOMAIN_OF.format("dest.example"), "bob@dest.example", True),
    (_NXDOMAIN_OF.format("Dest.Example."), "bob@dest.example", True),
    # review-10 N3: an IDN domain in either spelling is the same domain.
    (_NXDOMAIN_OF.format("xn--bcher-kva.example"), "bob@bücher.example", True),
    (_NXDOMAIN_OF.format("bücher.example"), "bob@xn--bcher-kva.example", True),
    # review-9 N1 / review-10 N1: another domain's name or address is not the recipient's domain.
    (_NXDOMAIN_OF.format("gone.example"), "bob@dest.example", False),
    (_NXDOMAIN_OF.format("mx.provider.example"), "bob@dest.example", False),
    ("550 5.1.2 <bob@gone.example>: Recipient address rejected: Domain not found", "alice@dest.example", False),
    ("550 5.1.2 <BOB@Dest.Example>: Recipient address rejected: Domain not found", "bob@dest.example", True),
    ("550 5.4.1 DNS domain does not exist [LastAttemptedServerName=gone.example]", "bob@dest.example", False),
    ("550 5.4.1 DNS domain does not exist [LastAttemptedServerName=dest.example]", "bob@dest.example", True),
    ("550 5.1.2 Recipient address rejected: Domain not found", "bob@dest.example", True),
    # review-11 R11-1: the punctuation after a bare address is not part of its domain.
    ("550 5.1.2 bob@dest.example: Domain not found", "bob@dest.example", True),
    ("550 5.1.2 (bob@dest.example) Recipient address rejected: Domain not found", "bob@dest.example", True),
    ('550 5.1.2 "bob@dest.example" Recipient address rejected: Domain not found', "bob@dest.example", True),
    ("550 5.1.2 bob@dest.example, no such domain", "bob@dest.example", True),
    # review-11 R11-3: a name followed by its address is still the name looked up.
    ("Name service error for name=mx.gone.example[192.0.2.1] type=A: Host not found", "bob@dest.example", False),
])
def test_a_no_such_domain_is_about_the_domain_it_names(text, address, evidence):
    assert load_default().domains.says_no_such_domain(text, address) is evidence
