#!/usr/bin/env bash
# Class-conditional Fashion-MNIST with four model families at an equal wall-clock budget (README.md here).
#
#   bash experiments/model_zoo_fashion_mnist/run.sh [OUT_DIR] [BUDGET_SECONDS] [BATCH]
#       # defaults: experiments/model_zoo_fashion_mnist/runs 480 16
#
# Each family trains two seeds as one population (train.num_seeds=2), every one at the same batch.
# Its number of steps is the budget over its own time per step, measured first on this machine: a
# 5-step and a 15-step run (the difference leaves the compilation out). Then one evaluation at the
# end: 5,000 samples of each member's EMA generator, FID, intra-FID and class accuracy on the
# shipped Fashion-MNIST classifier.
set -euo pipefail
out="${1:-experiments/model_zoo_fashion_mnist/runs}"
budget="${2:-480}"
batch="${3:-16}"
train="${GAN_TRAIN:-gan-train}"
python="${PYTHON:-python}"
quiet=(logger=none train.progress_bar=false train.num_seeds=2 train.batch_size="$batch")
declare -A family=(
  [sngan]="experiment=fashion_mnist_conditional model.generator.width=32 model.discriminator.width=32 train.ema_decay=0.99 train.ema_start=100"
  [biggan]="experiment=fashion_mnist_biggan train.ema_decay=0.99 train.ema_start=100"
  [r3gan]="experiment=fashion_mnist_r3gan"
  [stylegan2]="experiment=fashion_mnist_stylegan2 model.conditioning=projection"
)
seconds() {  # train_seconds of a finished run dir
  "$python" -c "import json,sys; print(json.load(open(sys.argv[1] + '/summary.json'))['train_seconds'])" "$1"
}
for name in sngan biggan r3gan stylegan2; do
  read -r -a args <<< "${family[$name]}"
  if [[ ! -f "$out/$name/summary.json" ]] || ! grep -q '"status": "finished"' "$out/$name/summary.json"; then
    timing=(train.log_every=10 eval.every=100000 train.sample_every=100000 train.checkpoint_every=100000 eval.metrics=[])
    for n in 5 15; do
      [[ -f "$out/timing/${name}_$n/summary.json" ]] || \
        "$train" "${args[@]}" "${quiet[@]}" "${timing[@]}" train.steps=$n hydra.run.dir="$out/timing/${name}_$n"
    done
    t5=$(seconds "$out/timing/${name}_5"); t15=$(seconds "$out/timing/${name}_15")
    steps=$("$python" -c "print(max(10, int($budget * 10 / ($t15 - $t5))))")
    echo "== $name: $steps steps ((15 - 5 steps) in $t15 - $t5 s)" >&2
    "$train" "${args[@]}" "${quiet[@]}" train.steps="$steps" train.log_every=10 eval.every="$steps" \
      "train.sample_every=$steps" "train.checkpoint_every=$steps" 'eval.metrics=[fid,intra_fid,class_accuracy]' \
      eval.num_samples=5000 hydra.run.dir="$out/$name"
  else
    echo "== $name: finished before, kept" >&2
  fi
done
"$python" experiments/model_zoo_fashion_mnist/summarise.py "$out"
