#!/usr/bin/env python3
"""Figures of the Go-built control plane: build (cold or warm, whatever the cache holds), start, stop.

  python benchmarks/controlplane_bench.py [--runs N]

Cold build figures need an empty tool cache (FLEETSTRAP_TOOL_CACHE=<empty dir>) and Go module/build caches;
a warm run measures what a developer or CI with a restored cache pays.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "generator")]

from fleetstrap.pins import pin  # noqa: E402
from support import cluster_tools  # noqa: E402
from support.controlplane import ControlPlane, FluxControllers  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    started = time.monotonic()
    bins, kwok, flux = cluster_tools.build_all(pin("flux_version"), with_flux=True)
    print(f"build (as cached now): {time.monotonic() - started:.1f}s")
    starts, flux_starts, stops = [], [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="cp-bench-") as tmp:
            plane = ControlPlane(Path(tmp), bins, kwok)
            t0 = time.monotonic()
            plane.start()
            starts.append(time.monotonic() - t0)
            try:
                plane.apply_files(flux.crd_files())
                t0 = time.monotonic()
                controllers = FluxControllers(plane, flux)
                controllers.start()
                flux_starts.append(time.monotonic() - t0)
            finally:
                t0 = time.monotonic()
                plane.stop()
                stops.append(time.monotonic() - t0)
    print(f"control plane start to Node Ready (median of {args.runs}): {statistics.median(starts):.1f}s")
    print(f"Flux controllers start (median): {statistics.median(flux_starts):.1f}s")
    print(f"stop of every process (median): {statistics.median(stops):.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
