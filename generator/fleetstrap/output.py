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


# A step longer than this shows progress: a spinner with elapsed time on a terminal, one line elsewhere.
SLOW_SECONDS = 2.0
PROGRESS_ENV = "FLEETSTRAP_PROGRESS"  # auto (spinner on a terminal), plain (lines, e.g. CI logs), off
_active: list[_Terminal | _Log] = []  # the progress display showing now (at most one: rich allows one live display)


@contextmanager
def progress(message: str, *, enabled: bool = True, hold: tuple[str, ...] = ("prompt",)) -> Iterator[None]:
    """Progress for a command's slow work, on stderr (stdout stays data, e.g. --format json).

    On a terminal: a spinner with the current stage (the library's `trace.stage` names) and the elapsed time,
    erased when done, so an error that follows is still one line. Elsewhere (pipes, CI logs) nothing, unless
    FLEETSTRAP_PROGRESS=plain: then nothing for fast work, one line after SLOW_SECONDS saying what runs, and one
    line per stage that took longer than SLOW_SECONDS. FLEETSTRAP_PROGRESS=off: never; --quiet: never. Stages
    named in `hold` (interactive prompts) pause the spinner so it never draws over a question.
    """
    import os

    if _active:  # inside another command's progress (push's steps): one display, this is its current step
        outer = _active[-1]
        outer.stage(message, True, held=False)
        try:
            yield
        finally:
            outer.stage(message, False, held=False)
        return
    mode = os.environ.get(PROGRESS_ENV, "auto")
    tracker: _Terminal | _Log | None = None
    if not _quiet and enabled and mode != "off":
        if mode == "plain":
            tracker = _Log(message)
        elif _err.is_terminal:
            tracker = _Terminal(message)
    if tracker is None:
        yield
        return
    from fleetstrap import trace

    stop_listening = trace.listen(lambda name, started: tracker.stage(name, started, held=name in hold))
    tracker.start()
    _active.append(tracker)
    try:
        yield
    finally:
        _active.remove(tracker)
        stop_listening()
        tracker.stop()


class _Terminal:
    def __init__(self, message: str) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._message = _escape(message)
        self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                  console=_err, transient=True,
                                  # stdout is data: never captured into the display on stderr
                                  redirect_stdout=False, redirect_stderr=False)
        self._task = self._progress.add_task(self._message, total=None)
        self._stages: list[str] = []

    def start(self) -> None:
        self._progress.start()

    def stop(self) -> None:
        self._progress.stop()

    def stage(self, name: str, started: bool, *, held: bool) -> None:
        if held:
            (self._progress.stop if started else self._progress.start)()
            return
        if started:
            self._stages.append(name)
        elif name in self._stages:
            self._stages.remove(name)
        text = self._message + (f" [dim]› {_escape(self._stages[-1])}[/]" if self._stages else "")
        self._progress.update(self._task, description=text, refresh=True)


class _Log:
    """Non-terminal progress: silent when fast, a few plain lines when slow."""

    def __init__(self, message: str) -> None:
        import threading
        import time

        self._message = message
        self._clock = time.monotonic
        self._started: dict[str, float] = {}
        self._lock = threading.Lock()
        self._announced = False
        self._timer = threading.Timer(SLOW_SECONDS, self._announce)
        self._timer.daemon = True

    def _announce(self) -> None:
        with self._lock:
            if not self._announced:
                self._announced = True
                _err.print(f"› {self._message} …", markup=False, highlight=False)

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.cancel()

    def stage(self, name: str, started: bool, *, held: bool) -> None:
        if held:
            return
        if started:
            self._started.setdefault(name, self._clock())
            return
        begun = self._started.pop(name, None)
        seconds = self._clock() - begun if begun is not None else 0.0
        if seconds >= SLOW_SECONDS:
            self._announce()
            with self._lock:
                _err.print(f"  {name}: {seconds:.1f}s", markup=False, highlight=False)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
