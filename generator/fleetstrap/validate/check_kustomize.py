"""Every kustomization root builds, and what it builds is schema-checked."""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleetstrap.boundedyaml import safe_load, safe_load_all
from fleetstrap.validate.confine import inside, is_remote, read_repo_text
from fleetstrap.validate.context import Context, schema_check
from fleetstrap.validate.loader import line_of, load_text
from fleetstrap.validate.model import Finding


def find_kustomize() -> list[str] | None:
    """`kustomize build` when installed, else `kubectl kustomize` (PATH or next to this Python)."""
    if exe := shutil.which("kustomize"):
        return [exe, "build"]
    exe = shutil.which("kubectl")
    if exe is None:
        candidate = Path(sys.executable).parent / "kubectl"
        exe = str(candidate) if candidate.is_file() else None
    return [exe, "kustomize"] if exe else None


def _kustomization_file(root: Path, rel_dir: str) -> str:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        rel = f"{rel_dir}/{name}" if rel_dir else name
        if (root / rel).is_file():
            return rel
    return f"{rel_dir}/kustomization.yaml" if rel_dir else "kustomization.yaml"


def _read(root: Path, rel: str) -> dict[str, Any]:
    return _read_checked(root, rel) or {}


def _read_checked(root: Path, rel: str) -> dict[str, Any] | None:
    """The kustomization's mapping ({} when there is none), or None when it exists but cannot be read."""
    if not os.path.lexists(root / rel):
        return {}
    text = read_repo_text(root, rel)
    try:
        data = safe_load(text) if text is not None else None
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _dir_refs(root: Path, rel_dir: str, data: dict[str, Any]) -> set[str]:
    """Directories this kustomization pulls in (resources, components, bases), relative to the repo."""
    out: set[str] = set()
    for key in ("resources", "components", "bases"):
        for entry in data.get(key) or []:
            if not isinstance(entry, str) or "://" in entry:
                continue
            target = (root / rel_dir / entry).resolve()
            if target.is_dir() and target.is_relative_to(root.resolve()):
                rel = target.relative_to(root.resolve()).as_posix()
                out.add("" if rel == "." else rel)
    return out


def _build(cmd: list[str], root: Path, rel_dir: str) -> subprocess.CompletedProcess[str]:
    # Flux builds without load restrictions (values files from sibling dirs are common), so do we; the
    # Confinement check above has already kept every path inside the repo (Flux's secure file system).
    return subprocess.run(
        [*cmd, "--load-restrictor", "LoadRestrictionsNone", str(root / rel_dir) if rel_dir else str(root)],
        capture_output=True, text=True, check=False, timeout=120,
    )


# klog's structured line (kubectl run.go): `E1130 05:22:58.520710   10680 run.go:72] "command failed" err=<`,
# then the message indented by a tab and a closing ` >`; or the single-line form `err="quoted"`.
_KLOG = re.compile(r'^[EWIF]\d{4} [\d:.]+\s+\d+ [\w.-]+:\d+\] "[^"]*"(?: err=(?P<rest>.*))?$')
_MISSING = re.compile(r"accumulating resources from '(?P<entry>[^']+)': (?:open |evalsymlink failure on ')?"
                      r"(?P<path>[^':]+)'?\s*:?\s*(?:lstat [^:]+: )?no such file or directory")
_NOT_DIR = re.compile(r"must build at directory: (?:not a valid directory: )?.*?'(?P<path>[^']+)'")
_YAML_IN_FILE = re.compile(r"(?:MalformedYAMLError: )?yaml: line (?P<line>\d+): (?P<why>.*?) in File: (?P<file>\S+)")
_INVALID_KUSTOMIZATION = re.compile(r"invalid Kustomization: (?:yaml: )?(?:line (?P<line>\d+): )?(?P<why>.*)")
_SMP_NO_TARGET = re.compile(r'no resource matches strategic merge patch "(?P<id>[^"]+)"')
_NO_TARGET = re.compile(r"no matches for (?:Id |OriginalId )?(?P<id>\S+)")
_UNKNOWN_FIELD = re.compile(r"json: unknown field \"(?P<field>[^\"]+)\"")


