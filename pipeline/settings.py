"""Settings from `VIGIE_*` environment variables.

Every setting has a default that works on one laptop with `vigie kafka start`. Secrets are
wrapped in `Secret` so that printing a settings object, logging it or putting it in an
exception never shows the value. A value can also come from a file: `VIGIE_X_FILE=/path`
is read when `VIGIE_X` is not set (the Docker/Kubernetes secrets convention).

"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


class SettingError(ValueError):
    """A `VIGIE_*` variable holds a value that cannot be used."""


class Secret:
    """A string that never shows itself in repr, str or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is not None:
        return value
    path = os.environ.get(name + "_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
    return None


def env_str(name: str, default: str) -> str:
    value = _raw(name)
    return default if value is None or value == "" else value


def env_secret(name: str) -> Secret:
    return Secret(_raw(name) or "")


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise SettingError(f"{name}: expected an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise SettingError(f"{name}: must be at least {minimum}, got {number}")
    return number


def env_float(name: str, default: float, minimum: float | None = None) -> float:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise SettingError(f"{name}: expected a number, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise SettingError(f"{name}: must be at least {minimum}, got {number}")
    return number


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingError(f"{name}: expected true or false, got {value!r}")


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default)
    if value not in choices:
        raise SettingError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def project_root() -> Path:
    """The folder holding pyproject.toml (where `.state/` lives by default)."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else Path.cwd()


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSettings:
    """How to reach Kafka; shared by the producers and the Faust worker."""

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str = ""
    sasl_password: Secret = field(default_factory=lambda: Secret(""))
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    topic_prefix: str = ""
    partitions: int = 4
    replication_factor: int = 1

    @classmethod
    def from_env(cls) -> KafkaSettings:
        return cls(
            bootstrap_servers=env_str("VIGIE_KAFKA_BOOTSTRAP_SERVERS", cls.bootstrap_servers),
            security_protocol=env_choice(
                "VIGIE_KAFKA_SECURITY_PROTOCOL", cls.security_protocol, SECURITY_PROTOCOLS
            ),
            sasl_mechanism=env_choice(
                "VIGIE_KAFKA_SASL_MECHANISM", cls.sasl_mechanism, SASL_MECHANISMS
            ),
            sasl_username=env_str("VIGIE_KAFKA_SASL_USERNAME", ""),
            sasl_password=env_secret("VIGIE_KAFKA_SASL_PASSWORD"),
            ssl_cafile=env_str("VIGIE_KAFKA_SSL_CAFILE", ""),
            ssl_certfile=env_str("VIGIE_KAFKA_SSL_CERTFILE", ""),
            ssl_keyfile=env_str("VIGIE_KAFKA_SSL_KEYFILE", ""),
            topic_prefix=env_str("VIGIE_TOPIC_PREFIX", ""),
            partitions=env_int("VIGIE_TOPIC_PARTITIONS", cls.partitions, minimum=1),
            replication_factor=env_int("VIGIE_TOPIC_REPLICATION", cls.replication_factor, 1),
        )

    def topic(self, name: str) -> str:
        """The real topic name: the prefix lets several deployments (or tests) share a cluster."""
        return f"{self.topic_prefix}{name}"

    def kafka_python_config(self) -> dict[str, object]:
        """Connection options in kafka-python's vocabulary."""
        config: dict[str, object] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol.startswith("SASL"):
            config.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password.reveal(),
            )
        if self.security_protocol.endswith("SSL"):
            config.update(
                ssl_cafile=self.ssl_cafile or None,
                ssl_certfile=self.ssl_certfile or None,
                ssl_keyfile=self.ssl_keyfile or None,
            )
        return config


@dataclass(frozen=True)
class WorkerSettings:
    """The Faust worker's own settings."""

    app_id: str = "vigie"
    state_dir: Path = Path(".state/worker")
    web_port: int = 6066
    watchlist: Path = Path("config/watchlist.yaml")
    max_record_bytes: int = 262_144
    dedup_hours: float = 48.0
    log_level: str = "info"

    @classmethod
    def from_env(cls) -> WorkerSettings:
        return cls(
            app_id=env_str("VIGIE_APP_ID", cls.app_id),
            state_dir=Path(env_str("VIGIE_STATE_DIR", str(project_root() / cls.state_dir))),
            web_port=env_int("VIGIE_WEB_PORT", cls.web_port, minimum=1),
            watchlist=Path(env_str("VIGIE_WATCHLIST", str(project_root() / cls.watchlist))),
            max_record_bytes=env_int("VIGIE_MAX_RECORD_BYTES", cls.max_record_bytes, 1024),
            dedup_hours=env_float("VIGIE_DEDUP_HOURS", cls.dedup_hours, minimum=0.0),
            log_level=env_choice(
                "VIGIE_LOG_LEVEL", cls.log_level, ("debug", "info", "warning", "error")
            ),
        )
