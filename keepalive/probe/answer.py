"""What a transport hands back: one HTTP answer, or a Failure with the check's reason.

Transports map their own errors to reasons at their edge (as httpx's
``map_httpcore_exceptions`` does), so everything above them sees only ``Answer`` or
``Failure``. The limits below are shared so both transports judge a hostile answer alike.
"""

from __future__ import annotations

from typing import NamedTuple

MAX_BODY = 1024 * 1024  # SPEC section 5: a body is never read past 1 MiB
TOO_LARGE = "body larger than 1 MiB"
INVALID = "invalid HTTP answer"
INCOMPLETE = "incomplete body"
# aiohttp's own defaults (max_line_size, max_field_size, max_headers), kept equal in the lean
# client so one answer gets one verdict whichever client read it.
MAX_FIELD = 8190
MAX_HEADERS = 128
MAX_HEAD = 64 * 1024  # status line and header fields, interim (1xx) answers included
# A health answer needs one interim answer at most (100 Continue, 103 Early Hints); a server
# repeating them forever would otherwise cost CPU until the deadline.
MAX_INTERIM = 8
# 1 MiB sent as 1-byte chunks is a million parser callbacks (about 1 s of CPU); 16,384 chunks
# still allows 64-byte chunks at the full 1 MiB.
MAX_CHUNKS = 16384
# Everything read from the wire for one answer: head, body, chunk framing and trailers.
MAX_WIRE = MAX_HEAD + MAX_BODY + 256 * 1024


class Failure(Exception):
    """The check failed; ``reason`` is its short reason (SPEC section 5)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Answer(NamedTuple):
    """What a transport read. A NamedTuple, not a frozen dataclass: one is made per check, and
    a frozen dataclass's __init__ (object.__setattr__ per field) costs twice as much (0.6 µs
    against 0.27 µs here)."""

    status: int
    # Only the fields anything reads: content-encoding, location (and framing), lower-case
    # names; a repeated field keeps its last value.
    headers: dict[str, str]
    body: bytes  # transfer coding removed, content coding kept; empty unless the status is 2xx
    peer: tuple[str, int] | None = None  # the address that answered, when known
    local_ip: str | None = None  # our end of that connection: equal to the peer's on this machine
