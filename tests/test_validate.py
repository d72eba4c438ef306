"""validate: CLI, output formats, options, schema sources and the init/add gate, on the synthetic fleet."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetstrap.cli import run
from fleetstrap.errors import EXIT_FINDINGS, FindingsError, UserError
from fleetstrap.validate import ValidateOptions, gate, validate_repo
from fleetstrap.validate.schemas import compile_schema
from validate_fixture import copy_fleet, crd_schemas, write_fleet

WIDGET_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names:
    kind: Widget
    plural: widgets
    singular: widget
    listKind: WidgetList
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size:
                  type: integer
                port:
                  x-kubernetes-int-or-string: true
"""
WIDGET = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  size: {size}\n  port: http\n"


@pytest.fixture(scope="module")
def clean_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fleet(tmp_path_factory.mktemp("fleet") / "repo")


@pytest.fixture
def broken_repo(clean_repo: Path, tmp_path: Path) -> Path:
    repo = copy_fleet(clean_repo, tmp_path / "repo")
    web = repo / "deploy/web.yaml"
    web.write_text(web.read_text().replace("replicas: 2", "replicas: two\n  paused: maybe"), encoding="utf-8")
    return repo


def _cli_args(*extra: str) -> list[str]:
    loc = crd_schemas()
    return ["validate", *extra, "--offline", *(["--schema-location", loc] if loc else [])]


def _widget_repo(tmp_path: Path, size: str) -> Path:
    repo = tmp_path / "widgets"
    (repo / "crds").mkdir(parents=True)
    (repo / "crds/widget.yaml").write_text(WIDGET_CRD, encoding="utf-8")
    (repo / "widget.yaml").write_text(WIDGET.format(size=size), encoding="utf-8")
    return repo


FAST_OFFLINE = ValidateOptions(offline=True, catalog_url=None, fast=True)


# --- CLI and formats ---------------------------------------------------------------------------------------


