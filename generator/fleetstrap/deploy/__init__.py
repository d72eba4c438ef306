"""Day 2 the GitOps way: `promote`, `rollback` and `resume` a service's version as git changes.

Data flows one way: `read_service_state` (state.py) reads the repo at one commit into frozen values, a pure
`build_promotion` / `build_rollback` / `build_resume` turns it into a `DeployChange` (the files before and after,
the commit message, the pull request), and `apply.py` writes it: a commit in the checkout, or a branch and a pull
request through the forge layer (publish/pullrequest.py). A change with no file to change is "up to date".

What an environment runs is `image.tag` in `apps/<env>/<service>/values.yaml` (both engines read that file, both
layouts keep it in the fleet repo). The versions an environment ran are the tags its values file held in git
history: the release workflow's commits (`<service>: deploy X to <env>`), the image bots' and ours.
"""

from __future__ import annotations

import difflib
import textwrap
from dataclasses import dataclass, field
from typing import Literal

from fleetstrap.deploy import values as v
from fleetstrap.deploy.state import (
    ROLLED_BACK_TRAILER,
    EnvState,
    ServiceState,
    chart_path,
    is_production,
    updater_path,
    values_path,
)
from fleetstrap.errors import DeployError

Action = Literal["promote", "rollback", "resume"]
BRANCH_PREFIX = "fleetstrap/"


@dataclass(frozen=True)
class FileChange:
    path: str  # relative to the repo root, posix
    before: str
    after: str


@dataclass(frozen=True)
class DeployChange:
    action: Action
    service: str
    env: str
    current: str  # the tag the environment runs now (in git)
    target: str  # the tag it will run
    files: tuple[FileChange, ...]  # empty: up to date
    message: str  # the commit message
    branch: str  # with --pr
    supersedes: str  # with --pr: open pull requests from branches with this prefix are replaced by this one
    title: str
    body: str  # the pull request body
    source_env: str | None = None  # promote: where the version comes from
    notes: tuple[str, ...] = field(default=())  # worth telling the user (printed, and in the body)

    @property
    def up_to_date(self) -> bool:
        return not self.files

    def diff(self) -> str:
        out: list[str] = []
        for f in self.files:
            out += difflib.unified_diff(f.before.splitlines(keepends=True), f.after.splitlines(keepends=True),
                                        f"a/{f.path}", f"b/{f.path}")
        return "".join(line if line.endswith("\n") else line + "\n" for line in out)


def resume_command(service: str, env: str) -> str:
    return f"fleetstrap resume {service} --env {env}"


# ---------------------------------------------------------------- what runs where


def where_table(state: ServiceState, clusters: tuple[tuple[str, str, str], ...] = ()) -> list[str]:
    """Markdown: the service's version per environment in the repo, and on each cluster when read."""
    lines = ["| environment | in git | paused automation |", "|---|---|---|"]
    lines += [f"| {e.name} | `{e.tag}` | {'yes' if _paused(state, e) else 'no'} |" for e in state.envs]
    if clusters:
        lines += ["", "| cluster | environment | running |", "|---|---|---|"]
        lines += [f"| {c} | {env} | {running} |" for c, env, running in clusters]
    return lines


def _paused(state: ServiceState, env: EnvState) -> bool:
    name = f"{state.service}-{env.name}"
    return v.is_paused(env.values) or (state.updater is not None and v.updater_pinned(state.updater, name))


# ---------------------------------------------------------------- the edits


def _automation(state: ServiceState) -> tuple[bool, bool]:
    """(Flux markers, Argo CD Image Updater) this fleet's image automation uses."""
    a = state.answers
    on = a.image_automation
    return on and "flux" in a.engines, on and "argocd" in a.engines and state.updater is not None


def _values_change(state: ServiceState, env: EnvState, tag: str, repository: str | None,
                   pause: bool) -> FileChange:
    rel = values_path(env.name, state.service)
    after = v.set_image(env.values, rel, tag=tag, repository=repository if repository != env.repository else None)
    if pause:
        after = v.pause_markers(after, resume_command(state.service, env.name))
    return FileChange(rel, env.values, after)


def _follows(state: ServiceState, env: str) -> bool:
    """Whether the Argo CD Image Updater has an ImageUpdater for `env` (only environments that follow new tags)."""
    return state.updater is not None and v.has_updater(state.updater, f"{state.service}-{env}")


def _updater_change(state: ServiceState, env: str, pin_to: str | None) -> FileChange | None:
    if state.updater is None or not _follows(state, env):
        return None
    name, rel = f"{state.service}-{env}", updater_path(state.service)
    after = v.pin_updater(state.updater, rel, name, pin_to) if pin_to else v.unpin_updater(state.updater, rel, name)
    return FileChange(rel, state.updater, after)


