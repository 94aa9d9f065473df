"""Telling the people who must act: receivers (Slack, email, webhook, PagerDuty), the
message they share (`render`), the alert policy (`policy`, pure), silences, delivery with
retries (`dispatch`) and the Kafka-backed ledger and silence store (`kafka_store`).

See docs/alerting.md.
"""
