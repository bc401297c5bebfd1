"""Targets: the single HEALTH_CHECK_URL, or many from a TOML targets file (SPEC section 4)."""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from keepalive.errors import ConfigError

if TYPE_CHECKING:
    from keepalive.policy.maintenance import Window
    from keepalive.probe.conditions import Condition

MIN_INTERVAL = 0.1

# Keys a [[targets]] entry may hold; [defaults] takes the same ones but name and url.
TARGET_KEYS = frozenset(
    {
        "name",
        "url",
        "interval",
        "failure_threshold",
        "success_threshold",
        "timeout",
        "expect_status",
        "max_latency_ms",
        "reuse_connection",
        "follow_redirects",
        "severity",
        "labels",
        # Kinds of check (SPEC 14, keepalive.probe.kinds): the kind follows from the keys.
        "push_token",
        "grace",
        "log",
        "patterns",
        "window",
        "max_matches",
        "conditions",
        "cert_warn_days",
        "tls_ca_file",
        # Targets whose outage holds this one's DOWN (SPEC 13, keepalive.policy.dependencies).
        "depends_on",
        # Remediation (SPEC 15, keepalive.actions.options): the command run when it goes down.
        "on_down",
        "max_remediations",
        "remediation_timeout",
    }
)
DEFAULT_KEYS = TARGET_KEYS - {
    "name",
    "url",
    "push_token",
    "log",
    "conditions",
    "patterns",
    "depends_on",
    "on_down",
}


@dataclass(frozen=True, slots=True)
class Target:
    """One watched /health endpoint and how to judge it."""

    name: str
    url: str
    interval: float
    failure_threshold: int
    success_threshold: int
    timeout: float
    expect_status: tuple[str, ...] = ("ok",)
    max_latency_ms: float | None = None
    # A reused keep-alive connection can hide a server that accepts no new connections,
    # so each check opens a fresh one unless the operator opts in.
    reuse_connection: bool = False
    # Redirects are followed (at most 5, never onto the monitor itself); false judges the
    # redirect answer itself, so a moved endpoint shows as "HTTP 301".
    follow_redirects: bool = True
    # Alertmanager labels (SPEC 17): severity, and extra (name, value) pairs sorted by name.
    severity: str = "critical"
    labels: tuple[tuple[str, str], ...] = ()
    # Kinds of check other than HTTP (SPEC 14); see keepalive.probe.kinds for how each is read.
    push_token: str | None = None  # push: a secret, never shown (the url is push://<name>)
    grace: float | None = None  # push: slack after the interval; None: the interval
    log: str | None = None  # log file: its path (the url is file://<path>)
    patterns: tuple[str, ...] = ()
    window: float = 300.0
    max_matches: int = 0
    conditions: tuple[Condition, ...] = ()  # http: JSONPath conditions on the body
    cert_warn_days: tuple[int, ...] = (14, 3)  # https: EXPIRING thresholds, () off
    tls_ca_file: str | None = None  # https: a private CA to trust (PEM)
    depends_on: tuple[str, ...] = ()  # DOWN held while all of these are down (SPEC 13)
    # Remediation (SPEC 15): an argument list run (no shell) after a DOWN is stored.
    on_down: tuple[str, ...] = ()
    max_remediations: int = 3  # automatic runs per outage
    remediation_timeout: float = 60.0  # seconds, then its process group is killed

    @property
    def public_url(self) -> str:
        """The URL as it may be shown anywhere (events, alerts, pages, metrics): no password."""
        return public_url(self.url)

    @property
    def kind(self) -> str:
        """``http``, ``tcp``, ``push`` or ``log``: from the keys the target was given."""
        if self.push_token is not None:
            return "push"
        if self.log is not None:
            return "log"
        if self.url.startswith("tcp://"):
            return "tcp"
        return "http"


def check_url(value: str) -> str | None:
    """Return why ``value`` is not an http(s) URL with a host, or None when it is."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return "expected an http:// or https:// URL"
    if not parts.hostname:
        return "the URL has no host"
    return None


_USERINFO_PASSWORD = re.compile(r"^([^:/?#]*://[^/?#@:]*):[^/?#@]*@")


def public_url(url: str) -> str:
    """``url`` with the password of its user-info replaced by ``***`` (SPEC section 6)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        # Unparseable (a bad port, half an IPv6 host): its user-info may still hold a password,
        # and this is exactly the URL an error message quotes.
        return _USERINFO_PASSWORD.sub(r"\1:***@", url)
    if password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def name_from_url(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


def _where(source: str, target: str | None) -> str:
    return f"{source}: target {target!r}" if target else f"{source}: [defaults]"


def _number(where: str, key: str, value: Any, minimum: float, integer: bool) -> float:
    allowed = f"an integer >= {int(minimum)}" if integer else f"a number >= {minimum:g}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: {key}={value!r} is invalid: expected {allowed}")
    if integer and not isinstance(value, int):
        raise ConfigError(f"{where}: {key}={value!r} is invalid: expected {allowed}")
    if not math.isfinite(value) or value < minimum:
        raise ConfigError(f"{where}: {key}={value!r} is invalid: expected {allowed}")
    return value


def _expect(where: str, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(item, str) and item for item in items):
        raise ConfigError(
            f"{where}: expect_status={value!r} is invalid: expected a string or a list of strings"
        )
    return tuple(items)


_LABEL_VALUE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Set by the monitor itself on every Alertmanager alert; a target may not redefine them.
RESERVED_LABELS = frozenset({"alertname", "target", "severity"})


