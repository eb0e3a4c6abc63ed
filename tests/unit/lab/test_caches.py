"""Cache keys and list files: a cache is reused only while its inputs hold."""

from pathlib import Path

import pytest

from bmms_lab import base, repo


def test_list_file_skips_comments_and_blanks(tmp_path: Path):
    listing = tmp_path / "packages.txt"
    listing.write_text("# header\n\nnginx\n  redis-server  # cache\n", encoding="utf-8")
    assert repo.read_list(listing) == ["nginx", "redis-server"]


def test_repository_key_follows_the_package_list():
    assert repo.repository_key(["nginx"]) != repo.repository_key(["nginx", "redis-server"])
    assert repo.repository_key(["a", "b"]) == repo.repository_key(["b", "a"])


def test_wheelhouse_key_follows_the_requirements():
    assert repo.wheelhouse_key(["django==5.2.8"]) != repo.wheelhouse_key(["django==5.2.9"])


def test_base_key_follows_the_include_list(monkeypatch: pytest.MonkeyPatch):
    before = base.base_key()
    monkeypatch.setattr(base, "INCLUDE", (*base.INCLUDE, "vim"))
    assert base.base_key() != before


def test_repository_key_follows_the_base_root(monkeypatch: pytest.MonkeyPatch):
    before = repo.repository_key(["nginx"])
    monkeypatch.setattr(repo, "base_key", lambda: "another-base")
    assert repo.repository_key(["nginx"]) != before


def test_shipped_package_list_is_valid():
    packages = repo.read_list(repo.PACKAGES_FILE)
    assert packages, "packages.txt lists no package"
    assert len(packages) == len(set(packages)), "packages.txt lists a package twice"
    assert all(" " not in package for package in packages)
