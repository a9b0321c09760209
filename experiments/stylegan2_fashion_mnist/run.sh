#!/usr/bin/env bash
# StyleGAN2 with and without ADA on 256 images, 10% and 100% of Fashion-MNIST (README.md here).
#
#   bash experiments/stylegan2_fashion_mnist/run.sh [OUT_DIR] [STEPS] [STEPS_256] [STEPS_32]
#       # defaults: experiments/stylegan2_fashion_mnist/runs 800 2000 1000 (10%/100% runs; 256 images; 32 images)
#
# "ADA off" is augment=ada with p fixed at 0: no image is augmented (bit-identical to augment=none, a
# test checks it) and the controller still measures r_t = E[sign(D(x_real))], D's overfitting.
# ada_kimg=20 instead of NVIDIA's 500: a run here is ~25 kimg, not 25,000; at 20 p can rise by up to
# 0.0064 every 4 iterations (batch 32), so it can reach 1 within 500 iterations.
set -euo pipefail
out="${1:-experiments/stylegan2_fashion_mnist/runs}"
steps="${2:-800}"
steps_256="${3:-2000}"
steps_32="${4:-1000}"
train="${GAN_TRAIN:-gan-train}"
common=(experiment=fashion_mnist_stylegan2 augment=ada augment.ada_kimg=20 train.log_every=20
        eval.every=200 eval.num_samples=5000 train.sample_every=200 train.checkpoint_every=200)
run() {  # name, steps, overrides...
  local name="$1" n="$2"; shift 2
  if [[ -f "$out/$name/summary.json" ]] && grep -q '"status": "finished"' "$out/$name/summary.json" \
      && grep -q "\"steps_completed\": $n," "$out/$name/summary.json"; then
    echo "== $name: finished before, kept" >&2; return
  fi  # else gan-train starts it, or resumes it from its last checkpoint (also to train longer)
  echo "== $name" >&2
  "$train" "${common[@]}" train.steps="$n" "$@" hydra.run.dir="$out/$name"
}
run 10pct_ada "$steps" 'dataset.split=train[:10%]'
run 10pct_off "$steps" 'dataset.split=train[:10%]' augment.p=0
run full_ada "$steps" dataset.split=train
run full_off "$steps" dataset.split=train augment.p=0
run 256_ada "$steps_256" 'dataset.split=train[:256]'
run 256_off "$steps_256" 'dataset.split=train[:256]' augment.p=0
run 32_off "$steps_32" 'dataset.split=train[:32]' augment.p=0
run 32_ada "$steps_32" 'dataset.split=train[:32]'
# The controller's loop closing where D does not overfit: a target below the r_t D holds.
run 32_target03 600 'dataset.split=train[:32]' augment.target=0.3
