"""The provider breaker through `relay postfix-log import`: the provider is the host Postfix talked to
(relay=host[ip]:port), reduced to its registrable domain, whatever the recipients' domains."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LINE = ("{stamp} mail postfix/smtp[4242]: {queue}: to=<{rcpt}>, relay={relay}[192.0.2.25]:25, delay=0.1, "
        "delays=0/0/0.05/0.05, dsn=5.1.1, status=bounced (host {relay}[192.0.2.25] said: 550 5.1.1 <{rcpt}>: "
        "Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO command))")


def relay(*args):
    return subprocess.run([sys.executable, "-m", "relay", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def test_a_hosters_refusals_for_many_domains_in_the_postfix_log_trip_its_breaker(tmp_path):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "suppression.yaml").write_text("permanent: {unknown_recipient: {list_after: 1}}\n"
                                               "provider_breaker: {distinct_addresses: 3, within: 10m}\n")
    config = tmp_path / "relay.yaml"
    config.write_text(f"hostname: relay.test\nbounce_list: sqlite:///{tmp_path}/bounces.db\n"
                      f"events: [{{jsonl: {tmp_path}/events.jsonl}}]\npolicies: {policies}\n")
    # Syslog stamps have no year nor zone: local time, a minute ago (never in the future).
    at = datetime.now(timezone.utc).astimezone() - timedelta(minutes=1)
    lines = [LINE.format(stamp=f"{at:%b} {at.day:2d} {at:%H:%M:%S}", queue=f"ABCDEF{n}", rcpt=f"info@shop{n}.test",
                         relay=f"mx{n % 2}.hoster.test") for n in range(5)]
    # Another provider's refusal in between stays listed.
    lines.insert(2, LINE.format(stamp=f"{at:%b} {at.day:2d} {at:%H:%M:%S}", queue="ABCDEF9", rcpt="x@solo.test",
                                relay="mx.solo.test"))
    log = tmp_path / "mail.log"
    log.write_text("\n".join(lines) + "\n")
    out = relay("postfix-log", "import", log, "-c", config)
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    # contract7: the events carry `upstream` (DESIGN.md) beside Postfix's `relay`, and the breaker, which reads
    # the host by the event's source, still keys on the hoster: an `upstream` without `route: mx` is not
    # taken for a smarthost here.
    rejected = [e for e in events if e["kind"] == "rejected"]
    assert len(rejected) == 6 and all(e["upstream"]["host"] == e["relay"]["host"] and e["upstream"]["port"] == 25
                                      for e in rejected), rejected
    (warning,) = [e for e in events if e["kind"] == "warning" and e.get("check") == "breaker"]
    assert warning["provider"] == "hoster.test"
    assert warning["held"] == [f"info@shop{n}.test" for n in range(4)]
    held = json.loads(relay("bounces", "held", "--provider", "hoster.test", "--json", "-c", config).stdout)
    assert [h["address"] for h in held] == [f"info@shop{n}.test" for n in range(5)]
    listed = json.loads(relay("bounces", "list", "--json", "-c", config).stdout)
    assert [e["address"] for e in listed] == ["x@solo.test"]
