"""The kinds of check (SPEC section 14) as the targets file spells them, validated at load.

A target's kind follows from its keys: ``push_token`` makes a push target, ``log`` a log-file
target, ``url = "tcp://host:port"`` a TCP target, an http(s) ``url`` an HTTP one. Keys of one
kind on a target of another are config errors naming the target, as are a bad JSONPath, an
unknown operator, a regular expression that does not compile, or an unreadable CA file: a
mistake shows at start (or on SIGHUP, which then keeps the running configuration), never as
a failing check at 3 a.m.

Push and log targets have no URL of their own; theirs is ``push://<name>`` and
``file://<path>``, so everything that shows a URL (pages, alerts, the state file) has one,
and the push token, a secret, is never part of it.
"""

from __future__ import annotations

import math
import re
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from keepalive.errors import ConfigError
from keepalive.probe.conditions import ConditionError, parse_condition
from keepalive.scrub import register_secret

if TYPE_CHECKING:
    from keepalive.targets import Target

MIN_TOKEN = 16
MAX_TOKEN = 128
# Letters a token may hold: it travels in a URL path, unescaped (RFC 3986 unreserved).
_TOKEN = re.compile(r"^[A-Za-z0-9._~-]+$")
MAX_PATTERNS = 50
MAX_PATTERN = 1000
MAX_CONDITIONS = 50
MAX_WARN_DAYS = 3650
PUSH_KEYS = frozenset({"push_token", "grace"})
LOG_KEYS = frozenset({"log", "patterns", "window", "max_matches"})
HTTP_KEYS = frozenset(
    {"conditions", "expect_status", "max_latency_ms", "reuse_connection", "follow_redirects"}
)
HTTPS_KEYS = frozenset({"tls_ca_file"})


def _seconds(where: str, key: str, value: Any, minimum: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < minimum
    ):
        raise ConfigError(f"{where}: {key}={value!r} is invalid: expected a number of seconds >= {minimum:g}")
    return float(value)


def _strings(where: str, key: str, value: Any, most: int) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if (
        not isinstance(items, list)
        or not items
        or len(items) > most
        or not all(isinstance(i, str) and i for i in items)
    ):
        raise ConfigError(
            f"{where}: {key}={value!r} is invalid: expected a string or a list of 1 to {most} strings"
        )
    return items


def _token(where: str, value: Any) -> str:
    # The value itself is never shown: it is a secret (someone's typo of it too).
    if not isinstance(value, str) or not MIN_TOKEN <= len(value) <= MAX_TOKEN or not _TOKEN.match(value):
        raise ConfigError(
            f"{where}: push_token is invalid: expected {MIN_TOKEN} to {MAX_TOKEN} characters of "
            "A-Z a-z 0-9 . _ ~ - (make one: python -c 'import secrets; print(secrets.token_urlsafe())')"
        )
    register_secret(value)
    return value


def _patterns(where: str, value: Any) -> tuple[str, ...]:
    items = _strings(where, "patterns", value, MAX_PATTERNS)
    for item in items:
        if len(item) > MAX_PATTERN:
            raise ConfigError(f"{where}: patterns: a pattern is longer than {MAX_PATTERN} characters")
        try:
            re.compile(item)
        except re.error as exc:
            raise ConfigError(
                f"{where}: patterns: {item!r} is not a valid regular expression: {exc}"
            ) from None
    return tuple(items)


def _conditions(where: str, value: Any) -> tuple[Any, ...]:
    items = _strings(where, "conditions", value, MAX_CONDITIONS)
    parsed = []
    for item in items:
        try:
            parsed.append(parse_condition(item))
        except ConditionError as exc:
            raise ConfigError(f"{where}: conditions: {item!r} is invalid: {exc}") from None
    return tuple(parsed)


def _warn_days(where: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= MAX_WARN_DAYS for d in value
    ):
        raise ConfigError(
            f"{where}: cert_warn_days={value!r} is invalid: expected a list of whole days from 1 to "
            f"{MAX_WARN_DAYS}, e.g. [14, 3] ([] turns expiry warnings off)"
        )
    return tuple(sorted(set(value), reverse=True))


def ca_context(path: str) -> ssl.SSLContext:
    """A verifying client context that trusts the CA certificates in ``path`` (PEM). Raises
    OSError or ssl.SSLError."""
    context = ssl.create_default_context(cafile=path)
    return context


