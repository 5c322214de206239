"""Devices and gateways: who may write which datastream, over HTTP and over MQTT.

A device is a user (``app_user``, role viewer: it reads what a viewer reads) with a row in
``twin.sense_device`` and the datastreams it owns in ``twin.sense_device_datastream``. It
holds two secrets, both printed once when it is made:

- a bearer token (``twin.access.tokens``) for HTTP: with it the device may create Observations
  of its own datastreams, and nothing else (``POST`` elsewhere is a 403, audited);
- an MQTT password, kept only as the broker's PBKDF2-SHA512 hash (mosquitto's ``$7$`` format:
  ``$7$<iterations>$<base64 salt>$<base64 digest>``, 12 bytes of salt, a 64-byte digest).

:func:`broker_files` writes what a Mosquitto needs to hold devices to their datastreams: a
password file, an ACL file (a device may write only ``v1.1/Datastreams(<id>)/Observations``
of its own datastreams and read only their topics; the bridge reads every datastream's
Observations and writes the fan-out topics) and a ``mosquitto.conf`` snippet. Over MQTT the
broker is the enforcement: a message reaching the bridge does not say who published it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from twin.access import audit
from twin.access.principal import Principal
from twin.access.tokens import AuthError, add_user, forget_user, set_disabled

#: Mosquitto's own default (``mosquitto_passwd``); the passwords are random, 32 bytes.
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12
DIGEST_BYTES = 64
DEVICE_ROLE = "viewer"
BRIDGE_USER = "twin-bridge"
#: MQTT user names the password and ACL files can carry as they are.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
#: ``$select`` values that are safe as one ACL topic (no spaces, no wildcards).
SELECT = re.compile(r"[A-Za-z0-9@/,._-]{1,200}")


def mosquitto_hash(
    password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS
) -> str:
    """The password in mosquitto's PBKDF2-SHA512 format (``$7$...``, mosquitto 2.0 and later)."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations,
                                 DIGEST_BYTES)  # fmt: skip
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def mosquitto_verify(password: str, hashed: str) -> bool:
    """Whether ``password`` matches a ``$7$`` hash (what the broker checks at connect)."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        return False
    salt, digest = base64.b64decode(parts[3]), base64.b64decode(parts[4])
    mine = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, int(parts[2]),
                               len(digest))  # fmt: skip
    return hmac.compare_digest(mine, digest)


def new_password() -> str:
    return secrets.token_urlsafe(32)


def _check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise AuthError(f"name: {name!r}: 1 to 100 letters, digits, '.', '_' or '-' (it is the "
                        "device's MQTT user name), starting with a letter or digit")  # fmt: skip
    if name == BRIDGE_USER:
        raise AuthError(f"name: {BRIDGE_USER!r} is the bridge's MQTT user")
    return name


def _check_datastreams(conn: psycopg.Connection, ids: list[int]) -> list[int]:
    if not ids:
        raise AuthError("datastream: give at least one (--datastream ID)")
    wanted = sorted(set(ids))
    found = {r[0] for r in conn.execute(
        "SELECT id FROM twin.sensor WHERE id = ANY(%s)", (wanted,)).fetchall()}  # fmt: skip
    missing = [i for i in wanted if i not in found]
    if missing:
        raise AuthError(f"datastream: no Datastream with @iot.id {', '.join(map(str, missing))}")
    return wanted


def add_device(
    conn: psycopg.Connection, name: str, datastreams: list[int]
) -> tuple[dict[str, Any], str, str]:
    """Create a device owning ``datastreams``: its row, its bearer token and its MQTT password
    (both shown only now; only their hashes are kept)."""
    name = _check_name(name.strip())
    ids = _check_datastreams(conn, datastreams)
    user, token = add_user(conn, name, DEVICE_ROLE)
    password = new_password()
    row = conn.execute(
        "INSERT INTO twin.sense_device (name, user_id, mqtt_password_hash) VALUES (%s, %s, %s)"
        " RETURNING id, created_at", (name, user["id"], mosquitto_hash(password)),
    ).fetchone()  # fmt: skip
    assert row is not None
    _link(conn, int(row[0]), ids)
    return {"id": row[0], "name": name, "user_id": user["id"], "datastreams": ids,
            "created_at": row[1]}, token, password  # fmt: skip


def _device(conn: psycopg.Connection, name: str) -> tuple[int, int]:
    row = conn.execute("SELECT id, user_id FROM twin.sense_device WHERE name = %s",
                       (name,)).fetchone()  # fmt: skip
    if row is None:
        raise AuthError(f"name: no device {name!r}")
    return int(row[0]), int(row[1])


def _link(conn: psycopg.Connection, device: int, ids: list[int]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO twin.sense_device_datastream (device_id, sensor_id) VALUES (%s, %s)"
            " ON CONFLICT DO NOTHING", [(device, i) for i in ids],
        )  # fmt: skip


def set_datastreams(
    conn: psycopg.Connection, name: str, add: list[int], remove: list[int] | None = None
) -> list[int]:
    """Give a device more datastreams (and take some away); its datastreams after.

    This process forgets the device's cached token at once; the broker learns of it at the
    next ``twin sense acl`` and reload."""
    device, user = _device(conn, name)
    if add:
        _link(conn, device, _check_datastreams(conn, add))
    if remove:
        conn.execute("DELETE FROM twin.sense_device_datastream WHERE device_id = %s"
                     " AND sensor_id = ANY(%s)", (device, sorted(set(remove))))  # fmt: skip
    forget_user(user)
    return [r[0] for r in conn.execute(
        "SELECT sensor_id FROM twin.sense_device_datastream WHERE device_id = %s ORDER BY 1",
        (device,)).fetchall()]  # fmt: skip


def new_device_password(conn: psycopg.Connection, name: str) -> str:
    """Replace a device's MQTT password (effective at the next ``twin sense acl`` and reload)."""
    device, _ = _device(conn, name)
    password = new_password()
    conn.execute("UPDATE twin.sense_device SET mqtt_password_hash = %s WHERE id = %s",
                 (mosquitto_hash(password), device))  # fmt: skip
    return password


