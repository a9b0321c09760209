"""The default experiment reaches Goodfellow's equilibrium for every seed.

The hard case: on N(-2, 1.3^2), seeds 7..10 of the unregularised generator ended with
std ratios 1.20, 0.87, 0.78, 0.90 while D sat at 1/2. The default (samples from an EMA
of G) must put every one of them within 10% of p_data, with D at 1/2. The four seeds
train as one population (experiments/goodfellow2014_fig1 measures 20 seeds x 4 targets).
"""

from __future__ import annotations

from conftest import compose_config

from gan_jax import loop

MEAN, STD, SEEDS = -2.0, 1.3, (7, 8, 9, 10)


def test_default_experiment_converges_for_every_seed(tmp_path):
    cfg = compose_config(
        [
            "logger=none",
            "train.progress_bar=false",
            f"dataset.mean={MEAN}",
            f"dataset.std={STD}",
            f"seed={SEEDS[0]}",
            f"train.num_seeds={len(SEEDS)}",
            "eval.every=4000",
            "train.checkpoint_every=4000",
            "train.sample_every=4000",
        ]
    )
    assert cfg.train.ema_decay is not None and not cfg.penalty  # what the default is
    summary = loop.run(cfg, tmp_path)
    assert summary["status"] == "finished" and summary["seeds"] == list(SEEDS)
    for replica in summary["replicas"]:
        seed, final = replica["seed"], replica["eval"]
        assert final["step"] == cfg.train.steps
        assert abs(final["sample_mean"] - MEAN) <= 0.1 * STD, (seed, final)
        assert 0.9 <= final["sample_std"] / STD <= 1.1, (seed, final)
        assert abs(replica["d_real_last_tenth"] - 0.5) <= 0.05, (seed, replica)
        assert abs(replica["d_fake_last_tenth"] - 0.5) <= 0.05, (seed, replica)
        assert final["jsd"] < 0.01, (seed, final)
