"""What the generated Rust service costs: build times, binary size, memory, and what tracing costs under load.

Run: python benchmarks/service_bench.py [--seconds 8] [--rounds 5] [--connections 32] [--skip-cold]
                                        [--instructions]

Headline (last lines): what tracing at 100 % sampling over OTLP/gRPC (the chart's default) costs against
OTEL_SDK_DISABLED=true: instructions per request (with --instructions; the figure that does not move with the
machine's load) with p99, throughput and CPU time beside it, each against its target.

Prints (asserts nothing):
- cold `cargo build --release --locked` (empty target dir; crates already downloaded), warm no-op rebuild and
  warm rebuild after touching the service's own source;
- release binary size;
- throughput and p99 latency from `wrk` (Debian package `wrk`) on loopback, tracing on (the chart's env:
  parent-based sampling at 1.0 = 100 %, OTLP/gRPC to a real OpenTelemetry Collector, the one
  scripts/build_otelcol.py builds; the project's Python receiver when go is missing) and OTEL_SDK_DISABLED=true,
  interleaved rounds, medians side by side; peak RSS (VmHWM) and CPU time per request of the service.
  The service gets CPU 0 to itself (taskset) and wrk and the collector the others, so its throughput is bounded
  by its own CPU cost, as in a pod with a CPU limit, and not by the load generator it competes with;
- with --instructions: user-space instructions per request in each mode, counted by valgrind (callgrind) over
  a fixed number of requests, at 100 % and at the production environments' sampling (parent-based 0.25);
  unlike time, the count does not move with the neighbours' load.
Load is bounded: `--rounds` x 2 runs of `--seconds` each, loopback only.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from otlp_receiver import grpc_receiver
from support import otelcol
from support import rust_service as rs

TARGET_INSTRUCTION_RATIO = 1.20
TARGET_P99_RATIO = 1.5
# The sampling ratio of the last (production) environment's values file; the chart's default is 1.0.
PRODUCTION_SAMPLING = "0.25"


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


def cpu_split() -> tuple[list[str], list[str]]:
    """taskset prefixes: CPU 0 for the service, the other CPUs for wrk and the collector (none on 1 CPU)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return [], []
    rest = ",".join(str(c) for c in cpus[1:])
    return ["taskset", "-c", str(cpus[0])], ["taskset", "-c", rest]


