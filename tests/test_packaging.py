"""`pip install .` (not editable) gives a working gan-train: the configs ship inside the package."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from conftest import ROOT


def test_the_wheel_holds_every_module_and_config_and_gan_train_runs_from_it(tmp_path):
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("gan_jax-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "gan_jax").rglob("*.py")}
    configs = {"gan_jax/conf/" + p.relative_to(ROOT / "conf").as_posix() for p in (ROOT / "conf").rglob("*.yaml")}
    weights = {p.relative_to(ROOT).as_posix() for p in (ROOT / "gan_jax" / "metrics" / "weights").iterdir()}
    assert modules - names == set() and configs - names == set() and weights - names == set()

    site = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    # Outside the checkout, with the installed copy first on the path.
    composed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.argv = ['gan-train', 'experiment=fashion_mnist_dcgan', "
            "'--cfg', 'job']; import gan_jax, gan_jax.train as t; print('FROM', gan_jax.__file__); t.main()",
        ],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert composed.returncode == 0, composed.stderr[-3000:]
    assert f"FROM {site}" in composed.stdout
    assert "name: dcgan" in composed.stdout and "tfds_name: fashion_mnist" in composed.stdout
