"""The Redis broker: streams with consumer groups, one per (queue, priority lane).

broker.py is the Broker; scripts.py its Lua; admin.py listings, purge and dead letters;
connection.py pools, retries and fork safety; owned.py claims by owner (settle, keep,
give up); cluster.py how calls split over a Redis
Cluster's slots; urls.py the redis+cluster:// and redis+sentinel:// URLs. docs/redis.md
explains the layout, docs/scaling.md the clustered forms.
"""

from taskq.brokers.redis.broker import RedisBroker, lane_of
from taskq.brokers.redis.scripts import GROUP

__all__ = ["GROUP", "RedisBroker", "lane_of"]
