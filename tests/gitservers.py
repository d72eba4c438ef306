"""Real git servers on loopback for push tests (plain helpers; the test modules wrap them in fixtures).

- lighttpd + `git http-backend` (CGI) behind basic auth; wrong credentials fail fast (no auth delay)
- `git daemon --enable=receive-pack`
- `sshd` on a loopback port with a throwaway config and host key, authorizing given public keys
Each server gets a free port, a start timeout and a teardown that kills only the process it started.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HTTP_BACKEND = Path("/usr/lib/git-core/git-http-backend")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"{what} exited early ({proc.returncode}): {err[-500:]}")
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


def need(binary: str) -> str:
    path = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if path is None:
        pytest.skip(f"{binary} is not installed (CI installs it with apt-get)")
    return path


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

    def stop(self) -> None:
        stop(self.proc)


def start_lighttpd(workdir: Path, users: dict[str, str]) -> Server:
    """git smart HTTP at <url>/git/<repo>.git, basic auth from `users` (user -> password)."""
    lighttpd = need("lighttpd")
    if not HTTP_BACKEND.exists():
        pytest.skip("git http-backend not found")
    root = workdir / "repos"
    root.mkdir(parents=True, exist_ok=True)
    userfile = workdir / "users"
    userfile.write_text("".join(f"{u}:{p}\n" for u, p in users.items()), encoding="utf-8")
    port = free_port()
    conf = workdir / "lighttpd.conf"
    conf.write_text(textwrap.dedent(f"""\
        server.document-root = "{root}"
        server.bind = "127.0.0.1"
        server.port = {port}
        server.errorlog = "{workdir}/error.log"
        server.modules = ("mod_auth", "mod_authn_file", "mod_alias", "mod_setenv", "mod_cgi")
        alias.url = ("/git/" => "{HTTP_BACKEND}/")
        $HTTP["url"] =~ "^/git/" {{
          cgi.assign = ("" => "")
          setenv.set-environment = ("GIT_PROJECT_ROOT" => "{root}", "GIT_HTTP_EXPORT_ALL" => "1")
        }}
        auth.backend = "plain"
        auth.backend.plain.userfile = "{userfile}"
        auth.require = ("/git/" => ("method" => "basic", "realm" => "git", "require" => "valid-user"))
        auth.delay-invalid-creds = "disable"
        """), encoding="utf-8")
    proc = subprocess.Popen([lighttpd, "-D", "-f", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_port(port, proc, "lighttpd")
    except RuntimeError:
        stop(proc)
        raise
    return Server(f"http://127.0.0.1:{port}/git", root, proc)


def start_git_daemon(workdir: Path) -> Server:
    root = workdir / "daemon"
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen(["git", "daemon", "--reuseaddr", "--export-all", "--enable=receive-pack",
                             f"--base-path={root}", "--listen=127.0.0.1", f"--port={port}", str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_port(port, proc, "git daemon")
    except RuntimeError:
        stop(proc)
        raise
    return Server(f"git://127.0.0.1:{port}", root, proc)


def start_sshd(workdir: Path, authorized: Sequence[str]) -> Server:
    """sshd for the current user on loopback; `authorized` are public key lines. extra: known_hosts path."""
    sshd = need("sshd")
    keygen = need("ssh-keygen")
    d = workdir / "sshd"
    d.mkdir(parents=True, exist_ok=True)
    hostkey = d / "host_ed25519"
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey)], check=True)
    auth = d / "authorized_keys"
    auth.write_text("".join(k.strip() + "\n" for k in authorized), encoding="utf-8")
    auth.chmod(0o600)
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir sshd insists on
    port = free_port()
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
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_port(port, proc, "sshd")
    except RuntimeError as exc:
        stop(proc)
        pytest.skip(f"sshd cannot run here: {exc}")
    known = d / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {(d / 'host_ed25519.pub').read_text().split(' ', 2)[0]} "
                     f"{(d / 'host_ed25519.pub').read_text().split()[1]}\n", encoding="utf-8")
    import getpass

    return Server(f"ssh://{getpass.getuser()}@127.0.0.1:{port}", d, proc, {"known_hosts": str(known)})


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
