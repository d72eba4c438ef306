#!/usr/bin/env python3
"""Record an interactive `fleetstrap init` in a real terminal (tmux) and write the final screen as text.

  python scripts/record_init.py [--out docs/assets/init-session.txt]

tmux runs `python -m fleetstrap init` in a 100x50 pane; each prompt is awaited with capture-pane and answered
with send-keys, the way a person types. The written capture is what the documentation shows (getting-started);
tests/test_docs.py records again and compares the questions, so the page follows the prompts.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# (text to wait for, keys to send); tmux key names (Enter, Down, BSpace) or literal text
STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("GitHub owner", ("acme", "Enter")),
    ("Repository name", ("Enter",)),
    ("GitOps engine", ("Enter",)),
    ("Environments", ("BSpace",) * 3 + ("dev, prod", "Enter")),
    ("Cluster for dev", ("Enter",)),
    ("Kube context for dev", ("kind-dev", "Enter")),
    ("Cluster for prod", ("Enter",)),
    ("Kube context for prod", ("Enter",)),
    ("First service name", ("BSpace",) * 5 + ("checkout", "Enter")),
    ("Container registry", ("Enter",)),
    ("Trace backend", ("Down", "Enter")),
    ("OTLP gRPC endpoint", ("Enter",)),
    ("Collector mode", ("Enter",)),
    ("Progressive delivery", ("Enter",)),
    ("Automate image tag updates", ("y",)),
    ("Secrets approach", ("Enter",)),
    ("Ingress domain", ("Enter",)),
    ("TLS issuer", ("Enter",)),
    ("ACME account e-mail", ("BSpace",) * 20 + ("platform@acme.io", "Enter")),
    ("Monitoring", ("n",)),
    ("Policy engine", ("Enter",)),
    ("Dependency updates", ("Enter",)),
)
DONE = "[fleetstrap exited "


def _tmux(socket: str, *args: str) -> str:
    res = subprocess.run(["tmux", "-L", socket, *args], check=False, capture_output=True, text=True)
    if res.returncode != 0:  # tmux's own reason, not only the exit status
        raise SystemExit(f"record_init: tmux {args[0]} failed ({res.returncode}): {res.stderr.strip()}")
    return res.stdout


def _wait(socket: str, text: str, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        screen = _tmux(socket, "capture-pane", "-p", "-J", "-t", "rec")  # -J: wrapped lines joined
        if text in screen:
            return screen
        time.sleep(0.1)
    raise SystemExit(f"record_init: timed out waiting for {text!r}; screen:\n{screen}")


def record(workdir: Path) -> str:
    """Drive the prompts; return the final screen with the temporary destination replaced by ./fleet-infra."""
    dest = workdir / "fleet-infra"
    socket = f"fleetstrap-rec-{workdir.name}"
    cmd = (f"cd {shlex.quote(str(workdir))} && {shlex.quote(sys.executable)} -m fleetstrap --no-color init "
           f"fleet-infra --no-validate; echo '{DONE}'$?']'; sleep 600")
    _tmux(socket, "new-session", "-d", "-s", "rec", "-x", "100", "-y", "50", "-e", "TERM=xterm-256color", cmd)
    try:
        for prompt, keys in STEPS:
            _wait(socket, prompt)
            for key in keys:
                literal = key not in ("Enter", "Down", "Up", "BSpace")
                _tmux(socket, "send-keys", "-t", "rec", *(["-l"] if literal else []), key)
        screen = _wait(socket, DONE)
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, check=False)
    lines = [ln.rstrip() for ln in screen.replace(str(dest), "./fleet-infra").splitlines()]
    lines = [ln for ln in lines if not ln.startswith(DONE)]
    if not (dest / ".fleetstrap" / "answers" / "fleet.yml").is_file():
        raise SystemExit("record_init: init did not write the fleet:\n" + "\n".join(lines))
    while lines and not lines[-1]:
        lines.pop()
    # timings and the commit id vary run to run; the capture stays stable
    lines = [re.sub(r"\(\d+(\.\d+)? ?m?s\)", "(…s)", re.sub(r"commit [0-9a-f]{12}\b", "commit …", ln)) for ln in lines]
    return "\n".join(lines) + "\n"


def questions(capture: str) -> list[str]:
    """The answered prompts of a capture, with their answers (questionary prints `? Question: answer`)."""
    return [ln for ln in capture.splitlines() if ln.startswith("? ")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "assets" / "init-session.txt")
    args = parser.parse_args(argv)
    if shutil.which("tmux") is None:
        print("record_init: tmux is not installed", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="fleetstrap-rec-") as tmp:
        capture = record(Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(capture, encoding="utf-8")
    print(f"record_init: {len(questions(capture))} questions -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
