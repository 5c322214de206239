"""Users, tokens and scopes: who a bearer token belongs to, and the admin areas it may touch.

A token is 32 random bytes (URL-safe base64 behind a ``twin_`` prefix), printed once when the
user is made; only its SHA-256 is stored. A high-entropy random secret needs no slow password
hash: there is nothing to guess from the digest. A scope is a list of admin areas
(``district:C.D01,street:12``); the user may read and write within those areas and every area
under them. An empty scope is the whole city.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from twin.access.principal import ROLES, Principal
from twin.db.models.city import ADMIN_LEVELS

TOKEN_PREFIX = "twin_"
#: Seconds a resolved token is remembered in-process by default (``TWIN_AUTH_CACHE_SECONDS``
#: bounds how long a revocation takes in the other server processes).
TOKEN_CACHE_S = 5.0
USER_ROLES = tuple(r for r in ROLES if r != "public")


class AuthError(ValueError):
    """A user, role or scope that cannot be used; the message names the part."""


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_scope(text: str | None) -> list[tuple[str, str]]:
    """``"district:C.D01,street:12"`` -> ``[("district", "C.D01"), ("street", "12")]``."""
    out: list[tuple[str, str]] = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        level, sep, ref = part.partition(":")
        if not sep or not ref.strip():
            raise AuthError(f"scope entry {part!r}: expected LEVEL:ID, e.g. district:C.D01")
        if level not in ADMIN_LEVELS:
            raise AuthError(f"scope entry {part!r}: level must be one of {', '.join(ADMIN_LEVELS)}")
        out.append((level, ref.strip()))
    return out


def resolve_scope(conn: psycopg.Connection, entries: list[tuple[str, str]]) -> list[int]:
    """Admin area ids of scope entries (by id or code), each checked to be of its level."""
    ids: list[int] = []
    for level, ref in entries:
        as_id = int(ref) if ref.isdigit() and len(ref) <= 18 else None
        row = conn.execute(
            "SELECT id, level FROM twin.admin_area WHERE code = %s OR id = %s"
            " ORDER BY code = %s DESC LIMIT 1",
            (ref, as_id, ref),
        ).fetchone()
        if row is None:
            raise AuthError(f"scope entry {level}:{ref}: no such admin area (id or code)")
        if row[1] != level:
            raise AuthError(f"scope entry {level}:{ref}: that area is a {row[1]}, not a {level}")
        ids.append(int(row[0]))
    return sorted(set(ids))


def add_user(
    conn: psycopg.Connection, name: str, role: str, scope: str | None = None
) -> tuple[dict[str, Any], str]:
    """Create a user and its token; returns the user row and the token (shown only now)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise AuthError("name: 1 to 100 characters")
    if role not in USER_ROLES:
        raise AuthError(f"role: one of {', '.join(USER_ROLES)}, got {role!r}")
    areas = resolve_scope(conn, parse_scope(scope))
    if conn.execute("SELECT 1 FROM twin.app_user WHERE name = %s", (name,)).fetchone():
        raise AuthError(f"name: a user {name!r} exists already")
    token = new_token()
    cur = conn.cursor(row_factory=dict_row)
    cur.execute(
        "INSERT INTO twin.app_user (name, role, scope, token_hash) VALUES (%s, %s, %s, %s)"
        " RETURNING id, name, role, scope, created_at",
        (name, role, areas, hash_token(token)),
    )
    row = cur.fetchone()
    assert row is not None
    return row, token


def set_disabled(conn: psycopg.Connection, name: str, disabled: bool = True) -> None:
    """Revoke (or restore) a user's token; the user and its audit trail stay.

    This process forgets the token at once; other processes within their token cache time."""
    cur = conn.execute(
        "UPDATE twin.app_user SET disabled = %s,"
        " revoked_at = CASE WHEN %s THEN now() END WHERE name = %s RETURNING id, token_hash",
        (disabled, disabled, name),
    )
    rows = cur.fetchall()
    if not rows:
        raise AuthError(f"name: no user {name!r}")
    forget_user(rows[0][0], rows[0][1])


