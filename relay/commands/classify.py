"""`relay classify [TEXT]`: the classification of an SMTP reply, and what the relay would do with it, as JSON."""

from __future__ import annotations

import argparse
import json
import sys

from . import add_config_arg, load_policies_or_exit, load_settings_or_exit

STAGES = ("connect", "helo", "mail", "rcpt", "data")


def register(sub) -> None:
    p = sub.add_parser("classify", help="classify an SMTP reply",
                       description="Print the classification of one reply as JSON, with its scope (what the "
                                   "refusal is about) and bounce_list (list, count or never). With no TEXT, read "
                                   "one JSON string a line from stdin and print one JSON object a line.")
    p.add_argument("text", nargs="?", help="the reply as the server sent it, e.g. '550 5.1.1 User unknown'")
    p.add_argument("--stage", choices=STAGES, default=None,
                   help="the SMTP stage the reply answered (default: unknown)")
    p.add_argument("--recipient", action="append", default=[], metavar="ADDR", type=_address,
                   help="a recipient of the transaction (repeatable): a reply at DATA is about one "
                        "recipient only when its text names one of them")
    p.add_argument("--sender", action="append", metavar="ADDR", type=_sender, default=None,
                   help="the transaction's envelope sender, as a running relay knows it (MAIL FROM, or the VERP "
                        "return path it sent upstream): a reply that leads with it is about the sender, not the "
                        "recipient (repeatable: the bounce intake judges with both the VERP return path and the "
                        "original sender; default: unknown; '<>', the null sender, is the same)")
    p.add_argument("--alias", action="append", default=[], metavar="ADDR", type=_address,
                   help="another address a bounce report gives for the recipient (repeatable): a DSN's "
                        "Original-, Final- or X-Actual-Recipient, as 'relay dsn parse' prints them; a reply "
                        "that names it names the recipient, as the bounce intake judges it")
    add_config_arg(p, required=False)
    p.set_defaults(func=run)


def _address(text: str, role: str = "recipient") -> str:
    """An address as given on the command line ("a@b" or "<a@b>"), without its angle brackets, as a
    running relay has it from MAIL FROM or RCPT TO; argparse's usage error (exit 2) saying why it is
    none (relay.address.split's words), never a traceback. A bare "postmaster" (any case) is a
    recipient the relay accepts (RFC 5321 4.1.1.3 and 4.5.1; service.address_problem), so it is one
    here too."""
    from ..address import split

    bare = _unbracketed(text)
    if role == "recipient" and bare.lower() == "postmaster":
        return bare
    try:
        split(bare)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return bare


def _unbracketed(text: str) -> str:
    bare = text.strip()
    if bare.startswith("<") and bare.endswith(">"):
        bare = bare[1:-1].strip()
    return bare


def _sender(text: str) -> str | None:
    """`--sender`: an address (_address), or None for the null reverse-path ("<>", RFC 5321 4.5.5;
    also "< >", "" or any text of only angle brackets and blanks), which a running relay never reads
    a reply's leading address as (policies.about_another_address). Such a text never reaches
    relay.address.split, whose error for it speaks of a recipient ("the null path <> is not a
    recipient")."""
    if not text.replace("<", "").replace(">", "").strip():
        return None
    return _address(text, role="sender")


def judged(policies, text: str, stage: str | None, recipients: list[str],
           sender: str | list[str | None] | None = None, aliases: list[str] = ()) -> dict:
    from ..decision import Reply

    judgement = policies.judge(Reply.parse(text), stage, recipients, aliases=aliases, sender=sender)
    out = judgement.classification.as_dict()
    out["scope"] = judgement.scope
    out["bounce_list"] = judgement.bounce_list
    return out


