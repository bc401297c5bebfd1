"""The targets-file keys of remediation (SPEC 15), validated naming the target."""

from __future__ import annotations

import math
from typing import Any

from keepalive.errors import ConfigError

KEYS = frozenset({"on_down", "max_remediations", "remediation_timeout"})
MAX_ARGS = 64
MAX_ARG = 4096
MAX_RUNS = 100
MAX_TIMEOUT = 3600.0


def remediation_options(where: str, raw: dict[str, Any]) -> dict[str, Any]:
    """``on_down`` (an argument list), ``max_remediations``, ``remediation_timeout`` from ``raw``."""
    out: dict[str, Any] = {}
    if "on_down" in raw:
        value = raw["on_down"]
        if (
            not isinstance(value, list)
            or not 1 <= len(value) <= MAX_ARGS
            or not all(isinstance(arg, str) and len(arg) <= MAX_ARG and "\x00" not in arg for arg in value)
            or not value[0].strip()
        ):
            hint = " (an argument list, not a shell line)" if isinstance(value, str) else ""
            raise ConfigError(
                f"{where}: on_down is invalid{hint}: expected a list of strings "
                'like ["systemctl", "restart", "app"]'
            )
        out["on_down"] = tuple(value)
    if "max_remediations" in raw:
        runs = raw["max_remediations"]
        if isinstance(runs, bool) or not isinstance(runs, int) or not 0 <= runs <= MAX_RUNS:
            raise ConfigError(
                f"{where}: max_remediations={runs!r} is invalid: expected an integer from 0 to {MAX_RUNS}"
            )
        out["max_remediations"] = runs
    if "remediation_timeout" in raw:
        limit = raw["remediation_timeout"]
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int | float)
            or not math.isfinite(limit)
            or not 0.1 <= limit <= MAX_TIMEOUT
        ):
            raise ConfigError(
                f"{where}: remediation_timeout={limit!r} is invalid: "
                f"expected seconds from 0.1 to {MAX_TIMEOUT:g}"
            )
        out["remediation_timeout"] = float(limit)
    return out
