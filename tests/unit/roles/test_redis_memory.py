"""The redis role sizes maxmemory and io-threads from the plan and the host's facts.

Each case renders the role's ``redis_instances`` on the controller: a
throwaway playbook loads the role's defaults and vars for a host whose RAM
and vCPUs extra vars set (redis_host_memory_mb, redis_host_vcpus), because
include_vars ranks above the inventory. SSH to the host goes through
ProxyCommand=false, and no task needs a connection.
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
ROLE = REPOSITORY / "roles" / "redis"
MB_PER_GB = 1024


def render_instances(tmp_path: Path, memtotal_mb: int, vcpus: int, extra_vars: dict | None = None) -> dict:
    """Return the role's instances by name, rendered for a host with these facts."""
    variables = {"redis_host_memory_mb": memtotal_mb, "redis_host_vcpus": vcpus, **(extra_vars or {})}
    (tmp_path / "extra_vars.json").write_text(json.dumps(variables))

    inventory = {
        "all": {
            "vars": {"bmms_redis_password": "unit-test", "ansible_ssh_common_args": "-o ProxyCommand=false"},
            "children": {"redis": {"hosts": {"r1": {"ansible_host": "127.0.0.11"}, "r2": {"ansible_host": "127.0.0.12"}}}},
        }
    }
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))

    playbook = [{
        "name": "Render the redis role's instances",
        "hosts": "r1",
        "gather_facts": False,
        "tasks": [
            {"name": "Load the defaults", "ansible.builtin.include_vars": str(ROLE / "defaults" / "main.yml")},
            {"name": "Load the derived values", "ansible.builtin.include_vars": str(ROLE / "vars" / "main.yml")},
            {"name": "Print the instances", "ansible.builtin.debug": {"var": "redis_instances"}},
        ],
    }]
    (tmp_path / "render.yml").write_text(yaml.safe_dump(playbook, sort_keys=False))

    environment = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_FORCE_COLOR="0")
    environment.pop("ANSIBLE_CONFIG", None)
    result = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(tmp_path / "hosts.yml"), "-e", f"@{tmp_path / 'extra_vars.json'}",
         str(tmp_path / "render.yml")],
        cwd=REPOSITORY, capture_output=True, text=True, check=False, timeout=120, env=environment,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]

    report = json.loads(result.stdout)
    instances = report["plays"][0]["tasks"][-1]["hosts"]["r1"]["redis_instances"]
    return {instance["name"]: instance for instance in instances}


def test_plan_sizes_cache_on_large_host(tmp_path):
    instances = render_instances(tmp_path, memtotal_mb=64 * MB_PER_GB, vcpus=8)
    assert int(instances["cache"]["maxmemory_mb"]) == 8 * MB_PER_GB
    assert int(instances["broker"]["maxmemory_mb"]) == 1024


def test_small_host_caps_both_instances(tmp_path):
    """4 GB of RAM leaves 2 GB for 8192 + 1024 MB, so both shrink to 2048/9216 of their size."""
    instances = render_instances(tmp_path, memtotal_mb=4 * MB_PER_GB, vcpus=2)
    assert int(instances["cache"]["maxmemory_mb"]) == 8192 * 2048 // 9216
    assert int(instances["broker"]["maxmemory_mb"]) == 1024 * 2048 // 9216


def test_memory_fraction_changes_cap(tmp_path):
    instances = render_instances(tmp_path, memtotal_mb=8 * MB_PER_GB, vcpus=2, extra_vars={"redis_memory_fraction": 0.25})
    total = int(instances["cache"]["maxmemory_mb"]) + int(instances["broker"]["maxmemory_mb"])
    assert total <= 2048


@pytest.mark.parametrize(("vcpus", "threads"), [(1, 1), (2, 1), (4, 3), (8, 6), (32, 8)])
def test_io_threads_follow_vcpus(tmp_path, vcpus, threads):
    instances = render_instances(tmp_path, memtotal_mb=64 * MB_PER_GB, vcpus=vcpus)
    assert int(instances["cache"]["io_threads"]) == threads
    assert int(instances["broker"]["io_threads"]) == 1
