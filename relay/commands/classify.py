"""`relay classify [TEXT]`: the classification of an SMTP reply, as JSON."""

from __future__ import annotations

import json
import sys

from . import add_config_arg, load_policies_or_exit, load_settings_or_exit


def register(sub) -> None:
    p = sub.add_parser("classify", help="classify an SMTP reply",
                       description="Print the classification of one reply as JSON. With no TEXT, read one "
                                   "JSON string a line from stdin and print one JSON object a line.")
    p.add_argument("text", nargs="?", help="the reply as the server sent it, e.g. '550 5.1.1 User unknown'")
    add_config_arg(p, required=False)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..classify import default_classifier

    if args.config:
        classifier = load_policies_or_exit(load_settings_or_exit(args)).classifier
    else:
        classifier = default_classifier()
    if args.text is not None:
        print(json.dumps(classifier.classify_text(args.text).as_dict(), ensure_ascii=False))
        return 0
    status = 0
    for n, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            text = json.loads(line)
            if not isinstance(text, str):
                raise ValueError("expected a JSON string")
        except ValueError as exc:
            print(json.dumps({"error": f"line {n}: {exc}"}))
            status = 1
            continue
        print(json.dumps(classifier.classify_text(text).as_dict(), ensure_ascii=False), flush=True)
    return status
