"""BigGAN (gan_jax.models.biggan) against the authors' own networks: the fixtures in
tests/data/biggan are ajbrock/BigGAN-PyTorch's BigGAN.py run on perturbed random weights
(make_fixtures.py, commit in its README); gan_jax loads the same state dicts with
load_biggan and must give the same images and logits to 1e-4 relative, in their eval mode
and in training mode (batch statistics, spectral norm's u moved: the buffers after it too).
Then the CIFAR-10 script's parameters against their constructors', the initialisation
and the orthogonal penalty on BigGAN's weights, the config's rules, a tiny run through
the real loop, and the ResNet with self-attention."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import compose_config, training_rows
from flax.traverse_util import flatten_dict, unflatten_dict
from test_stylegan2 import relative_error

from gan_jax import loop
from gan_jax.config import ConfigError, validate
from gan_jax.metrics.torch_format import read_state_dict, save_state_dict
from gan_jax.models import biggan, resnet, stylegan2
from gan_jax.models.attention import SelfAttention
from gan_jax.regularisers.orthogonal import orthogonal_penalty

FIXTURES = Path(__file__).parent / "data" / "biggan"
TOLERANCE = 1e-4  # max |ours - theirs| / max |theirs|
TINY_BIGGAN = [
    "experiment=none",
    "dataset=fashion_mnist",
    "dataset.image_size=32",
    "model=biggan",
    "loss=hinge",
    "augment=none",
    "logger=none",
    "train.progress_bar=false",
    "model.latent_dim=8",
    "model.generator.ch=2",
    "model.discriminator.ch=2",
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
    """Their inputs and outputs, and the constructor's arguments (their names)."""
    arrays = dict(np.load(FIXTURES / f"{name}.npz"))
    return arrays, json.loads(str(arrays.pop("arch")))


def load(name: str) -> tuple[stylegan2.NvidiaNetwork, dict[str, np.ndarray]]:
    arrays, arch = fixture(name)
    return biggan.load_biggan(FIXTURES / f"{name}.pt", name[0].upper(), **arch), arrays


def trained_call(net: stylegan2.NvidiaNetwork, x: np.ndarray, labels: np.ndarray) -> tuple[jax.Array, dict]:
    """Their training mode: batch statistics, num_itrs power iterations, the buffers moved."""
    out, state = net.module.apply(
        net.variables, jnp.asarray(x, jnp.float32), labels=labels, update_stats=True, mutable=["batch_stats"]
    )
    return out, state["batch_stats"]


def assert_buffers_moved_as_theirs(state: dict, arrays: dict[str, np.ndarray]) -> None:
    """Every buffer after their training-mode call (a second singular vector of a [1, n] weight is 0)."""
    ours = flatten_dict(state)
    after = {k.removeprefix("after/"): v for k, v in arrays.items() if k.startswith("after/")}
    assert len(after) == len(ours)
    for key, theirs in after.items():
        collection, path = biggan._our_path(key)
        assert collection == "batch_stats"
        error = np.max(np.abs(np.asarray(ours[path]) - theirs)) / max(np.max(np.abs(theirs)), 1e-6)
        assert error < TOLERANCE, key


# The 64x64 cases: make test-all (make test's budget).
SLOW_64 = pytest.mark.slow


@pytest.mark.parametrize("name", ["g_cond", "g_plain", "g_uncond", pytest.param("g_64", marks=SLOW_64)])
def test_generator_gives_the_authors_images(name):
    g, arrays = load(name)
    z, y = arrays["z"], arrays["y"]
    assert relative_error(g(z, y, running_stats=True), arrays["images_eval"]) < TOLERANCE
    images, state = trained_call(g, z, y)
    assert relative_error(images, arrays["images_train"]) < TOLERANCE
    assert_buffers_moved_as_theirs(state, arrays)


