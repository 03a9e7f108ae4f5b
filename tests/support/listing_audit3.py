"""Listing audit 3's probes (tests/data/listing_audit3/): refusals of a good address, and near texts
that mean the address does not exist, judged by a checkout's shipped rules (Policies.judge).

`python3 -m tests.support.listing_audit3` prints the figures (run with PYTHONPATH at the checkout)."""

from __future__ import annotations

from pathlib import Path

DIR = Path(__file__).resolve().parent.parent / "data" / "listing_audit3"
STAGES = (None, "rcpt", "data")


def load(name: str) -> list[str]:
    lines = (DIR / name).read_text(encoding="utf-8").splitlines()
    return [line.replace("\\r\\n", "\r\n") for line in lines if line.strip() and not line.startswith("#")]


def refused() -> list[str]:
    return load("good_address_refused.txt")


def absent() -> list[str]:
    return load("address_does_not_exist.txt")


def verdict(policies, text: str, stage: str | None):
    from tests.support.corpus import judge

    return judge(policies, {"reply": text, "stage": stage})


def main() -> None:
    import sys

    from tests.support.corpus import load_shipped_policies

    policies = load_shipped_policies()
    verbose = "-v" in sys.argv
    listed = counted = 0
    for text in refused():
        got = {stage: verdict(policies, text, stage) for stage in STAGES}
        if any(v.bounce_list == "list" for v in got.values()):
            listed += 1
            if verbose:
                print("FALSE LIST", {s: (v.category, v.rule) for s, v in got.items() if v.bounce_list == "list"}, repr(text))
        elif any(v.bounce_list == "count" for v in got.values()):
            counted += 1
            if verbose:
                print("count     ", got["rcpt"].category, got["rcpt"].rule, repr(text))
    missed = 0
    for text in absent():
        v = verdict(policies, text, "rcpt")
        if v.bounce_list != "list":
            missed += 1
            if verbose:
                print("MISSED    ", v.category, v.bounce_list, v.rule, repr(text))
    print(f"good address refused: {len(refused())} texts x {len(STAGES)} stages: listed at once {listed}, "
          f"counted (no listing at once) {counted}")
    print(f"address does not exist: {len(absent())} texts at RCPT: not listed {missed}")


if __name__ == "__main__":
    main()
