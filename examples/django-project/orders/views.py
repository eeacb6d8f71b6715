from django.db import transaction
from django.http import HttpResponseBadRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .models import Order
from .tasks import ship_order


@csrf_exempt
@require_POST
def place_order(request):
    item = request.POST.get("item", "")
    try:
        with transaction.atomic():
            order = Order.objects.create(item=item)
            # Sent only if the transaction commits: the worker always finds the order.
            ship_order.delay_on_commit(order.pk)
            if not item:
                raise ValueError("an order needs an item")  # rolled back: nothing is sent
    except ValueError as exc:
        return HttpResponseBadRequest(str(exc))
    return JsonResponse({"order": order.pk})
