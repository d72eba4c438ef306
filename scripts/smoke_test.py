#!/usr/bin/env python3
"""Smoke test of an installed fleetstrap: every built-in blueprint renders, validates offline and is up to date.

  python scripts/smoke_test.py [--fleetstrap PATH] [--expect-version X.Y.Z] [--workdir DIR]

The release workflow runs it against the wheel installed in a fresh venv before publishing; the test suite runs
it the same way (tests/test_wheel.py). Only the `fleetstrap` command is used, so it tests what users install.
CRD schemas: --schema-location or $FLEETSTRAP_CRD_SCHEMAS when set (else validate reports missing CRD schemas
as warnings). Exit 0 when every step passed; else 1, naming the failed step.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(cmd: list[str], *, ok: tuple[int, ...] = (0,)) -> str:
    started = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    label = " ".join(Path(cmd[0]).name if i == 0 else c for i, c in enumerate(cmd))
    if res.returncode not in ok:
        tail = "\n".join((res.stderr or res.stdout).strip().splitlines()[-15:])
        raise SystemExit(f"smoke: FAILED (exit {res.returncode}): {label}\n{tail}")
    print(f"smoke: ok {time.perf_counter() - started:5.1f}s  {label}", flush=True)
    return res.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[1])
    parser.add_argument("--fleetstrap", default=shutil.which("fleetstrap"), help="the command (default: on PATH)")
    parser.add_argument("--expect-version", help="fail unless `fleetstrap --version` reports this version")
    parser.add_argument("--workdir", type=Path, help="where to render (default: a temporary directory)")
    parser.add_argument("--schema-location", default=os.environ.get("FLEETSTRAP_CRD_SCHEMAS"),
                        help="CRD schemas for validate (default: $FLEETSTRAP_CRD_SCHEMAS)")
    parser.add_argument("--blueprint", action="append", help="only these blueprints (default: every built-in)")
    args = parser.parse_args(argv)
    if not args.fleetstrap:
        print("smoke: no fleetstrap command on PATH (pass --fleetstrap)", file=sys.stderr)
        return 1
    fs = [str(args.fleetstrap)]

    version = _run([*fs, "--version"]).strip()
    if args.expect_version and not version.endswith(f" {args.expect_version.removeprefix('v')}"):
        print(f"smoke: FAILED: `fleetstrap --version` says {version!r}, expected {args.expect_version}",
              file=sys.stderr)
        return 1
    names = args.blueprint or [b["name"] for b in json.loads(_run([*fs, "blueprints", "--format", "json"]))]
    schema_args = ["--schema-location", args.schema_location] if args.schema_location else []
    with tempfile.TemporaryDirectory(prefix="fleetstrap-smoke-") as tmp:
        work = args.workdir or Path(tmp)
        for name in names:
            dest = work / name
            # The gate once, as the command a fleet's CI runs (init would run the same checks).
            _run([*fs, "init", "--blueprint", name, "--no-validate", str(dest)])
            _run([*fs, "validate", str(dest), "--offline", *schema_args])
            _run([*fs, "check-update", str(dest), "--format", "json"])  # a fresh fleet is up to date: exit 0
    print(f"smoke: {len(names)} blueprint(s) passed with {version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
