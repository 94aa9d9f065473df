"""Kafka connection settings, translated for every client family Vigie runs, in one place.

- A standard Kafka client properties file (`VIGIE_KAFKA_PROPERTIES`), as companies hand
  them out for Java clients: `bootstrap.servers`, `security.protocol`, `sasl.mechanism`,
  `sasl.jaas.config`, `ssl.*` (PEM; librdkafka's `ssl.ca.location` names work too), is
  read into `KafkaSettings` by `settings_from_properties`.
- `kafka_python_config` (producers, admin, `vigie silence`), `aiokafka_config` (the alert
  stage's own clients) and `faust_credentials` (the Faust worker, aiokafka underneath)
  turn the same `KafkaSettings` into each library's vocabulary.

Mechanisms: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER (client credentials
against `sasl.oauthbearer.token.endpoint.url`); TLS with a private CA and a client
certificate whose key may be encrypted (`ssl.key.password`). Java keystores (JKS,
PKCS12) cannot be read by Python clients: the error says how to convert them to PEM.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.settings import KafkaSettings, Secret, SettingError
from pipeline.spelling import did_you_mean

__all__ = [
    "OAuthTokenProvider",
    "aiokafka_config",
    "faust_credentials",
    "kafka_python_config",
    "read_properties",
    "settings_from_properties",
    "ssl_context",
]

SUPPORTED_KEYS = (
    "bootstrap.servers", "security.protocol", "sasl.mechanism", "sasl.jaas.config",
    "sasl.username", "sasl.password", "sasl.oauthbearer.token.endpoint.url",
    "ssl.truststore.type", "ssl.truststore.location", "ssl.keystore.type",
    "ssl.keystore.location", "ssl.key.password", "ssl.keystore.password",
    "ssl.ca.location", "ssl.certificate.location", "ssl.key.location",
    "ssl.endpoint.identification.algorithm",
)
_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "OAUTHBEARER": "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule",
}
_PROPERTY = re.compile(r"^((?:\\.|[^=:\s\\])+)\s*[=:]?\s*(.*)$", re.S)
_JAAS = re.compile(r"^\s*(?P<module>[\w.$]+)\s+(?P<flag>required|requisite|sufficient|optional)"
                   r"(?P<options>.*?);?\s*$", re.S)
_JAAS_OPTION = re.compile(r'\s*([\w.]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|(\S+?))(?=\s|;|$)')


# -- the properties file -----------------------------------------------------------------


def read_properties(path: Path | str) -> dict[str, str]:
    """A Java `.properties` file: `key=value` or `key: value`, `#`/`!` comments, a
    trailing backslash continues a line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingError(f"VIGIE_KAFKA_PROPERTIES: cannot read {path}: {exc.strerror}") \
            from None
    properties: dict[str, str] = {}
    logical = ""
    for raw in text.splitlines():
        line = raw.strip() if not logical else raw.lstrip()
        if not logical and (not line or line[0] in "#!"):
            continue
        if line.endswith("\\") and not line.endswith("\\\\"):
            logical += line[:-1]
            continue
        logical += line
        # The key ends at the first unescaped '=', ':' or blank.
        match = _PROPERTY.match(logical)
        if match:
            properties[match.group(1).replace("\\", "")] = match.group(2).strip()
        logical = ""
    return properties


def _jaas(value: str, where: str) -> tuple[str, dict[str, str]]:
    match = _JAAS.match(value)
    if not match:
        raise SettingError(f"{where}: sasl.jaas.config: expected '<LoginModule> required "
                           f'key="value" ...;\'')
    options = {m.group(1): (m.group(2) if m.group(2) is not None else m.group(3))
               for m in _JAAS_OPTION.finditer(match.group("options"))}
    return match.group("module"), {k: v.replace('\\"', '"') for k, v in options.items()}


