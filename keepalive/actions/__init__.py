"""Keeping targets alive, not only watching them (SPEC 15 and 16).

result.py             RemediationResult: what one run of a target's ``on_down`` did (pure)
remediation.py        Remediator: runs ``on_down`` argument lists (no shell) in their own
                      process group, off the loop, bounded in time, output and number
settings.py           TELEGRAM_COMMANDS and TELEGRAM_SILENT_RECOVERY
telegram_commands.py  the bot's getUpdates long polling and its commands (/status ...)
commands.py           what each chat command does, as pure text in and text out
api.py                POST /api/targets/<name>/remediate (behind the API token)
wiring.py             KeepAlive: attaches all of the above to a running monitor
"""
