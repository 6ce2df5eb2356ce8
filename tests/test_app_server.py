"""`spicy-lentil app` as a real process: it listens on loopback only unless told otherwise."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import wait_until_healthy

ROOT = Path(__file__).resolve().parent.parent
PROC_TCP = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
LISTEN = "0A"


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as the kernel writes them) of the sockets listening on `port`."""
    found = set()
    for table in PROC_TCP:
        if table.exists():
            for line in table.read_text().splitlines()[1:]:
                local, _, state = line.split()[1:4]
                address, hex_port = local.rsplit(":", 1)
                if state == LISTEN and int(hex_port, 16) == port:
                    found.add(address)
    return found


@pytest.mark.skipif(not PROC_TCP[0].exists(), reason="needs Linux /proc/net/tcp")
def test_the_app_listens_on_loopback_only_by_default(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (tmp_path / "app.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "spicy_lentil", "app", "--port", str(port)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        wait_until_healthy(server, f"http://127.0.0.1:{port}", tmp_path / "app.log", 90)
        assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, and no wildcard or other interface
    finally:
        server.terminate()
        server.wait(timeout=30)
