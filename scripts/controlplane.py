#!/usr/bin/env python3
"""Build, or start, the real control plane the cluster tests use (all from the Go module proxy).

  python scripts/controlplane.py build [--flux] [--argocd]
                                                # etcd, kube-apiserver, -controller-manager, -scheduler, kwok;
                                                # --flux: also the Flux controllers of the pinned release;
                                                # --argocd: also Argo CD v3.2.11 and its helm (support.argocd)
  python scripts/controlplane.py up [--flux] [--argocd] [--spoke] [--kubeconfig FILE]
                                                # start it; writes a kubeconfig with its own context and
                                                # runs until Ctrl-C, then stops every process it started;
                                                # --spoke: a second control plane, and a kubeconfig with the
                                                # contexts `hub` and `spoke` (bootstrap ... --context hub
                                                # --spoke-context NAME=spoke)

The builds are cached under the user cache directory (tests/support/tools.py), so a second run is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "generator")]

from fleetstrap.pins import pin  # noqa: E402
from support import argocd, cluster_tools  # noqa: E402
from support.controlplane import CONTEXT, ControlPlane, FluxControllers, write_kubeconfig  # noqa: E402


def build(with_flux: bool, with_argocd: bool = False) -> int:
    started = time.monotonic()
    bins, kwok, flux = cluster_tools.build_all(pin("flux_version"), with_flux=with_flux)
    print(f"kubernetes v{cluster_tools.KUBERNETES_VERSION}: {bins}")
    print(f"kwok {cluster_tools.KWOK_VERSION}: {kwok.binary}")
    for name, path in flux.binaries.items():
        print(f"{name}: {path}")
    if with_argocd:
        print(f"argocd {argocd.ARGOCD_RUNTIME_VERSION}: {argocd.build_argocd()}")
        print(f"helm {argocd.HELM_VERSION}: {argocd.build_helm()}")
    print(f"built or found in {time.monotonic() - started:.1f}s")
    return 0


def up(kubeconfig: Path | None, with_flux: bool, with_argocd: bool = False, with_spoke: bool = False) -> int:
    bins, kwok = cluster_tools.build_kubernetes(), cluster_tools.build_kwok()
    workdir = Path(tempfile.mkdtemp(prefix="fleetstrap-controlplane-"))
    started = time.monotonic()
    plane = ControlPlane(workdir, bins, kwok)
    plane.start()
    stack = contextlib.ExitStack()
    try:
        if with_flux:
            flux = cluster_tools.build_flux(pin("flux_version"))
            plane.apply_files(flux.crd_files())
            plane.kubectl("create", "namespace", "flux-system")
            FluxControllers(plane, flux).start()
        if with_argocd:
            stack.enter_context(argocd.running_argocd(plane))
        if with_spoke:
            spoke = ControlPlane(workdir / "spoke", bins, kwok)
            spoke.start()
            stack.callback(spoke.stop)
            kubeconfig = write_kubeconfig(kubeconfig or workdir / "kubeconfig-hub-spoke",
                                          {"hub": plane, "spoke": spoke})
            print(f"spoke control plane at {spoke.server} (context spoke; the hub's context is hub)")
        elif kubeconfig is not None:
            plane.write_kubeconfig(kubeconfig)
        print(f"control plane {plane.version()} up in {time.monotonic() - started:.1f}s "
              f"(context {'hub' if with_spoke else CONTEXT})")
        print(f"  export KUBECONFIG={kubeconfig or plane.kubeconfig}")
        print(f"  logs: {plane.processes.logs}")
        print("Ctrl-C stops it.")
        while True:
            plane.processes.check_running()
            time.sleep(2)
    except KeyboardInterrupt:
        return 0
    finally:
        stack.close()
        plane.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    builder = sub.add_parser("build", help="build every binary (cached)")
    builder.add_argument("--flux", action="store_true", help="also build the Flux controllers")
    builder.add_argument("--argocd", action="store_true", help="also build Argo CD and its helm")
    start = sub.add_parser("up", help="start a control plane until Ctrl-C")
    start.add_argument("--kubeconfig", type=Path, help="also write the kubeconfig here")
    start.add_argument("--flux", action="store_true", help="also install Flux CRDs and run the Flux controllers")
    start.add_argument("--argocd", action="store_true",
                       help="also install Argo CD's CRDs and RBAC and run its controllers (with Redis)")
    start.add_argument("--spoke", action="store_true", help="also start a second control plane: a spoke")
    args = parser.parse_args(argv)
    if args.command == "build":
        return build(args.flux, args.argocd)
    return up(args.kubeconfig, args.flux, args.argocd, args.spoke)


if __name__ == "__main__":
    raise SystemExit(main())
