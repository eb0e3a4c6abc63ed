"""The prometheus role scrapes the application's /metrics with a bearer token read from a file.

The monitoring lab has no web host, so these cases render the role's
prometheus.yml.j2 on the controller for an inventory that has one. A
throwaway playbook loads the role's defaults and renders the template
through the template lookup; no task connects to a host.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPOSITORY = Path(__file__).resolve().parents[3]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
ROLE = REPOSITORY / "roles" / "prometheus"
TOKEN = "unit-test-metrics-token-5f1c"
TOKEN_FILE = "/etc/prometheus/secrets/app_metrics_token"
WEB_HOSTS = {"w1": "10.0.0.21", "w2": "10.0.0.22"}


def render_config(tmp_path: Path, web_hosts: dict[str, str], extra_vars: dict | None = None) -> str:
    """Return prometheus.yml as the role renders it on monitoring host m1."""
    (tmp_path / "extra_vars.json").write_text(json.dumps(extra_vars or {}))
    inventory = {
        "all": {
            "vars": {"bmms_metrics_token": TOKEN, "ansible_connection": "local"},
            "children": {
                "monitoring": {"hosts": {"m1": {"ansible_host": "10.0.0.11"}}},
                "web": {"hosts": {name: {"ansible_host": address} for name, address in web_hosts.items()}},
            },
        }
    }
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    playbook = [{
        "name": "Render the prometheus role's scrape configuration",
        "hosts": "m1",
        "gather_facts": False,
        "tasks": [
            {"name": "Load the defaults", "ansible.builtin.include_vars": str(ROLE / "defaults" / "main.yml")},
            {
                "name": "Print the configuration",
                "ansible.builtin.debug": {
                    "msg": "{{ lookup('ansible.builtin.template', '%s') }}" % (ROLE / "templates" / "prometheus.yml.j2"),
                },
            },
        ],
    }]
    (tmp_path / "render.yml").write_text(yaml.safe_dump(playbook, sort_keys=False))

    environment = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_FORCE_COLOR="0")
    environment.pop("ANSIBLE_CONFIG", None)
    result = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(tmp_path / "hosts.yml"), "-e", f"@{tmp_path / 'extra_vars.json'}",
         str(tmp_path / "render.yml")],
        cwd=REPOSITORY, capture_output=True, text=True, check=False, timeout=120, env=environment,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return json.loads(result.stdout)["plays"][0]["tasks"][-1]["hosts"]["m1"]["msg"]


def scrape_job(config: str, name: str) -> dict | None:
    jobs = [job for job in yaml.safe_load(config)["scrape_configs"] if job["job_name"] == name]
    assert len(jobs) <= 1, f"{len(jobs)} jobs named {name}"
    return jobs[0] if jobs else None


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> str:
    return render_config(tmp_path_factory.mktemp("render"), WEB_HOSTS)


def test_app_job_reads_token_from_file(config):
    job = scrape_job(config, "app")
    assert job is not None, "no app job although the web group has hosts"
    assert job["authorization"] == {"type": "Bearer", "credentials_file": TOKEN_FILE}


def test_app_job_omits_token_value(config):
    assert TOKEN not in config


def test_app_job_scrapes_every_web_host(config):
    job = scrape_job(config, "app")
    assert job["scheme"] == "http"
    assert job["metrics_path"] == "/metrics"
    targets = {group["labels"]["host"]: group["targets"] for group in job["static_configs"]}
    assert targets == {name: [f"{address}:8000"] for name, address in WEB_HOSTS.items()}


def test_app_job_over_https_checks_ca(tmp_path):
    job = scrape_job(render_config(tmp_path, WEB_HOSTS, {"prometheus_app_scheme": "https"}), "app")
    assert job["scheme"] == "https"
    assert job["tls_config"] == {"ca_file": "/etc/bmms/tls/ca.crt"}


def test_no_app_job_without_web_hosts(tmp_path):
    assert scrape_job(render_config(tmp_path, {}), "app") is None


def test_app_job_matches_web_role():
    """Port and path of the app job are those the web role and the reference application serve."""
    prometheus = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    web = yaml.safe_load((REPOSITORY / "roles" / "web" / "defaults" / "main.yml").read_text())
    assert prometheus["prometheus_app_port"] == web["web_port"]
    urls = (REPOSITORY / "reference_app" / "src" / "bmms_reference" / "urls.py").read_text()
    assert f'path("{prometheus["prometheus_app_metrics_path"].lstrip("/")}", views.metrics' in urls
    # Both roles write the same shared secret: the web role as METRICS_TOKEN.
    assert "bmms_metrics_token" in prometheus["prometheus_app_metrics_token"]
    assert "bmms_metrics_token" in web["web_metrics_token"]


def test_token_file_task_is_private():
    """The task that writes credentials_file makes it 0600 for Prometheus's user and hides its content."""
    tasks = yaml.safe_load((ROLE / "tasks" / "configure.yml").read_text())
    writers = [task for task in tasks if task.get("ansible.builtin.copy", {}).get("dest", "").endswith("/app_metrics_token")]
    assert len(writers) == 1, f"expected one task that writes app_metrics_token, found {len(writers)}"
    task = writers[0]
    copy = task["ansible.builtin.copy"]
    assert copy["dest"] == "{{ prometheus_secrets_dir }}/app_metrics_token"
    assert copy["mode"] == "0600"
    assert copy["owner"] == "prometheus"
    assert task.get("no_log") is True
    assert task.get("diff") is False
