"""Prebuild the generated Rust service for the test suite (.ci/run calls this once, before pytest).

Renders every Rust variant of tests/support/rust_service.py, fetches the locked crates and runs fmt, clippy,
the unit tests and the release build into the shared, cached CARGO_TARGET_DIR, so the tests find it warm.
A failure is printed, not fatal (the tests report it). Without cargo it prints why and exits 0: the tests
then skip with the same reason (and fail in CI).
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> int:
    if shutil.which("cargo") is None:
        print("prebuild_rust_service: cargo is not installed; the Rust service tests will skip", file=sys.stderr)
        return 0
    from support import rust_service

    started = time.monotonic()
    try:
        binaries = rust_service.prebuild()
    except (SystemExit, AssertionError, OSError) as err:
        # Not fatal here: the tests rebuild and report the same failure with its context.
        print(f"prebuild_rust_service: {err}", file=sys.stderr)
        return 0
    print(f"prebuild_rust_service: {len(binaries)} distinct builds in {time.monotonic() - started:.0f}s "
          f"(target dir {rust_service.target_dir()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
