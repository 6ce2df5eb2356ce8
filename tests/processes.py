"""Helpers for tests that run the product in a child process."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CLI = [sys.executable, "-m", "spicy_lentil"]  # the command line, in a child process


def kill_after_rows(command: list[str], out: Path, rows: int = 20, env: dict | None = None) -> list[str]:
    """Runs a score job, SIGKILLs it once `out` holds `rows` lines, and returns what it had written."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and (not out.is_file() or len(out.read_bytes().splitlines()) < rows):
            time.sleep(0.05)
        assert proc.poll() is None, "the job finished before it could be killed; make the corpus larger"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    return out.read_text().splitlines()


def wait_until_healthy(server: subprocess.Popen, url: str, log: Path, seconds: float) -> None:
    """Waits for a Streamlit server's health check; fails with its log if it exits or stays silent."""
    deadline = time.monotonic() + seconds
    while True:
        assert server.poll() is None, f"the server exited early:\n{log.read_text()}"
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"the server did not answer its health check within {seconds:.0f} s"
        time.sleep(0.5)
