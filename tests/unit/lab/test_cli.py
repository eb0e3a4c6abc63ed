"""Controller checks and argument parsing of the lab command."""

import pytest

from bmms_lab import cli
from bmms_lab.system import LabError


def test_non_root_is_rejected(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(cli.os, "geteuid", lambda: 1000)
    with pytest.raises(LabError, match="must run as root"):
        cli.check_controller()


def test_missing_nspawn_names_its_package(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)
    monkeypatch.setattr(cli.shutil, "which", lambda command: None if command == "systemd-nspawn" else "/usr/bin/x")
    with pytest.raises(LabError, match=r"systemd-nspawn \(package systemd-container\)"):
        cli.check_controller()


def test_missing_debootstrap_is_reported(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)
    monkeypatch.setattr(cli.shutil, "which", lambda command: None if command == "debootstrap" else "/usr/bin/x")
    with pytest.raises(LabError, match="debootstrap"):
        cli.check_controller()


def test_down_needs_inventory_or_name():
    with pytest.raises(SystemExit):
        cli.parse_arguments(["down"])


def test_bad_lab_name_fails_before_any_change(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    def forbidden(*args, **kwargs):
        raise AssertionError("down must not run for an invalid name")

    monkeypatch.setattr(cli.hosts, "down", forbidden)
    assert cli.main(["down", "--name", "Bad-Name"]) == 1
    assert "invalid lab name 'Bad-Name'" in capsys.readouterr().err


def test_missing_inventory_is_reported(tmp_path, capsys: pytest.CaptureFixture[str]):
    assert cli.main(["up", "--inventory", str(tmp_path / "absent.yml")]) == 1
    assert "inventory not found" in capsys.readouterr().err
