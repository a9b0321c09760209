"""Registries: parts chosen by name, each registered by the module that defines it.

A `Registry` maps names to entries of one family (datasets, models, losses, penalties,
optimisers, evaluators). Registering a name twice is an error unless `replace=True`
(a notebook re-running a cell); looking up an unknown name raises a KeyError that names
the family and lists the valid names. Imports nothing of gan_jax: any module may use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, family: str):
        self.family = family
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T, *, replace: bool = False) -> T:
        """Adds `entry` under `name`; returns it (so a definition can register itself)."""
        if name in self._entries and not replace:
            raise ValueError(f"{self.family} {name!r} is registered already; pass replace=True to redefine it")
        self._entries[name] = entry
        return entry

    def decorator(self, name: str, *, replace: bool = False) -> Callable[[T], T]:
        """`@REGISTRY.decorator("name")` above a definition registers it."""
        return lambda entry: self.register(name, entry, replace=replace)

    def unregister(self, name: str) -> T:
        """Removes `name` (a test or notebook undoing its registration); returns its entry."""
        return self._entries.pop(name)

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"unknown {self.family} {name!r}; valid values are {', '.join(self._entries)}") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return iter(self._entries.values())


Rule = Callable[[Any], "str | None"]  # a part's own rule: its config node -> a message, or None when it holds
