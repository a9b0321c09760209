"""How a model family is registered (`ModelPart`), and the generator's latent priors."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import jax

from gan_jax.data import DataFacts, names_where
from gan_jax.registry import Registry, Rule

LATENT_DISTRIBUTIONS: dict[str, Callable[[jax.Array, tuple[int, ...]], jax.Array]] = {
    "normal": jax.random.normal,
    "uniform": lambda key, shape: jax.random.uniform(key, shape, minval=-1.0, maxval=1.0),
}


def latent_distributions() -> tuple[str, ...]:
    return tuple(LATENT_DISTRIBUTIONS)


def _any_data(cfg: Any, data: DataFacts) -> str | None:
    return None


def needs_images_of(model: str, sizes: Iterable[int]) -> Callable[[Any, DataFacts], str | None]:
    """A data rule: image data of one of `sizes` (the model's image sizes)."""

    def check(cfg: Any, data: DataFacts) -> str | None:
        if data.image_size is None:
            images = ", ".join(names_where(lambda p: p.image_size is not None))
            return f"model={model}: needs an image dataset ({images}); dataset={data.name} is not one"
        if data.image_size not in sizes:
            key = f"dataset.{data.image_size_key}"
            return f"{key}={data.image_size}: model={model} supports {', '.join(map(str, sizes))}"
        return None

    return check


@dataclass(frozen=True)
class ModelPart:
    """A model family as gan-train chooses it: `model=<name>` composes conf/model/<name>.yaml
    over `schema` (stored as schema/model/<name>); `build(cfg.model, dataset) -> (G, D)`,
    G mapping [batch, latent_dim] to [batch, *dataset.shape], D to logits [batch, 1]; both
    Flax modules called as `module(x, update_stats=False, axis_name=None)` (update_stats:
    training, so batch statistics may move; axis_name: the devices to average them over).
    `data_rule(cfg.model, facts)`: the family's own rule on the data it is given (a message,
    or None); `d_batch_norm(cfg.model)`: D normalises over the batch (real and generated
    examples then go through it apart, and per-example gradient penalties do not apply);
    `d_pack(cfg.model)`: the examples D judges per output (PacGAN's packing, set by the key
    model.discriminator.pack): D maps [batch, ...] to [batch / pack, 1]; `d_batch_rule(cfg.model,
    n)`: the family's rule on the n examples D takes in one call on one device (a message or None)."""

    name: str
    schema: type
    build: Callable[[Any, Any], tuple[Any, Any]]
    data_rule: Callable[[Any, DataFacts], str | None] = _any_data
    d_batch_norm: Callable[[Any], bool] = lambda cfg: False
    d_pack: Callable[[Any], int] = lambda cfg: 1
    d_batch_rule: Callable[[Any, int], str | None] = lambda cfg, n: None
    rules: tuple[Rule, ...] = ()
    # Methods of its generator beyond __call__ that terms may call (StyleGAN2's map_latents, synthesise).
    generator_methods: tuple[str, ...] = ()
    # (G's, D's) initial variables, from weights the config names (None each: initialised from the seed).
    initial_weights: Callable[[Any, Any, Any], tuple[Any, Any]] = lambda cfg, generator, discriminator: (None, None)
    # Its generator takes `example_keys` (one PRNG key per example) in training, for draws of
    # its own (StyleGAN2's per-layer noise, style mixing); evaluation calls it without.
    generator_takes_keys: Callable[[Any], bool] = lambda cfg: False


MODELS: Registry[ModelPart] = Registry("model")


def register(part: ModelPart, *, replace: bool = False) -> ModelPart:
    return MODELS.register(part.name, part, replace=replace)
