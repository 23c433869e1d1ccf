"""The Redis bus channel: one per Redis database number, since pub/sub channels are
shared by every database of a server."""

from __future__ import annotations

from inbox.redis_bus import channel_for


def test_deployments_on_different_redis_databases_do_not_share_a_bus_channel() -> None:
    assert channel_for("redis://127.0.0.1:6379/9") != channel_for("redis://127.0.0.1:6379/10")
    assert channel_for("redis://127.0.0.1:6379/9") == channel_for("rediss://u:p@other:6380/9")


def test_the_database_number_is_read_wherever_the_url_puts_it() -> None:
    assert channel_for("redis://h") == channel_for("redis://h/0") == "inbox:events:0"
    assert channel_for("redis://h/?db=4") == "inbox:events:4"
    assert channel_for("unix:///run/redis.sock?db=2") == "inbox:events:2"
    assert channel_for("unix:///run/redis.sock") == "inbox:events:0"
