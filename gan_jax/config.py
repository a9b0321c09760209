"""Structured configs: the schema every composed config is checked against.

The YAML files under `conf/` hold the values, every default once; the dataclasses hold
the types and the rules (no defaults of their own: a field left MISSING is one the YAML
must set). Each part's schema is registered by the module that defines the part (its
family's registry: data.DATASETS, models.MODELS, losses.LOSSES, penalties.PENALTIES,
optim.OPTIMISERS); this module holds the root and train schemas, assembles the rest from
the registries, and keeps only the rules between families, stated by the parts'
properties. Hydra rejects an unknown key or a wrongly typed value while composing;
`validate` then checks every rule (ranges, choices, divisibility) and raises one
`ConfigError` naming each offending key and what it accepts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from gan_jax import (
    ada,  # noqa: F401  (registers augment=ada)
    augment,
    data,
    losses,
    models,
    optim,
    parallel_modes,
    pbt,
    penalties,
    population,
    precision,
    regularisers,  # noqa: F401  (registers LeCam, CR, top-k, ... with penalties)
    schedules,
)
from gan_jax.conf_dir import CONFIG_DIR  # noqa: F401  (imported from here by callers)
from gan_jax.errors import ConfigError  # noqa: F401  (raised by validate; imported from here by callers)
from gan_jax.metrics.resizing import MODES as RESIZE_MODES
from gan_jax.registry import Registry
from gan_jax.schema import at_least, one_of, rule


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The config `gan-train OVERRIDES` would run, for scripts, notebooks and tests."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from gan_jax.overrides import quote_slices

    register_schemas()
    with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
        return hydra_compose("config", overrides=quote_slices(overrides))


# --- the parts' registries ----------------------------------------------------------
# Each part's module registers its schema, builder and own rules; importing the families
# here registers the built-in parts (a part defined elsewhere registers on its import).

# config group -> the registry whose parts are its options
FAMILIES: dict[str, Registry] = {
    "dataset": data.DATASETS,
    "model": models.MODELS,
    "loss": losses.LOSSES,
    "penalty": penalties.PENALTIES,
    "optim": optim.OPTIMISERS,
    "augment": augment.AUGMENTATIONS,
}


@dataclass
class LoggerConfig:
    name: str = one_of(lambda: ("wandb",))
    project: str = MISSING
    entity: str | None = MISSING
    # auto: online when WANDB_API_KEY is set, offline otherwise; WANDB_MODE wins if set.
    mode: str = one_of(lambda: ("auto", "online", "offline"))
    tags: list[str] = MISSING
    report: bool = MISSING  # refresh the run's report.html (gan-report) at each evaluation


@dataclass
class NoLoggerConfig:
    """logger=none: metrics.jsonl and summary.json only."""

    name: str = one_of(lambda: ("none",))
    report: bool = MISSING  # refresh the run's report.html (gan-report) at each evaluation


# --- top level --------------------------------------------------------------------------


@dataclass
class PBTConfig:
    """Jaderberg et al. 2017's truncation selection every `every` steps (null: off)."""

    every: int | None = rule(MISSING, "null or an integer >= 1", lambda v: v is None or v >= 1)
    # The evaluation key ranked ("eval.fid"); its direction is the evaluator's.
    objective: str | None = MISSING
    # The bottom `fraction` of the members copies a member of the top `fraction`.
    fraction: float = rule(MISSING, "a number in (0, 0.5]", lambda v: 0 < v <= 0.5)
    # Each copied value is multiplied by one of these, drawn uniformly...
    perturb: list[float] = rule(
        MISSING,
        "a non-empty list of finite numbers > 0",
        lambda v: len(v) > 0 and all(0 < x < math.inf for x in v),
    )
    # ... or, with this probability, drawn afresh from the population's own values (a grid's
    # axis, a random range, the list's points).
    resample_probability: float = rule(MISSING, "a number in [0, 1]", lambda v: 0 <= v <= 1)


