"""The documentation site builds offline with --strict, and its generated pages follow the code."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType, SimpleNamespace
from urllib.parse import urlsplit

import pytest

from fleetstrap import errors
from fleetstrap.answers import QUESTIONS
from fleetstrap.blueprints import list_blueprints
from support.tools import require_tool

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


hooks = _load("docs_hooks")
assets = _load("docs_assets")


def _bundled_assets() -> None:
    """Mermaid and the iframe-worker shim from npm into the tool cache: the one step that may use the network."""
    for a in assets.ASSETS:
        try:
            assets.locate(a)
        except assets.AssetUnavailable as exc:
            if os.environ.get("CI") or shutil.which("npm"):
                pytest.fail(str(exc))
            pytest.skip(str(exc))


def _build(out: Path) -> Path:
    # No network: MkDocs and Material must not fetch anything at build time.
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY":
           "http://127.0.0.1:9", "NO_PROXY": ""}
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                          "-d", str(out)], capture_output=True, text=True, env=env, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-4000:]
    return out


def _text(html: Path) -> str:
    return re.sub(r"<[^>]+>", "", html.read_text(encoding="utf-8"))


@pytest.mark.slow
def test_site_builds_strict_offline(tmp_path: Path) -> None:
    """One build (about a minute: it renders every blueprint), then every generated page is checked."""
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (the docs or test extra)")
    pytest.importorskip("material", reason="mkdocs-material is not installed (the docs or test extra)")
    _bundled_assets()
    site = _build(tmp_path / "site")
    _check_offline_assets(site)
    _check_command_pages(site)
    _check_blueprint_pages(site)
    _check_generated_sections(site)


class _Assets(HTMLParser):
    """The scripts, stylesheets and other resources a page loads (not the links a reader may follow)."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "embed") and a.get("src"):
            self.loaded.append(a["src"] or "")
        if tag == "link" and a.get("href") and set((a.get("rel") or "").split()) & {
                "stylesheet", "preload", "modulepreload", "icon", "manifest", "prefetch"}:
            self.loaded.append(a["href"] or "")


def _external(url: str) -> bool:
    parsed = urlsplit(url)
    return bool(parsed.scheme and parsed.scheme not in ("data",)) or url.startswith("//")


def external_assets(site: Path) -> dict[str, list[str]]:
    """page -> the resources it loads from another host (none in a site that works offline)."""
    found: dict[str, list[str]] = {}
    for page in sorted(site.rglob("*.html")):
        parser = _Assets()
        parser.feed(page.read_text(encoding="utf-8"))
        bad = [u for u in parser.loaded if _external(u)]
        if bad:
            found[str(page.relative_to(site))] = bad
    for css in site.rglob("*.css"):  # @import or url() to another host
        bad = re.findall(r"url\(\s*['\"]?((?:https?:)?//[^'\")]+)", css.read_text(encoding="utf-8"))
        if bad:
            found[str(css.relative_to(site))] = bad
    return found


def test_external_asset_check_finds_a_cdn_script(tmp_path: Path) -> None:
    (tmp_path / "a.html").write_text('<script src="https://unpkg.com/mermaid@11/dist/mermaid.min.js"></script>'
                                     '<link rel="stylesheet" href="//fonts.googleapis.com/css">'
                                     '<a href="https://github.com/x">a link is fine</a>'
                                     '<script src="assets/javascripts/mermaid.min.js"></script>')
    (tmp_path / "b.css").write_text("@font-face{src:url(https://fonts.gstatic.com/x.woff2)}")
    assert external_assets(tmp_path) == {
        "a.html": ["https://unpkg.com/mermaid@11/dist/mermaid.min.js", "//fonts.googleapis.com/css"],
        "b.css": ["https://fonts.gstatic.com/x.woff2"]}


def _check_offline_assets(site: Path) -> None:
    assert external_assets(site) == {}
    # the diagrams' and offline search's scripts are in the site, and the pages with diagrams load Mermaid
    for a in assets.ASSETS:
        assert (site / a.asset).stat().st_size > 1000, a.asset
    layout = (site / "layout.html").read_text(encoding="utf-8")
    assert 'src="assets/javascripts/mermaid.min.js"' in layout
    assert 'src="assets/javascripts/iframe-worker/shim.js"' in layout
    # search works from file:// (the index inlined as a script) and when served (the JSON index)
    assert (site / "search" / "search_index.js").read_text(encoding="utf-8").startswith("var __index = {")
    assert json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))["docs"]


