#!/usr/bin/env bash
# Domain-adaptive pretraining experiment: MLM on the NCBI-disease abstracts, then LoRA NER on
# NCBI-disease, against the same LoRA NER from the base MiniLM, for several fine-tuning seeds.
# The pretraining runs once (seed 42); each seed then adapts both bases. Prints mean +- std.
#   bash benchmarks/dapt_ncbi.sh                 # ~65 minutes on 2 CPU cores (3 seeds)
#   SEEDS="42" PRETRAIN_STEPS=300 bash benchmarks/dapt_ncbi.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
SEEDS=${SEEDS:-"42 43 44"}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-300}
DATA=../shared/data
.venv/bin/peft-hub pretrain --objective mlm --data $DATA/ncbi_disease_abstracts --max-steps $PRETRAIN_STEPS \
    --lr 1e-4 training.head_learning_rate=5e-3 --seed 42 --output runs/dapt --overwrite --quiet > /dev/null
for seed in $SEEDS; do
  for base in minilm dapt; do
    model=$base; [ "$base" = dapt ] && model=runs/dapt
    .venv/bin/peft-hub adapt --model $model --method lora --task ner --data $DATA/NCBI-disease-IOB \
        --seed $seed --output runs/ncbi/lora-from-$base-$seed --overwrite --quiet > /dev/null
  done
done
.venv/bin/python - $SEEDS <<'PY'
import json, statistics, sys
seeds = sys.argv[1:]
p = json.load(open("runs/dapt/metrics.json"))
print(f"pretrain: held-out perplexity {p['heldout_before']['perplexity']:.1f} -> {p['heldout_after']['perplexity']:.2f}, "
      f"{p['train_steps']} steps, {p['train_runtime_s']:.0f} s\n")
print("| base | " + " | ".join(f"seed {s} test F1" for s in seeds) + " | test F1 mean +- std | dev F1 mean |")
print("|---|" + "---:|" * (len(seeds) + 2))
for base in ("minilm", "dapt"):
    runs = [json.load(open(f"runs/ncbi/lora-from-{base}-{s}/metrics.json")) for s in seeds]
    test, dev = [r["test"]["f1"] for r in runs], [r["dev"]["f1"] for r in runs]
    spread = f" +- {statistics.stdev(test):.4f}" if len(test) > 1 else ""
    print(f"| {base} | " + " | ".join(f"{f:.4f}" for f in test)
          + f" | **{statistics.mean(test):.4f}**{spread} | {statistics.mean(dev):.4f} |")
PY
