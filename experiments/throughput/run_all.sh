#!/usr/bin/env bash
# Every benchmark in this folder, small sizes by default, merged into one JSON:
#
#   bash experiments/throughput/run_all.sh [OUT.json]          # default: throughput.json
#
# Runs on whatever JAX finds (CPU, or a GPU/TPU with the matching jax installed); PyTorch
# contenders run where torch is installed (`pip install -e '.[bench]'`), on CUDA when torch
# sees a GPU. Sizes come from the environment, e.g. `ROUNDS=7 MLP_STEPS=2000 bash ...`;
# DATA_DIR=<TFDS data dir> also times the DCGAN input pipeline on Fashion-MNIST and what an
# in-training evaluation costs (eval_cost.py; also run when Debian's Fashion-MNIST is installed), and is
# the hyper-parameter population's DCGAN data (population.py --mode hyper: HYPER_RING_STEPS, HYPER_DCGAN_STEPS;
# without DATA_DIR it finds Debian's or TFDS's own copy, else trains on a generated stand-in and says so).
# DINOV2_SRC=<a checkout of facebookresearch/dinov2> adds the authors' ViT to features.py's DINOv2 timing.
# NVIDIA_DIR=<a checkout of NVlabs/stylegan2-ada-pytorch> also times the StyleGAN2 iteration against
# NVIDIA's own (stylegan2.py; skipped without torch or without the checkout); STYLEGAN2_ARGS adds
# its options, e.g. STYLEGAN2_ARGS="--channels 3 --width 512 --channel-base 16384 --latent-dim 512".
# R3GAN_SRC=<brownvc/R3GAN> and BIGGAN_SRC=<ajbrock/BigGAN-PyTorch> checkouts time those iterations against
# the authors' own (model_zoo.py; their CIFAR-10 presets on an accelerator).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python}"
out="${1:-throughput.json}"
rounds="${ROUNDS:-3}"
mlp_steps="${MLP_STEPS:-200}"
dcgan_steps="${DCGAN_STEPS:-5}"
seeds="${SEEDS:-8}"
population_steps="${POPULATION_STEPS:-200}"
hyper_ring_steps="${HYPER_RING_STEPS:-500}"    # population.py --mode hyper: 16 members against a 16-job sweep
hyper_dcgan_steps="${HYPER_DCGAN_STEPS:-100}"
classifier_images="${CLASSIFIER_IMAGES:-1000}"
inception_images="${INCEPTION_IMAGES:-50}"  # one batch: fewer cost as much
# One in-training evaluation: 10,000 samples on a CPU, a whole 50k FID (fid50k_full's N) on an accelerator.
eval_samples="${EVAL_SAMPLES:-$("$python" -c 'import jax; print(10000 if jax.default_backend() == "cpu" else 50000)')}"
stylegan2_steps="${STYLEGAN2_STEPS:-4}"      # (a): iterations per round
stylegan2_windows="${STYLEGAN2_WINDOWS:-1}"  # (b): 16-iteration windows per round
read -ra stylegan2_args <<< "${STYLEGAN2_ARGS:-}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

torch_device="$("$python" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")' 2>/dev/null || echo cpu)"
pipeline=(--skip-pipeline)
if [[ -n "${DATA_DIR:-}" ]]; then pipeline=(--data-dir "$DATA_DIR"); fi
data_dir=()
if [[ -n "${DATA_DIR:-}" ]]; then data_dir=(--data-dir "$DATA_DIR"); fi

echo "== MLP GAN step" >&2
"$python" "$here/mlp_gan.py" --rounds "$rounds" --steps "$mlp_steps" --torch-device "$torch_device" \
    --json "$work/mlp_gan.json"
echo "== DCGAN step" >&2
"$python" "$here/dcgan.py" --rounds "$rounds" --steps "$dcgan_steps" --torch-device "$torch_device" \
    "${pipeline[@]}" --json "$work/dcgan.json"
echo "== population" >&2
"$python" "$here/population.py" --seeds "$seeds" --steps "$population_steps" --sequential 2 \
    --json "$work/population.json"
echo "== hyper-parameter population against a Hydra sweep (ring_2d MLP, Fashion-MNIST DCGAN)" >&2
"$python" "$here/population.py" --mode hyper --steps "$hyper_ring_steps" --dcgan-steps "$hyper_dcgan_steps" \
    "${data_dir[@]}" --json "$work/population_hyper.json"
echo "== phases: lazy R1, gradient accumulation's memory" >&2
"$python" "$here/phases.py" --steps "${PHASE_STEPS:-16}" --json "$work/phases.json"
echo "== feature extraction" >&2
"$python" "$here/features.py" --rounds "$rounds" --classifier-images "$classifier_images" \
    --inception-images "$inception_images" --json "$work/features.json"
if [[ -n "${DATA_DIR:-}" || -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]]; then
  echo "== one in-training evaluation" >&2
  "$python" "$here/eval_cost.py" --rounds "$rounds" --num-samples "$eval_samples" "${data_dir[@]}" \
      --json "$work/eval_cost.json"
fi
if ! "$python" -c 'import torch' 2>/dev/null; then
  echo "== StyleGAN2 iteration against NVIDIA's: skipped (no torch here; pip install -e '.[bench]')" >&2
elif [[ -z "${NVIDIA_DIR:-}" || ! -f "${NVIDIA_DIR}/training/networks.py" ]]; then
  echo "== StyleGAN2 iteration against NVIDIA's: skipped (NVIDIA_DIR=${NVIDIA_DIR:-} is not a checkout of" \
       "https://github.com/NVlabs/stylegan2-ada-pytorch)" >&2
else
  echo "== StyleGAN2 iteration against NVIDIA's" >&2
  "$python" "$here/stylegan2.py" --nvidia "$NVIDIA_DIR" --rounds "$rounds" --steps "$stylegan2_steps" \
      --windows "$stylegan2_windows" --torch-device "$torch_device" "${stylegan2_args[@]}" \
      --json "$work/stylegan2.json"
fi
if [[ -n "${R3GAN_SRC:-}${BIGGAN_SRC:-}" ]] && "$python" -c 'import torch' 2>/dev/null; then
  # the authors' CIFAR-10 presets off a CPU, CPU sizes on one
  zoo_size=()
  if [[ "$("$python" -c 'import jax; print(jax.default_backend())')" != cpu ]]; then zoo_size=(--preset); fi
  echo "== R3GAN / BigGAN iterations against the authors' code" >&2
  "$python" "$here/model_zoo.py" --model all --rounds "$rounds" --iterations "${MODEL_ZOO_ITERATIONS:-2}" \
      --torch-device "$torch_device" "${zoo_size[@]}" --json "$work/model_zoo.json"
else
  echo "== R3GAN / BigGAN against the authors': skipped (needs torch and R3GAN_SRC / BIGGAN_SRC checkouts)" >&2
fi

"$python" - "$out" "$work" "$rounds" <<'PY'
import json, platform, sys
from pathlib import Path

import jax

out, work, rounds = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
try:
    import torch
    torch_version = torch.__version__
except ImportError:
    torch_version = None
merged = {
    "environment": {
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [d.device_kind for d in jax.devices()],
        "torch": torch_version,
        "machine": platform.machine(),
        "rounds": rounds,
    },
    **{
        name: json.loads((work / f"{name}.json").read_text())
        for name in (
            "mlp_gan", "dcgan", "population", "population_hyper", "phases", "features", "eval_cost", "stylegan2",
            "model_zoo",
        )
        if (work / f"{name}.json").exists()
    },
}
out.write_text(json.dumps(merged, indent=2) + "\n")
print(f"wrote {out}")
PY
