"""The wave rollout plan: validation, per-wave totals, completion records and ordering.

The plan is inventory data. ``rollout_waves`` maps each wave number to its
name, and ``rollout_moas`` lists every MOA with its code, name, wave, expected
users and CSV file of user accounts. These functions are the logic of the
``bmms.platform.rollout_*`` filters and take plain Python values, so unit
tests call them directly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.bmms.platform.plugins.plugin_utils.values import describe_type

# Completion records are local facts named bmms_rollout_wave_<N>, read from
# /etc/ansible/facts.d/bmms_rollout_wave_<N>.fact on the web hosts.
RECORD_FACT_PREFIX = "bmms_rollout_wave_"
RECORD_FACT_PATTERN = re.compile(r"^bmms_rollout_wave_([1-9][0-9]*)$")

# The reference application stores MOA codes in a Django SlugField of 32
# characters and names in a CharField of 200.
MOA_CODE_PATTERN = re.compile(r"^[-a-zA-Z0-9_]+\Z")
MOA_CODE_MAX_LENGTH = 32
MOA_NAME_MAX_LENGTH = 200
MOA_KEYS = ("code", "name", "wave", "expected_users", "csv")


def whole_number(value: object) -> int | None:
    """Return ``value`` as an int when it is a whole number (or a string of digits), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def check_waves(waves: object) -> tuple[dict[int, str], list[str]]:
    """Validate ``rollout_waves`` and return it with int keys, plus the problems found.

    Keys may be ints or strings of digits, because JSON extra vars turn
    dict keys into strings. The waves must be numbered 1, 2, ... without gaps.
    """
    if not isinstance(waves, Mapping) or not waves:
        return {}, [
            f"rollout_waves must be a dict of wave numbers to names, such as {{1: Pilot}}; got {describe_type(waves)}"
        ]
    problems = []
    named: dict[int, str] = {}
    for key, name in waves.items():
        number = whole_number(key)
        if number is None or number < 1:
            problems.append(f"rollout_waves: key {key!r} is not a wave number of at least 1")
            continue
        if not isinstance(name, str) or not name.strip():
            problems.append(f"rollout_waves: wave {number} needs a name, got {name!r}")
            continue
        named[number] = name.strip()
    expected = list(range(1, len(named) + 1))
    if not problems and sorted(named) != expected:
        problems.append(f"rollout_waves must number the waves 1 to {len(named)} without gaps; got {sorted(named)}")
    return named, problems


def check_moa(index: int, moa: object, waves: Mapping[int, str]) -> tuple[dict[str, Any] | None, list[str]]:
    """Validate one entry of ``rollout_moas`` and return it normalized, plus its problems."""
    where = f"rollout_moas[{index}]"
    if not isinstance(moa, Mapping):
        return None, [f"{where} must be a dict with the keys {', '.join(MOA_KEYS)}; got {describe_type(moa)}"]
    code = moa.get("code")
    if isinstance(code, str) and code:
        where = f"rollout_moas[{index}] ({code})"

    problems = []
    unknown = sorted(str(key) for key in moa if key not in MOA_KEYS)
    if unknown:
        problems.append(f"{where} has unknown key(s) {', '.join(unknown)}; the keys are {', '.join(MOA_KEYS)}")
    if not isinstance(code, str) or not MOA_CODE_PATTERN.match(code) or len(code) > MOA_CODE_MAX_LENGTH:
        problems.append(
            f"{where}: code {code!r} must be 1 to {MOA_CODE_MAX_LENGTH} letters, digits, hyphens or underscores"
        )
    name = moa.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MOA_NAME_MAX_LENGTH:
        problems.append(
            f"{where}: name {name!r} must be a non-empty string of at most {MOA_NAME_MAX_LENGTH} characters"
        )
    wave = whole_number(moa.get("wave"))
    if wave not in waves:
        problems.append(f"{where}: wave {moa.get('wave')!r} is not one of the waves in rollout_waves {sorted(waves)}")
    users = whole_number(moa.get("expected_users"))
    if users is None or users < 1:
        problems.append(f"{where}: expected_users {moa.get('expected_users')!r} must be a whole number of at least 1")
    csv_path = moa.get("csv")
    if not isinstance(csv_path, str) or not csv_path.strip():
        problems.append(f"{where}: csv must be the path of the MOA's user CSV file, got {csv_path!r}")

    if problems:
        return None, problems
    normalized = {"code": code, "name": name.strip(), "wave": wave, "expected_users": users, "csv": csv_path.strip()}
    return normalized, []