def _check_command_pages(site: Path) -> None:
    import click

    from fleetstrap.cli import cli

    def walk(cmd: click.Command, ctx: click.Context) -> list[tuple[str, click.Command]]:
        out = [(ctx.command_path, cmd)]
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None
                out += walk(sub, click.Context(sub, info_name=name, parent=ctx))
        return out

    commands = walk(cli, click.Context(cli, info_name="fleetstrap"))[1:]
    assert {"fleetstrap add service", "fleetstrap update", "fleetstrap check-update"} <= {n for n, _ in commands}
    index = _text(site / "commands" / "index.html")
    for name, cmd in commands:
        page = site / "commands" / ("-".join(name.split()[1:]) + ".html")
        assert page.is_file(), name
        text = _text(page)
        assert name in text and name in index
        for param in cmd.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.opts[0] in text, (name, param.opts[0])


def _check_blueprint_pages(site: Path) -> None:
    for bp in list_blueprints():
        text = _text(site / "blueprints" / f"{bp.name}.html")
        assert f"fleetstrap init --blueprint {bp.name}" in text
        assert ".fleetstrap/" in text and "clusters/" in text  # the rendered tree
    layout = _text(site / "layout.html")
    assert "gotk-sync.yaml" in layout and "root.yaml" in layout  # Flux and Argo CD trees
    html = (site / "layout.html").read_text(encoding="utf-8")
    assert html.count('class="mermaid"') >= 1  # the reconciliation order is a diagram
    assert "├── clusters/" in layout and "flowchart TB" not in html  # the directory tree is drawn as a tree


def _check_generated_sections(site: Path) -> None:
    trouble = _text(site / "troubleshooting.html")
    assert "fleetstrap:errors" not in trouble
    assert "unknown blueprint ‹ref› (built-in: ‹names›)" in trouble  # a message from blueprints.py
    answers = _text(site / "answers.html")
    assert all(q.key in answers for q in QUESTIONS)
    assert "service_scope" in answers  # the template's own questions
    service = _text(site / "service.html")
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in service and "SHUTDOWN_DELAY_SECONDS" in service
    assert "GitHub owner" in _text(site / "getting-started.html")
    assert "[0.1.0]" in _text(site / "changelog.html")
    assert (site / "architecture.html").is_file()
    for page in site.rglob("*.html"):
        assert "<!-- fleetstrap:" not in page.read_text(encoding="utf-8"), page


def test_every_answer_has_a_section() -> None:
    text = (DOCS / "answers.md").read_text(encoding="utf-8")
    missing = [q.key for q in QUESTIONS if f"\n### {q.key}\n" not in text]
    assert missing == []


def test_every_error_class_is_documented() -> None:
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    classes = [n for n, o in vars(errors).items()
               if isinstance(o, type) and issubclass(o, errors.FleetstrapError) and o is not errors.FleetstrapError]
    assert "UserError" in classes and "RemoteError" in classes
    assert [c for c in classes if f"<!-- fleetstrap:errors {c} -->" not in text] == []
    # and every class raised somewhere is one of them (the hook reads the raises from the source)
    assert {r.cls for r in hooks.raised_errors()} <= set(classes)


def _page(uri: str) -> SimpleNamespace:
    return SimpleNamespace(file=SimpleNamespace(src_uri=uri))


def test_hook_warns_on_an_undocumented_error_class_and_unknown_markers(caplog: pytest.LogCaptureFixture) -> None:
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8").replace("<!-- fleetstrap:errors RemoteError -->",
                                                                              "")
    with caplog.at_level(logging.WARNING, logger="mkdocs.hooks.fleetstrap"):
        out = hooks.on_page_markdown(text, _page("troubleshooting.md"), None, None)
    assert [r.getMessage() for r in caplog.records] == ["troubleshooting.md has no section for RemoteError"]
    assert "| message | hint | raised in |" in out
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mkdocs.hooks.fleetstrap"):
        hooks.on_page_markdown("<!-- fleetstrap:tree no-such-blueprint -->", _page("x.md"), None, None)
    assert caplog.records and "unknown marker" in caplog.records[0].getMessage()


def test_error_messages_read_from_the_source() -> None:
    raised = hooks.raised_errors()
    assert len(raised) > 100
    by_class = {r.cls for r in raised}
    assert {"AnswersError", "RemoteError", "ClusterError", "ConflictError"} <= by_class
    # raised through a subclass defined beside its use (update's UpdateConflictError): listed under ConflictError
    assert [r for r in raised if r.cls == "ConflictError" and r.where.startswith("fleetstrap/update/")]


@pytest.mark.slow
def test_init_recording_follows_the_prompts(tmp_path: Path) -> None:
    require_tool("tmux")
    rec = _load("record_init")
    fresh = rec.record(tmp_path)
    committed = (DOCS / "assets" / "init-session.txt").read_text(encoding="utf-8")
    assert rec.questions(fresh) == rec.questions(committed), "re-run: python scripts/record_init.py"
    assert len(rec.questions(fresh)) == len(rec.STEPS)
    assert "initial commit" in fresh and str(tmp_path) not in fresh
