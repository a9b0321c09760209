"""Dirac-GAN (Mescheder et al. 2018): the reproduction script and its claims."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT

METHOD_KEYS = {"minimax", "non_saturating", "wgan", "wgan_gp", "non_saturating+r1", "non_saturating+r2"}


@pytest.mark.slow  # `make test`'s budget on 2 cores; `make test-all` runs it
def test_reproduction_shows_which_methods_converge(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "experiments/mescheder2018_dirac/reproduce.py"),
            "--out",
            str(tmp_path),
            "--steps",
            "3000",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert set(results) == METHOD_KEYS
    for method, r in results.items():
        assert {"initial_distance", "final_distance", "converged"} <= set(r), method
        assert abs(r["initial_distance"] - 2**0.5) < 1e-6
    # Unregularised: simultaneous steps spiral out, alternating ones circle.
    assert results["minimax"]["simultaneous"]["final_distance"] > 2.0
    assert abs(results["minimax"]["alternating"]["final_distance"] - 2**0.5) < 0.1
    for method in ("minimax", "non_saturating", "wgan", "wgan_gp"):
        for update in ("simultaneous", "alternating"):
            assert not results[method][update]["converged"], (method, update)
    for method in ("non_saturating+r1", "non_saturating+r2"):
        for update in ("simultaneous", "alternating"):
            assert results[method][update]["converged"], (method, update)
            assert results[method][update]["final_distance"] < 1e-3
    assert (tmp_path / "dirac_gan.png").stat().st_size > 50_000
