"""The Kyverno CLI (`kubectl-kyverno`), built once from its Go module and cached (tests/support/tools.py).

The version is the `kyverno_version` pin, the release whose chart (`kyverno_chart_version`) the generated fleets
install, so the suite judges the generated policies with the engine the clusters run. Kyverno's go.mod carries a
`replace` (k8s.io/pod-security-admission => its fork), which `go install module@version` refuses; the build
therefore goes through a throwaway wrapper module that repeats Kyverno's own requirements, replace and go.sum, so
every dependency is at exactly the version Kyverno's release builds with.

`.ci/run` prebuilds it: `python tests/support/kyverno.py` (prints the binary's path). Cold: many CPU minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

if __package__ in (None, ""):  # run as a script by .ci/run
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.support.tools import build_lock, cache_key, require_command, tool_dir
else:
    from .tools import build_lock, cache_key, require_command, tool_dir

PINS = Path(__file__).resolve().parents[2] / "templates" / "pins.yml"
MODULE = "github.com/kyverno/kyverno"
CLI_PACKAGE = f"{MODULE}/cmd/cli/kubectl-kyverno"


class KyvernoBuildError(Exception):
    pass


def kyverno_version() -> str:
    return str(yaml.safe_load(PINS.read_text(encoding="utf-8"))["pins"]["default"]["kyverno_version"])


def _go(go: str, args: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run([go, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise KyvernoBuildError(f"go {' '.join(args[:2])} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def _wrapper_module(go: str, version: str, work: Path, env: dict[str, str]) -> None:
    """A main module requiring Kyverno with Kyverno's own requirements, replaces and checksums."""
    info = json.loads(_go(go, ["mod", "download", "-json", f"{MODULE}@{version}"], work, env))
    source = Path(info["Dir"])
    mod = json.loads(_go(go, ["mod", "edit", "-json", str(source / "go.mod")], work, env))
    lines = ["module fleetstrap.invalid/kyverno-cli", "", f"go {mod['Go']}", "", "require (",
             f"\t{MODULE} {version}"]
    lines += [f"\t{r['Path']} {r['Version']}" for r in mod.get("Require") or []]
    lines += [")", ""]
    for rep in mod.get("Replace") or []:
        old, new = rep["Old"], rep["New"]
        lhs = old["Path"] + (f" {old['Version']}" if old.get("Version") else "")
        rhs = new["Path"] + (f" {new['Version']}" if new.get("Version") else "")
        lines.append(f"replace {lhs} => {rhs}")
    (work / "go.mod").write_text("\n".join(lines) + "\n", encoding="utf-8")
    shutil.copyfile(source / "go.sum", work / "go.sum")
    (work / "go.sum").chmod(0o644)


def build_kyverno(go: str, log: bool = False) -> Path:
    """`kubectl-kyverno` of the pinned release in the tool cache, built once per version; returns the binary."""
    version = kyverno_version()
    root = tool_dir("kyverno-cli", cache_key(version))
    binary = root / "kyverno"
    if binary.is_file():
        return binary
    with build_lock(f"kyverno-cli-{version}"):
        if binary.is_file():  # built by another process while this one waited
            return binary
        if log:
            print(f"building {CLI_PACKAGE}@{version} (cold: many CPU minutes)", file=sys.stderr, flush=True)
        env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=mod", GOWORK="off")
        with tempfile.TemporaryDirectory(prefix="kyverno-cli-") as tmp:
            work = Path(tmp)
            _wrapper_module(go, version, work, env)
            partial = root / "kyverno.partial"
            ldflags = f"-s -w -X {MODULE}/pkg/version.BuildVersion={version}"
            _go(go, ["build", "-trimpath", "-ldflags", ldflags, "-o", str(partial), CLI_PACKAGE], work, env)
        partial.replace(binary)  # last: the binary's presence means a complete build
    return binary


def kyverno_cli() -> Path:
    """The cached Kyverno CLI; skips (fails in CI) when go is not installed."""
    return build_kyverno(require_command("go", "needed to build the Kyverno CLI from its Go module"))


if __name__ == "__main__":
    exe = shutil.which("go")
    if exe is None:  # the policy tests then skip (or fail in CI) with the reason
        print("go is not installed: the Kyverno CLI is not built", file=sys.stderr)
        sys.exit(0)
    try:
        print(build_kyverno(exe, log=True))
    except KyvernoBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
