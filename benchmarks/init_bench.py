"""Time `fleetstrap init` end to end for each blueprint and for a synthetic 20 services x 5 clusters fleet.

Prints figures; asserts nothing (targets are for people: starter under 2 s on the 2-core machine).
Run: python benchmarks/init_bench.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEAK_RSS_MB: list[float] = []


def _run(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "fleetstrap", "-q", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    err = proc.stderr.read()
    # wait4 gives this child's own peak RSS (KiB on Linux); children of the child (git, kubectl) are separate.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"fleetstrap {' '.join(args)} failed: {err.strip()}")
    PEAK_RSS_MB.append(usage.ru_maxrss / 1024)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "FLEETSTRAP_CACHE_DIR": str(Path(tmp) / "cache")}
        # Warm the template mirror once (a first run on a machine pays for it).
        cold = _run(["init", "-b", "starter", str(Path(tmp) / "warm")], env)
        print(f"{'case':<34} {'median s':>9} {'min s':>7} {'peak RSS MiB':>13}")
        print(f"{'starter (cold template mirror)':<34} {cold:>9.2f} {cold:>7.2f} {PEAK_RSS_MB[-1]:>13.0f}")
        services = "[" + ", ".join(f"svc-{i:02d}" for i in range(20)) + "]"
        envs = ["dev", "staging", "production"]
        clusters = ("[" + ", ".join(f"{{name: c{i}, environment: {envs[i % 3]}}}" for i in range(5)) + "]")
        cases = {
            "starter": ["-b", "starter"],
            "multi-env": ["-b", "multi-env"],
            "argocd-multi-cluster": ["-b", "argocd-multi-cluster"],
            "dual-engine": ["-b", "dual-engine"],
            "observability": ["-b", "observability"],
            "synthetic 20 services x 5 clusters": [
                "-b", "multi-env", "-d", f"services={services}", "-d", f"clusters={clusters}",
                "-d", "engine=both"],
        }
        for name, args in cases.items():
            PEAK_RSS_MB.clear()
            times = [_run(["init", *args, str(Path(tmp) / f"{name.split()[0]}-{i}")], env)
                     for i in range(opts.repeat)]
            print(f"{name:<34} {statistics.median(times):>9.2f} {min(times):>7.2f} {max(PEAK_RSS_MB):>13.0f}")


if __name__ == "__main__":
    main()
