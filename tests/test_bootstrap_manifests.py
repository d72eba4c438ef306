"""Install manifests (checksums, cache) and strict schema validation of the objects bootstrap generates."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bootstrap_fixtures import (
    GIT_URL,
    GOTK_SYNC,
    KNOWN_HOSTS,
    ROOT_APP,
    Downloads,
    download_server,
    flux_install_yaml,
    write_deploy_key,
)
from fleetstrap.bootstrap import manifests, objects
from fleetstrap.bootstrap.engines import build_flux_kustomization
from fleetstrap.bootstrap.manifests import Downloads as Source
from fleetstrap.bootstrap.ssh import public_key_openssh, ssh_host
from fleetstrap.errors import ClusterError, RemoteError
from support.tools import require_module

VERSION = "2.9.4"


@pytest.fixture(scope="module")
def server() -> Iterator[Downloads]:
    with download_server() as d:
        yield d


def test_flux_manifest_verified_against_checksums_file_and_cached(server: Downloads, tmp_path: Path) -> None:
    text = flux_install_yaml()
    server.publish_flux(VERSION, text)
    m = manifests.flux_components(VERSION, Source(server.base_url, tmp_path, use_flux_cli=False))
    assert m.text == text and m.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert (tmp_path / "manifests" / f"flux-v{VERSION}-install.yaml").read_text() == text
    server.files.clear()  # second call is served from the cache
    again = manifests.flux_components(VERSION, Source(server.base_url, tmp_path, use_flux_cli=False))
    assert again.source == "cache" and again.text == text


def test_wrong_checksum_fails_clearly_and_caches_nothing(server: Downloads, tmp_path: Path) -> None:
    server.publish_flux(VERSION, flux_install_yaml(), checksum="ab" * 32)
    with pytest.raises(ClusterError, match=r"checksum mismatch for Flux v2\.9\.4 install\.yaml"):
        manifests.flux_components(VERSION, Source(server.base_url, tmp_path, use_flux_cli=False))
    assert not list(tmp_path.rglob("*.yaml"))


def test_pinned_sha256_wins_over_checksums_file_and_guards_the_cache(server: Downloads, tmp_path: Path) -> None:
    text = flux_install_yaml()
    server.publish_flux(VERSION, text)  # the checksums file agrees with the download...
    with pytest.raises(ClusterError, match="checksum mismatch"):  # ...but the pin does not
        manifests.flux_components(VERSION, Source(server.base_url, tmp_path, use_flux_cli=False),
                                  pinned_sha256="cd" * 32)
    good = hashlib.sha256(text.encode()).hexdigest()
    manifests.flux_components(VERSION, Source(server.base_url, tmp_path, use_flux_cli=False),
                                  pinned_sha256=good)
    # a tampered cache entry is not trusted: it is refetched and verified again
    cached = tmp_path / "manifests" / f"flux-v{VERSION}-install.yaml"
    cached.write_text(text + "# tampered\n")
    m = manifests.flux_components(VERSION, Source(server.base_url, tmp_path, use_flux_cli=False),
                                  pinned_sha256=good)
    assert m.source != "cache" and cached.read_text() == text


def test_missing_release_is_a_remote_error(server: Downloads, tmp_path: Path) -> None:
    with pytest.raises(RemoteError, match="HTTP 404"):
        manifests.flux_components("9.9.9", Source(server.base_url, tmp_path, use_flux_cli=False))


def test_argocd_manifest_trust_on_first_use_then_verified(server: Downloads, tmp_path: Path) -> None:
    server.publish_argocd("v3.5.1", "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n")
    first = manifests.argocd_install("v3.5.1", Source(server.base_url, tmp_path))
    record = tmp_path / "manifests" / "argocd-v3.5.1-install.yaml.sha256"
    assert record.read_text().strip() == first.sha256
    (tmp_path / "manifests" / "argocd-v3.5.1-install.yaml").unlink()
    server.publish_argocd("v3.5.1", "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: evil}\n")
    with pytest.raises(ClusterError, match=r"checksum mismatch for Argo CD v3\.5\.1"):
        manifests.argocd_install("v3.5.1", Source(server.base_url, tmp_path))


def test_install_order_and_documents() -> None:
    docs = manifests.documents(flux_install_yaml(), "fixture")
    kinds = [d["kind"] for d in manifests.install_order(docs)]
    assert kinds[:3] == ["Namespace", "CustomResourceDefinition", "CustomResourceDefinition"]
    with pytest.raises(ClusterError, match="not a Kubernetes object"):
        manifests.documents("just: a mapping\n", "bad.yaml")


def test_kustomization_keeps_existing_entries() -> None:
    out = yaml.safe_load(build_flux_kustomization("resources:\n- gotk-sync.yaml\n- extra.yaml\n"))
    assert out["resources"] == ["gotk-sync.yaml", "extra.yaml", "gotk-components.yaml"]
    assert out["kind"] == "Kustomization"


def test_ssh_host_parsing() -> None:
    assert ssh_host(GIT_URL) == ("github.com", 22)
    assert ssh_host("ssh://git@10.0.0.1:2222/srv/fleet.git") == ("10.0.0.1", 2222)
    assert ssh_host("git@gitlab.com:acme/fleet.git") == ("gitlab.com", 22)
    assert ssh_host("https://github.com/acme/fleet.git") is None


# ---------------------------------------------------------------- schemas


def _generated(tmp_path: Path) -> list[dict[str, object]]:
    key = write_deploy_key(tmp_path / "k").read_text()
    return [
        objects.build_namespace("argocd"),
        objects.build_flux_secret(key, public_key_openssh(key.encode()), KNOWN_HOSTS),
        objects.build_argocd_repo_secret("fleet-infra", GIT_URL, key),
        *yaml.safe_load_all(GOTK_SYNC.format(url=GIT_URL, cluster="dev")),
        yaml.safe_load(ROOT_APP.format(url=GIT_URL, cluster="dev")),
    ]


def test_generated_core_objects_validate_strictly(tmp_path: Path) -> None:
    require_module("kubernetes_validate")
    for obj in _generated(tmp_path)[:3]:
        assert objects.validate_object(obj, "1.35") is None, obj["kind"]
    bad = objects.build_namespace("x")
    bad["spec"] = {"finalizers": ["kubernetes"], "bogus": True}
    problem = objects.validate_object(bad, "1.35")
    assert problem is not None and "bogus" in problem


def test_generated_crd_objects_validate_strictly_against_crd_schemas(tmp_path: Path) -> None:
    crds = [o for o in _generated(tmp_path) if "." in str(o["apiVersion"]).split("/")[0]]
    assert {o["kind"] for o in crds} == {"GitRepository", "Kustomization", "Application"}
    for obj in crds:
        assert objects.validate_object(obj, "1.35") is None, obj["kind"]
    bad = yaml.safe_load(GOTK_SYNC.format(url=GIT_URL, cluster="dev").split("---")[0])
    bad["spec"]["secretRef"]["namespace"] = "elsewhere"  # not a field of GitRepository v1
    problem = objects.validate_object(bad, "1.35")
    assert problem is not None and "secretRef" in problem


def test_redacted_secret_has_no_values(tmp_path: Path) -> None:
    secret = _generated(tmp_path)[1]
    text = objects.to_yaml([objects.redacted(secret)])
    assert "PRIVATE KEY" not in text and "identity: <redacted>" in text
