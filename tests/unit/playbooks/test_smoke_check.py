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


REPOSITORY = Path(__file__).resolve().parents[3]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
CHECKS = [
    "HTTPS /ready/ through nginx",
    "Web backends answer /ready/",
    "PostgreSQL replicas streaming",
    "Sentinels agree on bmms-cache",
    "Sentinels agree on bmms-broker",
    "Celery task round trip",
    "Prometheus targets up (lb1)",
]


def test_unreachable_hosts_fail_each_row(closed_port_inventory):
    path = closed_port_inventory()
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
