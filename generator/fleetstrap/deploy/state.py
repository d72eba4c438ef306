"""What the repo says about one service: each environment's values file and the versions it ran (git history).

Read once, at one revision, into frozen values; the plans in `fleetstrap.deploy` are built from this alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fleetstrap import gitrepo
from fleetstrap.answers import FleetAnswers
from fleetstrap.deploy.values import read_chart_version, read_image
from fleetstrap.errors import DeployError, ValuesError
from fleetstrap.plan import ANSWERS_DIR
from fleetstrap.repo import SERVICE_REPO_ANSWERS, load_fleet

# The trailer a rollback commit carries: the version it rolled away from is never picked again by a later
# rollback that finds no --to (it was rolled back for a reason).
ROLLED_BACK_TRAILER = "Fleetstrap-Rolled-Back-From"
_TRAILER = re.compile(rf"^{ROLLED_BACK_TRAILER}:\s*(\S+)\s*$", re.MULTILINE)


def values_path(env: str, service: str) -> str:
    return f"apps/{env}/{service}/values.yaml"


def chart_path(env: str, service: str) -> str:
    """The chart version an environment runs (split layout only)."""
    return f"apps/{env}/{service}/chart-version.yaml"


def updater_path(service: str) -> str:
    return f"argocd/image-updater/{service}.yaml"


@dataclass(frozen=True)
class Deployment:
    """One change of an environment's image tag in git: the commit that wrote it and the tag."""

    sha: str
    tag: str
    subject: str


@dataclass(frozen=True)
class EnvState:
    name: str
    values: str  # the values file at the revision
    tag: str
    repository: str
    deployments: tuple[Deployment, ...]  # oldest first, one per change of the tag
    rolled_back_from: frozenset[str]
    chart_text: str | None = None  # split layout: apps/<env>/<service>/chart-version.yaml at the revision
    chart: str | None = None  # its data.version: an exact version, or the range a following environment takes

    @property
    def ran(self) -> frozenset[str]:
        return frozenset(d.tag for d in self.deployments)


@dataclass(frozen=True)
class ServiceState:
    root: Path
    rev: str  # the commit everything was read at
    service: str
    answers: FleetAnswers
    envs: tuple[EnvState, ...]  # in promotion order; environments without the service are left out
    updater: str | None  # argocd/image-updater/<service>.yaml, when the fleet has one

    def env(self, name: str) -> EnvState:
        for e in self.envs:
            if e.name == name:
                return e
        known = ", ".join(self.answers.environments)
        if name in self.answers.environments:
            raise DeployError(f"service {self.service} has no {values_path(name, self.service)} in this repo")
        raise DeployError(f"unknown environment {name!r}; this fleet has: {known}")


def is_production(answers: FleetAnswers, env: str) -> bool:
    """As the templates decide it: the last of several environments, or one named prod/production (the Argo CD
    ApplicationSet syncs `production` by hand)."""
    envs = answers.environments
    return env in {"prod", "production"} or (len(envs) > 1 and env == envs[-1])


def check_fleet_repo(root: Path) -> None:
    """Refuse a split layout's service repository with the reason (load_fleet would call it no fleet repo)."""
    if not (root / ANSWERS_DIR).is_dir() and (root / SERVICE_REPO_ANSWERS).is_file():
        raise DeployError(f"{root} is a service repository (split layout): the environments' values live in the "
                          "fleet repository; run this there")


def fleet_services(root: Path) -> tuple[FleetAnswers, tuple[str, ...]]:
    repo = load_fleet(root)
    names = sorted({c.name.split("/", 1)[1] for c in repo.components if c.unit == "service"} |
                   set(repo.answers.services))
    return repo.answers, tuple(names)


def _blobs(root: Path, specs: list[str]) -> list[bytes | None]:
    """The contents of `rev:path` specs, with one `git cat-file --batch` for all (a long history is thousands)."""
    if not specs:
        return []
    out = gitrepo.run(root, "cat-file", "--batch", text_input="".join(f"{s}\n" for s in specs)).encode(
        "utf-8", "surrogateescape")
    blobs: list[bytes | None] = []
    at = 0
    for _ in specs:
        end = out.index(b"\n", at)
        header = out[at:end].split()
        if len(header) != 3 or header[1] != b"blob":  # "<spec> missing": deleted at that commit
            blobs.append(None)
            at = end + 1
            continue
        size = int(header[2])
        blobs.append(out[end + 1 : end + 1 + size])
        at = end + 1 + size + 1
    return blobs


def _history(root: Path, rev: str, rel: str) -> tuple[tuple[Deployment, ...], frozenset[str]]:
    # --first-parent: what the branch itself held, so what the clusters following it ran. A tag changed twice on
    # a pull request's branch ran only as its merge commit leaves it.
    out = gitrepo.run(root, "log", "--first-parent", "--format=%H%x1f%s%x1f%B%x1e", rev, "--", rel)
    records = [[*r.strip("\n").split("\x1f"), "", ""][:3] for r in reversed(out.split("\x1e")) if r.strip()]
    deployments: list[Deployment] = []
    rolled: set[str] = set()
    for (sha, subject, body), blob in zip(records, _blobs(root, [f"{r[0]}:{rel}" for r in records]), strict=True):
        rolled.update(_TRAILER.findall(body))  # oldest first
        if blob is None:
            continue
        try:
            tag = read_image(blob.decode("utf-8", "replace"), rel).tag
        except ValuesError:
            continue  # a broken revision (e.g. a conflict committed) ran nothing
        if not deployments or deployments[-1].tag != tag:
            deployments.append(Deployment(sha, tag, subject))
    return tuple(deployments), frozenset(rolled)


def read_service_state(root: Path, service: str, rev: str = "HEAD") -> ServiceState:
    """Everything the plans need about `service`, read from the commit `rev` of the repo at `root`."""
    root = root.resolve()
    check_fleet_repo(root)
    answers, services = fleet_services(root)
    if service not in services:
        raise DeployError(f"unknown service {service!r}; this fleet has: {', '.join(services) or 'none'}")
    sha = gitrepo.run(root, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}", check=False).strip()
    if not sha:
        raise DeployError(f"{root} has no commit {rev!r} to read the deployed versions from")
    envs = []
    for env in answers.environments:
        rel = values_path(env, service)
        blob = gitrepo.read_blob(root, sha, rel)
        if blob is None:
            continue
        text = blob.decode("utf-8")
        image = read_image(text, rel)
        deployments, rolled = _history(root, sha, rel)
        chart_rel = chart_path(env, service)
        chart_blob = gitrepo.read_blob(root, sha, chart_rel)
        chart_text = chart_blob.decode("utf-8") if chart_blob is not None else None
        chart = read_chart_version(chart_text, chart_rel) if chart_text is not None else None
        envs.append(EnvState(env, text, image.tag, image.repository, deployments, rolled, chart_text, chart))
    updater = gitrepo.read_blob(root, sha, updater_path(service))
    return ServiceState(root, sha, service, answers, tuple(envs),
                        updater.decode("utf-8") if updater is not None else None)