@dataclass(frozen=True)
class BuildError:
    """What kustomize said, as a person needs it: which file, which field, which line, and why."""

    file: str
    line: int | None
    field: str
    reason: str


def kustomize_message(stderr: str) -> str:
    """The error text of any kubectl/kustomize stderr format, klog prefixes and `error:` removed."""
    lines = stderr.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _KLOG.match(lines[i].strip())
        if not m:
            if lines[i].strip():
                out.append(lines[i].strip())
            i += 1
            continue
        rest = (m.group("rest") or "").strip()
        i += 1
        if rest == "<":
            while i < len(lines) and lines[i].strip() != ">":
                out.append(lines[i].strip())
                i += 1
            i += 1
        elif rest.startswith('"'):
            try:
                out.append(json.loads(rest))
            except ValueError:
                out.append(rest.strip('"'))
        elif rest:
            out.append(rest)
    text = " ".join(out).strip()
    for prefix in ("error: ", "Error: "):
        text = text.removeprefix(prefix)
    return text


def _id_label(kid: str) -> str:
    """`Deployment.v1.apps/web.[noNs]` → `Deployment web`."""
    kind_part, _, rest = kid.partition("/")
    name, _, ns = rest.partition(".")
    ns = ns.strip("[]")
    where = f"{ns}/{name}" if ns and ns != "noNs" else name
    return f"{kind_part.split('.', 1)[0]} {where}"


def parse_build_error(stderr: str, root: Path, rel_dir: str, kfile: str) -> BuildError:
    text = kustomize_message(stderr).replace(str(root) + "/", "").replace(str(root), ".")
    if not text:
        return BuildError(kfile, None, "", "kustomize build failed")
    if m := _MISSING.search(text):
        return BuildError(kfile, _entry_line(root, kfile, m.group("entry")), "resources",
                          f"resource {m.group('entry')!r} does not exist")
    if m := _YAML_IN_FILE.search(text):
        name = m.group("file")
        rel = posixpath.normpath(posixpath.join(rel_dir, name)) if rel_dir else name
        target = rel if (root / rel).is_file() else kfile
        return BuildError(target, int(m.group("line")) if target == rel else None, "",
                          f"YAML does not parse: {m.group('why')}")
    if m := _INVALID_KUSTOMIZATION.search(text):
        line = m.group("line")
        return BuildError(kfile, int(line) if line else None, "", f"invalid kustomization: {m.group('why')}")
    if m := (_SMP_NO_TARGET.search(text) or _NO_TARGET.search(text)):
        return BuildError(kfile, None, "patches",
                          f"a patch targets {_id_label(m.group('id'))}, which no resource of this kustomization has")
    if m := _UNKNOWN_FIELD.search(text):
        return BuildError(kfile, None, m.group("field"), f"unknown field {m.group('field')!r} in the kustomization")
    if m := _NOT_DIR.search(text):
        return BuildError(kfile, None, "resources", f"{m.group('path')!r} is neither a file nor a kustomization")
    # Unknown shape: kustomize's innermost reason (after the last "accumulation" wrapper), whole.
    reason = re.split(r"(?:^|: )accumulating resources: ", text)[-1]
    return BuildError(kfile, None, "", reason if len(reason) <= 600 else reason[:597] + "...")


def _entry_line(root: Path, kfile: str, entry: str) -> int | None:
    lines = (read_repo_text(root, kfile) or "").splitlines()
    for n, line in enumerate(lines, start=1):
        if line.strip().lstrip("- ").strip("'\"") == entry:
            return n
    return None


# --- confinement -----------------------------------------------------------------------------------------
# kustomize runs with LoadRestrictionsNone (as Flux's kustomize-controller does: values and patches from sibling
# directories are common), and Flux confines it to the source root with a secure file system instead. The same
# confinement here: before a kustomization is built, every path it (and every kustomization it pulls in) names
# must resolve, symlinks followed, inside the repo, and a remote base is fetched only when the user opts in.
# A kustomization that fails this is not built at all, so kustomize never opens or fetches anything else.