@pytest.mark.parametrize("name", ["d_cond", "d_uncond", pytest.param("d_64", marks=SLOW_64)])
def test_discriminator_gives_the_authors_logits(name):
    d, arrays = load(name)
    images, y = arrays["images"].astype(np.float32), arrays["y"]
    assert relative_error(d(images, y), arrays["logits_eval"]) < TOLERANCE
    logits, state = trained_call(d, images, y)
    assert relative_error(logits[:, 0], arrays["logits_train"]) < TOLERANCE
    assert_buffers_moved_as_theirs(state, arrays)


def test_the_fixtures_attention_is_live_and_unconditional_needs_no_labels():
    """Without the attention gains (0 at initialisation) the images differ: the fixtures test
    the attention, not the identity. A one-class (unconditional) G takes no labels."""
    g, arrays = load("g_cond")
    flat = flatten_dict(g.variables)
    assert any(k[-1] == "gamma" for k in flat)
    cut = unflatten_dict({k: (np.zeros_like(v) if k[-1] == "gamma" else v) for k, v in flat.items()})
    images = g.module.apply(cut, arrays["z"], labels=arrays["y"], running_stats=True)
    assert relative_error(images, arrays["images_eval"]) > 1e-3
    g, arrays = load("g_uncond")
    assert relative_error(g(arrays["z"], None, running_stats=True), arrays["images_eval"]) < TOLERANCE


def test_the_cifar10_script_has_the_authors_parameters():
    """Every parameter and buffer of launch_cifar_ema.sh's G and D (their constructors' names
    and shapes, no weights) loads into ours, nothing missing, the counts equal; and
    conf/model/biggan.yaml builds those networks."""
    preset = json.loads((FIXTURES / "cifar10_preset.json").read_text())
    cfg = compose_config(["experiment=none", "dataset=cifar10", "model=biggan"])
    validate(cfg, 1)
    built = dict(zip("GD", biggan.build(cfg.model, (32, 32, 3)), strict=True))
    for kind in ("G", "D"):
        theirs = preset[kind]
        module = biggan.biggan_module(kind, **theirs["arch"])
        assert module == built[kind]
        shapes = {**theirs["parameters"], **theirs["buffers"]}
        state = {k: np.broadcast_to(np.float32(0), s) for k, s in shapes.items()}
        variables = biggan.variables_from_state_dict(module, state)  # every name and shape, or it raises
        count = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(variables["params"]))
        assert count == theirs["count"], kind
    assert (preset["G"]["count"], preset["D"]["count"]) == (4_304_387, 4_207_361)


def test_initialisation_and_the_orthogonal_penalty_on_biggans_weights():
    """'ortho': a weight's outputs orthonormal (W^T W = I where out <= fan_in: BigGAN's
    orthogonal penalty ~0 on it); 'N02': N(0, 0.02); biases torch's U(+-1/sqrt(fan_in));
    attention gains 0. penalty=orthogonal on a whole BigGAN G (shared embedding, ccBN
    gains, attention): finite, > 0 and differentiable in its parameters, bar the shared
    embedding's (train_fns.py blacklists G.shared)."""
    conv = biggan.Conv(32, 3)
    n02 = biggan.Conv(64, 3, spectral=biggan.Spectral(), initialisation="N02")

    x = jnp.zeros((1, 4, 4, 32))

    @jax.jit  # one program: cheaper than each initialiser's ops one by one
    def initialise(key):
        return conv.init(key, x)["params"], n02.init(key, x)["params"]["kernel"], SelfAttention().init(key, x)

    ortho, normal, attention = initialise(jax.random.key(0))
    kernel = np.asarray(ortho["kernel"]).reshape(-1, 32)  # [3 * 3 * 32, 32]
    assert np.abs(kernel.T @ kernel - np.eye(32)).max() < 1e-5  # what off_diagonal_gram_penalty measures: ~0
    np.testing.assert_allclose(np.linalg.norm(kernel, axis=0), 1.0, rtol=1e-4)
    assert 0 < np.abs(ortho["bias"]).max() <= 1 / np.sqrt(32 * 9)
    assert np.std(normal) == pytest.approx(0.02, rel=0.05)
    assert float(attention["params"]["gamma"]) == 0.0
    g, _ = load("g_cond")
    penalty, grads = jax.jit(jax.value_and_grad(orthogonal_penalty))(g.variables["params"])
    assert np.isfinite(float(penalty)) and float(penalty) > 0
    from flax.traverse_util import flatten_dict

    matrices = {path: v for path, v in flatten_dict(grads).items() if v.ndim >= 2}
    assert any(path[0] == "shared" for path in matrices)
    for path, grad in matrices.items():  # every weight matrix but the shared embedding (their blacklist)
        assert (np.abs(np.asarray(grad)).max() > 0) == (path[0] != "shared"), path


