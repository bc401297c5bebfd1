"""Quiet on purpose (SPEC 13): what holds a notification, and what is released when a hold ends.

    durations.py    ``90s``, ``45m``, ``2h``, ``1h30m`` parsed and shown
    globs.py        target-name globs (``db-*``) as silences and windows match them
    settings.py     MONITOR_API_TOKEN, MONITOR_HTTP_AUTH, MAX_SILENCE
    silences.py     the silence book: ad-hoc silences kept under MONITOR_STATE_DIR
    maintenance.py  recurring windows from the targets file, in IANA time zones
    dependencies.py ``depends_on``: a child's DOWN held while all its parents are down
    holds.py        the AlertPolicy: decides against what was NOTIFIED what is held and what
                    is released when a hold ends; persisted, so a restart keeps all of it

Checks never stop and the state machine never learns about holds: only notifications wait.
"""
