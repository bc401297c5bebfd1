"""bench.page runs end to end at a tiny size so it cannot rot; nothing about speed is asserted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser import CHROMIUM, available

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not available(), reason=f"needs Debian's chromium at {CHROMIUM}"),
]


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.page", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_it_measures_a_tiny_monitor_and_prints_both_tables() -> None:
    done = bench(
        "--sizes", "2,3", "--interval", "0.5", "--loads", "1", "--victims", "1",
        "--streams", "0,2", "--lag-seconds", "1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    figures = (
        r"\| [\d.]+ ms, [\d,]+ B \| [\d.]+ ms \| [\d.]+ ms \| [\d,]+ \| [\d.]+ ms / [\d.]+ ms \| [\d.]+ ms \|"
    )
    assert [line for line in lines if re.fullmatch(rf"\| [23] {figures}", line)] == lines[4:6]
    phases = [line for line in lines if re.fullmatch(r"\| [02] \| .* \| [\d.-]+ \| 0 \|", line)]
    assert [line.split("|")[1].strip() for line in phases] == ["0", "2"]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--sizes", "0"], "--sizes: from 1 to 99,999 targets"),
        (["--streams", "101"], "--streams: from 0 to 100 (the monitor's cap)"),
        (["--sizes", "a"], "--sizes and --streams: comma-separated whole numbers"),
    ],
)
def test_a_bad_option_is_one_line_and_exit_2(args: list[str], error: str) -> None:
    done = bench(*args)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == f"python -m bench.page: error: {error}"
