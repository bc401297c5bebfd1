"""Attaches remediation and Telegram commands to a monitor (the composition root calls this).

``KeepAlive(monitor)`` hooks the Remediator in after the outbox (``Persister.after_store``) and
into the next alert's text (``Announcer.remark``); the hold policy, when it offers
``is_held``, decides that held DOWNs are not remediated, and its silence book (``silences``)
serves /silence. ``start()`` (on the loop) starts the Telegram poller when
TELEGRAM_COMMANDS=true; ``stop(grace)`` stops it and gives running commands ``grace`` seconds
before their process groups are killed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from keepalive.actions.api import RemediateRoutes
from keepalive.actions.commands import Asker, Commands
from keepalive.actions.remediation import HoldLookup, Remediator
from keepalive.actions.result import RemediationResult
from keepalive.actions.telegram_commands import BotApi, CommandPoller, Incoming, OffsetStore
from keepalive.config import SECRET_NAMES
from keepalive.policy.silences import SilenceBook
from keepalive.targets import Target

if TYPE_CHECKING:
    import requests
    from aiohttp import web

    from keepalive.engine.monitor import Monitor

# How long the poller's thread waits for the loop to answer one command: /check is bounded by
# the target's timeout, /silence by one fsync.
HANDOFF_TIMEOUT = 60.0

log = logging.getLogger("keepalive.monitor")


class KeepAlive:
    def __init__(
        self,
        monitor: Monitor,
        *,
        environ: Mapping[str, str] | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.monitor = monitor
        policy = monitor.announcer.policy
        holds: HoldLookup | None = policy if callable(getattr(policy, "is_held", None)) else None
        book = getattr(policy, "silences", None)
        self.book: SilenceBook | None = book if isinstance(book, SilenceBook) else None
        self.remediator = Remediator(
            monitor.reporter,
            self.find,
            holds=holds,
            environ=environ,
            secret_names=SECRET_NAMES,
            on_result=self._shown,
        )
        monitor.persister.after_store = self.remediator.after_stored
        monitor.announcer.remark = self.remediator.take_note
        monitor.commands_refused = self.refused_total
        self.poller: CommandPoller | None = None
        self._session = session
        self._loop: asyncio.AbstractEventLoop | None = None

    def routes(self) -> list[Callable[[web.Application], None]]:
        """Write routes for the web endpoint (behind the API token)."""
        return [RemediateRoutes(self.remediator).add_to]

    def find(self, name: str) -> Target | None:
        """A target of the running configuration by name, matched without regard to case."""
        runtimes = self.monitor.runtimes
        rt = runtimes.get(name)
        if rt is None:
            wanted = " ".join(name.split()).casefold()
            rt = next((r for n, r in runtimes.items() if n.casefold() == wanted), None)
        return None if rt is None else rt.target

    def refused_total(self) -> int:
        return self.poller.refused_total if self.poller is not None else 0

    def _shown(self, result: RemediationResult) -> None:
        rt = self.monitor.runtimes.get(result.target)
        if rt is not None:
            rt.observed.remediation = result
            rt.observed_changed()

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        """On the loop, once checks run: the Telegram poller when TELEGRAM_COMMANDS=true."""
        settings = self.monitor.settings
        self._loop = asyncio.get_running_loop()
        if not (
            settings.keep.telegram_commands and settings.telegram_bot_token and settings.telegram_chat_ids
        ):
            return
        commands = Commands(
            self.monitor.reporter,
            self.monitor.snapshot,
            self.find,
            self.monitor.checker.check,
            self.remediator,
            self.book,
        )
        loop = self._loop

        def handle(incoming: Incoming, later: Callable[[str], None]) -> str:
            asker = Asker(incoming.user, incoming.chat)
            future = asyncio.run_coroutine_threadsafe(commands.answer(incoming.text, asker, later), loop)
            return future.result(HANDOFF_TIMEOUT)

        api = BotApi(settings.telegram_bot_token, settings.telegram_api_url, self._session)
        self.poller = CommandPoller(
            api, settings.telegram_chat_ids, handle, OffsetStore(settings.state_dir), self.monitor.reporter
        )
        self.poller.start()
        self.monitor.reporter.report(
            "telegram_commands_started",
            "telegram commands: answering the chats of TELEGRAM_CHAT_ID",
            chats=len(settings.telegram_chat_ids),
        )

    async def stop(self, grace: float) -> None:
        """Stop reading commands, then give running remediations ``grace`` seconds."""
        if self.poller is not None:
            await asyncio.to_thread(self.poller.stop, 2.0)
        await self.remediator.stop(grace)
