"""Alert delivery through the whole monitor (subprocess): a fake Bot API and a real SMTP server
(aiosmtpd) on loopback, outages, a notifier outage with SIGKILL, digests, and secrets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.smtp_server import FakeSMTP
from tests.fakes.targets import TargetServer
from tests.fakes.telegram_api import FakeTelegram
from tests.monitor_proc import MonitorProcess, base_env, run_cli, wait_until

pytestmark = pytest.mark.slow

CHATS = ("1001", "1002")
MAILS = ("ops@example.test", "oncall@example.test")
PASSWORD = "smtp-secret-pw"


@pytest.fixture
def server() -> Iterator[TargetServer]:
    with TargetServer() as srv:
        yield srv


def delivery_env(tmp_path: Path, telegram: FakeTelegram, smtp: FakeSMTP, **overrides: str) -> dict[str, str]:
    settings = {
        "CHECK_INTERVAL_SECONDS": "0.2",
        "REQUEST_TIMEOUT": "2",
        "FAILURE_THRESHOLD": "2",
        "REPEAT_ALERTS": "false",
        "TELEGRAM_BOT_TOKEN": telegram.token,
        "TELEGRAM_CHAT_ID": ",".join(CHATS),
        "TELEGRAM_API_URL": telegram.url,
        "SMTP_SERVER": "127.0.0.1",
        "SMTP_PORT": str(smtp.port),
        "SMTP_SECURITY": "none",
        "SMTP_USERNAME": "user",
        "SMTP_PASSWORD": PASSWORD,
        "EMAIL_SENDER": "monitor@example.test",
        "EMAIL_RECIPIENT": ",".join(MAILS),
    }
    return base_env(tmp_path, **{**settings, **overrides})


def saved_status(tmp_path: Path, url: str) -> str | None:
    """The status the state file records for the target at ``url``, or None if none yet."""
    try:
        saved = json.loads((tmp_path / "state" / "state.json").read_text())
    except FileNotFoundError:
        return None
    found = [t["status"] for t in saved["targets"].values() if t["url"] == url]
    return found[0] if found else None


def everything_written(tmp_path: Path) -> bytes:
    """Every byte the monitor left on disk: log, events, state and outbox (with its WAL)."""
    return b"".join(p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file())


def test_an_outage_and_recovery_reach_every_recipient_once(
    tmp_path: Path, server: TargetServer, fake_telegram: FakeTelegram, fake_smtp: FakeSMTP
) -> None:
    env = delivery_env(tmp_path, fake_telegram, fake_smtp, HEALTH_CHECK_URL=server.url("game"))
    mon = MonitorProcess(tmp_path, env).start()
    try:
        server.wait_for_requests("game", 1)
        server.set_mode("game", "http503")
        assert fake_telegram.wait_for_messages(2)
        assert fake_smtp.wait_for_messages(2)
        server.set_mode("game", "ok")
        assert fake_telegram.wait_for_messages(4)
        assert fake_smtp.wait_for_messages(4)
        mon.wait_event("alert_sent", count=2 * (len(CHATS) + len(MAILS) + 1))  # + the log channel
    finally:
        assert mon.stop() == 0
    for chat in CHATS:
        texts = [m.rendered for m in fake_telegram.messages_to(chat)]
        assert len(texts) == 2
        assert "DOWN" in texts[0] and "HTTP 503" in texts[0] and server.url("game") in texts[0]
        assert "RECOVERED" in texts[1]
    for address in MAILS:
        subjects = [m["Subject"] for m in fake_smtp.messages_to(address)]
        assert len(subjects) == 2
        assert subjects[0].startswith("[DOWN] ") and subjects[1].startswith("[RECOVERED] ")
    assert len(fake_telegram.attempts) == 4  # nothing was sent twice
    written = everything_written(tmp_path)
    assert fake_telegram.token.encode() not in written
    assert PASSWORD.encode() not in written


def test_an_alert_survives_a_notifier_outage_and_a_sigkill_and_arrives_once(
    tmp_path: Path, server: TargetServer, fake_telegram: FakeTelegram, fake_smtp: FakeSMTP
) -> None:
    fake_telegram.server_error(times=None)  # Telegram answers 500 until told otherwise
    fake_smtp.tempfail(times=1000)  # and the mail server says 451
    server.set_mode("db", "reset")
    env = delivery_env(tmp_path, fake_telegram, fake_smtp, HEALTH_CHECK_URL=server.url("db"))
    first = MonitorProcess(tmp_path, env).start()
    try:
        first.wait_event("target_down")
        retries = first.wait_event("alert_retry", count=len(CHATS) + len(MAILS))
        assert {r["reason"] for r in retries if r["channel"] == "telegram"} == {
            "HTTP 500: Internal Server Error"
        }
        assert all(r["next_try_in"] > 0 for r in retries)
        # The state file is saved just after the alert is queued (the monitor does not wait for
        # it before delivering): without it on disk, the restart would raise the DOWN again.
        wait_until(lambda: saved_status(tmp_path, server.url("db")) == "down", what="the DOWN state saved")
    finally:
        first.kill()  # SIGKILL: no chance to save anything more
    assert fake_telegram.messages == []

    fake_telegram.reset()
    fake_smtp.tempfail(times=0)
    second = MonitorProcess(tmp_path, env).start()
    try:
        assert fake_telegram.wait_for_messages(len(CHATS), timeout=30)
        assert fake_smtp.wait_for_messages(len(MAILS), timeout=30)
        # Recover the target: its RECOVERED alert comes after the DOWN in each queue, so once it
        # has arrived nothing of the DOWN alert can still be on its way.
        server.set_mode("db", "ok")
        assert fake_telegram.wait_for_messages(2 * len(CHATS), timeout=30)
        assert fake_smtp.wait_for_messages(2 * len(MAILS), timeout=30)
        assert len(second.events("target_down")) == 1  # the restart did not re-announce
    finally:
        assert second.stop() == 0
    for chat in CHATS:
        assert ["DOWN" in m.rendered for m in fake_telegram.messages_to(chat)] == [True, False]
    for address in MAILS:
        subjects = [m["Subject"] for m in fake_smtp.messages_to(address)]
        assert [s.split()[0] for s in subjects] == ["[DOWN]", "[RECOVERED]"]


def test_one_blocked_chat_fails_for_good_while_the_others_get_theirs(
    tmp_path: Path, server: TargetServer, fake_telegram: FakeTelegram, fake_smtp: FakeSMTP
) -> None:
    fake_telegram.block(CHATS[0])
    server.set_mode("bot", "http500")
    env = delivery_env(tmp_path, fake_telegram, fake_smtp, HEALTH_CHECK_URL=server.url("bot"))
    mon = MonitorProcess(tmp_path, env).start()
    try:
        (failed,) = mon.wait_event("alert_failed")
        assert failed["reason"] == "Forbidden: bot was blocked by the user"
        assert failed["recipient"] == CHATS[0]
        assert fake_telegram.wait_for_messages(1)
        assert fake_smtp.wait_for_messages(len(MAILS))
        server.set_mode("bot", "ok")
        mon.wait_event("target_recovered")
        assert fake_telegram.wait_for_messages(2)
        mon.wait_event("alert_failed", count=2)
    finally:
        mon.stop()
    assert len(fake_telegram.messages_to(CHATS[1])) == 2
    # Each alert was tried once at the blocked chat: a permanent refusal is not retried.
    assert len(fake_telegram.attempts_to(CHATS[0])) == 2


def test_twenty_targets_failing_together_send_one_digest_per_recipient(
    tmp_path: Path, server: TargetServer, fake_telegram: FakeTelegram, fake_smtp: FakeSMTP
) -> None:
    names = [f"svc-{i:02d}" for i in range(20)]
    targets = tmp_path / "targets.toml"
    targets.write_text(
        "[defaults]\ninterval = 60\nfailure_threshold = 1\ntimeout = 2\n"
        + "".join(f'[[targets]]\nname = "{n}"\nurl = "{server.url(n)}"\n' for n in names)
    )
    for name in names:
        server.set_mode(name, "http503")
    # The alerts are raised within a fraction of a second and the outbox's group wait gathers
    # them, but on a loaded machine a straggler could miss it (a slow fsync in the flush is
    # enough). So every try at each recipient fails until all twenty alerts are in the outbox
    # and each recipient has been refused once: the retry then carries all twenty, one digest.
    for chat in CHATS:
        fake_telegram.server_error(times=None, chat=chat)
    fake_smtp.tempfail(times=1000)
    env = delivery_env(tmp_path, fake_telegram, fake_smtp, MONITOR_TARGETS_FILE=str(targets))
    mon = MonitorProcess(tmp_path, env).start()

    def digests() -> list[dict[str, Any]]:
        return [e for e in mon.events("alert_sent") if e["channel"] != "log"]

    try:
        mon.wait_event("target_down", count=20)
        mon.wait_event("alert_queued", count=20)
        refused = {f"telegram:{chat}" for chat in CHATS} | {f"email:{address}" for address in MAILS}
        wait_until(
            lambda: refused <= {f"{e['channel']}:{e['recipient']}" for e in mon.events("alert_retry")},
            what="a refused first try at every recipient",
        )
        fake_telegram.reset()
        fake_smtp.tempfail(times=0)
        assert fake_telegram.wait_for_messages(len(CHATS), timeout=20)
        assert fake_smtp.wait_for_messages(len(MAILS), timeout=20)
        # A channel's alert_sent is written just after the server accepted the message; the log
        # channel's own events must not stand in for them.
        wait_until(lambda: len(digests()) >= len(CHATS) + len(MAILS), what="the digests' alert_sent events")
    finally:
        mon.stop()
    for chat in CHATS:
        (message,) = fake_telegram.messages_to(chat)
        assert all(name in message.rendered for name in names)
    for address in MAILS:
        (mail,) = fake_smtp.messages_to(address)
        assert "20 alerts" in mail["Subject"]
    assert all(e["attempt"] >= 2 for e in digests())
    assert sorted(e["digest_size"] for e in digests()) == [20] * (len(CHATS) + len(MAILS))


def test_a_hostile_target_name_is_escaped_in_telegram_and_cannot_inject_a_mail_header(
    tmp_path: Path, server: TargetServer, fake_telegram: FakeTelegram, fake_smtp: FakeSMTP
) -> None:
    name = "<b>&\"'\r\nBcc: victim@example.test"
    targets = tmp_path / "targets.toml"
    targets.write_text(
        f'[[targets]]\nname = {json.dumps(name)}\nurl = "{server.url("evil")}"\ninterval = 0.2\nfailure_threshold = 1\n'
    )
    server.set_mode("evil", "ok", payload={"status": "<i>broken</i> & more"})
    env = delivery_env(tmp_path, fake_telegram, fake_smtp, MONITOR_TARGETS_FILE=str(targets))
    mon = MonitorProcess(tmp_path, env).start()
    try:
        assert fake_telegram.wait_for_messages(len(CHATS))
        assert fake_smtp.wait_for_messages(len(MAILS))
    finally:
        mon.stop()
    message = fake_telegram.messages_to(CHATS[0])[0]
    assert "<b>&lt;b&gt;&amp;&quot;&#x27; Bcc: victim@example.test</b>" in message.text
    assert "status is &quot;&lt;i&gt;broken&lt;/i&gt; &amp; more&quot;" in message.text
    assert "<i>" not in message.text
    assert 'status is "<i>broken</i> & more"' in message.rendered
    for received in fake_smtp.received:
        assert len(received.rcpt_tos) == 1
        assert "victim@example.test" not in received.rcpt_tos
    mail = fake_smtp.messages_to(MAILS[0])[0]
    assert mail["Bcc"] is None
    assert "\n" not in mail["Subject"] and "\r" not in mail["Subject"]


def test_test_alert_reports_each_recipient_and_exits_0_when_all_delivered(
    tmp_path: Path, fake_telegram: FakeTelegram, fake_smtp: FakeSMTP
) -> None:
    result = run_cli(["--test-alert"], delivery_env(tmp_path, fake_telegram, fake_smtp))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "channels on=[log, telegram, email] off=[]"
    for recipient in ("log", *CHATS, *MAILS):
        assert any(recipient in line and ": delivered" in line for line in lines), recipient
    assert len(fake_telegram.messages) == len(CHATS)
    assert "TEST" in fake_telegram.messages[0].rendered
    assert len(fake_smtp.received) == len(MAILS)


def test_test_alert_exits_1_with_the_servers_reason_when_a_recipient_fails(
    tmp_path: Path, fake_telegram: FakeTelegram, fake_smtp: FakeSMTP
) -> None:
    fake_telegram.block(CHATS[1])
    fake_smtp.fail_auth()
    result = run_cli(["--test-alert"], delivery_env(tmp_path, fake_telegram, fake_smtp))
    assert result.returncode == 1
    out = result.stdout
    assert f"telegram  {CHATS[0]}: delivered" in out
    assert f"telegram  {CHATS[1]}: FAILED (permanent): Forbidden: bot was blocked by the user" in out
    assert f"email     {MAILS[0]}: FAILED (permanent): " in out
    assert fake_telegram.token not in out + result.stderr
    assert PASSWORD not in out + result.stderr


def test_test_alert_with_only_the_log_channel_succeeds(tmp_path: Path) -> None:
    result = run_cli(["--test-alert"], base_env(tmp_path))
    assert result.returncode == 0
    assert "log       log: delivered" in result.stdout


def test_a_status_with_a_lone_surrogate_is_still_announced_and_recovered(
    tmp_path: Path, server: TargetServer, fake_telegram: FakeTelegram, fake_smtp: FakeSMTP
) -> None:
    # {"status": "\ud800"} is valid JSON whose string cannot be encoded as UTF-8.
    server.set_mode("odd", "ok", payload={"status": "\ud800"})
    env = delivery_env(tmp_path, fake_telegram, fake_smtp, HEALTH_CHECK_URL=server.url("odd"))
    mon = MonitorProcess(tmp_path, env).start()
    try:
        (down,) = mon.wait_event("target_down")
        assert down["reason"] == 'status is "\ufffd"'
        assert fake_telegram.wait_for_messages(len(CHATS))
        server.set_mode("odd", "ok")
        assert fake_telegram.wait_for_messages(2 * len(CHATS))
        assert fake_smtp.wait_for_messages(2 * len(MAILS))
    finally:
        mon.stop()
