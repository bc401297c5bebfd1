"""A minimal loopback Telegram Bot API for the bench: accepts sendMessage, records arrival times.

  POST /bot<token>/sendMessage   JSON or form body with chat_id and text; answers like Telegram
  GET|POST /bot<token>/getMe     a bot description (for --test-alert style calls)
  GET  /_messages                every message so far: [{"t": epoch seconds, "chat_id", "text"}]
  POST /_clear                   forget the recorded messages

Run: ``python -m bench.fake_telegram --port 0`` prints one JSON line ``{"port": N}`` once it
listens; it stops on SIGTERM/SIGINT, when its parent exits, or after --max-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from typing import Any

from aiohttp import web

from bench.aio import install_fast_loop, watch_parent

MESSAGES = web.AppKey("messages", list)


async def send_message(request: web.Request) -> web.Response:
    arrived = time.time()
    try:
        if request.content_type == "application/json":
            data: dict[str, Any] = await request.json()
        else:
            data = dict(await request.post())
    except ValueError:
        return web.json_response({"ok": False, "error_code": 400, "description": "Bad Request"}, status=400)
    chat_id = data.get("chat_id")
    text = data.get("text")
    if not chat_id or not isinstance(text, str) or not text:
        return web.json_response(
            {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}, status=400
        )
    messages: list[dict[str, Any]] = request.app[MESSAGES]
    messages.append({"t": arrived, "chat_id": str(chat_id), "text": text})
    result = {
        "message_id": len(messages),
        "date": int(arrived),
        "chat": {"id": chat_id, "type": "private"},
        "text": text,
    }
    return web.json_response({"ok": True, "result": result})


async def get_me(_request: web.Request) -> web.Response:
    bot = {"id": 123456, "is_bot": True, "first_name": "bench", "username": "bench_bot"}
    return web.json_response({"ok": True, "result": bot})


async def list_messages(request: web.Request) -> web.Response:
    return web.json_response(request.app[MESSAGES])


async def clear(request: web.Request) -> web.Response:
    request.app[MESSAGES].clear()
    return web.json_response({"ok": True})


def make_app() -> web.Application:
    app = web.Application()
    app[MESSAGES] = []
    app.router.add_post("/bot{token}/sendMessage", send_message)
    app.router.add_route("*", "/bot{token}/getMe", get_me)
    app.router.add_get("/_messages", list_messages)
    app.router.add_post("/_clear", clear)
    return app


async def serve(port: int, max_seconds: float) -> None:
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    server = site._server  # aiohttp exposes no public accessor for the bound port
    assert server is not None
    sockets = getattr(server, "sockets", None) or []
    print(json.dumps({"port": sockets[0].getsockname()[1]}), flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watch_parent(loop, stop, max_seconds)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=4 * 3600)
    args = parser.parse_args(argv)
    install_fast_loop()
    asyncio.run(serve(args.port, args.max_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
