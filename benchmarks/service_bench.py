"""What the generated Rust service costs: build times, binary size, memory, and what tracing costs under load.

Run: python benchmarks/service_bench.py [--seconds 8] [--rounds 3] [--connections 32] [--skip-cold]

Prints (asserts nothing):
- cold `cargo build --release --locked` (empty target dir; crates already downloaded), warm no-op rebuild and
  warm rebuild after touching the service's own source;
- release binary size;
- throughput and p99 latency from `wrk` (Debian package `wrk`) on loopback, tracing on (the chart's env:
  parent-based sampling at 1.0 = 100 %, OTLP/gRPC to a local receiver) and OTEL_SDK_DISABLED=true, interleaved
  rounds, medians side by side; peak RSS (VmHWM) and CPU time per request of the service in each mode (the
  steadiest figure on a busy machine).
Load is bounded: `--rounds` x 2 runs of `--seconds` each, loopback only.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from otlp_receiver import grpc_receiver
from support import rust_service as rs

TARGET_THROUGHPUT_COST = 0.20
TARGET_P99_RATIO = 1.5


def timed_build(crate: Path, target: Path) -> float:
    started = time.monotonic()
    subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=crate, check=True,
                   env={**os.environ, "CARGO_TARGET_DIR": str(target)})
    return time.monotonic() - started


def build_figures(crate: Path, cold: bool) -> None:
    src = rs.stable_copy(crate)
    subprocess.run(["cargo", "fetch", "--locked", "--quiet"], cwd=src, check=True)
    if cold:
        with tempfile.TemporaryDirectory(prefix="service-bench-target-") as target:
            print(f"cold cargo build --release:       {timed_build(src, Path(target)):7.1f} s  (empty target dir)")
    shared = rs.target_dir()
    timed_build(src, shared)
    print(f"warm cargo build --release:       {timed_build(src, shared):7.1f} s  (nothing changed)")
    (src / "src" / "main.rs").touch()
    print(f"warm rebuild, own crate changed:  {timed_build(src, shared):7.1f} s  (dependencies cached)")


def parse_wrk(text: str) -> tuple[float, float]:
    """Requests/sec and the 99th percentile latency in ms from `wrk --latency` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\b", text, re.MULTILINE).groups()  # type: ignore[union-attr]
    return rps, float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (/proc/<pid>/stat utime, stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_run(binary: Path, env: dict[str, str], wrk: str, seconds: int,
             connections: int) -> tuple[float, float, float, float]:
    """req/s, p99 ms, peak RSS MiB, and the service's CPU microseconds per request."""
    with rs.run_service(binary, env) as service:
        # Warm-up (connection setup, allocator, exporter channel), excluded from the figures.
        subprocess.run([wrk, "-t2", f"-c{connections}", "-d1s", f"{service.url}/hello/bench"],
                       capture_output=True, check=True)
        cpu_before = cpu_seconds(service.process.pid)
        res = subprocess.run([wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
                              f"{service.url}/hello/bench"], capture_output=True, text=True, check=True)
        cpu = cpu_seconds(service.process.pid) - cpu_before
        rss = peak_rss_mib(service.process.pid)
    rps, p99 = parse_wrk(res.stdout)
    requests = int(re.search(r"(\d+) requests in", res.stdout).group(1))  # type: ignore[union-attr]
    return rps, p99, rss, cpu / requests * 1e6


def load_figures(binary: Path, args: argparse.Namespace) -> None:
    wrk = shutil.which("wrk")
    if wrk is None:
        print("load: skipped, wrk is not installed (Debian: apt-get install wrk)")
        return
    # The chart defaults (RUST_LOG=info); the dev environment values would log at debug.
    env = rs.chart_env(rs.render_root("gateway"), rs.DEFAULT_SERVICE, {"environment": "bench"}, environment="bench")
    results: dict[str, list[tuple[float, float, float, float]]] = {"tracing on": [], "OTEL_SDK_DISABLED": []}
    with grpc_receiver() as receiver:
        modes = {"tracing on": {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url},
                 "OTEL_SDK_DISABLED": {**env, "OTEL_SDK_DISABLED": "true"}}
        for _ in range(args.rounds):
            for mode, mode_env in modes.items():
                results[mode].append(load_run(binary, mode_env, wrk, args.seconds, args.connections))
        exported = len(receiver.store.spans)
    print(f"load: wrk -t2 -c{args.connections} -d{args.seconds}s, {args.rounds} interleaved rounds, medians "
          f"(sampling {env['OTEL_TRACES_SAMPLER']}={env['OTEL_TRACES_SAMPLER_ARG']}, {os.cpu_count()} CPUs shared)")
    print(f"{'mode':<20} {'req/s':>10} {'p99 ms':>8} {'peak RSS MiB':>13} {'CPU us/req':>11}")
    medians = {}
    for mode, runs in results.items():
        rps, p99, rss, cpu = (statistics.median(r[i] for r in runs) for i in range(4))
        medians[mode] = (rps, p99, cpu)
        print(f"{mode:<20} {rps:>10.0f} {p99:>8.2f} {rss:>13.1f} {cpu:>11.1f}")
    (on_rps, on_p99, on_cpu), (off_rps, off_p99, off_cpu) = medians["tracing on"], medians["OTEL_SDK_DISABLED"]
    cost, ratio = 1 - on_rps / off_rps, on_p99 / off_p99
    print(f"tracing cost: {cost:.1%} throughput (target <= {TARGET_THROUGHPUT_COST:.0%}), p99 x{ratio:.2f} "
          f"(target <= {TARGET_P99_RATIO}), CPU per request x{on_cpu / off_cpu:.2f}; "
          f"{exported} spans reached the receiver")
    # On a shared machine throughput and p99 swing with the neighbours' load; the service's own CPU time per
    # request does not, so it is the figure to compare between runs.


def main() -> int:
    parser = argparse.ArgumentParser(description="Build, size, memory and tracing-overhead figures of the service.")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--skip-cold", action="store_true", help="skip the cold build (minutes)")
    args = parser.parse_args()
    if shutil.which("cargo") is None:
        print("cargo is not installed (https://rustup.rs)")
        return 1
    crate = rs.render_crate("gateway")
    build_figures(crate, cold=not args.skip_cold)
    binary = rs.build_release(crate)
    print(f"release binary: {binary.stat().st_size / 2**20:.1f} MiB (stripped, thin LTO)")
    load_figures(binary, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
