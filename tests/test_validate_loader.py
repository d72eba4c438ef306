"""The fast YAML path (yaml-rs, line numbers only on demand) reads every file exactly as the line-tracking
PyYAML path does: same documents, indexes, start lines and findings; YAML 1.1 readings go to PyYAML."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from defects.realworld import REPOS
from fleetstrap.validate import loader
from fleetstrap.validate.model import Doc
from validate_fixture import write_fleet

pytestmark = pytest.mark.skipif(loader._yaml_rs is None, reason="yaml-rs is not installed (validate extra)")

EDGE_CASES = [
    "a: 1\n", "---\na: 1\n", "# c\n---\na: 1\n---\nb: 2\n", "---\n---\na: 1\n", "- 1\n- 2\n", "a: 1\n---\n", "",
    "# only a comment\n", "a: 1\n---\n# c\nb: [1, 2]\n", "a: 1\na: 2\n", "x: &a {b: 1}\ny: *a\n",
    "a: |\n  ---not a marker\n  x\n", "--- \napiVersion: v1\n", "a: [1\n", "on:\n  push: {}\n", "a: yes\n",
    "mode: 0755\n", "t: 1:30\n", "n: 1e3\n", "n: 1_000\n", "x: .inf\n", "- no\n", "a: !!str 1\n", "k: =\n",
    "b: &b {x: 1}\nc:\n  <<: *b\n", "%YAML 1.1\n---\na: 1\n", "a: 1\n...\n", "d: 2024-01-01\n", "s: 'yes'\n",
    "url: http://x:8080/a\n", "v: 1.0\n", "e: ''\n", "n: ~\n", "m: {a: 1, b: [x, y]}\n", "a:\n  - b: 1\n    c: 2\n",
]


def _same(text: str, rel: str = "f.yaml") -> None:
    fast_docs, fast_findings = loader.load_text(text, rel)
    slow_docs, slow_findings = loader._slow_load(text, rel)

    def key(docs: list[Doc]) -> list[tuple[int, int, object]]:
        return [(d.index, d.line, d.data) for d in docs]

    assert key(fast_docs) == key(slow_docs), text
    assert [(f.line, f.message) for f in fast_findings] == [(f.line, f.message) for f in slow_findings], text


# The cases the fast path hands to PyYAML (YAML 1.1 readings, duplicate keys, errors): comparing the two paths
# there would compare PyYAML with itself, so these are checked against what YAML 1.1 (PyYAML) reads:
# ([(index, line, data)], [(line, finding)]).
SLOW_PATH: dict[str, tuple[list[tuple[int, int, object]], list[tuple[int, str]]]] = {
    "a: 1\na: 2\n": ([(0, 1, {"a": 2})], [(2, "duplicate key 'a'")]),
    "a: [1\n": ([], [(2, "YAML does not parse: did not find expected ',' or ']'")]),
    "on:\n  push: {}\n": ([(0, 1, {True: {"push": {}}})], []),
    "a: yes\n": ([(0, 1, {"a": True})], []),
    "mode: 0755\n": ([(0, 1, {"mode": 0o755})], []),
    "t: 1:30\n": ([(0, 1, {"t": 90})], []),  # sexagesimal
    "n: 1e3\n": ([(0, 1, {"n": "1e3"})], []),  # a YAML 1.1 float needs a dot
    "n: 1_000\n": ([(0, 1, {"n": 1000})], []),
    "x: .inf\n": ([(0, 1, {"x": float("inf")})], []),
    "- no\n": ([(0, 1, [False])], []),
    "a: !!str 1\n": ([(0, 1, {"a": "1"})], []),
    # A plain string in YAML 1.2 and in Go's yaml (kustomize's `matchType: =`); YAML 1.1's value tag is not read.
    "k: =\n": ([(0, 1, {"k": "="})], []),
    # Aliases take the slow path, where their expansion is counted against the bound (boundedyaml).
    "x: &a {b: 1}\ny: *a\n": ([(0, 1, {"x": {"b": 1}, "y": {"b": 1}})], []),
    "b: &b {x: 1}\nc:\n  <<: *b\n": ([(0, 1, {"b": {"x": 1}, "c": {"x": 1}})], []),
    "%YAML 1.1\n---\na: 1\n": ([(0, 3, {"a": 1})], []),
    "a: 1\n...\n": ([(0, 1, {"a": 1})], []),
}


@pytest.mark.parametrize("text", EDGE_CASES)
def test_edge_cases_read_the_same(text: str) -> None:
    if text in SLOW_PATH:
        assert loader._fast_load(text, "f.yaml") is None, "now read by the fast path: compare the paths instead"
        docs, findings = loader.load_text(text, "f.yaml")
        assert ([(d.index, d.line, d.data) for d in docs], [(f.line, f.message) for f in findings]) == \
            SLOW_PATH[text]
        return
    assert loader._fast_load(text, "f.yaml") is not None, "PyYAML reads it: give its expected value in SLOW_PATH"
    _same(text)


def test_yaml_1_1_readings_take_the_pyyaml_path() -> None:
    for text in ("a: yes\n", "on:\n  push: {}\n", "mode: 0755\n", "n: 1e3\n", "b: &b {x: 1}\nc:\n  <<: *b\n"):
        assert loader._fast_load(text, "f") is None, text
    assert loader._fast_load("apiVersion: v1\nkind: ConfigMap\n", "f") is not None


def test_fixture_repos_read_the_same(tmp_path: Path) -> None:
    files = {rel: text for repo in REPOS for rel, text in repo.files.items() if rel.endswith(".yaml")}
    root = write_fleet(tmp_path / "fleet")
    files.update({p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
                  for p in root.rglob("*.y*ml") if "templates" not in p.parts})
    fast = 0
    for rel, text in files.items():
        _same(text, rel)
        fast += loader._fast_load(text, rel) is not None
    assert fast > len(files) // 2  # the fast path is the common one


def test_lines_of_a_fast_document_come_from_the_lazy_parse() -> None:
    docs, _ = loader.load_text("a: 1\n---\nkind: X\nspec:\n  replicas: two\n", "f")
    assert isinstance(docs[1].node, loader.LazyNode)
    assert loader.line_of(docs[1], ["spec", "replicas"]) == 5


def _leaf_paths(data: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    if isinstance(data, dict):
        return [prefix] + [p for k, v in data.items() for p in _leaf_paths(v, (*prefix, str(k)))]
    if isinstance(data, list):
        return [prefix] + [p for i, v in enumerate(data) for p in _leaf_paths(v, (*prefix, i))]
    return [prefix]


STREAM = (
    "# leading comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n"
    "---\n\n# a comment before the object\napiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n"
    "    spec:\n      containers:\n        - name: app\n          image: x\n        - name: b\n"
    "---\nkeyA: &k tls.crt\nkeyB: &k tls.key\nlist:\n  - [1, 2]\n  - {a: b}\n"
)


def test_lines_of_fast_documents_are_the_line_tracking_lines() -> None:
    """Each fast document composes only its own text for line marks: every path of every document must get the
    line the whole-file PyYAML parse gives (documents deep in a stream, comments between, redefined anchors)."""
    files = {rel: text for repo in REPOS for rel, text in repo.files.items() if rel.endswith(".yaml")}
    files["stream.yaml"] = STREAM * 3
    checked = 0
    for rel, text in files.items():
        fast = loader._fast_load(text, rel)
        if fast is None:
            continue
        slow, _ = loader._slow_load(text, rel)
        assert [(d.index, d.line) for d in fast] == [(d.index, d.line) for d in slow], rel
        for f, s in zip(fast, slow, strict=True):
            for path in _leaf_paths(f.data):
                assert loader.line_of(f, path) == loader.line_of(s, path), (rel, f.index, path)
                checked += 1
    assert checked > 1000


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["---", "--", "-", "\n", " ", "\t", "\r", "a", ":", "#"]), max_size=40))
def test_document_markers_are_the_multiline_regex(parts: list[str]) -> None:
    text = "".join(parts)
    assert loader._doc_markers(text) == [m.start() for m in re.finditer(r"^---(?=[ \t]|$)", text, re.M)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["yes", "no", "on", "0", "1", "e", ":", "_", " ", "\t", "-", "\n", "a", " " * 60]),
                max_size=30))
def test_line_start_scans_are_the_multiline_regexes(parts: list[str]) -> None:
    """The column-0 key and deep-indentation scans search "\\n" + pattern (fast); same answer as `^` multiline."""
    text = "".join(parts)
    key = re.compile("^" + loader._YAML11_KEY_AT.pattern, re.M)
    deep = re.compile("^" + loader._DEEP_AT.pattern, re.M)
    assert bool(loader._YAML11_KEY_AT.match(text) or loader._YAML11_KEY.search(text)) == bool(key.search(text))
    assert bool(loader._DEEP_AT.match(text) or loader._DEEP.search(text)) == bool(deep.search(text))


def _mixed_repo(root: Path) -> tuple[str, ...]:
    """Enough files for the parsing worker: fast ones, YAML 1.1 ones, broken ones, templates, a bad encoding."""
    texts = [STREAM, "a: yes\n---\nb: 0755\n", "a: [1\n", "x: {{ .Values.x }}\n", "a: 1\na: 2\n",
             "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n    - port: 80\n"]
    rels = []
    for i in range(3 * loader._BATCH + 5):
        rel = f"d{i % 4}/f{i:03d}.yaml"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(texts[i % len(texts)].replace("name: s", f"name: s{i}"), encoding="utf-8")
        rels.append(rel)
    (root / "latin1.yaml").write_bytes("a: \xe9\n".encode("latin-1"))
    return (*rels, "latin1.yaml")


def _loaded(result: list[tuple[list[Doc], list[loader.Finding]]]) -> list[object]:
    return [([(d.file, d.index, d.line, d.data, [loader.line_of(d, p) for p in _leaf_paths(d.data)]) for d in docs],
             findings) for docs, findings in result]


def test_parsing_on_two_cores_gives_the_sequential_result(tmp_path: Path) -> None:
    rels = _mixed_repo(tmp_path)
    sequential = loader.load_files(tmp_path, rels, min_bytes=1 << 40)
    if loader._cores() >= 2:
        assert loader._split(tmp_path, rels, 0) < len(rels)  # a worker takes part of the files
    assert _loaded(loader.load_files(tmp_path, rels, min_bytes=0)) == _loaded(sequential)
    assert _loaded(sequential) == _loaded([loader.load_file(tmp_path, rel) for rel in rels])


def _dies(*_: object) -> list[list[loader.FastDoc] | None]:
    os._exit(9)  # the worker is killed (OOM killer, a signal) mid-run


def test_a_dead_parsing_worker_costs_time_not_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rels = _mixed_repo(tmp_path)
    sequential = _loaded(loader.load_files(tmp_path, rels, min_bytes=1 << 40))
    monkeypatch.setattr(loader, "_fast_files", _dies)
    assert _loaded(loader.load_files(tmp_path, rels, min_bytes=0)) == sequential
