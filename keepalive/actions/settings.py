"""Settings of SPEC 16: Telegram commands and quiet recoveries.

Kept apart from ``config.py`` (which holds one ``keep`` field of this type), like
keepalive/fanout.py and keepalive/policy/settings.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from keepalive.errors import ConfigError

DEFAULTS: dict[str, str] = {
    "TELEGRAM_COMMANDS": "false",
    "TELEGRAM_SILENT_RECOVERY": "false",
}
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True, slots=True)
class Keep:
    telegram_commands: bool = False  # answer /status, /silence ... in the chats of TELEGRAM_CHAT_ID
    telegram_silent_recovery: bool = False  # RECOVERED messages without a sound


def _flag(raw: Mapping[str, str], name: str) -> bool:
    value = raw.get(name, DEFAULTS[name]).strip()
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ConfigError(f"{name}={value!r} is invalid: expected true or false")


def load_keep(raw: Mapping[str, str], telegram: bool) -> Keep:
    """Validate the SPEC 16 settings from the merged raw settings; ``telegram``: whether
    TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID are set (commands need both)."""
    commands = _flag(raw, "TELEGRAM_COMMANDS")
    if commands and not telegram:
        raise ConfigError(
            "TELEGRAM_COMMANDS=true is invalid: it needs TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID "
            "(the chats whose commands are answered)"
        )
    return Keep(telegram_commands=commands, telegram_silent_recovery=_flag(raw, "TELEGRAM_SILENT_RECOVERY"))
