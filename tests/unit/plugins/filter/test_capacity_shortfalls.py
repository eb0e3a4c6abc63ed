"""Unit tests for the capacity_shortfalls filter."""

import copy

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.bmms.platform.plugins.filter.capacity import (
    capacity_plan,
    capacity_shortfalls,
)

PLAN = capacity_plan(44, 1000)
WAVE_PLAN = capacity_plan(12, 580)


def facts(vcpus, memtotal_mb):
    return {"ansible_facts": {"processor_vcpus": vcpus, "memtotal_mb": memtotal_mb}}


def reference_inventory():
    """Return (groups, hostvars) that provide everything PLAN needs."""
    groups = {
        "web": [f"web{i}" for i in range(1, 6)],
        "celery_worker": [f"worker{i}" for i in range(1, 6)],
        "postgres_primary": ["db1"],
        "postgres_replicas": ["db2", "db3"],
        "pgbouncer": ["db1"],
        "redis": ["cache1", "cache2", "cache3"],
        "redis_sentinel": ["cache1", "cache2", "cache3"],
    }
    hostvars = {}
    for host in groups["web"]:
        hostvars[host] = facts(8, 6 * 1024 - 200)
    for host in groups["celery_worker"]:
        hostvars[host] = facts(2, 2 * 1024 - 100)
    for host in ("db1", "db2", "db3"):
        hostvars[host] = {"postgresql_max_connections": 500}
    hostvars["db1"].update(
        pgbouncer_default_pool_size=50,
        pgbouncer_reserve_pool_size=10,
        pgbouncer_max_client_conn=1000,
    )
    return groups, hostvars


def test_reference_inventory_has_no_shortfalls():
    groups, hostvars = reference_inventory()
    assert capacity_shortfalls(PLAN, groups, hostvars) == []


def test_wave_with_too_few_web_servers():
    groups, hostvars = reference_inventory()
    groups["web"] = ["web1", "web2"]
    assert capacity_shortfalls(WAVE_PLAN, groups, hostvars, label="wave 5") == [
        "wave 5 needs 3 web servers for 580 users; the inventory has 2 (group 'web')"
    ]


def test_default_label_is_the_plan():
    groups, hostvars = reference_inventory()
    groups["web"] = ["web1"]
    messages = capacity_shortfalls(PLAN, groups, hostvars)
    assert messages == [
        "the plan needs 5 web servers for 1000 users; the inventory has 1 (group 'web')"
    ]


@pytest.mark.parametrize(
    ("group", "hosts", "expected"),
    [
        (
            "celery_worker",
            ["worker1"],
            "the plan needs 5 Celery workers for 1000 users; the inventory has 1"
            " (group 'celery_worker')",
        ),
        (
            "postgres_replicas",
            ["db2"],
            "the plan needs 2 PostgreSQL read replicas for 1000 users; the inventory"
            " has 1 (group 'postgres_replicas')",
        ),
        (
            "redis",
            ["cache1", "cache2"],
            "the plan needs 3 Redis hosts (1 master and 2 replicas); the inventory"
            " has 2 (group 'redis')",
        ),
    ],
)
def test_too_few_hosts_in_group(group, hosts, expected):
    groups, hostvars = reference_inventory()
    groups[group] = hosts
    assert capacity_shortfalls(PLAN, groups, hostvars) == [expected]


def test_missing_primary():
    groups, hostvars = reference_inventory()
    del groups["postgres_primary"]
    messages = capacity_shortfalls(PLAN, groups, hostvars)
    assert messages == [
        "the plan needs 1 PostgreSQL primary; the inventory has 0"
        " (group 'postgres_primary')"
    ]


@pytest.mark.parametrize(
    "sentinels", [["s1"], ["s1", "s2"], ["s1", "s2", "s3", "s4"]], ids=len
)
def test_wrong_sentinel_count(sentinels):
    groups, hostvars = reference_inventory()
    groups["redis_sentinel"] = sentinels
    assert capacity_shortfalls(PLAN, groups, hostvars) == [
        "the plan needs an odd number of Sentinels, at least 3, so that a quorum"
        f" of 2 is a majority; the inventory has {len(sentinels)} (group"
        " 'redis_sentinel')"
    ]


def test_five_sentinels_satisfy_three():
    groups, hostvars = reference_inventory()
    groups["redis_sentinel"] = ["s1", "s2", "s3", "s4", "s5"]
    assert capacity_shortfalls(PLAN, groups, hostvars) == []


def test_web_host_with_too_few_vcpus():
    groups, hostvars = reference_inventory()
    hostvars["web2"] = facts(4, 6 * 1024)
    assert capacity_shortfalls(WAVE_PLAN, groups, hostvars, label="wave 5") == [
        "web2 has 4 vCPUs; wave 5 needs 8 for a web server"
    ]


