"""`fleetstrap init` through the real CLI: outputs, recorded answers, bad input, atomicity."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import git
import pytest
import yaml

from fleetstrap import __version__
from fleetstrap.cli import run


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".fleetstrap-" in p.name]


@pytest.fixture(scope="module")
def starter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("starter") / "fleet-infra"
    assert run(["init", "--blueprint", "starter", str(dest)]) == 0
    return dest


def test_help_lists_commands_without_importing_copier() -> None:
    code = (
        "import sys; from fleetstrap.cli import run; rc = run(['--help']); "
        "print('COPIER' if 'copier' in sys.modules else 'NO-COPIER', rc)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "NO-COPIER 0" in res.stdout
    for cmd in ("init", "add", "validate", "push", "bootstrap", "update", "check-update", "status", "blueprints"):
        assert f"  {cmd}" in res.stdout


def test_version_and_module_entry_point() -> None:
    res = subprocess.run([sys.executable, "-m", "fleetstrap", "--version"], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == f"fleetstrap, version {__version__}"


def test_completion_script(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["completion", "bash"]) == 0
    out = capsys.readouterr().out
    assert "_FLEETSTRAP_COMPLETE" in out and "complete " in out


def test_blueprints_listed(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["blueprints", "--format", "json"]) == 0
    names = {b["name"] for b in yaml.safe_load(capsys.readouterr().out)}
    assert {"starter", "multi-env", "argocd-multi-cluster", "dual-engine"} <= names


def test_starter_is_a_committed_repo_with_recorded_answers(starter: Path) -> None:
    repo = git.Repo(starter)
    assert repo.active_branch.name == "main"
    assert len(list(repo.iter_commits())) == 1
    assert not repo.is_dirty(untracked_files=True)
    recorded = yaml.safe_load((starter / ".fleetstrap/answers/fleet.yml").read_text())
    assert recorded["unit"] == "fleet"
    assert recorded["_commit"].startswith(f"v{__version__}")
    assert recorded["services"] and recorded["clusters"]
    for cluster in recorded["clusters"]:
        assert (starter / ".fleetstrap/answers" / f"cluster-{cluster['name']}.yml").is_file()
    for service in recorded["services"]:
        assert (starter / ".fleetstrap/answers" / f"service-{service}.yml").is_file()
    assert _leftovers(starter.parent) == []


def test_answers_file_reproduces_the_same_fleet(starter: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    assert run(["init", "--answers", str(starter / ".fleetstrap/answers/fleet.yml"), str(again)]) == 0
    first = sorted(p.relative_to(starter).as_posix() for p in starter.rglob("*") if ".git" not in p.parts)
    second = sorted(p.relative_to(again).as_posix() for p in again.rglob("*") if ".git" not in p.parts)
    assert first == second
    assert (again / "clusters").is_dir()


def test_data_overrides_blueprint(tmp_path: Path) -> None:
    dest = tmp_path / "f"
    rc = run(["init", "-b", "starter", "-d", "owner=acme-corp", "-d", "service=payments", "--no-commit", str(dest)])
    assert rc == 0
    recorded = yaml.safe_load((dest / ".fleetstrap/answers/fleet.yml").read_text())
    assert recorded["owner"] == "acme-corp"
    assert recorded["services"][0] == "payments"
    assert not (dest / ".git").exists()


BAD_INPUTS = [
    (["-b", "no-such-blueprint"], "unknown blueprint 'no-such-blueprint'"),
    (["-b", "starter", "-d", "colour=blue"], "unknown answer key 'colour'"),
    (["-b", "starter", "-d", "owner"], "must look like key=value"),
    (["-b", "starter", "-d", "service=Payments"], "service name 'Payments'"),
    (["-b", "starter", "-d", "environments=[dev, dev]"], "duplicate environment name(s): dev"),
    (["-b", "starter", "-d", "environments=[dev]", "-d", "clusters=[{name: Prod_1, environment: dev}]"],
     "cluster 'Prod_1' is not a DNS-1123 label"),
    (["-b", "starter", "-d", "environments=[dev]", "-d", "clusters=[{name: a, environment: prod}]"],
     "environment 'prod' is not one of the environments"),
    (["-b", "starter", "-d", "engine=jenkins"], "answer 'engine' must be one of flux, argocd, both"),
    (["-b", "starter", "-d", "clusters=[{name: a, environment: dev}, {name: a, environment: dev}]",
      "-d", "environments=[dev]"], "duplicate cluster name(s): a"),
    (["-d", "owner=acme"], "missing answer(s): service"),
    (["--defaults"], "missing answer(s): owner, service"),
    (["-b", "starter", "--author", "nobody"], "--author 'nobody' must look like 'Name <email>'"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_bad_input_is_one_line_exit_1_nothing_written(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "out"
    assert run(["init", *args, str(dest)]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert err.strip().splitlines()[0].startswith("error:")
    assert len([ln for ln in err.splitlines() if ln.strip() and "hint:" not in ln]) == 1
    assert not dest.exists()
    assert _leftovers(tmp_path) == []


def test_malformed_answers_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad_yaml = tmp_path / "bad.yml"
    bad_yaml.write_text("owner: [unclosed\n")
    not_mapping = tmp_path / "list.yml"
    not_mapping.write_text("- owner\n")
    for path, message in ((bad_yaml, "is not valid YAML"), (not_mapping, "must be a mapping"),
                          (tmp_path / "missing.yml", "cannot read answers file")):
        assert run(["init", "--answers", str(path), str(tmp_path / "out")]) == 1
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_non_empty_destination_needs_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine\n")
    assert run(["init", "-b", "starter", str(dest)]) == 1
    assert "is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in dest.iterdir()) == ["notes.txt"]
    assert run(["init", "-b", "starter", "--force", "--no-commit", str(dest)]) == 0
    assert (dest / "notes.txt").read_text() == "mine\n"
    assert (dest / ".fleetstrap/answers/fleet.yml").is_file()


def test_interrupt_during_render_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fleetstrap.render as render

    real = render.render_component
    calls: list[str] = []

    def flaky(component, dest, source, **kw):  # type: ignore[no-untyped-def]
        calls.append(component.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(component, dest, source, **kw)

    monkeypatch.setattr(render, "render_component", flaky)
    dest = tmp_path / "fleet"
    assert run(["init", "-b", "multi-env", str(dest)]) == 130
    assert len(calls) == 2
    assert not dest.exists()
    assert _leftovers(tmp_path) == []


def test_template_failure_is_exit_3_and_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    import fleetstrap.render as render
    from fleetstrap.errors import TemplateError

    def broken(component, dest, source, **kw):  # type: ignore[no-untyped-def]  # noqa: ARG001
        (dest / "half-written.txt").write_text("x")
        raise TemplateError(f"rendering {component.name} failed: boom")

    monkeypatch.setattr(render, "render_component", broken)
    dest = tmp_path / "fleet"
    assert run(["init", "-b", "starter", str(dest)]) == 3
    assert "rendering fleet failed" in capsys.readouterr().err
    assert not dest.exists()
    assert _leftovers(tmp_path) == []


def test_force_into_an_existing_git_repo_commits_on_top(tmp_path: Path) -> None:
    dest = tmp_path / "existing"
    repo = git.Repo.init(dest, initial_branch="main")
    (dest / "NOTES.md").write_text("ours\n")
    repo.index.add(["NOTES.md"])
    first = repo.index.commit("our history").hexsha
    assert run(["-q", "init", "-b", "starter", "--force", str(dest)]) == 0
    commits = list(repo.iter_commits())
    assert [c.hexsha for c in commits][1:] == [first]
    assert commits[0].message.startswith("Initial fleet from fleetstrap")
    assert not repo.is_dirty(untracked_files=True)
    assert (dest / ".fleetstrap/answers/fleet.yml").is_file() and (dest / "NOTES.md").read_text() == "ours\n"
