"""``shared_task``: a task defined without an app (reusable apps, Django apps), registered on
every app, those made later included, and sent through the current app, as Celery's is.

The current app is the last one created (``set_as_current=False`` opts out); with none, the
first use creates a default one from TASKQ_* variables, as Celery makes its default app.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.task import Task

_lock = threading.Lock()
_apps: weakref.WeakSet[TaskQ] = weakref.WeakSet()
_current: list[TaskQ] = []  # at most one: the current app
_attachers: list[Callable[[TaskQ], None]] = []


def app_created(app: TaskQ, set_as_current: bool = True) -> None:
    """Called by every TaskQ: the shared tasks defined so far join it."""
    with _lock:
        _apps.add(app)
        if set_as_current or not _current:
            _current[:] = [app]
        attachers = list(_attachers)
    for attach in attachers:
        attach(app)


def get_current_app() -> TaskQ:
    """The app shared tasks are sent through."""
    with _lock:
        if _current:
            return _current[0]
    from taskq.app import TaskQ

    return TaskQ("default")  # registers itself as current through app_created


class CurrentApp:
    """Celery's ``current_app``: stands for the current app (``current_app.send_task(...)``,
    ``current_app.conf``); calling it returns the app itself."""

    def __call__(self) -> TaskQ:
        return get_current_app()

    def __getattr__(self, name: str) -> Any:
        return getattr(get_current_app(), name)

    def __repr__(self) -> str:
        return f"<current_app: {get_current_app()!r}>"


current_app = CurrentApp()


class SharedTask:
    """Stands for a shared task on the current app: ``add.delay(2, 2)``, ``add.s(...)``,
    ``add(2, 2)`` and every other Task attribute go to that app's Task."""

    def __init__(self, fn: Callable[..., Any], options: dict[str, Any]) -> None:
        self._fn = fn
        self._options = options
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", "task")
        self.__module__ = getattr(fn, "__module__", "")
        self.__wrapped__ = fn

    def _task(self) -> Task[Any, Any]:
        app = get_current_app()
        return app.get_task(self._options.get("name") or app.task_name(self._fn))

    def _attach(self, app: TaskQ) -> None:
        name = self._options.get("name") or app.task_name(self._fn)
        if name not in app.tasks:
            register: Callable[[Callable[..., Any]], Any] = app.task(**self._options)
            register(self._fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._task()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task(), name)

    def __repr__(self) -> str:
        return f"<@shared_task: {self._options.get('name') or self.__module__ + '.' + self.__name__}>"


@overload
def shared_task(fn: Callable[..., Any], /) -> Any: ...
@overload
def shared_task(**options: Any) -> Callable[[Callable[..., Any]], Any]: ...
def shared_task(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """``@shared_task`` or ``@shared_task(bind=True, ...)`` with ``@app.task``'s options."""

    def create(func: Callable[..., Any]) -> SharedTask:
        shared = SharedTask(func, options)
        with _lock:
            _attachers.append(shared._attach)
            apps = list(_apps)
        for app in apps:
            shared._attach(app)
        return shared

    return create(fn) if fn is not None else create
