#!/usr/bin/env bash
# LoRA's NER gap to full fine-tuning (issue 28), with the offline MiniLM: CoNLL-2003 (the defaults
# check's first 4,000 sentences) and NCBI-disease (all 5,432), EPOCHS epochs, the same steps for every
# candidate of a dataset; dev and test capped at 2,000 sentences as in the defaults check. Candidates
# are chosen on dev (benchmarks/ner_gap_table.py prints both; test is read once, at the end).
# Runs go to runs/ner-gap/<data>-<candidate>-e<epochs>-s<seed>; each finished run is skipped.
#   bash benchmarks/ner_gap.sh                                        # screen: every candidate, 1 epoch, seed 1
#   EPOCHS=3 CANDIDATES="full lora rslora" bash benchmarks/ner_gap.sh # the survivors at 3 epochs
#   SEEDS="1 2 3" EPOCHS="1 3" CANDIDATES="full lora" bash benchmarks/ner_gap.sh   # confirm
#   .venv/bin/python benchmarks/ner_decoding.py runs/ner-gap/*       # each run under both decodings
#   .venv/bin/python benchmarks/ner_gap_table.py runs/ner-gap --decoding constrained
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
D=../shared/data
OUT=${OUT:-runs/ner-gap}
SEEDS=${SEEDS:-1}
EPOCHS=${EPOCHS:-1}
ONLY=${ONLY:-}  # e.g. ONLY="ncbi"
EXTRA=${EXTRA:-}  # overrides for every run (e.g. to try a changed default against the committed one)
# name | data arguments | training examples
DATASETS="conll|data.path=$D/conll2003|4000
ncbi|data.path=$D/NCBI-disease-IOB|100000"
# name | method | overrides ("lora": LoRA's defaults before issue 28, rate 1e-3; "lr2e-3": LoRA's default
# for NER since then)
ALL="full|full|
lora|lora|--lr 1e-3
lr2e-3|lora|--lr 2e-3
rslora|lora|method.options.use_rslora=true
nodrop|lora|method.options.dropout=0
headlr3e-3|lora|training.head_learning_rate=3e-3
headlr3e-2|lora|training.head_learning_rate=3e-2
warm0|lora|training.warmup_ratio=0
constant|lora|training.lr_scheduler=constant_with_warmup
dora|lora|method.options.use_dora=true
eva|lora|method.options.init_lora_weights=eva
pissa|lora|method.options.init_lora_weights=pissa
nodecay|lora|training.weight_decay=0"
CANDIDATES=${CANDIDATES:-$(cut -d'|' -f1 <<< "$ALL" | tr '\n' ' ')}
mkdir -p "$OUT"
for epochs in $EPOCHS; do
  for seed in $SEEDS; do
    while IFS='|' read -r data args samples; do
      [ -z "$ONLY" ] || [[ " $ONLY " == *" $data "* ]] || continue
      while IFS='|' read -r name method overrides; do
        [[ " $CANDIDATES " == *" $name "* ]] || continue
        dir=$OUT/$data-$name-e$epochs-s$seed
        [ -f "$dir/run.json" ] && continue
        echo "$(date +%T) $dir" >&2
        # shellcheck disable=SC2086
        .venv/bin/peft-hub adapt --task ner --method "$method" --epochs "$epochs" --max-train-samples "$samples" \
            --max-eval-samples 2000 --seed "$seed" --output "$dir" --overwrite --quiet $args $overrides $EXTRA > /dev/null \
            || echo "$(date +%T) FAILED $dir" >&2
      done <<< "$ALL"
    done <<< "$DATASETS"
  done
done