@dataclass
class TrainConfig:
    steps: int = at_least(1)
    batch_size: int = at_least(1)
    d_steps: int = at_least(1)
    log_every: int = at_least(1)
    steps_per_call: int = at_least(1)
    # Independent replicas trained in one program, seeds seed .. seed + num_seeds - 1.
    num_seeds: int = at_least(1)
    checkpoint_every: int = at_least(1)
    keep_checkpoints: int = at_least(1)
    sample_every: int = at_least(1)  # samples/step_<step>.png from a fixed latent batch
    # Exponential moving average of G's parameters, used for samples and evaluation;
    # null: none. Before ema_start the average just copies G.
    ema_decay: float | None = rule(MISSING, "null or a number in [0, 1)", lambda v: v is None or 0 <= v < 1)
    ema_start: int = at_least(0)
    # StyleGAN's EMA instead of ema_decay: a half-life of ema_kimg thousand images, and
    # with ema_rampup r a half-life of at most r x the images seen so far (gan_jax/ema.py).
    # 0: the average is G itself (R3GAN's schedule starts its half-life there).
    ema_kimg: float | None = rule(None, "null or a number >= 0", lambda v: v is None or v >= 0)
    ema_rampup: float | None = rule(None, "null or a number > 0", lambda v: v is None or v > 0)
    # Each player's update averages the gradients of this many micro-batches of the
    # per-device batch, one after another (less memory, the same update).
    grad_accum: int = at_least(1, default=1)
    # alternating: G steps against the D just updated (Algorithm 1); simultaneous: both
    # players step from the same point.
    schedule: str = one_of(lambda: ("alternating", "simultaneous"))
    # null: every local device.
    num_devices: int | None = rule(MISSING, "null or an integer >= 1", lambda v: v is None or v >= 1)
    # How the step is compiled over the devices: jit + shard_map over a mesh, or pmap.
    parallel: str = one_of(lambda: parallel_modes.MODES)
    # The dtype of activations, matmuls and convolutions; parameters, optimiser state and
    # losses stay float32.
    precision: str = one_of(lambda: tuple(precision.COMPUTE_DTYPES))
    progress_bar: bool = MISSING
    # An evaluation key ("eval.fid"): the checkpoint where it was best is kept in best/.
    keep_best: str | None = MISSING
    # A hyper-parameter population in one program (gan_jax/population.py): a grid, a list of
    # points or random draws over the keys the step reads as numbers; null: none.
    population: Any = MISSING
    # Population-based training over it (gan_jax/pbt.py).
    pbt: PBTConfig = field(default_factory=lambda: PBTConfig())
    # The device memory a population may take, in GiB (null: the device's own limit, which
    # the CPU does not report: no check there).
    memory_limit_gb: float | None = rule(MISSING, "null or a number > 0", lambda v: v is None or v > 0)


def _metric_names() -> tuple[str, ...]:
    from gan_jax import evaluators

    return evaluators.registered().names()


def _feature_networks() -> tuple[str, ...]:
    from gan_jax.metrics.feature_space import FEATURE_NETWORKS

    return ("auto", *FEATURE_NETWORKS.names())


@dataclass
class EvalConfig:
    every: int = at_least(1)
    # null: 10,000 for images (the FID protocol), 2,500 for vectors.
    num_samples: int | None = rule(MISSING, "null or an integer >= 2", lambda v: v is None or v >= 2)
    # null: every metric that applies to the dataset (gan_jax/evaluators.py).
    metrics: list[str] | None = rule(
        MISSING,
        f"null or a list of metric names ({', '.join(_metric_names())})",
        lambda v: v is None or all(name in _metric_names() for name in v),
    )
    features: str = one_of(_feature_networks)
    inception_weights: str | None = MISSING  # null: $GAN_JAX_INCEPTION_WEIGHTS
    dinov2_weights: str | None = MISSING  # null: $GAN_JAX_DINOV2_WEIGHTS
    dinov2_arch: str = one_of(lambda: ("vits14", "vitb14", "vitl14", "vitg14"))
    reference_split: str = MISSING
    reference_num_samples: int | None = rule(
        MISSING, "null (the whole split) or an integer >= 2", lambda v: v is None or v >= 2
    )
    resize: str | None = rule(
        MISSING, f"null or one of {', '.join(RESIZE_MODES)}", lambda v: v is None or v in RESIZE_MODES
    )
    quantize: bool | None = MISSING  # null: on
    protocol: str | None = MISSING  # the eval/protocol option that set these keys, if any
    batch_size: int = at_least(1)  # samples generated and featurised at a time
    cache_dir: str | None = MISSING  # null: $GAN_JAX_CACHE_DIR, else ~/.cache/gan_jax


