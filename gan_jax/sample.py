"""`gan-sample RUN_DIR`: images from a run's checkpoint, for looking at and for other packages.

    gan-sample outputs/runs/X --num 1000 --out samples/            # PNG files 000000.png, ...
    gan-sample outputs/runs/X --num 10000 --out samples.npz        # one npz: images (uint8) and samples
    gan-sample outputs/runs/X --grid --truncation 0.5,0.7,1.0 --interpolate 8 --out look/
    gan-sample outputs/runs/X --checkpoint best --classes 3,7 --seed 1 --raw
    gan-sample --nvidia G_ema.pt --arch img_resolution=32,c_dim=10,mapping_layers=2 --num 100 --out nv/

By default the latest intact checkpoint (`--checkpoint best` or a step), the first replica of a
population (`--replica`), and G's EMA when the run keeps one (`--raw`: the trained weights).
Without `--seed`, sample i is the run's own evaluation sample i (the same latent and class), so
gan-eval's number for the npz (`gan-eval RUN --samples FILE.npz`) is the run's; with
`--seed S`, latent i is drawn from key (S, i). `--classes` (conditional models) cycles through
the given classes (default: i mod classes, as evaluation). Any --num gives the same first
images: latent i depends only on i. A G with batch norm (DCGAN's normalises every batch over
itself) makes an image depend on the others of its batch too, so --batch-size defaults to the
run's eval.batch_size: the batches its evaluation drew.

Written under --out (a directory; or FILE.npz for the samples alone): the N samples as PNGs,
`grid.png` (the first 64), `truncation.png` (a row per psi on the same 8 latents, StyleGAN2's
truncation trick) and `interpolation.png` / `interpolation.gif` (K steps on the great circle
from latent 0 to latent 1). Every file is written whole (temp + rename).

`--nvidia G.pt` samples NVIDIA's StyleGAN2 generator from its state dict
(`torch.save(G_ema.state_dict(), "G.pt")` in their code), built from `--arch` (their
constructor arguments: gan_jax.models.stylegan2.NVIDIA_DEFAULTS names them and their
defaults), its noise inputs constant as in their generate.py.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from gan_jax import rundir
from gan_jax.errors import GanJaxError
from gan_jax.plots import to_uint8

log = logging.getLogger("gan_jax.sample")
GRID_SIZE = 64
TRUNCATION_COLUMNS = 8


class Sampler:
    """A generator as images in [-1, 1]: `__call__(first, count)` for samples first..first+count-1.

    Made from a run's checkpoint (`from_run`) or from NVIDIA's state dict (`from_nvidia`)."""

    def __init__(
        self,
        generator: Any,  # a Flax module: (variables, latents, labels=, truncation_psi=, ...) -> images
        variables: dict[str, Any],
        sample_latent: Any,  # key -> one latent
        latent_key: Any,
        num_classes: int,  # 0: unconditional
        classes: Any,
        eval_batch_size: int,
        model_name: str,
        at_step: int | None = None,
        call_options: dict[str, Any] | None = None,
    ):
        import jax

        if classes is not None and not num_classes:
            raise GanJaxError("--classes: the model is unconditional")
        self.classes = None if classes is None else np.asarray(classes, np.int32)
        if self.classes is not None and (self.classes.min() < 0 or self.classes.max() >= num_classes):
            raise GanJaxError(f"--classes: the model's classes are 0 to {num_classes - 1}")
        self.generator, self.variables, self.sample_latent = generator, variables, sample_latent
        self.latent_key, self.num_classes, self.at_step = latent_key, num_classes, at_step
        self.eval_batch_size, self.call_options = eval_batch_size, call_options or {}
        self.model_name = model_name
        self._apply = jax.jit(self._images, static_argnums=2)  # psi: a Python branch in the model

    @classmethod
    def from_run(cls, run_dir: Path, checkpoint: str, replica: int, raw: bool, seed: int | None, classes: Any):
        """The run's G (its EMA unless `raw`) at `checkpoint`; latents: the evaluation's, or key(seed)'s."""
        import jax

        from gan_jax import parallel, population, score, step

        restored = score.restore(run_dir, checkpoint)
        replicas = len(population.members(restored.cfg))
        if not 0 <= replica < replicas:
            raise GanJaxError(f"--replica {replica}: the run has {replicas} replica(s), 0 to {replicas - 1}")
        if replica in restored.diverged:
            living = [m for m in range(replicas) if m not in restored.diverged]
            raise GanJaxError(
                f"--replica {replica}: member {replica} diverged at step {restored.diverged[replica]} "
                f"(its parameters are not finite); members that did not: {living}"
            )
        state = parallel.replica(restored.state, replica)
        generator = state.generator if raw else step.sampling_generator(state)
        models = restored.parts.models
        return cls(
            models.generator,
            {"params": generator.params, **generator.model_state},
            models.sample_latent,
            jax.random.fold_in(state.rng, step.Stream.EVAL_LATENT) if seed is None else jax.random.key(seed),
            models.num_classes if models.conditional else 0,
            classes,
            restored.cfg.eval.batch_size,
            restored.cfg.model.name,
            restored.at_step,
            {"update_stats": False, "axis_name": None},
        )

    @classmethod
    def from_nvidia(cls, path: Path, arch: dict[str, Any], seed: int | None, classes: Any):
        """NVIDIA's StyleGAN2 G from `torch.save(G.state_dict())` (G_ema's for what NVIDIA samples),
        with its constructor arguments `arch`; latents z ~ N(0, I) from key(seed or 0), the noise
        inputs constant (NVIDIA's generate.py's default)."""
        import jax

        from gan_jax.models import stylegan2

        try:
            network = stylegan2.load_nvidia(path, "G", **arch)
        except (TypeError, ValueError, KeyError) as error:
            raise GanJaxError(f"--nvidia {path}: {error}") from None
        z_dim = network.module.z_dim
        return cls(
            network.module,
            network.variables,
            lambda key: jax.random.normal(key, (z_dim,)),
            jax.random.key(0 if seed is None else seed),
            network.module.c_dim,
            classes,
            eval_batch_size=64,
            model_name="NVIDIA's stylegan2",
            call_options={"noise_mode": "const"},
        )

    def latents(self, first: int, count: int) -> Any:
        from gan_jax import step

        return step.sample_batch(self.sample_latent, self.latent_key, first, count)

    def labels(self, first: int, count: int) -> np.ndarray | None:
        if not self.num_classes:
            return None
        index = first + np.arange(count)
        if self.classes is None:
            return (index % self.num_classes).astype(np.int32)
        return self.classes[index % len(self.classes)]

    def _images(self, latent: Any, labels: Any, truncation_psi: Any) -> Any:
        extra: dict[str, Any] = {} if labels is None else {"labels": labels}
        if truncation_psi is not None:
            extra["truncation_psi"] = truncation_psi
        return self.generator.apply(self.variables, latent, **self.call_options, **extra)

    def takes_truncation(self) -> bool:
        return "truncation_psi" in inspect.signature(type(self.generator).__call__).parameters

    def images(self, latent: Any, labels: Any, truncation_psi: float | None = None) -> np.ndarray:
        return np.asarray(self._apply(latent, labels, truncation_psi))

    def __call__(self, first: int, count: int) -> tuple[np.ndarray, np.ndarray | None]:
        labels = self.labels(first, count)
        return self.images(self.latents(first, count), labels), labels


