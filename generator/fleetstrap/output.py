"""The only module that prints. Messages go to stderr, data (json, tables asked for) to stdout."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.table import Table

_err = Console(stderr=True, highlight=False, soft_wrap=True)
_out = Console(highlight=False, soft_wrap=True)
_quiet = False


def configure(*, quiet: bool = False, color: bool | None = None) -> None:
    """Set verbosity and colour once, from the CLI's global options."""
    global _err, _out, _quiet
    _quiet = quiet
    kwargs: dict[str, Any] = {"highlight": False, "soft_wrap": True}
    if color is not None:
        kwargs["no_color"] = not color
        kwargs["force_terminal"] = color or None
    _err = Console(stderr=True, **kwargs)
    _out = Console(**kwargs)


def info(message: str) -> None:
    if not _quiet:
        _err.print(message, markup=False)


def step(message: str) -> None:
    if not _quiet:
        _err.print(f"[bold cyan]›[/] {_escape(message)}")


def success(message: str) -> None:
    if not _quiet:
        _err.print(f"[bold green]✓[/] {_escape(message)}")


def warn(message: str) -> None:
    _err.print(f"[bold yellow]warning:[/] {_escape(message)}")


def error(message: str, hint: str | None = None) -> None:
    # One line for the problem; the hint, when there is one, on the next.
    _err.print(f"[bold red]error:[/] {_escape(message)}")
    if hint:
        _err.print(f"  [dim]hint:[/] {_escape(hint)}")


def data(text: str) -> None:
    """Machine-readable output on stdout, unstyled."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def data_json(obj: Any) -> None:
    data(json.dumps(obj, indent=2, sort_keys=False, default=str))


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    t = Table(title=title, show_lines=False)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*(str(v) for v in r))
    _out.print(t)


def rich_err() -> Console:
    """For renderables (grouped findings, diffs) that need rich directly."""
    return _err


@contextmanager
def progress(message: str) -> Iterator[None]:
    """A spinner for a slow step; silent when not a terminal or quiet."""
    if _quiet or not _err.is_terminal:
        yield
        return
    with _err.status(_escape(message)):
        yield


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
