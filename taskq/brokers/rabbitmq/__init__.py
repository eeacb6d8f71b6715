"""The RabbitMQ broker through pika: durable queues, publisher confirms, manual acks.

broker.py is the Broker; link.py the connection and its I/O thread (ops.py its admin,
sweeper and consumer operations; decode.py headers pika cannot decode); claims.py deliveries
and claims; confirms.py publisher confirms; frames.py publish frames; queues.py declaring
and adopting queues; dead.py dead letters; wire.py names, arguments and the envelope
mapping. docs/rabbitmq.md explains the design.
"""

from taskq.brokers.rabbitmq.broker import RabbitMQBroker, connection_parameters

__all__ = ["RabbitMQBroker", "connection_parameters"]
