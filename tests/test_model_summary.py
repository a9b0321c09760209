"""gan-summary: the composed config's networks from the config alone, its last line against
the authors' own parameter counts (R3GAN's CIFAR-10 preset, tests/data/r3gan), and the same
counts in every run's summary.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import TINY, compose_config

from gan_jax import loop, model_summary

R3GAN_PRESET = json.loads((Path(__file__).parent / "data" / "r3gan" / "cifar10_preset.json").read_text())


@pytest.mark.parametrize(
    "overrides, theirs",
    [
        (["experiment=huang2024_r3gan_cifar10"], "uncond"),
        (["experiment=huang2024_r3gan_cifar10", "model.conditioning=projection"], "cond"),
    ],
)
def test_the_r3gan_preset_has_the_authors_parameter_counts(overrides, theirs, capsys):
    """Their train.py --preset CIFAR10 (G 20,732,160 / D 20,683,776 unconditional), from the
    config alone: CIFAR-10 is not on this machine, and no weight is computed."""
    assert model_summary.main(overrides) == 0
    lines = capsys.readouterr().out.splitlines()
    generator, discriminator = R3GAN_PRESET[f"G_{theirs}"]["count"], R3GAN_PRESET[f"D_{theirs}"]["count"]
    assert lines[-1] == f"generator {generator} parameters, discriminator {discriminator} parameters"
    d_table = lines[lines.index("") + 1 : lines.index("", lines.index("") + 1)]
    assert d_table[-1].split()[:2] == ["total", f"{discriminator:,}"]
    rows = {line.split()[0]: line.split()[1] for line in d_table[1:-1]}
    assert rows["stage0_layer0/conv2"] == "221,184"  # 3x3 grouped: 3 * 3 * (1536 / 96) * 1536
    assert sum(int(n.replace(",", "")) for n in rows.values()) == discriminator


def test_depth_zero_lists_every_parameter(capsys):
    assert model_summary.main(["experiment=goodfellow2014_fig1", "--depth", "0"]) == 0
    out = capsys.readouterr().out.splitlines()
    generator = out[1 : out.index("") - 1]
    assert all(len(row.split()) == 3 for row in generator)  # module, count, one shape each
    assert out[-1].startswith("generator ") and out[-1].endswith(" parameters")


def test_summary_json_records_the_counts_gan_summary_prints(tmp_path, capsys):
    overrides = ["experiment=none", "dataset=ring_2d", *TINY, "train.steps=5", "eval.every=5"]
    outputs = loop.run(compose_config(overrides), tmp_path / "run")
    assert model_summary.main(overrides) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    recorded = json.loads((tmp_path / "run" / "summary.json").read_text())["parameters"]
    assert outputs["parameters"] == recorded
    assert last == f"generator {recorded['generator']} parameters, discriminator {recorded['discriminator']} parameters"


def test_a_negative_depth_is_refused(capsys):
    with pytest.raises(SystemExit):
        model_summary.main(["experiment=none", "--depth", "-1"])
    assert "--depth -1: must be 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model=foo"], "model=foo: valid values are"),
        (["experiment=fashion_mnist_dcgan", "dataset=tfds", "dataset.tfds_name=svhn_cropped"], "channels are known"),
        (["experiment=none", "model=dcgan", "+model.generator.depth=3"], "model.generator.depth: not a key of"),
        (["experiment=huang2024_r3gan_cifar10", "model.width_per_stage=[8,8]"], "model.width_per_stage=\\[8, 8\\]"),
    ],
)
def test_bad_input_is_named(overrides, message, capsys):
    assert model_summary.main(overrides) == 2
    assert re.search(message, capsys.readouterr().err)
