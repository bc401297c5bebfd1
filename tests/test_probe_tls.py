"""TLS certificates (SPEC section 14): a real https target with certificates made in the test
from a private CA (expiring in 5 days, expired yesterday, renewed), the EXPIRING rules fed
through the real Monitor, and the whole chain in a running monitor."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from keepalive.alerts import AlertKind, alert_id
from keepalive.config import Settings
from keepalive.engine.app import MonitorApp
from keepalive.engine.monitor import Monitor
from keepalive.errors import ConfigError
from keepalive.events import EventLog, iso
from keepalive.expiry import DAY, expiry_step, time_left
from keepalive.notifiers.log import LogNotifier
from keepalive.policy.silences import SilenceBook
from keepalive.probe.checker import Checker, CheckResult
from keepalive.probe.detail import Detail
from keepalive.targets import Target, load_targets_file
from tests.fakes.clock import ManualTimers
from tests.fakes.engine import FlakyStore, IdleWorker, MemoryOutbox, WallClock, targets_settings, toml_targets
from tests.fakes.tls_target import PrivateCA, TlsTarget, days_from_now, not_after_of
from tests.monitor_proc import free_port

BASE = {"interval": 60.0, "failure_threshold": 2, "success_threshold": 1, "timeout": 5.0}


def https_target(url: str, ca_file: Path | None, **options: object) -> Target:
    return Target(
        name="shop", url=url, interval=1.0, failure_threshold=1, success_threshold=1, timeout=5.0,
        tls_ca_file=str(ca_file) if ca_file is not None else None, **options,  # type: ignore[arg-type]
    )  # fmt: skip


def check(*targets: Target) -> tuple[list[CheckResult], Checker]:
    async def run() -> tuple[list[CheckResult], Checker]:
        checker = Checker()
        try:
            return [await checker.check(t) for t in targets], checker
        finally:
            await checker.close()

    return asyncio.run(run())


@pytest.fixture()
def ca(tmp_path: Path) -> PrivateCA:
    return PrivateCA(tmp_path)


def test_a_certificate_from_a_trusted_private_ca_passes_and_its_expiry_is_learned(ca: PrivateCA) -> None:
    cert, key = ca.issue(days_from_now(5))
    with TlsTarget(cert, key) as server:
        target = https_target(server.url, ca.ca_file)
        (first, second), _ = check(target, target)
        # One handshake for the first check's GET, one to read the certificate, one for the
        # second GET: the certificate is looked at once an hour, not once a check.
        assert server.connections == 3
    assert (first.ok, first.reason) == (True, None)
    assert first.detail is not None and first.detail.cert_expires_at == not_after_of(cert)
    assert second.detail == first.detail
    assert first.detail.cert_fingerprint is not None and len(first.detail.cert_fingerprint) == 64


def test_an_expired_certificate_fails_the_check(ca: PrivateCA) -> None:
    cert, key = ca.issue(days_from_now(-1))
    with TlsTarget(cert, key) as server:
        (result,), _ = check(https_target(server.url, ca.ca_file))
    assert (result.ok, result.reason) == (False, "TLS error: certificate expired")
    assert result.detail is None


def test_a_certificate_from_an_unknown_ca_is_untrusted(ca: PrivateCA) -> None:
    cert, key = ca.issue(days_from_now(30))
    with TlsTarget(cert, key) as server:
        (result,), _ = check(https_target(server.url, None))
    assert (result.ok, result.reason) == (False, "TLS error: untrusted certificate")


def test_with_cert_warn_days_empty_the_certificate_is_not_looked_at(ca: PrivateCA) -> None:
    cert, key = ca.issue(days_from_now(5))
    with TlsTarget(cert, key) as server:
        (result,), _ = check(https_target(server.url, ca.ca_file, cert_warn_days=()))
        assert server.connections == 1
    assert (result.ok, result.detail) == (True, None)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('url = "https://x/health"\ntls_ca_file = "/nonexistent/ca.pem"\n',
         "tls_ca_file='/nonexistent/ca.pem' is invalid: the file does not exist"),
        ('url = "http://x/health"\ntls_ca_file = "CA"\n', "tls_ca_file applies to https:// targets only"),
        ('url = "https://x/health"\ncert_warn_days = [14, 0]\n',
         "cert_warn_days=[14, 0] is invalid: expected a list of whole days from 1 to 3650, e.g. [14, 3] "
         "([] turns expiry warnings off)"),
        ('url = "https://x/health"\ncert_warn_days = 7\n',
         "cert_warn_days=7 is invalid: expected a list of whole days from 1 to 3650, e.g. [14, 3] "
         "([] turns expiry warnings off)"),
    ],
)  # fmt: skip
def test_bad_tls_keys_are_config_errors_naming_the_target(tmp_path: Path, body: str, problem: str) -> None:
    ca = PrivateCA(tmp_path)
    path = tmp_path / "targets.toml"
    path.write_text('[[targets]]\nname = "shop"\n' + body.replace('"CA"', json.dumps(str(ca.ca_file))))
    with pytest.raises(ConfigError) as caught:
        load_targets_file(path, BASE)
    assert str(caught.value) == f"MONITOR_TARGETS_FILE {path}: target 'shop': {problem}"


def test_a_file_that_is_not_pem_is_refused_at_load(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    path = tmp_path / "targets.toml"
    path.write_text(
        f'[[targets]]\nname = "shop"\nurl = "https://x/health"\ntls_ca_file = "{tmp_path / "ca.pem"}"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_targets_file(path, BASE)
    assert str(caught.value).startswith(
        f"MONITOR_TARGETS_FILE {path}: target 'shop': tls_ca_file='{tmp_path / 'ca.pem'}' is invalid: no PEM certificate"
    )


# ---------------------------------------------------------------- the EXPIRING rules

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("days_left", "warned", "announced"),
    [
        (20.0, None, None),
        (13.9, None, 14),
        (2.5, None, 3),  # both crossed at first sight: one, naming the lowest
        (13.0, 14, None),  # already announced
        (2.0, 14, 3),
        (1.0, 3, None),
        (-0.1, None, None),  # expired: the check fails instead
    ],
)
def test_expiry_step(days_left: float, warned: int | None, announced: int | None) -> None:
    from keepalive.expiry import Warned

    before = Warned("f1", warned) if warned is not None else None
    _, threshold = expiry_step(before, "f1", NOW + days_left * DAY, NOW, (14, 3))
    assert threshold == announced


def test_a_renewed_certificate_starts_again() -> None:
    from keepalive.expiry import Warned

    after, threshold = expiry_step(Warned("old", 3), "new", NOW + 10 * DAY, NOW, (14, 3))
    assert (after, threshold) == (Warned("new", 14), 14)


@pytest.mark.parametrize(
    ("seconds", "text"), [(9.5 * DAY, "9 days"), (1.5 * DAY, "1 day"), (5.2 * 3600, "5 h"), (2400, "40 min")]
)
def test_time_left_never_says_zero_days_while_hours_remain(seconds: float, text: str) -> None:
    assert time_left(seconds) == text


class CertChecker:
    """Every check passes and has seen ``cert`` (expiry, fingerprint)."""

    def __init__(self, wall: WallClock) -> None:
        self.wall = wall
        self.cert: tuple[float, str] = (0.0, "")

    async def check(self, target: Target) -> CheckResult:
        expires, fingerprint = self.cert
        return CheckResult(
            True, None, 5.0, self.wall(), Detail(cert_expires_at=expires, cert_fingerprint=fingerprint)
        )

    async def close(self) -> None:
        return None


class CertEngine:
    def __init__(self, settings: Settings, wall: WallClock) -> None:
        self.wall = wall
        self.timers = ManualTimers(1000.0)
        self.checker = CertChecker(wall)
        self.outbox = MemoryOutbox()
        self.monitor = Monitor(
            settings, events=EventLog(None), outbox=self.outbox, worker=IdleWorker(),
            notifiers=[LogNotifier()], notifier_factory=lambda s: [LogNotifier()], checker=self.checker,
            store=FlakyStore(settings.state_dir), hostname="test-host", clock=wall,
        )  # fmt: skip

    async def checks(self, count: int, every: float = 60.0) -> None:
        for _ in range(count):
            self.wall.now += every
            self.timers.advance(every)
            for _ in range(100):
                await asyncio.sleep(0)

    async def expiring(self) -> list[tuple[str, str]]:
        """The EXPIRING alerts stored, once every one raised (an event, written at once) has
        reached the outbox (stored off the loop)."""
        raised = sum(1 for e in self.monitor.events.recent if e["event"] == "target_cert_expiring")
        async with asyncio.timeout(10):
            while True:
                stored = [(a.id, a.reason) for a in self.outbox.stored if a.kind is AlertKind.EXPIRING]
                if len(stored) >= raised:
                    return stored
                await asyncio.sleep(0.01)


def cert_settings(tmp_path: Path, **target: object) -> Settings:
    return targets_settings(
        tmp_path, toml_targets({"name": "shop", "url": "https://shop.test/health", "interval": 60, **target})
    )


def test_the_monitor_warns_once_per_threshold_and_again_after_a_renewal(tmp_path: Path) -> None:
    wall = WallClock(NOW)
    engine = CertEngine(cert_settings(tmp_path), wall)
    expires = NOW + 13.5 * DAY

    async def go() -> None:
        await engine.monitor.start(engine.timers)
        engine.checker.cert = (expires, "a" * 64)
        await engine.checks(5)  # 13.5 days left: the 14-day threshold, once
        assert await engine.expiring() == [
            (
                alert_id("shop", expires, AlertKind.EXPIRING, 14),
                f"TLS certificate expires in 13 days ({iso(expires)}), below 14 days",
            )
        ]
        wall.now = expires - 2.5 * DAY
        await engine.checks(5)  # below 3 days: one more
        assert [reason for _, reason in await engine.expiring()][1:] == [
            f"TLS certificate expires in 2 days ({iso(expires)}), below 3 days"
        ]
        renewed = wall.now + 90 * DAY
        engine.checker.cert = (renewed, "b" * 64)
        await engine.checks(5)  # 90 days left: nothing
        assert len(await engine.expiring()) == 2
        wall.now = renewed - 10 * DAY
        await engine.checks(3)  # the renewed one crosses 14 days: warned again
        assert len(await engine.expiring()) == 3
        await engine.monitor.stop()

    asyncio.run(go())


def test_several_thresholds_crossed_at_first_sight_give_one_alert_and_a_restart_does_not_repeat_it(
    tmp_path: Path,
) -> None:
    wall = WallClock(NOW)
    settings = cert_settings(tmp_path)
    expires = NOW + 2 * DAY + 3600

    async def run_once() -> list[tuple[str, str]]:
        engine = CertEngine(settings, wall)
        await engine.monitor.start(engine.timers)
        engine.checker.cert = (expires, "c" * 64)
        await engine.checks(4)
        deadline = asyncio.get_running_loop().time() + 10
        while not (tmp_path / "state" / "cert_warnings.json").exists():  # saved off the loop
            assert asyncio.get_running_loop().time() < deadline, "cert_warnings.json never written"
            await asyncio.sleep(0.01)
        await engine.monitor.stop()
        return await engine.expiring()

    first = asyncio.run(run_once())
    assert first == [
        (
            alert_id("shop", expires, AlertKind.EXPIRING, 3),
            f"TLS certificate expires in 2 days ({iso(expires)}), below 3 days",
        )
    ]
    assert asyncio.run(run_once()) == []
    saved = json.loads((tmp_path / "state" / "cert_warnings.json").read_text())
    assert saved == {"shop": {"days": 3, "fingerprint": "c" * 64}}


def test_cert_warn_days_empty_raises_nothing(tmp_path: Path) -> None:
    wall = WallClock(NOW)
    engine = CertEngine(cert_settings(tmp_path, cert_warn_days=[]), wall)

    async def go() -> None:
        await engine.monitor.start(engine.timers)
        engine.checker.cert = (NOW + DAY, "d" * 64)
        await engine.checks(3)
        assert await engine.expiring() == []
        await engine.monitor.stop()

    asyncio.run(go())


# ---------------------------------------------------------------- the whole chain


def shop_behind_tls(tmp_path: Path, server: TlsTarget, ca: PrivateCA, **env: str) -> Settings:
    """One https target, "shop", checked every 0.2 s, with the endpoint on a free port."""
    return targets_settings(
        tmp_path,
        toml_targets({"name": "shop", "url": server.url, "interval": 0.2, "tls_ca_file": str(ca.ca_file)}),
        MONITOR_HTTP_HOST="127.0.0.1",
        MONITOR_HTTP_PORT=str(free_port()),
        **env,
    )


def test_a_running_monitor_warns_shows_days_left_and_exports_the_expiry(
    tmp_path: Path, ca: PrivateCA
) -> None:
    cert, key = ca.issue(days_from_now(5))
    with TlsTarget(cert, key) as server:
        settings = shop_behind_tls(tmp_path, server, ca)
        app = MonitorApp.build(settings, notifier_factory=lambda s: [LogNotifier()])

        async def go() -> tuple[dict[str, object], str]:
            stop, started = asyncio.Event(), asyncio.Event()
            task = asyncio.create_task(app.run(stop, started.set))
            await asyncio.wait_for(started.wait(), 20)
            base = app.web_address
            assert base is not None
            target: dict[str, object] = {}
            metrics = ""
            async with aiohttp.ClientSession() as session:

                async def ready() -> bool:
                    nonlocal metrics
                    async with session.get(base + "api/status?history=0") as answer:
                        (item,) = (await answer.json())["targets"]
                    target.update(item)
                    async with session.get(base + "metrics") as answer:
                        metrics = await answer.text()
                    checks = int(str(target["checks_ok_total"]))
                    return checks >= 5 and "keepalive_target_cert_expiry_timestamp_seconds" in metrics

                await until(ready)
            stop.set()
            await task
            return target, metrics

        try:
            target, metrics = asyncio.run(go())
        finally:
            app.close()
    expires = not_after_of(cert)
    assert target["state"] == "up" and target["kind"] == "http"
    assert 4.9 <= float(str(target["cert_days_left"])) <= 5.0
    exported = re.search(
        r'^keepalive_target_cert_expiry_timestamp_seconds\{target="shop"\} (\S+)$', metrics, re.M
    )
    assert exported is not None and float(exported.group(1)) == expires
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    expiring = [e for e in events if e["event"] == "target_cert_expiring"]
    assert len(expiring) == 1 and expiring[0]["threshold_days"] == 14


@pytest.mark.parametrize("renewed", [False, True], ids=["still-expiring", "renewed-meanwhile"])
def test_a_silenced_certificate_is_looked_at_again_when_the_silence_is_removed(
    tmp_path: Path, ca: PrivateCA, renewed: bool
) -> None:
    """The whole chain: a real certificate running out, a silence made before the start, the
    EXPIRING held (not queued) while it lasts. Once the silence is removed over the write API
    the certificate is looked at again: still the same, a fresh EXPIRING is sent; renewed
    meanwhile, nothing is."""
    cert, key = ca.issue(days_from_now(5))
    api_token = "t" * 40
    with TlsTarget(cert, key) as server:
        settings = shop_behind_tls(tmp_path, server, ca, MONITOR_API_TOKEN=api_token)
        book = SilenceBook(settings.state_dir, max_silence=7 * DAY)
        silence_id = book.create("shop", "1h", "renewing the certificate", "ops").id
        app = MonitorApp.build(settings, notifier_factory=lambda s: [LogNotifier()])

        def events(name: str) -> list[dict[str, object]]:
            return [e for e in app.monitor.events.recent if e["event"] == name]

        async def go() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
            stop, started = asyncio.Event(), asyncio.Event()
            task = asyncio.create_task(app.run(stop, started.set))
            await asyncio.wait_for(started.wait(), 20)
            base = app.web_address
            assert base is not None

            async def held() -> bool:
                return bool(events("alert_held"))

            await until(held)
            held_events, queued_while_held = events("alert_held"), events("alert_queued")
            if renewed:
                server.use(*ca.issue(days_from_now(90)))
            async with aiohttp.ClientSession() as session:
                async with session.delete(
                    f"{base}api/silences/{silence_id}", headers={"Authorization": f"Bearer {api_token}"}
                ) as answer:
                    assert answer.status == 204

                async def looked_again() -> bool:
                    if len(events("target_cert_expiring")) > 1:
                        return bool(events("alert_queued"))  # the fresh one, stored
                    if not (renewed and events("held_alert_dropped")):
                        return False
                    async with session.get(base + "api/status?history=0") as answer:
                        (item,) = (await answer.json())["targets"]
                    return float(item["cert_days_left"]) > 80  # the renewed certificate was seen

                await until(looked_again)
            stop.set()
            await task
            return held_events, queued_while_held

        try:
            held_events, queued_while_held = asyncio.run(go())
        finally:
            app.close()
    expiring_id = alert_id("shop", not_after_of(cert), AlertKind.EXPIRING, 14)
    assert [(e["alert_id"], e["kind"]) for e in held_events] == [(expiring_id, "EXPIRING")]
    assert str(held_events[0]["why"]).startswith("silence ")
    assert queued_while_held == []
    recent = app.monitor.events.recent
    (dropped,) = [e for e in recent if e["event"] == "held_alert_dropped"]
    assert dropped["alert_id"] == expiring_id
    queued = [e["alert_id"] for e in recent if e["event"] == "alert_queued"]
    assert queued == ([] if renewed else [expiring_id])


async def until(condition: Callable[[], object]) -> None:
    async with asyncio.timeout(20):
        while not await condition():  # type: ignore[misc]
            await asyncio.sleep(0.05)
