"""R3GAN (gan_jax.models.r3gan) against the authors' own networks: the fixtures in
tests/data/r3gan are brownvc/R3GAN's R3GAN/Networks.py run on perturbed random weights
(make_fixtures.py, commit in its README); gan_jax loads the same state dicts with
load_r3gan and must give the same images and logits to 1e-4 relative. Then the CIFAR-10
preset's parameters against their constructor's, the initialisation, the config's rules
and a tiny run through the real loop."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import compose_config, training_rows
from flax.traverse_util import flatten_dict, unflatten_dict
from test_stylegan2 import relative_error

from gan_jax import loop
from gan_jax.config import ConfigError, validate
from gan_jax.metrics.torch_format import read_state_dict, save_state_dict
from gan_jax.models import r3gan, stylegan2

FIXTURES = Path(__file__).parent / "data" / "r3gan"
TOLERANCE = 1e-4  # max |ours - theirs| / max |theirs|
TINY_R3GAN = [
    "experiment=none",
    "dataset=fashion_mnist",
    "dataset.image_size=8",
    "model=r3gan",
    "loss=relativistic",
    "penalty=[r1,r2]",
    "penalty.r1.weight=0.05",
    "penalty.r2.weight=0.05",
    "augment=none",
    "logger=none",
    "train.progress_bar=false",
    "model.latent_dim=8",
    "model.width_per_stage=[16,8]",
    "model.cardinality_per_stage=[4,2]",
    "model.blocks_per_stage=[1,1]",
    "model.generator.condition_embedding_dim=4",
    "model.discriminator.condition_embedding_dim=8",
    "train.batch_size=8",
    "train.steps=2",
    "train.steps_per_call=1",
    "train.log_every=1",
    "eval.every=2",
    "train.sample_every=2",
    "train.checkpoint_every=2",
    "eval.metrics=[]",
    "eval.num_samples=40",
    "eval.batch_size=40",
    "eval.reference_num_samples=128",
]


def fixture(name: str) -> tuple[dict[str, np.ndarray], dict]:
    """Their inputs and outputs, and the architecture arguments (their names)."""
    arrays = dict(np.load(FIXTURES / f"{name}.npz"))
    return arrays, json.loads(str(arrays.pop("arch")))


def load(name: str) -> tuple[stylegan2.NvidiaNetwork, dict[str, np.ndarray]]:
    arrays, arch = fixture(name)
    return r3gan.load_r3gan(FIXTURES / f"{name}.pt", name[0].upper(), **arch), arrays


@pytest.mark.parametrize("name", ["g_uncond", "g_cond"])
def test_generator_gives_the_authors_images(name):
    g, arrays = load(name)
    assert relative_error(g(arrays["z"], arrays.get("c")), arrays["images"]) < TOLERANCE
    if "c" in arrays:  # classes [N] as well as one-hot labels
        images = g(arrays["z"], np.argmax(arrays["c"], axis=1))
        assert relative_error(images, arrays["images"]) < TOLERANCE


@pytest.mark.parametrize("name", ["d_uncond", "d_cond"])
def test_discriminator_gives_the_authors_logits(name):
    d, arrays = load(name)
    assert relative_error(d(arrays["images"], arrays.get("c")), arrays["logits"]) < TOLERANCE


@pytest.mark.parametrize("mode", ["native", "dense"])
def test_grouped_convs_run_natively_or_as_block_diagonal_dense_convs_alike(mode):
    """model.grouped_conv: XLA's grouped conv, or a dense conv with a block-diagonal kernel (auto's
    choice on the CPU, where the grouped weight gradients are slow): their logits either way."""
    d, arrays = load("d_uncond")
    module = d.module.clone(grouped_conv=mode)
    logits = module.apply(d.variables, jax.numpy.asarray(arrays["images"]))[:, 0]
    assert relative_error(logits, arrays["logits"]) < TOLERANCE


def test_the_fixtures_residual_branches_are_live():
    """Without the branches' last convs (zero at initialisation) the outputs differ: the
    fixtures test the whole branch, not the identity."""
    g, arrays = load("g_uncond")
    flat = flatten_dict(g.variables)
    cut = {k: (np.zeros_like(v) if k[-2] == "conv3" else v) for k, v in flat.items()}
    images = g.module.apply(unflatten_dict(cut), arrays["z"])
    assert relative_error(images, arrays["images"]) > 1e-2


@pytest.mark.parametrize("conditioning", ["uncond", "cond"])
def test_the_cifar10_preset_has_the_authors_parameters(conditioning):
    """Every parameter of train.py --preset CIFAR10 (their constructors' names and shapes,
    no weights) loads into ours, nothing missing, and the counts are equal."""
    preset = json.loads((FIXTURES / "cifar10_preset.json").read_text())
    taps = r3gan.fir_taps()
    for kind in ("G", "D"):
        theirs = preset[f"{kind}_{conditioning}"]
        module = r3gan.r3gan_module(kind, **theirs["arch"])
        state = {k: np.broadcast_to(np.float32(0), s) for k, s in theirs["parameters"].items()}
        state |= {k: np.outer(taps, taps) for k in theirs["buffers"]}
        variables = r3gan.variables_from_state_dict(module, state)  # every name and shape, or it raises
        count = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(variables))
        assert count == theirs["count"], kind
    assert (preset["G_uncond"]["count"], preset["D_uncond"]["count"]) == (20_732_160, 20_683_776)
    assert (preset["G_cond"]["count"], preset["D_cond"]["count"]) == (20_781_952, 21_280_512)


@pytest.mark.parametrize("conditioning", ["none", "projection"])
def test_the_config_builds_the_cifar10_preset(conditioning):
    """conf/model/r3gan.yaml's values are train.py's --preset CIFAR10 (--cond: projection)."""
    cfg = compose_config(["experiment=none", "dataset=cifar10", "model=r3gan", f"model.conditioning={conditioning}"])
    validate(cfg, 1)
    generator, discriminator = r3gan.build(cfg.model, (32, 32, 3))
    preset = json.loads((FIXTURES / "cifar10_preset.json").read_text())
    suffix = "uncond" if conditioning == "none" else "cond"
    for module, kind in ((generator, "G"), (discriminator, "D")):
        assert module == r3gan.r3gan_module(kind, **preset[f"{kind}_{suffix}"]["arch"])


@pytest.mark.slow  # make test's budget
def test_initialisation_is_the_authors():
    """MSR init N(0, gain^2 / fan_in): the blocks' first two convs with gain
    sqrt(2 / 1.04) * L^(-1/4) (L: all blocks), their last conv zero, biases zero, G's basis N(0, 1)."""
    g = r3gan.Generator((64, 64), (8, 8), (2, 2), 2, noise_dim=8)
    params = flatten_dict(jax.jit(g.init)(jax.random.key(0), np.zeros((2, 8), np.float32))["params"])
    gain = math.sqrt(2 / (1 + 0.2**2)) * 4 ** (-1 / 4)
    block = ("stage1_layer2",)
    assert np.std(params[(*block, "conv1", "kernel")]) == pytest.approx(gain / math.sqrt(64), rel=0.05)
    assert np.std(params[(*block, "conv2", "kernel")]) == pytest.approx(gain / math.sqrt(16 * 9), rel=0.05)
    assert not np.any(params[(*block, "conv3", "kernel")])
    assert not np.any(params[(*block, "act1", "bias")])
    assert np.std(params[("stage0_layer0", "basis")]) == pytest.approx(1.0, rel=0.15)
    assert np.std(params[("to_image", "kernel")]) == pytest.approx(1 / 8, rel=0.15)
    assert params[(*block, "conv2", "kernel")].shape == (3, 3, 16, 128)  # 8 groups of 16 channels


