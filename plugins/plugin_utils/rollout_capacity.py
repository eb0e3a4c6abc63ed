"""Capacity checks of a rollout wave beyond those of ``capacity_shortfalls``.

``capacity_shortfalls`` counts hosts, host sizes and PgBouncer and PostgreSQL
limits. A wave also needs enough Gunicorn workers on each web host and
enough Redis memory for its users, which depend on the web and redis roles'
settings. This module checks those, describes what the inventory has next to
what a plan needs, and finds how many users the inventory can carry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.bmms.platform.plugins.filter.capacity import OPTIONS, capacity_plan, check_option, exact
from ansible_collections.bmms.platform.plugins.plugin_utils.capacity_shortfalls import (
    capacity_shortfalls,
    group_hosts,
    host_fact,
    host_integer,
)
from ansible_collections.bmms.platform.plugins.plugin_utils.values import as_count, describe_type

MB_PER_GB = 1024

# Defaults of the web and redis roles that decide a host's Gunicorn workers
# and Redis memory, used when neither the host nor the caller sets them.
# roles/redis/defaults/main.yml sizes the cache from a plan of 44 MOAs and
# 1000 users; tests/unit/plugins/filter/test_rollout_capacity.py checks that
# these values still match the role defaults.
ROLE_DEFAULTS: dict[str, int | float] = {
    "redis_plan_moas": 44,
    "redis_plan_users": 1000,
    "redis_broker_maxmemory_mb": 1024,
    "redis_memory_fraction": 0.5,
}

# The highest user count capacity_headroom tries. An inventory that carries
# this many users is reported as carrying "at least" this many.
HEADROOM_SEARCH_LIMIT = 1_000_000


def host_fraction(hostvars: Mapping[str, Any], host: str, variable: str, defaults: Mapping[str, object]) -> float:
    """Read a fraction above 0 and at most 1 from the host's variables, the caller's defaults or ROLE_DEFAULTS."""
    value = (hostvars.get(host) or {}).get(variable)
    if value is None:
        value = defaults.get(variable, ROLE_DEFAULTS.get(variable))
    try:
        fraction = float(value)
    except (TypeError, ValueError):
        fraction = -1.0
    if isinstance(value, bool) or not 0 < fraction <= 1:
        raise AnsibleFilterError(f"{variable} on {host} must be a fraction above 0 and at most 1, got {value!r}")
    return fraction


def with_role_defaults(
    hostvars: Mapping[str, Any], host: str, variable: str, defaults: Mapping[str, object]
) -> int | None:
    """Read a whole number like ``host_integer``, falling back to ROLE_DEFAULTS last."""
    value = host_integer(hostvars, host, variable, defaults)
    if value is None and variable in ROLE_DEFAULTS:
        value = int(ROLE_DEFAULTS[variable])
    return value


def gunicorn_workers(hostvars: Mapping[str, Any], host: str, defaults: Mapping[str, object]) -> int | None:
    """Return the Gunicorn workers a web host runs, or None when unknown.

    The web role runs ``web_gunicorn_workers`` workers, by default 2 x the
    host's vCPUs + 1. None means the variable is unset and facts are missing.
    """
    workers = host_integer(hostvars, host, "web_gunicorn_workers", defaults)
    if workers is not None:
        return workers
    vcpus = host_fact(hostvars, host, "processor_vcpus")
    return None if vcpus is None else 2 * vcpus + 1


def redis_cache_memory_mb(hostvars: Mapping[str, Any], host: str, defaults: Mapping[str, object]) -> int | None:
    """Return the maxmemory in MB that the redis role gives a host's cache instance, or None when unknown.

    This repeats the role's arithmetic: the cache gets
    ``redis_cache_maxmemory_mb`` (by default the capacity plan's memory per
    instance for ``redis_plan_moas`` and ``redis_plan_users``), and the cache
    and broker are scaled down together when their sum exceeds
    ``redis_memory_fraction`` of the host's MemTotal. None means the host's
    facts were not gathered.
    """
    cache_mb = host_integer(hostvars, host, "redis_cache_maxmemory_mb", defaults)
    if cache_mb is None:
        moas = with_role_defaults(hostvars, host, "redis_plan_moas", defaults)
        users = with_role_defaults(hostvars, host, "redis_plan_users", defaults)
        cache_mb = capacity_plan(moas, users)["cache"]["memory_gb_per_instance"] * MB_PER_GB
    broker_mb = with_role_defaults(hostvars, host, "redis_broker_maxmemory_mb", defaults) or 0
    fraction = host_fraction(hostvars, host, "redis_memory_fraction", defaults)
    memtotal_mb = host_fact(hostvars, host, "memtotal_mb")
    if memtotal_mb is None:
        return None
    budget_mb = int(memtotal_mb * fraction)
    if cache_mb + broker_mb == 0:
        return 0
    scale = min(1.0, budget_mb / (cache_mb + broker_mb))
    return int(cache_mb * scale)


def check_inventory(groups: object, hostvars: object, defaults: object) -> Mapping[str, object]:
    """Reject inventory arguments of the wrong type and return ``defaults`` as a mapping."""
    if not isinstance(groups, Mapping):
        raise AnsibleFilterError(f"groups must be a dict of group names to host lists, got {describe_type(groups)}")
    if not isinstance(hostvars, Mapping):
        raise AnsibleFilterError(f"hostvars must be a dict of host names to variables, got {describe_type(hostvars)}")
    if defaults is None:
        return {}
    if not isinstance(defaults, Mapping):
        raise AnsibleFilterError(f"defaults must be a dict of variable names to values, got {describe_type(defaults)}")
    return defaults


def check_arguments(plan: object, groups: object, hostvars: object, defaults: object) -> Mapping[str, object]:
    """Reject a plan or inventory arguments of the wrong type and return ``defaults`` as a mapping."""
    sections = ("inputs", "app", "cache", "celery", "database")
    if not isinstance(plan, Mapping) or not all(isinstance(plan.get(section), Mapping) for section in sections):
        raise AnsibleFilterError(f"plan must be the dict returned by capacity_plan, got {describe_type(plan)}")
    return check_inventory(groups, hostvars, defaults)


def cache_need_mb(plan: Mapping[str, Any], options: object) -> int:
    """Return the Redis cache memory in MB that the plan's users need: users x cache_mb_per_user, rounded up.

    The plan's ``cache.memory_gb_per_instance`` rounds this up to whole GB
    and a power of two, which is what to provision. This check compares
    the configured maxmemory with the need itself, so a small lab with a
    few MB of cache per user can pass.
    """
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise AnsibleFilterError(f"options must be a dict of capacity_plan options, got {describe_type(options)}")
    per_user = options.get("cache_mb_per_user", OPTIONS["cache_mb_per_user"].default)
    check_option("cache_mb_per_user", per_user)
    return math.ceil(exact(per_user) * plan["inputs"]["users"])


def runtime_shortfalls(
    plan: object,
    groups: object,
    hostvars: object,
    label: object = "the plan",
    defaults: object = None,
    options: object = None,
) -> list[str]:
    """List the web hosts with too few Gunicorn workers and the Redis hosts with too little cache memory.

    ``options`` are the capacity_plan options the plan was made with; only
    ``cache_mb_per_user`` is read. Hosts whose facts were not gathered are
    skipped here, because ``capacity_shortfalls`` already reports them.
    """
    checked_defaults = check_arguments(plan, groups, hostvars, defaults)
    app = plan["app"]
    needed_workers = app["gunicorn_workers"]
    needed_cache_mb = cache_need_mb(plan, options)
    users = plan["inputs"]["users"]

    messages = []
    for host in group_hosts(groups, "web"):
        workers = gunicorn_workers(hostvars, host, checked_defaults)
        if workers is not None and workers < needed_workers:
            messages.append(
                f"{host} runs {workers} Gunicorn workers; {label} needs {needed_workers} per web server"
                f" (2 x {app['cores_per_server']} cores + 1): raise web_gunicorn_workers or unset it"
            )
    for host in group_hosts(groups, "redis"):
        cache_mb = redis_cache_memory_mb(hostvars, host, checked_defaults)
        if cache_mb is not None and cache_mb < needed_cache_mb:
            messages.append(
                f"{host} gives the Redis cache {cache_mb} MB (maxmemory); {label} needs {needed_cache_mb} MB"
                f" for {users} users: raise redis_cache_maxmemory_mb, redis_memory_fraction or the host's memory"
            )
    return messages


def smallest(values: list[int | None]) -> int | None:
    """Return the smallest known value, or None when no value is known."""
    known = [value for value in values if value is not None]
    return min(known) if known else None


def inventory_figures(
    plan: object, groups: object, hostvars: object, defaults: object = None, options: object = None
) -> dict[str, dict[str, int | None]]:
    """Return, per capacity figure, what the inventory has and what ``plan`` needs.

    Per-host figures give the smallest host's value. ``have`` is None when
    it is unknown, for example because a host's facts were not gathered.
    """
    checked_defaults = check_arguments(plan, groups, hostvars, defaults)
    web_hosts = group_hosts(groups, "web")
    pgbouncer_hosts = group_hosts(groups, "pgbouncer")
    redis_hosts = group_hosts(groups, "redis")
    workers = [gunicorn_workers(hostvars, host, checked_defaults) for host in web_hosts]
    pool_sizes = [
        host_integer(hostvars, host, "pgbouncer_default_pool_size", checked_defaults) for host in pgbouncer_hosts
    ]
    client_limits = [
        host_integer(hostvars, host, "pgbouncer_max_client_conn", checked_defaults) for host in pgbouncer_hosts
    ]
    cache_sizes = [redis_cache_memory_mb(hostvars, host, checked_defaults) for host in redis_hosts]

    app = plan["app"]
    cache = plan["cache"]
    database = plan["database"]
    figures = {
        "web_servers": (len(web_hosts), app["servers"]),
        "gunicorn_workers_per_web_server": (smallest(workers), app["gunicorn_workers"]),
        "celery_workers": (len(group_hosts(groups, "celery_worker")), plan["celery"]["workers"]),
        "postgres_read_replicas": (len(group_hosts(groups, "postgres_replicas")), database["read_replicas"]),
        "pgbouncer_default_pool_size": (smallest(pool_sizes), database["pgbouncer_default_pool_size"]),
        "pgbouncer_max_client_conn": (smallest(client_limits), database["pgbouncer_max_client_conn"]),
        "redis_hosts": (len(redis_hosts), cache["masters"] + cache["replicas"]),
        "redis_cache_memory_mb": (smallest(cache_sizes), cache_need_mb(plan, options)),
    }
    return {name: {"have": have, "need": need} for name, (have, need) in figures.items()}


def capacity_headroom(
    moas: object,
    users: object,
    groups: object,
    hostvars: object,
    options: object = None,
    defaults: object = None,
    label: object = "the plan",
) -> dict[str, Any]:
    """Find the maximum number of users the inventory carries for ``moas`` MOAs, and compare it with ``users``.

    A user count fits when ``capacity_shortfalls`` and ``runtime_shortfalls``
    both return nothing for ``capacity_plan(moas, count, **options)``. No
    plan figure falls when the user count grows, so a binary search finds
    the largest count that fits. ``first_limits`` lists the shortfalls one
    user beyond it: what runs out first.
    """
    moa_count = as_count("moas", moas)
    user_count = as_count("users", users)
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise AnsibleFilterError(f"options must be a dict of capacity_plan options, got {describe_type(options)}")
    checked_defaults = check_inventory(groups, hostvars, defaults)

    def shortfalls_at(count: int) -> list[str]:
        plan = capacity_plan(moa_count, count, **options)
        messages = capacity_shortfalls(plan, groups, hostvars, label=label, defaults=checked_defaults)
        return messages + runtime_shortfalls(
            plan, groups, hostvars, label=label, defaults=checked_defaults, options=options
        )

    at_least = False
    if shortfalls_at(1):
        carried = 0
    elif not shortfalls_at(HEADROOM_SEARCH_LIMIT):
        carried = HEADROOM_SEARCH_LIMIT
        at_least = True
    else:
        # Invariant: `low` fits and `high` does not.
        low, high = 1, HEADROOM_SEARCH_LIMIT
        while high - low > 1:
            middle = (low + high) // 2
            if shortfalls_at(middle):
                high = middle
            else:
                low = middle
        carried = low

    plan = capacity_plan(moa_count, user_count, **options)
    return {
        "moas": moa_count,
        "users": user_count,
        "max_users": carried,
        "max_users_is_search_limit": at_least,
        "headroom_users": carried - user_count,
        "headroom_percent": round(100 * (carried - user_count) / user_count),
        "first_limits": [] if at_least else shortfalls_at(carried + 1),
        "figures": inventory_figures(plan, groups, hostvars, checked_defaults, options),
    }
