#!/usr/bin/env bash
# Install what the controller needs: Debian packages for the lab and a
# project virtualenv with the pinned toolchain. Safe to run again: each step
# is skipped when its inputs have not changed.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
venv="$top/.venv"

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: must run as root, because the lab creates network namespaces, mounts and nspawn machines" >&2
  exit 1
fi

apt_packages=(
  python3 python3-venv python3-pip
  systemd-container debootstrap debian-archive-keyring dpkg-dev
  iproute2 openssh-client util-linux rsync curl ca-certificates
)
missing=()
for package in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Every booted lab host runs its own systemd, which takes several inotify
# instances. At the kernel default of 128 per user, a lab of a few dozen
# hosts fails to boot with "Too many open files".
if [ "$(cat /proc/sys/fs/inotify/max_user_instances)" -lt 1024 ]; then
  echo "setup: raising fs.inotify.max_user_instances to 1024 for the lab hosts"
  echo 1024 > /proc/sys/fs/inotify/max_user_instances
fi

stamp="$venv/.requirements.sha256"
want=$(sha256sum "$top/requirements-dev.txt" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing the pinned Python toolchain into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$top/requirements-dev.txt"
  echo "$want" > "$stamp"
fi
