#!/usr/bin/env python3
"""Build the Flagger controller the pinned chart runs (templates/pins.yml flagger_version) from its Go module.

  python scripts/build_flagger.py

tests/test_flagger.py runs it against the real control plane. Cached under the user cache directory
(tests/support/tools.py), so a second run is instant; cold: about 4 CPU-minutes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "generator")]

from fleetstrap.pins import pin  # noqa: E402
from support import cluster_tools  # noqa: E402


def main() -> int:
    started = time.monotonic()
    binary = cluster_tools.build_flagger(pin("flagger_version"))
    print(f"flagger {pin('flagger_version')}: {binary} (built or found in {time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
