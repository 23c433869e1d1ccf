"""The hub: one bounded queue per subscriber; publishing never waits; a subscriber that
falls behind is told to resync and dropped, alone."""

from __future__ import annotations

import asyncio

import pytest

from inbox.bus import LocalBus
from inbox.events import EventOut
from inbox.hub import Hub, Resync


def _event(seq: int, *, conversation_id: int = 1, type: str = "message.created") -> EventOut:
    return EventOut(seq=seq, type=type, conversation_id=conversation_id, payload={"n": seq})


async def _drain(sub: object) -> list[int]:
    seqs = []
    while (event := sub.get_nowait()) is not None:  # type: ignore[attr-defined]
        seqs.append(event.seq)
    return seqs


async def test_every_subscriber_receives_every_event_in_order() -> None:
    hub = Hub(queue_size=10)
    first, second = hub.subscribe(), hub.subscribe()
    for seq in range(1, 6):
        hub.deliver(_event(seq))
    assert [(await first.get()).seq for _ in range(5)] == [1, 2, 3, 4, 5]
    assert await _drain(second) == [1, 2, 3, 4, 5]


async def test_filter_decides_what_a_subscriber_receives() -> None:
    hub = Hub()
    only_two = hub.subscribe(lambda e: e.conversation_id == 2)
    hub.deliver(_event(1, conversation_id=1))
    hub.deliver(_event(2, conversation_id=2))
    assert await _drain(only_two) == [2]


async def test_publish_returns_without_waiting_when_nobody_reads() -> None:
    hub = Hub(queue_size=4)
    bus = LocalBus(hub)
    stuck = hub.subscribe()
    # Publishing is synchronous: far more events than the queue holds go out at once,
    # with no await in between, so nothing could possibly wait for the reader.
    for seq in range(1, 1001):
        bus.publish(_event(seq))
    with pytest.raises(Resync):
        await stuck.get()


async def test_overflow_resyncs_only_the_slow_subscriber() -> None:
    hub = Hub(queue_size=3)
    slow = hub.subscribe()
    fast = hub.subscribe()
    received: list[int] = []
    for seq in range(1, 11):
        hub.deliver(_event(seq))
        received.extend(await _drain(fast))
    assert received == list(range(1, 11))
    assert slow.overflowed and slow.closed
    assert fast.overflowed is False and fast.closed is False
    assert hub.subscriber_count == 1
    # The slow one learns it must resync (queued events are dropped, not delivered late).
    with pytest.raises(Resync):
        await slow.get()


async def test_queue_holds_exactly_its_size_before_overflowing() -> None:
    hub = Hub(queue_size=3)
    sub = hub.subscribe()
    for seq in range(1, 4):
        hub.deliver(_event(seq))
    assert not sub.overflowed
    assert await _drain(sub) == [1, 2, 3]
    for seq in range(4, 8):
        hub.deliver(_event(seq))
    assert sub.overflowed
    with pytest.raises(Resync):
        sub.get_nowait()


async def test_dropped_subscriber_receives_nothing_more() -> None:
    hub = Hub(queue_size=1)
    sub = hub.subscribe()
    hub.deliver(_event(1))
    hub.deliver(_event(2))  # overflow
    hub.deliver(_event(3))
    with pytest.raises(Resync):
        await sub.get()
    assert sub.get_nowait() is None


async def test_per_subscription_maxsize_overrides_the_hub_default() -> None:
    hub = Hub(queue_size=1)
    roomy = hub.subscribe(maxsize=5)
    for seq in range(1, 6):
        hub.deliver(_event(seq))
    assert await _drain(roomy) == [1, 2, 3, 4, 5]


async def test_closed_subscription_is_removed_from_the_hub() -> None:
    hub = Hub()
    sub = hub.subscribe()
    assert hub.subscriber_count == 1
    sub.close()
    sub.close()  # idempotent
    hub.deliver(_event(1))
    assert hub.subscriber_count == 0
    assert sub.get_nowait() is None


async def test_a_broken_filter_does_not_stop_delivery_to_others() -> None:
    hub = Hub()

    def broken(_event: EventOut) -> bool:
        raise RuntimeError("filter bug")

    hub.subscribe(broken)
    healthy = hub.subscribe()
    hub.deliver(_event(1))
    assert await _drain(healthy) == [1]


async def test_waiting_reader_wakes_when_an_event_arrives() -> None:
    hub = Hub()
    sub = hub.subscribe()
    waiter = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    hub.deliver(_event(7))
    assert (await asyncio.wait_for(waiter, 2)).seq == 7


def test_topic_subscribers_get_only_their_customers_events_and_agents_get_all() -> None:
    from inbox.hub import conversation_topic, customer_topic

    hub = Hub(queue_size=10)
    agent = hub.subscribe()
    visitor = hub.subscribe(topics={customer_topic("webchat", "v_1")})
    other = hub.subscribe(topics={customer_topic("webchat", "v_2")})
    mine = EventOut(seq=1, type="message.created", conversation_id=7,
                    payload={"conversation": {"channel": "webchat", "customer_address": "v_1"}})
    typing = EventOut(seq=None, type="typing", conversation_id=7, payload={})
    hub.deliver(mine)
    hub.deliver(typing)
    assert agent.get_nowait() == mine and agent.get_nowait() == typing
    assert visitor.get_nowait() == mine and visitor.get_nowait() is None
    assert other.get_nowait() is None
    visitor.follow(conversation_topic(7))
    hub.deliver(typing)
    assert visitor.get_nowait() == typing
    visitor.close()
    assert hub.subscriber_count == 2 and conversation_topic(7) not in hub._index


async def test_a_batch_takes_everything_queued_in_order() -> None:
    hub = Hub()
    sub = hub.subscribe()
    for seq in (1, 2, 3):
        hub.deliver(_event(seq))
    assert [e.seq for e in await sub.batch()] == [1, 2, 3]
    assert sub.get_nowait() is None


async def test_a_quiet_subscription_is_woken_empty_for_its_heartbeat_and_only_it() -> None:
    hub = Hub()
    quiet = hub.subscribe(heartbeat=0.05)
    plain = hub.subscribe()
    without = asyncio.create_task(plain.batch())
    assert await asyncio.wait_for(quiet.batch(), 2) == []  # a heartbeat is due: ping
    assert await asyncio.wait_for(quiet.batch(), 2) == []  # and again after as long
    await asyncio.sleep(0.1)
    assert not without.done()  # no heartbeat asked for: it waits for events only
    hub.deliver(_event(1))
    assert [e.seq for e in await asyncio.wait_for(without, 2)] == [1]
    assert [e.seq for e in await quiet.batch()] == [1]


async def test_an_overflowed_subscription_raises_resync_from_batch() -> None:
    hub = Hub(queue_size=1)
    sub = hub.subscribe(heartbeat=10)
    hub.deliver(_event(1))
    hub.deliver(_event(2))
    with pytest.raises(Resync):
        await sub.batch()
