"""Where the rest of the monitor imports delivery from (the composition root, the tests).

The pieces live one concern a file: ``store`` (the durable SQLite outbox), ``policy`` (pure
backoff, outcome and digest rules), ``worker`` (the threads that send), ``ledger`` (figures
and events about deliveries).
"""

from __future__ import annotations

from keepalive.delivery.store import FAILED, FILENAME, PENDING, SENT, Delivery, Key, Outbox, QueueHead
from keepalive.delivery.worker import DeliveryWorker

__all__ = [
    "FAILED",
    "FILENAME",
    "PENDING",
    "SENT",
    "Delivery",
    "DeliveryWorker",
    "Key",
    "Outbox",
    "QueueHead",
]
