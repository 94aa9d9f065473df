"""Receivers from the watchlist: each `ReceiverSpec`'s options checked and turned into a
ready receiver. Secrets only come from `*_env` (an environment variable's name) or
`*_file` (a file's path, e.g. a Docker/Kubernetes secret); a secret written inline in the
YAML is refused. Every error names the watchlist file, the option's line and column and
the field; a misspelt option is reported as unknown with the option it was probably meant
to be, not as a missing one.

`RECEIVER_OPTIONS` is the one schema of receiver options: `build_receiver` reads only
options declared there, and `vigie config check` validates against it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from pipeline.notify.base import Receiver
from pipeline.notify.email import DEFAULT_PORTS, SECURITY_MODES, EmailReceiver
from pipeline.notify.pagerduty import DEFAULT_URL as PAGERDUTY_URL
from pipeline.notify.pagerduty import PagerDutyReceiver
from pipeline.notify.render import safe_url
from pipeline.notify.settings import AlertSettings
from pipeline.notify.slack import SlackReceiver
from pipeline.notify.slack_bot import DEFAULT_API_URL as SLACK_API_URL
from pipeline.notify.slack_bot import SlackBotReceiver
from pipeline.notify.webhook import SIGNATURE_SCHEMES, WebhookReceiver, standard_keys
from pipeline.settings import Secret
from pipeline.spelling import closest
from pipeline.watchlist import Problem, WatchlistError

__all__ = ["build_receiver", "build_receivers", "check_receivers", "RECEIVER_OPTIONS",
           "RECEIVER_TYPES"]

RECEIVER_TYPES = ("slack", "email", "webhook", "pagerduty")


def _secret(base: str) -> tuple[str, str, str]:
    """A secret option: inline (refused unless allowed), `<base>_env` or `<base>_file`."""
    return base, f"{base}_env", f"{base}_file"


# Every option each receiver type accepts (besides `type`). An option read by
# build_receiver must be declared here, or reading it fails loudly in every test.
RECEIVER_OPTIONS: dict[str, frozenset[str]] = {
    # Incoming webhook (url) or bot token (token, channel, api_url: one thread per incident).
    "slack": frozenset({*_secret("url"), *_secret("token"), "channel", "api_url"}),
    "webhook": frozenset({*_secret("url"), *_secret("secret"), "signature"}),
    "pagerduty": frozenset({"url", *_secret("routing_key")}),
    "email": frozenset({"to", "from", "host", "port", "security", "username", "ca_file",
                        *_secret("password")}),
}


class MissingOption(WatchlistError):
    """A required option is absent (perhaps because it was misspelt)."""

    options: tuple[str, ...] = ()
_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$")


class SpecLike(Protocol):
    name: str
    type: str
    options: Mapping[str, Any]
    line: int
    path: Path


class _Options:
    """Reads one receiver's options, raising WatchlistError with file/line/field."""

    def __init__(self, spec: SpecLike, path: Path, env: Mapping[str, str]) -> None:
        self.spec = spec
        self.path = path
        self.env = env
        self.known = RECEIVER_OPTIONS.get(spec.type, frozenset())
        self.options = {k: v for k, v in spec.options.items() if k in self.known}
        self.used: set[str] = set()
        # Unknown options, and the known option each was probably meant to be.
        self.unknown = {str(k): closest(str(k), self.known)
                        for k in spec.options if k not in self.known}

    def mark_of(self, option: str) -> tuple[int | None, int | None]:
        marks = getattr(self.spec, "option_marks", {})
        return marks.get(option, (self.spec.line or None, None))

    def error(self, option: str, message: str, kind: type[WatchlistError] = WatchlistError
              ) -> WatchlistError:
        line, column = self.mark_of(option)
        return kind(self.path, line, f"receivers.{self.spec.name}.{option}", message, column)

    def missing(self, option: str, message: str, *options: str) -> MissingOption:
        error = self.error(option, message, MissingOption)
        assert isinstance(error, MissingOption)
        error.options = options or (option,)
        return error

    def unknown_problems(self) -> list[Problem]:
        problems = []
        for option, meant in self.unknown.items():
            hint = f", did you mean {meant!r}?" if meant else \
                f" (expected one of: {', '.join(sorted(self.known))})"
            line, column = self.mark_of(option)
            problems.append(Problem(self.path, line, column, f"receivers.{self.spec.name}."
                                    f"{option}", f"unknown option {option!r}{hint}"))
        return problems

    def explained_by_typo(self, error: WatchlistError) -> bool:
        """A missing option that a misspelt one was meant to be: the typo says it all."""
        return isinstance(error, MissingOption) and \
            any(meant in error.options for meant in self.unknown.values())

    def declare(self, *options: str) -> None:
        undeclared = set(options) - self.known
        if undeclared:
            raise RuntimeError(f"{self.spec.type} receiver reads {sorted(undeclared)}, "
                               "which RECEIVER_OPTIONS does not declare")
        self.used.update(options)

    def text(self, option: str, default: str | None = None) -> str:
        self.declare(option)
        value = self.options.get(option, default)
        if value is None:
            raise self.missing(option, "is required")
        if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
            raise self.error(option, "must be a non-empty string")
        value = str(value).strip()
        if any(c in value for c in "\r\n\x00"):
            raise self.error(option, "must be a single line")
        return value

    def integer(self, option: str, default: int) -> int:
        self.declare(option)
        value = self.options.get(option, default)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
            raise self.error(option, f"must be a port number, got {value!r}")
        return value

    def choice(self, option: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(option, default)
        if value not in choices:
            raise self.error(option, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def address(self, option: str, value: object) -> str:
        if not isinstance(value, str) or not _ADDRESS.match(value.strip()):
            raise self.error(option, f"not an email address: {value!r}")
        return value.strip()

    def secret(self, base: str, *, required: bool = True, inline_ok: bool = False) -> Secret:
        """`<base>_env` (variable name) or `<base>_file` (path); inline only if allowed."""
        names = [n for n in (base, f"{base}_env", f"{base}_file") if n in self.options]
        self.declare(base, f"{base}_env", f"{base}_file")
        if base in names and not inline_ok:
            raise self.error(
                base, f"is a secret: give {base}_env (a variable name) or {base}_file (a path)"
            )
        if len(names) > 1:
            raise self.error(base, f"give only one of {', '.join(names)}")
        if not names:
            if required:
                raise self.missing(f"{base}_env", f"is required ({base}_env or {base}_file)",
                                   f"{base}_env", f"{base}_file", base)
            return Secret("")
        (name,) = names
        if name == base:
            return Secret(self.text(base))
        reference = self.text(name)
        if name.endswith("_env"):
            value = self.env.get(reference)
            if not value:
                raise self.error(name, f"environment variable {reference} is not set")
            return Secret(value.strip())
        file = Path(reference)
        if not file.is_absolute():
            file = self.path.parent / file  # relative to the watchlist, not the cwd
        try:
            value = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise self.error(name, f"cannot read {file}: {exc.strerror}") from None
        if not value:
            raise self.error(name, f"{file} is empty")
        return Secret(value)

    def http_url(self, option: str, value: str) -> str:
        if safe_url(value) is None:
            raise self.error(option, "must be an http:// or https:// URL")
        return value



def build_receiver(
    spec: SpecLike,
    settings: AlertSettings | None = None,
    env: Mapping[str, str] | None = None,
) -> Receiver:
    """A ready receiver from one watchlist entry (secrets read now, from env or file).

    Nothing is sent. WatchlistError lists the unknown options and the first other problem.
    """
    opts = _Options(spec, spec.path, os.environ if env is None else env)
    problems = opts.unknown_problems()
    receiver: Receiver | None = None
    try:
        receiver = _build_receiver(spec, settings or AlertSettings(), opts)
    except WatchlistError as exc:
        if not opts.explained_by_typo(exc):
            problems += exc.problems
    if problems or receiver is None:
        raise WatchlistError.of(problems)
    return receiver


def _build_receiver(spec: SpecLike, settings: AlertSettings, opts: _Options) -> Receiver:
    path = spec.path
    receiver: Receiver
    if spec.type == "slack" and any(k in spec.options for k in _secret("token")):
        if any(k in spec.options for k in _secret("url")):
            raise opts.error("token", "give a webhook url or a bot token, not both")
        receiver = SlackBotReceiver(
            name=spec.name,
            token=opts.secret("token"),
            channel=opts.text("channel"),
            api_url=opts.http_url("api_url", opts.text("api_url", SLACK_API_URL)),
        )
    elif spec.type == "slack":
        url = opts.secret("url")
        opts.http_url("url_env" if "url_env" in spec.options else "url_file", url.reveal())
        receiver = SlackReceiver(name=spec.name, url=url)
    elif spec.type == "webhook":
        url = opts.secret("url", inline_ok=True)
        where = next(n for n in ("url", "url_env", "url_file") if n in spec.options)
        opts.http_url(where, url.reveal())
        scheme = opts.choice("signature", "vigie", SIGNATURE_SCHEMES)
        secret = opts.secret("secret")
        if scheme == "standard":
            try:
                standard_keys(secret.reveal())
            except ValueError as exc:
                where = "secret_env" if "secret_env" in spec.options else "secret_file"
                raise opts.error(where, f"signature standard: {exc}") from None
        elif len(secret.reveal().split()) > 1:
            raise opts.error("secret", "several secrets (rotation) need signature: standard")
        receiver = WebhookReceiver(name=spec.name, url=url, secret=secret, scheme=scheme)
    elif spec.type == "pagerduty":
        receiver = PagerDutyReceiver(
            name=spec.name,
            routing_key=opts.secret("routing_key"),
            url=opts.http_url("url", opts.text("url", PAGERDUTY_URL)),
        )
    elif spec.type == "email":
        opts.declare("to")
        raw_to = spec.options.get("to")
        recipients = [raw_to] if isinstance(raw_to, str) else raw_to
        if not isinstance(recipients, list) or not recipients:
            raise opts.error("to", "must be an address or a list of addresses")
        security = opts.choice("security", "none", SECURITY_MODES)
        username = opts.text("username", "-") if "username" in spec.options else ""
        password = opts.secret("password", required=bool(username))
        if password and not username:
            raise opts.error("username", "is required with a password")
        ca_file = opts.text("ca_file") if "ca_file" in spec.options else None
        if ca_file and not Path(ca_file).is_absolute():
            ca_file = str(path.parent / ca_file)
        receiver = EmailReceiver(
            name=spec.name,
            to=tuple(opts.address("to", a) for a in recipients),
            sender=opts.address("from", opts.text("from")),
            host=opts.text("host", "127.0.0.1"),
            port=opts.integer("port", DEFAULT_PORTS[security]),
            security=security,
            username=username,
            password=password,
            ca_file=ca_file,
            timeout_s=settings.timeout_s,
        )
    else:
        raise WatchlistError(
            path,
            spec.line,
            f"receivers.{spec.name}.type",
            f"unknown receiver type {spec.type!r} (expected {', '.join(RECEIVER_TYPES)})",
        )
    return receiver


def build_receivers(
    specs: Mapping[str, SpecLike],
    settings: AlertSettings | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Receiver]:
    """Every receiver of a watchlist (`watchlist.receivers`); one error lists every problem."""
    receivers, problems = check_receivers(specs, settings, env)
    if problems:
        raise WatchlistError.of(problems)
    return receivers


def check_receivers(
    specs: Mapping[str, SpecLike],
    settings: AlertSettings | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[dict[str, Receiver], list[Problem]]:
    """The receivers that could be built, and every problem of the others (nothing sent)."""
    receivers: dict[str, Receiver] = {}
    problems: list[Problem] = []
    for name, spec in specs.items():
        try:
            receivers[name] = build_receiver(spec, settings, env)
        except WatchlistError as exc:
            problems += exc.problems
    return receivers, problems