def test_a_state_dict_that_does_not_fit_names_the_first_bad_key(tmp_path):
    _, arch = fixture("g_cond")
    state = read_state_dict(FIXTURES / "g_cond.pt")
    bad = {**state, "blocks.1.0.conv1.weight": np.zeros((16, 8, 3, 3), np.float32)}
    save_state_dict(bad, tmp_path / "bad.pt")
    with pytest.raises(biggan.StateDictMismatch, match=r"^blocks.1.0.conv1.weight: shape \(16, 8, 3, 3\), expected "):
        biggan.load_biggan(tmp_path / "bad.pt", "G", **arch)
    save_state_dict({k: v for k, v in state.items() if k != "linear.u0"}, tmp_path / "short.pt")
    with pytest.raises(biggan.StateDictMismatch, match=r"^batch_stats/linear/u0: missing"):
        biggan.load_biggan(tmp_path / "short.pt", "G", **arch)
    with pytest.raises(biggan.StateDictMismatch, match=r"^blocks.1.1.gamma: shape \(\), not a tensor"):
        biggan.load_biggan(FIXTURES / "g_cond.pt", "G", **{**arch, "G_attn": "0"})
    with pytest.raises(ValueError, match=r"mybn=True: only False"):
        biggan.biggan_module("G", mybn=True)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model.attention_resolution=8"],
            "model.attention_resolution=8: at 32x32 G has blocks at 8, 16, 32 and D at 16 "
            "(their G_arch / D_arch labels); valid values are null, 16",
        ),
        (
            ["dataset.image_size=28"],
            "dataset.image_size=28: model=biggan supports 32, 64, 128, 256 (their G_arch and D_arch); "
            "set dataset.image_size=32",
        ),
        (
            ["model.generator.hierarchical=true", "model.generator.shared_embedding=true", "model.latent_dim=10"],
            "model.latent_dim=10: model.generator.hierarchical splits z into 4 equal chunks at 32x32",
        ),
        (["model.generator.hierarchical=true"], "model.generator.hierarchical=true: each block's input is"),
        (
            ["model.attention_resolution=16", "model.generator.ch=1"],
            "model.generator.ch=1: attention at 16x16 sees 4 channels: attention needs at least 8",
        ),
        (["model.generator.init=orthogonal"], "model.generator.init='orthogonal': valid values are ortho, N02"),
        (["model.conditioning=acgan"], "model.conditioning='acgan': valid values are none, projection"),
    ],
)
def test_a_bad_config_fails_at_start_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as error:
        validate(compose_config(TINY_BIGGAN + overrides), 1)
    assert message in str(error.value)


@pytest.mark.parametrize("experiment", ["brock2019_biggan_cifar10", "fashion_mnist_biggan"])
def test_the_experiments_compose(experiment):
    validate(compose_config([f"experiment={experiment}"]), 1)


@pytest.mark.slow  # about 20 s on a cold compilation cache: make test-all
def test_a_tiny_conditional_biggan_trains_through_the_loop(fashion_mnist_dir, tmp_path):
    """Two steps of the hinge loss, class-conditional with the shared embedding, hier and
    attention at 16 (32x32, ch 4), then samples."""
    overrides = TINY_BIGGAN + [
        f"dataset.data_dir={fashion_mnist_dir}",
        "model.conditioning=projection",
        "model.generator.shared_embedding=true",
        "model.generator.hierarchical=true",
        "model.generator.ch=4",
        "model.discriminator.ch=4",
        "model.attention_resolution=16",
    ]
    outputs = loop.run(compose_config(overrides), tmp_path)
    assert outputs["status"] == "finished"
    rows = training_rows(tmp_path)
    assert len(rows) == 2
    for key in ("d_loss", "g_loss"):
        assert all(np.isfinite(r[key]) for r in rows), key


