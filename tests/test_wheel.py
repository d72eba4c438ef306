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
    assert any(n.startswith("fleetstrap/_data/templates/units/service/") for n in names)
    assert not any(n.startswith("generator/") for n in names)

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    # Dependencies come from this interpreter's site-packages (no network); .pth files there are not
    # processed via PYTHONPATH, so the editable checkout cannot shadow the installed wheel.
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    dest = tmp_path / "fleet"
    res = subprocess.run([env_dir / "bin" / "fleetstrap", "init", "--blueprint", "starter", "--no-validate", str(dest)],
                         env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    where = subprocess.run([py, "-c", "import fleetstrap; print(fleetstrap.__file__)"], env=env,
                           capture_output=True, text=True, check=True).stdout
    assert str(env_dir) in where
    assert (dest / ".fleetstrap/answers/fleet.yml").is_file()
    assert (dest / "clusters").is_dir()
