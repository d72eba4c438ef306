"""YAML read the way Go reads it, within bounds: the one reader for files fleetstrap did not write.

Kubernetes (sigs.k8s.io/yaml), kustomize and Flux read YAML with Go's yaml; PyYAML's YAML 1.1 loader differs from it
in ways that turn valid files into errors, so the loader here differs from `yaml.SafeLoader` where Go does:

- `=` is a plain string (YAML 1.1's "value" type, which PyYAML cannot even construct, does not exist in Go's yaml);
- an anchor may be defined again in the same stream: the later definition wins for the aliases after it;
- an application tag (`!env_var X`, `!!python/name:x`) is read as the plain value under it: such files are app or
  tool configs, and reading a value never runs anything.

It is also bounded, because the files come from whoever can open a pull request:

- a file is read up to MAX_FILE_BYTES (a device or FIFO that never ends is refused, never buffered);
- nesting deeper than MAX_DEPTH is an error (the composer recurses; 10,000 levels must not reach the interpreter's
  recursion limit);
- aliases may not expand a document to more than ALIAS_EXPANSION times its own nodes (and at least
  ALIAS_FLOOR nodes): the "billion laughs" chain is refused before anything walks the expanded tree.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

MAX_FILE_BYTES = 256 * 1024 * 1024
# An answers file is a few dozen keys.
MAX_ANSWERS_BYTES = 1024 * 1024
# A Kubernetes object is at most ~1.5 MiB (etcd's request limit); a document eight times that is no manifest.
MAX_DOCUMENT_BYTES = 12 * 1024 * 1024
MAX_DEPTH = 200
ALIAS_EXPANSION = 10
ALIAS_FLOOR = 100_000

_CHUNK = 1 << 16

try:  # libyaml's event parser when present (the composer below is Python, so the limits apply either way)
    from yaml._yaml import CParser as _Parser
except ImportError:  # pragma: no cover - wheels ship libyaml
    from yaml.parser import Parser as _FallbackParser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Parser(Reader, Scanner, _FallbackParser):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            _FallbackParser.__init__(self)


class YamlLimitError(yaml.YAMLError):
    """A bound was exceeded; `problem` and `problem_mark` as PyYAML's own errors carry them."""

    def __init__(self, problem: str, mark: Any = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark

    def __str__(self) -> str:
        return self.problem


def _human(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n >= 1024 * 1024 else f"{n} bytes"


def read_bounded(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of `path`, refusing (OSError EFBIG) a file, device or pipe longer than `limit`.

    Read in chunks, so Ctrl-C interrupts a read that never ends and memory never exceeds the limit."""
    chunks: list[bytes] = []
    total = 0
    with Path(path).open("rb", buffering=0) as fh:
        while True:
            chunk = fh.read(min(_CHUNK, limit + 1 - total))
            if not chunk:
                return b"".join(chunks)
            total += len(chunk)
            if total > limit:
                raise OSError(errno.EFBIG, f"larger than {_human(limit)}", os.fspath(path))
            chunks.append(chunk)


def read_bounded_text(path: Path, limit: int = MAX_FILE_BYTES) -> str:
    """`read_bounded` decoded as UTF-8 (UnicodeDecodeError for anything else)."""
    return read_bounded(path, limit).decode("utf-8")


class GoResolver(Resolver):
    """YAML 1.1 scalars as sigs.k8s.io/yaml resolves them, minus the `=` "value" type Go's yaml never had."""


GoResolver.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:value"]
    for first, resolvers in Resolver.yaml_implicit_resolvers.items()
}
GoResolver.yaml_implicit_resolvers = {k: v for k, v in GoResolver.yaml_implicit_resolvers.items() if v}


class GoConstructor(SafeConstructor):
    """Unknown tags construct the plain value of their node (never an error, never code)."""

    def construct_undefined(self, node: Any) -> Any:
        if isinstance(node, yaml.MappingNode):
            return self.construct_yaml_map(node)
        if isinstance(node, yaml.SequenceNode):
            return self.construct_yaml_seq(node)
        return self.construct_scalar(node)


GoConstructor.add_constructor(None, GoConstructor.construct_undefined)  # type: ignore[type-var]
# `!!python/name:x` and other global tags PyYAML knows but Go does not: plain values too.
GoConstructor.add_multi_constructor("tag:yaml.org,2002:python/",
                                    lambda loader, _suffix, node: GoConstructor.construct_undefined(loader, node))


class BoundedComposer(Composer):
    """PyYAML's composer with a depth bound, anchors that may be redefined, and alias expansion counted."""

    if TYPE_CHECKING:  # the parser's, mixed in beside this class
        def check_event(self, *choices: Any) -> bool: ...
        def peek_event(self) -> Any: ...
        def get_event(self) -> Any: ...

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0
        self._aliases = 0
        self._nodes = 0

    def compose_document(self) -> Any:
        self._aliases = 0
        self._nodes = 0
        node = super().compose_document()
        if self._aliases:
            _check_expansion(node, self._nodes)
        return node

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            if event.anchor not in self.anchors:
                self.get_event()
                raise yaml.composer.ComposerError(None, None, f"found undefined alias {event.anchor!r}",
                                                  event.start_mark)
            self._aliases += 1
            self.get_event()
            return self.anchors[event.anchor]
        event = self.peek_event()
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self.anchors.pop(anchor, None)  # Go's yaml: a redefined anchor replaces the earlier one
        self._depth += 1
        self._nodes += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlLimitError(f"nesting deeper than {MAX_DEPTH} levels", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _check_expansion(root: Any, composed: int) -> None:
    """Count the nodes of the document as aliases expand it, without expanding it (sizes memoised per node)."""
    limit = max(ALIAS_FLOOR, ALIAS_EXPANSION * composed)
    size: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in size:
            continue
        children = (
            [c for kv in node.value for c in kv] if isinstance(node, yaml.MappingNode)
            else list(node.value) if isinstance(node, yaml.SequenceNode) else []
        )
        if not done:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in size)
            continue
        total = 1 + sum(size.get(id(c), 1) for c in children)
        if total > limit:
            raise YamlLimitError(f"aliases expand this document beyond {limit:,} nodes (an alias bomb)",
                                 root.start_mark)
        size[id(node)] = total


class GoLoader(BoundedComposer, _Parser, GoConstructor, GoResolver):
    """Go's reading of YAML, bounded (see the module docstring)."""

    def __init__(self, stream: str) -> None:
        _Parser.__init__(self, stream)
        BoundedComposer.__init__(self)
        GoConstructor.__init__(self)
        GoResolver.__init__(self)


def safe_load(text: str) -> Any:
    """The single document of `text` (None when empty), read as Go does and within the bounds."""
    loader = GoLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def safe_load_all(text: str) -> list[Any]:
    loader = GoLoader(text)
    out: list[Any] = []
    try:
        while loader.check_node():
            out.append(loader.construct_document(loader.get_node()))
    finally:
        loader.dispose()
    return out


# A line indented (spaces and sequence dashes) this far may nest deeper than MAX_DEPTH: block nesting needs
# indentation (or a dash) for every other level at least. Flow nesting is bounded by yaml-rs itself (~255).
DEEP_LINE = re.compile(rf"^[ \t-]{{{MAX_DEPTH // 2},}}", re.M)


def may_nest_deeply(text: str) -> bool:
    """Cheap test for the fast path: False means no block of `text` can nest deeper than MAX_DEPTH; True sends
    the text to the bounded loader, which decides."""
    return DEEP_LINE.search(text) is not None
