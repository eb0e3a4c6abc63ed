"""The local APT repository and the Python wheelhouse served to lab hosts.

Both are cached under CACHE_ROOT with keys made of their inputs. Packages are
downloaded by apt inside a throwaway overlay of the base root, so apt
resolves the same dependencies the hosts will, and the base root itself is
never written.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import sys
from pathlib import Path

from bmms_lab.base import MIRROR, SECURITY_MIRROR, SUITE, base_key, prune_old
from bmms_lab.spec import CACHE_ROOT
from bmms_lab.system import LabError, is_mounted, log, run, step, write_file

PACKAGES_FILE = Path(__file__).with_name("packages.txt")
WHEELS_FILE = Path(__file__).with_name("wheels.txt")


def read_list(path: Path) -> list[str]:
    """Read a list file: one entry a line, '#' starts a comment."""
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            entries.append(entry)
    return entries


def repository_key(packages: list[str]) -> str:
    digest = hashlib.sha256()
    digest.update(base_key().encode())
    digest.update(Path(__file__).read_bytes())
    digest.update("\n".join(sorted(packages)).encode())
    return digest.hexdigest()[:16]


def ensure_repository(base: Path) -> Path:
    """Build the local APT repository unless a cached one matches its inputs."""
    packages = read_list(PACKAGES_FILE)
    repository = CACHE_ROOT / f"apt-{repository_key(packages)}"
    if (repository / "Packages.gz").exists():
        log(f"APT repository cached: {repository}")
        return repository

    staging = repository.with_name(repository.name + ".staging")
    work = CACHE_ROOT / f"work-{os.getpid()}"
    for leftover in (staging, work):
        if leftover.exists():
            shutil.rmtree(leftover)
    (staging / "partial").mkdir(parents=True)
    merged = work / "merged"
    for directory in (work / "upper", work / "work", merged):
        directory.mkdir(parents=True)

    run(
        [
            "mount", "-t", "overlay", "overlay", "-o",
            f"lowerdir={base},upperdir={work / 'upper'},workdir={work / 'work'}",
            str(merged),
        ]
    )
    try:
        write_file(
            merged / "etc/apt/sources.list",
            f"deb {MIRROR} {SUITE} main\n"
            f"deb {MIRROR} {SUITE}-updates main\n"
            f"deb {SECURITY_MIRROR} {SUITE}-security main\n",
        )
        with step(f"download {len(packages)} packages and their dependencies"):
            run(
                [
                    "systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--resolv-conf=copy-host",
                    "-D", str(merged), f"--bind={staging}:/var/cache/apt/archives",
                    "--", "/bin/sh", "-c",
                    "apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
                    "apt-get install -y -qq --download-only --no-install-recommends " + " ".join(packages),
                ],
                timeout=3600,
            )
    finally:
        if is_mounted(merged):
            run(["umount", str(merged)])
        shutil.rmtree(work, ignore_errors=True)

    shutil.rmtree(staging / "partial", ignore_errors=True)
    (staging / "lock").unlink(missing_ok=True)
    debs = sorted(staging.glob("*.deb"))
    if not debs:
        raise LabError("apt downloaded no package: check that the Debian mirror is reachable")
    with step(f"index {len(debs)} packages"):
        index = _scan(staging)
        (staging / "Packages").write_text(index, encoding="utf-8")
        with gzip.open(staging / "Packages.gz", "wt", encoding="utf-8") as packed:
            packed.write(index)
    if repository.exists():
        shutil.rmtree(repository)
    staging.rename(repository)
    prune_old(prefix="apt-", keep=repository)
    return repository


def _scan(folder: Path) -> str:
    # dpkg-scanpackages writes paths relative to where it runs; the hosts'
    # sources.list points at the folder itself.
    current = os.getcwd()
    os.chdir(folder)
    try:
        return run(["dpkg-scanpackages", "--multiversion", "."], timeout=600).stdout
    finally:
        os.chdir(current)


def _platform_options() -> list[str]:
    # Debian 12 has glibc 2.36, so every manylinux tag up to 2_36 installs there.
    machine = os.uname().machine
    options = []
    for tag in ("manylinux2014", "manylinux_2_28", "manylinux_2_34", "manylinux_2_36"):
        options += ["--platform", f"{tag}_{machine}"]
    return options


def wheelhouse_key(requirements: list[str]) -> str:
    digest = hashlib.sha256()
    digest.update(Path(__file__).read_bytes())
    digest.update("\n".join(sorted(requirements)).encode())
    return digest.hexdigest()[:16]


def ensure_wheelhouse() -> Path:
    """Download the wheels lab hosts install, for CPython 3.11 on this architecture."""
    requirements = read_list(WHEELS_FILE)
    wheelhouse = CACHE_ROOT / f"wheels-{wheelhouse_key(requirements)}"
    if (wheelhouse / "complete").exists():
        log(f"wheelhouse cached: {wheelhouse}")
        return wheelhouse
    staging = wheelhouse.with_name(wheelhouse.name + ".staging")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    if requirements:
        with step(f"download {len(requirements)} Python requirements into the wheelhouse"):
            run(
                [
                    sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                    "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
                    *_platform_options(),
                    "--dest", str(staging), *requirements,
                ],
                timeout=1800,
            )
    (staging / "complete").write_text("\n".join(requirements) + "\n", encoding="utf-8")
    if wheelhouse.exists():
        shutil.rmtree(wheelhouse)
    staging.rename(wheelhouse)
    prune_old(prefix="wheels-", keep=wheelhouse)
    return wheelhouse
