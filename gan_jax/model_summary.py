"""`gan-summary [overrides]`: the composed config's G and D as tables of their parameters.

    gan-summary experiment=huang2024_r3gan_cifar10
    gan-summary experiment=brock2019_biggan_cifar10 --depth 2

From the config alone: no data is read (an example's shape comes from the dataset's config)
and no weight is computed (the shapes come from jax.eval_shape of the initialisation). One
row per module at `--depth` (the levels of the parameter tree; 0: every parameter), with
its parameters' shapes and their count; the last line is exactly

    generator <N> parameters, discriminator <M> parameters

Every run's summary.json records the same two counts (`parameters`).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import Any

import jax
from flax.traverse_util import flatten_dict
from hydra.errors import HydraException
from omegaconf import DictConfig

from gan_jax import config, data, overrides, parts, population, step
from gan_jax.data import ImageDataset
from gan_jax.errors import ConfigError

DEFAULT_DEPTH = 2


def example_shape(dataset_cfg: Any) -> tuple[int, ...]:
    """One example's shape as the dataset's config gives it, without opening the data."""
    facts = data.facts(dataset_cfg)
    if facts.shape is not None:
        return tuple(facts.shape)
    if facts.channels is None:
        raise ConfigError(
            f"dataset={facts.name}: its images' channels are known only once it is opened; "
            "name a dataset whose config gives them (e.g. dataset=cifar10) for gan-summary"
        )
    assert facts.image_size is not None
    return (facts.image_size, facts.image_size, facts.channels)


def shape_only_dataset(cfg: DictConfig) -> data.Dataset:
    """The run's dataset as the models see it (toy data is built: it reads nothing)."""
    facts = data.facts(cfg.dataset)
    if facts.image_size is None:
        return data.build(cfg.dataset)
    num_classes = cfg.model.num_classes if cfg.model.get("conditioning", "none") != "none" else 0
    return ImageDataset(cfg.dataset.name, example_shape(cfg.dataset), num_classes=num_classes)  # type: ignore[arg-type]


def parameter_shapes(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """(G's, D's) parameter trees of ShapeDtypeStructs for a validated config."""
    gan = parts.build(cfg, shape_only_dataset(cfg))
    state = jax.eval_shape(lambda: step.init_state(gan, 0, population.first_values(cfg)))
    return state.generator.params, state.discriminator.params


def count(tree: Any) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def table(tree: Any, depth: int) -> list[tuple[str, str, int]]:
    """(module path, shapes, parameters) per module `depth` levels down (a parameter's own
    module when it is nearer the top; 0: a row per parameter)."""
    rows: dict[str, tuple[list[str], int]] = {}
    for path, leaf in flatten_dict(tree).items():
        levels = len(path) if depth == 0 else min(depth, len(path) - 1)
        module = "/".join(map(str, path[:levels]))
        shapes, total = rows.get(module, ([], 0))
        leaf_name = "/".join(map(str, path[levels:]))
        shape = "x".join(map(str, leaf.shape)) or "scalar"
        shapes.append(f"{leaf_name}:{shape}" if leaf_name else shape)
        rows[module] = (shapes, total + math.prod(leaf.shape))
    return [(module, " ".join(shapes), total) for module, (shapes, total) in rows.items()]


def render(name: str, tree: Any, depth: int) -> list[str]:
    rows = table(tree, depth)
    width = max([len(module) for module, _, _ in rows] + [len(name)])
    lines = [f"{name:<{width}}  {'parameters':>12}  shapes"]
    lines += [f"{module:<{width}}  {total:>12,}  {shapes}" for module, shapes, total in rows]
    lines.append(f"{'total':<{width}}  {count(tree):>12,}")
    return lines


def counts(cfg: DictConfig) -> dict[str, int]:
    """{"generator": N, "discriminator": M}: what summary.json records."""
    generator, discriminator = parameter_shapes(cfg)
    return {"generator": count(generator), "discriminator": count(discriminator)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gan-summary", description="The composed config's G and D as tables of their parameters."
    )
    parser.add_argument("overrides", nargs="*", help="gan-train's overrides, e.g. experiment=huang2024_r3gan_cifar10")
    parser.add_argument(
        "--depth",
        type=int,
        default=DEFAULT_DEPTH,
        help=f"levels of the module tree per row (0: a row per parameter; default {DEFAULT_DEPTH})",
    )
    args = parser.parse_args(argv)
    if args.depth < 0:
        parser.error(f"--depth {args.depth}: must be 0 (a row per parameter) or more")
    given = overrides.quote_slices(args.overrides)
    if messages := overrides.errors(given, config.CONFIG_DIR):
        print("gan-summary: Invalid config:\n  " + "\n  ".join(messages), file=sys.stderr)
        return 2
    try:
        cfg = config.compose(given)
        config.validate(cfg, 1)
        generator, discriminator = parameter_shapes(cfg)
    except (ConfigError, HydraException) as error:
        print(f"gan-summary: {error}", file=sys.stderr)
        return 2
    print("\n".join(render("generator", generator, args.depth)))
    print()
    print("\n".join(render("discriminator", discriminator, args.depth)))
    print()
    print(f"generator {count(generator)} parameters, discriminator {count(discriminator)} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
