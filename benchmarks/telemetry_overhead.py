"""What fleetstrap's own telemetry costs: wall time of a cheap command with and without an OTLP endpoint.

Run: python benchmarks/telemetry_overhead.py [runs]   (prints figures; asserts nothing)
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from otlp_receiver import free_port, http_receiver

OTEL_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "FLEETSTRAP_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL")


def _wall(args: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "fleetstrap", *args], env=env, check=False, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    env = {k: v for k, v in os.environ.items() if k not in OTEL_VARS}
    cmd = ["completion", "bash"]
    with http_receiver() as rx:
        off = _wall(cmd, env, runs)
        on = _wall(cmd, {**env, "FLEETSTRAP_OTLP_ENDPOINT": rx.url}, runs)
        spans = len(rx.store.spans)
        from fleetstrap.telemetry import check_endpoint

        checks = [check_endpoint(rx.url).seconds for _ in range(runs)]
    dead = _wall(cmd, {**env, "FLEETSTRAP_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}"}, 1)
    print(f"runs per figure: {runs} (median)")
    print(f"`fleetstrap {' '.join(cmd)}` without endpoint:          {off * 1000:7.0f} ms")
    print(f"`fleetstrap {' '.join(cmd)}` with loopback OTLP/HTTP:   {on * 1000:7.0f} ms  (+{(on - off) * 1000:.0f} ms,"
          f" {spans} spans received)")
    print(f"same with an unreachable endpoint (default timeout):   {dead * 1000:7.0f} ms")
    print(f"`telemetry check` export round trip (loopback):        {statistics.median(checks) * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
