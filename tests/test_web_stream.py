"""GET /api/events (keepalive.web.stream) served for real on loopback: what a page receives,
resuming with Last-Event-ID, coalescing, dropping a client that does not read, the stream cap,
the Host check; /api/targets/<name>; and the stream fed by a running engine."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from keepalive.engine.app import MonitorApp
from keepalive.engine.snapshot import TargetSnapshot
from keepalive.notifiers.base import NotifyError
from keepalive.notifiers.log import LogNotifier
from keepalive.policy.silences import SilenceBook
from keepalive.state import Status
from keepalive.web.app import start_web
from keepalive.web.stream import MAX_QUEUED, RING_SIZE, EventHub
from tests.fakes.delivery_fixtures import Scripted
from tests.fakes.engine import ScriptedChecker, WallClock, targets_settings, toml_targets
from tests.monitor_proc import free_port
from tests.test_web import FakeView

# Flushed by hand: the hub's own timer would flush whenever it likes.
NEVER = 3600.0


@dataclass
class Event:
    id: str | None
    event: str
    data: Any


class EventReader:
    """Reads an SSE response one event at a time; comments and the retry field are kept apart."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.retry: int | None = None
        self.comments: list[str] = []

    async def next(self, timeout: float = 10.0) -> Event:
        fields: dict[str, str] = {}
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    raise EOFError("the stream ended")
                line = raw.decode().rstrip("\n")
                if line == "":
                    if "event" in fields or "data" in fields:
                        return Event(
                            fields.get("id"), fields.get("event", "message"), json.loads(fields["data"])
                        )
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    self.comments.append(value)
                elif name == "retry":
                    self.retry = int(value)
                else:
                    fields[name] = value


def row(
    name: str, state: Status = Status.UP, *, at: float = 1767322980.0, reason: str | None = None
) -> TargetSnapshot:
    return TargetSnapshot(
        name=name,
        url=f"http://127.0.0.1:9/{name}",
        state=state,
        last_check=at,
        last_latency_ms=None if state is not Status.UP else 12.5,
        last_reason=reason,
        consecutive_failures=0 if state is Status.UP else 3,
        since=at,
        interval_seconds=30.0,
        uptime_percent=100.0,
        checks_ok_total=1,
        checks_failed_total=0 if state is Status.UP else 3,
    )


@asynccontextmanager
async def served(hub: EventHub, view: Any = None, **options: Any) -> AsyncIterator[str]:
    runner = await start_web(view or FakeView(), "127.0.0.1", 0, hub=hub, **options)
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def against(
    scenario: Callable[[aiohttp.ClientSession, str, EventHub], Awaitable[None]], **hub_options: Any
) -> None:
    async def main() -> None:
        hub = EventHub(None, flush_interval=NEVER, **hub_options)
        async with served(hub) as base, aiohttp.ClientSession() as session:
            await scenario(session, base, hub)

    asyncio.run(main())


@asynccontextmanager
async def stream(
    session: aiohttp.ClientSession, base: str, last_event_id: str | None = None
) -> AsyncIterator[EventReader]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    async with session.get(base + "/api/events", headers=headers) as response:
        assert response.status == 200
        yield EventReader(response)


async def connected(hub: EventHub, count: int) -> None:
    async with asyncio.timeout(10):
        while len(hub.streams) != count:
            await asyncio.sleep(0.01)


def test_a_first_connection_is_told_to_fetch_the_status_then_gets_updates() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str, hub: EventHub) -> None:
        async with session.get(base + "/api/events") as response:
            assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
            assert response.headers["Cache-Control"] == "no-store"
            assert "Content-Encoding" not in response.headers
            reader = EventReader(response)
            reset = await reader.next()
            assert (reset.event, reset.data) == ("reset", {"reason": "first connection"})
            assert reader.retry == 2000
            assert reset.id is not None and reset.id.endswith(".0")
            hub.publish_row(row("api"))
            hub.publish_row(row("db", Status.DOWN, reason="connection refused"), before=Status.FAILING)
            await hub.flush()
            update = await reader.next()
        assert update.event == "update"
        assert update.id is not None and update.id.endswith(".1")
        assert [(t["name"], t["state"], t["last_reason"]) for t in update.data["targets"]] == [
            ("api", "up", None),
            ("db", "down", "connection refused"),
        ]
        assert update.data["changes"] == [
            {
                "target": "db",
                "from": "failing",
                "to": "down",
                "at": "2026-01-02T03:03:00.000Z",
                "reason": "connection refused",
            }
        ]
        assert "history" not in update.data["targets"][0]

    against(scenario)


