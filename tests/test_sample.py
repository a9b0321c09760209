"""gan-sample: images from a finished run's checkpoint; its npz scored by gan-eval gives the run's
own evaluation; the same images whatever the batch size; clear errors for what cannot be done."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import TINY_DCGAN, compose_config
from PIL import Image

from gan_jax import loop, sample, score


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, fashion_mnist_dir):
    run_dir = tmp_path_factory.mktemp("run")
    summary = loop.run(compose_config(TINY_DCGAN + [f"dataset.data_dir={fashion_mnist_dir}"]), run_dir)
    return run_dir, summary


def test_the_npz_scores_the_runs_own_evaluation_in_gan_eval(finished_run, tmp_path, capsys):
    run_dir, summary = finished_run
    count = compose_config(TINY_DCGAN).eval.num_samples
    assert sample.main([str(run_dir), "--num", str(count), "--out", str(tmp_path / "s.npz"), "--quiet"]) == 0
    with np.load(tmp_path / "s.npz") as stored:
        assert stored["images"].shape == (count, 28, 28, 1) and stored["images"].dtype == np.uint8
        assert json.loads(str(stored["meta"]))["checkpoint_step"] == 6
    assert score.main([str(run_dir), "--samples", str(tmp_path / "s.npz")]) == 0
    entries = json.loads((run_dir / score.EVAL_FILE).read_text())
    [entry] = [v for k, v in entries.items() if k.startswith(f"samples:s.npz@6/n{count}/custom:")]
    ours, runs = entry["replicas"][0], summary["eval"]
    for key in ("fid", "kid", "precision", "recall"):
        assert ours[key] == pytest.approx(runs[key], rel=1e-4, abs=1e-6), key
    assert "samples:s.npz" in capsys.readouterr().out


def test_pngs_grid_and_interpolation_are_deterministic(finished_run, tmp_path):
    run_dir, _ = finished_run
    args = ["--num", "10", "--seed", "3", "--quiet", "--grid", "--interpolate", "5"]
    assert sample.main([str(run_dir), *args, "--out", str(tmp_path / "a")]) == 0
    assert sample.main([str(run_dir), *args, "--out", str(tmp_path / "b")]) == 0
    pngs = sorted(p.name for p in (tmp_path / "a").glob("0*.png"))
    assert pngs == [f"{i:06d}.png" for i in range(10)]
    for name in [*pngs, "grid.png", "interpolation.png", "interpolation.gif"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert Image.open(tmp_path / "a" / "interpolation.png").size == (5 * 29 + 1, 29 + 1)
    assert Image.open(tmp_path / "a" / "interpolation.gif").n_frames == 8  # 5 there, 3 back
    assert sample.main([str(run_dir), "--num", "1", "--seed", "4", "--quiet", "--out", str(tmp_path / "c")]) == 0
    other = np.asarray(Image.open(tmp_path / "c" / "000000.png"))
    assert not np.array_equal(other, np.asarray(Image.open(tmp_path / "a" / "000000.png")))


def test_slerp_keeps_the_ends_and_the_scale():
    a, b = np.array([3.0, 0.0]), np.array([0.0, 3.0])
    path = sample.slerp(a, b, 5)
    np.testing.assert_allclose(path[0], a) and np.testing.assert_allclose(path[-1], b)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 3.0)


def test_what_cannot_be_sampled_is_named(finished_run, tmp_path, caplog):
    run_dir, _ = finished_run
    cases = [
        ([str(tmp_path)], "not a run directory with checkpoints/"),
        ([str(run_dir), "--truncation", "0.7"], "--truncation: model=dcgan has no truncation trick"),
        ([str(run_dir), "--classes", "1,2"], "--classes: the model is unconditional"),
        ([str(run_dir), "--replica", "3"], "--replica 3: the run has 1 replica(s), 0 to 0"),
        ([str(run_dir), "--checkpoint", "5"], "--checkpoint 5: "),
    ]
    for argv, message in cases:
        caplog.clear()
        assert sample.main([*argv, "--out", str(tmp_path / "out"), "--quiet"]) != 0
        assert message in caplog.text, argv
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit):
        sample.main([str(run_dir), "--out", str(tmp_path / "x.npz"), "--grid"])  # PNG outputs need a directory


def test_nvidias_state_dict_samples_as_their_generator_does(tmp_path, caplog):
    """gan-sample --nvidia: NVIDIA's G (a state dict made with their code) samples latents
    from key(seed) with the noise constant, as load_nvidia's network gives them."""
    import jax
    from test_stylegan2 import FIXTURES, fixture

    from gan_jax import step
    from gan_jax.models import stylegan2

    _, arch = fixture("g_cond")
    given = ",".join(f"{k}={v}" for k, v in arch.items())
    out = tmp_path / "nv.npz"
    argv = ["--nvidia", str(FIXTURES / "g_cond.pt"), "--arch", given, "--num", "6", "--seed", "3", "--quiet"]
    assert sample.main([*argv, "--out", str(out), "--classes", "2,5"]) == 0
    written = np.load(out)
    network = stylegan2.load_nvidia(FIXTURES / "g_cond.pt", "G", **arch)
    z = step.sample_batch(lambda key: jax.random.normal(key, (arch["z_dim"],)), jax.random.key(3), 0, 6)
    expected = network(z, np.array([2, 5] * 3), truncation_psi=1.0, noise_mode="const")
    np.testing.assert_array_equal(written["labels"], [2, 5, 2, 5, 2, 5])
    np.testing.assert_allclose(written["samples"], np.asarray(expected), atol=1e-5)
    for bad, message in (
        (["--nvidia", str(tmp_path / "none.pt")], "no such file"),
        (["--nvidia", str(FIXTURES / "g_cond.pt"), "--arch", "w_dim=7"], "--nvidia"),
        (["--nvidia", str(FIXTURES / "g_cond.pt"), "--arch", given.replace("z_dim", "zdim")], "unknown architecture"),
    ):
        caplog.clear()
        assert sample.main([*bad, "--out", str(tmp_path / "bad"), "--quiet"]) != 0
        assert message in caplog.text, bad
    with pytest.raises(SystemExit):
        sample.main(["--arch", "z_dim=4", "--out", str(tmp_path / "bad")])  # --arch without --nvidia
