"""Finding the files of a repo and parsing its YAML with line numbers and duplicate-key detection."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleetstrap.boundedyaml import MAX_DOCUMENT_BYTES, GoLoader, YamlLimitError, may_nest_deeply, read_bounded_text
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
_YAML11_KEY = re.compile(r"^(?:yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF|[-+]?\d[\d_:.eE+-]*)[ \t]*:", re.M)
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
    if may_nest_deeply(text):
        return True
    return bool(_YAML11_VALUE.search(text) or _YAML11_KEY.search(text))


_DOC_MARKER = re.compile(r"^---(?=[ \t]|$)", re.M)
_CONTENT_LINE = re.compile(r"^[ \t]*[^\s#]", re.M)

_yaml_rs: Any
try:
    import yaml_rs as _yaml_rs
except ImportError:  # the `validate` extra installs it; without it every file takes the PyYAML path
    _yaml_rs = None


class LazyNode:
    """The PyYAML node of one document, parsed (once per file, with line marks) only when a line is needed."""

    __slots__ = ("_file", "_index")

    def __init__(self, file: _LazyFile, index: int) -> None:
        self._file, self._index = file, index

    def get(self) -> Any:
        nodes = self._file.nodes()
        return nodes[self._index] if self._index < len(nodes) else None


class _LazyFile:
    __slots__ = ("_nodes", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._nodes: list[Any] | None = None

    def nodes(self) -> list[Any]:
        if self._nodes is None:
            loader = _Loader(self.text)
            out: list[Any] = []
            try:
                while loader.check_node():
                    out.append(loader.get_node())
            except yaml.YAMLError:
                pass  # lines then come from the document starts already known
            finally:
                loader.dispose()
            self._nodes = out
        return self._nodes


def _fast_load(text: str, rel: str) -> list[Doc] | None:
    """Documents parsed by yaml-rs, or None when this file must take the line-tracking PyYAML path."""
    if _yaml_rs is None or _needs_pyyaml(text):
        return None
    # One document per chunk (a `---` at column 0 always starts a document), so a top-level list is never
    # mistaken for a stream of documents. Text before the first marker is a document only if it has content.
    bounds = [m.start() for m in _DOC_MARKER.finditer(text)]
    chunks = [(0, bounds[0] if bounds else len(text))] if not bounds or bounds[0] > 0 else []
    chunks += [(b, bounds[i + 1] if i + 1 < len(bounds) else len(text)) for i, b in enumerate(bounds)]
    if any(end - begin > MAX_DOCUMENT_BYTES for begin, end in chunks):
        return None  # the line-tracking path names the document and the bound
    lazy = _LazyFile(text)
    docs: list[Doc] = []
    index = 0
    # Lines are counted from the previous document's start, never from the top of the text (linear in the stream).
    counted_to, counted_line = 0, 1
    for begin, end in chunks:
        marker = text.startswith("---", begin)
        content = _CONTENT_LINE.search(text, text.find("\n", begin, end) + 1 if marker else begin, end)
        if not marker and content is None:
            continue  # comments or nothing before the first `---`
        try:
            data = _yaml_rs.loads(text[begin:end], duplicate_key_policy=_yaml_rs.DuplicateKeyPolicy.Error)
        except Exception:  # any rejection: PyYAML decides, with its own message and line
            return None
        if data is not None:
            at = content.start() if content else begin
            counted_line += text.count("\n", counted_to, at)
            counted_to = at
            docs.append(Doc(rel, index, counted_line, data, LazyNode(lazy, index)))
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
    node = doc.node.get() if isinstance(doc.node, LazyNode) else doc.node
    line = doc.line if node is None else node.start_mark.line + 1
    for part in parts:
        nxt = None
        for seg, key_node, child in _children(node):
            if seg == part or (isinstance(part, str) and str(seg) == part):
                nxt = child
                line = (key_node or child).start_mark.line + 1
                break
        if nxt is None:
            break
        node = nxt
    return line
