"""``twin users ...`` and ``twin audit``: users, their tokens and scopes, and the audit trail.

Local commands: they talk to the database directly with the operator's own credentials (user
management is not an API route). Exit codes: 0 done, 1 refused or no database, 2 bad arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import psycopg
import typer

from twin import durations
from twin.access.audit import list_entries
from twin.access.tokens import (
    USER_ROLES,
    AuthError,
    add_user,
    list_users,
    new_user_token,
    set_disabled,
)
from twin.cli.support import JsonOpt, emit, fail, load_settings
from twin.db.engine import DatabaseNotConfiguredError, database_url

users_app = typer.Typer(help="Users, roles, scopes and tokens.", no_args_is_help=True)
T = TypeVar("T")


def _with_conn(work: Callable[[psycopg.Connection], T]) -> T:
    try:
        url = database_url(load_settings())
    except DatabaseNotConfiguredError as exc:
        fail(str(exc))
    try:
        with psycopg.connect(url) as conn:
            return work(conn)
    except AuthError as exc:
        fail(str(exc), code=2)
    except psycopg.OperationalError as exc:
        fail(f"database unavailable: {str(exc).splitlines()[0]}")


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name (unique).")],
    role: Annotated[str, typer.Option("--role", help=f"One of {', '.join(USER_ROLES)}.")],
    scope: Annotated[
        str | None,
        typer.Option(
            "--scope",
            help="Admin areas: district:ID[,street:ID...] (id or code); none: the whole city.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a user and print its token once (only its hash is kept)."""
    user, token = _with_conn(lambda c: add_user(c, name, role, scope))
    emit({**user, "token": token}, as_json,
         f"user {user['name']} ({user['role']}, scope "
         f"{', '.join(map(str, user['scope'])) or 'whole city'}) created.\n"
         f"token (shown once, keep it safe):\n{token}")  # fmt: skip


@users_app.command("list")
def users_list(as_json: JsonOpt = False) -> None:
    """Users with role, scope, state and last use (never tokens)."""
    rows = _with_conn(list_users)
    lines = [f"{r['id']:>4}  {r['name']:<20} {r['role']:<9} "
             f"{'disabled' if r['disabled'] else 'active':<8} {','.join(r['scope']) or 'city'}"
             for r in rows]  # fmt: skip
    emit({"users": rows}, as_json, "\n".join(lines) or "no users")


@users_app.command("revoke")
def users_revoke(name: str, as_json: JsonOpt = False) -> None:
    """Disable a user's token at once (the API forgets cached tokens within seconds)."""
    _with_conn(lambda c: set_disabled(c, name, True))
    emit({"name": name, "disabled": True}, as_json, f"user {name}: token revoked")


@users_app.command("token")
def users_token(name: str, as_json: JsonOpt = False) -> None:
    """Issue a new token for a user (the old one stops working) and print it once."""
    token = _with_conn(lambda c: new_user_token(c, name))
    emit({"name": name, "token": token}, as_json, f"new token for {name} (shown once):\n{token}")


def audit_command(
    user: Annotated[str | None, typer.Option("--user", help="Only this user (name).")] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="Action prefix, e.g. task. or layer.read")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="How far back, e.g. 2h, 7d.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000)] = 100,
    as_json: JsonOpt = False,
) -> None:
    """The audit trail: who read personal layers or changed anything, newest first."""
    start = None
    if since is not None:
        try:
            start = datetime.now(UTC) - durations.parse_duration(since)
        except ValueError as exc:
            fail(f"--since: {exc}", code=2)
    rows: list[dict[str, Any]] = _with_conn(
        lambda c: list_entries(c, user=user, action=action, since=start, limit=limit)
    )
    lines = [f"{r['at']:%Y-%m-%d %H:%M:%S}  {r['actor'] or '-':<16} {r['action']:<16} "
             f"{r['resource']:<20} {r['area_code'] or ''}" for r in rows]  # fmt: skip
    emit({"entries": rows}, as_json, "\n".join(lines) or "no entries")
