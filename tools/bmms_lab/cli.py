"""Command line of the lab: up, down, status, and the cache builds."""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import sys
from pathlib import Path

from bmms_lab import base, hosts, repo
from bmms_lab.spec import CACHE_ROOT, check_lab_name, load_spec
from bmms_lab.system import LabError, log

REQUIRED_COMMANDS = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "dpkg-scanpackages": "dpkg-dev",
    "ip": "iproute2",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "mount": "mount",
}


def check_controller() -> None:
    """Reject a controller that cannot run a lab, before anything is created."""
    if os.geteuid() != 0:
        raise LabError("the lab must run as root: it creates network namespaces, mounts and nspawn machines")
    missing = [f"{command} (package {package})" for command, package in REQUIRED_COMMANDS.items()
               if shutil.which(command) is None]
    if missing:
        raise LabError(f"missing commands: {', '.join(missing)}; run scripts/setup.sh to install them")


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lab", description="Real Debian 12 lab hosts for bmms.platform.")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="boot every host of an inventory (running hosts are left alone)")
    up.add_argument("-i", "--inventory", type=Path, required=True, help="Ansible inventory that describes the lab")

    down = commands.add_parser("down", help="remove everything a lab created; safe to run twice")
    target = down.add_mutually_exclusive_group(required=True)
    target.add_argument("-i", "--inventory", type=Path, help="inventory of the lab to remove")
    target.add_argument("--name", help="name of the lab to remove (bmms_lab_name)")

    status = commands.add_parser("status", help="list the hosts of a lab and whether they run")
    status.add_argument("--name", required=True, help="name of the lab (bmms_lab_name)")

    commands.add_parser("cache", help="build the base root, APT repository and wheelhouse without booting hosts")
    return parser.parse_args(argv)


def ensure_caches() -> tuple[Path, Path, Path]:
    """Build or reuse the base root, APT repository and wheelhouse.

    A lock serializes builds, so two labs started at once share one build.
    """
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with open(CACHE_ROOT / ".lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for staging in CACHE_ROOT.glob("*.staging"):
            log(f"removing unfinished cache {staging}")
            shutil.rmtree(staging, ignore_errors=True)
        root = base.ensure_base_root()
        repository = repo.ensure_repository(root)
        wheelhouse = repo.ensure_wheelhouse()
    return root, repository, wheelhouse


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    try:
        if arguments.command == "up":
            spec = load_spec(arguments.inventory)
            check_controller()
            caches = ensure_caches()
            hosts.up(spec, *caches)
        elif arguments.command == "down":
            name = check_lab_name(arguments.name) if arguments.name else load_spec(arguments.inventory).name
            check_controller()
            hosts.down(name)
        elif arguments.command == "status":
            for name, address, state in hosts.status(check_lab_name(arguments.name)):
                print(f"{name:20} {address:16} {state}")
        elif arguments.command == "cache":
            check_controller()
            ensure_caches()
    except LabError as error:
        log(f"error: {error}")
        return 1
    return 0
