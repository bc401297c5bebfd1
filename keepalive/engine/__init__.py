"""The engine: schedules checks, turns results into alerts, persists state, builds snapshots.

app.py          the composition root: settings -> lock -> events -> outbox -> notifiers ->
                worker -> checker -> monitor; runs web endpoint, checks, delivery, heartbeat;
                SIGHUP reload (read off the loop) and stop in reverse order
reader.py       SIGHUP's settings read in a spawned child process (its own GIL)
monitor.py      the running monitor: checks on the schedule, feeds the state machine,
                answers for the whole (snapshot, health, reload)
scheduler.py    when: a heap of due times and one timer on a TICK grid, on a loop clock
                that is passed in (monotonic; a test moves it by hand)
runtime.py      what: TargetRuntime (configuration + schedule bookkeeping) and Observed
                (what checks showed), and the pure O(n) ``reconcile`` of a reload
announcer.py    state-machine results -> events, log lines and alerts, through one
                Reporter; the AlertPolicy seam where holds (SPEC 13, keepalive/policy) go
persister.py    alerts -> the outbox, then holds, then states -> state.json; how the alert
                path is doing
snapshot.py     the typed, immutable MonitorSnapshot and its JSON renderers
statestore.py   state.json: validated on load, bad records set aside under unique names
statelock.py    one monitor per state directory (flock on MONITOR_STATE_DIR/lock)
history.py      a bounded ring of recent results per target, and its frozen view
replicas.py     rendezvous hashing of (replica, target): who checks what (SPEC 17)
share.py        this replica's share of the targets file, at start and on reload
"""
