"""Settings: defaults, `.env` / environment overrides, validation (SPEC section 3).

Settings are read once into a frozen ``Settings``. A bad value raises ``ConfigError`` with one
line naming the setting, the value and what is allowed; secrets are never echoed.
"""

from __future__ import annotations

import math
import os
import re
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from dotenv import dotenv_values

from keepalive.actions.settings import DEFAULTS as KEEP_DEFAULTS
from keepalive.actions.settings import Keep, load_keep
from keepalive.errors import ConfigError
from keepalive.fanout import DEFAULTS as FANOUT_DEFAULTS
from keepalive.fanout import SECRET_NAMES as FANOUT_SECRETS
from keepalive.fanout import Fanout, load_fanout
from keepalive.fanout import shown as fanout_shown
from keepalive.policy.maintenance import Window
from keepalive.policy.settings import DEFAULTS as QUIET_DEFAULTS
from keepalive.policy.settings import SECRET_NAMES as QUIET_SECRETS
from keepalive.policy.settings import Quiet, load_quiet
from keepalive.policy.settings import shown as quiet_shown
from keepalive.scrub import mask, register_secret
from keepalive.targets import MIN_INTERVAL, Target, check_url, load_targets_file, public_url

ROOT = Path(__file__).resolve().parent.parent

DEFAULTS: dict[str, str] = {
    "HEALTH_CHECK_URL": "http://localhost:5004/health",
    "CHECK_INTERVAL_SECONDS": "600",
    "FAILURE_THRESHOLD": "2",
    "REQUEST_TIMEOUT": "5",
    "REPEAT_ALERTS": "true",
    "SUCCESS_THRESHOLD": "1",
    "DIGEST_AFTER": "3",
    "HEARTBEAT_URL": "",
    "MONITOR_TARGETS_FILE": "",
    "MONITOR_MAX_CONCURRENCY": "1000",
    "TELEGRAM_BOT_TOKEN": "YOUR_TELEGRAM_BOT_TOKEN",
    "TELEGRAM_BOT_TOKEN_FILE": "",
    "TELEGRAM_CHAT_ID": "YOUR_TELEGRAM_CHAT_ID",
    "TELEGRAM_API_URL": "https://api.telegram.org",
    "SMTP_SERVER": "smtp.example.com",
    "SMTP_PORT": "587",
    "SMTP_USERNAME": "your_email@example.com",
    "SMTP_PASSWORD": "YOUR_EMAIL_PASSWORD",
    "SMTP_PASSWORD_FILE": "",
    "SMTP_SECURITY": "starttls",
    "SMTP_CA_FILE": "",
    "EMAIL_SENDER": "",
    "EMAIL_RECIPIENT": "alert_recipient@example.com",
    "MONITOR_HTTP_HOST": "127.0.0.1",
    "MONITOR_HTTP_PORT": "5005",
    "MONITOR_HTTP_ALLOWED_HOSTS": "",
    "MONITOR_STATE_DIR": "state",
    "MONITOR_LOG_FILE": "monitor.log",
    "MONITOR_EVENTS_FILE": "logs/monitor_events.jsonl",
    "MONITOR_LOG_MAX_BYTES": "10MiB",
    "MONITOR_LOG_BACKUPS": "5",
    "MONITOR_PID_FILE": "monitor.pid",
    "STOP_GRACE_SECONDS": "",
    **FANOUT_DEFAULTS,
    **QUIET_DEFAULTS,
    **KEEP_DEFAULTS,
}

