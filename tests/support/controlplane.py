"""A real Kubernetes control plane and the real Flux controllers as local processes, on loopback only.

etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok (binaries from support.cluster_tools).
The apiserver serves on 127.0.0.1 with a certificate from a throwaway CA and authenticates one static token
(system:masters). It needs an advertise address that is not loopback: 192.0.2.10 (TEST-NET-1) with
`--endpoint-reconciler-type=none`, so nothing is ever routed there. kwok plays the kubelet of one Node this module
creates, so Deployments become Available without containers.

Every process is started in its own session and recorded; `stop()` ends exactly those (by pid), also when a test
failed. Logs stay in the work directory for the failure message. Every port a process listens on is reserved
(support.ports) until the process stops, so no other process on the machine can take it in between; start-up
bounds are scaled by support.tools.scaled (one factor, $FLEETSTRAP_TEST_TIMEOUT_SCALE).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import secrets
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import yaml

from support.cluster_tools import FluxBuild, Kwok
from support.ports import PortReservation
from support.tools import scaled

ADVERTISE_ADDRESS = "192.0.2.10"  # TEST-NET-1: never routed; with endpoint-reconciler none nothing dials it
NODE_NAME = "kwok-node-0"
CONTEXT = "fleetstrap-controlplane"
SERVICE_CIDR = "10.0.0.0/24"


# ---------------------------------------------------------------- keys and certificates


def _write_keys(pki: Path) -> None:
    """CA, apiserver serving cert (127.0.0.1, localhost, the service IP) and the service-account key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    pki.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def pem_key(key: Any) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleetstrap-test-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=7))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName("localhost"), x509.DNSName("kubernetes"), x509.DNSName("kubernetes.default.svc"),
            *(x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "10.0.0.1", ADVERTISE_ADDRESS))]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (pki / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (pki / "apiserver.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (pki / "apiserver.key").write_bytes(pem_key(key))
    (pki / "sa.key").write_bytes(pem_key(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    for p in pki.iterdir():
        p.chmod(0o600)


# ---------------------------------------------------------------- processes


@dataclass
class Processes:
    """Processes started here, each in its own session; stopped by the pids recorded at start."""

    logs: Path
    started: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    # The ports of the processes started here, held until they are stopped.
    ports: PortReservation = field(default_factory=PortReservation)

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{name}.log").open("ab")
        try:
            proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env={**os.environ, **(env or {})}, start_new_session=True)
        finally:
            log.close()
        self.started.append((name, proc))
        return proc

    def check_running(self) -> None:
        for name, proc in self.started:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}):\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 25) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.is_file() else ""

    def stop(self, names: Sequence[str] | None = None) -> None:
        """Stop the recorded processes (all, or those named), newest first: SIGTERM, then SIGKILL."""
        chosen = [(n, p) for n, p in self.started if names is None or n in names]
        for _name, proc in reversed(chosen):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for _name, proc in reversed(chosen):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout=15)
        self.started = [(n, p) for n, p in self.started if (n, p) not in chosen]
        if not self.started:
            self.ports.release()


# ---------------------------------------------------------------- the control plane


def _decode(raw: bytes) -> Any:
    """JSON bodies decoded; plain ones (/readyz says "ok") as text."""
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return raw.decode(errors="replace")


