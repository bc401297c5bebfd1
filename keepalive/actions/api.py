"""``POST /api/targets/<name>/remediate``: run a target's on_down on demand (SPEC 15).

Behind the API token like every write (keepalive.web.api's middleware covers any POST route).
    202 {"target", "command", "started": true}          started; the result follows in events
    200 {"target", "remediation": {...}}                 with ?wait=1: the finished run
    404 no such target, 409 no on_down / already running / the monitor is stopping
The name matches without regard to case; ``X-Keepalive-User`` names who asked (default "api").
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from keepalive.actions.remediation import Remediator
from keepalive.actions.result import command_line

MAX_WHO = 100


class RemediateRoutes:
    def __init__(self, remediator: Remediator) -> None:
        self.remediator = remediator

    def add_to(self, app: web.Application) -> None:
        app.router.add_post("/api/targets/{name}/remediate", self.remediate)

    async def remediate(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        who = "".join(c for c in request.headers.get("X-Keepalive-User", "") if c.isprintable())[:MAX_WHO]
        trigger = f"api:{who}" if who else "api"
        try:
            task = self.remediator.run_now(name, trigger)
        except LookupError as exc:
            return web.json_response({"error": str(exc).strip('"')}, status=404)
        except (ValueError, RuntimeError) as exc:
            return web.json_response({"error": str(exc)}, status=409)
        target = self.remediator.find(name)
        assert target is not None
        if request.query.get("wait") not in ("1", "true", "yes"):
            body = {"target": target.name, "command": command_line(target.on_down), "started": True}
            return web.json_response(body, status=202)
        # The run is bounded by its own remediation_timeout (and the group kill after it); the
        # client going away does not cancel it.
        result = await asyncio.shield(task)
        return web.json_response({"target": target.name, "remediation": result.to_json()})
