"""Shared helpers of the full-stack scenario: run playbooks and commands as an operator does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
REPOSITORY = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
BIN = Path(sys.executable).parent
WAVE_TEST = "test_wave_rollout.py"

# tests/lab/test_wave_rollout.py reads the stack's inventory from here.
os.environ.setdefault("BMMS_TEST_INVENTORY", INVENTORY)


def pytest_collection_modifyitems(session, config, items):
    """Reject a run in which the wave rollout test is missing or would be skipped."""
    if not any(Path(str(item.fspath)).name == WAVE_TEST for item in items):
        raise pytest.UsageError(f"{WAVE_TEST} was not collected: check verifier.additional_files_or_dirs")
    if not os.environ.get("BMMS_TEST_INVENTORY"):
        raise pytest.UsageError("BMMS_TEST_INVENTORY is empty, so the wave rollout test would be skipped")


def ansible_playbook(playbook: str, *arguments: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    """Run a playbook of the repository against the scenario's hosts, from the repository root."""
    # Molecule's own ansible.cfg prints results as JSON: ask for the text
    # an operator sees with the repository's ansible.cfg.
    environment = dict(
        os.environ,
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default",
        ANSIBLE_CALLBACK_RESULT_FORMAT="yaml",
    )
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", INVENTORY, playbook, *arguments],
        cwd=REPOSITORY, capture_output=True, text=True, check=False, timeout=timeout, env=environment,
    )


def recap(output: str) -> dict[str, dict[str, int]]:
    """Read the PLAY RECAP lines into {host: {ok: n, changed: n, ...}}."""
    hosts = {}
    for line in output.split("PLAY RECAP", 1)[-1].splitlines():
        match = re.match(r"^(\S+)\s+:\s+(.*)$", line)
        if match:
            hosts[match.group(1)] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return hosts


def table_rows(output: str) -> dict[str, tuple[str, str]]:
    """Read the smoke check's table into {check: (OK or FAIL, detail)}."""
    rows = {}
    for line in output.splitlines():
        match = re.match(r"^\s*(OK|FAIL)\s{2,}(.+?)\s{2,}(.*)$", line)
        if match:
            rows[match.group(2).strip()] = (match.group(1), match.group(3).strip())
    return rows
