"""The Redis broker: streams with consumer groups, one per (queue, priority lane).

broker.py is the Broker; scripts.py its Lua; admin.py listings, purge and dead letters;
connection.py pools, retries and fork safety. docs/redis.md explains the layout.
"""

from taskq.brokers.redis.broker import RedisBroker, lane_of
from taskq.brokers.redis.scripts import GROUP

__all__ = ["GROUP", "RedisBroker", "lane_of"]
