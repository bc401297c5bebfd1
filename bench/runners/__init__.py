"""One runner per system under test, each behind ``bench.runners.base.Runner``."""

from __future__ import annotations

from bench.runners.base import PEERS, Runner
from bench.runners.blackbox import BlackboxRunner
from bench.runners.monit import MonitRunner
from bench.runners.ours import OursRunner

RUNNERS: dict[str, Runner] = {
    runner.system: runner for runner in (OursRunner(), BlackboxRunner(), MonitRunner())
}

__all__ = ["PEERS", "RUNNERS", "Runner"]
