"""Service address of an inventory host.

Documentation for ``ansible-doc`` lives beside this file in host_address.yml.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.bmms.platform.plugins.plugin_utils.values import (
    describe_type,
)


def is_ip_address(value: object) -> bool:
    """Return whether ``value`` is an IPv4 or IPv6 address string."""
    if not isinstance(value, str):
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def host_address(host_vars: Mapping[str, Any], override: str | None = None) -> str:
    """Return the address a host's services listen on and its peers connect to.

    In order: the variable named ``override`` when the inventory sets it,
    ``ansible_host`` when it is an IP address, then the fact
    ``ansible_default_ipv4.address``. Raise AnsibleFilterError naming the
    host when none of them gives an IP address.
    """
    if not isinstance(host_vars, Mapping):
        raise AnsibleFilterError(
            f"host_address expects a host's variables (hostvars[name]), got {describe_type(host_vars)}"
        )
    name = host_vars.get("inventory_hostname", "(unknown host)")
    if override and override in host_vars:
        value = host_vars[override]
        if not is_ip_address(value):
            raise AnsibleFilterError(f"{override} of host {name} must be an IP address, got {value!r}")
        return value
    ansible_host = host_vars.get("ansible_host")
    if is_ip_address(ansible_host):
        return ansible_host
    default_ipv4 = host_vars.get("ansible_default_ipv4") or {}
    fact = default_ipv4.get("address") if isinstance(default_ipv4, Mapping) else None
    if is_ip_address(fact):
        return fact
    fix = f"Set {override} or ansible_host to its IP address" if override else "Set ansible_host to its IP address"
    raise AnsibleFilterError(
        f"IP address of host {name} not found: ansible_host is {ansible_host!r} and"
        f" no facts were gathered. {fix}, or gather its facts earlier in the run"
    )


class FilterModule:
    """Address filters of bmms.platform."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"host_address": host_address}
