"""Structured configs: the schema every composed config is checked against.

The YAML files under `conf/` hold the values, every default once; the dataclasses here
hold the types and the rules (no defaults of their own: a field left MISSING is one the
YAML must set). Hydra rejects an unknown key or a wrongly typed value while composing;
`validate` then checks every rule (ranges, choices, divisibility) and raises one
`ConfigError` naming each offending key and what it accepts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from gan_jax.errors import ConfigError  # noqa: F401  (raised by validate; imported from here by callers)


def _config_dir() -> str:
    """conf/ of a source checkout, else the copy installed inside the package."""
    package = Path(__file__).resolve().parent
    checkout = package.parent / "conf"
    return str(checkout if (checkout / "config.yaml").is_file() else package / "conf")


CONFIG_DIR = _config_dir()


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The config `gan-train OVERRIDES` would run, for scripts, notebooks and tests."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_schemas()
    with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
        return hydra_compose("config", overrides=list(overrides))


# --- field rules ------------------------------------------------------------------------


def _rule(default: Any, description: str, test: Callable[[Any], bool]) -> Any:
    return field(default=default, metadata={"rule": description, "test": test})


def positive(default: Any = MISSING) -> Any:
    return _rule(default, "a number > 0", lambda v: v > 0)


def at_least(minimum: int, default: Any = MISSING) -> Any:
    return _rule(default, f"an integer >= {minimum}", lambda v: v >= minimum)


def in_range(low: float, high: float, default: Any = MISSING) -> Any:
    return _rule(default, f"a number in [{low}, {high})", lambda v: low <= v < high)


def one_of(choices: Callable[[], tuple[str, ...]], default: Any = MISSING) -> Any:
    """`choices` is called lazily so registries can live in the modules that own them."""
    return field(default=default, metadata={"choices": choices})


def optional_positive(default: Any = None) -> Any:
    return _rule(default, "null or a number > 0", lambda v: v is None or v > 0)


def _activations() -> tuple[str, ...]:
    from gan_jax.models.mlp import ACTIVATIONS

    return tuple(ACTIVATIONS)


def _losses() -> tuple[str, ...]:
    from gan_jax import losses

    return tuple(n for n in losses.names() if n != "wgan")  # wgan has its own schema


def _penalties() -> tuple[str, ...]:
    from gan_jax import penalties

    return penalties.names()


def _latent_distributions() -> tuple[str, ...]:
    from gan_jax.models import LATENT_DISTRIBUTIONS

    return tuple(LATENT_DISTRIBUTIONS)


def _optimisers() -> tuple[str, ...]:
    from gan_jax.optim import OPTIMISERS

    return tuple(OPTIMISERS)


# --- datasets ---------------------------------------------------------------------------


@dataclass
class Gaussian1DConfig:
    name: str = "gaussian_1d"
    mean: float = MISSING
    std: float = positive()


@dataclass
class Ring2DConfig:
    name: str = "ring_2d"
    num_modes: int = at_least(1)
    radius: float = positive()
    std: float = positive()


@dataclass
class DiracDataConfig:
    """A point mass (Mescheder et al. 2018's Dirac-GAN data)."""

    name: str = "dirac"
    location: float = MISSING


@dataclass
class Grid2DConfig:
    name: str = "grid_2d"
    num_modes_per_side: int = at_least(1)
    spacing: float = positive()
    std: float = positive()


@dataclass
class ImageDataConfig:
    """A TFDS image dataset, read as an array_record data source (gan_jax/data/images.py)."""

    name: str = one_of(lambda: IMAGE_DATASETS)
    tfds_name: str = MISSING
    split: str = MISSING
    # null: TFDS's default ($TFDS_DATA_DIR, else ~/tensorflow_datasets).
    data_dir: str | None = MISSING
    image_size: int = at_least(1)  # the models see size x size images
    crop: int | None = optional_positive(MISSING)  # centre crop before resizing (CelebA: 108)
    download: bool = MISSING  # false: never touch the network; fail at once when not prepared


IMAGE_DATASETS: tuple[str, ...] = ("mnist", "fashion_mnist", "cifar10", "celeb_a", "tfds")


# --- model, loss, optimiser, logger -----------------------------------------------------


@dataclass
class MLPNetConfig:
    width: int = at_least(1)
    depth: int = at_least(0)
    activation: str = one_of(_activations)
    spectral_norm: bool = MISSING


@dataclass
class MLPConfig:
    name: str = "mlp"
    latent_dim: int = at_least(1)
    latent_dist: str = one_of(_latent_distributions)
    standardize: bool = MISSING
    generator: MLPNetConfig = field(default_factory=MLPNetConfig)
    discriminator: MLPNetConfig = field(default_factory=MLPNetConfig)


def _upsamplers() -> tuple[str, ...]:
    from gan_jax.models.dcgan import UPSAMPLERS

    return UPSAMPLERS


def _norms() -> tuple[str, ...]:
    from gan_jax.models.dcgan import NORMS

    return NORMS


@dataclass
class DCGANGeneratorConfig:
    width: int = at_least(1)  # channels of the last hidden layer; doubled per stage inwards
    upsample: str = one_of(_upsamplers)
    norm: str = one_of(_norms)


@dataclass
class DCGANDiscriminatorConfig:
    width: int = at_least(1)  # channels of the first layer; doubled per stage
    norm: str = one_of(_norms)
    spectral_norm: bool = MISSING


@dataclass
class DCGANConfig:
    name: str = "dcgan"
    latent_dim: int = at_least(1)
    latent_dist: str = one_of(_latent_distributions)
    generator: DCGANGeneratorConfig = field(default_factory=DCGANGeneratorConfig)
    discriminator: DCGANDiscriminatorConfig = field(default_factory=DCGANDiscriminatorConfig)


@dataclass
class DiracModelConfig:
    """G_theta(z) = theta, D_psi(x) = psi * x (Mescheder et al. 2018)."""

    name: str = "dirac"
    theta_init: float = MISSING
    psi_init: float = MISSING


@dataclass
class LossConfig:
    name: str = one_of(_losses)


@dataclass
class WGANLossConfig:
    name: str = one_of(lambda: ("wgan",))
    # D's parameters are clipped to [-c, c] after each update; null: no clipping (WGAN-GP).
    weight_clip: float | None = optional_positive(MISSING)


@dataclass
class PenaltyConfig:
    name: str = one_of(_penalties)
    weight: float = _rule(MISSING, "a number >= 0", lambda v: v >= 0)  # lambda or gamma


@dataclass
class OptimConfig:
    name: str = one_of(_optimisers)
    lr: float = positive()
    g_lr: float | None = optional_positive(MISSING)
    d_lr: float | None = optional_positive(MISSING)


@dataclass
class AdamConfig(OptimConfig):
    """Adam's moment decay rates; the other optimisers have none to set."""

    b1: float = in_range(0.0, 1.0)
    b2: float = in_range(0.0, 1.0)


@dataclass
class LoggerConfig:
    name: str = one_of(lambda: ("wandb",))
    project: str = MISSING
    entity: str | None = MISSING
    # auto: online when WANDB_API_KEY is set, offline otherwise; WANDB_MODE wins if set.
    mode: str = one_of(lambda: ("auto", "online", "offline"))
    tags: list[str] = MISSING


@dataclass
class NoLoggerConfig:
    """logger=none: metrics.jsonl and summary.json only."""

    name: str = one_of(lambda: ("none",))


# --- top level --------------------------------------------------------------------------


@dataclass
class TrainConfig:
    steps: int = at_least(1)
    batch_size: int = at_least(1)
    d_steps: int = at_least(1)
    log_every: int = at_least(1)
    eval_every: int = at_least(1)
    steps_per_call: int = at_least(1)
    num_eval_samples: int = at_least(1)
    # Independent replicas trained in one program, seeds seed .. seed + num_seeds - 1.
    num_seeds: int = at_least(1)
    checkpoint_every: int = at_least(1)
    keep_checkpoints: int = at_least(1)
    sample_every: int = at_least(1)  # samples/step_<step>.png from a fixed latent batch
    # Exponential moving average of G's parameters, used for samples and evaluation;
    # null: none. Before ema_start the average just copies G.
    ema_decay: float | None = _rule(MISSING, "null or a number in [0, 1)", lambda v: v is None or 0 <= v < 1)
    ema_start: int = at_least(0)
    # alternating: G steps against the D just updated (Algorithm 1); simultaneous: both
    # players step from the same point.
    schedule: str = one_of(lambda: ("alternating", "simultaneous"))
    # null: every local device.
    num_devices: int | None = _rule(MISSING, "null or an integer >= 1", lambda v: v is None or v >= 1)
    progress_bar: bool = MISSING


@dataclass
class Config:
    seed: int = MISSING
    # A summary.json key ("eval.jsd", "d_real_last_tenth", ...) that gan-train returns to
    # Hydra's sweeper (e.g. Optuna); a population returns its replicas' mean.
    objective: str | None = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: Any = MISSING
    dataset: Any = MISSING
    model: Any = MISSING
    loss: Any = MISSING
    penalty: PenaltyConfig = MISSING
    logger: Any = MISSING


SCHEMAS = {
    "config_schema": Config,
    "dataset/gaussian_1d": Gaussian1DConfig,
    "dataset/ring_2d": Ring2DConfig,
    "dataset/grid_2d": Grid2DConfig,
    "dataset/dirac": DiracDataConfig,
    "dataset/image": ImageDataConfig,
    "model/mlp": MLPConfig,
    "model/dirac": DiracModelConfig,
    "model/dcgan": DCGANConfig,
    "loss/loss": LossConfig,
    "loss/wgan": WGANLossConfig,
    "penalty/penalty": PenaltyConfig,
    "optim/optim": OptimConfig,
    "optim/adam": AdamConfig,
    "logger/wandb": LoggerConfig,
    "logger/none": NoLoggerConfig,
}


def register_schemas() -> None:
    """Stores the root schema as `config_schema` and the others as `schema/<group>/<name>`.

    conf/config.yaml and each group's YAML files extend them in their defaults lists.
    """
    store = ConfigStore.instance()
    for path, node in SCHEMAS.items():
        group, _, name = path.rpartition("/")
        store.store(group=f"schema/{group}" if group else None, name=name, node=node)
    OmegaConf.register_new_resolver("job_dirname", job_dirname, replace=True)


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
        elif isinstance(value, float) and not math.isfinite(value):
            errors.append(f"{key}={value}: must be a finite number")
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


def _simultaneous_needs_one_d_step(cfg: DictConfig) -> str | None:
    if cfg.train.schedule == "simultaneous" and cfg.train.d_steps != 1:
        return (
            f"train.d_steps={cfg.train.d_steps}: simultaneous updates take one step of "
            "each player from the same point; set train.d_steps=1 or train.schedule=alternating"
        )
    return None


def _dirac_model_needs_1d_data(cfg: DictConfig) -> str | None:
    if cfg.model.name == "dirac" and cfg.dataset.name not in ("dirac", "gaussian_1d"):
        return (
            f"model=dirac: its generator is one number, so the data must be 1-D; "
            f"dataset={cfg.dataset.name} is not (valid: dirac, gaussian_1d)"
        )
    return None


def _penalty_weight_must_act(cfg: DictConfig) -> str | None:
    name, weight = cfg.penalty.name, cfg.penalty.weight
    if name != "none" and weight == 0:
        return f"penalty.weight=0 makes penalty={name} do nothing; use penalty=none or a weight > 0"
    if name == "none" and weight != 0:
        return f"penalty.weight={weight} has no effect with penalty=none; choose a penalty"
    return None


def _gradient_penalty_replaces_clipping(cfg: DictConfig) -> str | None:
    if cfg.penalty.name == "wgan_gp" and cfg.loss.get("weight_clip") is not None:
        return (
            f"penalty=wgan_gp with loss.weight_clip={cfg.loss.weight_clip}: the gradient "
            "penalty replaces weight clipping (Gulrajani et al. 2017); set loss.weight_clip=null"
        )
    return None


def _dcgan_needs_supported_images(cfg: DictConfig) -> str | None:
    from gan_jax.models.dcgan import SUPPORTED_SIZES

    if cfg.model.name != "dcgan":
        return None
    if cfg.dataset.name not in IMAGE_DATASETS:
        return (
            f"model=dcgan: needs an image dataset ({', '.join(IMAGE_DATASETS)}); dataset={cfg.dataset.name} is not one"
        )
    if cfg.dataset.image_size not in SUPPORTED_SIZES:
        return (
            f"dataset.image_size={cfg.dataset.image_size}: model=dcgan supports {', '.join(map(str, SUPPORTED_SIZES))}"
        )
    return None


def _gradient_penalty_needs_per_example_d(cfg: DictConfig) -> str | None:
    discriminator = cfg.model.get("discriminator") or {}
    if cfg.penalty.name != "none" and discriminator.get("norm") == "batch":
        return (
            f"penalty={cfg.penalty.name} with model.discriminator.norm=batch: the penalty takes "
            "D's gradient per example, which batch norm couples across the batch (Gulrajani et "
            "al. 2017 drop it from the critic); set model.discriminator.norm=layer or none"
        )
    return None


_COMBINATION_RULES = [
    _simultaneous_needs_one_d_step,
    _dirac_model_needs_1d_data,
    _penalty_weight_must_act,
    _gradient_penalty_replaces_clipping,
    _dcgan_needs_supported_images,
    _gradient_penalty_needs_per_example_d,
]


def validate(cfg: DictConfig, num_devices: int) -> None:
    """Raises ConfigError listing every broken rule; returns None when the config is sound."""
    errors = _unknown_keys(cfg, Config, "")
    for section in ("train", "optim", "dataset", "model", "loss", "penalty", "logger"):
        node = OmegaConf.to_object(cfg[section])
        if not dataclasses.is_dataclass(node):
            errors.append(f"{section}: has no schema; choose a config from conf/{section}/")
            continue
        errors += _unknown_keys(cfg[section], node, section + ".")
        errors += _field_errors(node, section + ".")
    last_seed = cfg.seed + cfg.train.num_seeds - 1
    if not cfg.seed >= 0 or last_seed > MAX_SEED:
        errors.append(
            f"seed={cfg.seed}: must be an integer in [0, {MAX_SEED - cfg.train.num_seeds + 1}] "
            f"(the last seed of the run, seed + train.num_seeds - 1, at most {MAX_SEED})"
        )
    if not errors:
        errors += [message for rule in _COMBINATION_RULES if (message := rule(cfg))]
    if not errors and cfg.train.batch_size % num_devices:
        errors.append(
            f"train.batch_size={cfg.train.batch_size}: must be divisible by the number of "
            f"devices ({num_devices}); set train.batch_size to a multiple of {num_devices} "
            "or train.num_devices to a divisor of it"
        )
    if errors:
        raise ConfigError("Invalid config:\n  " + "\n  ".join(errors))
