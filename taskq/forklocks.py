"""Locks a forked child must not inherit held.

A lock that another thread holds at the moment of a fork stays held in the child, where no
thread will ever release it: the child's first use of it hangs. Objects whose locks a child
uses register a renewal here; each runs in every forked child right after the fork, for as
long as its owner lives (the registry holds owners weakly).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_RENEWALS: weakref.WeakKeyDictionary[Any, Callable[[Any], None]] = weakref.WeakKeyDictionary()


def renew_after_fork(owner: T, renew: Callable[[T], None]) -> None:
    """Call ``renew(owner)`` in each forked child (a function of the owner, not a bound
    method: the registry must not keep the owner alive)."""
    _RENEWALS[owner] = renew


def _renew_all() -> None:
    for owner, renew in list(_RENEWALS.items()):
        renew(owner)


os.register_at_fork(after_in_child=_renew_all)