@contextlib.contextmanager
def collector(others: list[str]) -> Iterator[tuple[str, str]]:
    """An OTLP/gRPC endpoint to export to, and what it is: the project's collector build on a minimal traces and
    metrics pipeline (OTLP in, batch, debug exporter at basic verbosity), else the Python test receiver."""
    script = otelcol.build_script()
    try:
        binary = script.ensure_otelcol()
    except script.BuildError as exc:
        print(f"load: no collector build ({exc}); exporting to the Python test receiver instead")
        with grpc_receiver() as receiver:
            yield receiver.url, "the Python OTLP test receiver"
        return
    port = rs.free_port()
    workdir = Path(tempfile.mkdtemp(prefix="service-bench-otelcol-"))
    config = workdir / "config.yaml"
    pipeline = "{receivers: [otlp], processors: [batch], exporters: [debug]}"
    config.write_text(f"""receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{port}"}}
processors:
  batch: {{}}
exporters:
  debug: {{verbosity: basic}}
service:
  telemetry: {{metrics: {{level: none}}}}
  pipelines:
    traces: {pipeline}
    metrics: {pipeline}
""", encoding="utf-8")
    with (workdir / "collector.log").open("wb") as log:
        process = subprocess.Popen([*others, str(binary), "--config", str(config)], stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (workdir / "collector.log").read_text(errors="replace").count("Everything is ready"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the collector did not start:\n"
                                   + (workdir / "collector.log").read_text(errors="replace")[-2000:])
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", f"OpenTelemetry Collector {binary.name}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


def load_run(binary: Path, env: dict[str, str], wrk: str, args: argparse.Namespace,
             pin: tuple[list[str], list[str]]) -> tuple[float, float, float, float]:
    """req/s, p99 ms, peak RSS MiB, and the service's CPU microseconds per request."""
    mine, others = pin
    url_path = "/hello/bench"
    with rs.run_service(binary, env, wrapper=mine) as service:
        command = [*others, wrk, "-t2", f"-c{args.connections}"]
        # Warm-up (connection setup, allocator, exporter channel), excluded from the figures.
        subprocess.run([*command, "-d1s", f"{service.url}{url_path}"], capture_output=True, check=True)
        cpu_before = cpu_seconds(service.process.pid)
        res = subprocess.run([*command, f"-d{args.seconds}s", "--latency", f"{service.url}{url_path}"],
                             capture_output=True, text=True, check=True)
        cpu = cpu_seconds(service.process.pid) - cpu_before
        rss = peak_rss_mib(service.process.pid)
    rps, p99 = parse_wrk(res.stdout)
    requests = int(re.search(r"(\d+) requests in", res.stdout).group(1))  # type: ignore[union-attr]
    return rps, p99, rss, cpu / requests * 1e6


def bench_env(endpoint: str) -> dict[str, dict[str, str]]:
    # The chart defaults (RUST_LOG=info); the dev environment values would log at debug.
    env = rs.chart_env(rs.render_root("gateway"), rs.DEFAULT_SERVICE, {"environment": "bench"},
                       environment="bench")
    return {"tracing on": {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint},
            "OTEL_SDK_DISABLED": {**env, "OTEL_SDK_DISABLED": "true"}}


LoadMedians = dict[str, tuple[float, float, float]]


def load_figures(binary: Path, args: argparse.Namespace) -> LoadMedians | None:
    """req/s, p99 ms and CPU us/request per mode (medians of the interleaved rounds); None without wrk."""
    wrk = shutil.which("wrk")
    if wrk is None:
        print("load: skipped, wrk is not installed (Debian: apt-get install wrk)")
        return None
    pin = cpu_split()
    load_before = os.getloadavg()[0]
    results: dict[str, list[tuple[float, float, float, float]]] = {"tracing on": [], "OTEL_SDK_DISABLED": []}
    with collector(pin[1]) as (endpoint, receiver):
        modes = bench_env(endpoint)
        for _ in range(args.rounds):
            for mode, mode_env in modes.items():
                results[mode].append(load_run(binary, mode_env, wrk, args, pin))
    env = modes["tracing on"]
    print(f"load: wrk -t2 -c{args.connections} -d{args.seconds}s, {args.rounds} interleaved rounds, medians; "
          f"sampling {env['OTEL_TRACES_SAMPLER']}={env['OTEL_TRACES_SAMPLER_ARG']}, OTLP/gRPC to {receiver}; "
          f"service on {'CPU 0 alone' if pin[0] else 'all CPUs'} of {os.cpu_count()}, "
          f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(f"{'mode':<20} {'req/s':>10} {'p99 ms':>8} {'peak RSS MiB':>13} {'CPU us/req':>11}")
    medians = {}
    for mode, runs in results.items():
        rps, p99, rss, cpu = (statistics.median(r[i] for r in runs) for i in range(4))
        medians[mode] = (rps, p99, cpu)
        print(f"{mode:<20} {rps:>10.0f} {p99:>8.2f} {rss:>13.1f} {cpu:>11.1f}")
    # On a shared machine throughput and p99 swing with the neighbours' load even with the service on its own
    # CPU (they are scheduled there too); CPU time per request moves much less, instructions not at all.
    return medians


def instructions_per_request(binary: Path, env: dict[str, str], requests: int) -> int:
    """User-space instructions of a whole service run (start, `requests` sequential keep-alive requests,
    SIGTERM with the final flush) under valgrind's callgrind."""
    with tempfile.TemporaryDirectory(prefix="service-bench-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        # The periodic metric export (every 60 s) would land in the longer run only and count as per-request
        # work: with an hour's interval both runs export their metrics once, at shutdown.
        quiet = {**env, "SHUTDOWN_DELAY_SECONDS": "0", "OTEL_METRIC_EXPORT_INTERVAL": "3600000"}
        with rs.run_service(binary, quiet, wrapper=wrapper) as service:
            connection = http.client.HTTPConnection(service.url.removeprefix("http://"), timeout=60)
            for _ in range(requests):
                connection.request("GET", "/hello/bench")
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"/hello/bench answered {response.status}")
            connection.close()
        text = out.read_text(encoding="utf-8", errors="replace")
    return int(re.search(r"^(?:summary|totals): (\d+)", text, re.MULTILINE).group(1))  # type: ignore[union-attr]


def instruction_figures(binary: Path) -> dict[str, float] | None:
    """Instructions per request: tracing on at 100 % and at PRODUCTION_SAMPLING, and OTEL_SDK_DISABLED."""
    if shutil.which("valgrind") is None:
        print("instructions: skipped, valgrind is not installed (Debian: apt-get install valgrind)")
        return None
    few, many = 300, 1300
    with collector([]) as (endpoint, receiver):
        modes = bench_env(endpoint)
        on = modes["tracing on"]
        modes = {"tracing on": on,
                 f"sampling {PRODUCTION_SAMPLING}": {**on, "OTEL_TRACES_SAMPLER_ARG": PRODUCTION_SAMPLING},
                 "OTEL_SDK_DISABLED": modes["OTEL_SDK_DISABLED"]}
        counts = {mode: (instructions_per_request(binary, env, many) - instructions_per_request(binary, env, few))
                  / (many - few) for mode, env in modes.items()}
    off = counts["OTEL_SDK_DISABLED"]
    print(f"instructions per request (callgrind, user space, {many} - {few} sequential requests, exporting to "
          f"{receiver}): " + ", ".join(f"{mode} {count:,.0f} (x{count / off:.3f})" for mode, count in counts.items()))
    return counts


def headline(counts: dict[str, float] | None, medians: LoadMedians | None) -> None:
    """What tracing at 100 % over OTLP/gRPC costs: instructions first (they do not move with the machine's
    load), the time figures beside them."""
    print(f"tracing cost at 100 % sampling, OTLP/gRPC, against OTEL_SDK_DISABLED (load average now "
          f"{os.getloadavg()[0]:.1f}):")
    if counts is not None:
        off = counts["OTEL_SDK_DISABLED"]
        ratio = counts["tracing on"] / off
        production = counts[f"sampling {PRODUCTION_SAMPLING}"] / off
        print(f"  instructions per request x{ratio:.3f} (target <= {TARGET_INSTRUCTION_RATIO:.2f}: "
              f"{'met' if ratio <= TARGET_INSTRUCTION_RATIO else 'NOT met'}), i.e. {1 - 1 / ratio:.1%} of a "
              f"CPU-bound pod's throughput; at sampling {PRODUCTION_SAMPLING} x{production:.3f}")
    if medians is not None:
        (on_rps, on_p99, on_cpu), (off_rps, off_p99, off_cpu) = medians["tracing on"], medians["OTEL_SDK_DISABLED"]
        p99 = on_p99 / off_p99
        print(f"  p99 x{p99:.2f} ({on_p99:.2f} / {off_p99:.2f} ms; target <= {TARGET_P99_RATIO}: "
              f"{'met' if p99 <= TARGET_P99_RATIO else 'NOT met'}), throughput {1 - on_rps / off_rps:.1%} lower, "
              f"CPU per request x{on_cpu / off_cpu:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description="Build, size, memory and tracing-overhead figures of the service.")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--skip-cold", action="store_true", help="skip the cold build (minutes)")
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions per request under valgrind (load-independent)")
    args = parser.parse_args()
    if shutil.which("cargo") is None:
        print("cargo is not installed (https://rustup.rs)")
        return 1
    crate = rs.render_crate("gateway")
    build_figures(crate, cold=not args.skip_cold)
    binary = rs.build_release(crate)
    print(f"release binary: {binary.stat().st_size / 2**20:.1f} MiB (stripped, thin LTO)")
    medians = load_figures(binary, args)
    counts = instruction_figures(binary) if args.instructions else None
    headline(counts, medians)
    return 0


if __name__ == "__main__":
    sys.exit(main())
