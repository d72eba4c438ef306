"""`fleetstrap update` on a repo rendered by a release this machine never installed: the base templates are
fetched from the package index (here a find-links directory holding two real fleetstrap wheels)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleetstrap.render import ensure_template_mirror
from fleetstrap.upgrade.source import pip_index_args, release_version
from update_support import commit_all, git, head, render_fleet, status

ROOT = Path(__file__).resolve().parent.parent
OLD, NEW = "90.0.0", "90.1.0"  # far from real releases: no real migration is crossed
VALUES_TEMPLATE = ("units/service/{% if service_gitops %}apps{% endif %}/"
                   "{% yield env from environments %}{{ env }}{% endyield %}/{{ service_name }}/values.yaml.jinja")
VALUES = "apps/dev/alpha/values.yaml"
NEW_LINE = "# Reviewed with fleetstrap 90.1.0 templates."
USER_LINE = "# Tuned by the payments team."


@dataclass(frozen=True)
class Wheels:
    links: Path  # find-links directory with both wheels
    site_new: Path  # the NEW wheel unpacked: on PYTHONPATH, it is "fleetstrap NEW installed on this machine"
    templates_old: Path


def _usable_hatchling() -> bool:
    # hatchling >= 1.26 validates the SPDX license with packaging.licenses (packaging >= 24.2).
    find = importlib.util.find_spec
    return find("hatchling") is not None and find("packaging.licenses") is not None


def _build_wheel(work: Path, version: str, *, change_template: bool, links: Path) -> subprocess.Popen[str]:
    src = work / f"src-{version}"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("generator", "templates", "blueprints"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, src / name)
    init = src / "generator/fleetstrap/__init__.py"
    text, n = re.subn(r'__version__ = "[^"]+"', f'__version__ = "{version}"', init.read_text())
    assert n == 1
    init.write_text(text)
    if change_template:
        values = src / "templates" / VALUES_TEMPLATE
        body = values.read_text()
        values.write_text(body + ("" if body.endswith("\n") else "\n") + NEW_LINE + "\n")
    # hatchling from this environment when it works here (fast, offline); else an isolated build (hatchling
    # from the index), as a user's `pip wheel .` does.
    isolation = ["--no-build-isolation"] if _usable_hatchling() else []
    return subprocess.Popen([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", str(links),
                             str(src)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _unpack(wheel: Path, dest: Path) -> Path:
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(dest)
    return dest


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Wheels:
    work = tmp_path_factory.mktemp("wheels")
    links = work / "links"
    builds = [_build_wheel(work, OLD, change_template=False, links=links),
              _build_wheel(work, NEW, change_template=True, links=links)]
    for proc in builds:
        out, _ = proc.communicate()
        assert proc.returncode == 0, out
    (old,) = links.glob(f"fleetstrap-{OLD}-*.whl")
    (new,) = links.glob(f"fleetstrap-{NEW}-*.whl")
    site_new = _unpack(new, work / "site-new")
    return Wheels(links, site_new, _unpack(old, work / "site-old") / "fleetstrap/_data/templates")


@pytest.fixture(scope="module")
def rendered_old(wheels: Wheels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fleet rendered with fleetstrap OLD's templates on "a colleague's machine", whose cache is then gone."""
    base = tmp_path_factory.mktemp("colleague")
    root = base / "fleet"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLEETSTRAP_CACHE_DIR", str(base / "cache"))
        source = ensure_template_mirror(wheels.templates_old, OLD)
        assert source.ref == f"v{OLD}"
        render_fleet(root, source, ["alpha"])
    shutil.rmtree(base / "cache")  # another machine: its mirror (the recorded _src_path) does not exist here
    values = root / VALUES
    values.write_text(USER_LINE + "\n" + values.read_text())
    commit_all(root, "team edit")
    return root


def _fleetstrap_new(wheels: Wheels, cache: Path, *args: str, index: Path | str | None = None, python: bool = False,
                    **env: str) -> subprocess.CompletedProcess[str]:
    """Run the NEW release of fleetstrap (this machine's install) with its own cache; `python`: run
    `python *args` instead of the CLI."""
    full = {**os.environ, "PYTHONPATH": str(wheels.site_new), "FLEETSTRAP_CACHE_DIR": str(cache), **env}
    full.pop("FLEETSTRAP_TEMPLATE_INDEX", None)
    if index is not None:
        full["FLEETSTRAP_TEMPLATE_INDEX"] = str(index)
    cmd = [sys.executable, *args] if python else [sys.executable, "-m", "fleetstrap", *args]
    return subprocess.run(cmd, env=full, capture_output=True, text=True,
                          check=False)


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True)
    return dest


def _recorded(root: Path, component: str) -> str:
    text = (root / f".fleetstrap/answers/{component}.yml").read_text()
    match = re.search(r"^_commit: (\S+)$", text, re.M)
    assert match, text
    return match.group(1)


