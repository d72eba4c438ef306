"""fleetstrap's one merge engine (upgrade/merge.py) gives what copier's own `copier update` gives, component by
component.

Each scenario runs twice on copies of one fleet: once through the engine, once with copier's run_update per
component as the oracle, and the resulting trees must be byte-identical (inline markers and .rej files alike)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import pytest

import fleetstrap.upgrade.engine as upd
from fleetstrap.errors import ConflictError
from fleetstrap.render import TemplateSource
from fleetstrap.repo import RepoComponent
from fleetstrap.update import ComponentUpdate, UpdateRequest, update_fleet
from fleetstrap.upgrade.merge import Renders, Tree, merge_component, render_all
from fleetstrap.upgrade.source import ResolvedSource
from fleetstrap.workspace import Workspace
from update_support import V1, commit_all, render_fleet, status, variant, write_version

SVC = "apps/dev/{{ service_name }}"


def _v3() -> dict[str, dict[str, str]]:
    """Template v3: a file added, a file and a whole directory dropped, a value changed."""
    v3 = variant(V1, "service", f"{SVC}/values.yaml.jinja", "    memory: 128Mi", "    memory: 384Mi")
    v3["service"][f"{SVC}/pdb.yaml.jinja"] = "kind: PodDisruptionBudget\nmetadata:\n  name: {{ service_name }}\n"
    del v3["service"][f"{SVC}/values-argo.yaml.jinja"]
    del v3["service"]["services/{{ service_name }}/README.md.jinja"]
    return v3


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    t = tmp_path_factory.mktemp("tpl3") / "templates"
    write_version(t, V1, "v1.0.0")
    write_version(t, _v3(), "v3.0.0")
    return t


@pytest.fixture(scope="module")
def pristine(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pristine3") / "fleet"
    render_fleet(root, TemplateSource(str(template), "v1.0.0"), [f"s{i}" for i in range(PARALLEL)])
    return root


PARALLEL = 7  # above merge.PARALLEL_MIN: the renders go through the process pool


def _copier_per_component(ws: Workspace, todo: Sequence[RepoComponent], source: ResolvedSource, _scratch: Path,
                          *, with_diff: bool, conflict: str) -> list[ComponentUpdate]:  # noqa: ARG001 (the shape)
    """The oracle: copier's own `copier update`, component by component, then the engine's post-merge step."""
    from copier import run_update

    out = []
    for rc in todo:
        upd._set_src_path(ws, rc.answers_file, source.local)
        prepared = ws.commit(f"point {rc.name} at the template source")
        bump = upd._unit_unchanged(source, rc.unit, rc.template_version)
        if bump is not None:
            upd._bump_commit(ws, rc.answers_file, bump)
        else:
            run_update(str(ws.path), answers_file=rc.answers_file, vcs_ref=source.ref, defaults=True,
                       overwrite=True, quiet=True, unsafe=True, conflict=conflict)
        upd._set_src_path(ws, rc.answers_file, source.record_url)
        conflicts = upd.protect_and_find_conflicts(ws, {ch.path: ws.show_bytes(prepared, ch.path)
                                                        for ch in ws.staged_changes()})
        done = ws.commit(f"update {rc.name}")
        out.append(ComponentUpdate(rc.name, rc.template_version, source.ref,
                                   tuple(ch.path for ch in ws.changes(prepared, done)), conflicts))
    return out


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(root).parts}


def _edit(root: Path) -> None:
    """People and bots at work: edits far from and next to template changes, a deleted template file,
    the same path added on both sides, a file inside a directory the template drops."""
    v = root / "apps/dev/s0/values.yaml"
    v.write_text(v.read_text().replace("replicaCount: 1", "replicaCount: 4"))
    v = root / "apps/dev/s1/values.yaml"
    v.write_text(v.read_text().replace("tag: 0.1.0 #", "tag: 0.9.1 #").replace("memory: 128Mi", "memory: 1Gi"))
    (root / "apps/dev/s2/imagepolicy.yaml").unlink()
    (root / "apps/dev/s3/pdb.yaml").write_text("kind: PodDisruptionBudget\nspec:\n  minAvailable: 1\n")
    (root / "services/s4/NOTES.md").write_text("team notes\n")
    commit_all(root, "edits")


def _run(pristine: Path, tmp: Path, name: str, monkeypatch: pytest.MonkeyPatch | None,
         template: Path, conflict: Literal["inline", "rej"] = "inline") -> tuple[dict[str, bytes], tuple[str, ...],
                                                                                tuple[str, ...]]:
    root = tmp / name / "fleet"
    shutil.copytree(pristine, root, symlinks=True)
    _edit(root)
    if monkeypatch is not None:
        monkeypatch.setattr(upd, "_merge_all", _copier_per_component)
    try:
        report = update_fleet(UpdateRequest(root, template=str(template), validate=False, conflict=conflict))
        conflicts: tuple[str, ...] = ()
    except ConflictError as exc:
        report, conflicts = None, tuple(exc.paths)
    finally:
        if monkeypatch is not None:
            monkeypatch.undo()
    return _tree(root), conflicts, tuple(status(root)) if report is None else report.files


def test_fast_merge_matches_copier_update(pristine: Path, template: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    fast, fast_conflicts, fast_files = _run(pristine, tmp_path, "fast", None, template)
    slow, slow_conflicts, slow_files = _run(pristine, tmp_path, "copier", monkeypatch, template)

    assert sorted(fast) == sorted(slow)
    differing = [p for p in fast if fast[p] != slow[p]]
    assert differing == []
    assert fast_conflicts == slow_conflicts == ("apps/dev/s1/values.yaml", "apps/dev/s3/pdb.yaml")
    assert sorted(fast_files) == sorted(slow_files)
    # The scenario really exercised each rule.
    assert b"replicaCount: 4" in fast["apps/dev/s0/values.yaml"] and b"384Mi" in fast["apps/dev/s0/values.yaml"]
    assert "apps/dev/s2/imagepolicy.yaml" not in fast  # deleted by people: not brought back
    assert "apps/dev/s2/pdb.yaml" in fast  # added by the template
    # The template dropped services/<name>/: its files go, the team's notes stay.
    assert [p for p in fast if p.startswith("services/")] == ["services/s4/NOTES.md"]
    assert not any(p.endswith("values-argo.yaml") for p in fast)
    assert b"<<<<<<< before updating" in fast["apps/dev/s3/pdb.yaml"]


def test_conflict_rej_keeps_the_files_and_writes_the_templates_hunks(pristine: Path, template: Path,
                                                                    tmp_path: Path) -> None:
    """--conflict rej through the same engine: a conflicting file keeps the project's content whole, the template's
    change waits in <file>.rej, everything else merges exactly as inline does."""
    inline, _, _ = _run(pristine, tmp_path, "inline", None, template)
    rej, conflicts, _ = _run(pristine, tmp_path, "rej", None, template, "rej")

    assert conflicts == ("apps/dev/s1/values.yaml.rej", "apps/dev/s3/pdb.yaml.rej")
    assert not [p for p, data in rej.items() if b"<<<<<<<" in data]
    values = rej["apps/dev/s1/values.yaml"]
    assert b"memory: 1Gi" in values and b"tag: 0.9.1" in values  # the team's file, untouched
    hunks = rej["apps/dev/s1/values.yaml.rej"].decode()
    assert hunks.startswith("diff a/apps/dev/s1/values.yaml b/apps/dev/s1/values.yaml\t(rejected hunks)\n@@ ")
    assert "-    memory: 128Mi\n+    memory: 384Mi\n" in hunks
    assert rej["apps/dev/s3/pdb.yaml"] == b"kind: PodDisruptionBudget\nspec:\n  minAvailable: 1\n"
    assert {p: d for p, d in rej.items() if not p.endswith(".rej") and p not in {
        "apps/dev/s1/values.yaml", "apps/dev/s3/pdb.yaml"}} == {
        p: d for p, d in inline.items() if p not in {"apps/dev/s1/values.yaml", "apps/dev/s3/pdb.yaml"}}


def _renders(old: dict[str, bytes], new: dict[str, bytes]) -> Renders:
    return Renders("x", {k: (v, 0o644) for k, v in old.items()}, {k: (v, 0o644) for k, v in new.items()}, "")


def test_merge_rules_one_by_one(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "kept.txt").write_text("mine\n")
    (root / "same.txt").write_text("a\n")
    (root / "both.txt").write_text("1\n2\nmine\n4\n5\n6\n7\n")
    (root / "old/dir").mkdir(parents=True)
    (root / "old/dir/extra.txt").write_text("user file in a dropped dir\n")
    (root / "old/dir/t.txt").write_text("t\n")
    tree = Tree(root)
    r = _renders({"kept.txt": b"base\n", "same.txt": b"a\n", "both.txt": b"1\n2\n3\n4\n5\n6\n7\n",
                  "old/dir/t.txt": b"t\n", "gone.txt": b"g\n"},
                 {"kept.txt": b"base\n", "same.txt": b"b\n", "both.txt": b"1\n2\n3\n4\n5\n6\nseven\n",
                  "new.txt": b"n\n", "gone.txt": b"g2\n"})

    before = merge_component(r, tree, tmp_path)

    assert (root / "kept.txt").read_text() == "mine\n"  # template unchanged: the project's content
    assert (root / "same.txt").read_text() == "b\n"  # project unchanged: the new render
    assert (root / "both.txt").read_text() == "1\n2\nmine\n4\n5\n6\nseven\n"  # both, apart: merged
    assert (root / "new.txt").read_text() == "n\n"
    assert not (root / "gone.txt").exists()  # the project deleted it: not recreated
    assert not (root / "old/dir/t.txt").exists()  # the template dropped it
    assert (root / "old/dir/extra.txt").is_file()  # added by people in the dropped directory: stays
    assert set(before) == {"same.txt", "both.txt", "new.txt", "old/dir/t.txt"}
    assert before["new.txt"] is None


def test_renders_in_order_from_the_pool(template: Path, tmp_path: Path) -> None:
    from fleetstrap.repo import load_fleet
    from fleetstrap.upgrade.merge import RenderJob

    root = tmp_path / "f"
    render_fleet(root, TemplateSource(str(template), "v1.0.0"), [f"p{i}" for i in range(PARALLEL)])
    comps = [rc for rc in load_fleet(root).components if rc.unit == "service"]
    jobs = [RenderJob(rc.component(), "v1.0.0") for rc in comps]
    got = list(render_all(str(template), "v3.0.0", jobs, tmp_path / "scratch", workers=2))
    assert [r.name for r in got] == [rc.name for rc in comps]
    for r in got:
        svc = r.name.split("/")[1]
        assert f"apps/dev/{svc}/pdb.yaml" in r.new and f"apps/dev/{svc}/pdb.yaml" not in r.old
        assert "_commit: v3.0.0" in r.new_answers
        assert not r.identical