def test_a_state_dict_that_does_not_fit_names_the_first_bad_key(tmp_path):
    _, arch = fixture("g_uncond")
    state = read_state_dict(FIXTURES / "g_uncond.pt")
    bad = dict(state)
    bad["MainLayers.1.Layers.1.LinearLayer2.Layer.weight"] = np.zeros((24, 12, 3, 3), np.float32)
    save_state_dict(bad, tmp_path / "bad.pt")
    with pytest.raises(r3gan.StateDictMismatch) as error:
        r3gan.load_r3gan(tmp_path / "bad.pt", "G", **arch)
    assert (
        str(error.value)
        == "MainLayers.1.Layers.1.LinearLayer2.Layer.weight: shape (24, 12, 3, 3), expected (24, 8, 3, 3)"
    )
    # Another architecture: the first key in the file's order that does not fit.
    message = r"^MainLayers.0.Layers.0.LinearLayer.weight: shape \(16, 8\), expected \(16, 9\)$"
    with pytest.raises(r3gan.StateDictMismatch, match=message):
        r3gan.load_r3gan(FIXTURES / "g_uncond.pt", "G", **{**arch, "NoiseDimension": 9})
    short = {k: v for k, v in state.items() if k != "AggregationLayer.Layer.weight"}
    save_state_dict(short, tmp_path / "short.pt")
    with pytest.raises(r3gan.StateDictMismatch, match=r"^to_image/kernel: missing .* \(3, 8, 1, 1\)\)$"):
        r3gan.load_r3gan(tmp_path / "short.pt", "G", **arch)
    save_state_dict({**state, "EmbeddingLayer.weight": np.zeros((4, 10), np.float32)}, tmp_path / "extra.pt")
    with pytest.raises(r3gan.StateDictMismatch, match=r"^EmbeddingLayer.weight: .* not a tensor of this architecture"):
        r3gan.load_r3gan(tmp_path / "extra.pt", "G", **arch)
    kernel = "MainLayers.1.Layers.0.Resampler.Kernel"
    save_state_dict({**state, kernel: np.full((4, 4), 1 / 16, np.float32)}, tmp_path / "box.pt")
    with pytest.raises(r3gan.StateDictMismatch, match=rf"^{kernel}: shape \(4, 4\), not the filter \(1, 2, 1\)"):
        r3gan.load_r3gan(tmp_path / "box.pt", "G", **arch)
    with pytest.raises(TypeError, match=r"unknown architecture arguments \['NoiseDimension'\]"):
        r3gan.r3gan_module("D", **arch)


