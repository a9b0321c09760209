"""`gan-train`: the Hydra entry point. Composes the config, then hands it to the loop."""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path
from typing import Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from gan_jax import loop
from gan_jax.config import ConfigError, register_schemas

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")

log = logging.getLogger("gan_jax")

register_schemas()


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def _exit_with(error: Exception, run_dir: Path) -> None:
    """A single run's known failures end with their message and an exit code, no traceback."""
    if isinstance(error, ConfigError):
        log.error("%s", error)
        sys.exit(2)
    if isinstance(error, loop.TrainingDiverged):
        log.error("%s (run directory: %s)", error, run_dir)
        sys.exit(3)
    raise error


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> Optional[float]:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    group = Path(hydra_cfg.sweep.dir).name if sweeping else None
    name = f"{hydra_cfg.job.num}-{hydra_cfg.job.override_dirname}" if sweeping else run_dir.name
    # SIGTERM unwinds like an exception, so summary.json is written and W&B finished.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        summary = loop.run(cfg, run_dir, wandb_group=group, wandb_name=name)
    except Exception as error:
        if not sweeping:
            _exit_with(error, run_dir)
        # In a sweep the job's summary.json records the failure and the sweep goes on;
        # SweepReport counts the failures when it ends.
        log.error("job %s failed: %s", run_dir, error)
        if isinstance(error, ConfigError):  # raised before the loop wrote a summary
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "summary.json").write_text(json.dumps(
                {"status": "invalid_config", "diverged": False, "error": str(error)}, indent=2))
        return None
    log.info("finished: d_real %.3f, d_fake %.3f over the last tenth; outputs in %s",
             summary.get("d_real_last_tenth", float("nan")),
             summary.get("d_fake_last_tenth", float("nan")), run_dir)
    for figure in ("figure1.png", "discriminator_outputs.png", "samples.png"):
        if (run_dir / figure).exists():
            log.info("figure: %s", run_dir / figure)
    if "wandb" in summary:
        log.info("W&B (%s) files: %s", summary["wandb"]["mode"], summary["wandb"]["dir"])
    return loop.objective_value(summary, cfg.objective) if cfg.objective else None


if __name__ == "__main__":
    main()
