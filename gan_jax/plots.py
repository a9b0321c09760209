"""The figures people look at: Goodfellow et al.'s Figure 1, D's outputs, the evaluation
curves, samples."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from gan_jax import rundir  # noqa: E402
from gan_jax.evaluators import Evaluation  # noqa: E402


def goodfellow_figure1(snapshots: Sequence[Evaluation], path: Path) -> Path:
    """p_data (black dots), p_g (green), D(x) (blue dashes) and D*(x) (grey) per snapshot."""
    fig, axes = plt.subplots(1, len(snapshots), figsize=(3.4 * len(snapshots), 3.0), sharey=True)
    curves = [s.curves for s in snapshots if s.curves is not None]  # the 1-D evaluator's
    low = min(c["grid"][0] for c in curves)
    high = max(c["grid"][-1] for c in curves)
    peak = max(max(c["p_data"].max(), c["p_g"].max()) for c in curves)
    for ax, snap, c, letter in zip(np.atleast_1d(axes), snapshots, curves, "abcdefgh", strict=False):
        ax.plot(c["grid"], c["p_data"] / peak, "k:", lw=2, label="p_data (scaled)")
        ax.plot(c["grid"], c["p_g"] / peak, "g-", lw=1.5, label="p_g (scaled)")
        ax.plot(c["grid"], c["d_x"], "b--", lw=1.5, label="D(x)")
        ax.plot(c["grid"], c["d_star"], color="0.6", lw=1, label="D*(x)")
        ax.axhline(0.5, color="r", lw=0.5, alpha=0.5)
        ax.set_xlim(low, high)
        ax.set_ylim(-0.02, 1.05)
        ax.set_title(f"({letter}) step {snap.step}, JSD {snap.scalars['jsd']:.3f}", fontsize=9)
        ax.set_xlabel("x")
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return _save(fig, path)


def discriminator_outputs(rows: list[dict], path: Path) -> Path:
    """d_real and d_fake against step, with the equilibrium value 0.5; losses below."""
    train_rows = [r for r in rows if r.get("d_real") is not None]
    steps = [r["step"] for r in train_rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True)
    top.plot(steps, [r["d_real"] for r in train_rows], label="D(x) on real")
    top.plot(steps, [r["d_fake"] for r in train_rows], label="D(G(z)) on generated")
    top.axhline(0.5, color="k", ls="--", lw=1, label="equilibrium 0.5")
    top.set_ylim(0, 1)
    top.set_ylabel("mean sigmoid(D)")
    top.legend(fontsize=8)
    bottom.plot(steps, [r["d_loss"] for r in train_rows], label="d_loss")
    bottom.plot(steps, [r["g_loss"] for r in train_rows], label="g_loss")
    bottom.set_xlabel("step")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def evaluation_curves(rows: list[dict], directions: dict[str, str], path: Path) -> Path | None:
    """Each ranked evaluation key (FID, KID, modes captured, ...) against step, one panel
    each, titled with which way is better; None when no row has one."""
    keys = [k for k, way in directions.items() if way != "none" and any(r.get(k) is not None for r in rows)]
    if not keys:
        return None
    columns = min(len(keys), 3)
    lines = -(-len(keys) // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(3.6 * columns, 2.8 * lines), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        ax.plot(*zip(*points, strict=True), "o-", ms=3)
        ax.set_title(f"{key} ({'lower' if directions[key] == 'min' else 'higher'} is better)", fontsize=9)
        ax.set_xlabel("step", fontsize=8)
    for ax in axes.flat[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)


def member_values(member_rows: Sequence[list[dict]], keys: Sequence[str], lineage: Sequence[dict], path: Path) -> Path:
    """A hyper-parameter population's values over training, a panel per varied key, a line
    per member (its rows' population/<key>); PBT's exploit steps as grey lines (a copied
    member's line jumps there to its source's values, explored)."""
    fig, axes = plt.subplots(len(keys), 1, figsize=(7.0, 2.4 * len(keys)), sharex=True, squeeze=False)
    colours = plt.get_cmap("tab20")
    for ax, key in zip(axes[:, 0], keys, strict=True):
        column = f"population/{key}"
        categories: list = []
        for index, rows in enumerate(member_rows):
            points = [(r["step"], r[column]) for r in rows if column in r]
            if not points:
                continue
            steps, values = zip(*points, strict=True)
            if isinstance(values[0], str):  # loss.name: one level per loss
                categories += [v for v in values if v not in categories]
                values = tuple(categories.index(v) for v in values)
            # a row's value is the one its steps trained with: a copy at an exploit step shows from that step on
            ax.plot(steps, values, color=colours(index % 20), lw=1.2, label=f"member {index}", drawstyle="steps-pre")
        for event in lineage:
            ax.axvline(event["step"], color="0.85", lw=0.6, zorder=0)
        if categories:
            ax.set_yticks(range(len(categories)), categories)
        elif all(v > 0 for rows in member_rows for r in rows if isinstance(v := r.get(column), float)):
            ax.set_yscale("log")
        ax.set_ylabel(key, fontsize=8)
    axes[0, 0].set_title(
        f"{len(member_rows)} members" + (f", {len(lineage)} PBT copies (grey lines: exploit steps)" if lineage else ""),
        fontsize=9,
    )
    axes[-1, 0].set_xlabel("step")
    if len(member_rows) <= 16:
        axes[0, 0].legend(fontsize=6, ncol=4, loc="best")
    fig.tight_layout()
    return _save(fig, path)


def samples(real: np.ndarray, fake: np.ndarray, path: Path) -> Path:
    """Histogram (1-D) or scatter (2-D) of generated against real samples; images: a grid
    of generated images (left) beside real ones (right)."""
    if fake.ndim == 4:
        return sample_grid(np.concatenate([_grid(fake[:64]), _grid(real[:64])], axis=1), path)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    if real.shape[1] == 1:
        bins = np.histogram_bin_edges(np.concatenate([real[:, 0], fake[:, 0]]), bins=80).tolist()
        ax.hist(real[:, 0], bins=bins, density=True, alpha=0.5, label="real")
        ax.hist(fake[:, 0], bins=bins, density=True, alpha=0.5, label="generated")
    else:
        ax.scatter(real[:, 0], real[:, 1], s=2, alpha=0.4, label="real")
        ax.scatter(fake[:, 0], fake[:, 1], s=2, alpha=0.4, label="generated")
        ax.set_aspect("equal")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def sample_grid(images: np.ndarray, path: Path) -> Path:
    """Images in [-1, 1], [N, H, W, C] (tiled 8 wide) or one tiled [H, W, C], as a PNG."""
    image = grid_image(images)
    rundir.write_atomic(path, lambda handle: image.save(handle, format="PNG"))
    return path


def grid_image(images: np.ndarray, columns: int = 8) -> Image.Image:
    """Images in [-1, 1], [N, H, W, C] (tiled `columns` wide) or one tiled [H, W, C], as a PIL image."""
    pixels = to_uint8(_grid(images, columns) if images.ndim == 4 else images)
    return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] -> uint8 pixels, rounded (the grids, gan-sample's PNGs and npz)."""
    return np.round((np.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def _grid(images: np.ndarray, columns: int = 8, border: int = 1) -> np.ndarray:
    """[N, H, W, C] -> [rows * (H + border), columns * (W + border), C], with a white border."""
    count, height, width, channels = images.shape
    rows = -(-count // columns)
    canvas = np.ones((rows * (height + border) + border, columns * (width + border) + border, channels), images.dtype)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        top, left = border + row * (height + border), border + column * (width + border)
        canvas[top : top + height, left : left + width] = image
    return canvas


def _save(fig, path: Path) -> Path:
    try:
        rundir.write_atomic(path, lambda handle: fig.savefig(handle, format=path.suffix.lstrip(".") or "png", dpi=110))
    finally:
        plt.close(fig)
    return path
