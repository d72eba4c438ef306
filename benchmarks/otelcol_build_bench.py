"""Cold and warm build time of the test collector (scripts/build_otelcol.py), and its size.

Run: python benchmarks/otelcol_build_bench.py [--keep DIR]
Cold: empty Go module cache, Go build cache and tool cache (a fresh CI machine: every module downloaded from the
proxy, every package compiled). Warm: the same caches again (the cached binary is found). Also prints the binary
size and how long one `validate` of a small config takes. Figures depend on the machine's load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build(env: dict[str, str]) -> tuple[float, Path]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_otelcol.py")], env=env,
                          capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"build failed:\n{proc.stderr}")
    return seconds, Path(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", type=Path, default=None, help="keep the caches in this directory")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="otelcol-bench-"))
    env = dict(os.environ, GOMODCACHE=str(base / "gomod"), GOCACHE=str(base / "gocache"),
               FLEETSTRAP_TOOL_CACHE=str(base / "tools"), GOFLAGS="-modcacherw")
    try:
        cold, binary = build(env)
        warm, again = build(env)
        assert again == binary
        size = binary.stat().st_size
        config = base / "gateway.yaml"
        config.write_text(
            "receivers: {otlp: {protocols: {grpc: {endpoint: 127.0.0.1:4317}}}}\n"
            "processors: {memory_limiter: {check_interval: 1s, limit_percentage: 80, spike_limit_percentage: 25},"
            " batch: {}}\n"
            "exporters: {otlp_grpc: {endpoint: backend:4317}}\n"
            "service: {pipelines: {traces: {receivers: [otlp], processors: [memory_limiter, batch],"
            " exporters: [otlp_grpc]}}}\n", encoding="utf-8")
        started = time.monotonic()
        subprocess.run([str(binary), "validate", f"--config=file:{config}"], check=True, capture_output=True)
        validate = time.monotonic() - started
        print(f"cold build (empty Go module/build caches): {cold:.0f} s")
        print(f"warm (cached binary):                      {warm:.1f} s")
        print(f"binary size:                               {size / 1e6:.1f} MB")
        print(f"one `validate --config`:                   {validate * 1000:.0f} ms")
        print(f"load average at the end:                   {os.getloadavg()[0]:.1f} (cores: {os.cpu_count()})")
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