def new_user_token(conn: psycopg.Connection, name: str) -> str:
    """Replace a user's token (the old one stops working) and return the new one."""
    token = new_token()
    cur = conn.execute(
        "WITH old AS (SELECT id, token_hash FROM twin.app_user WHERE name = %s FOR UPDATE)"
        " UPDATE twin.app_user u SET token_hash = %s, disabled = false, revoked_at = NULL"
        " FROM old WHERE u.id = old.id RETURNING u.id, old.token_hash",
        (name, hash_token(token)),
    )
    rows = cur.fetchall()
    if not rows:
        raise AuthError(f"name: no user {name!r}")
    forget_user(rows[0][0], rows[0][1])
    return token


def list_users(conn: psycopg.Connection) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    cur.execute(
        "SELECT u.id, u.name, u.role, u.disabled, u.created_at, u.last_used_at,"
        " coalesce((SELECT array_agg(a.level || ':' || a.code ORDER BY a.id)"
        "  FROM twin.admin_area a WHERE a.id = ANY(u.scope)), '{}') AS scope"
        " FROM twin.app_user u ORDER BY u.id"
    )
    return cur.fetchall()


@dataclass
class _Cached:
    principal: Principal | None
    until: float


_CACHE: dict[str, _Cached] = {}
# Bumped by every forget: a lookup that began before a revocation must not cache its answer.
_GENERATION = [0]

PRINCIPAL_SQL = """
SELECT u.id, u.name, u.role, u.disabled, u.scope,
       CASE WHEN cardinality(u.scope) = 0 THEN NULL ELSE
           (SELECT array_agg(DISTINCT s) FROM unnest(u.scope) r, twin.area_subtree(r) s)
       END AS areas,
       (SELECT coalesce(array_agg(dd.sensor_id), '{}') FROM twin.sense_device_datastream dd
        WHERE dd.device_id = d.id) AS datastreams,
       d.id IS NOT NULL AS device
FROM twin.app_user u LEFT JOIN twin.sense_device d ON d.user_id = u.id
WHERE u.token_hash = %s
"""


def remembered(token: str) -> tuple[bool, Principal | None]:
    """``(True, principal)`` while :func:`principal_for_token` remembers the token's lookup
    (``principal`` None: unknown or revoked), else ``(False, None)``: a lookup is needed. A
    request served by a read replica asks first, since the lookup writes (``last_used_at``)."""
    hit = _CACHE.get(hash_token(token))
    if hit is not None and hit.until > time.monotonic():
        return True, hit.principal
    return False, None


async def principal_for_token(
    conn: AsyncConnection, token: str, *, cache_s: float = TOKEN_CACHE_S
) -> Principal | None:
    """The principal a bearer token stands for, or None (unknown or revoked token).

    Remembered for ``cache_s`` seconds (``TWIN_AUTH_CACHE_SECONDS``), so a busy client costs
    one lookup per few seconds rather than one per request. The time counts from before the
    lookup, so a revocation committed in another process takes effect here at most ``cache_s``
    seconds after it commits."""
    digest = hash_token(token)
    now = time.monotonic()
    hit = _CACHE.get(digest)
    if hit is not None and hit.until > now:
        return hit.principal
    generation = _GENERATION[0]
    cur = await conn.cursor(row_factory=dict_row).execute(PRINCIPAL_SQL, (digest,))
    row = await cur.fetchone()
    principal = None
    if row is not None and not row["disabled"]:
        principal = Principal(
            name=row["name"], role=row["role"], user_id=row["id"],
            scope=frozenset(int(a) for a in row["areas"] or ()),
            scope_roots=tuple(int(a) for a in row["scope"] or ()),
            datastreams=frozenset(int(s) for s in row["datastreams"]) if row["device"] else None,
        )  # fmt: skip
        await conn.execute(
            "UPDATE twin.app_user SET last_used_at = now() WHERE id = %s", (row["id"],)
        )
    if cache_s <= 0 or generation != _GENERATION[0]:
        return principal
    if len(_CACHE) > 10_000:
        _CACHE.clear()
    _CACHE[digest] = _Cached(principal, now + cache_s)
    return principal


def forget_user(user_id: int, token_hash: str | None = None) -> None:
    """Drop a user's cached tokens from this process (on revocation or a new token)."""
    _GENERATION[0] += 1
    if token_hash is not None:
        _CACHE.pop(token_hash, None)
    for digest, hit in list(_CACHE.items()):
        if hit.principal is not None and hit.principal.user_id == user_id:
            _CACHE.pop(digest, None)


def forget_tokens() -> None:
    """Drop the in-process token cache (tests)."""
    _GENERATION[0] += 1
    _CACHE.clear()