def test_checks_of_one_target_between_flushes_are_sent_once_the_newest() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str, hub: EventHub) -> None:
        async with stream(session, base) as reader:
            await reader.next()
            for i in range(10):
                hub.publish_row(row("api", at=1767322980.0 + i))
            await hub.flush()
            update = await reader.next()
        assert [t["last_check"] for t in update.data["targets"]] == ["2026-01-02T03:03:09.000Z"]
        assert hub.events_built == 1

    against(scenario)


def test_a_reconnect_with_last_event_id_gets_exactly_what_it_missed() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str, hub: EventHub) -> None:
        async with stream(session, base) as reader:
            await reader.next()
            hub.publish_row(row("first"))
            await hub.flush()
            seen = await reader.next()
        assert seen.id is not None
        # Gone for a while: two events are built while it is away (within the resume grace).
        await connected(hub, 0)
        for name in ("second", "third"):
            hub.publish_row(row(name))
            await hub.flush()
        async with stream(session, base, seen.id) as reader:
            missed = [await reader.next(), await reader.next()]
            hub.publish_row(row("fourth"))
            await hub.flush()
            live = await reader.next()
        assert [[t["name"] for t in e.data["targets"]] for e in [*missed, live]] == [
            ["second"],
            ["third"],
            ["fourth"],
        ]
        assert [e.event for e in missed] == ["update", "update"]

    against(scenario)


@pytest.mark.parametrize(
    ("last_event_id", "reason"),
    [
        ("0badc0de.1", "too far behind to resume"),  # another run of the monitor
        ("nonsense", "too far behind to resume"),
        ("", "first connection"),
    ],
)
def test_an_id_it_cannot_resume_from_gets_a_reset(last_event_id: str, reason: str) -> None:
    async def scenario(session: aiohttp.ClientSession, base: str, hub: EventHub) -> None:
        async with stream(session, base, last_event_id) as reader:
            first = await reader.next()
        assert (first.event, first.data) == ("reset", {"reason": reason})

    against(scenario)


def test_an_id_older_than_the_ring_gets_a_reset() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str, hub: EventHub) -> None:
        async with stream(session, base) as reader:
            await reader.next()
            hub.publish_row(row("first"))
            await hub.flush()
            seen = await reader.next()
        assert seen.id is not None
        for i in range(RING_SIZE + 1):
            hub.publish_row(row(f"t{i}"))
            await hub.flush()
        async with stream(session, base, seen.id) as reader:
            first = await reader.next()
        assert (first.event, first.data) == ("reset", {"reason": "too far behind to resume"})

    against(scenario)


def test_a_client_that_stops_reading_is_cut_and_the_others_keep_their_events() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str, hub: EventHub) -> None:
        port = int(base.rsplit(":", 1)[1])
        stuck = socket.socket()
        # A tiny receive window, never read: the server's writes to it soon wait for ever.
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(("127.0.0.1", port))
        stuck.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        try:
            async with stream(session, base) as reader:
                await reader.next()
                await connected(hub, 2)
                big = "x" * 200_000
                for i in range(MAX_QUEUED + 30):
                    hub.publish_row(row(f"t{i}", Status.DOWN, reason=big))
                    await hub.flush()
                    await reader.next()  # the reading client takes every one
                    if len(hub.streams) == 1:
                        break
                assert len(hub.streams) == 1, "the client that does not read was never dropped"
                hub.publish_row(row("after"))
                await hub.flush()
                assert [t["name"] for t in (await reader.next()).data["targets"]] == ["after"]
            # The cut connection was reset: reading what is left ends in a reset or an EOF.
            stuck.setblocking(True)
            stuck.settimeout(10)
            with pytest.raises(ConnectionResetError):
                while stuck.recv(1 << 20):
                    pass
        finally:
            stuck.close()

    against(scenario)


def test_an_idle_stream_gets_a_keep_alive_comment() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str, hub: EventHub) -> None:
        async with stream(session, base) as reader:
            await reader.next()
            async with asyncio.timeout(10):
                while (await reader.response.content.readline()) != b": ping\n":
                    pass
            hub.publish_row(row("api"))
            await hub.flush()
            assert (await reader.next()).event == "update"

    against(scenario, ping_interval=0.05)


