"""playbooks/app.yml rejects bad application settings before any host changes.

Each case runs the playbook from the repository root on a throwaway
inventory whose hosts point at 127.0.0.1 port 9, where nothing listens. A
task that connected to a host would fail there as UNREACHABLE, so a run
that fails with the preflight message, no unreachable host and no
"Gathering Facts" never touched a host. test_valid_settings_reach_hosts
shows that the method detects a connection. Each run takes a few seconds.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPOSITORY = Path(__file__).resolve().parents[3]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
CLOSED_PORT = 9

VALID_SETTINGS = {
    "bmms_environment": "production",
    "bmms_app_secret_key": "k" * 10 + "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ",
    "bmms_metrics_token": "unit-test-metrics-token",
    "bmms_db_password": "unit-test-db-password",
    "bmms_db_readonly_password": "unit-test-readonly-password",
    "bmms_redis_app_password": "unit-test-redis-password",
    "web_csrf_trusted_origins": ["https://bmms.example.gov.ph"],
    "web_email_backend": "django.core.mail.backends.smtp.EmailBackend",
}


def write_inventory(directory, beat_hosts):
    hosts = {name: {"ansible_host": "127.0.0.1", "ansible_port": CLOSED_PORT} for name in ("app1", "app2", "db1")}
    inventory = {
        "all": {
            "vars": {"ansible_user": "nobody", "ansible_ssh_common_args": "-o ConnectTimeout=3"},
            "hosts": hosts,
            "children": {
                "web": {"hosts": {"app1": None, "app2": None}},
                "celery_worker": {"hosts": {"app1": None, "app2": None}},
                "celery_beat": {"hosts": {name: None for name in beat_hosts}},
                "pgbouncer": {"hosts": {"db1": None}},
            },
        }
    }
    path = directory / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory), encoding="utf-8")
    return path


@pytest.fixture
def run_playbook(tmp_path):
    """Return a function that runs playbooks/app.yml with settings changed (None removes one)."""
    wheel = tmp_path / "bmms_reference-1.0.0-py3-none-any.whl"
    wheel.write_bytes(b"not installed: the run stops before any host")
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()

    def run(beat_hosts=("app1",), **overrides):
        settings = dict(VALID_SETTINGS, web_release_wheel=str(wheel), web_wheelhouse_dir=str(wheelhouse))
        for name, value in overrides.items():
            if value == "WHEEL":
                value = str(wheel)
            if value is None:
                settings.pop(name, None)
            else:
                settings[name] = value
        inventory = write_inventory(tmp_path, beat_hosts)
        result = subprocess.run(
            [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), "-e", json.dumps(settings), "playbooks/app.yml"],
            cwd=REPOSITORY, capture_output=True, text=True, check=False, timeout=300,
        )
        return result.returncode, result.stdout + result.stderr

    return run


def recap(output):
    """Return {host: {counter: value}} from the PLAY RECAP lines."""
    counters = {}
    for host, fields in re.findall(r"^(\w+)\s+: (ok=.*)$", output, re.MULTILINE):
        counters[host] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", fields)}
    return counters


def assert_rejected_before_hosts(returncode, output, message):
    assert returncode != 0, output
    assert message in output, output
    assert "UNREACHABLE" not in output, "a task connected to a host"
    assert "Gathering Facts" not in output, "the run went past the preflight play"
    for host, counters in recap(output).items():
        assert counters["changed"] == 0, f"{host} changed"
        assert counters["unreachable"] == 0, f"{host} was contacted"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"bmms_app_secret_key": None}, "web_secret_key (bmms_app_secret_key) is empty"),
        ({"bmms_app_secret_key": "s" * 20}, "web_secret_key (bmms_app_secret_key) is 20 characters long"),
        ({"bmms_app_secret_key": "django-insecure-" + "x" * 50}, "and starts with django-insecure"),
        ({"web_debug": True}, "web_debug is true while bmms_environment is production"),
        ({"web_email_backend": "django.core.mail.backends.console.EmailBackend"},
         "web_email_backend is the console backend while bmms_environment is production"),
        ({"web_csrf_trusted_origins": ["bmms.example.gov.ph"]},
         'web_csrf_trusted_origins contains "bmms.example.gov.ph", which has no scheme'),
        ({"web_cors_allowed_origins": ["https://ok.example", "app.example"]},
         'web_cors_allowed_origins contains "app.example", which has no scheme'),
        ({"bmms_db_password": None}, "web_db_password (bmms_db_password) is empty"),
        ({"web_wheelhouse_dir": "/nonexistent/wheelhouse"}, "web_wheelhouse_dir is \"/nonexistent/wheelhouse\""),
        ({"web_release_wheel": "/nonexistent/app.whl"}, "web_release_wheel is \"/nonexistent/app.whl\""),
        ({"celery_worker_extra_args": ["--beat"]}, 'celery_worker_extra_args contains ["--beat"]'),
        ({"celery_worker_soft_time_limit": 300}, "celery_worker_soft_time_limit (300) must be below"),
        ({"web_release_writable_dirs": ["logs"]}, "it applies to web_release_source archive or git only (here wheel)"),
        ({"web_release_source": "archive", "web_release_archive": "WHEEL", "web_release_writable_dirs": ["../logs"]},
         'web_release_writable_dirs is ["../logs"]: give a list of paths relative'),
        ({"web_release_source": "archive", "web_release_archive": "WHEEL", "web_release_writable_dirs": ["/var/log"]},
         'web_release_writable_dirs is ["/var/log"]'),
        ({"web_release_source": "archive", "web_release_archive": "WHEEL", "web_release_writable_dirs": 5},
         "web_release_writable_dirs is 5: give a list of paths relative"),
        ({"web_release_source": "archive", "web_release_archive": "WHEEL", "web_release_writable_dirs": [["a"]]},
         'web_release_writable_dirs is [["a"]]: give a list of paths relative'),
    ],
    ids=[
        "missing-secret-key", "short-secret-key", "insecure-secret-key", "debug-in-production",
        "console-email-in-production", "csrf-origin-without-scheme", "cors-origin-without-scheme",
        "missing-db-password", "missing-wheelhouse", "missing-wheel", "embedded-beat", "soft-limit-not-below-hard",
        "writable-dirs-with-wheel", "writable-dir-outside-tree", "writable-dir-absolute", "writable-dirs-not-a-list",
        "writable-dir-not-a-string",
    ],
)
def test_bad_setting_rejected_before_hosts(run_playbook, overrides, message):
    returncode, output = run_playbook(**overrides)
    assert_rejected_before_hosts(returncode, output, message)


def test_second_beat_host_rejected(run_playbook):
    returncode, output = run_playbook(beat_hosts=("app1", "app2"))
    assert_rejected_before_hosts(returncode, output, "inventory group celery_beat holds 2 hosts (app1, app2)")


def test_valid_settings_reach_hosts(run_playbook):
    """With valid settings the preflight passes and the next play connects."""
    returncode, output = run_playbook()
    assert returncode != 0
    assert "Gathering Facts" in output
    assert "UNREACHABLE" in output, output


def test_debug_allowed_in_lab(run_playbook):
    returncode, output = run_playbook(bmms_environment="lab", web_debug=True)
    assert "web_debug is true" not in output
    assert "UNREACHABLE" in output, output


def test_server_side_cursors_only_warned(run_playbook):
    returncode, output = run_playbook(web_uses_server_side_cursors=True)
    assert "WARNING: web_uses_server_side_cursors is true" in output
    assert "UNREACHABLE" in output, output