def delete_device(conn: psycopg.Connection, name: str, *, actor: str) -> dict[str, Any]:
    """Delete a device: its bearer token is revoked (its user stays, disabled, with its audit
    trail, so the name stays taken), its MQTT password and its datastream grants are gone;
    the Observations it wrote stay. Audited (``sense.device.delete``, as ``actor``) in the
    caller's transaction. The broker learns of it at the next ``twin sense acl`` and reload.

    Returns the device's name, id, its former datastreams and how many Observations of them
    are kept."""
    device, _ = _device(conn, name)
    ids = [r[0] for r in conn.execute(
        "SELECT sensor_id FROM twin.sense_device_datastream WHERE device_id = %s ORDER BY 1",
        (device,)).fetchall()]  # fmt: skip
    set_disabled(conn, name)  # the device's user has its name (add_device)
    conn.execute("DELETE FROM twin.sense_device WHERE id = %s", (device,))  # grants cascade
    row = conn.execute("SELECT count(*) FROM twin.observation WHERE sensor_id = ANY(%s)",
                       (ids,)).fetchone()  # fmt: skip
    kept = int(row[0]) if row else 0
    audit.record_sync(conn, Principal(name=actor, role="admin"), "sense.device.delete",
                      f"sense_device/{device}", detail={"name": name, "datastreams": ids,
                                                        "observations_kept": kept})  # fmt: skip
    return {"id": device, "name": name, "datastreams": ids, "observations_kept": kept}


