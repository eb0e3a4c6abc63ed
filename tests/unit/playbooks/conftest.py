"""Shared inventory for playbook tests that must stop before they reach a host."""

import pytest
import yaml

# The lab's topology (inventories/lab/hosts.yml), group by group.
LAB_GROUPS = {
    "postgres_primary": ["db1"],
    "postgres_replicas": ["db2", "db3"],
    "pgbouncer": ["db1"],
    "redis": ["db1", "db2", "db3"],
    "redis_sentinel": ["db1", "db2", "db3"],
    "web": ["app1", "app2"],
    "celery_worker": ["app1", "app2"],
    "celery_beat": ["app1"],
    "loadbalancer": ["lb1"],
    "monitoring": ["lb1"],
}


@pytest.fixture
def closed_port_inventory(tmp_path):
    """Return a function that writes the lab's topology with every host at 127.0.0.1 port 9.

    Nothing listens on port 9, so a task that reaches a host ends UNREACHABLE. The function takes
    extra variables for all hosts and group changes ({group: [hosts]}) and returns the file's path.
    """

    def write(variables=None, **changes):
        groups = dict(LAB_GROUPS, **changes)
        hosts = sorted({host for members in LAB_GROUPS.values() for host in members})
        inventory = {
            "all": {
                "vars": {
                    "ansible_user": "nobody",
                    "ansible_ssh_common_args": "-o ConnectTimeout=3 -o StrictHostKeyChecking=no",
                    **(variables or {}),
                },
                "hosts": {name: {"ansible_host": "127.0.0.1", "ansible_port": 9} for name in hosts},
                "children": {name: {"hosts": {host: None for host in members}} for name, members in groups.items()},
            }
        }
        path = tmp_path / "hosts.yml"
        path.write_text(yaml.safe_dump(inventory), encoding="utf-8")
        return path

    return write
