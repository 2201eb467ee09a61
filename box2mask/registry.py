"""A name → object registry shared by adapters, models, writers and executors.

One naming convention for every registry: **the registration names the part**.
A class is registered with ``@REGISTRY.register("name")``, a spec (a
dataclass instance, such as a model's :class:`~box2mask.models.registry.ModelSpec`)
with ``REGISTRY.add("name", spec)``, a plugin by its entry point's name; the
registry then sets the part's ``name`` to it. A part does not name itself: a
``name`` it sets to anything else is refused.

>>> ADAPTERS = Registry("adapter")
>>> @ADAPTERS.register("demo")
... class Demo: ...
>>> ADAPTERS.get("demo") is Demo and Demo.name == "demo"
True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from box2mask.errors import UsageError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; refuses duplicate names.

    Args:
        kind: what the registry holds, used in messages ("adapter", "model").
        entry_point_group: optional ``importlib.metadata`` entry-point group
            whose entries are registered lazily on the first lookup, so that
            third-party packages can add to the registry.
    """

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._group = entry_point_group
        self._plugins_loaded = entry_point_group is None

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name``."""

        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` as ``name``, which it then carries as ``obj.name``.

        A class gets the attribute set; a dataclass instance with a ``name``
        field is kept as a copy with ``name`` set (it may leave the field empty).

        Raises:
            ValueError: ``name`` is taken, or ``obj`` names itself otherwise.
        """
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        own = vars(obj).get("name") if isinstance(obj, type) else getattr(obj, "name", None)
        if own and own != name:
            raise ValueError(
                f"{self.kind} {name!r} names itself {own!r}: the registration gives the name"
            )
        if isinstance(obj, type):
            obj.name = name  # type: ignore[attr-defined]
        elif dataclasses.is_dataclass(obj) and "name" in {f.name for f in dataclasses.fields(obj)}:
            obj = dataclasses.replace(obj, name=name)  # type: ignore[type-var]
        self._items[name] = obj

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=self._group):
            if ep.name not in self._items:
                self.add(ep.name, ep.load())  # as a decorator would: a registry may set the name

    def get(self, name: str) -> T:
        """The object registered as ``name``; a :class:`UsageError` lists the known names."""
        self._load_plugins()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise UsageError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        self._load_plugins()
        yield from sorted(self._items.items())

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._items
