"""Which targets this replica checks: rendezvous (highest-random-weight) hashing (SPEC 17).

Several monitors share one targets file. Each target is checked by ``copies`` of them: the
replicas with the highest score ``hash(replica, target)``. Every replica computes the same
answer from the same list of names without talking to the others, and a change of membership
moves only the changed replica's share: adding replica R takes a target from an old owner only
where R now scores in its top ``copies``; removing R hands each of its targets to the next
replica on that target's own list. Nothing else moves (consistent hashing with no ring to keep).

With Alertmanager behind the replicas (its cluster deduplicates identical labels), ``copies``
>= 2 means a replica that dies loses no alert: each of its targets is still checked elsewhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from keepalive.targets import Target

T = TypeVar("T", bound=Target)


def score(replica: str, target: str) -> int:
    """The weight of ``replica`` for ``target``: 64 bits of SHA-256 of both names. A keyed
    cryptographic hash rather than Python's ``hash``: the same on every machine and every run."""
    digest = hashlib.sha256(f"{replica}\x00{target}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def owners(target: str, replicas: Sequence[str], copies: int) -> tuple[str, ...]:
    """The ``copies`` replicas that check ``target``, highest score first (ties by name)."""
    ranked = sorted(replicas, key=lambda replica: (-score(replica, target), replica))
    return tuple(ranked[: max(1, copies)])


@dataclass(frozen=True, slots=True)
class Membership:
    """This replica's name, every replica's name, and how many check each target.

    ``replicas`` empty means no replication: this monitor checks every target."""

    name: str
    replicas: tuple[str, ...] = ()
    copies: int = 2

    @property
    def enabled(self) -> bool:
        return bool(self.replicas)

    @property
    def effective_copies(self) -> int:
        """Copies cannot exceed the replicas there are."""
        return min(self.copies, len(self.replicas)) if self.replicas else 1

    def checks(self, target: str) -> bool:
        """Whether this replica checks ``target``."""
        if not self.replicas:
            return True
        return self.name in owners(target, self.replicas, self.effective_copies)

    def share(self, targets: Sequence[T]) -> tuple[T, ...]:
        """The targets this replica checks, in the file's order."""
        if not self.replicas:
            return tuple(targets)
        return tuple(target for target in targets if self.checks(target.name))

    def describe(self, checked: int, total: int) -> str:
        """One line for --check-config and the start-up log."""
        if not self.replicas:
            return f"replica {self.name}: alone (MONITOR_REPLICAS unset), checks all {total} target(s)"
        return (
            f"replica {self.name} of {len(self.replicas)} ({', '.join(self.replicas)}), "
            f"copies {self.effective_copies}: checks {checked} of {total} target(s)"
        )
