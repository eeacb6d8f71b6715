"""The producer: calls the tasks as Celery's guides do and prints their results as JSON.

    python run_tasks.py
"""

import json

from proj.tasks import add, flaky, mul, where, xsum

TIMEOUT = 60

results = {
    "add": add.delay(4, 4).get(timeout=TIMEOUT),
    "mul": mul.apply_async((3, 7), countdown=1).get(timeout=TIMEOUT),
    "xsum": xsum.delay([1, 2, 3, 4]).get(timeout=TIMEOUT),
    "chain": (add.s(2, 2) | mul.s(8)).delay().get(timeout=TIMEOUT),
    "flaky": flaky.delay(2).get(timeout=TIMEOUT),
    "where": where.delay().get(timeout=TIMEOUT),
}
print(json.dumps(results, sort_keys=True))
