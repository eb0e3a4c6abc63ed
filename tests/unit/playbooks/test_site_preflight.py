"""site.yml rejects an inventory whose groups cannot form the stack before it contacts any host.

Each case runs site.yml from the repository root against a throwaway inventory of the lab's topology whose
hosts point at 127.0.0.1 port 9, where nothing listens: a task that reached a host would end UNREACHABLE.
The JSON callback reports every play and task. test_valid_groups_reach_the_hosts shows that good groups get
past the first play and do try to connect, so the other cases fail for the reason they name.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[3]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
FIRST_PLAY = "Check the inventory groups before any host is contacted"
FACTS_PLAY = "Read every host's facts without changing it"


def run_site(write_inventory, variables=None, **changes):
    path = write_inventory(variables, **changes)
    environment = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_FORCE_COLOR="0")
    environment.pop("ANSIBLE_CONFIG", None)
    result = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(path), "site.yml"],
        cwd=REPOSITORY, capture_output=True, text=True, check=False, timeout=300, env=environment,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"ansible-playbook printed no JSON report:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result.returncode, report


def failure_messages(report):
    messages = []
    for play in report["plays"]:
        for task in play["tasks"]:
            for result in task["hosts"].values():
                items = result.get("results", [result])
                messages += [" ".join(item.get("msg", "").split()) for item in items if item.get("failed")]
    return messages


def play_names(report):
    return [play["play"]["name"] for play in report["plays"]]


def test_valid_groups_reach_the_hosts(closed_port_inventory):
    returncode, report = run_site(closed_port_inventory)
    assert returncode != 0
    assert failure_messages(report) == []
    assert play_names(report)[:2] == [FIRST_PLAY, FACTS_PLAY]
    assert all(stats["unreachable"] for stats in report["stats"].values())
    # Every host was lost at the facts play, so no later task ran anywhere.
    assert not any(task["hosts"] for play in report["plays"][2:] for task in play["tasks"])


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"loadbalancer": []}, "inventory group loadbalancer is empty or missing: add at least one host to it"),
        ({"web": []}, "inventory group web is empty or missing"),
        (
            {"celery_beat": ["app1", "app2"]},
            "inventory group celery_beat must hold exactly one host; it holds 2 (app1, app2)",
        ),
        ({"postgres_primary": []}, "inventory group postgres_primary is empty or missing"),
        (
            {"redis_sentinel": ["db1", "db2"]},
            "inventory group redis_sentinel holds 2 hosts: use an odd number of at least 3",
        ),
        (
            {"redis_sentinel": ["db1", "db2", "db3", "app1"]},
            "inventory group redis_sentinel holds 4 hosts: use an odd number of at least 3",
        ),
        ({"redis_sentinel": ["db1"]}, "inventory group redis_sentinel holds 1 host: use an odd number of at least 3"),
    ],
    ids=["no-loadbalancer", "no-web", "two-beats", "no-primary", "two-sentinels", "four-sentinels", "one-sentinel"],
)
def test_bad_groups_rejected_before_hosts(closed_port_inventory, changes, expected):
    returncode, report = run_site(closed_port_inventory, **changes)
    messages = failure_messages(report)
    assert returncode != 0
    assert any(expected in message for message in messages), messages
    assert play_names(report) == [FIRST_PLAY], "a play after the first one started"
    assert not any(stats["unreachable"] for stats in report["stats"].values()), "a host was contacted"


def test_placeholder_secrets_rejected_before_hosts(closed_port_inventory):
    variables = {"bmms_db_password": "CHANGE-ME", "bmms_app_secret_key": " change-me ", "bmms_redis_password": "set"}
    returncode, report = run_site(closed_port_inventory, variables)
    messages = failure_messages(report)
    assert returncode != 0
    expected = "bmms_db_password, bmms_app_secret_key still hold the placeholder CHANGE-ME of vault.yml.example"
    assert any(expected in message for message in messages), messages
    assert play_names(report) == [FIRST_PLAY], "a play after the first one started"
    assert not any(stats["unreachable"] for stats in report["stats"].values()), "a host was contacted"
