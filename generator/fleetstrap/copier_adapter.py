"""Every call fleetstrap makes into copier, in one place.

copier's public API (`run_copy`, `run_update`) clones the template for each call. Rendering a fleet renders
several components from one template, so `copy` also accepts a `SharedTemplate`: one clone reused by every
render of a run. That needs `copier._main.Worker` and `copier._template.Template`, private modules that exist
from copier 9.7.0 on. The floor is higher: before 9.15.2 copier wrote an answers file given with a directory
(`.fleetstrap/answers/<unit>.yml`, rendered from `{{ _copier_conf.answers_file }}.jinja`) to the repo root, so a
fleet could not be read back. COPIER_FLOOR is pyproject.toml's `copier>=`, and tests/test_copier_versions.py
runs init and a 3-way update on exactly that version (found by trying 9.7.0 .. 9.15.1: all misplace the file).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fleetstrap.errors import TemplateError

COPIER_FLOOR = "9.15.2"  # keep in step with pyproject.toml's `copier>=` and tests/test_copier_versions.py
Conflict = Literal["inline", "rej"]


@dataclass(frozen=True)
class Target:
    """One component in a repo: where it lives, its answers file (relative), its answers, its name for messages."""

    dest: Path
    answers_file: str
    data: Mapping[str, Any]
    what: str


class SharedTemplate:
    """One clone of a template source (url + ref) for several renders; removed when its context ends."""

    def __init__(self, template: Any) -> None:
        self.template = template


@contextlib.contextmanager
def shared_template(url: str, ref: str) -> Iterator[SharedTemplate]:
    from copier._template import Template  # lazy: copier is slow to import, --help must not load it

    template = Template(url=url, ref=ref)
    try:
        yield SharedTemplate(template)
    finally:
        template._cleanup()


def copy(target: Target, url: str, ref: str, *, overwrite: bool = True, shared: SharedTemplate | None = None) -> None:
    """Render the template at `url`@`ref` for `target`, recording its answers file."""
    from copier._main import Worker

    try:
        with Worker(src_path=url, dst_path=target.dest, data=dict(target.data), answers_file=Path(target.answers_file),
                    vcs_ref=ref, defaults=True, overwrite=overwrite, quiet=True,
                    unsafe=True,  # our own template; migrations need it
                    cleanup_on_error=False) as worker:
            if shared is not None:
                # Worker.template is a cached_property; pre-seeding it skips the per-worker clone.
                worker.__dict__["template"] = shared.template
            worker.run_copy()
    except Exception as exc:  # copier raises many types; any failure here is a template bug or bad data
        raise TemplateError(f"rendering {target.what} failed: {type(exc).__name__}: {exc}") from exc
