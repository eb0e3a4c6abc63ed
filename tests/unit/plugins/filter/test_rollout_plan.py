"""Unit tests for the rollout plan filters: rollout_wave, rollout_records and rollout_order_problems."""

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.bmms.platform.plugins.plugin_utils.rollout_plan import (
    check_plan,
    order_problems,
    wave_records,
    wave_totals,
)

REPOSITORY = Path(__file__).resolve().parents[4]
WAVES = {1: "Pilot", 2: "Social services", 3: "Governance and finance"}


def moa(code, wave, users, **extra):
    return {
        "code": code,
        "name": f"Office {code}",
        "wave": wave,
        "expected_users": users,
        "csv": f"{code}.csv",
        **extra,
    }


PLAN = [moa("ocm", 1, 40), moa("bicto", 1, 25), moa("moh", 2, 60), moa("mssd", 2, 45), moa("milg", 3, 40)]


def load_inventory_plan(name):
    path = REPOSITORY / "inventories" / name / "group_vars" / "all" / "rollout.yml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_wave_lists_its_own_moas():
    totals = wave_totals(PLAN, 2, WAVES)
    assert [entry["code"] for entry in totals["moas"]] == ["moh", "mssd"]
    assert totals["moa_count"] == 2
    assert totals["users"] == 105
    assert totals["name"] == "Social services"


def test_wave_totals_are_cumulative():
    totals = wave_totals(PLAN, 2, WAVES)
    assert totals["cumulative_moas"] == 4
    assert totals["cumulative_users"] == 170
    assert totals["plan_moas"] == 5
    assert totals["plan_users"] == 210


def test_first_wave_cumulative_equals_wave():
    totals = wave_totals(PLAN, 1, WAVES)
    assert totals["cumulative_users"] == totals["users"] == 65


def test_last_wave_reaches_plan_totals():
    totals = wave_totals(PLAN, 3, WAVES)
    assert totals["cumulative_users"] == totals["plan_users"]
    assert totals["last_wave"] == 3


def test_wave_accepts_string_keys_and_numbers():
    """JSON extra vars turn dict keys and numbers into strings."""
    waves = {str(number): name for number, name in WAVES.items()}
    plan = [dict(entry, wave=str(entry["wave"]), expected_users=str(entry["expected_users"])) for entry in PLAN]
    assert wave_totals(plan, "2", waves)["cumulative_users"] == 170


def test_unknown_wave_rejected():
    with pytest.raises(AnsibleFilterError, match=r"wave 4 is not in rollout_waves, which has waves \[1, 2, 3\]"):
        wave_totals(PLAN, 4, WAVES)


def test_invalid_plan_lists_every_problem():
    plan = [moa("ocm", 1, 0), moa("Bad Code!", 1, 5), moa("moh", 7, 5), {**moa("mssd", 2, 5), "expected_user": 3}]
    with pytest.raises(AnsibleFilterError) as raised:
        wave_totals(plan, 1, WAVES)
    message = str(raised.value)
    assert "rollout_moas[0] (ocm): expected_users 0 must be a whole number of at least 1" in message
    assert "rollout_moas[1] (Bad Code!): code 'Bad Code!' must be 1 to 32 letters" in message
    assert "rollout_moas[2] (moh): wave 7 is not one of the waves in rollout_waves [1, 2, 3]" in message
    assert "rollout_moas[3] (mssd) has unknown key(s) expected_user" in message
    assert "rollout_waves: wave 3 (Governance and finance) has no MOA in rollout_moas" in message


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ([moa("ocm", 1, 5), moa("OCM", 2, 5)], "OCM repeats the code 'OCM' of ocm"),
        ([moa("ocm", 1, 5), {**moa("moh", 2, 5), "csv": "ocm.csv"}], "moh repeats the CSV file 'ocm.csv' of ocm"),
        ([moa("ocm", 1, 5), {**moa("moh", 2, 5), "name": ""}], "name '' must be a non-empty string"),
        ([moa("ocm", 1, 5), {**moa("moh", 2, 5), "csv": ""}], "csv must be the path of the MOA's user CSV file"),
        ([moa("ocm", 1, 5), {**moa("moh", 2, 5), "expected_users": 2.5}], "expected_users 2.5 must be a whole number"),
        (
            [moa("ocm", 1, 5), {**moa("moh", 2, 5), "expected_users": True}],
            "expected_users True must be a whole number",
        ),
        ([moa("ocm", 1, 5), "moh"], "rollout_moas[1] must be a dict"),
        ([], "rollout_moas must be a non-empty list"),
    ],
)
def test_plan_problem_named(plan, message):
    _, _, problems = check_plan(plan, {1: "Pilot", 2: "Social services"})
    assert any(message in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("waves", "message"),
    [
        ({1: "Pilot", 3: "Final"}, "must number the waves 1 to 2 without gaps; got [1, 3]"),
        ({0: "Zero"}, "key 0 is not a wave number of at least 1"),
        ({1: ""}, "wave 1 needs a name"),
        ([], "rollout_waves must be a dict of wave numbers to names"),
    ],
)
def test_wave_names_checked(waves, message):
    _, _, problems = check_plan([moa("ocm", 1, 5)], waves)
    assert any(message in problem for problem in problems), problems


