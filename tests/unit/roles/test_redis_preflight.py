"""playbooks/redis.yml rejects a bad cache tier before any host changes.

Each case runs the playbook from the repository root against a throwaway
inventory. SSH to its hosts goes through ProxyCommand=false, so no packet
leaves the controller and any task that needed a host ends UNREACHABLE.
The JSON callback reports every task's result per host. A case passes when
a preflight task fails with the expected message, no host was unreachable
and no play after the preflight play started. The valid inventory shows
that the same setup does get past the preflight and tries to connect.
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
PLAYBOOK = "playbooks/redis.yml"
PREFLIGHT_PLAY = "Check the cache tier's inventory and variables before any host changes"

SECRETS = {
    "bmms_redis_password": "unit-test-admin-password",
    "bmms_redis_app_password": "unit-test-app-password",
}


def write_inventory(directory: Path, redis=("r1", "r2", "r3"), sentinels=("r1", "r2", "r3"), group_vars=None) -> Path:
    """Write an inventory with the given redis and redis_sentinel hosts and one application host."""
    names = sorted(set(redis) | set(sentinels) | {"app1"})
    hosts = {name: {"ansible_host": f"127.0.0.{index + 11}"} for index, name in enumerate(names)}
    variables = dict(SECRETS, ansible_user="nobody", ansible_ssh_common_args="-o ProxyCommand=false")
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
                "redis": {"hosts": {name: None for name in redis}},
                "redis_sentinel": {"hosts": {name: None for name in sentinels}},
                "web": {"hosts": {"app1": None}},
            },
        }
    }
    path = directory / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory), encoding="utf-8")
    return path


def run_playbook(inventory: Path, playbook: str = PLAYBOOK) -> tuple[int, dict]:
    """Run a playbook and return its exit code and the JSON callback's report."""
    environment = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_FORCE_COLOR="0")
    environment.pop("ANSIBLE_CONFIG", None)
    result = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), playbook],
        cwd=REPOSITORY, capture_output=True, text=True, check=False, timeout=300, env=environment,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"ansible-playbook printed no JSON report:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result.returncode, report


def failures(report: dict) -> list[tuple[str, str, str]]:
    """Return (play, task, message) for every failed host result and failed loop item."""
    found = []
    for play in report["plays"]:
        for task in play["tasks"]:
            for result in task["hosts"].values():
                if not result.get("failed"):
                    continue
                items = [item for item in result.get("results", []) if item.get("failed")]
                for failed in items or [result]:
                    found.append((play["play"]["name"], task["task"]["name"], failed.get("msg", "")))
    return found


def unreachable_hosts(report: dict) -> list[str]:
    return [name for name, stats in report["stats"].items() if stats["unreachable"]]


def assert_rejected_in_preflight(inventory: Path, expected_message: str) -> None:
    """Assert that the preflight play fails with the message and nothing touches a host."""
    code, report = run_playbook(inventory)
    assert code != 0, "the playbook succeeded"
    failed = failures(report)
    assert failed, "no task failed"
    plays = {play for play, _, _ in failed}
    assert plays == {PREFLIGHT_PLAY}, failed
    messages = " | ".join(message for _, _, message in failed)
    assert expected_message in messages, messages
    assert unreachable_hosts(report) == [], "a task tried to reach a host"
    assert [play["play"]["name"] for play in report["plays"]] == [PREFLIGHT_PLAY], "a later play started"
    assert all(stats["changed"] == 0 for stats in report["stats"].values())


def test_valid_inventory_passes_preflight(tmp_path):
    code, report = run_playbook(write_inventory(tmp_path))
    assert code != 0, "the hosts cannot be reached, so the run must fail after the preflight"
    assert failures(report) == [], failures(report)
    assert report["plays"][0]["play"]["name"] == PREFLIGHT_PLAY
    assert len(report["plays"]) > 1, "no play started after the preflight"
    assert unreachable_hosts(report), "the run after the preflight did not try to reach a host"


def test_even_sentinel_count_rejected(tmp_path):
    inventory = write_inventory(tmp_path, redis=("r1", "r2", "r3"), sentinels=("r1", "r2", "r3", "s4"))
    assert_rejected_in_preflight(inventory, "inventory group redis_sentinel holds 4 host(s)")


def test_single_sentinel_rejected(tmp_path):
    inventory = write_inventory(tmp_path, sentinels=("r1",))
    assert_rejected_in_preflight(inventory, "inventory group redis_sentinel holds 1 host(s)")


def test_minority_quorum_rejected(tmp_path):
    inventory = write_inventory(tmp_path, group_vars={"redis_sentinel_quorum": 1})
    assert_rejected_in_preflight(inventory, "redis_sentinel_quorum is 1 for 3 Sentinels")


def test_quorum_above_sentinel_count_rejected(tmp_path):
    inventory = write_inventory(tmp_path, group_vars={"redis_sentinel_quorum": 4})
    assert_rejected_in_preflight(inventory, "redis_sentinel_quorum is 4 for 3 Sentinels")


def test_missing_admin_password_rejected(tmp_path):
    inventory = write_inventory(tmp_path, group_vars={"bmms_redis_password": None})
    assert_rejected_in_preflight(inventory, "redis_password is empty")


def test_missing_app_password_rejected(tmp_path):
    inventory = write_inventory(tmp_path, group_vars={"bmms_redis_app_password": ""})
    assert_rejected_in_preflight(inventory, "redis_app_password is empty")


def test_password_with_space_rejected(tmp_path):
    inventory = write_inventory(tmp_path, group_vars={"bmms_redis_password": "two words"})
    assert_rejected_in_preflight(inventory, "redis_password contains a space")


def test_empty_redis_group_rejected(tmp_path):
    inventory = write_inventory(tmp_path, redis=())
    assert_rejected_in_preflight(inventory, "inventory group redis is empty or missing")


def test_same_cache_and_broker_port_rejected(tmp_path):
    inventory = write_inventory(tmp_path, group_vars={"bmms_redis_broker_port": 6379})
    assert_rejected_in_preflight(inventory, "use two different ports")


def test_non_evicting_cache_policy_rejected(tmp_path):
    inventory = write_inventory(tmp_path, group_vars={"redis_cache_maxmemory_policy": "volatile-lru"})
    assert_rejected_in_preflight(inventory, 'redis_cache_maxmemory_policy is "volatile-lru"')
