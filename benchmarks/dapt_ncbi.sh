#!/usr/bin/env bash
# Domain-adaptive pretraining experiment: continued pretraining on the NCBI-disease abstracts with
# each objective of $OBJECTIVES (mlm, mlm+sop, ...), then LoRA NER on NCBI-disease, against the
# same LoRA NER from the base MiniLM, for several fine-tuning seeds. Each pretraining runs once
# (seed 42); each seed then adapts every base. Prints the held-out scores and mean +- std.
#   bash benchmarks/dapt_ncbi.sh                                 # mlm, 3 seeds: ~65 minutes on 2 CPU cores
#   OBJECTIVES="mlm mlm+sop" SEEDS="42" EPOCHS=1 bash benchmarks/dapt_ncbi.sh   # NER for 1 epoch (default: the recipe's 3)
# Runs that finished are kept (delete runs/dapt-* and runs/ncbi to start again).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
SEEDS=${SEEDS:-"42 43 44"}
OBJECTIVES=${OBJECTIVES:-mlm}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-300}
LR=${LR:-2e-3}   # LoRA's rate for NER (its default when these numbers were first measured)
EPOCHS=${EPOCHS:-3}
NER=${NER:-runs/ncbi}   # where the NER runs go (one folder per EPOCHS setting keeps them apart)
DATA=../shared/data
for objective in $OBJECTIVES; do
  [ -f "runs/dapt-$objective/run.json" ] || .venv/bin/peft-hub pretrain --objective "$objective" --data $DATA/ncbi_disease_abstracts \
      --max-steps $PRETRAIN_STEPS --lr 1e-4 training.head_learning_rate=5e-3 --seed 42 --output "runs/dapt-$objective" --overwrite --quiet > /dev/null
done
for seed in $SEEDS; do
  for base in minilm $OBJECTIVES; do
    model=$base; [ "$base" = minilm ] || model=runs/dapt-$base
    out=$NER/lora-from-$base-$seed
    [ -f "$out/run.json" ] || .venv/bin/peft-hub adapt --model "$model" --method lora --task ner --data $DATA/NCBI-disease-IOB \
        --lr "$LR" --epochs "$EPOCHS" --seed "$seed" --output "$out" --overwrite --quiet > /dev/null
  done
done
.venv/bin/python - "$NER" "$OBJECTIVES" $SEEDS <<'PY'
import json, statistics, sys
ner, objectives, seeds = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
for objective in objectives:
    p = json.load(open(f"runs/dapt-{objective}/metrics.json"))
    before, after = p["heldout_before"], p["heldout_after"]
    print(f"pretrain {objective}: held-out " + ", ".join(f"{k} {before[k]:.4g} -> {after[k]:.4g}" for k in after if isinstance(after[k], float))
          + f"; {p['train_steps']} steps, {p['train_runtime_s']:.0f} s")
print("\n| base | " + " | ".join(f"seed {s} test F1" for s in seeds) + " | test F1 mean +- std | dev F1 mean |")
print("|---|" + "---:|" * (len(seeds) + 2))
for base in ["minilm", *objectives]:
    runs = [json.load(open(f"{ner}/lora-from-{base}-{s}/metrics.json")) for s in seeds]
    test, dev = [r["test"]["f1"] for r in runs], [r["dev"]["f1"] for r in runs]
    spread = f" +- {statistics.stdev(test):.4f}" if len(test) > 1 else ""
    name = base if base == "minilm" else f"DAPT {base}"
    print(f"| {name} | " + " | ".join(f"{f:.4f}" for f in test)
          + f" | **{statistics.mean(test):.4f}**{spread} | {statistics.mean(dev):.4f} |")
PY
