"""Settings from `VIGIE_*` environment variables.

Every setting has a default that works on one laptop with `vigie kafka start`. Secrets are
wrapped in `Secret` so that printing a settings object, logging it or putting it in an
exception never shows the value. A value can also come from a file: `VIGIE_X_FILE=/path`
is read when `VIGIE_X` is not set (the Docker/Kubernetes secrets convention).

A bad value raises SettingError naming the variable. Under `collecting_errors()` (what
`vigie config check` uses) a bad value is recorded instead and its default used, so that
every bad variable is reported in one pass; `names_read()` then lists every variable the
settings classes know, for a "did you mean" on misspelt ones.
"""

from __future__ import annotations

import contextvars
import os
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.limits import DEFAULT_MAX_POST_BYTES, MAX_POST_BYTES_CEILING
from pipeline.spelling import did_you_mean


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


_NAMES_READ: set[str] = set()
_collected: contextvars.ContextVar[list[SettingError] | None] = contextvars.ContextVar(
    "vigie_setting_errors", default=None)


@contextmanager
def collecting_errors() -> Iterator[list[SettingError]]:
    """Within this block a bad variable is appended to the yielded list, not raised."""
    errors: list[SettingError] = []
    token = _collected.set(errors)
    try:
        yield errors
    finally:
        _collected.reset(token)


def names_read() -> frozenset[str]:
    """Every `VIGIE_*` variable a settings class has looked up in this process."""
    return frozenset(_NAMES_READ)


def _bad(error: SettingError, default):  # noqa: ANN001, ANN202 - returns the default's type
    errors = _collected.get()
    if errors is None:
        raise error
    errors.append(error)
    return default


def _raw(name: str) -> str | None:
    _NAMES_READ.add(name)
    value = os.environ.get(name)
    if value is not None:
        return value
    path = os.environ.get(name + "_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            return _bad(SettingError(f"{name}_FILE: cannot read {path}: {exc.strerror}"), None)
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
        return _bad(SettingError(f"{name}: expected an integer, got {value!r}"), default)
    if minimum is not None and number < minimum:
        return _bad(SettingError(f"{name}: must be at least {minimum}, got {number}"), default)
    return number


def env_float(name: str, default: float, minimum: float | None = None) -> float:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        return _bad(SettingError(f"{name}: expected a number, got {value!r}"), default)
    if minimum is not None and number < minimum:
        return _bad(SettingError(f"{name}: must be at least {minimum}, got {number}"), default)
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
    return _bad(SettingError(f"{name}: expected true or false, got {value!r}"), default)


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default)
    if value not in choices:
        return _bad(SettingError(f"{name}: expected one of {', '.join(choices)}, got {value!r}"
                                 + did_you_mean(value, choices)), default)
    return value


def env_tls_file(name: str, used: bool, ca: bool = False, default: str = "",
                 default_from: str = "") -> str:
    """A certificate, key or CA file path, checked now when TLS will use it.

    Without this check a wrong path surfaces much later and far from its cause (the
    Kafka clients report "Unable to bootstrap" or an unnamed FileNotFoundError).
    `default` (e.g. from VIGIE_KAFKA_PROPERTIES, named by `default_from`) applies when
    the variable is not set.
    """
    value = env_str(name, default)
    if _raw(name) in (None, "") and default_from:
        name = default_from
    if not value or not used:
        return value
    path = Path(value)
    if not path.is_file():
        return _bad(SettingError(f"{name}: no such file: {value}"), value)
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        return _bad(SettingError(f"{name}: cannot read {value}: {exc.strerror}"), value)
    if ca:
        try:
            ssl.create_default_context().load_verify_locations(cafile=value)
        except ssl.SSLError:
            return _bad(
                SettingError(f"{name}: {value} holds no PEM certificate to trust"), value
            )
    return value


