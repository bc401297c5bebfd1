"""/metrics and /api/status built off the loop: negotiation, gzip, one build per snapshot, shared builds."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gzip
import json
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

import aiohttp
import pytest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder
from prometheus_client.openmetrics.exposition import ALLOWUTF8, UNDERSCORES
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families

from keepalive.engine.snapshot import HistoryPoint
from keepalive.web.app import RowTexts, _status_body, negotiate, start_web
from keepalive.web.metrics import build_registry
from keepalive.web.render import REUSE_FACTOR, RenderCache, Rendered
from tests.test_web import STATUS, FakeView, samples_of

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def serving_with(view: FakeView, cache: RenderCache) -> AsyncIterator[str]:
    runner = await start_web(view, "127.0.0.1", 0, cache=cache)
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def run(scenario: Callable[[aiohttp.ClientSession, str, FakeView, RenderCache], Awaitable[None]]) -> None:
    async def main() -> None:
        view = FakeView()
        cache = RenderCache(clock=Clock())
        # auto_decompress=False: the test sees the bytes on the wire.
        async with (
            serving_with(view, cache) as base,
            aiohttp.ClientSession(auto_decompress=False) as session,
        ):
            await scenario(session, base, view, cache)

    asyncio.run(main())


def ours(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    # process_* figures move between two builds; ours come from the snapshot alone.
    return {key: value for key, value in samples_of(text).items() if key[0].startswith("keepalive_")}


def test_metrics_are_gzipped_only_when_the_scraper_accepts_it() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str, view: FakeView, cache: RenderCache) -> None:
        async with session.get(base + "/metrics", headers={"Accept-Encoding": "gzip"}) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            assert response.headers["Vary"] == "Accept, Accept-Encoding"
            assert response.headers["Content-Type"] == CONTENT_TYPE_PLAIN_0_0_4
            zipped = await response.read()
        async with session.get(base + "/metrics", headers={"Accept-Encoding": "identity"}) as response:
            assert "Content-Encoding" not in response.headers
            plain = await response.read()
        assert plain.startswith(b"# HELP ")
        assert ours(gzip.decompress(zipped).decode()) == ours(plain.decode())
        # Not vacuous: every family of test_web.test_metrics_expose_every_target_channel_and_monitor_value
        # is there (at least its 39 samples of SPEC 7; later sections add theirs).
        assert len(ours(plain.decode())) >= 39

    run(scenario)


def test_metrics_speak_openmetrics_when_asked() -> None:
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"

    async def scenario(session: aiohttp.ClientSession, base: str, view: FakeView, cache: RenderCache) -> None:
        async with session.get(
            base + "/metrics", headers={"Accept": accept, "Accept-Encoding": "identity"}
        ) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith(OPENMETRICS)
            text = (await response.read()).decode()
        assert text.endswith("# EOF\n")
        families = {family.name: family for family in openmetrics_families(text)}  # type: ignore[no-untyped-call]
        assert families["keepalive_target_checks"].type == "counter"
        assert families["keepalive_schedule_lag_p99_seconds"].samples[0].value == 0.012
        async with session.get(
            base + "/metrics", headers={"Accept": "text/plain", "Accept-Encoding": "identity"}
        ) as response:
            assert response.headers["Content-Type"] == CONTENT_TYPE_PLAIN_0_0_4
            assert not (await response.read()).endswith(b"# EOF\n")
        # Two formats, two builds: one answer never passes for the other.
        assert cache.builds == 2

    run(scenario)


def test_api_status_is_gzipped_when_asked_and_equals_the_plain_document() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str, view: FakeView, cache: RenderCache) -> None:
        async with session.get(
            base + "/api/status?history=1", headers={"Accept-Encoding": "gzip, deflate"}
        ) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            assert response.headers["Vary"] == "Accept-Encoding"
            assert response.headers["Content-Type"] == "application/json; charset=utf-8"
            zipped = await response.read()
        async with session.get(
            base + "/api/status?history=1", headers={"Accept-Encoding": "identity"}
        ) as response:
            plain = await response.read()
        assert json.loads(gzip.decompress(zipped)) == json.loads(plain) == STATUS

    run(scenario)


def test_one_build_serves_every_request_until_the_snapshot_changes() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str, view: FakeView, cache: RenderCache) -> None:
        for _ in range(3):
            async with session.get(base + "/api/status?history=0") as response:
                await response.read()
        assert cache.builds == 1
        view.changed()
        async with session.get(base + "/api/status?history=0") as response:
            await response.read()
        assert cache.builds == 2

    run(scenario)


def test_concurrent_scrapes_share_one_build() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str, view: FakeView, cache: RenderCache) -> None:
        async def scrape() -> bytes:
            async with session.get(base + "/metrics", headers={"Accept-Encoding": "gzip"}) as response:
                return await response.read()

        bodies = await asyncio.gather(*(scrape() for _ in range(8)))
        assert len(set(bodies)) == 1
        assert cache.builds == 1

    run(scenario)


def test_an_answer_is_rebuilt_after_max_age_even_from_the_same_snapshot() -> None:
    clock = Clock()

    async def main() -> None:
        cache = RenderCache(max_age=1.0, clock=clock)
        source = object()
        first = await cache.get("k", source, lambda: Rendered(b"1", ()))
        clock.now += 0.5
        second = await cache.get("k", source, lambda: Rendered(b"2", ()))
        clock.now += 0.6
        third = await cache.get("k", source, lambda: Rendered(b"3", ()))
        cache.close()
        assert (first.body, second.body, third.body) == (b"1", b"1", b"3")
        assert cache.builds == 2

    asyncio.run(main())


def test_an_expensive_answer_is_reused_from_older_snapshots_for_a_multiple_of_its_cost() -> None:
    clock = Clock()

    def expensive(body: bytes) -> Callable[[], Rendered]:
        def build() -> Rendered:
            clock.now += 2.0  # the build takes two seconds of the cache's clock
            return Rendered(body, ())

        return build

    async def main() -> None:
        cache = RenderCache(max_age=1.0, clock=clock)
        first = await cache.get("k", object(), expensive(b"1"))
        clock.now += 1.0
        # A newer snapshot one second after an answer that cost two: the render thread would
        # be busy two thirds of the time, so the answer is served again.
        second = await cache.get("k", object(), expensive(b"2"))
        clock.now += REUSE_FACTOR * 2.0
        third = await cache.get("k", object(), lambda: Rendered(b"3", ()))
        clock.now += 0.5
        # A cheap answer is rebuilt from every new snapshot.
        fourth = await cache.get("k", object(), lambda: Rendered(b"4", ()))
        cache.close()
        assert [a.body for a in (first, second, third, fourth)] == [b"1", b"1", b"3", b"4"]
        assert cache.builds == 3

    asyncio.run(main())


def test_a_build_under_way_is_shared_even_when_a_newer_snapshot_arrives() -> None:
    started = threading.Event()
    release = threading.Event()
    calls: list[str] = []

    def slow_build() -> Rendered:
        calls.append("slow")
        started.set()
        assert release.wait(30)
        return Rendered(b"slow", ())

    async def main() -> None:
        cache = RenderCache(clock=Clock())
        first = asyncio.create_task(cache.get("k", object(), slow_build))
        assert await asyncio.to_thread(started.wait, 30)
        # A newer snapshot, while the build runs: waits for it instead of stacking a second build.
        second = asyncio.create_task(cache.get("k", object(), lambda: Rendered(b"new", ())))
        await asyncio.sleep(0)
        assert not second.done()
        release.set()
        assert [(await first).body, (await second).body] == [b"slow", b"slow"]
        cache.close()
        assert cache.builds == 1

    asyncio.run(main())
    assert calls == ["slow"]


def test_a_failed_build_is_not_kept_and_the_next_request_builds_again() -> None:
    def broken() -> Rendered:
        raise RuntimeError("snapshot could not be rendered")

    async def main() -> None:
        cache = RenderCache(clock=Clock())
        source = object()
        with pytest.raises(RuntimeError, match="snapshot could not be rendered"):
            await cache.get("k", source, broken)
        again = await cache.get("k", source, lambda: Rendered(b"ok", ()))
        cache.close()
        assert again.body == b"ok"
        assert cache.builds == 2

    asyncio.run(main())


def test_a_client_that_goes_away_does_not_cancel_the_build_others_wait_for() -> None:
    started = threading.Event()
    release = threading.Event()

    def slow_build() -> Rendered:
        started.set()
        assert release.wait(30)
        return Rendered(b"done", ())

    async def main() -> None:
        cache = RenderCache(clock=Clock())
        source = object()
        leaver = asyncio.create_task(cache.get("k", source, slow_build))
        assert await asyncio.to_thread(started.wait, 30)
        stayer = asyncio.create_task(cache.get("k", source, slow_build))
        await asyncio.sleep(0)
        leaver.cancel()
        release.set()
        assert (await stayer).body == b"done"
        with pytest.raises(asyncio.CancelledError):
            await leaver
        cache.close()
        assert cache.builds == 1

    asyncio.run(main())


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("application/openmetrics-text;version=1.0.0", OPENMETRICS + "; escaping=underscores"),
        ("application/openmetrics-text;version=1.0.01", OPENMETRICS + "; escaping=underscores"),
        ("application/openmetrics-text;version=7.0.0;escaping=dots", OPENMETRICS + "; escaping=dots"),
        ("application/openmetrics-text", OPENMETRICS),
        ("application/openmetrics-text;version=0.0.1", CONTENT_TYPE_PLAIN_0_0_4),
        (
            "text/plain;version=1.0.0;escaping=bogus",
            "text/plain; version=1.0.0; charset=utf-8; escaping=underscores",
        ),
        ("*/*", CONTENT_TYPE_PLAIN_0_0_4),
    ],
)
def test_negotiation_pins_the_openmetrics_version(accept: str, content_type: str) -> None:
    assert negotiate(accept)[1] == content_type


@pytest.mark.parametrize(
    "accept",
    [
        "application/openmetrics-text;version=1.0.0",
        "application/openmetrics-text",
        "text/plain;version=1.0.0",
        "text/plain;version=1.0.0;escaping=underscores",
    ],
)
def test_underscores_answers_are_built_the_cheap_way_and_are_the_same_bytes(accept: str) -> None:
    # A target name with every character the label-value escaping touches, and non-ASCII.
    odd = {**STATUS["targets"][0], "name": 'we"b\\1\nzö', "url": "http://x.example/"}
    registry = build_registry(FakeView(extra_targets=(odd,)).snapshot())
    families = list(registry.collect())
    legacy = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
    # The premise: "underscores" leaves all our metric and label names as they are.
    assert all(
        legacy.fullmatch(s.name) and all(map(legacy.fullmatch, s.labels)) for f in families for s in f.samples
    )
    encoder, _ = negotiate(accept)
    theirs, _ = choose_encoder(accept)
    assert isinstance(encoder, partial) and encoder.keywords["escaping"] == ALLOWUTF8
    assert isinstance(theirs, partial) and theirs.keywords["escaping"] == UNDERSCORES

    def without_process(body: bytes) -> list[bytes]:  # process_* figures move between builds
        return [line for line in body.splitlines() if b"process_" not in line]

    ours_body = without_process(encoder(registry))
    assert ours_body == without_process(theirs(registry))
    # Not vacuous: the odd name is there, escaped as a label value must be.
    escaped = 'target="we\\"b\\\\1\\nzö"'.encode()
    assert sum(1 for line in ours_body if line.startswith(b"keepalive_target_up{") and escaped in line) == 1


def test_status_rows_with_history_are_kept_while_unchanged_and_the_body_is_the_same() -> None:
    rows = RowTexts()
    first = FakeView().snapshot(include_history=True)
    assert json.loads(_status_body(first, True, rows)) == STATUS
    kept = rows.text_with_history(first.targets[0])
    changed = dataclasses.replace(
        first.targets[1],
        checks_ok_total=9,
        history=(*(first.targets[1].history or ()), HistoryPoint(5.0, 1.5, True)),
    )
    second = dataclasses.replace(first, targets=(first.targets[0], changed))
    # A build without history (another page) in between must not drop the texts with history.
    _status_body(FakeView().snapshot(), False, rows)
    body = _status_body(second, True, rows)
    assert rows.text_with_history(second.targets[0]) is kept  # unchanged: not written again
    assert body == _status_body(second, True, RowTexts())
    document = json.loads(body)
    assert document["targets"][1]["checks_ok_total"] == 9
    assert document["targets"][1]["history"][-1] == [5.0, 1.5, True]
    with pytest.raises(ValueError, match="taken without history"):
        _status_body(FakeView().snapshot(), True, rows)


def test_new_spellings_of_a_version_share_one_cached_answer() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str, view: FakeView, cache: RenderCache) -> None:
        for version in ("1.0.0", "1.0.01", "1.0.001", "1.2.3"):
            accept = f"application/openmetrics-text;version={version}"
            async with session.get(base + "/metrics", headers={"Accept": accept}) as response:
                assert response.headers["Content-Type"] == OPENMETRICS + "; escaping=underscores"
                await response.read()
        assert cache.builds == 1

    run(scenario)


def test_the_cache_keeps_at_most_max_entries_dropping_the_oldest() -> None:
    async def main() -> None:
        cache = RenderCache(clock=Clock(), max_entries=2)
        source = object()
        for key in ("a", "b", "c", "b", "a"):
            await cache.get(key, source, lambda: Rendered(b"x", ()))
        cache.close()
        # a, b, c built; c pushed a out; b still there; a built again.
        assert cache.builds == 4

    asyncio.run(main())
