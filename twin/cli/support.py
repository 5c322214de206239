"""What every ``twin`` command shares: settings, errors and output (``--json`` for machines)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, NoReturn

import typer

from twin.settings import Settings

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable result.")]


def load_settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:  # pydantic.ValidationError names the TWIN_ variable
        fail(f"invalid settings: {exc}")


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def emit(result: dict[str, Any], as_json: bool, human: str) -> None:
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        typer.echo(human)


def parse_as_of(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--as-of: expected an ISO 8601 time, got {text!r}", code=2)
    if at.tzinfo is None:
        fail("--as-of: give a time zone (e.g. 2026-11-01T08:00:00+08:00)", code=2)
    return at