def list_devices(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Devices with their datastreams and state (never a secret)."""
    cur = conn.cursor(row_factory=dict_row)
    cur.execute(
        "SELECT d.id, d.name, u.disabled, d.created_at, u.last_used_at,"
        " coalesce((SELECT array_agg(dd.sensor_id ORDER BY dd.sensor_id)"
        "  FROM twin.sense_device_datastream dd WHERE dd.device_id = d.id), '{}') AS datastreams"
        " FROM twin.sense_device d JOIN twin.app_user u ON u.id = d.user_id ORDER BY d.id"
    )
    return cur.fetchall()


def topic(datastream: int) -> str:
    return f"v1.1/Datastreams({datastream})/Observations"


@dataclass(frozen=True)
class BrokerFiles:
    passwd: str
    acl: str
    conf: str
    devices: int

    def write(self, out: Path) -> list[Path]:
        """Write ``passwd`` (mode 0600), ``acl`` and ``mosquitto.conf`` under ``out``."""
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, text, mode in (("passwd", self.passwd, 0o600), ("acl", self.acl, 0o644),
                                 ("mosquitto.conf", self.conf, 0o644)):  # fmt: skip
            path = out / name
            path.write_text(text)
            path.chmod(mode)
            paths.append(path)
        return paths


def broker_files(
    conn: psycopg.Connection, out: Path, *, bridge_password: str,
    bridge_user: str = BRIDGE_USER, selects: list[str] | None = None,
    bridge_hash: str | None = None,
) -> BrokerFiles:  # fmt: skip
    """The password file, ACL file and ``mosquitto.conf`` snippet for the devices now active
    (a revoked device's user is left out, so it can no longer connect). ``bridge_hash``: the
    bridge's password hash to keep (from the password file written before), instead of a hash
    of ``bridge_password``."""
    if not NAME.fullmatch(bridge_user):
        raise AuthError(f"bridge user: {bridge_user!r}: letters, digits, '.', '_' or '-'")
    bad = [s for s in selects or () if not SELECT.fullmatch(s)]
    if bad:
        raise AuthError(f"TWIN_MQTT_SELECTS: {bad[0]!r} cannot be an ACL topic (no spaces, "
                        "no wildcards)")  # fmt: skip
    devices = [d for d in list_devices(conn) if not d["disabled"]]
    hashes: dict[str, str] = dict(conn.execute(
        "SELECT d.name, d.mqtt_password_hash FROM twin.sense_device d").fetchall())  # fmt: skip
    if bridge_user in hashes:
        raise AuthError(f"bridge user: {bridge_user!r} is also a device's name")
    if bridge_hash is not None and not bridge_hash.startswith("$7$"):
        raise AuthError(f"bridge user: {bridge_user!r}: its line in the password file is not a "
                        "mosquitto $7$ hash; run `twin sense acl` to write a new one")  # fmt: skip
    passwd = [f"{bridge_user}:{bridge_hash or mosquitto_hash(bridge_password)}"]
    acl = ["# Written by `twin sense acl`; regenerate it rather than editing it.",
           "# Each device writes only its own datastreams' Observations and reads only their",
           "# topics; the bridge reads every datastream's Observations and writes the fan-out.",
           "", f"user {bridge_user}", "topic read v1.1/+/Observations",
           "topic write v1.1/+/Observations"]  # fmt: skip
    acl += [f"topic write v1.1/+/Observations?$select={s}" for s in selects or ()]
    for d in devices:
        passwd.append(f"{d['name']}:{hashes[d['name']]}")
        acl += ["", f"user {d['name']}"]
        for ds in d["datastreams"]:
            acl += [f"topic write {topic(ds)}", f"topic read v1.1/Datastreams({ds})/#"]
    base = out.resolve()
    conf = (
        "# mosquitto.conf snippet written by `twin sense acl` (add a listener of your own);\n"
        "# reload the broker (SIGHUP) after each `twin sense acl`.\n"
        "allow_anonymous false\n"
        f"password_file {base / 'passwd'}\n"
        f"acl_file {base / 'acl'}\n"
    )
    return BrokerFiles("\n".join(passwd) + "\n", "\n".join(acl) + "\n", conf, len(devices))
