"""Adding parts from outside gan_jax: a loss, a model, a toy dataset, a metric and a
regulariser with state.

Each is one definition registered with its family (schema, builder, own rules) in this
file, plus one YAML in tests/extending_conf/, put on the config search path; nothing
inside gan_jax is edited. The run goes through gan-train's composition (`compose`) and
the real loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY, metrics_rows

from gan_jax import data, evaluators, loop, losses, models, penalties, terms
from gan_jax.config import ConfigError, compose, validate
from gan_jax.schema import MISSING, at_least, one_of, positive

SEARCH_PATH = f"hydra.searchpath=[file://{Path(__file__).resolve().parent / 'extending_conf'}]"

# --- a loss with a hyper-parameter: conf/loss/squared_hinge.yaml ----------------------


@dataclass
class SquaredHingeConfig:
    name: str = one_of(lambda: ("squared_hinge",))
    margin: float = positive()


def squared_hinge(margin: float) -> losses.GANLoss:
    def discriminator(real_out, fake_out):
        return jnp.mean(jax.nn.relu(margin - real_out) ** 2) + jnp.mean(jax.nn.relu(margin + fake_out) ** 2)

    return losses.GANLoss("squared_hinge", discriminator, lambda real_out, fake_out: -jnp.mean(fake_out))


LOSS = losses.LossPart("squared_hinge", lambda cfg: squared_hinge(cfg.margin), schema=SquaredHingeConfig)

# --- a model: conf/model/tiny_mlp.yaml ------------------------------------------------


@dataclass
class TinyMLPConfig:
    name: str = "tiny_mlp"
    latent_dim: int = at_least(1)
    width: int = at_least(1)


class _Net(nn.Module):
    width: int
    out: int

    @nn.compact
    def __call__(self, x, update_stats: bool = False, axis_name=None):  # the models' call contract
        return nn.Dense(self.out)(nn.relu(nn.Dense(self.width)(x.reshape(x.shape[0], -1))))


def _build_tiny_mlp(cfg: Any, dataset: data.Dataset) -> tuple[nn.Module, nn.Module]:
    return _Net(cfg.width, int(np.prod(dataset.shape))), _Net(cfg.width, 1)


def _flat_data_only(cfg: Any, facts: data.DataFacts) -> str | None:
    if facts.image_size is not None:
        return f"model=tiny_mlp: takes flat examples; dataset={facts.name} is images"
    return None


MODEL = models.ModelPart("tiny_mlp", TinyMLPConfig, _build_tiny_mlp, data_rule=_flat_data_only)

# --- a toy dataset: conf/dataset/segment_2d.yaml --------------------------------------


@dataclass
class Segment2DConfig:
    name: str = "segment_2d"
    length: float = positive()
    noise: float = MISSING


def segment_2d(length: float, noise: float) -> data.ToyDataset:
    def sample_one(key):
        along, off = jax.random.split(key)
        x = jax.random.uniform(along, (), minval=-length / 2, maxval=length / 2)
        return jnp.stack([x, noise * jax.random.normal(off, ())])

    return data.ToyDataset("segment_2d", 2, sample_one, loc=(0.0, 0.0), scale=(length / np.sqrt(12), noise))


DATASET = data.DatasetPart(
    "segment_2d",
    Segment2DConfig,
    lambda cfg: segment_2d(cfg.length, cfg.noise),
    shape=(2,),
    rules=(lambda cfg: None if cfg.noise >= 0 else f"dataset.noise={cfg.noise}: must be a number >= 0",),
)

# --- a metric: an evaluator, on every dataset with a segment ---------------------------


def _off_axis(inputs: evaluators.EvalInputs) -> evaluators.Measured:
    return evaluators.Measured({"off_axis": float(np.mean(np.abs(inputs.samples[:, 1])))})


METRIC = evaluators.Metric(
    "off_axis", applies=lambda dataset: dataset.name == "segment_2d", compute=_off_axis, directions={"off_axis": "min"}
)


# --- a regulariser with state: conf/penalty/drift.yaml ---------------------------------


def drift_terms(cfg: Any, context: penalties.BuildContext) -> tuple[terms.Term, ...]:
    """Karras et al. 2018's drift penalty on D's real outputs; its state counts the updates
    it took part in (a counter: the same on every device, so not averaged over them)."""

    def fn(view: terms.DView, state: dict) -> terms.TermResult:
        updates = state["updates"] + 1
        value = cfg.weight * jnp.mean(view.real_out**2)
        return terms.TermResult(value, {"updates": updates}, {"drift_updates": updates})

    init = lambda: {"updates": jnp.zeros((), jnp.int32)}  # noqa: E731
    return (terms.Term(context.name, terms.DISCRIMINATOR, fn, init=init, mean_state=False),)


REGULARISER = penalties.PenaltyPart("drift", drift_terms)


@pytest.fixture(scope="module", autouse=True)
def registered():
    """Registers the four parts for this module's tests, and takes them out again after
    (the registries are global: other tests list every loss, dataset, ...)."""
    parts = [
        (losses.LOSSES, losses.register(LOSS)),
        (models.MODELS, models.register(MODEL)),
        (data.DATASETS, data.register(DATASET)),
        (evaluators.EVALUATORS, evaluators.register(METRIC)),
        (penalties.PENALTIES, penalties.register(REGULARISER)),
    ]
    yield
    for registry, part in parts:
        registry.unregister(part.name)


NEW_PARTS = ["experiment=none", SEARCH_PATH, "dataset=segment_2d", "model=tiny_mlp", "loss=squared_hinge"]


def test_the_new_parts_train_through_gan_trains_composition(tmp_path):
    cfg = compose([*NEW_PARTS, *TINY])
    assert cfg.loss.margin == 1.0 and cfg.model.width == 16 and cfg.dataset.length == 2.0
    summary = loop.run(cfg, tmp_path)
    assert summary["status"] == "finished" and summary["steps_completed"] == 20
    rows = metrics_rows(tmp_path)
    assert all(np.isfinite(r["d_loss"]) for r in rows if "d_loss" in r)
    assert 0 <= summary["eval"]["off_axis"] < 10  # the new metric, in summary.json and metrics.jsonl
    assert any("off_axis" in r for r in rows)


def test_a_regulariser_with_state_trains_beside_a_built_in_one(tmp_path):
    cfg = compose([*NEW_PARTS, *TINY, "train.d_steps=2", "penalty=[drift,r1]", "penalty.drift.weight=0.01"])
    assert loop.run(cfg, tmp_path)["status"] == "finished"
    rows = [r for r in metrics_rows(tmp_path) if "d_loss" in r]
    # Two D updates an iteration; the counter is state, carried from step to step.
    assert [r["drift_updates"] for r in rows] == [2 * r["step"] for r in rows]
    assert all(r["d_drift"] > 0 and r["d_r1"] > 0 for r in rows)


@pytest.mark.slow
@pytest.mark.parametrize("new_part", ["dataset=segment_2d", "model=tiny_mlp", "loss=squared_hinge"])
def test_each_new_part_composes_with_the_built_in_ones(new_part, tmp_path):
    """One new part at a time, the rest built in (ring_2d, mlp, non_saturating)."""
    cfg = compose(["experiment=none", SEARCH_PATH, "dataset=ring_2d", new_part, *TINY, "train.steps=5"])
    assert loop.run(cfg, tmp_path)["status"] == "finished"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["dataset.length=-1"], "dataset.length=-1.0: must be a number > 0"),
        (["dataset.noise=-0.1"], "dataset.noise=-0.1: must be a number >= 0"),
        (["model.width=0"], "model.width=0: must be an integer >= 1"),
        (["loss.margin=0"], "loss.margin=0.0: must be a number > 0"),
        (["dataset=fashion_mnist"], "model=tiny_mlp: takes flat examples; dataset=fashion_mnist is images"),
        (["penalty=r1", "penalty.r1.weight=0"], "penalty.r1.weight=0.0: must be a number > 0"),
    ],
)
def test_the_new_parts_rules_are_checked_like_the_built_in_ones(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        validate(compose([*NEW_PARTS, *overrides]), 1)


def test_the_new_options_are_listed_with_the_built_in_ones():
    with pytest.raises(ConfigError, match="valid values are .*squared_hinge"):
        validate(compose([*NEW_PARTS, "loss.name=typo"]), 1)
