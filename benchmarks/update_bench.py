"""Update time of a 50-service fleet: nothing changed, and every component changed (v1 -> v2).

    python benchmarks/update_bench.py [--services 50]

Uses a small template repo shaped like fleetstrap's (tests/update_support.py), so the figures measure
the update machinery (copier's 3-way merge per component, the scratch workspace, protection), not the
size of the real templates. Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fleetstrap.render import TemplateSource
from fleetstrap.update import UpdateRequest, check_updates, update_fleet
from update_support import V1, build_v2, commit_all, head, render_fleet, status, write_version


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleetstrap-update-bench-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ.setdefault("FLEETSTRAP_CACHE_DIR", str(tmp / "cache"))
        template = tmp / "templates"
        write_version(template, V1, "v1.0.0")
        write_version(template, build_v2(), "v2.0.0")
        root = tmp / "fleet"
        services = [f"svc{i:02d}" for i in range(args.services)]
        t0 = time.perf_counter()
        render_fleet(root, TemplateSource(str(template), "v1.0.0"), services)
        render_s = time.perf_counter() - t0
        # A realistic repo: a bot moved some tags, people edited some values.
        for i, s in enumerate(services):
            p = root / f"apps/dev/{s}/values.yaml"
            text = p.read_text().replace("tag: 0.1.0 #", f"tag: 0.1.{i + 1} #")
            if i % 5 == 0:
                text = text.replace("replicaCount: 1", "replicaCount: 3")
            p.write_text(text)
        commit_all(root, "bots and people")
        components = len(services) + 2

        t0 = time.perf_counter()
        check = check_updates(root, template=str(template))
        check_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        noop = update_fleet(UpdateRequest(root, template=str(template), to="v1.0.0", validate=False))
        noop_s = time.perf_counter() - t0
        assert not noop.files

        t0 = time.perf_counter()
        pretend = update_fleet(UpdateRequest(root, template=str(template), pretend=True, validate=False))
        pretend_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        full = update_fleet(UpdateRequest(root, template=str(template), commit=True, validate=False))
        full_s = time.perf_counter() - t0
        assert full.commit and not full.conflicts and status(root) == []

        after = head(root)
        t0 = time.perf_counter()
        again = update_fleet(UpdateRequest(root, template=str(template), commit=True, validate=False))
        again_s = time.perf_counter() - t0
        assert not again.files and head(root) == after

    print(f"fleet: {args.services} services, {components} components, cpus={os.cpu_count()}")
    print(f"render at v1 (setup):                 {render_s:7.2f} s")
    print(f"check-update ({sum(c.update_available for c in check.components)} pending):          {check_s:7.2f} s")
    print(f"update, nothing changed (to v1):      {noop_s:7.2f} s")
    print(f"update --pretend, all changed:        {pretend_s:7.2f} s  ({len(pretend.files)} files)")
    print(f"update --commit, all changed (v1->v2): {full_s:6.2f} s  ({len(full.files)} files, "
          f"{full_s / components:.2f} s/component)")
    print(f"update again, nothing changed:        {again_s:7.2f} s")


if __name__ == "__main__":
    main()
