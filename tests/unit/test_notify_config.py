"""Receivers from the watchlist: options checked, secrets only from env or files."""

from __future__ import annotations

import pytest

from pipeline.notify.config import build_receivers
from pipeline.notify.settings import AlertSettings
from pipeline.watchlist import WatchlistError, parse_watchlist

BRANDS = """
brands:
  - id: acme
    name: ACME
    owners:
      - {name: PR, receivers: [r], min_severity: warning}
"""


def receivers(receiver_yaml: str, env=None, path="/etc/vigie/watchlist.yaml"):
    text = "version: 1\nreceivers:\n  r:\n" + receiver_yaml + BRANDS
    watchlist = parse_watchlist(text, path)
    return build_receivers(watchlist.receivers, AlertSettings(timeout_s=3), env or {})


def error_of(receiver_yaml: str, env=None, path="/etc/vigie/watchlist.yaml") -> str:
    with pytest.raises(WatchlistError) as caught:
        receivers(receiver_yaml, env, path)
    return str(caught.value)


def test_all_four_types_from_env_and_files(tmp_path):
    (tmp_path / "pd.key").write_text("pd-routing-key\n")
    path = str(tmp_path / "watchlist.yaml")
    env = {"SLACK_URL": "https://hooks.slack.example/services/T/B/x", "HOOK": "hk", "PW": "pw"}
    slack = receivers("    type: slack\n    url_env: SLACK_URL\n", env)["r"]
    assert slack.url.reveal() == env["SLACK_URL"] and "hooks" not in repr(slack)
    hook = receivers(
        '    type: webhook\n    url: "http://127.0.0.1:9/h"\n    secret_env: HOOK\n', env
    )["r"]
    assert hook.secret.reveal() == "hk"
    pd = receivers("    type: pagerduty\n    routing_key_file: pd.key\n", env, path)["r"]
    assert pd.routing_key.reveal() == "pd-routing-key"  # file relative to the watchlist
    assert pd.url == "https://events.pagerduty.com/v2/enqueue"
    mail = receivers(
        "    type: email\n    to: [a@x.example, b@x.example]\n    from: v@x.example\n"
        "    security: starttls\n    username: vigie\n    password_env: PW\n",
        env,
    )["r"]
    assert mail.to == ("a@x.example", "b@x.example") and mail.port == 587
    assert mail.password.reveal() == "pw" and mail.timeout_s == 3
    assert "pw" not in repr(mail).replace("password", "")


def test_errors_name_file_line_and_field():
    message = error_of("    type: slack\n    url: https://hooks.slack.example/services/x\n")
    assert message.startswith("/etc/vigie/watchlist.yaml:5:5: receivers.r.url: is a secret")
    assert "hooks.slack.example" not in message
    assert "receivers.r.url_env: environment variable NOPE is not set" in error_of(
        "    type: slack\n    url_env: NOPE\n"
    )
    assert "receivers.r.routing_key_env: is required" in error_of("    type: pagerduty\n")
    assert "receivers.r.security: must be one of none, starttls, tls" in error_of(
        "    type: email\n    to: a@x.example\n    from: v@x.example\n    security: ssl\n"
    )
    assert "receivers.r.to: not an email address" in error_of(
        '    type: email\n    to: ["a@x.example\\r\\nBcc: e@evil.example"]\n    from: v@x.example\n'
    )
    assert "receivers.r.chanel: unknown option" in error_of(
        "    type: slack\n    url_env: U\n    chanel: '#pr'\n", {"U": "https://h.example/x"}
    )
    assert "receivers.r.url_file: cannot read /nonexistent/slack" in error_of(
        "    type: slack\n    url_file: /nonexistent/slack\n"
    )
    assert "receivers.r.url: must be an http:// or https:// URL" in error_of(
        "    type: webhook\n    url: file:///etc/passwd\n    secret_env: S\n", {"S": "s"}
    )


def test_a_misspelt_option_is_unknown_with_a_suggestion_not_a_missing_one():
    message = error_of("    type: slack\n    url_evn: SLACK_URL\n")
    assert message == ("/etc/vigie/watchlist.yaml:5:5: receivers.r.url_evn: unknown option "
                       "'url_evn', did you mean 'url_env'?")


def test_a_misspelt_option_is_reported_at_its_own_line():
    message = error_of(
        "    type: email\n    to: a@x.example\n    from: v@x.example\n    username: vigie\n"
        "    pasword_env: PW\n", {"PW": "pw"})
    assert message == ("/etc/vigie/watchlist.yaml:8:5: receivers.r.pasword_env: unknown "
                       "option 'pasword_env', did you mean 'password_env'?")


def test_every_receiver_is_checked_and_every_typo_listed():
    text = ("version: 1\nreceivers:\n"
            "  a: {type: slack, url_evn: X}\n"
            "  b: {type: pagerduty, routing_key_env: UNSET, urll: 'https://x.example'}\n"
            "  c: {type: webhook, url: 'https://h.example', secret_env: S, colour: red}\n"
            + BRANDS.replace("[r]", "[a, b, c]"))
    watchlist = parse_watchlist(text, "w.yaml")
    with pytest.raises(WatchlistError) as caught:
        build_receivers(watchlist.receivers, AlertSettings(), {"S": "s"})
    assert [str(problem) for problem in caught.value.problems] == [
        "w.yaml:3:20: receivers.a.url_evn: unknown option 'url_evn', did you mean 'url_env'?",
        "w.yaml:4:48: receivers.b.urll: unknown option 'urll', did you mean 'url'?",
        "w.yaml:4:24: receivers.b.routing_key_env: environment variable UNSET is not set",
        "w.yaml:5:63: receivers.c.colour: unknown option 'colour' (expected one of: secret,"
        " secret_env, secret_file, signature, url, url_env, url_file)",
    ]


def test_a_slack_receiver_with_a_bot_token_threads_with_the_web_api():
    from pipeline.notify.slack_bot import SlackBotReceiver

    env = {"BOT": "xoxb-1-2-secret", "U": "https://hooks.slack.example/services/T/B/x"}
    bot = receivers("    type: slack\n    token_env: BOT\n    channel: '#crisis'\n", env)["r"]
    assert isinstance(bot, SlackBotReceiver) and bot.channel == "#crisis"
    assert bot.token.reveal() == "xoxb-1-2-secret" and "secret" not in repr(bot)
    assert bot.api_url == "https://slack.com/api/"
    assert "receivers.r.token: give a webhook url or a bot token, not both" in error_of(
        "    type: slack\n    token_env: BOT\n    url_env: U\n    channel: C01\n", env)
    assert "receivers.r.channel: is required" in error_of(
        "    type: slack\n    token_env: BOT\n", env)
    assert "receivers.r.api_url: must be an http:// or https:// URL" in error_of(
        "    type: slack\n    token_env: BOT\n    channel: C01\n    api_url: ftp://x\n", env)
    inline = error_of("    type: slack\n    token: xoxb-inline\n    channel: C01\n", env)
    assert "receivers.r.token: is a secret" in inline and "xoxb-inline" not in inline