@dataclass
class DistConfig:
    """A run over several processes (gan_jax/distributed.py); null: one process, or SLURM's."""

    coordinator_address: str | None = rule(
        MISSING, "null or host:port of process 0", lambda v: v is None or _is_host_port(v)
    )
    num_processes: int | None = rule(MISSING, "null or an integer >= 1", lambda v: v is None or v >= 1)
    process_id: int | None = rule(MISSING, "null or an integer >= 0", lambda v: v is None or v >= 0)
    timeout_s: int = at_least(1)  # how long processes wait for each other at start


def _is_host_port(address: str) -> bool:
    host, _, port = address.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


@dataclass
class Config:
    seed: int = MISSING
    # A summary.json key ("eval.jsd", "d_real_last_tenth", ...) that gan-train returns to
    # Hydra's sweeper (e.g. Optuna); a seed population returns its replicas' mean, a hyper-parameter
    # population its best member's value (an evaluation key with a direction).
    objective: str | None = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    augment: Any = MISSING
    dist: DistConfig = field(default_factory=DistConfig)
    # Hyper-parameters that follow a curve over training (gan_jax/schedules.py).
    schedule: schedules.ScheduleConfig = field(default_factory=schedules.ScheduleConfig)
    optim: Any = MISSING
    dataset: Any = MISSING
    model: Any = MISSING
    loss: Any = MISSING
    penalty: Any = MISSING
    logger: Any = MISSING


def schemas() -> dict[str, type]:
    """`<group>/<name>` -> schema: the root, the loggers, and every registered part's."""
    assembled: dict[str, type] = {"config_schema": Config, "logger/wandb": LoggerConfig, "logger/none": NoLoggerConfig}
    for group, registry in FAMILIES.items():
        for part in registry:
            assembled[f"{group}/{part.name}"] = part.schema
    return assembled


def register_schemas() -> None:
    """Stores the root schema as `config_schema` and each part's as `schema/<group>/<name>`.

    conf/config.yaml and each group's YAML files extend them in their defaults lists; a part
    registered after this call is stored by the next (`compose` calls it every time).
    """
    store = ConfigStore.instance()
    for path, node in schemas().items():
        group, _, name = path.rpartition("/")
        store.store(group=f"schema/{group}" if group else None, name=name, node=node)
    OmegaConf.register_new_resolver("job_dirname", job_dirname, replace=True)


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{"train": {"steps": 5}} -> {"train.steps": 5}."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


MAX_DIRNAME_BYTES = 200  # file systems allow 255 bytes a name


def job_dirname(number: Any, overrides: str) -> str:
    """A sweep job's directory name, `<number>_<overrides>`, shortened (the overrides cut,
    a hash of all of them appended) when it would be too long for a file name."""
    import hashlib

    name = f"{number}_{overrides}"
    if len(name.encode()) <= MAX_DIRNAME_BYTES:
        return name
    digest = hashlib.sha1(overrides.encode()).hexdigest()[:10]
    cut = name.encode()[: MAX_DIRNAME_BYTES - 12].decode(errors="ignore")
    return f"{cut}~{digest}"


# --- validation -------------------------------------------------------------------------


def _field_errors(node: Any, prefix: str) -> list[str]:
    errors = []
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            errors += _field_errors(value, key + ".")
        elif isinstance(value, float) and not abs(value) <= FLOAT32_MAX:
            errors.append(f"{key}={value}: must be a finite number (at most {FLOAT32_MAX:.3g} in size: float32)")
        elif "choices" in f.metadata:
            valid = f.metadata["choices"]()
            if value not in valid:
                errors.append(f"{key}={value!r}: valid values are {', '.join(valid)}")
        elif "test" in f.metadata and not f.metadata["test"](value):
            errors.append(f"{key}={value!r}: must be {f.metadata['rule']}")
    return errors


