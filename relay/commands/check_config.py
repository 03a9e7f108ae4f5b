"""`relay check-config`: validate config and policies offline (no connections)."""

from __future__ import annotations

from . import add_config_arg
from ..errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser("check-config", help="validate the config and its policies offline",
                       description="Validate the config file and every policy file it names. "
                                   "Exit 0 when valid, 1 with every error (file, key, why).")
    add_config_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..config import load_settings
    from ..policies import load_policies

    problems = []
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        problems.extend(exc.problems)
        settings = None
    if settings is not None:
        try:
            policies = load_policies(settings)
        except ConfigError as exc:
            problems.extend(exc.problems)
        else:
            from ..steps.spf_check import spf_warnings
            from ..steps.verp import verp_problems
            problems.extend(verp_problems(settings, policies))
            for warning in spf_warnings(settings, policies):
                print(f"warning: {warning}")
        from ..errors import Problem
        from ..store import check_store

        why = check_store(settings.bounce_list)
        if why:
            problems.append(Problem(str(settings.source), "bounce_list", why))
        for i, sink in enumerate(settings.events):
            if sink.kind == "postgresql":
                why = check_store(sink.target)  # the same URL rules and driver as the bounce list's
                if why:
                    problems.append(Problem(str(settings.source), f"events[{i}].postgresql", why))
        from ..config import bounces_in_warnings

        for warning in bounces_in_warnings(settings):
            print(f"warning: {warning}")
        if settings.milter is not None:
            from ..config import milter_postfix_lines
            for line in milter_postfix_lines(settings.milter):
                print(line)
        if settings.clients.users_file is not None:
            from ..users import Users

            try:
                users = Users.from_file(settings.clients.users_file)
            except ConfigError as exc:
                problems.extend(exc.problems)
            else:
                for name in users.unrestricted:
                    print(f"warning: {settings.clients.users_file}: user {name} names no sender domains and may "
                          f"send from any domain; add :DOMAINS to its line to restrict it")
    for problem in problems:
        print(f"error: {problem}")
    if problems:
        print(f"{len(problems)} error(s)")
        return 1
    print(f"{args.config}: OK")
    return 0
