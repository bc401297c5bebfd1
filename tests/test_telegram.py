"""The Telegram channel: message text, error classification, pacing, and delivery end to end."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence

import pytest
import requests
import responses

from keepalive.alerts import Alert, AlertKind
from keepalive.notifiers.base import NotifyError
from keepalive.notifiers.telegram import Pacer, TelegramNotifier, build_text, digest_capacity
from tests.fakes.delivery_fixtures import DeliveryHarness, make_alert
from tests.fakes.telegram_api import FakeTelegram, ParseError, Rule, render, utf16_len

TOKEN = "987654321:AAUnitTestTokenThatMustNeverLeak_abcdefgh"
API = "https://api.telegram.test"
SEND_URL = f"{API}/bot{TOKEN}/sendMessage"


def notifier(**options: object) -> TelegramNotifier:
    options.setdefault("per_chat_interval", 0.0)
    return TelegramNotifier(TOKEN, ["1"], API, **options)  # type: ignore[arg-type]


def failure(send: TelegramNotifier, alerts: Sequence[Alert] | None = None) -> NotifyError:
    with pytest.raises(NotifyError) as caught:
        send.send("1", alerts or [make_alert()])
    return caught.value


# -- the message text ------------------------------------------------------------------------------


def test_a_down_alert_names_the_target_url_state_reason_since_checks_and_host() -> None:
    assert build_text([make_alert("api", failed_checks=4)]) == (
        "🔴 <b>DOWN</b> · <b>api</b>\n"
        "<b>URL:</b> http://127.0.0.1:5004/api/health\n"
        "<b>Reason:</b> connection refused\n"
        "<b>Down since:</b> 2025-11-13 02:13:20 UTC\n"
        "<b>Failed checks:</b> 4\n"
        "<b>Monitor:</b> monitor-host"
    )


def test_a_recovery_says_how_long_the_target_was_down() -> None:
    assert build_text([make_alert("api", AlertKind.RECOVERED, "HTTP 503", downtime=3723)]) == (
        "✅ <b>RECOVERED</b> · <b>api</b>\n"
        "<b>URL:</b> http://127.0.0.1:5004/api/health\n"
        "<b>Last failure:</b> HTTP 503\n"
        "<b>Downtime:</b> 1 h 2 min\n"
        "<b>Down since:</b> 2025-11-13 02:13:20 UTC\n"
        "<b>Failed checks:</b> 2\n"
        "<b>Monitor:</b> monitor-host"
    )


def test_a_test_alert_is_marked_as_a_test() -> None:
    text = build_text([make_alert("api", AlertKind.TEST, "sent by --test-alert")])
    assert text.splitlines()[0] == "🧪 <b>TEST</b> · <b>api</b>"
    assert "<b>Reason:</b> sent by --test-alert" in text


def test_names_and_reasons_holding_html_are_escaped_so_they_render_as_text() -> None:
    alert = make_alert("<b>&\"'", reason="HTTP 502: <html><body>Bad Gateway & co</body></html>")

    text = build_text([alert])

    assert text.splitlines()[0] == "🔴 <b>DOWN</b> · <b>&lt;b&gt;&amp;&quot;&#x27;</b>"
    assert (
        "<b>Reason:</b> HTTP 502: &lt;html&gt;&lt;body&gt;Bad Gateway &amp; co&lt;/body&gt;&lt;/html&gt;"
        in text
    )
    assert render(text).splitlines()[0] == "🔴 DOWN · <b>&\"'"


def test_a_name_with_line_breaks_stays_on_its_line() -> None:
    text = build_text([make_alert("api\n<b>Reason:</b> fake\r\nline")])
    assert text.splitlines()[0] == "🔴 <b>DOWN</b> · <b>api &lt;b&gt;Reason:&lt;/b&gt; fake line</b>"


@pytest.mark.parametrize("char", ["&", "<", '"', "é", "🔥", "x"])
def test_a_very_long_reason_keeps_the_text_within_4096_and_never_splits_an_entity(char: str) -> None:
    text = build_text([make_alert(reason="start " + char * 6000)])

    assert utf16_len(text) <= 4096
    rendered = render(text)  # raises ParseError on a split entity or tag
    reason = next(line for line in rendered.splitlines() if line.startswith("Reason: "))
    assert reason.startswith("Reason: start " + char)
    assert reason.endswith("…")


def test_a_digest_lists_every_alert_when_they_fit() -> None:
    alerts = [make_alert("a"), make_alert("b", AlertKind.RECOVERED), make_alert("c")]
    assert build_text(alerts) == (
        "📋 <b>3 alerts</b> (DOWN x2, RECOVERED x1) from <b>monitor-host</b>\n"
        "\n"
        "🔴 <b>DOWN</b> <b>a</b> (http://127.0.0.1:5004/a/health): connection refused, "
        "since 2025-11-13 02:13:20 UTC, 2 failed checks\n"
        "✅ <b>RECOVERED</b> <b>b</b> (http://127.0.0.1:5004/b/health): down 5 min 3 s, "
        "last failure: connection refused\n"
        "🔴 <b>DOWN</b> <b>c</b> (http://127.0.0.1:5004/c/health): connection refused, "
        "since 2025-11-13 02:13:20 UTC, 2 failed checks"
    )


def test_a_digest_too_long_for_one_message_says_how_many_more() -> None:
    alerts = [make_alert(f"target-{i:03}-" + "&" * 60, reason="<" * 200) for i in range(200)]

    text = build_text(alerts)

    assert utf16_len(text) <= 4096
    lines = render(text).splitlines()
    listed = [line for line in lines if line.startswith("🔴 DOWN target-")]
    more = re.fullmatch(r"… and (\d+) more", lines[-1])
    assert more is not None
    assert len(listed) + int(more.group(1)) == 200
    assert listed[0].startswith("🔴 DOWN target-000-&&&")


def test_the_fakes_parser_rejects_what_telegram_rejects() -> None:
    for broken in ("a &amp b", "<b>x", "<script>x</script>", "1 < 2"):
        with pytest.raises(ParseError):
            render(broken)


# -- classification (narrow, with responses) -------------------------------------------------------


@responses.activate
def test_an_accepted_message_returns_its_id_and_posts_html_without_link_previews() -> None:
    responses.post(SEND_URL, json={"ok": True, "result": {"message_id": 4242}})

    assert notifier().send("1", [make_alert()]) == "4242"

    body = json.loads(responses.calls[0].request.body or b"")
    assert body["chat_id"] == "1"
    assert body["parse_mode"] == "HTML"
    assert body["link_preview_options"] == {"is_disabled": True}
    assert body["disable_web_page_preview"] is True
    assert body["text"] == build_text([make_alert()])


@pytest.mark.parametrize(
    ("status", "body", "reason", "permanent", "retry_after"),
    [
        (
            403,
            {"ok": False, "description": "Forbidden: bot was blocked by the user"},
            "Forbidden: bot was blocked by the user",
            True,
            None,
        ),
        (
            400,
            {"ok": False, "description": "Bad Request: chat not found"},
            "Bad Request: chat not found",
            True,
            None,
        ),
        (401, {"ok": False, "description": "Unauthorized"}, "Unauthorized", True, None),
        (
            429,
            {
                "ok": False,
                "description": "Too Many Requests: retry after 7",
                "parameters": {"retry_after": 7},
            },
            "Too Many Requests: retry after 7",
            False,
            7.0,
        ),
        (
            500,
            {"ok": False, "description": "Internal Server Error"},
            "HTTP 500: Internal Server Error",
            False,
            None,
        ),
        (502, "<html>Bad Gateway</html>", "HTTP 502", False, None),
        (200, {"ok": False, "description": "odd"}, "unexpected answer (ok is not true): odd", False, None),
    ],
    ids=["403-blocked", "400-chat-not-found", "401", "429", "500", "502-html", "200-not-ok"],
)
@responses.activate
def test_each_answer_is_classified_permanent_or_temporary_with_the_servers_reason(
    status: int, body: object, reason: str, permanent: bool, retry_after: float | None
) -> None:
    if isinstance(body, str):
        responses.post(SEND_URL, status=status, body=body)
    else:
        responses.post(SEND_URL, status=status, json=body)

    error = failure(notifier())

    assert (error.reason, error.permanent, error.retry_after) == (reason, permanent, retry_after)


@responses.activate
def test_a_timeout_is_temporary() -> None:
    responses.post(SEND_URL, body=requests.ReadTimeout(f"Read timed out. (url: {SEND_URL})"))

    error = failure(notifier(timeout=2.5))

    assert (error.reason, error.permanent) == ("timeout after 2.5 s", False)


@responses.activate
def test_a_connection_error_is_temporary_and_its_text_never_shows_the_token() -> None:
    text = f"HTTPSConnectionPool(host='api.telegram.test', port=443): Max retries exceeded with url: /bot{TOKEN}/sendMessage"
    responses.post(SEND_URL, body=requests.ConnectionError(text))

    error = failure(notifier())

    assert error.reason == (
        "connection error: HTTPSConnectionPool(host='api.telegram.test', port=443): "
        "Max retries exceeded with url: /bot***/sendMessage"
    )
    assert not error.permanent


@responses.activate
def test_a_token_of_any_shape_is_masked_in_reasons() -> None:
    odd_token = "77:odd"  # too short for scrub()'s token pattern
    url = f"{API}/bot{odd_token}/sendMessage"
    responses.post(url, body=requests.ConnectionError(f"failed for /bot{odd_token}/sendMessage"))

    error = failure(TelegramNotifier(odd_token, ["1"], API, per_chat_interval=0.0))

    assert error.reason == "connection error: failed for /bot***/sendMessage"


def test_the_pacer_spaces_one_chat_a_second_apart_and_all_chats_by_a_25th() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(per_chat=1.0, overall=25.0, clock=lambda: now[0], sleep=sleep)
    pacer.wait("a")
    pacer.wait("a")
    pacer.wait("b")

    assert slept == [pytest.approx(1.0), pytest.approx(0.04)]


@responses.activate
def test_the_notifier_paces_messages_to_the_same_chat() -> None:
    responses.post(SEND_URL, json={"ok": True, "result": {"message_id": 1}})
    slept: list[float] = []
    send = TelegramNotifier(TOKEN, ["1"], API, clock=lambda: 0.0, sleep=slept.append)

    send.send("1", [make_alert()])
    send.send("1", [make_alert()])

    assert slept == [1.0]


# -- end to end through the outbox and the fake Bot API ----------------------------------------------


@pytest.fixture
def deliver(fake_telegram: FakeTelegram, harness: DeliveryHarness) -> Delivery:
    return Delivery(fake_telegram, harness)


class Delivery:
    """The fake Bot API, and a harness that delivers to it without pacing."""

    def __init__(self, fake: FakeTelegram, harness: DeliveryHarness) -> None:
        self.fake = fake
        self.harness = harness
        self.outbox = harness.outbox
        self.events = harness.events
        self.named = harness.named

    def run(
        self, alerts: Sequence[Alert], chats: Sequence[str], timeout: float = 5.0, token: str = ""
    ) -> None:
        send = TelegramNotifier(
            token or self.fake.token, chats, self.fake.url, timeout=timeout, per_chat_interval=0.0
        )
        self.harness.run([send], alerts)


def statuses(fake: FakeTelegram, chat: str) -> list[int]:
    return [attempt.status for attempt in fake.attempts_to(chat)]


def test_429_is_honoured_and_nothing_is_sent_again_before_retry_after(deliver: Delivery) -> None:
    deliver.fake.too_many_requests(times=1, retry_after=1)

    deliver.run([make_alert()], ["7"])

    assert statuses(deliver.fake, "7") == [429, 200]
    refused, accepted = deliver.fake.attempts_to("7")
    assert accepted.time - refused.time >= 1.0
    assert len(deliver.fake.messages) == 1
    [retry] = deliver.named("alert_retry")
    assert (retry["reason"], retry["next_try_in"]) == ("Too Many Requests: retry after 1", 1.0)


def test_500_for_a_while_then_success_delivers_exactly_once(deliver: Delivery) -> None:
    deliver.fake.server_error(times=3)

    deliver.run([make_alert()], ["7"])

    assert statuses(deliver.fake, "7") == [500, 500, 500, 200]
    assert len(deliver.fake.messages) == 1
    assert [e["reason"] for e in deliver.named("alert_retry")] == ["HTTP 500: Internal Server Error"] * 3


def test_one_blocked_chat_does_not_stop_the_others_and_is_attempted_exactly_once(deliver: Delivery) -> None:
    deliver.fake.block("2")

    deliver.run([make_alert()], ["1", "2", "3"])

    assert [len(deliver.fake.messages_to(chat)) for chat in ("1", "2", "3")] == [1, 0, 1]
    assert statuses(deliver.fake, "2") == [403]
    assert deliver.outbox.counts() == {"pending": 0, "sent": 2, "failed": 1}
    [failed] = deliver.named("alert_failed")
    assert (failed["recipient"], failed["reason"]) == ("2", "Forbidden: bot was blocked by the user")


@pytest.mark.parametrize(
    ("rule", "reason"),
    [("400", "Bad Request: chat not found"), ("401", "Unauthorized"), ("wrong token", "Unauthorized")],
)
def test_a_refusal_is_recorded_failed_with_the_servers_reason(
    deliver: Delivery, rule: str, reason: str
) -> None:
    token = ""
    if rule == "wrong token":
        token = "111111111:AAWrongTokenWrongTokenWrongToken_xyz"
    else:
        deliver.fake.add_rule(Rule(rule), "9")

    deliver.run([make_alert()], ["9"], token=token)

    assert statuses(deliver.fake, "9") == ([] if token else [int(rule)])
    assert deliver.fake.messages == []
    [failed] = deliver.named("alert_failed")
    assert failed["reason"] == reason
    assert deliver.outbox.counts() == {"pending": 0, "sent": 0, "failed": 1}
    assert deliver.named("alert_retry") == []


def test_a_server_that_hangs_past_the_timeout_is_retried(deliver: Delivery) -> None:
    deliver.fake.hang(times=1)

    deliver.run([make_alert()], ["7"], timeout=0.3)

    assert statuses(deliver.fake, "7") == [0, 200]
    assert len(deliver.fake.messages) == 1
    assert [e["reason"] for e in deliver.named("alert_retry")] == ["timeout after 0.3 s"]


def test_html_in_a_name_and_a_reason_arrives_as_escaped_text(deliver: Delivery) -> None:
    alert = make_alert("<b>&\"'", reason="<i>oops</i> & more")

    deliver.run([alert], ["7"])

    [message] = deliver.fake.messages
    assert message.text.splitlines()[:3] == [
        "🔴 <b>DOWN</b> · <b>&lt;b&gt;&amp;&quot;&#x27;</b>",
        "<b>URL:</b> http://127.0.0.1:5004/&lt;b&gt;&amp;&quot;&#x27;/health",
        "<b>Reason:</b> &lt;i&gt;oops&lt;/i&gt; &amp; more",
    ]
    assert message.rendered.splitlines()[:3] == [
        "🔴 DOWN · <b>&\"'",
        "URL: http://127.0.0.1:5004/<b>&\"'/health",
        "Reason: <i>oops</i> & more",
    ]


def test_the_token_never_appears_in_reasons_events_logs_or_the_database(
    deliver: Delivery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = deliver.fake.token
    deliver.fake.server_error(times=1, chat="1")
    deliver.fake.hang(times=1, chat="2")
    deliver.fake.unauthorized(chat="3")

    deliver.run([make_alert()], ["1", "2", "3"], timeout=0.3)
    deliver.fake.stop()
    reasons = [failure(TelegramNotifier(token, ["1"], deliver.fake.url, per_chat_interval=0.0)).reason]

    assert [e["event"] for e in deliver.events.recent].count("alert_retry") == 2
    texts = [
        *reasons,
        json.dumps(deliver.events.recent),
        caplog.text,
        *(record.getMessage() for record in caplog.records),
    ]
    assert reasons == ["connection error: [Errno 111] Connection refused"]
    assert all(token not in text for text in texts)
    assert any("POST /bot***/sendMessage" in r.getMessage() for r in caplog.records), "urllib3 was not heard"
    assert token.encode() not in deliver.harness.database_bytes()


def test_digest_capacity_keeps_every_named_alert_within_the_limit() -> None:
    alerts = [make_alert(f"service-{i:02d}-" + "x" * 70, reason="y" * 140) for i in range(50)]
    fits = digest_capacity(alerts)
    assert 1 < fits < 50
    text = build_text(alerts[:fits])
    assert len(text.encode("utf-16-le")) // 2 <= 4096
    assert "more" not in text.splitlines()[-1]
    assert all(a.target[:20] in text for a in alerts[:fits])
    assert digest_capacity(alerts[:3]) == 3


def test_a_lone_surrogate_in_a_reason_cannot_break_the_message() -> None:
    text = build_text([make_alert("api", reason='status is "\ud800"')])
    text.encode("utf-8")  # would raise UnicodeEncodeError if the surrogate got through
    assert "status is &quot;\ufffd&quot;" in text
