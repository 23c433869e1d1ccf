"""The hub's sequencer and router without a server: committed events leave in seq order
(a gap waits, then is read from the log once), duplicates are dropped, a hole is
skipped, ephemeral events never wait; watchers are asked only about their topics."""

from __future__ import annotations

import asyncio

from inbox.events import EventOut
from inbox.hub import Hub
from inbox.routing import View, ViewState, Watch, parse_watch


def event(seq: int | None, *, conversation_id: int = 1, **conversation: object) -> EventOut:
    payload: dict[str, object] = {}
    if conversation:
        payload["conversation"] = {"id": conversation_id, "contact_id": 9, "status": "open",
                                   "assignee_id": None, "channel": "sms", "handled_by": "bot",
                                   **conversation}
    return EventOut(seq=seq, type="message.created", conversation_id=conversation_id, payload=payload)


def drain(sub: object) -> list[int | None]:
    out = []
    while (e := sub.get_nowait()) is not None:  # type: ignore[attr-defined]
        out.append(e.seq)
    return out


class Log:
    """An event log to read gaps from: the committed events, and how often it was read."""

    def __init__(self, events: list[EventOut]) -> None:
        self.events = events
        self.reads = 0

    async def fetch(self, after: int, upto: int) -> list[EventOut]:
        self.reads += 1
        return [e for e in self.events if after < (e.seq or 0) <= upto]


async def test_events_published_out_of_order_leave_in_order_without_reading_the_log() -> None:
    log = Log([])
    hub = Hub(fetch=log.fetch)
    sub = hub.subscribe()
    for seq in (1, 3, 4, 2, 5):
        hub.deliver(event(seq))
    assert drain(sub) == [1, 2, 3, 4, 5]
    assert log.reads == 0


async def test_a_gap_is_read_from_the_log_once_however_many_subscribers() -> None:
    log = Log([event(2)])
    hub = Hub(fetch=log.fetch)
    hub.sequencer.hold = 0.02
    subs = [hub.subscribe() for _ in range(50)]
    hub.deliver(event(1))
    hub.deliver(event(3))
    hub.deliver(event(4))
    assert drain(subs[0]) == [1]
    await asyncio.sleep(0.1)
    assert drain(subs[0]) == [2, 3, 4]
    assert all(drain(s) == [1, 2, 3, 4] for s in subs[1:])
    assert log.reads == 1 and hub.sequencer.recovered == 1


async def test_a_seq_missing_from_the_log_is_skipped_and_a_late_duplicate_dropped() -> None:
    log = Log([])
    hub = Hub(fetch=log.fetch)
    hub.sequencer.hold = 0.02
    sub = hub.subscribe()
    hub.deliver(event(1))
    hub.deliver(event(3))
    await asyncio.sleep(0.1)
    assert drain(sub) == [1, 3]
    assert hub.sequencer.skipped == 1
    hub.deliver(event(3))  # the bus delivered it twice
    hub.deliver(event(4))
    assert drain(sub) == [4]


async def test_ephemeral_events_pass_while_a_gap_waits() -> None:
    hub = Hub()
    hub.sequencer.hold = 0.05
    sub = hub.subscribe()
    hub.deliver(event(1))
    hub.deliver(event(3))
    hub.deliver(EventOut(seq=None, type="typing", conversation_id=1))
    assert drain(sub) == [1, None]
    await asyncio.sleep(0.15)  # no log to read: the gap is skipped after the hold
    assert drain(sub) == [3]


async def test_an_event_older_than_the_first_one_seen_is_released_not_lost() -> None:
    hub = Hub()
    sub = hub.subscribe()
    hub.deliver(event(8))  # the first this process saw (it started meanwhile)
    hub.deliver(event(7))  # committed earlier, published later
    assert drain(sub) == [8, 7]


async def test_resync_all_forgets_the_position_and_what_is_held() -> None:
    hub = Hub()
    hub.deliver(event(1))
    hub.deliver(event(3))
    assert hub.sequencer.held == 1
    hub.resync_all()
    assert hub.sequencer.held == 0 and hub.sequencer.next_seq is None
    sub = hub.subscribe()
    hub.deliver(event(10))
    assert drain(sub) == [10]


