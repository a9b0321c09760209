"""config -> parts: the dataset, the models, the optimisers and every term of the two
players' objectives (the loss's, the conditioning's, the regularisers'), each built by
its family's registry, with the schedule, as `step.GANParts`."""

from __future__ import annotations

from omegaconf import DictConfig

from gan_jax import (
    ada,  # noqa: F401  (registers augment=ada)
    augment,
    data,
    ema,
    losses,
    models,
    optim,
    penalties,
    population,
    precision,
    regularisers,  # noqa: F401  (registers LeCam, CR, top-k, ... with penalties)
    schedules,
    step,
    terms,
)
from gan_jax.errors import ConfigError


def build(cfg: DictConfig, dataset: data.Dataset | None = None) -> step.GANParts:
    """`dataset` replaces cfg.dataset's (a benchmark times the step on a shape-only one)."""
    dataset = dataset or data.build(cfg.dataset)
    _check_classes(cfg, dataset)
    _check_enough_examples(cfg, dataset)
    gan_models = precision.compute_in(models.build(cfg.model, dataset), cfg.train.precision)
    curves = schedules.from_config(cfg, population.keys(cfg))
    augmentation = augment.from_config(cfg.augment, {"batch_size": cfg.train.batch_size, "schedules": curves})
    objective_terms = build_terms(cfg, gan_models, dataset, curves) + (augmentation.terms if augmentation else ())
    try:
        g_interval = terms.lazy_interval(objective_terms, terms.GENERATOR)
        d_interval = terms.lazy_interval(objective_terms, terms.DISCRIMINATOR)
    except ValueError as error:  # each player has one lazy phase
        raise ConfigError(f"{error}: give its lazy regularisers (penalty.<name>.interval) one interval") from None
    g_optimiser, d_optimiser = optim.build(
        cfg.optim, cfg.train.steps, cfg.train.d_steps, g_interval=g_interval, d_interval=d_interval, schedules=curves
    )
    return step.GANParts(
        data=dataset,
        models=gan_models,
        g_optimiser=g_optimiser.transformation,
        d_optimiser=d_optimiser.transformation,
        g_hyperparams=g_optimiser.hyperparams,
        d_hyperparams=d_optimiser.hyperparams,
        d_steps=cfg.train.d_steps,
        terms=objective_terms,
        augment=None if augmentation is None else augmentation.apply,
        d_constraint=_d_constraint(cfg),
        simultaneous=cfg.train.schedule == "simultaneous",
        ema=ema.from_config(cfg.train, curves),
        schedules=curves,
        grad_accum=cfg.train.get("grad_accum", 1),
    )


def build_terms(
    cfg: DictConfig,
    gan_models: models.GANModels,
    dataset: data.Dataset,
    curves: schedules.Schedules | None = None,
) -> tuple[terms.Term, ...]:
    """The adversarial loss, the conditioning's class loss, then the regularisers in the
    order `penalty` lists them; a later term of a player with an earlier one's name
    replaces it (top-k re-weights G's adversarial loss)."""
    loss = losses.get(cfg.loss.name, cfg.loss)
    context = dict(data_scale=dataset.scale, batch_size=cfg.train.batch_size, steps=cfg.train.steps, loss=loss)
    if names := population.loss_names(cfg):  # each member's own loss
        choices = tuple(losses.get(name, population.loss_config(cfg, name)) for name in names)
        adversarial = losses.switched_terms(choices, population.LOSS_KEY)
    else:
        adversarial = losses.adversarial_terms(loss)
    chosen = adversarial + models.conditioning_terms(gan_models)
    chosen += penalties.build_terms(cfg.get("penalty"), context, curves or schedules.Schedules())
    by_key: dict[tuple[str, str], terms.Term] = {}
    for term in chosen:
        by_key[(term.player, term.name)] = term
    stateful = [t.name for t in by_key.values() if t.init is not None or t.lazy]
    if len(stateful) != len(set(stateful)):
        raise ConfigError(f"two terms with state share a name ({', '.join(sorted(stateful))}); rename one")
    return tuple(by_key.values())


def _d_constraint(cfg: DictConfig):
    """(D's params, the iteration's settings) -> params after each D update (None: none):
    the loss's (wgan's clipping), per member in a loss population."""
    names = population.loss_names(cfg) or (cfg.loss.name,)
    constraints = tuple(losses.LOSSES.get(n).d_constraint(population.loss_config(cfg, n)) for n in names)
    if len(names) == 1:
        only = constraints[0]
        return None if only is None else lambda params, settings: only(params)
    return losses.switched_constraint(constraints, population.LOSS_KEY)


def _check_enough_examples(cfg: DictConfig, dataset: data.Dataset) -> None:
    """An epoch of image data holds at least one batch (the last partial batch is dropped)."""
    if getattr(dataset, "source", None) is None:
        return  # sampled data, or a shape-only dataset (a benchmark's)
    count = dataset.num_examples  # type: ignore[attr-defined]  # an ImageDataset with its source
    if count < cfg.train.batch_size:
        raise ConfigError(
            f"dataset.split={cfg.dataset.split}: {count} examples, fewer than train.batch_size="
            f"{cfg.train.batch_size}; use a larger split or a smaller batch"
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
