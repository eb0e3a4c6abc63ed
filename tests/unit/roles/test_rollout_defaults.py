"""The rollout and preflight roles' copies of other roles' defaults still match those roles."""

from pathlib import Path

import pytest
import yaml

REPOSITORY = Path(__file__).resolve().parents[3]


def role_defaults(role):
    return yaml.safe_load((REPOSITORY / "roles" / role / "defaults" / "main.yml").read_text(encoding="utf-8"))


COPIES = {
    "rollout": role_defaults("rollout")["rollout_capacity_defaults"],
    "preflight": role_defaults("preflight")["preflight_capacity_defaults"],
}


@pytest.mark.parametrize(
    ("copy", "name"), [(copy, name) for copy, values in sorted(COPIES.items()) for name in sorted(values)]
)
def test_capacity_default_matches_role(copy, name):
    role = name.split("_", 1)[0]
    assert role_defaults(role)[name] == COPIES[copy][name]
