"""Private services for tests: a free port, and a server process on it that the test owns
(as the tests own their PostGIS cluster): nothing depends on what the machine runs already."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binary(name: str, *fallbacks: str) -> str:
    """The path of ``name``; fails (never skips) when the setup did not install it."""
    found = shutil.which(name) or next((f for f in fallbacks if shutil.which(f)), None)
    assert found, f"{name} not found: run scripts/setup.sh --browser (make test installs it)"
    return found


@contextmanager
def serving(argv: Sequence[str], port: int, *, wait_s: float = 10.0) -> Iterator[int]:
    """Run ``argv`` until the block ends; yields ``port`` once it accepts connections."""
    proc = subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                err = proc.stderr.read().decode() if proc.poll() is not None and proc.stderr else ""
                assert proc.poll() is None, f"{argv[0]} exited: {err}"
                assert time.monotonic() < deadline, f"{argv[0]} did not listen on {port}"
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
