"""Supply chain of the generated repositories: actions pinned by commit, zizmor-clean workflows, update bots that
leave deployed tags alone, cargo deny on the service, keyless signing of releases and Flux verifying them.

Every blueprint is rendered in both layouts: monorepo (one fleet repository) and split (the fleet repository
plus each service's own repository).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetstrap.answers import build_answers
from fleetstrap.blueprints import list_blueprints, resolve_blueprint
from fleetstrap.pins import action_pins, pin
from fleetstrap.plan import build_service_repo_component
from fleetstrap.render import ensure_template_mirror, render_components
from fleetstrap.validate import ValidateOptions, validate_repo
from support import k8s
from support.cargo_deny import cargo_deny
from support.fleet import render_blueprint
from support.tools import require_tool

BLUEPRINTS = sorted(b.name for b in list_blueprints())
LAYOUTS = ("monorepo", "split")
SHA = re.compile(r"^[0-9a-f]{40}$")
# `uses: owner/repo[/path]@ref # comment` as written in a workflow (the comment is lost to a YAML parser).
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>[^\s#]+)(?:\s+#\s*(?P<comment>\S+))?\s*$")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


tool = require_tool


@cache
def service_repo(blueprint: str, service: str, **overrides: Any) -> Path:
    """A split-layout service repository, rendered as `fleetstrap init` does (cached per test process)."""
    answers = build_answers({**resolve_blueprint(blueprint), "repo_layout": "split", **overrides})
    root = render_blueprint(blueprint, repo_layout="split", **overrides).root.parent / (
        f"{blueprint}-{service}-repo" + "".join(f"-{k}-{v}" for k, v in sorted(overrides.items())))
    if not root.exists():
        render_components([build_service_repo_component(answers, service)], root, ensure_template_mirror())
    return root


def repositories(blueprint: str, layout: str, **overrides: Any) -> list[Path]:
    """The repositories a fleet consists of: the fleet repository first, then split-layout service repositories."""
    if layout == "monorepo":
        return [render_blueprint(blueprint, **overrides).root]
    fleet = render_blueprint(blueprint, repo_layout="split", **overrides)
    return [fleet.root, *(service_repo(blueprint, s, **overrides) for s in fleet.answers.services)]


def workflow_files(root: Path) -> list[Path]:
    return sorted((root / ".github" / "workflows").glob("*.yml"))


def all_workflows(blueprint: str, layout: str) -> list[Path]:
    files = [f for repo in repositories(blueprint, layout) for f in workflow_files(repo)]
    assert files, f"{blueprint}/{layout}: no workflows rendered"
    return files


def zizmor_findings(files: list[Path], *extra: str) -> list[dict[str, Any]]:
    proc = subprocess.run([tool("zizmor"), "--offline", "--persona", "regular", "--format", "json", "--no-progress",
                           *extra, *map(str, files)], capture_output=True, text=True, check=False)
    assert proc.stdout.strip(), proc.stderr
    findings: list[dict[str, Any]] = json.loads(proc.stdout)
    return findings


def describe(findings: list[dict[str, Any]]) -> str:
    return "\n".join(f"{f['ident']} ({f['determinations']['severity']}): "
                     f"{f['locations'][0]['symbolic']['key']} {f['locations'][0]['concrete']['feature']}"
                     for f in findings)


# ---------------------------------------------------------------- actions pinned by commit


def test_pins_hold_a_commit_and_a_version_per_action() -> None:
    actions = action_pins()
    assert {"gha_checkout", "gha_cosign_installer", "gha_rust_toolchain"} <= set(actions)
    for name, action in actions.items():
        assert SHA.match(action.sha), f"{name}: {action.sha!r} is not a full commit id"
        assert re.fullmatch(r"[A-Za-z0-9-]+/[A-Za-z0-9._-]+(/[A-Za-z0-9._/-]+)?", action.action), name
        assert re.fullmatch(r"v\d+\.\d+\.\d+|stable", action.version), f"{name}: version {action.version!r}"
    assert len({a.sha for a in actions.values()}) == len(actions), "two pins share a commit"


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("blueprint", BLUEPRINTS)
def test_every_action_is_pinned_by_commit_with_its_version(blueprint: str, layout: str) -> None:
    pinned = {(a.action, a.sha): a.version for a in action_pins().values()}
    seen = 0
    for path in all_workflows(blueprint, layout):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not re.match(r"^\s*(-\s+)?uses:", line):
                continue
            seen += 1
            where = f"{path.name}:{n}: {line.strip()}"
            m = USES.match(line)
            assert m, where
            action, _, sha = m["ref"].partition("@")
            assert SHA.match(sha), f"{where}: not pinned by a full commit id"
            assert (action, sha) in pinned, f"{where}: not the commit pins.yml holds for {action}"
            assert m["comment"] == pinned[(action, sha)], f"{where}: the comment must name {pinned[(action, sha)]}"
    assert seen >= 3


# ---------------------------------------------------------------- zizmor


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("blueprint", BLUEPRINTS)
def test_zizmor_finds_nothing_at_medium_or_above(blueprint: str, layout: str) -> None:
    findings = zizmor_findings(all_workflows(blueprint, layout), "--min-severity", "medium")
    assert not findings, describe(findings)


def test_zizmor_waiver_is_only_the_gitops_push_checkout(tmp_path: Path) -> None:
    """The one inline waiver: the checkout whose credential the release job's `git push` needs."""
    for layout in LAYOUTS:
        checked, waivers = 0, 0
        for repo in repositories("starter", layout):
            for path in workflow_files(repo):
                checked += 1
                text = path.read_text(encoding="utf-8")
                waived = re.findall(r"zizmor: ignore\[([a-z-]+)\]", text)
                if "gitops:" not in text:
                    assert not waived, path
                    continue
                waivers += 1
                assert waived == ["artipacked"], path
                doc = yaml.safe_load(text)
                checkout = doc["jobs"]["gitops"]["steps"][0]["with"]
                assert "persist-credentials" not in checkout
                assert {"ssh-key", "token"} & set(checkout), "the waiver must guard a pushing checkout"
                # Without the comment zizmor reports it: the waiver is what keeps the report clean.
                bare = tmp_path / layout / path.name
                bare.parent.mkdir(exist_ok=True)
                bare.write_text(re.sub(r"# zizmor: ignore\[artipacked\]", "#", text), encoding="utf-8")
                found = zizmor_findings([bare], "--min-severity", "medium")
                assert [f["ident"] for f in found] == ["artipacked"], describe(found)
        # Every repository has workflows, and the fleet's release workflow carries the one waiver.
        assert checked >= 2 and waivers >= 1, f"{layout}: {checked} workflows, {waivers} with the gitops job"


