"""MkDocs hooks: the pages that must never drift from the code are generated at build time, offline.

- one page per command and subcommand, from the click definitions (usage, help, every option);
- one page per built-in blueprint: its answers and the tree it renders (`fleetstrap init --no-validate`);
- markers in hand-written pages, replaced with generated text:
  `<!-- fleetstrap:answers -->`     every answer key (fleetstrap.answers.QUESTIONS: kind, choices, default);
  `<!-- fleetstrap:questions -->`   every question of templates/copier.yml (type, default, choices, help);
  `<!-- fleetstrap:tree NAME -->`   the file tree blueprint NAME renders;
  `<!-- fleetstrap:file NAME PATH -->`  a file of blueprint NAME's rendering (e.g. the service README);
  `<!-- fleetstrap:errors CLASS -->`  every message fleetstrap raises with that error class (from the source);
  `<!-- fleetstrap:include PATH -->`  a file of the repository, verbatim (CHANGELOG.md, a terminal capture).
A marker naming something unknown, or an error class raised in the code without its section in
troubleshooting.md, is a build warning: `mkdocs build --strict` fails.
"""

from __future__ import annotations

import ast
import inspect
import logging
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "generator" / "fleetstrap"
if str(ROOT / "generator") not in sys.path:
    sys.path.insert(0, str(ROOT / "generator"))

log = logging.getLogger("mkdocs.hooks.fleetstrap")
_MARKER = re.compile(r"<!-- fleetstrap:(?P<kind>[a-z]+)(?P<args>(?: [^ >]+)*) -->")
_GENERATED: dict[str, str] = {}  # src_uri -> markdown
_TREES: dict[str, Path] = {}  # blueprint -> rendered fleet
_WORK = tempfile.TemporaryDirectory(prefix="fleetstrap-docs-")


# ---------------------------------------------------------------- commands


def _walk(cmd: click.Command, ctx: click.Context) -> list[tuple[click.Context, click.Command]]:
    """Every command below `cmd` with its click context (whose chain gives the full command line)."""
    out = [(ctx, cmd)]
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                out += _walk(sub, click.Context(sub, info_name=name, parent=ctx))
    return out


def _all_commands() -> list[tuple[click.Context, click.Command]]:
    from fleetstrap.cli import cli

    return _walk(cli, click.Context(cli, info_name="fleetstrap"))[1:]


def _slug(ctx: click.Context) -> str:
    return "-".join(ctx.command_path.split()[1:])


def command_pages() -> dict[str, tuple[str, str]]:
    """src_uri -> (command line, markdown) for every command and subcommand."""
    return {f"commands/{_slug(ctx)}.md": (ctx.command_path, _command_markdown(ctx, cmd))
            for ctx, cmd in _all_commands()}


def _command_markdown(ctx: click.Context, cmd: click.Command) -> str:
    name = ctx.command_path
    usage = " ".join([name, *cmd.collect_usage_pieces(ctx)])
    lines = [f"# {name}", "", f"<!-- generated from the click definition of `{name}`: do not edit -->", "",
             "```text", usage, "```", "", inspect.cleandoc(cmd.help or cmd.short_help or ""), ""]
    if isinstance(cmd, click.Group):
        lines += ["## Subcommands", ""]
        for sub in cmd.list_commands(ctx):
            sub_cmd = cmd.get_command(ctx, sub)
            help_text = sub_cmd.get_short_help_str(100) if sub_cmd else ""
            lines.append(f"- [`{name} {sub}`]({_slug(ctx)}-{sub}.md): {help_text}")
        lines.append("")
    args = [p for p in cmd.params if isinstance(p, click.Argument) and not getattr(p, "hidden", False)]
    if args:
        lines += ["## Arguments", "", "| argument | required | default |", "|---|---|---|"]
        for a in args:
            default = f"`{a.default}`" if _has_default(a.default) else ""
            lines.append(f"| `{(a.metavar or a.name or '').upper()}` | {'yes' if a.required else 'no'} | {default} |")
        lines.append("")
    opts = [p for p in cmd.params if isinstance(p, click.Option) and not p.hidden]
    lines += ["## Options", "", "| option | value | default | description |", "|---|---|---|---|"]
    for o in opts:
        flags = ", ".join(f"`{f}`" for f in [*o.opts, *o.secondary_opts])
        value = "" if o.is_flag else _cell(o.type.get_metavar(o, ctx) or o.type.name.upper())
        default = f"`{_cell(str(o.default))}`" if _has_default(o.default) and o.default is not False else ""
        envvar = f" Environment: `{o.envvar}`." if isinstance(o.envvar, str) else ""
        multiple = " Repeatable." if o.multiple and "repeatable" not in (o.help or "").lower() else ""
        lines.append(f"| {flags} | {value} | {default} | {_cell(o.help or '')}{multiple}{envvar} |")
    lines.append("| `-h`, `--help` | | | Show the help and exit. |")
    lines += ["", "Exit codes: 0 ok, 1 user error, 2 findings or conflicts, 3 bug, 130 interrupted, 143 terminated "
              "([troubleshooting](../troubleshooting.md)).", ""]
    return "\n".join(lines)


