"""The one user cache directory of fleetstrap: template mirror, downloaded manifests, fetched schemas."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "FLEETSTRAP_CACHE_DIR"


def cache_dir(name: str = "") -> Path:
    """$FLEETSTRAP_CACHE_DIR, else the platform's user cache dir (Linux: $XDG_CACHE_HOME or ~/.cache) +
    /fleetstrap; `name` is the subdirectory of one kind of content. Not created here."""
    own = os.environ.get(CACHE_ENV)
    if own:
        root = Path(own)
    else:
        from platformdirs import user_cache_dir

        root = Path(user_cache_dir("fleetstrap", appauthor=False))
    return root / name if name else root
