"""Comparison of a capacity plan with what an inventory provides.

This is the logic of the ``bmms.platform.capacity_shortfalls`` filter. Each
check returns sentences that name the host or group, what it has and what
the plan needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.bmms.platform.plugins.plugin_utils.values import (
    as_count,
    describe_type,
)

MB_PER_GB = 1024

# Groups that the collection's roles use.
WEB_GROUP = "web"
CELERY_GROUP = "celery_worker"
PRIMARY_GROUP = "postgres_primary"
REPLICA_GROUP = "postgres_replicas"
PGBOUNCER_GROUP = "pgbouncer"
REDIS_GROUP = "redis"
SENTINEL_GROUP = "redis_sentinel"

# Figures of a capacity_plan result that the checks read, per section.
PLAN_FIGURES = {
    "inputs": ("users",),
    "database": (
        "read_replicas",
        "pgbouncer_max_client_conn",
        "pgbouncer_default_pool_size",
    ),
    "app": ("servers", "cores_per_server", "ram_gb_per_server"),
    "celery": ("workers", "cores_per_worker", "ram_gb_per_worker"),
    "cache": ("masters", "replicas", "sentinels", "sentinel_quorum"),
}

# Inventory variables read per host, each with the value used when neither
# the host nor the caller's defaults set it. Those are PgBouncer's and
# PostgreSQL's own defaults where they exist. None means "report as not set".
INVENTORY_VARIABLES: dict[str, int | None] = {
    "postgresql_max_connections": None,
    "postgresql_superuser_reserved_connections": 3,
    "pgbouncer_default_pool_size": None,
    "pgbouncer_reserve_pool_size": 0,
    "pgbouncer_max_client_conn": None,
}

Plan = Mapping[str, Mapping[str, int]]


def check_plan(plan: object) -> Plan:
    """Verify that ``plan`` has the figures the checks read, and return it."""
    if not isinstance(plan, Mapping):
        raise AnsibleFilterError(
            "capacity_shortfalls expects the dict returned by capacity_plan,"
            f" got {describe_type(plan)}"
        )
    for section, keys in PLAN_FIGURES.items():
        figures = plan.get(section)
        if not isinstance(figures, Mapping):
            raise AnsibleFilterError(
                f"the plan has no {section!r} section; pass the output of"
                " capacity_plan"
            )
        for key in keys:
            value = figures.get(key)
            if isinstance(value, bool) or not isinstance(value, int):
                raise AnsibleFilterError(
                    f"the plan's {section}.{key} must be an integer, got {value!r};"
                    " pass the output of capacity_plan"
                )
    return plan


def group_hosts(groups: Mapping[str, object], name: str) -> list[str]:
    """Return the hosts of one inventory group, or [] if the group does not exist."""
    hosts = groups.get(name) or []
    if isinstance(hosts, str) or not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError(
            f"groups[{name!r}] must be a list of host names, got {describe_type(hosts)}"
        )
    return [str(host) for host in hosts]


def host_integer(
    hostvars: Mapping[str, Any],
    host: str,
    variable: str,
    defaults: Mapping[str, object],
) -> int | None:
    """Read a whole-number variable of ``host``, falling back to ``defaults``.

    Returns None when neither sets it and no default is known. A string of
    digits, as an INI inventory may give, counts as a number.
    """
    variables = hostvars.get(host) or {}
    value = variables.get(variable)
    if value is None:
        value = defaults.get(variable, INVENTORY_VARIABLES.get(variable))
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise AnsibleFilterError(
            f"{variable} on {host} must be a whole number of at least 0,"
            f" got {value!r} ({describe_type(value)})"
        )
    return value


def host_fact(hostvars: Mapping[str, Any], host: str, fact: str) -> int | None:
    """Read an integer fact from ``ansible_facts``, then its ``ansible_`` variable."""
    variables = hostvars.get(host) or {}
    facts = variables.get("ansible_facts") or {}
    value = facts.get(fact)
    if value is None:
        value = variables.get(f"ansible_{fact}")
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def host_count_shortfalls(
    plan: Plan, groups: Mapping[str, object], label: str
) -> list[str]:
    """Compare the planned number of hosts in each group with the inventory."""
    users = plan["inputs"]["users"]
    cache = plan["cache"]
    for_users = f" for {users} users"
    required = [
        (WEB_GROUP, plan["app"]["servers"], "web servers", for_users),
        (CELERY_GROUP, plan["celery"]["workers"], "Celery workers", for_users),
        (PRIMARY_GROUP, 1, "PostgreSQL primary", ""),
        (
            REPLICA_GROUP,
            plan["database"]["read_replicas"],
            "PostgreSQL read replicas",
            for_users,
        ),
        (
            REDIS_GROUP,
            cache["masters"] + cache["replicas"],
            "Redis hosts",
            f" ({cache['masters']} master and {cache['replicas']} replicas)",
        ),
    ]
    messages = []
    for group, needed, kind, reason in required:
        have = len(group_hosts(groups, group))
        if have < needed:
            messages.append(
                f"{label} needs {needed} {kind}{reason}; the inventory has {have}"
                f" (group '{group}')"
            )

    sentinels = len(group_hosts(groups, SENTINEL_GROUP))
    if sentinels < cache["sentinels"] or sentinels % 2 == 0:
        messages.append(
            f"{label} needs an odd number of Sentinels, at least {cache['sentinels']},"
            f" so that a quorum of {cache['sentinel_quorum']} is a majority;"
            f" the inventory has {sentinels} (group '{SENTINEL_GROUP}')"
        )
    return messages


def host_size_shortfalls(
    plan: Plan,
    groups: Mapping[str, object],
    hostvars: Mapping[str, Any],
    label: str,
    memory_tolerance: float,
) -> list[str]:
    """Compare vCPUs and memory of web and Celery hosts with the plan.

    A host in both groups must provide the sum of both roles. Memory passes
    when MemTotal reaches ``1 - memory_tolerance`` of the planned RAM,
    because the kernel keeps part of the installed memory for itself.
    """
    app = plan["app"]
    celery = plan["celery"]
    roles = {
        WEB_GROUP: ("web server", app["cores_per_server"], app["ram_gb_per_server"]),
        CELERY_GROUP: (
            "Celery worker",
            celery["cores_per_worker"],
            celery["ram_gb_per_worker"],
        ),
    }
    host_roles: dict[str, list[tuple[str, int, int]]] = {}
    for group, role in roles.items():
        for host in group_hosts(groups, group):
            host_roles.setdefault(host, []).append(role)

    messages = []
    for host, roles_on_host in host_roles.items():
        names = " and ".join(name for name, _, _ in roles_on_host)
        cores = sum(role_cores for _, role_cores, _ in roles_on_host)
        ram_gb = sum(role_ram_gb for _, _, role_ram_gb in roles_on_host)
        vcpus = host_fact(hostvars, host, "processor_vcpus")
        memtotal_mb = host_fact(hostvars, host, "memtotal_mb")
        if vcpus is None or memtotal_mb is None:
            messages.append(
                f"{host} has no gathered facts (processor_vcpus, memtotal_mb), so its"
                " size cannot be checked; gather facts for it first"
            )
            continue
        if vcpus < cores:
            messages.append(
                f"{host} has {vcpus} vCPUs; {label} needs {cores} for a {names}"
            )
        if memtotal_mb < ram_gb * MB_PER_GB * (1 - memory_tolerance):
            messages.append(
                f"{host} has {memtotal_mb} MB of memory (MemTotal); {label} needs"
                f" {ram_gb} GB for a {names}"
            )
    return messages


def pgbouncer_shortfalls(
    plan: Plan,
    groups: Mapping[str, object],
    hostvars: Mapping[str, Any],
    label: str,
    defaults: Mapping[str, object],
    pools_per_pgbouncer: int,
) -> tuple[list[str], int | None]:
    """Check each PgBouncer's pool size and client limit against the plan.

    Returns the messages and the number of server connections all PgBouncer
    hosts together can open: ``(default_pool_size + reserve_pool_size)`` per
    pool. The number is None when a host does not set its pool size.
    """
    database = plan["database"]
    messages = []
    demand: int | None = 0
    for host in group_hosts(groups, PGBOUNCER_GROUP):
        pool_size = host_integer(
            hostvars, host, "pgbouncer_default_pool_size", defaults
        )
        reserve = host_integer(hostvars, host, "pgbouncer_reserve_pool_size", defaults)
        client_limit = host_integer(
            hostvars, host, "pgbouncer_max_client_conn", defaults
        )
        if pool_size is None:
            messages.append(
                f"{host} does not set pgbouncer_default_pool_size; set it or pass it"
                " in defaults"
            )
            demand = None
        else:
            if demand is not None:
                demand += (pool_size + (reserve or 0)) * pools_per_pgbouncer
            if pool_size < database["pgbouncer_default_pool_size"]:
                messages.append(
                    f"{host} has pgbouncer_default_pool_size {pool_size}; {label}"
                    f" needs {database['pgbouncer_default_pool_size']}"
                )
        if client_limit is None:
            messages.append(
                f"{host} does not set pgbouncer_max_client_conn; set it or pass it"
                " in defaults"
            )
        elif client_limit < database["pgbouncer_max_client_conn"]:
            messages.append(
                f"{host} has pgbouncer_max_client_conn {client_limit}; {label} needs"
                f" {database['pgbouncer_max_client_conn']}"
            )
    return messages, demand


def max_connections_shortfalls(
    groups: Mapping[str, object],
    hostvars: Mapping[str, Any],
    defaults: Mapping[str, object],
    demand: int | None,
) -> list[str]:
    """Check max_connections on the primary and every replica.

    Each PostgreSQL host must accept all PgBouncer server connections plus
    its superuser_reserved_connections, because a promoted replica becomes
    the target of every pool. A replica must also allow at least the
    primary's max_connections.
    """
    primaries = group_hosts(groups, PRIMARY_GROUP)
    primary_limit = None
    if primaries:
        primary_limit = host_integer(
            hostvars, primaries[0], "postgresql_max_connections", defaults
        )

    messages = []
    for host in primaries + group_hosts(groups, REPLICA_GROUP):
        limit = host_integer(hostvars, host, "postgresql_max_connections", defaults)
        if limit is None:
            messages.append(
                f"{host} does not set postgresql_max_connections; set it or pass it"
                " in defaults"
            )
            continue
        reserved = host_integer(
            hostvars, host, "postgresql_superuser_reserved_connections", defaults
        )
        reserved = reserved or 0
        if demand is not None and limit < demand + reserved:
            messages.append(
                f"{host} has postgresql_max_connections {limit}, but the PgBouncer"
                f" pools can open {demand} server connections and {reserved} are"
                f" reserved for superusers; raise it to at least {demand + reserved}"
                " or shrink the pools"
            )
        is_replica = host not in primaries
        if is_replica and primary_limit is not None and limit < primary_limit:
            messages.append(
                f"{host} has postgresql_max_connections {limit}, lower than the"
                f" primary's {primary_limit}; raise it to at least {primary_limit},"
                " because PostgreSQL allows no queries on a standby set lower"
                " than its primary"
            )
    return messages


def check_memory_tolerance(value: object) -> float:
    valid = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not valid or not 0 <= value < 1:
        raise AnsibleFilterError(
            "memory_tolerance must be a fraction from 0 up to (not including) 1,"
            f" got {value!r}"
        )
    return float(value)


def capacity_shortfalls(
    plan: object,
    groups: object,
    hostvars: object,
    label: object = "the plan",
    defaults: object = None,
    pools_per_pgbouncer: object = 1,
    memory_tolerance: object = 0.1,
) -> list[str]:
    """List, in words an operator can act on, what the inventory lacks for ``plan``.

    ``groups`` and ``hostvars`` are Ansible's magic variables, or plain dicts
    shaped like them. ``defaults`` supplies values for inventory variables
    that hosts do not set, typically a role's defaults. Returns an empty list
    when the inventory provides everything. Raises ``AnsibleFilterError`` for
    arguments of the wrong type or range.
    """
    checked_plan = check_plan(plan)
    if not isinstance(groups, Mapping):
        raise AnsibleFilterError(
            "groups must be a dict of group names to host lists,"
            f" got {describe_type(groups)}"
        )
    if not isinstance(hostvars, Mapping):
        raise AnsibleFilterError(
            "hostvars must be a dict of host names to variables,"
            f" got {describe_type(hostvars)}"
        )
    if not isinstance(label, str) or not label.strip():
        raise AnsibleFilterError(
            f"label must be a non-empty string such as 'wave 5', got {label!r}"
        )
    if defaults is None:
        defaults = {}
    if not isinstance(defaults, Mapping):
        raise AnsibleFilterError(
            "defaults must be a dict of variable names to values,"
            f" got {describe_type(defaults)}"
        )
    pools = as_count("pools_per_pgbouncer", pools_per_pgbouncer)
    tolerance = check_memory_tolerance(memory_tolerance)

    messages = host_count_shortfalls(checked_plan, groups, label)
    messages += host_size_shortfalls(checked_plan, groups, hostvars, label, tolerance)
    pool_messages, demand = pgbouncer_shortfalls(
        checked_plan, groups, hostvars, label, defaults, pools
    )
    messages += pool_messages
    messages += max_connections_shortfalls(groups, hostvars, defaults, demand)
    return messages
