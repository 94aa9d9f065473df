"""The incident chart of email alerts: negative posts observed vs expected, incident marked.

Same look as `vigie detect plot` (observed in near-black, expectation in blue, the open
incident shaded red). Drawn with matplotlib's object API (a `Figure` of its own, no
pyplot state), so that several notifications can draw at once in worker threads.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

__all__ = ["trend_png", "OBSERVED_COLOR", "EXPECTED_COLOR", "INCIDENT_COLOR"]

OBSERVED_COLOR = "#252525"
EXPECTED_COLOR = "#3182bd"
INCIDENT_COLOR = "#de2d26"


def trend_png(
    times: Sequence[datetime],
    observed: Sequence[float],
    expected: Sequence[float | None],
    opened_at: datetime | None,
    resolved_at: datetime | None,
    title: str,
    timezone: str = "UTC",
    end_at: datetime | None = None,
    size: tuple[float, float] = (8.0, 3.0),
    dpi: int = 80,
) -> bytes:
    """A PNG (640x240 by default) of the trend up to `end_at`, times in `timezone`."""
    from matplotlib.dates import DateFormatter
    from matplotlib.figure import Figure

    zone = ZoneInfo(timezone)
    figure = Figure(figsize=size, dpi=dpi)
    axis = figure.add_subplot()
    axis.step(times, observed, where="post", color=OBSERVED_COLOR, linewidth=1.2,
              label="negative posts")
    known = [(t, e) for t, e in zip(times, expected, strict=True) if e is not None]
    if known:
        axis.plot([t for t, _ in known], [e for _, e in known], color=EXPECTED_COLOR,
                  linewidth=1.0, linestyle="--", label="normally")
    if opened_at is not None and times:
        end = resolved_at or times[-1]
        axis.axvspan(max(opened_at, times[0]), max(end, times[0]), color=INCIDENT_COLOR,
                     alpha=0.12, label="incident")
        axis.axvline(opened_at, color=INCIDENT_COLOR, linewidth=1.0)
    # Log-like above 10, as `vigie detect plot`: the quiet normal and the wave both show.
    axis.set_yscale("symlog", linthresh=10)
    axis.set_ylim(bottom=0, top=max([*observed, *(e for _, e in known), 1]) * 2 + 10)
    if times:
        axis.set_xlim(times[0], max(times[-1], resolved_at or times[-1], end_at or times[-1]))
    axis.set_ylabel("per interval")
    axis.xaxis.set_major_formatter(DateFormatter("%H:%M", tz=zone))
    axis.set_title(title, fontsize=9)
    axis.legend(loc="upper left", fontsize=7, framealpha=0.9)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
