"""`relay users hash NAME`: a line for clients.users_file (the password is read, never echoed)."""

from __future__ import annotations

import getpass
import sys

from . import add_config_arg


def register(sub) -> None:
    p = sub.add_parser("users", help="manage AUTH users")
    users_sub = p.add_subparsers(dest="users_command", metavar="SUBCOMMAND")
    h = users_sub.add_parser("hash", help="print a users_file line for NAME (password from stdin or a prompt)")
    h.add_argument("name")
    h.add_argument("--domains", default="", metavar="D1,D2",
                   help="sender domains the user may use (MAIL FROM and the From: signed with DKIM); * for any")
    # DESIGN.md: every subcommand takes -c/--config. A hash needs no config, so it is accepted
    # (scripts pass the same -c to every `relay` command) and not read.
    add_config_arg(h, required=False)
    h.set_defaults(func=run_hash)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def run_hash(args) -> int:
    from ..users import hash_password

    if ":" in args.name or not args.name.strip():
        print("error: a user name must be non-empty and contain no ':'", file=sys.stderr)
        return 1
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        print("error: empty password", file=sys.stderr)
        return 1
    domains = ",".join(d.strip().lower() for d in args.domains.split(",") if d.strip())
    if not domains:
        print("warning: no --domains: this user may send from any domain; add :DOMAINS to the line to restrict it",
              file=sys.stderr)
    print(f"{args.name}:{hash_password(password)}:{domains}")
    return 0
