"""`fleetstrap update` / `check-update`: the commands' face. The engine (the 3-way merge, migrations, the
template source) is `fleetstrap.upgrade`, a layer below the commands, which `add` runs too.

`update_fleet` opens the writer once (`--pretend`: the recording writer) and runs the engine with it;
`update --pr` (pr.py) runs the same engine in a temporary worktree and publishes it as a pull request.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from fleetstrap.errors import FindingsError
from fleetstrap.repo import load_fleet
from fleetstrap.upgrade.engine import (
    CheckReport,
    ComponentCheck,
    ComponentUpdate,
    UpdateConflictError,
    UpdateReport,
    UpdateRequest,
    check_component,
    run_update,
)
from fleetstrap.upgrade.source import ensure_source
from fleetstrap.writer import open_writer

__all__ = [
    "CheckReport",
    "ComponentCheck",
    "ComponentUpdate",
    "UpdateConflictError",
    "UpdateReport",
    "UpdateRequest",
    "check_updates",
    "require_no_updates",
    "update_fleet",
]


def update_fleet(request: UpdateRequest) -> UpdateReport:
    """Update the selected components (all by default). Raises ConflictError (exit 2) after writing the
    merge result when conflicts remain; nothing is committed then. `pretend` is the recording writer."""
    root = request.root.resolve()
    with open_writer(root, "update", commit=request.commit, dry_run=request.pretend) as writer:
        return run_update(request, writer)


def check_updates(root: Path, *, template: str | None = None, to: str | None = None) -> CheckReport:
    """Per component: the template version it is on and the one available. Changes nothing."""
    repo = load_fleet(root)
    with tempfile.TemporaryDirectory(prefix="fleetstrap-check-") as tmp:
        source = ensure_source(template, to, Path(tmp))
        checks = tuple(check_component(rc, source) for rc in repo.components)
    return CheckReport(repo.root, source.label, source.ref, checks)


def require_no_updates(report: CheckReport) -> None:
    """For CI: FindingsError (exit 2) when any component has a newer template available."""
    pending = [c.name for c in report.components if c.update_available]
    if pending:
        raise FindingsError(f"template update available for {len(pending)} component(s): {', '.join(pending)}",
                            hint=f"run fleetstrap update to move them to {report.target}")
