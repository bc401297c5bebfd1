"""Alertmanager channel (SPEC 17) against a loopback stand-in for /api/v2/alerts: the postable
alert, each instance its own recipient through the outbox, leases renewed every 60 s and a
resolution re-sent for 5 minutes, resumed from the state directory after a restart."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from keepalive.alerts import Alert, AlertKind
from keepalive.engine.app import MonitorApp
from keepalive.notifiers.alertmanager import (
    RENEW_BATCH,
    RENEW_EVERY,
    RESOLVED_FOR,
    AlertmanagerNotifier,
    LeaseBook,
    LeaseRenewer,
    book_at,
    lease_seconds,
    postable,
)
from keepalive.notifiers.base import Notifier, NotifyError
from keepalive.notifiers.log import LogNotifier
from keepalive.targets import Target
from tests.fakes.delivery_fixtures import DeliveryHarness, make_alert
from tests.fakes.engine import ScriptedChecker, WallClock, targets_settings, toml_targets
from tests.fakes.webhook_receiver import WebhookReceiver

API = "/api/v2/alerts"
SINCE = 1_763_000_000.0  # make_alert's default outage start: 2025-11-13T02:13:20Z


def target(name: str = "api", interval: float = 10.0, **extra: object) -> Target:
    return Target(
        name=name,
        url=f"http://127.0.0.1:5004/{name}/health",
        interval=interval,
        failure_threshold=2,
        success_threshold=1,
        timeout=5.0,
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def am() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def test_a_down_alert_is_a_lease_with_the_same_labels_on_every_replica() -> None:
    t = target(severity="warning", labels=(("team", "payments"),))
    alert = make_alert("api", reason="HTTP 503")

    posted = postable(alert, t, "replica-a", now=SINCE + 90)
    other = postable(make_alert("api", reason="HTTP 503", host="other"), t, "replica-b", now=SINCE + 95)

    assert posted == {
        "labels": {
            "team": "payments",
            "alertname": "KeepAliveTargetDown",
            "target": "api",
            "severity": "warning",
        },
        "annotations": {
            "summary": "api is down",
            "reason": "HTTP 503",
            "url": "http://127.0.0.1:5004/api/health",
            "reporter": "replica-a",
        },
        "startsAt": "2025-11-13T02:13:20.000Z",
        "endsAt": "2025-11-13T02:18:50.000Z",  # now + 4 x max(10 s, 60 s)
        "generatorURL": "http://127.0.0.1:5004/api/health",
    }
    assert other["labels"] == posted["labels"]
    assert lease_seconds(10.0) == 240.0 and lease_seconds(120.0) == 480.0


def test_a_recovery_ends_at_the_recovery_time() -> None:
    alert = make_alert("api", AlertKind.RECOVERED)

    posted = postable(alert, target(), "replica-a", now=SINCE + 400)

    assert (posted["endsAt"], posted["annotations"]["summary"]) == (
        "2025-11-13T02:14:20.000Z",
        "api recovered",
    )
    assert posted["labels"]["severity"] == "critical"


def test_each_instance_is_its_own_recipient_and_one_down_does_not_hold_the_other(
    am: WebhookReceiver, harness: DeliveryHarness, tmp_path: Path
) -> None:
    with WebhookReceiver() as broken:
        broken.script([(503, {}), (500, {})])
        notifier = AlertmanagerNotifier(
            [am.url, broken.url + "/"], [target()], "replica-a", book=LeaseBook(None)
        )

        harness.run([notifier], [make_alert("api")])

        assert notifier.recipients() == (am.url, broken.url)
        assert len(am.received(API)) == 1
        assert len(broken.received(API)) == 3  # two refusals, then accepted
        assert [e["recipient"] for e in harness.named("alert_sent")] == [am.url, broken.url] or [
            e["recipient"] for e in harness.named("alert_sent")
        ] == [broken.url, am.url]
        assert notifier.book.firing() == {am.url: ["api"], broken.url: ["api"]}


def test_a_400_from_alertmanager_is_permanent(am: WebhookReceiver) -> None:
    am.script([(400, {})])
    notifier = AlertmanagerNotifier([am.url], [target()], "replica-a")
    with pytest.raises(NotifyError) as caught:
        notifier.send(am.url, [make_alert()])
    assert (caught.value.reason, caught.value.permanent) == ("HTTP 400: scripted failure", True)


def test_leases_are_renewed_every_minute_and_a_resolution_for_five_minutes(am: WebhookReceiver) -> None:
    clock = WallClock(SINCE + 60)
    book = LeaseBook(None, clock)
    notifier = AlertmanagerNotifier([am.url], [target()], "replica-a", book=book, clock=clock)

    notifier.send(am.url, [make_alert("api")])
    assert notifier.renew() == 0  # nothing due yet
    clock.now += RENEW_EVERY
    assert notifier.renew() == 1
    renewal = am.received(API)[-1].json()
    assert renewal[0]["endsAt"] == "2025-11-13T02:19:20.000Z"  # pushed out: now + 240 s
    assert notifier.renew() == 0  # renewed just now

    recovered = make_alert("api", AlertKind.RECOVERED)  # at SINCE + 60
    notifier.send(am.url, [recovered])
    assert book.firing() == {am.url: []}
    clock.now += RENEW_EVERY  # a minute after the resolution was accepted
    assert notifier.renew() == 1
    assert am.received(API)[-1].json()[0]["endsAt"] == "2025-11-13T02:14:20.000Z"
    clock.now = recovered.at + RESOLVED_FOR + 1
    assert notifier.renew() == 0  # five minutes on: forgotten
    assert len(am.received(API)) == 4


def test_an_older_alert_delivered_late_does_not_undo_a_newer_one(am: WebhookReceiver) -> None:
    book = LeaseBook(None)
    recovered = make_alert("api", AlertKind.RECOVERED)
    book.accepted(am.url, [recovered], SINCE + 70)
    book.accepted(am.url, [make_alert("api")], SINCE + 71)  # the DOWN, retried late

    assert book.firing() == {am.url: []}


def test_a_restart_resumes_the_leases_from_the_state_directory(am: WebhookReceiver, tmp_path: Path) -> None:
    clock = WallClock(SINCE + 60)
    both = [target("api"), target("web")]
    first = AlertmanagerNotifier(
        [am.url], both, "replica-a", book=LeaseBook(tmp_path / "leases.json", clock), clock=clock
    )
    first.send(am.url, [make_alert("api"), make_alert("web")])

    clock.now += RENEW_EVERY
    again = AlertmanagerNotifier(
        [am.url], both, "replica-a", book=LeaseBook(tmp_path / "leases.json", clock), clock=clock
    )
    assert again.renew() == 2
    assert sorted(a["labels"]["target"] for a in am.received(API)[-1].json()) == ["api", "web"]


def test_a_damaged_lease_file_starts_empty(tmp_path: Path) -> None:
    (tmp_path / "leases.json").write_text("{not json")
    assert LeaseBook(tmp_path / "leases.json").firing() == {}


def test_an_instance_removed_from_the_settings_gets_no_renewals(am: WebhookReceiver, tmp_path: Path) -> None:
    clock = WallClock(SINCE + 60)
    book = LeaseBook(None, clock)
    AlertmanagerNotifier([am.url], [target()], "a", book=book, clock=clock).send(am.url, [make_alert()])
    with WebhookReceiver() as other:
        after_reload = AlertmanagerNotifier([other.url], [target()], "a", book=book, clock=clock)
        clock.now += RENEW_EVERY
        assert after_reload.renew() == 0
        assert other.received() == []
    assert len(am.received()) == 1


def test_one_book_per_state_directory(tmp_path: Path) -> None:
    assert book_at(tmp_path) is book_at(tmp_path)
    assert book_at(tmp_path) is not book_at(tmp_path / "other")


def test_the_documented_alertmanager_config_is_valid() -> None:
    """docs/alertmanager/alertmanager.yml (routes to Telegram) passes amtool check-config."""
    amtool = shutil.which("amtool")
    if amtool is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("amtool is not installed (Debian's prometheus-alertmanager): required when CI=true")
        pytest.skip("amtool is not installed (apt-get install prometheus-alertmanager)")
    config = Path(__file__).resolve().parent.parent / "docs" / "alertmanager" / "alertmanager.yml"

    result = subprocess.run([amtool, "check-config", str(config)], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "telegram_configs" in config.read_text()


class HoldEverything:
    """An AlertPolicy (SPEC 13's seam) under which every alert is held, as a silence would."""

    def hold(self, alert: Alert, target: Target) -> str | None:
        return "silence test"


@pytest.mark.parametrize("held", [False, True], ids=["notified", "held-by-a-silence"])
def test_on_the_engine_an_outage_reaches_every_instance_unless_a_silence_holds_it(
    am: WebhookReceiver, tmp_path: Path, held: bool
) -> None:
    """The real composition root with the factory's channels: a held alert never reaches
    Alertmanager (the policy decides before the outbox), a notified one reaches each instance."""
    with WebhookReceiver() as second:
        settings = targets_settings(
            tmp_path,
            toml_targets(
                {"name": "api", "url": "http://api.example/health", "interval": 0.1, "failure_threshold": 1}
            ),
            ALERTMANAGER_URLS=f"{am.url},{second.url}",
            MONITOR_NAME="replica-a",
            REPEAT_ALERTS="false",
        )
        checker = ScriptedChecker(time.time)
        checker.verdicts["api"] = "HTTP 503"
        app = MonitorApp.build(settings, checker=checker, alert_policy=HoldEverything() if held else None)

        async def go() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(app.run(stop))
            async with asyncio.timeout(20):
                while not any(e["event"] in ("alert_held", "alert_sent") for e in app.events.recent):
                    await asyncio.sleep(0.02)
                if not held:
                    while len([e for e in app.events.recent if e["event"] == "alert_sent"]) < 3:
                        await asyncio.sleep(0.02)  # log, and both instances
            stop.set()
            await task

        try:
            asyncio.run(go())
        finally:
            app.close()
        if held:
            assert am.received() == [] and second.received() == []
            assert [e["why"] for e in app.events.recent if e["event"] == "alert_held"] == ["silence test"]
        else:
            for instance in (am, second):
                (posted,) = instance.received(API)
                (alert,) = posted.json()
                assert alert["labels"] == {
                    "alertname": "KeepAliveTargetDown",
                    "target": "api",
                    "severity": "critical",
                }
                assert (alert["annotations"]["reporter"], alert["annotations"]["reason"]) == (
                    "replica-a",
                    "HTTP 503",
                )
            assert book_at(settings.state_dir).firing() == {am.url: ["api"], second.url: ["api"]}


def test_a_target_no_longer_checked_here_is_not_renewed(am: WebhookReceiver) -> None:
    clock = WallClock(SINCE + 60)
    book = LeaseBook(None, clock)
    AlertmanagerNotifier([am.url], [target("api"), target("web")], "a", book=book, clock=clock).send(
        am.url, [make_alert("api"), make_alert("web")]
    )
    # A reload moved "web" to another replica's share (or removed it from the file).
    after_reload = AlertmanagerNotifier([am.url], [target("api")], "a", book=book, clock=clock)
    clock.now += RENEW_EVERY

    assert after_reload.renew() == 1
    assert [a["labels"]["target"] for a in am.received(API)[-1].json()] == ["api"]
    assert book.firing() == {am.url: ["api"]}


def test_the_renewer_thread_renews_through_the_current_notifiers(am: WebhookReceiver) -> None:
    clock = WallClock(SINCE + 60)
    notifier = AlertmanagerNotifier([am.url], [target()], "a", book=LeaseBook(None, clock), clock=clock)
    notifier.send(am.url, [make_alert()])
    clock.now += RENEW_EVERY
    current: list[Notifier] = [LogNotifier(), notifier]
    renewer = LeaseRenewer(lambda: current, period=0.01)
    renewer.start()
    try:
        am.wait_count(2, API)
    finally:
        renewer.stop()
        renewer.join(5)
    assert not renewer.is_alive()
    assert am.received(API)[1].json()[0]["labels"]["target"] == "api"


def test_a_renewal_read_before_a_recovery_was_sent_is_not_sent_after_it(am: WebhookReceiver) -> None:
    """renew() reads what is due, then sends under the instance's guard: a RECOVERED sent in
    between replaces the DOWN, whose renewal would otherwise fire the alert again."""
    clock = WallClock(SINCE + 60)
    book = LeaseBook(None, clock)
    notifier = AlertmanagerNotifier([am.url], [target()], "a", book=book, clock=clock)
    down = make_alert("api")
    notifier.send(am.url, [down])
    clock.now += RENEW_EVERY
    due = book.due(clock())[am.url]
    notifier.send(am.url, [make_alert("api", AlertKind.RECOVERED, sequence=0)])

    assert due == [down]
    assert book.current(am.url, due) == []


def test_a_certificate_running_out_is_posted_once_as_its_own_alertname_never_leased(
    am: WebhookReceiver,
) -> None:
    expiring = replace(make_alert("api"), kind=AlertKind.EXPIRING, reason="certificate expires in 6 days")
    clock = WallClock(expiring.at)
    book = LeaseBook(None, clock)
    notifier = AlertmanagerNotifier([am.url], [target()], "a", book=book, clock=clock)

    notifier.send(am.url, [expiring])

    (posted,) = am.received(API)[0].json()
    assert posted["labels"] == {
        "alertname": "KeepAliveCertificateExpiring",
        "target": "api",
        "severity": "warning",
    }
    assert (posted["startsAt"], posted["endsAt"]) == ("2025-11-13T02:14:20.000Z", "2025-11-13T02:19:20.000Z")
    clock.now += RENEW_EVERY
    assert notifier.renew() == 0 and book.firing() == {am.url: []}


def test_many_leases_are_renewed_in_bounded_requests(am: WebhookReceiver) -> None:
    clock = WallClock(SINCE + 60)
    names = [f"t{i}" for i in range(RENEW_BATCH + 20)]
    notifier = AlertmanagerNotifier(
        [am.url], [target(n) for n in names], "a", book=LeaseBook(None, clock), clock=clock
    )
    notifier.send(am.url, [make_alert(n) for n in names])
    clock.now += RENEW_EVERY

    assert notifier.renew() == len(names)
    sizes = [len(r.json()) for r in am.received(API)]
    assert sizes == [len(names), RENEW_BATCH, 20]