def _severity(where: str, value: Any) -> str:
    if not isinstance(value, str) or not _LABEL_VALUE.match(value):
        raise ConfigError(
            f"{where}: severity={value!r} is invalid: expected a word such as critical or warning"
        )
    return value


def _labels(where: str, value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or len(value) > 20:
        raise ConfigError(f'{where}: labels is invalid: expected a table of at most 20 name = "value" pairs')
    for name, text in value.items():
        if not _LABEL_NAME.match(name) or name.startswith("__") or name in RESERVED_LABELS:
            raise ConfigError(
                f"{where}: labels.{name} is invalid: expected a label name ([A-Za-z_][A-Za-z0-9_]*, "
                "not __*, alertname, target or severity)"
            )
        if not isinstance(text, str) or len(text) > 200 or not text.isprintable():
            raise ConfigError(
                f"{where}: labels.{name}={text!r} is invalid: expected a string of at most 200 characters"
            )
    return tuple(sorted(value.items()))


def _options(where: str, raw: dict[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
    """Validate the per-target options present in ``raw``; returns them normalised."""
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
    out: dict[str, Any] = {}
    if "interval" in raw:
        out["interval"] = float(_number(where, "interval", raw["interval"], MIN_INTERVAL, False))
    if "timeout" in raw:
        out["timeout"] = float(_number(where, "timeout", raw["timeout"], 0.01, False))
    for key in ("failure_threshold", "success_threshold"):
        if key in raw:
            out[key] = int(_number(where, key, raw[key], 1, True))
    if "max_latency_ms" in raw:
        out["max_latency_ms"] = float(_number(where, "max_latency_ms", raw["max_latency_ms"], 1, False))
    if "expect_status" in raw:
        out["expect_status"] = _expect(where, raw["expect_status"])
    if "severity" in raw:
        out["severity"] = _severity(where, raw["severity"])
    if "labels" in raw:
        out["labels"] = _labels(where, raw["labels"])
    if "depends_on" in raw:
        from keepalive.policy.dependencies import read_depends_on

        out["depends_on"] = read_depends_on(where, raw["depends_on"])
    for key in ("reuse_connection", "follow_redirects"):
        if key in raw:
            if not isinstance(raw[key], bool):
                raise ConfigError(f"{where}: {key}={raw[key]!r} is invalid: expected true or false")
            out[key] = raw[key]
    from keepalive.probe.kinds import kind_options  # the probe package imports this module

    out.update(kind_options(where, raw))
    from keepalive.actions.options import remediation_options

    out.update(remediation_options(where, raw))
    return out


def _name_key(name: str) -> str:
    """Names that differ only in case or spacing read as one on a page or in an alert."""
    return " ".join(name.split()).casefold()


def load_targets_file(
    path: Path, base: dict[str, Any], windows: list[Window] | None = None
) -> tuple[Target, ...]:
    """Read a targets file. ``base`` holds interval, failure_threshold, success_threshold and
    timeout from the settings; the file's [defaults] and each target's own keys override them."""
    source = f"MONITOR_TARGETS_FILE {path}"
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"MONITOR_TARGETS_FILE={str(path)!r} is invalid: the file does not exist") from None
    except OSError as exc:
        raise ConfigError(f"MONITOR_TARGETS_FILE={str(path)!r} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: not UTF-8 text (byte {exc.start})") from None

    unknown = sorted(set(data) - {"defaults", "targets", "maintenance"})
    if unknown:
        raise ConfigError(
            f"{source}: unknown section {unknown[0]!r} (allowed: defaults, targets, maintenance)"
        )
    defaults_raw = data.get("defaults", {})
    if not isinstance(defaults_raw, dict):
        raise ConfigError(f"{source}: [defaults] must be a table")
    defaults = {**base, **_options(_where(source, None), defaults_raw, DEFAULT_KEYS)}

    entries = data.get("targets")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{source}: no [[targets]] entries (at least one is required)")

    targets: list[Target] = []
    seen: dict[str, str] = {}
    for index, raw in enumerate(entries, start=1):
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: [[targets]] entry {index} must be a table")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{source}: [[targets]] entry {index} has no name (a unique name is required)")
        where = _where(source, name)
        if name != name.strip():
            raise ConfigError(f"{where}: the name starts or ends with white space (remove it)")
        earlier = seen.get(_name_key(name))
        if earlier == name:
            raise ConfigError(f"{where}: duplicate name (each target needs its own name)")
        if earlier is not None:
            raise ConfigError(
                f"{where}: duplicate name: {name!r} and {earlier!r} differ only in case or spacing"
                " (each target needs its own name)"
            )
        seen[_name_key(name)] = name
        options = {**defaults, **_options(where, raw, TARGET_KEYS)}
        options.pop("name", None)
        from keepalive.probe.kinds import check_target, target_url  # the probe package imports us

        url = target_url(where, name, raw)
        if url is None:
            url = raw.get("url")
            if not isinstance(url, str) or not url:
                raise ConfigError(f"{where}: url is missing (or push_token, or log)")
            problem = check_url(url)
            if problem:
                raise ConfigError(f"{where}: url={public_url(url)!r} is invalid: {problem}")
        options.pop("url", None)
        target = Target(name=name, url=url, **options)
        check_target(where, target, raw)
        targets.append(target)
    from keepalive.probe.kinds import check_together

    check_together(source, targets)
    from keepalive.policy.dependencies import check_graph
    from keepalive.policy.maintenance import read_windows

    check_graph({t.name: t.depends_on for t in targets}, source)
    found = read_windows(data.get("maintenance"), source)
    if windows is not None:
        windows.extend(found)
    return tuple(targets)