@dataclass
class ControlPlane:
    workdir: Path
    bins: Path
    kwok: Kwok
    processes: Processes = field(init=False)
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    port: int = 0
    kubeconfig: Path = field(init=False)

    def __post_init__(self) -> None:
        self.processes = Processes(self.workdir / "logs")
        self.kubeconfig = self.workdir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    # -- lifecycle

    def start(self, timeout: float = 120.0) -> None:
        try:
            self._start(scaled(timeout))
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        _write_keys(self.pki)
        (self.workdir / "tokens.csv").write_text(f'{self.token},admin,admin,"system:masters"\n')
        (self.workdir / "tokens.csv").chmod(0o600)
        free_port = self.processes.ports.port
        etcd_port, peer_port = free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self.processes.start("etcd", [
            str(self.bins / "etcd"), "--data-dir", str(self.workdir / "etcd"),
            "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"default=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync", "--log-level", "warn",
        ])
        self.port = free_port()
        self.processes.start("kube-apiserver", [
            str(self.bins / "kube-apiserver"), "--etcd-servers", etcd_url,
            "--bind-address", "127.0.0.1", "--secure-port", str(self.port),
            "--advertise-address", ADVERTISE_ADDRESS, "--endpoint-reconciler-type", "none",
            "--tls-cert-file", str(self.pki / "apiserver.crt"),
            "--tls-private-key-file", str(self.pki / "apiserver.key"),
            "--cert-dir", str(self.workdir / "apiserver-certs"),
            "--service-cluster-ip-range", SERVICE_CIDR, "--allow-privileged=true",
            "--authorization-mode", "RBAC", "--token-auth-file", str(self.workdir / "tokens.csv"),
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file", str(self.pki / "sa.key"),
            "--service-account-signing-key-file", str(self.pki / "sa.key"),
            "--v", "1",
        ])
        self.write_kubeconfig(self.kubeconfig)
        self.wait_ready(timeout)
        common = ["--kubeconfig", str(self.kubeconfig), "--leader-elect=false", "--bind-address", "127.0.0.1"]
        self.processes.start("kube-controller-manager", [
            str(self.bins / "kube-controller-manager"), *common, "--secure-port", str(free_port()),
            "--service-account-private-key-file", str(self.pki / "sa.key"),
            "--root-ca-file", str(self.pki / "ca.crt"),
            "--service-cluster-ip-range", SERVICE_CIDR, "--use-service-account-credentials=false",
            "--controllers", "*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle",
        ])
        self.processes.start("kube-scheduler", [
            str(self.bins / "kube-scheduler"), *common, "--secure-port", str(free_port()),
        ])
        self.create_node()
        self.processes.start("kwok", [
            str(self.kwok.binary), "--kubeconfig", str(self.kubeconfig), "--config", str(self.kwok.stages),
            "--manage-all-nodes=true", "--cidr", "10.244.0.0/16", "--node-ip", "192.0.2.20",
            "--server-address", f"127.0.0.1:{free_port()}",
        ])
        self.wait_node_ready(timeout)
        self.untaint_node()

    def untaint_node(self) -> None:
        """Drop the not-ready taint the API server put on the new Node: the node lifecycle controller that
        would lift it once kwok reports Ready is off (it would evict Pods whenever a heartbeat lags)."""
        status, body = self.request("PATCH", f"/api/v1/nodes/{NODE_NAME}", {"spec": {"taints": None}},
                                    content_type="application/merge-patch+json")
        if status != 200:
            raise RuntimeError(f"untainting Node {NODE_NAME}: {status} {body}")

    def stop(self) -> None:
        self.processes.stop()

    # -- access

    def write_kubeconfig(self, path: Path, context: str = CONTEXT) -> Path:
        import base64

        ca = base64.b64encode((self.pki / "ca.crt").read_bytes()).decode()
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": context, "cluster": {"server": self.server, "certificate-authority-data": ca}}],
            "users": [{"name": f"{context}-admin", "user": {"token": self.token}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": f"{context}-admin"}}],
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        path.chmod(0o600)
        return path

    def kubeconfig_entries(self, context: str) -> dict[str, Any]:
        """This plane's cluster, admin user and context under the name `context` (for a kubeconfig of several)."""
        config = yaml.safe_load(self.write_kubeconfig(self.workdir / f"kubeconfig-{context}", context).read_text())
        return {k: config[k] for k in ("clusters", "users", "contexts")}

    def request(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
                query: str = "") -> tuple[int, Any]:
        """One raw API call; (status, decoded JSON body)."""
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        url = f"{self.server}{path}" + (f"?{query}" if query else "")
        req = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": content_type, "Accept": "application/json"})
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
                return resp.status, _decode(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, _decode(err.read())

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            self.processes.check_running()
            with contextlib.suppress(OSError):
                status, last = self.request("GET", "/readyz")
                if status == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"kube-apiserver not ready in {timeout}s: {last}\n{self.processes.tail('kube-apiserver')}")

    def create_node(self) -> None:
        node = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE_NAME, "annotations": {"kwok.x-k8s.io/node": "fake"},
                         "labels": {"kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux",
                                    "kubernetes.io/arch": "amd64", "type": "kwok"}},
            "status": {"allocatable": {"cpu": "64", "memory": "256Gi", "pods": "250"},
                       "capacity": {"cpu": "64", "memory": "256Gi", "pods": "250"}},
        }
        status, body = self.request("POST", "/api/v1/nodes", node)
        if status not in (201, 409):
            raise RuntimeError(f"creating Node {NODE_NAME}: {status} {body}")

    def wait_node_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.processes.check_running()
            _, node = self.request("GET", f"/api/v1/nodes/{NODE_NAME}")
            conditions = (node or {}).get("status", {}).get("conditions", []) if isinstance(node, dict) else []
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                return
            time.sleep(0.3)
        raise RuntimeError(f"Node {NODE_NAME} not Ready in {timeout}s\n{self.processes.tail('kwok')}")

    def version(self) -> str:
        _, body = self.request("GET", "/version")
        return str(body["gitVersion"])

    # -- kubectl

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        from support.k8s import kubectl

        res = subprocess.run([kubectl(), "--kubeconfig", str(self.kubeconfig), *args], input=stdin,
                             capture_output=True, text=True, check=False, timeout=scaled(300))
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {res.stderr.strip()[-3000:]}")
        return res

    def apply_files(self, paths: Sequence[Path], *, manager: str = "fleetstrap-tests") -> None:
        """Server-side apply (CRDs exceed the client-side last-applied annotation limit)."""
        files = [a for p in paths for a in ("-f", str(p))]
        self.kubectl("apply", "--server-side", "--force-conflicts", f"--field-manager={manager}", *files)

    def wait_crds_established(self, names: Sequence[str], timeout: float = 60.0) -> None:
        # `kubectl wait` fails at once on a CRD created a moment ago whose status has no conditions yet
        # (".status.conditions accessor error"): ask again until the apiserver has written them.
        timeout = scaled(timeout)
        deadline = time.monotonic() + timeout
        while True:
            res = self.kubectl("wait", "--for=condition=Established", f"--timeout={int(timeout)}s",
                               *(f"crd/{n}" for n in names), check=False)
            if res.returncode == 0:
                return
            if "accessor error" not in res.stderr or time.monotonic() > deadline:
                raise AssertionError(f"CRDs not established: {res.stderr.strip()[-3000:]}")
            time.sleep(0.5)


