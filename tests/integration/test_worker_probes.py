"""The worker's Kubernetes probes over real HTTP: /live says why it is alive (or not)."""

from __future__ import annotations

import urllib.request

import pytest

pytestmark = pytest.mark.integration


def test_live_answers_alive_on_a_running_worker(worker_env, start_worker):
    worker = start_worker({**worker_env, "VIGIE_AGENTS": "alert"})
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/live", timeout=5) as answer:
        assert (answer.status, answer.read()) == (200, b"alive")
