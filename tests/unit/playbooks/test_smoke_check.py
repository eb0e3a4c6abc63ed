"""playbooks/smoke_check.yml prints its whole table and fails when hosts cannot be reached.

The inventory has the lab's topology with every host at 127.0.0.1 port 9, where nothing listens. Ansible
ends a play whose hosts are all unreachable, so without ignore_unreachable the run would stop at the first
play and print no table at all.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPOSITORY = Path(__file__).resolve().parents[3]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
GROUPS = {
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
CHECKS = [
    "HTTPS /ready/ through nginx",
    "Web backends answer /ready/",
    "PostgreSQL replicas streaming",
    "Sentinels agree on bmms-cache",
    "Sentinels agree on bmms-broker",
    "Celery task round trip",
    "Prometheus targets up (lb1)",
]


def test_unreachable_hosts_give_a_failed_row_each(tmp_path):
    hosts = sorted({host for members in GROUPS.values() for host in members})
    inventory = {
        "all": {
            "vars": {"ansible_user": "nobody", "ansible_ssh_common_args": "-o ConnectTimeout=3"},
            "hosts": {name: {"ansible_host": "127.0.0.1", "ansible_port": 9} for name in hosts},
            "children": {name: {"hosts": {host: None for host in members}} for name, members in GROUPS.items()},
        }
    }
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory), encoding="utf-8")
    environment = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_CALLBACK_RESULT_FORMAT="yaml")
    environment.pop("ANSIBLE_CONFIG", None)
    result = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(path), "playbooks/smoke_check.yml"],
        cwd=REPOSITORY, capture_output=True, text=True, check=False, timeout=300, env=environment,
    )
    rows = re.findall(r"^\s*(OK|FAIL)\s{2,}(.+?)\s{2,}", result.stdout, re.MULTILINE)
    assert result.returncode != 0
    assert [check for _, check in rows] == CHECKS, result.stdout[-3000:]
    assert {status for status, _ in rows} == {"FAIL"}
    assert "failed: HTTPS /ready/ through nginx; Web backends" in " ".join((result.stdout + result.stderr).split())
