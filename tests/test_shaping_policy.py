"""policies/shaping.yaml: the shipped file, and every problem named by file, key and why."""

from __future__ import annotations

import datetime as dt

import pytest

from relay.decision import Reply
from relay.errors import ConfigError
from relay.shaping.policy import HoldRule, load_shaping, shipped_shaping


def load(tmp_path, text: str):
    path = tmp_path / "shaping.yaml"
    path.write_text(text)
    return load_shaping(path)


def problems(tmp_path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, text)
    return [f"{p.key}: {p.why}" for p in exc.value.problems]


@pytest.mark.parametrize("reply, destination, rule", [
    ("421-4.7.28 Gmail has detected an unusual rate of mail originating from your SPF\n"
     "421 4.7.28 domain [example.com 12]. - gsmtp", "google", "gmail-unusual-rate"),
    ("421-4.7.0 Try again later, too many messages from this IP. - gsmtp", "google", "gmail-too-many"),
    ("451 4.7.650 The mail server [203.0.113.5] has been temporarily rate limited due to IP reputation.",
     "microsoft", "microsoft-throttled"),
    ("451 4.7.500 Server busy. Please try again later from [203.0.113.5].", "microsoft", "microsoft-throttled"),
    ("421 4.7.0 [TSS04] Messages from 203.0.113.5 temporarily deferred due to unexpected volume or user "
     "complaints - 4.16.55.1", "yahoo", "yahoo-deferred"),
    ("421 4.7.0 [TS03] All messages from 203.0.113.5 will be permanently deferred", "yahoo", "yahoo-blocked"),
    ("421 4.7.0 Too many concurrent SMTP connections from this IP", "apple", "too-many-connections"),
    ("452 4.5.3 Too many recipients", "apple", "too-many-recipients"),
])
def test_shipped_reactions_match_the_providers_replies(reply, destination, rule):
    policy = shipped_shaping()
    dest = policy.named(destination)
    reaction = dest.reaction_for(Reply.parse(reply), "rcpt")
    assert reaction is not None and reaction.id == rule


@pytest.mark.parametrize("reply", [
    "550-5.1.1 The email account that you tried to reach does not exist. - gsmtp",
    "450-4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages",
    "250 2.0.0 OK",
])
def test_shipped_reactions_leave_other_replies_alone(reply):
    assert shipped_shaping().named("google").reaction_for(Reply.parse(reply), "rcpt") is None


def test_shipped_destinations_are_found_by_domain_and_by_mx():
    policy = shipped_shaping()
    assert policy.by_domain("googlemail.com").name == "google"
    assert policy.by_mx("aspmx.l.google.com").name == "google"
    assert policy.by_mx("example-com.mail.protection.outlook.com").name == "microsoft"
    assert policy.by_mx("mta7.am0.yahoodns.net").name == "yahoo"
    assert policy.by_mx("mx01.mail.icloud.com").name == "apple"
    assert policy.by_mx("google.com.evil.example") is None
    assert policy.by_domain("example.org") is None
    assert policy.for_domain("example.org").name == "example.org"
    assert policy.named("google").reactions[0].per_sender_domain is True


def test_hold_grows_on_repeat_up_to_its_longest():
    rule = HoldRule(first=60, longest=300, growth=2)
    assert [rule.duration(n) for n in (1, 2, 3, 4)] == [60, 120, 240, 300]


def test_every_problem_names_its_key(tmp_path):
    found = problems(tmp_path, """
version: 1
mx_lookup: maybe
colour: blue
destinations:
  Google!: {mx: [mx.example.net]}
  first: {domains: [gmail.com]}
  google:
    domains: [gmail.com, "not a domain"]
    mx: ["*.google.com"]
    limits: {connections: 0, messages_per_minute: fast, burst: 3}
    reactions: [nope, broken]
  empty: {}
default:
  reactions: [too-many]
reactions:
  - id: broken
    enhanced: "4.7.28"
    reason: unusual rate
    hold: {for: 1h, max: 1m, grow: 2}
  - id: too-many
    code: 999
    reason: ""
    slow: {factor: 2}
  - id: nothing-to-do
    match: 'x'
    reason: x
  - id: dup
    match: '('
    reason: x
    hold: {for: 1m}
warmup:
  plans:
    new: [{day: 2, per_day: 10}]
  senders:
    example.com: {plan: old, start: yesterday}
""")
    expected = [
        "colour: unknown key",
        "mx_lookup: expected true or false",
        "reactions[0].hold.grow: unknown key",
        "reactions[0].hold.max: must not be shorter than hold.for",
        "reactions[1].reason: required",
        "reactions[1].code: reply code 999 is outside 200..599",
        "reactions[1].slow.factor: expected a number between 0 and 1",
        "reactions[2]: a reaction needs hold, slow or both",
        "reactions[3].match: bad regular expression",
        "destinations.Google!: expected a name of lower-case letters",
        "destinations.google.domains[0]: gmail.com already belongs to destination first",
        "destinations.google.domains[1]: 'not a domain' is not a domain name",
        "destinations.google.limits.burst: unknown key",
        "destinations.google.limits.connections: expected a whole number of at least 1",
        "destinations.google.limits.messages_per_minute: expected a whole number",
        "destinations.google.reactions[0]: no reaction with id 'nope'",
        "destinations.empty: a destination needs `domains:` or `mx:`",
        "warmup.plans.new[0].day: the first step must be day 1",
        "warmup.senders.example.com.plan: no plan 'old' in warmup.plans",
        "warmup.senders.example.com.start: expected the plan's first day as a date",
    ]
    for want in expected:
        assert any(f.startswith(want) for f in found), (want, found)
    # A reaction that is wrong is reported once, not again where a destination names it.
    assert not any("'broken'" in f for f in found)
    assert not any("'too-many'" in f for f in found)


def test_warmup_caps_grow_on_schedule_and_end(tmp_path):
    policy = load(tmp_path, """
version: 1
destinations:
  google: {domains: [gmail.com]}
  microsoft: {domains: [outlook.com]}
warmup:
  plans:
    new-domain: [{day: 1, per_day: 50}, {day: 3, per_day: 200}, {day: 7, per_day: 1000}]
  senders:
    Example.COM: {plan: new-domain, start: 2026-11-20, destinations: [google]}
""")
    sender = policy.warmup_for("example.com")
    start = dt.date(2026, 11, 20)
    caps = [sender.cap("google", start + dt.timedelta(days=n)) for n in (-1, 0, 1, 2, 5, 6, 7)]
    assert caps == [50, 50, 50, 200, 200, 1000, None]
    assert sender.cap("microsoft", start) is None  # not on the plan for that destination
    assert policy.warmup_for("other.org") is None


def test_the_null_file_and_a_list_are_refused(tmp_path):
    assert problems(tmp_path, "[]\n") == ["(file): expected a mapping with `destinations:`, `default:` and `reactions:`"]


@pytest.mark.parametrize("ref", ["[gmail-too-many]", "{id: gmail-too-many}", "7"])
def test_a_reaction_reference_that_is_not_an_id_is_a_problem(tmp_path, ref):
    found = problems(tmp_path, f"""
version: 1
destinations:
  google: {{domains: [gmail.com], reactions: [{ref}]}}
reactions:
  - id: gmail-too-many
    code: 421
    reason: too many
    hold: {{for: 1m}}
""")
    assert len(found) == 1 and found[0].startswith("destinations.google.reactions[0]: expected the id of a reaction"), found
