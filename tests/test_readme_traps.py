"""The traps the README's quick start walked into, closed: `push` publishes the repository the fleet points at (a
placeholder owner, or flags naming another repository than the owner/fleet_name answers, are refused with one line
before any network call); a failed bootstrap download says why; a plain install (no extras) inits with a warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetstrap.cli import run
from gitservers import make_fleet


@pytest.mark.parametrize(("owner", "args", "message"), [
    ("example-org", [], "the fleet's owner is the placeholder 'example-org'"),
    ("acme", ["--owner", "you"], "--owner you differs from the fleet's owner answer 'acme'"),
    ("acme", ["--repo", "other-fleet"], "--repo other-fleet differs from the fleet's repository answer 'fleet-infra'"),
])
def test_push_refuses_a_fleet_made_for_another_repository(owner: str, args: list[str], message: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GH_TOKEN", "ghp_" + "x" * 36)
    fleet = make_fleet(tmp_path / "fleet", owner=owner)
    # A port nothing listens on: the refusal must come before any request.
    code = run(["push", str(fleet), *args, "--github-url", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 1 and message in " ".join(err.split()), err
    assert "Traceback" not in err


def test_matching_flags_are_accepted() -> None:
    from fleetstrap.answers import build_answers
    from fleetstrap.push.runner import check_fleet_identity

    fleet = build_answers({"owner": "acme", "service": "hello"})
    check_fleet_identity(fleet, "ACME", "fleet-infra")  # GitHub names are case-insensitive


def test_a_failed_download_says_why_and_what_helps() -> None:
    """bootstrap's manifest download: the reason (here: refused), and the mirror override, not just "URLError"."""
    from fleetstrap.bootstrap.manifests import DOWNLOAD_BASE_ENV, _fetch
    from fleetstrap.errors import RemoteError

    with pytest.raises(RemoteError) as info:
        _fetch("http://127.0.0.1:9/fluxcd/flux2/releases/download/v2.7.0/install.yaml", timeout=5)
    assert "refused" in str(info.value).lower() and "URLError" not in str(info.value)
    assert DOWNLOAD_BASE_ENV in (info.value.hint or "")


def test_a_plain_install_inits_with_a_warning_about_the_skipped_gate(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the validate extra (kubernetes-validate absent: the lookup schemas.py makes fails), init renders and
    commits, and says which checks did not run and what runs them."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "kubernetes_validate" else real(name, *a))
    code = run(["init", str(tmp_path / "fleet"), "--blueprint", "starter", "--data", "owner=acme"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 0, err
    assert "the offline validation gate did not run: kubernetes-validate is not installed" in err
    assert "pip install 'fleetstrap[validate]'" in err
    assert (tmp_path / "fleet" / ".git").is_dir()


def test_validate_warns_on_placeholders_once_the_fleet_has_a_push_remote(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess

    from fleetstrap.validate import ValidateOptions, validate_repo

    fleet = tmp_path / "fleet"
    assert run(["init", str(fleet), "--blueprint", "starter", "--no-validate"]) == 0  # example-org, example.com
    capsys.readouterr()

    def placeholder_findings() -> list[str]:
        report = validate_repo(fleet, ValidateOptions(fast=True, offline=True))
        return sorted(f.message.split(" is the placeholder")[0] for f in report.findings if f.check == "placeholders")

    assert placeholder_findings() == []  # trying it out locally: nothing to warn about
    subprocess.run(["git", "-C", str(fleet), "remote", "add", "origin", "https://git.example.org/acme/fleet.git"],
                   check=True)
    assert placeholder_findings() == ["acme_email", "ingress_domain", "owner"]
    report = validate_repo(fleet, ValidateOptions(fast=True, offline=True))
    assert not [f for f in report.errors if f.check == "placeholders"]  # warnings: the fleet is still valid

    named = tmp_path / "named"
    assert run(["init", str(named), "--blueprint", "starter", "--no-validate", "--data", "owner=acme", "--data",
                "ingress_domain=apps.acme.io", "--data", "acme_email=ops@acme.io"]) == 0
    subprocess.run(["git", "-C", str(named), "remote", "add", "origin", "https://git.example.org/acme/fleet.git"],
                   check=True)
    report = validate_repo(named, ValidateOptions(fast=True, offline=True))
    assert [f for f in report.findings if f.check == "placeholders"] == []
