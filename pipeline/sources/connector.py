"""The one class a platform implements (`Connector`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

from pipeline.sources.backoff import DEFAULT_POLICIES, BackoffPolicy
from pipeline.sources.items import SourceItem

__all__ = ["Connector"]


class Connector(ABC):
    """A platform connection. Subclasses set `name` and `platform` and implement `stream`."""

    name: ClassVar[str] = "source"
    #: backoff policies by error kind; subclasses override where the platform documents them
    policies: ClassVar[Mapping[str, BackoffPolicy]] = DEFAULT_POLICIES
    #: polling connectors make one pass and return when set (the runner's `once`)
    single_pass: bool = False

    @abstractmethod
    def stream(self, cursor: Mapping[str, Any]) -> AsyncIterator[SourceItem]:
        """Open one connection from `cursor` (the merged state so far) and yield items.

        Raise TransientSourceError / RateLimited to be called again after a pause,
        FatalSourceError to stop. Returning normally means the connection ended
        (streaming: reconnect; with `once`: the run is over).
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release what the connector holds between connections (sessions, tokens)."""