_PATH_LISTS = ("resources", "bases", "components", "crds", "configurations", "generators", "transformers",
               "validators", "patchesStrategicMerge")
_DIR_LISTS = frozenset({"resources", "bases", "components", "generators", "transformers", "validators"})
_PLUGIN_LISTS = frozenset({"generators", "transformers", "validators"})
# Fields of built-in generator/transformer configs that name files.
_PLUGIN_KEYS = ("path", "files", "envs", "env", "valuesFile", "additionalValuesFiles", "chartHome", "configHome")
_KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


@dataclass(frozen=True)
class Refusal:
    file: str  # the kustomization (or plugin config) that names the entry
    entry: str
    remote: bool
    unreadable: bool = False  # the kustomization itself does not parse: what it names is unknown


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _path_entries(data: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(field, entry) for every path-like entry of a kustomization."""
    for key in _PATH_LISTS:
        for e in _as_list(data.get(key)):
            if isinstance(e, str):
                yield key, e
    for key in ("patches", "patchesJson6902", "replacements"):
        for e in _as_list(data.get(key)):
            if isinstance(e, dict) and isinstance(e.get("path"), str):
                yield key, e["path"]
    yield from _generator_entries(data)
    openapi = data.get("openapi")
    if isinstance(openapi, dict) and isinstance(openapi.get("path"), str):
        yield "openapi", openapi["path"]
    yield from _helm_entries(data)


def _helm_entries(data: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for chart in _as_list(data.get("helmCharts")):
        if isinstance(chart, dict):
            for f in [chart.get("valuesFile"), *_as_list(chart.get("additionalValuesFiles"))]:
                if isinstance(f, str):
                    yield "helmCharts", f
    helm_globals = data.get("helmGlobals")
    if isinstance(helm_globals, dict):
        for key in ("chartHome", "configHome"):
            if isinstance(helm_globals.get(key), str):
                yield "helmGlobals", helm_globals[key]


def _generator_entries(data: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for key in ("configMapGenerator", "secretGenerator"):
        for gen in _as_list(data.get(key)):
            if not isinstance(gen, dict):
                continue
            for f in _as_list(gen.get("files")):
                if isinstance(f, str):
                    yield key, f.split("=", 1)[1] if "=" in f else f
            for f in [*_as_list(gen.get("envs")), gen.get("env")]:
                if isinstance(f, str):
                    yield key, f


def _plugin_paths(docs: list[Any]) -> Iterator[str]:
    stack = list(docs)
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _PLUGIN_KEYS:
                    for v in value if isinstance(value, list) else [value]:
                        if isinstance(v, str) and "\n" not in v:
                            yield v.split("=", 1)[1] if key == "files" and "=" in v else v
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)


class Confinement:
    """Which kustomization directories name something outside the repo or remote (memoised per directory)."""

    def __init__(self, root: Path, allow_remote: bool) -> None:
        self.root = root
        self.allow_remote = allow_remote
        self._own: dict[str, tuple[list[Refusal], set[str]]] = {}

    def refusals(self, rel_dir: str) -> list[Refusal]:
        """Every refusal in `rel_dir` and the kustomizations it pulls in."""
        out: list[Refusal] = []
        seen: set[str] = set()
        todo = [rel_dir]
        while todo:
            d = todo.pop()
            if d in seen:
                continue
            seen.add(d)
            own, dirs = self._check(d)
            out.extend(own)
            todo.extend(dirs)
        return out

    def _check(self, rel_dir: str) -> tuple[list[Refusal], set[str]]:
        if rel_dir not in self._own:
            self._own[rel_dir] = self._check_dir(rel_dir)
        return self._own[rel_dir]

    def _check_dir(self, rel_dir: str) -> tuple[list[Refusal], set[str]]:
        refusals: list[Refusal] = []
        dirs: set[str] = set()
        kfile = _kustomization_file(self.root, rel_dir)
        for name in _KUSTOMIZATION_NAMES:
            path = self.root / rel_dir / name
            if os.path.lexists(path) and not inside(self.root, path):
                return [Refusal(posixpath.join(rel_dir, name) if rel_dir else name, name, False)], dirs
        data = _read_checked(self.root, kfile)
        if data is None:
            return [Refusal(kfile, "", False, unreadable=True)], dirs
        for field, entry in _path_entries(data):
            refusals.extend(self._entry(rel_dir, kfile, field, entry, dirs))
        return refusals, dirs

    def _entry(self, rel_dir: str, kfile: str, field: str, entry: str, dirs: set[str]) -> list[Refusal]:
        entry = entry.strip()
        if not entry:
            return []
        if "\n" in entry:  # an inline patch or plugin config
            return self._plugin(rel_dir, kfile, entry, dirs) if field in _PLUGIN_LISTS else []
        rel = posixpath.normpath(posixpath.join(rel_dir, entry)) if rel_dir else posixpath.normpath(entry)
        local = self.root / rel
        exists = not entry.startswith("/") and not rel.startswith("../") and rel != ".." and os.path.lexists(local)
        if not exists:
            if is_remote(entry):
                return [] if self.allow_remote else [Refusal(kfile, entry, True)]
            if entry.startswith("/") or rel == ".." or rel.startswith("../"):
                return [Refusal(kfile, entry, False)]
            return []  # missing: kustomize says so (and reads nothing)
        if not inside(self.root, local):
            return [Refusal(kfile, entry, False)]
        if local.is_dir():
            if field in _DIR_LISTS:
                target = local.resolve().relative_to(self.root).as_posix()
                dirs.add("" if target == "." else target)
            return []
        if field in _PLUGIN_LISTS:
            return self._plugin(rel_dir, kfile, read_repo_text(self.root, rel) or "", dirs)
        return []

    def _plugin(self, rel_dir: str, kfile: str, text: str, dirs: set[str]) -> list[Refusal]:
        """The files a generator/transformer config names are read by kustomize too."""
        try:
            docs = safe_load_all(text)
        except yaml.YAMLError:
            return []
        return [r for p in _plugin_paths(docs) for r in self._entry(rel_dir, kfile, "", p, dirs)]


def _confined(ctx: Context, files: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The kustomizations that may be built; the refusals of the others become findings."""
    confinement = Confinement(ctx.root, ctx.options.remote_bases and not ctx.options.offline)
    allowed = []
    for rel_dir, kfile in files:
        refusals = confinement.refusals(rel_dir)
        for refusal in refusals:
            finding = refusal_finding(ctx, refusal)
            if refusal.unreadable and any(f.check == "yaml" and f.file == refusal.file for f in ctx.findings):
                continue  # the YAML check already reports this file's syntax error, with its line
            if finding not in ctx.findings:
                ctx.findings.append(finding)
        if not refusals:
            allowed.append((rel_dir, kfile))
    return allowed


def refusal_finding(ctx: Context, refusal: Refusal) -> Finding:
    if refusal.unreadable:
        return Finding("kustomize", "error", refusal.file, None, "", "",
                       "the kustomization does not parse; not built")
    line = _entry_line(ctx.root, refusal.file, refusal.entry)
    if refusal.remote:
        why = ("--offline never fetches" if ctx.options.offline
               else "remote bases are fetched only with --allow-remote-bases")
        return Finding("kustomize", "warning", refusal.file, line, "", "resources",
                       f"remote base {refusal.entry!r} not fetched ({why}); this kustomization is not built "
                       "or checked")
    return Finding("kustomize", "error", refusal.file, line, "", "",
                   f"{refusal.entry!r} resolves outside the repository; not read (Flux refuses it too), and this "
                   "kustomization is not built")


# --- patches ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PatchFile:
    file: str  # repo-relative
    target: dict[str, Any]  # `target:` selector of a `patches` entry ({} for strategic merge patches)


def patch_files(root: Path, kustomizations: dict[str, dict[str, Any]]) -> dict[str, list[PatchFile]]:
    """Kustomization dir → the patch files it applies (`patches`, `patchesStrategicMerge`, `patchesJson6902`).
    A patch is a fragment, not an object: it is checked through the build output it changes."""
    out: dict[str, list[PatchFile]] = {}
    for rel_dir, data in kustomizations.items():
        found: list[PatchFile] = []
        listed = [*(data.get("patches") or []), *(data.get("patchesJson6902") or [])]
        entries: list[tuple[Any, Any]] = [(e.get("path"), e.get("target") or {}) for e in listed
                                          if isinstance(e, dict)]
        entries.extend((e, {}) for e in data.get("patchesStrategicMerge") or [])
        for path, target in entries:
            if not isinstance(path, str) or "\n" in path or not path.endswith((".yaml", ".yml", ".json")):
                continue
            rel = posixpath.normpath(posixpath.join(rel_dir, path)) if rel_dir else posixpath.normpath(path)
            if not rel.startswith("../") and inside(root, root / rel) and (root / rel).is_file():
                found.append(PatchFile(rel, target if isinstance(target, dict) else {}))
        if found:
            out[rel_dir] = found
    return out


def _patch_line(ctx: Context, patch: PatchFile, data: dict[str, Any], path: list[str | int]) -> int | None:
    """The line in a patch file that sets (a prefix of) `path` of the built object, or None when this
    patch does not touch it."""
    docs, _ = load_text(_read_text(ctx.root, patch.file), patch.file)
    kind = data.get("kind")
    name = (data.get("metadata") or {}).get("name") if isinstance(data.get("metadata"), dict) else None
    for doc in docs:
        if isinstance(doc.data, list):  # JSON 6902: [{op, path, value}]
            if patch.target.get("kind") not in (None, kind) or patch.target.get("name") not in (None, name):
                continue
            pointer = "/" + "/".join(str(p) for p in path)
            for i, op in enumerate(doc.data):
                if isinstance(op, dict) and isinstance(op.get("path"), str) and len(op["path"]) > 1 \
                        and (pointer + "/").startswith(op["path"].rstrip("/") + "/"):
                    return line_of(doc, [i, "path"])
            continue
        if not isinstance(doc.data, dict) or doc.data.get("kind") not in (None, kind):
            continue
        meta: dict[str, Any] = doc.data["metadata"] if isinstance(doc.data.get("metadata"), dict) else {}
        if meta.get("name") not in (None, name) and not patch.target:
            continue
        depth = _depth(doc.data, path)
        if depth >= 2 or (depth >= 1 and len(path) == 1):
            return line_of(doc, path[:depth])
    return None


def _depth(data: Any, path: list[str | int]) -> int:
    n = 0
    for part in path:
        found = (isinstance(data, dict) and part in data) or (
            isinstance(data, list) and isinstance(part, int) and part < len(data))
        if not found:
            break
        data = data[part]
        n += 1
    return n


def _read_text(root: Path, rel: str) -> str:
    return read_repo_text(root, rel) or ""


def kustomizations(ctx: Context) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for d in ctx.files.kustomize_roots:
        kfile = _kustomization_file(ctx.root, d)
        data = _read_checked(ctx.root, kfile)
        # A kustomization that does not parse is one error; the patch files it names are still fragments
        # (checking them as whole objects would report that one error again, as knock-on findings).
        out[d] = data if data is not None else _patches_of_unreadable(read_repo_text(ctx.root, kfile) or "")
    return out


_PATH_LINE = re.compile(r"^\s*(?:-\s+)?path:\s*[\"']?(?P<path>[^\"'\s#]+)", re.M)
_ITEM_LINE = re.compile(r"^\s*-\s+[\"']?(?P<path>[^\"'\s#]+\.(?:ya?ml|json))[\"']?\s*$")


def _patches_of_unreadable(text: str) -> dict[str, Any]:
    """The patch files a kustomization that does not parse names, read line by line (`path:` entries and the
    items of `patchesStrategicMerge`): only so that they are not judged as whole objects."""
    patches: list[dict[str, Any]] = [{"path": m.group("path")} for m in _PATH_LINE.finditer(text)]
    in_smp = False
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith("-"):
            in_smp = line.startswith("patchesStrategicMerge:")
        elif in_smp and (m := _ITEM_LINE.match(line)):
            patches.append({"path": m.group("path")})
    return {"patches": patches}  # never built: Confinement refuses a kustomization that does not parse


def run_kustomize(ctx: Context) -> None:
    parsed = kustomizations(ctx)
    patches = patch_files(ctx.root, parsed)
    refs = {d: _dir_refs(ctx.root, d, data) for d, data in parsed.items()}
    files = [(d, _kustomization_file(ctx.root, d)) for d, data in parsed.items() if data.get("kind") != "Component"]
    if not files:
        return
    files = _confined(ctx, files)
    if not files:
        return
    cmd = find_kustomize()
    if cmd is None:
        ctx.note("kustomize: skipped (neither kustomize nor kubectl is installed)")
        return
    # Deepest roots first, so an error is reported where it is introduced rather than in every parent.
    files.sort(key=lambda pair: (-pair[0].count("/") - (1 if pair[0] else 0), pair[0]))
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        results = list(pool.map(lambda pair: _build(cmd, ctx.root, pair[0]), files))
    failed = {d for (d, _), proc in zip(files, results, strict=True) if proc.returncode != 0}
    for (rel_dir, kfile), proc in zip(files, results, strict=True):
        if proc.returncode != 0:
            if not _reaches(rel_dir, failed, refs) and not _lists_broken_yaml(ctx, parsed, refs, rel_dir):
                _report_failure(ctx, proc.stderr, rel_dir, kfile)
            continue
        docs, problems = load_text(proc.stdout, kfile)
        for p in problems:
            ctx.add("kustomize", "error", kfile, None, f"built output: {p.message}")
        if ctx.options.enabled("schema"):
            mine = patches.get(rel_dir, [])

            def locate(data: dict[str, Any], path: list[str | int],
                       mine: list[PatchFile] = mine) -> tuple[str, int] | None:
                for patch in mine:
                    line = _patch_line(ctx, patch, data, path)
                    if line is not None:
                        return patch.file, line
                return None

            schema_check(ctx, docs, attribute_to=kfile, locate=locate if mine else None)


def _lists_broken_yaml(ctx: Context, parsed: dict[str, dict[str, Any]], refs: dict[str, set[str]],
                       rel_dir: str) -> bool:
    """Whether this kustomization (or one it pulls in) lists a file the YAML check already reports: kustomize
    then fails on it too, without naming it (one true error, not two)."""
    broken = {f.file for f in ctx.findings if f.check == "yaml" and f.severity == "error"}
    if not broken:
        return False
    dirs, todo = set(), [rel_dir]
    while todo:
        d = todo.pop()
        if d not in dirs:
            dirs.add(d)
            todo.extend(refs.get(d, ()))
    for d in dirs:
        for field, entry in _path_entries(parsed.get(d, {})):
            if field in ("resources", "bases", "components", "crds") and "\n" not in entry:
                rel = posixpath.normpath(posixpath.join(d, entry)) if d else posixpath.normpath(entry)
                if rel in broken:
                    return True
    return False


def _report_failure(ctx: Context, stderr: str, rel_dir: str, kfile: str) -> None:
    err = parse_build_error(stderr, ctx.root, rel_dir, kfile)
    text = kustomize_message(stderr)
    if any(f.check == "yaml" and f.severity == "error" and (f.file == err.file or f"/{f.file}" in text)
           for f in ctx.findings):
        return  # the YAML check already reports the file kustomize failed on, with our own line
    ctx.findings.append(Finding("kustomize", "error", err.file, err.line, "", err.field, err.reason))


def _reaches(start: str, failed: set[str], refs: dict[str, set[str]]) -> bool:
    seen: set[str] = set()
    todo = list(refs.get(start, ()))
    while todo:
        d = todo.pop()
        if d in seen:
            continue
        seen.add(d)
        if d in failed:
            return True
        todo.extend(refs.get(d, ()))
    return False
