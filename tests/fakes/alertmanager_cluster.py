"""A real Prometheus Alertmanager cluster on loopback (Debian's ``prometheus-alertmanager``).

``AlertmanagerCluster(workdir, receiver_url, size=2)`` writes an ``alertmanager.yml`` that
routes everything to one webhook receiver (grouped by alertname and target, resolved
notifications on, group_wait 1 s, group_interval 6 s), starts ``size`` instances gossiping with each other on
127.0.0.1, and waits until each reports the cluster ready with every peer. ``kill(i)`` sends
SIGKILL to one instance; ``stop()`` ends them all. Each instance logs to ``workdir/am<i>.log``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from tests.monitor_proc import free_port, wait_until

BINARIES = ("prometheus-alertmanager", "alertmanager")

CONFIG = """\
route:
  receiver: hook
  group_by: ['alertname', 'target']
  group_wait: 1s
  group_interval: 6s
  repeat_interval: 4h
receivers:
  - name: hook
    webhook_configs:
      - url: {url}
        send_resolved: true
"""


def binary() -> str | None:
    """The Alertmanager program's path, or None when it is not installed."""
    for name in BINARIES:
        found = shutil.which(name)
        if found:
            return found
    return None


class AlertmanagerCluster:
    """``size`` Alertmanager instances gossiping on loopback (see the module doc)."""

    # An instance further down the cluster's order waits position x this before it sends, and
    # skips what the gossiped notification log says was sent: how the cluster sends once. It
    # must stay well under group_interval (as Alertmanager's defaults, 15 s and 5 min, do): an
    # instance whose wait outlasts a group interval compares a stale "firing" with the log's
    # newer "resolved" and sends the firing again (seen with 3 s against 1 s).
    PEER_TIMEOUT = "2s"

    def __init__(self, workdir: Path, receiver_url: str, size: int = 2) -> None:
        program = binary()
        if program is None:
            raise FileNotFoundError("prometheus-alertmanager is not installed")
        self.program = program
        self.workdir = workdir
        self.config = workdir / "alertmanager.yml"
        self.config.write_text(CONFIG.format(url=receiver_url))
        self.web_ports = [free_port() for _ in range(size)]
        self.cluster_ports = [free_port() for _ in range(size)]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * size

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.web_ports]

    def start(self) -> AlertmanagerCluster:
        for index in range(len(self.web_ports)):
            self._start(index)
        for url in self.urls:
            wait_until(lambda url=url: self._ready(url), 60, what=f"Alertmanager {url} ready with every peer")
        return self

    def _start(self, index: int) -> None:
        peers = [f"--cluster.peer=127.0.0.1:{p}" for i, p in enumerate(self.cluster_ports) if i != index]
        storage = self.workdir / f"am{index}"
        storage.mkdir(exist_ok=True)
        log = (self.workdir / f"am{index}.log").open("ab")
        self.procs[index] = subprocess.Popen(
            [
                self.program,
                f"--config.file={self.config}",
                f"--storage.path={storage}",
                f"--web.listen-address=127.0.0.1:{self.web_ports[index]}",
                f"--cluster.listen-address=127.0.0.1:{self.cluster_ports[index]}",
                f"--cluster.advertise-address=127.0.0.1:{self.cluster_ports[index]}",
                f"--cluster.peer-timeout={self.PEER_TIMEOUT}",
                "--cluster.settle-timeout=10s",
                "--cluster.reconnect-interval=1s",
                "--log.level=debug",
                *peers,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")},
        )
        log.close()

    def _ready(self, url: str) -> bool:
        try:
            status = self.api(url, "/api/v2/status")
        except OSError:
            return False
        cluster = status.get("cluster", {})
        peers = cluster.get("peers") or []
        return bool(cluster.get("status") == "ready" and len(peers) == len(self.web_ports))

    def api(self, url: str, path: str) -> Any:
        with urllib.request.urlopen(url + path, timeout=5) as answer:
            return json.loads(answer.read())

    def alerts(self, index: int) -> list[dict[str, Any]]:
        """The alerts instance ``index`` holds (active and resolved within its retention)."""
        found: list[dict[str, Any]] = self.api(self.urls[index], "/api/v2/alerts")
        return found

    def kill(self, index: int) -> None:
        proc = self.procs[index]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

    def log(self, index: int) -> str:
        try:
            return (self.workdir / f"am{index}.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            if proc is not None:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
