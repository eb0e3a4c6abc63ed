"""Run playbooks/wave_rollout.yml against a deployed lab stack, as an operator does.

    BMMS_TEST_INVENTORY=inventories/lab .venv/bin/pytest tests/lab/test_wave_rollout.py

The inventory must describe a stack that site.yml deployed with the
reference application, the filebased email backend (EMAIL_FILE_PATH in
web_extra_environment) and a load balancer, on which waves 1 and 2 of the
lab plan may run. The test always uses the lab plan of this repository
(inventories/lab/group_vars/all/rollout.yml and the CSV files in
rollout/lab/), given as extra vars, so it runs against any such inventory.
It completes waves 1 and 2 and leaves them recorded on the hosts. Running
it again on the same stack passes too: the waves are then verified only.

Seven ansible-playbook runs happen in this order:

1. wave 1;
2. wave 2;
3. wave 1 again;
4. wave 3 with more users than the lab carries;
5. wave 3 with a CSV file that only the application's dry run rejects;
6. wave 4, before wave 3;
7. wave 4 forced, with more users than the lab carries.

On a busy 2-core machine the module took about 6 minutes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPOSITORY = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LAB_PLAN = REPOSITORY / "inventories" / "lab" / "group_vars" / "all" / "rollout.yml"
LAB_CSV_DIR = REPOSITORY / "rollout" / "lab"
HEADER = "username,email,first_name,last_name,moa\n"
# More users than any lab stack carries with the lab's capacity options.
TOO_MANY_USERS = 100_000

INVENTORY = os.environ.get("BMMS_TEST_INVENTORY", "")
pytestmark = pytest.mark.skipif(not INVENTORY, reason="set BMMS_TEST_INVENTORY to a deployed stack's inventory")


def lab_plan() -> dict:
    plan = yaml.safe_load(LAB_PLAN.read_text(encoding="utf-8"))
    plan["rollout_csv_dir"] = str(LAB_CSV_DIR)
    return plan


def wave_moas(plan: dict, wave: int) -> list[dict]:
    return [entry for entry in plan["rollout_moas"] if entry["wave"] == wave]


def csv_users(csv_dir: Path, entry: dict) -> list[dict]:
    """Return the rows of an MOA's CSV file as dicts."""
    lines = (csv_dir / entry["csv"]).read_text(encoding="utf-8").splitlines()
    columns = lines[0].split(",")
    return [dict(zip(columns, line.split(","))) for line in lines[1:] if line]


