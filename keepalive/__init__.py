"""Keep-Alive Monitor: watches /health endpoints and alerts by Telegram and e-mail.

Layout, every module under keepalive/ (tests/test_docs.py keeps this list equal to the tree;
each package's own docstring says more):

    alerts.py                   the Alert record the state machine raises, the outbox stores, notifiers send
    apitoken.py                 the API token every write carries (generated 0600 in MONITOR_STATE_DIR)
    cli.py                      the command line behind monitor_server.py
    client.py                   --silence, --silences, --unsilence: writes to the running monitor
    config.py                   settings: DEFAULTS, .env and environment, validation into a frozen Settings
    errors.py                   ConfigError: a bad setting, reported as one line (exit 3)
    events.py                   the events file: one JSON object a line
    expiry.py                   EXPIRING alerts for TLS certificates: pure rules and their memory
    fanout.py                   settings of webhooks, Apprise, Alertmanager and replicas
    heartbeat.py                the HEARTBEAT_URL dead-man's switch, pinged only while healthy
    logfile.py                  log and events files rotated by size, reopened on SIGHUP
    process.py                  which process is this repository's monitor, read from /proc
    scrub.py                    secrets registered once and removed from any text before it is written
    state.py                    the pure state machine: check results -> DOWN / RECOVERED alerts
    status_report.py            monitor_server.py --status (what ./status_monitor.sh prints)
    targets.py                  HEALTH_CHECK_URL or the TOML targets file -> Target (public_url: no password)
    actions/                    keeping targets alive, not only watching them
    actions/api.py              POST /api/targets/<name>/remediate
    actions/cli_remediate.py    --remediate NAME: a target's on_down run by the running monitor
    actions/commands.py         what each Telegram command does: text in, HTML out
    actions/options.py          the targets-file keys of remediation, validated
    actions/remediation.py      runs a target's on_down: no shell, own process group, bounded
    actions/result.py           what one on_down run did
    actions/settings.py         TELEGRAM_COMMANDS and TELEGRAM_SILENT_RECOVERY
    actions/telegram_commands.py  the bot's getUpdates long polling on threads of its own
    actions/wiring.py           attaches remediation and Telegram commands to a running monitor
    delivery/                   alerts from the outbox to every recipient, exactly once
    delivery/ledger.py          per-channel figures, and one event plus one log line per outcome
    delivery/outbox.py          where the rest of the monitor imports delivery from
    delivery/policy.py          pure rules: backoff, what a send's outcome means, digests, retry times
    delivery/store.py           the durable SQLite outbox (quick_check at open, a damaged file set aside)
    delivery/worker.py          the delivery thread and its short-lived sending threads
    engine/                     schedules checks, turns results into alerts, persists, builds snapshots
    engine/announcer.py         state-machine results -> events, log lines, alerts; the AlertPolicy seam
    engine/app.py               the composition root used by cli.serve and in-process tests
    engine/history.py           a bounded ring of recent results per target
    engine/monitor.py           the running monitor: checks on schedule, snapshot, health, reload
    engine/persister.py         alerts into the outbox, then states into state.json; the alert path's health
    engine/reader.py            SIGHUP's settings read in a spawned child process (its own GIL)
    engine/replicas.py          which targets this replica checks (rendezvous hashing)
    engine/runtime.py           TargetRuntime, and the pure reconcile of a reload
    engine/scheduler.py         a heap of due times and one timer, on a loop clock passed in
    engine/share.py             this replica's share of the targets file
    engine/snapshot.py          the typed MonitorSnapshot that /health, /api/status and /metrics render
    engine/statelock.py         one monitor per state directory (flock on MONITOR_STATE_DIR/lock)
    engine/statestore.py        state.json: validated on load, bad records set aside
    notifiers/                  one file per channel behind the Notifier contract of base.py
    notifiers/alertmanager.py   Alertmanager channel
    notifiers/apprise_channel.py  Apprise channel
    notifiers/base.py           the contract: recipients(), send(recipient, alerts) -> message id, NotifyError
    notifiers/deadline.py       a total time limit per send; HTTP answers read with a size cap
    notifiers/email.py          e-mail channel: one SMTP transaction per recipient
    notifiers/factory.py        builds the enabled channels from Settings
    notifiers/httpjson.py       one JSON POST under a deadline (webhooks, Alertmanager)
    notifiers/log.py            log channel: every alert as one key=value line
    notifiers/smtp.py           the SMTP client: connected under the send deadline, replies capped
    notifiers/telegram.py       Telegram channel: sendMessage, pacing, group moves, replies
    notifiers/text.py           plain-text pieces shared by the message builders
    notifiers/webhook.py        webhook channel
    policy/                     what holds a notification, and what a hold's end releases
    policy/dependencies.py      depends_on: a child's DOWN held while all its parents are down
    policy/durations.py         90s, 45m, 2h, 1d, 1h30m parsed and shown
    policy/globs.py             target-name globs as silences and windows match them
    policy/holds.py             the AlertPolicy: held and released, decided against what was notified
    policy/maintenance.py       recurring maintenance windows in IANA time zones
    policy/runner.py            the silence book, the hold policy and their tick wired into a monitor
    policy/settings.py          MONITOR_API_TOKEN, MONITOR_HTTP_AUTH, MAX_SILENCE
    policy/silences.py          the silence book under MONITOR_STATE_DIR
    probe/                      one check of one target -> CheckResult (never raises)
    probe/aiohttp_transport.py  the aiohttp transport: https, reused connections
    probe/answer.py             Answer, Failure and the limits both transports share
    probe/checker.py            Checker.check(target): the probe for the target's kind, under its deadline
    probe/conditions.py         JSON conditions on an HTTP target's body
    probe/detail.py             what a check learned besides pass/fail (last ping, certificate, ...)
    probe/http_probe.py         GET, redirects, the monitor's own endpoint refused
    probe/judge.py              the pure verdict on an answer: status, JSON body, expected value
    probe/kinds.py              the kinds of check as the targets file spells them
    probe/lean.py               the lean transport: plain http on a fresh connection, parsed by llhttp
    probe/logfile.py            log-file targets
    probe/push.py               push targets
    probe/resolver.py           name resolution on threads of its own, bounded, cached, isolated
    probe/tcp.py                TCP targets
    probe/tls.py                TLS certificates of https targets
    probe/transport.py          the Transport and Probe protocols
    web/                        the monitor's own HTTP endpoint
    web/api.py                  writes behind the API token, and the silence endpoints
    web/app.py                  routes: /health, /metrics, /api/status, the page
    web/guard.py                Host check (DNS rebinding) and the connection cap
    web/metrics.py              Prometheus metrics from one snapshot
    web/ping.py                 /ping/<token> for push targets
    web/render.py               answers built off the loop, once per snapshot
    web/stream.py               GET /api/events (Server-Sent Events)
"""

__version__ = "1.0.0"
