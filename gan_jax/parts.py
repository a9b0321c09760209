"""config -> parts: the dataset, the models, the loss, the penalty and the optimisers a
config names, each built by its family's registry, with the schedule as `step.GANParts`."""

from __future__ import annotations

from omegaconf import DictConfig

from gan_jax import data, losses, models, optim, penalties, precision, step


def build(cfg: DictConfig, dataset: data.Dataset | None = None) -> step.GANParts:
    """`dataset` replaces cfg.dataset's (a benchmark times the step on a shape-only one)."""
    dataset = dataset or data.build(cfg.dataset)
    g_optimiser, d_optimiser = optim.build(cfg.optim)
    return step.GANParts(
        data=dataset,
        models=precision.compute_in(models.build(cfg.model, dataset), cfg.train.precision),
        loss=losses.get(cfg.loss.name, cfg.loss),
        g_optimiser=g_optimiser,
        d_optimiser=d_optimiser,
        d_steps=cfg.train.d_steps,
        penalty=penalties.build(cfg.penalty.name, cfg.penalty.weight, dataset.scale),
        d_constraint=losses.LOSSES.get(cfg.loss.name).d_constraint(cfg.loss),
        simultaneous=cfg.train.schedule == "simultaneous",
        ema_decay=cfg.train.ema_decay,
        ema_start=cfg.train.ema_start,
    )
