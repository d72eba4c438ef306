"""fleetstrap push --remote against real git servers on loopback: lighttpd + git http-backend (basic auth),
git daemon, sshd with the generated deploy key."""

from __future__ import annotations

import logging
import subprocess
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetstrap.cli import run
from fleetstrap.errors import RemoteError
from fleetstrap.publish import keys
from fleetstrap.publish.auth import basic_credentials
from fleetstrap.push import PushRequest, push_repo
from gitservers import (
    Server,
    bare_repo,
    files_containing,
    make_fleet,
    repo_log,
    start_git_daemon,
    start_lighttpd,
    start_sshd,
)

# Deliberately not shaped like a GitHub token: the redaction must come from registering it, not a regex.
TOKEN = "tok-3c6f9b2e1d7a4f58aa"
WRONG = "tok-wrong-0000000000"


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_lighttpd(tmp_path_factory.mktemp("lighttpd"), {"x-access-token": TOKEN})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_git_daemon(tmp_path_factory.mktemp("daemon"))
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETSTRAP_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("GIT_AUTHOR_NAME", "t")
    for name in ("GH_TOKEN", "GITHUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def _head(path: Path) -> str:
    return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def _assert_no_leak(token: str, root: Path, *texts: str) -> None:
    needles = [token, basic_credentials(token)]
    assert files_containing(root, needles) == []
    for text in texts:
        for n in needles:
            assert n not in text


def test_https_right_token_pushes_and_rerun_is_up_to_date(
        http_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bare = bare_repo(http_server.root, "right.git")
    fleet = make_fleet(tmp_path / "fleet")
    monkeypatch.setenv("FS_TEST_TOKEN", TOKEN)
    url = f"{http_server.url}/right.git"
    assert run(["push", str(fleet), "--remote", url, "--token-env", "FS_TEST_TOKEN"]) == 0
    assert repo_log(bare) == [_head(fleet)]
    config = (fleet / ".git" / "config").read_text()
    assert url in config and "@" not in config.split(url)[0].rsplit("\n", 1)[-1]
    # Re-run: nothing to commit, remote up to date, still exactly one commit.
    assert run(["push", str(fleet), "--remote", url, "--token-env", "FS_TEST_TOKEN"]) == 0
    assert len(repo_log(bare)) == 1
    out = capsys.readouterr()
    assert "up to date" in out.err
    _assert_no_leak(TOKEN, tmp_path, out.out, out.err, caplog.text)


def test_https_wrong_token_fails_clearly(http_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str],
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bare = bare_repo(http_server.root, "wrong.git")
    fleet = make_fleet(tmp_path / "fleet")
    monkeypatch.setenv("FS_TEST_TOKEN", WRONG)
    url = f"{http_server.url}/wrong.git"
    assert run(["push", str(fleet), "--remote", url, "--token-env", "FS_TEST_TOKEN"]) == 1
    out = capsys.readouterr()
    assert "authentication refused" in out.err
    assert "Traceback" not in out.err
    with pytest.raises(RemoteError) as info:
        push_repo(PushRequest(path=fleet, remote=url, token_env="FS_TEST_TOKEN"))
    exc_text = "".join(traceback.format_exception(info.value))
    assert repo_log(bare) == []
    _assert_no_leak(WRONG, tmp_path, out.out, out.err, caplog.text, exc_text, repr(info.value))


def test_https_without_token_is_refused(http_server: Server, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    bare_repo(http_server.root, "none.git")
    fleet = make_fleet(tmp_path / "fleet")
    monkeypatch.setenv("GH_TOKEN", TOKEN)  # must NOT be sent to a generic remote
    with pytest.raises(RemoteError, match="authentication refused"):
        push_repo(PushRequest(path=fleet, remote=f"{http_server.url}/none.git"))


def test_remote_url_with_credentials_is_rejected(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path / "fleet")
    assert run(["push", str(fleet), "--remote", f"https://u:{TOKEN}@example.invalid/x.git"]) == 1
    assert not (fleet / ".git").exists()


def test_git_daemon_push_fast_forward_and_unrelated_history(daemon: Server, tmp_path: Path) -> None:
    bare = bare_repo(daemon.root, "fleet.git")
    fleet = make_fleet(tmp_path / "fleet")
    url = f"{daemon.url}/fleet.git"
    first = push_repo(PushRequest(path=fleet, remote=url))
    assert repo_log(bare) == [first.commit]
    (fleet / "clusters" / "dev" / "extra.yaml").write_text("a: 1\n")
    second = push_repo(PushRequest(path=fleet, remote=url, message="more"))
    assert repo_log(bare) == [second.commit, first.commit]
    again = push_repo(PushRequest(path=fleet, remote=url))
    assert again.commit == second.commit and not any(c.startswith("commit") for c in again.created)

    other = make_fleet(tmp_path / "other", owner="someone")
    before = repo_log(bare)
    with pytest.raises(RemoteError, match=r"unrelated history|not ours"):
        push_repo(PushRequest(path=other, remote=url))
    assert repo_log(bare) == before


def test_ssh_push_with_generated_deploy_key(tmp_path: Path) -> None:
    key, generated = keys.ensure_deploy_key("octo", "fleet-infra", "dev")
    assert generated and key.path.stat().st_mode & 0o777 == 0o600
    assert keys.load_deploy_key("octo", "fleet-infra", "dev").public == key.public
    server = start_sshd(tmp_path / "ssh", [key.public])
    try:
        bare = bare_repo(tmp_path / "ssh", "fleet.git")
        fleet = make_fleet(tmp_path / "fleet")
        url = f"{server.url}{bare}"
        report = push_repo(PushRequest(path=fleet, remote=url, ssh_key=key.path,
                                       known_hosts=Path(server.extra["known_hosts"])))
        assert repo_log(bare) == [report.commit]
        # Another key is refused, with a clear message and nothing pushed.
        stranger, _ = keys.ensure_deploy_key("octo", "fleet-infra", "stranger")
        (fleet / "new.txt").write_text("x\n")
        with pytest.raises(RemoteError, match="authentication refused"):
            push_repo(PushRequest(path=fleet, remote=url, ssh_key=stranger.path,
                                  known_hosts=Path(server.extra["known_hosts"])))
        assert repo_log(bare) == [report.commit]
    finally:
        server.stop()
    assert files_containing(fleet, [key.private.strip().splitlines()[1]]) == []
