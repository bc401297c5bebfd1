"""Log-file targets (SPEC section 14): fail when too many lines matched in the last window.

Each check reads only what was appended since the last one, like ``tail -F``:

- the first time a file is seen at start-up, reading begins at its end (years of old
  Tracebacks are not news); a file that appears later, after ``log file missing``, is read
  from its start;
- rotation by rename: the old file (still open) is read to its end, then the new file from
  its start; copy-truncate: a file shorter than the position is read from its start;
- the position (device, inode, offset) is saved under the state directory after each read,
  so a restart goes on where it stopped (and reads a rotated file from its start);
- at most MAX_READ (16 MiB) per check: a larger burst keeps its newest 16 MiB and the detail
  notes how much was skipped.

Reads and matching run on a small thread pool of the probe's own, in 1 MiB pieces so the
GIL goes back to the event loop between them. Matched lines are counted per check; a check
fails when more than ``max_matches`` lines matched within ``window`` seconds, with the reason
``3 lines matched 'Traceback' in 5m: <the last one>`` (at most 200 characters, secrets
scrubbed, control characters removed).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from keepalive.probe.detail import Detail
from keepalive.probe.judge import printable
from keepalive.probe.push import short_duration
from keepalive.scrub import scrub
from keepalive.targets import Target

MAX_READ = 16 * 1024 * 1024
PIECE = 1024 * 1024
# A line longer than this is matched on its first MAX_LINE bytes (a log line is not a file).
MAX_LINE = 64 * 1024
MAX_SHOWN = 200
MISSING = "log file missing"
MAX_HITS = 10_000  # checks remembered inside one window
READ_THREADS = 2
# Watches of targets no longer checked (removed by a reload) are closed after this many of
# their intervals; a target that comes back reopens at its saved position.
IDLE_INTERVALS = 3
PRUNE_EVERY = 60.0


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def shown_line(line: str) -> str:
    """A matched line as a reason may carry it: secrets scrubbed, control characters removed,
    at most MAX_SHOWN characters."""
    text = " ".join(printable(scrub(line)).split())
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


@dataclass(frozen=True, slots=True)
class Hits:
    """The lines one check found matching."""

    at: float
    count: int
    patterns: frozenset[int]  # indexes into the target's patterns
    last_line: str


class LogWatch:
    """One log target's reading state. ``read`` runs on a worker thread, one call at a time."""

    def __init__(self, target: Target, position_file: Path | None) -> None:
        self.path = target.log or ""
        self.patterns = target.patterns
        self._each = [re.compile(p) for p in target.patterns]
        self._any = re.compile("|".join(f"(?:{p})" for p in target.patterns), re.MULTILINE)
        self._position_file = position_file
        self._handle: IO[bytes] | None = None
        self._file_id: tuple[int, int] | None = None
        self._offset = 0
        self._carry = b""
        self._was_missing = False
        self._saved: dict[str, Any] | None = self._load_position()
        self.hits: deque[Hits] = deque(maxlen=MAX_HITS)
        self.last_match: str | None = None
        self.last_match_at: float | None = None
        self.note: str | None = None
        self._skip_partial = False  # after a skip, the first line read is the tail of one

    # -------------------------------------------------------------- position on disk

    def _load_position(self) -> dict[str, Any] | None:
        if self._position_file is None:
            return None
        try:
            data = json.loads(self._position_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("path") != self.path:
            return None
        if not all(isinstance(data.get(k), int) and data[k] >= 0 for k in ("dev", "ino", "offset")):
            return None
        return data

    def _save_position(self) -> None:
        if self._position_file is None or self._file_id is None:
            return
        data = {"path": self.path, "dev": self._file_id[0], "ino": self._file_id[1], "offset": self._offset}
        if data == self._saved:
            return
        tmp = self._position_file.with_suffix(".tmp")
        try:
            self._position_file.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, self._position_file)
            self._saved = data
        except OSError:
            pass  # a lost position costs a re-read or a skip after a restart, never a check

    # -------------------------------------------------------------- reading

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _open(self) -> None:
        handle = open(self.path, "rb")  # noqa: SIM115 - kept open across checks, as tail -F does
        stat = os.fstat(handle.fileno())
        file_id = (stat.st_dev, stat.st_ino)
        saved = self._saved
        if self._file_id is None and saved is not None:
            same = (saved["dev"], saved["ino"]) == file_id
            offset = saved["offset"] if same else 0  # rotated while we were away: from its start
        elif self._file_id is None and not self._was_missing:
            offset = stat.st_size  # first sight: only what comes from now on is news
        else:
            offset = 0  # a new file after a rotation, or one that appeared after missing
        self._handle, self._file_id, self._offset, self._carry = handle, file_id, offset, b""

    def _drain(self, budget: int, found: list[tuple[int, str]]) -> int:
        """Read the open file from the position to its end, within ``budget`` bytes; returns
        the bytes read. A burst larger than the budget keeps its newest part."""
        assert self._handle is not None
        size = os.fstat(self._handle.fileno()).st_size
        if size < self._offset:  # copy-truncate: the file starts again
            self._offset, self._carry = 0, b""
        unread = size - self._offset
        if unread > budget:
            self.note = f"skipped {_mib(unread - budget)}: more than {_mib(MAX_READ)} since the last check"
            self._offset, self._carry = size - budget, b""
            self._skip_partial = True
            unread = budget
        self._handle.seek(self._offset)
        done = 0
        while done < unread:
            piece = self._handle.read(min(PIECE, unread - done))
            if not piece:
                break
            done += len(piece)
            self._offset += len(piece)
            self._match(piece, found)
        return done

    def _match(self, piece: bytes, found: list[tuple[int, str]]) -> None:
        data = self._carry + piece
        cut = data.rfind(b"\n")
        if cut < 0:
            self._carry = data if len(data) <= MAX_LINE else b""
            if len(data) > MAX_LINE:
                self._match_text(data[:MAX_LINE].decode("utf-8", "replace"), found)
            return
        complete, self._carry = data[: cut + 1], data[cut + 1 :]
        if len(self._carry) > MAX_LINE:
            self._carry = b""
        if self._skip_partial:  # after a skip, the first line is a tail of a longer one
            complete = complete[complete.find(b"\n") + 1 :]
            self._skip_partial = False
        self._match_text(complete.decode("utf-8", "replace"), found)

    def _match_text(self, text: str, found: list[tuple[int, str]]) -> None:
        search = self._any.search
        pos = 0
        while True:
            hit = search(text, pos)
            if hit is None:
                return
            start = text.rfind("\n", 0, hit.start()) + 1
            end = text.find("\n", hit.end())
            end = len(text) if end < 0 else end
            line = text[start : min(end, start + MAX_LINE)]
            index = next((i for i, p in enumerate(self._each) if p.search(line)), 0)
            found.append((index, line))
            pos = end + 1

    def read(self, now: float, window: float) -> tuple[int, Hits | None, str | None]:
        """Read what is new; returns (lines matched in the window, the newest hits, a failure
        reason that is not about matches: the file missing or unreadable)."""
        found: list[tuple[int, str]] = []
        self.note = None
        budget = MAX_READ
        problem: str | None = None
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            stat = None
            problem = MISSING
        except OSError as exc:
            stat = None
            problem = f"log file unreadable: {exc.strerror or type(exc).__name__}"
        try:
            if self._handle is not None and (stat is None or (stat.st_dev, stat.st_ino) != self._file_id):
                budget -= self._drain(budget, found)  # renamed away: read the old file to its end
                self.close()
                self._was_missing = True  # the next file is new: read from its start
            if stat is not None:
                if self._handle is None:
                    self._open()
                budget -= self._drain(budget, found)
                self._save_position()
        except OSError as exc:
            self.close()
            problem = f"log file unreadable: {exc.strerror or type(exc).__name__}"
        if problem == MISSING:
            self._was_missing = True
        newest: Hits | None = None
        if found:
            newest = Hits(now, len(found), frozenset(i for i, _ in found), shown_line(found[-1][1]))
            self.hits.append(newest)
            self.last_match, self.last_match_at = newest.last_line, now
        while self.hits and self.hits[0].at <= now - window:
            self.hits.popleft()
        return sum(h.count for h in self.hits), newest, problem

    def reason(self, count: int, window: float) -> str:
        names = sorted(set().union(*(h.patterns for h in self.hits)))
        quoted = ", ".join(f"'{self.patterns[i]}'" for i in names)
        lines = "1 line" if count == 1 else f"{count} lines"
        return f"{lines} matched {quoted} in {short_duration(window)}: {self.hits[-1].last_line}"


