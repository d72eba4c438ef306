"""`fleetstrap update` / `check-update` against a temporary template repo with two tagged versions."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from fleetstrap.answers import build_answers
from fleetstrap.cli import run
from fleetstrap.errors import NotAFleetRepoError
from fleetstrap.plan import build_fleet_component, build_service_repo_component
from fleetstrap.render import TemplateSource, render_component
from fleetstrap.repo import load_fleet
from fleetstrap.update import UpdateRequest, update_fleet
from fleetstrap.upgrade.engine import apply_answers_change
from fleetstrap.upgrade.migrations import Migration, build_api_version_rename
from update_support import commit_all, git, head, render_fleet, status, write_two_versions

VALUES = "apps/dev/alpha/values.yaml"
BOT_LINE_V1 = '  tag: 0.1.0 # {"$imagepolicy": "flux-system:alpha:tag"}'


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    t = tmp_path_factory.mktemp("tpl") / "templates"
    return write_two_versions(t)


@pytest.fixture(scope="module")
def pristine(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fleet with one service rendered at v1.0.0 and committed (copied per test)."""
    root = tmp_path_factory.mktemp("pristine") / "fleet"
    render_fleet(root, TemplateSource(str(template), "v1.0.0"), ["alpha"])
    return root


@pytest.fixture
def fleet(pristine: Path, tmp_path: Path) -> Path:
    root = tmp_path / "fleet"
    shutil.copytree(pristine, root, symlinks=True)
    return root


def edit(root: Path, rel: str, fn: Callable[[str], str]) -> None:
    p = root / rel
    text = p.read_text()
    new = fn(text)
    assert new != text, f"edit of {rel} changed nothing"
    p.write_text(new)


def update(root: Path, template: Path, *args: str) -> int:
    return run(["update", str(root), "--template", str(template), "--no-validate", *args])


def test_template_change_applied_and_user_edits_kept(fleet: Path, template: Path) -> None:
    edit(fleet, VALUES, lambda t: t.replace("# values for alpha", "# values for alpha, tuned by the team"))
    edit(fleet, "services/alpha/README.md", lambda t: t.replace("# alpha", "# alpha (payments)"))
    commit_all(fleet, "team edits")

    assert update(fleet, template) == 0

    values = (fleet / VALUES).read_text()
    assert "# values for alpha, tuned by the team" in values  # user edit kept
    assert "memory: 256Mi" in values and "memory: 128Mi" not in values  # template change applied
    readme = (fleet / "services/alpha/README.md").read_text()
    assert "A Rust service." in readme and "# alpha (payments)" in readme
    assert "<<<<<<<" not in values + readme
    assert not [p for p in status(fleet) if p.endswith(".rej")]
    for rc in load_fleet(fleet).components:
        assert rc.template_version == "v2.0.0"