def test_the_wrappers_state_dict_loads_too(tmp_path):
    """training/networks.py's Generator holds the network as .Model: its keys are 'Model.'-prefixed."""
    g, arrays = load("g_cond")
    prefixed = {f"Model.{k}": v for k, v in read_state_dict(FIXTURES / "g_cond.pt").items()}
    save_state_dict(prefixed, tmp_path / "wrapped.pt")
    wrapped = r3gan.load_r3gan(tmp_path / "wrapped.pt", "G", **fixture("g_cond")[1])
    assert relative_error(wrapped(arrays["z"], arrays["c"]), arrays["images"]) < TOLERANCE


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model.cardinality_per_stage=[4,3]"],
            "model.cardinality_per_stage[1]=3: must divide stage 1's branch width model.width_per_stage[1] * "
            "model.expansion_factor = 8 * 2 = 16",
        ),
        (
            ["model.blocks_per_stage=[1]"],
            "model.blocks_per_stage=[1]: has 1 stages, model.width_per_stage=[16, 8] 2; give",
        ),
        (
            ["dataset.image_size=16"],
            "model.width_per_stage=[16, 8]: 2 stages make 8x8 images (4 * 2^(stages - 1)); "
            "dataset.image_size=16 needs 3",
        ),
        (["dataset.image_size=28"], "dataset.image_size=28: model=r3gan makes 4 * 2^(stages - 1) pixel images"),
        (["model.width_per_stage=[16,0]"], "model.width_per_stage=[16, 0]: must be a non-empty list of integers"),
        (["model.expansion_factor=0"], "model.expansion_factor=0: must be an integer >= 1"),
    ],
)
def test_a_bad_config_fails_at_start_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as error:
        validate(compose_config(TINY_R3GAN + overrides), 1)
    assert message in str(error.value)


