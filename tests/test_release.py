"""Release consistency: one version, a changelog entry for every changed template unit, notes of crossed versions."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from fleetstrap import changelog
from fleetstrap._version import declared

# The release the tree declares; a build of any other commit calls itself a development version after it.
__version__ = declared()

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "release_check.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("release_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


rc = _script()


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env)


# ---------------------------------------------------------------- the project as it is


def test_project_version_changelog_and_digests_agree() -> None:
    assert rc.package_version() == __version__
    assert rc.version_problems(None) == []
    assert rc.template_problems() == []
    res = _run()
    assert res.returncode == 0, res.stderr


def test_changelog_has_a_section_per_unit_for_every_release() -> None:
    releases = changelog.load()
    assert releases[0].version == changelog.UNRELEASED
    released = [r for r in releases if r.released]
    assert released and released[0].version == __version__
    for r in released:
        assert r.date is not None, r.version
    first = released[-1]
    assert first.version == "0.1.0"
    assert all(first.unit_entries(u) for u in changelog.UNITS)


def test_tag_must_match_the_package_version() -> None:
    res = _run("v99.0.0")
    assert res.returncode == 1
    assert f"tag v99.0.0 does not match package version {__version__}" in res.stderr
    env = {"PATH": "/usr/bin:/bin", "GITHUB_REF_NAME": "v99.0.0", "GITHUB_REF_TYPE": "tag"}
    assert "tag v99.0.0" in _run(env=env).stderr
    # a branch build is no release: the ref name is not taken as a tag
    assert "does not match package version" not in _run(env={**env, "GITHUB_REF_NAME": "main",
                                                            "GITHUB_REF_TYPE": "branch"}).stderr


def test_release_notes_for_the_github_release() -> None:
    res = _run("--notes", "v0.1.0")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("### fleet\n\n- ")
    assert "### monitoring" in res.stdout and "### Added" in res.stdout
    assert _run("--notes", "9.9.9").returncode == 1


# ---------------------------------------------------------------- a copy of the project, changed


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The files the check reads, copied: templates, changelog, recorded digests, the version module."""
    root = tmp_path / "p"
    shutil.copytree(ROOT / "templates", root / "templates")
    shutil.copytree(ROOT / "releases", root / "releases")
    shutil.copy(ROOT / "CHANGELOG.md", root / "CHANGELOG.md")
    (root / "generator" / "fleetstrap").mkdir(parents=True)
    shutil.copy(ROOT / "generator" / "fleetstrap" / "__init__.py", root / "generator" / "fleetstrap" / "__init__.py")
    # The project itself may carry unreleased changes: record the copy's templates as the last release.
    version = rc.package_version(root)
    (root / "releases" / f"{version}.json").write_text(json.dumps(
        {"version": version, "units": rc.unit_digests(root / "templates")}))
    text = (root / "CHANGELOG.md").read_text()
    head, _, rest = text.partition("## [Unreleased]\n")
    (root / "CHANGELOG.md").write_text(head + "## [Unreleased]\n\n" + rest[rest.index("## ["):])
    assert rc.template_problems(root) == []
    return root


def _add_unreleased(root: Path, body: str) -> None:
    path = root / "CHANGELOG.md"
    path.write_text(path.read_text().replace("## [Unreleased]\n", "## [Unreleased]\n\n" + body + "\n", 1))


def test_a_changed_template_needs_an_entry_for_its_unit(project: Path) -> None:
    chart = next((project / "templates" / "units" / "service").rglob("Chart.yaml.jinja"))
    chart.write_text(chart.read_text() + "# changed\n")
    assert rc.template_problems(project) == [
        "templates of unit 'service' changed since 0.1.0 but CHANGELOG.md has no '### service' entry under "
        "[Unreleased]"]
    _add_unreleased(project, "### fleet\n\n- Something else.\n")
    assert len(rc.template_problems(project)) == 1  # an entry for another unit does not count
    _add_unreleased(project, "### service\n\n- Chart: a comment.\n")
    assert rc.template_problems(project) == []


def test_a_moved_pin_needs_entries_for_the_units_that_read_it(project: Path) -> None:
    pins = project / "templates" / "pins.yml"
    pins.write_text(pins.read_text().replace('crate_axum: "', 'crate_axum: "9', 1))
    assert [p.split("'")[1] for p in rc.template_problems(project)] == ["service"]
    key = 'kube_prometheus_stack_chart_version: "'
    pins.write_text(pins.read_text().replace(key, key + "9", 1))
    assert [p.split("'")[1] for p in rc.template_problems(project)] == ["service", "monitoring"]


def test_a_shared_macro_counts_for_the_units_importing_it(project: Path) -> None:
    macros = project / "templates" / "units" / "fleet" / "~macros.jinja"
    macros.write_text(macros.read_text() + "\n{# changed #}\n")
    importers = {u for u in changelog.UNITS
                 if any("units/fleet/~macros.jinja" in f.read_text(errors="replace")
                        for f in (project / "templates" / "units" / u).rglob("*") if f.is_file())}
    changed = {p.split("'")[1] for p in rc.template_problems(project)}
    assert changed == importers | {"fleet"}


def test_releasing_checks_tag_digest_and_unreleased(project: Path) -> None:
    version = rc.package_version(project)
    assert rc.version_problems(f"v{version}", project) == []
    (project / "templates" / "copier.yml").write_text((project / "templates" / "copier.yml").read_text() + "\n")
    assert rc.version_problems(f"v{version}", project) == [
        f"releases/{version}.json does not match templates/ (re-run --write-digest)"]
    _add_unreleased(project, "### Fixed\n\n- Left behind.\n")
    assert "CHANGELOG.md's [Unreleased] still has entries: move them into the release section" in \
        rc.version_problems(f"v{version}", project)


