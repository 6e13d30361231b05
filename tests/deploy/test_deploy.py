"""The Compose deployment says only true things: its settings are TailorML's, its commands
and options exist, Prometheus scrapes the route that serves metrics, and every metric the
Grafana dashboard charts is one the API and the engine export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from tailorml.cli import app as cli
from tailorml.platform.api.metrics import HttpMetrics
from tailorml.platform.settings import Settings
from tailorml.serve.metrics import ServeMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_every_setting_is_a_tailorml_setting() -> None:
    fields = {f"TAILOR_{name.upper()}" for name in Settings.model_fields}
    services = _compose()["services"]
    tailor = [s for s in services.values() if s.get("image") == "tailorml:latest"]
    assert len(tailor) == 4  # two API replicas, two workers
    for service in tailor:
        names = {k for k in service["environment"] if k.startswith("TAILOR_")}
        assert names and names <= fields, names - fields
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for name in re.findall(r"\b(TAILOR_[A-Z_]+)=", dockerfile):
        assert name in fields, name
    example = (DEPLOY / ".env.example").read_text()
    for name in re.findall(r"^#?\s*(TAILOR_[A-Z_]+)=", example, flags=re.M):
        assert name in fields | {"TAILOR_DOMAIN", "TAILOR_PORT"}, name


def test_every_command_and_option_exists() -> None:
    runner = CliRunner()
    for name, service in _compose()["services"].items():
        if service.get("image") != "tailorml:latest":
            continue
        command = service["command"]
        help_text = runner.invoke(cli, [command[0], "--help"]).output
        assert "Usage" in help_text, (name, help_text)
        for option in (c for c in command[1:] if c.startswith("--")):
            assert option in help_text, (name, option)


def test_prometheus_scrapes_each_replica_and_the_dashboard_charts_real_metrics() -> None:
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    job = prometheus["scrape_configs"][0]
    services = _compose()["services"]
    assert job["metrics_path"] == "/metrics" and job["authorization"]["type"] == "Bearer"
    for target in job["static_configs"][0]["targets"]:
        host, port = target.split(":")
        assert host in services and services[host]["command"][2] == port

    exported = generate_latest(HttpMetrics().registry) + generate_latest(
        ServeMetrics(bases=lambda: []).registry
    )
    families = {f.name for f in text_string_to_metric_families(exported.decode())}
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "tailorml.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {
        re.sub(r"_(bucket|sum|count|total)$", "", name)
        for expr in exprs
        for name in re.findall(r"\btailorml_[a-z_]+", expr)
    }
    assert len(used) >= 12
    assert used <= families, used - families
    datasource = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )
    uids = {p["datasource"]["uid"] for p in dashboard["panels"]}
    assert uids == {datasource["datasources"][0]["uid"]}
