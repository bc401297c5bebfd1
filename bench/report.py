"""The printed report: the results table, ours ÷ each peer, and the issue's targets.

Pure functions of the JSON document, so ``python -m bench.run --report FILE`` re-prints an
earlier run exactly.
"""

from __future__ import annotations

import math
from typing import Any

from bench.pyspy_top import render
from bench.runners.base import PEERS


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if value != 0 and abs(value) < 10 ** (-digits):
            return f"{value:.{digits}g}"
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def ratio(ours: float | None, peer: float | None) -> str:
    if ours is None or peer is None or peer == 0:
        return "—"
    return f"{ours / peer:.2f}×"


def _cost(result: dict[str, Any]) -> float:
    value = result.get("cpu_ms_per_check")
    if value is None:
        value = result.get("cpu_percent")
    return float(value) if value is not None else math.inf


def representative(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (size, interval, system): the median run by CPU cost, with the others' range.

    A single run is its own representative; skipped and failed runs stand only when nothing of
    that kind ran."""
    groups: dict[tuple[Any, Any, Any], list[dict[str, Any]]] = {}
    for result in results:
        groups.setdefault((result.get("size"), result.get("interval"), result["system"]), []).append(result)
    rows = []
    for runs in groups.values():
        good = sorted((r for r in runs if "skipped" not in r and "error" not in r), key=_cost)
        if not good:
            rows.append(runs[0])
            continue
        row = dict(good[(len(good) - 1) // 2])
        if len(good) > 1:
            costs = [r["cpu_ms_per_check"] for r in good if r.get("cpu_ms_per_check") is not None]
            row["runs"] = len(good)
            row["cpu_ms_per_check_range"] = [min(costs), max(costs)] if costs else None
            row["cpu_percent_range"] = [
                min(r["cpu_percent"] for r in good),
                max(r["cpu_percent"] for r in good),
            ]
            lats = [
                r["alert"]["latency_seconds"] for r in good if (r.get("alert") or {}).get("latency_seconds")
            ]
            if lats:
                row["alert_latency_range"] = [min(lats), max(lats)]
        rows.append(row)
    return rows


def with_range(value: Any, span: list[float] | None, digits: int) -> str:
    text = fmt(value, digits)
    if span and span[0] != span[1]:
        text += f" ({fmt(span[0], digits)}–{fmt(span[1], digits)})"
    return text


def shortfall(r: dict[str, Any]) -> int:
    """Checks a system owed over its window, by the farm's count (0 under 1 %: window edges)."""
    rate, window = r.get("farm_requests_per_second"), r.get("window_seconds")
    if rate is None or not window or window < r["interval"]:
        return 0
    expected = r["size"] * window / r["interval"]
    served = rate * window
    return round(expected - served) if served < 0.99 * expected else 0


def table(results: list[dict[str, Any]]) -> str:
    head = (
        "| targets | interval s | system | checks/s required | achieved | sched lag p50 / p99 / max s "
        "| missed | farm-seen late p99 s | missed (farm) | CPU % | CPU ms/check | peak RSS MiB "
        "| alert latency s (bound) | machine busy % |"
    )
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        if "skipped" in r or "error" in r:
            why = r.get("skipped") or f"error: {r.get('error')}"
            rows.append(f"| {fmt(r.get('size'))} | {fmt(r.get('interval'), 1)} | {r['system']} | {why} |")
            continue
        lag = r.get("schedule_lag_seconds")
        lag_text = "—" if not lag else " / ".join(fmt(lag.get(k), 3) for k in ("p50", "p99", "max"))
        alert = r.get("alert") or {}
        if "latency_seconds" in alert:
            alert_text = f"{fmt(alert['latency_seconds'])} ({fmt(alert['bound_seconds'], 1)})"
        elif "skipped" in alert:
            alert_text = f"not measured ({fmt(alert['bound_seconds'], 1)})"
        else:
            alert_text = "—"
        seen = dict(r["farm_observed"])
        seen["missed"] = max(int(seen.get("missed") or 0), shortfall(r))
        rows.append(
            f"| {fmt(r['size'])} | {fmt(r['interval'], 1)} | {r['system']} "
            f"| {fmt(r['checks_per_second_required'], 1)} | {fmt(r['checks_per_second_achieved'], 1)} "
            f"| {lag_text} | {fmt(r.get('missed_checks'))} "
            f"| {fmt(seen['late_p99'], 3)} | {fmt(seen['missed'])} "
            f"| {with_range(r['cpu_percent'], r.get('cpu_percent_range'), 2)} "
            f"| {with_range(r['cpu_ms_per_check'], r.get('cpu_ms_per_check_range'), 3)} "
            f"| {fmt(r['peak_rss_mib'], 1)} "
            f"| {alert_text} | {fmt(r.get('machine_busy_percent'), 0)} |"
        )
    return "\n".join(rows)


def ratio_table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| targets | interval s | CPU/check ours ÷ blackbox | RSS ours ÷ blackbox "
        "| CPU/check ours ÷ monit | RSS ours ÷ monit |",
        "|---|---|---|---|---|---|",
    ]
    by_key: dict[tuple[int, float], dict[str, dict[str, Any]]] = {}
    for r in results:
        if "skipped" not in r and "error" not in r:
            by_key.setdefault((r["size"], r["interval"]), {})[r["system"]] = r
    for (size, interval), systems in by_key.items():
        ours = systems.get("ours")
        if ours is None:
            continue
        cells = []
        for peer in PEERS:
            other = systems.get(peer)
            cells.append(ratio(ours["cpu_ms_per_check"], other["cpu_ms_per_check"]) if other else "—")
            cells.append(ratio(ours["peak_rss_mib"], other["peak_rss_mib"]) if other else "—")
        rows.append(f"| {fmt(size)} | {fmt(interval, 1)} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def goals(results: list[dict[str, Any]]) -> list[str]:
    """The issue's targets, each with the measured figure (printed, never asserted)."""
    out: list[str] = []
    for r in results:
        if r.get("system") != "ours" or "error" in r or "skipped" in r:
            continue
        size, interval = r["size"], r["interval"]
        label = f"{size:,} @ {interval:g} s"
        lag = r.get("schedule_lag_seconds") or {}
        if size >= 10000:
            p99 = lag.get("p99")
            ok = r["missed_checks"] == 0 and p99 is not None and p99 < 0.5 and r["peak_rss_mib"] < 150
            out.append(
                f"{'met' if ok else 'NOT met'}: {label}: missed {r['missed_checks']}, "
                f"lag p99 {fmt(p99, 3)} s "
                f"(< 0.5), RSS {fmt(r['peak_rss_mib'], 1)} MiB (< 150)"
            )
        if size == 1000:
            cpc = r["cpu_ms_per_check"]
            ok = cpc is not None and cpc <= 0.5
            out.append(
                f"{'met' if ok else 'NOT met'}: {label}: CPU {fmt(cpc, 3)} ms/check (<= 0.5; aim 0.16)"
            )
        if size == 1 and interval > 60:
            ok = r["peak_rss_mib"] < 60 and (r["cpu_percent"] or 0) < 0.5
            out.append(
                f"{'met' if ok else 'NOT met'}: {label}: idle CPU {fmt(r['cpu_percent'], 3)} %, "
                f"RSS {fmt(r['peak_rss_mib'], 1)} MiB (< 60)"
            )
        alert = r.get("alert") or {}
        if "latency_seconds" in alert:
            ok = bool(alert.get("within_bound"))
            out.append(
                f"{'met' if ok else 'NOT met'}: {label}: alert latency {fmt(alert['latency_seconds'])} s "
                f"(<= {fmt(alert['bound_seconds'], 1)} s)"
            )
    return out


def report(document: dict[str, Any]) -> str:
    machine = document["machine"]
    ceiling = document.get("farm_ceiling")
    commits = sorted({str(r["monitor_commit"]) for r in document["results"] if r.get("monitor_commit")})
    commits = commits or [str(machine.get("monitor_commit") or "?")]
    lines = [
        f"## Keep-Alive Monitor scale bench — {machine['date']}",
        "",
        f"Machine: {machine['cores']} cores ({machine['cpu_model']}), {machine['memory_gib']} GiB, "
        f"Python {machine['python']}, Linux {machine['kernel']}; "
        + ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v),
        f"Command: `{document['command']}` (monitor at commit {', '.join(commits) or '?'})",
        "",
    ]
    if ceiling:
        lines.append(
            f"Farm ceiling (fresh connection per request, raw-asyncio load client): "
            f"{fmt(ceiling['requests_per_second'], 0)} req/s "
            f"with the farm at {fmt(ceiling['farm_cpu_percent'], 1)} % "
            f"of one core and the load client at {fmt(ceiling['loadgen_cpu_percent'], 1)} % "
            f"(≈ {fmt(ceiling['estimated_ceiling_per_core'])} req/s per farm core; "
            f"{fmt(ceiling['farm_cpu_ms_per_request'], 3)} ms CPU per request)."
        )
    farm_cpus = [r["farm_cpu_percent"] for r in document["results"] if "farm_cpu_percent" in r]
    if farm_cpus:
        lines.append(f"Farm CPU during the runs: at most {fmt(max(farm_cpus), 1)} % of one core.")
    rows = representative(document["results"])
    if any(r.get("runs", 1) > 1 for r in rows):
        lines.append("Each row is the median of its runs by CPU cost; (min–max) over the runs in brackets.")
    lines += ["", table(rows), "", ratio_table(rows), ""]
    goal_lines = goals(rows)
    if goal_lines:
        lines += ["Issue #5 targets (reported, not asserted):", *(f"- {line}" for line in goal_lines), ""]
    for r in document["results"]:
        profile = r.get("profile")
        if profile and "samples" in profile:
            lines += [
                f"Profile of ours, {r['size']:,} targets @ {r['interval']:g} s (py-spy, {profile['file']}):",
                "```",
                render(profile),
                "```",
                "",
            ]
    return "\n".join(lines)
