"""How long promote / rollback take to read a service's history: a multi-env fleet whose dev values file has N
releases committed the way the release workflow commits them (plus unrelated commits in between).

    python benchmarks/deploy_bench.py [--releases 1000]

Prints figures (reading the state, the promotion and rollback plans, a dry-run promote through the CLI);
asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fleetstrap.cli import run
from fleetstrap.deploy import build_promotion, build_rollback
from fleetstrap.deploy.state import read_service_state
from support.deploy import SERVICE, fleet_repo, git, rendered


def _fast_import_releases(root: Path, releases: int) -> None:
    """N release commits (`hello: deploy 0.0.N to dev`) and N unrelated ones, written with git fast-import."""
    values = (root / "apps" / "dev" / SERVICE / "values.yaml").read_text()
    head = git(root, "rev-parse", "HEAD")
    lines = []
    for i in range(1, releases + 1):
        text = values.replace("tag: 0.1.0", f"tag: 0.0.{i}", 1).encode()
        msg = f"{SERVICE}: deploy 0.0.{i} to dev".encode()
        lines.append(b"commit refs/heads/main\ncommitter bot <bot@example.com> %d +0000\ndata %d\n%s\n" % (
            1_700_000_000 + 2 * i, len(msg), msg))
        if i == 1:
            lines.append(b"from %s\n" % head.encode())
        lines.append(b"M 100644 inline apps/dev/%s/values.yaml\ndata %d\n%s\n" % (SERVICE.encode(), len(text), text))
        note = f"docs {i}\n".encode()
        other = b"unrelated %d" % i
        lines.append(b"commit refs/heads/main\ncommitter dev <dev@example.com> %d +0000\ndata %d\n%s\n" % (
            1_700_000_001 + 2 * i, len(other), other))
        lines.append(b"M 100644 inline NOTES.md\ndata %d\n%s\n" % (len(note), note))
    subprocess.run(["git", "-C", str(root), "fast-import", "--quiet"], input=b"".join(lines), check=True)
    git(root, "reset", "-q", "--hard", "main")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--releases", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleetstrap-deploy-bench-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ.setdefault("FLEETSTRAP_CACHE_DIR", str(tmp / "cache"))
        root = fleet_repo(rendered("flux", "monorepo", False), tmp / "fleet")
        _fast_import_releases(root, args.releases)
        t0 = time.perf_counter()
        state = read_service_state(root, SERVICE)
        read_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        build_promotion(state, "staging")
        build_rollback(state, "dev")
        plan_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        code = run(["-q", "promote", SERVICE, "--to", "staging", "--dry-run", "-C", str(root)])
        cli_s = time.perf_counter() - t0
        dev = state.env("dev")
        print(f"history: {args.releases} releases in dev ({len(dev.deployments)} distinct tags), "
              f"{2 * args.releases} commits")
        print(f"read_service_state: {read_s:.2f}s")
        print(f"build_promotion + build_rollback: {plan_s * 1000:.1f}ms")
        print(f"promote --dry-run (CLI, exit {code}): {cli_s:.2f}s")


if __name__ == "__main__":
    main()
