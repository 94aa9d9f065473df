"""Email over SMTP (plain, STARTTLS or implicit TLS, optional login).

The message is multipart/alternative: the same content as text and as HTML, the HTML with
the incident's trend as an inline PNG (a related part named by Content-ID). All messages
about one incident to one receiver form one thread: the opening's Message-ID is derived
from the incident id and the receiver, and every later message (escalation, reminder,
resolution) names it in In-Reply-To and References, so a restarted worker keeps the
chain, and they share one subject ("Re: " before all but the first; `email_subject`), for
the clients that thread by subject. Times are written in the reader's time zone (the
watchlist's `timezone`, the owner's or else the brand's). Header
values go through `one_line` (no CR/LF or control characters) *and* the stdlib's
`email.policy.SMTP`, which refuses a header with a line break, so a post text or a brand
name can never add a header. smtplib is blocking, so it runs in a thread with the same
timeout as the dispatcher's.
"""

from __future__ import annotations

import asyncio
import logging
import re
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, make_msgid

import aiohttp

from pipeline.charts import trend_png
from pipeline.notify.base import NotificationError, redact
from pipeline.notify.render import Message, one_line, reader_time, render_html, render_text
from pipeline.settings import Secret

__all__ = ["EmailReceiver", "build_email", "email_subject", "SECURITY_MODES"]

SECURITY_MODES = ("none", "starttls", "tls")
DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}
log = logging.getLogger("vigie.alert")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _id_part(value: str) -> str:
    return _ID_UNSAFE.sub("-", value).strip("-.")[:120] or "x"


def message_id(sender: str, incident_id: str, step: str, receiver: str) -> str:
    """`<lumio-20261128T0347Z.escalated-7.pr-email@example.org>`: the same on every worker
    and after every restart (the domain is the sender's)."""
    domain = _id_part(sender.rpartition("@")[2]) or "vigie.local"
    parts = ".".join(_id_part(p) for p in (incident_id, step, receiver))
    return f"<{parts}@{domain}>"


def chart_png(message: Message) -> bytes | None:
    """The trend chart, or None when there is too little trend to draw (or it fails)."""
    if len(message.trend) < 2:
        return None
    try:
        return trend_png(
            [p.start for p in message.trend],
            [float(p.negative) for p in message.trend],
            [p.expected for p in message.trend],
            _parse(message.opened_at), _parse(message.resolved_at),
            f"{message.brand_name}: negative posts vs normal", message.timezone,
            end_at=_parse(message.updated_at),
        )
    except Exception as exc:  # noqa: BLE001 - an alert without its chart beats no alert
        log.warning("chart for %s not drawn: %s", message.key, type(exc).__name__)
        return None


def _parse(iso: str | None):
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(iso) if iso else None
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


def email_subject(message: Message) -> str:
    """One subject for all the messages of an incident, "Re: " before all but the first:
    Gmail starts a new conversation when the subject changes (only prefixes such as "Re:"
    are ignored) whatever References say, and Outlook threads by subject alone. So the
    subject names the incident (brand, when it opened, in the reader's zone) and each
    message's state goes in its first line (the title: "[CRITICAL] ACME: Escalated to
    critical")."""
    if message.kind == "test":
        return one_line(f"[Vigie] {message.title}", 200)
    opened = reader_time(message, message.opened_at) if message.opened_at \
        else message.incident_id
    subject = f"[Vigie] {message.brand_name}: negative wave since {opened}"
    return one_line(subject if message.kind == "opened" else f"Re: {subject}", 200)


def build_email(message: Message, sender: str, to: tuple[str, ...],
                receiver: str = "email") -> EmailMessage:
    email = EmailMessage(policy=SMTP_POLICY)
    email["Subject"] = email_subject(message)
    email["From"] = sender
    email["To"] = ", ".join(to)
    email["Date"] = formatdate(localtime=False)
    step = message.key.split(":")[-2] if message.key.count(":") >= 2 else message.kind
    if message.kind == "test":
        email["Message-ID"] = make_msgid(domain="vigie.local")
    else:
        email["Message-ID"] = message_id(sender, message.incident_id, step, receiver)
        if message.kind != "opened":
            opening = message_id(sender, message.incident_id, "opened", receiver)
            email["In-Reply-To"] = opening
            email["References"] = opening
    email["X-Vigie-Notification-Key"] = one_line(message.key, 300)
    email.set_content(render_text(message))
    png = chart_png(message)
    chart_id = make_msgid(domain="vigie.local")  # Content-ID, with its angle brackets
    email.add_alternative(render_html(message, chart_id[1:-1] if png else None),
                          subtype="html")
    if png:
        html_part = email.get_payload()[1]
        html_part.add_related(png, maintype="image", subtype="png", cid=chart_id,
                              filename="trend.png", disposition="inline")
    return email


@dataclass(frozen=True)
class EmailReceiver:
    name: str
    to: tuple[str, ...]
    sender: str
    host: str
    port: int
    security: str = "none"
    username: str = ""
    password: Secret = Secret("")
    ca_file: str | None = None  # a private CA to trust (else the system's)
    timeout_s: float = 10.0
    type: str = "email"

    @property
    def rate_limit_key(self) -> None:
        return None

    def secrets(self) -> tuple[str, ...]:
        return (self.password.reveal(),)

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def _send_blocking(self, email: EmailMessage) -> None:
        if self.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout_s, context=self._tls_context()
            )
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        with client:
            client.ehlo()
            if self.security == "starttls":
                client.starttls(context=self._tls_context())
                client.ehlo()
            if self.username:
                client.login(self.username, self.password.reveal())
            client.send_message(email, from_addr=self.sender, to_addrs=list(self.to))

    async def send(self, message: Message, http: aiohttp.ClientSession) -> int | None:
        try:
            # In the thread too: drawing the chart takes tens of milliseconds.
            email = await asyncio.to_thread(build_email, message, self.sender, self.to,
                                            self.name)
            await asyncio.to_thread(self._send_blocking, email)
        except smtplib.SMTPResponseException as exc:
            text = (
                exc.smtp_error.decode(errors="replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            reason = redact(f"SMTP {exc.smtp_code}: {' '.join(text.split())[:200]}", self.secrets())
            # 4xx replies are transient by definition (RFC 5321); 5xx are final.
            raise NotificationError(
                reason, retryable=400 <= exc.smtp_code < 500, status=exc.smtp_code
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            raise NotificationError(
                f"SMTP recipients refused ({', '.join(map(str, codes))})",
                retryable=all(400 <= c < 500 for c in codes),
                status=codes[0] if codes else None,
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            reason = redact(f"SMTP: {exc}", self.secrets())
            raise NotificationError(reason, retryable=False) from None
        except (smtplib.SMTPException, OSError) as exc:
            reason = redact(f"{type(exc).__name__}: {exc}", self.secrets())
            raise NotificationError(reason, retryable=True) from None
        return 250