def _ca_file(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: tls_ca_file={value!r} is invalid: expected the path of a PEM file")
    try:
        ca_context(value)
    except FileNotFoundError:
        raise ConfigError(f"{where}: tls_ca_file={value!r} is invalid: the file does not exist") from None
    except ssl.SSLError as exc:  # before OSError, its base class
        raise ConfigError(
            f"{where}: tls_ca_file={value!r} is invalid: no PEM certificate in it ({exc.reason or exc})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{where}: tls_ca_file={value!r} cannot be read: {exc.strerror}") from None
    return value


def kind_options(where: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The kind keys present in ``raw`` (a target or [defaults]), validated and normalised."""
    out: dict[str, Any] = {}
    if "push_token" in raw:
        out["push_token"] = _token(where, raw["push_token"])
    if "grace" in raw:
        out["grace"] = _seconds(where, "grace", raw["grace"], 0)
    if "log" in raw:
        log = raw["log"]
        if not isinstance(log, str) or not log or "\x00" in log:
            raise ConfigError(f"{where}: log={log!r} is invalid: expected the path of a log file")
        out["log"] = log
    if "patterns" in raw:
        out["patterns"] = _patterns(where, raw["patterns"])
    if "window" in raw:
        out["window"] = _seconds(where, "window", raw["window"], 1)
    if "max_matches" in raw:
        value = raw["max_matches"]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1_000_000:
            raise ConfigError(
                f"{where}: max_matches={value!r} is invalid: expected an integer from 0 to 1000000"
            )
        out["max_matches"] = value
    if "conditions" in raw:
        out["conditions"] = _conditions(where, raw["conditions"])
    if "cert_warn_days" in raw:
        out["cert_warn_days"] = _warn_days(where, raw["cert_warn_days"])
    if "tls_ca_file" in raw:
        out["tls_ca_file"] = _ca_file(where, raw["tls_ca_file"])
    return out


def _check_tcp(where: str, url: str) -> None:
    from keepalive.targets import public_url  # targets imports this module

    shown = public_url(url)  # the error line must not quote a password put in the user-info
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{where}: url={shown!r} is invalid: not a valid URL ({exc})") from None
    if not parts.hostname or port is None or port == 0:
        raise ConfigError(
            f"{where}: url={shown!r} is invalid: expected tcp://host:port (a port from 1 to 65535)"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username is not None:
        raise ConfigError(
            f"{where}: url={shown!r} is invalid: a tcp:// URL is tcp://host:port and nothing else"
        )


def target_url(where: str, name: str, raw: dict[str, Any]) -> str | None:
    """The URL of a push, log or TCP target (validated); None for an HTTP target, whose url the
    caller checks as before."""
    kinds = [key for key in ("url", "push_token", "log") if key in raw]
    if len(kinds) > 1:
        raise ConfigError(
            f"{where}: {' and '.join(kinds)} name different kinds of check: give one "
            "(url for http(s):// or tcp://, push_token for a push target, log for a log file)"
        )
    if "push_token" in raw:
        return f"push://{quote(name, safe='')}"
    if "log" in raw:
        log = raw["log"]
        return Path(log).absolute().as_uri() if isinstance(log, str) and log else None
    url = raw.get("url")
    if isinstance(url, str) and url.lower().startswith("tcp://"):
        _check_tcp(where, url)
        return url
    return None


def check_target(where: str, target: Target, raw: dict[str, Any] | None = None) -> None:
    """Keys that make no sense for the target's kind; what a kind needs and was not given."""
    kind = target.kind
    given = set(raw) if raw is not None else set()
    foreign = {
        "push": LOG_KEYS | HTTP_KEYS | HTTPS_KEYS,
        "log": PUSH_KEYS | HTTP_KEYS | HTTPS_KEYS,
        "tcp": PUSH_KEYS | LOG_KEYS | HTTP_KEYS | HTTPS_KEYS,
        "http": PUSH_KEYS | LOG_KEYS,
    }[kind]
    wrong = sorted(given & foreign)
    if wrong:
        raise ConfigError(f"{where}: {wrong[0]} does not apply to a {kind} target")
    if kind == "log" and not target.patterns:
        raise ConfigError(
            f'{where}: patterns is missing: a log target needs patterns, e.g. ["ERROR", "Traceback"]'
        )
    if "tls_ca_file" in given and not target.url.startswith("https://"):
        raise ConfigError(f"{where}: tls_ca_file applies to https:// targets only")


def check_together(source: str, targets: Sequence[Target]) -> None:
    """Rules across targets: each push token belongs to one target."""
    seen: dict[str, str] = {}
    for target in targets:
        token = target.push_token
        if token is None:
            continue
        if token in seen:
            raise ConfigError(
                f"{source}: target {target.name!r}: push_token is the same as target {seen[token]!r}'s "
                "(each push target needs its own)"
            )
        seen[token] = target.name


def describe(target: Target) -> str:
    """What a check of ``target`` looks at, in one line (``--check-config``)."""
    from keepalive.probe.push import short_duration  # the push module imports targets, as we do

    kind = target.kind
    if kind == "push":
        grace = target.grace if target.grace is not None else target.interval
        return (
            f"push: a ping expected every {short_duration(target.interval)}, grace {short_duration(grace)} "
            "(GET/POST /ping/<push_token>)"
        )
    if kind == "log":
        patterns = ", ".join(repr(p) for p in target.patterns)
        return (
            f"log: fail when more than {target.max_matches} line(s) match {patterns} "
            f"within {short_duration(target.window)}"
        )
    if kind == "tcp":
        return "tcp: passes when a connection opens"
    parts = [f"expect {'/'.join(target.expect_status)}"]
    if target.conditions:
        parts.append("conditions " + "; ".join(c.text for c in target.conditions))
    if target.url.startswith("https://"):
        days = ",".join(str(d) for d in target.cert_warn_days)
        parts.append(f"cert warnings at {days} days left" if days else "cert warnings off")
        if target.tls_ca_file:
            parts.append(f"CA {target.tls_ca_file}")
    return ", ".join(parts)


def once_note(target: Target) -> str:
    """What a passing ``--once`` check of ``target`` did and did not look at."""
    if target.kind == "log":
        return "file readable (new lines are matched by the running monitor)"
    return ""
