"""Every kustomization root builds, and what it builds is schema-checked."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from fleetstrap.validate.context import Context, schema_check
from fleetstrap.validate.loader import load_text


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


def _first_error_line(stderr: str, root: Path) -> str:
    text = stderr.replace(str(root) + "/", "").replace(str(root), ".")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return "kustomize build failed"
    line = lines[0].removeprefix("error: ").removeprefix("Error: ")
    return line if len(line) <= 400 else line[:397] + "..."


def run_kustomize(ctx: Context) -> None:
    parsed = {d: _read(ctx.root, _kustomization_file(ctx.root, d)) for d in ctx.files.kustomize_roots}
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
            ctx.add("kustomize", "error", kfile, None, _first_error_line(proc.stderr, ctx.root))
            continue
        docs, problems = load_text(proc.stdout, kfile)
        for p in problems:
            ctx.add("kustomize", "error", kfile, None, f"built output: {p.message}")
        if ctx.options.enabled("schema"):
            schema_check(ctx, docs, attribute_to=kfile)


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
