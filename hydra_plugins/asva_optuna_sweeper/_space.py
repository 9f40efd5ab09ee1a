"""Search-space declarations in Hydra's override grammar -> Optuna distributions."""

from __future__ import annotations

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution


class SearchSpaceError(ValueError):
    pass


def distribution(override: Override) -> BaseDistribution:
    """One swept override as an Optuna distribution. `tag(log, ...)` samples on a log scale."""
    key = override.get_key_element()
    sweep = override.value()
    if isinstance(sweep, ChoiceSweep):
        return CategoricalDistribution([choice for choice in override.sweep_iterator()])
    if isinstance(sweep, RangeSweep):
        values = list(override.sweep_iterator())
        if all(isinstance(v, int) for v in values):
            return IntDistribution(int(sweep.start), int(values[-1]), step=int(sweep.step))
        return CategoricalDistribution(values)
    if isinstance(sweep, IntervalSweep):
        log = "log" in sweep.tags
        if isinstance(sweep.start, int) and isinstance(sweep.end, int):
            return IntDistribution(sweep.start, sweep.end, log=log)
        return FloatDistribution(float(sweep.start), float(sweep.end), log=log)
    raise SearchSpaceError(f"hydra.sweeper.params.{key}: cannot search over {override.input_line!r}")


def parse(space: dict[str, str], arguments: list[str]) -> tuple[dict[str, BaseDistribution], list[str]]:
    """(distributions by key, fixed overrides) from the configured space and the command line.

    A command-line sweep (`window_radius=interval(0.5,1)`) replaces the configured one for its key;
    a plain override (`train.finetune.steps=2`) applies to every trial.
    """
    parser = OverridesParser.create()
    distributions: dict[str, BaseDistribution] = {}
    fixed: list[str] = []
    for override in parser.parse_overrides([f"{key}={value}" for key, value in space.items()] + list(arguments)):
        key = override.get_key_element()
        if override.is_sweep_override():
            distributions[key] = distribution(override)
        else:
            distributions.pop(key, None)
            fixed.append(override.input_line)
    return distributions, fixed


def grid(distributions: dict[str, BaseDistribution]) -> dict[str, list]:
    """The GridSampler's search space: every parameter must be a finite set."""
    space = {}
    for key, dist in distributions.items():
        if isinstance(dist, CategoricalDistribution):
            space[key] = list(dist.choices)
        elif isinstance(dist, IntDistribution) and not dist.log:
            space[key] = list(range(dist.low, dist.high + 1, dist.step))
        else:
            raise SearchSpaceError(
                f"hydra.sweeper.params.{key}: the grid sampler needs choice() or range(), not an interval"
            )
    return space


def as_override(key: str, value) -> str:
    """`key=value` a job understands, quoted so any string survives Hydra's grammar."""
    if isinstance(value, str):
        return f"{key}='{value}'" if "'" not in value else f'{key}="{value}"'
    return f"{key}={value}"
