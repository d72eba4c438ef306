"""Versions that mean something: a build that is not the release says so; a fleet records exactly the templates it
came from (a tag keyed by their content, in a mirror no other install changes) and `update` merges against those;
no committed file holds a path of the machine that rendered it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.version import Version

from fleetstrap import __version__
from fleetstrap._version import development_version, is_development, source_version, tree_digest
from fleetstrap.render import BUNDLED_SOURCE, ensure_template_mirror, mirror_tag
from update_support import commit_all, git

ROOT = Path(__file__).resolve().parent.parent
VALUES_TEMPLATE = ("units/service/{% if service_gitops %}apps{% endif %}/"
                   "{% yield env from environments %}{{ env }}{% endyield %}/{{ service_name }}/values.yaml.jinja")
VALUES = "apps/dev/alpha/values.yaml"
NEW_LINE = "# Reviewed with the next development build's templates."
USER_LINE = "# Tuned by the payments team."


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    return subprocess.run(["git", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false", *args], cwd=cwd,
                          env=env, check=True, capture_output=True, text=True).stdout.strip()


def _tree(tmp: Path, release: str = "0.4.2") -> Path:
    root = tmp / "checkout"
    (root / "generator" / "fleetstrap").mkdir(parents=True)
    (root / "generator" / "fleetstrap" / "__init__.py").write_text(f'__version__ = "{release}"\n')
    (root / "templates").mkdir()
    (root / "templates" / "copier.yml").write_text("unit: {type: str}\n")
    return root


def test_development_versions_order_between_releases() -> None:
    dev = development_version("0.1.0", 7, "0123456789ab")
    assert dev == "0.1.1.dev7+t0123456789ab"
    assert Version("0.1.0") < Version(dev) < Version(development_version("0.1.0", 8, "000000000000")) \
        < Version("0.1.1")
    assert is_development(dev) and not is_development("0.1.0")


def test_only_the_tagged_unchanged_checkout_is_the_release(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    assert source_version(root) == "0.4.2"  # a copy without git history: nothing tells it from the release
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "one")
    digest = tree_digest(root / "templates")
    assert source_version(root) == f"0.4.3.dev1+t{digest}"  # a checkout, not the release's tag
    _git(root, "tag", "v0.4.2")
    assert source_version(root) == "0.4.2"
    (root / "templates" / "copier.yml").write_text("unit: {type: str, default: fleet}\n")
    changed = source_version(root)
    assert changed != "0.4.2" and changed.startswith("0.4.3.dev1+t")
    assert changed.endswith(tree_digest(root / "templates")) and not changed.endswith(digest)


def test_this_checkout_calls_itself_what_it_is() -> None:
    tagged = subprocess.run(["git", "-C", str(ROOT), "tag", "--points-at", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.split()
    if (ROOT / ".git").exists() and f"v{__version__}" not in tagged:
        assert is_development(__version__), __version__
        assert __version__.endswith(f"+t{tree_digest(ROOT / 'templates')}")
    assert Version(__version__)  # PEP 440, so pip and copier order it


def test_mirror_tags_are_keyed_by_content_and_never_move(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETSTRAP_CACHE_DIR", str(tmp_path / "cache"))
    a, b, c = (tmp_path / n for n in "abc")
    for i, d in enumerate((a, b, c)):
        d.mkdir()
        (d / "copier.yml").write_text(f"unit: {{type: str}}  # {i}\n")
    dev = ensure_template_mirror(a, "0.4.3.dev2+tstale")  # an editable install's stale local part is not trusted
    assert dev.ref == f"v0.4.3.dev2+t{tree_digest(a)}" == mirror_tag("0.4.3.dev2", tree_digest(a))
    release = ensure_template_mirror(b, "0.4.2")
    assert release.ref == "v0.4.2"
    # Another install that calls itself 0.4.2 with other templates: its own tag; 0.4.2's stays.
    liar = ensure_template_mirror(c, "0.4.2")
    assert liar.ref == f"v0.4.2+t{tree_digest(c)}"
    mirror = Path(release.url)

    def content(tag: str) -> str:
        return git(mirror, "show", f"{tag}:copier.yml")

    assert content("v0.4.2") == "unit: {type: str}  # 1\n"
    assert content(liar.ref) == "unit: {type: str}  # 2\n" and content(dev.ref) == "unit: {type: str}  # 0\n"
    assert ensure_template_mirror(b, "0.4.2") == release and ensure_template_mirror(a, "0.4.3.dev2+tx") == dev


def _checkout(tmp: Path, name: str, *, commits: int, change_template: bool) -> Path:
    """A git checkout of this project (generator, templates, blueprints), `commits` commits deep."""
    src = tmp / name
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for part in ("generator", "templates", "blueprints"):
        shutil.copytree(ROOT / part, src / part, ignore=ignore)
    for part in ("pyproject.toml", "CHANGELOG.md"):
        shutil.copy2(ROOT / part, src / part)
    _git(src, "init", "-q")
    for i in range(commits):
        if change_template and i == commits - 1:
            values = src / "templates" / VALUES_TEMPLATE
            body = values.read_text()
            values.write_text(body + ("" if body.endswith("\n") else "\n") + NEW_LINE + "\n")
        _git(src, "add", "-A")
        _git(src, "commit", "-q", "--allow-empty", "-m", f"commit {i}")
    return src


def _fleetstrap(src: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src / "generator"), "FLEETSTRAP_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "fleetstrap", *args], env=env, capture_output=True, text=True,
                          check=False)


def _recorded(root: Path, component: str) -> dict[str, str]:
    text = (root / f".fleetstrap/answers/{component}.yml").read_text()
    return dict(re.findall(r"^(_commit|_src_path): (\S+)$", text, re.M))


@pytest.mark.slow
def test_a_fleet_of_a_development_build_updates_against_its_exact_templates(tmp_path: Path) -> None:
    old = _checkout(tmp_path, "dev-old", commits=1, change_template=False)
    new = _checkout(tmp_path, "dev-new", commits=2, change_template=True)
    cache = tmp_path / "cache"
    fleet = tmp_path / "fleet"
    version = _fleetstrap(old, cache, "--version").stdout.split()[-1]
    assert version == f"0.1.1.dev1+t{tree_digest(old / 'templates')}"

    res = _fleetstrap(old, cache, "init", str(fleet), "--no-validate", "--data", "owner=acme", "--data",
                      "service=alpha", "--data", "fleet_name=fleet")
    assert res.returncode == 0, res.stderr
    assert "development build that no package index serves" in res.stderr
    for component in ("fleet", "cluster-dev", "service-alpha"):
        assert _recorded(fleet, component) == {"_commit": f"v{version}", "_src_path": BUNDLED_SOURCE}
    for path in fleet.rglob("*"):  # no machine path in any committed file
        if path.is_file() and ".git" not in path.relative_to(fleet).parts:
            text = path.read_text(errors="replace")
            assert str(cache) not in text and str(tmp_path) not in text, path
    workflow = (fleet / ".github/workflows/validate.yml").read_text()
    assert f"install --quiet 'fleetstrap[validate]=={version}'" in workflow
    values = fleet / VALUES
    values.write_text(USER_LINE + "\n" + values.read_text())
    commit_all(fleet, "team edit")

    # A third build elsewhere on this machine, from other templates: it adds its tag, changes nothing of ours.
    other = _checkout(tmp_path, "dev-other", commits=3, change_template=True)
    assert _fleetstrap(other, cache, "check-update", str(fleet)).returncode == 2

    res = _fleetstrap(new, cache, "update", str(fleet), "--no-validate", "--commit")
    assert res.returncode == 0, res.stderr
    new_version = f"0.1.1.dev2+t{tree_digest(new / 'templates')}"
    text = values.read_text()
    assert text.startswith(USER_LINE + "\n") and NEW_LINE in text and "<<<<<<<" not in text
    for component in ("fleet", "cluster-dev", "service-alpha"):
        assert _recorded(fleet, component) == {"_commit": f"v{new_version}", "_src_path": BUNDLED_SOURCE}
    assert f"fleetstrap[validate]=={new_version}" in (fleet / ".github/workflows/validate.yml").read_text()
    assert git(fleet, "status", "--porcelain") == ""
