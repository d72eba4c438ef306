"""pre-receive hook of the fake GitHub's bare repos: enforce the rules the server computed for this pusher.

The server passes, in FAKE_GH_POLICY, the rules that apply to the pusher (bypassers get none) per ref:
[{"code": "GH013", "header": ..., "always": [messages], "deletion": msg | null, "non_fast_forward": msg | null}].
Messages follow GitHub's ("GH006: Protected branch update failed ...", "GH013: Repository rule violations ...").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

ZERO = "0" * 40


def _fast_forward(old: str, new: str) -> bool:
    done = subprocess.run(["git", "merge-base", "--is-ancestor", old, new], capture_output=True, check=False)
    return done.returncode == 0


def main() -> int:
    policy = json.loads(os.environ.get("FAKE_GH_POLICY") or "{}")
    failed = False
    for line in sys.stdin.read().splitlines():
        old, new, ref = line.split()
        for rule in policy.get(ref, []):
            problems: list[str] = []
            if new == ZERO:
                problems += [rule["deletion"]] if rule.get("deletion") else []
            else:
                problems += rule.get("always", [])
                if rule.get("non_fast_forward") and old != ZERO and not _fast_forward(old, new):
                    problems.append(rule["non_fast_forward"])
            if problems:
                failed = True
                print(f"error: {rule['code']}: {rule['header']}", file=sys.stderr)
                for p in problems:
                    print(f"- {p}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
