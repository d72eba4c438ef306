"""The wheel ships templates and blueprints; an installed wheel runs init on its own data."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from fleetstrap import __version__

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_contains_data_and_runs_init(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    # An isolated build (hatchling from the index), as a user's `pip install .` does.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)],
                   check=True, capture_output=True)
    (wheel,) = dist.glob("fleetstrap-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "fleetstrap/_data/templates/copier.yml" in names
    assert "fleetstrap/_data/templates/pins.yml" in names
    assert "fleetstrap/_data/blueprints/starter.yaml" in names
    assert "fleetstrap/_data/CHANGELOG.md" in names  # check-update/update read it offline
    assert any(n.startswith("fleetstrap/_data/templates/units/service/") for n in names)
    assert not any(n.startswith("generator/") for n in names)

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    # Dependencies come from this interpreter's site-packages (no network); .pth files there are not
    # processed via PYTHONPATH, so the editable checkout cannot shadow the installed wheel.
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    where = subprocess.run([py, "-c", "from fleetstrap import changelog; print(changelog.changelog_path())"],
                           env=env, capture_output=True, text=True, check=True).stdout
    assert where.strip().startswith(str(env_dir)) and where.strip().endswith("_data/CHANGELOG.md")
    # The release workflow's smoke test, on the installed wheel: every blueprint inits, validates, is up to date.
    work = tmp_path / "smoke"
    work.mkdir()
    res = subprocess.run([py, str(ROOT / "scripts" / "smoke_test.py"), "--workdir", str(work),
                          "--fleetstrap", str(env_dir / "bin" / "fleetstrap"), "--expect-version", __version__],
                         env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("smoke: ok") == 2 + 3 * len(list((ROOT / "blueprints").glob("*.yaml")))
    dest = work / "starter"
    assert (dest / ".fleetstrap/answers/fleet.yml").is_file()
    assert (dest / "clusters").is_dir()
