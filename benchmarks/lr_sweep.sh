#!/usr/bin/env bash
# How the default learning rates were chosen: each method on CoNLL-2003 NER (1000 training
# sentences, 1 epoch, first 1000 dev/test sentences), offline MiniLM, a few learning rates.
#   bash benchmarks/lr_sweep.sh             # ~15 minutes on 2 CPU cores
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
run() {  # method lr
  .venv/bin/peft-hub adapt --method $1 --task ner --data ../shared/data/conll2003 --max-train-samples 1000 \
      --max-eval-samples 1000 --epochs 1 --lr $2 --output runs/sweep/$1-$2 --overwrite --quiet > /dev/null
}
for lr in 5e-5 1e-4 2e-4 5e-4; do run full $lr; done
for lr in 1e-4 5e-4 1e-3 3e-3; do run freeze $lr; done
for lr in 1e-3 3e-3 1e-2; do run adapter $lr; done
for lr in 1e-2 3e-2; do run prefix $lr; done
for lr in 1e-2 3e-2; do run ia3 $lr; done
for lr in 1e-3 2e-3 5e-3; do run lora $lr; done
.venv/bin/peft-hub report runs/sweep/* --png runs/sweep.png
