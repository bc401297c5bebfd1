"""SIGHUP reads the settings in a child process, off the checking loop's GIL.

Reading and validating a 10,000-target file costs about 0.4 s of CPU in pure Python (tomllib,
per-target checks). In a thread that work held the GIL against the checking loop for 1.1-2.1 s
under load (the loop waits up to the switch interval each time it lets go of the GIL), and
bench.stress's schedule lag p99 went from 0.077 s with scrapes alone to 0.117 s with a SIGHUP
every 10 s. A spawned child has a GIL of its own: the parent pays only for unpickling the
result, in the executor's thread.

Loading registers secrets as a side effect (``scrub.register_secret``: URL passwords, push
tokens, Apprise URLs, ...). The child sends back everything it registered and the parent
registers it before the settings are used, so nothing loaded in the child can leak here.
A load function that cannot be pickled (a test's closure), or a child that cannot be started,
falls back to a thread: slower for the loop, the same settings.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import pickle
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from keepalive import scrub
from keepalive.config import Settings

log = logging.getLogger("keepalive.monitor")


def _load_in_child(load: Callable[[], Settings]) -> tuple[Settings, tuple[str, ...]]:
    settings = load()
    return settings, scrub.registered()


def _picklable(load: Callable[[], Settings]) -> bool:
    try:
        pickle.dumps(load)
    except Exception:
        return False
    return True


async def read_settings(load: Callable[[], Settings]) -> Settings:
    """``load()`` run in a spawned child (a thread when it cannot be). Raises what ``load``
    raises (ConfigError for a bad file)."""
    if not _picklable(load):
        return await asyncio.to_thread(load)
    loop = asyncio.get_running_loop()
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    try:
        settings, secrets = await loop.run_in_executor(pool, _load_in_child, load)
    except (BrokenProcessPool, OSError, pickle.PicklingError) as exc:
        log.warning("reading the settings in a child process failed (%s); reading them here", exc)
        return await asyncio.to_thread(load)
    finally:
        # Joining the child is quick but blocking: not on the loop.
        await asyncio.to_thread(pool.shutdown, True)
    scrub.register_secret(*secrets)
    return settings