def settings_from_properties(properties: Mapping[str, str], base: KafkaSettings,
                             where: str = "VIGIE_KAFKA_PROPERTIES") -> KafkaSettings:
    """`base` with what the properties set. Security-relevant keys Vigie cannot honour
    are refused (a client that silently ignores them would fail in confusing ways); other
    client tunings (`client.id`, `acks`...) are left to Vigie's own settings."""
    problems = [
        SettingError(f"{where}: {key} is not supported"
                     + (did_you_mean(key, SUPPORTED_KEYS)
                        or f" (supported: {', '.join(SUPPORTED_KEYS)})"))
        for key in sorted(properties)
        if key.startswith(("ssl.", "sasl.", "security.")) and key not in SUPPORTED_KEYS
    ]
    for kind in ("truststore", "keystore"):
        store_type = (properties.get(f"ssl.{kind}.type") or "PEM").upper()
        if properties.get(f"ssl.{kind}.location") and store_type != "PEM":
            problems.append(SettingError(
                f"{where}: ssl.{kind}.type {store_type}: Python clients read PEM files only; "
                f"convert it (keytool -importkeystore -deststoretype PKCS12, then openssl "
                f"pkcs12 -nodes) and give ssl.{kind}.type=PEM"))
    if problems:
        error = SettingError("\n".join(str(problem) for problem in problems))
        error.problems = problems  # type: ignore[attr-defined]  # each, for config check
        raise error
    get = properties.get
    changes: dict[str, Any] = {}
    if get("bootstrap.servers"):
        changes["bootstrap_servers"] = get("bootstrap.servers")
    if get("security.protocol"):
        changes["security_protocol"] = get("security.protocol", "").upper()
    mechanism = (get("sasl.mechanism") or base.sasl_mechanism).upper()
    if get("sasl.mechanism"):
        changes["sasl_mechanism"] = mechanism
    if get("sasl.jaas.config"):
        module, options = _jaas(get("sasl.jaas.config", ""), where)
        expected = _LOGIN_MODULES.get(mechanism)
        if expected and module != expected:
            raise SettingError(f"{where}: sasl.jaas.config: {mechanism} needs {expected}, "
                               f"got {module}")
        if mechanism == "OAUTHBEARER":
            changes.update(sasl_username=options.get("clientId", ""),
                           sasl_password=Secret(options.get("clientSecret", "")),
                           sasl_oauth_scope=options.get("scope", ""))
        else:
            changes.update(sasl_username=options.get("username", ""),
                           sasl_password=Secret(options.get("password", "")))
    if get("sasl.username"):
        changes["sasl_username"] = get("sasl.username")
    if get("sasl.password"):
        changes["sasl_password"] = Secret(get("sasl.password", ""))
    if get("sasl.oauthbearer.token.endpoint.url"):
        changes["sasl_oauth_token_url"] = get("sasl.oauthbearer.token.endpoint.url")
    if get("ssl.truststore.location") or get("ssl.ca.location"):
        changes["ssl_cafile"] = get("ssl.ca.location") or get("ssl.truststore.location")
    if get("ssl.keystore.location"):  # PEM: the certificate chain and the key in one file
        changes["ssl_certfile"] = changes["ssl_keyfile"] = get("ssl.keystore.location")
    if get("ssl.certificate.location"):
        changes["ssl_certfile"] = get("ssl.certificate.location")
    if get("ssl.key.location"):
        changes["ssl_keyfile"] = get("ssl.key.location")
    password = get("ssl.key.password") or get("ssl.keystore.password")
    if password:
        changes["ssl_key_password"] = Secret(password)
    if "ssl.endpoint.identification.algorithm" in properties:
        changes["ssl_check_hostname"] = get("ssl.endpoint.identification.algorithm", "") != ""
    return replace(base, **changes)


# -- TLS and OAuth -------------------------------------------------------------------------


def ssl_context(settings: KafkaSettings) -> ssl.SSLContext:
    """Trust (a private CA or the system's), and the client certificate if any."""
    context = ssl.create_default_context(cafile=settings.ssl_cafile or None)
    context.check_hostname = settings.ssl_check_hostname
    if settings.ssl_certfile:
        try:
            context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile or None,
                                    password=settings.ssl_key_password.reveal() or None)
        except (OSError, ssl.SSLError) as exc:
            # Never the password: only which files could not be used.
            raise SettingError(f"Kafka TLS client certificate {settings.ssl_certfile}: "
                               f"{getattr(exc, 'strerror', None) or type(exc).__name__}") \
                from None
    return context


