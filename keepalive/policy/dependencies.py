"""``depends_on`` (SPEC 13): a target whose parents are all down does not page on its own.

A router failing takes everything behind it down; the operator needs one DOWN (the router's,
listing the dependents failing with it), not fifty. So a dependent's DOWN is held while every
target it depends on is in an outage, and released, if the dependent is still down, when one
of them recovers. "In an outage" includes *failing* (not yet announced): a parent and a child
failing in the same instant must not let the child fire first, so the child waits until the
parent's next checks have spoken (down: still held; passed: released). With several parents
(redundant uplinks), one parent up means the outage is the child's own: it is not held.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from keepalive.errors import ConfigError
from keepalive.state import Status

OUTAGE = frozenset({Status.FAILING, Status.DOWN})


def read_depends_on(where: str, value: object) -> tuple[str, ...]:
    """A target's ``depends_on`` value: a name or a list of names."""
    items = [value] if isinstance(value, str) else value
    if (
        not isinstance(items, list)
        or not all(isinstance(i, str) and i.strip() for i in items)
        or len(items) > 100
    ):
        raise ConfigError(f"{where}: depends_on={value!r} is invalid: expected a list of target names")
    return tuple(dict.fromkeys(i.strip() for i in items))


def check_graph(parents: Mapping[str, Sequence[str]], source: str) -> None:
    """Unknown names and cycles are configuration errors naming the target."""
    for name, wanted in parents.items():
        for parent in wanted:
            if parent not in parents:
                raise ConfigError(
                    f"{source}: target {name!r}: depends_on names {parent!r}, which is not a target"
                )
            if parent == name:
                raise ConfigError(f"{source}: target {name!r}: depends_on names itself")
    # Iterative depth-first search: a chain of 50,000 targets must not hit the recursion limit.
    done: set[str] = set()
    for root in parents:
        if root in done:
            continue
        path: list[str] = []
        on_path: set[str] = set()
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            node, index = stack.pop()
            if index == 0:
                if node in on_path:
                    cycle = [*path[path.index(node) :], node]
                    raise ConfigError(f"{source}: depends_on has a cycle: {' -> '.join(cycle)}")
                if node in done:
                    continue
                path.append(node)
                on_path.add(node)
            children = parents[node]
            if index < len(children):
                stack.append((node, index + 1))
                stack.append((children[index], 0))
            else:
                path.pop()
                on_path.discard(node)
                done.add(node)


def dependents(parents: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Each parent's direct dependents."""
    found: dict[str, list[str]] = {}
    for child, wanted in parents.items():
        for parent in wanted:
            found.setdefault(parent, []).append(child)
    return {parent: tuple(children) for parent, children in found.items()}


def held_by_parents(
    wanted: Iterable[str],
    status_of: Callable[[str], Status | None],
    checked_at: Callable[[str], float | None] | None = None,
    since: float | None = None,
) -> str | None:
    """``depends on 'router' (down)`` when every parent is in an outage, else None.

    A parent not checked since the dependent began failing (``since``) has not spoken yet: it
    may be failing in the same instant, so it counts as ``waiting for its next check``."""
    parts = []
    for parent in wanted:
        status = status_of(parent)
        if status in OUTAGE:
            assert status is not None
            parts.append(f"{parent!r} ({status.value})")
            continue
        last = checked_at(parent) if checked_at is not None else None
        if since is not None and checked_at is not None and (last is None or last < since):
            parts.append(f"{parent!r} (waiting for its next check)")
            continue
        return None
    return f"depends on {', '.join(parts)}" if parts else None
