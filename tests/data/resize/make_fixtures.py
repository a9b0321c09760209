"""Makes clean_fid_resize.npz: clean-fid's own resizers on random uint8 images (run once).

    pip install clean-fid torch pillow numpy    # in an environment of its own
    python tests/data/resize/make_fixtures.py

The inputs are rebuilt by the test from the same seeds (`inputs`), so only the outputs
are stored: for each case, clean-fid's make_resizer("PIL", False, filter, (size, size)) (its
"clean" mode is filter bicubic) and make_resizer("PyTorch", False, "bilinear", ...) (its
"legacy_pytorch").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from cleanfid.resize import make_resizer

CASES = {"up": ((20, 30), 48), "down": ((64, 64), 28), "odd": ((33, 47), 40)}  # (H, W) -> size
FILTERS = ("bicubic", "bilinear", "nearest", "lanczos", "box")


def inputs(case: str) -> np.ndarray:
    (height, width), _ = CASES[case]
    seed = sum(map(ord, case))
    return np.random.default_rng(seed).integers(0, 256, (1, height, width, 3)).astype(np.uint8)


def main() -> None:
    arrays = {}
    for case, (_, size) in CASES.items():
        images = inputs(case)
        for name in FILTERS:
            resizer = make_resizer("PIL", False, name, (size, size))
            arrays[f"{case}/{name}"] = np.stack([resizer(image) for image in images]).astype(np.float32)
        legacy = make_resizer("PyTorch", False, "bilinear", (size, size))
        arrays[f"{case}/legacy_pytorch"] = np.stack([legacy(image) for image in images]).astype(np.float32)
    out = Path(__file__).with_name("clean_fid_resize.npz")
    np.savez_compressed(out, **arrays)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
