"""Plugin tables: one per kind (agents, networks, envs, pruning methods), each mapping a name to what registered it.

A plugin registers itself in its own module with a decorator that names its config schema and declares what it
accepts (``@AGENTS.register("dqn", config=DQNConfig, actions=ActionKind.discrete)``). The first time a table is
read it imports every module of its package, so a new plugin is a new module: no list anywhere to edit. The
composition root (``suite.py``) derives the Hydra schemas and the pairing errors from these declarations.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from core.errors import ConfigError, one_of


@dataclass(frozen=True)
class Spec:
    """What every plugin declares: its name (the config group option), the registered object, its config schema."""

    name: str
    target: Any
    config: type


S = TypeVar("S", bound=Spec)
T = TypeVar("T")


class Registry(Generic[S]):
    def __init__(self, group: str, spec: type[S], package: str):
        """``group`` is the config group (``agent``, ``pruning``, ...); ``package`` the one whose modules register."""
        self.group, self.spec, self.package = group, spec, package
        self._specs: dict[str, S] = {}
        self._discovered = False

    def register(self, name: str, **declared: Any) -> Callable[[T], T]:
        def add(target: T) -> T:
            old = self._specs.get(name)
            if old is not None and _qualified(old.target) != _qualified(target):
                raise ValueError(f"{self.group} {name!r} is registered twice: {_qualified(old.target)} and "
                                 f"{_qualified(target)}")
            self._specs[name] = self.spec(name=name, target=target, **declared)
            return target

        return add

    def remove(self, name: str) -> None:
        """Forget a plugin (one registered for a test)."""
        del self._specs[name]

    def get(self, name: str) -> S:
        self.discover()
        if name not in self._specs:
            raise ConfigError(self.group, name, one_of(name, self.names()))
        return self._specs[name]

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._specs)

    def specs(self) -> list[S]:
        return [self._specs[name] for name in self.names()]

    def discover(self) -> None:
        """Import every module of the package once, so that each registers what it defines."""
        if self._discovered:
            return
        self._discovered = True
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{self.package}.{info.name}")


def _qualified(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
