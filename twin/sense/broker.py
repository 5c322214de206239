"""A private MQTT broker for the demo: Mosquitto on a free local port, as the demo's PostGIS is a
private cluster. Real deployments run their own broker (with ``twin sense acl``) and set
``TWIN_MQTT_URL``."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


class BrokerError(RuntimeError):
    """Mosquitto is missing or did not start; the message says what to do."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def private_broker(
    directory: Path, *, timeout_s: float = 10.0, log_all: bool = False
) -> Iterator[str]:
    """Run Mosquitto on a free port of 127.0.0.1 for the block; yields its ``mqtt://`` URL.

    ``log_all``: log every connection and message to ``directory/mosquitto.log`` (for tests
    that read who connected). Run as root, the broker then stays root: dropped to its own
    user, it could not write a folder the caller made.
    """
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if binary is None:
        raise BrokerError("mosquitto is not installed: run scripts/setup.sh (make demo does)")
    directory.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        f"log_dest file {directory / 'mosquitto.log'}\n"
        + ("log_type all\n" + ("user root\n" if os.geteuid() == 0 else "") if log_all else "")
    )
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BrokerError(f"mosquitto did not start (see {directory / 'mosquitto.log'})")
            time.sleep(0.05)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if proc.poll() is None:
            proc.kill()