def check_plan(moas: object, waves: object) -> tuple[dict[int, str], list[dict[str, Any]], list[str]]:
    """Validate the whole plan and return the waves, the normalized MOAs and every problem found."""
    named_waves, problems = check_waves(waves)
    if not isinstance(moas, Sequence) or isinstance(moas, (str, bytes)) or not moas:
        problems.append(f"rollout_moas must be a non-empty list of MOAs, got {describe_type(moas)}")
        return named_waves, [], problems

    normalized = []
    for index, moa in enumerate(moas):
        entry, entry_problems = check_moa(index, moa, named_waves)
        problems += entry_problems
        if entry is not None:
            normalized.append(entry)

    for key, label in (("code", "code"), ("csv", "CSV file")):
        first_index: dict[str, str] = {}
        for entry in normalized:
            value = entry[key].lower() if key == "code" else entry[key]
            if value in first_index:
                problems.append(
                    f"rollout_moas: {entry['code']} repeats the {label} {entry[key]!r} of {first_index[value]}"
                )
            else:
                first_index[value] = entry["code"]

    waves_with_moas = {entry["wave"] for entry in normalized}
    for number, name in sorted(named_waves.items()):
        if number not in waves_with_moas:
            problems.append(f"rollout_waves: wave {number} ({name}) has no MOA in rollout_moas")
    return named_waves, normalized, problems


def wave_totals(moas: object, wave: object, waves: object) -> dict[str, Any]:
    """Return the MOAs and users of ``wave`` and the cumulative totals through it.

    Raises AnsibleFilterError listing every problem of the plan, or when
    ``wave`` is not one of its waves.
    """
    named_waves, normalized, problems = check_plan(moas, waves)
    number = whole_number(wave)
    if not problems and number not in named_waves:
        problems.append(f"wave {wave!r} is not in rollout_waves, which has waves {sorted(named_waves)}")
    if problems:
        raise AnsibleFilterError("the rollout plan is invalid:\n" + "\n".join(f"- {line}" for line in problems))

    wave_moas = [entry for entry in normalized if entry["wave"] == number]
    through = [entry for entry in normalized if entry["wave"] <= number]
    return {
        "wave": number,
        "name": named_waves[number],
        "last_wave": max(named_waves),
        "moas": wave_moas,
        "moa_count": len(wave_moas),
        "users": sum(entry["expected_users"] for entry in wave_moas),
        "cumulative_moas": len(through),
        "cumulative_users": sum(entry["expected_users"] for entry in through),
        "plan_moas": len(normalized),
        "plan_users": sum(entry["expected_users"] for entry in normalized),
    }


def wave_records(hosts: object, hostvars: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """Collect the completion records that ``hosts`` store as local facts, keyed by wave number.

    A wave counts as completed when any of the hosts records it, so a web
    host added after a wave does not make that wave look unfinished. When
    several hosts record the same wave, the first host in ``hosts`` wins.
    """
    if not isinstance(hosts, Sequence) or isinstance(hosts, (str, bytes)):
        raise AnsibleFilterError(f"hosts must be a list of inventory host names, got {describe_type(hosts)}")
    records: dict[int, dict[str, Any]] = {}
    for host in hosts:
        variables = hostvars.get(host) or {}
        local_facts = variables.get("ansible_local")
        if local_facts is None:
            local_facts = (variables.get("ansible_facts") or {}).get("local") or {}
        for name, record in local_facts.items():
            match = RECORD_FACT_PATTERN.match(str(name))
            if match and isinstance(record, Mapping):
                records.setdefault(int(match.group(1)), dict(record))
    return dict(sorted(records.items()))


def order_problems(wave: object, completed: object, force: object = False) -> list[str]:
    """Return why ``wave`` may not run yet, or an empty list.

    Wave N needs waves 1 to N-1 completed. ``force`` lifts that rule, for an
    operator who has a reason to run a wave out of order.
    """
    number = whole_number(wave)
    if number is None or number < 1:
        raise AnsibleFilterError(f"wave must be a whole number of at least 1, got {wave!r}")
    if not isinstance(completed, Sequence) or isinstance(completed, (str, bytes)):
        raise AnsibleFilterError(f"completed must be a list of wave numbers, got {describe_type(completed)}")
    done = {whole_number(item) for item in completed}
    missing = [earlier for earlier in range(1, number) if earlier not in done]
    if not missing or force is True:
        return []
    listed = ", ".join(str(earlier) for earlier in missing)
    return [
        f"wave {number} needs wave(s) {listed} completed first; run them in order"
        f" (--tags wave{missing[0]}), or add -e rollout_force=true to run wave {number} anyway"
    ]
