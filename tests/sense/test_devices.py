"""Who may write over MQTT: devices, their passwords and the broker's ACL (``twin sense acl``).

The password file is checked against mosquitto's own tool (``mosquitto_passwd``) and against a
private Mosquitto started on the generated configuration: a device publishing to its own
datastream is stored by the bridge; publishing to another device's datastream is refused by
the broker (MQTT 5 PUBACK 0x87 Not authorized), so no row appears and no subscriber sees it.
"""

from __future__ import annotations

import asyncio
import base64
import getpass
import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from tests.sense.test_bridge import make_sensor, rows, wait_for
from tests.services import binary, free_port, serving
from twin.access.tokens import AuthError, set_disabled
from twin.cli import app
from twin.db.migrate import upgrade
from twin.sense.bridge import Bridge, running
from twin.sense.devices import add_device, broker_files, mosquitto_hash, mosquitto_verify

NOT_AUTHORIZED = 0x87


@pytest.fixture(scope="module")
def db(make_database: Callable[..., str]) -> str:
    url: str = make_database("twin_devices")
    upgrade(url)
    return url


def test_the_password_hash_is_mosquittos_format(tmp_path: Path) -> None:
    hashed = mosquitto_hash("s3cret", salt=b"\x01" * 12)
    _, seven, iterations, salt, digest = hashed.split("$")
    assert (seven, iterations) == ("7", "101")
    assert base64.b64decode(salt) == b"\x01" * 12 and len(base64.b64decode(digest)) == 64
    # A hash written by mosquitto's own tool verifies with the same rule.
    pw_file = tmp_path / "pw"
    subprocess.run([binary("mosquitto_passwd"), "-c", "-b", str(pw_file), "u", "s3cret"],
                   check=True, capture_output=True)  # fmt: skip
    theirs = pw_file.read_text().strip().split(":", 1)[1]
    assert theirs.startswith("$7$101$")
    assert mosquitto_verify("s3cret", theirs) and not mosquitto_verify("s3cret!", theirs)
    assert mosquitto_verify("s3cret", hashed) and not mosquitto_verify("other", hashed)


def test_bad_devices_are_refused(db: str) -> None:
    ds = make_sensor(db, "dev-bad")
    with psycopg.connect(db) as c:
        for name, ids, words in (("a b", [ds], "letters"), ("x:y", [ds], "letters"),
                                 ("twin-bridge", [ds], "bridge"), ("ok", [], "at least one"),
                                 ("ok", [ds, 99999999], "99999999")):  # fmt: skip
            with pytest.raises(AuthError, match=words):
                add_device(c, name, ids)
        c.rollback()
        add_device(c, "dev-bad", [ds])
        with pytest.raises(AuthError, match="exists already"):
            add_device(c, "dev-bad", [ds])