def test_a_reload_tells_every_open_page_to_start_afresh() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str, hub: EventHub) -> None:
        async with stream(session, base) as one, stream(session, base) as two:
            first = await one.next()
            await two.next()
            hub.publish_row(row("api"))  # pending, then dropped: the fresh picture holds it
            hub.publish_row(row("gone", Status.DOWN), before=Status.UP)
            hub.publish_row(row("kept", Status.DOWN), before=Status.UP)
            hub.reset("configuration reloaded", {"api", "kept"})
            # The detail view's changes of a target the reload removed are forgotten.
            assert (hub.recent_changes("gone"), len(hub.recent_changes("kept"))) == ([], 1)
            resets = [await one.next(), await two.next()]
        assert [(e.event, e.data) for e in resets] == [("reset", {"reason": "configuration reloaded"})] * 2
        assert first.id is not None and resets[0].id is not None and resets[0].id != first.id
        # An id from before the reset cannot resume.
        async with stream(session, base, first.id) as late:
            assert (await late.next()).data == {"reason": "too far behind to resume"}

    against(scenario)


def test_nothing_is_built_while_no_page_is_open() -> None:
    now = [0.0]

    async def main() -> None:
        hub = EventHub(FakeView(), flush_interval=NEVER, clock=lambda: now[0])
        now[0] = 1000.0  # long past the resume grace of the last stream (there was none)
        hub.publish_row(row("api"), before=Status.DOWN)
        await hub.flush()
        assert hub.events_built == 0
        # The detail view's recent changes are kept all the same.
        assert [c.as_json()["to"] for c in hub.recent_changes("api")] == ["up"]

    asyncio.run(main())


def test_streams_have_their_own_cap_and_past_it_get_503() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str, hub: EventHub) -> None:
        async with stream(session, base) as one, stream(session, base) as two:
            await one.next()
            await two.next()
            async with session.get(base + "/api/events") as refused:
                assert refused.status == 503
                assert refused.headers["Retry-After"] == "10"
                assert await refused.json() == {
                    "error": "too many open event streams (at most 2); poll /api/status"
                }
            # Everything else is still served.
            async with session.get(base + "/api/status") as status:
                assert status.status == 200
        await connected(hub, 0)
        async with stream(session, base) as three:
            assert (await three.next()).event == "reset"

    against(scenario, max_streams=2)


def test_the_stream_answers_only_names_of_this_machine() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str, hub: EventHub) -> None:
        async with session.get(base + "/api/events", headers={"Host": "evil.example"}) as response:
            assert response.status == 421
        assert hub.streams == set()

    against(scenario)


def test_the_list_comes_without_history_unless_asked() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str, hub: EventHub) -> None:
        async with session.get(base + "/api/status") as response:
            slim = await response.json()
        async with session.get(base + "/api/status?history=1") as response:
            full = await response.json()
        assert all("history" not in t for t in slim["targets"])
        assert [len(t["history"]) for t in full["targets"]] == [5, 5]

    against(scenario)


def test_one_target_with_its_history_and_recent_changes() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str, hub: EventHub) -> None:
        hub.publish_row(row("billing", Status.DOWN, reason="connection refused"), before=Status.FAILING)
        async with session.get(base + "/api/targets/billing") as response:
            assert response.status == 200
            assert response.headers["Cache-Control"] == "no-store"
            body = await response.json()
        assert body["target"]["name"] == "billing"
        assert body["target"]["history"][-1] == [1767323100.0, None, False]
        assert body["changes"] == [
            {
                "target": "billing",
                "from": "failing",
                "to": "down",
                "at": "2026-01-02T03:03:00.000Z",
                "reason": "connection refused",
            }
        ]
        async with session.get(base + "/api/targets/%3Cscript%3Ealert(1)%3C%2Fscript%3E") as response:
            assert (await response.json())["target"]["state"] == "up"
        async with session.get(base + "/api/targets/no%20such") as response:
            assert response.status == 404
            assert await response.json() == {"error": "no target named 'no such'"}

    against(scenario)


# ---------------------------------------------------------------------------- a running engine


