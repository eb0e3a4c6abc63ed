"""Run playbooks/wave_rollout.yml on a throwaway inventory whose hosts are this machine.

Every host connects locally, without become, so the preflight gathers the
controller's own facts (2 or more vCPUs are assumed, as on the lab
machines). Each case stops in the preflight, which only reads. The manage
command is /bin/false, so a case that got past the preflight would fail at
its first application command instead of changing anything. The lab test
(tests/lab/test_wave_rollout.py) covers the steps after the preflight.
Each run takes 5 to 15 seconds, most of it gathering facts.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPOSITORY = Path(__file__).resolve().parents[3]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
HEADER = "username,email,first_name,last_name,moa\n"

WAVES = {1: "Pilot", 2: "Social services", 3: "Governance and finance"}
MOAS = [
    {"code": "ocm", "name": "Office of the Chief Minister", "wave": 1, "expected_users": 2, "csv": "ocm.csv"},
    {"code": "moh", "name": "Ministry of Health", "wave": 2, "expected_users": 2, "csv": "moh.csv"},
    {
        "code": "milg",
        "name": "Ministry of the Interior and Local Government",
        "wave": 3,
        "expected_users": 1,
        "csv": "milg.csv",
    },
]
OPTIONS = {
    "users_per_app_server": 20,
    "app_cores_per_server": 1,
    "users_per_celery_worker": 20,
    "celery_cores_per_worker": 1,
    "min_read_replicas": 1,
    "redis_replicas": 1,
    "cache_mb_per_user": 1,
}


def write_inventory(directory):
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False}
    inventory = {
        "all": {
            "vars": {"rollout_manage_command": ["/bin/false"]},
            "hosts": {name: dict(local) for name in ("app1", "app2", "db1", "db2")},
            "children": {
                "web": {"hosts": {"app1": None, "app2": None}},
                "celery_worker": {"hosts": {"app1": None, "app2": None}},
                "postgres_primary": {"hosts": {"db1": None}},
                "postgres_replicas": {"hosts": {"db2": None}},
                "pgbouncer": {"hosts": {"db1": None}},
                "redis": {"hosts": {"db1": {"redis_cache_maxmemory_mb": 64}, "db2": {"redis_cache_maxmemory_mb": 64}}},
                "redis_sentinel": {"hosts": {"db1": None, "db2": None, "app1": None}},
            },
        }
    }
    path = directory / "inventory" / "hosts.yml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(inventory), encoding="utf-8")
    return path


@pytest.fixture
def csv_dir(tmp_path):
    """Return a directory with a valid one-user CSV file per MOA of MOAS."""
    directory = tmp_path / "csv"
    directory.mkdir()
    for entry in MOAS:
        row = f"{entry['code']}.a,a@{entry['code']}.example.gov.ph,A,B,{entry['code']}\n"
        (directory / entry["csv"]).write_text(HEADER + row, encoding="utf-8")
    return directory


@pytest.fixture
def run_wave(tmp_path, csv_dir):
    """Return a function that runs the playbook with tags and plan changes; it returns (rc, output)."""
    inventory = write_inventory(tmp_path)

    def run(tags, **overrides):
        plan = {
            "rollout_waves": WAVES,
            "rollout_moas": MOAS,
            "rollout_csv_dir": str(csv_dir),
            "rollout_capacity_options": OPTIONS,
            "rollout_summary_dir": str(tmp_path / "summaries"),
        }
        plan.update(overrides)
        arguments = [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), "-e", json.dumps(plan), "playbooks/wave_rollout.yml"]
        if tags:
            arguments += ["--tags", tags]
        # The default callback prints failure messages as YAML; JSON keeps
        # each message on one line.
        environment = dict(os.environ, ANSIBLE_CALLBACK_RESULT_FORMAT="json")
        result = subprocess.run(
            arguments, cwd=REPOSITORY, env=environment, capture_output=True, text=True, check=False, timeout=300
        )
        return result.returncode, result.stdout + result.stderr

    return run


def test_list_tags_shows_nine_waves():
    result = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "playbooks/wave_rollout.yml", "--list-tags"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    tags = set(re.findall(r"\bwave[0-9]+\b", result.stdout))
    assert tags == {f"wave{number}" for number in range(1, 10)}


def test_run_without_tag_rejected(run_wave):
    rc, output = run_wave(None)
    assert rc != 0
    assert "Run one wave at a time" in output
    assert "this run has --tags all" in output
    assert "Check the wave" not in output


def test_run_with_two_waves_rejected(run_wave):
    rc, output = run_wave("wave1,wave2")
    assert rc != 0
    assert "Run one wave at a time" in output
    assert "Check the wave" not in output


def test_wave_before_previous_refused(run_wave):
    rc, output = run_wave("wave2")
    assert rc != 0
    assert "wave 2 needs wave(s) 1 completed first" in output
    assert "Import and verify" not in output


def test_wave_over_capacity_stops_in_preflight(run_wave):
    moas = [dict(MOAS[0], expected_users=500)] + MOAS[1:]
    rc, output = run_wave("wave1", rollout_moas=moas)
    assert rc != 0
    assert "Wave 1 stopped before changing anything" in output
    assert "wave 1 needs 25 web servers for 500 users; the inventory has 2 (group 'web')" in output
    assert "Import and verify" not in output


def test_force_skips_order_but_not_capacity(run_wave):
    moas = MOAS[:2] + [dict(MOAS[2], expected_users=500)]
    rc, output = run_wave("wave3", rollout_moas=moas, rollout_force=True)
    assert rc != 0
    assert "completed first" not in output
    assert "Wave 3 stopped before changing anything" in output


def test_force_given_as_string_counts(run_wave):
    """-e rollout_force=true arrives as the string 'true'."""
    moas = MOAS[:2] + [dict(MOAS[2], expected_users=500)]
    rc, output = run_wave("wave3", rollout_moas=moas, rollout_force="true")
    assert "completed first" not in output
    assert "Wave 3 stopped before changing anything" in output


def test_bad_csv_stops_in_preflight(run_wave, csv_dir):
    (csv_dir / "ocm.csv").write_text(
        HEADER + "ocm.a,a@ocm.example.gov.ph,A,B,ocm\nocm.b,not-an-email,C,D,ocm\n", encoding="utf-8"
    )
    rc, output = run_wave("wave1")
    assert rc != 0
    assert "Wave 1 stopped before changing anything: 1 problem(s)" in output
    assert "ocm.csv: line 3: email 'not-an-email' is not a valid email address" in output
    assert "Import and verify" not in output


def test_invalid_plan_reported(run_wave):
    rc, output = run_wave("wave1", rollout_moas=[dict(MOAS[0], expected_users=0)] + MOAS[1:])
    assert rc != 0
    assert "rollout_moas[0] (ocm): expected_users 0 must be a whole number of at least 1" in output


def test_wave_missing_from_plan_reported(run_wave):
    rc, output = run_wave("wave5")
    assert rc != 0
    assert "wave 5 is not in rollout_waves, which has waves [1, 2, 3]" in output
