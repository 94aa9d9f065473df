"""Waiting for a worker's /ready: a real HTTP server on loopback and real processes."""

from __future__ import annotations

import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipeline.worker_ready import WorkerNotReady, is_ready, wait_until_ready


class ReadyAfter(BaseHTTPRequestHandler):
    answers_before_ready = 2  # 503 twice, then 200 (the worker joining its group)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        server = self.server
        server.calls += 1  # type: ignore[attr-defined]
        ready = server.calls > self.answers_before_ready  # type: ignore[attr-defined]
        self.send_response(200 if ready and self.path == "/ready" else 503)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ReadyAfter)
    httpd.calls = 0  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def sleeper(seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})"])


def test_waits_through_not_ready_answers(server):
    port = server.server_address[1]
    process = sleeper(30)
    try:
        wait_until_ready(port, process, wait_s=10, poll_s=0.05)
        assert server.calls == 3 and is_ready(port)
    finally:
        process.kill()
        process.wait()


def test_a_worker_that_exits_is_reported_at_once(server):
    process = sleeper(0)
    process.wait()
    with pytest.raises(WorkerNotReady, match="exited with status 0"):
        wait_until_ready(server.server_address[1], process, wait_s=30)


def test_nothing_listening_times_out(server):
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    process = sleeper(30)
    try:
        assert not is_ready(port)
        with pytest.raises(WorkerNotReady, match="not ready after 1s"):
            wait_until_ready(port, process, wait_s=1, poll_s=0.1)
    finally:
        process.kill()
        process.wait()
