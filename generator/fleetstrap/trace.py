"""Facade for fleetstrap's own deployment traces. Cheap no-ops unless telemetry was switched on.

Library code marks its stages here (`with stage("render", component=...)`); `fleetstrap.telemetry`
installs a real backend only when an OTLP endpoint is configured, so nothing is imported otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Protocol

AttrValue = str | bool | int | float


class Backend(Protocol):
    def stage(self, name: str, attributes: Mapping[str, AttrValue]) -> AbstractContextManager[None]: ...

    def event(self, name: str, attributes: Mapping[str, AttrValue]) -> None: ...

    def set_attributes(self, attributes: Mapping[str, AttrValue]) -> None: ...


_backend: Backend | None = None
# Progress display (output.progress) follows the stages too: called with (name, True) on entry, (name, False) on exit.
StageListener = Callable[[str, bool], None]
_listeners: list[StageListener] = []


def install(backend: Backend | None) -> None:
    global _backend
    _backend = backend


def listen(listener: StageListener) -> Callable[[], None]:
    """Follow stage starts and ends (the CLI's progress display); returns the function that stops it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


def _clean(attrs: Mapping[str, Any]) -> dict[str, AttrValue]:
    return {k: v for k, v in attrs.items() if isinstance(v, str | bool | int | float)}


@contextmanager
def stage(name: str, **attributes: Any) -> Iterator[None]:
    """A child span for one stage of a command (render, validate, push, wait ...)."""
    cm = _backend.stage(name, _clean(attributes)) if _backend else nullcontext()
    for listener in tuple(_listeners):
        listener(name, True)
    try:
        with cm:
            yield
    finally:
        for listener in tuple(_listeners):
            listener(name, False)


def event(name: str, **attributes: Any) -> None:
    """A span event, e.g. 'files changed' or 'answers changed'."""
    if _backend:
        _backend.event(name, _clean(attributes))


def annotate(**attributes: Any) -> None:
    """Attributes on the current span (fleet repo, cluster, commit sha, outcome ...)."""
    if _backend:
        _backend.set_attributes(_clean(attributes))
