"""Throughput of `fleetstrap validate`'s schema check vs the kubernetes-validate CLI on the same 2,000 objects.

Run: /work/venv/bin/python benchmarks/validate_bench.py [--objects 2000] [--keep DIR]
Prints objects/s for both, the ratio, and checks that both see every injected error.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fleetstrap.validate import CHECKS, ValidateOptions, validate_repo

PER_FILE = 20
# Every BAD_EVERY-th Deployment carries two errors (wrong type + unknown field).
BAD_EVERY = 50

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i}
  namespace: team-{ns}
  labels:
    app: app-{i}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: app-{i}
  template:
    metadata:
      labels:
        app: app-{i}
    spec:
      serviceAccountName: app-{i}
      containers:
        - name: app
          image: ghcr.io/acme/app-{i}:1.{i}.0
          ports:
            - containerPort: 8080
              name: http
          env:
            - name: OTEL_EXPORTER_OTLP_ENDPOINT
              value: http://collector:4318
          resources:
            requests:
              cpu: 100m
              memory: 64Mi
            limits:
              memory: 128Mi
          readinessProbe:
            httpGet:
              path: /healthz
              port: http{extra}
"""
SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: app-{i}
  namespace: team-{ns}
spec:
  selector:
    app: app-{i}
  ports:
    - name: http
      port: 80
      targetPort: http
"""
CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-{i}
  namespace: team-{ns}
data:
  LOG_LEVEL: info
  FEATURE_FLAGS: "a,b,c"
"""
SERVICEACCOUNT = """\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: app-{i}
  namespace: team-{ns}
"""


def build_repo(root: Path, objects: int) -> int:
    """Write `objects` objects, PER_FILE per file; returns the number of injected errors."""
    kinds = (DEPLOYMENT, SERVICE, CONFIGMAP, SERVICEACCOUNT)
    docs: list[str] = []
    errors = 0
    for n in range(objects):
        i, template = n // len(kinds), kinds[n % len(kinds)]
        fields = {"i": i, "ns": i % 10, "replicas": 2, "extra": ""}
        if template is DEPLOYMENT and i % BAD_EVERY == 0:
            fields.update(replicas='"two"', extra="\n          livenessProbez: {}")
            errors += 2
        docs.append(template.format(**fields))
    root.mkdir(parents=True, exist_ok=True)
    for f in range(0, len(docs), PER_FILE):
        (root / f"manifests-{f // PER_FILE:04d}.yaml").write_text("---\n".join(docs[f:f + PER_FILE]), encoding="utf-8")
    return errors


def bench_fleetstrap(root: Path) -> tuple[float, int, int]:
    options = ValidateOptions(offline=True, catalog_url=None,
                              disabled=frozenset(c for c in CHECKS if c not in ("yaml", "schema")))
    start = time.perf_counter()
    report = validate_repo(root, options)
    elapsed = time.perf_counter() - start
    return elapsed, report.objects, len(report.errors)


def bench_kubernetes_validate(root: Path) -> tuple[float, int]:
    exe = shutil.which("kubernetes-validate") or str(Path(sys.executable).parent / "kubernetes-validate")
    files = sorted(str(p) for p in root.glob("*.yaml"))
    start = time.perf_counter()
    proc = subprocess.run([exe, "--strict", "--quiet", "-k", "1.37", *files], capture_output=True, text=True,
                          check=False)
    elapsed = time.perf_counter() - start
    # It stops at the first error of each object: count objects it failed.
    failed = len(re.findall(r"^ERROR", proc.stdout + proc.stderr, flags=re.M))
    return elapsed, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--keep", type=Path, default=None, help="write the synthetic repo here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp) / "repo"
        injected = build_repo(root, args.objects)
        ours, objects, found = bench_fleetstrap(root)
        theirs, failed_objects = bench_kubernetes_validate(root)
    ours_rate, theirs_rate = objects / ours, args.objects / theirs
    print(f"objects: {args.objects} in {args.objects // PER_FILE} files; injected errors: {injected} "
          f"in {injected // 2} objects")
    print(f"fleetstrap validate (yaml+schema): {ours:.2f} s, {ours_rate:,.0f} objects/s, errors reported: {found}")
    print(f"kubernetes-validate --strict CLI:  {theirs:.2f} s, {theirs_rate:,.0f} objects/s, "
          f"objects failed: {failed_objects}")
    print(f"ratio: {ours_rate / theirs_rate:.1f}x")
    if found != injected:
        sys.exit(f"fleetstrap reported {found} errors, expected {injected}")


if __name__ == "__main__":
    main()
