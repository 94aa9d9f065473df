"""What can go wrong in a source, and what the runner does about each."""

from __future__ import annotations

__all__ = [
    "DeliveryError",
    "DeliveryPending",
    "FatalSourceError",
    "MALFORMED",
    "RateLimited",
    "TransientSourceError",
]


class TransientSourceError(Exception):
    """The connection failed or ended; try again after a backoff.

    `kind` picks the backoff policy: "network" (could not connect or the connection
    dropped), "http" (the server answered with an error status).
    """

    def __init__(self, message: str, kind: str = "network") -> None:
        super().__init__(message)
        self.kind = kind


class RateLimited(TransientSourceError):
    """The platform said "too many requests": wait `retry_after` seconds (None: unknown)."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message, kind="rate_limit")
        self.retry_after = retry_after


#: What a platform item that does not have the documented shape raises while being read:
#: the item is rejected with the message, the source goes on.
MALFORMED = (ValueError, TypeError, KeyError, AttributeError, IndexError)


class FatalSourceError(Exception):
    """Retrying cannot help (bad credentials, bad configuration): stop with this message."""


class DeliveryError(Exception):
    """The sink could not confirm that posts reached Kafka."""


class DeliveryPending(DeliveryError):
    """Nothing failed, but Kafka has not acknowledged (or taken) the posts yet: it may be
    away. The sink keeps retrying; the resume state must not move past them."""
