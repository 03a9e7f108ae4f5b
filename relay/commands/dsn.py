"""`relay dsn parse FILE...`: the failed recipients of bounce messages (and ARF complaints), as JSON lines.

Offline: no DNS, no store, no event. Each failed recipient is classified by the shipped policies (or
the config's) exactly as `relay classify` would classify the remote server's reply.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import add_config_arg, load_policies_or_exit, load_settings_or_exit


def register(sub) -> None:
    p = sub.add_parser("dsn", help="read bounce messages (DSN, ARF and the non-standard ones)")
    dsn_sub = p.add_subparsers(dest="dsn_command", metavar="SUBCOMMAND")
    parse = dsn_sub.add_parser(
        "parse", help="print every failed recipient of bounce messages as JSON lines",
        description="Read bounce messages (RFC 3464 DSNs, the non-standard ones real MTAs send, RFC 5965 "
                    "feedback reports) and print one JSON object a line per failed recipient. Auto-replies "
                    "and delivery-success reports print nothing. Offline: no DNS, no store. Each line's "
                    "`hard` is sisimai's HardBounce: a permanent failure saying that the address or its "
                    "domain does not exist or has moved (or the server's own X.1.0 refuses the address); "
                    "false for unconfirmed (at DATA, under a contradicting code except X.2.1 or X.7.1 at "
                    "RCPT, or a text a rule marks unconfirmed), for a \"no such user\" whose report names "
                    "no command and whose code is not X.1.x (sisimai's Filtered; the bounce list is not "
                    "changed by it), disabled or suspended, full, policy, spam and temporary failures "
                    "(docs/bounces-in.md).")
    parse.add_argument("files", nargs="+", metavar="FILE",
                       help="a bounce message (whole email, or its text); - reads one from stdin")
    add_config_arg(parse, required=False)
    parse.set_defaults(func=run_parse)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def _policies_and_limit(args):
    """The policies that classify, and the most bytes a message may have: the bounce listener's own
    bound (bounces_in.max_message_size, 10 MiB unless the config says otherwise)."""
    from ..config import BouncesIn

    if args.config:
        settings = load_settings_or_exit(args)
        limit = (settings.bounces_in or BouncesIn(domains=())).max_message_size
        return load_policies_or_exit(settings), limit
    from ..policies import shipped_policies
    return shipped_policies(), BouncesIn(domains=()).max_message_size


def _read(name: str, limit: int) -> bytes:
    """The bytes of one message: a regular file or stdin ("-"), at most `limit` of them; a FileProblem
    saying why not. Read whole without a bound before, /dev/zero grew for ever and a FIFO with no
    writer blocked (review31 F6)."""
    from ..yamlfile import read_bounded, read_regular

    if name != "-":
        return read_regular(Path(name), limit)
    return read_bounded(sys.stdin.buffer.read, limit)


def records(report, file: str, policies) -> list[dict]:
    """The JSON objects `relay dsn parse` prints for one parsed message (the bench reads the same)."""
    out = []
    for failed in report.recipients:
        classification = None
        hard = False  # a complaint is not a bounce
        if report.kind == "bounce":
            judgement = judge(policies, failed, report.original_sender)
            classification = judgement_dict(judgement)
            hard = _sisimai_hard(policies, judgement, failed)
        out.append({
            "file": file,
            "recipient": failed.recipient or None,
            "original_recipient": failed.original_recipient,
            # Sendmail's X-Actual-Recipient: the address an alias or .forward made of the recipient,
            # which the remote reply may name instead (one of FailedRecipient.aliases).
            "actual_recipient": failed.actual_recipient,
            "status": failed.status,
            "code": failed.code,
            "action": failed.action,
            "diagnostic": failed.diagnostic,
            "remote_mta": failed.remote_mta,
            "stage": failed.stage,
            "feedback_type": failed.feedback_type,
            "message_id": report.message_id,
            "hard": hard,
            "classification": classification,
        })
        if failed.original_readings:
            # An Original-Recipient that reads two ways (as written and xtext-decoded, RFC 3461 4), the
            # likelier first; `original_recipient` is that one (intake/dsn.py _original_recipient).
            out[-1]["original_recipient_readings"] = list(failed.original_readings)
        if report.blocks_not_read:
            # The report was cut (intake/dsn.py MAX_STATUS_BLOCKS): its lines are not all of it.
            out[-1]["recipients_not_read"] = report.blocks_not_read
    return out


def judge(policies, failed, sender: str | None = None):
    """The funnel's judgement of the remote reply (as `relay classify --stage S --recipient R` makes it);
    `sender`: the original message's envelope sender when the report gives it (X-Postfix-Sender,
    Original-Mail-From, the returned message's Return-Path)."""
    recipient = failed.recipient
    return policies.judge(failed.reply(), failed.stage, [recipient] if recipient else [],
                          failed.aliases(recipient) if recipient else (), sender or None)


