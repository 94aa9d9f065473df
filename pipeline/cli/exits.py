"""Exit codes of every `vigie` command, so that scripts can trust them (README lists them).

0 done; 1 a runtime failure (a broker, receiver or model that failed while working);
2 a configuration or usage error (a bad `VIGIE_*` value, watchlist, receiver or option:
fix the configuration, a retry will not help); 3 `vigie kafka status`: not running.
"""

from __future__ import annotations

import click

OK = 0
FAILURE = 1
CONFIG_ERROR = 2
NOT_RUNNING = 3


class ConfigError(click.ClickException):
    """A configuration or usage problem: printed as `Error: ...`, exit 2."""

    exit_code = CONFIG_ERROR
