from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.settings import KafkaSettings, Secret, SettingError, WorkerSettings


def test_secrets_never_print(monkeypatch):
    monkeypatch.setenv("VIGIE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("VIGIE_KAFKA_SASL_USERNAME", "vigie")
    monkeypatch.setenv("VIGIE_KAFKA_SASL_PASSWORD", "hunter2-very-secret")
    settings = KafkaSettings.from_env()
    for text in (repr(settings), str(settings), f"{settings.sasl_password}"):
        assert "hunter2" not in text
    assert settings.kafka_python_config()["sasl_plain_password"] == "hunter2-very-secret"


def test_secret_from_a_file(monkeypatch, tmp_path):
    path = tmp_path / "password"
    path.write_text("from-file\n")
    monkeypatch.delenv("VIGIE_KAFKA_SASL_PASSWORD", raising=False)
    monkeypatch.setenv("VIGIE_KAFKA_SASL_PASSWORD_FILE", str(path))
    assert KafkaSettings.from_env().sasl_password == Secret("from-file")


def test_bad_values_name_the_variable(monkeypatch):
    monkeypatch.setenv("VIGIE_TOPIC_PARTITIONS", "many")
    with pytest.raises(SettingError, match="VIGIE_TOPIC_PARTITIONS"):
        KafkaSettings.from_env()
    monkeypatch.setenv("VIGIE_TOPIC_PARTITIONS", "4")
    monkeypatch.setenv("VIGIE_LOG_LEVEL", "loud")
    with pytest.raises(SettingError, match="VIGIE_LOG_LEVEL"):
        WorkerSettings.from_env()


def test_topic_prefix(monkeypatch):
    monkeypatch.setenv("VIGIE_TOPIC_PREFIX", "staging.")
    assert KafkaSettings.from_env().topic("posts.raw") == "staging.posts.raw"


def self_signed(folder):
    cert, key = folder / "ca.pem", folder / "ca.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=ca"],
        check=True, capture_output=True, timeout=30,
    )
    return cert, key


def test_a_missing_or_unusable_tls_file_is_named_before_any_connection(monkeypatch, tmp_path):
    monkeypatch.setenv("VIGIE_KAFKA_SECURITY_PROTOCOL", "SSL")
    missing = tmp_path / "nowhere" / "ca.pem"
    monkeypatch.setenv("VIGIE_KAFKA_SSL_CAFILE", str(missing))
    with pytest.raises(SettingError) as error:
        KafkaSettings.from_env()
    assert str(error.value) == f"VIGIE_KAFKA_SSL_CAFILE: no such file: {missing}"
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("this is not a certificate\n")
    monkeypatch.setenv("VIGIE_KAFKA_SSL_CAFILE", str(not_pem))
    with pytest.raises(SettingError, match="VIGIE_KAFKA_SSL_CAFILE: .* holds no PEM"):
        KafkaSettings.from_env()
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("VIGIE_KAFKA_SSL_CAFILE", str(cert))
    monkeypatch.setenv("VIGIE_KAFKA_SSL_CERTFILE", str(cert))
    monkeypatch.setenv("VIGIE_KAFKA_SSL_KEYFILE", str(tmp_path / "client.key"))
    with pytest.raises(SettingError, match="VIGIE_KAFKA_SSL_KEYFILE: no such file"):
        KafkaSettings.from_env()
    monkeypatch.setenv("VIGIE_KAFKA_SSL_KEYFILE", str(key))
    assert KafkaSettings.from_env().ssl_cafile == str(cert)
    # Without TLS the files are not used, so they are not a reason to refuse to start.
    monkeypatch.setenv("VIGIE_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    monkeypatch.setenv("VIGIE_KAFKA_SSL_CAFILE", str(missing))
    assert KafkaSettings.from_env().ssl_cafile == str(missing)


def test_the_worker_refuses_to_start_with_a_missing_ca_file(tmp_path):
    missing = tmp_path / "kafka-ca.pem"
    env = {key: value for key, value in os.environ.items() if not key.startswith("VIGIE_")}
    env.update(
        VIGIE_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        VIGIE_KAFKA_SSL_CAFILE=str(missing),
        VIGIE_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1",
        VIGIE_STATE_DIR=str(tmp_path / "state"),
    )
    vigie = Path(sys.executable).with_name("vigie")
    done = subprocess.run(
        [str(vigie), "worker"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"VIGIE_KAFKA_SSL_CAFILE: no such file: {missing}" in done.stderr
    assert "Unable to bootstrap" not in done.stdout + done.stderr
