"""Helm findings name repo-relative files, the same in every checkout (baselines and SARIF depend on it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetstrap.validate import ValidateOptions, validate_repo
from fleetstrap.validate.check_helm import chart_file

pytest.importorskip("helm_python", reason="the helm extra (helm-python-sdk) is not installed")


def _chart(root: Path) -> Path:
    chart = root / "charts/helm-dependency"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: helm-dependency\nversion: 0.1.0\ndependencies:\n"
                                      "  - name: redis\n    version: 1.0.0\n    repository: https://charts.example.com\n",
                                      encoding="utf-8")
    (chart / "values.yaml").write_text("{}\n", encoding="utf-8")
    (chart / "templates/cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
                                             encoding="utf-8")
    return root


@pytest.mark.parametrize("name", ["a", "b"])
def test_chart_level_finding_names_chart_yaml_relative_to_the_repo(tmp_path: Path, name: str) -> None:
    root = _chart(tmp_path / name / "checkout")
    report = validate_repo(root, ValidateOptions(offline=True))
    helm = [f for f in report.findings if f.check == "helm"]
    assert helm, report.findings
    assert {f.file for f in helm} == {"charts/helm-dependency/Chart.yaml"}, helm
    assert not [f for f in helm if str(tmp_path) in f.message]


def test_chart_file_mapping(tmp_path: Path) -> None:
    root = _chart(tmp_path)
    chart = "charts/helm-dependency"
    assert chart_file(root, chart, "values.yaml") == f"{chart}/values.yaml"
    assert chart_file(root, chart, str(root / chart)) == f"{chart}/Chart.yaml"
    assert chart_file(root, chart, str(root / chart / "values.yaml")) == f"{chart}/values.yaml"
    assert chart_file(root, chart, "/elsewhere/x") == f"{chart}/Chart.yaml"
