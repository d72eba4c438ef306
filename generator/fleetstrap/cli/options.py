"""The options every command spells the same way, and the old spellings kept as hidden, deprecated aliases.

One CLI language: the fleet repository directory is `-C/--dir DIR` on every command (default: the current
directory; `init` also takes it as its positional DEST), reports are `--format human|json` (JSON alone on stdout),
and the GitHub repository is `--github-repo`. Old spellings (a positional PATH, `-C/--repo`, push's `--repo` and
`--json`) still work, print one deprecation line on stderr, and are hidden from `--help` and the docs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from fleetstrap import output

F = TypeVar("F", bound=Callable[..., Any])

def deprecated(old: str, new: str) -> None:
    """The one line an old spelling prints (stderr, so --format json's stdout stays JSON)."""
    output.warn(f"{old} is deprecated and will be removed: use {new}")


class HiddenArgument(click.Argument):
    """A positional argument kept for old command lines: absent from the usage line, help and docs."""

    hidden = True  # read by the docs hook (click has no hidden arguments)

    def get_usage_pieces(self, ctx: click.Context) -> list[str]:  # noqa: ARG002 (click API)
        return []


def _path_type() -> click.Path:
    return click.Path(path_type=Path, file_okay=False)


def repo_dir(*, positional: bool = False, repo_alias: bool = True,
             help_text: str = "The fleet repository directory.") -> Callable[[F], F]:
    """`-C/--dir DIR` (default `.`) into the parameter `root`, plus the old spellings as hidden aliases.

    positional: the command used to take the directory as a positional PATH (validate, update, check-update, push).
    repo_alias: the command used to take `-C/--repo` (add, bootstrap, status, promote, rollback, resume); push
    leaves it out because its `--repo` was the GitHub repository name.
    """

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            given = kwargs.pop("root")
            old_positional = kwargs.pop("_dir_positional", None)
            old_repo = kwargs.pop("_dir_repo", None)
            chosen: Path | None = given
            for value, spelling in ((old_positional, "a positional PATH"), (old_repo, "--repo DIR")):
                if value is None:
                    continue
                deprecated(spelling, "-C/--dir DIR")
                if chosen is not None and Path(chosen) != Path(value):
                    raise click.UsageError(f"two repository directories given: {chosen} and {value}")
                chosen = value
            kwargs["root"] = chosen if chosen is not None else Path()
            return f(*args, **kwargs)

        cmd: Any = wrapper
        if repo_alias:
            cmd = click.option("--repo", "_dir_repo", type=_path_type(), default=None, hidden=True,
                               expose_value=True)(cmd)
        cmd = click.option("-C", "--dir", "root", type=_path_type(), default=None, metavar="DIR",
                           help=f"{help_text}  [default: .]", shell_complete=_complete_dirs)(cmd)
        if positional:
            cmd = click.argument("_dir_positional", cls=HiddenArgument, required=False, type=_path_type())(cmd)
        return cmd  # type: ignore[no-any-return]

    return decorate


def format_option(*choices: str, help_text: str = "Output format: json prints one JSON object on stdout.",
                  json_alias: bool = False) -> Callable[[F], F]:
    """`--format human|json[|...]` into `fmt`; json_alias keeps push's old `--json` flag (hidden, deprecated)."""
    names = choices or ("human", "json")

    def decorate(f: F) -> F:
        if not json_alias:
            return click.option("--format", "fmt", type=click.Choice(names), default="human", show_default=True,
                                help=help_text)(f)

        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if kwargs.pop("_as_json", False):
                deprecated("--json", "--format json")
                kwargs["fmt"] = "json"
            return f(*args, **kwargs)

        cmd: Any = click.option("--json", "_as_json", is_flag=True, hidden=True)(wrapper)
        cmd = click.option("--format", "fmt", type=click.Choice(names), default="human", show_default=True,
                           help=help_text)(cmd)
        return cmd  # type: ignore[no-any-return]

    return decorate


def looks_like_dir(word: str) -> bool:
    """A word that names a directory rather than a cluster (cluster names are DNS labels: no `/`, no dot-only)."""
    return "/" in word or word in (".", "..") or (Path(word) / ".fleetstrap").is_dir()


def _complete_dirs(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:  # noqa: ARG001
    from click.shell_completion import CompletionItem

    return [CompletionItem(incomplete, type="dir")]


def show_pull_request(action: str, branch: str | None, url: str | None, what: str) -> bool:
    """How a `--pr` run ended, said the same way by update and promote/rollback/resume (`what` names the change).
    False: not a pull-request outcome; the caller says it."""
    link = f": {url}" if url else ""
    if action == "opened":
        output.success(f"pull request for {what}{link}")
    elif action == "exists":
        output.success(f"{branch} is already up for {what}{link}")
    elif action == "closed":
        output.info(f"the pull request for {what} was closed or merged ({url}); leaving it so")
    elif action == "pushed":
        output.success(f"pushed {branch}: open a pull request from it")
    else:
        return False
    return True
