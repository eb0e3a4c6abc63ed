"""Lab of real Debian 12 hosts with systemd, booted with systemd-nspawn.

The lab turns an Ansible inventory into running hosts on this machine and
back: a cached debootstrap root shared through overlayfs, one network
namespace per host on a bridge, and a local APT repository and wheelhouse
so the hosts never need the internet.
"""
