"""copier's update algorithm, run once per fleet instead of once per component.

`copier update` spends nearly all of its time per component on machinery: two or three clones of the
template, three renders in fresh directories, `git init` + commits in each, `git apply`, `git status`.
A fleet update does that 50 times over the same two template versions. Here each template version is
cloned once (per process) and every component is rendered at its old and new version into memory,
spread over the machine's cores; the 3-way merge then runs per file, as copier's does:

- a file the template did not change keeps the project's content; a file the project did not change
  takes the new render; a file both changed gets `git merge-file` with copier's labels (copier first tries
  `git apply` of the project's diff, and on rejection runs this very merge-file; where the apply succeeds,
  the two changes are more than a context window apart and merge-file gives the same text);
- files the project deleted are not recreated; files the template dropped are removed (like copier's
  `_remove_old_files`: what people added in a dropped directory stays); files added by both take the
  empty file as their base;
- the answers file is the new render's.

Components whose old and new renders are identical only get the answers file's version bump.
`--conflict rej`: a file whose merge conflicts keeps the project's content, and the template's change to it goes
to `<file>.rej` (the hunks, as `git apply --reject` writes them) for a person to apply.

This is fleetstrap's one merge engine: `update` (every component, to a newer version) and `add` (one component,
new answers at the version it is on: `RenderJob.new_component`) both run it; copier only renders.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import subprocess
import tempfile
from collections.abc import Generator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetstrap import gitrepo
from fleetstrap.answers import upgrade_answers
from fleetstrap.copier_adapter import Conflict, shared_template
from fleetstrap.errors import GitError
from fleetstrap.plan import Component
from fleetstrap.render import TemplateSource, render_component

# Below this many components a process pool costs more (start-up, template clones) than it saves.
PARALLEL_MIN = 6

Files = dict[str, tuple[bytes, int]]  # relpath -> (content, mode bits)


@dataclass(frozen=True)
class RenderJob:
    component: Component  # with the answers it was rendered with (its answers file)
    old_ref: str  # the version it was rendered from
    new_component: Component | None = None  # other answers for the new side (add); None: the same answers


@dataclass(frozen=True)
class Renders:
    """One component rendered at the version it is on and at the target, answers file apart."""

    name: str
    old: Files
    new: Files
    new_answers: str

    @property
    def identical(self) -> bool:
        return self.old == self.new


def _read_tree(root: Path, skip: str) -> Files:
    out: Files = {}
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            rel = p.relative_to(root).as_posix()
            if rel != skip:
                out[rel] = (p.read_bytes(), p.stat().st_mode & 0o777)
    return out


class _Renderer:
    """Shared template clones (one per version) for all renders of this process."""

    def __init__(self, local: str, target: str) -> None:
        self.local = local
        self.target = target
        self._stack: list[Any] = []
        self._templates: dict[str, Any] = {}

    def template(self, ref: str) -> Any:
        if ref not in self._templates:
            cm = shared_template(self.local, ref)
            self._templates[ref] = cm.__enter__()
            self._stack.append(cm)
        return self._templates[ref]

    def render(self, job: RenderJob, tmp: Path) -> Renders:
        c = job.component
        trees: list[Files] = []
        answers = ""
        # The target version reads today's answer vocabulary (legacy values rewritten); the old one its own.
        new = job.new_component or c
        upgraded = dataclasses.replace(new, data=tuple(upgrade_answers(new.data_dict()).items()))
        for label, ref, component in (("old", job.old_ref, c), ("new", self.target, upgraded)):
            dest = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=tmp))
            render_component(component, dest, TemplateSource(self.local, ref), shared=self.template(ref))
            trees.append(_read_tree(dest, c.answers_file))
            if label == "new":
                answers = (dest / c.answers_file).read_text(encoding="utf-8")
        return Renders(c.name, trees[0], trees[1], answers)

    def close(self) -> None:
        while self._stack:
            self._stack.pop().__exit__(None, None, None)


_WORKER: tuple[_Renderer, Path] | None = None


def _init_worker(local: str, target: str, tmp: str) -> None:
    global _WORKER  # one renderer per pool process, built once by the pool initializer
    _WORKER = (_Renderer(local, target), Path(tempfile.mkdtemp(dir=tmp)))


def _render_in_worker(jobs: Sequence[RenderJob]) -> list[Renders]:
    assert _WORKER is not None
    renderer, tmp = _WORKER
    return [renderer.render(j, tmp) for j in jobs]


def render_all(local: str, target: str, jobs: Sequence[RenderJob], tmp: Path,
               workers: int | None = None) -> Generator[Renders, None, None]:
    """Old and new renders of every job, in order; over a process pool when there are enough of them.

    Results are yielded as they come so that merging overlaps rendering."""
    workers = workers if workers is not None else min(os.cpu_count() or 1, 4)
    tmp.mkdir(parents=True, exist_ok=True)
    if workers < 2 or len(jobs) < PARALLEL_MIN:
        renderer = _Renderer(local, target)
        try:
            for j in jobs:
                yield renderer.render(j, tmp)
        finally:
            renderer.close()
        return
    # Small batches: few enough round trips, and the first results arrive early.
    size = max(1, min(8, len(jobs) // (workers * 3)))
    batches = [jobs[i:i + size] for i in range(0, len(jobs), size)]
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                             initargs=(local, target, str(tmp))) as pool:
        for result in pool.map(_render_in_worker, batches):
            yield from result


# ---------------------------------------------------------------- the merge


def merge_file(ours: bytes, base: bytes, theirs: bytes, tmp: Path) -> tuple[bytes, bool]:
    """`git merge-file` with copier's labels; conflict markers stay in the result. True: it conflicted."""
    paths = []
    for name, data in (("ours", ours), ("base", base), ("theirs", theirs)):
        p = tmp / name
        p.write_bytes(data)
        paths.append(str(p))
    # Not gitrepo.run: merge-file exits with the number of conflicts, and its output is bytes.
    res = subprocess.run(["git", "merge-file", "-p", "-L", "before updating", "-L", "last update",
                          "-L", "after updating", *paths],
                         env={**os.environ, **gitrepo.scratch_env()}, capture_output=True, check=False)
    if res.returncode < 0 or res.returncode > 127:
        raise GitError(f"git merge-file failed: {res.stderr.decode(errors='replace').strip()}")
    return res.stdout, res.returncode > 0


