"""Lab specification: which hosts to boot, read from an Ansible inventory.

An inventory becomes a lab when its `all` group sets two variables and every
host sets `ansible_host` to an address inside the subnet. `bmms_lab_name` is
a short prefix carried by everything the lab creates. `bmms_lab_subnet` is an
IPv4 network whose first address goes to the bridge.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bmms_lab.system import LabError

STATE_ROOT = Path("/var/lib/bmms-lab")
CACHE_ROOT = Path("/var/cache/bmms-lab")
SSH_KEY = STATE_ROOT / "ssh" / "id_ed25519"
LAB_USER = "ansible"

# Interface names may have at most 15 characters: "bm<name>-<index>" with an
# eight-character name and a three-digit index is 14.
_LAB_NAME = re.compile(r"^[a-z][a-z0-9]{0,7}$")
_HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
MAX_HOSTS = 200


@dataclass(frozen=True)
class LabHost:
    """One lab host and the names of everything the lab creates for it."""

    lab: str
    name: str
    address: ipaddress.IPv4Address
    index: int

    @property
    def netns(self) -> str:
        return f"bmms-{self.lab}-{self.name}"

    @property
    def machine(self) -> str:
        return f"bmms-{self.lab}-{self.name}"

    @property
    def veth(self) -> str:
        return f"bm{self.lab}-{self.index}"

    @property
    def directory(self) -> Path:
        return STATE_ROOT / self.lab / "hosts" / self.name


@dataclass(frozen=True)
class LabSpec:
    """A validated lab: its name, subnet and hosts."""

    name: str
    subnet: ipaddress.IPv4Network
    hosts: tuple[LabHost, ...]

    @property
    def bridge(self) -> str:
        return f"bm-{self.name}"

    @property
    def bridge_address(self) -> ipaddress.IPv4Address:
        return next(self.subnet.hosts())

    @property
    def directory(self) -> Path:
        return STATE_ROOT / self.name


def check_lab_name(name: Any) -> str:
    """Validate a lab name and return it."""
    if not isinstance(name, str) or not _LAB_NAME.match(name):
        raise LabError(
            f"invalid lab name {name!r}: set bmms_lab_name to 1 to 8 lower-case letters "
            "or digits, starting with a letter (it prefixes every bridge, namespace and machine)"
        )
    return name


def spec_from_inventory_data(data: dict[str, Any]) -> LabSpec:
    """Build a LabSpec from the JSON that `ansible-inventory --list --export` prints.

    Raises LabError naming the variable or host to fix.
    """
    hostvars: dict[str, dict[str, Any]] = data.get("_meta", {}).get("hostvars", {})
    all_vars = data.get("all", {}).get("vars", {})
    host_names = sorted(hostvars) or sorted(_hosts_of_groups(data))
    if not host_names:
        raise LabError("the inventory has no hosts: add at least one host with ansible_host")

    first_vars = hostvars.get(host_names[0], {})
    name = check_lab_name(all_vars.get("bmms_lab_name", first_vars.get("bmms_lab_name")))
    subnet_text = all_vars.get("bmms_lab_subnet", first_vars.get("bmms_lab_subnet"))
    subnet = _parse_subnet(subnet_text)
    bridge_address = next(subnet.hosts())

    if len(host_names) > MAX_HOSTS:
        raise LabError(f"the inventory has {len(host_names)} hosts; a lab supports at most {MAX_HOSTS}")

    hosts: list[LabHost] = []
    owners: dict[ipaddress.IPv4Address, str] = {}
    for index, host_name in enumerate(host_names, start=1):
        if not _HOST_NAME.match(host_name):
            raise LabError(
                f"invalid lab host name {host_name!r}: use lower-case letters, digits and "
                "hyphens (at most 32), because it becomes the host's hostname"
            )
        address_text = hostvars.get(host_name, {}).get("ansible_host")
        if not address_text:
            raise LabError(f"host {host_name} has no address: set ansible_host to an address in {subnet}")
        try:
            address = ipaddress.IPv4Address(str(address_text))
        except ValueError as error:
            raise LabError(
                f"host {host_name} has an invalid ansible_host {address_text!r}: use an IPv4 address in {subnet}"
            ) from error
        if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
            raise LabError(f"host {host_name} address {address} is not a host address of bmms_lab_subnet {subnet}")
        if address == bridge_address:
            raise LabError(
                f"host {host_name} address {address} is the bridge's address: "
                f"the lab gives the first address of {subnet} to the bridge"
            )
        if address in owners:
            raise LabError(f"hosts {owners[address]} and {host_name} both use address {address}: give each its own")
        owners[address] = host_name
        hosts.append(LabHost(lab=name, name=host_name, address=address, index=index))

    return LabSpec(name=name, subnet=subnet, hosts=tuple(hosts))


def _hosts_of_groups(data: dict[str, Any]) -> set[str]:
    hosts: set[str] = set()
    for group in data.values():
        if isinstance(group, dict):
            hosts.update(group.get("hosts", []))
    return hosts


def _parse_subnet(text: Any) -> ipaddress.IPv4Network:
    if not text:
        raise LabError("bmms_lab_subnet is missing: set it in the inventory's all group, for example 10.77.1.0/24")
    try:
        subnet = ipaddress.IPv4Network(str(text), strict=True)
    except ValueError as error:
        raise LabError(
            f"invalid bmms_lab_subnet {text!r}: use an IPv4 network such as 10.77.1.0/24 ({error})"
        ) from error
    if not 16 <= subnet.prefixlen <= 29:
        raise LabError(f"bmms_lab_subnet {subnet} must have a prefix length from /16 to /29")
    if not subnet.is_private:
        raise LabError(f"bmms_lab_subnet {subnet} is not a private network: choose one inside 10.0.0.0/8 or 172.16.0.0/12")
    return subnet


def load_spec(inventory: Path) -> LabSpec:
    """Read an inventory with ansible-inventory and build its LabSpec."""
    if not inventory.exists():
        raise LabError(f"inventory not found: {inventory}")
    command = _ansible_inventory_command()
    result = subprocess.run(
        # --export keeps variables as written: it does not evaluate lookups
        # (which could create or print secrets) and keeps group vars in
        # their groups.
        [*command, "-i", str(inventory), "--list", "--export"],
        text=True,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise LabError(f"ansible-inventory failed to read {inventory}:\n{result.stderr.strip()}")
    return spec_from_inventory_data(json.loads(result.stdout))


def _ansible_inventory_command() -> list[str]:
    beside_python = Path(sys.executable).with_name("ansible-inventory")
    if beside_python.exists():
        return [str(beside_python)]
    found = shutil.which("ansible-inventory")
    if found is None:
        raise LabError("ansible-inventory not found: run scripts/setup.sh to install the toolchain")
    return [found]


def check_address_clash(spec: LabSpec, routes: list[dict[str, Any]]) -> None:
    """Reject a subnet that overlaps a route of another interface on this machine.

    `routes` is the JSON of `ip -j -4 route show table all`.
    """
    for route in routes:
        destination = route.get("dst")
        device = route.get("dev")
        if not destination or destination == "default" or device == spec.bridge:
            continue
        if route.get("type") in ("local", "broadcast"):
            continue
        try:
            network = ipaddress.IPv4Network(destination if "/" in destination else f"{destination}/32", strict=False)
        except ValueError:
            continue
        if network.is_loopback:
            continue
        if network.overlaps(spec.subnet):
            raise LabError(
                f"bmms_lab_subnet {spec.subnet} overlaps {network} on interface {device}: "
                "choose a free subnet for this lab"
            )
