"""The vocabulary of the schema's `__post_init__` checks: each raises a FieldError naming its key.

A dataclass knows its own fields, not where it sits in the whole config (StageConfig is both
`train.pretrain` and `train.finetune`), so it names the key relative to itself and `build_config`
(asva/config/build.py) prefixes the path to it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from asva.errors import ConfigError


class FieldError(ConfigError):
    """An impossible value at `key`, relative to the dataclass that found it ("" names that dataclass)."""

    def __init__(self, key: str, reason: str):
        super().__init__(f"{key}: {reason}" if key else reason)
        self.key = key
        self.reason = reason

    def under(self, prefix: str) -> FieldError:
        """The same error seen from `prefix`, the key of the dataclass that raised it."""
        if not prefix:
            return self
        return FieldError(f"{prefix}.{self.key}" if self.key else prefix, self.reason)


@contextmanager
def keys_under(prefix: str) -> Iterator[None]:
    """A parent running a check of one of its groups: the group's FieldError names the key from the parent."""
    try:
        yield
    except FieldError as error:
        raise error.under(prefix) from None


def require(condition: bool, key: str, reason: str) -> None:
    if not condition:
        raise FieldError(key, reason)


def _spoken(choices: Sequence[object]) -> str:
    """("a", "b", "c") -> "a, b or c"."""
    words = [str(choice) for choice in choices]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def one_of(owner: object, name: str, choices: Sequence[object]) -> None:
    value = getattr(owner, name)
    require(value in choices, name, f"must be {_spoken(choices)}, got {value!r}")


def positive(owner: object, *names: str) -> None:
    for name in names:
        value = getattr(owner, name)
        require(value > 0, name, f"must be > 0, got {value}")


def positive_or_none(owner: object, *names: str) -> None:
    for name in names:
        value = getattr(owner, name)
        require(value is None or value > 0, name, f"must be > 0 (or null), got {value}")


def at_least(owner: object, name: str, low: float) -> None:
    value = getattr(owner, name)
    require(value >= low, name, f"must be >= {low}, got {value}")


def within(owner: object, name: str, low: float, high: float) -> None:
    value = getattr(owner, name)
    require(low <= value <= high, name, f"must be within [{low}, {high}], got {value}")


def widths(owner: object, name: str) -> None:
    """A list of layer widths: at least one, all > 0."""
    values = getattr(owner, name)
    require(bool(values) and min(values) > 0, name, f"needs at least one width, all > 0, got {list(values)}")
