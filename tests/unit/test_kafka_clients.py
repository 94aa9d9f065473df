"""A company's Kafka client properties file, translated once for every client family."""

from __future__ import annotations

import pytest

from pipeline.kafka_clients import (
    aiokafka_config,
    faust_credentials,
    kafka_python_config,
    read_properties,
    settings_from_properties,
)
from pipeline.settings import KafkaSettings, SettingError

SCRAM = """# from the platform team
bootstrap.servers=kafka-1.corp:9093,kafka-2.corp:9093
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\
    username="vigie" password="s3cr\\"et";
ssl.truststore.type=PEM
ssl.truststore.location=/etc/kafka/ca.pem
ssl.keystore.type : PEM
ssl.keystore.location /etc/kafka/client.pem
ssl.key.password=key-pass
ssl.endpoint.identification.algorithm=
client.id=ignored-by-vigie
"""


def settings(text: str, tmp_path) -> KafkaSettings:
    path = tmp_path / "client.properties"
    path.write_text(text)
    return settings_from_properties(read_properties(path), KafkaSettings())


def test_a_java_properties_file_with_scram_and_a_client_certificate(tmp_path):
    kafka = settings(SCRAM, tmp_path)
    assert kafka.bootstrap_servers == "kafka-1.corp:9093,kafka-2.corp:9093"
    assert (kafka.security_protocol, kafka.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert kafka.sasl_username == "vigie" and kafka.sasl_password.reveal() == 's3cr"et'
    assert kafka.ssl_cafile == "/etc/kafka/ca.pem"
    assert kafka.ssl_certfile == kafka.ssl_keyfile == "/etc/kafka/client.pem"
    assert kafka.ssl_key_password.reveal() == "key-pass"
    assert kafka.ssl_check_hostname is False
    assert "s3cr" not in repr(kafka) and "key-pass" not in repr(kafka)


def test_plain_and_librdkafka_names(tmp_path):
    kafka = settings(
        "bootstrap.servers=b:9092\nsecurity.protocol=sasl_plaintext\nsasl.mechanism=PLAIN\n"
        "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
        "username='ignored' username=\"u\" password=\"p\";\n"
        "ssl.ca.location=/ca.pem\nssl.certificate.location=/c.pem\nssl.key.location=/k.pem\n",
        tmp_path)
    assert (kafka.security_protocol, kafka.sasl_username, kafka.sasl_password.reveal()) == (
        "SASL_PLAINTEXT", "u", "p")
    assert (kafka.ssl_cafile, kafka.ssl_certfile, kafka.ssl_keyfile) == (
        "/ca.pem", "/c.pem", "/k.pem")
    config = kafka_python_config(kafka)
    assert config["sasl_plain_username"] == "u" and config["bootstrap_servers"] == ["b:9092"]
    assert "ssl_context" not in config  # no TLS on SASL_PLAINTEXT


def test_oauthbearer_uses_the_token_endpoint(tmp_path):
    kafka = settings(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=OAUTHBEARER\n"
        "sasl.oauthbearer.token.endpoint.url=https://idp.corp/oauth2/token\n"
        "sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
        ' required clientId="vigie" clientSecret="cs" scope="kafka";\n', tmp_path)
    assert kafka.sasl_oauth_token_url == "https://idp.corp/oauth2/token"
    assert (kafka.sasl_username, kafka.sasl_password.reveal(), kafka.sasl_oauth_scope) == (
        "vigie", "cs", "kafka")
    assert callable(kafka_python_config(kafka)["sasl_oauth_token_provider"].token)
    assert callable(aiokafka_config(kafka)["sasl_oauth_token_provider"].token)
    assert type(faust_credentials(kafka)).__name__ == "OAuthCredentials"


@pytest.mark.parametrize(("text", "message"), [
    ("ssl.truststore.type=JKS\nssl.truststore.location=/t.jks\n",
     "ssl.truststore.type JKS: Python clients read PEM files only"),
    ("ssl.keystore.locaton=/k.pem\n",
     "ssl.keystore.locaton is not supported, did you mean 'ssl.keystore.location'?"),
    ("sasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security.scram."
     "ScramLoginModule required username=\"u\" password=\"p\";\n",
     "PLAIN needs org.apache.kafka.common.security.plain.PlainLoginModule"),
    ("sasl.jaas.config=username=u\n", "expected '<LoginModule> required"),
])
def test_what_cannot_be_honoured_is_refused_with_the_reason(tmp_path, text, message):
    with pytest.raises(SettingError, match="VIGIE_KAFKA_PROPERTIES") as caught:
        settings(text, tmp_path)
    assert message in str(caught.value)


def test_variables_override_the_file_and_a_bad_file_is_a_setting_error(tmp_path, monkeypatch):
    path = tmp_path / "client.properties"
    path.write_text(SCRAM.replace("SASL_SSL", "SASL_PLAINTEXT"))
    monkeypatch.setenv("VIGIE_KAFKA_PROPERTIES", str(path))
    monkeypatch.setenv("VIGIE_KAFKA_SASL_USERNAME", "other")
    kafka = KafkaSettings.from_env()
    assert (kafka.sasl_username, kafka.sasl_password.reveal()) == ("other", 's3cr"et')
    assert kafka.bootstrap_servers == "kafka-1.corp:9093,kafka-2.corp:9093"
    monkeypatch.setenv("VIGIE_KAFKA_PROPERTIES", str(tmp_path / "missing.properties"))
    with pytest.raises(SettingError, match="VIGIE_KAFKA_PROPERTIES: cannot read"):
        KafkaSettings.from_env()
