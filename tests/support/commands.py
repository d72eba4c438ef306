"""Run fleetstrap commands in-process, the way the end-to-end missions chain them."""

from __future__ import annotations

import pytest

from fleetstrap.cli import run


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run one command; return (exit code, stdout, stderr) of that command alone."""
    capsys.readouterr()
    code = run(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def ok(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str, str]:
    """Run one command that must succeed; its stderr tail is the failure message otherwise."""
    code, out, err = cli(capsys, *args)
    assert code == 0, f"fleetstrap {args[0]} exited {code}: {err[-3000:]}"
    return out, err