SECRET_NAMES = frozenset({"TELEGRAM_BOT_TOKEN", "SMTP_PASSWORD"}) | FANOUT_SECRETS | QUIET_SECRETS
# A secret may instead be read from a file (systemd credentials, Docker secrets, a 0600 file).
SECRET_FILES = {"TELEGRAM_BOT_TOKEN": "TELEGRAM_BOT_TOKEN_FILE", "SMTP_PASSWORD": "SMTP_PASSWORD_FILE"}
# Settings naming a file or directory: made absolute against the repository root.
PATH_SETTINGS = frozenset(
    {
        "MONITOR_TARGETS_FILE",
        "TELEGRAM_BOT_TOKEN_FILE",
        "SMTP_PASSWORD_FILE",
        "SMTP_CA_FILE",
        "MONITOR_STATE_DIR",
        "MONITOR_LOG_FILE",
        "MONITOR_EVENTS_FILE",
        "MONITOR_PID_FILE",
    }
)
URL_SETTINGS = ("HEALTH_CHECK_URL", "HEARTBEAT_URL", "TELEGRAM_API_URL")
# A secret file is a token or a password; anything larger is the wrong file.
SECRET_FILE_LIMIT = 64 * 1024
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gib": 1024**3,
}
_SIZE = re.compile(r"^(\d+)\s*([a-z]*)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A DNS name (RFC 1123 labels); IP literals need no listing, the Host check answers them anyway.
_HOST_NAME = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(?:\.(?!-)[a-z0-9-]{1,63}(?<!-))*")
PLACEHOLDERS = frozenset(
    {
        "YOUR_TELEGRAM_BOT_TOKEN",
        "YOUR_TELEGRAM_CHAT_ID",
        "smtp.example.com",
        "your_email@example.com",
        "YOUR_EMAIL_PASSWORD",
        "alert_recipient@example.com",
    }
)
SMTP_SECURITY_MODES = ("starttls", "ssl", "none")
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
_TOKEN = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
# A chat id may name a forum topic after a colon (SPEC 16): -1001234567890:42.
_CHAT_ID = re.compile(r"^(-?\d+|@[A-Za-z][A-Za-z0-9_]{3,})(:\d{1,10})?$")
_EMAIL = re.compile(r"^[^@\s,<>]+@[^@\s,<>]+$")


def is_placeholder(value: str) -> bool:
    """A value copied unchanged from the example (or left empty) switches its channel off."""
    return not value or value in PLACEHOLDERS or value.startswith("YOUR_")


@dataclass(frozen=True)
class Channel:
    """Whether an alert channel is on, and why not when it is off."""

    name: str
    enabled: bool
    why: str


@dataclass(frozen=True)
class Settings:
    health_check_url: str
    check_interval: float
    failure_threshold: int
    request_timeout: float
    repeat_alerts: bool
    success_threshold: int
    digest_after: int
    heartbeat_url: str | None
    targets_file: Path | None
    max_concurrency: int
    telegram_bot_token: str | None
    telegram_chat_ids: tuple[str, ...]
    telegram_api_url: str
    smtp_server: str | None
    smtp_port: int
    smtp_username: str | None
    smtp_password: str | None
    smtp_security: str
    email_sender: str | None
    email_recipients: tuple[str, ...]
    http_host: str
    http_port: int
    state_dir: Path
    log_file: Path
    events_file: Path
    pid_file: Path
    targets: tuple[Target, ...]
    root: Path = ROOT
    raw: Mapping[str, str] = field(default_factory=dict, repr=False)
    # A private CA for the mail server (SMTP_CA_FILE); None: the system's trust store.
    smtp_ca_file: Path | None = None
    # Size at which the log and events files are rotated (0: never, e.g. for logrotate) and
    # how many rotated files of each are kept.
    log_max_bytes: int = 10 * 1024 * 1024
    log_backups: int = 5
    # Seconds stop_monitor.sh waits after SIGTERM before SIGKILL.
    stop_grace: int = 10
    # Webhooks, Apprise, Alertmanager and replicas (SPEC 17): keepalive/fanout.py.
    fanout: Fanout = field(default_factory=Fanout)
    # The API token, MONITOR_HTTP_AUTH and MAX_SILENCE (SPEC 12, 13): keepalive/policy/settings.py.
    quiet: Quiet = field(default_factory=Quiet)
    # TELEGRAM_COMMANDS and TELEGRAM_SILENT_RECOVERY (SPEC 16): keepalive/actions/settings.py.
    keep: Keep = field(default_factory=Keep)
    # More names the endpoint answers to (a DNS alias, a reverse proxy passing the visitor's
    # Host), besides the machine's own names and IP addresses (keepalive/web/guard.py).
    http_allowed_hosts: tuple[str, ...] = ()
    # [[maintenance]] windows of the targets file (SPEC 13).
    maintenance: tuple[Window, ...] = ()

    @property
    def telegram(self) -> Channel:
        if not self.telegram_bot_token:
            return Channel("telegram", False, "TELEGRAM_BOT_TOKEN is not set")
        if not self.telegram_chat_ids:
            return Channel("telegram", False, "TELEGRAM_CHAT_ID is not set")
        return Channel("telegram", True, f"{len(self.telegram_chat_ids)} chat(s)")

    @property
    def email(self) -> Channel:
        if not self.smtp_server:
            return Channel("email", False, "SMTP_SERVER is not set")
        if not self.email_recipients:
            return Channel("email", False, "EMAIL_RECIPIENT is not set")
        return Channel(
            "email",
            True,
            f"{self.smtp_server}:{self.smtp_port} {self.smtp_security}, "
            f"{len(self.email_recipients)} recipient(s)",
        )

    def channels(self) -> tuple[Channel, ...]:
        # The channels of SPEC 17 are listed only when on: most set-ups use none of them.
        fanout = tuple(Channel(name, on, why) for name, on, why in self.fanout.channels() if on)
        return (Channel("log", True, "always on"), self.telegram, self.email, *fanout)

    def channel_summary(self) -> str:
        """One line: which channels are on, and why the others are off."""
        on = [c.name for c in self.channels() if c.enabled]
        off = [f"{c.name} ({c.why})" for c in self.channels() if not c.enabled]
        return f"channels on=[{', '.join(on)}] off=[{', '.join(off)}]"

    def effective(self) -> list[tuple[str, str]]:
        """Every setting's effective value, secrets masked, URL passwords masked, for --check-config."""
        secrets = {"TELEGRAM_BOT_TOKEN": self.telegram_bot_token, "SMTP_PASSWORD": self.smtp_password}
        rows: list[tuple[str, str]] = []
        for name in DEFAULTS:
            value = self.raw.get(name, DEFAULTS[name])
            if name in FANOUT_DEFAULTS:
                value = fanout_shown(name, value)
            elif name in QUIET_DEFAULTS:
                value = quiet_shown(name, value)
            elif name in SECRET_NAMES:
                value = mask(secrets[name])
                if self.raw.get(SECRET_FILES[name]):
                    value += f" from {SECRET_FILES[name]}"
            elif name in URL_SETTINGS:
                value = public_url(value)
            elif name == "STOP_GRACE_SECONDS" and not value:
                value = f"{self.stop_grace} (REQUEST_TIMEOUT + 5 s)"
            rows.append((name, value))
        return rows


def _bad(name: str, value: str, allowed: str) -> ConfigError:
    shown = mask(value) if name in SECRET_NAMES else repr(value)
    return ConfigError(f"{name}={shown} is invalid: expected {allowed}")


def _float(name: str, value: str, minimum: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise _bad(name, value, f"a number of seconds >= {minimum:g}") from None
    if not math.isfinite(number) or number < minimum:
        raise _bad(name, value, f"a number of seconds >= {minimum:g}")
    return number


def _int(name: str, value: str, minimum: int, maximum: int | None = None) -> int:
    allowed = f"an integer >= {minimum}" if maximum is None else f"an integer from {minimum} to {maximum}"
    try:
        number = int(value)
    except ValueError:
        raise _bad(name, value, allowed) from None
    if number < minimum or (maximum is not None and number > maximum):
        raise _bad(name, value, allowed)
    return number


def _bool(name: str, value: str) -> bool:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise _bad(name, value, "true or false")


def _url(name: str, value: str) -> str:
    problem = check_url(value)
    if problem:
        raise ConfigError(f"{name}={public_url(value)!r} is invalid: {problem}")
    return value.rstrip("/") if name == "TELEGRAM_API_URL" else value


def _list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _host_names(name: str, value: str) -> tuple[str, ...]:
    """Comma-separated DNS names, lower case, without a trailing dot. No wildcard: a pattern
    would let a rebinding page in under any name it matched."""
    names: list[str] = []
    for item in _list(value):
        host = item.lower().rstrip(".")
        if not _HOST_NAME.fullmatch(host) or len(host) > 253:
            raise _bad(name, value, "comma-separated host names such as status.example.com (no wildcards)")
        names.append(host)
    return tuple(names)


def _path(root: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else root / path


def _plain_text(name: str, value: str) -> str:
    """Refuse control characters: in a setting they are a mistake (a stray newline or escape),
    and shown by --check-config or the scripts they would reach a terminal. Secrets may hold
    anything: they are never shown."""
    if name not in SECRET_NAMES and name not in PATH_SETTINGS and _CONTROL.search(value):
        raise _bad(name, value, "a value without control characters")
    return value


def path_setting(raw: Mapping[str, str], name: str, root: Path = ROOT) -> Path | None:
    """The setting ``name`` as an absolute path, or None when it is empty.

    Control characters are refused: such a path is a mistake, and it would reach terminals
    and the scripts' output."""
    value = raw.get(name, DEFAULTS[name])
    if not value:
        return None
    if _CONTROL.search(value):
        raise _bad(name, value, "a path without control characters")
    return _path(root, value)


def _required_path(raw: Mapping[str, str], name: str, root: Path) -> Path:
    path = path_setting(raw, name, root)
    if path is None:
        raise _bad(name, "", "a path")
    return path


def _size(name: str, value: str) -> int:
    match = _SIZE.match(value.strip().lower())
    if not match or match.group(2) not in _SIZE_UNITS:
        raise _bad(name, value, "a size in bytes >= 0, optionally with a unit: 10485760, 512KiB, 10MiB, 1GiB")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


def _secret(raw: Mapping[str, str], name: str, root: Path) -> str:
    """A secret from its setting, or from the file its ``_FILE`` setting names (not both)."""
    file_name = SECRET_FILES[name]
    direct = "" if is_placeholder(raw[name]) else raw[name]
    path = path_setting(raw, file_name, root)
    if path is None:
        return direct
    if direct:
        raise ConfigError(f"{name} and {file_name} are both set: expected only one of them")
    shown = repr(str(path))
    try:
        with path.open("rb") as handle:
            data = handle.read(SECRET_FILE_LIMIT + 1)
    except OSError as exc:
        raise ConfigError(f"{file_name}={shown} cannot be read: {exc.strerror}") from None
    if len(data) > SECRET_FILE_LIMIT:
        raise ConfigError(f"{file_name}={shown} is invalid: larger than {SECRET_FILE_LIMIT} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file_name}={shown} is invalid: not UTF-8 text (byte {exc.start})") from None
    # Editors and `echo` end the file with a newline; it is not part of the secret.
    text = text.rstrip("\r\n")
    if not text:
        raise ConfigError(f"{file_name}={shown} is invalid: the file is empty")
    return text


def _ca_file(raw: Mapping[str, str], root: Path) -> Path | None:
    path = path_setting(raw, "SMTP_CA_FILE", root)
    if path is None:
        return None
    shown = repr(str(path))
    try:
        # Load it now so a wrong file is a start-up error, not a failed alert at 3 a.m.
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except OSError as exc:
        if isinstance(exc, ssl.SSLError):
            raise ConfigError(f"SMTP_CA_FILE={shown} is invalid: no PEM certificate in it") from None
        raise ConfigError(f"SMTP_CA_FILE={shown} cannot be read: {exc.strerror}") from None
    return path


def url_password_secrets(urls: Sequence[str]) -> list[str]:
    """The passwords in the user-info of ``urls``, as written and percent-decoded."""
    found: list[str] = []
    for url in urls:
        try:
            password = urlsplit(url).password
        except ValueError:
            continue
        if password:
            found += [password, unquote(password)]
    return found


def name_from_url(url: str) -> str:
    """The name of the HEALTH_CHECK_URL target: host and port, never the URL's user-info."""
    return urlsplit(url).netloc.rpartition("@")[2] or public_url(url)


def read_environment(environ: Mapping[str, str] | None = None, root: Path = ROOT) -> dict[str, str]:
    """Merge defaults, the `.env` file beside monitor_config.py and the environment (which wins).

    ``MONITOR_ENV_FILE`` names another file to read instead of ``.env`` (empty: none)."""
    env = dict(os.environ if environ is None else environ)
    env_file = env.get("MONITOR_ENV_FILE")
    dotenv_path = root / ".env" if env_file is None else (_path(root, env_file) if env_file else None)
    values = dict(DEFAULTS)
    if dotenv_path is not None and dotenv_path.is_file():
        try:
            # interpolate=False: a value is taken literally (a password may contain `${HOME}`).
            loaded = dotenv_values(dotenv_path, interpolate=False)
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"MONITOR_ENV_FILE={str(dotenv_path)!r} is invalid: not UTF-8 text (byte {exc.start})"
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"MONITOR_ENV_FILE={str(dotenv_path)!r} cannot be read: {exc.strerror}"
            ) from None
        values.update({k: v for k, v in loaded.items() if v is not None})
    values.update({k: v for k, v in env.items() if k in DEFAULTS})
    return {k: v.strip() for k, v in values.items()}


def load_settings(environ: Mapping[str, str] | None = None, root: Path = ROOT) -> Settings:
    """Read and validate every setting. Raises ConfigError on the first bad one."""
    raw = read_environment(environ, root)
    get = raw.__getitem__
    for name in DEFAULTS:
        _plain_text(name, raw[name])

    token = _secret(raw, "TELEGRAM_BOT_TOKEN", root)
    if token and not _TOKEN.match(token):
        raise _bad("TELEGRAM_BOT_TOKEN", token, "a token from BotFather like 123456789:AAE...")
    chats = () if is_placeholder(get("TELEGRAM_CHAT_ID")) else _list(get("TELEGRAM_CHAT_ID"))
    for chat in chats:
        if not _CHAT_ID.match(chat):
            raise _bad(
                "TELEGRAM_CHAT_ID",
                chat,
                "numeric chat ids (or @channelname), each with an optional :topic, comma-separated",
            )

    password = _secret(raw, "SMTP_PASSWORD", root)
    register_secret(token, password)
    register_secret(*url_password_secrets([raw[name] for name in URL_SETTINGS]))

    security = get("SMTP_SECURITY").lower()
    if security not in SMTP_SECURITY_MODES:
        raise _bad("SMTP_SECURITY", get("SMTP_SECURITY"), "one of " + ", ".join(SMTP_SECURITY_MODES))
    smtp_server = "" if is_placeholder(get("SMTP_SERVER")) else get("SMTP_SERVER")
    username = "" if is_placeholder(get("SMTP_USERNAME")) else get("SMTP_USERNAME")
    recipients = () if is_placeholder(get("EMAIL_RECIPIENT")) else _list(get("EMAIL_RECIPIENT"))
    for address in recipients:
        if not _EMAIL.match(address):
            raise _bad("EMAIL_RECIPIENT", address, "e-mail addresses, comma-separated")
    sender = get("EMAIL_SENDER") or username
    if sender and not _EMAIL.match(sender):
        raise _bad("EMAIL_SENDER", sender, "an e-mail address")
    if smtp_server and recipients and not sender:
        raise ConfigError("EMAIL_SENDER is not set: expected a From address (EMAIL_SENDER, or SMTP_USERNAME)")

    interval = _float("CHECK_INTERVAL_SECONDS", get("CHECK_INTERVAL_SECONDS"), MIN_INTERVAL)
    failure_threshold = _int("FAILURE_THRESHOLD", get("FAILURE_THRESHOLD"), 1)
    timeout = _float("REQUEST_TIMEOUT", get("REQUEST_TIMEOUT"), 0.01)
    success_threshold = _int("SUCCESS_THRESHOLD", get("SUCCESS_THRESHOLD"), 1)
    health_url = _url("HEALTH_CHECK_URL", get("HEALTH_CHECK_URL"))

    targets_file = path_setting(raw, "MONITOR_TARGETS_FILE", root)
    windows: list[Window] = []
    base = {
        "interval": interval,
        "failure_threshold": failure_threshold,
        "success_threshold": success_threshold,
        "timeout": timeout,
    }
    if targets_file is not None:
        targets = load_targets_file(targets_file, base, windows)
    else:
        targets = (Target(name=name_from_url(health_url), url=health_url, **base),)  # type: ignore[arg-type]
    register_secret(*url_password_secrets([t.url for t in targets]))

    http_host = get("MONITOR_HTTP_HOST")
    if not http_host:
        raise _bad("MONITOR_HTTP_HOST", http_host, "an address to listen on, such as 127.0.0.1")
    allowed_hosts = _host_names("MONITOR_HTTP_ALLOWED_HOSTS", get("MONITOR_HTTP_ALLOWED_HOSTS"))

    return Settings(
        health_check_url=health_url,
        check_interval=interval,
        failure_threshold=failure_threshold,
        request_timeout=timeout,
        repeat_alerts=_bool("REPEAT_ALERTS", get("REPEAT_ALERTS")),
        success_threshold=success_threshold,
        digest_after=_int("DIGEST_AFTER", get("DIGEST_AFTER"), 1),
        heartbeat_url=_url("HEARTBEAT_URL", get("HEARTBEAT_URL")) if get("HEARTBEAT_URL") else None,
        targets_file=targets_file,
        max_concurrency=_int("MONITOR_MAX_CONCURRENCY", get("MONITOR_MAX_CONCURRENCY"), 1),
        telegram_bot_token=token or None,
        telegram_chat_ids=chats,
        telegram_api_url=_url("TELEGRAM_API_URL", get("TELEGRAM_API_URL")),
        smtp_server=smtp_server or None,
        smtp_port=_int("SMTP_PORT", get("SMTP_PORT"), 1, 65535),
        smtp_username=username or None,
        smtp_password=password or None,
        smtp_security=security,
        email_sender=sender or None,
        email_recipients=recipients,
        http_host=http_host,
        http_port=_int("MONITOR_HTTP_PORT", get("MONITOR_HTTP_PORT"), 0, 65535),
        state_dir=_required_path(raw, "MONITOR_STATE_DIR", root),
        log_file=_required_path(raw, "MONITOR_LOG_FILE", root),
        events_file=_required_path(raw, "MONITOR_EVENTS_FILE", root),
        pid_file=_required_path(raw, "MONITOR_PID_FILE", root),
        targets=targets,
        root=root,
        raw=raw,
        smtp_ca_file=_ca_file(raw, root),
        log_max_bytes=_size("MONITOR_LOG_MAX_BYTES", get("MONITOR_LOG_MAX_BYTES")),
        log_backups=_int("MONITOR_LOG_BACKUPS", get("MONITOR_LOG_BACKUPS"), 1, 1000),
        stop_grace=stop_grace(raw, timeout),
        fanout=load_fanout(raw),
        quiet=load_quiet(raw),
        keep=load_keep(raw, telegram=bool(token) and bool(chats)),
        maintenance=tuple(windows),
        http_allowed_hosts=allowed_hosts,
    )


def stop_grace(raw: Mapping[str, str], request_timeout: float) -> int:
    """STOP_GRACE_SECONDS, or by default the longest a clean stop takes (SPEC 8) plus 3 s of slack."""
    if raw.get("STOP_GRACE_SECONDS"):
        return _int("STOP_GRACE_SECONDS", raw["STOP_GRACE_SECONDS"], 1)
    return math.ceil(request_timeout) + 5


def script_values(
    names: Sequence[str], environ: Mapping[str, str] | None = None, root: Path = ROOT
) -> list[str]:
    """The effective values of ``names`` for the shell scripts (--print-setting).

    Only what is asked is validated, so the scripts still find the PID file when another
    setting is bad. Paths come back absolute. Secrets are never printed."""
    raw = read_environment(environ, root)
    values: list[str] = []
    for name in names:
        if name in SECRET_NAMES:
            raise ConfigError(f"{name} is a secret: it is never printed")
        if name not in DEFAULTS:
            raise ConfigError(f"{name!r} is not a setting (see .env.example)")
        if name in PATH_SETTINGS:
            path = path_setting(raw, name, root)
            values.append("" if path is None else str(path))
        elif name == "MONITOR_HTTP_PORT":
            values.append(str(_int(name, raw[name], 0, 65535)))
        elif name == "STOP_GRACE_SECONDS":
            timeout = _float("REQUEST_TIMEOUT", raw["REQUEST_TIMEOUT"], 0.01)
            values.append(str(stop_grace(raw, timeout)))
        else:
            values.append(_plain_text(name, raw[name]))
    return values
