from __future__ import annotations

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