def _chart_change(state: ServiceState, env: EnvState, version: str) -> FileChange | None:
    """Split layout: the environment's pinned chart version set to `version` (a release's chart carries the
    release's version, so the chart that goes with image tag X is chart X). None where the environment pins no
    chart (monorepo) or follows a range (image automation there takes new charts itself)."""
    if env.chart_text is None or env.chart is None or not v.is_exact_version(env.chart):
        return None
    rel = chart_path(env.name, state.service)
    return FileChange(rel, env.chart_text, v.set_chart_version(env.chart_text, rel, version))


def _chart_notes(state: ServiceState, source: EnvState | None, target: EnvState, tag: str) -> tuple[str, list[str]]:
    """The chart version that goes with `tag` into `target`, and what to tell the user about it."""
    if target.chart is None:
        return "", []
    # From an environment that pins one: that version; from one that follows a range: the release's own chart.
    version = source.chart if source is not None and source.chart and v.is_exact_version(source.chart) else tag
    if not v.is_exact_version(target.chart):
        return "", [f"{target.name} follows {state.service} charts within {target.chart} "
                    f"({chart_path(target.name, state.service)}): the chart is left to image automation"]
    return version, []


def _changed(*changes: FileChange | None) -> tuple[FileChange, ...]:
    return tuple(c for c in changes if c is not None and c.before != c.after)


# ---------------------------------------------------------------- promote


def build_promotion(state: ServiceState, to_env: str, *, from_env: str | None = None, version: str | None = None,
                    force: bool = False, where: tuple[tuple[str, str, str], ...] = ()) -> DeployChange:
    """Move the version `from_env` (default: the environment before `to_env` in promotion order) runs, or
    `version` if it ran there, into `to_env`."""
    order = state.answers.environments
    target = state.env(to_env)
    index = order.index(to_env)
    if from_env is None:
        if index == 0:
            raise DeployError(f"{to_env} is the first environment ({' -> '.join(order)}): nothing to promote from; "
                              "its versions come from the release workflow")
        from_env = order[index - 1]
    source = state.env(from_env)
    from_index = order.index(from_env)
    if from_index >= index:
        raise DeployError(f"promotion goes forward ({' -> '.join(order)}): {from_env} does not come before "
                          f"{to_env}; to go back to an older version use fleetstrap rollback")
    skipped = order[from_index + 1 : index]
    if skipped and not force:
        raise DeployError(f"promoting {state.service} from {from_env} to {to_env} skips {', '.join(skipped)}; "
                          "promote through it first, or pass --force")
    tag = version or source.tag
    if tag not in source.ran and tag != source.tag:
        ran = ", ".join(d.tag for d in source.deployments) or "none"
        raise DeployError(f"{state.service} {tag} never ran in {from_env} (its history: {ran}); "
                          "promote only what the environment before has run")
    _, argo = _automation(state)  # Flux markers stay as they are: promote writes only the tag's value
    paused = _paused(state, target)
    notes: list[str] = []
    chart, chart_notes = _chart_notes(state, source, target, tag)
    notes += chart_notes
    if paused:
        notes.append(f"image automation for {state.service} in {to_env} stays paused (rolled back earlier); "
                     f"{resume_command(state.service, to_env)} resumes it")
    files = _changed(
        _values_change(state, target, tag, source.repository, pause=False),
        # Split layout: the chart moves with the image (apps/<env>/<service>/chart-version.yaml).
        _chart_change(state, target, chart) if chart else None,
        # A paused Image Updater would pick its pinned tag again: the pin follows the promoted version.
        _updater_change(state, to_env, tag) if argo and paused else None,
    )
    production = is_production(state.answers, to_env)
    subject = f"{state.service}: promote {tag} from {from_env} to {to_env}"
    body = [f"Promotes **{state.service}** `{tag}` from **{from_env}** to **{to_env}** "
            f"(`{values_path(to_env, state.service)}`: `{target.tag}` → `{tag}`"
            + (f"; chart `{target.chart}` → `{chart}`" if chart and chart != target.chart else "") + ").", ""]
    if skipped:
        body += [f"> [!WARNING]\n> Skips {', '.join(skipped)} (--force).", ""]
    body += [f"`{tag}` was deployed to {from_env} by commit {_since(source, tag)}.", ""]
    if production:
        body += [f"### What runs where now ({to_env} is a production environment)", "", *where_table(state, where),
                 ""]
        if not where:
            body += ["_The clusters were not asked (run with --clusters and cluster access to add them)._", ""]
    body += [*(f"- {n}" for n in notes), *([""] if notes else []),
             "<sub>Opened by `fleetstrap promote --pr`.</sub>"]
    message = f"{subject}\n\nPromoted by fleetstrap: {from_env} ran {tag}" + (
        f" (skipping {', '.join(skipped)})" if skipped else "") + ".\n"
    return DeployChange("promote", state.service, to_env, target.tag, tag, files, message,
                        f"{BRANCH_PREFIX}promote-{state.service}-{to_env}-{tag}",
                        f"{BRANCH_PREFIX}promote-{state.service}-{to_env}-", subject,
                        "\n".join(body) + "\n", from_env, tuple(notes))