def test_conflicting_change_lists_markers_exit_2_nothing_else_touched(
        fleet: Path, template: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(fleet, VALUES, lambda t: t.replace("memory: 128Mi", "memory: 512Mi"))
    commit_all(fleet, "more memory")
    before = head(fleet)
    untouched = {p: (fleet / p).read_bytes() for p in ("README.md", "apps/dev/kustomization.yaml",
                                                      "clusters/dev/apps.yaml")}

    code = update(fleet, template, "--component", "service/alpha", "--commit")

    assert code == 2
    err = capsys.readouterr().err
    assert VALUES in err and "conflict" in err
    values = (fleet / VALUES).read_text()
    assert "<<<<<<< before updating" in values and ">>>>>>> after updating" in values
    assert "memory: 512Mi" in values and "memory: 256Mi" in values
    assert head(fleet) == before  # no commit on conflicts
    for p, data in untouched.items():
        assert (fleet / p).read_bytes() == data
    changed = status(fleet)
    assert VALUES in changed
    # Only the component's own files changed (other components untouched, no stray files).
    assert all(p.startswith(("apps/dev/alpha/", "services/alpha/", ".fleetstrap/answers/service-alpha"))
               for p in changed), changed


def test_bot_owned_lines_survive_an_update_changing_their_files(fleet: Path, template: Path) -> None:
    # Flux image automation moved the tag (the template moves its default too, on that very line).
    edit(fleet, VALUES, lambda t: t.replace(BOT_LINE_V1, BOT_LINE_V1.replace("0.1.0", "0.3.7")))
    # Argo CD Image Updater: its .argocd-source file and a helmvalues image.tag.
    argo_src = "apps/dev/alpha/.argocd-source-alpha.yaml"
    bot_written = "helm:\n  parameters:\n  - name: image.tag\n    value: 0.4.2\n    forcestring: true\n"
    (fleet / argo_src).write_text(bot_written)
    edit(fleet, "apps/dev/alpha/values-argo.yaml", lambda t: t.replace("tag: 0.1.0", "tag: 0.4.2"))
    commit_all(fleet, "bots")

    assert update(fleet, template, "--component", "service/alpha") == 0

    values = (fleet / VALUES).read_text()
    assert '  tag: 0.3.7 # {"$imagepolicy": "flux-system:alpha:tag"}' in values
    assert "memory: 256Mi" in values  # the rest of the file did update
    assert "<<<<<<<" not in values
    assert (fleet / argo_src).read_text() == bot_written
    argo_values = (fleet / "apps/dev/alpha/values-argo.yaml").read_text()
    assert "  tag: 0.4.2" in argo_values and "port: 9090" in argo_values
    assert "<<<<<<<" not in argo_values


def test_ten_services_in_one_command_then_noop(template: Path, tmp_path: Path) -> None:
    root = tmp_path / "fleet10"
    services = [f"svc{i}" for i in range(10)]
    render_fleet(root, TemplateSource(str(template), "v1.0.0"), services)
    edit(root, "apps/dev/svc3/values.yaml", lambda t: t.replace("replicaCount: 1", "replicaCount: 3"))
    commit_all(root, "scale svc3")

    assert update(root, template, "--commit") == 0

    log = git(root, "log", "-1", "--format=%B")
    assert "v1.0.0 -> v2.0.0" in log and "service/svc9" in log
    assert status(root) == []
    for s in services:
        text = (root / f"apps/dev/{s}/values.yaml").read_text()
        assert "memory: 256Mi" in text
        assert "image.toolkit.fluxcd.io/v1\n" in (root / f"apps/dev/{s}/imagepolicy.yaml").read_text()
    assert "replicaCount: 3" in (root / "apps/dev/svc3/values.yaml").read_text()

    after = head(root)
    report = update_fleet(UpdateRequest(root, template=str(template), commit=True, validate=False))
    assert report.updated == () and report.files == () and report.commit is None
    assert head(root) == after and status(root) == []


def test_pretend_shows_diff_and_changes_nothing(fleet: Path, template: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    before = head(fleet)
    assert update(fleet, template, "--pretend") == 0
    out = capsys.readouterr().out
    assert f"+++ b/{VALUES}" in out and "+    memory: 256Mi" in out
    assert status(fleet) == [] and head(fleet) == before


def test_dirty_tree_refused(fleet: Path, template: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (fleet / "notes.txt").write_text("wip\n")
    assert update(fleet, template) == 1
    assert "uncommitted changes" in capsys.readouterr().err
    assert status(fleet) == ["notes.txt"]


def test_unknown_component_refused(fleet: Path, template: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert update(fleet, template, "--component", "service/nope") == 1
    err = capsys.readouterr().err
    assert "unknown component 'service/nope'" in err and "service/alpha" in err
    assert status(fleet) == []


def test_not_a_fleetstrap_repo(tmp_path: Path, template: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    (other / "README.md").write_text("hello\n")
    assert update(other, template) == 1
    assert "not a fleet repo made by fleetstrap" in capsys.readouterr().err
    assert run(["check-update", str(other)]) == 1
    with pytest.raises(NotAFleetRepoError):
        load_fleet(other)


def test_check_update_json_and_exit_codes(fleet: Path, template: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["check-update", str(fleet), "--template", str(template), "--format", "json"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["update_available"] is True and data["available"] == "v2.0.0"
    by_name = {c["name"]: c for c in data["components"]}
    assert set(by_name) == {"fleet", "cluster/dev", "service/alpha"}
    assert by_name["service/alpha"] == {"name": "service/alpha", "current": "v1.0.0", "available": "v2.0.0",
                                        "status": "update-available", "update_available": True}
    # Checking against the version the repo is on: nothing to do, exit 0.
    assert run(["check-update", str(fleet), "--template", str(template), "--to", "1.0.0", "--format",
                "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["update_available"] is False
    assert {c["status"] for c in data["components"]} == {"up-to-date"}


def test_migration_moves_hand_written_api_versions(fleet: Path, template: Path) -> None:
    own = "apps/dev/alpha/extra-policy.yaml"
    (fleet / own).write_text("apiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImagePolicy\n"
                             "metadata:\n  name: extra\n")
    commit_all(fleet, "hand-written policy")
    rename = build_api_version_rename("image.toolkit.fluxcd.io/v1beta2", "image.toolkit.fluxcd.io/v1")
    migrations = (Migration("2.0.0", "image automation v1", rename),
                  Migration("3.0.0", "not crossed", build_api_version_rename("kind: ImagePolicy", "x")))

    report = update_fleet(UpdateRequest(fleet, components=("service/alpha",), template=str(template),
                                        validate=False, migrations=migrations))

    assert report.migrations == ("image automation v1",)
    assert (fleet / own).read_text().startswith("apiVersion: image.toolkit.fluxcd.io/v1\n")
    assert "kind: ImagePolicy" in (fleet / own).read_text()
    assert "apiVersion: image.toolkit.fluxcd.io/v1\n" in (fleet / "apps/dev/alpha/imagepolicy.yaml").read_text()


def test_apply_answers_change_keeps_edits_on_a_dirty_tree(fleet: Path, template: Path) -> None:
    edit(fleet, "README.md", lambda t: t.replace("Owned by acme.", "Owned by acme (platform team)."))
    commit_all(fleet, "readme")
    (fleet / "services/gamma").mkdir(parents=True)
    (fleet / "services/gamma/README.md").write_text("# gamma\n")  # as `add service` leaves it
    answers = load_fleet(fleet).answers
    grown = build_fleet_component(type(answers)(**{**answers.__dict__, "services": ("alpha", "gamma")}))

    conflicts = apply_answers_change(fleet, grown, TemplateSource(str(template), "v1.0.0"))

    assert conflicts == ()
    readme = (fleet / "README.md").read_text()
    assert "Owned by acme (platform team)." in readme and "- gamma" in readme
    assert "  - gamma" in (fleet / "apps/dev/kustomization.yaml").read_text()
    repo = load_fleet(fleet)
    assert repo.answers.services == ("alpha", "gamma")
    assert repo.component("fleet").template_version == "v1.0.0"  # answers changed, template did not
    assert (fleet / "services/gamma/README.md").read_text() == "# gamma\n"


def test_bundled_copier_yml_is_understood_by_the_unchanged_unit_shortcut() -> None:
    """The shortcut (no copier run for units whose files did not change) must recognise our real template."""
    import yaml

    from fleetstrap.resources import templates_dir
    from fleetstrap.upgrade.engine import _CopierConfigLoader

    docs = list(yaml.load_all((templates_dir() / "copier.yml").read_text(), Loader=_CopierConfigLoader))
    settings = [d for d in docs if isinstance(d, dict) and "_subdirectory" in d]
    assert [str(d["_subdirectory"]).replace(" ", "") for d in settings] == ["units/{{unit}}"]


def test_split_layout_service_repo_updates_like_a_fleet(template: Path, tmp_path: Path) -> None:
    """A split-layout service repo (answers at its root) is updated by the same command, in its own repo."""
    root = tmp_path / "alpha"
    answers = build_answers({"owner": "acme", "services": ["alpha"], "repo_layout": "split", "secrets": "none",
                             "tls_issuer": "selfsigned"})
    git(tmp_path, "init", "-q", "-b", "main", str(root))
    render_component(build_service_repo_component(answers, "alpha"), root, TemplateSource(str(template), "v1.0.0"))
    edit(root, VALUES, lambda t: t.replace("replicaCount: 1", "replicaCount: 2"))
    commit_all(root, "service repo")
    assert [c.name for c in load_fleet(root).components] == ["service-repo/alpha"]

    assert run(["check-update", str(root), "--template", str(template)]) == 2
    assert update(root, template, "--commit") == 0

    values = (root / VALUES).read_text()
    assert "memory: 256Mi" in values and "replicaCount: 2" in values
    assert load_fleet(root).component("service-repo/alpha").template_version == "v2.0.0"
    assert "_commit: v2.0.0" in (root / ".copier-answers.yml").read_text()
    assert status(root) == []
