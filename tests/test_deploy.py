"""`fleetstrap promote`, `rollback` and `resume` on real git histories of generated fleets (both engines, both
layouts, with and without image automation), through the CLI: what is committed, what the bots' lines keep,
and every refusal (exit 1, one line, nothing written)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from fleetstrap.deploy import values as v
from support.commands import cli, ok
from support.deploy import SERVICE, chart_version, clean, fleet_repo, git, head, release, rendered, tag_of, values
from support.tools import require_module

# (engine, repo_layout, image_automation): every engine and layout, with and without the bots.
VARIANTS = [
    ("flux", "monorepo", True),
    ("argocd", "split", True),
    ("both", "split", True),
    ("both", "monorepo", False),
    ("flux", "split", False),
    ("argocd", "monorepo", False),
]


def _ids(variant: tuple[str, str, bool]) -> str:
    return f"{variant[0]}-{variant[1]}-{'bots' if variant[2] else 'workflow'}"


def _bot(engine: str, automation: bool) -> str:
    if not automation:
        return "workflow"
    return "flux" if engine in ("flux", "both") else "argocd"


@pytest.fixture(params=VARIANTS, ids=_ids)
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str, bool]:
    """A fleet whose dev ran 0.1.0 (init), 0.2.0 and 0.3.0, committed the way this variant's releases land."""
    engine, layout, automation = request.param
    root = fleet_repo(rendered(engine, layout, automation), tmp_path / "fleet")
    for version in ("0.2.0", "0.3.0"):
        assert release(root, version, by=_bot(engine, automation)) is not None
    return root, engine, automation


def layout_of(root: Path) -> str:
    return str(yaml.safe_load((root / ".fleetstrap" / "answers" / "fleet.yml").read_text())["repo_layout"])


