"""The monitor's own log file: the standard library's size rotation, reopened on SIGHUP."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from keepalive.logfile import ReopenableRotatingFileHandler, reopen_log_files
from keepalive.scrub import ScrubFilter, register_secret


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("test.cli_logging")
    log.propagate = False
    log.setLevel(logging.INFO)
    yield log
    for handler in log.handlers:
        handler.close()
    log.handlers.clear()


def attach(
    log: logging.Logger, path: Path, max_bytes: int, backups: int = 3
) -> ReopenableRotatingFileHandler:
    handler = ReopenableRotatingFileHandler(path, max_bytes, backups)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(ScrubFilter())
    log.addHandler(handler)
    return handler


def test_the_log_is_rotated_at_its_size_keeping_the_backups(tmp_path: Path, logger: logging.Logger) -> None:
    path = tmp_path / "logs" / "monitor.log"
    attach(logger, path, max_bytes=500, backups=2)
    for index in range(60):  # 60 lines of 20 bytes: 1,200 bytes
        logger.info("check failed n=%03d", index)

    files = [path, path.with_name("monitor.log.1"), path.with_name("monitor.log.2")]
    assert all(0 < p.stat().st_size <= 500 for p in files)
    assert not path.with_name("monitor.log.3").exists()
    newest = path.read_text().splitlines()
    assert newest[-1] == "check failed n=059"
    assert (
        path.with_name("monitor.log.1").read_text().splitlines()[-1]
        == f"check failed n={int(newest[0][-3:]) - 1:03d}"
    )


def test_reopen_after_an_external_rename_writes_to_the_new_file(
    tmp_path: Path, logger: logging.Logger
) -> None:
    path = tmp_path / "monitor.log"
    attach(logger, path, max_bytes=0)
    logger.info("before rotation")
    path.rename(tmp_path / "monitor.log-20260101")

    assert reopen_log_files(logger) == 1
    logger.info("after rotation")

    assert (tmp_path / "monitor.log-20260101").read_text() == "before rotation\n"
    assert path.read_text() == "after rotation\n"


def test_the_file_gets_scrubbed_lines(tmp_path: Path, logger: logging.Logger) -> None:
    register_secret("l0g-secret-pw")
    path = tmp_path / "monitor.log"
    attach(logger, path, max_bytes=0)
    logger.info("smtp login %s failed", "l0g-secret-pw")
    assert path.read_text() == "smtp login *** failed\n"
