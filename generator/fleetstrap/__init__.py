"""fleetstrap: start GitOps fleet repositories right, and keep them right."""

# The release this tree is, or the last one before it; the one place a release sets its version. What a build
# calls itself (a development version unless it is exactly that release) comes from _version.
__version__ = "0.1.0"

from fleetstrap._version import runtime_version as _runtime_version

__version__ = _runtime_version()
