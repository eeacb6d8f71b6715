"""Tasks of a reusable Django app: ``shared_task``, no app imported (Celery's pattern)."""

from taskq import shared_task

from .models import Order


@shared_task
def ship_order(order_id):
    # The order exists: the task was sent after the view's transaction committed.
    order = Order.objects.get(pk=order_id)
    order.status = "shipped"
    order.save(update_fields=["status"])
    return order.item
