"""Real git servers on loopback for push tests (plain helpers; the test modules wrap them in fixtures).

- lighttpd + `git http-backend` (CGI) behind basic auth; wrong credentials fail fast (no auth delay)
- `git daemon --enable=receive-pack`
- `sshd` on a loopback port with a throwaway config and host key, authorizing given public keys
Each server gets a loopback port reserved until it stops (support.ports: no release-then-bind gap), a start
timeout and a teardown that kills only the process it started. A missing server program skips with the package
that provides it (support.tools; a failure under CI=true); a server that cannot start FAILS with its own error.
"""

from __future__ import annotations

import os
import socket
import subprocess
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from support.ports import PortReservation
from support.tools import require_tool, scaled


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 15.0) -> None:
    timeout = scaled(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"{what} exited early ({proc.returncode}): {err[-2000:]}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()


def bare_repo(root: Path, name: str) -> Path:
    path = root / name
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    subprocess.run(["git", "-C", str(path), "config", "http.receivepack", "true"], check=True)
    return path


def repo_log(bare: Path, branch: str = "main") -> list[str]:
    done = subprocess.run(["git", "-C", str(bare), "rev-list", f"refs/heads/{branch}"], capture_output=True,
                          text=True, check=False)
    return done.stdout.split()


@dataclass
class Server:
    url: str
    root: Path
    proc: subprocess.Popen[bytes] = field(repr=False)
    extra: dict[str, str] = field(default_factory=dict)
    ports: PortReservation = field(default_factory=PortReservation, repr=False)

    def stop(self) -> None:
        stop(self.proc)
        self.ports.release()


def _started(what: str, argv: list[str], ports: PortReservation, port: int) -> subprocess.Popen[bytes]:
    """Start a server and wait until it listens on `port`; on any failure stop it, free the port and raise
    with the server's own error (a fixture that cannot start its server fails, never skips)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_port(port, proc, what)
    except BaseException:
        stop(proc)
        ports.release()
        raise
    return proc


def start_lighttpd(workdir: Path, users: dict[str, str]) -> Server:
    """git smart HTTP at <url>/git/<repo>.git, basic auth from `users` (user -> password)."""
    lighttpd = require_tool("lighttpd")
    backend = require_tool("git-http-backend")
    root = workdir / "repos"
    root.mkdir(parents=True, exist_ok=True)
    userfile = workdir / "users"
    userfile.write_text("".join(f"{u}:{p}\n" for u, p in users.items()), encoding="utf-8")
    ports = PortReservation()
    port = ports.port()
    conf = workdir / "lighttpd.conf"
    conf.write_text(textwrap.dedent(f"""\
        server.document-root = "{root}"
        server.bind = "127.0.0.1"
        server.port = {port}
        server.errorlog = "{workdir}/error.log"
        server.modules = ("mod_auth", "mod_authn_file", "mod_alias", "mod_setenv", "mod_cgi")
        alias.url = ("/git/" => "{backend}/")
        $HTTP["url"] =~ "^/git/" {{
          cgi.assign = ("" => "")
          setenv.set-environment = ("GIT_PROJECT_ROOT" => "{root}", "GIT_HTTP_EXPORT_ALL" => "1")
        }}
        auth.backend = "plain"
        auth.backend.plain.userfile = "{userfile}"
        auth.require = ("/git/" => ("method" => "basic", "realm" => "git", "require" => "valid-user"))
        auth.delay-invalid-creds = "disable"
        """), encoding="utf-8")
    proc = _started("lighttpd", [lighttpd, "-D", "-f", str(conf)], ports, port)
    return Server(f"http://127.0.0.1:{port}/git", root, proc, ports=ports)


def start_git_daemon(workdir: Path) -> Server:
    git = require_tool("git")
    require_tool("git-daemon")  # `git daemon` runs it from git's exec path
    root = workdir / "daemon"
    root.mkdir(parents=True, exist_ok=True)
    ports = PortReservation()
    port = ports.port()
    proc = _started("git daemon", [git, "daemon", "--reuseaddr", "--export-all", "--enable=receive-pack",
                                   f"--base-path={root}", "--listen=127.0.0.1", f"--port={port}", str(root)],
                    ports, port)
    return Server(f"git://127.0.0.1:{port}", root, proc, ports=ports)


def start_sshd(workdir: Path, authorized: Sequence[str]) -> Server:
    """sshd for the current user on loopback; `authorized` are public key lines. extra: known_hosts path."""
    sshd = require_tool("sshd")
    keygen = require_tool("ssh-keygen")
    d = workdir / "sshd"
    d.mkdir(parents=True, exist_ok=True)
    hostkey = d / "host_ed25519"
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey)], check=True)
    auth = d / "authorized_keys"
    auth.write_text("".join(k.strip() + "\n" for k in authorized), encoding="utf-8")
    auth.chmod(0o600)
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir sshd insists on
    ports = PortReservation()
    port = ports.port()
    conf = d / "sshd_config"
    conf.write_text(textwrap.dedent(f"""\
        Port {port}
        ListenAddress 127.0.0.1
        HostKey {hostkey}
        PidFile {d}/sshd.pid
        AuthorizedKeysFile {auth}
        StrictModes no
        PubkeyAuthentication yes
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        UsePAM no
        PermitRootLogin prohibit-password
        """), encoding="utf-8")
    proc = _started("sshd", [sshd, "-D", "-e", "-f", str(conf)], ports, port)
    known = d / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {(d / 'host_ed25519.pub').read_text().split(' ', 2)[0]} "
                     f"{(d / 'host_ed25519.pub').read_text().split()[1]}\n", encoding="utf-8")
    import getpass

    return Server(f"ssh://{getpass.getuser()}@127.0.0.1:{port}", d, proc, {"known_hosts": str(known)}, ports)


# ---------------------------------------------------------------- a tiny fleet repo (no templates needed)
CI_WORKFLOW = """\
name: ci
on:
  pull_request: {}
  push:
    branches: [main]
jobs:
  validate:
    runs-on: ubuntu-latest
    steps:
      - run: echo "${{ vars.REGISTRY }}"
  build:
    name: Build images
    runs-on: ubuntu-latest
    environment: staging
    steps:
      - run: echo "${{ secrets.REGISTRY_PASSWORD }}"
  matrix-test:
    strategy:
      matrix: {os: [a, b]}
    runs-on: ubuntu-latest
    steps:
      - run: echo
"""


def make_fleet(path: Path, *, owner: str = "octo", name: str = "fleet-infra", clusters: Sequence[str] = ("dev",),
               image_automation: bool = False, workflows: bool = True) -> Path:
    (path / ".fleetstrap" / "answers").mkdir(parents=True, exist_ok=True)
    cl = "".join(f"  - {{name: {c}, environment: staging}}\n" for c in clusters)
    (path / ".fleetstrap" / "answers" / "fleet.yml").write_text(
        f"owner: {owner}\nfleet_name: {name}\nregistry: ghcr.io/{owner}\n"
        f"image_automation: {str(image_automation).lower()}\n"
        f"environments: [staging, production]\nservices: [hello]\nclusters:\n{cl}", encoding="utf-8")
    (path / "clusters" / clusters[0]).mkdir(parents=True, exist_ok=True)
    (path / "clusters" / clusters[0] / "kustomization.yaml").write_text("resources: []\n", encoding="utf-8")
    if workflows:
        (path / ".github" / "workflows").mkdir(parents=True, exist_ok=True)
        (path / ".github" / "workflows" / "ci.yml").write_text(CI_WORKFLOW, encoding="utf-8")
    return path


def files_containing(root: Path, needles: Sequence[str]) -> list[str]:
    """Every file under root (including .git/) whose bytes contain one of the needles."""
    hits = []
    raw = [n.encode() for n in needles if n]
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            data = p.read_bytes()
            if any(n in data for n in raw):
                hits.append(str(p.relative_to(root)))
    return hits
