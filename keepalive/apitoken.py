"""The API token of SPEC 12: what every write (and, with MONITOR_HTTP_AUTH=all, every read) must
carry as ``Authorization: Bearer <token>``.

``MONITOR_API_TOKEN`` wins when set. Otherwise the token lives in ``MONITOR_STATE_DIR/api_token``:
generated at the first start (43 URL-safe characters, 256 random bits), mode 0600, and reused
afterwards, so the command line on the same machine reads it from there and nobody copies it.
The token is registered with keepalive.scrub the moment it is known: it never reaches a log.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from keepalive.errors import ConfigError
from keepalive.scrub import register_secret

TOKEN_FILE = "api_token"
MIN_TOKEN_LENGTH = 32
# A token is one short line; a bigger file is the wrong file.
MAX_TOKEN_BYTES = 4096


def token_path(state_dir: Path) -> Path:
    return state_dir / TOKEN_FILE


def read_token(state_dir: Path) -> str | None:
    """The token in ``state_dir``'s token file, or None when there is none. Raises ConfigError
    (one line) when the file exists but cannot be read or holds no usable token."""
    path = token_path(state_dir)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_TOKEN_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"API token file {str(path)!r} cannot be read: {exc.strerror}") from None
    try:
        token = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"API token file {str(path)!r} is invalid: not ASCII text") from None
    if len(data) > MAX_TOKEN_BYTES or len(token) < MIN_TOKEN_LENGTH or not token.isprintable():
        raise ConfigError(
            f"API token file {str(path)!r} is invalid: expected one line of at least "
            f"{MIN_TOKEN_LENGTH} characters (delete it to have a new one generated)"
        )
    register_secret(token)
    return token


def ensure_token(state_dir: Path, configured: str | None) -> str:
    """The token the endpoint checks: ``configured`` (MONITOR_API_TOKEN) when set, else the token
    file's, generated now (0600, written whole or not at all) when there is none."""
    if configured:
        register_secret(configured)
        return configured
    existing = read_token(state_dir)
    if existing is not None:
        return existing
    token = secrets.token_urlsafe(32)
    register_secret(token)
    path = token_path(state_dir)
    tmp = path.with_name(f".{TOKEN_FILE}.{os.getpid()}.tmp")
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        # Created 0600 from the start: never readable by others, not even for an instant.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(token + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"API token file {str(path)!r} cannot be written: {exc.strerror}") from None
    return token


def token_matches(expected: str, offered: str) -> bool:
    """Constant time in the offered token's content: a wrong guess reveals nothing of the right one."""
    return hmac.compare_digest(expected.encode(), offered.encode())
