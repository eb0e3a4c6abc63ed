"""Unit tests for the capacity_plan filter."""

from itertools import product

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.bmms.platform.plugins.filter.capacity import (
    OPTIONS,
    FilterModule,
    capacity_plan,
)

# The reference deployment's report for 44 MOAs and 1000 concurrent users.
REFERENCE = {
    "inputs": {"moas": 44, "users": 1000, "users_per_moa": 23},
    "database": {
        "max_connections": 3720,
        "pgbouncer_max_client_conn": 1000,
        "pgbouncer_default_pool_size": 50,
        "storage_gb": 16,
        "ram_gb": 64,
        "shared_buffers_gb": 16,
        "work_mem_mb": 16,
        "read_replicas": 2,
        "backup_retention_days": 30,
        "backup_size_gb": 16,
    },
    "app": {
        "servers": 5,
        "cores_per_server": 8,
        "ram_gb_per_server": 6,
        "gunicorn_workers": 17,
        "gunicorn_threads": 2,
        "users_per_server": 200,
        "total_cores": 40,
        "total_ram_gb": 30,
    },
    "cache": {
        "memory_gb_per_instance": 8,
        "masters": 1,
        "replicas": 2,
        "sentinels": 3,
        "sentinel_quorum": 2,
        "total_memory_gb": 24,
    },
    "celery": {
        "workers": 5,
        "cores_per_worker": 2,
        "ram_gb_per_worker": 2,
        "total_cores": 10,
        "total_ram_gb": 10,
        "concurrency": 4,
        "beat_instances": 1,
    },
    "storage": {
        "total_gb": 100,
        "uploads_gb": 9,
        "static_gb": 1,
        "media_cache_gb": 2,
        "logs_gb": 20,
        "backup_gb": 200,
    },
    "network": {"average_rps": 167, "peak_rps": 333, "bandwidth_gbps": 1.4},
    "cost_usd": {
        "app_servers": 750,
        "database": 400,
        "cache": 150,
        "load_balancer": 50,
        "storage": 10,
        "bandwidth": 50,
        "monthly_total": 1410,
        "annual_total": 16920,
    },
}

REFERENCE_FIGURES = [
    (section, key, value)
    for section, figures in REFERENCE.items()
    for key, value in figures.items()
]

# users_per_moa is a ratio and falls when MOAs are added; every other
# figure is a size or a price.
NOT_MONOTONIC = {("inputs", "users_per_moa")}


def figures(plan):
    """Flatten a plan into {(section, key): value}."""
    return {
        (section, key): value
        for section, values in plan.items()
        for key, value in values.items()
    }


@pytest.mark.parametrize(("section", "key", "expected"), REFERENCE_FIGURES)
def test_reference_figure(section, key, expected):
    plan = capacity_plan(44, 1000)
    assert plan[section][key] == expected, f"{section}.{key}"


@pytest.mark.parametrize("section", REFERENCE)
def test_reference_section_keys_match(section):
    plan = capacity_plan(44, 1000)
    assert list(plan[section]) == list(REFERENCE[section])


def test_reference_sections_in_report_order():
    assert list(capacity_plan(44, 1000)) == list(REFERENCE)


def test_figure_types():
    for (section, key), value in figures(capacity_plan(44, 1000)).items():
        if (section, key) == ("network", "bandwidth_gbps"):
            assert isinstance(value, float)
        else:
            assert type(value) is int, f"{section}.{key} is {type(value).__name__}"


def test_exact_arithmetic_rounding():
    # In binary floating point 3100 * 1.2 is 3720.0000000000005 and
    # 100 * 0.1 is 10.000000000000002; rounding those up would add one.
    plan = capacity_plan(44, 1000)
    assert plan["database"]["max_connections"] == 3720
    assert plan["cost_usd"]["storage"] == 10


def test_bandwidth_on_exact_tenth():
    # 1050 users make 350 peak requests per second of 500 KB: exactly 1.4 Gbps.
    network = capacity_plan(44, 1050)["network"]
    assert network["peak_rps"] == 350
    assert network["bandwidth_gbps"] == 1.4


def test_request_rates_round_half_up():
    # 15 users x 10 requests / 60 s = 2.5 requests per second.
    assert capacity_plan(1, 15)["network"]["average_rps"] == 3


