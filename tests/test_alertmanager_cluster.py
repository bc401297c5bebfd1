"""More than one machine, proved against the real programs (SPEC 17, issue 13).

A two-instance Prometheus Alertmanager cluster (Debian's ``prometheus-alertmanager``, gossiping
on loopback), three monitor replicas (a, b, c; ``MONITOR_COPIES=2``) sharing one targets file and
sending to both instances, and a webhook receiver behind Alertmanager that counts notifications.

1. SIGKILL replica a; take down a target a was checking: exactly one firing notification (its
   other checker reports it to both instances; the cluster's notification log sends it once);
   bring it back: exactly one resolved.
2. SIGKILL one Alertmanager instance; take down another target: still notified, once; back:
   resolved, once.

Skipped, with the reason, where Alertmanager is not installed; FAILING when CI=true (.ci/run
installs it). Times from failure to notification and from recovery to resolution are printed
(``pytest -s``) for the README.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from keepalive.engine.replicas import owners
from tests.fakes.alertmanager_cluster import AlertmanagerCluster, binary
from tests.fakes.engine import toml_targets
from tests.fakes.targets import TargetServer
from tests.fakes.webhook_receiver import Received, WebhookReceiver
from tests.monitor_proc import MonitorProcess, base_env, wait_until

REPLICAS = ["a", "b", "c"]
NAMES = [f"svc-{i}" for i in range(8)]
HOOK = "/am"
# A duplicate from the second Alertmanager instance would come after its peer timeout (2 s), a
# stale one at its next group interval (6 s) plus that timeout: watching 10 s shows there is
# none. The one wait in this file that is not for a condition: it asserts that something does
# NOT happen.
QUIET = 10.0

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def alertmanager_binary() -> str:
    found = binary()
    if found is None:
        reason = (
            "prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager; "
            ".ci/run installs it)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + ": required when CI=true")
        pytest.skip(reason)
    return found


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def notifications(hook: WebhookReceiver, target: str, status: str) -> list[Received]:
    """Alertmanager's webhook notifications about ``target`` with ``status``."""
    found = []
    for received in hook.received(HOOK):
        body = received.json()
        if body.get("status") == status and body.get("groupLabels", {}).get("target") == target:
            found.append(received)
    return found


def wait_notified(hook: WebhookReceiver, target: str, status: str, timeout: float = 60.0) -> float:
    """Wait for the first ``status`` notification about ``target``; returns when it arrived."""
    hook.wait_for(
        lambda _: bool(notifications(hook, target, status)),
        timeout,
        f"a {status} notification about {target}",
    )
    return notifications(hook, target, status)[0].at


def test_replicas_behind_an_alertmanager_cluster_lose_nothing_and_send_once(
    alertmanager_binary: str, hook: WebhookReceiver, tmp_path: Path
) -> None:
    cluster = AlertmanagerCluster(tmp_path, hook.url + HOOK)
    monitors: dict[str, MonitorProcess] = {}
    with TargetServer() as targets:
        entries = [
            {"name": n, "url": targets.url(n), "interval": 0.5, "timeout": 1.0, "failure_threshold": 2}
            for n in NAMES
        ]
        targets_file = tmp_path / "targets.toml"
        targets_file.write_text(toml_targets(*entries))
        try:
            cluster.start()
            for name in REPLICAS:
                workdir = tmp_path / name
                workdir.mkdir()
                env = base_env(
                    workdir,
                    MONITOR_TARGETS_FILE=str(targets_file),
                    MONITOR_NAME=name,
                    MONITOR_REPLICAS=",".join(REPLICAS),
                    MONITOR_COPIES="2",
                    ALERTMANAGER_URLS=",".join(cluster.urls),
                )
                monitors[name] = MonitorProcess(workdir, env).start()
            for name in monitors:
                mine = [n for n in NAMES if name in owners(n, REPLICAS, 2)]
                # Every target of its share checked once before anything fails.
                for target in mine:
                    targets.wait_for_requests(target, 1, timeout=20)
                share = (
                    f"replica share name={name} replicas=a,b,c copies=2 checks={len(mine)} of={len(NAMES)}"
                )
                assert share in monitors[name].log()

            # 1. A replica dies; a target it was checking goes down.
            victim = next(n for n in NAMES if "a" in owners(n, REPLICAS, 2))
            survivor = next(r for r in owners(victim, REPLICAS, 2) if r != "a")
            monitors["a"].kill()
            failed_at = time.time()
            targets.set_mode(victim, "http503")
            fired_at = wait_notified(hook, victim, "firing")
            wait_until(
                lambda: len(monitors[survivor].events("target_down", target=victim)) >= 1,
                30,
                what=f"{survivor} to raise the DOWN",
            )
            time.sleep(QUIET)  # see QUIET: nothing more may arrive
            assert len(notifications(hook, victim, "firing")) == 1

            recovered_at = time.time()
            targets.set_mode(victim, "ok")
            resolved_at = wait_notified(hook, victim, "resolved")
            time.sleep(QUIET)
            assert len(notifications(hook, victim, "resolved")) == 1
            assert len(notifications(hook, victim, "firing")) == 1

            # 2. An Alertmanager instance dies; another target goes down.
            cluster.kill(0)
            other = next(n for n in NAMES if n != victim)
            failed2 = time.time()
            targets.set_mode(other, "http503")
            fired2 = wait_notified(hook, other, "firing")
            time.sleep(QUIET)
            assert len(notifications(hook, other, "firing")) == 1
            recovered2 = time.time()
            targets.set_mode(other, "ok")
            resolved2 = wait_notified(hook, other, "resolved")
            time.sleep(QUIET)
            assert len(notifications(hook, other, "resolved")) == 1

            print(
                f"\nmeasured: replica killed -> firing {fired_at - failed_at:.2f} s, "
                f"resolved {resolved_at - recovered_at:.2f} s; "
                f"Alertmanager instance killed -> firing {fired2 - failed2:.2f} s, "
                f"resolved {resolved2 - recovered2:.2f} s"
            )
        finally:
            for monitor in monitors.values():
                if monitor.proc is not None and monitor.proc.poll() is None:
                    monitor.signal(signal.SIGTERM)
            for monitor in monitors.values():
                try:
                    monitor.stop(15)
                except Exception:
                    monitor.kill()
            cluster.stop()
