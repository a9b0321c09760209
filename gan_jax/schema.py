"""Field rules for the parts' config schemas (dataclasses, one per part, registered with it).

Each helper is a dataclass field whose metadata carries its rule; `gan_jax.config.validate`
checks them all and names every offending key with what it accepts. A schema declares no
defaults of its own: the YAML file of its part holds the values (MISSING: the YAML must
set it). Imports nothing of gan_jax, so any part's module may use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field
from typing import Any

from omegaconf import MISSING

__all__ = ["MISSING", "at_least", "in_range", "one_of", "optional_positive", "positive", "rule"]


def rule(default: Any, description: str, test: Callable[[Any], bool]) -> Any:
    """A field whose value must pass `test`; `description` completes "must be ..."."""
    return field(default=default, metadata={"rule": description, "test": test})


def positive(default: Any = MISSING) -> Any:
    return rule(default, "a number > 0", lambda v: v > 0)


def at_least(minimum: int, default: Any = MISSING) -> Any:
    return rule(default, f"an integer >= {minimum}", lambda v: v >= minimum)


def in_range(low: float, high: float, default: Any = MISSING) -> Any:
    return rule(default, f"a number in [{low}, {high})", lambda v: low <= v < high)


def one_of(choices: Callable[[], tuple[str, ...]], default: Any = MISSING) -> Any:
    """`choices` is called lazily so registries can live in the modules that own them."""
    return field(default=default, metadata={"choices": choices})


def optional_positive(default: Any = None) -> Any:
    return rule(default, "null or a number > 0", lambda v: v is None or v > 0)
