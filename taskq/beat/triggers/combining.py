"""AndTrigger (the times every trigger agrees on) and OrTrigger (the earliest of any), as in
APScheduler."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from taskq.beat.triggers.base import BaseTrigger, check_jitter, trigger_from_dict

MAX_AGREEMENT_ROUNDS = 10_000


class BaseCombiningTrigger(BaseTrigger):
    """What AndTrigger and OrTrigger share: their triggers, jitter, storage."""

    def __init__(self, triggers: Sequence[BaseTrigger], jitter: float | None = None) -> None:
        self.triggers = list(triggers)
        self.jitter = check_jitter(jitter)

    def with_default_tz(self, zone: tzinfo) -> BaseTrigger:
        return type(self)([t.with_default_tz(zone) for t in self.triggers], self.jitter)

    def _state(self) -> dict[str, Any]:
        return {"triggers": [t.to_dict() for t in self.triggers], "jitter": self.jitter}

    @classmethod
    def _restore(cls, state: dict[str, Any]) -> BaseCombiningTrigger:
        return cls([trigger_from_dict(t) for t in state["triggers"]], state.get("jitter"))

    def __str__(self) -> str:
        word = "and" if isinstance(self, AndTrigger) else "or"
        return f"{word}[{', '.join(str(t) for t in self.triggers)}]"

    def __repr__(self) -> str:
        return f"<{type(self).__name__}({self.triggers!r})>"


class AndTrigger(BaseCombiningTrigger):
    """Fires when all triggers fire at the same time; None when any has no more times."""

    kind = "and"

    def next_fire(self, after: datetime) -> datetime | None:
        for _ in range(MAX_AGREEMENT_ROUNDS):
            times = [t.next_fire(after) for t in self.triggers]
            if any(t is None for t in times) or not times:
                return None
            utc = [t.astimezone(timezone.utc) for t in times if t is not None]
            if min(utc) == max(utc):
                return times[0]
            # Some trigger cannot fire before the latest candidate: search again from just before it.
            after = max(utc) - timedelta(microseconds=1)
        return None


class OrTrigger(BaseCombiningTrigger):
    """Fires whenever any trigger fires (the earliest next time)."""

    kind = "or"

    def next_fire(self, after: datetime) -> datetime | None:
        times = [t for t in (tr.next_fire(after) for tr in self.triggers) if t is not None]
        return min(times, key=lambda t: t.astimezone(timezone.utc)) if times else None

    def first_fire(self, now: datetime) -> datetime | None:
        times = [t for t in (tr.first_fire(now) for tr in self.triggers) if t is not None]
        return min(times, key=lambda t: t.astimezone(timezone.utc)) if times else None
