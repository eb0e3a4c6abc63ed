"""playbooks/database.yml rejects a bad database inventory before any host changes.

Each case runs the playbook from the repository root against a throwaway
inventory whose hosts point at 127.0.0.1 port 9, where nothing listens, so
any task that reached a host would end UNREACHABLE. The JSON callback gives
every task's result per host. A case passes when a preflight task fails
with the expected message, no host was unreachable and no play after the
preflight play started. test_valid_inventory_reaches_hosts shows that a
good inventory gets past the preflight and does try to connect. Each run
takes a few seconds.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPOSITORY = Path(__file__).resolve().parents[3]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
PLAYBOOK = "playbooks/database.yml"
PREFLIGHT_PLAY = "Check the database tier's inventory before any host is contacted"
CLOSED_PORT = 9

SECRETS = {
    "bmms_scram_salt_seed": "unit-test-salt-seed-0123456789",
    "bmms_db_password": "unit-test-app-password",
    "bmms_db_readonly_password": "unit-test-readonly-password",
    "bmms_db_replication_password": "unit-test-replication-password",
    "bmms_db_monitoring_password": "unit-test-monitoring-password",
    "bmms_pgbouncer_admin_password": "unit-test-admin-password",
    "pki_generate": True,
}


def write_inventory(directory, primaries=("db1",), host_vars=None, group_vars=None):
    """Write a three-host database inventory in which db1 runs PgBouncer and db2 and db3 are replicas."""
    host_vars = host_vars or {}
    hosts = {
        name: {"ansible_host": "127.0.0.1", "ansible_port": CLOSED_PORT, **host_vars.get(name, {})}
        for name in ("db1", "db2", "db3")
    }
    variables = dict(SECRETS, pki_ca_directory=str(directory / "pki"), ansible_user="nobody")
    variables["ansible_ssh_common_args"] = "-o ConnectTimeout=3 -o StrictHostKeyChecking=no"
    for name, value in (group_vars or {}).items():
        if value is None:
            variables.pop(name, None)
        else:
            variables[name] = value
    inventory = {
        "all": {
            "vars": variables,
            "hosts": hosts,
            "children": {
                "postgres_primary": {"hosts": {name: None for name in primaries}},
                "postgres_replicas": {"hosts": {name: None for name in ("db2", "db3") if name not in primaries}},
                "pgbouncer": {"hosts": {"db1": None}},
            },
        }
    }
    path = directory / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory), encoding="utf-8")
    return path


def run_playbook(inventory):
    """Run the database playbook and return its exit code and the JSON callback's report."""
    environment = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_FORCE_COLOR="0")
    environment.pop("ANSIBLE_CONFIG", None)
    result = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), PLAYBOOK],
        cwd=REPOSITORY, capture_output=True, text=True, check=False, timeout=300, env=environment,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"ansible-playbook printed no JSON report:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result.returncode, report


def failure_messages(report):
    """Return the message of every failed task result, including failed loop items."""
    messages = []
    for play in report["plays"]:
        for task in play["tasks"]:
            for result in task["hosts"].values():
                items = result.get("results", [result])
                messages += [item.get("msg", "") for item in items if item.get("failed")]
    return messages


def play_names(report):
    return [play["play"]["name"] for play in report["plays"]]


def assert_rejected_in_preflight(returncode, report, expected):
    messages = failure_messages(report)
    assert returncode != 0
    assert any(expected in " ".join(message.split()) for message in messages), messages
    assert not any(stats["unreachable"] for stats in report["stats"].values()), "a host was contacted"
    assert play_names(report) == [PREFLIGHT_PLAY], "a play after the preflight started"


def test_valid_inventory_reaches_hosts(tmp_path):
    returncode, report = run_playbook(write_inventory(tmp_path))
    assert returncode != 0
    assert failure_messages(report) == []
    assert play_names(report)[:2] == [PREFLIGHT_PLAY, "Install the TLS files every database service uses"]
    assert any(stats["unreachable"] for stats in report["stats"].values())


def test_no_primary_is_rejected(tmp_path):
    returncode, report = run_playbook(write_inventory(tmp_path, primaries=()))
    assert_rejected_in_preflight(
        returncode, report, "inventory group postgres_primary must contain exactly one host; it contains 0 (none)"
    )


def test_two_primaries_are_rejected(tmp_path):
    returncode, report = run_playbook(write_inventory(tmp_path, primaries=("db1", "db2")))
    assert_rejected_in_preflight(
        returncode, report, "inventory group postgres_primary must contain exactly one host; it contains 2 (db1, db2)"
    )


def test_replica_below_primary_max_connections_is_rejected(tmp_path):
    inventory = write_inventory(tmp_path, host_vars={"db3": {"postgresql_max_connections": 100}})
    returncode, report = run_playbook(inventory)
    assert_rejected_in_preflight(
        returncode, report, "replica db3 has max_connections = 100, below 500 on the primary db1"
    )


def test_replica_below_primary_worker_processes_is_rejected(tmp_path):
    inventory = write_inventory(tmp_path, host_vars={"db1": {"postgresql_max_worker_processes": 16}})
    returncode, report = run_playbook(inventory)
    assert_rejected_in_preflight(
        returncode, report, "replica db2 has max_worker_processes = 8, below 16 on the primary db1"
    )


def test_pools_over_max_connections_are_rejected(tmp_path):
    inventory = write_inventory(tmp_path, group_vars={"pgbouncer_default_pool_size": 600})
    returncode, report = run_playbook(inventory)
    assert_rejected_in_preflight(
        returncode, report, "may open 610 server connections to db1 (primary), but it accepts 497"
    )


def test_pools_over_replica_max_connections_are_rejected(tmp_path):
    reserved = {"postgresql_superuser_reserved_connections": 450}
    inventory = write_inventory(tmp_path, host_vars={"db2": reserved, "db3": reserved})
    returncode, report = run_playbook(inventory)
    assert_rejected_in_preflight(
        returncode, report, "may open 60 server connections to db2 (replica for bmms_readonly), but it accepts 50"
    )


@pytest.mark.parametrize("value", ["", None], ids=["empty", "missing"])
def test_app_password_is_required(tmp_path, value):
    returncode, report = run_playbook(write_inventory(tmp_path, group_vars={"bmms_db_password": value}))
    assert_rejected_in_preflight(returncode, report, "postgresql_app_password is empty on db1: set bmms_db_password")


def test_pgbouncer_admin_password_is_required(tmp_path):
    inventory = write_inventory(tmp_path, group_vars={"bmms_pgbouncer_admin_password": None})
    returncode, report = run_playbook(inventory)
    assert_rejected_in_preflight(
        returncode, report, "pgbouncer_admin_password is empty on db1: set bmms_pgbouncer_admin_password"
    )


def test_short_salt_seed_is_rejected(tmp_path):
    returncode, report = run_playbook(write_inventory(tmp_path, group_vars={"bmms_scram_salt_seed": "short"}))
    assert_rejected_in_preflight(returncode, report, "has 5 characters on db1: use a random secret of at least 16")
