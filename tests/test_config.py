"""Config composition and validation: every bad value fails at start, naming the key."""

from __future__ import annotations

import pytest
from conftest import compose_config, gan_train
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf.errors import ConfigKeyError, ValidationError

from gan_jax.config import ConfigError, validate


def test_default_config_is_goodfellow_fig1_and_valid():
    cfg = compose_config([])
    validate(cfg, num_devices=1)
    assert cfg.dataset.name == "gaussian_1d"
    assert (cfg.dataset.mean, cfg.dataset.std) == (4.0, 0.5)
    assert cfg.loss.name == "non_saturating"
    assert cfg.model.latent_dim == 1
    assert cfg.eval.num_samples is None and cfg.eval.every == 500


@pytest.mark.parametrize(
    "dataset, values",
    [
        ("gaussian_1d", {"mean": 4.0, "std": 0.5}),
        ("ring_2d", {"num_modes": 8, "radius": 1.0, "std": 0.01}),
        ("grid_2d", {"num_modes_per_side": 5, "spacing": 2.0, "std": 0.05}),
    ],
)
def test_dataset_defaults_follow_the_papers(dataset, values):
    cfg = compose_config([f"dataset={dataset}"])
    assert cfg.dataset.name == dataset
    assert {k: cfg.dataset[k] for k in values} == values


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.batch_size=-4", "train.batch_size=-4: must be an integer >= 1"),
        ("train.steps=0", "train.steps=0: must be an integer >= 1"),
        ("train.d_steps=0", "train.d_steps=0"),
        ("dataset.std=0", "dataset.std=0.0: must be a number > 0"),
        ("dataset.std=-1", "dataset.std=-1.0: must be a number > 0"),
        ("optim.lr=0", "optim.lr=0.0: must be a number > 0"),
        ("optim.b1=1.5", "optim.b1=1.5: must be a number in [0.0, 1.0)"),
        ("loss.name=wasserstein", "loss.name='wasserstein': valid values are minimax, non_saturating"),
        ("model.latent_dist=cauchy", "model.latent_dist='cauchy': valid values are normal, uniform"),
        ("model.generator.activation=swishy", "model.generator.activation='swishy': valid values are relu"),
        ("optim.lr=inf", "optim.lr=inf: must be a finite number"),
        ("dataset.mean=nan", "dataset.mean=nan: must be a finite number"),
        ("dataset=ring_2d dataset.radius=1e39", "dataset.radius=1e+39: must be a finite number (at most 3.4e+38"),
        ("+dataset.radius=1", "dataset.radius: not a key of dataset; valid keys are name, mean, std"),
        ("+train.stepz=10", "train.stepz: not a key of train; valid keys are steps, batch_size"),
        ("+foo=1", "foo: not a key of the config; valid keys are seed, objective, train"),
        ("seed=100000000000000000000000", "seed=100000000000000000000000: must be an integer in [0, 2147483647]"),
        ("seed=-1", "seed=-1: must be an integer in [0, 2147483647]"),
    ],
)
def test_out_of_range_values_name_key_and_valid_values(override, message):
    cfg = compose_config(override.split())
    with pytest.raises(ConfigError, match=None) as error:
        validate(cfg, num_devices=1)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "dataset, override",
    [
        ("ring_2d", "dataset.std=0"),
        ("grid_2d", "dataset.spacing=-2"),
        ("ring_2d", "dataset.num_modes=0"),
    ],
)
def test_each_dataset_checks_its_own_fields(dataset, override):
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        validate(compose_config([f"dataset={dataset}", override]), num_devices=1)


def test_all_errors_are_reported_at_once():
    cfg = compose_config(["train.batch_size=0", "dataset.std=0"])
    with pytest.raises(ConfigError) as error:
        validate(cfg, num_devices=1)
    assert "train.batch_size" in str(error.value) and "dataset.std" in str(error.value)


def test_batch_must_divide_over_devices():
    cfg = compose_config(["train.batch_size=10"])
    validate(cfg, num_devices=2)
    with pytest.raises(ConfigError, match=r"train.batch_size=10: must be divisible by the number of devices \(3\)"):
        validate(cfg, num_devices=3)


def test_unknown_group_option_lists_the_options():
    with pytest.raises(MissingConfigException) as error:
        compose_config(["loss=wasserstein"])
    assert "loss/wasserstein" in str(error.value)
    assert "minimax" in str(error.value) and "non_saturating" in str(error.value)


