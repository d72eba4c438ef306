"""One CLI language: -C/--dir everywhere, --format json everywhere, old spellings as deprecated aliases,
exit codes in --help, completion of the fleet's names, progress on stderr only."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path
from typing import Any

import click
import git
import pytest

from fleetstrap import output, trace
from fleetstrap.cli import cli, run
from support.commands import cli as fs

DEPRECATED = "deprecated and will be removed"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A multi-env fleet (dev, staging, production; clusters dev, staging, prod; service hello) and init's JSON."""
    dest = tmp_path_factory.mktemp("lang") / "fleet-infra"
    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run(["init", "-C", str(dest), "--blueprint", "multi-env", "--no-validate", "--format", "json"])
    assert code == 0, err.getvalue()
    return dest, json.loads(out.getvalue())


@pytest.fixture
def scratch(fleet: tuple[Path, dict[str, Any]], tmp_path: Path) -> Path:
    """A copy of the fleet (with its git history) for commands that change it."""
    copy = tmp_path / "fleet-infra"
    shutil.copytree(fleet[0], copy, symlinks=True)
    return copy


@pytest.fixture
def bare(tmp_path: Path) -> str:
    git.Repo.init(tmp_path / "remote.git", bare=True)
    return (tmp_path / "remote.git").as_uri()


@pytest.fixture
def no_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))


# ------------------------------------------------------------------ exit codes in --help


def _all_commands() -> list[list[str]]:
    def walk(cmd: click.Command, path: list[str], ctx: click.Context) -> list[list[str]]:
        found = [path]
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None
                found += walk(sub, [*path, name], click.Context(sub, info_name=name, parent=ctx))
        return found

    return walk(cli, [], click.Context(cli, info_name="fleetstrap"))


def test_every_help_lists_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    commands = _all_commands()
    assert ["add", "monitoring"] in commands and ["telemetry", "check"] in commands
    for words in commands:
        code, out, _ = fs(capsys, *words, "--help")
        assert code == 0, words
        codes = out[out.index("Exit codes:"):]
        for line in ("0    ok", "1    user error", "2    findings or conflicts", "3    bug", "130  interrupted",
                     "143  terminated"):
            assert line in codes, (words, line)


def test_every_command_on_a_repository_takes_dash_c_and_hides_the_old_spellings(
        capsys: pytest.CaptureFixture[str]) -> None:
    on_repo = [["add", "service"], ["add", "cluster"], ["add", "monitoring"], ["validate"], ["push"], ["bootstrap"],
               ["status"], ["update"], ["check-update"], ["promote"], ["rollback"], ["resume"], ["init"]]
    for words in on_repo:
        out = fs(capsys, *words, "--help")[1]
        assert "-C, --dir DIR" in out, words
        assert "--repo " not in out and "--json" not in out, words
        usage = out.splitlines()[0]
        assert "PATH" not in usage and "_DIR" not in usage, (words, usage)


# ------------------------------------------------------------------ new spellings and their deprecated aliases


def _both(capsys: pytest.CaptureFixture[str], old: list[str], new: list[str]) -> tuple[str, str]:
    """Run the old spelling and the new one; both succeed, only the old prints (one) deprecation line."""
    code, old_out, old_err = fs(capsys, *old)
    assert code == 0, old_err[-2000:]
    assert old_err.count(DEPRECATED) == 1, old_err
    code, new_out, new_err = fs(capsys, *new)
    assert code == 0, new_err[-2000:]
    assert DEPRECATED not in new_err
    return old_out, new_out


