"""fleetstrap: start GitOps fleet repositories right, and keep them right."""

__version__ = "0.1.0"
