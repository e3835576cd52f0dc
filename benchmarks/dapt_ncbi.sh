#!/usr/bin/env bash
# Domain-adaptive pretraining experiment (issue 4): MLM on the NCBI-disease abstracts, then LoRA
# NER on NCBI-disease, against the same LoRA NER from the base MiniLM. Seed via $SEED (default 42).
#   bash benchmarks/dapt_ncbi.sh            # ~30 minutes on 2 CPU cores
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
SEED=${SEED:-42}
DATA=../shared/data
.venv/bin/peft-hub pretrain --objective mlm --data $DATA/ncbi_disease_abstracts --max-steps 300 \
    --seed $SEED --output runs/dapt --overwrite --quiet
for base in dapt minilm; do
  model=$base; [ "$base" = dapt ] && model=runs/dapt
  .venv/bin/peft-hub adapt --model $model --method lora --task ner --data $DATA/NCBI-disease-IOB \
      --seed $SEED --output runs/ncbi-lora-from-$base --overwrite --quiet > /dev/null
done
.venv/bin/python - <<'PY'
import json
p = json.load(open("runs/dapt/metrics.json"))
print(f"pretrain: perplexity {p['perplexity_before']:.2f} -> {p['perplexity_after']:.2f}, "
      f"{p['train_steps']} steps, {p['train_runtime_s']:.0f} s")
for base in ("minilm", "dapt"):
    m = json.load(open(f"runs/ncbi-lora-from-{base}/metrics.json"))
    print(f"LoRA NER from {base:6}: dev F1 {m['dev']['f1']:.4f}  test F1 {m['test']['f1']:.4f}")
PY
