#!/usr/bin/env bash
# Every built-in method on CoNLL-2003 NER and SST-2 with the offline MiniLM, 1000 training
# examples, 1 epoch, each method's default learning rate. Writes runs/matrix/<task>-<method>/
# and prints markdown tables (peft-hub report).
#   bash benchmarks/methods_matrix.sh            # ~15 minutes on 2 CPU cores
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
DATA=../shared/data
for task in ner classify; do
  data=$DATA/conll2003; [ "$task" = classify ] && data=$DATA/sst2
  for m in lora adapter prefix ia3 full freeze; do
    .venv/bin/peft-hub adapt --method $m --task $task --data $data --max-train-samples 1000 \
        --epochs 1 --output runs/matrix/$task-$m --overwrite --quiet > /dev/null
  done
done
.venv/bin/peft-hub report runs/matrix/ner-* --png runs/matrix-ner.png
.venv/bin/peft-hub report runs/matrix/classify-* --png runs/matrix-classify.png
