"""Hostile YAML never grows memory or crashes: alias bombs, deep nesting, huge documents and answers files that
never end are findings (validate, exit 2, naming the file) or one-line errors (exit 1), under a memory limit."""

from __future__ import annotations

import itertools
import os
import resource
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fleetstrap.boundedyaml import MAX_DOCUMENT_BYTES
from fleetstrap.errors import EXIT_FINDINGS, EXIT_INTERRUPTED, EXIT_USER

# Far below what the alias bomb (~5 GB) or a never-ending answers file needs; well above a normal run.
MEMORY_LIMIT = 1536 * 1024 * 1024


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _fleetstrap(*args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "fleetstrap", *args], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=_limit, env=env, check=False)


def _bomb(levels: int = 9) -> str:
    names = [f"l{i}" for i in range(levels)]
    lines = [f"  {names[0]}: &{names[0]} [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, cur in itertools.pairwise(names):
        lines.append(f"  {cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\ndata:\n" + "\n".join(lines) + "\n"


def _deep_block(levels: int) -> str:
    return "".join("  " * i + "a:\n" for i in range(levels)) + "  " * levels + "b: 1\n"


def _repo(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "repo"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def _one_finding(proc: subprocess.CompletedProcess[str], file: str, words: str) -> None:
    assert proc.returncode == EXIT_FINDINGS, proc.stderr[-2000:]
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    out = proc.stdout + proc.stderr
    assert file in out and words in out, out


@pytest.mark.parametrize("kind", ["configmap", "sequence-of-aliases"])
def test_alias_bomb_is_a_finding_not_memory(tmp_path: Path, kind: str) -> None:
    text = _bomb() if kind == "configmap" else _bomb().replace("apiVersion: v1\n", "apiVersion: v1\n", 1) + \
        "---\nrefs: [*l8, *l8, *l8]\n".replace("*l8", "*x") .replace("refs", "x: &x [a]\nrefs")
    root = _repo(tmp_path, {"apps/bomb.yaml": text, "apps/ok.yaml": "apiVersion: v1\nkind: Namespace\n"
                                                                     "metadata:\n  name: ok\n"})
    proc = _fleetstrap("validate", "--offline", str(root))
    _one_finding(proc, "apps/bomb.yaml", "alias")


def test_alias_bomb_inside_a_kustomize_build_is_a_finding(tmp_path: Path) -> None:
    root = _repo(tmp_path, {"apps/bomb.yaml": _bomb(),
                            "apps/kustomization.yaml": "resources:\n  - bomb.yaml\n"})
    proc = _fleetstrap("validate", "--offline", str(root))
    _one_finding(proc, "apps/bomb.yaml", "alias")


@pytest.mark.parametrize("text", [_deep_block(10_000), "a: " + "[" * 10_000 + "]" * 10_000 + "\n",
                                  "".join("- " * 5_000) + "x\n", _deep_block(300)],
                         ids=["block-10000", "flow-10000", "dashes-5000", "block-300"])
def test_deep_nesting_is_a_finding_not_a_crash(tmp_path: Path, text: str) -> None:
    root = _repo(tmp_path, {"apps/deep.yaml": text})
    proc = _fleetstrap("validate", "--offline", str(root))
    _one_finding(proc, "apps/deep.yaml", "nest")


def test_nesting_a_real_manifest_needs_still_reads(tmp_path: Path) -> None:
    root = _repo(tmp_path, {"apps/deep.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"
                                              "  annotations:\n    a: b\n---\n" + _deep_block(60)})
    proc = _fleetstrap("validate", "--offline", str(root))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_oversized_document_is_a_finding(tmp_path: Path) -> None:
    big = "x" * (MAX_DOCUMENT_BYTES + 1024)
    root = _repo(tmp_path, {"apps/big.yaml": f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\n"
                                             f"data:\n  blob: {big}\n---\napiVersion: v1\nkind: Namespace\n"
                                             "metadata:\n  name: after\n"})
    proc = _fleetstrap("validate", "--offline", str(root))
    _one_finding(proc, "apps/big.yaml", "MiB")


def test_answers_file_that_never_ends_is_one_line_exit_1(tmp_path: Path) -> None:
    proc = _fleetstrap("init", "--answers", "/dev/zero", str(tmp_path / "fleet"), timeout=60)
    assert proc.returncode == EXIT_USER, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "/dev/zero" in proc.stderr, proc.stderr
    assert not (tmp_path / "fleet").exists()


@pytest.mark.parametrize("text", [_bomb(), _deep_block(10_000)], ids=["alias-bomb", "deep"])
def test_hostile_answers_file_is_one_line_exit_1(tmp_path: Path, text: str) -> None:
    answers = tmp_path / "answers.yml"
    answers.write_text(text, encoding="utf-8")
    proc = _fleetstrap("init", "--answers", str(answers), str(tmp_path / "fleet"), timeout=60)
    assert proc.returncode == EXIT_USER, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "internal error" not in proc.stderr, proc.stderr


def test_ctrl_c_interrupts_an_answers_read_that_blocks(tmp_path: Path) -> None:
    fifo = tmp_path / "answers.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen([sys.executable, "-m", "fleetstrap", "init", "--answers", str(fifo),
                             str(tmp_path / "fleet")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_limit)
    # Opening the writing end returns once fleetstrap has opened the reading end: it is then blocked in read().
    opened = threading.Event()

    def open_writer() -> None:
        with fifo.open("wb") as writer:
            writer.write(b"fleet_name: x\n")
            writer.flush()
            opened.set()
            proc.wait(timeout=60)

    thread = threading.Thread(target=open_writer, daemon=True)
    thread.start()
    assert opened.wait(timeout=60)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    thread.join(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err
