"""`fleetstrap add service|cluster` on a real generated fleet: merge, validation, parity, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import git
import pytest
import yaml

from fleetstrap.cli import run
from fleetstrap.repo import load_fleet
from fleetstrap.validate import ValidateOptions, validate_repo
from support.fleet import RenderedFleet
from test_fleet_template import argo_services, flux_services


def _head(root: Path) -> str:
    return git.Repo(root).head.commit.hexsha


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in root.rglob("*") if p.is_file() and ".git" not in p.relative_to(root).parts}


@pytest.fixture(scope="module")
def grown(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """multi-env on both engines with monitoring; a user edit; then two services and a cluster added."""
    root = tmp_path_factory.mktemp("add") / "fleet"
    assert run(["-q", "init", "-b", "multi-env", "-d", "engine=both", "-d", "monitoring=true",
                "-d", "notifications=slack", str(root)]) == 0
    # A person's edit far from what the merges touch: it must survive every add.
    readme = root / "infrastructure/configs/kustomization.yaml"
    readme.write_text("# owned by the platform team\n" + readme.read_text())
    repo = git.Repo(root)
    repo.git.add("-A")
    repo.index.commit("platform note")
    assert run(["-q", "add", "service", "payments", "-C", str(root), "--commit"]) == 0
    assert run(["-q", "add", "service", "ledger", "-C", str(root), "--commit"]) == 0
    assert run(["-q", "add", "cluster", "staging-2", "-e", "staging", "-C", str(root), "--commit"]) == 0
    return root


def test_services_and_cluster_recorded_and_wired(grown: Path) -> None:
    fleet = load_fleet(grown)
    assert fleet.answers.services == ("hello", "payments", "ledger")
    assert [c.name for c in fleet.answers.clusters][-1] == "staging-2"
    names = {c.name for c in fleet.components}
    assert {"service/payments", "service/ledger", "cluster/staging-2"} <= names
    for env in fleet.answers.environments:
        listed = yaml.safe_load((grown / "apps" / env / "kustomization.yaml").read_text())["resources"]
        assert {"./hello", "./payments", "./ledger"} <= set(listed)
        assert (grown / "apps" / env / "ledger" / "values.yaml").is_file()
    assert (grown / "clusters/staging-2/flux-system/gotk-sync.yaml").is_file()
    monitoring = (grown / "argocd/infrastructure/monitoring.yaml").read_text()
    assert "staging-2" in monitoring  # the per-cluster metrics stack follows the new cluster
    alerts = (grown / "infrastructure/configs/monitoring/flux-notifications.yaml").read_text()
    assert "namespace: ledger" in alerts and "namespace: payments" in alerts  # failing releases are named
    assert (grown / "infrastructure/configs/kustomization.yaml").read_text().startswith("# owned by the platform team")


def test_each_add_is_one_commit_and_the_tree_is_clean(grown: Path) -> None:
    repo = git.Repo(grown)
    messages = [c.message.strip() for c in repo.iter_commits()][:3]
    assert messages == ["Add cluster staging-2 (staging)", "Add service ledger", "Add service payments"]
    assert not repo.is_dirty(untracked_files=True)


def test_grown_fleet_validates_clean(grown: Path, crd_schemas: Path) -> None:
    report = validate_repo(grown, ValidateOptions(schema_locations=(str(crd_schemas),), catalog_url=None))
    assert [f"{f.file}:{f.line} [{f.check}] {f.message}" for f in report.findings if f.severity == "error"] == []


def test_parity_holds_after_adding(grown: Path, tmp_path: Path) -> None:
    fleet = load_fleet(grown)
    # Same answers, each engine alone: the workloads deployed must be the same set.
    target = tmp_path / "copy"
    shutil.copytree(grown, target)
    rendered = RenderedFleet(target, fleet.answers, ())
    flux, argo = flux_services(rendered), argo_services(rendered)
    assert len(argo) == len(fleet.answers.clusters) * 3
    assert flux == argo


@pytest.mark.parametrize(("args", "message"), [
    (["service", "hello"], "service 'hello' already exists"),
    (["service", "Bad_Name"], "service name 'Bad_Name'"),
    (["cluster", "dev"], "Missing option"),
    (["cluster", "dev", "-e", "dev"], "cluster 'dev' already exists"),
    (["cluster", "edge", "-e", "qa"], "environment 'qa' is not one of this fleet's environments"),
    # Every answers change goes through the one validated constructor: never a repo fleetstrap can't read back.
    (["cluster", "edge", "-e", "dev", "--server", "http://10.0.0.1:6443"], "server must be an https:// URL"),
])
def test_bad_input_changes_nothing(grown: Path, args: list[str], message: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    before, head = _tree(grown), _head(grown)
    assert run(["add", *args, "-C", str(grown)]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert _tree(grown) == before and _head(grown) == head


def test_dirty_tree_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "f"
    assert run(["-q", "init", "-b", "starter", str(root)]) == 0
    (root / "scratch.txt").write_text("wip\n")
    assert run(["add", "service", "payments", "-C", str(root)]) == 1
    assert "uncommitted changes" in capsys.readouterr().err
    assert not (root / "charts/payments").exists()


def test_not_a_fleet_repo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    git.Repo.init(tmp_path)
    assert run(["add", "service", "payments", "-C", str(tmp_path)]) == 1
    assert "not a fleet repo made by fleetstrap" in capsys.readouterr().err


def test_conflicting_edit_is_reported_and_left_for_the_user(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "f"
    assert run(["-q", "init", "-b", "starter", str(root)]) == 0
    kust = root / "apps/dev/kustomization.yaml"
    kust.write_text(kust.read_text() + "# my trailing note\n")
    repo = git.Repo(root)
    repo.index.add(["apps/dev/kustomization.yaml"])
    repo.index.commit("note")
    assert run(["add", "service", "payments", "-C", str(root)]) == 2
    assert "apps/dev/kustomization.yaml" in capsys.readouterr().err
    text = kust.read_text()
    assert "<<<<<<<" in text and "./payments" in text and "# my trailing note" in text


def test_split_layout_service_repositories(tmp_path: Path, crd_schemas: Path) -> None:
    fleet = tmp_path / "fleet"
    assert run(["-q", "init", "-b", "starter", "-d", "repo_layout=split", str(fleet)]) == 0
    assert run(["-q", "add", "service", "payments", "-C", str(fleet), "--commit"]) == 0
    for service in ("hello", "payments"):
        repo = tmp_path / service
        assert {"Cargo.toml", "Dockerfile", "src", "charts", ".github"} <= {p.name for p in repo.iterdir()}
        assert (repo / "charts" / service / "Chart.yaml").is_file()
        assert not git.Repo(repo).is_dirty(untracked_files=True)
        # The fleet holds only the wiring: the chart comes from the service's OCI release.
        assert not (fleet / "charts" / service).exists() and not (fleet / "services" / service).exists()
        source = yaml.safe_load((fleet / "apps/base" / service / "chart-source.yaml").read_text())
        assert source["kind"] == "OCIRepository" and source["spec"]["url"].endswith(f"/charts/{service}")
    report = validate_repo(fleet, ValidateOptions(schema_locations=(str(crd_schemas),), catalog_url=None))
    assert [f.message for f in report.findings if f.severity == "error"] == []


def test_split_layout_refuses_an_existing_service_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hello").mkdir()
    (tmp_path / "hello" / "keep.txt").write_text("x")
    # Split works with every engine (Argo CD: OCI chart + $values, see test_split_layout).
    for engine in ("flux", "argocd"):
        dest = tmp_path / f"fleet-{engine}"
        assert run(["init", "-b", "starter", "-d", "repo_layout=split", "-d", f"engine={engine}", str(dest)]) == 1
        assert "is not empty" in capsys.readouterr().err
        assert not dest.exists()


def test_monitoring_added_later_equals_monitoring_from_init(tmp_path: Path) -> None:
    later, upfront = tmp_path / "later", tmp_path / "upfront"
    base = ["-q", "init", "-b", "multi-env", "-d", "engine=both"]
    assert run([*base, str(later)]) == 0
    assert run(["-q", "add", "monitoring", "--notifications", "slack", "-C", str(later), "--commit"]) == 0
    assert run([*base, "-d", "monitoring=true", "-d", "notifications=slack", str(upfront)]) == 0
    assert _tree(later) == _tree(upfront)
    assert (later / "infrastructure/configs/monitoring/kustomization.yaml").is_file()
    assert run(["add", "monitoring", "-C", str(later)]) == 1  # already on
