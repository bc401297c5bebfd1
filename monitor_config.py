#!/usr/bin/env python3
"""Keep-Alive Monitor settings (SPEC section 3).

Every setting has a default, may be set in a `.env` file beside this file, and is overridden by
the environment. They are read once by ``load_settings()`` into a frozen ``Settings`` object and
validated; a bad value raises ``ConfigError`` with one line naming the setting, the bad value
and what is allowed. See README_MONITOR.md for the list and .env.example for a template.

Run directly:
    python monitor_config.py           the effective settings (same as monitor_server.py --check-config)
    python monitor_config.py --paths   NAME=value lines for the shell scripts (paths made absolute)
"""

from __future__ import annotations

import shlex
import sys

from keepalive.config import DEFAULTS, ROOT, Channel, Settings, is_placeholder, load_settings
from keepalive.errors import ConfigError

__all__ = ["DEFAULTS", "ROOT", "Channel", "ConfigError", "Settings", "is_placeholder", "load_settings"]


def _paths(settings: Settings) -> str:
    values = {
        "MONITOR_PID_FILE": str(settings.pid_file),
        "MONITOR_LOG_FILE": str(settings.log_file),
        "MONITOR_STATE_DIR": str(settings.state_dir),
        "MONITOR_EVENTS_FILE": str(settings.events_file),
        "MONITOR_HTTP_HOST": settings.http_host,
        "MONITOR_HTTP_PORT": str(settings.http_port),
    }
    return "\n".join(f"{k}={shlex.quote(v)}" for k, v in values.items())


def main(argv: list[str]) -> int:
    if argv[:1] == ["--paths"]:
        try:
            print(_paths(load_settings()))
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 3
        return 0
    from keepalive.cli import main as cli_main

    return cli_main(["--check-config"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
