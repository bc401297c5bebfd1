"""Keep-Alive Monitor: watches /health endpoints and alerts by Telegram and e-mail.

Layout (one concern a module):
    config.py       settings from the environment / .env, validated into a frozen Settings
    targets.py      the targets file (TOML) and the Target dataclass
    check.py        one HTTP health check -> CheckResult (never raises)
    state.py        the pure state machine: check results -> DOWN / RECOVERED alerts
    statestore.py   target states persisted atomically across restarts
    alerts.py       the Alert record shared by the state machine, outbox and notifiers
    outbox.py       the durable outbox (SQLite) and the delivery worker thread
    notifiers/      one module per channel behind one small interface
    scheduler.py    the asyncio checking engine
    monitor.py      wires everything together and runs the event loop
    web.py          the monitor's own /health, /metrics, /api/status and status page
    events.py       the JSON-lines events file
    scrub.py        removes secrets from any text before it is written anywhere
    cli.py          the command line behind monitor_server.py
"""

__version__ = "1.0.0"
