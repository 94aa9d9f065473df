"""The pipeline against a broker that wants SASL_SSL, configured the way companies hand out
Kafka access: one client properties file (VIGIE_KAFKA_PROPERTIES).

The test starts its own broker (LocalKafka, free ports, its own state folder) with a
SASL_SSL listener: a CA made here signs the broker's and the client's certificates, the
client's key is encrypted (ssl.key.password), the broker requires client certificates,
and knows one PLAIN user and one SCRAM-SHA-512 user. kafka-python (`vigie ingest file`),
Faust/aiokafka (`vigie worker`) and the alert stage's aiokafka clients all connect with
the same file.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from pipeline.kafka_clients import kafka_python_config, read_properties, settings_from_properties
from pipeline.kafka_local import LocalKafka
from pipeline.settings import KafkaSettings
from tests.integration.conftest import ROOT, vigie_command
from tests.integration.notify_servers import free_port
from tests.integration.test_score import post

pytestmark = pytest.mark.integration

KEY_PASSWORD = "client-key-pass"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(folder: Path) -> None:
    """ca.pem; broker.pem (key + certificate for 127.0.0.1); client.pem (encrypted key +
    certificate)."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=vigie-test-ca", "-keyout", "ca.key", "-out", "ca.pem", cwd=folder)
    for name, encrypt in (("broker", False), ("client", True)):
        key_args = ["-aes256", "-pass", f"pass:{KEY_PASSWORD}"] if encrypt else []
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                *key_args, "-out", f"{name}.key", cwd=folder)
        (folder / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1\n")
        passin = ["-passin", f"pass:{KEY_PASSWORD}"] if encrypt else []
        openssl("req", "-new", "-key", f"{name}.key", *passin, "-subj", f"/CN={name}",
                "-out", f"{name}.csr", cwd=folder)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
                "-out", f"{name}.crt", cwd=folder)
        (folder / f"{name}.pem").write_text(
            (folder / f"{name}.key").read_text() + (folder / f"{name}.crt").read_text())


class SecuredKafka(LocalKafka):
    """The project's local broker plus a SASL_SSL listener (PLAINTEXT stays for its own
    readiness check)."""

    sasl_port: int = 0
    certificates: Path = Path()

    def write_properties(self) -> Path:
        path = super().write_properties()
        folder = self.certificates
        plain = f"PLAINTEXT://127.0.0.1:{self.port}"
        sasl_ssl = f"SASL_SSL://127.0.0.1:{self.sasl_port}"
        controller = f"CONTROLLER://127.0.0.1:{self.controller_port}"
        path.write_text(path.read_text() + f"""
listeners={plain},{controller},{sasl_ssl}
advertised.listeners={plain},{sasl_ssl}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=\\
    org.apache.kafka.common.security.plain.PlainLoginModule required user_plainuser="plain-secret";
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=\\
    org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location={folder / "broker.pem"}
ssl.truststore.type=PEM
ssl.truststore.location={folder / "ca.pem"}
ssl.client.auth=required
""")
        return path

    def _java_command(self, main_class: str, *args: str) -> list[str]:
        command = super()._java_command(main_class, *args)
        if main_class == "kafka.tools.StorageTool":  # the SCRAM user, stored in the metadata
            command += ["--add-scram", "SCRAM-SHA-512=[name=scramuser,password=scram-secret]"]
        return command


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    folder = tmp_path_factory.mktemp("secured-kafka")
    certificates = folder / "certs"
    certificates.mkdir()
    make_certificates(certificates)
    broker = SecuredKafka(port=free_port(), controller_port=free_port(),
                          state_dir=folder / "kafka", heap="384m")
    broker.sasl_port = free_port()
    broker.certificates = certificates
    broker.start(wait_s=120)
    try:
        yield broker
    finally:
        broker.stop()


