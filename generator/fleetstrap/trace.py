"""Facade for fleetstrap's own deployment traces. Cheap no-ops unless telemetry was switched on.

Library code marks its stages here (`with stage("render", component=...)`); `fleetstrap.telemetry`
installs a real backend only when an OTLP endpoint is configured, so nothing is imported otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Protocol

AttrValue = str | bool | int | float


class Backend(Protocol):
    def stage(self, name: str, attributes: Mapping[str, AttrValue]) -> AbstractContextManager[None]: ...

    def event(self, name: str, attributes: Mapping[str, AttrValue]) -> None: ...

    def set_attributes(self, attributes: Mapping[str, AttrValue]) -> None: ...


_backend: Backend | None = None


def install(backend: Backend | None) -> None:
    global _backend
    _backend = backend


def _clean(attrs: Mapping[str, Any]) -> dict[str, AttrValue]:
    return {k: v for k, v in attrs.items() if isinstance(v, str | bool | int | float)}


@contextmanager
def stage(name: str, **attributes: Any) -> Iterator[None]:
    """A child span for one stage of a command (render, validate, push, wait ...)."""
    cm = _backend.stage(name, _clean(attributes)) if _backend else nullcontext()
    with cm:
        yield


def event(name: str, **attributes: Any) -> None:
    """A span event, e.g. 'files changed' or 'answers changed'."""
    if _backend:
        _backend.event(name, _clean(attributes))


def annotate(**attributes: Any) -> None:
    """Attributes on the current span (fleet repo, cluster, commit sha, outcome ...)."""
    if _backend:
        _backend.set_attributes(_clean(attributes))