def test_unknown_key_is_rejected():
    with pytest.raises(ConfigCompositionException) as error:
        compose_config(["dataset.meen=3"])
    assert "meen" in str(error.value.__cause__ or error.value)


def test_key_of_another_dataset_is_rejected():
    with pytest.raises(ConfigCompositionException):
        compose_config(["dataset=ring_2d", "dataset.mean=3"])


def test_wrong_type_is_rejected():
    with pytest.raises(ConfigCompositionException) as error:
        compose_config(["train.steps=many"])
    assert isinstance(error.value.__cause__, (ValidationError, ConfigKeyError))


def test_cli_bad_override_exits_nonzero_with_the_message(tmp_path):
    result = gan_train(["train.batch_size=-4", "dataset.std=0", f"hydra.run.dir={tmp_path}"], timeout=120)
    assert result.returncode == 2
    assert "train.batch_size=-4: must be an integer >= 1" in result.stderr + result.stdout
    assert "dataset.std=0.0: must be a number > 0" in result.stderr + result.stdout
    assert not (tmp_path / "metrics.jsonl").exists()


def test_cli_unknown_options_and_renamed_keys_exit_2_saying_what_to_write(tmp_path):
    result = gan_train(
        ["loss=wasserstein", "penalty=lecma", "train.eval_every=5", "penalty.weight=3", f"hydra.run.dir={tmp_path}"],
        timeout=120,
    )
    assert result.returncode == 2
    for message in (
        "loss=wasserstein: valid values are hinge, lsgan, minimax, non_saturating, relativistic, rpgan, wgan",
        "penalty=lecma: valid values are ",
        "train.eval_every: renamed; spell it eval.every",
        "penalty.weight: renamed; spell it penalty.<name>.weight",
    ):
        assert message in result.stderr, result.stderr[-2000:]
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_overrides_list_regularisers_once_and_options_of_known_groups():
    from gan_jax.config import CONFIG_DIR
    from gan_jax.overrides import errors

    assert errors(["penalty=[r1,lecam]", "loss=hinge", "-m", "seed=0,1"], CONFIG_DIR) == []
    assert errors(["penalty=[r1,r1]"], CONFIG_DIR) == ["penalty=[r1,r1]: r1 listed twice; give each once"]
    assert errors(["loss=[hinge,lsgan]"], CONFIG_DIR) == ["loss=[hinge,lsgan]: one option only (a list is for penalty)"]
    assert errors(["-m", "loss=hinge,lsgn"], CONFIG_DIR)[0].startswith("loss=lsgn: valid values are")
    assert errors(["hydra/launcher=submitit_local", "optim.lr=tag(log, interval(1e-5, 1e-2))"], CONFIG_DIR) == []
    protocols = "clean_fid, pytorch_fid, studiogan, stylegan2_ada"
    assert errors(["eval/protocol=fid50k"], CONFIG_DIR) == [f"eval/protocol=fid50k: valid values are {protocols}"]
    assert errors(["eval.protocol=clean_fid"], CONFIG_DIR)[0].startswith(
        f"eval.protocol: set by choosing eval/protocol=<name> ({protocols})"
    )
    assert errors(["-m", "eval/protocol=clean_fid,stylegan2_ada"], CONFIG_DIR) == []


def test_objective_must_be_a_summary_key(tmp_path, tiny):
    from gan_jax import loop

    with pytest.raises(ConfigError) as error:
        loop.run(compose_config(tiny + ["dataset=ring_2d", "objective=eval.jsd"]), tmp_path)
    assert "objective='eval.jsd': not a key of this run's summary.json" in str(error.value)
    assert "eval.modes_captured" in str(error.value) and "final.d_loss" in str(error.value)
    assert not (tmp_path / "metrics.jsonl").exists()


def test_objective_value_reads_summaries_and_population_means():
    from gan_jax.summary import value as objective_value

    assert objective_value({"eval": {"jsd": 0.25}}, "eval.jsd") == 0.25
    population = {"replicas": [{"eval": {"modes_captured": 7}}, {"eval": {"modes_captured": 8}}]}
    assert objective_value(population, "eval.modes_captured") == 7.5


def test_a_regulariser_set_by_the_experiment_but_not_chosen_says_so():
    with pytest.raises(
        ConfigError, match=r"penalty.wgan_gp: set \(by the experiment, say\) but penalty=wgan_gp is not"
    ):
        validate(compose_config(["experiment=gulrajani2017_wgan_gp", "penalty=none"]), num_devices=1)
