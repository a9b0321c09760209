"""Evaluation in training and after: the selected metrics, FID on the classifier's features
against cached reference statistics, provenance, train.keep_best and gan-eval."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY, TINY_DCGAN, compose_config, metrics_rows
from omegaconf import OmegaConf

from gan_jax import evaluators, loop, score, step
from gan_jax.config import ConfigError
from gan_jax.errors import TrainingDiverged
from gan_jax.evaluate import StateEvaluator
from gan_jax.metrics import feature_space
from gan_jax.parts import build as build_parts

IMAGE_METRICS = ["fid", "kid", "precision", "recall", "density", "coverage", "inception_score"]


@pytest.fixture(scope="module")
def dcgan_run(fashion_mnist_dir, tmp_path_factory):
    """A tiny DCGAN run evaluated at steps 3 and 6 on the classifier's features, keeping its best FID."""
    run_dir = tmp_path_factory.mktemp("dcgan_eval")
    overrides = TINY_DCGAN + [
        f"dataset.data_dir={fashion_mnist_dir}",
        "eval.num_samples=64",
        "train.keep_best=eval.fid",
    ]
    return run_dir, loop.run(compose_config(overrides), run_dir)


def test_image_run_logs_every_metric_with_its_provenance(dcgan_run):
    run_dir, summary = dcgan_run
    evaluated = [r for r in metrics_rows(run_dir) if "fid" in r]
    assert [r["step"] for r in evaluated] == [3, 6]
    for row in evaluated:
        assert all(np.isfinite(row[k]) for k in IMAGE_METRICS), row
    assert summary["eval"]["fid"] == evaluated[-1]["fid"] > 0
    provenance = summary["eval_provenance"]
    assert provenance["features"] == "fashion_mnist_classifier"
    assert provenance["weights_sha256"] and provenance["resizer"].startswith("none")
    # the tests' Fashion-MNIST has 128 test images; 64 samples are fewer than the 128 feature dimensions
    assert provenance["reference"] == {**provenance["reference"], "split": "test", "num_real": 128}
    assert provenance["num_fake"] == 64
    assert any("feature dimension 128" in note for note in provenance["notes"])
    assert (run_dir / "evaluation.png").stat().st_size > 0  # the curves of every ranked key


def test_keep_best_keeps_the_best_evaluation(dcgan_run):
    run_dir, summary = dcgan_run
    fids = {r["step"]: r["fid"] for r in metrics_rows(run_dir) if "fid" in r}
    best_step = min(fids, key=fids.get)
    assert summary["best"] == {"key": "eval.fid", "value": fids[best_step], "step": best_step}
    assert [p.name for p in (run_dir / "best").iterdir() if p.name.isdigit()] == [str(best_step)]


RUNS_OWN = "custom:fashion_mnist_classifier:resize=network:q1:testx128"  # the run's protocol, in eval.json keys


def test_gan_eval_reproduces_the_value_logged_in_training(dcgan_run, capsys):
    run_dir, summary = dcgan_run
    assert score.main([str(run_dir)]) == 0
    scored = json.loads((run_dir / "eval.json").read_text())[f"latest@6/n64/{RUNS_OWN}"]["replicas"][0]
    assert scored["fid"] == summary["eval"]["fid"] and scored["kid"] == summary["eval"]["kid"]
    printed = capsys.readouterr().out
    assert printed.startswith("protocol custom: fashion_mnist_classifier features, resize network, quantize True")
    assert f"| {run_dir.name} seed 0 step 6 |" in printed
    assert score.main([str(run_dir), "--checkpoint", "best", "--metrics", "fid"]) == 0
    entries = json.loads((run_dir / "eval.json").read_text())
    best = f"best@{summary['best']['step']}/n64/{RUNS_OWN}"
    assert set(entries) == {f"latest@6/n64/{RUNS_OWN}", best}  # the first entry is kept
    assert entries[best]["replicas"][0]["fid"] == summary["best"]["value"]


