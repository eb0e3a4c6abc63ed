"""The Debian 12 base root shared read-only by every lab host.

The root is cached under CACHE_ROOT with a key made of this file's text and
the debootstrap inputs, so it is rebuilt only when one of them changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from bmms_lab.spec import CACHE_ROOT, LAB_USER, STATE_ROOT
from bmms_lab.system import log, run, step, write_file

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
INCLUDE = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "python3-apt",
    "openssh-server",
    "sudo",
    "iproute2",
    "iputils-ping",
    "procps",
    "ca-certificates",
    "less",
)
# Inside the hosts, the local repository is bind-mounted here read-only.
REPOSITORY_MOUNT = "/srv/bmms-lab/apt"
WHEELHOUSE_MOUNT = "/srv/bmms-lab/wheels"


def base_key() -> str:
    """Return the cache key of the base root: a digest of its inputs."""
    digest = hashlib.sha256()
    digest.update(Path(__file__).read_bytes())
    digest.update(" ".join((SUITE, MIRROR, *INCLUDE)).encode())
    return digest.hexdigest()[:16]


def base_root() -> Path:
    return CACHE_ROOT / f"base-{base_key()}" / "root"


def ensure_base_root() -> Path:
    """Build the base root unless a cached one with the same key exists."""
    root = base_root()
    if (root.parent / "complete").exists():
        log(f"base root cached: {root}")
        return root

    staging = root.parent.with_name(root.parent.name + ".staging")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    staging_root = staging / "root"
    with step(f"debootstrap Debian {SUITE} into {staging_root}"):
        run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(INCLUDE)}",
                SUITE,
                str(staging_root),
                MIRROR,
            ],
            timeout=1800,
        )
    with step("prepare the base root for lab hosts"):
        _customize(staging_root)
    (staging / "complete").write_text(base_key() + "\n", encoding="utf-8")
    if root.parent.exists():
        shutil.rmtree(root.parent)
    staging.rename(root.parent)
    prune_old(prefix="base-", keep=root.parent)
    return root


def _customize(root: Path) -> None:
    run(["chroot", str(root), "useradd", "--create-home", "--shell", "/bin/bash", LAB_USER])
    write_file(root / "etc/sudoers.d" / LAB_USER, f"{LAB_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n", mode=0o440)

    # Every host generates its own SSH host keys on first boot, before sshd
    # checks its configuration.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    write_file(
        root / "etc/systemd/system/ssh.service.d/bmms-lab-host-keys.conf",
        "[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n",
    )
    write_file(root / "etc/ssh/sshd_config.d/bmms-lab.conf", "UseDNS no\nPasswordAuthentication no\n")

    # Each host writes its own machine ID before boot.
    write_file(root / "etc/machine-id", "")
    write_file(root / "etc/default/locale", "LANG=C.UTF-8\n")

    # Only the local repository is known; the hosts cannot reach any other.
    write_file(root / "etc/apt/sources.list", f"deb [trusted=yes] file:{REPOSITORY_MOUNT} ./\n")
    for extra in (root / "etc/apt/sources.list.d").glob("*"):
        extra.unlink()
    write_file(root / "etc/apt/apt.conf.d/99bmms-lab", 'Acquire::Languages "none";\n')
    lists = root / "var/lib/apt/lists"
    for listing in lists.glob("*_Packages"):
        listing.unlink()
    run(["chroot", str(root), "apt-get", "clean"])
    # Ansible's apt module skips the update while the lists folder is newer
    # than cache_valid_time, and a fresh host would then not know the local
    # repository's packages: date the folder back so the first use updates.
    (root / "var/lib/apt/periodic/update-success-stamp").unlink(missing_ok=True)
    os.utime(lists, (0, 0))


def prune_old(prefix: str, keep: Path) -> None:
    """Remove outdated caches with this prefix that no mounted lab still uses."""
    # Hosts bind-mount the repository and wheelhouse inside their own mount
    # namespaces, which this mount table does not show, so each lab's state
    # file lists the caches it uses as well.
    in_use = Path("/proc/self/mountinfo").read_text(encoding="utf-8")
    for state in STATE_ROOT.glob("*/state.json"):
        in_use += state.read_text(encoding="utf-8")
    for entry in CACHE_ROOT.glob(f"{prefix}*"):
        if entry == keep or not entry.is_dir() or entry.name.endswith(".staging"):
            continue
        if str(entry) in in_use:
            log(f"keeping outdated cache {entry}: a lab still uses it")
            continue
        log(f"removing outdated cache {entry}")
        shutil.rmtree(entry, ignore_errors=True)
