"""Filters of the wave rollout playbook (playbooks/wave_rollout.yml).

The logic lives in plugin_utils (rollout_plan, rollout_csv,
rollout_capacity and rollout_results) so that unit tests call it without Ansible's templating.
Each filter's documentation is in the file of its name beside this one,
because this file contains several filters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.bmms.platform.plugins.plugin_utils.rollout_capacity import (
    capacity_headroom,
    runtime_shortfalls,
)
from ansible_collections.bmms.platform.plugins.plugin_utils.rollout_csv import check_wave_csvs
from ansible_collections.bmms.platform.plugins.plugin_utils.rollout_results import (
    build_record,
    build_summary,
    email_outcome,
    verify_users,
)
from ansible_collections.bmms.platform.plugins.plugin_utils.rollout_plan import (
    order_problems,
    wave_records,
    wave_totals,
)


class FilterModule:
    """Map the filter names to their functions."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "rollout_wave": wave_totals,
            "rollout_records": wave_records,
            "rollout_order_problems": order_problems,
            "rollout_csv_check": check_wave_csvs,
            "rollout_runtime_shortfalls": runtime_shortfalls,
            "rollout_capacity_headroom": capacity_headroom,
            "rollout_verify_users": verify_users,
            "rollout_email_outcome": email_outcome,
            "rollout_record": build_record,
            "rollout_summary": build_summary,
        }