def test_gan_eval_under_another_protocol_keeps_the_earlier_entries_and_references(dcgan_run, tmp_path, capsys):
    """clean-fid's protocol on the run: the whole train split as reference, PIL bicubic; a new
    eval.json entry beside the run's own, and reference features cached apart."""
    run_dir, summary = dcgan_run
    own = ["--metrics", "fid"]
    assert score.main([str(run_dir), *own]) == 0
    before = json.loads((run_dir / "eval.json").read_text())
    assert score.main([str(run_dir), *own, "--protocol", "clean_fid", "--num-samples", "64"]) == 0
    printed = capsys.readouterr().out
    assert (
        "protocol clean_fid: fashion_mnist_classifier features, resize clean, quantize True, 64 generated vs "
        "512 of fashion_mnist's train split" in printed
    )
    entries = json.loads((run_dir / "eval.json").read_text())
    clean = "latest@6/n64/clean_fid:fashion_mnist_classifier:resize=clean:q1:trainx512"
    assert set(entries) == set(before) | {clean} and all(entries[k] == before[k] for k in before)
    provenance = entries[clean]["provenance"]
    assert provenance["protocol"] == "clean_fid" and provenance["resizer"].startswith("PIL bicubic on float32")
    assert entries[clean]["replicas"][0]["fid"] != summary["eval"]["fid"]  # another reference set
    assert score.main([str(run_dir), "--protocol", "fid50k"]) == 2


def test_gan_eval_refuses_what_it_cannot_score(dcgan_run, tmp_path):
    run_dir, _ = dcgan_run
    assert score.main([str(tmp_path)]) == 1  # no checkpoints
    assert score.main([str(run_dir), "--checkpoint", "4"]) == 1  # no such step
    with pytest.raises(SystemExit):
        score.main([str(run_dir), "--checkpoint", "newest"])


def test_reference_features_are_computed_once(fashion_mnist_dir, tmp_path, monkeypatch):
    cfg = compose_config(TINY_DCGAN + [f"dataset.data_dir={fashion_mnist_dir}", f"eval.cache_dir={tmp_path}"])
    parts = build_parts(cfg)
    calls = []
    original = feature_space.feature_statistics
    monkeypatch.setattr(feature_space, "feature_statistics", lambda f: calls.append(len(f)) or original(f))
    first = StateEvaluator(parts, cfg.eval, cfg.dataset).features.reference
    second = StateEvaluator(parts, cfg.eval, cfg.dataset).features.reference
    assert calls == [128]  # computed for the first, read from the cache by the second
    np.testing.assert_array_equal(first.features, second.features)
    assert len(list((tmp_path / "reference").glob("*.npz"))) == 1
    cached = next((tmp_path / "reference").glob("*.npz"))
    cached.write_bytes(cached.read_bytes()[:1000])  # damaged outside gan_jax: computed again, with a warning
    again = StateEvaluator(parts, cfg.eval, cfg.dataset).features.reference
    assert calls == [128, 128]
    np.testing.assert_array_equal(first.features, again.features)
    # Another protocol's reference is cached apart: resize, quantisation, split and N are in the key.
    for change in ({"resize": "clean"}, {"quantize": False}, {"reference_num_samples": 100}):
        StateEvaluator(parts, OmegaConf.merge(cfg.eval, change), cfg.dataset)
    assert len(calls) == 5 and len(list((tmp_path / "reference").glob("*.npz"))) == 4


