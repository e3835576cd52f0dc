#!/usr/bin/env bash
# LoRA NER on CoNLL-2003 (500 training sentences, 1 epoch) with the base in fp32, 8-bit and 4-bit:
# dev F1, seconds per step and the base model's weight memory.
#   bash benchmarks/quantize_ner.sh          # ~6 minutes on 2 CPU cores
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
for q in none 8bit 4bit; do
  .venv/bin/peft-hub adapt --method lora --task ner --data ../shared/data/conll2003 --max-train-samples 500 \
      --epochs 1 --quantize $q --output runs/quant/$q --overwrite --quiet > /dev/null
done
.venv/bin/python - <<'PY'
import json
print("| base | dev F1 | test F1 | s/step | weight memory (MiB) |")
print("|---|---:|---:|---:|---:|")
for q in ("none", "8bit", "4bit"):
    m = json.load(open(f"runs/quant/{q}/metrics.json"))
    print(f"| {'fp32' if q == 'none' else q} | {m['dev']['f1']:.4f} | {m['test']['f1']:.4f} | "
          f"{m['train_runtime_s'] / m['train_steps']:.3f} | {m['base_weight_memory_mb']:.1f} |")
PY
