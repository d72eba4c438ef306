"""What every generated fleetstrap-update.yml must be (fleet repos and split-layout service repos)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from fleetstrap.pins import action_pins
from support.tools import require_tool

_tool = require_tool


def check_update_workflow(path: Path) -> None:
    res = subprocess.run([_tool("actionlint"), "-no-color", str(path)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    res = subprocess.run([_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    text = path.read_text(encoding="utf-8")
    flow = yaml.safe_load(text)
    on = flow[True]  # YAML 1.1 reads the `on` key as True
    assert set(on) == {"schedule", "workflow_dispatch"} and on["schedule"][0]["cron"]
    assert flow["permissions"] == {}  # nothing by default; only the update job may write
    (job,) = flow["jobs"].values()
    assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
    steps = job["steps"]
    expected = [action_pins()[name].ref for name in ("gha_create_app_token", "gha_checkout")]
    assert [s["uses"] for s in steps if "uses" in s] == expected
    app = steps[0]
    assert app["if"] == "vars.FLEETSTRAP_APP_CLIENT_ID != ''"
    assert app["with"] == {"client-id": "${{ vars.FLEETSTRAP_APP_CLIENT_ID }}",
                           "private-key": "${{ secrets.FLEETSTRAP_APP_PRIVATE_KEY }}",
                           # scoped to the update's needs (zizmor: github-app), not the installation's grants
                           "permission-contents": "write", "permission-pull-requests": "write",
                           "permission-workflows": "write"}
    checkout = steps[1]
    assert checkout["with"]["persist-credentials"] is False  # the token reaches git only through fleetstrap
    runs = [s.get("run", "") for s in steps]
    install = next(r for r in runs if "pip" in r)
    # newest, or the constraint the repo pins; with the validate extra: update runs the validate gate
    assert '"fleetstrap[validate]${FLEETSTRAP_VERSION}"' in install
    check = next(s for s in steps if "fleetstrap check-update" in s.get("run", ""))
    pr = steps[-1]
    assert "fleetstrap update --pr" in pr["run"]
    assert pr["if"] == f"steps.{check['id']}.outputs.available == 'true'"
    assert pr["env"]["GH_TOKEN"] == "${{ steps.app-token.outputs.token || github.token }}"
    # No expression is expanded inside a shell script (template injection).
    assert all("${{" not in r for r in runs)
    # The comment explains why a GitHub App is worth configuring.
    assert "GITHUB_TOKEN do not start other workflows" in " ".join(text.replace("#", " ").split())
