"""The whole stack that site.yml deployed: the smoke check passes, fails when the stack breaks, and a short
inventory stops site.yml before any host changes.

Each test runs a playbook from the repository root against the scenario's inventory, as an operator does.
"""

from __future__ import annotations

import re
import time

import testinfra
from conftest import INVENTORY, ansible_playbook, recap, table_rows
from testinfra.utils.ansible_runner import AnsibleRunner

SMOKE_CHECK = "playbooks/smoke_check.yml"
EXPECTED_CHECKS = {
    "HTTPS /ready/ through nginx",
    "Web backends answer /ready/",
    "PostgreSQL replicas streaming",
    "Sentinels agree on bmms-cache",
    "Sentinels agree on bmms-broker",
    "Celery task round trip",
    "Prometheus targets up (lb1)",
}


PRIMARY = AnsibleRunner(INVENTORY).get_hosts("postgres_primary")[0]
PRIMARY_ADDRESS = AnsibleRunner(INVENTORY).get_variables(PRIMARY)["ansible_host"]


def lab_host(name: str):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}", sudo=True)


def wait_for_green_smoke_check(attempts: int = 12, pause: float = 10.0):
    """Run the smoke check until it passes; return the last run."""
    for _ in range(attempts):
        result = ansible_playbook(SMOKE_CHECK)
        if result.returncode == 0:
            return result
        time.sleep(pause)
    return result


def test_smoke_check_all_green():
    result = wait_for_green_smoke_check()
    rows = table_rows(result.stdout)
    assert result.returncode == 0, result.stdout[-4000:]
    assert set(rows) == EXPECTED_CHECKS, rows
    assert all(status == "OK" for status, _ in rows.values()), rows
    assert rows["PostgreSQL replicas streaming"][1].startswith("2 of 2 streaming"), rows
    assert f"master {PRIMARY_ADDRESS}:" in rows["Sentinels agree on bmms-cache"][1], rows
    assert "replicas 2" in rows["Sentinels agree on bmms-cache"][1], rows


def test_smoke_check_stopped_replica():
    replica = lab_host("db3")
    unit = replica.check_output("systemctl list-units --plain --no-legend 'postgresql@*' | awk '{print $1}'")
    assert unit.startswith("postgresql@"), unit
    replica.run_expect([0], f"systemctl stop {unit}")
    try:
        result = ansible_playbook(SMOKE_CHECK)
        rows = table_rows(result.stdout)
        assert result.returncode != 0, result.stdout[-4000:]
        assert rows["PostgreSQL replicas streaming"][0] == "FAIL", rows
        assert rows["PostgreSQL replicas streaming"][1].startswith("1 of 2 streaming"), rows
        # The last task names the failed rows; it may print to standard error.
        failed = re.search(r"failed: ([^;]*); docs/troubleshooting.md", result.stdout + result.stderr)
        assert failed is not None, result.stderr[-2000:]
        assert "PostgreSQL replicas streaming" in failed.group(1)
        assert rows["HTTPS /ready/ through nginx"][0] == "OK", rows
    finally:
        replica.run_expect([0], f"systemctl start {unit}")
    assert wait_for_green_smoke_check().returncode == 0


def test_short_hosts_stop_site_unchanged():
    result = ansible_playbook("site.yml", "-e", "bmms_plan_users=5000")
    assert result.returncode != 0
    # Failed tasks may go to standard error (display_failed_stderr).
    output = " ".join((result.stdout + result.stderr).split())
    assert "The inventory is short of the capacity plan for 16 MOAs and 5000 users" in output
    assert "Add or resize what is listed" in output
    assert "PLAY [Install the TLS files every database service uses]" not in result.stdout
    hosts = recap(result.stdout)
    assert set(hosts) >= {"lb1", "app1", "app2", "db1", "db2", "db3"}, hosts
    assert all(counts.get("changed", 0) == 0 for counts in hosts.values()), hosts
