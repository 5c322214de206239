"""mkdocs hook: the CLI reference page, generated from the ``twin`` command at build time.

``docs/cli.md`` holds the marker below; this hook replaces it with one section per command
(usage, help text, arguments and options), read from the typer app itself, so the reference
cannot fall behind the code. Needs the ``twin`` package importable (``make docs`` runs mkdocs
from the project's virtual environment).
"""

from __future__ import annotations

import inspect
from typing import Any

MARKER = "<!-- twin-cli-reference -->"
_SKIP = {"help", "install_completion", "show_completion"}


def _escape(text: str) -> str:
    """< and > outside code spans as entities, so help like <data_dir> is not taken for HTML."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # even parts are outside backticks
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def _cell(text: str) -> str:
    return _escape(" ".join(text.split())).replace("|", "\\|")


def _default(param: Any) -> str:
    value = param.default
    if value is None or value is False or value in ((), "") or callable(value):
        return ""
    if getattr(param, "is_flag", False) and value is True:
        return "on"
    return f"`{value}`"


def _usage(cmd: Any, ctx: Any) -> str:
    pieces = [ctx.command_path]
    params = [p for p in cmd.get_params(ctx) if p.name not in _SKIP]
    if any(p.param_type_name == "option" for p in params):
        pieces.append("[OPTIONS]")
    for p in params:
        if p.param_type_name == "argument":
            name = (p.metavar or p.name or "").upper()
            pieces.append(name if p.required else f"[{name}]")
    return " ".join(pieces)


def _is_group(cmd: Any) -> bool:
    return hasattr(cmd, "list_commands")


def _section(cmd: Any, ctx: Any, depth: int) -> list[str]:
    path = ctx.command_path
    out = [f"{'#' * min(depth, 6)} `{path}`", ""]
    if cmd.help:
        out += [_escape(inspect.cleandoc(cmd.help).replace("\b\n", "")), ""]
    if not _is_group(cmd):
        out += ["```text", _usage(cmd, ctx), "```", ""]
    rows = []
    for param in cmd.get_params(ctx):
        if getattr(param, "hidden", False) or param.name in _SKIP:
            continue
        if param.param_type_name == "option":
            names = ", ".join(f"`{o}`" for o in (*param.opts, *param.secondary_opts))
        else:
            names = f"`{(param.metavar or param.name or '').upper()}`"
        help_text = _cell(getattr(param, "help", None) or "")
        rows.append(f"| {names} | {help_text} | {_default(param)} |")
    if rows:
        out += ["| argument or option | meaning | default |", "|---|---|---|", *rows, ""]
    if _is_group(cmd):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            out += _section(sub, sub.context_class(sub, info_name=name, parent=ctx), depth + 1)
    return out


def reference() -> str:
    import typer  # typer carries its own copy of click: use its classes, not click's

    from twin.cli import app

    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="twin")
    return "\n".join(_section(root, ctx, 2))


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, reference())