def test_image_metrics_on_toy_data_name_the_applicable_ones(tmp_path):
    cfg = compose_config(TINY + ["dataset=ring_2d", "eval.metrics=[modes,fid]"])
    with pytest.raises(ConfigError, match=r"'fid' does not apply to ring_2d; valid values for ring_2d are modes"):
        loop.run(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_an_unknown_metric_is_named_at_start(tmp_path):
    with pytest.raises(ConfigError, match=r"eval.metrics=\['fjd'\]: must be null or a list of metric names \(.*fid"):
        loop.run(compose_config(TINY + ["eval.metrics=[fjd]"]), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_keep_best_needs_a_ranked_evaluation_key(tmp_path):
    cfg = compose_config(TINY + ["dataset=ring_2d", "train.keep_best=eval.fid"])
    with pytest.raises(ConfigError, match=r"train.keep_best='eval.fid'.*valid values are eval.modes_captured"):
        loop.run(cfg, tmp_path)


def test_a_feature_network_that_does_not_take_the_images_is_refused():
    cfg = compose_config(["eval.features=fashion_mnist_classifier"])
    message = r"takes square grey images \(resized to 28x28\), and cifar10 gives 32x32x3; valid values.*inception"
    with pytest.raises(ConfigError, match=message):
        feature_space.choose_network("fashion_mnist_classifier", "cifar10", (32, 32, 3), cfg.eval)
    assert feature_space.choose_network("auto", "cifar10", (32, 32, 3), cfg.eval) is None  # no weights given


def test_nan_samples_stop_the_evaluation_with_a_message(fashion_mnist_dir):
    cfg = compose_config(TINY_DCGAN + [f"dataset.data_dir={fashion_mnist_dir}", "eval.num_samples=16"])
    parts = build_parts(cfg)
    state = step.init_state(parts, 0)
    broken = state.replace(generator_ema=jax.tree.map(lambda p: jnp.full_like(p, jnp.nan), state.generator_ema))
    with pytest.raises(TrainingDiverged, match=r"16 of 16 generated samples hold NaN or inf"):
        StateEvaluator(parts, cfg.eval, cfg.dataset)(broken)


def test_every_metric_declares_its_direction():
    assert evaluators.direction("eval.fid") == "min" and evaluators.direction("coverage") == "max"
    assert evaluators.direction("modes_captured") == "max" and evaluators.direction("jsd") == "min"
    assert evaluators.direction("not_a_metric") is None


def test_an_optuna_sweep_against_its_objectives_direction_fails_at_start(caplog):
    """The same callback as the sweep's (conf/config.yaml: hydra.callbacks.sweep_report)."""
    from omegaconf import OmegaConf

    from gan_jax.sweep import SweepReport

    def start(objective, direction):
        optuna = {"_target_": "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper", "direction": direction}
        SweepReport().on_multirun_start(OmegaConf.create({"objective": objective, "hydra": {"sweeper": optuna}}))

    with pytest.raises(SystemExit) as stopped:
        start("eval.modes_captured", "minimize")
    assert stopped.value.code == 2
    assert "hydra.sweeper.direction=minimize: objective=eval.modes_captured is better when higher" in caplog.text
    start("eval.modes_captured", "maximize")
    start("eval.fid", "minimize")
    start("d_real_last_tenth", "maximize")  # no declared direction: either is accepted


def test_inception_without_its_weights_file_stops_the_run_at_start(fashion_mnist_dir, tmp_path):
    cfg = compose_config(TINY_DCGAN + [f"dataset.data_dir={fashion_mnist_dir}", "eval.features=inception_v3"])
    with pytest.raises(ConfigError, match=r"pt_inception-2015-12-05-6726825d.pth \(sha256 starting 6726825d"):
        loop.run(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_dinov2_without_its_weights_file_stops_the_run_at_start(fashion_mnist_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("GAN_JAX_DINOV2_WEIGHTS", raising=False)
    cfg = compose_config(TINY_DCGAN + [f"dataset.data_dir={fashion_mnist_dir}", "eval.features=dinov2"])
    with pytest.raises(ConfigError, match=r"dinov2_vitl14_pretrain.pth"):
        loop.run(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_real_vs_real_prints_the_protocol_and_the_datas_floor(fashion_mnist_dir, capsys):
    given = [f"dataset.data_dir={fashion_mnist_dir}", "experiment=fashion_mnist_dcgan", "eval.reference_num_samples=64"]
    assert score.main(["--real-vs-real", *given, "--num-samples", "64", "--metrics", "fid", "kid"]) == 0
    printed = capsys.readouterr().out
    assert "protocol custom: fashion_mnist_classifier features" in printed and "64 real (train split) vs 64" in printed
    assert "| real (train) vs reference |" in printed


@pytest.mark.slow  # ViT-S/14 at 224x224 on the CPU
def test_real_vs_real_in_dinov2_space(fashion_mnist_dir, tmp_path, capsys):
    from gan_jax.metrics import dino
    from gan_jax.metrics.torch_format import save_state_dict

    weights = tmp_path / "dinov2_vits14_random.pth"
    save_state_dict(dino.random_state_dict("vits14", seed=0), weights)
    given = [
        f"dataset.data_dir={fashion_mnist_dir}",
        "experiment=fashion_mnist_dcgan",
        "eval.features=dinov2",
        "eval.dinov2_arch=vits14",
        f"eval.dinov2_weights={weights}",
        "eval.reference_num_samples=24",
        f"eval.cache_dir={tmp_path / 'cache'}",
    ]
    assert score.main(["--real-vs-real", *given, "--num-samples", "24", "--metrics", "fid", "kid"]) == 0
    printed = capsys.readouterr().out
    assert "dinov2 features" in printed and "24 real (train split) vs 24" in printed


def test_a_reference_split_the_dataset_lacks_is_named_at_start(fashion_mnist_dir, tmp_path):
    cfg = compose_config(TINY_DCGAN + [f"dataset.data_dir={fashion_mnist_dir}", "eval.reference_split=validation"])
    with pytest.raises(ConfigError, match=r"eval.reference_split=validation: .*train.*test"):
        loop.run(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()
