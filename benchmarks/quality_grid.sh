#!/usr/bin/env bash
# Quality on the full data, only through peft-hub and the recipes in recipes/:
#   CoNLL-2003 NER (all 14,041 training sentences -> best epoch on dev -> test once):
#     lora, lora_r4, ia3, adapter, prefix, full
#   SST-2 (stsa.binary: all 6,920 training sentences, as SST2_SAMPLES=10000 caps none; full dev/test): lora and full
# Writes runs/grid/<row>/ and benchmarks/results/{ner,sst2}_grid.{md,png} (peft-hub report).
#   bash benchmarks/quality_grid.sh [ner|sst2|all]    # ~55 + ~6 minutes on 2 CPU cores
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
PART=${1:-all}
NER_EPOCHS=${NER_EPOCHS:-2}
SST2_EPOCHS=${SST2_EPOCHS:-1}
SST2_SAMPLES=${SST2_SAMPLES:-10000}
mkdir -p benchmarks/results
if [ "$PART" != sst2 ]; then
  for row in lora lora_r4 ia3 adapter prefix full; do
    .venv/bin/peft-hub run ner/minilm_$row training.epochs=$NER_EPOCHS output.dir=runs/grid/ner-$row \
        output.overwrite=true --quiet > /dev/null
  done
  .venv/bin/peft-hub report runs/grid/ner-* --png benchmarks/results/ner_grid.png > benchmarks/results/ner_grid.md
  cat benchmarks/results/ner_grid.md
fi
if [ "$PART" != ner ]; then
  for row in lora full; do
    .venv/bin/peft-hub run classify/minilm_$row training.epochs=$SST2_EPOCHS data.max_train_samples=$SST2_SAMPLES \
        output.dir=runs/grid/sst2-$row output.overwrite=true --quiet > /dev/null
  done
  .venv/bin/peft-hub report runs/grid/sst2-* --png benchmarks/results/sst2_grid.png > benchmarks/results/sst2_grid.md
  cat benchmarks/results/sst2_grid.md
fi