def test_validate_path_positional_is_an_alias_of_dash_c(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: y\n")
    flags = ["--fast", "--offline", "--format", "json"]
    old, new = _both(capsys, ["validate", str(tmp_path), *flags], ["validate", "-C", str(tmp_path), *flags])
    assert json.loads(old) == json.loads(new)
    assert fs(capsys, "validate", "--dir", str(tmp_path), *flags)[0] == 0


def test_check_update_and_update(fleet: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    root = str(fleet[0])
    old, new = _both(capsys, ["check-update", root, "--format", "json"],
                     ["check-update", "-C", root, "--format", "json"])
    assert json.loads(old) == json.loads(new)
    old, new = _both(capsys, ["update", root, "--pretend", "--format", "json"],
                     ["update", "-C", root, "--pretend", "--format", "json"])
    report = json.loads(new)
    assert {"target", "updated", "up_to_date", "files", "conflicts", "commit", "pretend"} <= set(report)
    assert report["pretend"] is True and "fleet" in report["up_to_date"]


def test_push_github_repo_and_format_json(fleet: tuple[Path, dict[str, Any]], bare: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    root = str(fleet[0])
    common = ["--dry-run", "--remote", bare]
    code, out, err = fs(capsys, "push", root, "--repo", "fleet-infra", "--json", *common)
    assert code == 0, err
    assert err.count(DEPRECATED) == 3  # positional PATH, --repo NAME, --json: one line each
    assert "--github-repo NAME" in err and "--format json" in err and "-C/--dir DIR" in err
    old = json.loads(out)
    code, out, err = fs(capsys, "push", "-C", root, "--github-repo", "fleet-infra", "--format", "json", *common)
    assert code == 0 and DEPRECATED not in err
    new = json.loads(out)
    assert old == new and new["dry_run"] is True
    assert {"repo_url", "remote_url", "branch", "commit", "planned", "created", "updated"} <= set(new)
    code, _, err = fs(capsys, "push", "-C", root, "--github-repo", "a", "--repo", "b", *common)
    assert code == 1 and "two GitHub repository names" in err


def test_repo_option_is_an_alias_of_dash_c(fleet: tuple[Path, dict[str, Any]],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    root = str(fleet[0])
    args = ["promote", "hello", "--to", "staging", "--dry-run", "--format", "json"]
    old, new = _both(capsys, [*args, "--repo", root], [*args, "-C", root])
    report = json.loads(new)
    assert json.loads(old) == report
    assert report["service"] == "hello" and report["environment"] == "staging" and report["action"] == "promote"


def test_two_directories_are_a_usage_error(fleet: tuple[Path, dict[str, Any]], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    root = str(fleet[0])
    code, _, err = fs(capsys, "check-update", root, "-C", str(tmp_path))
    assert code == 1 and "two repository directories" in err
    code, _, err = fs(capsys, "resume", "hello", "--env", "dev", "-C", root, "--repo", str(tmp_path))
    assert code == 1 and "two repository directories" in err
    code, _, err = fs(capsys, "init", str(tmp_path / "a"), "-C", str(tmp_path / "b"), "--defaults")
    assert code == 1 and "two destinations" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.usefixtures("no_cluster")
def test_status_takes_a_directory_as_the_fleet_not_as_a_cluster(
        fleet: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    root = str(fleet[0])
    old, new = _both(capsys, ["status", root, "--format", "json"], ["status", "-C", root, "--format", "json"])
    report = json.loads(new)
    assert {c["name"] for c in report["clusters"]} == {"dev", "staging", "prod"}
    assert {c["name"] for c in json.loads(old)["clusters"]} == {"dev", "staging", "prod"}
    code, _, err = fs(capsys, "bootstrap", root, "--dry-run")
    assert code == 1 and "not a cluster name" in err and f"-C {root}" in err


def test_add_takes_dash_c_and_reports_json(scratch: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = scratch.parent / "other"
    shutil.copytree(scratch, other, symlinks=True)  # each spelling on its own clean checkout
    old, new = _both(capsys, ["add", "cluster", "qa", "-e", "dev", "--repo", str(scratch), "--format", "json"],
                     ["add", "cluster", "qa2", "-e", "dev", "-C", str(other), "--format", "json"])
    for out, name in ((old, "qa"), (new, "qa2")):
        report = json.loads(out)
        assert report["component"] == f"cluster/{name}"
        assert {"files", "commit", "root", "seconds"} <= set(report)
        assert f".fleetstrap/answers/cluster-{name}.yml" in report["files"]


def test_init_reports_json(fleet: tuple[Path, dict[str, Any]]) -> None:
    root, report = fleet
    assert report["dest"] == str(root)
    assert report["fleet_name"] == "fleet-infra" and report["branch"] == "main"
    assert "service/hello" in report["components"]
    assert isinstance(report["commit"], str) and len(report["commit"]) == 40
    assert git.Repo(root).head.commit.hexsha == report["commit"]


def test_every_reporting_command_has_format_json(capsys: pytest.CaptureFixture[str]) -> None:
    reporting = [w for w in _all_commands() if w and w not in (["add"], ["telemetry"], ["completion"])]
    for words in reporting:
        out = fs(capsys, *words, "--help")[1]
        assert "--format [human|json" in out, words


# ------------------------------------------------------------------ completion


def _complete(words: str, cwd: Path) -> list[str]:
    """What bash completion offers for the last word of `words` (click's bash_complete protocol)."""
    parts = words.split(" ")
    env = {**os.environ, "_FLEETSTRAP_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD":
           str(len(parts) - 1)}
    res = subprocess.run([sys.executable, "-m", "fleetstrap"], env=env, cwd=cwd, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    return [line.split(",", 1)[1] for line in res.stdout.splitlines() if line.startswith("plain,")]


def test_completion_offers_the_fleet_names(fleet: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    root = fleet[0]
    assert _complete("fleetstrap promote ", root) == ["hello"]
    assert _complete("fleetstrap promote hello --to ", root) == ["dev", "staging", "production"]
    assert _complete("fleetstrap promote hello --to s", root) == ["staging"]
    assert _complete("fleetstrap rollback hello --env p", root) == ["production"]
    assert _complete("fleetstrap bootstrap ", root) == ["dev", "prod", "staging"]
    assert _complete("fleetstrap add cluster qa -e ", root) == ["dev", "staging", "production"]
    assert _complete("fleetstrap update --component c", root) == ["cluster/dev", "cluster/prod", "cluster/staging"]
    # from elsewhere, the names of the fleet that -C (or the old --repo) names
    assert _complete(f"fleetstrap status -C {root} ", tmp_path) == ["dev", "prod", "staging"]
    assert _complete(f"fleetstrap resume --repo {root} ", tmp_path) == ["hello"]
    assert _complete("fleetstrap resume ", tmp_path) == []  # no fleet here: nothing, and no error
    assert set(_complete("fleetstrap init --blueprint ", tmp_path)) >= {"starter", "multi-env", "dual-engine"}
    assert _complete("fleetstrap init -b mu", tmp_path) == ["multi-env"]


# ------------------------------------------------------------------ progress


@pytest.fixture
def fresh_output() -> Iterator[None]:
    yield
    output.configure()


@pytest.mark.usefixtures("fresh_output")
def test_plain_progress_is_one_line_and_the_slow_stages(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    output.configure(color=False)
    monkeypatch.setenv("FLEETSTRAP_PROGRESS", "plain")
    monkeypatch.setattr(output, "SLOW_SECONDS", 0.0)  # every stage counts as slow
    with output.progress("adding monitoring"):
        with trace.stage("render"):
            pass
        with trace.stage("prompt"):  # held: a prompt is never reported as a step
            pass
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert lines[0] == "› adding monitoring …"
    assert lines[1].startswith("  render: ") and lines[1].endswith("s")
    assert len(lines) == 2
    output.configure(quiet=True)
    with output.progress("adding monitoring"), trace.stage("render"):
        pass
    assert capsys.readouterr() == ("", "")


@pytest.mark.usefixtures("fresh_output")
def test_progress_off_a_terminal_prints_nothing_by_default(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Off a terminal (pipes, tests) an error stays one line: no progress unless FLEETSTRAP_PROGRESS=plain."""
    output.configure(color=False)
    monkeypatch.delenv("FLEETSTRAP_PROGRESS", raising=False)
    monkeypatch.setattr(output, "SLOW_SECONDS", 0.0)
    with output.progress("checking"), trace.stage("render"):
        pass
    assert capsys.readouterr() == ("", "")
    monkeypatch.setenv("FLEETSTRAP_PROGRESS", "plain")
    monkeypatch.setattr(output, "SLOW_SECONDS", 3600.0)
    with output.progress("checking"), trace.stage("render"):  # fast work: nothing even in plain mode
        pass
    assert capsys.readouterr() == ("", "")


@pytest.mark.usefixtures("fresh_output")
def test_progress_on_a_terminal_shows_the_stage_on_stderr(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("FLEETSTRAP_PROGRESS", raising=False)
    output.configure(color=True)  # a terminal, as far as rich is concerned
    with output.progress("adding service payments"), trace.stage("validate"):
        output.data("{}")  # data printed while the spinner runs still goes to stdout
    captured = capsys.readouterr()
    assert captured.out == "{}\n"
    assert "adding service payments" in captured.err and "validate" in captured.err
    assert "0:00:0" in captured.err  # the elapsed-time column
    # a library step with its own progress inside a command's (push's GitHub steps): one display, no LiveError
    with output.progress("publishing"), output.progress("deploy keys"):
        pass
    assert "publishing" in capsys.readouterr().err
    monkeypatch.setenv("FLEETSTRAP_PROGRESS", "off")
    with output.progress("adding service payments"), trace.stage("validate"):
        pass
    assert capsys.readouterr() == ("", "")


# ------------------------------------------------------------------ SIGTERM


def test_sigterm_exits_143(tmp_path: Path) -> None:
    """A command waiting on the network, terminated: it says so and exits 143 (the documented code)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        accepted = threading.Event()

        def accept() -> None:
            conn, _ = server.accept()
            accepted.set()
            conn.recv(1)  # hold the connection open without answering
            conn.close()

        t = threading.Thread(target=accept, daemon=True)
        t.start()
        proc = subprocess.Popen([sys.executable, "-m", "fleetstrap", "telemetry", "check", "--endpoint",
                                 f"http://127.0.0.1:{port}", "--timeout", "120"], stderr=subprocess.PIPE,
                                text=True, cwd=tmp_path)
        try:
            assert accepted.wait(60), "the command never connected"
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 143, err
    assert "terminated" in err
