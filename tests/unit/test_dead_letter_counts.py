"""Every dead letter is counted by topic, stage and a bounded reason (the pipeline dashboard's
dead-letter panels)."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from pipeline.deadletter import dead_letter
from pipeline.notify.telemetry import count_dead_letter, dead_letter_reason
from pipeline.schema import FieldError


def count(dlq: str, stage: str, reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "vigie_dead_letters_total", {"dlq": dlq, "stage": stage, "reason": reason})
    return value or 0.0


def test_a_stage_dead_letter_is_counted_under_its_topic_and_reason():
    before = count("mentions.dlq", "detect", "too_late")
    dead_letter("detect", [FieldError("$", "late")], key=b"acme", original=b"{}",
                topic="mentions.scored", partition=0, offset=7, reason="too_late",
                dlq="mentions.dlq")
    assert count("mentions.dlq", "detect", "too_late") == before + 1


@pytest.mark.parametrize(("status", "text", "label"), [
    (503, "HTTP 503 from https://hooks.example/…", "status_503"),
    (None, "no answer within 10s", "timeout"),
    (None, "receiver misconfigured: receivers.x.url_env: variable X is not set",
     "misconfigured"),
    (None, "receiver 'gone' is not configured", "unknown_receiver"),
    (None, "ClientConnectorError: cannot connect", "error"),
])
def test_alert_dead_letter_reasons_are_a_small_set(status, text, label):
    assert dead_letter_reason(status, text) == label
    before = count("alerts.dlq", "alert", label)
    count_dead_letter({"status": status, "reason": text, "incident_id": "i"})
    assert count("alerts.dlq", "alert", label) == before + 1