def test_web_host_with_too_little_memory():
    groups, hostvars = reference_inventory()
    hostvars["web3"] = facts(8, 4096)
    assert capacity_shortfalls(PLAN, groups, hostvars) == [
        "web3 has 4096 MB of memory (MemTotal); the plan needs 6 GB for a web server"
    ]


def test_memory_tolerance_boundary():
    groups, hostvars = reference_inventory()
    # 6 GB less 10 % is 5529.6 MB.
    hostvars["web1"] = facts(8, 5530)
    assert capacity_shortfalls(PLAN, groups, hostvars) == []
    hostvars["web1"] = facts(8, 5529)
    assert len(capacity_shortfalls(PLAN, groups, hostvars)) == 1
    assert capacity_shortfalls(PLAN, groups, hostvars, memory_tolerance=0.2) == []


def test_colocated_web_celery_host():
    groups, hostvars = reference_inventory()
    groups["celery_worker"] = groups["web"]
    hostvars["web1"] = facts(10, 8 * 1024)
    for host in groups["web"][1:]:
        hostvars[host] = facts(8, 6 * 1024)
    messages = capacity_shortfalls(PLAN, groups, hostvars)
    assert "web1" not in " ".join(messages)
    assert (
        "web2 has 8 vCPUs; the plan needs 10 for a web server and Celery worker"
        in messages
    )
    assert (
        "web2 has 6144 MB of memory (MemTotal); the plan needs 8 GB for a web server"
        " and Celery worker" in messages
    )


def test_host_without_facts_is_reported():
    groups, hostvars = reference_inventory()
    hostvars["web4"] = {}
    assert capacity_shortfalls(PLAN, groups, hostvars) == [
        "web4 has no gathered facts (processor_vcpus, memtotal_mb), so its size"
        " cannot be checked; gather facts for it first"
    ]


def test_host_missing_from_hostvars():
    groups, hostvars = reference_inventory()
    del hostvars["web4"]
    messages = capacity_shortfalls(PLAN, groups, hostvars)
    assert len(messages) == 1
    assert messages[0].startswith("web4 has no gathered facts")


def test_injected_fact_variables_are_read():
    groups, hostvars = reference_inventory()
    hostvars["web1"] = {"ansible_processor_vcpus": 8, "ansible_memtotal_mb": 6000}
    assert capacity_shortfalls(PLAN, groups, hostvars) == []


def test_pool_size_below_plan():
    groups, hostvars = reference_inventory()
    hostvars["db1"]["pgbouncer_default_pool_size"] = 20
    assert capacity_shortfalls(PLAN, groups, hostvars) == [
        "db1 has pgbouncer_default_pool_size 20; the plan needs 50"
    ]


def test_max_client_conn_below_plan():
    groups, hostvars = reference_inventory()
    hostvars["db1"]["pgbouncer_max_client_conn"] = 100
    assert capacity_shortfalls(PLAN, groups, hostvars) == [
        "db1 has pgbouncer_max_client_conn 100; the plan needs 1000"
    ]


def test_pools_exceed_max_connections():
    groups, hostvars = reference_inventory()
    groups["pgbouncer"] = ["db1", "db2"]
    hostvars["db2"].update(
        pgbouncer_default_pool_size=50,
        pgbouncer_reserve_pool_size=10,
        pgbouncer_max_client_conn=1000,
    )
    for host in ("db1", "db2", "db3"):
        hostvars[host]["postgresql_max_connections"] = 100
    # Two PgBouncers with (50 + 10) connections each, and 3 reserved.
    assert capacity_shortfalls(PLAN, groups, hostvars) == [
        f"{host} has postgresql_max_connections 100, but the PgBouncer pools can"
        " open 120 server connections and 3 are reserved for superusers; raise it"
        " to at least 123 or shrink the pools"
        for host in ("db1", "db2", "db3")
    ]


def test_pools_exactly_fit_max_connections():
    groups, hostvars = reference_inventory()
    for host in ("db1", "db2", "db3"):
        hostvars[host]["postgresql_max_connections"] = 63
    assert capacity_shortfalls(PLAN, groups, hostvars) == []


def test_pools_per_pgbouncer_multiplies_demand():
    groups, hostvars = reference_inventory()
    for host in ("db1", "db2", "db3"):
        hostvars[host]["postgresql_max_connections"] = 100
    messages = capacity_shortfalls(PLAN, groups, hostvars, pools_per_pgbouncer=2)
    assert len(messages) == 3
    assert "can open 120 server connections" in messages[0]


def test_reserved_connections_per_host():
    groups, hostvars = reference_inventory()
    hostvars["db3"].update(
        postgresql_max_connections=70, postgresql_superuser_reserved_connections=20
    )
    hostvars["db1"]["postgresql_max_connections"] = 70
    hostvars["db2"]["postgresql_max_connections"] = 70
    assert capacity_shortfalls(PLAN, groups, hostvars) == [
        "db3 has postgresql_max_connections 70, but the PgBouncer pools can open 60"
        " server connections and 20 are reserved for superusers; raise it to at"
        " least 80 or shrink the pools"
    ]