def test_cli_clean_repo_exits_zero(clean_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(_cli_args(str(clean_repo), "--format", "json")) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["summary"]["errors"] == 0 and out["findings"] == []


def test_cli_reports_all_errors_of_an_object_as_json(broken_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(_cli_args(str(broken_repo), "--format", "json")) == EXIT_FINDINGS
    findings = json.loads(capsys.readouterr().out)["findings"]
    schema = {(f["path"], f["line"]) for f in findings if f["check"] == "schema" and f["file"] == "deploy/web.yaml"}
    assert schema == {("spec.replicas", 12), ("spec.paused", 13)}


def test_cli_human_output_groups_by_file(broken_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(_cli_args(str(broken_repo), "--format", "human")) == EXIT_FINDINGS
    err = capsys.readouterr().err
    assert "deploy/web.yaml" in err and "spec.replicas" in err
    assert "2 error(s)" in err.splitlines()[-1]


def test_cli_sarif_is_well_formed(broken_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(_cli_args(str(broken_repo), "--format", "sarif")) == EXIT_FINDINGS
    sarif = json.loads(capsys.readouterr().out)
    assert sarif["version"] == "2.1.0"
    run0 = sarif["runs"][0]
    rules = [r["id"] for r in run0["tool"]["driver"]["rules"]]
    assert run0["results"]
    for result in run0["results"]:
        assert rules[result["ruleIndex"]] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note", "none")
        assert result["message"]["text"]
        loc = result["locations"][0]["physicalLocation"]
        assert not Path(loc["artifactLocation"]["uri"]).is_absolute()
        assert loc.get("region", {"startLine": 1})["startLine"] >= 1
    assert {r["ruleId"] for r in run0["results"]} == {"schema"}


def test_cli_disable_check(broken_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Disabling another check leaves the schema findings; disabling schema removes exactly them.
    assert run(_cli_args(str(broken_repo), "--disable", "kustomize", "--format", "json")) == EXIT_FINDINGS
    assert {f["check"] for f in json.loads(capsys.readouterr().out)["findings"]} == {"schema"}
    assert run(_cli_args(str(broken_repo), "--disable", "schema", "--disable", "kustomize", "--format", "json")) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []


@pytest.mark.parametrize("args", [["--kubernetes-version", "9.99"], ["--kubernetes-version", "latest"],
                                  ["--disable", "nope"], ["--format", "xml"]])
def test_cli_usage_errors_exit_one(clean_repo: Path, args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["validate", str(clean_repo), "--offline", *args]) == 1
    err = capsys.readouterr().err
    assert args[1] in err and "Traceback" not in err, err  # names the bad value


def test_cli_missing_directory_exits_one(tmp_path: Path) -> None:
    assert run(["validate", str(tmp_path / "nope")]) == 1


# --- options -----------------------------------------------------------------------------------------------


def test_strict_turns_missing_schema_into_error(tmp_path: Path) -> None:
    (tmp_path / "w.yaml").write_text(WIDGET.format(size=1), encoding="utf-8")
    lax = validate_repo(tmp_path, FAST_OFFLINE)
    assert [(f.check, f.severity) for f in lax.findings] == [("schema", "warning")]
    strict = validate_repo(tmp_path, ValidateOptions(offline=True, catalog_url=None, fast=True, strict=True))
    assert [(f.check, f.severity) for f in strict.findings] == [("schema", "error")]


def test_kubernetes_version_selects_schemas(tmp_path: Path) -> None:
    # autoscaling/v2beta2 was removed in 1.26.
    (tmp_path / "hpa.yaml").write_text(
        "apiVersion: autoscaling/v2beta2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: h\nspec:\n"
        "  maxReplicas: 3\n  scaleTargetRef:\n    kind: Deployment\n    name: web\n", encoding="utf-8")
    old = validate_repo(tmp_path, ValidateOptions(kubernetes_version="1.25", offline=True, catalog_url=None))
    assert old.findings == ()
    new = validate_repo(tmp_path, FAST_OFFLINE)
    assert [f.message for f in new.findings] == ["no schema for autoscaling/v2beta2 HorizontalPodAutoscaler"]


def test_unknown_check_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError):
        validate_repo(tmp_path, ValidateOptions(disabled=frozenset({"nope"})))


# --- schema sources ----------------------------------------------------------------------------------------


def test_crd_in_repo_is_used_strictly(tmp_path: Path) -> None:
    assert validate_repo(_widget_repo(tmp_path / "ok", "3"), FAST_OFFLINE).findings == ()
    bad = _widget_repo(tmp_path / "bad", "big\n  colour: red")
    paths = sorted((f.path, f.line) for f in validate_repo(bad, FAST_OFFLINE).findings)
    assert paths == [("spec.colour", 7), ("spec.size", 6)]


def _write_schema(root: Path, group: str, name: str, schema: dict[str, object]) -> None:
    (root / group).mkdir(parents=True, exist_ok=True)
    (root / group / name).write_text(json.dumps(schema), encoding="utf-8")


WIDGET_SCHEMA = {"type": "object", "properties": {"spec": {"type": "object", "additionalProperties": False,
                                                           "properties": {"size": {"type": "integer"},
                                                                          "port": {"type": "string"}}}}}


def test_schema_location_kubeconform_template(tmp_path: Path) -> None:
    _write_schema(tmp_path / "schemas", "example.com", "widget_v1.json", WIDGET_SCHEMA)
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo/w.yaml").write_text(WIDGET.format(size="x"), encoding="utf-8")
    template = str(tmp_path / "schemas") + "/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json"
    report = validate_repo(tmp_path / "repo", ValidateOptions(schema_locations=(template,), offline=True,
                                                              catalog_url=None, fast=True))
    assert [f.path for f in report.findings] == ["spec.size"]


@pytest.fixture
def schema_server(tmp_path: Path) -> Iterator[str]:
    """A loopback HTTP server standing in for the public CRDs catalog."""
    served = tmp_path / "served"
    _write_schema(served, "example.com", "widget_v1.json", WIDGET_SCHEMA)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    http.server.SimpleHTTPRequestHandler.log_message = lambda *_: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{{group}}/{{kind}}_{{version}}.json"
    finally:
        server.shutdown()


def test_catalog_is_fetched_once_then_cached(tmp_path: Path, schema_server: str) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo/w.yaml").write_text(WIDGET.format(size="x"), encoding="utf-8")
    online = ValidateOptions(catalog_url=schema_server, cache_dir=tmp_path / "cache", fast=True)
    assert [f.path for f in validate_repo(tmp_path / "repo", online).findings] == ["spec.size"]
    assert list((tmp_path / "cache").glob("*.json"))
    cached = ValidateOptions(catalog_url=schema_server, cache_dir=tmp_path / "cache", fast=True, offline=True)
    assert [f.path for f in validate_repo(tmp_path / "repo", cached).findings] == ["spec.size"]


def test_unreachable_catalog_is_a_warning_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo/w.yaml").write_text(WIDGET.format(size=1), encoding="utf-8")
    # Port 9 on loopback: nothing listens, the connection is refused at once.
    options = ValidateOptions(catalog_url="http://127.0.0.1:9/{group}/{kind}_{version}.json",
                              cache_dir=tmp_path / "cache", fast=True)
    report = validate_repo(tmp_path / "repo", options)
    assert [(f.severity, f.message) for f in report.findings] == [("warning", "no schema for example.com/v1 Widget")]
    assert any("unreachable" in n for n in report.notes)


@pytest.mark.parametrize("engine", ["rust", "python"])
def test_go_case_insensitive_pattern(engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if engine == "python":
        import sys

        monkeypatch.setitem(sys.modules, "jsonschema_rs", None)
    validate = compile_schema({"type": "string", "pattern": "^(?i)(abort|warn)?$"}, draft=7)
    assert validate("ABORT") == []
    assert validate("nope") != []


def test_prometheus_rule_with_go_pattern(tmp_path: Path) -> None:
    (tmp_path / "rule.yaml").write_text(
        "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: r\nspec:\n  groups:\n"
        "    - name: g\n      partial_response_strategy: WARN\n      rules:\n        - alert: A\n"
        "          expr: up == 0\n", encoding="utf-8")
    report = validate_repo(tmp_path, ValidateOptions(schema_locations=(str(crd_schemas()),), offline=True,
                                                     catalog_url=None))
    assert report.findings == ()


# --- the gate ----------------------------------------------------------------------------------------------


def test_gate_passes_clean_and_fails_broken(clean_repo: Path, broken_repo: Path) -> None:
    gate(clean_repo)
    with pytest.raises(FindingsError) as info:
        gate(broken_repo)
    assert info.value.exit_code == EXIT_FINDINGS
    assert "deploy/web.yaml:12" in info.value.message and "\n" not in info.value.message


def test_helm_templates_are_not_parsed_as_yaml(clean_repo: Path) -> None:
    report = validate_repo(clean_repo, ValidateOptions(offline=True, catalog_url=None, fast=True,
                                                       disabled=frozenset({"schema", "kustomize"})))
    assert not [f for f in report.findings if f.file.startswith("charts/")]


GO_TEMPLATED_APPSET = """\
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: templated
  namespace: argocd
spec:
  goTemplate: true
  generators:
    - list:
        elements:
          - name: dev
  template:
    metadata:
      name: '{{.name}}-demo'
    spec:
      project: default
      source:
        repoURL: https://example.com/demo.git
        targetRevision: main
        path: demo
      destination:
        server: https://kubernetes.default.svc
        namespace: '{{.name}}'
  surprise: true
"""
HELM_STYLE_TEMPLATE = "{{- if .Values.enabled }}\napiVersion: v1\nkind: ConfigMap\n{{- end }}\n"


def test_go_templates_inside_yaml_strings_are_still_validated(tmp_path: Path) -> None:
    """An ApplicationSet with goTemplate strings is YAML: it is schema-checked; a template *of* YAML is not."""
    (tmp_path / "appset.yaml").write_text(GO_TEMPLATED_APPSET)
    (tmp_path / "demo").mkdir()  # the Application path the xref check resolves
    (tmp_path / "not-yaml.yaml").write_text(HELM_STYLE_TEMPLATE)
    report = validate_repo(tmp_path, ValidateOptions(schema_locations=(str(crd_schemas()),), catalog_url=None,
                                                    disabled=frozenset({"kustomize", "helm", "workflows",
                                                                        "dockerfile"})))
    errors = [(f.file, f.check, f.path) for f in report.findings if f.severity == "error"]
    assert errors == [("appset.yaml", "schema", "spec.surprise")]
