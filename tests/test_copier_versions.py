"""fleetstrap against the lowest copier pyproject.toml allows (the rest of the suite runs the highest one pip picks).

The floor is installed once into the tool cache (`pip install --no-deps --target`, keyed by version) and put first
on PYTHONPATH of a child process, which then runs init and `add service`: a copy with a shared template clone, then
copier's 3-way update of the fleet component. That is every call in fleetstrap.copier_adapter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from fleetstrap.copier_adapter import COPIER_FLOOR
from support.tools import build_lock, cache_key, missing, tool_dir

ROOT = Path(__file__).resolve().parent.parent


def _pyproject_floor() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    (spec,) = [d for d in deps if d.startswith("copier")]
    found = re.search(r">=\s*([0-9.]+)", spec)
    assert found, spec
    return found.group(1)


def test_the_adapter_states_the_floor_pyproject_allows() -> None:
    assert _pyproject_floor() == COPIER_FLOOR


def _floor_install() -> Path:
    target = tool_dir("copier", cache_key(COPIER_FLOOR, sys.version))
    with build_lock("copier"):
        if not (target / "copier" / "__init__.py").is_file():
            cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                   "--target", str(target), f"copier=={COPIER_FLOOR}"]
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if res.returncode != 0:
                missing(f"cannot install copier=={COPIER_FLOOR} from the package index: {res.stderr.strip()[-300:]}")
    return target


CHILD = """
import importlib.metadata, sys
from pathlib import Path
import copier
assert copier.__file__.startswith(sys.argv[1]), copier.__file__
assert importlib.metadata.version("copier") == sys.argv[2], importlib.metadata.version("copier")
from fleetstrap.add import AddRequest, add_service
from fleetstrap.init import AnswerSources, InitRequest, init_fleet
from fleetstrap.repo import load_fleet
dest = Path(sys.argv[3])
init_fleet(InitRequest(dest=dest, sources=AnswerSources(blueprint="starter", data=("owner=acme", "service=hello"),
                                                     defaults=True), validate=False))
add_service(AddRequest(dest, commit=True), "payments")
fleet = load_fleet(dest)
assert "service/payments" in fleet.names(), fleet.names()
assert "payments" in (dest / ".fleetstrap/answers/fleet.yml").read_text()
print("OK", importlib.metadata.version("copier"))
"""


def test_init_and_add_on_the_lowest_allowed_copier(tmp_path: Path) -> None:
    target = _floor_install()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(ROOT / "generator")]),
           "FLEETSTRAP_CACHE_DIR": str(tmp_path / "cache")}
    res = subprocess.run([sys.executable, "-c", CHILD, str(target), COPIER_FLOOR, str(tmp_path / "fleet")],
                         capture_output=True, text=True, env=env, check=False, timeout=900)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    assert f"OK {COPIER_FLOOR}" in res.stdout
