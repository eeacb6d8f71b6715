"""The app methods a Celery project calls in its ``celery.py``: ``config_from_object``,
``config_from_envvar``, ``autodiscover_tasks``, and the import of ``include=`` modules that a
worker or beat does when it starts (Celery's ``loader.import_default_modules``)."""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from taskq.config import Settings
from taskq.errors import ConfigurationError

log = logging.getLogger("taskq")
Packages = Iterable[str] | Callable[[], Iterable[str]] | None


class CeleryAppAPI:
    """Mixed into TaskQ: Celery's configuration and discovery methods."""

    _conf: Settings
    _config_sources: list[tuple[Any, str | None]]  # read at the next use of app.conf, as Celery reads them
    _discoveries: list[tuple[Packages, str | None]]
    _imported_defaults: bool

    @property
    def conf(self) -> Settings:
        """The settings; config_from_object sources given since the last use are read first."""
        if self._config_sources:
            sources, self._config_sources = self._config_sources, []
            for obj, namespace in sources:
                for key, value in settings_of(obj, namespace):
                    setattr(self._conf, key, value)
        return self._conf

    @conf.setter
    def conf(self, settings: Settings) -> None:
        self._conf = settings

    def config_from_object(
        self, obj: Any, silent: bool = False, force: bool = False, namespace: str | None = None
    ) -> None:
        """Read settings from a module, a ``"module"`` / ``"module:attr"`` path or an object,
        as Celery does; with ``namespace="CELERY"`` only ``CELERY_*`` names, prefix removed
        (``CELERY_BROKER_URL`` is ``broker_url``), as Django projects write them. The path is
        imported now; the settings are read at the next use of ``app.conf`` (Django's settings
        may still be loading when a project's celery.py runs)."""
        if isinstance(obj, str):
            try:
                obj = _import_object(obj)
            except ConfigurationError:
                if silent:
                    return
                raise
        self._config_sources.append((obj, namespace))

    def config_from_envvar(self, variable_name: str, silent: bool = False, force: bool = False) -> bool:
        """``config_from_object`` of the module named by an environment variable."""
        module_name = os.environ.get(variable_name)
        if not module_name:
            if silent:
                return False
            raise ConfigurationError(f"config_from_envvar: the environment variable {variable_name} is not set")
        self.config_from_object(module_name, silent=silent)
        return True

    def autodiscover_tasks(
        self, packages: Packages = None, related_name: str | None = "tasks", force: bool = False
    ) -> None:
        """Import ``<package>.tasks`` for each package (no packages: Django's INSTALLED_APPS)
        when a worker or beat starts, as Celery does lazily; ``force=True`` imports them now."""
        if force:
            _discover(packages, related_name)
        else:
            self._discoveries.append((packages, related_name))

    def start(self, argv: list[str] | None = None) -> None:
        """Run the taskq command for this app: ``python -m proj.celery worker -l INFO``."""
        from taskq.cli import run_with_app

        run_with_app(self, argv)

    def worker_main(self, argv: list[str] | None = None) -> None:
        """Run a worker for this app: ``app.worker_main(["worker", "-l", "INFO"])`` as Celery's."""
        argv = list(argv or ["worker"])
        self.start(argv if argv[:1] == ["worker"] else ["worker", *argv])

    def import_default_modules(self) -> None:
        """What a worker or beat imports at start: ``include``/``imports`` modules, then the
        packages given to ``autodiscover_tasks`` (Django is set up first when it is in use)."""
        if self._imported_defaults:
            return
        self._imported_defaults = True
        _setup_django()
        for module_name in (*self.conf.imports, *self.conf.include):
            try:
                importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                raise ConfigurationError(f"include: no module named {exc.name!r} (from {module_name!r})") from None
        for packages, related_name in self._discoveries:
            _discover(packages, related_name)


def settings_of(obj: Any, namespace: str | None) -> Iterable[tuple[str, Any]]:
    """The (name, value) pairs an object holds as settings."""
    prefix = f"{namespace}_" if namespace else ""
    names = list(obj) if isinstance(obj, dict) else dir(obj)
    for name in names:
        if name.startswith("_") or (prefix and not name.startswith(prefix)):
            continue
        value = obj[name] if isinstance(obj, dict) else getattr(obj, name)
        key = name[len(prefix):].lower() if prefix else name
        if not prefix and _is_helper(key, value):
            continue
        yield key, value


def _is_helper(name: str, value: Any) -> bool:
    """A module's imports, classes and functions are not settings unless named as one
    (``task_routes`` may be a function): ``from kombu import Queue`` is skipped, not warned."""
    if isinstance(value, ModuleType):
        return True
    if isinstance(value, type) or callable(value):
        return name not in Settings.__dataclass_fields__ and not name.isupper() and not name.startswith("task_")
    return False


def _import_object(path: str) -> Any:
    """``module``, ``module:attr`` or ``module.attr``, as Celery's loader imports a config."""
    module_name, _, attr = path.partition(":")
    try:
        if attr:
            return getattr(importlib.import_module(module_name), attr)
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            parent, _, attr = module_name.rpartition(".")
            if not parent or exc.name != module_name:
                raise
            return getattr(importlib.import_module(parent), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"config_from_object({path!r}): {exc}") from None


def _setup_django() -> None:
    """Celery's Django fix-up: with DJANGO_SETTINGS_MODULE set, ``django.setup()`` before task
    modules (which import models) are imported."""
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return
    try:
        import django
    except ImportError:
        return
    django.setup()


def _django_app_names() -> list[str]:
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return []
    from django.apps import apps

    return [config.name for config in apps.get_app_configs()]


def _discover(packages: Packages, related_name: str | None) -> None:
    names = packages() if callable(packages) else packages
    for package in names if names is not None else _django_app_names():
        find_related_module(package, related_name)


def find_related_module(package: str, related_name: str | None) -> ModuleType | None:
    """``package.related_name`` imported, None when the package has no such module; an
    error raised inside an existing module propagates (Celery's loader rule)."""
    try:
        module = importlib.import_module(package)
        if not related_name:
            return module
    except ModuleNotFoundError:
        package = package.rpartition(".")[0]  # "app.apps.AppConfig" in INSTALLED_APPS
        if not package:
            raise
    module_name = f"{package}.{related_name}"
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise
