"""`fleetstrap validate`'s otel check: structural offline without a collector, plus the real collector's
`validate` when a binary is on PATH, given with --otelcol or $FLEETSTRAP_OTELCOL."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fleetstrap.cli import run
from fleetstrap.validate import ValidateOptions, validate_repo
from fleetstrap.validate.check_otel import NO_COLLECTOR_NOTE, OTELCOL_ENV, OTELCOL_NAMES
from fleetstrap.validate.model import CHECKS, Finding
from support.fleet import render_blueprint
from support.otelcol import otelcol_binary

GATEWAY = "infrastructure/configs/otel-gateway.yaml"
GATEWAY_ID = "OpenTelemetryCollector/observability/gateway"
ONLY_OTEL = frozenset(set(CHECKS) - {"otel"})


@pytest.fixture(autouse=True)
def _no_collector_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test decides which collector exists: none on PATH unless it puts one there."""
    monkeypatch.delenv(OTELCOL_ENV, raising=False)
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if not any((Path(d) / name).exists() for name in OTELCOL_NAMES)]
    monkeypatch.setenv("PATH", os.pathsep.join(dirs))


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    dest = tmp_path / "fleet"
    shutil.copytree(render_blueprint("observability").root, dest)
    return dest


@pytest.fixture(scope="module")
def otelcol() -> Path:
    return otelcol_binary()


def otel_findings(root: Path, **options: object) -> tuple[list[Finding], tuple[str, ...]]:
    report = validate_repo(root, ValidateOptions(offline=True, disabled=ONLY_OTEL, **options))  # type: ignore[arg-type]
    return [f for f in report.findings if f.check == "otel"], report.notes


def edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {rel}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


# ---------------------------------------------------------------- offline, no binary


def test_without_a_collector_the_structural_check_still_runs(fleet: Path) -> None:
    findings, notes = otel_findings(fleet)
    assert findings == []
    assert NO_COLLECTOR_NOTE in notes
    edit(fleet, GATEWAY, "exporters: [otlp_grpc/backend, span_metrics]",
         "exporters: [otlp_grpc/backend, span_metrics, otlp_http/missing]")
    findings, _ = otel_findings(fleet)
    assert [(f.severity, f.file, f.object) for f in findings] == [("error", GATEWAY, GATEWAY_ID)]
    assert "'otlp_http/missing', which is not defined" in findings[0].message


def test_a_wrong_field_is_invisible_without_the_collector(fleet: Path) -> None:
    """Why the real collector matters: only its validate knows each component's fields."""
    edit(fleet, GATEWAY, "send_batch_size: 8192", "send_batch_sizee: 8192")
    findings, _ = otel_findings(fleet)
    assert findings == []


def test_a_given_collector_that_does_not_exist_is_a_user_error(fleet: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["validate", str(fleet), "--otelcol", str(fleet / "no-such-otelcol")]) == 1
    err = capsys.readouterr().err
    assert "no-such-otelcol" in err and "Traceback" not in err


# ---------------------------------------------------------------- with the real collector


def test_generated_fleet_passes_the_real_collector(fleet: Path, otelcol: Path) -> None:
    findings, notes = otel_findings(fleet, otelcol=str(otelcol))
    assert findings == [], findings
    assert NO_COLLECTOR_NOTE not in notes


@pytest.mark.parametrize("how", ["option", "env", "path"])
def test_real_collector_reports_a_wrong_field_with_file_and_object(
    fleet: Path, otelcol: Path, how: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    edit(fleet, GATEWAY, "send_batch_size: 8192", "send_batch_sizee: 8192")
    options: dict[str, object] = {}
    if how == "option":
        options["otelcol"] = str(otelcol)
    elif how == "env":
        monkeypatch.setenv(OTELCOL_ENV, str(otelcol))
    else:
        bindir = tmp_path / "bin"
        bindir.mkdir()
        (bindir / "otelcol-contrib").symlink_to(otelcol)
        monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    findings, _ = otel_findings(fleet, **options)
    errors = [f for f in findings if f.severity == "error"]
    assert len(errors) == 1, findings
    assert errors[0].file == GATEWAY and errors[0].object == GATEWAY_ID
    assert "collector validate" in errors[0].message and "send_batch_sizee" in errors[0].message
    assert errors[0].line is not None


def test_real_collector_checks_configs_inside_strings(tmp_path: Path, otelcol: Path) -> None:
    """A v1alpha1 OpenTelemetryCollector (config as a YAML string) and a ConfigMap: each finding names its object."""
    (tmp_path / "collectors.yaml").write_text("""\
apiVersion: opentelemetry.io/v1alpha1
kind: OpenTelemetryCollector
metadata:
  name: legacy
  namespace: observability
spec:
  config: |
    receivers:
      otlp:
        protocols:
          grpc:
            endpoint: 0.0.0.0:4317
    processors:
      nosuchprocessor: {}
    exporters:
      debug: {}
    service:
      pipelines:
        traces:
          receivers: [otlp]
          processors: [nosuchprocessor]
          exporters: [debug]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: agent
  namespace: apps
data:
  config.yaml: |
    receivers:
      otlp:
        protocols:
          http:
            endpoint: 127.0.0.1:4318
    exporters:
      debug:
        verbosity: loud
    service:
      pipelines:
        traces:
          receivers: [otlp]
          exporters: [debug]
""", encoding="utf-8")
    findings, _ = otel_findings(tmp_path, otelcol=str(otelcol))
    errors = {f.object: f for f in findings if f.severity == "error"}
    assert set(errors) == {"OpenTelemetryCollector/observability/legacy", "ConfigMap/apps/agent"}, findings
    assert "nosuchprocessor" in errors["OpenTelemetryCollector/observability/legacy"].message
    assert "verbosity" in errors["ConfigMap/apps/agent"].message
    assert errors["ConfigMap/apps/agent"].line == 30  # the data key holding the config


def test_real_collector_flags_a_deprecated_alias_as_a_warning(fleet: Path, otelcol: Path) -> None:
    """`validate` loads `spanmetrics` silently; the component list of the binary shows it is only an alias."""
    text = (fleet / GATEWAY).read_text(encoding="utf-8")
    (fleet / GATEWAY).write_text(text.replace("span_metrics", "spanmetrics"), encoding="utf-8")
    findings, _ = otel_findings(fleet, otelcol=str(otelcol))
    assert [(f.severity, f.file, f.object) for f in findings] == [("warning", GATEWAY, GATEWAY_ID)], findings
    assert "'spanmetrics' is a deprecated alias" in findings[0].message


def test_real_collector_loads_the_sidecar_config_as_each_environment_renders_it(tmp_path: Path,
                                                                                otelcol: Path) -> None:
    """The sidecar's config is a Helm template: the helm check renders it with the fleet's values, then the otel
    check loads it (a field only the collector knows, injected into the chart template)."""
    pytest.importorskip("helm_python", reason="the Helm SDK (pip install 'fleetstrap[helm]') is not installed")
    fleet = tmp_path / "fleet"
    shutil.copytree(render_blueprint("starter", collector_mode="sidecar").root, fleet)
    (template,) = fleet.rglob("otel-sidecar-configmap.yaml")
    rel = template.relative_to(fleet).as_posix()
    options = {"disabled": frozenset(set(CHECKS) - {"otel", "helm"}), "otelcol": str(otelcol)}
    report = validate_repo(fleet, ValidateOptions(offline=True, **options))  # type: ignore[arg-type]
    assert [f for f in report.findings if f.check == "otel"] == []
    edit(fleet, rel, "      batch: {}\n", "      batch:\n        send_batch_sizee: 10\n")
    report = validate_repo(fleet, ValidateOptions(offline=True, **options))  # type: ignore[arg-type]
    errors = [f for f in report.findings if f.check == "otel" and f.severity == "error"]
    assert len(errors) == 1, report.findings
    assert errors[0].file == rel and errors[0].object.startswith("ConfigMap/")
    assert "send_batch_sizee" in errors[0].message


COLLECTOR_WITH_ENV = """\
apiVersion: opentelemetry.io/v1beta1
kind: OpenTelemetryCollector
metadata:
  name: agent
  namespace: observability
spec:
  env:{env}
  config:
    receivers:
      otlp:
        protocols:
          grpc:
            endpoint: ${{env:MY_POD_IP}}:4317
    exporters:
      debug: {{}}
    service:
      pipelines:
        traces:
          receivers: [otlp]
          exporters: [debug]
"""


def test_real_collector_path_warns_about_variables_the_pod_does_not_set(tmp_path: Path, otelcol: Path) -> None:
    """The collector expands an unset ${env:X} to "" silently (validate passes): the check says it."""
    manifest = tmp_path / "agent.yaml"
    manifest.write_text(COLLECTOR_WITH_ENV.format(env=" []"), encoding="utf-8")
    findings, _ = otel_findings(tmp_path, otelcol=str(otelcol))
    assert [(f.severity, f.object) for f in findings] == [("warning", "OpenTelemetryCollector/observability/agent")]
    assert "${env:MY_POD_IP}" in findings[0].message
    manifest.write_text(COLLECTOR_WITH_ENV.format(
        env="\n    - name: MY_POD_IP\n      valueFrom:\n        fieldRef:\n          fieldPath: status.podIP"),
        encoding="utf-8")
    findings, _ = otel_findings(tmp_path, otelcol=str(otelcol))
    assert findings == []


def test_cli_option_reports_the_collectors_finding(fleet: Path, otelcol: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import json

    edit(fleet, GATEWAY, "send_batch_size: 8192", "send_batch_sizee: 8192")
    disable = [arg for check in sorted(ONLY_OTEL) for arg in ("--disable", check)]
    assert run(["validate", str(fleet), "--offline", "--format", "json", "--otelcol", str(otelcol), *disable]) == 2
    findings = json.loads(capsys.readouterr().out)["findings"]
    assert [(f["check"], f["file"], f["object"]) for f in findings] == [("otel", GATEWAY, GATEWAY_ID)]
    assert "send_batch_sizee" in findings[0]["message"]
