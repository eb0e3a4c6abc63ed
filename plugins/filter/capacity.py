"""Capacity planning filters for the BMMS stack.

``capacity_plan`` sizes every tier from the number of MOAs and concurrent
users. ``capacity_shortfalls``, implemented in plugin_utils, compares such a
plan with what an inventory provides. Their documentation lives beside this
file in ``capacity_plan.yml`` and ``capacity_shortfalls.yml`` because this
file contains two filters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.bmms.platform.plugins.plugin_utils.capacity_shortfalls import (
    capacity_shortfalls,
)
from ansible_collections.bmms.platform.plugins.plugin_utils.values import (
    as_count,
    describe_type,
)

# Memory and storage use binary units (1 GB = 1024 MB), as PostgreSQL and
# Redis read "16GB". Network figures use decimal units (1 KB = 1000 bytes).
MB_PER_GB = 1024
BYTES_PER_KB = 1000
BITS_PER_GBPS = 10**9


@dataclass(frozen=True)
class Option:
    """Default, unit and accepted range of one planning assumption."""

    default: int | float
    unit: str
    minimum: int | float = 0
    exclusive_minimum: bool = False
    maximum: int | float | None = None
    integer: bool = False
    odd: bool = False


# Every assumption behind the plan. The defaults reproduce the reference
# deployment of 44 MOAs and 1000 users. docs/capacity-planning.md explains
# each option.
OPTIONS: dict[str, Option] = {
    # PostgreSQL and PgBouncer
    "connections_per_user": Option(3, "connections", exclusive_minimum=True),
    "celery_connections": Option(50, "connections", integer=True),
    "overhead_connections": Option(50, "connections", integer=True),
    "headroom": Option(0.2, "fraction"),
    "pgbouncer_clients_per_user": Option(1, "connections", exclusive_minimum=True),
    "pgbouncer_users_per_server_connection": Option(
        20, "users", exclusive_minimum=True
    ),
    "pgbouncer_minimum_default_pool_size": Option(
        10, "connections", minimum=1, integer=True
    ),
    "db_mb_per_user": Option(10, "MB"),
    "db_mb_per_moa": Option(125, "MB"),
    "shared_buffers_ratio": Option(0.25, "fraction", exclusive_minimum=True, maximum=1),
    "work_mem_mb": Option(16, "MB", minimum=1, integer=True),
    "users_per_read_replica": Option(1000, "users", exclusive_minimum=True),
    "min_read_replicas": Option(2, "replicas", minimum=1, integer=True),
    "backup_retention_days": Option(30, "days", minimum=1, integer=True),
    "full_backup_interval_days": Option(7, "days", minimum=1, integer=True),
    "wal_ratio_per_day": Option(0.05, "fraction of the database per day"),
    # Gunicorn application servers
    "users_per_app_server": Option(200, "users", exclusive_minimum=True),
    "app_cores_per_server": Option(8, "cores", minimum=1, integer=True),
    "gunicorn_threads": Option(2, "threads", minimum=1, integer=True),
    "app_ram_gb_per_worker": Option(0.25, "GB", exclusive_minimum=True),
    "os_ram_gb": Option(1, "GB"),
    # Redis and Sentinel
    "cache_mb_per_user": Option(6, "MB", exclusive_minimum=True),
    "redis_replicas": Option(2, "instances", minimum=1, integer=True),
    "sentinels": Option(3, "instances", minimum=3, integer=True, odd=True),
    # Celery
    "users_per_celery_worker": Option(200, "users", exclusive_minimum=True),
    "celery_cores_per_worker": Option(2, "cores", minimum=1, integer=True),
    "celery_processes_per_core": Option(2, "processes", minimum=1, integer=True),
    "celery_ram_gb_per_process": Option(0.25, "GB", exclusive_minimum=True),
    # Storage
    "uploads_mb_per_moa": Option(200, "MB"),
    "static_gb": Option(1, "GB"),
    "media_cache_ratio": Option(0.2, "fraction of uploads"),
    "logs_mb_per_user": Option(20, "MB"),
    "storage_increment_gb": Option(100, "GB", minimum=1, integer=True),
    # Network
    "requests_per_user_per_minute": Option(10, "requests", exclusive_minimum=True),
    "peak_factor": Option(2, "times the average", minimum=1),
    "request_size_kb": Option(500, "KB", exclusive_minimum=True),
    # Monthly unit prices in USD
    "app_server_usd": Option(150, "USD per server"),
    "db_primary_usd": Option(200, "USD per server"),
    "db_replica_usd": Option(100, "USD per server"),
    "cache_node_usd": Option(50, "USD per Redis host"),
    "load_balancer_usd": Option(50, "USD"),
    "storage_usd_per_gb": Option(0.10, "USD per GB"),
    "backup_storage_usd_per_gb": Option(0, "USD per GB"),
    "bandwidth_usd_per_gbps": Option(25, "USD per whole Gbps"),
}


def exact(value: int | float) -> Fraction:
    """Convert a number to a Fraction with no binary rounding error (0.1 is 1/10)."""
    if isinstance(value, float):
        return Fraction(repr(value))
    return Fraction(value)


def check_option(name: str, value: object) -> Fraction:
    """Validate one planning option against its ``Option`` and return it exactly."""
    spec = OPTIONS[name]
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not is_number or not math.isfinite(value):
        raise AnsibleFilterError(
            f"option {name} must be a number in {spec.unit},"
            f" got {value!r} ({describe_type(value)})"
        )
    if spec.integer and not float(value).is_integer():
        raise AnsibleFilterError(
            f"option {name} must be a whole number of {spec.unit}, got {value!r}"
        )
    if spec.exclusive_minimum and value <= spec.minimum:
        raise AnsibleFilterError(
            f"option {name} must be greater than {spec.minimum} {spec.unit},"
            f" got {value!r}"
        )
    if value < spec.minimum:
        raise AnsibleFilterError(
            f"option {name} must be at least {spec.minimum} {spec.unit}, got {value!r}"
        )
    if spec.maximum is not None and value > spec.maximum:
        raise AnsibleFilterError(
            f"option {name} must be at most {spec.maximum} {spec.unit}, got {value!r}"
        )
    if spec.odd and int(value) % 2 == 0:
        raise AnsibleFilterError(
            f"option {name} must be odd so that a majority quorum exists,"
            f" got {value!r}; use {int(value) + 1}"
        )
    return exact(value)


# Converted once, because building these Fractions on every call took a
# quarter of the time of a plan.
DEFAULT_VALUES = {name: exact(spec.default) for name, spec in OPTIONS.items()}

Options = dict[str, Fraction]


def resolve_options(overrides: Mapping[str, object]) -> Options:
    """Merge caller overrides into the defaults, rejecting unknown or invalid ones."""
    unknown = sorted(set(overrides) - set(OPTIONS))
    if unknown:
        raise AnsibleFilterError(
            f"unknown capacity_plan option(s) {', '.join(unknown)};"
            f" valid options are {', '.join(OPTIONS)}"
        )
    options = dict(DEFAULT_VALUES)
    for name, value in overrides.items():
        options[name] = check_option(name, value)
    return options


# Rounding rules, named so that the plan below reads as its documentation.


def ceil(value: Fraction) -> int:
    return math.ceil(value)


def round_half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


def ceil_to_step(value: Fraction, step: Fraction) -> int:
    return int(math.ceil(value / step) * step)


def next_power_of_two(value: int) -> int:
    return 1 << max(value - 1, 0).bit_length()


def mb_to_gb(megabytes: Fraction) -> Fraction:
    return megabytes / MB_PER_GB


def plan_database(
    moas: int, users: int, celery_processes: int, options: Options
) -> dict[str, int]:
    """Size PostgreSQL and PgBouncer."""
    # One connection per Celery process plus beat, or the configured floor.
    celery_connections = max(options["celery_connections"], celery_processes + 1)
    connections = (
        users * options["connections_per_user"]
        + celery_connections
        + options["overhead_connections"]
    )
    pool_size = max(
        int(options["pgbouncer_minimum_default_pool_size"]),
        ceil(users / options["pgbouncer_users_per_server_connection"]),
    )

    database_mb = users * options["db_mb_per_user"] + moas * options["db_mb_per_moa"]
    storage_gb = max(1, ceil(mb_to_gb(database_mb)))
    # RAM is sized so that the whole database fits in shared_buffers.
    shared_buffers_ratio = options["shared_buffers_ratio"]
    ram_gb = next_power_of_two(ceil(storage_gb / shared_buffers_ratio))

    read_replicas = max(
        int(options["min_read_replicas"]),
        ceil(users / options["users_per_read_replica"]),
    )
    return {
        "max_connections": ceil(connections * (1 + options["headroom"])),
        "pgbouncer_max_client_conn": ceil(
            users * options["pgbouncer_clients_per_user"]
        ),
        "pgbouncer_default_pool_size": pool_size,
        "storage_gb": storage_gb,
        "ram_gb": ram_gb,
        "shared_buffers_gb": max(1, ceil(ram_gb * shared_buffers_ratio)),
        "work_mem_mb": int(options["work_mem_mb"]),
        "read_replicas": read_replicas,
        "backup_retention_days": int(options["backup_retention_days"]),
        # A full base backup is at most the size of the database.
        "backup_size_gb": storage_gb,
    }


def plan_app(users: int, options: Options) -> dict[str, int]:
    """Size the Gunicorn application servers."""
    servers = ceil(users / options["users_per_app_server"])
    cores = int(options["app_cores_per_server"])
    workers = 2 * cores + 1  # Gunicorn's recommended starting point
    ram_gb = ceil(workers * options["app_ram_gb_per_worker"] + options["os_ram_gb"])
    return {
        "servers": servers,
        "cores_per_server": cores,
        "ram_gb_per_server": ram_gb,
        "gunicorn_workers": workers,
        "gunicorn_threads": int(options["gunicorn_threads"]),
        "users_per_server": ceil(options["users_per_app_server"]),
        "total_cores": servers * cores,
        "total_ram_gb": servers * ram_gb,
    }


def plan_cache(users: int, options: Options) -> dict[str, int]:
    """Size Redis (one master plus replicas) and Sentinel."""
    cache_gb = max(1, ceil(mb_to_gb(users * options["cache_mb_per_user"])))
    memory_gb = next_power_of_two(cache_gb)
    replicas = int(options["redis_replicas"])
    sentinels = int(options["sentinels"])
    return {
        "memory_gb_per_instance": memory_gb,
        "masters": 1,
        "replicas": replicas,
        "sentinels": sentinels,
        "sentinel_quorum": sentinels // 2 + 1,
        "total_memory_gb": (1 + replicas) * memory_gb,
    }


def plan_celery(users: int, options: Options) -> dict[str, int]:
    """Size the Celery workers. Exactly one beat instance always runs."""
    workers = ceil(users / options["users_per_celery_worker"])
    cores = int(options["celery_cores_per_worker"])
    concurrency = cores * int(options["celery_processes_per_core"])
    process_ram_gb = concurrency * options["celery_ram_gb_per_process"]
    ram_gb = ceil(process_ram_gb + options["os_ram_gb"])
    return {
        "workers": workers,
        "cores_per_worker": cores,
        "ram_gb_per_worker": ram_gb,
        "total_cores": workers * cores,
        "total_ram_gb": workers * ram_gb,
        "concurrency": concurrency,
        "beat_instances": 1,
    }


def plan_storage(
    moas: int, users: int, database: Mapping[str, int], options: Options
) -> dict[str, int]:
    """Size file storage and the backup target."""
    headroom = 1 + options["headroom"]
    step = options["storage_increment_gb"]
    uploads_gb = ceil(mb_to_gb(moas * options["uploads_mb_per_moa"]))
    static_gb = ceil(options["static_gb"])
    media_cache_gb = ceil(uploads_gb * options["media_cache_ratio"])
    logs_gb = ceil(mb_to_gb(users * options["logs_mb_per_user"]))
    database_gb = database["storage_gb"]
    data_gb = database_gb + uploads_gb + static_gb + media_cache_gb + logs_gb

    # Keep enough full base backups that the oldest one still predates the
    # retention window, the WAL archive for that window, and one
    # deduplicated copy of the uploads.
    retention = options["backup_retention_days"]
    full_backups = ceil(retention / options["full_backup_interval_days"]) + 1
    wal_gb = retention * options["wal_ratio_per_day"] * database_gb
    backup_gb = full_backups * database["backup_size_gb"] + wal_gb + uploads_gb
    return {
        "total_gb": ceil_to_step(data_gb * headroom, step),
        "uploads_gb": uploads_gb,
        "static_gb": static_gb,
        "media_cache_gb": media_cache_gb,
        "logs_gb": logs_gb,
        "backup_gb": ceil_to_step(backup_gb * headroom, step),
    }


def plan_network(users: int, options: Options) -> dict[str, int | float]:
    """Estimate request rates and the peak bandwidth at the load balancer."""
    average = users * options["requests_per_user_per_minute"] / 60
    # Rates are rounded to the nearest request and never shown as zero.
    average_rps = max(1, round_half_up(average))
    peak_rps = max(1, round_half_up(average * options["peak_factor"]))
    bits_per_second = peak_rps * options["request_size_kb"] * BYTES_PER_KB * 8
    tenths_of_gbps = ceil(bits_per_second * 10 / BITS_PER_GBPS)
    return {
        "average_rps": average_rps,
        "peak_rps": peak_rps,
        "bandwidth_gbps": tenths_of_gbps / 10,
    }


def plan_cost(
    plan: Mapping[str, Mapping[str, Any]], options: Options
) -> dict[str, int]:
    """Price the plan per month, each line rounded up to a whole dollar."""
    # NOTE: like the reference report, this prices no separate hosts for
    # Celery workers, PgBouncer, Sentinel or monitoring. Raise the unit
    # prices if they run on hosts of their own.
    database = plan["database"]
    cache = plan["cache"]
    storage = plan["storage"]
    replicas_usd = database["read_replicas"] * options["db_replica_usd"]
    storage_usd = storage["total_gb"] * options["storage_usd_per_gb"]
    backup_usd = storage["backup_gb"] * options["backup_storage_usd_per_gb"]
    whole_gbps = math.ceil(exact(plan["network"]["bandwidth_gbps"]))
    lines = {
        "app_servers": ceil(plan["app"]["servers"] * options["app_server_usd"]),
        "database": ceil(options["db_primary_usd"] + replicas_usd),
        "cache": ceil(
            (cache["masters"] + cache["replicas"]) * options["cache_node_usd"]
        ),
        "load_balancer": ceil(options["load_balancer_usd"]),
        "storage": ceil(storage_usd + backup_usd),
        "bandwidth": ceil(whole_gbps * options["bandwidth_usd_per_gbps"]),
    }
    monthly = sum(lines.values())
    return {**lines, "monthly_total": monthly, "annual_total": 12 * monthly}


def capacity_plan(
    moas: object, users: object, **overrides: object
) -> dict[str, dict[str, Any]]:
    """Size the whole stack for ``moas`` agencies and ``users`` concurrent users.

    Keyword arguments override the assumptions listed in ``OPTIONS``. Raises
    ``AnsibleFilterError`` for inputs that are not whole numbers of at least
    1, for unknown options and for option values out of range.
    """
    moa_count = as_count("moas", moas)
    user_count = as_count("users", users)
    options = resolve_options(overrides)

    app = plan_app(user_count, options)
    celery = plan_celery(user_count, options)
    celery_processes = celery["workers"] * celery["concurrency"]
    database = plan_database(moa_count, user_count, celery_processes, options)
    plan: dict[str, dict[str, Any]] = {
        "inputs": {
            "moas": moa_count,
            "users": user_count,
            "users_per_moa": math.ceil(Fraction(user_count, moa_count)),
        },
        "database": database,
        "app": app,
        "cache": plan_cache(user_count, options),
        "celery": celery,
        "storage": plan_storage(moa_count, user_count, database, options),
        "network": plan_network(user_count, options),
    }
    plan["cost_usd"] = plan_cost(plan, options)
    return plan


class FilterModule:
    """Map the filter names to their functions."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "capacity_plan": capacity_plan,
            "capacity_shortfalls": capacity_shortfalls,
        }