class Run:
    """The outcome of one ansible-playbook run."""

    def __init__(self, result: subprocess.CompletedProcess, summary_dir: Path, wave: int):
        self.rc = result.returncode
        self.output = result.stdout + result.stderr
        self.summary_path = summary_dir / f"wave-{wave}.json"

    def recap(self) -> dict[str, dict[str, int]]:
        """Return the PLAY RECAP counters per host."""
        counters = {}
        for host, fields in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", self.output, flags=re.MULTILINE):
            counters[host] = {name: int(value) for name, value in re.findall(r"(\w+)=(\d+)", fields)}
        return counters

    def changed_hosts(self) -> dict[str, int]:
        return {host: values["changed"] for host, values in self.recap().items() if values["changed"]}

    def summary(self) -> dict:
        return json.loads(self.summary_path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def summary_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("summaries")


@pytest.fixture(scope="module")
def run_wave(summary_dir, tmp_path_factory):
    """Return a function that runs one wave of the lab plan with extra vars; it returns a Run."""
    scratch = tmp_path_factory.mktemp("extra-vars")

    def run(wave: int, plan: dict | None = None, **extra) -> Run:
        variables = dict(plan or lab_plan(), rollout_summary_dir=str(summary_dir), **extra)
        extra_vars = scratch / f"wave-{wave}-{len(list(scratch.iterdir()))}.json"
        extra_vars.write_text(json.dumps(variables), encoding="utf-8")
        # JSON results keep each failure message on one line.
        environment = dict(os.environ, ANSIBLE_CALLBACK_RESULT_FORMAT="json")
        result = subprocess.run(
            [
                str(BIN / "ansible-playbook"),
                "-i",
                INVENTORY,
                "playbooks/wave_rollout.yml",
                "--tags",
                f"wave{wave}",
                "-e",
                f"@{extra_vars}",
            ],
            cwd=REPOSITORY,
            env=environment,
            capture_output=True,
            text=True,
            check=False,
            timeout=1200,
        )
        return Run(result, summary_dir, wave)

    return run


def adhoc(pattern: str, argv: list[str], stdin: str | None = None) -> dict[str, dict]:
    """Run a command with sudo on the hosts of pattern; return each host's result."""
    arguments = {"argv": argv}
    if stdin is not None:
        arguments["stdin"] = stdin
    environment = dict(os.environ, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    result = subprocess.run(
        [
            str(BIN / "ansible"),
            "-i",
            INVENTORY,
            pattern,
            "--become",
            "-m",
            "ansible.builtin.command",
            "-a",
            json.dumps(arguments),
        ],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    report = json.loads(result.stdout)
    return {
        host: values for play in report["plays"] for task in play["tasks"] for host, values in task["hosts"].items()
    }


def inventory_variables() -> dict:
    """Return the variables of the first web host as the inventory sets them."""
    result = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", INVENTORY, "--list"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
    )
    inventory = json.loads(result.stdout)
    first_web = inventory["web"]["hosts"][0]
    return inventory["_meta"]["hostvars"][first_web]


def manage_command() -> str:
    return f"/usr/local/bin/{inventory_variables().get('web_app_name', 'bmms')}-manage"


USER_QUERY = """
import json, sys
from django.contrib.auth import get_user_model
names = json.load(sys.stdin)
users = get_user_model()._default_manager.using("default").filter(username__in=names).select_related("moa")
print("USERS " + json.dumps({user.username: [user.email, user.moa.code if user.moa else None] for user in users}))
"""


def users_in_database(usernames: list[str]) -> dict[str, list]:
    """Return {username: [email, moa code]} of the users that exist, read on the first web host."""
    results = adhoc("web[0]", [manage_command(), "shell", "-c", USER_QUERY], stdin=json.dumps(usernames))
    (result,) = results.values()
    assert result.get("rc") == 0, result
    line = next(line for line in result["stdout_lines"] if line.startswith("USERS "))
    return json.loads(line[len("USERS ") :])


def welcome_email_counts() -> dict[str, int]:
    """Return how many messages each address got, over the email files of every Celery worker."""
    mail_dir = inventory_variables().get("web_extra_environment", {}).get("EMAIL_FILE_PATH", "/var/lib/bmms/mail")
    script = f"cat {mail_dir}/*.log 2>/dev/null || true"
    counts: dict[str, int] = {}
    for result in adhoc("celery_worker", ["sh", "-c", script]).values():
        for line in result.get("stdout_lines", []):
            if line.lower().startswith("to: "):
                address = line[4:].strip().lower()
                counts[address] = counts.get(address, 0) + 1
    return counts


def expected_users(wave: int) -> list[dict]:
    plan = lab_plan()
    return [dict(row, moa=entry["code"]) for entry in wave_moas(plan, wave) for row in csv_users(LAB_CSV_DIR, entry)]


@pytest.fixture(scope="module")
def wave1(run_wave) -> Run:
    return run_wave(1)


@pytest.fixture(scope="module")
def wave2(run_wave, wave1) -> Run:
    return run_wave(2)


@pytest.fixture(scope="module")
def wave1_again(run_wave, wave1, wave2) -> Run:
    first_summary = wave1.summary_path.read_text(encoding="utf-8")
    run = run_wave(1)
    run.first_summary = first_summary
    return run


@pytest.fixture(scope="module")
def wave3_over_capacity(run_wave, wave1_again) -> Run:
    plan = lab_plan()
    for entry in wave_moas(plan, 3):
        entry["expected_users"] = TOO_MANY_USERS
    return run_wave(3, plan)


@pytest.fixture(scope="module")
def wave3_rejected_csv(run_wave, wave3_over_capacity, tmp_path_factory) -> Run:
    """Wave 3 whose second file takes over a wave 1 user: only the application's dry run can tell."""
    plan = lab_plan()
    csv_dir = tmp_path_factory.mktemp("csv")
    first, second = wave_moas(plan, 3)[:2]
    (csv_dir / first["csv"]).write_text((LAB_CSV_DIR / first["csv"]).read_text(encoding="utf-8"), encoding="utf-8")
    taken = expected_users(1)[0]
    row = f"{taken['username']},{second['code']}.other@bmms-lab.example,Taken,Over,{second['code']}\n"
    (csv_dir / second["csv"]).write_text(HEADER + row, encoding="utf-8")
    plan["rollout_csv_dir"] = str(csv_dir)
    run = run_wave(3, plan)
    run.taken_username = taken["username"]
    run.valid_file_users = [user["username"] for user in csv_users(csv_dir, first)]
    return run


@pytest.fixture(scope="module")
def wave4_early(run_wave, wave3_rejected_csv) -> Run:
    return run_wave(4)


@pytest.fixture(scope="module")
def wave4_forced(run_wave, wave4_early) -> Run:
    plan = lab_plan()
    for entry in wave_moas(plan, 4):
        entry["expected_users"] = TOO_MANY_USERS
    return run_wave(4, plan, rollout_force=True)


@pytest.mark.parametrize("wave", [1, 2])
def test_wave_completes(request, wave):
    run = request.getfixturevalue(f"wave{wave}")
    assert run.rc == 0, run.output[-4000:]
    summary = run.summary()
    assert summary["status"] == "completed"
    assert [moa["code"] for moa in summary["moas"]] == [entry["code"] for entry in wave_moas(lab_plan(), wave)]


@pytest.mark.parametrize("wave", [1, 2])
def test_wave_users_in_database(request, wave):
    request.getfixturevalue(f"wave{wave}")
    users = expected_users(wave)
    found = users_in_database([user["username"] for user in users])
    for user in users:
        assert found.get(user["username"]) == [user["email"], user["moa"]], user["username"]


@pytest.mark.parametrize("wave", [1, 2])
def test_wave_sends_one_welcome_email_each(request, wave):
    request.getfixturevalue(f"wave{wave}")
    counts = welcome_email_counts()
    for user in expected_users(wave):
        assert counts.get(user["email"].lower()) == 1, user["email"]


@pytest.mark.parametrize("wave", [1, 2])
def test_summary_counts_wave_users(request, wave):
    summary = request.getfixturevalue(f"wave{wave}").summary()
    assert summary["verified"]["found"] == len(expected_users(wave))
    assert summary["users"]["total"] == len(expected_users(wave))
    assert summary["emails"]["sent"] == summary["emails"]["expected"] == summary["users"]["created"]
    assert summary["capacity"]["headroom_users"] >= 0


def test_summary_written_as_markdown(wave1):
    markdown = wave1.summary_path.with_suffix(".md").read_text(encoding="utf-8")
    assert markdown.startswith("# Wave 1: Pilot (completed)")


def test_rerun_of_wave1_changes_nothing(wave1_again):
    assert wave1_again.rc == 0, wave1_again.output[-4000:]
    assert wave1_again.recap(), wave1_again.output[-2000:]
    assert wave1_again.changed_hosts() == {}


def test_rerun_of_wave1_only_verifies(wave1_again):
    assert "was completed at" in wave1_again.output
    assert "Import the users of each MOA" not in wave1_again.output


def test_rerun_of_wave1_keeps_summary(wave1_again):
    assert wave1_again.summary_path.read_text(encoding="utf-8") == wave1_again.first_summary


def test_over_capacity_stops_before_changes(wave3_over_capacity):
    run = wave3_over_capacity
    assert run.rc != 0
    assert "Wave 3 stopped before changing anything" in run.output
    assert "web servers" in run.output
    assert run.changed_hosts() == {}


def test_over_capacity_imports_nobody(wave3_over_capacity):
    assert users_in_database([user["username"] for user in expected_users(3)]) == {}


def test_over_capacity_runs_no_import(wave3_over_capacity):
    assert "Import the users of each MOA" not in wave3_over_capacity.output
    assert "Validate every CSV file" not in wave3_over_capacity.output


def test_rejected_csv_stops_before_import(wave3_rejected_csv):
    run = wave3_rejected_csv
    assert run.rc != 0
    assert "stopped before importing anything: the application rejected 1 CSV file(s)" in run.output
    assert f"user '{run.taken_username}' already exists in another MOA" in run.output


def test_rejected_csv_imports_nothing(wave3_rejected_csv):
    """The valid file of the wave is not imported either."""
    assert users_in_database(wave3_rejected_csv.valid_file_users) == {}


def test_taken_user_keeps_its_moa(wave3_rejected_csv):
    found = users_in_database([wave3_rejected_csv.taken_username])
    assert found[wave3_rejected_csv.taken_username][1] == expected_users(1)[0]["moa"]


def test_wave4_before_wave3_refused(wave4_early):
    assert wave4_early.rc != 0
    assert "wave 4 needs wave(s) 3 completed first" in wave4_early.output
    assert wave4_early.changed_hosts() == {}


def test_refused_wave_imports_nobody(wave4_early):
    assert users_in_database([user["username"] for user in expected_users(4)]) == {}


def test_force_passes_order_check(wave4_forced):
    assert "completed first" not in wave4_forced.output
    assert "Wave 4 stopped before changing anything" in wave4_forced.output
    assert wave4_forced.changed_hosts() == {}
