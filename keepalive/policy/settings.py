"""Settings of SPEC 12 and 13: the API token, what it guards, and the longest silence.

Kept apart from ``config.py`` (which holds one ``quiet`` field of this type), like
keepalive/fanout.py. ``MONITOR_API_TOKEN`` is a secret: registered with keepalive.scrub here,
before anything can log it, and never shown by --check-config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from keepalive.errors import ConfigError
from keepalive.policy.durations import ALLOWED, format_duration, parse_duration
from keepalive.scrub import mask, register_secret

DEFAULTS: dict[str, str] = {
    "MONITOR_API_TOKEN": "",
    "MONITOR_HTTP_AUTH": "writes",
    "MAX_SILENCE": "7d",
}
SECRET_NAMES = frozenset({"MONITOR_API_TOKEN"})
AUTH_MODES = ("writes", "all")
MIN_TOKEN = 32
# A silence longer than a year is a forgotten one by another name.
MAX_MAX_SILENCE = 366 * 86400.0


@dataclass(frozen=True, slots=True)
class Quiet:
    api_token: str | None = None  # None: generated into MONITOR_STATE_DIR/api_token
    http_auth: str = "writes"
    max_silence: float = 7 * 86400.0

    def __repr__(self) -> str:
        return f"Quiet(api_token={'set' if self.api_token else 'file'}, http_auth={self.http_auth!r})"


def load_quiet(raw: Mapping[str, str]) -> Quiet:
    """Validate the SPEC 12/13 settings from the merged raw settings."""

    def get(key: str) -> str:
        return raw.get(key, DEFAULTS[key]).strip()

    token = get("MONITOR_API_TOKEN")
    if token:
        register_secret(token)
        if len(token) < MIN_TOKEN or not token.isascii() or not token.isprintable() or " " in token:
            raise ConfigError(
                f"MONITOR_API_TOKEN={mask(token)} is invalid: expected at least {MIN_TOKEN} printable "
                "ASCII characters without spaces (or leave it unset to have one generated)"
            )
    auth = get("MONITOR_HTTP_AUTH").lower()
    if auth not in AUTH_MODES:
        raise ConfigError(
            f"MONITOR_HTTP_AUTH={get('MONITOR_HTTP_AUTH')!r} is invalid: expected writes or all"
        )
    try:
        max_silence = parse_duration(get("MAX_SILENCE"))
    except ValueError:
        raise ConfigError(f"MAX_SILENCE={get('MAX_SILENCE')!r} is invalid: expected {ALLOWED}") from None
    if max_silence > MAX_MAX_SILENCE:
        raise ConfigError(
            f"MAX_SILENCE={get('MAX_SILENCE')!r} is invalid: "
            f"expected at most {format_duration(MAX_MAX_SILENCE)}"
        )
    return Quiet(api_token=token or None, http_auth=auth, max_silence=max_silence)


def shown(name: str, value: str) -> str:
    """How --check-config shows one of these settings."""
    if name == "MONITOR_API_TOKEN":
        return mask(value) if value else "(unset: generated into MONITOR_STATE_DIR/api_token)"
    return value
