"""Waiting for a worker process to answer `GET /ready` (the demo, the benches, the tests)."""

from __future__ import annotations

import subprocess
import time
import urllib.request


class WorkerNotReady(RuntimeError):
    """The worker exited, or did not answer /ready with 200 in time."""


def is_ready(port: int, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=timeout_s) as r:
            return r.status == 200
    except OSError:
        return False


def wait_until_ready(port: int, process: subprocess.Popen, wait_s: float,
                     poll_s: float = 0.5) -> None:
    """Return once the worker answers /ready; raise WorkerNotReady if it exits first or
    `wait_s` passes (a worker loads the sentiment model and joins its group first)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise WorkerNotReady(f"the worker exited with status {process.returncode}")
        if is_ready(port):
            return
        time.sleep(poll_s)
    raise WorkerNotReady(f"the worker was not ready after {wait_s:.0f}s")