def random_variables(module, *args, seed: int = 0) -> dict:
    """Variables of the module's shapes drawn with NumPy (no PRNG programs to compile)."""
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(module.init, jax.random.key(0), *args)
    return jax.tree.map(lambda s: jnp.asarray(0.2 * rng.standard_normal(s.shape), jnp.float32), shapes)


def test_the_resnet_takes_self_attention():
    """model=resnet with model.attention_resolution: one attention layer in G and one in D,
    at that resolution, and they act; a resolution one of them lacks fails naming the key."""
    overrides = ["experiment=none", "dataset=fashion_mnist", "model=resnet", "model.generator.width=8"]
    cfg = compose_config([*overrides, "model.discriminator.width=8", "model.attention_resolution=14"])
    validate(cfg, 1)
    g, d = resnet.build(cfg.model, (28, 28, 1))
    z, x = jnp.ones((2, cfg.model.latent_dim)), jnp.ones((2, 28, 28, 1))
    g_vars, d_vars = random_variables(g, z), random_variables(d, x)
    for variables in (g_vars, d_vars):
        assert len([k for k in flatten_dict(variables["params"]) if k[-1] == "gamma"]) == 1
    images, logits = jax.jit(lambda g_vars, d_vars: (g.apply(g_vars, z), d.apply(d_vars, x)))(g_vars, d_vars)
    assert images.shape == (2, 28, 28, 1) and bool(jnp.all(jnp.isfinite(images)))
    assert logits.shape == (2, 1) and bool(jnp.all(jnp.isfinite(logits)))
    with pytest.raises(ConfigError, match=r"model.attention_resolution=7: .* valid values are null, 14"):
        validate(compose_config([*overrides, "model.attention_resolution=7"]), 1)


# experiment=fashion_mnist_biggan (shared embedding, hierarchical z, attention at 16, 2 D steps), shrunk
TINY_PRESET = [
    "experiment=fashion_mnist_biggan",
    "model.latent_dim=8",
    "model.generator.ch=2",
    "model.discriminator.ch=2",
    "model.generator.shared_dim=4",
    "train.batch_size=8",
    "train.steps=4",
    "train.ema_start=0",
    "train.log_every=1",
    "train.checkpoint_every=2",
    "train.sample_every=4",
    "eval.every=4",
    "eval.metrics=[]",
    "logger=none",
    "train.progress_bar=false",
]


@pytest.mark.slow  # about 60 s on a cold compilation cache: make test-all
def test_the_preset_as_a_population_equals_its_single_runs_and_resumes(fashion_mnist_dir, tmp_path):
    """Two seeds in one program against seed 1 alone (to 1e-4): batch norm and spectral norm's
    vectors stay each replica's own; then the population stopped at its step-2 checkpoint and
    resumed gives the same rows."""
    data = [f"dataset.data_dir={fashion_mnist_dir}"]
    loop.run(compose_config(TINY_PRESET + data + ["train.num_seeds=2"]), tmp_path / "population")
    loop.run(compose_config(TINY_PRESET + data + ["seed=1"]), tmp_path / "single")
    together = [r for r in training_rows(tmp_path / "population") if r["seed"] == 1]
    alone = training_rows(tmp_path / "single")
    assert [r["step"] for r in together] == [r["step"] for r in alone] == [1, 2, 3, 4]
    for key in ("d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm"):
        np.testing.assert_allclose([r[key] for r in together], [r[key] for r in alone], rtol=1e-4, err_msg=key)
    split = TINY_PRESET + data + ["train.num_seeds=2"]
    loop.run(compose_config(split + ["train.steps=2"]), tmp_path / "split")
    resumed = loop.run(compose_config(split), tmp_path / "split")
    assert resumed["resumed_from_step"] == 2
    assert training_rows(tmp_path / "split") == training_rows(tmp_path / "population")
