"""A CRD a controller extends in the cluster is judged as extended: flux-operator adds its kinds to the Flux
Alert CRD's eventSources, so a repo that runs flux-operator may alert on FluxInstance; one that does not may not."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetstrap.validate import ValidateOptions, validate_repo

ALERT = """\
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata:
  name: flux
  namespace: flux-system
spec:
  providerRef:
    name: slack
  eventSeverity: error
  eventSources:
    - kind: FluxInstance
      name: flux
    - kind: Kustomization
      name: '*'
"""
INSTANCE = """\
apiVersion: fluxcd.controlplane.io/v1
kind: FluxInstance
metadata:
  name: flux
  namespace: flux-system
spec:
  distribution:
    version: "2.x"
    registry: ghcr.io/fluxcd
"""


@pytest.mark.parametrize("with_operator", [True, False])
def test_alert_on_operator_kinds_needs_the_operator(tmp_path: Path, with_operator: bool) -> None:
    (tmp_path / "flux").mkdir()
    (tmp_path / "flux/alert.yaml").write_text(ALERT, encoding="utf-8")
    if with_operator:
        (tmp_path / "flux/instance.yaml").write_text(INSTANCE, encoding="utf-8")
    report = validate_repo(tmp_path, ValidateOptions(offline=True, catalog_url=None,
                                                     disabled=frozenset({"xref", "helm"})))
    errors = [(f.file, f.path) for f in report.errors]
    assert errors == ([] if with_operator else [("flux/alert.yaml", "spec.eventSources[0].kind")]), report.errors
