#!/usr/bin/env python3
"""Keep-Alive Monitor settings (SPEC section 3).

Every setting has a default (keepalive/config.py ``DEFAULTS``, the only copy), may be set in a
`.env` file beside this file, and is overridden by the environment. `.env` values are taken
literally (no `${VAR}` expansion). They are read once by ``load_settings()`` into a frozen
``Settings`` object and validated; a bad value raises ``ConfigError`` with one line naming the
setting, the bad value and what is allowed. See README_MONITOR.md for the list and .env.example
for a template.

Run directly:
    python monitor_config.py    the effective settings (same as monitor_server.py --check-config)

The shell scripts read values with `monitor_server.py --print-setting NAME...` (NUL-ended).
"""

from __future__ import annotations

import sys

from keepalive.config import DEFAULTS, ROOT, Channel, Settings, is_placeholder, load_settings
from keepalive.errors import ConfigError

__all__ = ["DEFAULTS", "ROOT", "Channel", "ConfigError", "Settings", "is_placeholder", "load_settings"]


def main(argv: list[str]) -> int:
    from keepalive.cli import main as cli_main

    return cli_main(["--check-config", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
