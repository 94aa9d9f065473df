"""The per-severity "incidents open" gauge values after an incident event."""

from models.detection import SEVERITIES, open_by_severity


def test_an_open_incident_shows_at_its_own_severity_only() -> None:
    for event in ("opened", "updated", "subsided"):
        assert open_by_severity(event, "warning") == {"info": 0, "warning": 1, "critical": 0}


def test_a_resolved_incident_is_open_at_no_severity() -> None:
    for severity in SEVERITIES:
        assert open_by_severity("resolved", severity) == dict.fromkeys(SEVERITIES, 0)