def _has_default(value: object) -> bool:
    # click 8.2+ marks "no default" with a sentinel object rather than None
    return value not in (None, ()) and not callable(value) and type(value).__name__ != "Sentinel"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _commands_index(pages: dict[str, tuple[str, str]]) -> str:
    lines = ["# Commands", "", "<!-- generated from the click definitions: do not edit -->", "",
             "Every command takes `-h`/`--help`. Global options (before the command): `-q/--quiet`, "
             "`--color/--no-color`, `--otlp-endpoint URL` (fleetstrap's own traces), `-V/--version`.", "",
             "One language on every command: the fleet repository is `-C/--dir DIR` (default: the current directory; "
             "`init` also takes it as DEST), reports are `--format json` (one JSON object on stdout, messages and "
             "progress on stderr), the GitHub repository is `push --github-repo`. Older spellings (a positional "
             "path, `--repo DIR`, push's `--repo NAME` and `--json`) still work and print one deprecation line.", "",
             "Slow steps show a spinner with the current stage and the elapsed time on stderr when it is a terminal; "
             "`FLEETSTRAP_PROGRESS=plain` prints a few plain lines instead (CI logs), `FLEETSTRAP_PROGRESS=off` "
             "nothing. Completion (`fleetstrap completion bash|zsh|fish`) knows the blueprint, cluster, service, "
             "environment and component names of the fleet in `-C DIR` or the current directory.", "",
             "| command | what it does |", "|---|---|"]
    by_name = {ctx.command_path: cmd for ctx, cmd in _all_commands()}
    for uri, (name, _) in pages.items():
        lines.append(f"| [`{name}`]({Path(uri).name}) | {_cell(by_name[name].get_short_help_str(120))} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- blueprints and rendered trees


def _render_blueprints(names: list[str]) -> None:
    def render(name: str) -> tuple[str, Path]:
        dest = Path(_WORK.name) / name
        subprocess.run([sys.executable, "-m", "fleetstrap", "--quiet", "init", "--blueprint", name, "--no-validate",
                        str(dest)], check=True, capture_output=True, text=True, cwd=ROOT)
        return name, dest

    todo = [n for n in names if n not in _TREES]
    with ThreadPoolExecutor(max_workers=2) as pool:
        _TREES.update(pool.map(render, todo))


def tree(root: Path) -> str:
    """`tree`-style listing of a rendered repository (without .git)."""
    lines = [f"{root.name}/"]

    def walk(d: Path, prefix: str) -> None:
        entries = sorted((p for p in d.iterdir() if p.name != ".git"), key=lambda p: (p.is_file(), p.name))
        for i, p in enumerate(entries):
            last = i == len(entries) - 1
            lines.append(f"{prefix}{'└── ' if last else '├── '}{p.name}{'/' if p.is_dir() else ''}")
            if p.is_dir():
                walk(p, prefix + ("    " if last else "│   "))

    walk(root, "")
    return "\n".join(lines)


def blueprint_pages() -> dict[str, tuple[str, str]]:
    from fleetstrap.blueprints import list_blueprints

    blueprints = sorted(list_blueprints(), key=lambda b: b.name)
    _render_blueprints([b.name for b in blueprints])
    pages = {}
    for b in blueprints:
        source = (ROOT / "blueprints" / f"{b.name}.yaml").read_text(encoding="utf-8")
        extends = ", ".join(f"[{e}]({e}.md)" for e in b.extends) or "nothing"
        body = [f"# {b.name}", "", "<!-- generated from blueprints/ and a real rendering: do not edit -->", "",
                b.description, "", f"Extends: {extends}.", "", "```bash",
                f"fleetstrap init --blueprint {b.name} ./fleet-infra", "```", "",
                f"## Answers (`blueprints/{b.name}.yaml`)", "", "```yaml", source.rstrip(), "```", "",
                "## Generated tree", "", "```text", tree(_TREES[b.name]), "```", ""]
        pages[f"blueprints/{b.name}.md"] = (b.name, "\n".join(body))
    return pages


def _blueprints_index(pages: dict[str, tuple[str, str]]) -> str:
    from fleetstrap.blueprints import list_blueprints

    desc = {b.name: b.description for b in list_blueprints()}
    lines = ["# Blueprints", "", "<!-- generated from blueprints/: do not edit -->", "",
             "A blueprint is a named answer set (`blueprints/*.yaml`, composable with `extends:`). Use one with "
             "`fleetstrap init --blueprint NAME`, or your own file with `--blueprint PATH`; `--data key=value` "
             "overrides single answers. `fleetstrap blueprints` lists them.", "", "| blueprint | what you get |",
             "|---|---|"]
    lines += [f"| [`{name}`]({Path(uri).name}) | {_cell(desc[name])} |" for uri, (name, _) in pages.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- questions (templates/copier.yml)


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_multi_constructor("!", lambda _loader, _suffix, _node: None)


def questions() -> dict[str, dict[str, Any]]:
    """The questions of templates/copier.yml that an answer can set (computed values excluded)."""
    docs = list(yaml.load_all((ROOT / "templates" / "copier.yml").read_text(encoding="utf-8"), Loader=_Loader))
    out: dict[str, dict[str, Any]] = {}
    for d in docs:
        if not isinstance(d, dict):
            continue
        for name, spec in d.items():
            if name.startswith("_") or not isinstance(spec, dict) or spec.get("when") is False:
                continue
            out[name] = spec
    return out


def _answers_table() -> str:
    """fleetstrap's answer keys (fleetstrap.answers.QUESTIONS: what prompts, blueprints and --data set)."""
    import dataclasses

    from fleetstrap.answers import QUESTIONS, FleetAnswers

    defaults = {f.name: f.default for f in dataclasses.fields(FleetAnswers) if f.default is not dataclasses.MISSING}
    # A mapping answer is frozen as pairs; the docs show it as users write it.
    defaults.update({q.key: q.default for q in QUESTIONS if q.kind == "ranges"})
    lines = ["| answer | kind | choices | default | meaning |", "|---|---|---|---|---|"]
    for q in QUESTIONS:
        default = "required" if q.required else (f"`{_cell(str(defaults[q.key]))}`" if q.key in defaults else "")
        choices = ", ".join(f"`{c}`" for c in q.choices)
        lines.append(f"| [`{q.key}`](#{q.key}) | {q.kind} | {choices} | {default} | "
                     f"{_cell(q.help)} |")
    return "\n".join(lines)


def _questions_table() -> str:
    lines = ["| answer | type | default | choices | asked for | help |", "|---|---|---|---|---|---|"]
    for name, q in questions().items():
        when = str(q.get("when", "")).replace("{{", "").replace("}}", "").strip()
        default = q.get("default")
        default_s = "" if default is None else f"`{_cell(yaml.safe_dump(default, default_flow_style=True).strip())}`"
        default_s = default_s.replace("`...`", "").replace("\n...", "")
        choices = ", ".join(f"`{c}`" for c in q.get("choices", []) or [])
        lines.append(f"| `{name}` | {q.get('type', 'str')} | {default_s} | {choices} | "
                     f"{_cell(when) or 'every unit'} | {_cell(str(q.get('help', '')))} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- error messages (from the source)


@dataclass(frozen=True)
class Raised:
    cls: str
    message: str
    hint: str
    where: str


def _text(node: ast.expr | None) -> str:
    if node is None:
        return ""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(f"‹{ast.unparse(v.value)}›" if isinstance(v, ast.FormattedValue) else _text(v)
                       for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left) + _text(node.right)
    return f"‹{ast.unparse(node)}›"


def error_classes() -> dict[str, str]:
    """Every error class of the typed tree (fleetstrap.errors) -> its docstring."""
    from fleetstrap import errors

    return {name: (obj.__doc__ or "").strip() for name, obj in vars(errors).items()
            if isinstance(obj, type) and issubclass(obj, errors.FleetstrapError) and obj is not errors.FleetstrapError}


def _subclasses(trees: list[ast.Module], known: set[str]) -> dict[str, str]:
    """Error classes defined outside fleetstrap.errors (UpdateConflictError) -> the documented class they extend."""
    to_base = {name: name for name in known}
    changed = True
    while changed:
        changed = False
        for node in (n for t in trees for n in ast.walk(t) if isinstance(n, ast.ClassDef)):
            bases = [b.id for b in node.bases if isinstance(b, ast.Name) and b.id in to_base]
            if bases and node.name not in to_base:
                to_base[node.name] = to_base[bases[0]]
                changed = True
    return to_base


def raised_errors() -> list[Raised]:
    parsed = [(path, ast.parse(path.read_text(encoding="utf-8"))) for path in sorted(PKG.rglob("*.py"))]
    classes = _subclasses([t for _, t in parsed], set(error_classes()))
    found = []
    for path, tree_ in parsed:
        for node in ast.walk(tree_):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                continue
            func = node.exc.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name not in classes:
                continue
            args = node.exc.args
            hint = next((k.value for k in node.exc.keywords if k.arg == "hint"), None)
            found.append(Raised(classes[name], _text(args[0] if args else None), _text(hint),
                                f"{path.relative_to(ROOT / 'generator').as_posix()}:{node.lineno}"))
    return found


def _errors_table(cls: str, raised: list[Raised]) -> str:
    rows = [r for r in raised if r.cls == cls]
    if not rows:
        return "_fleetstrap raises no message of this class directly._"
    lines = ["| message | hint | raised in |", "|---|---|---|"]
    lines += [f"| {_code(r.message)} | {_code(r.hint) if r.hint else ''} | `{r.where.split(':')[0]}` |"
              for r in sorted(rows, key=lambda r: (r.where.split(":")[0], r.message))]
    return "\n".join(lines)


def _demote(markdown: str) -> str:
    """Headings one level down (an included file's `# Title` under the page's own title), code blocks kept."""
    out, fenced = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        out.append("#" + line if line.startswith("#") and not fenced else line)
    return "\n".join(out) + "\n"


def _code(text: str) -> str:
    return "`" + _cell(text).replace("`", "'") + "`"


# ---------------------------------------------------------------- MkDocs events


def on_config(config: Any) -> Any:
    _GENERATED.clear()
    cmds = command_pages()
    bps = blueprint_pages()
    _GENERATED["commands/index.md"] = _commands_index(cmds)
    _GENERATED.update({uri: md for uri, (_, md) in cmds.items()})
    _GENERATED["blueprints/index.md"] = _blueprints_index(bps)
    _GENERATED.update({uri: md for uri, (_, md) in bps.items()})
    for section in config["nav"]:
        if isinstance(section, dict) and "Commands" in section:
            section["Commands"] = ["commands/index.md", *({name: uri} for uri, (name, _) in cmds.items())]
        if isinstance(section, dict) and "Blueprints" in section:
            section["Blueprints"] = ["blueprints/index.md", *({name: uri} for uri, (name, _) in bps.items())]
    return config


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for uri, content in _GENERATED.items():
        files.append(File.generated(config, uri, content=content))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:  # noqa: ARG001 (MkDocs API)
    raised = raised_errors() if "fleetstrap:errors" in markdown else []
    if page.file.src_uri == "troubleshooting.md":
        documented = set(re.findall(r"<!-- fleetstrap:errors (\w+) -->", markdown))
        for cls in sorted(({r.cls for r in raised} | set(error_classes())) - documented):
            log.warning("troubleshooting.md has no section for %s", cls)

    def replace(m: re.Match[str]) -> str:
        kind, args = m.group("kind"), m.group("args").split()
        if kind == "questions":
            return _questions_table()
        if kind == "answers":
            return _answers_table()
        if kind == "tree" and args and args[0] in _TREES:
            return "```text\n" + tree(_TREES[args[0]]) + "\n```"
        if kind == "file" and len(args) == 2 and (_TREES.get(args[0], Path("/nonexistent")) / args[1]).is_file():
            return _demote((_TREES[args[0]] / args[1]).read_text(encoding="utf-8"))
        if kind == "errors" and args and args[0] in error_classes():
            return _errors_table(args[0], raised)
        if kind == "include" and args and (ROOT / args[0]).is_file():
            return (ROOT / args[0]).read_text(encoding="utf-8")
        log.warning("%s: unknown marker %s", page.file.src_uri, m.group(0))
        return m.group(0)

    return _MARKER.sub(replace, markdown)
