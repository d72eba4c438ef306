"""YAML is read as Go's yaml (Kubernetes, kustomize, Flux) reads it, never as only PyYAML's YAML 1.1 loader would:
`=` is a string, an anchor may be redefined, application tags are plain values, and both parse paths agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetstrap.boundedyaml import YamlLimitError, safe_load
from fleetstrap.validate import ValidateOptions, loader, validate_repo

GO_READS = {
    "matchType: =\n": {"matchType": "="},
    "a: &k tls.crt\nb: *k\nc: &k tls.key\nd: *k\n": {"a": "tls.crt", "b": "tls.crt", "c": "tls.key", "d": "tls.key"},
    "api_key: !env_var SONARR_API_KEY\n": {"api_key": "SONARR_API_KEY"},
    "x: !!python/name:material.extensions.emoji.twemoji\n": {"x": ""},
    "m: !custom {a: 1}\ns: !custom [1, 2]\n": {"m": {"a": 1}, "s": [1, 2]},
    # YAML 1.1 scalars as sigs.k8s.io/yaml (go-yaml v2) resolves them in the objects the API server receives.
    "a: yes\nmode: 0755\n": {"a": True, "mode": 493},
}


@pytest.mark.parametrize("text", list(GO_READS), ids=range(len(GO_READS)))
def test_bounded_loader_reads_as_go_does(text: str) -> None:
    assert safe_load(text) == GO_READS[text]


@pytest.mark.parametrize("text", list(GO_READS), ids=range(len(GO_READS)))
def test_fast_and_line_tracking_paths_agree(text: str) -> None:
    docs, findings = loader.load_text(text, "f.yaml")
    slow_docs, slow_findings = loader._slow_load(text, "f.yaml")
    assert findings == slow_findings == []
    assert [d.data for d in docs] == [d.data for d in slow_docs] == [GO_READS[text]]


def test_undefined_alias_is_still_an_error() -> None:
    with pytest.raises(Exception, match="undefined alias"):
        safe_load("a: *nope\n")


def test_limits_are_yaml_errors_with_a_line() -> None:
    with pytest.raises(YamlLimitError) as exc:
        safe_load("".join("  " * i + "a:\n" for i in range(500)) + "  " * 500 + "b: 1\n")
    assert exc.value.problem_mark is not None and "nesting" in str(exc.value)


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def test_files_that_are_not_manifests_may_carry_tags(tmp_path: Path) -> None:
    root = _write(tmp_path, {
        "mkdocs.yml": "site_name: x\nmarkdown_extensions:\n  - pymdownx.emoji:\n"
                      "      emoji_index: !!python/name:material.extensions.emoji.twemoji\n",
        "apps/recyclarr/config.yml": "sonarr:\n  main:\n    api_key: !env_var SONARR_API_KEY\n",
        "apps/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: m\ndata:\n  op: =\n"
                        "  a: &k one\n  b: *k\n  c: &k two\n  d: *k\n",
    })
    report = validate_repo(root, ValidateOptions(offline=True, disabled=frozenset({"helm", "workflows",
                                                                                   "dockerfile"})))
    assert report.errors == (), report.errors
