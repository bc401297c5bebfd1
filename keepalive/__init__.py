"""Keep-Alive Monitor: watches /health endpoints and alerts by Telegram and e-mail.

Layout (one concern a module):
    config.py       settings from the environment / .env, validated into a frozen Settings
    errors.py       ConfigError: a bad setting, reported as one line
    targets.py      the targets file (TOML) and the Target dataclass
    check.py        one HTTP health check -> CheckResult (never raises), reasons of SPEC section 5
    http1.py        the lean HTTP/1.1 client of plain-http checks (aiohttp serves the rest)
    state.py        the pure state machine: check results -> DOWN / RECOVERED alerts
    statestore.py   target states persisted atomically across restarts
    history.py      a bounded ring of recent results per target (uptime %, latency chart)
    alerts.py       the Alert record shared by the state machine, outbox and notifiers
    outbox.py       the durable outbox (SQLite) and the delivery worker threads
    notifiers/      one module per channel (telegram, email, log) behind one small interface
    monitor.py      the checking engine: one asyncio loop schedules checks, feeds the state
                    machine, queues alerts, saves state
    web.py          the monitor's own /health, /metrics, /api/status and status page
    metrics.py      the Prometheus exposition of /metrics
    heartbeat.py    the HEARTBEAT_URL dead-man's switch
    events.py       the JSON-lines events file
    scrub.py        removes secrets from any text before it is written anywhere
    cli.py          the command line behind monitor_server.py
"""

__version__ = "1.0.0"