@pytest.mark.parametrize(("moas", "users"), [(1, 1), (44, 5000)])
def test_extreme_plans_are_usable(moas, users):
    plan = capacity_plan(moas, users)
    for (section, key), value in figures(plan).items():
        assert value > 0, f"{section}.{key} is {value}"
    assert plan["app"]["servers"] >= 1
    assert plan["celery"]["workers"] >= 1
    assert plan["celery"]["beat_instances"] == 1
    assert plan["cache"]["sentinels"] % 2 == 1
    assert plan["cache"]["sentinel_quorum"] > plan["cache"]["sentinels"] / 2


def test_small_plan_keeps_redundancy():
    plan = capacity_plan(1, 1)
    assert plan["database"]["read_replicas"] == 2
    assert plan["cache"]["replicas"] == 2
    assert plan["database"]["pgbouncer_default_pool_size"] == 10


def test_large_plan_figures():
    plan = capacity_plan(44, 5000)
    assert plan["app"]["servers"] == 25
    assert plan["celery"]["workers"] == 25
    assert plan["database"]["read_replicas"] == 5
    assert plan["database"]["pgbouncer_default_pool_size"] == 250
    # 25 workers x 4 processes + beat = 101 Celery connections, more than
    # the floor of 50: (3 x 5000 + 101 + 50) x 1.2 = 18181.2, rounded up.
    assert plan["database"]["max_connections"] == 18182


USER_STEPS = [1, 2, 15, 49, 50, 51, 199, 200, 201, 580, 999, 1000, 1001, 2500, 5000]
MOA_STEPS = [1, 2, 5, 12, 22, 43, 44]


@pytest.mark.parametrize("moas", MOA_STEPS)
def test_figures_never_fall_as_users_grow(moas):
    previous = figures(capacity_plan(moas, USER_STEPS[0]))
    for users in USER_STEPS[1:]:
        current = figures(capacity_plan(moas, users))
        for name, value in current.items():
            if name not in NOT_MONOTONIC:
                assert (
                    value >= previous[name]
                ), f"{name} falls at {moas} MOAs, {users} users"
        previous = current


@pytest.mark.parametrize("users", USER_STEPS)
def test_figures_never_fall_as_moas_grow(users):
    previous = figures(capacity_plan(MOA_STEPS[0], users))
    for moas in MOA_STEPS[1:]:
        current = figures(capacity_plan(moas, users))
        for name, value in current.items():
            if name not in NOT_MONOTONIC:
                assert (
                    value >= previous[name]
                ), f"{name} falls at {moas} MOAs, {users} users"
        previous = current


def test_figures_never_fall_any_user_count():
    for moas in (1, 44):
        previous = figures(capacity_plan(moas, 1))
        for users in range(2, 5001):
            current = figures(capacity_plan(moas, users))
            falling = [
                name
                for name, value in current.items()
                if name not in NOT_MONOTONIC and value < previous[name]
            ]
            assert not falling, f"{falling} fall at {moas} MOAs, {users} users"
            previous = current


CUSTOM_OPTIONS = {
    "connections_per_user": 2.5,
    "headroom": 0.35,
    "pgbouncer_users_per_server_connection": 7.5,
    "db_mb_per_moa": 0,
    "users_per_read_replica": 333,
    "users_per_app_server": 150,
    "app_ram_gb_per_worker": 0.3,
    "cache_mb_per_user": 2.5,
    "users_per_celery_worker": 420,
    "uploads_mb_per_moa": 1000,
    "media_cache_ratio": 0.33,
    "storage_increment_gb": 50,
    "peak_factor": 3.5,
    "request_size_kb": 120,
    "storage_usd_per_gb": 0.07,
    "backup_storage_usd_per_gb": 0.02,
}


def test_figures_never_fall_with_custom_options():
    for moas in (1, 17, 44):
        previous = figures(capacity_plan(moas, 1, **CUSTOM_OPTIONS))
        for users in range(2, 5001):
            current = figures(capacity_plan(moas, users, **CUSTOM_OPTIONS))
            falling = [
                name
                for name, value in current.items()
                if name not in NOT_MONOTONIC and value < previous[name]
            ]
            assert not falling, f"{falling} fall at {moas} MOAs, {users} users"
            previous = current


@pytest.mark.parametrize("sentinels", [3, 5, 7, 9])
def test_sentinel_quorum_is_a_majority(sentinels):
    cache = capacity_plan(44, 1000, sentinels=sentinels)["cache"]
    assert cache["sentinels"] == sentinels
    assert cache["sentinel_quorum"] == sentinels // 2 + 1


def test_integral_float_inputs_are_accepted():
    assert capacity_plan(44.0, 1000.0) == capacity_plan(44, 1000)


