"""The Redis broker transport, with one reusable client per channel.

kombu's Redis channel builds a new `redis.Redis` for every publish (its
connection pool is shared, but each client object fills a table of about 170
response callbacks). On the webhook door that was a third of the CPU of
handing an event to the worker. This channel keeps one client per connection
pool instead; redis-py clients are safe to share, every command takes its own
connection from the pool. Consuming (BRPOP, the async client) is unchanged.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis


class Channel(redis.Channel):
    _shared_client: Any = None

    def _create_client(self, asynchronous: bool = False):
        if asynchronous:
            return super()._create_client(asynchronous=True)
        pool = self.pool
        client = self._shared_client
        if client is None or client.connection_pool is not pool:
            client = self._shared_client = super()._create_client()
        return client


class Transport(redis.Transport):
    Channel = Channel