def test_project_workflows_pass_zizmor() -> None:
    files = sorted((PROJECT_ROOT / ".github" / "workflows").glob("*.yml"))
    assert files
    findings = zizmor_findings(files, "--min-severity", "medium")
    assert not findings, describe(findings)
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            m = USES.match(line)
            if m and not m["ref"].startswith("./"):
                assert SHA.match(m["ref"].partition("@")[2]) and m["comment"], f"{path.name}: {line.strip()}"
    check_schema("vendor.dependabot", PROJECT_ROOT / ".github" / "dependabot.yml")


UNSAFE_WORKFLOW = """\
name: unsafe
on: [push]
permissions:
  contents: read
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v7
      - run: echo "${{ github.event.head_commit.message }}"
"""


def test_validate_reports_zizmor_findings_with_their_ids(tmp_path: Path) -> None:
    tool("zizmor")
    repo = tmp_path / "repo"
    (repo / ".github/workflows").mkdir(parents=True)
    (repo / ".github/workflows/unsafe.yml").write_text(UNSAFE_WORKFLOW, encoding="utf-8")
    report = validate_repo(repo, ValidateOptions(offline=True, catalog_url=None))
    zizmor = {f.message.rsplit("[", 1)[1].rstrip("]"): f for f in report.findings
              if f.check == "workflows" and f.message.endswith("]")}
    assert {"unpinned-uses", "artipacked"} <= set(zizmor), [f.message for f in report.findings]
    unpinned = zizmor["unpinned-uses"]
    assert (unpinned.severity, unpinned.file, unpinned.line) == ("error", ".github/workflows/unsafe.yml", 9)
    assert zizmor["artipacked"].line == 9
    # The expression from the commit message is injectable: zizmor's template-injection, high.
    assert any(f.severity == "error" and f.line == 10 for f in report.findings if f.check == "workflows")