def position_file(state_dir: Path, target: Target) -> Path:
    key = hashlib.sha256(f"{target.name}\x00{target.log}".encode()).hexdigest()[:20]
    return state_dir / "logwatch" / f"{key}.json"


class LogProbe:
    """``log`` targets. Owns its read threads; ``close`` ends them."""

    def __init__(self, state_dir: Path | None = None, clock: Callable[[], float] = time.time) -> None:
        self._state_dir = state_dir
        self._clock = clock
        self._watches: dict[tuple[str, str, tuple[str, ...]], LogWatch] = {}
        self._running: dict[int, asyncio.Future[tuple[int, Hits | None, str | None]]] = {}
        self._pool = ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="logwatch")
        self._used: dict[int, tuple[float, float]] = {}  # id(watch): (last use, interval)
        self._pruned_at = clock()

    def handles(self, target: Target) -> bool:
        return target.log is not None

    def _prune(self, now: float) -> None:
        """Close the watches of targets not checked for IDLE_INTERVALS of their intervals (a
        reload removed them): each holds an open file."""
        self._pruned_at = now
        for key, watch in list(self._watches.items()):
            last, interval = self._used.get(id(watch), (now, 0.0))
            running = self._running.get(id(watch))
            if now - last > IDLE_INTERVALS * interval + PRUNE_EVERY and (running is None or running.done()):
                del self._watches[key]
                self._used.pop(id(watch), None)
                self._running.pop(id(watch), None)
                watch.close()

    def _watch(self, target: Target) -> LogWatch:
        now = self._clock()
        if now - self._pruned_at > PRUNE_EVERY:
            self._prune(now)
        key = (target.name, target.log or "", target.patterns)
        watch = self._watches.get(key)
        if watch is None:
            for old_key in [k for k in self._watches if k[0] == target.name]:
                self._watches.pop(old_key).close()
            where = position_file(self._state_dir, target) if self._state_dir is not None else None
            watch = self._watches[key] = LogWatch(target, where)
        self._used[id(watch)] = (now, target.interval)
        return watch

    async def run(self, target: Target) -> str | None:
        watch = self._watch(target)
        running = self._running.get(id(watch))
        if running is None or running.done():
            # A read cut off by the check's deadline goes on in its thread; the next check waits
            # for it instead of starting a second read of the same file.
            loop = asyncio.get_running_loop()
            now = self._clock()
            running = asyncio.ensure_future(loop.run_in_executor(self._pool, watch.read, now, target.window))
            self._running[id(watch)] = running
        count, _, problem = await asyncio.shield(running)
        if problem is not None:
            return problem
        if count > target.max_matches:
            return watch.reason(count, target.window)
        return None

    def detail(self, target: Target) -> Detail | None:
        watch = self._watches.get((target.name, target.log or "", target.patterns))
        if watch is None:
            return Detail(log_file=target.log)
        return Detail(
            log_file=target.log,
            last_match=watch.last_match,
            last_match_at=watch.last_match_at,
            log_note=watch.note,
        )

    async def close(self) -> None:
        for watch in self._watches.values():
            with contextlib.suppress(OSError):
                watch.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