def test_prod_plan_has_44_moas_in_nine_waves():
    data = load_inventory_plan("prod")
    expected_moas = {1: 3, 2: 5, 3: 6, 4: 5, 5: 6, 6: 5, 7: 4, 8: 5, 9: 5}
    for wave, count in expected_moas.items():
        assert wave_totals(data["rollout_moas"], wave, data["rollout_waves"])["moa_count"] == count, wave
    last = wave_totals(data["rollout_moas"], 9, data["rollout_waves"])
    assert last["cumulative_moas"] == 44
    assert last["cumulative_users"] == 1000


def test_lab_plan_is_valid_and_small():
    data = load_inventory_plan("lab")
    last = wave_totals(data["rollout_moas"], 9, data["rollout_waves"])
    assert last["last_wave"] == 9
    assert last["cumulative_users"] <= 40


def record(wave):
    return {"wave": wave, "completed_at": "2026-01-05T08:00:00Z"}


def test_records_union_over_hosts():
    hostvars = {
        "app1": {"ansible_local": {"bmms_rollout_wave_1": record(1), "other": {}}},
        "app2": {"ansible_local": {"bmms_rollout_wave_1": record(1), "bmms_rollout_wave_2": record(2)}},
        "app3": {"ansible_local": {}},
    }
    assert list(wave_records(["app1", "app2", "app3"], hostvars)) == [1, 2]


def test_records_from_ansible_facts_local():
    hostvars = {"app1": {"ansible_facts": {"local": {"bmms_rollout_wave_3": record(3)}}}}
    assert wave_records(["app1"], hostvars) == {3: record(3)}


def test_records_ignore_hosts_without_facts():
    assert wave_records(["app1"], {"app1": {}}) == {}


def test_records_ignore_similar_names():
    hostvars = {
        "app1": {"ansible_local": {"bmms_rollout_wave_x": {}, "bmms_rollout_wave_0": {}, "xbmms_rollout_wave_1": {}}}
    }
    assert wave_records(["app1"], hostvars) == {}


def test_first_wave_needs_nothing():
    assert order_problems(1, []) == []


def test_next_wave_after_completed_one_allowed():
    assert order_problems(3, [1, 2]) == []


def test_wave_before_previous_refused():
    problems = order_problems(4, [1, 2])
    assert len(problems) == 1
    assert problems[0].startswith("wave 4 needs wave(s) 3 completed first")
    assert "--tags wave3" in problems[0]
    assert "-e rollout_force=true" in problems[0]


def test_refusal_lists_every_missing_wave():
    assert "needs wave(s) 1, 3 completed first" in order_problems(4, [2])[0]


def test_force_allows_out_of_order_wave():
    assert order_problems(4, [1], force=True) == []


def test_force_must_be_boolean_true():
    """The playbook passes rollout_force | bool; a string is no consent."""
    assert order_problems(4, [1], force="false") != []


def test_completed_wave_may_rerun_out_of_order():
    assert order_problems(2, [1, 2, 3]) == []


def test_order_rejects_bad_wave():
    with pytest.raises(AnsibleFilterError, match="wave must be a whole number of at least 1"):
        order_problems(0, [])
