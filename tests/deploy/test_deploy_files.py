"""The deployment files in the repository are valid, and every series the alert rules and the Grafana
dashboard use is one the gateway exports (a renamed metric must not silently blind an alert).

promtool (Debian's prometheus), docker-compose and `kubectl kustomize` are installed by .ci/run; a
missing tool fails in CI and skips locally (`need`)."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
SERIES = re.compile(r"\b((?:xrouter|django)_[a-z0-9_]+)\b")


def _tool(name: str) -> str:
    path = shutil.which(name)
    need(name, path is not None)
    return path


def test_alert_rules_pass_promtool():
    result = subprocess.run([_tool("promtool"), "check", "rules", str(MONITORING / "alerts.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_compose_file_is_valid():
    env = {"PATH": "/usr/bin:/bin", "POSTGRES_PASSWORD": "x", "DJANGO_SECRET_KEY": "x", "XROUTER_FERNET_KEYS": "x",
           "XROUTER_BUS_HMAC_KEYS": "x", "GRAFANA_ADMIN_PASSWORD": "x"}
    result = subprocess.run([_tool("docker-compose"), "-f", "docker-compose.yml", "config", "-q"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # Without its secrets the stack refuses to start rather than run on empty ones.
    result = subprocess.run([_tool("docker-compose"), "-f", "docker-compose.yml", "config", "-q"], cwd=ROOT,
                            env={"PATH": env["PATH"]}, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "POSTGRES_PASSWORD" in result.stderr


@pytest.mark.parametrize("overlay", ["base", "overlays/production"])
def test_kubernetes_manifests_render_and_validate(overlay, tmp_path):
    rendered = subprocess.run([_tool("kubectl"), "kustomize", str(ROOT / "deploy" / "kubernetes" / overlay)],
                              capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    documents = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    kinds = {d["kind"] for d in documents}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Job", "ConfigMap"} <= kinds
    gateway = next(d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == "xrouter-gateway")
    pod = gateway["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > 45  # the stream grace (30 s) + the usage flush
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert any(v["name"] == "spool" for v in pod["volumes"])
    path = tmp_path / "rendered.yaml"
    path.write_text(rendered.stdout)
    validate = Path(sys.executable).with_name("kubernetes-validate")
    result = subprocess.run([str(validate), "--strict", "--quiet", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    if overlay != "base":
        config = next(d for d in documents if d["kind"] == "ConfigMap")
        assert config["data"]["XROUTER_ENV"] == "production"
        assert gateway["spec"]["replicas"] >= 3


def _exported() -> set[str]:
    """Every sample name this codebase's collectors can produce (read off the registry, not a list)."""
    from prometheus_client import REGISTRY

    import apps.gateway.metrics  # noqa: F401
    import apps.gateway.readiness  # noqa: F401
    import apps.routing.state  # noqa: F401
    import apps.usage.metrics  # noqa: F401

    names = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        suffixes = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_count", "_sum", "_created"]}
        names.update(family.name + s for s in suffixes.get(family.type, []))
    return names


def _used() -> dict[str, set[str]]:
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    used = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            used[rule["alert"]] = set(SERIES.findall(rule["expr"]))
    dashboard = json.loads((MONITORING / "grafana" / "xrouter.json").read_text())
    for panel in dashboard["panels"]:
        used[panel["title"]] = {s for t in panel["targets"] for s in SERIES.findall(t["expr"])}
    return used


def test_every_series_the_rules_and_dashboard_use_is_exported():
    exported = _exported()
    used = _used()
    assert len(used) >= 25
    missing = {where: series - exported for where, series in used.items() if series - exported}
    assert not missing, f"not exported: {missing}"
    # The alerts the operations issue names, each on a real series.
    alerts = {name for name in used if name.startswith("XRouter")}
    for needed in ("ProviderDown", "ErrorRate", "SlowFirstToken", "BudgetExhausted", "TokenRefreshFailures",
                   "UsageWriterLag", "DeadLetters", "LowProviderBalance"):
        assert f"XRouter{needed}" in alerts


def test_prometheus_config_loads_the_rules():
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/monitoring/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts
    assert compose["services"]["redis"]["command"][1:3] == ["--appendonly", "yes"]