def _unknown_keys(node: DictConfig, schema: Any, prefix: str) -> list[str]:
    """Keys the schema does not have (Hydra lets `+key=value` add them to any node)."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    errors = []
    for key in map(str, node.keys()):
        if key not in fields:
            errors.append(
                f"{prefix}{key}: not a key of {prefix.rstrip('.') or 'the config'}; valid keys are {', '.join(fields)}"
            )
            continue
        value = getattr(schema, key) if not isinstance(schema, type) else None
        if isinstance(node.get(key), DictConfig) and dataclasses.is_dataclass(value):
            errors += _unknown_keys(node[key], value, f"{prefix}{key}.")
    return errors


MAX_SEED = 2**31 - 1  # seeds travel through int32 arrays
FLOAT32_MAX = 3.4028234663852886e38  # what the models compute in


def _simultaneous_needs_one_d_step(cfg: DictConfig) -> str | None:
    if cfg.train.schedule == "simultaneous" and cfg.train.d_steps != 1:
        return (
            f"train.d_steps={cfg.train.d_steps}: simultaneous updates take one step of "
            "each player from the same point; set train.d_steps=1 or train.schedule=alternating"
        )
    return None


def _lr_decay_starts_before_the_end(cfg: DictConfig) -> str | None:
    start = cfg.optim.get("lr_decay_start")
    if cfg.optim.get("lr_decay") is not None and start is not None and start >= cfg.train.steps:
        return (
            f"optim.lr_decay_start={start}: the decay ends at train.steps={cfg.train.steps}, so it must "
            "start before; lower it or set optim.lr_decay=null"
        )
    return None


# Rules between families, stated by the parts' properties rather than their names.


def _model_accepts_data(cfg: DictConfig) -> str | None:
    return models.MODELS.get(cfg.model.name).data_rule(cfg.model, data.facts(cfg.dataset))


def _regularisers(cfg: DictConfig) -> list[tuple[str, penalties.PenaltyPart, Any]]:
    """(name, part, config node) of each chosen regulariser."""
    return [(name, penalties.PENALTIES.get(name), cfg.penalty[name]) for name in penalties.chosen(cfg.penalty)]


def _regulariser_rules(cfg: DictConfig) -> list[str]:
    """The rules between each chosen regulariser and the other families."""
    messages = []
    loss = losses.LOSSES.get(cfg.loss.name)
    model = models.MODELS.get(cfg.model.name)
    d_batch_norm = model.d_batch_norm(cfg.model)
    facts = data.facts(cfg.dataset)
    for name, part, node in _regularisers(cfg):
        if part.replaces_clipping and loss.clips(cfg.loss):
            messages.append(
                f"penalty={name} with loss.weight_clip={cfg.loss.weight_clip}: the gradient "
                "penalty replaces weight clipping (Gulrajani et al. 2017); set loss.weight_clip=null"
            )
        if part.selects_examples and loss.pairs_examples:
            messages.append(
                f"penalty={name} with loss={cfg.loss.name}: {name} passes the loss only some of the generated "
                f"examples' outputs, and {cfg.loss.name} pairs each generated example with a real one; "
                "use loss=relativistic (the average variant) or drop the penalty"
            )
        if part.per_example and d_batch_norm:
            messages.append(
                f"penalty={name} with model.discriminator.norm=batch: the penalty takes "
                "D's gradient per example, which batch norm couples across the batch (Gulrajani et "
                "al. 2017 drop it from the critic); set model.discriminator.norm=layer or none"
            )
        if (part.needs_images or part.needs_augment) and facts.image_size is None:
            messages.append(f"penalty={name}: it transforms images, and dataset={facts.name} is not one")
        elif part.needs_augment and not augment.is_on(cfg.augment):
            messages.append(
                f"penalty={name}: it compares D on plain and augmented images, with the transforms of "
                f"augment={cfg.augment.name}, which is off; set e.g. 'augment.policy=[translation]'"
            )
        if node.interval > 1 and not part.may_be_lazy:
            messages.append(
                f"penalty.{name}.interval={node.interval}: {name} reads the main update's outputs, "
                "so it runs in every update; valid values are 1"
            )
        missing = [m for m in part.needs_generator_methods if m not in model.generator_methods]
        if missing:
            having = ", ".join(n for n in models.MODELS.names() if _has_methods(n, part.needs_generator_methods))
            messages.append(
                f"penalty={name}: it calls the generator's {', '.join(missing)}, which model={cfg.model.name} "
                f"has not; choose a model that has (model={having or 'none registered'}) or drop {name}"
            )
    return messages


def _has_methods(model_name: str, methods: tuple[str, ...]) -> bool:
    return set(methods) <= set(models.MODELS.get(model_name).generator_methods)


def _own_rules(cfg: DictConfig) -> list[str]:
    """Each chosen part's own rules, on its config node."""
    messages = []
    for group, registry in FAMILIES.items():
        if group == "penalty":
            continue
        for own_rule in registry.get(cfg[group].name).rules:
            if message := own_rule(cfg[group]):
                messages.append(message)
    for name, part, node in _regularisers(cfg):
        for regulariser_rule in part.rules:
            if message := regulariser_rule(name, node):
                messages.append(message)
    return messages