def _sisimai_hard(policies, judgement, failed) -> bool:
    """The line's `hard`: sisimai's HardBounce (policies.sisimai_hard), read from the funnel's
    judgement of the reply; the judgement and the bounce list are not changed by it."""
    from ..classify import unwrapped_text
    from ..policies import sisimai_hard

    reply = failed.reply()
    words = unwrapped_text(reply) + "\n" + (failed.own_words or "")
    classifier = policies.classifier
    fallback_key = classifier.fallback_key(judgement.classification) if hasattr(classifier, "fallback_key") else None
    recipient = failed.recipient
    known = [recipient, *failed.aliases(recipient)] if recipient else []
    return sisimai_hard(judgement, failed.stage, reply, words, getattr(classifier, "hard_at_any_stage", None),
                        fallback_key, known, getattr(classifier, "sisimai_words", None),
                        getattr(classifier, "sisimai_rhost", ()), _remote_host(failed.remote_mta),
                        recipient.rpartition("@")[2] if recipient and "@" in recipient else None,
                        failed.diagnostic)


def _remote_host(remote_mta: str | None) -> str | None:
    """The host name of a report's Remote-MTA as the line carries it ("mx.example.net[192.0.2.1]",
    "mta5.am0.yahoodns.net."): without an address in brackets, a trailing dot or what follows a space."""
    if not remote_mta:
        return None
    host = remote_mta.strip().split()[0] if remote_mta.strip() else ""
    host = host.split("[", 1)[0].rstrip(".").lower()
    return host or None


def judgement_dict(judgement) -> dict:
    """Classification, scope, and what the refusal does to the recipient's bounce-list record."""
    out = judgement.classification.as_dict()
    out["scope"] = judgement.scope
    out["bounce_list"] = judgement.bounce_list
    return out


def run_parse(args) -> int:
    from ..intake.dsn import parse_bounce

    from ..yamlfile import FileProblem, FileTooLarge

    policies, limit = _policies_and_limit(args)
    status = 0
    for name in args.files:
        try:
            # "-" is stdin, as for `relay postfix-log import -` (a bounce piped from a mail store);
            # a file named "-" is "./-".
            raw = _read(name, limit)
        except FileTooLarge:
            print(f"error: {name}: too large: over {limit} bytes (bounces_in.max_message_size: the most the "
                  f"bounce listener takes); one bounce message a file, not a mailbox", file=sys.stderr)
            status = 1
            continue
        except (FileProblem, OSError) as exc:
            print(f"error: {name}: {exc.strerror if isinstance(exc, OSError) else exc}", file=sys.stderr)
            status = 1
            continue
        try:
            report = parse_bounce(raw)
        except Exception as exc:  # a message we cannot read is reported, never a traceback
            print(f"error: {name}: cannot parse: {exc}", file=sys.stderr)
            status = 1
            continue
        if report.not_a_message:
            # Nothing to read in it (an empty file or stdin, binary data): said, not passed over in
            # silence as an auto-reply is, which is a message that reports no failure.
            print(f"error: {name}: {report.not_a_message}", file=sys.stderr)
            status = 1
            continue
        if report.blocks_not_read:
            from ..intake.dsn import MAX_STATUS_BLOCKS
            print(f"warning: {name}: {report.blocks_not_read} recipient blocks past the first "
                  f"{MAX_STATUS_BLOCKS} not read", file=sys.stderr)
        for record in records(report, name, policies):
            print(json.dumps(record, ensure_ascii=False), flush=True)
    return status