def _since(env: EnvState, tag: str) -> str:
    last = next((d for d in reversed(env.deployments) if d.tag == tag), None)
    return f"{last.sha[:12]} ({last.subject})" if last else "unknown"


# ---------------------------------------------------------------- rollback and resume


def previous_version(env: EnvState) -> str | None:
    """The version the environment ran before the current one, skipping versions rolled back from."""
    seen_current = False
    for d in reversed(env.deployments):
        if d.tag == env.tag and not seen_current:
            seen_current = True
            continue
        if seen_current and d.tag != env.tag and d.tag not in env.rolled_back_from:
            return d.tag
    return None


def build_rollback(state: ServiceState, env_name: str, *, to: str | None = None) -> DeployChange:
    env = state.env(env_name)
    if to is None:
        to = previous_version(env)
        if to is None:
            raise DeployError(f"no earlier version of {state.service} in {env_name} in the git history of "
                              f"{values_path(env_name, state.service)}; pass --to VERSION")
    elif to not in env.ran:
        ran = ", ".join(d.tag for d in env.deployments) or "none"
        raise DeployError(f"{state.service} {to} never ran in {env_name} (its history: {ran}); "
                          "rollback returns to a version the environment ran")
    flux, argo_on = _automation(state)
    argo = argo_on and _follows(state, env_name)
    pause_flux = flux and (v.has_markers(env.values) or v.is_paused(env.values))
    # Split layout: the chart goes back with the image (the chart of release X is chart X).
    files = _changed(_values_change(state, env, to, None, pause=pause_flux),
                     _chart_change(state, env, to),
                     _updater_change(state, env_name, to) if argo else None)
    resume = resume_command(state.service, env_name)
    how = []
    if pause_flux:
        how.append(f"Flux: the setter markers in {values_path(env_name, state.service)} are disabled, so the "
                   "ImageUpdateAutomation no longer rewrites this service's tag in this environment")
    elif flux:
        how.append(f"Flux: {values_path(env_name, state.service)} has no setter markers, so the "
                   "ImageUpdateAutomation does not touch it: nothing to pause")
    if argo:
        how.append(f"Argo CD Image Updater: ImageUpdater {state.service}-{env_name} allows only {to} "
                   f"({updater_path(state.service)})")
    elif argo_on:
        how.append(f"Argo CD Image Updater: {env_name} has no ImageUpdater (only promote moves its tag): "
                   "nothing to pause")
    if not how:
        how.append("no image automation in this fleet: nothing to pause")
    subject = f"{state.service}: roll back {env_name} from {env.tag} to {to}"
    pinned = "\n".join(f"- {h}" for h in how)
    wrapped = "\n".join(textwrap.fill(h, 72, initial_indent="- ", subsequent_indent="  ") for h in how)
    message = (f"{subject}\n\nImage automation for {state.service} in {env_name} is pinned in git:\n{wrapped}\n\n"
               + (f"Resume it with: {resume}\n\n" if pause_flux or argo else "")
               + f"{ROLLED_BACK_TRAILER}: {env.tag}\n")
    body = [f"Rolls **{state.service}** in **{env_name}** back from `{env.tag}` to `{to}`.", "", "### Pinned", "",
            pinned, "", *([f"Resume with `{resume}` once a fixed version is out.", ""] if pause_flux or argo else []),
            "### What runs where now", "", *where_table(state), "", "<sub>Opened by `fleetstrap rollback --pr`.</sub>"]
    return DeployChange("rollback", state.service, env_name, env.tag, to, files, message,
                        f"{BRANCH_PREFIX}rollback-{state.service}-{env_name}-{to}",
                        f"{BRANCH_PREFIX}rollback-{state.service}-{env_name}-", subject, "\n".join(body) + "\n")


def build_resume(state: ServiceState, env_name: str) -> DeployChange:
    env = state.env(env_name)
    flux, argo = _automation(state)
    resumed = v.resume_markers(env.values) if flux else env.values
    files = _changed(FileChange(values_path(env_name, state.service), env.values, resumed),
                     _updater_change(state, env_name, None) if argo else None)
    subject = f"{state.service}: resume image automation in {env_name}"
    why = (f"Undoes the pin of `fleetstrap rollback`: the image automation picks the newest version its policy "
           f"allows again (now {env.tag} in git).")
    message = f"{subject}\n\n{textwrap.fill(why, 72)}\n"
    body = f"{why}\n\n<sub>Opened by `fleetstrap resume --pr`.</sub>\n"
    return DeployChange("resume", state.service, env_name, env.tag, env.tag, files, message,
                        f"{BRANCH_PREFIX}resume-{state.service}-{env_name}",
                        f"{BRANCH_PREFIX}resume-{state.service}-{env_name}", subject, body)