# ---------------------------------------------------------------- Flux controllers


@dataclass
class FluxControllers:
    """The four Flux controllers of one Flux release, as processes against a ControlPlane."""

    plane: ControlPlane
    build: FluxBuild
    extra_env: Mapping[str, str] = field(default_factory=dict)
    storage_port: int = 0
    listens: list[str] = field(default_factory=list)

    def start(self) -> None:
        names = list(self.build.binaries)
        try:
            self._start()
        except BaseException:
            self.plane.processes.stop(names)
            raise

    def _start(self) -> None:
        storage = self.plane.workdir / "flux-storage"
        storage.mkdir(parents=True, exist_ok=True)
        free_port = self.plane.processes.ports.port
        self.storage_port = free_port()
        env = {**self.extra_env, "KUBECONFIG": str(self.plane.kubeconfig), "RUNTIME_NAMESPACE": "flux-system"}
        # notification-controller receives the others' events on its own loopback port (its default :9090
        # is also source-controller's storage default).
        events = f"127.0.0.1:{free_port()}"
        self.listens = [f"127.0.0.1:{self.storage_port}", events]
        for name, binary in self.build.binaries.items():
            argv = [str(binary), "--metrics-addr", f"127.0.0.1:{free_port()}",
                    "--health-addr", f"127.0.0.1:{free_port()}", "--enable-leader-election=false",
                    "--log-level", "debug", "--log-encoding", "json"]
            if name == "notification-controller":
                argv += ["--events-addr", events, "--receiverAddr", f"127.0.0.1:{free_port()}"]
            else:
                argv += ["--events-addr", f"http://{events}/"]
            if name == "source-controller":
                addr = f"127.0.0.1:{self.storage_port}"
                argv += ["--storage-path", str(storage), "--storage-addr", addr, "--storage-adv-addr", addr]
            self.plane.processes.start(name, argv, env)
        self.wait_listening(scaled(60.0))

    def wait_listening(self, timeout: float) -> None:
        """Until source-controller serves artifacts and notification-controller takes events (the others
        reach them there), or one of the controllers exits."""
        deadline = time.monotonic() + timeout
        while True:
            self.plane.processes.check_running()
            if all(_listening(addr) for addr in self.listens):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"Flux controllers not listening on {self.listens} in {timeout:g}s\n{self.logs()}")
            time.sleep(0.3)

    def stop(self) -> None:
        self.plane.processes.stop(list(self.build.binaries))

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{self.plane.processes.tail(n, 40)}" for n in self.build.binaries)


