"""config -> parts: the dataset, the models, the loss, the penalty and the optimisers a
config names, each built by its family's registry, with the schedule as `step.GANParts`."""

from __future__ import annotations

from omegaconf import DictConfig

from gan_jax import augment, data, losses, models, optim, penalties, precision, step
from gan_jax.errors import ConfigError


def build(cfg: DictConfig, dataset: data.Dataset | None = None) -> step.GANParts:
    """`dataset` replaces cfg.dataset's (a benchmark times the step on a shape-only one)."""
    dataset = dataset or data.build(cfg.dataset)
    _check_classes(cfg, dataset)
    g_optimiser, d_optimiser = optim.build(cfg.optim, cfg.train.steps, cfg.train.d_steps)
    return step.GANParts(
        data=dataset,
        models=precision.compute_in(models.build(cfg.model, dataset), cfg.train.precision),
        loss=losses.get(cfg.loss.name, cfg.loss),
        g_optimiser=g_optimiser,
        d_optimiser=d_optimiser,
        d_steps=cfg.train.d_steps,
        penalty=penalties.build(cfg.penalty.name, cfg.penalty.weight, dataset.scale),
        penalty_on_generated=penalties.PENALTIES.get(cfg.penalty.name).on_generated,
        augment=augment.build(cfg.augment.policy),
        d_constraint=losses.LOSSES.get(cfg.loss.name).d_constraint(cfg.loss),
        simultaneous=cfg.train.schedule == "simultaneous",
        ema_decay=cfg.train.ema_decay,
        ema_start=cfg.train.ema_start,
    )


def _check_classes(cfg: DictConfig, dataset: data.Dataset) -> None:
    """A conditional model's classes against the opened dataset's labels (a dataset=tfds names
    its dataset only in the config, so this is known once it is opened)."""
    if cfg.model.get("conditioning", "none") == "none":
        return
    found = getattr(dataset, "num_classes", 0)
    if found != cfg.model.num_classes:
        has = f"has {found} classes" if found else "has no label feature"
        fix = f"set model.num_classes={found}" if found else "use a labelled dataset or model.conditioning=none"
        raise ConfigError(
            f"model.num_classes={cfg.model.num_classes}: dataset {getattr(dataset, 'name', '?')} {has}; {fix}"
        )