def project_root() -> Path:
    """The folder holding pyproject.toml (where `.state/` lives by default)."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else Path.cwd()


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")


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
    ssl_key_password: Secret = field(default_factory=lambda: Secret(""))
    ssl_check_hostname: bool = True
    sasl_oauth_token_url: str = ""  # OAUTHBEARER: username/password are the client's id/secret
    sasl_oauth_scope: str = ""
    topic_prefix: str = ""
    partitions: int = 4
    replication_factor: int = 1

    @classmethod
    def from_env(cls) -> KafkaSettings:
        """VIGIE_KAFKA_PROPERTIES (a Kafka client properties file) first, if given; each
        VIGIE_KAFKA_* variable that is set overrides what the file says."""
        base = cls()
        properties_file = env_str("VIGIE_KAFKA_PROPERTIES", "")
        if properties_file:
            from pipeline.kafka_clients import read_properties, settings_from_properties

            try:
                base = settings_from_properties(read_properties(properties_file), base)
            except SettingError as exc:
                if _collected.get() is None:
                    raise
                for problem in getattr(exc, "problems", [exc]):
                    _bad(problem, base)
        protocol = env_choice(
            "VIGIE_KAFKA_SECURITY_PROTOCOL", base.security_protocol, SECURITY_PROTOCOLS
        )
        tls = protocol.endswith("SSL")
        from_file = "VIGIE_KAFKA_PROPERTIES" if properties_file else ""
        return cls(
            bootstrap_servers=env_str("VIGIE_KAFKA_BOOTSTRAP_SERVERS", base.bootstrap_servers),
            security_protocol=protocol,
            sasl_mechanism=env_choice(
                "VIGIE_KAFKA_SASL_MECHANISM", base.sasl_mechanism, SASL_MECHANISMS
            ),
            sasl_username=env_str("VIGIE_KAFKA_SASL_USERNAME", base.sasl_username),
            sasl_password=env_secret("VIGIE_KAFKA_SASL_PASSWORD") or base.sasl_password,
            ssl_cafile=env_tls_file("VIGIE_KAFKA_SSL_CAFILE", tls, ca=True,
                                    default=base.ssl_cafile, default_from=from_file),
            ssl_certfile=env_tls_file("VIGIE_KAFKA_SSL_CERTFILE", tls,
                                      default=base.ssl_certfile, default_from=from_file),
            ssl_keyfile=env_tls_file("VIGIE_KAFKA_SSL_KEYFILE", tls,
                                     default=base.ssl_keyfile, default_from=from_file),
            ssl_key_password=env_secret("VIGIE_KAFKA_SSL_KEY_PASSWORD") or base.ssl_key_password,
            ssl_check_hostname=base.ssl_check_hostname,
            sasl_oauth_token_url=env_str("VIGIE_KAFKA_SASL_OAUTH_TOKEN_URL",
                                         base.sasl_oauth_token_url),
            sasl_oauth_scope=env_str("VIGIE_KAFKA_SASL_OAUTH_SCOPE", base.sasl_oauth_scope),
            topic_prefix=env_str("VIGIE_TOPIC_PREFIX", ""),
            partitions=env_int("VIGIE_TOPIC_PARTITIONS", cls.partitions, minimum=1),
            replication_factor=env_int("VIGIE_TOPIC_REPLICATION", cls.replication_factor, 1),
        )

    def topic(self, name: str) -> str:
        """The real topic name: the prefix lets several deployments (or tests) share a cluster."""
        return f"{self.topic_prefix}{name}"

    def kafka_python_config(self) -> dict[str, object]:
        """Connection options in kafka-python's vocabulary (pipeline/kafka_clients.py)."""
        from pipeline.kafka_clients import kafka_python_config

        return kafka_python_config(self)


def env_max_record_bytes() -> int:
    """`VIGIE_MAX_RECORD_BYTES`, the largest post Vigie accepts (pipeline/limits.py): read
    here only, by every settings class that needs it (worker, sources, push endpoint)."""
    value = env_int("VIGIE_MAX_RECORD_BYTES", DEFAULT_MAX_POST_BYTES, minimum=1024)
    if value > MAX_POST_BYTES_CEILING:
        return _bad(SettingError(
            f"VIGIE_MAX_RECORD_BYTES: at most {MAX_POST_BYTES_CEILING} (half the largest "
            f"Kafka record Vigie writes, so a validated post can always be written on), "
            f"got {value}"
        ), DEFAULT_MAX_POST_BYTES)
    return value


