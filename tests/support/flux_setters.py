"""Flux's own Setters code as a command: image-automation-controller's `update.UpdateWithSetters`, the function
the ImageUpdateAutomation runs on its git checkout, built from the controller's Go module at the version the
pinned Flux release distributes.

The package is internal to the controller's module, so the small main below (fleetstrap's own) is added to a
writable copy of the module as `cmd/fleetstrap-setters` and built there; the controller's code is not changed.

    python tests/support/flux_setters.py   # build (cached under the tool cache, keyed by version; .ci/run)

Usage of the binary: `fleetstrap-setters DIR POLICIES_JSON` with POLICIES_JSON a list of
{"namespace", "name", "image", "tag"} (each ImagePolicy's status.latestRef); DIR is updated in place and the
changed files are printed, one per line.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / "generator"))

from support.cluster_tools import FLUX_MODULE, BuildError, build_with_substitutes, module_dir, run_go
from support.tools import build_lock, cache_key, tool_dir

MODULE = "github.com/fluxcd/image-automation-controller"
MAIN = """\
// fleetstrap-setters: run image-automation-controller's Setters update on a directory (fleetstrap's tests).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	reflectorv1 "github.com/fluxcd/image-reflector-controller/api/v1"
	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fluxcd/image-automation-controller/internal/update"
)

type policy struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Image     string `json:"image"`
	Tag       string `json:"tag"`
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: fleetstrap-setters DIR POLICIES_JSON")
		os.Exit(2)
	}
	var in []policy
	if err := json.Unmarshal([]byte(os.Args[2]), &in); err != nil {
		fmt.Fprintln(os.Stderr, "policies:", err)
		os.Exit(2)
	}
	policies := make([]reflectorv1.ImagePolicy, 0, len(in))
	for _, p := range in {
		policies = append(policies, reflectorv1.ImagePolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name},
			Status: reflectorv1.ImagePolicyStatus{
				LatestRef: &reflectorv1.ImageRef{Name: p.Image, Tag: p.Tag},
			},
		})
	}
	result, err := update.UpdateWithSetters(logr.Discard(), os.Args[1], os.Args[1], policies)
	if err != nil {
		fmt.Fprintln(os.Stderr, "update:", err)
		os.Exit(1)
	}
	files := make([]string, 0, len(result.FileChanges))
	for file := range result.FileChanges {
		files = append(files, file)
	}
	sort.Strings(files)
	for _, file := range files {
		fmt.Println(file)
	}
}
"""


def controller_version(flux_version: str) -> str:
    """image-automation-controller's version in the flux2 release (manifests/bases)."""
    bases = module_dir(FLUX_MODULE, f"v{flux_version.lstrip('v')}") / "manifests" / "bases"
    text = (bases / "image-automation-controller" / "kustomization.yaml").read_text(encoding="utf-8")
    found = re.search(r"fluxcd/image-automation-controller/releases/download/(v[\w.\-]+)/", text)
    if found is None:
        raise BuildError(f"flux2 v{flux_version} names no image-automation-controller release")
    return found.group(1)


def build_flux_setters(flux_version: str) -> Path:
    version = controller_version(flux_version)
    home = tool_dir("flux-setters", cache_key(version, hashlib.sha256(MAIN.encode()).hexdigest()[:12]))
    binary = home / "fleetstrap-setters"
    if binary.is_file():
        return binary
    with build_lock("flux-setters"):
        if binary.is_file():
            return binary
        src = home / "src"
        shutil.rmtree(src, ignore_errors=True)
        shutil.copytree(module_dir(MODULE, version), src)
        for path in [src, *src.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)  # the module cache is read-only
        run_go(["mod", "edit", f"-dropreplace={MODULE}/api", f"-require={MODULE}/api@{version}"], src)
        (src / "cmd" / "fleetstrap-setters").mkdir(parents=True)
        (src / "cmd" / "fleetstrap-setters" / "main.go").write_text(MAIN, encoding="utf-8")
        build_with_substitutes(["build", "-mod=mod", "-trimpath", "-ldflags", "-s -w", "-o",
                                str(home / "fleetstrap-setters.tmp"), "./cmd/fleetstrap-setters"], src,
                               home / "substitutions.txt")
        (home / "fleetstrap-setters.tmp").rename(binary)
        shutil.rmtree(src, ignore_errors=True)
    return binary


def run_setters(binary: Path, directory: Path, policies: list[dict[str, str]]) -> list[str]:
    """Run the Setters update on `directory` in place; the files it changed."""
    done = subprocess.run([str(binary), str(directory), json.dumps(policies)], capture_output=True, text=True,
                          check=False, timeout=120)
    if done.returncode != 0:
        raise BuildError(f"fleetstrap-setters failed: {done.stderr.strip()[-2000:]}")
    return done.stdout.split()


if __name__ == "__main__":
    from fleetstrap.pins import pin

    print(build_flux_setters(pin("flux_version")))
