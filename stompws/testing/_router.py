"""Destinations of the embedded broker: queues, topics, subscriptions, acknowledgements.

No I/O and no threads here: the caller holds the broker's lock around every call, and
delivering a message means handing a MESSAGE frame to the subscriber's ``deliver``
callable, which only appends to that connection's outbox.

The model, chosen so that one piece of code serves both kinds of destination:

* A ``/queue/...`` is a ``MessageQueue`` with any number of consumers. Each message goes to
  one consumer, taking turns (round robin) among those with credit; a message nobody can
  take waits in the backlog, also when there is no consumer at all.
* A ``/topic/...`` gives every subscription its own private ``MessageQueue`` with that one
  consumer; a SEND copies the message into each. With no subscriber the message is dropped,
  as topics do.
* A delivery in ack mode ``client`` or ``client-individual`` stays in the subscription's
  ``unacked`` (in delivery order) until ACK or NACK. NACK, UNSUBSCRIBE and the end of the
  consumer's session put the message back at the front of its queue, marked redelivered.
  A topic subscription's private queue dies with it, so its unacked messages are dropped.
* Credit: a subscription with a ``prefetch-count`` (RabbitMQ's header) holds at most that
  many unacknowledged messages; without one, or in ack mode auto, there is no limit.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from ..frame import Frame

__all__ = [
    "QUEUE_PREFIX",
    "TOPIC_PREFIX",
    "Delivery",
    "Message",
    "MessageQueue",
    "Router",
    "Subscription",
]

QUEUE_PREFIX: Final = "/queue/"
TOPIC_PREFIX: Final = "/topic/"


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    destination: str
    headers: tuple[tuple[str, str], ...]  # the sender's headers that MESSAGE passes on
    body: bytes
    redelivered: bool = False


@dataclass(eq=False, slots=True)
class Delivery:
    ack_id: str
    message: Message
    subscription: Subscription


@dataclass(eq=False)
class MessageQueue:
    name: str
    private: bool = False
    backlog: collections.deque[Message] = field(default_factory=collections.deque)
    consumers: list[Subscription] = field(default_factory=list)
    turn: int = 0


@dataclass(eq=False)
class Subscription:
    """One SUBSCRIBE of one session.

    ``wire_id`` is the id the client gave (None for a STOMP 1.0 SUBSCRIBE without one);
    ``owner`` is the session, compared by identity only.
    """

    wire_id: str | None
    destination: str
    ack: str
    version: str
    owner: object
    deliver: Callable[[Frame], None]
    prefetch: int = 0  # 0: no limit
    queue: MessageQueue = field(default_factory=lambda: MessageQueue(""))
    unacked: dict[str, Delivery] = field(default_factory=dict)  # ack id -> delivery
    active: bool = True

    @property
    def has_credit(self) -> bool:
        return self.ack == "auto" or not self.prefetch or len(self.unacked) < self.prefetch

    def find_message(self, message_id: str) -> Delivery | None:
        # Scanned newest first: a client acks what it just got far more often than old ones.
        for delivery in reversed(self.unacked.values()):
            if delivery.message.id == message_id:
                return delivery
        return None


class Router:
    def __init__(self) -> None:
        self.queues: dict[str, MessageQueue] = {}
        self.topics: dict[str, list[Subscription]] = {}
        self.unacked: dict[str, Delivery] = {}  # every pending delivery, by ack id
        self._message_ids = itertools.count(1)
        self._ack_ids = itertools.count(1)

    # -- sending ---------------------------------------------------------------------------

    def new_message(
        self, destination: str, headers: Iterable[tuple[str, str]], body: bytes
    ) -> Message:
        return Message(f"msg-{next(self._message_ids)}", destination, tuple(headers), body)

    def publish(self, message: Message) -> None:
        destination = message.destination
        if destination.startswith(TOPIC_PREFIX):
            for subscription in self.topics.get(destination, ()):
                subscription.queue.backlog.append(message)
                self._pump(subscription.queue)
        else:
            queue = self._queue(destination)
            queue.backlog.append(message)
            self._pump(queue)

    def queue_depth(self, destination: str) -> int:
        queue = self.queues.get(destination)
        return len(queue.backlog) if queue is not None else 0

    # -- subscriptions ---------------------------------------------------------------------

    def subscribe(self, subscription: Subscription) -> None:
        destination = subscription.destination
        if destination.startswith(TOPIC_PREFIX):
            subscription.queue = MessageQueue(destination, private=True)
            self.topics.setdefault(destination, []).append(subscription)
        else:
            subscription.queue = self._queue(destination)
        subscription.queue.consumers.append(subscription)
        self._pump(subscription.queue)

    def unsubscribe(self, subscriptions: Iterable[Subscription]) -> None:
        """End subscriptions; their unacked messages go back to their queues.

        All of them leave their queues before anything is redelivered, so that a session
        that ends does not get its own messages back on another of its subscriptions.
        """
        ending = [s for s in subscriptions if s.active]
        for subscription in ending:
            subscription.active = False
            queue = subscription.queue
            index = queue.consumers.index(subscription)
            del queue.consumers[index]
            if index < queue.turn:
                queue.turn -= 1
            if queue.private:
                topic = self.topics.get(subscription.destination, [])
                topic.remove(subscription)
                if not topic:
                    self.topics.pop(subscription.destination, None)
        for subscription in ending:
            deliveries = list(subscription.unacked.values())
            subscription.unacked.clear()
            for delivery in deliveries:
                del self.unacked[delivery.ack_id]
            if not subscription.queue.private:
                self._requeue(subscription.queue, deliveries)

    # -- acknowledgements ------------------------------------------------------------------

    def settle(self, delivery: Delivery, positive: bool) -> None:
        """ACK (``positive``) or NACK a delivery that is still pending.

        In ack mode client this settles it and every earlier pending delivery of its
        subscription, for NACK too (as RabbitMQ does with ``multiple``).
        """
        subscription = delivery.subscription
        if delivery.ack_id not in subscription.unacked:
            return  # settled meanwhile (a transaction's ACK after a redelivery)
        if subscription.ack == "client":
            settled = []
            for ack_id in list(subscription.unacked):
                settled.append(subscription.unacked.pop(ack_id))
                if ack_id == delivery.ack_id:
                    break
        else:
            settled = [subscription.unacked.pop(delivery.ack_id)]
        for item in settled:
            del self.unacked[item.ack_id]
        if not positive:
            self._requeue(subscription.queue, settled)
        else:
            self._pump(subscription.queue)

    # -- internals -------------------------------------------------------------------------

    def _queue(self, name: str) -> MessageQueue:
        queue = self.queues.get(name)
        if queue is None:
            queue = self.queues[name] = MessageQueue(name)
        return queue

    def _requeue(self, queue: MessageQueue, deliveries: list[Delivery]) -> None:
        if not deliveries:
            return
        again = [dataclasses.replace(d.message, redelivered=True) for d in deliveries]
        queue.backlog.extendleft(reversed(again))
        self._pump(queue)

    def _pump(self, queue: MessageQueue) -> None:
        """Hand waiting messages to consumers with credit, taking turns."""
        backlog = queue.backlog
        consumers = queue.consumers
        while backlog and consumers:
            count = len(consumers)
            start = queue.turn % count
            for step in range(count):
                candidate = consumers[(start + step) % count]
                if candidate.has_credit:
                    break
            else:
                return
            queue.turn = (start + step + 1) % count
            self._deliver(candidate, backlog.popleft())

    def _deliver(self, subscription: Subscription, message: Message) -> None:
        pairs = [("destination", message.destination), ("message-id", message.id)]
        if subscription.wire_id is not None:
            pairs.append(("subscription", subscription.wire_id))
        if subscription.ack != "auto":
            ack_id = f"ack-{next(self._ack_ids)}"
            delivery = Delivery(ack_id, message, subscription)
            subscription.unacked[ack_id] = delivery
            self.unacked[ack_id] = delivery
            if subscription.version == "1.2":
                pairs.append(("ack", ack_id))
        if message.redelivered:
            pairs.append(("redelivered", "true"))
        pairs.extend(message.headers)
        subscription.deliver(Frame("MESSAGE", pairs, message.body))