def test_validate_finds_no_workflow_problems_in_a_generated_fleet() -> None:
    tool("zizmor")
    for repo in repositories("observability", "split"):
        report = validate_repo(repo, ValidateOptions(offline=True, catalog_url=None,
                                                     disabled=frozenset({"helm", "dockerfile", "kustomize"})))
        problems = [f"{f.file}:{f.line}: {f.message}" for f in report.findings if f.check == "workflows"]
        assert not problems, "\n".join(problems)
        assert not any("zizmor" in n for n in report.notes), report.notes


# ---------------------------------------------------------------- update bots


def check_schema(builtin: str, *files: Path) -> None:
    proc = subprocess.run([tool("check-jsonschema"), "--builtin-schema", builtin, *map(str, files)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def dependabot_dirs(root: Path) -> dict[str, list[str]]:
    path = root / ".github" / "dependabot.yml"
    check_schema("vendor.dependabot", path)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    out: dict[str, list[str]] = {}
    for update in doc["updates"]:
        assert update["schedule"]["interval"] == "weekly"
        assert 0 < update["open-pull-requests-limit"] <= 10
        assert [g["patterns"] for g in update["groups"].values()] == [["*"]], "one grouped pull request"
        out[update["package-ecosystem"]] = update["directories"]
    return out


def matched(root: Path, pattern: str) -> list[Path]:
    return [p for p in root.glob(pattern.lstrip("/") or ".") if p.is_dir()]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("blueprint", BLUEPRINTS)
def test_dependabot_covers_the_code_and_never_the_deployed_tags(blueprint: str, layout: str) -> None:
    fleet, *service_repos = repositories(blueprint, layout)
    assert not (fleet / "renovate.json").exists()
    dirs = dependabot_dirs(fleet)
    if layout == "monorepo":
        assert dirs == {"github-actions": ["/"], "cargo": ["/services/*"], "docker": ["/services/*"]}
        services = matched(fleet, "services/*")
        assert services and all((s / "Cargo.toml").is_file() and (s / "Dockerfile").is_file() for s in services)
    else:
        assert dirs == {"github-actions": ["/"]}, "a split fleet repository holds only workflows"
    for repo in service_repos:
        assert dependabot_dirs(repo) == {"github-actions": ["/"], "cargo": ["/"], "docker": ["/"]}
        assert (repo / "Cargo.toml").is_file() and (repo / "Dockerfile").is_file()
    # Dependabot's docker ecosystem also reads Kubernetes manifests and Helm values in the directories it
    # scans: none of them may hold a deployed image tag.
    for repo in (fleet, *service_repos):
        for patterns in dependabot_dirs(repo).values():
            for folder in (d for p in patterns if p != "/" for d in matched(repo, p)):
                assert not [*folder.rglob("*.yaml"), *folder.rglob("*.yml")], folder


@pytest.mark.parametrize("layout", LAYOUTS)
def test_renovate_is_the_alternative(layout: str) -> None:
    fleet, *service_repos = repositories("multi-env", layout, dependency_bot="renovate")
    for repo in (fleet, *service_repos):
        path = repo / "renovate.json"
        check_schema("vendor.renovate", path)
        assert not (repo / ".github" / "dependabot.yml").exists()
        config = json.loads(path.read_text(encoding="utf-8"))
        code = (repo / "Cargo.toml").exists() or layout == "monorepo"
        expected = ["github-actions", "cargo", "dockerfile"] if code else ["github-actions"]
        # Only build-input managers: none of flux, helm-values, kubernetes, argocd could touch a deployed tag.
        assert config["enabledManagers"] == expected, repo
        assert {"apps/**", "charts/**"} <= set(config["ignorePaths"])
        assert "schedule:weekly" in config["extends"] and 0 < config["prConcurrentLimit"] <= 10
        assert {r["matchManagers"][0] for r in config["packageRules"] if "groupName" in r} == set(expected)
    answers = yaml.safe_load((fleet / ".fleetstrap/answers/fleet.yml").read_text(encoding="utf-8"))
    assert answers["dependency_bot"] == "renovate"


def test_no_bot_when_asked() -> None:
    for repo in repositories("starter", "split", dependency_bot="none"):
        assert not (repo / "renovate.json").exists() and not (repo / ".github" / "dependabot.yml").exists()


# ---------------------------------------------------------------- cargo deny


def test_service_ci_runs_cargo_deny() -> None:
    (fleet,) = repositories("starter", "monorepo")
    ci = yaml.safe_load((fleet / ".github/workflows/hello-ci.yml").read_text(encoding="utf-8"))
    job = ci["jobs"]["deny"]
    runs = [s.get("run", "") for s in job["steps"]]
    assert f"cargo install --locked cargo-deny --version {pin('cargo_deny_version')}" in runs
    assert "cargo deny --locked check" in runs  # every check, advisories included
    assert job["defaults"]["run"]["working-directory"] == "services/hello"


@pytest.fixture(scope="module")
def locked_service(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The split-layout service repository with its Cargo.lock (generated when the template ships none)."""
    src = service_repo("starter", "hello")
    root = tmp_path_factory.mktemp("deny") / "hello"
    shutil.copytree(src, root)
    if not (root / "Cargo.lock").is_file():
        cargo = require_tool("cargo")
        subprocess.run([cargo, "generate-lockfile", "--quiet"], cwd=root, check=True)
    return root


def run_deny(root: Path, *checks: str) -> subprocess.CompletedProcess[str]:
    exe = cargo_deny()
    env = {**os.environ, "PATH": f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(["cargo", "deny", "--locked", "check", *checks], cwd=root, env=env,
                          capture_output=True, text=True, check=False, timeout=1200)


def test_cargo_deny_passes_licenses_bans_and_sources(locked_service: Path) -> None:
    # advisories needs the RustSec database from GitHub: it runs in the generated CI only.
    proc = run_deny(locked_service, "licenses", "bans", "sources")
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_cargo_deny_rejects_what_the_policy_does_not_allow(locked_service: Path, tmp_path: Path) -> None:
    strict = tmp_path / "hello"
    shutil.copytree(locked_service, strict, ignore=shutil.ignore_patterns("target"))
    deny = strict / "deny.toml"
    text = deny.read_text(encoding="utf-8")
    allow = re.search(r"allow = \[\n(.*?)\]", text, re.S)
    assert allow is not None
    deny.write_text(text.replace(allow[0], 'allow = ["MIT"]'), encoding="utf-8")
    proc = run_deny(strict, "licenses")
    assert proc.returncode != 0 and "rejected" in proc.stderr, proc.stderr[-2000:]


# ---------------------------------------------------------------- signed releases


@pytest.mark.parametrize("layout", LAYOUTS)
def test_release_signs_image_and_chart_keylessly(layout: str) -> None:
    repos = repositories("starter", layout)
    code = repos[0] if layout == "monorepo" else repos[1]
    name = "hello-release.yml" if layout == "monorepo" else "release.yml"
    release = yaml.safe_load((code / ".github/workflows" / name).read_text(encoding="utf-8"))
    jobs = release["jobs"]
    assert release["permissions"] == {}
    with_token = [j for j, job in jobs.items() if "id-token" in job.get("permissions", {})]
    assert with_token == ["sign"], "only the sign job may mint an OIDC token"
    sign = jobs["sign"]
    assert sign["permissions"] == {"packages": "write", "id-token": "write"}
    assert set(sign["needs"]) == {"image", "chart"}
    installer = action_pins()["gha_cosign_installer"]
    assert sign["steps"][0]["uses"] == installer.ref
    assert sign["steps"][0]["with"]["cosign-release"] == pin("cosign_version")
    script = sign["steps"][1]["run"]
    assert 'cosign sign --yes "$IMAGE_REF"' in script and 'cosign sign --yes "$CHART_REF"' in script
    env = sign["steps"][1]["env"]
    assert env["IMAGE_REF"] == "${{ env.IMAGE }}@${{ needs.image.outputs.digest }}"
    assert env["CHART_REF"].endswith("/charts/hello@${{ needs.chart.outputs.digest }}")
    # What is signed is what was pushed: the digests come from the pushing steps.
    assert jobs["image"]["outputs"]["digest"] == "${{ steps.build.outputs.digest }}"
    build = next(s for s in jobs["image"]["steps"] if s.get("id") == "build")
    assert build["with"]["provenance"] == "mode=max" and build["with"]["sbom"] is True
    assert jobs["chart"]["outputs"]["digest"] == "${{ steps.push.outputs.digest }}"
    if "gitops" in jobs:
        assert "sign" in jobs["gitops"]["needs"], "only signed releases are deployed"


def oidc_identity(repo: str, workflow: str, tag: str) -> str:
    """The certificate identity (SAN) GitHub's OIDC token gives a run of `workflow` on `tag`."""
    return f"https://github.com/{repo}/.github/workflows/{workflow}@refs/tags/{tag}"


@pytest.mark.usefixtures("crd_schemas")
def test_flux_verifies_split_layout_charts_when_asked() -> None:
    unsigned = render_blueprint("starter", repo_layout="split").root
    assert "verify" not in k8s.load_documents(unsigned / "apps/base/hello/chart-source.yaml")[0]["spec"]
    fleet = render_blueprint("starter", repo_layout="split", verify_signatures=True)
    (source,) = k8s.load_documents(fleet.root / "apps/base/hello/chart-source.yaml")
    verify = source["spec"]["verify"]
    assert verify["provider"] == "cosign" and "secretRef" not in verify
    problems = k8s.validate_object(source, pin("kubernetes_version"))
    assert not problems, problems
    broken = {**source, "spec": {**source["spec"], "verify": {**verify, "provider": "cosgin"}}}
    assert k8s.validate_object(broken, pin("kubernetes_version")), "the CRD schema must reject a bad provider"
    # The identity Flux expects is the one the service repository's release workflow signs with.
    (identity,) = verify["matchOIDCIdentity"]
    assert re.search(identity["issuer"], "https://token.actions.githubusercontent.com")
    service = service_repo("starter", "hello")
    release = yaml.safe_load((service / ".github/workflows/release.yml").read_text(encoding="utf-8"))
    assert release[True]["push"]["tags"] == ["v*"]
    assert re.search(identity["subject"], oidc_identity("example-org/hello", "release.yml", "v1.2.3"))
    for other in (oidc_identity("example-org/fleet-infra", "hello-release.yml", "hello-v1.2.3"),
                  oidc_identity("someone-else/hello", "release.yml", "v1.2.3"),
                  oidc_identity("example-org/hello", "release.yml", "main")):
        assert not re.search(identity["subject"], other), other
    readme = (fleet.root / "README.md").read_text(encoding="utf-8")
    assert "cosign verify" in readme and "Flux installs only signed charts" in readme


def test_readme_documents_verification_with_the_signing_identity() -> None:
    fleet = render_blueprint("starter")
    readme = (fleet.root / "README.md").read_text(encoding="utf-8")
    m = re.search(r"identity='(?P<re>[^']+)'", readme)
    assert m and "cosign verify" in readme and "--certificate-oidc-issuer" in readme
    pattern = m["re"].replace("<service>", "hello")
    assert re.search(pattern, oidc_identity("example-org/fleet-infra", "hello-release.yml", "hello-v0.1.0"))


def test_answers_carry_to_services_added_later(tmp_path: Path) -> None:
    """`add service` reads the fleet's recorded answers: the new service repository gets the same bot and the
    fleet's wiring for it verifies signatures too."""
    from fleetstrap.cli import run

    fleet = tmp_path / "fleet"
    assert run(["-q", "init", "-b", "starter", "-d", "repo_layout=split", "-d", "verify_signatures=true",
                "-d", "dependency_bot=renovate", "--no-validate", str(fleet)]) == 0
    assert run(["-q", "add", "service", "billing", "-C", str(fleet), "--commit"]) == 0
    (source,) = k8s.load_documents(fleet / "apps/base/billing/chart-source.yaml")
    (identity,) = source["spec"]["verify"]["matchOIDCIdentity"]
    assert re.search(identity["subject"], oidc_identity("example-org/billing", "release.yml", "v0.1.0"))
    assert (tmp_path / "billing" / "renovate.json").is_file()
    assert not (tmp_path / "billing" / ".github" / "dependabot.yml").exists()
