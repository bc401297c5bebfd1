#!/usr/bin/env python3
"""Keep-Alive Monitor: watches /health endpoints and alerts by Telegram and e-mail.

    python monitor_server.py                 run until SIGTERM/SIGINT (SIGHUP reloads settings)
    python monitor_server.py --once          check every target once; exit 0 all pass, 2 any fail
    python monitor_server.py --check-config  print the effective settings; exit 0 valid, 3 invalid
    python monitor_server.py --test-alert    send a test alert on every channel; exit 0 delivered, 1 not
    python monitor_server.py --status        running or stopped, targets, log's end; exit 0 running, 3 stopped
    python monitor_server.py --print-setting NAME...   values for scripts, each ended by NUL; exit 3 invalid

Settings come from the environment and `.env` (see monitor_config.py and README_MONITOR.md).
The implementation lives in the `keepalive` package; keepalive/cli.py is the place to start.
"""

from __future__ import annotations

import sys

from keepalive.cli import main

if __name__ == "__main__":
    sys.exit(main())