def test_version_bumped_without_a_changelog_section(project: Path) -> None:
    init = project / "generator" / "fleetstrap" / "__init__.py"
    init.write_text(init.read_text().replace(f'"{__version__}"', '"7.0.0"'))
    problems = rc.version_problems("v7.0.0", project)
    assert f"package version 7.0.0 (generator/fleetstrap/__init__.py) but CHANGELOG.md's newest released " \
           f"section is [{__version__}]" in problems
    assert "releases/7.0.0.json is missing (python scripts/release_check.py --write-digest)" in problems


# ---------------------------------------------------------------- which entries an update crosses

SAMPLE = """# Changelog

## [Unreleased]

### service

- Unreleased service change.

## [0.3.0] - 2027-02-01

### fleet

- Flux 2.10.
  Second line.

### service

- Axum 0.9.

## [0.2.0] - 2027-01-01

### fleet

- Migration: v1beta2 -> v1.

### Fixed

- A CLI fix.

## [0.1.0] - 2026-11-26

### fleet

- First.
"""


def test_entries_between_versions_per_unit() -> None:
    releases = changelog.parse(SAMPLE)
    notes = changelog.entries_between("v0.1.0", "v0.3.0", releases=releases)
    assert [(n.unit, n.entries) for n in notes] == [
        ("fleet", (("0.3.0", "Flux 2.10.\nSecond line."), ("0.2.0", "Migration: v1beta2 -> v1."))),
        ("service", (("0.3.0", "Axum 0.9."),)),
    ]
    assert changelog.entries_between("v0.2.0", "v0.2.0", releases=releases) == ()
    assert [n.unit for n in changelog.entries_between("v0.2.0", "v0.3.0", ("service",), releases)] == ["service"]
    # a describe string and a dev build of the newest release (templates past it: Unreleased)
    dev = changelog.entries_between("v0.2.0-4-gabc1234", "v0.3.0+1.g0123abcd", ("service",), releases)
    assert dev[0].entries == (("Unreleased", "Unreleased service change."), ("0.3.0", "Axum 0.9."))
    assert changelog.entries_between("main", "v0.2.0", ("fleet",), releases)[0].entries[-1] == ("0.1.0", "First.")
    assert changelog.entries_between("v0.1.0", "main", releases=releases) == ()


def test_notes_for_components_start_at_each_units_oldest() -> None:
    releases = changelog.parse(SAMPLE)
    notes = changelog.notes_for([("cluster/dev", "v0.2.0"), ("fleet", "v0.2.0"), ("service/a", "v0.2.0"),
                                 ("service/b", "v0.1.0")], "v0.3.0", releases)
    assert changelog.to_json(notes) == {
        "fleet": [{"version": "0.3.0", "entry": "Flux 2.10.\nSecond line."}],
        "service": [{"version": "0.3.0", "entry": "Axum 0.9."}],
    }
    assert changelog.format_text(notes) == "fleet:\n  0.3.0: Flux 2.10. Second line.\nservice:\n  0.3.0: Axum 0.9."
    md = changelog.render_markdown(notes)
    assert md.startswith("### fleet\n\n- `0.3.0`: Flux 2.10.\n  Second line.\n")
    assert changelog.release_notes("0.2.0", releases) == \
        "### fleet\n\n- Migration: v1beta2 -> v1.\n\n### Fixed\n\n- A CLI fix.\n"


def test_readme_installs_from_what_exists_and_keeps_the_source_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    # Not on PyPI yet: the README must not tell anyone to install it from there.
    assert "is **not on PyPI yet**" in readme
    for cmd in ("pipx install 'fleetstrap[validate]'", "pip install 'fleetstrap[validate]'",
                "uvx --from 'fleetstrap[validate]' fleetstrap", "pipx run fleetstrap"):
        assert cmd not in readme, cmd
    # the two set-up commands, from a checkout: quick start on a blueprint, and the test command .ci/run runs
    assert "pip install '.[validate]' && fleetstrap init --blueprint starter --data owner=you ./fleet-infra" in readme
    test_cmd = "pip install -e '.[validate,helm,cluster,otel,test]' && python -m pytest -n 2"
    assert test_cmd in readme
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "pip install -q -e '.[validate,helm,cluster,otel,test]'" in ci and "\npython -m pytest -n 2" in ci


def test_a_shared_include_counts_for_the_units_including_it(project: Path) -> None:
    shared = project / "templates" / "shared" / "snippet.yml.jinja"
    shared.parent.mkdir(exist_ok=True)
    shared.write_text("# v1\n")
    readme = next((project / "templates" / "units" / "service").rglob("README.md.jinja"))
    readme.write_text(readme.read_text() + '{% include "shared/snippet.yml.jinja" %}\n')
    _add_unreleased(project, "### service\n\n- Includes a shared snippet.\n")
    rc.write_digest(project)  # released: the include is part of the service unit from now on
    project_changelog = project / "CHANGELOG.md"
    project_changelog.write_text(project_changelog.read_text().replace("- Includes a shared snippet.\n", ""))
    assert rc.template_problems(project) == []
    shared.write_text("# v2\n")
    assert [p.split("'")[1] for p in rc.template_problems(project)] == ["service"]


def test_markdown_for_the_update_pull_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(changelog, "load", lambda: changelog.parse(SAMPLE))
    assert changelog.markdown_for([("service/a", "v0.2.0"), ("fleet", "v0.3.0")], "v0.3.0") == \
        "#### service\n\n- `0.3.0`: Axum 0.9.\n"
    assert changelog.markdown_for([("fleet", "v0.3.0")], "v0.3.0") == ""
