"""`vigie alert test` against stand-in receivers, `vigie silence` on the real broker."""

from __future__ import annotations

import subprocess

import orjson
import pytest

from tests.integration.conftest import vigie_command
from tests.integration.notify_servers import HttpStandIn, SmtpStandIn


def run(args, env):
    return subprocess.run(
        [*vigie_command(), *args], env=env, capture_output=True, text=True, timeout=120
    )


def write_watchlist(tmp_path, slack, hook, smtp_port):
    path = tmp_path / "watchlist.yaml"
    path.write_text(
        "version: 1\n"
        "receivers:\n"
        "  pr-slack: {type: slack, url_env: T_SLACK_URL}\n"
        f'  ops-hook: {{type: webhook, url: "{hook.url()}", secret_env: T_HOOK_SECRET}}\n'
        f"  pr-email: {{type: email, to: [pr@acme.example], from: vigie@acme.example,"
        f" port: {smtp_port}}}\n"
        "  broken-pd: {type: pagerduty, routing_key_env: T_NOT_SET}\n"
        "brands:\n"
        "  - id: acme\n"
        "    name: ACME\n"
        "    owners:\n"
        "      - {name: PR, receivers: [pr-email], min_severity: warning}\n"
        "      - {name: On-call, receivers: [pr-slack, ops-hook], min_severity: critical}\n"
        "  - id: paged\n"
        "    name: Paged\n"
        "    owners:\n"
        "      - {name: On-call, receivers: [broken-pd], min_severity: info}\n"
    )
    return path


@pytest.fixture
def cli_env(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    env.update(
        VIGIE_ALERT_MAX_ATTEMPTS="2",
        VIGIE_ALERT_BACKOFF_S="0.05",
        VIGIE_ALERT_TIMEOUT_S="2",
        T_HOOK_SECRET="s3cret",
    )
    return env


def test_alert_test_reports_each_receiver_and_fails_when_one_fails(tmp_path, cli_env):
    with HttpStandIn() as slack, HttpStandIn(default="500") as hook, SmtpStandIn() as smtp:
        env = {
            **cli_env,
            "T_SLACK_URL": slack.url("/services/T/B/tok"),
            "VIGIE_WATCHLIST": str(write_watchlist(tmp_path, slack, hook, smtp.port)),
        }
        failed = run(["alert", "test", "--brand", "acme", "--json"], env)
        assert failed.returncode == 1, failed.stderr
        results = {r["receiver"]: r for r in map(orjson.loads, failed.stdout.splitlines())}
        assert {k: v["outcome"] for k, v in results.items()} == {
            "pr-email": "sent",
            "pr-slack": "sent",
            "ops-hook": "failed",
        }
        assert results["ops-hook"]["attempts"] == 2 and "HTTP 500" in results["ops-hook"]["error"]
        assert "Test alert" in slack.delivered()[0].json()["text"]
        assert smtp.mails[0].message["Subject"] == "[Vigie] [INFO] ACME: Test alert"

        hook.set_default("ok")
        passed = run(["alert", "test", "--brand", "acme"], env)
        assert passed.returncode == 0, passed.stdout + passed.stderr
        assert "ops-hook (webhook): SENT after 1 attempt(s)" in passed.stdout

        broken = run(["alert", "test", "--brand", "paged"], env)
        assert broken.returncode == 1
        assert "receivers.broken-pd.routing_key_env: environment variable T_NOT_SET" in (
            broken.stdout
        )
        unknown = run(["alert", "test", "--brand", "nope"], env)
        assert unknown.returncode == 2 and "unknown brand 'nope'" in unknown.stderr


@pytest.mark.integration
def test_silence_add_list_expire(worker_env, tmp_path):
    with HttpStandIn() as slack, HttpStandIn() as hook:
        env = {**worker_env, "VIGIE_WATCHLIST": str(write_watchlist(tmp_path, slack, hook, 25))}
        added = run(
            [
                "silence",
                "add",
                "--brand",
                "acme",
                "--for",
                "2h",
                "--severity",
                "warning",
                "--reason",
                "statement published",
                "--by",
                "alice",
                "--json",
            ],
            env,
        )
        assert added.returncode == 0, added.stderr
        silence = orjson.loads(added.stdout)
        assert (silence["brand"], silence["severity"], silence["created_by"]) == (
            "acme",
            "warning",
            "alice",
        )
        listed = run(["silence", "list"], env)
        assert listed.returncode == 0
        assert f"{silence['id']}  active" in listed.stdout
        assert "statement published" in listed.stdout

        assert run(["silence", "expire", silence["id"], "--by", "bob"], env).returncode == 0
        assert run(["silence", "list"], env).stdout.strip() == "no silences"
        history = [
            orjson.loads(line)
            for line in run(["silence", "list", "--all", "--json"], env).stdout.splitlines()
        ]
        assert [(s["id"], s["expired_by"]) for s in history] == [(silence["id"], "bob")]

        bad = run(["silence", "add", "--brand", "acme", "--for", "2 hours", "--reason", "x"], env)
        assert bad.returncode == 2 and "bad duration" in bad.stderr
        unknown = run(["silence", "expire", "nosuchid"], env)
        assert unknown.returncode == 1 and "no silence with id" in unknown.stderr


def test_alert_sink_prints_what_alert_test_sends(tmp_path, cli_env):
    import time

    from tests.integration.notify_servers import free_port

    smtp_port, hook_port = free_port(), free_port()
    out = tmp_path / "received.jsonl"
    env = {**cli_env, "VIGIE_DEMO_WEBHOOK_SECRET": "s3cret"}
    sink = subprocess.Popen(
        [
            *vigie_command(),
            "alert",
            "sink",
            "--smtp-port",
            str(smtp_port),
            "--webhook-port",
            str(hook_port),
            "--out",
            str(out),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        path = tmp_path / "watchlist.yaml"
        path.write_text(
            "version: 1\nreceivers:\n"
            f'  hook: {{type: webhook, url: "http://127.0.0.1:{hook_port}/hook",'
            " secret_env: T_HOOK_SECRET}\n"
            f"  mail: {{type: email, to: [pr@acme.example], from: v@acme.example,"
            f" port: {smtp_port}}}\n"
            "brands:\n  - id: acme\n    name: ACME\n    owners:\n"
            "      - {name: PR, receivers: [hook, mail], min_severity: info}\n"
        )
        env_test = {
            **cli_env,
            "VIGIE_WATCHLIST": str(path),
            "VIGIE_ALERT_MAX_ATTEMPTS": "5",
            "VIGIE_ALERT_BACKOFF_S": "0.5",
        }  # the sink may still be starting
        result = run(["alert", "test", "--brand", "acme"], env_test)
        assert result.returncode == 0, result.stdout + result.stderr
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            not out.exists() or len(out.read_text().splitlines()) < 2
        ):
            time.sleep(0.1)
        received = {r["via"]: r for r in map(orjson.loads, out.read_text().splitlines())}
        assert received["webhook"]["signed"] is True
        assert received["webhook"]["alert"]["kind"] == "test"
        assert received["email"]["subject"] == "[Vigie] [INFO] ACME: Test alert"
    finally:
        sink.terminate()
        printed, _ = sink.communicate(timeout=10)
    assert "[webhook signed] [INFO] ACME: Test alert" in printed
    assert "[email to pr@acme.example] [Vigie] [INFO] ACME: Test alert" in printed