def rejected_hunks(rel: str, base: bytes, theirs: bytes) -> bytes:
    """The template's change to `rel` as the hunks `git apply --reject` leaves in `<rel>.rej`."""
    hunks = list(difflib.diff_bytes(difflib.unified_diff, base.splitlines(keepends=True),
                                    theirs.splitlines(keepends=True), b"", b"", n=3))[2:]
    lines = [h if h.endswith(b"\n") else h + b"\n\\ No newline at end of file\n" for h in hunks]
    return f"diff a/{rel} b/{rel}\t(rejected hunks)\n".encode() + b"".join(lines)


class Tree:
    """The project files a merge reads and writes (the update workspace's working tree)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def get(self, rel: str) -> bytes | None:
        p = self.root / rel
        return p.read_bytes() if p.is_file() else None

    def put(self, rel: str, data: bytes, mode: int | None = None) -> None:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.is_symlink():
            p.unlink()
        p.write_bytes(data)
        if mode is not None and mode & 0o111 and not p.stat().st_mode & 0o111:
            p.chmod(p.stat().st_mode | 0o111)

    def remove(self, rel: str) -> None:
        p = self.root / rel
        if p.is_symlink() or p.is_file():
            p.unlink()
        d = p.parent
        while d != self.root and d.is_dir() and not any(d.iterdir()):
            d.rmdir()
            d = d.parent


def dropped_paths(old: Files, new: Files) -> list[str]:
    """What copier's `_remove_old_files` removes: the files only the old render has. In a directory the
    template dropped, files the project added stay (and keep the directory)."""
    return sorted(p for p in old if p not in new)


def merge_component(renders: Renders, tree: Tree, tmp: Path, conflict: Conflict = "inline") -> dict[str, bytes | None]:
    """Apply one component's template change to `tree`. Returns {path: content before} for every path
    it changed (None: the path did not exist). `conflict`: markers inline, or the project's file kept and the
    template's hunks in `<path>.rej`."""
    before: dict[str, bytes | None] = {}

    def put(rel: str, data: bytes, mode: int | None = None) -> None:
        current = tree.get(rel)
        if current == data:
            return
        before.setdefault(rel, current)
        tree.put(rel, data, mode)

    removed_by_project = {p for p in renders.old if tree.get(p) is None}
    for rel, (theirs, mode) in renders.new.items():
        if rel in removed_by_project:
            continue  # deleted on purpose: copier does not bring it back
        ours = tree.get(rel)
        old = renders.old.get(rel)
        base = old[0] if old is not None else b""  # added on both sides: merged against an empty file
        if ours is None or ours in (base, theirs):
            put(rel, theirs, mode)
        elif base == theirs:
            continue  # the template did not change it: the project's content stays
        else:
            merged, conflicted = merge_file(ours, base, theirs, tmp)
            if conflicted and conflict == "rej":
                put(f"{rel}.rej", rejected_hunks(rel, base, theirs))
            else:
                put(rel, merged, mode)
    for rel in dropped_paths(renders.old, renders.new):
        current = tree.get(rel)
        if current is not None:
            before.setdefault(rel, current)
            tree.remove(rel)
    return before
