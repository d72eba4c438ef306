"""The generated workflows install fleetstrap and do their job: the built wheel is served from a PEP 503 index on
loopback, the fleet's `fleetstrap_pip` answer names it (dependencies come from PyPI), and the `run:` steps of
`.github/workflows/validate.yml` and `fleetstrap-update.yml` run in order with the environment GitHub gives them."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from support.gha import Job, run_job

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    # An isolated build (hatchling from the index), as a user's `pip wheel .` does.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)],
                   check=True, capture_output=True)
    (built,) = dist.glob("fleetstrap-*.whl")
    return built


@pytest.fixture(scope="module")
def index(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PEP 503 simple index holding the wheel, served by http.server on 127.0.0.1."""
    root = tmp_path_factory.mktemp("index")
    project = root / "simple" / "fleetstrap"
    project.mkdir(parents=True)
    shutil.copy2(wheel, project / wheel.name)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (project / "index.html").write_text(
        f'<!DOCTYPE html><html><body><a href="{wheel.name}#sha256={digest}">{wheel.name}</a></body></html>\n')
    (root / "simple" / "index.html").write_text(
        '<!DOCTYPE html><html><body><a href="fleetstrap/">fleetstrap</a></body></html>\n')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        server.server_close()


def _version(wheel: Path) -> str:
    return wheel.name.split("-")[1]


def _runner_env(home: Path) -> dict[str, str]:
    """What a runner's shell has: a PATH with python3 and git, a home; pip's own settings of this machine (its CA
    bundle, timeouts), nothing of fleetstrap's."""
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home), "LANG": "C.UTF-8"}
    env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_")})
    return env


@pytest.fixture(scope="module")
def fleet(wheel: Path, index: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("fleet")
    dest = work / "fleet-infra"
    spec = f"--index-url {index} --extra-index-url https://pypi.org/simple fleetstrap[validate]=={_version(wheel)}"
    res = subprocess.run([sys.executable, "-m", "fleetstrap", "init", str(dest), "--blueprint", "starter",
                          "--data", "owner=acme", "--data", f"fleetstrap_pip={spec}", "--no-validate"],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    return dest


def _job(path: Path) -> dict[str, object]:
    flow = yaml.safe_load(path.read_text())
    (job,) = flow["jobs"].values()
    return job  # type: ignore[no-any-return]


def test_validate_workflow_installs_fleetstrap_from_the_index_and_validates(fleet: Path, wheel: Path,
                                                                             tmp_path: Path) -> None:
    temp = tmp_path / "runner-temp"
    temp.mkdir()
    job = Job(workspace=fleet, temp=temp, base_env=_runner_env(tmp_path / "home"))
    steps = run_job(_job(fleet / ".github/workflows/validate.yml"), job)
    by_name = {s.name: s for s in steps}
    install = by_name["Install fleetstrap"]
    assert install.ran and install.code == 0, install.output
    version = subprocess.run([str(temp / "fleetstrap/bin/fleetstrap"), "--version"], capture_output=True, text=True,
                             check=True).stdout.split()[-1]
    assert version == _version(wheel)
    validate = by_name["Validate"]
    assert validate.ran and validate.code == 0, validate.output
    assert job.outputs["validate"]["status"] == "0", (fleet / "fleetstrap.sarif").read_text()[:3000]
    sarif = yaml.safe_load((fleet / "fleetstrap.sarif").read_text())
    assert sarif["runs"][0]["tool"]["driver"]["name"] == "fleetstrap"
    assert not by_name["Fail on findings"].ran

    # A broken manifest: the SARIF report is still written, and the job fails in its last step.
    (fleet / "fleetstrap.sarif").unlink()
    broken = fleet / "clusters" / "dev" / "apps.yaml"
    if not broken.exists():
        broken = next((fleet / "clusters").rglob("*.yaml"))
    original = broken.read_text()
    broken.write_text(original.replace("spec:", "spec:\n  notAField: true", 1))
    try:
        job2 = Job(workspace=fleet, temp=temp, base_env=_runner_env(tmp_path / "home"))
        steps = {s.name: s for s in run_job(_job(fleet / ".github/workflows/validate.yml"), job2)}
    finally:
        broken.write_text(original)
    assert steps["Validate"].code == 0 and job2.outputs["validate"]["status"] == "2"
    assert "notAField" in (fleet / "fleetstrap.sarif").read_text()
    assert steps["Fail on findings"].ran and steps["Fail on findings"].code == 2


def test_update_workflow_installs_fleetstrap_from_the_index_and_checks(fleet: Path, tmp_path: Path) -> None:
    temp = tmp_path / "runner-temp"
    temp.mkdir()
    job = Job(workspace=fleet, temp=temp, base_env=_runner_env(tmp_path / "home"), token="ghs_unused")
    steps = {s.name: s for s in run_job(_job(fleet / ".github/workflows/fleetstrap-update.yml"), job)}
    assert not steps["GitHub App token"].ran  # no App configured (vars.FLEETSTRAP_APP_CLIENT_ID empty)
    install = steps["Install fleetstrap"]
    assert install.ran and install.code == 0, install.output
    check = steps["Check for template updates"]
    assert check.ran and check.code == 0, check.output
    assert "up to date" in check.output or "up-to-date" in check.output, check.output
    # Rendered by the very version the index serves: nothing to update, no pull request.
    assert job.outputs.get("check", {}).get("available") is None
    assert not steps["Open or refresh the update pull request"].ran