def properties_file(path: Path, broker: SecuredKafka, mechanism: str) -> Path:
    user, password, module = {
        "PLAIN": ("plainuser", "plain-secret", "plain.PlainLoginModule"),
        "SCRAM-SHA-512": ("scramuser", "scram-secret", "scram.ScramLoginModule"),
    }[mechanism]
    folder = broker.certificates
    path.write_text(f"""bootstrap.servers=127.0.0.1:{broker.sasl_port}
security.protocol=SASL_SSL
sasl.mechanism={mechanism}
sasl.jaas.config=org.apache.kafka.common.security.{module} required \\
    username="{user}" password="{password}";
ssl.truststore.type=PEM
ssl.truststore.location={folder / "ca.pem"}
ssl.keystore.type=PEM
ssl.keystore.location={folder / "client.pem"}
ssl.key.password={KEY_PASSWORD}
""")
    return path


def read_all(kafka: KafkaSettings, topic: str, expected: int) -> list[dict]:
    consumer = KafkaConsumer(kafka.topic(topic), **kafka_python_config(kafka),
                             auto_offset_reset="earliest", group_id=None,
                             consumer_timeout_ms=60_000)
    records = []
    try:
        for record in consumer:
            records.append(json.loads(record.value))
            if len(records) >= expected:
                break
    finally:
        consumer.close()
    return records


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_the_pipeline_runs_on_sasl_ssl_from_one_properties_file(
        secured, worker_env, start_worker, tmp_path, mechanism):
    properties = properties_file(tmp_path / "client.properties", secured, mechanism)
    env = {**worker_env, "VIGIE_KAFKA_PROPERTIES": str(properties),
           "VIGIE_AGENTS": "validate,alert"}
    del env["VIGIE_KAFKA_BOOTSTRAP_SERVERS"]  # everything comes from the file
    prefix = env["VIGIE_TOPIC_PREFIX"]
    kafka = settings_from_properties(read_properties(properties),
                                     KafkaSettings(topic_prefix=prefix))

    posts = tmp_path / "posts.jsonl"
    posts.write_text("".join(json.dumps(post(str(i), f"Orange en panne {i}")) + "\n"
                             for i in range(5)))
    ingest = subprocess.run([*vigie_command(), "ingest", "file", str(posts), "--quiet"],
                            env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert ingest.returncode == 0, ingest.stderr
    assert json.loads(ingest.stdout.splitlines()[-1])["delivered"] == 5

    # The Faust worker (aiokafka) validates them; its alert stage opens its own aiokafka
    # clients (alerts.* topics) with the same file before /ready answers.
    start_worker(env, wait_s=120)
    valid = read_all(kafka, "posts.valid", expected=5)
    assert sorted(p["id"] for p in valid) == ["0", "1", "2", "3", "4"]


def test_a_wrong_password_is_refused_by_the_broker(secured, tmp_path):
    properties = properties_file(tmp_path / "client.properties", secured, "SCRAM-SHA-512")
    properties.write_text(properties.read_text().replace("scram-secret", "wrong"))
    kafka = settings_from_properties(read_properties(properties), KafkaSettings())
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    with pytest.raises(KafkaError):
        KafkaAdminClient(**kafka_python_config(kafka), request_timeout_ms=10_000).list_topics()


def test_oauthbearer_tokens_come_from_the_token_endpoint_once_until_they_expire():
    from pipeline.kafka_clients import OAuthTokenProvider
    from pipeline.settings import Secret
    from tests.integration.notify_servers import HttpStandIn

    body = '{"access_token": "eyJ.token", "token_type": "bearer", "expires_in": 3600}'
    with HttpStandIn(ok_body=body) as idp:
        provider = OAuthTokenProvider(idp.url("/oauth2/token"), "vigie", Secret("cs"),
                                      scope="kafka")
        assert provider.token() == provider.token() == "eyJ.token"
        (request,) = idp.delivered()
    assert request.headers["Authorization"] == "Basic dmlnaWU6Y3M="  # vigie:cs
    assert request.body == b"grant_type=client_credentials&scope=kafka"
