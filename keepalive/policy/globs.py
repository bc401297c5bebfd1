"""Target-name globs (``db-*``, ``*``, ``api-[12]``) as silences and maintenance windows use them.

Matching ignores case: target names are unique regardless of case (keepalive.targets), so
``DB-*`` meaning something else than ``db-*`` would only surprise. The globs of one rule are
compiled into one regular expression, so a match is one C call whatever their number.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from typing import Any

MAX_GLOBS = 100
MAX_GLOB_LENGTH = 200


def read_globs(value: Any, what: str) -> tuple[str, ...]:
    """``value`` (one glob or a list of globs) validated; raises ValueError starting with ``what``."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or len(items) > MAX_GLOBS:
        raise ValueError(
            f"{what}={_show(value)} is invalid: expected a glob or a list of 1 to {MAX_GLOBS} globs"
        )
    for item in items:
        if (
            not isinstance(item, str)
            or not item.strip()
            or len(item) > MAX_GLOB_LENGTH
            or not item.isprintable()
        ):
            raise ValueError(
                f"{what}={_show(value)} is invalid: each glob is a printable text of 1 to "
                f"{MAX_GLOB_LENGTH} characters"
            )
    return tuple(item.strip() for item in items)


def compile_globs(globs: Sequence[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs), re.IGNORECASE)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