def test_a_running_monitor_streams_each_check_and_the_outage(tmp_path: Path) -> None:
    entries = [{"name": n, "url": f"http://{n}.example/health", "interval": 0.2} for n in ("api", "db")]
    settings = targets_settings(
        tmp_path, toml_targets(*entries), MONITOR_HTTP_HOST="127.0.0.1", MONITOR_HTTP_PORT=str(free_port())
    )
    checker = ScriptedChecker(WallClock())
    checker.verdicts["db"] = "connection refused"
    silenced = SilenceBook(settings.state_dir, max_silence=86400.0).create("api", "1h", "deploy", "ops")
    app = MonitorApp.build(settings, notifier_factory=lambda s: [LogNotifier()], checker=checker)

    async def go() -> None:
        stop = asyncio.Event()
        started = asyncio.Event()
        task = asyncio.create_task(app.run(stop, started.set))
        await asyncio.wait_for(started.wait(), 20)
        assert app.web_address is not None and app.hub is not None
        try:
            async with (
                aiohttp.ClientSession() as session,
                stream(session, app.web_address.rstrip("/")) as reader,
            ):
                assert (await reader.next()).event == "reset"
                states: dict[str, str] = {}
                changes: list[tuple[str, str, str, str | None]] = []
                summary = None
                silences: list[dict[str, Any]] = []
                async with asyncio.timeout(20):
                    while states.get("db") != "down" or states.get("api") != "up" or summary is None:
                        update = (await reader.next()).data
                        states.update({t["name"]: t["state"] for t in update["targets"]})
                        changes += [(c["target"], c["from"], c["to"], c["reason"]) for c in update["changes"]]
                        summary = update.get("monitor", summary)
                        silences = update.get("silences", silences)
                # The summary carries the active silences, for the page's list of them.
                assert [(x["id"], x["targets"], x["comment"]) for x in silences] == [
                    (silenced.id, ["api"], "deploy")
                ]
                # Each target's changes in order (the two targets' checks interleave freely).
                assert [c for c in changes if c[0] == "api"] == [("api", "unknown", "up", None)]
                assert [c for c in changes if c[0] == "db"] == [
                    ("db", "unknown", "failing", "connection refused"),
                    ("db", "failing", "down", "connection refused"),
                ]
                assert summary["host"] == app.monitor.hostname
                async with session.get(app.web_address + "api/targets/db") as answer:
                    detail = await answer.json()
                assert detail["target"]["history"][-1][2] is False
                assert detail["changes"][-1]["to"] == "down"
        finally:
            stop.set()
            await task

    try:
        asyncio.run(go())
    finally:
        app.close()


def test_a_targets_detail_lists_its_alerts_and_how_each_channel_fared(tmp_path: Path) -> None:
    """The whole chain: a DOWN raised by the engine, stored in the real outbox, sent by the real
    worker to a channel with two recipients, one of which keeps failing."""
    settings = targets_settings(
        tmp_path,
        toml_targets(
            {"name": "db", "url": "http://db.example/health", "interval": 0.2, "failure_threshold": 1}
        ),
        MONITOR_HTTP_HOST="127.0.0.1",
        MONITOR_HTTP_PORT=str(free_port()),
        REPEAT_ALERTS="false",
    )
    checker = ScriptedChecker(WallClock())
    checker.verdicts["db"] = "connection refused"
    failing = {"222": [NotifyError("connection reset by the Bot API")] * 100}
    channel = Scripted("telegram", ["111", "222"], script=failing)
    app = MonitorApp.build(settings, notifier_factory=lambda s: [channel], checker=checker)

    async def go() -> dict[str, Any]:
        stop = asyncio.Event()
        started = asyncio.Event()
        task = asyncio.create_task(app.run(stop, started.set))
        await asyncio.wait_for(started.wait(), 20)
        assert app.web_address is not None
        try:
            async with aiohttp.ClientSession() as session, asyncio.timeout(20):
                while True:
                    async with session.get(app.web_address + "api/targets/db") as answer:
                        detail: dict[str, Any] = await answer.json()
                    outcomes = [c for a in detail.get("alerts") or [] for c in a["channels"]]
                    if outcomes and outcomes[0]["sent"] == 1 and outcomes[0]["last_error"]:
                        return detail
                    await asyncio.sleep(0.05)
        finally:
            stop.set()
            await task

    try:
        detail = asyncio.run(go())
    finally:
        app.close()
    (alert,) = detail["alerts"]
    assert (alert["kind"], alert["reason"]) == ("DOWN", "connection refused")
    (outcome,) = alert["channels"]
    assert (outcome["channel"], outcome["sent"], outcome["pending"], outcome["failed"]) == (
        "telegram",
        1,
        1,
        0,
    )
    assert outcome["last_error"] == "connection reset by the Bot API"
    assert outcome["next_try"] is not None and outcome["sent_at"] is not None
    assert "111" not in json.dumps(alert) and "222" not in json.dumps(alert)  # recipients never shown