def connack(port: int, user: str | None, password: str | None) -> int:
    """The CONNACK reason code a client gets for these credentials (MQTT 5)."""
    done = threading.Event()
    code: list[int] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if user is not None:
        c.username_pw_set(user, password)

    def on_connect(client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        code.append(rc.value)
        done.set()

    c.on_connect = on_connect
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        assert done.wait(10), "no CONNACK"
    finally:
        c.disconnect()
        c.loop_stop()
    return code[0]


def publish(port: int, user: str, password: str, topic: str, body: Any) -> int:
    """Publish at QoS 1 as ``user``; the PUBACK's reason code."""
    connected = threading.Event()
    acked: list[int] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.username_pw_set(user, password)
    c.on_connect = lambda *a: connected.set()
    c.on_publish = lambda client, userdata, mid, rc, props: acked.append(rc.value)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        assert connected.wait(10), "no CONNACK"
        c.publish(topic, json.dumps(body), qos=1).wait_for_publish(10)
        return acked[0]
    finally:
        c.disconnect()
        c.loop_stop()


@pytest.fixture(scope="module")
def setup(db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Devices A (datastream a) and B (b) made with the CLI; a Mosquitto on the files of
    `twin sense acl`, with a listener of its own."""
    out: dict[str, Any] = {"a": make_sensor(db, "dev-a"), "b": make_sensor(db, "dev-b")}
    mp = pytest.MonkeyPatch()
    mp.setenv("TWIN_DATABASE_URL", db)
    mp.delenv("TWIN_MQTT_URL", raising=False)
    runner = CliRunner()
    for dev in ("A", "B"):
        r = runner.invoke(app, ["sense", "device", "add", f"dev-{dev}", "--datastream",
                                str(out[dev.lower()]), "--json"])  # fmt: skip
        assert r.exit_code == 0, r.output
        made = json.loads(r.output)
        assert made["datastreams"] == [out[dev.lower()]] and made["token"].startswith("twin_")
        out[dev] = made["mqtt_password"]
    conf_dir = tmp_path_factory.mktemp("acl")
    r = runner.invoke(app, ["sense", "acl", "--out", str(conf_dir), "--json"])
    assert r.exit_code == 0, r.output
    written = json.loads(r.output)
    with psycopg.connect(db) as c:  # every active device, these two and any made before
        active = c.execute("SELECT count(*) FROM twin.sense_device d JOIN twin.app_user u"
                           " ON u.id = d.user_id WHERE NOT u.disabled").fetchone()  # fmt: skip
    assert active is not None and written["devices"] == active[0] >= 2
    assert written["bridge_user"] == "twin-bridge"
    out["bridge"] = written["bridge_password"]
    mp.undo()
    out["acl"] = (conf_dir / "acl").read_text()
    out["passwd"] = (conf_dir / "passwd").read_text()
    out["conf"] = (conf_dir / "mosquitto.conf").read_text()
    port = free_port()
    broker_conf = conf_dir / "broker.conf"
    # As root, mosquitto would switch to the user "mosquitto", who cannot read the 0600 file.
    broker_conf.write_text(f"listener {port} 127.0.0.1\npersistence false\n"
                           f"user {getpass.getuser()}\n" + out["conf"])  # fmt: skip
    with serving([binary("mosquitto", "/usr/sbin/mosquitto"), "-c", str(broker_conf)], port):
        out["port"] = port
        yield out


def test_the_acl_holds_each_device_to_its_datastreams(setup: dict[str, Any]) -> None:
    a, b = setup["a"], setup["b"]
    blocks = {blk.splitlines()[0]: blk.splitlines()[1:] for blk in setup["acl"].split("\n\n")
              if blk.startswith("user ")}  # fmt: skip
    assert blocks["user dev-A"] == [f"topic write v1.1/Datastreams({a})/Observations",
                                    f"topic read v1.1/Datastreams({a})/#"]  # fmt: skip
    assert blocks["user dev-B"] == [f"topic write v1.1/Datastreams({b})/Observations",
                                    f"topic read v1.1/Datastreams({b})/#"]  # fmt: skip
    assert blocks["user twin-bridge"] == [
        "topic read v1.1/+/Observations", "topic write v1.1/+/Observations",
        "topic write v1.1/+/Observations?$select=result,phenomenonTime"]  # fmt: skip
    users = [line.split(":", 1)[0] for line in setup["passwd"].splitlines()]
    assert users[0] == "twin-bridge" and {"dev-A", "dev-B"} <= set(users)
    assert len(users) == len(set(users))
    assert "allow_anonymous false" in setup["conf"]
    assert "secret" not in setup["acl"] and setup["A"] not in setup["passwd"]


def test_the_broker_takes_only_the_generated_passwords(setup: dict[str, Any]) -> None:
    port = setup["port"]
    assert connack(port, "dev-A", setup["A"]) == 0
    assert connack(port, "twin-bridge", setup["bridge"]) == 0
    assert connack(port, "dev-A", setup["B"]) != 0  # B's password is not A's
    assert connack(port, None, None) != 0  # no anonymous clients


def test_a_device_writes_its_own_datastream_only(setup: dict[str, Any], db: str) -> None:
    port, a, b = setup["port"], setup["a"], setup["b"]
    seen_by_b: list[bytes] = []

    async def scenario() -> tuple[int, int]:
        bridge = Bridge(f"mqtt://twin-bridge:{setup['bridge']}@127.0.0.1:{port}", db,
                        base="http://t/sta/v1.1", batch_wait_s=0.01,
                        selects=["result,phenomenonTime"])  # fmt: skip
        import aiomqtt

        async with (
            running(bridge),
            aiomqtt.Client("127.0.0.1", port, username="dev-B", password=setup["B"],
                           protocol=aiomqtt.ProtocolVersion.V5) as sub,
        ):  # fmt: skip
            await asyncio.wait_for(bridge.ready.wait(), 10)
            await sub.subscribe(f"v1.1/Datastreams({b})/Observations", qos=1)

            async def collect() -> None:
                async for m in sub.messages:
                    seen_by_b.append(bytes(m.payload))  # type: ignore[arg-type]

            task = asyncio.create_task(collect())
            own = await asyncio.to_thread(
                publish, port, "dev-A", setup["A"], f"v1.1/Datastreams({a})/Observations",
                {"phenomenonTime": "2026-07-01T00:00:00Z", "result": 7.5})  # fmt: skip
            foreign = await asyncio.to_thread(
                publish, port, "dev-A", setup["A"], f"v1.1/Datastreams({b})/Observations",
                {"phenomenonTime": "2026-07-01T00:00:00Z", "result": 66.0})  # fmt: skip
            await wait_for(lambda: bridge.stats.stored >= 1)
            # B's own reading goes through, and B sees the bridge's copy on its topic.
            mine = await asyncio.to_thread(
                publish, port, "dev-B", setup["B"], f"v1.1/Datastreams({b})/Observations",
                {"phenomenonTime": "2026-07-01T00:05:00Z", "result": 1.0})  # fmt: skip
            await wait_for(lambda: bridge.stats.stored >= 2 and len(seen_by_b) >= 2)
            task.cancel()
            assert mine == 0
        return own, foreign

    own, foreign = asyncio.run(scenario())
    assert own == 0 and foreign == NOT_AUTHORIZED
    assert rows(db, a) == [("00:00", 7.5)]
    assert rows(db, b) == [("00:05", 1.0)]  # A's 66.0 never arrived
    assert all(b"66.0" not in p for p in seen_by_b)


def test_a_revoked_device_leaves_the_password_file(db: str, tmp_path: Path) -> None:
    ds = make_sensor(db, "dev-gone")
    with psycopg.connect(db) as c:
        add_device(c, "dev-gone", [ds])
        before = broker_files(c, tmp_path, bridge_password="x")
        set_disabled(c, "dev-gone")
        after = broker_files(c, tmp_path, bridge_password="x")
    assert "dev-gone:" in before.passwd and f"Datastreams({ds})" in before.acl
    assert "dev-gone" not in after.passwd and "dev-gone" not in after.acl
    assert after.devices == before.devices - 1


def test_the_cli_lists_grants_and_takes_the_bridge_password_from_the_url(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = make_sensor(db, "dev-cli-a"), make_sensor(db, "dev-cli-b")
    monkeypatch.setenv("TWIN_DATABASE_URL", db)
    monkeypatch.setenv("TWIN_MQTT_URL", "mqtt://bridge-7:from%40url@127.0.0.1:1")
    runner = CliRunner()
    r = runner.invoke(app, ["sense", "device", "add", "dev-cli", "-d", str(a)])
    assert r.exit_code == 0, r.output
    assert "shown once" in r.output and "twin_" in r.output
    r = runner.invoke(app, ["sense", "device", "grant", "dev-cli", "-d", str(b), "--remove",
                            str(a), "--json"])  # fmt: skip
    assert r.exit_code == 0 and json.loads(r.output)["datastreams"] == [b]
    r = runner.invoke(app, ["sense", "device", "list", "--json"])
    listed = {d["name"]: d for d in json.loads(r.output)["devices"]}
    assert listed["dev-cli"]["datastreams"] == [b] and "mqtt_password_hash" not in r.output
    r = runner.invoke(app, ["sense", "device", "add", "dev-cli2", "-d", "99999999"])
    assert r.exit_code == 2 and "99999999" in r.output
    r = runner.invoke(app, ["sense", "acl", "--out", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    body = json.loads(r.output)
    assert body["bridge_user"] == "bridge-7" and "bridge_password" not in body
    first = (tmp_path / "passwd").read_text().splitlines()[0]
    name, hashed = first.split(":", 1)
    assert name == "bridge-7" and mosquitto_verify("from@url", hashed)
    assert (tmp_path / "passwd").stat().st_mode & 0o777 == 0o600
    assert f"topic write v1.1/Datastreams({b})/Observations" in (tmp_path / "acl").read_text()
    assert f"topic write v1.1/Datastreams({a})/" not in (tmp_path / "acl").read_text()


def _token_principal(db: str, token: str) -> Any:
    from twin.access.tokens import principal_for_token

    async def look() -> Any:
        async with await psycopg.AsyncConnection.connect(db) as c:
            return await principal_for_token(c, token, cache_s=0)

    return asyncio.run(look())


def test_a_deleted_device_can_no_longer_connect_or_write(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`twin sense device delete`: the broker (restarted on the regenerated files) refuses the
    device and still takes the bridge; the HTTP token stands for no one; the device's grants
    are gone and its past readings stay; the deletion is in the audit trail."""
    ds = make_sensor(db, "dev-del")
    monkeypatch.setenv("TWIN_DATABASE_URL", db)
    monkeypatch.delenv("TWIN_MQTT_URL", raising=False)
    runner = CliRunner()
    r = runner.invoke(app, ["sense", "device", "add", "dev-del", "-d", str(ds), "--json"])
    assert r.exit_code == 0, r.output
    made = json.loads(r.output)
    with psycopg.connect(db) as c:
        c.execute("INSERT INTO twin.observation (sensor_id, observed_at, value)"
                  " VALUES (%s, '2026-07-01T00:00:00Z', 3.5)", (ds,))  # fmt: skip
    r = runner.invoke(app, ["sense", "acl", "--out", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    bridge = json.loads(r.output)["bridge_password"]
    port = free_port()
    conf = tmp_path / "broker.conf"
    conf.write_text(f"listener {port} 127.0.0.1\npersistence false\nuser {getpass.getuser()}\n"
                    + (tmp_path / "mosquitto.conf").read_text())  # fmt: skip
    with serving([binary("mosquitto", "/usr/sbin/mosquitto"), "-c", str(conf)], port):
        assert connack(port, "dev-del", made["mqtt_password"]) == 0
    assert _token_principal(db, made["token"]) is not None

    r = runner.invoke(app, ["sense", "device", "delete", "dev-del", "--acl-out", str(tmp_path),
                            "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    done = json.loads(r.output)
    assert done["datastreams"] == [ds] and done["observations_kept"] == 1
    assert "bridge_password" not in done["acl"]  # the bridge keeps its password
    assert "dev-del" not in (tmp_path / "passwd").read_text()
    assert "dev-del" not in (tmp_path / "acl").read_text()
    assert f"Datastreams({ds})" not in (tmp_path / "acl").read_text().split("user twin-bridge")[0]
    with serving([binary("mosquitto", "/usr/sbin/mosquitto"), "-c", str(conf)], port):
        assert connack(port, "dev-del", made["mqtt_password"]) != 0
        assert connack(port, "twin-bridge", bridge) == 0
    assert _token_principal(db, made["token"]) is None
    with psycopg.connect(db) as c:
        assert c.execute("SELECT count(*) FROM twin.sense_device WHERE name = 'dev-del'"
                         ).fetchone() == (0,)  # fmt: skip
        assert c.execute("SELECT count(*) FROM twin.sense_device_datastream WHERE sensor_id = %s",
                         (ds,)).fetchone() == (0,)  # fmt: skip
        assert c.execute("SELECT disabled FROM twin.app_user WHERE name = 'dev-del'"
                         ).fetchone() == (True,)  # fmt: skip
        audit = c.execute("SELECT detail->>'name', detail->>'actor' FROM twin.audit_log"
                          " WHERE action = 'sense.device.delete'").fetchall()  # fmt: skip
    assert rows(db, ds) == [("00:00", 3.5)]  # its past readings stay
    assert len(audit) == 1 and audit[0][0] == "dev-del" and audit[0][1].startswith("cli:")
    # Again: the error names the device, nothing else changes.
    r = runner.invoke(app, ["sense", "device", "delete", "dev-del"])
    assert r.exit_code == 2 and "dev-del" in r.output