async def test_watchers_are_asked_only_about_events_of_their_topics() -> None:
    hub = Hub()
    idle = [hub.subscribe(watch=Watch(agent_id=7, view=View(assignee_id=7))) for _ in range(100)]
    active = hub.subscribe(watch=parse_watch({"view": {"status": "open"}}, agent_id=8))
    hub.deliver(EventOut(seq=1, type="conversation.created", conversation_id=1,
                         payload=event(1, status="open").payload))
    hub.deliver(event(2, status="open"))
    assert hub.considered == 2
    assert drain(active) == [1, 2] and all(drain(s) == [] for s in idle)
    # Assigned to agent 7: every one of its sockets hears of it, and the open watcher too.
    hub.deliver(EventOut(seq=3, type="conversation.updated", conversation_id=1, payload={
        **event(3, assignee_id=7).payload,
        "previous": {"status": "open", "assignee_id": None, "channel": "sms", "handled_by": "bot"}}))
    assert drain(active) == [3] and all(drain(s) == [3] for s in idle)


async def test_a_conversation_first_seen_since_start_reaches_every_watcher() -> None:
    # Its state before is unknown (no "previous", not seen yet): it may leave a view.
    hub = Hub()
    mine = hub.subscribe(watch=Watch(agent_id=7, view=View(assignee_id=7)))
    hub.deliver(event(1, conversation_id=5, assignee_id=None))
    hub.deliver(event(2, conversation_id=5, assignee_id=None))
    assert drain(mine) == [1]


async def test_after_a_resync_states_are_reloaded_and_events_after_them_routed_by_view() -> None:
    # The database says (one snapshot, as of seq 10): conversation 5 is open and nobody's.
    reads: list[int] = []

    async def read_states(limit: int) -> tuple[int, list[tuple[int, ViewState]]]:
        reads.append(limit)
        await asyncio.sleep(0.01)
        return 10, [(5, ViewState("open", None, "sms", "bot"))]

    log = Log([event(10, conversation_id=5, status="open")])
    hub = Hub(fetch=log.fetch)
    hub.sequencer.hold = 0.02
    hub.use_log(log.fetch, states=read_states)
    await asyncio.sleep(0.05)
    hub.resync_all()  # the bus came back: events may have been missed
    assert hub.reloading
    mine = hub.subscribe(watch=Watch(agent_id=7, view=View(assignee_id=7)))
    everything = hub.subscribe()
    hub.deliver(event(12, conversation_id=5))  # arrives before the states are in: held
    assert drain(everything) == []
    await asyncio.sleep(0.1)
    # Released from seq 11 on (the gap read from the log), routed by the stored state:
    # conversation 5 was never in agent 7's view, so 7 is not told of it.
    assert drain(everything) == [12]
    assert drain(mine) == []
    assert reads == [hub.reloader.limit] * 2 and hub.reloads == 2
    assert log.reads == 1 and hub.sequencer.skipped == 1


async def test_an_event_older_than_the_reloaded_states_changes_nothing_and_reaches_watchers() -> None:
    hub = Hub()
    hub.states.warm([(5, ViewState("open", 7, "sms", "human"))], as_of=10)
    hub.sequencer.pause()
    hub.sequencer.resume(at=11)  # where a reload as of seq 10 leaves it
    mine = hub.subscribe(watch=Watch(agent_id=8, view=View(assignee_id=8)))
    hub.deliver(event(9, conversation_id=5, assignee_id=None))  # late, from before the snapshot
    assert drain(mine) == [9]  # its state before is unknown: every watcher may need it
    hub.deliver(event(11, conversation_id=5, assignee_id=7))  # still open and agent 7's
    hub.deliver(event(12, conversation_id=5, assignee_id=8))  # given to agent 8
    assert drain(mine) == [12]
    assert hub.sequencer.late == 1


async def test_a_state_read_that_hangs_holds_events_no_longer_than_the_reload_timeout() -> None:
    async def hangs(limit: int) -> tuple[int, list[tuple[int, ViewState]]]:
        await asyncio.sleep(60)
        return 0, []

    hub = Hub()
    hub.reloader.timeout = 0.05
    sub = hub.subscribe()
    hub.use_log(Log([]).fetch, states=hangs)
    hub.deliver(event(1, status="open"))
    assert drain(sub) == []  # held while the states are read
    await asyncio.sleep(0.2)
    assert drain(sub) == [1] and not hub.reloading and hub.reloads == 0
