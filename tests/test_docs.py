"""The documentation: a short README, and no relative link to a file that does not exist.

Runs without mkdocs (the strict site build in ``make test`` checks anchors and the navigation
as well); this catches a moved or renamed page in any checkout that runs pytest.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])

# [text](target) and [text](target "title"); images too. Code spans and fenced blocks are
# removed first, so examples in them are not taken for links.
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_CODE = re.compile(r"`[^`\n]*`")


def relative_links(text: str) -> list[str]:
    """The relative link targets of a Markdown text, without their #anchor."""
    text = _CODE.sub("", _FENCE.sub("", text))
    out = []
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith(("#", "/")):
            continue  # a URL (http:, mailto:), an anchor on the same page or a site path
        path = target.split("#", 1)[0]
        if path:
            out.append(path)
    return out


def test_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < 200, f"README.md has {len(lines)} lines; move the detail into docs/"


def test_the_pages_exist() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert {"README.md", "docs/index.md", "docs/ARCHITECTURE.md", "docs/cli.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_point_to_files(page: Path) -> None:
    missing = [
        target
        for target in relative_links(page.read_text(encoding="utf-8"))
        if not (page.parent / target).exists()
    ]
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"


def test_the_link_check_can_fail() -> None:
    text = "see [a](docs/nothing-here.md#x), [b](https://example.org), `[c](d.md)`, [e](#top)"
    assert relative_links(text) == ["docs/nothing-here.md"]
    assert not (ROOT / "docs/nothing-here.md").exists()


def test_the_cli_reference_lists_every_command() -> None:
    """The reference generated into docs/cli.md names every command of the typer app."""
    import importlib.util

    import typer

    from twin.cli import app

    spec = importlib.util.spec_from_file_location(
        "cli_reference", ROOT / "docs" / "hooks" / "cli_reference.py"
    )
    assert spec is not None and spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    text = hook.reference()

    def paths(cmd: object, prefix: str) -> list[str]:
        out = [prefix]
        if hasattr(cmd, "list_commands"):
            ctx = cmd.context_class(cmd, info_name=prefix)  # type: ignore[attr-defined]
            for name in cmd.list_commands(ctx):
                out += paths(cmd.get_command(ctx, name), f"{prefix} {name}")  # type: ignore[attr-defined]
        return out

    expected = paths(typer.main.get_command(app), "twin")
    assert len(expected) > 40  # every group and its commands, not only the top level
    missing = [p for p in expected if f"`{p}`" not in text]
    assert not missing, f"not in the CLI reference: {missing}"
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert hook.MARKER in page
