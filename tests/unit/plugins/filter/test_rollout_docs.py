"""Checks that each rollout filter's ansible-doc file exists, parses and matches its function."""

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.bmms.platform.plugins.filter import rollout

REPOSITORY = Path(__file__).resolve().parents[4]
FILTERS = rollout.FilterModule().filters()


def load_doc(name):
    return yaml.safe_load((REPOSITORY / "plugins" / "filter" / f"{name}.yml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_doc_has_all_sections(name):
    doc = load_doc(name)
    assert set(doc) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    assert doc["DOCUMENTATION"]["name"] == name
    assert doc["DOCUMENTATION"]["short_description"]
    assert "_value" in doc["RETURN"]


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_doc_options_match_parameters(name):
    """The first parameter is _input; the others keep their names."""
    parameters = list(inspect.signature(FILTERS[name]).parameters)
    documented = load_doc(name)["DOCUMENTATION"]["options"]
    assert set(documented) == {"_input", *parameters[1:]}


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_doc_marks_required_parameters(name):
    signature = inspect.signature(FILTERS[name])
    documented = load_doc(name)["DOCUMENTATION"]["options"]
    for index, (parameter, spec) in enumerate(signature.parameters.items()):
        key = "_input" if index == 0 else parameter
        required = spec.default is inspect.Parameter.empty
        assert bool(documented[key].get("required")) == required, key


def test_ansible_doc_shows_every_rollout_filter():
    ansible_doc = Path(sys.executable).parent / "ansible-doc"
    result = subprocess.run(
        [str(ansible_doc), "-t", "filter", "--json"] + [f"bmms.platform.{name}" for name in FILTERS],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    docs = json.loads(result.stdout)
    for name in FILTERS:
        assert docs[f"bmms.platform.{name}"]["doc"]["name"] == name
