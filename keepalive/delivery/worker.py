"""The thread that delivers the outbox, and its short-lived sending threads ("lanes").

One scheduling thread looks at the head of every (channel, recipient) queue and starts one
sending thread per due queue, so a slow SMTP server never holds back a Telegram alert, and a
queue is never sent to by two threads at once. What an outcome means lives in ``policy``,
what is reported about it in ``ledger``, what is stored in ``store``.

Retries are timed on the MONOTONIC clock: setting the wall clock back an hour must not delay
them by an hour. The stored ``next_try`` is wall time, written for people and for a restart;
a delivery read back from disk (after a restart, or stored by ``put``) is due after the time
left until it, at most one maximum backoff.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from keepalive.delivery.ledger import Ledger, Message
from keepalive.delivery.policy import Failed, Retry, RetryPolicy, Sent, split_digests
from keepalive.delivery.store import Delivery, Key, Outbox
from keepalive.events import EventLog
from keepalive.notifiers.base import Notifier
from keepalive.scrub import scrub

log = logging.getLogger("keepalive.outbox")


class DeliveryWorker(threading.Thread):
    """Delivers the outbox (see the module doc).

    A queue with more than ``digest_after`` pending alerts gets digests (as many alerts in
    each as the channel's ``digest_capacity`` allows); otherwise its alerts go one by one,
    oldest first, stopping at the first failure. A RECOVERED alone in its message is sent as
    a reply to its outage's first DOWN when the outbox knows that message's id.

    Exactly-once: success is committed right after the server accepts the message. The only
    way to send an alert twice is a crash (or a stop that gives up on a hung send) between the
    server's answer and that commit; a retry or an ordinary restart never repeats a message.
    Should the database refuse that commit, this process remembers the delivery as sent and
    records it once the database recovers; only a crash before then reopens the window.
    """

    MAX_WAIT = 60.0  # re-examine the queues at least this often (lost wake-ups)
    ERROR_PAUSE = 5.0  # after a database error, leave the queue alone this long
    PRUNE_EVERY = 3600.0
    MAX_UNEXPECTED = 5  # unexpected exceptions in a row on one message before giving up

    def __init__(
        self,
        outbox: Outbox,
        notifiers: Sequence[Notifier],
        events: EventLog,
        digest_after: int,
        clock: Callable[[], float] = time.time,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        max_digest: int = 100,
        max_lanes: int = 8,
        keep_for: float = 30 * 86400.0,
    ) -> None:
        super().__init__(name="delivery", daemon=True)
        self._outbox = outbox
        self._ledger = Ledger(events)
        self._digest_after = max(1, digest_after)
        self._clock = clock
        self._monotonic = monotonic
        self._policy = RetryPolicy(base_delay, max_delay, self.MAX_UNEXPECTED)
        # A digest must hold more alerts than digest_after, or it would never be chosen.
        self._batch = max(max_digest, self._digest_after + 1)
        self._max_lanes = max(1, max_lanes)
        self._keep_for = keep_for
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._notifiers: dict[str, Notifier] = {}
        self._lanes: dict[tuple[str, str], threading.Thread] = {}
        # Monotonic due time of each queue head this process has seen (see the module doc).
        self._due: dict[Key, float] = {}
        # Unexpected exceptions in a row per message head: only these count toward giving up.
        self._unexpected: dict[Key, int] = {}
        # Recipient moves already in the outbox, per channel (see Notifier.moved_recipients).
        self._moves: dict[str, dict[str, str]] = {}
        # Queues whose last sending thread hit an error (the database, most likely): left alone
        # for a moment, so a broken disk does not turn into a busy loop. Monotonic.
        self._paused: dict[tuple[str, str], float] = {}
        # Accepted by the server but not yet recorded (the database refused the write): never
        # sent again by this process, recorded as soon as the database takes it.
        self._unrecorded: dict[Key, tuple[str | None, float]] = {}
        self.set_notifiers(notifiers)

    # -- control, from any thread ------------------------------------------------------------

    def wake(self) -> None:
        """Look at the outbox now (call after ``Outbox.put``)."""
        self._wakeup.set()

    def stop(self, timeout: float) -> None:
        """Stop scheduling and let sends in flight finish within ``timeout`` seconds.

        A send still hanging after that is abandoned (its thread is a daemon); its delivery
        stays pending and goes again after a restart."""
        self._stopping.set()
        self._wakeup.set()
        deadline = time.monotonic() + timeout
        if self.is_alive():
            self.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            lanes = list(self._lanes.items())
        for _, lane in lanes:
            lane.join(max(0.0, deadline - time.monotonic()))
        hung = [f"{channel}:{recipient}" for (channel, recipient), lane in lanes if lane.is_alive()]
        if hung:
            log.warning("delivery stopped with sends in flight, left pending queues=%s", ",".join(hung))

    def set_notifiers(self, notifiers: Sequence[Notifier]) -> None:
        """Replace the channels (SIGHUP reload). Deliveries to a channel that is gone stay
        pending; sends in flight finish with the notifier they started with."""
        with self._lock:
            self._notifiers = {notifier.channel: notifier for notifier in notifiers}
            self._moves = {}
        self._ledger.know(list(self._notifiers))
        for notifier in notifiers:
            try:
                known = self._outbox.moves(notifier.channel)
            except Exception as exc:  # the moves are an optimisation; delivery goes on without
                log.error("cannot read recipient moves error=%s", scrub(f"{type(exc).__name__}: {exc}"))
                continue
            notifier.follow_moves(known)
            with self._lock:
                self._moves[notifier.channel] = dict(known)
        self._wakeup.set()

    def set_digest_after(self, digest_after: int) -> None:
        """Apply a reloaded DIGEST_AFTER."""
        with self._lock:
            self._digest_after = max(1, digest_after)
            self._batch = max(self._batch, self._digest_after + 1)
        self._wakeup.set()

    def channel_stats(self) -> dict[str, dict[str, Any]]:
        """Per channel: last_success, last_error, last_error_at, sent_total, failed_total
        (totals count alerts, since this worker started)."""
        return self._ledger.stats()

    def backoff(self, attempt: int) -> float:
        """Seconds before the next try after failed attempt number ``attempt`` (1-based)."""
        return self._policy.backoff(attempt)

    # -- the scheduling thread ---------------------------------------------------------------

    def run(self) -> None:
        next_prune = 0.0
        while not self._stopping.is_set():
            # Clear before looking, so a put() during the look still wakes the next wait.
            self._wakeup.clear()
            try:
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + self.PRUNE_EVERY
                    self._outbox.prune(self._clock() - self._keep_for)
                wait = self._schedule()
            except Exception as exc:  # a database error must not end delivery for good
                log.error("outbox scheduling failed error=%s", scrub(f"{type(exc).__name__}: {exc}"))
                wait = self.ERROR_PAUSE
            self._wakeup.wait(wait)

    def _due_at(self, key: Key, stored_next_try: float) -> float:
        """The monotonic time a queue head is due (remembered from the first look)."""
        with self._lock:
            due = self._due.get(key)
            if due is None:
                due = self._monotonic() + self._policy.due_after_restart(stored_next_try, self._clock())
                self._due[key] = due
            return due

    def _schedule(self) -> float:
        """Start a sending thread for each due queue; return how long to wait before looking again."""
        with self._lock:
            notifiers = dict(self._notifiers)
        wait = self.MAX_WAIT
        for head in self._outbox.queues(notifiers):
            if self._stopping.is_set():
                break
            if head.recipient not in notifiers[head.channel].recipients():
                # Removed from the settings by a reload: never message it again. Its deliveries
                # stay pending (visible in the outbox figures) in case it is added back.
                continue
            queue = (head.channel, head.recipient)
            now = self._monotonic()
            resume = max(self._due_at(head.key, head.next_try) - now, self._paused.get(queue, 0.0) - now)
            if resume > 0:
                wait = min(wait, resume)
                continue
            with self._lock:
                # A busy queue or a full house: the ending thread wakes us.
                if queue in self._lanes or len(self._lanes) >= self._max_lanes:
                    continue
                lane = threading.Thread(
                    target=self._lane,
                    args=(notifiers[head.channel], head.channel, head.recipient),
                    name=f"delivery-{head.channel}",
                    daemon=True,
                )
                self._lanes[queue] = lane
            try:
                lane.start()
            except RuntimeError as exc:  # out of threads: try again on the next pass
                with self._lock:
                    self._lanes.pop(queue, None)
                log.error("cannot start a delivery thread error=%s", exc)
                wait = min(wait, self.ERROR_PAUSE)
        return max(0.0, wait)

    # -- the sending threads -----------------------------------------------------------------

    def _lane(self, notifier: Notifier, channel: str, recipient: str) -> None:
        try:
            self._deliver(notifier, channel, recipient)
        except Exception as exc:  # e.g. the database refused a write; try again a bit later
            log.error(
                "delivery failed channel=%s recipient=%s error=%s",
                channel,
                recipient,
                scrub(f"{type(exc).__name__}: {exc}"),
            )
            with self._lock:
                self._paused[(channel, recipient)] = self._monotonic() + self.ERROR_PAUSE
        finally:
            with self._lock:
                self._lanes.pop((channel, recipient), None)
            self._wakeup.set()

    def _deliver(self, notifier: Notifier, channel: str, recipient: str) -> None:
        batch = self._outbox.pending(channel, recipient, self._batch)
        with self._lock:
            owed = {d.key: self._unrecorded[d.key] for d in batch if d.key in self._unrecorded}
        for key, (message_id, sent_at) in owed.items():
            self._outbox.mark_sent([key], message_id, sent_at)
            with self._lock:
                self._unrecorded.pop(key, None)
                self._due.pop(key, None)
        batch = [d for d in batch if d.key not in owed]
        if not batch or self._due_at(batch[0].key, batch[0].next_try) > self._monotonic():
            return
        if len(batch) > self._digest_after:
            messages = split_digests(batch, lambda rest: notifier.digest_capacity([d.alert for d in rest]))
        else:
            messages = [[d] for d in batch]
        for message in messages:
            if self._stopping.is_set() or not self._send(notifier, channel, recipient, message):
                return

    def _send(self, notifier: Notifier, channel: str, recipient: str, batch: list[Delivery]) -> bool:
        """Send one message; record the outcome. True when it was accepted and recorded."""
        keys = [delivery.key for delivery in batch]
        alerts = tuple(delivery.alert for delivery in batch)
        attempt = max(delivery.attempts for delivery in batch) + 1
        message = Message(channel, recipient, alerts, attempt)
        reply_to = self._outbox.thread_root(channel, recipient, alerts[0]) if len(alerts) == 1 else None
        error: BaseException | None = None
        message_id: str | None = None
        trace = ""
        try:
            message_id = notifier.send(recipient, alerts, reply_to=reply_to)
        except Exception as exc:
            error = exc
            trace = traceback.format_exc()
        self._keep_moves(notifier)
        with self._lock:
            unexpected = self._unexpected.get(keys[0], 0) + 1
        outcome = self._policy.outcome(error, attempt, unexpected_in_row=unexpected, message_id=message_id)
        if isinstance(outcome, Retry) and outcome.unexpected:
            # A bug in a channel must cost one retry, not the delivery thread.
            log.error("notifier raised unexpectedly channel=%s\n%s", channel, scrub(trace))
        with self._lock:
            if isinstance(outcome, Retry) and outcome.unexpected:
                self._unexpected[keys[0]] = unexpected
            else:
                self._unexpected.pop(keys[0], None)
        if isinstance(outcome, Sent):
            return self._record_sent(message, keys, outcome.message_id)
        if isinstance(outcome, Failed):
            self._outbox.mark_failed(keys, outcome.reason)
            self._forget(keys)
            self._ledger.failed(message, outcome.reason, self._clock())
            return False
        self._record_retry(message, keys, outcome)
        return False

    def _keep_moves(self, notifier: Notifier) -> None:
        """Store moves the notifier learnt during this send, so the next process knows them."""
        moves = notifier.moved_recipients()
        if not moves:
            return
        with self._lock:
            known = self._moves.setdefault(notifier.channel, {})
            new = {old: moved for old, moved in moves.items() if known.get(old) != moved}
        if not new:
            return
        try:
            self._outbox.record_moves(notifier.channel, new)
        except Exception as exc:  # kept in memory by the notifier all the same
            log.error("cannot store recipient moves error=%s", scrub(f"{type(exc).__name__}: {exc}"))
            return
        with self._lock:
            known.update(new)

    def _record_sent(self, message: Message, keys: list[Key], message_id: str | None) -> bool:
        now = self._clock()
        recorded = True
        try:
            self._outbox.mark_sent(keys, message_id, now)
        except Exception as exc:
            recorded = False
            log.error("alert sent but not recorded, will record later error=%s", scrub(str(exc)))
            with self._lock:
                self._unrecorded.update({key: (message_id, now) for key in keys})
        if recorded:
            self._forget(keys)
        self._ledger.sent(message, message_id, now)
        return recorded

    def _record_retry(self, message: Message, keys: list[Key], retry: Retry) -> None:
        now = self._clock()
        due = self._monotonic() + retry.delay
        with self._lock:
            for key in keys:
                self._due[key] = due
        self._outbox.mark_retry(keys, now + retry.delay, retry.reason)
        self._ledger.retry(message, retry.reason, retry.delay, now)

    def _forget(self, keys: Sequence[Key]) -> None:
        with self._lock:
            for key in keys:
                self._due.pop(key, None)