def _ema_has_one_parametrisation(cfg: DictConfig) -> str | None:
    train = cfg.train
    if train.ema_kimg is not None and train.ema_decay is not None:
        return (
            f"train.ema_kimg={train.ema_kimg} with train.ema_decay={train.ema_decay}: they are two ways "
            "to set the EMA's decay; set one of them to null"
        )
    if train.ema_rampup is not None and train.ema_kimg is None:
        return f"train.ema_rampup={train.ema_rampup}: ramps up train.ema_kimg's half-life; set train.ema_kimg too"
    return None


def _conditioning_needs_the_data_labels(cfg: DictConfig) -> str | None:
    """A class-conditional model needs labelled data with as many classes as it has."""
    conditioning = cfg.model.get("conditioning", "none")
    if conditioning == "none":
        return None
    facts = data.facts(cfg.dataset)
    if facts.num_classes == 0:
        labelled = ", ".join(data.names_where(lambda p: p.num_classes != 0))
        return (
            f"model.conditioning={conditioning}: dataset={facts.name} has no labels; use a labelled "
            f"dataset ({labelled}) or model.conditioning=none"
        )
    if facts.num_classes is not None and facts.num_classes != cfg.model.num_classes:
        return (
            f"model.num_classes={cfg.model.num_classes}: dataset={facts.name} has {facts.num_classes} "
            f"classes; set model.num_classes={facts.num_classes}"
        )
    return None


def _augmentation_needs_images(cfg: DictConfig) -> str | None:
    facts = data.facts(cfg.dataset)
    if augment.is_on(cfg.augment) and facts.image_size is None:
        setting = (
            f"augment.policy={list(cfg.augment.policy)}" if "policy" in cfg.augment else f"augment={cfg.augment.name}"
        )
        alternative = " (or augment.policy=[])" if "policy" in cfg.augment else ""
        return (
            f"{setting}: the augmentation transforms images, and dataset={facts.name} is not one; "
            f"set augment=none{alternative}"
        )
    return None


_COMBINATION_RULES = [
    _simultaneous_needs_one_d_step,
    _lr_decay_starts_before_the_end,
    _model_accepts_data,
    _ema_has_one_parametrisation,
    _conditioning_needs_the_data_labels,
    _augmentation_needs_images,
]


