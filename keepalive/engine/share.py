"""This replica's share of the targets file (SPEC 17), applied where settings enter the engine.

``own_share(settings)`` keeps the targets this replica checks (``engine/replicas.py``) and
remembers how many the file holds; the composition root applies it to the settings it starts
with and to every reload, so the rest of the engine never learns there are other replicas.
"""

from __future__ import annotations

from dataclasses import replace

from keepalive.config import Settings
from keepalive.engine.snapshot import ReplicaSnapshot


def own_share(settings: Settings) -> Settings:
    """``settings`` with only this replica's targets (all of them when MONITOR_REPLICAS is unset)."""
    fanout = settings.fanout
    if fanout.total_targets is not None:
        return settings  # already applied
    total = len(settings.targets)
    mine = fanout.membership.share(settings.targets)
    return replace(settings, targets=mine, fanout=replace(fanout, total_targets=total))


def replica_snapshot(settings: Settings, checked: int) -> ReplicaSnapshot:
    """Which replica this is and how much of the targets file it checks."""
    membership = settings.fanout.membership
    total = settings.fanout.total_targets
    return ReplicaSnapshot(
        name=membership.name,
        replicas=membership.replicas,
        copies=membership.effective_copies,
        checks=checked,
        of=total if total is not None else checked,
    )


def share_line(settings: Settings) -> str:
    """One line for --check-config and the start-up log."""
    shared = own_share(settings)
    total = shared.fanout.total_targets
    return shared.fanout.membership.describe(len(shared.targets), total if total is not None else 0)