AGENT_NAMES = ("validate", "score", "detect", "alert")
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class LogSettings:
    """`VIGIE_LOG_LEVEL`: the log level of every long-running command (worker, sources)."""

    level: str = "info"

    @classmethod
    def from_env(cls) -> LogSettings:
        return cls(level=env_choice("VIGIE_LOG_LEVEL", cls.level, LOG_LEVELS))


@dataclass(frozen=True)
class StateSettings:
    """`VIGIE_STATE_DIR`: the folder of local state, the worker's tables directly in it and
    the sources' resume state in its `sources/`; unset, both live under the project's
    `.state/` (`.state/worker`, `.state/sources`)."""

    root: Path | None = None

    @classmethod
    def from_env(cls) -> StateSettings:
        value = env_str("VIGIE_STATE_DIR", "")
        return cls(root=Path(value) if value else None)

    @property
    def worker_dir(self) -> Path:
        return self.root if self.root is not None else project_root() / ".state" / "worker"

    @property
    def sources_dir(self) -> Path:
        return (self.root / "sources" if self.root is not None
                else project_root() / ".state" / "sources")


@dataclass(frozen=True)
class WorkerSettings:
    """The Faust worker's own settings."""

    app_id: str = "vigie"
    state_dir: Path = field(default_factory=lambda: StateSettings().worker_dir)
    web_port: int = 6066
    web_bind: str = "127.0.0.1"
    watchlist: Path = Path("config/watchlist.yaml")
    max_record_bytes: int = DEFAULT_MAX_POST_BYTES
    dedup_hours: float = 48.0
    # Post keys remembered per partition of posts.valid (8 bytes each, twice: the index
    # and the table that restores it): the dedup's memory bound (pipeline/dedup.py).
    dedup_max_keys: int = 10_000_000
    log_level: str = "info"
    store: str = "memory://"
    agents: tuple[str, ...] = AGENT_NAMES
    session_timeout_s: float = 10.0
    live_loop_stall_s: float = 30.0
    live_consumer_stall_s: float = 300.0

    @classmethod
    def from_env(cls) -> WorkerSettings:
        return cls(
            app_id=env_str("VIGIE_APP_ID", cls.app_id),
            state_dir=StateSettings.from_env().worker_dir,
            web_port=env_int("VIGIE_WEB_PORT", cls.web_port, minimum=1),
            watchlist=Path(env_str("VIGIE_WATCHLIST", str(project_root() / cls.watchlist))),
            max_record_bytes=env_max_record_bytes(),
            dedup_hours=env_float("VIGIE_DEDUP_HOURS", cls.dedup_hours, minimum=0.0),
            dedup_max_keys=env_int("VIGIE_DEDUP_MAX_KEYS", cls.dedup_max_keys, minimum=1000),
            log_level=LogSettings.from_env().level,
            web_bind=env_str("VIGIE_WEB_BIND", cls.web_bind),
            store=env_str("VIGIE_STORE", cls.store),
            agents=_agent_names(env_str("VIGIE_AGENTS", "")),
            session_timeout_s=env_float("VIGIE_SESSION_TIMEOUT_S", cls.session_timeout_s, 6.0),
            live_loop_stall_s=env_float("VIGIE_LIVE_LOOP_STALL_S", cls.live_loop_stall_s, 1.0),
            live_consumer_stall_s=env_float(
                "VIGIE_LIVE_CONSUMER_STALL_S", cls.live_consumer_stall_s, 10.0
            ),
        )

    @property
    def validate_group(self) -> str:
        """The consumer group of the validate loop (a plain aiokafka consumer of posts.raw,
        beside the Faust agents' group `app_id`)."""
        return f"{self.app_id}-validate"


def _agent_names(wanted: str) -> tuple[str, ...]:
    """VIGIE_AGENTS: all agents, or the comma list given (e.g. "score" for a worker that
    only scores: the model is the slow stage, scaled on its own)."""
    names = tuple(name.strip() for name in wanted.split(",") if name.strip())
    unknown = [name for name in names if name not in AGENT_NAMES]
    if unknown:
        return _bad(SettingError(f"VIGIE_AGENTS: unknown agent(s) {', '.join(unknown)}"
                                 f"{did_you_mean(unknown[0], AGENT_NAMES)}; known: "
                                 f"{', '.join(AGENT_NAMES)}"), AGENT_NAMES)
    return names or AGENT_NAMES