def test_old_release_fetched_as_merge_base(wheels: Wheels, rendered_old: Path, tmp_path: Path) -> None:
    fleet = _copy(rendered_old, tmp_path / "fleet")
    cache = tmp_path / "cache"  # this machine: fleetstrap NEW installed, OLD never was

    res = _fleetstrap_new(wheels, cache, "update", str(fleet), "--no-validate", "--commit", index=wheels.links)

    assert res.returncode == 0, res.stderr
    assert f"fetching templates v{OLD}" in res.stderr
    values = (fleet / VALUES).read_text()
    assert values.startswith(USER_LINE + "\n")  # the user's edit kept
    assert NEW_LINE in values  # NEW's template change applied
    assert "<<<<<<<" not in values and status(fleet) == []
    for component in ("fleet", "cluster-dev", "service-alpha"):
        assert _recorded(fleet, component) == f"v{NEW}"
    assert f"v{OLD} -> v{NEW}" in git(fleet, "log", "-1", "--format=%B")
    # The mirror gained OLD as an extra tag; the installed NEW stays what main (and copier's default) is on.
    mirror = cache / "template-mirror"
    assert set(git(mirror, "tag", "--list").split()) == {f"v{OLD}", f"v{NEW}"}
    assert git(mirror, "describe", "--tags", "main").strip() == f"v{NEW}"
    assert git(mirror, "status", "--porcelain") == ""
    assert subprocess.run(["git", "merge-base", "--is-ancestor", f"v{OLD}", "main"], cwd=mirror,
                          check=False).returncode == 1  # off main: its own root commit

    # Cached: once added it is never fetched again (an empty index would fail any fetch).
    empty = tmp_path / "empty-index"
    empty.mkdir()
    code = ("import sys; from fleetstrap.upgrade.source import ensure_release_templates as e; "
            f"print(e('v{OLD}', {str(empty)!r}), e('v{OLD}+1.gabc', {str(empty)!r}))")
    res = _fleetstrap_new(wheels, cache, "-c", code, python=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [git(mirror, "rev-parse", f"v{OLD}^{{commit}}").strip(), "None"]
    assert "fetching" not in res.stderr


def test_missing_release_is_one_clear_error(wheels: Wheels, rendered_old: Path, tmp_path: Path) -> None:
    fleet = _copy(rendered_old, tmp_path / "fleet")
    answers = fleet / ".fleetstrap/answers/service-alpha.yml"
    answers.write_text(answers.read_text().replace(f"_commit: v{OLD}", "_commit: v90.0.5"))
    commit_all(fleet, "recorded by an unpublished release")
    before = head(fleet)

    res = _fleetstrap_new(wheels, tmp_path / "cache", "update", str(fleet), "--no-validate", index=wheels.links)

    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert "v90.0.5" in res.stderr and "fleetstrap==90.0.5" in res.stderr
    assert "No matching distribution" in res.stderr or "Could not find a version" in res.stderr
    assert "--template" in res.stderr
    assert head(fleet) == before and status(fleet) == []


def test_index_credentials_never_printed(wheels: Wheels, rendered_old: Path, tmp_path: Path) -> None:
    fleet = _copy(rendered_old, tmp_path / "fleet")
    # Nothing listens on port 9; PIP_RETRIES (the user's pip configuration) keeps the failure quick.
    index = "http://fleet-user:s3cr3t-t0ken@127.0.0.1:9/simple"
    res = _fleetstrap_new(wheels, tmp_path / "cache", "update", str(fleet), "--no-validate", index=index,
                          PIP_RETRIES="0", PIP_TIMEOUT="5")
    assert res.returncode == 1
    assert f"v{OLD}" in res.stderr and "--template" in res.stderr
    assert "s3cr3t" not in res.stderr + res.stdout
    assert status(fleet) == []


@pytest.mark.parametrize(("ref", "expected"), [
    ("v0.1.0", "0.1.0"), ("v1.2.3rc1", "1.2.3rc1"),
    ("v0.1.0+2.gabcdef012345", None),  # a dev build's templates exist only where it was built
    ("v0.1.0-3-gabc1234", None), ("0.1.0", None), ("main", None),
])
def test_only_release_tags_are_fetched(ref: str, expected: str | None) -> None:
    assert release_version(ref) == expected


def test_index_options(tmp_path: Path) -> None:
    assert pip_index_args(None) == []
    assert pip_index_args(str(tmp_path)) == ["--no-index", "--find-links", str(tmp_path)]
    assert pip_index_args(f"file://{tmp_path}") == ["--no-index", "--find-links", str(tmp_path)]
    assert pip_index_args("https://pypi.example.com/simple") == ["--index-url", "https://pypi.example.com/simple"]


def test_old_release_fetched_from_a_single_wheel(wheels: Wheels, rendered_old: Path, tmp_path: Path) -> None:
    """The wheel the fleet's release was installed from, given as the template source: no index needed."""
    fleet = _copy(rendered_old, tmp_path / "fleet")
    (old_wheel,) = wheels.links.glob(f"fleetstrap-{OLD}-*.whl")
    alone = tmp_path / "downloads" / old_wheel.name  # the wheel alone, away from any index or find-links dir
    alone.parent.mkdir()
    shutil.copy2(old_wheel, alone)

    res = _fleetstrap_new(wheels, tmp_path / "cache", "update", str(fleet), "--no-validate", "--commit",
                          index=alone)

    assert res.returncode == 0, res.stderr
    assert f"fetching templates v{OLD}" in res.stderr
    values = (fleet / VALUES).read_text()
    assert values.startswith(USER_LINE + "\n") and NEW_LINE in values and "<<<<<<<" not in values
    assert _recorded(fleet, "service-alpha") == f"v{NEW}"


def test_old_release_fetched_from_a_wheel_url(wheels: Wheels, rendered_old: Path, tmp_path: Path) -> None:
    """A wheel URL (what a fleet's fleetstrap_pip may name), served on loopback: pip downloads that one file."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    fleet = _copy(rendered_old, tmp_path / "fleet")
    (old_wheel,) = wheels.links.glob(f"fleetstrap-{OLD}-*.whl")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(wheels.links))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{old_wheel.name}"
        res = _fleetstrap_new(wheels, tmp_path / "cache", "update", str(fleet), "--no-validate", "--commit",
                              index=url)
    finally:
        server.shutdown()
        server.server_close()
    assert res.returncode == 0, res.stderr
    assert f"fetching templates v{OLD}" in res.stderr
    assert NEW_LINE in (fleet / VALUES).read_text() and _recorded(fleet, "service-alpha") == f"v{NEW}"


def test_a_wheel_of_another_version_is_refused(wheels: Wheels, rendered_old: Path, tmp_path: Path) -> None:
    fleet = _copy(rendered_old, tmp_path / "fleet")
    before = head(fleet)
    (new_wheel,) = wheels.links.glob(f"fleetstrap-{NEW}-*.whl")
    res = _fleetstrap_new(wheels, tmp_path / "cache", "update", str(fleet), "--no-validate", index=new_wheel)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert f"is fleetstrap {NEW}, but this fleet was rendered by {OLD}" in res.stderr
    assert head(fleet) == before and status(fleet) == []


def test_old_release_fetched_from_fleetstrap_s_git_repository(wheels: Wheels, rendered_old: Path,
                                                                tmp_path: Path) -> None:
    """`git+URL` of fleetstrap's repository (pip's VCS form, a ref after '@' ignored): the release's tag is cloned
    and its templates/ taken; once fetched, the local mirror serves it with the repository gone (offline)."""
    fleet = _copy(rendered_old, tmp_path / "fleet")
    repo = tmp_path / "fleetstrap-repo"
    shutil.copytree(wheels.templates_old, repo / "templates")
    (repo / "README.md").write_text("fleetstrap\n")
    git(repo.parent, "init", "-q", "-b", "main", str(repo))
    commit_all(repo, f"fleetstrap {OLD}")
    git(repo, "tag", f"v{OLD}")
    (repo / "templates" / "copier.yml").write_text("# moved on after the release\n")
    commit_all(repo, "main moves on")  # the tag, not main, is what gets fetched
    cache = tmp_path / "cache"

    res = _fleetstrap_new(wheels, cache, "update", str(fleet), "--no-validate", "--commit",
                          index=f"git+file://{repo}@main")

    assert res.returncode == 0, res.stderr
    assert f"fetching templates v{OLD}" in res.stderr
    values = (fleet / VALUES).read_text()
    assert values.startswith(USER_LINE + "\n") and NEW_LINE in values and "<<<<<<<" not in values

    shutil.rmtree(repo)
    code = ("from fleetstrap.upgrade.source import ensure_release_templates as e; "
            f"print(e('v{OLD}', 'git+file://{repo}'))")
    res = _fleetstrap_new(wheels, cache, "-c", code, python=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == git(cache / "template-mirror", "rev-parse", f"v{OLD}^{{commit}}").strip()
    assert "fetching" not in res.stderr


@pytest.mark.parametrize(("index", "url"), [
    ("git+https://git.example.com/acme/fleetstrap.git@v0.1.0", "https://git.example.com/acme/fleetstrap.git"),
    ("git+ssh://git@git.example.com/acme/fleetstrap.git", "ssh://git@git.example.com/acme/fleetstrap.git"),
    ("git+file:///srv/fleetstrap#egg=fleetstrap", "file:///srv/fleetstrap"),
    ("https://pypi.example.com/simple", None),
])
def test_git_sources(index: str, url: str | None) -> None:
    from fleetstrap.upgrade.source import git_source

    assert git_source(index) == url


def test_git_source_needs_a_known_scheme() -> None:
    from fleetstrap.errors import UserError
    from fleetstrap.upgrade.source import git_source

    with pytest.raises(UserError, match="git\\+https://"):
        git_source("git+ftp://example.com/fleetstrap.git")
