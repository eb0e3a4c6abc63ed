"""Unit tests for rollout_runtime_shortfalls and rollout_capacity_headroom."""

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.bmms.platform.plugins.filter.capacity import capacity_plan
from ansible_collections.bmms.platform.plugins.plugin_utils.capacity_shortfalls import capacity_shortfalls
from ansible_collections.bmms.platform.plugins.plugin_utils.rollout_capacity import (
    ROLE_DEFAULTS,
    capacity_headroom,
    inventory_figures,
    redis_cache_memory_mb,
    runtime_shortfalls,
)

REPOSITORY = Path(__file__).resolve().parents[4]
LAB_OPTIONS = {
    "users_per_app_server": 20,
    "app_cores_per_server": 1,
    "users_per_celery_worker": 20,
    "celery_cores_per_worker": 1,
    "min_read_replicas": 1,
    "redis_replicas": 1,
    "cache_mb_per_user": 1,
}
DEFAULTS = {
    "pgbouncer_default_pool_size": 50,
    "pgbouncer_max_client_conn": 1000,
    "pgbouncer_reserve_pool_size": 10,
    "postgresql_max_connections": 500,
}


def facts(vcpus, memtotal_mb, **variables):
    return {"ansible_facts": {"processor_vcpus": vcpus, "memtotal_mb": memtotal_mb}, **variables}


def lab_inventory():
    """Two app hosts (web and Celery), two database hosts with Redis, three Sentinels."""
    groups = {
        "web": ["app1", "app2"],
        "celery_worker": ["app1", "app2"],
        "postgres_primary": ["db1"],
        "postgres_replicas": ["db2"],
        "pgbouncer": ["db1"],
        "redis": ["db1", "db2"],
        "redis_sentinel": ["db1", "db2", "app1"],
    }
    hostvars = {
        "app1": facts(2, 8000),
        "app2": facts(2, 8000),
        "db1": facts(2, 8000, redis_cache_maxmemory_mb=64, redis_broker_maxmemory_mb=32),
        "db2": facts(2, 8000, redis_cache_maxmemory_mb=64, redis_broker_maxmemory_mb=32),
    }
    return groups, hostvars


def test_lab_inventory_fits_small_plan():
    groups, hostvars = lab_inventory()
    plan = capacity_plan(3, 6, **LAB_OPTIONS)
    assert runtime_shortfalls(plan, groups, hostvars, defaults=DEFAULTS, options=LAB_OPTIONS) == []


def test_too_few_gunicorn_workers_reported():
    groups, hostvars = lab_inventory()
    hostvars["app2"]["web_gunicorn_workers"] = 2
    plan = capacity_plan(3, 6, **LAB_OPTIONS)
    assert runtime_shortfalls(plan, groups, hostvars, label="wave 1", options=LAB_OPTIONS) == [
        "app2 runs 2 Gunicorn workers; wave 1 needs 3 per web server (2 x 1 cores + 1):"
        " raise web_gunicorn_workers or unset it"
    ]


def test_default_workers_follow_vcpus():
    """The web role runs 2 x vCPUs + 1 workers when web_gunicorn_workers is unset."""
    groups, hostvars = lab_inventory()
    plan = capacity_plan(3, 6)
    messages = runtime_shortfalls(plan, groups, hostvars, label="wave 1", options={})
    assert "app1 runs 5 Gunicorn workers; wave 1 needs 17 per web server (2 x 8 cores + 1):" in messages[0]


def test_too_little_redis_memory_reported():
    groups, hostvars = lab_inventory()
    plan = capacity_plan(3, 65, **LAB_OPTIONS)
    messages = runtime_shortfalls(plan, groups, hostvars, label="wave 4", options=LAB_OPTIONS)
    assert messages == [
        f"{host} gives the Redis cache 64 MB (maxmemory); wave 4 needs 65 MB for 65 users:"
        " raise redis_cache_maxmemory_mb, redis_memory_fraction or the host's memory"
        for host in ("db1", "db2")
    ]


def test_redis_default_memory_from_role_plan():
    """Unset, the cache gets the plan of 44 MOAs and 1000 users: 8 GB."""
    hostvars = {"db1": facts(2, 64000)}
    assert redis_cache_memory_mb(hostvars, "db1", {}) == 8192


def test_redis_memory_scaled_to_host():
    """8192 + 1024 MB exceed half of 8000 MB, so both are scaled to fit 4000 MB."""
    hostvars = {"db1": facts(2, 8000)}
    assert redis_cache_memory_mb(hostvars, "db1", {}) == int(8192 * 4000 / 9216)


