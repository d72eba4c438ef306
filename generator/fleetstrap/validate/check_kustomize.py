"""Every kustomization root builds, and what it builds is schema-checked."""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

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
    try:
        data = yaml.safe_load((root / rel).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


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
    # Flux builds without load restrictions (values files from sibling dirs are common), so do we.
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
    try:
        lines = (root / kfile).read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for n, line in enumerate(lines, start=1):
        if line.strip().lstrip("- ").strip("'\"") == entry:
            return n
    return None


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
            if not rel.startswith("../") and (root / rel).is_file():
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
    try:
        return (root / rel).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def kustomizations(ctx: Context) -> dict[str, dict[str, Any]]:
    return {d: _read(ctx.root, _kustomization_file(ctx.root, d)) for d in ctx.files.kustomize_roots}


def run_kustomize(ctx: Context) -> None:
    parsed = kustomizations(ctx)
    patches = patch_files(ctx.root, parsed)
    refs = {d: _dir_refs(ctx.root, d, data) for d, data in parsed.items()}
    files = [(d, _kustomization_file(ctx.root, d)) for d, data in parsed.items() if data.get("kind") != "Component"]
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
            if _reaches(rel_dir, failed, refs):
                continue  # the broken kustomization it includes is reported already
            err = parse_build_error(proc.stderr, ctx.root, rel_dir, kfile)
            if any(f.check == "yaml" and f.file == err.file for f in ctx.findings):
                continue  # the YAML check already reports this file's syntax error, with our own line
            ctx.findings.append(Finding("kustomize", "error", err.file, err.line, "", err.field, err.reason))
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
