"""Alerting settings from `VIGIE_ALERT_*`, `VIGIE_SLACK_*` and `VIGIE_GRAFANA_*` variables."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.settings import env_float, env_int, env_str

__all__ = ["AlertSettings"]


@dataclass(frozen=True)
class AlertSettings:
    """When and how hard to try telling people.

    group_wait_s defaults to 10 s, shorter than Alertmanager's 30 s: a Vigie incident is
    already the product of a detector that waited for a full interval, so the only burst
    left to fold is the detector's own opened -> updated/escalated events for the same
    interval, which arrive within seconds. Each extra second is a second later that a PR
    lead learns of a leak.

    give_up_after_s: a notification is retried (backoff up to backoff_max_s, Retry-After
    honoured) until this long after its first attempt, across worker restarts, and only
    then dead-lettered. One hour rides through a 30-minute Slack or mail outage with room
    to spare; the pending notifications show in `vigie_notifications_pending` meanwhile.
    max_attempts (0: no limit) can cap the attempts as well.
    """

    group_wait_s: float = 10.0
    repeat_interval_s: float = 4 * 3600.0
    timeout_s: float = 10.0
    max_attempts: int = 0  # 0: only give_up_after_s limits the retries
    give_up_after_s: float = 3600.0
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0
    retry_after_max_s: float = 120.0
    slack_min_interval_s: float = 1.0
    tick_s: float = 1.0
    claim_s: float = 15.0
    top_posts: int = 5
    grafana_url: str = "http://127.0.0.1:3000"
    grafana_dashboard: str = "vigie-brands"

    @classmethod
    def from_env(cls) -> AlertSettings:
        return cls(
            group_wait_s=env_float("VIGIE_ALERT_GROUP_WAIT_S", cls.group_wait_s, 0.0),
            repeat_interval_s=env_float(
                "VIGIE_ALERT_REPEAT_INTERVAL_S", cls.repeat_interval_s, 1.0
            ),
            timeout_s=env_float("VIGIE_ALERT_TIMEOUT_S", cls.timeout_s, 0.1),
            max_attempts=env_int("VIGIE_ALERT_MAX_ATTEMPTS", cls.max_attempts, 0),
            give_up_after_s=env_float("VIGIE_ALERT_GIVE_UP_AFTER_S", cls.give_up_after_s, 0.0),
            backoff_s=env_float("VIGIE_ALERT_BACKOFF_S", cls.backoff_s, 0.0),
            backoff_max_s=env_float("VIGIE_ALERT_BACKOFF_MAX_S", cls.backoff_max_s, 0.0),
            retry_after_max_s=env_float(
                "VIGIE_ALERT_RETRY_AFTER_MAX_S", cls.retry_after_max_s, 0.0
            ),
            slack_min_interval_s=env_float(
                "VIGIE_SLACK_MIN_INTERVAL_S", cls.slack_min_interval_s, 0.0
            ),
            tick_s=env_float("VIGIE_ALERT_TICK_S", cls.tick_s, 0.05),
            claim_s=env_float("VIGIE_ALERT_CLAIM_S", cls.claim_s, 1.0),
            top_posts=env_int("VIGIE_ALERT_TOP_POSTS", cls.top_posts, 0),
            grafana_url=env_str("VIGIE_GRAFANA_URL", cls.grafana_url).rstrip("/"),
            grafana_dashboard=env_str("VIGIE_GRAFANA_DASHBOARD", cls.grafana_dashboard),
        )