def run(args) -> int:
    from ..policies import NOT_A_REFUSAL, shipped_policies

    if args.config:
        policies = load_policies_or_exit(load_settings_or_exit(args))
    else:
        policies = shipped_policies()
    if args.text is not None:
        if not args.text.strip():
            # An empty TEXT is no reply (an unset shell variable, "$REPLY" of nothing): classified, it
            # read as a refusal these rules do not recognise, scope recipient.
            print("relay classify: error: TEXT is empty: give the reply as the server sent it, e.g. "
                  "'550 5.1.1 User unknown' (or no TEXT: one JSON string a line on stdin)", file=sys.stderr)
            return 2
        out = judged(policies, args.text, args.stage, args.recipient, args.sender, args.alias)
        print(json.dumps(out, ensure_ascii=False))
        return 1 if out["rule"] == NOT_A_REFUSAL else 0
    status = 0
    lines = _BoundedLines(sys.stdin.buffer)
    for n, line in enumerate(lines, 1):
        if line is None:
            print(json.dumps({"error": f"line {n}: longer than {MAX_LINE_BYTES} bytes; expected one JSON string "
                                       f"(an SMTP reply) a line"}))
            status = 1
            continue
        if not line.strip():
            continue
        try:
            text = json.loads(line)
            if not isinstance(text, str):
                raise ValueError("expected a JSON string")
            if not text.strip():
                raise ValueError("an empty string; expected an SMTP reply")
        except ValueError as exc:
            print(json.dumps({"error": f"line {n}: {exc}"}))
            status = 1
            continue
        except RecursionError:  # the json decoder is recursive: "[" * 100000 exhausts the stack
            print(json.dumps({"error": f"line {n}: nested too deeply; expected a JSON string"}))
            status = 1
            continue
        out = judged(policies, text, args.stage, args.recipient, args.sender, args.alias)
        print(json.dumps(out, ensure_ascii=False), flush=True)
        if out["rule"] == NOT_A_REFUSAL:
            status = 1  # as a line that is no JSON string: not a refusal to classify
    if lines.read == 0:
        # Nothing on stdin at all (</dev/null, a pipe from a command that found nothing): nothing to
        # classify, and said so, since no TEXT was given either.
        print("relay classify: stdin is empty: nothing classified (give TEXT, or one JSON string a line "
              "on stdin)", file=sys.stderr)
    if lines.too_much:
        sys.stdout.flush()
        print(f"error: stdin: over {MAX_INPUT_BYTES} bytes in all; the rest was not read (classify a larger "
              f"input in parts)", file=sys.stderr)
        return 2
    return status


# The longest line read from stdin. A reply is at most a few KiB (aiosmtplib reads lines of up to 8 KiB;
# RFC 5321 4.5.3.1.5 asks for 512 octets), JSON-escaped a few times that; a line was held whole before,
# however long: 300 MB with no newline grew the process to 924 MB.
MAX_LINE_BYTES = 1 << 20
# The most stdin gives one run, over-long lines included (each is skipped without being held, but never
# ends: /dev/zero). Far above any log of replies one would classify at once (a million replies of
# 200 bytes is 200 MB); past it the run stops with exit status 2, as `relay dsn parse` stops at its
# bound (bounces_in.max_message_size).
MAX_INPUT_BYTES = 1 << 30


class _BoundedLines:
    """The lines of a binary stream as text (decoded as sys.stdin would: its encoding and error
    handler), each at most MAX_LINE_BYTES: a longer one is None, its rest read and dropped in pieces.
    Ends after MAX_INPUT_BYTES in all, with `too_much` set."""

    def __init__(self, stream):
        self.stream = stream
        self.read = 0
        self.too_much = False

    def __iter__(self):
        return self

    def _readline(self, limit: int) -> bytes:
        room = MAX_INPUT_BYTES - self.read
        line = self.stream.readline(min(limit, room + 1))
        self.read += len(line)
        if self.read > MAX_INPUT_BYTES:
            self.too_much = True
            raise StopIteration
        return line

    def __next__(self) -> str | None:
        line = self._readline(MAX_LINE_BYTES + 1)
        if not line:
            raise StopIteration
        if len(line) <= MAX_LINE_BYTES or line.endswith(b"\n"):
            return line.decode(sys.stdin.encoding or "utf-8", sys.stdin.errors or "strict")
        while True:  # the rest of an over-long line, up to its newline or the end of the input
            rest = self._readline(1 << 20)
            if not rest or rest.endswith(b"\n"):
                return None
