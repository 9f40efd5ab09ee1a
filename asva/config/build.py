"""A composed config to its typed dataclasses, with an impossible value named by its full dotted key.

`OmegaConf.to_object` builds the nested dataclasses innermost first, and each checks its own fields in
`__post_init__`; a FieldError passes through OmegaConf unwrapped (it wraps only TypeError), naming the
key relative to the dataclass that raised it. Which dataclass that was is found by building the
sub-configs again, down to the innermost one that fails: its path is the prefix of the key.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from asva.config.checks import FieldError


def _failing_path(node: DictConfig) -> list[str]:
    """The keys down to the innermost sub-config of `node` whose build raises a FieldError."""
    for key in node:
        child = node[key]
        if not isinstance(child, DictConfig):
            continue
        try:
            OmegaConf.to_object(child)
        except FieldError:
            return [str(key), *_failing_path(child)]
    return []


def build_config(node: DictConfig, key: str = "") -> Any:
    """`OmegaConf.to_object(node)`; `key` is where `node` sits when it is part of a larger config."""
    try:
        return OmegaConf.to_object(node)
    except FieldError as error:
        prefix = ".".join(part for part in (key, *_failing_path(node)) if part)
        raise error.under(prefix) from None