def _listening(address: str) -> bool:
    import socket

    host, port = address.rsplit(":", 1)
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, int(port))) == 0


def write_kubeconfig(path: Path, planes: Mapping[str, ControlPlane]) -> Path:
    """One kubeconfig with a context per plane (name -> plane), the first one current: what a user with a hub
    and its spokes has."""
    config: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "current-context": next(iter(planes)),
                              "clusters": [], "users": [], "contexts": []}
    for context, plane in planes.items():
        for key, entries in plane.kubeconfig_entries(context).items():
            config[key].extend(entries)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)
    return path


@contextlib.contextmanager
def running_control_plane(workdir: Path, bins: Path, kwok: Kwok) -> Iterator[ControlPlane]:
    plane = ControlPlane(workdir, bins, kwok)
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@contextlib.contextmanager
def control_plane_for_tests(workdir: Path) -> Iterator[ControlPlane]:
    """Build (cached) and start a control plane; skip without Go (fail in CI)."""
    from support import cluster_tools
    from support.tools import require_command

    require_command("go", cluster_tools.GO_HINT)
    bins, kwok = cluster_tools.build_kubernetes(), cluster_tools.build_kwok()
    with running_control_plane(workdir, bins, kwok) as plane:
        yield plane



class Controllers(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


C = TypeVar("C", bound=Controllers)


def offline_env(plane: ControlPlane) -> dict[str, str]:
    """Only loopback for controllers: an HTTP(S) proxy on a port `plane` holds (bound, never listening) while its
    processes run, so whatever lives on the internet (the infrastructure charts) fails fast with a source error
    instead of reaching out."""
    closed = f"http://127.0.0.1:{plane.processes.ports.port()}"
    return {"HTTPS_PROXY": closed, "HTTP_PROXY": closed, "NO_PROXY": "127.0.0.1,localhost"}


@contextlib.contextmanager
def started(controllers: C) -> Iterator[C]:
    """`controllers` started, and stopped again however the block ends."""
    controllers.start()
    try:
        yield controllers
    finally:
        controllers.stop()


@contextlib.contextmanager
def running_flux(plane: ControlPlane, flux_version: str) -> Iterator[FluxControllers]:
    """The four controllers of Flux `flux_version` (built first, cached) running against `plane` with only
    loopback (`offline_env`), their CRDs applied and established before they start, as in a cluster where the
    Deployments start after the CRDs are applied."""
    from support import cluster_tools

    build = cluster_tools.build_flux(flux_version)
    plane.apply_files(build.crd_files(), manager="flux-install")
    plane.wait_crds_established(cluster_tools.crd_names(build.crd_files()))
    with started(FluxControllers(plane, build, extra_env=offline_env(plane))) as controllers:
        yield controllers

# ---------------------------------------------------------------- waiting


T = TypeVar("T")


def eventually(probe: Callable[[], T | None], what: str, plane: ControlPlane, logs: Callable[[], str],
               timeout: float) -> T:
    """Poll `probe` until it returns something; fail naming `what`, with `logs()`, after `timeout` seconds. Fails
    at once when one of `plane`'s processes (control plane or controllers) has died."""
    import pytest

    deadline = time.monotonic() + timeout
    while True:
        plane.processes.check_running()
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not reached in {timeout:g}s\n{logs()}")
        time.sleep(1.0)
