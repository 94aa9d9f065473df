"""`vigie config check` and the exit codes of configuration errors, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

GOOD = """version: 1
receivers:
  pr-slack: {type: slack, url_env: TEST_SLACK_URL}
  pr-mail:
    type: email
    to: [pr@acme.example]
    from: vigie@acme.example
    username: vigie
    password_env: TEST_SMTP_PASSWORD
brands:
  - id: acme
    name: ACME
    owners:
      - {name: PR, receivers: [pr-slack, pr-mail]}
"""


def vigie(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "vigie"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pipeline.cli"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    return subprocess.run([*command, *args], env={**clean, "PYTHONPATH": str(ROOT), **env},
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "watchlist.yaml"
    path.write_text(text)
    return path


def base_env(tmp_path: Path, watchlist: Path) -> dict[str, str]:
    # The model is checked only for workers that score: these workers do not.
    return {"VIGIE_WATCHLIST": str(watchlist), "VIGIE_AGENTS": "validate,detect,alert",
            "VIGIE_STATE_DIR": str(tmp_path / "state"),
            "TEST_SLACK_URL": "https://hooks.slack.example/services/T/B/x",
            "TEST_SMTP_PASSWORD": "pw"}


def test_a_good_configuration_passes_with_exit_0(tmp_path):
    result = vigie("config", "check", env=base_env(tmp_path, write(tmp_path, GOOD)))
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout and "1 brands, 2 receivers" in result.stdout


def test_every_problem_is_listed_at_once_with_exit_2(tmp_path):
    bad = GOOD.replace("url_env:", "url_evn:").replace("    password_env:", "    pasword_env:")
    bad = bad.replace("    name: ACME", "    nmae: ACME")
    env = {**base_env(tmp_path, write(tmp_path, bad)), "VIGIE_DETECT_SENSITIVTY": "2",
           "VIGIE_ALERT_TIMEOUT_S": "soon"}
    result = vigie("config", "check", "--json", env=env)
    assert result.returncode == 2
    report = json.loads(result.stdout)
    path = tmp_path / "watchlist.yaml"
    assert report["ok"] is False
    assert sorted(report["errors"]) == sorted([
        "VIGIE_ALERT_TIMEOUT_S: expected a number, got 'soon'",
        "VIGIE_DETECT_SENSITIVTY: not a Vigie setting, did you mean VIGIE_DETECT_SENSITIVITY?",
        f"{path}:3:27: receivers.pr-slack.url_evn: unknown option 'url_evn', did you mean "
        "'url_env'?",
        f"{path}:9:5: receivers.pr-mail.pasword_env: unknown option 'pasword_env', did you "
        "mean 'password_env'?",
        f"{path}:12:5: brands[0].nmae: unknown key 'nmae', did you mean 'name'?",
        f"{path}:11:5: brands[0].name: is required",
    ])


def test_an_owner_time_zone_is_checked(tmp_path):
    good = GOOD.replace("{name: PR, receivers: [pr-slack, pr-mail]}",
                        "{name: PR, receivers: [pr-slack, pr-mail], timezone: Asia/Tokyo}")
    assert vigie("config", "check", env=base_env(tmp_path, write(tmp_path, good))
                 ).returncode == 0
    bad = good.replace("Asia/Tokyo", "Tokyo")
    result = vigie("config", "check", env=base_env(tmp_path, write(tmp_path, bad)))
    assert result.returncode == 2
    assert "brands[0].owners[0].timezone: unknown time zone 'Tokyo'" in result.stdout \
        + result.stderr


def test_a_receiver_secret_that_is_not_set_is_found_without_sending(tmp_path):
    env = base_env(tmp_path, write(tmp_path, GOOD))
    del env["TEST_SMTP_PASSWORD"]
    result = vigie("config", "check", env=env)
    assert result.returncode == 2
    assert ("watchlist.yaml:9:5: receivers.pr-mail.password_env: environment variable "
            "TEST_SMTP_PASSWORD is not set") in result.stderr


def test_an_unbuilt_model_is_reported_for_a_scoring_worker(tmp_path):
    env = {**base_env(tmp_path, write(tmp_path, GOOD)), "VIGIE_AGENTS": "score",
           "VIGIE_MODEL_DIR": str(tmp_path / "no-model")}
    result = vigie("config", "check", env=env)
    assert result.returncode == 2
    assert "VIGIE_MODEL_DIR: the default sentiment model is not built" in result.stderr


def test_a_yaml_syntax_error_is_reported_at_its_line_and_column(tmp_path):
    bad = GOOD.replace("    name: ACME", "    name ACME")
    result = vigie("config", "check", env=base_env(tmp_path, write(tmp_path, bad)))
    assert result.returncode == 2
    assert f"{tmp_path / 'watchlist.yaml'}:12:5: invalid YAML: could not find expected ':'" \
        in result.stderr


def test_the_worker_with_a_bad_watchlist_says_why_and_exits_2(tmp_path):
    bad = GOOD.replace("    name: ACME", "    nmae: ACME")
    result = vigie("worker", env=base_env(tmp_path, write(tmp_path, bad)))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "vigie worker: configuration error:",
        f"{tmp_path / 'watchlist.yaml'}:12:5: brands[0].nmae: unknown key 'nmae', did you "
        "mean 'name'?",
        f"{tmp_path / 'watchlist.yaml'}:11:5: brands[0].name: is required",
    ]


def test_every_problem_of_a_kafka_properties_file_is_listed(tmp_path):
    properties = tmp_path / "client.properties"
    properties.write_text("bootstrap.servers=k:9093\nsecurity.protocol=SASL_SSL\n"
                          "ssl.truststore.type=JKS\nssl.truststore.location=/t.jks\n"
                          "sasl.jass.config=x\n")
    env = {**base_env(tmp_path, write(tmp_path, GOOD)), "VIGIE_KAFKA_PROPERTIES": str(properties)}
    result = vigie("config", "check", "--json", env=env)
    assert result.returncode == 2
    assert json.loads(result.stdout)["errors"] == [
        "VIGIE_KAFKA_PROPERTIES: sasl.jass.config is not supported, did you mean "
        "'sasl.jaas.config'?",
        "VIGIE_KAFKA_PROPERTIES: ssl.truststore.type JKS: Python clients read PEM files only; "
        "convert it (keytool -importkeystore -deststoretype PKCS12, then openssl pkcs12 "
        "-nodes) and give ssl.truststore.type=PEM",
    ]
