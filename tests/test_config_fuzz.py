"""`relay check-config` on damaged configs and policy files: it reports problems or passes, never raises.

A fixed seed keeps the run the same every time; the mutations (tests/support/config_mutations.py)
found NUL bytes and over-long names in paths, and lists or mappings where a name was expected
(see the tests of each in test_config.py, test_policies.py and test_shaping_policy.py).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random

from relay.commands import check_config

from tests.support.config_mutations import mutate, policy_documents, rich_config, write_yaml

SEED = 20261129
CONFIG_MUTATIONS = 75
POLICY_MUTATIONS = 75


def check(config) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = check_config.run(argparse.Namespace(config=str(config)))
    return rc, out.getvalue()


def test_check_config_reports_problems_and_never_raises(tmp_path):
    rng = random.Random(SEED)
    config = tmp_path / "relay.yaml"
    policies = tmp_path / "policies"
    policies.mkdir()
    base = rich_config(tmp_path)
    docs = policy_documents()
    for name, doc in docs.items():
        assert write_yaml(policies / name, doc)
    assert write_yaml(config, base)
    assert check(config) == (0, f"{config}: OK\n")

    ran = 0
    for i in range(CONFIG_MUTATIONS):
        doc = mutate(rng, base)
        if write_yaml(config, doc):
            rc, out = check(config)  # an exception here fails the test with the mutation's traceback
            assert rc in (0, 1) and "Traceback" not in out, (i, doc, out)
            ran += 1
    assert write_yaml(config, base)
    for i in range(POLICY_MUTATIONS):
        name = rng.choice(sorted(docs))
        doc = mutate(rng, docs[name])
        if write_yaml(policies / name, doc):
            rc, out = check(config)
            assert rc in (0, 1) and "Traceback" not in out, (i, name, doc, out)
            if rc == 1:
                assert all(line.startswith("error: ") or line.endswith("error(s)")
                           for line in out.splitlines() if line), out
            ran += 1
        assert write_yaml(policies / name, docs[name])
    assert ran > 0.9 * (CONFIG_MUTATIONS + POLICY_MUTATIONS)


def test_a_value_its_yaml_tag_cannot_build_is_reported_in_every_file(tmp_path):
    # Not reachable through the mutations above (they go through yaml.safe_dump, which never writes
    # an impossible date or an explicit tag): the text itself, appended to the config and to each
    # policy file. The old code raised ValueError/KeyError out of check-config (review20 F2).
    config = tmp_path / "relay.yaml"
    policies = tmp_path / "policies"
    policies.mkdir()
    docs = policy_documents()
    for name, doc in docs.items():
        assert write_yaml(policies / name, doc)
    assert write_yaml(config, rich_config(tmp_path))
    files = [config, *(policies / name for name in sorted(docs))]
    for path in files:
        good = path.read_text()
        head = "" if good.strip() == "{}" else good  # an empty mapping in flow style
        for value in ("2026-02-30", "2026-11-20T24:61:00", "!!int 12z", "!!float one", "!!bool perhaps"):
            path.write_text(head + f"zz_review20: {value}\n")
            rc, out = check(config)
            assert rc == 1 and "Traceback" not in out, (path.name, value, out)
            assert f"{path}: line {head.count(chr(10)) + 1}: " in out, (path.name, value, out)
        path.write_text(good)