REJECTED_COUNTS = [
    (0, "got 0"),
    (-1, "got -1"),
    (-44, "got -44"),
    (2.5, "fractional value 2.5"),
    (0.5, "fractional value 0.5"),
    (True, "got True (bool)"),
    (False, "got False (bool)"),
    ("abc", "got 'abc' (str)"),
    ("1000", "got '1000' (str)"),
    ("", "got '' (str)"),
    (None, "got None (NoneType)"),
    ([1000], "got [1000] (list)"),
    (float("nan"), "got nan"),
    (float("inf"), "got inf"),
]


@pytest.mark.parametrize(("value", "message"), REJECTED_COUNTS)
def test_users_rejected(value, message):
    with pytest.raises(AnsibleFilterError) as error:
        capacity_plan(44, value)
    assert "users must be a whole number of at least 1" in str(error.value)
    assert message in str(error.value)


@pytest.mark.parametrize(("value", "message"), REJECTED_COUNTS)
def test_moas_rejected(value, message):
    with pytest.raises(AnsibleFilterError) as error:
        capacity_plan(value, 1000)
    assert "moas must be a whole number of at least 1" in str(error.value)
    assert message in str(error.value)


def test_option_overrides_the_default():
    plan = capacity_plan(44, 1000, users_per_app_server=250, app_server_usd=120)
    assert plan["app"]["servers"] == 4
    assert plan["app"]["users_per_server"] == 250
    assert plan["cost_usd"]["app_servers"] == 480


def test_option_changes_only_its_own_figures():
    base = figures(capacity_plan(44, 1000))
    changed = figures(capacity_plan(44, 1000, work_mem_mb=32))
    assert {name for name in base if base[name] != changed[name]} == {
        ("database", "work_mem_mb")
    }


def test_unknown_option_rejected():
    with pytest.raises(AnsibleFilterError) as error:
        capacity_plan(44, 1000, users_per_server=250)
    assert "unknown capacity_plan option(s) users_per_server" in str(error.value)
    assert "users_per_app_server" in str(error.value)


REJECTED_OPTIONS = [
    ("users_per_app_server", 0, "must be greater than 0"),
    ("users_per_app_server", -200, "must be greater than 0"),
    ("users_per_app_server", "200", "got '200' (str)"),
    ("users_per_app_server", True, "got True (bool)"),
    ("users_per_app_server", None, "got None (NoneType)"),
    ("headroom", -0.1, "must be at least 0"),
    ("headroom", float("nan"), "must be a number"),
    ("app_cores_per_server", 7.5, "must be a whole number of cores"),
    ("app_cores_per_server", 0, "must be at least 1"),
    ("shared_buffers_ratio", 1.5, "must be at most 1"),
    ("shared_buffers_ratio", 0, "must be greater than 0"),
    ("sentinels", 4, "must be odd so that a majority quorum exists, got 4; use 5"),
    ("sentinels", 1, "must be at least 3"),
    ("peak_factor", 0.5, "must be at least 1"),
    ("storage_usd_per_gb", -1, "must be at least 0"),
    ("redis_replicas", 0, "must be at least 1"),
]


@pytest.mark.parametrize(("name", "value", "message"), REJECTED_OPTIONS)
def test_option_rejected(name, value, message):
    with pytest.raises(AnsibleFilterError) as error:
        capacity_plan(44, 1000, **{name: value})
    assert f"option {name} " in str(error.value)
    assert message in str(error.value)


@pytest.mark.parametrize("name", OPTIONS)
def test_explicit_default_changes_nothing(name):
    default = OPTIONS[name].default
    assert capacity_plan(44, 1000, **{name: default}) == REFERENCE


def test_plans_are_independent_objects():
    first = capacity_plan(44, 1000)
    first["app"]["servers"] = 99
    assert capacity_plan(44, 1000)["app"]["servers"] == 5


def test_filter_module_maps_both_names():
    filters = FilterModule().filters()
    assert filters["capacity_plan"] is capacity_plan
    assert "capacity_shortfalls" in filters


def test_plan_grid_consistency():
    for moas, users in product(range(1, 45, 7), range(50, 5001, 450)):
        plan = capacity_plan(moas, users)
        app = plan["app"]
        cost = plan["cost_usd"]
        assert app["total_cores"] == app["servers"] * app["cores_per_server"]
        assert app["gunicorn_workers"] == 2 * app["cores_per_server"] + 1
        assert plan["database"]["shared_buffers_gb"] >= plan["database"]["storage_gb"]
        assert cost["annual_total"] == 12 * cost["monthly_total"]