def validate(cfg: DictConfig, num_devices: int) -> None:
    """Raises ConfigError listing every broken rule; returns None when the config is sound."""
    errors = _unknown_keys(cfg, Config, "")
    sections = [
        (s, cfg[s]) for s in ("train", "eval", "augment", "dist", "schedule", "optim", "dataset", "model", "loss")
    ]
    sections += [("logger", cfg.logger)]
    errors += _penalty_errors(cfg.get("penalty"))
    if not errors:
        sections += [(f"penalty.{name}", cfg.penalty[name]) for name in penalties.chosen(cfg.penalty)]
    for section, value in sections:
        node = OmegaConf.to_object(value) if isinstance(value, DictConfig) else value
        if not dataclasses.is_dataclass(node):
            group = section.split(".")[0]
            if group == "penalty":
                name = section.split(".")[1]
                errors.append(
                    f"{section}: set (by the experiment, say) but penalty={name} is not chosen; choose it "
                    f"(e.g. 'penalty=[{name}]') or drop its settings"
                )
            else:
                errors.append(f"{section}: has no schema; choose a config from conf/{group}/")
            continue
        errors += _unknown_keys(value, node, section + ".")
        errors += _field_errors(node, section + ".")
    last_seed = cfg.seed + cfg.train.num_seeds - 1
    if not cfg.seed >= 0 or last_seed > MAX_SEED:
        errors.append(
            f"seed={cfg.seed}: must be an integer in [0, {MAX_SEED - cfg.train.num_seeds + 1}] "
            f"(the last seed of the run, seed + train.num_seeds - 1, at most {MAX_SEED})"
        )
    if not errors:
        errors += _own_rules(cfg)
        errors += _regulariser_rules(cfg)
        errors += [message for check in _COMBINATION_RULES if (message := check(cfg))]
        errors += schedules.errors(cfg, lambda key: _key_rule(cfg, key))
        errors += population.errors(cfg, lambda member: validate(member, num_devices))
        errors += pbt.errors(cfg)
    if not errors and cfg.train.batch_size % num_devices:
        errors.append(
            f"train.batch_size={cfg.train.batch_size}: must be divisible by the number of "
            f"devices ({num_devices}); set train.batch_size to a multiple of {num_devices} "
            "or train.num_devices to a divisor of it"
        )
    if not errors and (message := _packs_fit_each_device(cfg, num_devices)):
        errors.append(message)
    if not errors and (message := _micro_batches_fit_each_device(cfg, num_devices)):
        errors.append(message)
    if not errors and (message := _model_takes_each_devices_batch(cfg, num_devices)):
        errors.append(message)
    if errors:
        raise ConfigError("Invalid config:\n  " + "\n  ".join(errors))


def key_accepts(cfg: DictConfig, key: str, value: Any) -> bool:
    """Whether `value` meets numeric `key`'s rule in its part's schema (a key without one: any finite number)."""
    own = _key_rule(cfg, key)
    return math.isfinite(value) and (own is None or bool(own[0](value)))


def _key_rule(cfg: DictConfig, key: str) -> tuple[Any, str] | None:
    """(test, description) of a numeric key's rule in its part's schema (None: it has none)."""
    section, *rest = key.split(".")
    if section == "penalty":
        schema: Any = penalties.PENALTIES.get(rest[0]).schema
    elif section == "train":
        schema = TrainConfig
    else:
        schema = FAMILIES[section].get(cfg[section].name).schema
    found = {f.name: f for f in dataclasses.fields(schema)}.get(rest[-1])
    if found is None or "test" not in found.metadata:
        return None
    return found.metadata["test"], found.metadata["rule"]


def _penalty_errors(penalty: Any) -> list[str]:
    """The `penalty` node names registered regularisers (penalty=none: none)."""
    if penalty is None:
        return []
    if not isinstance(penalty, DictConfig):
        return [f"penalty={penalty!r}: choose regularisers from conf/penalty/ (penalty=r1, 'penalty=[r1,lecam]')"]
    errors = []
    for name in penalties.chosen(penalty):
        if name in RENAMED_PENALTY_KEYS:
            errors.append(RENAMED_PENALTY_KEYS[name])
        elif name not in penalties.PENALTIES:
            errors.append(f"penalty.{name}: not a regulariser; valid values are {', '.join(penalties.names())}")
    return errors


