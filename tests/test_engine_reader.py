"""SIGHUP's settings reader: a spawned child reads the files, the parent gets the settings and
every secret the child registered; a load that cannot be pickled is read in a thread."""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
from pathlib import Path

import pytest

from keepalive import scrub
from keepalive.config import Settings, load_settings
from keepalive.engine.reader import read_settings
from keepalive.errors import ConfigError


def refuse_with_pid() -> Settings:
    raise ConfigError(f"read by pid {os.getpid()}")


def test_a_bad_file_is_a_config_error_raised_by_a_child_process() -> None:
    with pytest.raises(ConfigError) as caught:
        asyncio.run(read_settings(refuse_with_pid))
    pid = int(str(caught.value).rsplit(" ", 1)[1])
    assert pid != os.getpid()


def test_a_load_that_cannot_be_pickled_is_read_in_this_process() -> None:
    def closure() -> Settings:
        raise ConfigError(f"read by pid {os.getpid()}")

    with pytest.raises(ConfigError, match=f"read by pid {os.getpid()}$"):
        asyncio.run(read_settings(closure))


def test_the_settings_and_the_secrets_the_child_registered_reach_the_parent(tmp_path: Path) -> None:
    token = secrets.token_urlsafe(24)
    targets = tmp_path / "targets.toml"
    targets.write_text(
        f'[[targets]]\nname = "job"\npush_token = "{token}"\ninterval = 60\n'
        '[[targets]]\nname = "api"\nurl = "http://127.0.0.1:1/health"\n'
    )
    environ = {"MONITOR_ENV_FILE": "", "MONITOR_TARGETS_FILE": str(targets)}
    load = functools.partial(load_settings, environ, tmp_path)
    assert token not in scrub.registered()

    settings = asyncio.run(read_settings(load))

    assert [t.name for t in settings.targets] == ["job", "api"]
    assert token in scrub.registered()
    assert settings == load()