def slerp(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """`steps` points from a to b on the great circle (Gaussian latents keep their norm's scale)."""
    t = np.linspace(0.0, 1.0, steps)[:, None]
    unit_a, unit_b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    omega = np.arccos(np.clip(np.dot(unit_a, unit_b), -1.0, 1.0))
    if omega < 1e-6:
        return (1 - t) * a + t * b
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def generate(sampler: Sampler, num: int, batch_size: int, progress: bool) -> tuple[np.ndarray, np.ndarray | None]:
    from tqdm.auto import tqdm

    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    with tqdm(total=num, unit="img", desc="samples", disable=not progress) as bar:
        for first in range(0, num, batch_size):
            batch, batch_labels = sampler(first, min(batch_size, num - first))
            images.append(batch)
            if batch_labels is not None:
                labels.append(batch_labels)
            bar.update(len(batch))
    return np.concatenate(images), np.concatenate(labels) if labels else None


def _save_png(image: np.ndarray, path: Path) -> None:
    from PIL import Image

    pixels = image[..., 0] if image.shape[-1] == 1 else image
    rundir.write_atomic(path, lambda handle: Image.fromarray(pixels).save(handle, format="PNG"))


def _grid_png(images: np.ndarray, path: Path, columns: int = 8) -> None:
    from gan_jax import plots

    rundir.write_atomic(path, lambda handle: plots.grid_image(images, columns).save(handle, format="PNG"))


def write_npz(path: Path, images: np.ndarray, labels: np.ndarray | None, meta: dict) -> None:
    arrays: dict[str, Any] = {"images": to_uint8(images), "samples": images.astype(np.float32)}
    arrays["meta"] = np.asarray(json.dumps(meta))
    if labels is not None:
        arrays["labels"] = labels
    rundir.write_atomic(path, lambda handle: np.savez(handle, **arrays))


def write_outputs(sampler: Sampler, args: argparse.Namespace, out: Path) -> list[Path]:
    batch_size = args.batch_size or sampler.eval_batch_size
    images, labels = generate(sampler, args.num, batch_size, progress=not args.quiet)
    meta: dict[str, Any] = {"seed": args.seed}
    if args.nvidia:
        latents = f"key({args.seed or 0}), fold_in(i)"
        meta |= {"nvidia_state_dict": str(args.nvidia), "arch": args.arch, "latents": latents}
    else:
        meta |= {
            "run": str(args.run_dir),
            "checkpoint_step": sampler.at_step,
            "replica": args.replica,
            "generator": "raw" if args.raw else "ema when kept",
            "latents": "the run's evaluation latents" if args.seed is None else f"key({args.seed}), fold_in(i)",
        }
    if out.suffix == ".npz":
        out.parent.mkdir(parents=True, exist_ok=True)
        write_npz(out, images, labels, meta)
        return [out]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for index, image in enumerate(to_uint8(images)):
        _save_png(image, out / f"{index:06d}.png")
    written.append(out)
    if args.grid:
        _grid_png(images[:GRID_SIZE], out / "grid.png")
        written.append(out / "grid.png")
    if args.truncation:
        written.append(_truncation_rows(sampler, args.truncation, out / "truncation.png"))
    if args.interpolate:
        written += _interpolation(sampler, args.interpolate, out)
    return written


def _truncation_rows(sampler: Sampler, psis: list[float], path: Path) -> Path:
    latent, labels = sampler.latents(0, TRUNCATION_COLUMNS), sampler.labels(0, TRUNCATION_COLUMNS)
    rows = np.concatenate([sampler.images(latent, labels, psi) for psi in psis])
    _grid_png(rows, path, columns=TRUNCATION_COLUMNS)
    return path


def _interpolation(sampler: Sampler, steps: int, out: Path) -> list[Path]:
    from PIL import Image

    ends = np.asarray(sampler.latents(0, 2))
    latent = slerp(ends[0], ends[1], steps).astype(np.float32)
    first_label = sampler.labels(0, 1)
    labels = None if first_label is None else np.repeat(first_label, steps)
    frames = sampler.images(latent, labels)
    _grid_png(frames, out / "interpolation.png", columns=steps)
    pixels = [Image.fromarray(f[..., 0] if f.shape[-1] == 1 else f) for f in to_uint8(frames)]
    back_and_forth = pixels + pixels[-2:0:-1]
    rundir.write_atomic(
        out / "interpolation.gif",
        lambda handle: back_and_forth[0].save(
            handle, format="GIF", save_all=True, append_images=back_and_forth[1:], duration=120, loop=0
        ),
    )
    return [out / "interpolation.png", out / "interpolation.gif"]


def _numbers(kind: type, text: str) -> list[Any]:
    try:
        return [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a comma-separated list of {kind.__name__}s") from None


def _arch(text: str) -> dict[str, Any]:
    """'z_dim=512,img_resolution=32,conv_clamp=256' -> NVIDIA's constructor arguments."""
    arch: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"{item!r}: give key=value (e.g. img_resolution=32)")
        arch[key] = None if value == "None" else yaml.safe_load(value)  # 32 -> int, 0.5 -> float, resnet -> str
    return arch


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gan-sample", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir", type=Path, nargs="?", help="a run directory (with checkpoints/)")
    parser.add_argument("--nvidia", type=Path, default=None, help="instead of a run: NVIDIA's G state dict (.pt)")
    parser.add_argument("--arch", type=_arch, default={}, help="with --nvidia: G's arguments, e.g. img_resolution=32")
    parser.add_argument("--checkpoint", default="latest", help="latest (default), best, or a step")
    parser.add_argument("--num", type=int, default=64, help="samples to write (default 64)")
    parser.add_argument("--out", type=Path, default=None, help="a directory (PNGs) or FILE.npz; default RUN/generated")
    parser.add_argument("--seed", type=int, default=None, help="latents from this key (default: the run's eval's)")
    parser.add_argument("--classes", type=lambda t: _numbers(int, t), default=None, help="e.g. 3,7 (conditional)")
    parser.add_argument("--grid", action="store_true", help="also grid.png of the first 64")
    parser.add_argument("--truncation", type=lambda t: _numbers(float, t), default=None, help="psis, e.g. 0.5,0.7,1")
    parser.add_argument("--interpolate", type=int, default=0, metavar="K", help="K steps from latent 0 to 1")
    parser.add_argument("--replica", type=int, default=0, help="which replica of a population (default 0)")
    parser.add_argument("--raw", action="store_true", help="the trained G, not its EMA")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the run's eval.batch_size")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _sampler(args: argparse.Namespace) -> Sampler:
    if args.nvidia:
        if not args.nvidia.is_file():
            raise GanJaxError(f"--nvidia {args.nvidia}: no such file (torch.save(G_ema.state_dict(), PATH) makes one)")
        return Sampler.from_nvidia(args.nvidia, args.arch, args.seed, args.classes)
    if not (args.run_dir / "checkpoints").is_dir():
        raise GanJaxError(f"{args.run_dir}: not a run directory with checkpoints/ (nothing to sample from)")
    return Sampler.from_run(args.run_dir, args.checkpoint, args.replica, args.raw, args.seed, args.classes)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s")
    logging.getLogger("absl").setLevel(logging.ERROR)
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # "Unable to initialize backend 'tpu'"
    parser = _parser()
    args = parser.parse_args(argv)
    if args.checkpoint not in ("latest", "best") and not args.checkpoint.isdigit():
        parser.error(f"--checkpoint {args.checkpoint!r}: valid values are latest, best or a step number")
    if args.num < 1 or (args.batch_size is not None and args.batch_size < 1) or args.interpolate < 0:
        parser.error("--num and --batch-size must be >= 1, --interpolate >= 0")
    if args.interpolate == 1:
        parser.error("--interpolate K: K >= 2 (the two ends and K - 2 steps between)")
    if (args.run_dir is None) == (args.nvidia is None):
        parser.error("give a run directory or --nvidia G.pt, one of them")
    if args.arch and not args.nvidia:
        parser.error("--arch goes with --nvidia")
    out = args.out or (args.run_dir / "generated" if args.run_dir else Path("generated"))
    if out.suffix == ".npz" and (args.grid or args.truncation or args.interpolate):
        parser.error("--grid, --truncation and --interpolate write PNGs: give --out a directory")
    try:
        sampler = _sampler(args)
        if args.truncation and not sampler.takes_truncation():
            raise GanJaxError(f"--truncation: model={sampler.model_name} has no truncation trick (StyleGAN2 has)")
        written = write_outputs(sampler, args, out)
    except GanJaxError as error:
        log.error("%s", error)
        return error.exit_code
    source = args.nvidia if args.nvidia else f"step {sampler.at_step} of {args.run_dir}"
    log.info("%s: %s", source, ", ".join(map(str, written)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