def test_redis_memory_fraction_from_host():
    hostvars = {"db1": facts(2, 4000, redis_memory_fraction=1.0, redis_cache_maxmemory_mb=4000)}
    assert redis_cache_memory_mb(hostvars, "db1", {}) == int(4000 * 4000 / 5024)


def test_redis_memory_unknown_without_facts():
    assert redis_cache_memory_mb({"db1": {}}, "db1", {}) is None


def test_invalid_memory_fraction_rejected():
    hostvars = {"db1": facts(2, 8000, redis_memory_fraction=1.5)}
    with pytest.raises(AnsibleFilterError, match="redis_memory_fraction on db1 must be a fraction"):
        redis_cache_memory_mb(hostvars, "db1", {})


def test_hosts_without_facts_skipped():
    """capacity_shortfalls reports hosts without facts; this check does not repeat it."""
    groups, hostvars = lab_inventory()
    hostvars["app1"] = {}
    plan = capacity_plan(3, 6, **LAB_OPTIONS)
    assert runtime_shortfalls(plan, groups, hostvars, options=LAB_OPTIONS) == []


def test_figures_show_have_and_need():
    groups, hostvars = lab_inventory()
    plan = capacity_plan(3, 30, **LAB_OPTIONS)
    figures = inventory_figures(plan, groups, hostvars, DEFAULTS, LAB_OPTIONS)
    assert figures["web_servers"] == {"have": 2, "need": 2}
    assert figures["gunicorn_workers_per_web_server"] == {"have": 5, "need": 3}
    assert figures["pgbouncer_default_pool_size"] == {"have": 50, "need": 10}
    assert figures["redis_cache_memory_mb"] == {"have": 64, "need": 30}


def test_headroom_finds_largest_user_count():
    groups, hostvars = lab_inventory()
    headroom = capacity_headroom(3, 30, groups, hostvars, options=LAB_OPTIONS, defaults=DEFAULTS)
    assert headroom["max_users"] == 40
    assert headroom["headroom_users"] == 10
    assert headroom["headroom_percent"] == 33
    assert headroom["max_users_is_search_limit"] is False


def test_headroom_limit_is_exact():
    """max_users fits and one user more does not."""
    groups, hostvars = lab_inventory()
    headroom = capacity_headroom(3, 30, groups, hostvars, options=LAB_OPTIONS, defaults=DEFAULTS)
    fits = capacity_shortfalls(capacity_plan(3, 40, **LAB_OPTIONS), groups, hostvars, defaults=DEFAULTS)
    assert fits == []
    assert headroom["first_limits"] == [
        "the plan needs 3 web servers for 41 users; the inventory has 2 (group 'web')",
        "the plan needs 3 Celery workers for 41 users; the inventory has 2 (group 'celery_worker')",
    ]


def test_headroom_negative_when_short():
    groups, hostvars = lab_inventory()
    headroom = capacity_headroom(3, 100, groups, hostvars, options=LAB_OPTIONS, defaults=DEFAULTS)
    assert headroom["headroom_users"] == -60


def test_headroom_zero_when_nothing_fits():
    groups, hostvars = lab_inventory()
    groups["postgres_primary"] = []
    headroom = capacity_headroom(3, 10, groups, hostvars, options=LAB_OPTIONS, defaults=DEFAULTS)
    assert headroom["max_users"] == 0
    assert any("PostgreSQL primary" in line for line in headroom["first_limits"])


def test_headroom_reports_search_limit():
    groups = {
        "web": ["app1"],
        "celery_worker": ["app1"],
        "postgres_primary": ["db1"],
        "postgres_replicas": ["db2"],
        "redis": ["db1", "db2"],
        "redis_sentinel": ["db1", "db2", "app1"],
    }
    hostvars = {
        "app1": facts(64, 256000),
        "db1": {"postgresql_max_connections": 500},
        "db2": {"postgresql_max_connections": 500},
    }
    unlimited = 10**9
    options = dict(
        LAB_OPTIONS,
        users_per_app_server=unlimited,
        users_per_celery_worker=unlimited,
        users_per_read_replica=unlimited,
    )
    headroom = capacity_headroom(1, 1, groups, hostvars, options=options)
    assert headroom["max_users_is_search_limit"] is True
    assert headroom["first_limits"] == []


def test_headroom_rejects_bad_options():
    groups, hostvars = lab_inventory()
    with pytest.raises(AnsibleFilterError, match="options must be a dict"):
        capacity_headroom(3, 10, groups, hostvars, options=[1])


def role_defaults(role):
    return yaml.safe_load((REPOSITORY / "roles" / role / "defaults" / "main.yml").read_text(encoding="utf-8"))


def test_role_defaults_match_redis_role():
    redis = role_defaults("redis")
    for name, value in ROLE_DEFAULTS.items():
        assert redis[name] == value, name