def _run(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> tuple[str, str]:
    return ok(capsys, *args, "-C", str(root))


def test_promote_rollback_resume_through_the_environments(fleet: tuple[Path, str, bool],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    root, engine, automation = fleet
    flux_markers = automation and engine in ("flux", "both")
    original = {env: values(root, env).read_text() for env in ("dev", "staging", "production")}
    assert "$imagepolicy" in original["staging"] if flux_markers else "$imagepolicy" not in original["staging"]

    # The split layout pins each environment's chart beside its tag (chart-version.yaml); the monorepo has none.
    split = chart_version(root, "staging") is not None
    assert split == (layout_of(root) == "split")

    out, err = _run(capsys, root, "promote", SERVICE, "--to", "staging")

    assert tag_of(root, "staging") == "0.3.0" and tag_of(root, "production") == "0.1.0"
    assert "+  tag: 0.3.0" in out and "-  tag: 0.1.0" in out  # the diff, on stdout
    assert git(root, "log", "-1", "--format=%s") == f"{SERVICE}: promote 0.3.0 from dev to staging"
    charts = [f"apps/staging/{SERVICE}/chart-version.yaml"] if split else []
    assert git(root, "show", "--name-only", "--format=", "HEAD").split() == [
        *charts, f"apps/staging/{SERVICE}/values.yaml"]
    if split:  # the chart moved with the image; production still runs the first chart
        assert chart_version(root, "staging") == "0.3.0" and chart_version(root, "production") == "0.1.0"
    # Only the tag's value changed: the bot-owned marker (if any) and every other line are as they were.
    assert values(root, "staging").read_text() == original["staging"].replace("tag: 0.1.0", "tag: 0.3.0", 1)
    assert clean(root)

    before = head(root)
    out, err = _run(capsys, root, "promote", SERVICE, "--to", "staging")
    assert "up to date" in err and head(root) == before

    _run(capsys, root, "promote", SERVICE, "--to", "production")
    assert tag_of(root, "production") == "0.3.0"
    assert chart_version(root, "production") == ("0.3.0" if split else None)

    # 0.3.0 is bad in production: back to what production ran before.
    out, err = _run(capsys, root, "rollback", SERVICE, "--env", "production")
    assert tag_of(root, "production") == "0.1.0"
    assert chart_version(root, "production") == ("0.1.0" if split else None)  # the chart goes back too
    message = git(root, "log", "-1", "--format=%B")
    assert message.startswith(f"{SERVICE}: roll back production from 0.3.0 to 0.1.0")
    assert "Fleetstrap-Rolled-Back-From: 0.3.0" in message
    prod = values(root, "production").read_text()
    updater = root / "argocd" / "image-updater" / f"{SERVICE}.yaml"
    if flux_markers:
        assert f"Resume it with: fleetstrap resume {SERVICE} --env production" in message
        assert not v.has_markers(prod) and v.is_paused(prod)
        # Flux's Setters strategy no longer touches the paused line; other environments keep their markers.
        assert release(root, "0.4.0", env="production", by="flux") is None
        assert v.has_markers(values(root, "staging").read_text())
    if automation and engine in ("argocd", "both"):
        # Production has no ImageUpdater (promotion order: only dev follows new tags), so nothing to pin there.
        assert not v.has_updater(updater.read_text(), f"{SERVICE}-production")
        assert "Argo CD Image Updater: production has no ImageUpdater" in message
        assert git(root, "diff", "HEAD~1", "--", str(updater.relative_to(root))) == ""
    if not automation:
        assert "no image automation in this fleet: nothing to pause" in message and "Resume it" not in message
        assert values(root, "production").read_text() == original["production"]

    out, err = _run(capsys, root, "resume", SERVICE, "--env", "production")
    if flux_markers:
        # Exactly the generated file again but for the tag: markers back, note gone, allowTags restored.
        assert values(root, "production").read_text() == original["production"]
        assert git(root, "log", "-1", "--format=%s") == f"{SERVICE}: resume image automation in production"
        assert git(root, "diff", "HEAD~2", "--", str(updater.relative_to(root))) == ""
    else:
        assert "up to date" in err
    assert clean(root)


def test_rollback_goes_to_the_version_before_and_never_back_to_a_rolled_back_one(
        fleet: tuple[Path, str, bool], capsys: pytest.CaptureFixture[str]) -> None:
    root, _, _ = fleet
    _run(capsys, root, "rollback", SERVICE, "--env", "dev")
    assert tag_of(root, "dev") == "0.2.0"

    _run(capsys, root, "rollback", SERVICE, "--env", "dev")  # 0.3.0 was rolled back from: 0.1.0, not 0.3.0
    assert tag_of(root, "dev") == "0.1.0"

    _run(capsys, root, "rollback", SERVICE, "--env", "dev", "--to", "0.3.0")  # named explicitly: allowed
    assert tag_of(root, "dev") == "0.3.0"
    subjects = git(root, "log", "-3", "--format=%s").splitlines()
    assert subjects == [f"{SERVICE}: roll back dev from {a} to {b}"
                        for a, b in (("0.1.0", "0.3.0"), ("0.2.0", "0.1.0"), ("0.3.0", "0.2.0"))]


def test_promote_a_named_version_and_dry_run(fleet: tuple[Path, str, bool], capsys: pytest.CaptureFixture[str]) -> None:
    root, _, _ = fleet
    before = head(root)
    out, err = _run(capsys, root, "promote", SERVICE, "--to", "staging", "--version", "0.2.0", "--dry-run")
    assert "+  tag: 0.2.0" in out and "dry run" in err
    assert head(root) == before and clean(root) and tag_of(root, "staging") == "0.1.0"

    _run(capsys, root, "promote", SERVICE, "--to", "staging", "--version", "0.2.0")
    assert tag_of(root, "staging") == "0.2.0"


def test_skipping_an_environment_needs_force(fleet: tuple[Path, str, bool], capsys: pytest.CaptureFixture[str]) -> None:
    root, _, _ = fleet
    code, _, err = cli(capsys, "promote", SERVICE, "--to", "production", "--from", "dev", "-C", str(root))
    assert code == 1 and "skips staging" in err and "--force" in err and tag_of(root, "production") == "0.1.0"

    _run(capsys, root, "promote", SERVICE, "--to", "production", "--from", "dev", "--force")
    assert tag_of(root, "production") == "0.3.0"
    assert "skipping staging" in git(root, "log", "-1", "--format=%B")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = fleet_repo(rendered("flux", "monorepo", True), tmp_path_factory.mktemp("refusals") / "fleet")
    for version in ("0.2.0", "0.3.0"):
        release(root, version, by="flux")
    return root


@pytest.mark.parametrize(("args", "needle"), [
    (("promote", "nosuch", "--to", "staging"), "unknown service 'nosuch'; this fleet has: hello"),
    (("promote", SERVICE, "--to", "qa"), "unknown environment 'qa'; this fleet has: dev, staging, production"),
    (("promote", SERVICE, "--to", "staging", "--from", "qa"), "unknown environment 'qa'"),
    (("promote", SERVICE, "--to", "dev"), "dev is the first environment"),
    (("promote", SERVICE, "--to", "staging", "--from", "production"), "promotion goes forward"),
    (("promote", SERVICE, "--to", "staging", "--version", "0.9.0"),
     "hello 0.9.0 never ran in dev (its history: 0.1.0, 0.2.0, 0.3.0)"),
    (("promote", SERVICE, "--to", "production", "--version", "0.3.0"), "never ran in staging (its history: 0.1.0)"),
    (("rollback", SERVICE, "--env", "staging"), "no earlier version of hello in staging"),
    (("rollback", SERVICE, "--env", "dev", "--to", "0.0.9"), "hello 0.0.9 never ran in dev"),
    (("rollback", "nosuch", "--env", "dev"), "unknown service 'nosuch'"),
    (("resume", SERVICE, "--env", "qa"), "unknown environment 'qa'"),
])
def test_refusals_are_one_line_exit_1_and_write_nothing(history: Path, capsys: pytest.CaptureFixture[str],
                                                        args: tuple[str, ...], needle: str) -> None:
    before = head(history)
    code, out, err = cli(capsys, *args, "-C", str(history))
    assert code == 1
    assert needle in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) <= 2  # the error, maybe a hint
    assert head(history) == before and clean(history) and out == ""


def test_a_dirty_tree_is_refused(history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "dirty"
    git(history, "clone", "-q", str(history), str(root))
    (root / "notes.txt").write_text("work in progress\n")
    before = head(root)

    code, _, err = cli(capsys, "promote", SERVICE, "--to", "staging", "-C", str(root))

    assert code == 1 and "uncommitted changes" in err and "notes.txt" in err
    assert head(root) == before and tag_of(root, "staging") == "0.1.0"


def test_a_values_file_fleetstrap_cannot_edit_is_refused_without_writing(history: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "flow"
    git(history, "clone", "-q", str(history), str(root))
    path = values(root, "staging")
    path.write_text(path.read_text().replace("image:\n", "image: {tag: 0.1.0}\nold_image:\n"))
    git(root, "commit", "-q", "-am", "flow style")
    before = head(root)

    code, _, err = cli(capsys, "promote", SERVICE, "--to", "staging", "-C", str(root))

    assert code == 1 and "apps/staging/hello/values.yaml" in err
    assert head(root) == before and clean(root)


def test_paused_marker_is_no_setter_for_kyaml_and_round_trips() -> None:
    """kyaml reads a line comment as JSON (fieldmeta.Read); the paused form must fail that parse and must not
    even contain the key the controller's file reader screens for ("$imagepolicy", quoted)."""
    text = ('image:\n  repository: ghcr.io/acme/hello # {"$imagepolicy": "flux-system:hello:name"}\n'
            '  tag: 0.2.0 # {"$imagepolicy": "flux-system:hello:tag"}\nreplicaCount: 1\n')
    paused = v.pause_markers(text, "fleetstrap resume hello --env dev")
    for line in paused.splitlines():
        if "#" in line and not line.startswith("#"):
            with pytest.raises(json.JSONDecodeError):
                json.loads(line.split("#", 1)[1])
    assert '"$imagepolicy"' not in paused
    assert yaml.safe_load(paused) == yaml.safe_load(text)
    assert v.resume_markers(paused) == text
    assert v.pause_markers(paused, "x") == paused  # pausing twice changes nothing


def test_promote_into_a_rolled_back_environment_keeps_it_pinned_to_the_promoted_version(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # staging follows release candidates by itself (image_policy), so it has an ImageUpdater to pin.
    root = fleet_repo(rendered("both", "split", True, image_policy={"staging": ">=0.1.0-0"}), tmp_path / "fleet")
    for version in ("0.2.0", "0.3.0"):
        release(root, version, by="flux")
    _run(capsys, root, "promote", SERVICE, "--to", "staging", "--version", "0.2.0")
    _run(capsys, root, "promote", SERVICE, "--to", "staging")
    _run(capsys, root, "rollback", SERVICE, "--env", "staging")
    updater = root / "argocd" / "image-updater" / f"{SERVICE}.yaml"
    assert v.allowed_tags(updater.read_text(), "u", f"{SERVICE}-staging") == [r"regexp:^0\.2\.0$"]

    _, err = _run(capsys, root, "promote", SERVICE, "--to", "staging", "--version", "0.3.0")

    # The Image Updater would otherwise take its pinned 0.2.0 back; Flux's markers stay paused.
    assert tag_of(root, "staging") == "0.3.0"
    assert v.allowed_tags(updater.read_text(), "u", f"{SERVICE}-staging") == [r"regexp:^0\.3\.0$"]
    assert v.is_paused(values(root, "staging").read_text())
    assert f"fleetstrap resume {SERVICE} --env staging resumes it" in err
    assert "staging follows hello charts within >=0.1.0-0" in err
    _run(capsys, root, "resume", SERVICE, "--env", "staging")
    assert "fleetstrap-paused" not in updater.read_text() and not v.is_paused(values(root, "staging").read_text())


@pytest.fixture(scope="module")
def flux_setters() -> Path:
    """image-automation-controller's own Setters update (support/flux_setters.py), built from its Go module."""
    from fleetstrap.pins import pin
    from support.flux_setters import build_flux_setters
    from support.tools import require_tool

    require_tool("go", "builds Flux's image-automation-controller Setters code from the Go module proxy")
    return build_flux_setters(pin("flux_version"))


def test_flux_setters_leave_a_paused_environment_alone(flux_setters: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The claim rollback's pin rests on, checked with Flux's own code: the ImageUpdateAutomation of dev
    (update.path ./apps/dev) with the ImagePolicy selecting the rolled-back-from tag rewrites every marked tag
    but the paused service's; after resume it rewrites that one too."""
    from support.flux_setters import run_setters

    fleet = rendered("flux", "monorepo", True)
    root = fleet_repo(fleet, tmp_path / "fleet")
    for version in ("0.2.0", "0.3.0"):
        release(root, version, by="flux")
    _run(capsys, root, "rollback", SERVICE, "--env", "dev")
    registry = v.read_image(values(root, "dev").read_text(), "dev").repository
    policy = [{"namespace": "flux-system", "name": SERVICE, "image": registry, "tag": "0.3.0"}]
    generated = values(root, "staging").read_text()

    # The automation of dev: nothing to do in the paused file, whatever the policy selects.
    assert run_setters(flux_setters, root / "apps" / "dev", policy) == []
    assert tag_of(root, "dev") == "0.2.0"
    # The same code does rewrite a file with markers (staging's, as generated): the check is not vacuous.
    assert run_setters(flux_setters, root / "apps" / "staging", policy) == [f"{SERVICE}/values.yaml"]
    assert values(root, "staging").read_text() == generated.replace("tag: 0.1.0", "tag: 0.3.0", 1)
    git(root, "checkout", "-q", "--", "apps/staging")

    _run(capsys, root, "resume", SERVICE, "--env", "dev")
    assert run_setters(flux_setters, root / "apps" / "dev", policy) == [f"{SERVICE}/values.yaml"]
    assert tag_of(root, "dev") == "0.3.0"


def test_history_is_what_the_branch_ran_not_what_a_merged_branch_tried(
        history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "merged"
    git(history, "clone", "-q", str(history), str(root))
    git(root, "switch", "-q", "-c", "release-0.4")
    release(root, "0.4.0-rc.1", by="flux")  # only ever on the pull request's branch
    release(root, "0.4.0", by="flux")
    git(root, "switch", "-q", "main")
    git(root, "merge", "-q", "--no-ff", "-m", "Merge pull request #7 from acme/release-0.4", "release-0.4")
    assert tag_of(root, "dev") == "0.4.0"

    code, _, err = cli(capsys, "promote", SERVICE, "--to", "staging", "--version", "0.4.0-rc.1", "-C", str(root))
    assert code == 1 and "never ran in dev (its history: 0.1.0, 0.2.0, 0.3.0, 0.4.0)" in err

    _run(capsys, root, "rollback", SERVICE, "--env", "dev")
    assert tag_of(root, "dev") == "0.3.0"


def test_a_split_layout_service_repository_is_not_the_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "hello"
    root.mkdir()
    (root / ".copier-answers.yml").write_text("_commit: v0.1.0\n_src_path: x\nunit: service\nservice_name: hello\n"
                                              "owner: acme\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "service")

    code, _, err = cli(capsys, "promote", SERVICE, "--to", "staging", "-C", str(root))

    assert code == 1 and "is a service repository (split layout)" in err and "fleet repository" in err


def test_a_rolled_back_fleet_still_passes_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The edited values and ImageUpdater files are what the engines get: the offline gate (schemas with the
    Image Updater CRD, kustomize builds, helm template with the values) passes on the rolled-back fleet."""
    require_module("kubernetes_validate")
    root = fleet_repo(rendered("both", "split", True), tmp_path / "fleet")
    for version in ("0.2.0", "0.3.0"):
        release(root, version, by="flux")
    _run(capsys, root, "promote", SERVICE, "--to", "staging")
    _run(capsys, root, "rollback", SERVICE, "--env", "staging")
    assert v.is_paused(values(root, "staging").read_text())

    code, out, err = cli(capsys, "validate", str(root), "--offline")

    assert code == 0, out + err


def test_json_output_for_scripts(history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "json"
    git(history, "clone", "-q", str(history), str(root))

    out, err = _run(capsys, root, "promote", SERVICE, "--to", "staging", "--format", "json")

    report = json.loads(out)
    assert report == {"action": "promote", "service": SERVICE, "environment": "staging", "from": "0.1.0",
                      "to": "0.3.0", "source_environment": "dev", "outcome": "committed", "commit": head(root),
                      "branch": None, "url": None, "files": [f"apps/staging/{SERVICE}/values.yaml"], "notes": [],
                      "journal": [], "clusters": []}
    assert "+  tag: 0.3.0" in err  # the diff goes to stderr, stdout is the JSON alone


def test_an_interrupted_write_leaves_nothing_half_written(history: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "interrupted"
    git(history, "clone", "-q", str(history), str(root))
    _run(capsys, root, "promote", SERVICE, "--to", "staging")
    before = head(root)

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("fleetstrap.gitrepo.commit_paths", interrupted)  # after the files, before the commit
    code, _, err = cli(capsys, "rollback", SERVICE, "--env", "staging", "-C", str(root))

    assert code == 130 and "interrupted" in err
    assert head(root) == before and clean(root) and tag_of(root, "staging") == "0.3.0"


def test_rollback_where_people_removed_the_markers_says_there_is_nothing_to_pause(
        history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "unmarked"
    git(history, "clone", "-q", str(history), str(root))
    path = values(root, "dev")
    path.write_text(re.sub(r" # \{\"\$imagepolicy\": \"[^\"]+\"\}", "", path.read_text()))
    git(root, "commit", "-q", "-am", "dev: tags by hand")

    _run(capsys, root, "rollback", SERVICE, "--env", "dev")

    message = git(root, "log", "-1", "--format=%B")
    assert "apps/dev/hello/values.yaml has no setter markers" in message and "Resume it" not in message
    assert "fleetstrap" not in values(root, "dev").read_text().split("image:")[1]


def test_split_promote_moves_the_chart_both_engines_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Split layout, end to end: a release lands in dev (tag and chart), promote carries both to staging, and what
    each engine reads from the fleet then pins that chart: Flux's staging OCIRepository (the overlay's replacement,
    as kustomize builds it) and Argo CD's staging Application (the ApplicationSet's git files generator)."""
    from support import k8s
    from support.parity import appset_params, go_template

    root = fleet_repo(rendered("both", "split", False), tmp_path / "fleet")
    release(root, "0.2.0")
    assert chart_version(root, "dev") == "0.2.0" and chart_version(root, "staging") == "0.1.0"

    out, _ = _run(capsys, root, "promote", SERVICE, "--to", "staging", "--dry-run")
    assert '+  version: "0.2.0"' in out and "chart-version.yaml" in out
    _run(capsys, root, "promote", SERVICE, "--to", "staging")

    def flux_chart(env: str) -> dict[str, object]:
        objects = k8s.kustomize_build(root / "apps" / env / SERVICE)
        # The chart-version object is local-config: read by kustomize, never applied to a cluster.
        assert not any(o["kind"] == "ConfigMap" and o["metadata"]["name"] == f"{SERVICE}-chart" for o in objects)
        return dict(next(o for o in objects if o["kind"] == "OCIRepository")["spec"]["ref"])

    assert {env: flux_chart(env) for env in ("dev", "staging", "production")} == {
        "dev": {"semver": "0.2.0"}, "staging": {"semver": "0.2.0"}, "production": {"semver": "0.1.0"}}
    appset = k8s.load_documents(root / "argocd" / "applicationsets" / "services.yaml")[0]
    chart = appset["spec"]["template"]["spec"]["sources"][0]
    argo = {(p["environment"], go_template(chart["repoURL"], p), go_template(chart["targetRevision"], p))
            for p in appset_params(appset, root)}
    registry = yaml.safe_load((root / ".fleetstrap" / "answers" / "fleet.yml").read_text())["registry"]
    assert argo == {("dev", f"oci://{registry}/charts/{SERVICE}", "0.2.0"),
                    ("staging", f"oci://{registry}/charts/{SERVICE}", "0.2.0"),
                    ("production", f"oci://{registry}/charts/{SERVICE}", "0.1.0")}
    body = git(root, "log", "-1", "--format=%B")
    assert body.startswith(f"{SERVICE}: promote 0.2.0 from dev to staging")
