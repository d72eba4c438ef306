"""Finding the files of a repo and parsing its YAML with line numbers and duplicate-key detection."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleetstrap.boundedyaml import MAX_DEPTH, MAX_DOCUMENT_BYTES, GoLoader, YamlLimitError, read_bounded_text
from fleetstrap.validate.confine import inside
from fleetstrap.validate.model import Doc, Finding, json_path
from fleetstrap.validate.sourceignore import SourceIgnore

YAML_SUFFIXES = (".yaml", ".yml")
# Directories that are never part of the GitOps content.
_SKIP_DIRS = frozenset({".git", "node_modules", ".venv", "venv", "target", "__pycache__", ".mypy_cache",
                        ".ruff_cache", ".pytest_cache", ".terraform"})
_KEEP_HIDDEN = frozenset({".github", ".fleetstrap"})
# A Go/Helm template action: `{{ .Values.x }}`, `{{- include ...}}`, `{{ if ...}}`.
_GO_TEMPLATE = re.compile(r"\{\{-?\s*(?:[.$]|(?:if|range|with|include|template|define|end|else|toYaml|tpl)\b)")


OUTSIDE_LINK = "symlink resolves outside the repository; not read"


@dataclass(frozen=True)
class RepoFiles:
    yaml_files: tuple[str, ...]
    skipped_templates: tuple[str, ...]
    chart_dirs: tuple[str, ...]
    kustomize_roots: tuple[str, ...]
    dockerfiles: tuple[str, ...]
    workflows: tuple[str, ...]
    # Symlinks (files or directories) that resolve outside the repo: findings, never opened.
    outside_links: tuple[str, ...] = ()


def _walk(root: Path, outside: list[str]) -> Iterator[str]:
    # os.walk does not descend into symlinked directories; a symlink resolving outside the repo is recorded
    # (a finding) and never opened. Symlinks resolving inside are read through the path they point to.
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        kept = []
        for d in sorted(dirnames):
            if d in _SKIP_DIRS or (d.startswith(".") and d not in _KEEP_HIDDEN):
                continue
            if Path(dirpath, d).is_symlink() and not inside(root, Path(dirpath, d)):
                outside.append(prefix + d)
                continue
            kept.append(d)
        dirnames[:] = kept
        for name in sorted(filenames):
            if Path(dirpath, name).is_symlink() and not inside(root, Path(dirpath, name)):
                outside.append(prefix + name)
                continue
            yield prefix + name


def build_repo_files(root: Path) -> RepoFiles:
    """Classify the repo's files once; every check works from this listing."""
    outside: list[str] = []
    all_files = list(_walk(root, outside))
    ignore = SourceIgnore.of_repo(root)
    charts = sorted({f.rsplit("/", 1)[0] if "/" in f else ""
                     for f in all_files if f.rsplit("/", 1)[-1] == "Chart.yaml"})
    chart_prefixes = tuple((c + "/" if c else "") for c in charts)
    yaml_files: list[str] = []
    skipped: list[str] = []
    roots: list[str] = []
    dockerfiles: list[str] = []
    workflows: list[str] = []
    for f in all_files:
        name = f.rsplit("/", 1)[-1]
        parent = f.rsplit("/", 1)[0] if "/" in f else ""
        if name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
            roots.append(parent)
        if name == "Dockerfile" or name.startswith("Dockerfile.") or name.endswith(".Dockerfile"):
            dockerfiles.append(f)
        if not f.endswith(YAML_SUFFIXES):
            continue
        if f.startswith(".github/workflows/") and f.count("/") == 2:
            workflows.append(f)
        elif ignore.ignored(f):
            continue  # Flux never ships it (.sourceignore, Flux's defaults): not a manifest
        # Helm templates (and subcharts' templates) are Go templates, not YAML.
        if any(f.startswith(p + "templates/") or f.startswith(p + "charts/") for p in chart_prefixes):
            skipped.append(f)
            continue
        yaml_files.append(f)
    return RepoFiles(tuple(yaml_files), tuple(skipped), tuple(charts), tuple(sorted(set(roots))),
                     tuple(dockerfiles), tuple(workflows), tuple(sorted(outside)))