def test_replica_below_primary_max_connections():
    groups, hostvars = reference_inventory()
    hostvars["db3"]["postgresql_max_connections"] = 400
    assert capacity_shortfalls(PLAN, groups, hostvars) == [
        "db3 has postgresql_max_connections 400, lower than the primary's 500;"
        " raise it to at least 500, because PostgreSQL allows no queries on a"
        " standby set lower than its primary"
    ]


def test_missing_variables_are_reported():
    groups, hostvars = reference_inventory()
    del hostvars["db2"]["postgresql_max_connections"]
    del hostvars["db1"]["pgbouncer_default_pool_size"]
    del hostvars["db1"]["pgbouncer_max_client_conn"]
    assert capacity_shortfalls(PLAN, groups, hostvars) == [
        "db1 does not set pgbouncer_default_pool_size; set it or pass it in defaults",
        "db1 does not set pgbouncer_max_client_conn; set it or pass it in defaults",
        "db2 does not set postgresql_max_connections; set it or pass it in defaults",
    ]


def test_defaults_fill_missing_variables():
    groups, hostvars = reference_inventory()
    for host in ("db1", "db2", "db3"):
        hostvars[host] = {}
    defaults = {
        "postgresql_max_connections": 500,
        "pgbouncer_default_pool_size": 50,
        "pgbouncer_reserve_pool_size": 10,
        "pgbouncer_max_client_conn": 1000,
    }
    assert capacity_shortfalls(PLAN, groups, hostvars, defaults=defaults) == []


def test_host_value_wins_over_default():
    groups, hostvars = reference_inventory()
    messages = capacity_shortfalls(
        PLAN, groups, hostvars, defaults={"pgbouncer_default_pool_size": 5}
    )
    assert messages == []


def test_digit_string_values_read():
    groups, hostvars = reference_inventory()
    hostvars["db2"]["postgresql_max_connections"] = "500"
    assert capacity_shortfalls(PLAN, groups, hostvars) == []


@pytest.mark.parametrize("value", ["many", -1, 2.5, True])
def test_invalid_inventory_value_rejected(value):
    groups, hostvars = reference_inventory()
    hostvars["db2"]["postgresql_max_connections"] = value
    with pytest.raises(AnsibleFilterError) as error:
        capacity_shortfalls(PLAN, groups, hostvars)
    assert "postgresql_max_connections on db2 must be a whole number" in str(
        error.value
    )
    assert repr(value) in str(error.value)


def test_plan_is_not_modified():
    groups, hostvars = reference_inventory()
    plan = copy.deepcopy(PLAN)
    capacity_shortfalls(plan, groups, hostvars)
    assert plan == PLAN


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ("plan", "expects the dict returned by capacity_plan, got str"),
        ({}, "the plan has no 'inputs' section"),
        (
            {**PLAN, "app": {**PLAN["app"], "servers": "5"}},
            "the plan's app.servers must be an integer, got '5'",
        ),
        (
            {
                **PLAN,
                "cache": {k: v for k, v in PLAN["cache"].items() if k != "replicas"},
            },
            "the plan's cache.replicas must be an integer, got None",
        ),
    ],
)
def test_invalid_plan_rejected(plan, message):
    groups, hostvars = reference_inventory()
    with pytest.raises(AnsibleFilterError) as error:
        capacity_shortfalls(plan, groups, hostvars)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"groups": ["web1"]}, "groups must be a dict"),
        ({"groups": {"web": "web1"}}, "groups['web'] must be a list of host names"),
        ({"hostvars": "web1"}, "hostvars must be a dict"),
        ({"label": ""}, "label must be a non-empty string"),
        ({"label": 5}, "label must be a non-empty string"),
        ({"defaults": ["x"]}, "defaults must be a dict"),
        ({"pools_per_pgbouncer": 0}, "pools_per_pgbouncer must be a whole number"),
        ({"pools_per_pgbouncer": "2"}, "pools_per_pgbouncer must be a whole number"),
        ({"memory_tolerance": 1}, "memory_tolerance must be a fraction"),
        ({"memory_tolerance": -0.1}, "memory_tolerance must be a fraction"),
        ({"memory_tolerance": True}, "memory_tolerance must be a fraction"),
    ],
)
def test_invalid_arguments_rejected(arguments, message):
    groups, hostvars = reference_inventory()
    call = {"groups": groups, "hostvars": hostvars, **arguments}
    with pytest.raises(AnsibleFilterError) as error:
        capacity_shortfalls(PLAN, **call)
    assert message in str(error.value)