@pytest.mark.slow  # about 30 s on a cold compilation cache: make test-all
def test_a_tiny_conditional_r3gan_trains_through_the_loop(fashion_mnist_dir, tmp_path):
    """Two steps of the relativistic loss with R1 and R2, class-conditional (8x8: 2 stages), then samples."""
    overrides = TINY_R3GAN + [f"dataset.data_dir={fashion_mnist_dir}", "model.conditioning=projection"]
    outputs = loop.run(compose_config(overrides), tmp_path)
    assert outputs["status"] == "finished"
    rows = training_rows(tmp_path)
    assert len(rows) == 2
    for key in ("d_loss", "g_loss", "d_r1", "d_r2"):
        assert all(np.isfinite(r[key]) for r in rows), key
    assert all(r["d_r1"] > 0 and r["d_r2"] > 0 for r in rows)


# experiment=fashion_mnist_r3gan (its schedules, RpGAN, R1 + R2, conditional), shrunk to 8x8 and 4 steps
TINY_PRESET = [
    "experiment=fashion_mnist_r3gan",
    "dataset.image_size=8",
    "model.latent_dim=8",
    "model.width_per_stage=[16,8]",
    "model.cardinality_per_stage=[4,2]",
    "model.blocks_per_stage=[1,1]",
    "model.generator.condition_embedding_dim=4",
    "model.discriminator.condition_embedding_dim=8",
    "schedule.kimg=0.032",  # the 4 steps x 8 images
    "train.batch_size=8",
    "train.steps=4",
    "train.log_every=1",
    "train.checkpoint_every=2",
    "train.sample_every=4",
    "eval.every=4",
    "eval.metrics=[]",
    "logger=none",
    "train.progress_bar=false",
]


@pytest.mark.slow  # about 60 s on a cold compilation cache: make test-all
def test_the_preset_as_a_population_equals_its_single_runs_and_resumes_on_its_schedules(fashion_mnist_dir, tmp_path):
    """Two seeds in one program against seed 1 alone (to 1e-4), with every schedule moving;
    then the population stopped at its step-2 checkpoint and resumed gives the same rows."""
    data = [f"dataset.data_dir={fashion_mnist_dir}"]
    loop.run(compose_config(TINY_PRESET + data + ["train.num_seeds=2"]), tmp_path / "population")
    loop.run(compose_config(TINY_PRESET + data + ["seed=1"]), tmp_path / "single")
    together = [r for r in training_rows(tmp_path / "population") if r["seed"] == 1]
    alone = training_rows(tmp_path / "single")
    assert [r["step"] for r in together] == [r["step"] for r in alone] == [1, 2, 3, 4]
    for key in ("d_loss", "g_loss", "d_r1", "d_r2", "d_real", "d_fake", "schedule/optim.lr", "schedule/train.ema_kimg"):
        np.testing.assert_allclose([r[key] for r in together], [r[key] for r in alone], rtol=1e-4, err_msg=key)
    assert alone[0]["schedule/optim.lr"] == pytest.approx(2e-4) and alone[-1]["schedule/optim.lr"] < 1e-4
    split = TINY_PRESET + data + ["train.num_seeds=2"]
    loop.run(compose_config(split + ["train.steps=2"]), tmp_path / "split")
    resumed = loop.run(compose_config(split), tmp_path / "split")
    assert resumed["resumed_from_step"] == 2
    assert training_rows(tmp_path / "split") == training_rows(tmp_path / "population")