class _Loader(GoLoader):
    """Go's bounded reading of YAML (fleetstrap.boundedyaml) that records duplicate mapping keys instead of
    silently keeping the last one."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[Any, Any, str]] = []  # (mapping node, key node, key)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    if key_node.value in seen:
                        self.duplicates.append((node, key_node, key_node.value))
                    seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def is_go_template(text: str) -> bool:
    return _GO_TEMPLATE.search(text) is not None


# Jinja (Ansible roles, cookiecutter/copier templates): `{% for … %}`, `{{ name }}`, `{# … #}`.
_JINJA = re.compile(r"\{%-?\s*[a-z]|\{\{-?\s*[A-Za-z_]|\{#")


def is_template(text: str) -> bool:
    """A Go or Jinja template of YAML: when it does not parse, it is a template, not a broken manifest."""
    return is_go_template(text) or _JINJA.search(text) is not None


def load_file(root: Path, rel: str) -> tuple[list[Doc], list[Finding]]:
    """Parse every document of one file. Errors become `yaml` findings, never exceptions."""
    if not inside(root, root / rel):
        return [], [Finding("yaml", "error", rel, None, "", "", OUTSIDE_LINK)]
    try:
        text = read_bounded_text(root / rel)
    except UnicodeDecodeError:
        return [], [Finding("yaml", "error", rel, None, "", "", "file is not valid UTF-8")]
    except OSError as exc:
        return [], [Finding("yaml", "error", rel, None, "", "", f"cannot read file: {exc.strerror}")]
    docs, findings = load_text(text, rel)
    # Go templates inside YAML strings (ApplicationSet goTemplate, alert annotations) are still YAML and are
    # checked; only a file that is a template *of* YAML (and so does not parse) is left alone.
    if findings and is_template(text):
        return [], []
    return docs, findings


# --- fast path --------------------------------------------------------------------------------------------
# Most files have no finding, so they need no line numbers: a Rust parser (PyPI yaml-rs, duplicate keys are
# errors) reads them ~10x faster than PyYAML's line-tracking loader, and the line-tracking parse runs only when
# a finding asks for a line (LazyNode). yaml-rs reads YAML 1.2; a file with anything YAML 1.1 (PyYAML, and
# Kubernetes' own sigs.k8s.io/yaml) reads differently (yes/no/on/off, 0755, 1e3, 1:30, merge keys, tags,
# directives) or any file yaml-rs rejects takes the PyYAML path, so both paths give the same data.
_YAML11_SCALAR = (
    r"yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF|="
    r"|[-+]?0[0-7_]+|[-+]?0b[01_]+|[-+]?0x[0-9a-fA-F_]+|[-+]?\d[\d_]*(?::[0-5]?\d)+(?:\.\d*)?"
    r"|[-+]?[\d.][\d_.]*[eE][-+]?\d+|[-+]?\d[\d_]*_[\d_.]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)
_YAML11_VALUE = re.compile(rf"[ \t\[{{,](?=[yYnNoO=+.\d-])(?:{_YAML11_SCALAR})(?=[ \t]*(?:$|[\]}},#:]))", re.M)
# A key at column 0. Searched as "\n" + key (a literal first character is a fast scan; `^` in multiline mode
# tries every position), with the first line matched on its own.
_YAML11_KEY_AT = re.compile(r"(?:yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF|[-+]?\d[\d_:.eE+-]*)[ \t]*:")
_YAML11_KEY = re.compile(r"\n" + _YAML11_KEY_AT.pattern)
# A line indented (spaces, tabs, sequence dashes) far enough to nest deeper than the bounded loader's MAX_DEPTH
# (boundedyaml.may_nest_deeply, with the same fast scan).
_DEEP_AT = re.compile(rf"[ \t-]{{{MAX_DEPTH // 2},}}")
_DEEP = re.compile(r"\n" + _DEEP_AT.pattern)
_TAG = re.compile(r"(?:^|[ \t\[{,])!", re.M)
_ALIAS = re.compile(r"(?:^|[ \t\[{,])\*[^\s,\[\]{}]", re.M)


def _needs_pyyaml(text: str) -> bool:
    """Whether YAML 1.1 (PyYAML) may read this text differently from YAML 1.2 (yaml-rs). Conservative: a
    false alarm only costs speed. Literal checks first: they are much cheaper than the regexes."""
    if "<<" in text or "\n%" in text or "\n..." in text or text.startswith(("%", "...")):
        return True
    # Templates (`{{ x }}` is a flow mapping used as a key: PyYAML rejects it) and explicit `? ` keys.
    if "{{" in text or "{%" in text or "? " in text:
        return True
    if "!" in text and _TAG.search(text):
        return True
    # Aliases (yaml-rs expands them: the bounded loader counts the expansion first) and deep nesting.
    if "*" in text and _ALIAS.search(text):
        return True
    if _DEEP_AT.match(text) or _DEEP.search(text):
        return True
    return bool(_YAML11_VALUE.search(text) or _YAML11_KEY_AT.match(text) or _YAML11_KEY.search(text))


def _doc_markers(text: str) -> list[int]:
    """Offsets of the `---` lines that start documents (`---` at column 0, then a blank, a tab or the line end)."""
    out: list[int] = []
    at = 0 if text.startswith("---") else text.find("\n---")
    while at != -1:
        start = at if at == 0 and text.startswith("---") else at + 1
        if text[start + 3:start + 4] in ("", " ", "\t", "\n"):
            out.append(start)
        at = text.find("\n---", start + 3)
    return out
_CONTENT_LINE = re.compile(r"^[ \t]*[^\s#]", re.M)

_yaml_rs: Any
try:
    import yaml_rs as _yaml_rs
except ImportError:  # the `validate` extra installs it; without it every file takes the PyYAML path
    _yaml_rs = None

_CParser: Any
try:
    from yaml._yaml import CParser as _CParser
except ImportError:  # pragma: no cover - PyYAML's wheels ship libyaml
    _CParser = None


class _LineLoader(_CParser if _CParser is not None else yaml.SafeLoader):  # type: ignore[misc]
    """libyaml's own composer, for line marks only: the data was already read (yaml-rs), so tags do not matter and
    every scalar resolves to one constant tag (PyYAML's YAML 1.1 resolver is the costly part of composing)."""

    def resolve(self, *_: Any) -> str:
        return ""

    def descend_resolver(self, *_: Any) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass


class LazyNode:
    """The node tree of one document, with line marks, composed only when a finding asks for a line: from that
    document's own text, so a line costs the document, never the whole file."""

    __slots__ = ("_done", "_node", "_text", "line0")

    def __init__(self, text: str, line0: int) -> None:
        self._text, self.line0 = text, line0  # line0: 0-based line of the text's start in the file
        self._node: Any = None
        self._done = False

    def get(self) -> Any:
        if not self._done:
            self._done = True
            # A redefined anchor is legal (Go's yaml) but an error to libyaml's composer: the bounded one reads it.
            loader = _Loader(self._text) if "&" in self._text else _LineLoader(self._text)
            try:
                self._node = loader.get_node() if loader.check_node() else None
            except yaml.YAMLError:
                pass  # the line then comes from the document start, already known
            finally:
                loader.dispose()
            self._text = ""
        return self._node


# One fast document: (index in the stream, line of its content, data, its text, 0-based line of that text's start).
FastDoc = tuple[int, int, Any, str, int]


def _fast_load(text: str, rel: str) -> list[Doc] | None:
    """Documents parsed by yaml-rs, or None when this file must take the line-tracking PyYAML path."""
    fast = _fast_docs(text)
    if fast is None:
        return None
    return [Doc(rel, index, line, data, LazyNode(chunk, line0)) for index, line, data, chunk, line0 in fast]


def _fast_docs(text: str) -> list[FastDoc] | None:
    if _yaml_rs is None or _needs_pyyaml(text):
        return None
    # One document per chunk (a `---` at column 0 always starts a document), so a top-level list is never
    # mistaken for a stream of documents. Text before the first marker is a document only if it has content.
    bounds = _doc_markers(text)
    chunks = [(0, bounds[0] if bounds else len(text))] if not bounds or bounds[0] > 0 else []
    chunks += [(b, bounds[i + 1] if i + 1 < len(bounds) else len(text)) for i, b in enumerate(bounds)]
    if any(end - begin > MAX_DOCUMENT_BYTES for begin, end in chunks):
        return None  # the line-tracking path names the document and the bound
    docs: list[FastDoc] = []
    index = 0
    # Lines are counted from the previous document's start, never from the top of the text (linear in the stream).
    counted_to, counted_line = 0, 1
    for begin, end in chunks:
        marker = text.startswith("---", begin)
        content = _CONTENT_LINE.search(text, text.find("\n", begin, end) + 1 if marker else begin, end)
        if not marker and content is None:
            continue  # comments or nothing before the first `---`
        chunk = text[begin:end]
        try:
            data = _yaml_rs.loads(chunk, duplicate_key_policy=_yaml_rs.DuplicateKeyPolicy.Error)
        except Exception:  # any rejection: PyYAML decides, with its own message and line
            return None
        if data is not None:
            counted_line += text.count("\n", counted_to, begin)
            counted_to = begin
            line = counted_line + (text.count("\n", begin, content.start()) if content else 0)
            docs.append((index, line, data, chunk, counted_line - 1))
        index += 1
    return docs


def load_text(text: str, rel: str) -> tuple[list[Doc], list[Finding]]:
    fast = _fast_load(text, rel)
    if fast is not None:
        return fast, []
    return _slow_load(text, rel)


def _slow_load(text: str, rel: str) -> tuple[list[Doc], list[Finding]]:
    docs: list[Doc] = []
    findings: list[Finding] = []
    loader = _Loader(text)
    index = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            size = node.end_mark.index - node.start_mark.index
            if size > MAX_DOCUMENT_BYTES:
                findings.append(Finding("yaml", "error", rel, node.start_mark.line + 1, "", "",
                                        f"document is larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB "
                                        "(no manifest is); not read"))
                index += 1
                continue
            data = loader.construct_document(node)
            if data is not None:
                docs.append(Doc(rel, index, node.start_mark.line + 1, data, node))
            index += 1
    except YamlLimitError as exc:
        mark = exc.problem_mark
        findings.append(Finding("yaml", "error", rel, mark.line + 1 if mark else None, "", "",
                                f"YAML refused: {exc.problem}"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        findings.append(Finding("yaml", "error", rel, mark.line + 1 if mark else None, "", "",
                                f"YAML does not parse: {problem}"))
    except RecursionError:  # a bound above should stop it first; never an internal error
        findings.append(Finding("yaml", "error", rel, None, "", "", "YAML refused: nesting too deep"))
    finally:
        loader.dispose()
    for mapping, key_node, key in loader.duplicates:
        doc = next((d for d in docs if _contains(d.node, mapping)), None)
        parts = _path_to(doc.node, mapping) if doc else None
        path = json_path([*(parts or []), key])
        from fleetstrap.validate.model import object_id

        findings.append(Finding("yaml", "error", rel, key_node.start_mark.line + 1,
                                object_id(doc.data) if doc else "", path, f"duplicate key {key!r}"))
    return docs, findings


def _children(node: Any) -> Iterator[tuple[str | int, Any, Any]]:
    """(segment, key node or None, value node) for a mapping or sequence node."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
                yield k.value, k, v
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            yield i, None, v


def _contains(node: Any, target: Any) -> bool:
    return _path_to(node, target) is not None


def _path_to(node: Any, target: Any) -> list[str | int] | None:
    if node is target:
        return []
    for seg, _, child in _children(node):
        sub = _path_to(child, target)
        if sub is not None:
            return [seg, *sub]
    return None


def line_of(doc: Doc, parts: list[str | int] | tuple[str | int, ...]) -> int:
    """The line of the deepest node along `parts` that exists in the document."""
    lazy = isinstance(doc.node, LazyNode)
    node = doc.node.get() if lazy else doc.node
    base = doc.node.line0 + 1 if lazy else 1  # a lazy node's marks count from its document's first line
    if node is None:
        return doc.line
    line: int = node.start_mark.line + base
    for part in parts:
        nxt = None
        for seg, key_node, child in _children(node):
            if seg == part or (isinstance(part, str) and str(seg) == part):
                nxt = child
                line = (key_node or child).start_mark.line + base
                break
        if nxt is None:
            break
        node = nxt
    return line


# --- many files on two cores ------------------------------------------------------------------------------
# Parsing is most of a large repo's run. Above PARALLEL_MIN_BYTES of YAML, a forked worker parses the second
# part of the files (the fast path only, in batches) while this process parses the first; files the fast path
# leaves (a finding, YAML 1.1, a read error) are loaded here afterwards, so the result is the sequential one.
# Measured (validate_bench.py, 2 cores, load ~3): at 8 MB (20,000 objects) the worker gains nothing over one
# process (fork, pickling), at 40 MB (100,000) it saves 10-20 % of the wall time.
PARALLEL_MIN_BYTES = 16 * 1024 * 1024
_BATCH = 32
# This process also unpickles the worker's documents, so the worker takes a little more than half of the bytes.
_WORKER_SHARE = 0.55


def _worker_init() -> None:
    import signal

    # Ctrl-C reaches the whole process group: the parent handles it (exit 130) and the worker must not print a
    # traceback of its own; SIGTERM ends it quietly.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _fast_files(root: str, rels: list[str]) -> list[list[FastDoc] | None]:
    """In the worker: the fast-path documents of each file, or None where the parent must load it itself."""
    base = Path(root)
    out: list[list[FastDoc] | None] = []
    for rel in rels:
        path = base / rel
        try:
            out.append(_fast_docs(read_bounded_text(path)) if inside(base, path) else None)
        except (OSError, UnicodeDecodeError):
            out.append(None)
    return out


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return 1


def _split(root: Path, rels: tuple[str, ...], min_bytes: int) -> int:
    """How many of the files (from the front) this process parses; len(rels) means no worker."""
    if _yaml_rs is None or len(rels) < 2 * _BATCH or _cores() < 2 or not hasattr(os, "fork"):
        return len(rels)
    sizes = []
    for rel in rels:
        try:
            sizes.append((root / rel).stat().st_size)
        except OSError:
            sizes.append(0)
    total = sum(sizes)
    if total < min_bytes:
        return len(rels)
    mine, acc = 0, 0
    while mine < len(rels) and acc < total * (1 - _WORKER_SHARE):
        acc += sizes[mine]
        mine += 1
    return mine


def load_files(root: Path, rels: tuple[str, ...], *, min_bytes: int | None = None
               ) -> list[tuple[list[Doc], list[Finding]]]:
    """`load_file` of every file, in order; on two cores for a large repo (same result as one by one)."""
    mine = _split(root, rels, PARALLEL_MIN_BYTES if min_bytes is None else min_bytes)
    if mine >= len(rels):
        return [load_file(root, rel) for rel in rels]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    theirs = rels[mine:]
    batches = [list(theirs[i:i + _BATCH]) for i in range(0, len(theirs), _BATCH)]
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"),
                               initializer=_worker_init)
    try:
        futures = [pool.submit(_fast_files, str(root), batch) for batch in batches]
        out = [load_file(root, rel) for rel in rels[:mine]]
        for batch, future in zip(batches, futures, strict=True):
            try:
                results: list[list[FastDoc] | None] = future.result()
            except BrokenProcessPool:  # the worker died (OOM killer, a signal): parse here instead
                results = [None] * len(batch)
            for rel, fast in zip(batch, results, strict=True):
                if fast is None:
                    out.append(load_file(root, rel))
                else:
                    out.append(([Doc(rel, index, line, data, LazyNode(chunk, line0))
                                 for index, line, data, chunk, line0 in fast], []))
        return out
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
