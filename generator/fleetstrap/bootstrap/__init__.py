"""The cluster layer, shared by the commands that talk to a cluster (`bootstrap`, `status`, `promote`/`rollback
--wait`): Kubernetes access through `kube.KubeClient` only, waiting (`wait.py`), the engines (Flux / Argo CD),
their install manifests and objects, preflight, ssh known hosts, and the engines' reported states (`status.py`).

The commands themselves live above it: `fleetstrap.bootstrapper` (bootstrap) and `fleetstrap.status`."""
