"""Pure parts of update: bot-owned line protection, conflict-hunk resolution, migrations, version order."""

from __future__ import annotations

from pathlib import Path

from packaging.version import Version

from fleetstrap.upgrade.migrations import MIGRATIONS, Migration, build_api_version_rename
from fleetstrap.upgrade.protect import (
    has_conflict_markers,
    protect_file,
    resolve_owned_conflicts,
    restore_protected,
)

BEFORE = """\
image:
  repository: ghcr.io/acme/checkout
  tag: 1.4.2 # {"$imagepolicy": "flux-system:checkout:tag"}
sidecar:
  image:
    tag: 7.0.1
replicas: 2
"""


def test_restore_puts_bot_values_back_and_keeps_template_changes() -> None:
    after = BEFORE.replace("1.4.2", "0.2.0").replace("tag: 7.0.1", "tag: 0.0.1").replace("replicas: 2",
                                                                                        "replicas: 3")
    kept = restore_protected(BEFORE, after)
    assert '  tag: 1.4.2 # {"$imagepolicy": "flux-system:checkout:tag"}' in kept
    assert "    tag: 7.0.1" in kept
    assert "replicas: 3" in kept


def test_restore_leaves_unowned_lines_alone() -> None:
    before = "name: a\nversion: 1\n"
    assert restore_protected(before, "name: b\nversion: 2\n") == "name: b\nversion: 2\n"


def test_owned_conflict_hunk_resolved_to_template_side_then_restored() -> None:
    conflicted = (
        "image:\n"
        "<<<<<<< before updating\n"
        '  tag: 1.4.2 # {"$imagepolicy": "flux-system:checkout:tag"}\n'
        "=======\n"
        '  tag: 0.2.0 # {"$imagepolicy": "flux-system:checkout:tag"}\n'
        ">>>>>>> after updating\n"
        "replicas: 3\n"
    )
    resolved, left = resolve_owned_conflicts(conflicted)
    assert left == 0 and not has_conflict_markers(resolved)
    kept = protect_file("apps/dev/checkout/values.yaml", BEFORE, conflicted)
    assert kept is not None and "tag: 1.4.2" in kept and "<<<<<<<" not in kept


def test_real_conflicts_stay() -> None:
    conflicted = "<<<<<<< before updating\nreplicas: 5\n=======\nreplicas: 3\n>>>>>>> after updating\n"
    resolved, left = resolve_owned_conflicts(conflicted)
    assert left == 1 and resolved == conflicted


def test_argocd_source_files_come_back_verbatim() -> None:
    bot = "helm:\n  parameters:\n  - name: image.tag\n    value: 9.9.9\n"
    assert protect_file("apps/dev/a/.argocd-source-a.yaml", bot, "helm: {}\n") == bot
    assert protect_file("apps/dev/a/.argocd-source-a.yaml", bot, None) == bot


def test_api_version_rename(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("apiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImagePolicy\n---\n"
                                     "apiVersion: \"image.toolkit.fluxcd.io/v1beta2\"\nkind: ImageRepository\n")
    (tmp_path / "b.txt").write_text("apiVersion: image.toolkit.fluxcd.io/v1beta2\n")
    apply = build_api_version_rename("image.toolkit.fluxcd.io/v1beta2", "image.toolkit.fluxcd.io/v1")
    assert apply(tmp_path, ["a.yaml", "b.txt"]) == ("a.yaml",)
    text = (tmp_path / "a.yaml").read_text()
    assert "v1beta2" not in text and 'apiVersion: "image.toolkit.fluxcd.io/v1"' in text
    assert apply(tmp_path, ["a.yaml"]) == ()  # idempotent


def test_migration_crossing() -> None:
    m = Migration("0.2.0", "x", MIGRATIONS[0].apply)
    assert m.crosses("v0.1.0", "v0.2.0") and m.crosses("v0.1.0", "v0.3.0")
    assert not m.crosses("v0.2.0", "v0.3.0") and not m.crosses("v0.1.0", "v0.1.5")


def test_dev_mirror_tags_order_after_the_release() -> None:
    # render.ensure_template_mirror tags successive dev builds of one version v<ver>+<n>.g<digest>.
    assert Version("0.1.0") < Version("0.1.0+1.gffffff") < Version("0.1.0+2.g000000") < Version("0.1.1")


def _split_env(root: Path, env: str, chart: str, tag: str) -> Path:
    d = root / "apps" / env / "hello"
    d.mkdir(parents=True)
    (d / "values.yaml").write_text(f"image:\n  repository: ghcr.io/acme/hello\n  tag: {tag}  # promote\n")
    chart_file = d / "chart-version.yaml"
    chart_file.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hello-chart\n"
                          f"data:\n  service: hello\n  version: {chart}\n")
    return chart_file


def test_chart_pins_added_by_an_update_keep_the_release_each_environment_runs(tmp_path: Path) -> None:
    (seed,) = [m for m in MIGRATIONS if "chart pin" in m.description]
    dev = _split_env(tmp_path, "dev", '">=0.0.0-0"', "0.4.0")  # follows new tags: a range, left alone
    staging = _split_env(tmp_path, "staging", '"0.1.0"', "0.3.0")  # promoted to 0.3.0 before the update
    production = _split_env(tmp_path, "production", "'0.1.0'", "0.2.1")
    custom = _split_env(tmp_path, "qa", '"0.1.0"', "sha-1a2b3c")  # not a release tag: left alone
    files = [p.relative_to(tmp_path).as_posix() for p in sorted(tmp_path.rglob("*.yaml"))]

    changed = seed.apply(tmp_path, files)

    assert sorted(changed) == ["apps/production/hello/chart-version.yaml", "apps/staging/hello/chart-version.yaml"]
    assert 'version: "0.3.0"' in staging.read_text() and "version: '0.2.1'" in production.read_text()
    assert 'version: ">=0.0.0-0"' in dev.read_text() and 'version: "0.1.0"' in custom.read_text()
    assert seed.apply(tmp_path, files) == ()  # idempotent
    assert seed.crosses("0.1.0", "0.1.1.dev3+tabc") and not seed.crosses("0.1.1.dev1", "0.1.1.dev3")
