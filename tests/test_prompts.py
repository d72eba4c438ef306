"""The interactive flow, driven with keystrokes through a real pseudo-terminal."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

pexpect = pytest.importorskip("pexpect")

ENTER = "\r"
DOWN = "\x1b[B"
UP = "\x1b[A"


def test_prompt_flow_with_keystrokes(tmp_path: Path) -> None:
    dest = tmp_path / "fleet"
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "120", "LINES": "40"}
    child = pexpect.spawn(sys.executable, ["-m", "fleetstrap", "init", str(dest)], env=env,
                          encoding="utf-8", timeout=60, dimensions=(40, 120))
    try:
        steps = [
            ("GitHub owner", "acme" + ENTER),
            ("Repository name", ENTER),                   # default fleet-infra
            ("GitOps engine", DOWN + ENTER),             # flux -> argocd
            ("Environments", "\b" * 3 + "dev, prod" + ENTER),
            ("Cluster for dev", ENTER),
            ("Kube context for dev", "kind-dev" + ENTER),
            ("Cluster for prod", "\b" * 4 + "prod-eu" + ENTER),
            ("Kube context for prod-eu", ENTER),
            ("First service name", "\b" * 5 + "checkout" + ENTER),
            ("Container registry", ENTER),
            ("Trace backend", DOWN + ENTER),             # jaeger -> tempo
            ("OTLP gRPC endpoint", ENTER),
            ("Collector mode", ENTER),
            ("Progressive delivery", UP + ENTER),        # Argo CD: argo-rollouts or none (default)
            ("Automate image tag updates", "y"),
            ("Secrets approach", ENTER),
            ("Ingress domain", ENTER),
            ("TLS issuer", ENTER),
            ("ACME account e-mail", "\b" * 20 + "ops@acme.io" + ENTER),
            ("Monitoring", "n"),
            ("Policy engine", UP + ENTER),               # none -> kyverno
            ("Dependency updates", DOWN + ENTER),        # dependabot -> renovate
        ]
        for prompt, keys in steps:
            child.expect(prompt)
            child.send(keys)
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before
    recorded = yaml.safe_load((dest / ".fleetstrap/answers/fleet.yml").read_text())
    assert recorded["owner"] == "acme"
    assert recorded["engine"] == "argocd"
    assert recorded["environments"] == ["dev", "prod"]
    assert recorded["clusters"] == [
        {"name": "dev", "environment": "dev", "context": "kind-dev"},
        {"name": "prod-eu", "environment": "prod"},
    ]
    assert recorded["services"] == ["checkout"]
    assert recorded["telemetry_backend"] == "tempo"
    assert recorded["otlp_endpoint"].startswith("tempo.")
    assert recorded["image_automation"] is True
    assert recorded["progressive_delivery"] == "argo-rollouts"
    assert recorded["dependency_bot"] == "renovate"
    assert recorded["policy"] == "kyverno"
    assert recorded["acme_email"] == "ops@acme.io"  # asked, not left at the example domain (issue 24)
    assert (dest / "argocd/infrastructure/kyverno.yaml").is_file()
    assert (dest / "renovate.json").is_file() and not (dest / ".github/dependabot.yml").exists()


def test_flux_fleet_picks_flagger_and_gets_monitoring_without_asking(tmp_path: Path) -> None:
    dest = tmp_path / "fleet"
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "120", "LINES": "40"}
    child = pexpect.spawn(sys.executable, ["-m", "fleetstrap", "init", str(dest), "--no-validate"], env=env,
                          encoding="utf-8", timeout=60, dimensions=(40, 120))
    try:
        steps = [("GitHub owner", "acme" + ENTER), ("Repository name", ENTER), ("GitOps engine", ENTER),
                 ("Environments", ENTER), ("Cluster for dev", ENTER), ("Kube context for dev", ENTER),
                 ("First service name", ENTER), ("Container registry", ENTER), ("Trace backend", ENTER),
                 ("OTLP gRPC endpoint", ENTER), ("Collector mode", ENTER),
                 ("Progressive delivery", UP + ENTER),  # none -> flagger (Flux offers all three)
                 ("Automate image tag updates", ENTER), ("Secrets approach", ENTER), ("Ingress domain", ENTER),
                 ("TLS issuer", DOWN + ENTER),  # letsencrypt-staging -> selfsigned: no ACME e-mail question
                 ("Alert destination", ENTER),  # monitoring is on without a question: Flagger needs it
                 ("Policy engine", ENTER), ("Dependency updates", ENTER)]
        for prompt, keys in steps:
            child.expect(prompt)
            child.send(keys)
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before
    assert "Monitoring (metrics" not in (child.before or "")
    recorded = yaml.safe_load((dest / ".fleetstrap/answers/fleet.yml").read_text())
    assert (recorded["progressive_delivery"], recorded["monitoring"]) == ("flagger", True)
    assert recorded["tls_issuer"] == "selfsigned" and "acme_email" not in recorded
    assert (dest / "infrastructure/controllers/flagger.yaml").is_file()


def test_invalid_keystrokes_are_rejected_as_you_type(tmp_path: Path) -> None:
    dest = tmp_path / "fleet"
    child = pexpect.spawn(sys.executable, ["-m", "fleetstrap", "init", str(dest)],
                          env={**os.environ, "TERM": "xterm"}, encoding="utf-8", timeout=60, dimensions=(40, 120))
    try:
        child.expect("GitHub owner")
        child.send("-bad-" + ENTER)
        child.expect("not a GitHub user/organization name")
        child.sendcontrol("c")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 130
    assert not dest.exists()