# The single-penalty layout before several could be chosen: penalty.name, penalty.weight.
RENAMED_PENALTY_KEYS = {
    "name": "penalty.name: regularisers are chosen as penalty=<name> or 'penalty=[r1,lecam]' now",
    "weight": (
        "penalty.weight: each regulariser has its own now; spell it penalty.<name>.weight (e.g. penalty.r1.weight=10)"
    ),
}


def _micro_batches_fit_each_device(cfg: DictConfig, num_devices: int) -> str | None:
    """train.grad_accum splits each device's batch into equal micro-batches of whole packs."""
    accum = cfg.train.grad_accum
    per_device = cfg.train.batch_size // num_devices
    pack = models.MODELS.get(cfg.model.name).d_pack(cfg.model)
    if per_device % (accum * pack):
        unit = f"{accum} micro-batches of whole packs of {pack}" if pack > 1 else f"{accum} micro-batches"
        return (
            f"train.grad_accum={accum}: each device's batch ({per_device} = train.batch_size "
            f"{cfg.train.batch_size} / {num_devices} devices) must split into {unit}; valid values are "
            + ", ".join(str(m) for m in range(1, per_device + 1) if per_device % (m * pack) == 0)
        )
    return None


def _model_takes_each_devices_batch(cfg: DictConfig, num_devices: int) -> str | None:
    """The model family's own rule on the examples D takes per call and device (StyleGAN2's
    minibatch-std groups must tile them)."""
    per_call = cfg.train.batch_size // num_devices // cfg.train.grad_accum
    return models.MODELS.get(cfg.model.name).d_batch_rule(cfg.model, per_call)


# Keys added to the config since checkpoints were first saved, with the value that
# behaves as before they existed (a saved run lacking one resumes with it).
ADDED_KEY_DEFAULTS = {
    "train.grad_accum": 1,
    "train.ema_kimg": None,
    "train.ema_rampup": None,
    "augment.name": "diffaugment",
    # evaluation as it was before protocols: the network's own resize, no quantisation
    "eval.resize": None,
    "eval.dinov2_arch": "vitl14",
    "eval.quantize": None,  # resumes with it on (null); gan-eval scores such a run's checkpoints as they were
    "eval.protocol": None,
    "schedule.shape": "cosine",  # with schedule.kimg null and no schedule.final: nothing follows one
    "train.population": None,
    "train.pbt": {
        "every": None,
        "objective": None,
        "fraction": 0.25,
        "perturb": [0.8, 1.2],
        "resample_probability": 0.25,
    },
    "train.memory_limit_gb": None,
}


def upgrade_saved(saved: dict) -> dict:
    """A config saved by an earlier gan_jax, in today's layout, so a resume compares like with
    like: the single penalty {name, weight} becomes {name: {weight, interval: 1}} (none: {}),
    and keys added since take the values in ADDED_KEY_DEFAULTS."""
    upgraded = {**saved}
    penalty = saved.get("penalty")
    if isinstance(penalty, dict) and isinstance(penalty.get("name"), str):
        name = penalty["name"]
        upgraded["penalty"] = {} if name == "none" else {name: {"weight": penalty.get("weight"), "interval": 1}}
    for dotted, value in ADDED_KEY_DEFAULTS.items():
        section, key = dotted.split(".")
        node = upgraded.get(section)
        if isinstance(node, dict) and key not in node:
            upgraded[section] = {**node, key: value}
    return upgraded


def _packs_fit_each_device(cfg: DictConfig, num_devices: int) -> str | None:
    """A packed D judges runs of consecutive examples of each device's share of the batch:
    the share must be whole packs for the packs (and the numbers) not to depend on devices."""
    pack = models.MODELS.get(cfg.model.name).d_pack(cfg.model)
    per_device = cfg.train.batch_size // num_devices
    if per_device % pack:
        return (
            f"model.discriminator.pack={pack}: each device's batch ({per_device} = train.batch_size "
            f"{cfg.train.batch_size} / {num_devices} devices) must be a multiple of it; set "
            f"train.batch_size to a multiple of {pack * num_devices}"
        )
    return None
