"""The rollout role's copies of other roles' defaults still match those roles."""

from pathlib import Path

import pytest
import yaml

REPOSITORY = Path(__file__).resolve().parents[3]


def role_defaults(role):
    return yaml.safe_load((REPOSITORY / "roles" / role / "defaults" / "main.yml").read_text(encoding="utf-8"))


ROLLOUT_CAPACITY_DEFAULTS = role_defaults("rollout")["rollout_capacity_defaults"]


@pytest.mark.parametrize("name", sorted(ROLLOUT_CAPACITY_DEFAULTS))
def test_capacity_default_matches_role(name):
    role = name.split("_", 1)[0]
    assert role_defaults(role)[name] == ROLLOUT_CAPACITY_DEFAULTS[name]
