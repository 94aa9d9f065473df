"""`vigie kafka start|stop|status|reset` on a second broker of its own (other ports and state)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from kafka import KafkaAdminClient

from pipeline.settings import KafkaSettings
from pipeline.topics import POSTS_RAW, ensure_topics
from tests.integration.conftest import ROOT, free_port, vigie_command


def run(env, *args):
    return subprocess.run([*vigie_command(), "kafka", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=180)


def java_brokers(state_dir) -> int:
    """Broker processes whose command line names this state folder."""
    count = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace")
        except OSError:
            continue
        count += "kafka.Kafka" in args and str(state_dir) in args
    return count


def test_start_twice_stop_twice_status_between(tmp_path, worker_env):
    state = tmp_path / "kafka"
    env = {**worker_env, "VIGIE_KAFKA_PORT": str(free_port()),
           "VIGIE_KAFKA_CONTROLLER_PORT": str(free_port()), "VIGIE_KAFKA_STATE_DIR": str(state)}
    try:
        assert run(env, "status").returncode == 3

        first = run(env, "start")
        assert first.returncode == 0, first.stderr
        assert "started" in first.stdout
        second = run(env, "start")
        assert second.returncode == 0 and "already running" in second.stdout
        assert java_brokers(state) == 1, "start twice = one broker"

        status = run(env, "status")
        assert status.returncode == 0 and f"127.0.0.1:{env['VIGIE_KAFKA_PORT']}" in status.stdout
        assert (state / "logs" / "server.log").exists()

        stopped = run(env, "stop")
        assert stopped.returncode == 0 and "stopped" in stopped.stdout
        again = run(env, "stop")
        assert again.returncode == 0 and "not running" in again.stdout
        assert run(env, "status").returncode == 3
        assert java_brokers(state) == 0
    finally:
        run(env, "stop")


def test_a_broker_that_cannot_start_says_where_its_log_is(tmp_path, worker_env):
    # Another program holds the controller port: the broker starts, fails to bind, exits.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        env = {**worker_env, "VIGIE_KAFKA_PORT": str(free_port()),
               "VIGIE_KAFKA_CONTROLLER_PORT": str(squatter.getsockname()[1]),
               "VIGIE_KAFKA_STATE_DIR": str(tmp_path / "k")}
        try:
            result = run(env, "start", "--wait", "20")
        finally:
            run(env, "stop")
    assert result.returncode == 1
    assert "does not answer" in result.stderr or "exited" in result.stderr
    assert str(tmp_path / "k" / "logs" / "server.log") in result.stderr
    assert java_brokers(tmp_path / "k") == 0, "stop cleans up the broker that never answered"


def test_reset_empties_the_broker_and_refuses_while_an_untracked_one_runs(tmp_path, worker_env):
    """`make kafka-reset`: a developer's broker that ran out of files starts again, empty."""
    state = tmp_path / "kafka"
    port = free_port()
    env = {**worker_env, "VIGIE_KAFKA_PORT": str(port), "VIGIE_KAFKA_HEAP": "256m",
           "VIGIE_KAFKA_CONTROLLER_PORT": str(free_port()), "VIGIE_KAFKA_STATE_DIR": str(state)}
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}", topic_prefix="old.")

    def topics() -> set[str]:
        admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
        try:
            return set(admin.list_topics())
        finally:
            admin.close()

    try:
        assert run(env, "start").returncode == 0
        ensure_topics(kafka, [POSTS_RAW])
        assert "old.posts.raw" in topics()
        old_cluster = (state / "cluster.id").read_text()

        reset = run(env, "reset")
        assert reset.returncode == 0, reset.stderr
        assert "stopped" in reset.stdout and "removed" in reset.stdout
        assert java_brokers(state) == 0
        assert not (state / "data").exists() and not (state / "cluster.id").exists()
        assert (state / "logs" / "server.log").exists(), "the logs say why it had failed"

        assert run(env, "start").returncode == 0
        assert (state / "cluster.id").read_text() != old_cluster
        assert "old.posts.raw" not in topics()

        # A broker of this folder whose pid file was lost still writes there: no wipe.
        pid_file = state / "kafka.pid"
        pid = pid_file.read_text()
        pid_file.unlink()
        refused = run(env, "reset")
        assert refused.returncode == 1 and f"still runs on {state}" in refused.stderr
        assert (state / "cluster.id").exists() and (state / "data").exists()
        pid_file.write_text(pid)
    finally:
        run(env, "stop")
    assert java_brokers(state) == 0
