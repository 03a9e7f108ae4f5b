"""What a new operator met following README.md and docs/: each test is one thing that did not do what
the docs (or DESIGN.md's contract) say, checked where the operator meets it: a running relay's
events, or the `relay` command run as a process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# The TLS listener with a users file, and its certificate: the fixtures of tests/test_tls_auth.py.
from tests.test_tls_auth import TLSClient, auth_relay, cert, plain  # noqa: F401


def test_relay_access_denied_event_is_classified_relay_denied(auth_relay):
    # docs/events.md: the relay's own refusals are classified by policies/relay-replies.yaml, whose
    # `relay-access-denied` cause is `relay_denied`; the 554 at MAIL came out as `relay:default`/`other`.
    with TLSClient(auth_relay.host, auth_relay.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd("MAIL FROM:<a@sender.test>")[0] == 554
        c.cmd("QUIT")
    (event,) = [e for e in auth_relay.events(wait_for=1) if e["kind"] == "policy_rejected"]
    assert event["stage"] == "mail"
    assert event["classification"]["rule"] == "relay:relay-access-denied"
    assert event["classification"]["category"] == "relay_denied"


def test_sender_not_owned_event_says_why(auth_relay, cert):
    with TLSClient(auth_relay.host, auth_relay.port) as c:
        c.cmd("EHLO client.test")
        c.starttls(cert[0])
        c.cmd("EHLO client.test")
        assert c.cmd("AUTH PLAIN " + plain("alice", "s3cret pass"))[0] == 235
        assert c.cmd("MAIL FROM:<ceo@victim.test>")[0] == 553
        c.cmd("QUIT")
    (event,) = [e for e in auth_relay.events(wait_for=1) if e["kind"] == "policy_rejected"]
    assert event["classification"]["rule"] == "relay:sender-not-owned"
    assert event["classification"]["category"] == "relay_denied"
    assert "users_file" in event["classification"]["meaning"]


ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def relay_cli(*argv: str, **kwargs):
    return subprocess.run([sys.executable, "-m", "relay", *argv], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, **kwargs)


@pytest.mark.parametrize("action", [["list"], ["list", "--json"], ["export"]])
def test_bounces_output_piped_into_head_ends_quietly(tmp_path, action):
    # `relay bounces list | head`: the reader closes the pipe early. The command printed
    # "error: [Errno 32] Broken pipe" and exited 2, as if the list were broken.
    config = tmp_path / "relay.yaml"
    config.write_text(f"hostname: relay.test\nbounce_list: \"sqlite:///{tmp_path}/bounces.db\"\n"
                      f"events:\n  - jsonl: {tmp_path}/events.jsonl\n")
    csv = tmp_path / "list.csv"
    csv.write_text("address\n" + "".join(f"someone{i}@example.com\n" for i in range(5000)))
    assert relay_cli("bounces", "import", str(csv), "-c", str(config)).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "relay", "bounces", *action, "-c", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    assert proc.stdout.readline()  # what `head -1` reads, then it goes away
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, stderr
    assert stderr == ""


def test_users_hash_takes_the_config_option_like_every_subcommand(tmp_path):
    # DESIGN.md: "Every subcommand takes -c/--config PATH"; `relay users hash` refused it
    # ("unrecognized arguments: -c").
    config = tmp_path / "relay.yaml"
    config.write_text("hostname: relay.test\n")
    r = relay_cli("users", "hash", "alice", "--domains", "example.com", "-c", str(config), input="pw\n")
    assert r.returncode == 0, r.stderr
    name, _, domains = r.stdout.strip().split(":")
    assert (name, domains) == ("alice", "example.com")


def test_events_tail_refuses_a_misspelt_kind(tmp_path):
    # `relay events tail --kind bounce` (for bounced) printed nothing and exited 0: "no such events".
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({"kind": "bounced", "time": "2026-11-30T00:00:00.000Z",
                                  "recipient": "a@example.com"}) + "\n")
    r = relay_cli("events", "tail", "--file", str(events), "--kind", "bounce")
    assert r.returncode == 2 and "invalid choice: 'bounce'" in r.stderr and "bounced" in r.stderr
    r = relay_cli("events", "tail", "--file", str(events), "--kind", "bounced")
    assert r.returncode == 0 and "a@example.com" in r.stdout


def test_events_tail_skips_a_line_nested_thousands_deep(tmp_path):
    # The json decoder recurses: a line of "[" * 100000 in the events file was a RecursionError traceback,
    # and no event shown. Like any line that is not an event, it is skipped.
    events = tmp_path / "events.jsonl"
    event = json.dumps({"kind": "bounced", "time": "2026-11-30T00:00:00.000Z", "recipient": "a@example.com"})
    events.write_text(event + "\n" + "[" * 100_000 + "\n" + event.replace("a@", "b@") + "\n")
    for extra in ([], ["--kind", "bounced"]):
        r = relay_cli("events", "tail", "--file", str(events), *extra)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        assert "a@example.com" in r.stdout and "b@example.com" in r.stdout


def test_check_config_names_a_misspelt_event_sink(tmp_path):
    # `- jsnl: var/events.jsonl` said only "name exactly one sink", not which key was wrong.
    config = tmp_path / "relay.yaml"
    config.write_text("hostname: relay.example.com\nevents:\n  - stdout: true\n  - jsnl: var/events.jsonl\n")
    r = relay_cli("check-config", "-c", str(config))
    assert r.returncode == 1
    assert (f"error: {config}: events[1].jsnl: unknown key; expected one of: jsonl, postgresql, stdout, webhook"
            in r.stdout.splitlines())


def test_cursor_saves_from_two_threads_at_once_both_land(tmp_path):
    # The suite's journal stop test failed with FileNotFoundError renaming postfix-log.cursor.tmp:
    # a save cancelled at stop() goes on in its thread while stop() saves again, both through the
    # one .tmp file. Saves from several threads at once must each land whole.
    import threading

    from relay.intake.follower import CursorFile

    cursor = CursorFile(tmp_path / "state")
    errors = []

    def saver(n: int) -> None:
        for i in range(40):
            try:
                cursor.save({"kind": "journal", "cursor": f"c{n}-{i}"})
            except OSError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=saver, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert cursor.load()["cursor"].startswith("c")


@pytest.mark.parametrize("argv", [[], ["bounces"], ["events"], ["dkim"], ["users"], ["dsn"], ["postfix-log"],
                                  ["db"], ["shaping"]])
def test_a_command_without_its_action_is_a_usage_error_on_stderr(argv):
    """`relay bounces` (no action) exits 2, a usage error, as argparse's own are: the help goes to stderr
    like theirs. It went to stdout for all but `relay dkim`, into the file or pipe of `relay bounces > x`."""
    out = subprocess.run([sys.executable, "-m", "relay", *argv], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stdout == "" and out.stderr.startswith(f"usage: relay {' '.join(argv)}".rstrip()), (out.stdout, out.stderr)
