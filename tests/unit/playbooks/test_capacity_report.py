"""Run playbooks/capacity_report.yml from the repository root, as an operator does.

The playbook runs on localhost with a local connection and touches no
other host. Each run takes about a second.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.bmms.platform.plugins.filter.capacity import capacity_plan

REPOSITORY = Path(__file__).resolve().parents[3]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def run_report(*extra_vars):
    arguments = [str(ANSIBLE_PLAYBOOK), "playbooks/capacity_report.yml"]
    for extra in extra_vars:
        arguments += ["-e", extra]
    return subprocess.run(
        arguments, cwd=REPOSITORY, capture_output=True, text=True, check=False
    )


def test_report_prints_every_figure():
    result = run_report("moas=44", "users=1000")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Capacity plan for 44 MOAs and 1000 concurrent users" in result.stdout
    for section, values in capacity_plan(44, 1000).items():
        for key, value in values.items():
            assert f"{key} " in result.stdout, f"{section}.{key} missing"
            assert f" {value}\n" in result.stdout, f"{section}.{key} value missing"


def test_report_json_export(tmp_path):
    target = tmp_path / "capacity.json"
    result = run_report("moas=44", "users=1000", f"export_json={target}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(target.read_text()) == capacity_plan(44, 1000)


def test_report_accepts_planning_options():
    options = json.dumps({"capacity_options": {"users_per_app_server": 250}})
    result = run_report("moas=44", "users=1000", options)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "servers                                 4\n" in result.stdout


@pytest.mark.parametrize(
    ("extra_vars", "message"),
    [
        (
            ["moas=44", "users=abc"],
            "users must be a whole number of at least 1, got 'abc'",
        ),
        (
            ["moas=44", "users=2.5"],
            "users must be a whole number of at least 1, got '2.5'",
        ),
        (["moas=0", "users=1000"], "moas must be a whole number of at least 1, got 0"),
        (["moas=44", "users=-5"], "users must be a whole number of at least 1, got -5"),
        (["moas=44"], "Give both inputs, for example -e moas=44 -e users=1000"),
        (
            ["moas=44", "users=1000", '{"capacity_options": {"sentinels": 4}}'],
            "option sentinels must be odd",
        ),
    ],
)
def test_report_bad_input_message(extra_vars, message):
    result = run_report(*extra_vars)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert message in output
    assert "Traceback" not in output
