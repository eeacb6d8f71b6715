"""The PostgreSQL broker (psycopg 3): broker.py the Broker; statements.py its SQL;
migrations.py its versioned tables; connection.py per-thread connections and the URL.
docs/postgresql.md explains the layout and transactional enqueue."""

from taskq.brokers.postgres.broker import PostgresBroker

__all__ = ["PostgresBroker"]
