"""Checks that each filter's ansible-doc file exists, parses and matches the code."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.bmms.platform.plugins.filter import capacity, passwords

REPOSITORY = Path(__file__).resolve().parents[4]
FILTER_DIRECTORY = REPOSITORY / "plugins" / "filter"
FILTER_NAMES = sorted(
    [*capacity.FilterModule().filters(), *passwords.FilterModule().filters()]
)


def load_doc(name):
    return yaml.safe_load((FILTER_DIRECTORY / f"{name}.yml").read_text())


@pytest.mark.parametrize("name", FILTER_NAMES)
def test_doc_file_has_all_sections(name):
    doc = load_doc(name)
    assert set(doc) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    assert doc["DOCUMENTATION"]["name"] == name
    assert doc["DOCUMENTATION"]["short_description"]
    assert "_value" in doc["RETURN"]


def test_plan_doc_lists_every_option():
    options = load_doc("capacity_plan")["DOCUMENTATION"]["options"]
    assert set(options) == {"_input", "users", *capacity.OPTIONS}


@pytest.mark.parametrize("name", capacity.OPTIONS)
def test_plan_doc_defaults_match_code(name):
    documented = load_doc("capacity_plan")["DOCUMENTATION"]["options"][name]
    spec = capacity.OPTIONS[name]
    assert documented["default"] == spec.default
    assert documented["type"] == ("int" if spec.integer else "float")


def test_ansible_doc_shows_every_filter():
    ansible_doc = Path(sys.executable).parent / "ansible-doc"
    result = subprocess.run(
        [str(ansible_doc), "-t", "filter", "--json"]
        + [f"bmms.platform.{name}" for name in FILTER_NAMES],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    docs = json.loads(result.stdout)
    for name in FILTER_NAMES:
        doc = docs[f"bmms.platform.{name}"]
        assert doc["doc"]["name"] == name, name
        assert doc["examples"], name
        assert doc["return"], name