class OAuthTokenProvider:
    """OAUTHBEARER tokens by the OAuth 2 client-credentials grant, reused until a minute
    before they expire. Serves kafka-python (`token()`) and aiokafka (`await token()`
    through `AsyncTokenProvider`)."""

    def __init__(self, url: str, client_id: str, client_secret: Secret, scope: str = "",
                 timeout_s: float = 10.0) -> None:
        self.url, self.client_id, self.client_secret = url, client_id, client_secret
        self.scope, self.timeout_s = scope, timeout_s
        self._token = ""
        self._expires = 0.0
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            if self._token and time.time() < self._expires - 60:
                return self._token
            form = {"grant_type": "client_credentials"}
            if self.scope:
                form["scope"] = self.scope
            basic = base64.b64encode(
                f"{self.client_id}:{self.client_secret.reveal()}".encode()).decode()
            request = urllib.request.Request(
                self.url, data=urllib.parse.urlencode(form).encode(), method="POST",
                headers={"Authorization": f"Basic {basic}",
                         "Content-Type": "application/x-www-form-urlencoded"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                    body = json.loads(answer.read())
            except (OSError, ValueError) as exc:
                raise ConnectionError(f"OAuth token endpoint {self.url}: "
                                      f"{type(exc).__name__}") from None
            self._token = str(body["access_token"])
            self._expires = time.time() + float(body.get("expires_in", 300))
            return self._token

    def extensions(self) -> dict[str, str]:
        return {}


def _kafka_python_token_provider(settings: KafkaSettings) -> Any:
    from kafka.net.sasl.oauth import AbstractTokenProvider

    provider = _oauth(settings)

    class Provider(AbstractTokenProvider):
        def token(self) -> str:
            return provider.token()

    return Provider()


def _aiokafka_token_provider(settings: KafkaSettings) -> Any:
    from aiokafka.abc import AbstractTokenProvider

    provider = _oauth(settings)

    class Provider(AbstractTokenProvider):
        async def token(self) -> str:
            # The endpoint is called with blocking I/O: off the event loop.
            return await asyncio.get_running_loop().run_in_executor(None, provider.token)

    return Provider()


def _oauth(settings: KafkaSettings) -> OAuthTokenProvider:
    if not settings.sasl_oauth_token_url:
        raise SettingError("OAUTHBEARER needs a token endpoint "
                           "(sasl.oauthbearer.token.endpoint.url)")
    return OAuthTokenProvider(settings.sasl_oauth_token_url, settings.sasl_username,
                              settings.sasl_password, settings.sasl_oauth_scope)


# -- each client family's vocabulary -------------------------------------------------------


def kafka_python_config(settings: KafkaSettings) -> dict[str, Any]:
    """Connection options for kafka-python's producer, consumer and admin client."""
    servers = [server.strip() for server in settings.bootstrap_servers.split(",")]
    return _client_config(settings, servers, _kafka_python_token_provider)


def aiokafka_config(settings: KafkaSettings) -> dict[str, Any]:
    """Connection options for aiokafka's producer, consumer and admin client."""
    return _client_config(settings, settings.bootstrap_servers, _aiokafka_token_provider)


def _client_config(settings: KafkaSettings, servers: Any,
                   token_provider: Callable[[KafkaSettings], Any]) -> dict[str, Any]:
    """The options kafka-python and aiokafka name alike; only the token provider differs."""
    config: dict[str, Any] = {
        "bootstrap_servers": servers,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol.startswith("SASL"):
        config["sasl_mechanism"] = settings.sasl_mechanism
        if settings.sasl_mechanism == "OAUTHBEARER":
            config["sasl_oauth_token_provider"] = token_provider(settings)
        else:
            config.update(sasl_plain_username=settings.sasl_username,
                          sasl_plain_password=settings.sasl_password.reveal())
    if settings.security_protocol.endswith("SSL"):
        config["ssl_context"] = ssl_context(settings)
    return config


def faust_credentials(settings: KafkaSettings) -> Any:
    """`broker_credentials` for the Faust app (None for PLAINTEXT)."""
    import faust

    if settings.security_protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings) if settings.security_protocol.endswith("SSL") else None
    if settings.security_protocol.startswith("SASL"):
        if settings.sasl_mechanism == "OAUTHBEARER":
            return faust.OAuthCredentials(oauth_cb=_aiokafka_token_provider(settings),
                                          ssl_context=context)
        return faust.SASLCredentials(username=settings.sasl_username,
                                     password=settings.sasl_password.reveal(),
                                     mechanism=settings.sasl_mechanism, ssl_context=context)
    return faust.SSLCredentials(context)
